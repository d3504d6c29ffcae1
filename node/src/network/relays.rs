//! Relays (circuit relay v2): serving circuits for towns behind NAT, and finding relays when this
//! node is one of them. Hole punching (DCUtR) then upgrades relayed connections where it can.
//!
//! **Serving** (`--relay`, `relay = true`): a public node lets private ones reserve a slot on it
//! and relays connections to them. libp2p's default circuit (2 minutes, 128 KiB) would cut a
//! catch-up short, and a circuit here carries a whole connection (gossip, reconciliation,
//! fetches) for as long as no direct path is found, so the limits (`server`) are sized for that:
//! a circuit lasts up to `CIRCUIT_DURATION` (1 h) and carries up to `CIRCUIT_BYTES` (64 MiB,
//! a corpus of about 15,000 records), after which the two peers simply connect through the
//! relay again. What one peer may take is bounded: `RESERVATIONS_PER_PEER` reservations,
//! `CIRCUITS_PER_PEER` circuits as source or destination, and libp2p's rate limits (a new
//! reservation or circuit per peer every 2 minutes after a burst of 30, per IP every minute
//! after 60). In all, `CIRCUITS` circuits at once, so at most `CIRCUITS * CIRCUIT_BYTES` (1 GiB)
//! per `CIRCUIT_DURATION`; reservations are bounded by half of `max_peers` (a client must stay
//! connected to hold one, and the connection policy never closes a peer holding a
//! reservation here, so the other half stays for ordinary peers). A relay advertises the hop
//! protocol only once AutoNAT has confirmed an external address (a reservation's answer must
//! carry one), so a relay behind NAT never offers what it cannot give.
//!
//! **Finding relays** (libp2p has no relay selection): while the node's reachability is
//! `private`, `relay_tick` (run with the connection policy's tick, and whenever reachability or
//! a reservation changes) keeps reservations on `WANTED` relays, chosen among connected peers
//! that advertise the hop protocol (identify), bootstrap peers first, reached at the address
//! this node dialled them at. A relay holding a reservation is kept connected by the policy. The
//! client renews a reservation itself before it expires; when one ends (the relay went away,
//! or refused), that relay waits `RETRY_AFTER` and another is taken. Once reachability is
//! `public`, reservations are released. Each accepted reservation confirms the relayed address
//! (`/…/p2p/<relay>/p2p-circuit/p2p/<self>`) as external and starts a Kademlia lookup of this
//! node, so that peers learn the address soon rather than at the next half-hourly refresh.
//!
//! **Direct over relayed**: DCUtR tries a hole punch on every relayed connection (both sides
//! dial each other at once from their listening ports, which a port-preserving NAT lets
//! through and a port-randomising one does not). Once a peer is connected directly, its relayed
//! connections are closed at the next tick, so the relay carries only what cannot go direct.

use super::EventLoop;
use crate::metrics::Metrics;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, dcutr, relay};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a relayed circuit may last, and how many bytes it may carry (both directions).
pub const CIRCUIT_DURATION: Duration = Duration::from_secs(60 * 60);
pub const CIRCUIT_BYTES: u64 = 64 << 20;
/// Circuits a relay serves at once, and per peer.
pub const CIRCUITS: usize = 16;
pub const CIRCUITS_PER_PEER: usize = 4;
/// Reservations one peer may hold on a relay (a renewal replaces the previous one).
pub const RESERVATIONS_PER_PEER: usize = 2;
/// Relays a private node keeps a reservation on.
const WANTED: usize = 2;
/// How long a relay whose reservation ended waits before it is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Whether an address goes through a relay.
pub(super) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The path of a connection to `peer`: the remote address of a direct one; for a relayed one,
/// the circuit (`<relay address>/p2p/<relay>/p2p-circuit/p2p/<peer>`), which for a connection
/// accepted through a relay is this node's relayed listen address (libp2p gives such a
/// connection the remote address `/p2p/<peer>`, which names no relay).
pub(super) fn path_of(endpoint: &ConnectedPoint, peer: PeerId) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr) => {
            let mut path = local_addr.clone();
            if !matches!(path.iter().last(), Some(Protocol::P2p(_))) {
                path.push(Protocol::P2p(peer));
            }
            path
        }
        other => other.get_remote_address().clone(),
    }
}

/// The relay behaviour of a node that serves circuits (`--relay`).
pub(super) fn server(peer_id: PeerId, max_peers: usize) -> relay::Behaviour {
    let config = relay::Config {
        max_reservations: (max_peers / 2).max(1),
        max_reservations_per_peer: RESERVATIONS_PER_PEER,
        max_circuits: CIRCUITS,
        max_circuits_per_peer: CIRCUITS_PER_PEER,
        max_circuit_duration: CIRCUIT_DURATION,
        max_circuit_bytes: CIRCUIT_BYTES,
        ..relay::Config::default()
    };
    relay::Behaviour::new(peer_id, config)
}

/// A connected peer that serves relay circuits.
#[derive(Debug)]
struct Candidate {
    /// The address this node dialled it at (a relay must be reached directly).
    addr: Option<Multiaddr>,
}

/// A reservation asked for or held.
#[derive(Debug)]
struct Reservation {
    listener: ListenerId,
    accepted: bool,
}

/// The relay-client side: candidates, reservations, relays waiting to be asked again.
#[derive(Debug, Default)]
pub(super) struct Relays {
    candidates: HashMap<PeerId, Candidate>,
    /// The direct address each connected peer was dialled at (outbound connections only).
    dialled: HashMap<PeerId, HashMap<ConnectionId, Multiaddr>>,
    reservations: HashMap<PeerId, Reservation>,
    retry: HashMap<PeerId, Instant>,
}

impl Relays {
    /// The relays this node holds an accepted reservation on.
    pub(super) fn held(&self) -> impl Iterator<Item = &PeerId> {
        self.reservations
            .iter()
            .filter(|(_, r)| r.accepted)
            .map(|(p, _)| p)
    }

    /// Relays the connection policy must keep: those reserved or being asked.
    pub(super) fn kept(&self) -> impl Iterator<Item = &PeerId> {
        self.reservations.keys()
    }

    pub(super) fn connected(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        if let ConnectedPoint::Dialer { address, .. } = endpoint
            && !endpoint.is_relayed()
        {
            self.dialled
                .entry(peer)
                .or_default()
                .insert(id, address.clone());
            if let Some(c) = self.candidates.get_mut(&peer) {
                c.addr.get_or_insert_with(|| address.clone());
            }
        }
    }

    pub(super) fn closed(&mut self, peer: PeerId, id: ConnectionId, remaining: u32) {
        if let Some(d) = self.dialled.get_mut(&peer) {
            d.remove(&id);
        }
        if remaining == 0 {
            self.dialled.remove(&peer);
            self.candidates.remove(&peer);
        }
    }

    /// What identify said of a peer's protocols.
    pub(super) fn identified(&mut self, peer: PeerId, serves_hop: bool) {
        if !serves_hop {
            self.candidates.remove(&peer);
            return;
        }
        let addr = self
            .dialled
            .get(&peer)
            .and_then(|d| d.values().next().cloned());
        self.candidates
            .entry(peer)
            .and_modify(|c| {
                if c.addr.is_none() {
                    c.addr.clone_from(&addr);
                }
            })
            .or_insert(Candidate { addr });
    }

    /// Relays to ask now, best first: reachable ones not reserved nor waiting, bootstrap peers
    /// first, then by peer id (stable).
    fn choose(
        &self,
        bootstrap: &dyn Fn(&PeerId) -> bool,
        now: Instant,
    ) -> Vec<(PeerId, Multiaddr)> {
        let want = WANTED.saturating_sub(self.reservations.len());
        let mut chosen: Vec<(bool, PeerId, Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(p, _)| !self.reservations.contains_key(p))
            .filter(|(p, _)| self.retry.get(p).is_none_or(|at| *at <= now))
            .filter_map(|(p, c)| c.addr.clone().map(|a| (!bootstrap(p), *p, a)))
            .collect();
        chosen.sort_by_key(|c| (c.0, c.1));
        chosen
            .into_iter()
            .take(want)
            .map(|(_, p, a)| (p, a))
            .collect()
    }
}

impl EventLoop {
    /// Keeps reservations on relays while the node is private, releases them once it is public.
    pub(super) fn relay_tick(&mut self) {
        let now = Instant::now();
        self.relays.retry.retain(|_, at| *at > now);
        match self.reachability() {
            super::Reachability::Public => {
                for (relay, r) in std::mem::take(&mut self.relays.reservations) {
                    tracing::info!(
                        "reachable from outside: releasing the reservation on relay {relay}"
                    );
                    self.swarm.remove_listener(r.listener);
                }
            }
            super::Reachability::Unknown => {}
            super::Reachability::Private => {
                let policy = &self.swarm.behaviour().policy;
                let chosen = self.relays.choose(&|p| policy.is_bootstrap(p), now);
                for (relay, mut addr) in chosen {
                    // A dialled address may end in the relay's id already (bootstrap addresses).
                    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                        addr.pop();
                    }
                    let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
                    match self.swarm.listen_on(circuit.clone()) {
                        Ok(listener) => {
                            tracing::info!("asking relay {relay} for a reservation ({circuit})");
                            self.relays.reservations.insert(
                                relay,
                                Reservation {
                                    listener,
                                    accepted: false,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!("cannot ask relay {relay} for a reservation: {e:?}");
                            self.relays.retry.insert(relay, now + RETRY_AFTER);
                        }
                    }
                }
            }
        }
        self.sync_kept_relays();
    }

    /// Tells the connection policy which relays to keep, and the metric how many are held.
    fn sync_kept_relays(&mut self) {
        let kept = self.relays.kept().copied().collect();
        self.swarm.behaviour_mut().policy.set_relays(kept);
        self.shared
            .metrics
            .relay_reservations_held
            .set(self.relays.held().count() as i64);
    }

    /// A listener closed: if it was a relay reservation, that relay waits and another is taken.
    pub(super) fn on_listener_closed(
        &mut self,
        listener: ListenerId,
        reason: &Result<(), std::io::Error>,
    ) {
        let Some(relay) = self
            .relays
            .reservations
            .iter()
            .find(|(_, r)| r.listener == listener)
            .map(|(p, _)| *p)
        else {
            return;
        };
        self.relays.reservations.remove(&relay);
        match reason {
            Ok(()) => tracing::info!("the reservation on relay {relay} ended"),
            Err(e) => tracing::warn!("the reservation on relay {relay} ended: {e}"),
        }
        self.relays
            .retry
            .insert(relay, Instant::now() + RETRY_AFTER);
        self.relay_tick();
    }

    pub(super) fn on_relay_client_event(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if let Some(r) = self.relays.reservations.get_mut(&relay_peer_id) {
                    r.accepted = true;
                }
                if !renewal {
                    tracing::info!(
                        "relay {relay_peer_id} holds a reservation for this node: others reach it through the relay"
                    );
                    // Peers learn the relayed address from Kademlia: look this node up now.
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                self.sync_kept_relays();
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::debug!("circuit through relay {relay_peer_id} established")
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::debug!("{src_peer_id} connected through a relay")
            }
        }
    }

    /// What this node, as a relay, was asked.
    pub(super) fn on_relay_server_event(&mut self, event: relay::Event) {
        let metrics = &self.shared.metrics;
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                Metrics::count(&metrics.relay_reservations_served, "accepted");
                self.swarm
                    .behaviour_mut()
                    .policy
                    .reserved_here(src_peer_id, true);
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                Metrics::count(&metrics.relay_reservations_served, "denied");
                tracing::info!("reservation of {src_peer_id} refused: {status:?}");
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.swarm
                    .behaviour_mut()
                    .policy
                    .reserved_here(src_peer_id, false);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                Metrics::count(&metrics.relay_circuits_served, "accepted");
                tracing::debug!("relaying {src_peer_id} to {dst_peer_id}");
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                Metrics::count(&metrics.relay_circuits_served, "denied");
                tracing::info!("circuit from {src_peer_id} to {dst_peer_id} refused: {status:?}");
            }
            relay::Event::StatusChanged { status } => {
                tracing::info!("relay service: {status:?}")
            }
            _ => {}
        }
    }

    pub(super) fn on_dcutr_event(&mut self, event: dcutr::Event) {
        let metrics = &self.shared.metrics;
        match event.result {
            Ok(_) => {
                Metrics::count(&metrics.hole_punches, "direct");
                tracing::info!(
                    "hole punched: connected directly to {}",
                    event.remote_peer_id
                );
            }
            Err(e) => {
                Metrics::count(&metrics.hole_punches, "failed");
                tracing::info!(
                    "no direct connection to {} ({e}): staying relayed",
                    event.remote_peer_id
                );
            }
        }
    }

    /// Closes relayed connections to peers that are also connected directly.
    pub(super) fn close_relayed_where_direct(&mut self) {
        let mut close = Vec::new();
        for open in self.addresses.values() {
            if open.values().any(|a| !is_relayed(a)) {
                close.extend(
                    open.iter()
                        .filter(|(_, a)| is_relayed(a))
                        .map(|(id, _)| *id),
                );
            }
        }
        for id in close {
            tracing::debug!("closing a relayed connection: a direct one is open");
            self.swarm.close_connection(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn relays_are_chosen_bootstrap_first_among_reachable_ones_not_waiting() {
        let mut relays = Relays::default();
        let ids: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let at = addr("/ip4/203.0.113.10/tcp/4747");
        for (i, p) in ids.iter().enumerate() {
            // The last was never dialled: no address to reach it at.
            if i < 3 {
                let dialer = ConnectedPoint::Dialer {
                    address: at.clone(),
                    role_override: Endpoint::Dialer,
                    port_use: PortUse::Reuse,
                };
                relays.connected(*p, ConnectionId::new_unchecked(i), &dialer);
            }
            relays.identified(*p, true);
        }
        let now = Instant::now();
        let bootstrap = ids[2];
        let chosen: Vec<PeerId> = relays
            .choose(&|p| *p == bootstrap, now)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(chosen.len(), WANTED);
        assert_eq!(chosen[0], bootstrap);
        assert!(!chosen.contains(&ids[3]), "an unreachable relay was chosen");
        // One waits after its reservation ended; one stops serving; one leaves.
        relays.retry.insert(ids[0], now + RETRY_AFTER);
        relays.identified(ids[1], false);
        relays.closed(ids[2], ConnectionId::new_unchecked(2), 0);
        assert!(relays.choose(&|_| false, now).is_empty());
        assert_eq!(relays.choose(&|_| false, now + RETRY_AFTER).len(), 1);
    }

    #[test]
    fn a_connection_accepted_through_a_relay_is_named_by_its_circuit() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        let inbound = ConnectedPoint::Listener {
            local_addr: addr(&format!(
                "/ip4/203.0.113.10/tcp/4747/p2p/{relay}/p2p-circuit"
            )),
            send_back_addr: addr(&format!("/p2p/{peer}")),
        };
        let path = path_of(&inbound, peer);
        assert!(is_relayed(&path), "{path}");
        assert_eq!(
            path,
            addr(&format!(
                "/ip4/203.0.113.10/tcp/4747/p2p/{relay}/p2p-circuit/p2p/{peer}"
            ))
        );
        let direct = ConnectedPoint::Listener {
            local_addr: addr("/ip4/0.0.0.0/tcp/4747"),
            send_back_addr: addr("/ip4/203.0.113.2/tcp/50000"),
        };
        assert_eq!(path_of(&direct, peer), addr("/ip4/203.0.113.2/tcp/50000"));
        let dialled = ConnectedPoint::Dialer {
            address: addr(&format!(
                "/ip4/203.0.113.10/tcp/4747/p2p/{relay}/p2p-circuit/p2p/{peer}"
            )),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        assert!(is_relayed(&path_of(&dialled, peer)));
    }
}
