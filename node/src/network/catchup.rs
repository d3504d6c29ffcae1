//! Catch-up: negentropy reconciliation with a peer over the index of (created_at, id), then
//! batched fetches of what this node lacks, verified and stored like gossip.
//!
//! When: on every new connection, when a record waits for one the sender may hold, and
//! periodically with a random peer (`SyncSchedule`). A town publishes a few records a week and
//! gossip delivers nearly all of them, so the periodic round mostly finds the sets equal; it then
//! costs one round trip of 20 bytes out and one back (`Session::start`), and its interval doubles
//! from `--sync-interval` up to `SYNC_BACKOFF_MAX` times it while rounds find nothing. A round
//! that finds a difference, or a record stored (arrived by gossip or published here), brings it
//! back to the base interval.

use super::peers::PeerLoad;
use super::serve::decode_reason;
use super::{EventLoop, Internal};
use crate::metrics::Via;
use crate::store::Outcome;
use crate::sync::{Session, respond};
use crate::writer::Origin;
use cailloux_protocol::trust::Denied;
use cailloux_protocol::wire::{
    FetchRequest, FetchResponse, MAX_FETCH_IDS, SyncRequest, SyncResponse,
};
use cailloux_protocol::{KeyCache, Record, RecordId, Unverified, verify_all};
use libp2p::request_response::{self};
use libp2p::{PeerId, gossipsub};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How many catch-up fetches may be in flight: `per_session` for one peer's session, `total` over
/// all sessions. With answers of up to `MAX_FETCH_RESPONSE_BYTES` (4 MiB), `total` bounds the
/// bytes on their way, being verified or waiting for the writer, however many peers this node
/// reconciles with (a new town meets up to `max_peers` at once, each with the same records to
/// offer). A memory bound (`memory::Tuning`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchupWidth {
    pub per_session: usize,
    pub total: usize,
}

impl CatchupWidth {
    /// Two per session, four in all: at most 16 MiB of answers. Measured on a new town catching
    /// up 100,000 records from one peer (`benches/memory.rs`): as fast as four per session (the
    /// writer, not the network, sets the pace) and 34 MiB less at the peak.
    pub const DEFAULT: CatchupWidth = CatchupWidth {
        per_session: 2,
        total: 4,
    };
    /// Before issue 10: four per session, no bound over all.
    pub const BEFORE: CatchupWidth = CatchupWidth {
        per_session: 4,
        total: usize::MAX,
    };
}

/// At most one reconciliation started by `catch_up_elsewhere` in this time: a peer that
/// announces ids it never serves costs the node one round per interval, not one per
/// announcement (a round repairs every record missed before it; one missed within the interval
/// waits for the next repair or periodic round).
pub(super) const REPAIR_EVERY: Duration = Duration::from_secs(5);

/// The periodic reconciliation's interval grows, while rounds find nothing, to at most this many
/// times the base (`--sync-interval`): 16 minutes at the default minute.
pub(super) const SYNC_BACKOFF_MAX: u32 = 16;

/// When the next periodic reconciliation is due.
#[derive(Debug)]
pub(super) struct SyncSchedule {
    base: Duration,
    /// The interval is `base * factor`; `factor` doubles up to `SYNC_BACKOFF_MAX`.
    factor: u32,
    pub(super) next: Instant,
    /// The peer of the periodic round under way, if one is.
    periodic: Option<PeerId>,
}

impl SyncSchedule {
    pub(super) fn new(base: Duration, now: Instant) -> SyncSchedule {
        SyncSchedule {
            base,
            factor: 1,
            next: later(now, base),
            periodic: None,
        }
    }

    /// The interval now.
    pub(super) fn interval(&self) -> Duration {
        self.base.saturating_mul(self.factor)
    }

    /// A periodic round starts now, with `peer` (`None`: there was no peer to ask).
    fn started(&mut self, peer: Option<PeerId>, now: Instant) {
        self.periodic = peer;
        self.next = later(now, self.interval());
    }

    /// A reconciliation with `peer` has ended; `differs`: the two sets were not equal.
    fn ended(&mut self, peer: PeerId, differs: bool, now: Instant) {
        let periodic = self.periodic == Some(peer);
        if periodic {
            self.periodic = None;
        }
        if differs {
            self.active(now);
        } else if periodic {
            self.factor = (self.factor.saturating_mul(2)).min(SYNC_BACKOFF_MAX);
            self.next = later(now, self.interval());
        }
    }

    /// Records moved (or a round found a difference): back to the base interval.
    pub(super) fn active(&mut self, now: Instant) {
        self.factor = 1;
        self.next = self.next.min(later(now, self.base));
    }
}

/// `now + d`, or a year from now for an interval too long to add.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now)
}

/// Why a fetch was sent.
pub(super) enum Fetch {
    /// To validate a gossip announcement.
    Gossip {
        message_id: gossipsub::MessageId,
        source: PeerId,
        id: RecordId,
    },
    /// A batch of a catch-up session.
    Sync { ids: Vec<RecordId> },
}

/// A catch-up session with one peer.
pub(super) enum SyncState {
    Reconciling(Box<Session>),
    Fetching {
        queue: VecDeque<RecordId>,
        in_flight: usize,
        /// Records stored, and records that waited for another, in this session so far: a
        /// session that stored some and left some waiting (a retraction fetched before its
        /// target) is followed by another at once.
        stored: usize,
        pending: usize,
    },
}

impl EventLoop {
    /// The periodic round: reconciles with a random peer, and schedules the next round.
    pub(super) fn sync_with_random_peer(&mut self) {
        let peer = self.random_peer(None);
        self.sync_schedule.started(peer, Instant::now());
        if let Some(peer) = peer {
            self.start_sync(peer);
        }
    }

    /// A gossiped record could not be fetched from `announcer` (its connection closed, or it
    /// did not have it): gossipsub will not offer that announcement again, so reconcile at once
    /// with another peer rather than wait for the periodic round, which a quiet network has
    /// stretched to many minutes; at most once per `REPAIR_EVERY`.
    pub(super) fn catch_up_elsewhere(&mut self, announcer: PeerId) {
        let now = Instant::now();
        if self
            .last_repair
            .is_some_and(|at| now.duration_since(at) < REPAIR_EVERY)
        {
            return;
        }
        if let Some(peer) = self.random_peer(Some(announcer)) {
            self.last_repair = Some(now);
            tracing::debug!(
                "an announcement from {announcer} could not be fetched: reconciling with {peer}"
            );
            self.start_sync(peer);
        }
    }

    /// A connected peer, not already reconciling with this node, nor `except`.
    fn random_peer(&mut self, except: Option<PeerId>) -> Option<PeerId> {
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| !self.sessions.contains_key(p) && Some(**p) != except)
            .copied()
            .collect();
        if peers.is_empty() {
            return None;
        }
        // xorshift: a random enough pick without another dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Some(peers[(self.rng % peers.len() as u64) as usize])
    }

    pub(super) fn start_sync(&mut self, peer: PeerId) {
        if self.sessions.contains_key(&peer) {
            return;
        }
        match Session::start(self.shared.index.snapshot()) {
            Ok((session, first)) => {
                let request = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncRequest { message: first });
                self.sync_requests.insert(request, peer);
                self.sessions
                    .insert(peer, SyncState::Reconciling(Box::new(session)));
            }
            Err(e) => tracing::error!("cannot start reconciliation: {e}"),
        }
    }

    pub(super) fn on_sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let now = Instant::now();
                let load = self.load.entry(peer).or_insert_with(|| PeerLoad::new(now));
                let refusal = if load.sync_served {
                    Some("rate limited: one reconciliation message at a time")
                } else if !load.take_sync_token(now) {
                    Some("rate limited: too many reconciliation messages, try later")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    tracing::debug!("{peer}: {reason}");
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncResponse::Refused(reason.into()));
                    return;
                }
                load.sync_served = true;
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match respond(shared.index.snapshot(), &request.message) {
                        Ok(reply) => SyncResponse::Reply(reply),
                        Err(e) => SyncResponse::Refused(e),
                    };
                    let _ = shared
                        .internal
                        .send(Internal::RespondSync(peer, channel, response));
                });
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.sync_requests.remove(&request_id);
                let reply = match response {
                    SyncResponse::Reply(reply) => reply,
                    SyncResponse::Refused(reason) => {
                        tracing::warn!("{peer} refused to reconcile: {reason}");
                        self.sessions.remove(&peer);
                        return;
                    }
                };
                let Some(SyncState::Reconciling(session)) = self.sessions.get_mut(&peer) else {
                    return;
                };
                match session.step(&reply) {
                    Ok(Some(next)) => {
                        let request = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_request(&peer, SyncRequest { message: next });
                        self.sync_requests.insert(request, peer);
                    }
                    Ok(None) => {
                        let mut need = std::mem::take(&mut session.need);
                        self.shared.unreadable.retain_readable(&mut need);
                        tracing::debug!(
                            "reconciled with {peer} in {} round trips: {} to fetch, {} it lacks",
                            session.round_trips,
                            need.len(),
                            session.have
                        );
                        let differs = !need.is_empty() || session.have > 0;
                        self.sync_schedule.ended(peer, differs, Instant::now());
                        self.sessions.insert(
                            peer,
                            SyncState::Fetching {
                                queue: need.into(),
                                in_flight: 0,
                                stored: 0,
                                pending: 0,
                            },
                        );
                        self.fetch_more(peer);
                    }
                    Err(e) => {
                        tracing::warn!("reconciliation with {peer} failed: {e}");
                        self.sessions.remove(&peer);
                    }
                }
            }
            request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            } if self.sync_requests.remove(&request_id).is_some() => {
                tracing::debug!("reconciliation with {peer} failed: {error}");
                self.sessions.remove(&peer);
            }
            _ => {}
        }
    }

    /// Keeps up to `CatchupWidth::per_session` fetches going for a session, within its `total`
    /// for all; ends it when all is fetched. What this session leaves
    /// of the common bound goes to the sessions waiting for it.
    pub(super) fn fetch_more(&mut self, peer: PeerId) {
        self.send_fetches(peer);
        self.fetch_waiting();
    }

    /// Gives what is free of `CatchupWidth::total` to the sessions waiting for it (after
    /// a fetch ends, or a session with fetches in flight is dropped).
    pub(super) fn fetch_waiting(&mut self) {
        let width = self.catchup;
        let waiting: Vec<PeerId> = self
            .sessions
            .iter()
            .filter(|(_, state)| {
                matches!(state, SyncState::Fetching { queue, in_flight, .. }
                    if !queue.is_empty() && *in_flight < width.per_session)
            })
            .map(|(p, _)| *p)
            .collect();
        for other in waiting {
            if self.catchup_fetches() >= width.total {
                break;
            }
            self.send_fetches(other);
        }
    }

    /// Catch-up fetches in flight, over all sessions.
    fn catchup_fetches(&self) -> usize {
        self.sessions
            .values()
            .map(|state| match state {
                SyncState::Fetching { in_flight, .. } => *in_flight,
                SyncState::Reconciling(_) => 0,
            })
            .sum()
    }

    fn send_fetches(&mut self, peer: PeerId) {
        let mut total = self.catchup_fetches();
        let width = self.catchup;
        let Some(SyncState::Fetching {
            queue,
            in_flight,
            stored,
            pending,
        }) = self.sessions.get_mut(&peer)
        else {
            return;
        };
        let again = *stored > 0 && *pending > 0;
        let mut requests = Vec::new();
        while *in_flight < width.per_session && total < width.total && !queue.is_empty() {
            let n = queue.len().min(MAX_FETCH_IDS);
            requests.push(queue.drain(..n).collect::<Vec<_>>());
            *in_flight += 1;
            total += 1;
        }
        if *in_flight == 0 && queue.is_empty() {
            self.sessions.remove(&peer);
            self.shared.metrics.sync_rounds.inc();
            if again {
                self.start_sync(peer);
            }
            return;
        }
        for ids in requests {
            let request = self
                .swarm
                .behaviour_mut()
                .fetch
                .send_request(&peer, FetchRequest { ids: ids.clone() });
            self.fetches.insert(request, Fetch::Sync { ids });
        }
    }

    /// Verifies and stores a catch-up batch off the loop, then asks for more.
    pub(super) fn check_fetched(
        &mut self,
        peer: PeerId,
        asked: Vec<RecordId>,
        response: FetchResponse,
    ) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let bytes: u64 = response.records.iter().map(|r| r.len() as u64).sum();
            let checked = tokio::task::spawn_blocking({
                let metrics = shared.metrics.clone();
                let unreadable = shared.unreadable.clone();
                move || {
                    let mut keys = KeyCache::default();
                    let mut candidates = Vec::with_capacity(response.records.len());
                    let mut newer = Vec::new();
                    let mut bad = 0u32;
                    for bytes in response.records {
                        metrics.received.get_or_create(&Via { via: "sync" }).inc();
                        let id = RecordId(*blake3::hash(&bytes).as_bytes());
                        match Unverified::decode_with(bytes.into_vec(), &mut keys) {
                            Ok(u) => candidates.push(u),
                            // Not the peer's fault: a later version than this node reads.
                            Err(e @ cailloux_protocol::DecodeError::NewerVersion { .. }) => {
                                metrics.reject(decode_reason(&e));
                                unreadable.insert(id);
                                newer.push(id);
                            }
                            Err(e) => {
                                metrics.reject(decode_reason(&e));
                                bad += 1;
                            }
                        }
                    }
                    let mut good = Vec::with_capacity(candidates.len());
                    for result in verify_all(candidates) {
                        match result {
                            Ok(record) => good.push(record),
                            Err(_) => {
                                metrics.reject("bad_signature");
                                bad += 1;
                            }
                        }
                    }
                    (good, newer, bad)
                }
            })
            .await
            .unwrap_or_default();
            let (checked, newer, bad) = checked;
            shared.metrics.sync_bytes_fetched.inc_by(bytes);
            let mut checked = checked;
            // Oldest first: a delegation before its delegate's records, a record before its
            // retraction.
            checked.sort_by_key(Record::created_at);
            let received: HashSet<RecordId> = checked.iter().map(Record::id).chain(newer).collect();
            let (mut stored, mut pending) = (0, 0);
            match shared.writer.insert(checked, Origin::Peer).await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        match outcome {
                            Outcome::New => stored += 1,
                            Outcome::Duplicate => {}
                            Outcome::Denied(Denied::Pending(_)) => pending += 1,
                            Outcome::Denied(Denied::Refused { reason, message }) => {
                                tracing::info!("{peer} served a refused record: {message}");
                                shared.metrics.reject(reason);
                            }
                        }
                    }
                    shared.metrics.sync_records_fetched.inc_by(stored as u64);
                    shared
                        .metrics
                        .accepted
                        .get_or_create(&Via { via: "sync" })
                        .inc_by(stored as u64);
                }
                Err(e) => tracing::error!("cannot store fetched records: {e}"),
            }
            // Ids the peer left out (its response was full) are asked for again; ids it does not
            // hold, or that it served badly, are dropped: a later round will meet them again.
            let missing = if received.is_empty() {
                Vec::new()
            } else {
                asked
                    .into_iter()
                    .filter(|id| !received.contains(id))
                    .collect()
            };
            let _ = shared.internal.send(Internal::Fetched {
                peer,
                missing,
                stored,
                pending,
                bad,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_doubles_while_rounds_find_nothing_and_comes_back() {
        let base = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut s = SyncSchedule::new(base, t0);
        assert_eq!(s.next, t0 + base);
        let peer = PeerId::random();
        let mut now = t0;
        let mut intervals = Vec::new();
        for _ in 0..7 {
            now = s.next;
            s.started(Some(peer), now);
            s.ended(peer, false, now);
            intervals.push((s.next - now).as_secs());
        }
        assert_eq!(intervals, [120, 240, 480, 960, 960, 960, 960]);
        // A record arrives: the next round is at most the base away.
        let later_on = now + Duration::from_secs(10);
        s.active(later_on);
        assert_eq!(s.next, later_on + base);
        assert_eq!(s.interval(), base);
        // A round that finds a difference does the same.
        for _ in 0..3 {
            now = s.next;
            s.started(Some(peer), now);
            s.ended(peer, false, now);
        }
        assert_eq!(s.interval(), base * 8);
        now = s.next;
        s.started(Some(peer), now);
        s.ended(peer, true, now);
        assert_eq!((s.interval(), s.next), (base, now + base));
    }

    #[test]
    fn only_the_periodic_round_grows_the_interval() {
        let base = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut s = SyncSchedule::new(base, t0);
        // Rounds on new connections that find nothing leave it alone.
        s.ended(PeerId::random(), false, t0);
        assert_eq!((s.interval(), s.next), (base, t0 + base));
        // No peer to ask: tried again after the same interval.
        s.started(None, t0 + base);
        assert_eq!((s.interval(), s.next), (base, t0 + base * 2));
        // An absurd base does not overflow.
        let mut s = SyncSchedule::new(Duration::MAX, t0);
        s.started(Some(PeerId::random()), t0);
        assert!(s.next > t0);
    }
}
