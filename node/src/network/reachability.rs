//! Whether this node can be reached from outside: AutoNAT, and the external addresses it
//! confirms.
//!
//! Most town halls sit behind a NAT router and a firewall. A node learns which it is by asking
//! the peers it is connected to (AutoNAT servers: every node is one) to dial it back at the
//! addresses it listens on and at those its peers observe it at; a server dials back only the
//! IP address it sees the request come from, so nobody can turn it against a third party.
//! - `public`: a dial-back succeeded. The address it reached is confirmed as external: identify
//!   advertises it, Kademlia hands it out, and a relay (`--relay`) serves circuits on it.
//! - `private`: dial-backs fail (a NAT, a firewall). The node then reserves a slot on relays
//!   (`relays`) so that others can reach it through them, and hole punching (DCUtR) turns those
//!   relayed connections into direct ones where the NATs allow.
//! - `unknown`: no answer yet (no peer to ask, or the first probe is still to come).
//!
//! Which AutoNAT: **v1** (`libp2p::autonat::v1`). v2 (libp2p-autonat 0.16) tests each address
//! candidate once per run: a failed candidate is never tried again and a confirmed one never
//! expires, and its candidates grow with every address a peer observes (a port-randomising NAT
//! shows a new port on every connection). For a service that runs for months on a network whose
//! NAT can change, v1's model fits: it probes again every `retry_interval` until it is sure
//! (three agreeing answers), then every `refresh_interval`, and flips its status when answers
//! change. v1 never withdraws an address it confirmed, so this module does when the status
//! leaves `public`. `only_global_ips` is off: towns on one LAN, and the test bed's documentation
//! ranges, are not global addresses, and the dial-back goes to the requester's own IP anyway.

use super::EventLoop;
use crate::metrics::Metrics;
use libp2p::autonat::v1 as autonat;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use std::time::Duration;

/// Whether the node can be reached from outside, as `status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    Public,
    Private,
    Unknown,
}

impl Reachability {
    fn of(status: &autonat::NatStatus) -> Reachability {
        match status {
            autonat::NatStatus::Public(_) => Reachability::Public,
            autonat::NatStatus::Private => Reachability::Private,
            autonat::NatStatus::Unknown => Reachability::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Public => "public",
            Reachability::Private => "private",
            Reachability::Unknown => "unknown",
        }
    }
}

/// The AutoNAT behaviour (client and server) of a node.
pub(super) fn behaviour(peer_id: PeerId) -> autonat::Behaviour {
    autonat::Behaviour::new(
        peer_id,
        autonat::Config {
            // The first probe, once the bootstrap peers are connected [15 s].
            boot_delay: Duration::from_secs(10),
            only_global_ips: false,
            // As a server, dial back at most 10 probes per 10 s in all and 1 per peer [30 and 3
            // per second]: a probe is one peer checking itself every 90 s at most.
            throttle_clients_period: Duration::from_secs(10),
            throttle_clients_global_max: 10,
            throttle_clients_peer_max: 1,
            ..autonat::Config::default()
        },
    )
}

impl EventLoop {
    /// The node's reachability, from AutoNAT's current status.
    pub(super) fn reachability(&self) -> Reachability {
        Reachability::of(&self.swarm.behaviour().autonat.nat_status())
    }

    pub(super) fn on_autonat_event(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { old, new } = event else {
            return;
        };
        let now = Reachability::of(&new);
        match &new {
            autonat::NatStatus::Public(addr) => {
                tracing::info!("reachability: public, at {addr}")
            }
            autonat::NatStatus::Private => tracing::info!(
                "reachability: private (peers cannot dial this node back: a NAT or a firewall); \
                 reaching others through relays"
            ),
            autonat::NatStatus::Unknown => tracing::info!("reachability: unknown"),
        }
        Metrics::count(&self.shared.metrics.reachability_changes, now.as_str());
        if let autonat::NatStatus::Public(addr) = &old
            && !matches!(&new, autonat::NatStatus::Public(a) if a == addr)
        {
            self.withdraw_external(addr);
        }
        self.relay_tick();
    }

    /// AutoNAT confirmed `addr` once; it no longer holds.
    fn withdraw_external(&mut self, addr: &Multiaddr) {
        tracing::info!("{addr} is no longer reachable from outside: no longer advertised");
        self.swarm.remove_external_address(addr);
    }
}
