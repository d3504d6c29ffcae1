//! The connection policy: which peers a node keeps connected, and which it lets go.
//!
//! Why it exists: gossipsub keeps a stream open to every peer that subscribes to the topic, and
//! an open stream keeps a connection alive (the swarm's `idle_connection_timeout` only starts
//! once no stream is open). So every connection Kademlia opened for a query stayed open for good,
//! and every node of a network ended up connected to every other one (59 connections each in a
//! network of 60). Kademlia is for discovery and routing: it does not need the connections it
//! used to stay open, and gossip needs only its mesh.
//!
//! The policy, run every `TICK` by the event loop (`connection_tick`) and at the swarm's gates
//! by `Policy`, a `NetworkBehaviour` with no protocol of its own:
//! - **A bound.** At most `max_peers` peers stay connected, inbound included. Above it, the
//!   excess is closed, least useful first (`choose_victims`): never a bootstrap peer (nor a
//!   peer a relay reservation lives on, either way); then
//!   peers outside the gossip mesh before mesh peers, idle ones (no catch-up session, no fetch
//!   in flight, nothing in `PeerLoad`) before busy ones, those connected for more than `GRACE`
//!   before new ones, and within that, peers of the Kademlia buckets that hold the most kept
//!   peers first, so that the kept set is spread over the buckets (near and far peers alike)
//!   rather than made of the first peers found. Ties go by a keyed hash of the peer id, drawn
//!   per node: stable from tick to tick, different from node to node.
//! - **No flapping.** A peer the policy closed is not dialled again for `COOLDOWN`: dials to it
//!   (by Kademlia's queries, by the request-response protocols) are denied before they start.
//!   Its own incoming connections are refused for `INBOUND_COOLDOWN`, after their handshake
//!   (the first moment its id is known): long enough to stop a query that is running from
//!   bringing it straight back, short enough that a town that restarts with this node as its
//!   only bootstrap peer is not shut out. Once the node holds `max_peers`, dials that the policy
//!   did not make are denied too: Kademlia's queries then go through the peers already
//!   connected.
//! - **Filling up.** Below half the bound, the policy dials peers that Kademlia knows, from the
//!   buckets where it has the fewest peers (`choose_dials`), a few per tick. Between half and
//!   the whole bound it dials nobody: peers that make room for newcomers do not start a cascade
//!   of dials and closes.
//! - **Bootstrap peers stay.** They are dialled at start and again whenever they are not
//!   connected, with a backoff that doubles (5 s to 10 minutes) unless the last connection
//!   lasted `STABLE`: a bootstrap peer whose own policy closes this node is not redialled in a
//!   loop. The policy never closes them (their own policy may).
//! - **Hard limits.** `limits` derives `connection_limits` from `max_peers` plus a margin
//!   (`margin`: a third of it, at least 8), the room for newcomers' handshakes and for what
//!   opens between two ticks: no more connections in all than `max_peers + margin` (32 by
//!   default), at most three per peer (a relayed connection, a hole-punched one, an AutoNAT
//!   dial-back), and `2 * margin` handshakes from outside at once. Once the
//!   node holds its hard cap, an incoming connection is refused as soon as it is accepted,
//!   before any handshake (`handle_pending_inbound_connection`): it costs an accept and a close.
//!
//! Nothing is lost by closing: gossip reaches every node through the mesh, which the policy
//! keeps, and catch-up (with a random connected peer every sync interval) repairs the rest.

use super::{EventLoop, NetworkConfig, peer_of};
use crate::metrics::{ConnectionReason, Metrics};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::KBucketKey;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId, connection_limits};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How often the policy runs: closes the excess, dials bootstrap peers and, below half the
/// bound, others.
pub(super) const TICK: Duration = Duration::from_secs(5);
/// A peer connected for less than this is closed only after older peers of its kind: time for
/// its first reconciliation and for gossipsub to graft it into the mesh.
pub(super) const GRACE: Duration = Duration::from_secs(20);
/// How long a peer the policy closed is not dialled.
pub(super) const COOLDOWN: Duration = Duration::from_secs(10 * 60);
/// How long its incoming connections are refused.
pub(super) const INBOUND_COOLDOWN: Duration = Duration::from_secs(60);
/// A bootstrap connection that lasted this long resets the backoff of its redials.
const STABLE: Duration = Duration::from_secs(60);
/// Backoff between dials of a bootstrap peer that is not connected: from the first, doubling
/// up to the last.
const BOOTSTRAP_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(10 * 60));
/// Peers dialled per tick below half the bound.
const DIALS_PER_TICK: usize = 4;
/// Connections per peer: TCP and QUIC, or both sides dialling at once, or a relayed connection
/// and the direct one a hole punch made (until the relayed one is closed), and an AutoNAT
/// dial-back on top.
pub(super) const MAX_ESTABLISHED_PER_PEER: u32 = 3;

/// The room above `max_peers`: a third of it, at least 8.
pub(super) fn margin(max_peers: usize) -> usize {
    (max_peers / 3).max(8)
}

/// The most connections a node holds at once, whatever happens between ticks.
pub(super) fn hard_cap(max_peers: usize) -> usize {
    max_peers.saturating_add(margin(max_peers))
}

/// The swarm's connection limits for a node that keeps `max_peers`.
pub(super) fn limits(max_peers: usize) -> connection_limits::ConnectionLimits {
    let cap = u32::try_from(hard_cap(max_peers)).unwrap_or(u32::MAX);
    let handshakes = u32::try_from(2 * margin(max_peers)).unwrap_or(u32::MAX);
    connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(handshakes))
        .with_max_established_incoming(Some(cap))
        .with_max_established_per_peer(Some(MAX_ESTABLISHED_PER_PEER))
        .with_max_established(Some(cap))
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the node holds {0} connections, its most")]
    Full(usize),
    #[error("the connection policy closed this peer less than {0} s ago")]
    CoolingDown(u64),
    #[error("the node holds {0} peers (max_peers): only the connection policy dials now")]
    AtBound(usize),
}

/// What the victim choice knows of a connected peer.
#[derive(Clone, Debug)]
pub(super) struct PeerView {
    pub(super) peer: PeerId,
    /// A bootstrap peer, or one a relay reservation lives on: never closed.
    pub(super) protected: bool,
    pub(super) in_mesh: bool,
    /// A catch-up session, a fetch or an answer in flight with it.
    pub(super) busy: bool,
    /// Connected for less than `GRACE`.
    pub(super) young: bool,
    /// Its Kademlia bucket: the base-2 logarithm of its XOR distance to this node.
    pub(super) bucket: u32,
    pub(super) tiebreak: u64,
}

/// What a closed peer was, for the metric: `idle` (outside the mesh, nothing in flight), `busy`
/// (outside the mesh, work in flight) or `mesh`.
fn kind(peer: &PeerView) -> &'static str {
    match (peer.in_mesh, peer.busy) {
        (true, _) => "mesh",
        (false, true) => "busy",
        (false, false) => "idle",
    }
}

/// The peers to close so that at most `keep` stay, least useful first, with what each was.
/// Protected peers are never chosen (so more than `keep` stay when they alone are more).
pub(super) fn choose_victims(peers: &[PeerView], keep: usize) -> Vec<(PeerId, &'static str)> {
    let mut kept: Vec<&PeerView> = peers.iter().collect();
    let mut per_bucket: HashMap<u32, usize> = HashMap::new();
    for p in &kept {
        *per_bucket.entry(p.bucket).or_default() += 1;
    }
    let mut victims = Vec::new();
    while kept.len() > keep {
        let Some(at) = kept
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.protected)
            .min_by_key(|(_, p)| {
                (
                    p.in_mesh,
                    p.busy,
                    p.young,
                    std::cmp::Reverse(per_bucket.get(&p.bucket).copied().unwrap_or(0)),
                    p.tiebreak,
                )
            })
            .map(|(at, _)| at)
        else {
            break;
        };
        let victim = kept.swap_remove(at);
        if let Some(n) = per_bucket.get_mut(&victim.bucket) {
            *n = n.saturating_sub(1);
        }
        victims.push((victim.peer, kind(victim)));
    }
    victims
}

/// Up to `n` of `candidates` (peer, bucket, tiebreak) to dial, each from the bucket where the
/// node then has the fewest peers (`connected` holds the buckets of those it has).
pub(super) fn choose_dials(
    connected: &[u32],
    candidates: &[(PeerId, u32, u64)],
    n: usize,
) -> Vec<PeerId> {
    let mut per_bucket: HashMap<u32, usize> = HashMap::new();
    for b in connected {
        *per_bucket.entry(*b).or_default() += 1;
    }
    let mut left: Vec<&(PeerId, u32, u64)> = candidates.iter().collect();
    let mut chosen = Vec::new();
    while chosen.len() < n {
        let Some(at) = left
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, bucket, tiebreak))| {
                (per_bucket.get(bucket).copied().unwrap_or(0), *tiebreak)
            })
            .map(|(at, _)| at)
        else {
            break;
        };
        let (peer, bucket, _) = *left.swap_remove(at);
        *per_bucket.entry(bucket).or_default() += 1;
        chosen.push(peer);
    }
    chosen
}

/// A bootstrap address and what the policy knows of it.
#[derive(Debug)]
struct Bootstrap {
    addr: Multiaddr,
    /// From the address's `/p2p/` part, or learnt when a dial of it connects.
    peer: Option<PeerId>,
    /// The dial in progress, if any.
    dial: Option<ConnectionId>,
    /// Since when it is connected, if it is.
    connected_at: Option<Instant>,
    next_dial: Instant,
    backoff: Duration,
}

/// The policy's gates and state, as a behaviour of the swarm (no protocol, no events): it sees
/// every connection open and close, and may deny one before it costs anything.
pub(super) struct Policy {
    max_peers: usize,
    bootstrap: Vec<Bootstrap>,
    /// Established connections: the peer and when it connected.
    connections: HashMap<ConnectionId, (PeerId, Instant)>,
    /// Connections per connected peer.
    peers: HashMap<PeerId, usize>,
    /// Dials allowed and not ended yet (the policy's own and others').
    dialling: HashSet<ConnectionId>,
    /// The policy's own dials: they pass the gates.
    own: HashSet<ConnectionId>,
    /// Peers the policy closed, and when.
    closed: HashMap<PeerId, Instant>,
    /// Relays this node holds (or asks for) a reservation on, and peers holding one on this
    /// node (a relay): never closed, since the reservation lives on the connection.
    relays: HashSet<PeerId>,
    reserved_here: HashSet<PeerId>,
    salt: [u8; 32],
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("max_peers", &self.max_peers)
            .field("peers", &self.peers.len())
            .finish()
    }
}

impl Policy {
    pub(super) fn new(config: &NetworkConfig, metrics: Arc<Metrics>) -> Policy {
        let mut salt = [0u8; 32];
        let _ = getrandom::fill(&mut salt);
        let now = Instant::now();
        Policy {
            max_peers: config.max_peers.max(1),
            bootstrap: config
                .bootstrap
                .iter()
                .map(|addr| Bootstrap {
                    addr: addr.clone(),
                    peer: peer_of(addr),
                    dial: None,
                    connected_at: None,
                    next_dial: now,
                    backoff: BOOTSTRAP_BACKOFF.0,
                })
                .collect(),
            connections: HashMap::new(),
            peers: HashMap::new(),
            dialling: HashSet::new(),
            own: HashSet::new(),
            closed: HashMap::new(),
            relays: HashSet::new(),
            reserved_here: HashSet::new(),
            salt,
            metrics,
        }
    }

    /// A peer the policy never closes: a bootstrap peer, or one a reservation lives on.
    fn protected(&self, peer: &PeerId) -> bool {
        self.is_bootstrap(peer) || self.relays.contains(peer) || self.reserved_here.contains(peer)
    }

    pub(super) fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.bootstrap.iter().any(|b| b.peer.as_ref() == Some(peer))
    }

    /// The relays this node holds or asks for a reservation on.
    pub(super) fn set_relays(&mut self, relays: HashSet<PeerId>) {
        self.relays = relays;
    }

    /// Whether `peer` holds a reservation on this node (a relay).
    pub(super) fn reserved_here(&mut self, peer: PeerId, holds: bool) {
        if holds {
            self.reserved_here.insert(peer);
        } else {
            self.reserved_here.remove(&peer);
        }
    }

    /// Whether the policy closed `peer` less than `span` ago.
    fn cooling(&self, peer: &PeerId, span: Duration, now: Instant) -> bool {
        self.closed
            .get(peer)
            .is_some_and(|at| now.duration_since(*at) < span)
    }

    fn tiebreak(&self, peer: &PeerId) -> u64 {
        let hash = blake3::keyed_hash(&self.salt, &peer.to_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    /// When `peer` connected (its oldest open connection).
    fn connected_since(&self, peer: &PeerId) -> Option<Instant> {
        self.connections
            .values()
            .filter(|(p, _)| p == peer)
            .map(|(_, at)| *at)
            .min()
    }

    fn deny(&self, reason: &'static str, why: Refused) -> ConnectionDenied {
        self.metrics
            .connections_denied
            .get_or_create(&ConnectionReason { reason })
            .inc();
        ConnectionDenied::new(why)
    }

    /// Registers a dial as the policy's own, so that it passes the gates.
    fn own_dial(&mut self, opts: DialOpts, reason: &'static str) -> DialOpts {
        self.own.insert(opts.connection_id());
        self.metrics
            .connections_dialled
            .get_or_create(&ConnectionReason { reason })
            .inc();
        opts
    }

    /// Bootstrap dials that are due: those not connected, not being dialled, past their backoff.
    fn due_bootstrap_dials(&mut self, now: Instant) -> Vec<DialOpts> {
        let mut due = Vec::new();
        for i in 0..self.bootstrap.len() {
            let b = &self.bootstrap[i];
            let connected = b.peer.is_some_and(|p| self.peers.contains_key(&p));
            if connected || b.dial.is_some() || b.next_dial > now {
                continue;
            }
            let opts = match b.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![b.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(b.addr.clone()).build(),
            };
            let b = &mut self.bootstrap[i];
            b.dial = Some(opts.connection_id());
            b.next_dial = now + b.backoff;
            b.backoff = (b.backoff * 2).min(BOOTSTRAP_BACKOFF.1);
            due.push(self.own_dial(opts, "bootstrap"));
        }
        due
    }

    fn dial_ended(&mut self, id: ConnectionId, connected: Option<PeerId>, now: Instant) {
        self.dialling.remove(&id);
        self.own.remove(&id);
        for b in &mut self.bootstrap {
            if b.dial == Some(id) {
                b.dial = None;
                if connected.is_some() {
                    b.peer = connected;
                }
            }
            if connected.is_some() && b.peer == connected && b.connected_at.is_none() {
                b.connected_at = Some(now);
            }
        }
    }

    /// A bootstrap peer that stayed `STABLE` is redialled soon after it goes; one that closed
    /// at once (its own policy, say) keeps its doubled backoff.
    fn disconnected(&mut self, peer: PeerId, now: Instant) {
        for b in &mut self.bootstrap {
            if b.peer == Some(peer)
                && let Some(at) = b.connected_at.take()
                && now.duration_since(at) >= STABLE
            {
                b.backoff = BOOTSTRAP_BACKOFF.0;
                b.next_dial = now;
            }
        }
    }

    /// Denies a dial that the policy did not make once the node holds `max_peers`, and any dial
    /// of a peer it closed recently.
    fn gate_dial(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        now: Instant,
    ) -> Result<(), ConnectionDenied> {
        if self.own.contains(&id) {
            self.dialling.insert(id);
            return Ok(());
        }
        if let Some(peer) = peer {
            if self.peers.contains_key(&peer) {
                return Ok(());
            }
            if self.cooling(&peer, COOLDOWN, now) {
                return Err(self.deny("cooldown", Refused::CoolingDown(COOLDOWN.as_secs())));
            }
        }
        let held = self.peers.len() + self.dialling.len();
        if held >= self.max_peers {
            return Err(self.deny("dial_at_bound", Refused::AtBound(self.max_peers)));
        }
        self.dialling.insert(id);
        Ok(())
    }
}

impl Policy {
    /// Refuses an incoming connection from a peer the policy closed `INBOUND_COOLDOWN` ago.
    fn gate_inbound(&self, peer: PeerId, now: Instant) -> Result<(), ConnectionDenied> {
        if self.cooling(&peer, INBOUND_COOLDOWN, now) {
            return Err(self.deny("cooldown", Refused::CoolingDown(INBOUND_COOLDOWN.as_secs())));
        }
        Ok(())
    }
}

impl NetworkBehaviour for Policy {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let cap = hard_cap(self.max_peers);
        if self.connections.len() >= cap {
            return Err(self.deny("inbound_full", Refused::Full(cap)));
        }
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.gate_inbound(peer, Instant::now())?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.gate_dial(id, peer, Instant::now())?;
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .insert(e.connection_id, (e.peer_id, Instant::now()));
                *self.peers.entry(e.peer_id).or_default() += 1;
                self.dial_ended(e.connection_id, Some(e.peer_id), Instant::now());
            }
            FromSwarm::ConnectionClosed(e) => {
                self.connections.remove(&e.connection_id);
                if e.remaining_established == 0 {
                    self.peers.remove(&e.peer_id);
                    self.reserved_here.remove(&e.peer_id);
                    self.disconnected(e.peer_id, Instant::now());
                } else if let Some(n) = self.peers.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                }
            }
            FromSwarm::DialFailure(e) => self.dial_ended(e.connection_id, None, Instant::now()),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// A peer's Kademlia bucket seen from `local`.
fn bucket(local: &KBucketKey<PeerId>, peer: PeerId) -> u32 {
    local.distance(&KBucketKey::from(peer)).ilog2().unwrap_or(0)
}

impl EventLoop {
    /// The policy's tick: bootstrap dials, then the excess closed or, below half the bound,
    /// peers dialled.
    pub(super) fn connection_tick(&mut self) {
        let now = Instant::now();
        let policy = &mut self.swarm.behaviour_mut().policy;
        policy
            .closed
            .retain(|_, at| now.duration_since(*at) < COOLDOWN);
        for opts in policy.due_bootstrap_dials(now) {
            if let Err(e) = self.swarm.dial(opts) {
                tracing::warn!("cannot dial a bootstrap peer: {e}");
            }
        }
        let max_peers = self.swarm.behaviour().policy.max_peers;
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if connected.len() > max_peers {
            self.close_excess(&connected, max_peers, now);
        } else if connected.len() < max_peers.div_ceil(2) {
            self.dial_more(&connected, max_peers.div_ceil(2) - connected.len(), now);
        }
        self.close_relayed_where_direct();
        self.relay_tick();
    }

    fn close_excess(&mut self, connected: &[PeerId], max_peers: usize, now: Instant) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let mesh: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let policy = &self.swarm.behaviour().policy;
        let views: Vec<PeerView> = connected
            .iter()
            .map(|p| PeerView {
                peer: *p,
                protected: policy.protected(p),
                in_mesh: mesh.contains(p),
                busy: self.sessions.contains_key(p)
                    || self.load.get(p).is_some_and(|l| {
                        l.gossip_fetches > 0
                            || l.fetches_served > 0
                            || !l.fetch_queue.is_empty()
                            || l.sync_served
                    }),
                young: policy
                    .connected_since(p)
                    .is_some_and(|at| now.duration_since(at) < GRACE),
                bucket: bucket(&local, *p),
                tiebreak: policy.tiebreak(p),
            })
            .collect();
        for (peer, kind) in choose_victims(&views, max_peers) {
            tracing::debug!(
                "closing the connection to {peer} ({kind}): {} peers, {max_peers} kept",
                connected.len()
            );
            let policy = &mut self.swarm.behaviour_mut().policy;
            policy.closed.insert(peer, now);
            policy
                .metrics
                .connections_closed
                .get_or_create(&ConnectionReason { reason: kind })
                .inc();
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn dial_more(&mut self, connected: &[PeerId], n: usize, now: Instant) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let known: Vec<PeerId> = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
            .collect();
        let policy = &self.swarm.behaviour().policy;
        let candidates: Vec<(PeerId, u32, u64)> = known
            .into_iter()
            .filter(|p| !policy.peers.contains_key(p) && !policy.cooling(p, COOLDOWN, now))
            .map(|p| (p, bucket(&local, p), policy.tiebreak(&p)))
            .collect();
        let buckets: Vec<u32> = connected.iter().map(|p| bucket(&local, *p)).collect();
        let n = n.min(DIALS_PER_TICK).saturating_sub(policy.dialling.len());
        for peer in choose_dials(&buckets, &candidates, n) {
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let opts = self
                .swarm
                .behaviour_mut()
                .policy
                .own_dial(opts, "diversity");
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!("cannot dial {peer}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bucket: u32, tiebreak: u64) -> PeerView {
        PeerView {
            peer: PeerId::random(),
            protected: false,
            in_mesh: false,
            busy: false,
            young: false,
            bucket,
            tiebreak,
        }
    }

    fn closed(peers: &[PeerView], keep: usize) -> HashSet<PeerId> {
        choose_victims(peers, keep)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn the_limits_are_the_bound_plus_a_margin() {
        assert_eq!(margin(24), 8);
        assert_eq!(hard_cap(24), 32);
        assert_eq!(hard_cap(96), 128);
        assert_eq!(hard_cap(1), 9);
        assert_eq!(hard_cap(usize::MAX), usize::MAX);
        let _ = limits(usize::MAX);
    }

    #[test]
    fn nothing_is_closed_at_or_under_the_bound() {
        let peers: Vec<PeerView> = (0..24).map(|i| view(255, i)).collect();
        assert!(choose_victims(&peers, 24).is_empty());
        assert!(choose_victims(&peers, 30).is_empty());
        assert_eq!(choose_victims(&peers, 20).len(), 4);
    }

    #[test]
    fn bootstrap_peers_are_never_closed_even_when_they_alone_exceed_the_bound() {
        let mut peers: Vec<PeerView> = (0..10).map(|i| view(255, i)).collect();
        for p in peers.iter_mut().take(6) {
            p.protected = true;
        }
        let victims = closed(&peers, 4);
        assert_eq!(victims.len(), 4, "the four unprotected ones");
        assert!(peers[..6].iter().all(|p| !victims.contains(&p.peer)));
    }

    #[test]
    fn idle_peers_outside_the_mesh_go_first_then_busy_ones_then_mesh_peers() {
        let mut mesh = view(255, 0);
        mesh.in_mesh = true;
        let mut busy = view(255, 1);
        busy.busy = true;
        let idle = view(255, 2);
        let mut young = view(255, 3);
        young.young = true;
        let peers = vec![mesh.clone(), busy.clone(), idle.clone(), young.clone()];
        let order: Vec<(PeerId, &str)> = choose_victims(&peers, 0);
        assert_eq!(
            order,
            vec![
                (idle.peer, "idle"),
                (young.peer, "idle"),
                (busy.peer, "busy"),
                (mesh.peer, "mesh"),
            ]
        );
        // Only as many as needed.
        assert_eq!(closed(&peers, 3), HashSet::from([idle.peer]));
    }

    #[test]
    fn the_kept_peers_are_spread_over_the_buckets() {
        // As found: 20 far peers (bucket 255), then 6 nearer (254), 3 (253) and 1 (252).
        let mut peers: Vec<PeerView> = (0..20).map(|i| view(255, i)).collect();
        peers.extend((0..6).map(|i| view(254, 100 + i)));
        peers.extend((0..3).map(|i| view(253, 200 + i)));
        peers.push(view(252, 300));
        let victims = closed(&peers, 12);
        let kept: Vec<u32> = peers
            .iter()
            .filter(|p| !victims.contains(&p.peer))
            .map(|p| p.bucket)
            .collect();
        let count = |b: u32| kept.iter().filter(|k| **k == b).count();
        assert_eq!(kept.len(), 12);
        assert_eq!(
            (count(252), count(253)),
            (1, 3),
            "the rare buckets stay whole"
        );
        assert_eq!(
            (count(254), count(255)),
            (4, 4),
            "the rest is shared evenly"
        );
    }

    #[test]
    fn diversity_never_outranks_the_mesh() {
        // A full bucket of mesh peers and a lone idle peer: the idle one goes.
        let mut peers: Vec<PeerView> = (0..5).map(|i| view(255, i)).collect();
        for p in &mut peers {
            p.in_mesh = true;
        }
        let lone = view(250, 9);
        peers.push(lone.clone());
        assert_eq!(closed(&peers, 5), HashSet::from([lone.peer]));
    }

    #[test]
    fn the_choice_is_stable_for_the_same_peers() {
        let peers: Vec<PeerView> = (0..30)
            .map(|i| view(250 + (i % 6) as u32, i * 7919))
            .collect();
        let mut reversed = peers.clone();
        reversed.reverse();
        assert_eq!(closed(&peers, 24), closed(&reversed, 24));
    }

    fn config(bootstrap: Vec<Multiaddr>) -> NetworkConfig {
        NetworkConfig {
            listen: Vec::new(),
            bootstrap,
            mdns: false,
            town: None,
            sync_interval: Duration::from_secs(60),
            max_peers: 24,
            chatter: crate::network::Chatter::default(),
            catchup: crate::network::CatchupWidth::DEFAULT,
            relay: false,
        }
    }

    #[test]
    fn a_bootstrap_peer_that_keeps_closing_is_redialled_ever_less_often() {
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4747/p2p/{peer}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut policy = Policy::new(&config(vec![addr]), Arc::new(Metrics::default()));
        assert!(policy.protected(&peer));
        let t0 = Instant::now();
        let mut at = t0;
        let mut gaps = Vec::new();
        for _ in 0..12 {
            // Step until a dial is due, then connect and be closed at once.
            let mut waited = Duration::ZERO;
            let dial = loop {
                if let Some(d) = policy.due_bootstrap_dials(at).pop() {
                    break d;
                }
                at += TICK;
                waited += TICK;
            };
            gaps.push(waited);
            assert!(
                policy.due_bootstrap_dials(at).is_empty(),
                "one dial at a time"
            );
            policy.dial_ended(dial.connection_id(), Some(peer), at);
            policy.peers.insert(peer, 1);
            assert!(policy.due_bootstrap_dials(at).is_empty(), "connected");
            policy.peers.remove(&peer);
            policy.disconnected(peer, at + Duration::from_secs(1));
        }
        // At once, then after 5 s, 10 s, ... up to 10 minutes (in steps of a tick).
        let secs: Vec<u64> = gaps.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 5, 10, 20, 40, 80, 160, 320, 600, 600, 600, 600]);
        // A connection that lasted is redialled at once when it goes, and the backoff restarts.
        let dial = loop {
            if let Some(d) = policy.due_bootstrap_dials(at).pop() {
                break d;
            }
            at += TICK;
        };
        policy.dial_ended(dial.connection_id(), Some(peer), at);
        at += STABLE;
        policy.disconnected(peer, at);
        assert_eq!(policy.due_bootstrap_dials(at).len(), 1);
    }

    #[test]
    fn the_gates_refuse_beyond_the_hard_cap_closed_peers_and_others_dials_at_the_bound() {
        let mut policy = Policy::new(&config(Vec::new()), Arc::new(Metrics::default()));
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4747"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let now = Instant::now();
        // 24 peers: Kademlia's dials are denied, the policy's pass.
        for _ in 0..24 {
            policy
                .connections
                .insert(ConnectionId::new_unchecked(0), (PeerId::random(), now));
            policy.peers.insert(PeerId::random(), 1);
        }
        let stranger = PeerId::random();
        assert!(
            policy
                .gate_dial(ConnectionId::new_unchecked(1), Some(stranger), now)
                .is_err()
        );
        let own = policy.own_dial(DialOpts::peer_id(stranger).build(), "diversity");
        assert!(
            policy
                .gate_dial(own.connection_id(), Some(stranger), now)
                .is_ok()
        );
        // Incoming connections are let in up to the hard cap, refused before the handshake
        // beyond it.
        policy.connections.clear();
        for i in 0..hard_cap(24) {
            assert!(
                policy
                    .handle_pending_inbound_connection(ConnectionId::new_unchecked(i), &addr, &addr)
                    .is_ok()
            );
            policy
                .connections
                .insert(ConnectionId::new_unchecked(i), (PeerId::random(), now));
        }
        assert!(
            policy
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(99), &addr, &addr)
                .is_err()
        );
        // A peer the policy closed: no dial for COOLDOWN, no incoming connection for
        // INBOUND_COOLDOWN.
        policy.peers.clear();
        let closed = PeerId::random();
        policy.closed.insert(closed, now);
        let id = ConnectionId::new_unchecked;
        assert!(policy.gate_dial(id(2), Some(closed), now).is_err());
        assert!(policy.gate_inbound(closed, now).is_err());
        let later = now + INBOUND_COOLDOWN;
        assert!(policy.gate_inbound(closed, later).is_ok());
        assert!(policy.gate_dial(id(3), Some(closed), later).is_err());
        let much_later = now + COOLDOWN;
        assert!(policy.gate_dial(id(4), Some(closed), much_later).is_ok());
    }

    #[test]
    fn dials_go_to_the_buckets_with_fewest_peers() {
        let a = PeerId::random();
        let b = PeerId::random();
        let c = PeerId::random();
        let d = PeerId::random();
        let candidates = vec![(a, 255, 0), (b, 255, 1), (c, 254, 2), (d, 250, 3)];
        // Already two far peers and one at 254: 250 first, then 254, then 255.
        assert_eq!(choose_dials(&[255, 255, 254], &candidates, 2), vec![d, c]);
        assert_eq!(
            choose_dials(&[255, 255, 254], &candidates, 10),
            vec![d, c, a, b]
        );
        assert!(choose_dials(&[], &[], 4).is_empty());
        assert!(choose_dials(&[], &candidates, 0).is_empty());
    }
}
