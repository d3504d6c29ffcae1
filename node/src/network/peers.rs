//! Hostile peers: what one peer may cost this node (announcements being checked, fetch
//! requests being served, reconciliation answers), and bans for those that misbehave.

use super::EventLoop;
use cailloux_protocol::RecordId;
use cailloux_protocol::wire::FetchResponse;
use libp2p::PeerId;
use libp2p::request_response::{InboundRequestId, ResponseChannel};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

// --- hostile peers: bans and limits -----------------------------------------------------------

/// How long a banned peer stays blocked.
pub(super) const BAN_PERIOD: Duration = Duration::from_secs(10 * 60);
/// How often expired bans are lifted and idle per-peer state is dropped.
pub(super) const BAN_TICK: Duration = Duration::from_secs(10);
/// Bad records (undecodable, invalid, badly signed) a peer may serve over fetch within
/// BAN_PERIOD before it is banned. An honest peer serves none: it stored only what it verified.
pub(super) const BAD_RECORD_STRIKES: u32 = 32;
/// Announcements from one peer being fetched and checked at once; more are ignored (catch-up
/// repairs what an honest burst loses).
pub(super) const GOSSIP_FETCHES_PER_PEER: usize = 32;
/// Fetch requests from one peer being read from the store at once, and waiting for that. An
/// honest peer has at most GOSSIP_FETCHES_PER_PEER + `CatchupWidth::per_session` (2; 4 before
/// issue 10) requests out, which the queue holds; beyond it the answer is empty. Each answer is
/// up to 4 MiB, and the bytes of answers held at once are bounded too (`budget`).
pub(super) const FETCHES_SERVED_PER_PEER: usize = 8;
pub(super) const FETCH_QUEUE_PER_PEER: usize = 64;
/// Reconciliation messages answered per peer: a burst of SYNC_BURST, then one per SYNC_REFILL.
/// An honest peer sends one per session when in sync, and starts a session at most every
/// sync interval (60 s by default, 2 s in the tests).
pub(super) const SYNC_BURST: f64 = 10.0;
pub(super) const SYNC_REFILL: Duration = Duration::from_secs(2);
// Connection limits (handshakes from outside, connections in all and per peer) are derived
// from `max_peers` by the connection policy: `connections::limits`.

/// A fetch request waiting to be served: its id, where the answer goes, the distinct ids asked.
pub(super) type QueuedFetch = (
    InboundRequestId,
    ResponseChannel<FetchResponse>,
    Vec<RecordId>,
);

/// What one peer costs this node now, against the per-peer limits.
#[derive(Debug)]
pub(super) struct PeerLoad {
    /// Its announcements being fetched and checked.
    pub(super) gossip_fetches: usize,
    /// Its fetch requests being read from the store, and those waiting.
    pub(super) fetches_served: usize,
    pub(super) fetch_queue: VecDeque<QueuedFetch>,
    /// Whether one of its reconciliation messages is being answered.
    pub(super) sync_served: bool,
    /// Token bucket for reconciliation answers.
    pub(super) sync_tokens: f64,
    pub(super) sync_refilled: Instant,
    /// Bad records served over fetch since `strikes_since`.
    pub(super) strikes: u32,
    pub(super) strikes_since: Instant,
}

impl PeerLoad {
    pub(super) fn new(now: Instant) -> PeerLoad {
        PeerLoad {
            gossip_fetches: 0,
            fetches_served: 0,
            fetch_queue: VecDeque::new(),
            sync_served: false,
            sync_tokens: SYNC_BURST,
            sync_refilled: now,
            strikes: 0,
            strikes_since: now,
        }
    }

    /// Takes a token for a reconciliation answer, if one is left.
    pub(super) fn take_sync_token(&mut self, now: Instant) -> bool {
        let refill =
            now.duration_since(self.sync_refilled).as_secs_f64() / SYNC_REFILL.as_secs_f64();
        self.sync_tokens = (self.sync_tokens + refill).min(SYNC_BURST);
        self.sync_refilled = now;
        if self.sync_tokens >= 1.0 {
            self.sync_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Counts bad records; returns the count within the current window.
    pub(super) fn strike(&mut self, bad: u32, now: Instant) -> u32 {
        if now.duration_since(self.strikes_since) > BAN_PERIOD {
            self.strikes = 0;
            self.strikes_since = now;
        }
        self.strikes = self.strikes.saturating_add(bad);
        self.strikes
    }

    /// Nothing in flight and no strike worth remembering: the entry can go once the peer has.
    pub(super) fn idle(&self, now: Instant) -> bool {
        self.gossip_fetches == 0
            && self.fetches_served == 0
            && self.fetch_queue.is_empty()
            && !self.sync_served
            && (self.strikes == 0 || now.duration_since(self.strikes_since) > BAN_PERIOD)
    }
}

impl EventLoop {
    /// Disconnects and blocks `peer` for `BAN_PERIOD`.
    pub(super) fn ban(&mut self, peer: PeerId, reason: &'static str, why: String) {
        if self.banned.contains_key(&peer) {
            return;
        }
        tracing::warn!(
            "banning {peer} for {} s ({reason}): {why}",
            BAN_PERIOD.as_secs()
        );
        self.banned.insert(peer, Instant::now() + BAN_PERIOD);
        self.shared.metrics.ban(reason);
        // Closes every connection to the peer and refuses new ones, both ways.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        self.sessions.remove(&peer);
    }

    /// Lifts the bans that have run their time; drops the state of peers long gone.
    pub(super) fn lift_bans(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            tracing::info!("ban of {peer} lifted");
        }
        let gone: Vec<PeerId> = self
            .load
            .keys()
            .filter(|p| !self.swarm.is_connected(p))
            .copied()
            .collect();
        for peer in gone {
            self.forget_if_idle(peer);
        }
    }

    /// Drops a peer's load entry once it is disconnected and nothing of it is in flight.
    pub(super) fn forget_if_idle(&mut self, peer: PeerId) {
        if !self.swarm.is_connected(&peer)
            && self.load.get(&peer).is_some_and(|l| l.idle(Instant::now()))
        {
            self.load.remove(&peer);
        }
    }

    /// Counts the bad records a peer served over fetch; bans it past `BAD_RECORD_STRIKES`.
    pub(super) fn strike(&mut self, peer: PeerId, bad: u32) {
        if bad == 0 {
            return;
        }
        let now = Instant::now();
        let strikes = self
            .load
            .entry(peer)
            .or_insert_with(|| PeerLoad::new(now))
            .strike(bad, now);
        if strikes >= BAD_RECORD_STRIKES {
            self.ban(
                peer,
                "bad_records",
                format!(
                    "it served {strikes} bad records within {} s",
                    BAN_PERIOD.as_secs()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_bucket_allows_a_burst_then_one_per_refill() {
        let start = Instant::now();
        let mut load = PeerLoad::new(start);
        let burst = (0..100).filter(|_| load.take_sync_token(start)).count();
        assert_eq!(burst, SYNC_BURST as usize);
        assert!(!load.take_sync_token(start + SYNC_REFILL / 2));
        assert!(load.take_sync_token(start + SYNC_REFILL));
        assert!(!load.take_sync_token(start + SYNC_REFILL));
        // Refills never exceed the burst.
        let later = start + SYNC_REFILL * 1000;
        let burst = (0..100).filter(|_| load.take_sync_token(later)).count();
        assert_eq!(burst, SYNC_BURST as usize);
    }

    #[test]
    fn strikes_count_within_the_ban_period_and_keep_the_entry_until_it_ends() {
        let start = Instant::now();
        let mut load = PeerLoad::new(start);
        assert!(load.idle(start));
        assert_eq!(load.strike(20, start), 20);
        assert!(!load.idle(start), "strikes are remembered");
        assert_eq!(load.strike(12, start + BAN_PERIOD / 2), 32);
        let later = start + BAN_PERIOD * 2;
        assert!(load.idle(later));
        assert_eq!(load.strike(1, later), 1, "a new window");
    }
}
