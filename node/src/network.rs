//! The libp2p side of a node. One task, the `EventLoop`, owns the `Swarm`; everything else
//! talks to it through a cloneable `Client` whose commands carry a oneshot for the answer.
//!
//! How records move:
//! - **Gossip.** A new record is announced on the gossipsub topic as a 32-byte `Announce`
//!   (message id = record id, so duplicates die at once). A node that receives an announcement
//!   of a record it lacks fetches the record from the peer that sent it, decodes, size-checks,
//!   schema-checks and verifies it, stores it, and only then reports the message `Accept`, which
//!   lets gossipsub forward the announcement. A bad record (malformed, forged, oversize) is
//!   reported `Reject` with its reason; an announcement of a record already held is `Ignore`d,
//!   and so is a well-formed record that the trust ledger refuses or that waits for another
//!   (the sender may only hold an act this node lacks: a catch-up round with it follows). Each
//!   node thus receives each record's bytes once.
//! - **Catch-up.** When a connection opens, and periodically with a random peer, the node runs a
//!   negentropy reconciliation (`/cailloux/sync/1`) over its index of (created_at, id), then
//!   fetches what it lacks (`/cailloux/fetch/1`) in batches, several in flight, and verifies and
//!   stores each batch like gossip. Each side pulls what it lacks; nothing is pushed unasked.
//!
//! CPU-heavy or blocking work (verification, store reads, reconciliation on big sets) runs on
//! blocking threads; results come back to the loop as `Internal` messages. Stores go through the
//! single `Writer`.
//!
//! Hostile peers:
//! - **Scoring.** Gossipsub scores peers (`peer_scoring`): every announcement reported `Reject`
//!   costs its sender, quadratically, and the cost decays over minutes. Past the graylist
//!   threshold (about ten rejects in a short time) gossipsub drops whatever the peer sends
//!   before it reaches validation.
//! - **Bans.** A peer whose score falls below the graylist threshold, or that serves
//!   `BAD_RECORD_STRIKES` bad records over fetch within `BAN_PERIOD`, is disconnected and
//!   blocked (`allow_block_list`) for `BAN_PERIOD`, with a warning and a count by reason.
//! - **Limits.** Per peer: `GOSSIP_FETCHES_PER_PEER` announcements being fetched and checked,
//!   `FETCHES_SERVED_PER_PEER` fetch requests being read (and `FETCH_QUEUE_PER_PEER` waiting),
//!   one reconciliation message being answered and a token bucket for them (`SYNC_BURST`,
//!   `SYNC_REFILL`). `connection_limits` caps connections (`MAX_*` constants). What is beyond a
//!   limit is ignored or refused, never queued without bound; per-peer state is dropped when the
//!   peer is gone and nothing of it is in flight.

use crate::metrics::{Metrics, Via};
use crate::store::{Outcome, Store};
use crate::sync::{Session, SyncIndex, respond};
use crate::writer::{Origin, Stored, Writer};
use cailloux_protocol::trust::Denied;
use cailloux_protocol::wire::{
    Announce, FETCH_PROTOCOL, FetchRequest, FetchResponse, GOSSIP_TOPIC, KAD_PROTOCOL,
    MAX_FETCH_IDS, MAX_FETCH_RESPONSE_BYTES, SYNC_PROTOCOL, SyncRequest, SyncResponse,
};
use cailloux_protocol::{DecodeError, KeyCache, Record, RecordId, Unverified, verify_all};
use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub,
    identify, identity, kad, mdns, noise, ping, tcp, yamux,
};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Fetch requests in flight per catch-up session.
const FETCHES_IN_FLIGHT: usize = 4;

// --- hostile peers: gossip scoring ----------------------------------------------------------
//
// An honest peer's score is 0 to +MESH_TIME_CAP (time in the mesh). Only invalid announcements
// take it down: P4 = -(count)^2, the count decaying to a tenth in INVALID_DECAY. So a fresh peer
// is below GOSSIP_THRESHOLD after 4 rejects, PUBLISH_THRESHOLD after 7 and GRAYLIST_THRESHOLD
// after 10 (11 with full mesh credit) in quick succession; one reject now and then is forgiven
// within INVALID_DECAY. Delivery-rate terms (P2, P3, P3b) are off: records are rare and bursty,
// so a quiet honest town would look like a failing one, and credit for deliveries would let a
// peer buy room for garbage. The IP colocation term (P6) is off: towns may share a NAT or a
// host, and tests run every node on loopback; the connection limits bound what one address gets.

/// How often gossipsub decays score counters.
const SCORE_DECAY_INTERVAL: Duration = Duration::from_secs(1);
/// P4 weight: each invalid announcement counts, and the penalty is the count squared.
const INVALID_WEIGHT: f64 = -1.0;
/// P4 decay: the invalid count falls to a tenth within this time.
const INVALID_DECAY: Duration = Duration::from_secs(5 * 60);
/// P1: one point per minute in the mesh, up to ten.
const MESH_TIME_QUANTUM: Duration = Duration::from_secs(60);
const MESH_TIME_CAP: f64 = 10.0;
/// Below this, no IHAVE/IWANT with the peer (4 rejects).
const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this, nothing is published to the peer (7 rejects).
const PUBLISH_THRESHOLD: f64 = -40.0;
/// Below this, gossipsub drops everything the peer sends, and the node bans it (10 rejects).
const GRAYLIST_THRESHOLD: f64 = -90.0;
/// Peer exchange on PRUNE is accepted only from peers above this: out of reach (scores stop at
/// MESH_TIME_CAP), as discovery is Kademlia's job and PX lists are a way to steer a node.
const ACCEPT_PX_THRESHOLD: f64 = 100.0;
/// When the median mesh score falls below this (mesh peers newer than 3 minutes), gossipsub
/// grafts better-scoring peers.
const OPPORTUNISTIC_GRAFT_THRESHOLD: f64 = 3.0;
/// P7 (broken IWANT promises, GRAFT during backoff): six offences are free, the rest cost their
/// square, and the count falls to a tenth within a minute.
const BEHAVIOUR_PENALTY_WEIGHT: f64 = -1.0;
const BEHAVIOUR_PENALTY_THRESHOLD: f64 = 6.0;
const BEHAVIOUR_PENALTY_DECAY: Duration = Duration::from_secs(60);
/// A disconnected peer's counters are kept (not decayed) this long, so that a banned peer comes
/// back graylisted rather than with a clean slate.
const RETAIN_SCORE: Duration = Duration::from_secs(60 * 60);

// --- hostile peers: bans and limits -----------------------------------------------------------

/// How long a banned peer stays blocked.
const BAN_PERIOD: Duration = Duration::from_secs(10 * 60);
/// How often expired bans are lifted and idle per-peer state is dropped.
const BAN_TICK: Duration = Duration::from_secs(10);
/// Bad records (undecodable, invalid, badly signed) a peer may serve over fetch within
/// BAN_PERIOD before it is banned. An honest peer serves none: it stored only what it verified.
const BAD_RECORD_STRIKES: u32 = 32;
/// Announcements from one peer being fetched and checked at once; more are ignored (catch-up
/// repairs what an honest burst loses).
const GOSSIP_FETCHES_PER_PEER: usize = 32;
/// Fetch requests from one peer being read from the store at once, and waiting for that. An
/// honest peer has at most GOSSIP_FETCHES_PER_PEER + FETCHES_IN_FLIGHT requests out, which the
/// queue holds; beyond it the answer is empty. Each answer is up to 4 MiB.
const FETCHES_SERVED_PER_PEER: usize = 8;
const FETCH_QUEUE_PER_PEER: usize = 64;
/// Reconciliation messages answered per peer: a burst of SYNC_BURST, then one per SYNC_REFILL.
/// An honest peer sends one per session when in sync, and starts a session at most every
/// sync interval (60 s by default, 2 s in the tests).
const SYNC_BURST: f64 = 10.0;
const SYNC_REFILL: Duration = Duration::from_secs(2);
/// Connection limits: handshakes in progress from outside, connections from outside, per peer
/// (TCP and QUIC, or both sides dialling) and in all.
const MAX_PENDING_INCOMING: u32 = 32;
const MAX_ESTABLISHED_INCOMING: u32 = 128;
const MAX_ESTABLISHED_PER_PEER: u32 = 2;
const MAX_ESTABLISHED: u32 = 256;

/// What the network needs to start.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    pub town: Option<String>,
    /// How often to reconcile with a random peer, besides on every new connection.
    pub sync_interval: Duration,
}

// Field order is the order in which behaviours may deny a connection: blocked peers and limits
// first.
#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    ping: ping::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    fetch: request_response::cbor::Behaviour<FetchRequest, FetchResponse>,
}

/// What `status` reports of the network.
#[derive(Clone, Debug, Serialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub peers: usize,
    /// Peers that subscribe to the records topic: those gossip reaches.
    pub gossip_peers: usize,
    /// Peers banned (disconnected and blocked) now.
    pub banned_peers: usize,
}

/// One connected peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub town: Option<String>,
}

enum Command {
    Status(oneshot::Sender<NetStatus>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Stop(oneshot::Sender<()>),
}

/// The handle every other part of the node holds.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<Command>,
}

/// The network task is gone (the node is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the network task has stopped")]
pub struct Stopped;

impl Client {
    pub async fn status(&self) -> Result<NetStatus, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Status(tx))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Peers(tx))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Stops the event loop (closing every connection); resolves once it has stopped.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Results of work done off the loop, coming back to it.
///
/// The channel is unbounded, but what can be in it is bounded: each message ends a piece of work
/// that counts against a per-peer limit until the loop receives it (`PeerLoad`: fetches served,
/// reconciliation answers, gossip validations; `SyncState::Fetching`: catch-up batches), and a
/// `PeerLoad` is kept while its work is in flight, even after a disconnection. So a peer has at
/// most FETCHES_SERVED_PER_PEER + 1 + GOSSIP_FETCHES_PER_PEER + FETCHES_IN_FLIGHT messages in
/// it, whatever it sends, and the connection limits bound the peers that can start work.
enum Internal {
    Respond(PeerId, ResponseChannel<FetchResponse>, FetchResponse),
    RespondSync(PeerId, ResponseChannel<SyncResponse>, SyncResponse),
    Validated {
        message_id: gossipsub::MessageId,
        source: PeerId,
        acceptance: gossipsub::MessageAcceptance,
    },
    Fetched {
        peer: PeerId,
        missing: Vec<RecordId>,
        /// Records stored from this batch, and records that wait for one this node lacks.
        stored: usize,
        pending: usize,
        /// Records served that did not decode or verify.
        bad: u32,
    },
    /// Reconcile with this peer (a record it sent waits for another).
    CatchUp(PeerId),
}

/// What one peer costs this node now, against the per-peer limits.
#[derive(Debug)]
struct PeerLoad {
    /// Its announcements being fetched and checked.
    gossip_fetches: usize,
    /// Its fetch requests being read from the store, and those waiting.
    fetches_served: usize,
    fetch_queue: VecDeque<(ResponseChannel<FetchResponse>, Vec<RecordId>)>,
    /// Whether one of its reconciliation messages is being answered.
    sync_served: bool,
    /// Token bucket for reconciliation answers.
    sync_tokens: f64,
    sync_refilled: Instant,
    /// Bad records served over fetch since `strikes_since`.
    strikes: u32,
    strikes_since: Instant,
}

impl PeerLoad {
    fn new(now: Instant) -> PeerLoad {
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
    fn take_sync_token(&mut self, now: Instant) -> bool {
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
    fn strike(&mut self, bad: u32, now: Instant) -> u32 {
        if now.duration_since(self.strikes_since) > BAN_PERIOD {
            self.strikes = 0;
            self.strikes_since = now;
        }
        self.strikes = self.strikes.saturating_add(bad);
        self.strikes
    }

    /// Nothing in flight and no strike worth remembering: the entry can go once the peer has.
    fn idle(&self, now: Instant) -> bool {
        self.gossip_fetches == 0
            && self.fetches_served == 0
            && self.fetch_queue.is_empty()
            && !self.sync_served
            && (self.strikes == 0 || now.duration_since(self.strikes_since) > BAN_PERIOD)
    }
}

/// Why a fetch was sent.
enum Fetch {
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
enum SyncState {
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

/// What the loop shares with the tasks it spawns.
#[derive(Clone)]
struct Shared {
    store: Store,
    writer: Writer,
    index: Arc<SyncIndex>,
    metrics: Arc<Metrics>,
    internal: mpsc::UnboundedSender<Internal>,
}

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    internal: mpsc::UnboundedReceiver<Internal>,
    shared: Shared,
    topic: gossipsub::IdentTopic,
    towns: HashMap<PeerId, String>,
    addresses: HashMap<PeerId, HashSet<Multiaddr>>,
    fetches: HashMap<OutboundRequestId, Fetch>,
    sync_requests: HashMap<OutboundRequestId, PeerId>,
    sessions: HashMap<PeerId, SyncState>,
    /// Per-peer load; an entry lives while the peer is connected or has work in flight.
    load: HashMap<PeerId, PeerLoad>,
    /// Banned peers and when their ban ends.
    banned: HashMap<PeerId, Instant>,
    sync_interval: Duration,
    listen_addrs: Vec<Multiaddr>,
    rng: u64,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish()
    }
}

/// The record id an announcement names; for anything else, a hash of the bytes, so that a
/// malformed message still has an id under which to reject it.
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    match Announce::decode(&message.data) {
        Ok(a) => gossipsub::MessageId::from(a.id.0.to_vec()),
        Err(_) => gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec()),
    }
}

/// Builds the swarm and its event loop. `seed` is the node's ed25519 identity seed: the libp2p
/// peer id and the town's record-signing key are the same key.
#[allow(clippy::too_many_arguments)]
pub fn new(
    seed: [u8; 32],
    config: &NetworkConfig,
    store: Store,
    writer: Writer,
    index: Arc<SyncIndex>,
    metrics: Arc<Metrics>,
    registry: &mut Registry,
) -> anyhow::Result<(Client, EventLoop)> {
    let keypair = identity::Keypair::ed25519_from_bytes(seed)?;
    let town = config.town.clone();
    let mdns_on = config.mdns;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_dns()?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(message_id)
                .max_transmit_size(64 * 1024)
                .heartbeat_interval(Duration::from_millis(700))
                // Announcements are 40 bytes and records are fetched once, so a node's share of
                // duplicates is one announcement per mesh peer: a mesh of 4 (gossipsub's default
                // is 6) keeps that small, and catch-up repairs what gossip misses.
                .mesh_n(4)
                .mesh_n_low(3)
                .mesh_n_high(8)
                .mesh_outbound_min(2)
                // Likewise, lazy gossip (IHAVE) goes to 3 peers outside the mesh, not 6, and a
                // node publishes to its mesh rather than to every subscribed peer.
                .gossip_lazy(3)
                .flood_publish(false)
                .build()?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
            let (params, thresholds) = peer_scoring();
            gossipsub.with_peer_score(params, thresholds)?;
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let agent = format!(
                "cailloux/{} town={}",
                env!("CARGO_PKG_VERSION"),
                town.as_deref().unwrap_or("")
            );
            let identify = identify::Behaviour::new(
                identify::Config::new("/cailloux/1".into(), key.public()).with_agent_version(agent),
            );
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let rr = request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(64);
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
                .with_max_established_per_peer(Some(MAX_ESTABLISHED_PER_PEER))
                .with_max_established(Some(MAX_ESTABLISHED));
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                kad,
                identify,
                mdns: Toggle::from(mdns),
                ping: ping::Behaviour::default(),
                sync: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    rr.clone(),
                ),
                fetch: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(FETCH_PROTOCOL), ProtocolSupport::Full)],
                    rr,
                ),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();

    let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    for addr in &config.listen {
        swarm.listen_on(addr.clone())?;
    }
    for addr in &config.bootstrap {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!("cannot dial bootstrap peer {addr}: {e}");
        }
    }
    let (tx, commands) = mpsc::channel(256);
    let (internal_tx, internal) = mpsc::unbounded_channel();
    let mut seed_bytes = [0u8; 8];
    let _ = getrandom::fill(&mut seed_bytes);
    let event_loop = EventLoop {
        swarm,
        commands,
        internal,
        shared: Shared {
            store,
            writer,
            index,
            metrics,
            internal: internal_tx,
        },
        topic,
        towns: HashMap::new(),
        addresses: HashMap::new(),
        fetches: HashMap::new(),
        sync_requests: HashMap::new(),
        sessions: HashMap::new(),
        load: HashMap::new(),
        banned: HashMap::new(),
        sync_interval: config.sync_interval,
        listen_addrs: Vec::new(),
        rng: u64::from_le_bytes(seed_bytes) | 1,
    };
    Ok((Client { tx }, event_loop))
}

/// Gossipsub's peer scoring: the score parameters of the records topic and the thresholds (see
/// the constants for the reasoning).
fn peer_scoring() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let decay = |within: Duration| {
        gossipsub::score_parameter_decay_with_base(within, SCORE_DECAY_INTERVAL, 0.1)
    };
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        // P1: time in the mesh.
        time_in_mesh_weight: 1.0,
        time_in_mesh_quantum: MESH_TIME_QUANTUM,
        time_in_mesh_cap: MESH_TIME_CAP,
        // P2: first deliveries (off).
        first_message_deliveries_weight: 0.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 1.0,
        // P3, P3b: mesh delivery rate and its sticky failure penalty (off).
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 1.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(60),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        // P4: invalid messages.
        invalid_message_deliveries_weight: INVALID_WEIGHT,
        invalid_message_deliveries_decay: decay(INVALID_DECAY),
    };
    let params = gossipsub::PeerScoreParams {
        topics: HashMap::from([(gossipsub::IdentTopic::new(GOSSIP_TOPIC).hash(), topic)]),
        topic_score_cap: MESH_TIME_CAP,
        // P5: no application score.
        app_specific_weight: 0.0,
        // P6: IP colocation (off).
        ip_colocation_factor_weight: 0.0,
        ip_colocation_factor_threshold: 1.0,
        ip_colocation_factor_whitelist: HashSet::new(),
        // P7: behaviour penalties.
        behaviour_penalty_weight: BEHAVIOUR_PENALTY_WEIGHT,
        behaviour_penalty_threshold: BEHAVIOUR_PENALTY_THRESHOLD,
        behaviour_penalty_decay: decay(BEHAVIOUR_PENALTY_DECAY),
        decay_interval: SCORE_DECAY_INTERVAL,
        decay_to_zero: 0.1,
        retain_score: RETAIN_SCORE,
        // Slow peers (messages to them dropped from a full queue): gossipsub's defaults, a fifth
        // of a point per message, gone within seconds; it only steers mesh choice.
        slow_peer_weight: -0.2,
        slow_peer_threshold: 0.0,
        slow_peer_decay: 0.2,
    };
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: ACCEPT_PX_THRESHOLD,
        opportunistic_graft_threshold: OPPORTUNISTIC_GRAFT_THRESHOLD,
    };
    (params, thresholds)
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl EventLoop {
    /// Runs until `Client::stop` is called or every client is gone.
    pub async fn run(mut self) {
        let mut sync_tick = tokio::time::interval(self.sync_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kad_tick = tokio::time::interval(Duration::from_secs(300));
        let mut ban_tick = tokio::time::interval(BAN_TICK);
        ban_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stored = self.shared.writer.subscribe();
        loop {
            tokio::select! {
                event = stored.recv() => match event {
                    Ok(Stored { origin: Origin::Local, records }) => self.announce(records),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} storage events missed: some local records are not announced; peers will catch up");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Stop(done)) => {
                        let _ = done.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(internal) = self.internal.recv() => self.on_internal(internal),
                _ = sync_tick.tick() => self.sync_with_random_peer(),
                _ = ban_tick.tick() => self.lift_bans(),
                // Refresh the routing table, once there is someone to ask.
                _ = kad_tick.tick(), if self.swarm.connected_peers().next().is_some() => {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
        }
        tracing::info!("network stopped");
    }

    /// Gossips announcements of records published or imported here.
    fn announce(&mut self, records: Vec<(RecordId, u64)>) {
        for (id, _) in records {
            let data = Announce { id }.encode().to_vec();
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), data)
            {
                Ok(_) | Err(gossipsub::PublishError::Duplicate) => {}
                Err(e) => tracing::debug!(
                    "announcement of {} not gossiped ({e}); peers will catch up",
                    id.short()
                ),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let local = *self.swarm.local_peer_id();
                let _ = reply.send(NetStatus {
                    peer_id: local.to_string(),
                    listen_addrs: self
                        .listen_addrs
                        .iter()
                        .map(|a| format!("{a}/p2p/{local}"))
                        .collect(),
                    peers: self.swarm.connected_peers().count(),
                    gossip_peers: self
                        .swarm
                        .behaviour()
                        .gossipsub
                        .mesh_peers(&self.topic.hash())
                        .count(),
                    banned_peers: self.banned.len(),
                });
            }
            Command::Peers(reply) => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|p| PeerInfo {
                        peer_id: p.to_string(),
                        addresses: self
                            .addresses
                            .get(p)
                            .into_iter()
                            .flatten()
                            .map(ToString::to_string)
                            .collect(),
                        town: self.towns.get(p).cloned(),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Stop(_) => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address)
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.addresses
                    .entry(peer_id)
                    .or_default()
                    .insert(endpoint.get_remote_address().clone());
                self.shared
                    .metrics
                    .peers
                    .set(self.swarm.connected_peers().count() as i64);
                if num_established.get() == 1 {
                    tracing::info!("connected to {peer_id}");
                    self.load
                        .entry(peer_id)
                        .or_insert_with(|| PeerLoad::new(Instant::now()));
                    self.start_sync(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.shared
                    .metrics
                    .peers
                    .set(self.swarm.connected_peers().count() as i64);
                if num_established == 0 {
                    tracing::info!("disconnected from {peer_id}");
                    self.addresses.remove(&peer_id);
                    self.sessions.remove(&peer_id);
                    self.towns.remove(&peer_id);
                    if let Some(load) = self.load.get_mut(&peer_id) {
                        // Requests waiting to be served can no longer be answered.
                        load.fetch_queue.clear();
                    }
                    self.forget_if_idle(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!("cannot connect to {peer_id:?}: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_announcement(propagation_source, message_id, &message.data);
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if let Some(town) = info
                    .agent_version
                    .split_once(" town=")
                    .map(|(_, t)| t.trim())
                    .filter(|t| !t.is_empty())
                {
                    self.towns.insert(peer_id, town.to_owned());
                }
                if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr.clone());
                    }
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                }
            }
            BehaviourEvent::Sync(event) => self.on_sync_event(event),
            BehaviourEvent::Fetch(event) => self.on_fetch_event(event),
            _ => {}
        }
    }

    // --- gossip -------------------------------------------------------------------------

    fn on_announcement(&mut self, source: PeerId, message_id: gossipsub::MessageId, data: &[u8]) {
        if self.banned.contains_key(&source) {
            // Sent before the ban took effect: not worth a look.
            self.report(&message_id, &source, gossipsub::MessageAcceptance::Ignore);
            return;
        }
        let metrics = &self.shared.metrics;
        metrics.received.get_or_create(&Via { via: "gossip" }).inc();
        let announce = match Announce::decode(data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{source} gossiped a malformed message: {e}");
                metrics.reject("malformed");
                self.report(&message_id, &source, gossipsub::MessageAcceptance::Reject);
                return;
            }
        };
        if self.shared.store.contains(&announce.id).unwrap_or(false) {
            metrics.duplicates.inc();
            self.report(&message_id, &source, gossipsub::MessageAcceptance::Ignore);
            return;
        }
        let load = self
            .load
            .entry(source)
            .or_insert_with(|| PeerLoad::new(Instant::now()));
        if load.gossip_fetches >= GOSSIP_FETCHES_PER_PEER {
            tracing::debug!(
                "{source} has {GOSSIP_FETCHES_PER_PEER} announcements being checked: ignoring {}",
                announce.id.short()
            );
            self.report(&message_id, &source, gossipsub::MessageAcceptance::Ignore);
            return;
        }
        load.gossip_fetches += 1;
        let request = self.swarm.behaviour_mut().fetch.send_request(
            &source,
            FetchRequest {
                ids: vec![announce.id],
            },
        );
        self.fetches.insert(
            request,
            Fetch::Gossip {
                message_id,
                source,
                id: announce.id,
            },
        );
    }

    fn report(
        &mut self,
        message_id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, acceptance);
        if acceptance == gossipsub::MessageAcceptance::Reject
            && let Some(score) = self.swarm.behaviour().gossipsub.peer_score(source)
            && score < GRAYLIST_THRESHOLD
        {
            self.ban(
                *source,
                "gossip_score",
                format!("its gossip score is {score:.0}, below {GRAYLIST_THRESHOLD}"),
            );
        }
    }

    // --- hostile peers ------------------------------------------------------------------

    /// Disconnects and blocks `peer` for `BAN_PERIOD`.
    fn ban(&mut self, peer: PeerId, reason: &'static str, why: String) {
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
    fn lift_bans(&mut self) {
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
    fn forget_if_idle(&mut self, peer: PeerId) {
        if !self.swarm.is_connected(&peer)
            && self.load.get(&peer).is_some_and(|l| l.idle(Instant::now()))
        {
            self.load.remove(&peer);
        }
    }

    /// Counts the bad records a peer served over fetch; bans it past `BAD_RECORD_STRIKES`.
    fn strike(&mut self, peer: PeerId, bad: u32) {
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

    /// Starts reading the next fetch requests of `peer` that wait, up to the per-peer limit.
    fn serve_fetches(&mut self, peer: PeerId) {
        let Some(load) = self.load.get_mut(&peer) else {
            return;
        };
        while load.fetches_served < FETCHES_SERVED_PER_PEER {
            let Some((channel, ids)) = load.fetch_queue.pop_front() else {
                break;
            };
            load.fetches_served += 1;
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                let response = read_records(&shared.store, &ids);
                let _ = shared
                    .internal
                    .send(Internal::Respond(peer, channel, response));
            });
        }
    }

    // --- fetching -----------------------------------------------------------------------

    fn on_fetch_event(&mut self, event: request_response::Event<FetchRequest, FetchResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let load = self
                    .load
                    .entry(peer)
                    .or_insert_with(|| PeerLoad::new(Instant::now()));
                if load.fetch_queue.len() >= FETCH_QUEUE_PER_PEER {
                    tracing::debug!("{peer} has too many fetch requests waiting: empty answer");
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .fetch
                        .send_response(channel, FetchResponse { records: vec![] });
                    return;
                }
                load.fetch_queue.push_back((channel, request.ids));
                self.serve_fetches(peer);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match self.fetches.remove(&request_id) {
                Some(Fetch::Gossip {
                    message_id,
                    source,
                    id,
                }) => self.check_gossiped(message_id, source, id, response),
                Some(Fetch::Sync { ids }) => self.check_fetched(peer, ids, response),
                None => {}
            },
            request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            } => match self.fetches.remove(&request_id) {
                Some(Fetch::Gossip {
                    message_id, source, ..
                }) => {
                    tracing::debug!("fetch from {peer} failed: {error}");
                    self.gossip_fetch_done(source);
                    self.report(&message_id, &source, gossipsub::MessageAcceptance::Ignore);
                }
                Some(Fetch::Sync { .. }) => {
                    tracing::info!("catch-up with {peer} interrupted: {error}");
                    self.sessions.remove(&peer);
                }
                None => {}
            },
            _ => {}
        }
    }

    /// Verifies and stores the record fetched for an announcement, then reports the verdict.
    fn check_gossiped(
        &mut self,
        message_id: gossipsub::MessageId,
        source: PeerId,
        id: RecordId,
        response: FetchResponse,
    ) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let verdict = tokio::task::spawn_blocking(move || {
                let bytes = response.records.into_iter().next().map(|b| b.into_vec());
                let Some(bytes) = bytes else { return Err(None) };
                let record = Unverified::decode(bytes).map_err(|e| Some(decode_reason(&e)))?;
                if record.id() != id {
                    return Err(Some("wrong_id"));
                }
                record.verify().map_err(|_| Some("bad_signature"))
            })
            .await;
            let acceptance = match verdict {
                Ok(Ok(record)) => match shared.writer.insert(vec![record], Origin::Peer).await {
                    Ok(outcomes) => match outcomes.into_iter().next() {
                        Some(Outcome::New) => {
                            shared
                                .metrics
                                .accepted
                                .get_or_create(&Via { via: "gossip" })
                                .inc();
                            gossipsub::MessageAcceptance::Accept
                        }
                        Some(Outcome::Denied(Denied::Refused { reason, message })) => {
                            // Not forwarded, but not held against the sender either: a peer
                            // relays only what its own ledger accepted, so it may simply hold
                            // an act this node lacks (a delegation not yet received). Catch-up
                            // with it brings that act, and the record comes again with it. An
                            // outsider gains nothing by it; per-peer limits bound its cost.
                            // Garbage (bad signatures, malformed bytes) is rejected and scored.
                            tracing::info!(
                                "{source} announced record {}, refused: {message}",
                                id.short()
                            );
                            shared.metrics.reject(reason);
                            let _ = shared.internal.send(Internal::CatchUp(source));
                            gossipsub::MessageAcceptance::Ignore
                        }
                        Some(Outcome::Denied(Denied::Pending(why))) => {
                            // Not the sender's fault: catch-up with it brings what is missing.
                            tracing::debug!("record {} waits: {why}", id.short());
                            let _ = shared.internal.send(Internal::CatchUp(source));
                            gossipsub::MessageAcceptance::Ignore
                        }
                        Some(Outcome::Duplicate) | None => gossipsub::MessageAcceptance::Ignore,
                    },
                    Err(e) => {
                        tracing::error!("cannot store a gossiped record: {e}");
                        gossipsub::MessageAcceptance::Ignore
                    }
                },
                Ok(Err(Some(reason))) => {
                    tracing::warn!(
                        "{source} announced record {} and served a bad one: {reason}",
                        id.short()
                    );
                    shared.metrics.reject(reason);
                    gossipsub::MessageAcceptance::Reject
                }
                Ok(Err(None)) | Err(_) => gossipsub::MessageAcceptance::Ignore,
            };
            let _ = shared.internal.send(Internal::Validated {
                message_id,
                source,
                acceptance,
            });
        });
    }

    /// An announcement from `source` has been fetched and checked (or its fetch failed).
    fn gossip_fetch_done(&mut self, source: PeerId) {
        if let Some(load) = self.load.get_mut(&source) {
            load.gossip_fetches = load.gossip_fetches.saturating_sub(1);
        }
        self.forget_if_idle(source);
    }

    // --- catch-up -----------------------------------------------------------------------

    fn sync_with_random_peer(&mut self) {
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| !self.sessions.contains_key(p))
            .copied()
            .collect();
        if peers.is_empty() {
            return;
        }
        // xorshift: a random enough pick without another dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let peer = peers[(self.rng % peers.len() as u64) as usize];
        self.start_sync(peer);
    }

    fn start_sync(&mut self, peer: PeerId) {
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

    fn on_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
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
                        let need = std::mem::take(&mut session.need);
                        tracing::debug!(
                            "reconciled with {peer} in {} round trips: {} to fetch",
                            session.round_trips,
                            need.len()
                        );
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

    /// Keeps up to `FETCHES_IN_FLIGHT` fetches going for a session; ends it when all is fetched.
    fn fetch_more(&mut self, peer: PeerId) {
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
        while *in_flight < FETCHES_IN_FLIGHT && !queue.is_empty() {
            let n = queue.len().min(MAX_FETCH_IDS);
            requests.push(queue.drain(..n).collect::<Vec<_>>());
            *in_flight += 1;
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
    fn check_fetched(&mut self, peer: PeerId, asked: Vec<RecordId>, response: FetchResponse) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let bytes: u64 = response.records.iter().map(|r| r.len() as u64).sum();
            let checked = tokio::task::spawn_blocking({
                let metrics = shared.metrics.clone();
                move || {
                    let mut keys = KeyCache::default();
                    let mut candidates = Vec::with_capacity(response.records.len());
                    let mut bad = 0u32;
                    for bytes in response.records {
                        metrics.received.get_or_create(&Via { via: "sync" }).inc();
                        match Unverified::decode_with(bytes.into_vec(), &mut keys) {
                            Ok(u) => candidates.push(u),
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
                    (good, bad)
                }
            })
            .await
            .unwrap_or_default();
            let (checked, bad) = checked;
            shared.metrics.sync_bytes_fetched.inc_by(bytes);
            let mut checked = checked;
            // Oldest first: a delegation before its delegate's records, a record before its
            // retraction.
            checked.sort_by_key(Record::created_at);
            let received: HashSet<RecordId> = checked.iter().map(Record::id).collect();
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

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond(peer, channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_response(channel, response);
                if let Some(load) = self.load.get_mut(&peer) {
                    load.fetches_served = load.fetches_served.saturating_sub(1);
                }
                self.serve_fetches(peer);
                self.forget_if_idle(peer);
            }
            Internal::RespondSync(peer, channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
                if let Some(load) = self.load.get_mut(&peer) {
                    load.sync_served = false;
                }
                self.forget_if_idle(peer);
            }
            Internal::Validated {
                message_id,
                source,
                acceptance,
            } => {
                self.gossip_fetch_done(source);
                self.report(&message_id, &source, acceptance);
            }
            Internal::Fetched {
                peer,
                missing,
                stored: new,
                pending: waiting,
                bad,
            } => {
                if let Some(SyncState::Fetching {
                    queue,
                    in_flight,
                    stored,
                    pending,
                }) = self.sessions.get_mut(&peer)
                {
                    *in_flight = in_flight.saturating_sub(1);
                    queue.extend(missing);
                    *stored += new;
                    *pending += waiting;
                }
                self.strike(peer, bad);
                self.fetch_more(peer);
            }
            Internal::CatchUp(peer) => self.start_sync(peer),
        }
    }
}

/// The records asked for that the store holds, up to the response size limit.
fn read_records(store: &Store, ids: &[RecordId]) -> FetchResponse {
    let mut records = Vec::new();
    let mut size = 0;
    for id in ids.iter().take(MAX_FETCH_IDS) {
        if let Ok(Some(record)) = store.get(id) {
            size += record.bytes().len();
            if size > MAX_FETCH_RESPONSE_BYTES && !records.is_empty() {
                break;
            }
            records.push(serde_bytes::ByteBuf::from(record.into_bytes()));
        }
    }
    FetchResponse { records }
}

/// The metric label of a decoding failure.
fn decode_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::TooLarge { .. } => "oversize",
        DecodeError::Invalid(_) => "invalid",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_parameters_are_valid_and_graylist_after_about_ten_rejects() {
        let (params, thresholds) = peer_scoring();
        assert_eq!(params.validate(), Ok(()));
        assert_eq!(thresholds.validate(), Ok(()));
        // A fresh peer (score 0) after n rejects in quick succession scores -n².
        let score = |n: f64, credit: f64| credit + INVALID_WEIGHT * n * n;
        assert!(score(9.0, 0.0) >= GRAYLIST_THRESHOLD);
        assert!(score(10.0, 0.0) < GRAYLIST_THRESHOLD);
        assert!(score(11.0, MESH_TIME_CAP) < GRAYLIST_THRESHOLD);
        // One reject is forgiven: no threshold crossed, and it decays to nothing.
        assert!(score(1.0, 0.0) > GOSSIP_THRESHOLD);
        let decay =
            gossipsub::score_parameter_decay_with_base(INVALID_DECAY, SCORE_DECAY_INTERVAL, 0.1);
        let after = decay.powf(INVALID_DECAY.as_secs_f64() / SCORE_DECAY_INTERVAL.as_secs_f64());
        assert!((after - 0.1).abs() < 1e-6, "{after}");
    }

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
