//! The libp2p side of a node. One task, the `EventLoop`, owns the `Swarm`; everything else
//! talks to it through a cloneable `Client` whose commands carry a oneshot for the answer.
//!
//! How records move:
//! - **Gossip.** A new record is announced on the gossipsub topic as a 32-byte `Announce`
//!   (message id = record id, so duplicates die at once). A node that receives an announcement
//!   of a record it lacks fetches the record from the peer that sent it, decodes, size-checks,
//!   schema-checks and verifies it, stores it, and only then reports the message `Accept`, which
//!   lets gossipsub forward the announcement. A bad record is reported `Reject` with its reason;
//!   an announcement of a record already held is `Ignore`d. Each node thus receives each record's
//!   bytes once.
//! - **Catch-up.** When a connection opens, and periodically with a random peer, the node runs a
//!   negentropy reconciliation (`/cailloux/sync/1`) over its index of (created_at, id), then
//!   fetches what it lacks (`/cailloux/fetch/1`) in batches, several in flight, and verifies and
//!   stores each batch like gossip. Each side pulls what it lacks; nothing is pushed unasked.
//!
//! CPU-heavy or blocking work (verification, store reads, reconciliation on big sets) runs on
//! blocking threads; results come back to the loop as `Internal` messages. Stores go through the
//! single `Writer`.

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
    Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identify, identity, kad, mdns, noise,
    ping, tcp, yamux,
};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Fetch requests in flight per catch-up session.
const FETCHES_IN_FLIGHT: usize = 4;

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

#[derive(NetworkBehaviour)]
struct Behaviour {
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
enum Internal {
    Respond(ResponseChannel<FetchResponse>, FetchResponse),
    RespondSync(ResponseChannel<SyncResponse>, SyncResponse),
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
    },
    /// Reconcile with this peer (a record it sent waits for another).
    CatchUp(PeerId),
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
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
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
            Ok(Behaviour {
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
        sync_interval: config.sync_interval,
        listen_addrs: Vec::new(),
        rng: u64::from_le_bytes(seed_bytes) | 1,
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
        let mut sync_tick = tokio::time::interval(self.sync_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kad_tick = tokio::time::interval(Duration::from_secs(300));
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
    }

    // --- fetching -----------------------------------------------------------------------

    fn on_fetch_event(&mut self, event: request_response::Event<FetchRequest, FetchResponse>) {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let response = read_records(&shared.store, &request.ids);
                    let _ = shared.internal.send(Internal::Respond(channel, response));
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
                            tracing::warn!(
                                "{source} announced record {}, refused: {message}",
                                id.short()
                            );
                            shared.metrics.reject(reason);
                            gossipsub::MessageAcceptance::Reject
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
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match respond(shared.index.snapshot(), &request.message) {
                        Ok(reply) => SyncResponse::Reply(reply),
                        Err(e) => SyncResponse::Refused(e),
                    };
                    let _ = shared
                        .internal
                        .send(Internal::RespondSync(channel, response));
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
                    for bytes in response.records {
                        metrics.received.get_or_create(&Via { via: "sync" }).inc();
                        match Unverified::decode_with(bytes.into_vec(), &mut keys) {
                            Ok(u) => candidates.push(u),
                            Err(e) => metrics.reject(decode_reason(&e)),
                        }
                    }
                    let mut good = Vec::with_capacity(candidates.len());
                    for result in verify_all(candidates) {
                        match result {
                            Ok(record) => good.push(record),
                            Err(_) => metrics.reject("bad_signature"),
                        }
                    }
                    good
                }
            })
            .await
            .unwrap_or_default();
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
            });
        });
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond(channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .fetch
                    .send_response(channel, response);
            }
            Internal::RespondSync(channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Internal::Validated {
                message_id,
                source,
                acceptance,
            } => self.report(&message_id, &source, acceptance),
            Internal::Fetched {
                peer,
                missing,
                stored: new,
                pending: waiting,
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
