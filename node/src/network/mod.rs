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
//!   `SYNC_REFILL`). The bytes of fetch answers read and not yet written are budgeted per peer
//!   (`RESPONSE_BYTES_PER_PEER`) and in all (`RESPONSE_BYTES_TOTAL`): a request waits in its
//!   queue until its largest answer fits. A request names each record once in its answer.
//!   What is beyond a limit is ignored or refused, never queued without bound; per-peer state
//!   is dropped when the peer is gone and nothing of it is in flight.
//!
//! Connections: the connection policy (`connections`) keeps at most `max_peers` peers connected,
//! inbound included, and closes the excess every few seconds, least useful first (never a
//! bootstrap peer; peers outside the gossip mesh and idle ones first; spread over Kademlia's
//! buckets). A peer it closed is not reconnected for a while, and once at the bound only the
//! policy dials, so Kademlia discovers and routes without holding connections open.
//! `connection_limits`, derived from `max_peers` with a margin, is the hard cap, and an incoming
//! connection beyond it is refused before its handshake.
//!
//! The loop itself is here (`mod.rs`: building the swarm, commands, connection events, and the
//! dispatch of what comes back from work done off the loop); each concern has its own file:
//! `gossip` (announcements and their validation), `catchup` (reconciliation sessions and the
//! fetches that follow), `serve` (answering other peers' fetch requests), `budget` (the bytes
//! those answers may hold), `peers` (per-peer limits and bans), `connections` (which peers stay
//! connected, and the connection limits), `scoring` (gossipsub's peer-score parameters),
//! `reachability` (AutoNAT: whether peers can dial this node) and `relays` (serving circuits,
//! choosing relays when private, hole punching to direct connections).

mod blobs;
mod budget;
mod catchup;
mod connections;
mod gossip;
mod peers;
mod reachability;
mod relays;
mod scoring;
mod serve;
mod unreadable;

use budget::{RESPONSE_BYTES_PER_PEER, RESPONSE_BYTES_TOTAL, ResponseBudget};
pub use catchup::CatchupWidth;
use catchup::{Fetch, SyncSchedule, SyncState};
use peers::{BAN_TICK, PeerLoad};
pub use reachability::Reachability;

use crate::metrics::Metrics;
use crate::store::Store;
use crate::sync::SyncIndex;
use crate::writer::{Origin, Stored, Writer};
use cailloux_protocol::RecordId;
use cailloux_protocol::wire::{
    Announce, BLOB_PROTOCOL, BlobRequest, BlobResponse, FETCH_PROTOCOL, FetchRequest,
    FetchResponse, GOSSIP_TOPIC, KAD_PROTOCOL, SYNC_PROTOCOL, SyncRequest, SyncResponse,
};
use futures::StreamExt;
use libp2p::request_response::{
    self, InboundRequestId, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, autonat, connection_limits, dcutr,
    gossipsub, identify, identity, kad, mdns, noise, ping, relay, tcp, yamux,
};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What the network needs to start.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    pub town: Option<String>,
    /// How often to reconcile with a random peer, besides on every new connection.
    pub sync_interval: Duration,
    /// The most peers kept connected, inbound included.
    pub max_peers: usize,
    /// How often the periodic exchanges run.
    pub chatter: Chatter,
    /// How many catch-up fetches may be in flight.
    pub catchup: CatchupWidth,
    /// Serve relay circuits for nodes behind NAT (`--relay`).
    pub relay: bool,
}

/// How often each periodic exchange runs. `Chatter::default()` is what a node runs; benchmarks
/// change one at a time to measure what each costs (`benches/chatter.rs`).
///
/// A town publishes a few records a week: what runs on a schedule, on every connection, is most
/// of what a connection carries, so each runs as seldom as its purpose allows (libp2p's defaults,
/// made for busier networks, are in brackets; ARCHITECTURE's "Chatter" has the measured costs).
#[derive(Clone, Debug)]
pub struct Chatter {
    /// Ping on every connection [15 s]: only to keep NAT mappings of idle connections alive
    /// (most last 5 minutes or more); nothing here acts on a ping's round trip.
    pub ping: Duration,
    /// Identify again on every connection [5 min]. What identify tells (town, listen addresses,
    /// protocols) is exchanged when a connection opens and pushed when a listen address
    /// changes, so the periodic round only repairs a missed push.
    pub identify: Duration,
    /// Kademlia's routing-table refresh, a bootstrap query [5 min, and Kademlia's own timer did
    /// it too]. Towns come and go over days; a node that joins looks itself up when it connects.
    pub kad_refresh: Duration,
    /// Gossipsub's heartbeat (mesh upkeep, IHAVE gossip) [1 s; it was 700 ms here]. It sends
    /// nothing on a quiet network; a slower one is less work on every node.
    pub heartbeat: Duration,
}

impl Default for Chatter {
    fn default() -> Chatter {
        Chatter {
            ping: Duration::from_secs(120),
            identify: Duration::from_secs(3600),
            kad_refresh: Duration::from_secs(1800),
            heartbeat: Duration::from_secs(1),
        }
    }
}

// Field order is the order in which behaviours may deny a connection: blocked peers and limits
// first.
#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    policy: connections::Policy,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    ping: ping::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    fetch: request_response::cbor::Behaviour<FetchRequest, FetchResponse>,
    blob: request_response::cbor::Behaviour<BlobRequest, BlobResponse>,
    autonat: autonat::v1::Behaviour,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
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
    /// Whether other nodes can reach this one (AutoNAT).
    pub reachability: Reachability,
    /// The addresses others reach this node at, as confirmed: by AutoNAT (a public node), or by
    /// a relay's reservation (`.../p2p-circuit/p2p/<self>`).
    pub external_addrs: Vec<String>,
    /// The relays holding a reservation for this node.
    pub relays: Vec<String>,
    /// Whether this node serves relay circuits (`--relay`).
    pub relay_service: bool,
}

/// One connected peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    /// Whether this node reaches the peer directly or only through a relay.
    pub connection: ConnectionKind,
    pub addresses: Vec<String>,
    pub town: Option<String>,
}

/// How a peer is connected: `direct` when at least one connection goes straight to it,
/// `relayed` when every connection passes through a relay (its address holds `/p2p-circuit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    Direct,
    Relayed,
}

impl ConnectionKind {
    /// The kind of a peer's open connections, by their remote addresses (none: `Direct`, the
    /// peer is being connected).
    pub fn of<'a>(addresses: impl IntoIterator<Item = &'a Multiaddr>) -> ConnectionKind {
        let mut any = false;
        for addr in addresses {
            any = true;
            if !relays::is_relayed(addr) {
                return ConnectionKind::Direct;
            }
        }
        if any {
            ConnectionKind::Relayed
        } else {
            ConnectionKind::Direct
        }
    }
}

enum Command {
    Status(oneshot::Sender<NetStatus>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Ask `peer` for a segment of a file.
    BlobRequest(PeerId, BlobRequest, blobs::BlobReply),
    /// `peer` served something bad (a corrupt file segment): count it like a bad record.
    Strike(PeerId),
    /// Who answers peers' requests for files.
    SetTransfers(crate::blobs::Transfers),
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

    /// Asks `peer` for a segment of a file; the error says why there is no answer.
    pub async fn blob_request(
        &self,
        peer: PeerId,
        request: BlobRequest,
    ) -> Result<BlobResponse, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::BlobRequest(peer, request, tx))
            .await
            .map_err(|_| Stopped.to_string())?;
        rx.await.map_err(|_| Stopped.to_string())?
    }

    /// Counts a bad answer against `peer`, as a bad record is (enough of them ban it).
    pub async fn strike(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Strike(peer)).await;
    }

    /// Hands the loop what answers peers' requests for files (made after the loop, since it
    /// holds a `Client`).
    pub async fn set_transfers(&self, transfers: crate::blobs::Transfers) {
        let _ = self.tx.send(Command::SetTransfers(transfers)).await;
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
/// most FETCHES_SERVED_PER_PEER + 1 + GOSSIP_FETCHES_PER_PEER + `CatchupWidth::per_session`
/// messages in it, whatever it sends, and the connection limits bound the peers that can start
/// work.
enum Internal {
    Respond(
        PeerId,
        InboundRequestId,
        ResponseChannel<FetchResponse>,
        FetchResponse,
    ),
    RespondSync(PeerId, ResponseChannel<SyncResponse>, SyncResponse),
    RespondBlob(
        request_response::InboundRequestId,
        ResponseChannel<BlobResponse>,
        BlobResponse,
    ),
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
    /// This peer announced a record and did not serve it: reconcile with another.
    Missed(PeerId),
}

/// What the loop shares with the tasks it spawns.
#[derive(Clone)]
struct Shared {
    store: Store,
    writer: Writer,
    index: Arc<SyncIndex>,
    metrics: Arc<Metrics>,
    internal: mpsc::UnboundedSender<Internal>,
    /// Records of a later format version than this node reads, not to fetch again.
    unreadable: Arc<unreadable::Unreadable>,
}

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    internal: mpsc::UnboundedReceiver<Internal>,
    shared: Shared,
    topic: gossipsub::IdentTopic,
    towns: HashMap<PeerId, String>,
    /// The path of each open connection, per peer (`relays::path_of`: the remote address, or
    /// the circuit through a relay).
    addresses: HashMap<PeerId, HashMap<libp2p::swarm::ConnectionId, Multiaddr>>,
    fetches: HashMap<OutboundRequestId, Fetch>,
    sync_requests: HashMap<OutboundRequestId, PeerId>,
    sessions: HashMap<PeerId, SyncState>,
    /// Per-peer load; an entry lives while the peer is connected or has work in flight.
    load: HashMap<PeerId, PeerLoad>,
    /// Banned peers and when their ban ends.
    banned: HashMap<PeerId, Instant>,
    /// Bytes of fetch answers read and not yet written, per peer and in all.
    answers: ResponseBudget<InboundRequestId>,
    /// When the next periodic reconciliation is due.
    sync_schedule: SyncSchedule,
    /// When `catch_up_elsewhere` last started a reconciliation.
    last_repair: Option<Instant>,
    chatter: Chatter,
    catchup: CatchupWidth,
    listen_addrs: Vec<Multiaddr>,
    rng: u64,
    /// Dials made from a new port after an "address in use" (`redial_from_a_new_port`): their
    /// failure is final, so a redial is never redialled. An entry lives until its dial ends.
    redials: HashSet<libp2p::swarm::ConnectionId>,
    /// Relays: candidates and the reservations held on them (`relays`).
    relays: relays::Relays,
    /// This node's segment requests in flight, and where their answers go.
    blob_requests: HashMap<OutboundRequestId, blobs::BlobReply>,
    /// Peers' segment requests being answered, per peer, until their answers are sent.
    blobs_served: HashMap<PeerId, usize>,
    /// The requests counted there.
    blobs_serving: HashMap<request_response::InboundRequestId, PeerId>,
    /// Who answers them (none until `Client::set_transfers`: `Busy`).
    transfers: Option<crate::blobs::Transfers>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish()
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
    let relay_on = config.relay;
    let chatter = config.chatter.clone();
    let policy = connections::Policy::new(config, metrics.clone());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(gossip::message_id)
                .max_transmit_size(64 * 1024)
                .heartbeat_interval(chatter.heartbeat)
                // Announcements are 40 bytes and records are fetched once, so a node's share of
                // duplicates is one announcement per mesh peer: a mesh of 4 (gossipsub's default
                // is 6) keeps that small, and catch-up repairs what gossip misses.
                .mesh_n(4)
                .mesh_n_low(3)
                .mesh_n_high(8)
                .mesh_outbound_min(2)
                // Likewise, lazy gossip (IHAVE) goes to 3 peers outside the mesh, not 6 (and not
                // a quarter of the others, gossipsub's `gossip_factor`: 24 IHAVEs per heartbeat
                // with 100 peers), for one heartbeat rather than 3: in a full mesh of 100 nodes
                // IHAVEs cost about the record's size again (4.35x it received per node, 3.28x
                // without them). A node publishes to its mesh rather than to every subscribed
                // peer.
                .gossip_lazy(3)
                .gossip_factor(0.0)
                .history_gossip(1)
                .flood_publish(false)
                .build()?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
            let (params, thresholds) = scoring::peer_scoring();
            gossipsub.with_peer_score(params, thresholds)?;
            let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
            // The loop's own tick refreshes (`kad_refresh`), once there is someone to ask.
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            kad.set_mode(Some(kad::Mode::Server));
            let agent = format!(
                "cailloux/{} town={}",
                env!("CARGO_PKG_VERSION"),
                town.as_deref().unwrap_or("")
            );
            let identify = identify::Behaviour::new(
                identify::Config::new("/cailloux/1".into(), key.public())
                    .with_agent_version(agent)
                    .with_interval(chatter.identify)
                    .with_push_listen_addr_updates(true),
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
            let limits = connections::limits(config.max_peers);
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                policy,
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                kad,
                identify,
                mdns: Toggle::from(mdns),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(chatter.ping)),
                sync: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                    rr.clone(),
                ),
                fetch: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(FETCH_PROTOCOL), ProtocolSupport::Full)],
                    rr.clone(),
                ),
                blob: request_response::Behaviour::with_codec(
                    blobs::blob_codec(),
                    [(StreamProtocol::new(BLOB_PROTOCOL), ProtocolSupport::Full)],
                    rr,
                ),
                autonat: reachability::behaviour(peer_id),
                relay_client,
                relay: Toggle::from(relay_on.then(|| relays::server(peer_id, config.max_peers))),
                dcutr: dcutr::Behaviour::new(peer_id),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();

    let topic = gossipsub::IdentTopic::new(GOSSIP_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    for addr in &config.listen {
        swarm.listen_on(addr.clone())?;
    }
    // The connection policy dials them, at its first tick and whenever they are not connected.
    for addr in &config.bootstrap {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
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
            unreadable: Arc::default(),
        },
        topic,
        towns: HashMap::new(),
        addresses: HashMap::new(),
        fetches: HashMap::new(),
        sync_requests: HashMap::new(),
        sessions: HashMap::new(),
        load: HashMap::new(),
        banned: HashMap::new(),
        answers: ResponseBudget::new(RESPONSE_BYTES_PER_PEER, RESPONSE_BYTES_TOTAL),
        sync_schedule: SyncSchedule::new(config.sync_interval, Instant::now()),
        last_repair: None,
        chatter,
        catchup: config.catchup,
        listen_addrs: Vec::new(),
        rng: u64::from_le_bytes(seed_bytes) | 1,
        redials: HashSet::new(),
        relays: relays::Relays::default(),
        blob_requests: HashMap::new(),
        blobs_served: HashMap::new(),
        blobs_serving: HashMap::new(),
        transfers: None,
    };
    Ok((Client { tx }, event_loop))
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
        let sync_timer = tokio::time::sleep_until(self.sync_schedule.next.into());
        tokio::pin!(sync_timer);
        let mut kad_tick = tokio::time::interval(self.chatter.kad_refresh);
        let mut ban_tick = tokio::time::interval(BAN_TICK);
        ban_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connection_tick = tokio::time::interval(connections::TICK);
        let mut stored = self.shared.writer.subscribe();
        loop {
            tokio::select! {
                event = stored.recv() => match event {
                    Ok(Stored { origin, records }) => {
                        // Records move: reconcile at the base interval again.
                        if !records.is_empty() {
                            self.sync_schedule.active(Instant::now());
                        }
                        if origin == Origin::Local {
                            self.announce(records);
                        }
                    }
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
                () = &mut sync_timer => self.sync_with_random_peer(),
                _ = ban_tick.tick() => self.lift_bans(),
                _ = connection_tick.tick() => self.connection_tick(),
                // Refresh the routing table, once there is someone to ask.
                _ = kad_tick.tick(), if self.swarm.connected_peers().next().is_some() => {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            let next = tokio::time::Instant::from_std(self.sync_schedule.next);
            if sync_timer.deadline() != next {
                sync_timer.as_mut().reset(next);
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
                    reachability: self.reachability(),
                    external_addrs: self
                        .swarm
                        .external_addresses()
                        .map(ToString::to_string)
                        .collect(),
                    relays: self.relays.held().map(ToString::to_string).collect(),
                    relay_service: self.swarm.behaviour().relay.is_enabled(),
                });
            }
            Command::Peers(reply) => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|p| {
                        let open: Vec<&Multiaddr> = self
                            .addresses
                            .get(p)
                            .into_iter()
                            .flat_map(|open| open.values())
                            .collect();
                        let mut addresses: Vec<String> =
                            open.iter().map(ToString::to_string).collect();
                        addresses.sort();
                        addresses.dedup();
                        PeerInfo {
                            peer_id: p.to_string(),
                            connection: ConnectionKind::of(open.iter().copied()),
                            addresses,
                            town: self.towns.get(p).cloned(),
                        }
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::BlobRequest(peer, request, reply) => {
                self.send_blob_request(peer, request, reply)
            }
            Command::Strike(peer) => self.strike(peer, 1),
            Command::SetTransfers(transfers) => self.transfers = Some(transfers),
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
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.on_listener_closed(listener_id, &reason),
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!("reachable from outside at {address}")
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                connection_id,
                ..
            } => {
                self.redials.remove(&connection_id);
                self.relays.connected(peer_id, connection_id, &endpoint);
                self.addresses
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, relays::path_of(&endpoint, peer_id));
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
                connection_id,
                ..
            } => {
                if let Some(open) = self.addresses.get_mut(&peer_id) {
                    open.remove(&connection_id);
                }
                self.relays.closed(peer_id, connection_id, num_established);
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
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                error,
                connection_id,
            } => {
                tracing::debug!("cannot connect to {peer_id:?}: {error}");
                if !self.redials.remove(&connection_id) {
                    self.redial_from_a_new_port(peer_id, &error);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    /// libp2p dials TCP from the listening port (so that peers see one address and NATs can
    /// be punched). When the kernel refuses that port for this destination ("address in use":
    /// a connection between the same two ports is still in TIME_WAIT, as after a restart on a
    /// fixed port, and the kernel will not reuse it), libp2p-tcp does not retry, and the peer
    /// stays unreachable until TIME_WAIT ends. Dial those addresses again, once, from a new
    /// port; a redial that fails is not redialled.
    fn redial_from_a_new_port(&mut self, peer: Option<PeerId>, error: &libp2p::swarm::DialError) {
        let libp2p::swarm::DialError::Transport(attempts) = error else {
            return;
        };
        // The io::Error sits under transport wrappers whose `source()` skips it; its Debug
        // form names the kind whatever the locale.
        let refused: Vec<Multiaddr> = attempts
            .iter()
            .filter(|(_, e)| format!("{e:?}").contains("kind: AddrInUse"))
            .map(|(addr, _)| addr.clone())
            .collect();
        if refused.is_empty() {
            return;
        }
        tracing::debug!(
            "the listening port is taken for {peer:?} at {refused:?} (TIME_WAIT): dialling from a new port"
        );
        let opts = match peer {
            Some(peer) => libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(refused)
                .allocate_new_port()
                .build(),
            None => match refused.into_iter().next() {
                Some(addr) => libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                    .address(addr)
                    .allocate_new_port()
                    .build(),
                None => return,
            },
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.redials.insert(id);
            }
            Err(e) => tracing::debug!("cannot dial again from a new port: {e}"),
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
                self.relays
                    .identified(peer_id, info.protocols.contains(&relay::HOP_PROTOCOL_NAME));
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
            BehaviourEvent::Blob(event) => self.on_blob_event(event),
            BehaviourEvent::Autonat(event) => self.on_autonat_event(event),
            BehaviourEvent::RelayClient(event) => self.on_relay_client_event(event),
            BehaviourEvent::Relay(event) => self.on_relay_server_event(event),
            BehaviourEvent::Dcutr(event) => self.on_dcutr_event(event),
            _ => {}
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond(peer, request_id, channel, response) => {
                self.respond(peer, request_id, channel, response)
            }
            Internal::RespondBlob(request_id, channel, response) => {
                self.respond_blob(request_id, channel, response)
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
            Internal::Missed(peer) => self.catch_up_elsewhere(peer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionKind;
    use libp2p::Multiaddr;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_peer_is_relayed_only_when_every_connection_goes_through_a_circuit() {
        let relay =
            "/ip4/203.0.113.10/tcp/4747/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let relayed = addr(&format!("{relay}/p2p-circuit"));
        let direct = addr("/ip4/203.0.113.1/tcp/4747");
        assert_eq!(ConnectionKind::of([&relayed]), ConnectionKind::Relayed);
        assert_eq!(
            ConnectionKind::of([&relayed, &direct]),
            ConnectionKind::Direct
        );
        assert_eq!(ConnectionKind::of([&direct]), ConnectionKind::Direct);
        assert_eq!(ConnectionKind::of([]), ConnectionKind::Direct);
        assert_eq!(
            serde_json::to_value(ConnectionKind::Relayed).ok(),
            Some(serde_json::json!("relayed"))
        );
    }
}
