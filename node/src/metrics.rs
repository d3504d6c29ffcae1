//! The node's Prometheus metrics, served at `/metrics`: what records came in and by which path,
//! what was refused and why, what was published, how catch-up went, how many peers, which were
//! banned and why, what the connection policy closed, dialled and denied, what the HTTP
//! addresses refused or cut and why, how much signature checking submissions cost, and how the
//! node stands behind NATs (reachability changes, hole punches, relay reservations and circuits).
//! libp2p's own bandwidth metrics (by transport: a `p2p-circuit` in the label is relayed
//! traffic) are registered in the same registry by the swarm builder.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Via {
    /// `gossip`, `sync`, `publish` or `import`.
    pub via: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// `bad_signature`, `malformed`, `oversize`, `invalid`, `wrong_id`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BanReason {
    /// `gossip_score` (its gossipsub score fell below the graylist threshold) or `bad_records`
    /// (it served too many bad records during catch-up).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpReason {
    /// Refusals: `connections`, `connections_per_address` (at accept), `busy`,
    /// `busy_per_address` (shed),
    /// `too_slow` (request deadline), `body_too_large`, `exports`, `exports_per_address`.
    /// Closings: `header_timeout`, `idle`, `drain` (cut at the end of a stop's drain).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionReason {
    /// Closed by the connection policy, by what the peer was: `idle` (outside the gossip mesh,
    /// nothing in flight), `busy` (outside the mesh, work in flight), `mesh`. Denied:
    /// `inbound_full` (refused before its handshake, the node holding its hard cap),
    /// `cooldown` (a peer the policy closed recently), `dial_at_bound` (a dial the policy did
    /// not make, the node holding `max_peers`). Dialled: `bootstrap`, `diversity`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// Reachability changes: the new state, `public`, `private` or `unknown`. Hole punches:
    /// `direct` or `failed`. Relay reservations and circuits served: `accepted` or `denied`.
    pub outcome: &'static str,
}

/// Counters shared by every task of the node.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: Family<Via, Counter>,
    pub accepted: Family<Via, Counter>,
    pub rejected: Family<Reason, Counter>,
    pub duplicates: Counter,
    pub published: Counter,
    /// Attached files fetched from peers (verified and cached).
    pub blobs_fetched: Counter,
    pub sync_rounds: Counter,
    pub sync_records_fetched: Counter,
    pub sync_bytes_fetched: Counter,
    pub peers: Gauge,
    pub banned: Family<BanReason, Counter>,
    /// Connections the connection policy closed, dials it made and connections it denied.
    pub connections_closed: Family<ConnectionReason, Counter>,
    pub connections_dialled: Family<ConnectionReason, Counter>,
    pub connections_denied: Family<ConnectionReason, Counter>,
    /// Connections or requests an HTTP address refused, by reason.
    pub http_refused: Family<HttpReason, Counter>,
    /// Connections an HTTP address closed on its own, by reason.
    pub http_closed: Family<HttpReason, Counter>,
    /// Signatures checked for `/api/v1/submit`.
    pub submit_verified: Counter,
    /// Submitted records the store already held: answered without checking them again.
    pub submit_held: Counter,
    /// Changes of reachability (AutoNAT), by the new state.
    pub reachability_changes: Family<Outcome, Counter>,
    /// Hole punches (DCUtR) of relayed connections, by outcome.
    pub hole_punches: Family<Outcome, Counter>,
    /// Reservations held by this node on relays.
    pub relay_reservations_held: Gauge,
    /// What this node, as a relay (`--relay`), was asked: reservations and circuits, by outcome.
    pub relay_reservations_served: Family<Outcome, Counter>,
    pub relay_circuits_served: Family<Outcome, Counter>,
}

impl Metrics {
    /// Registers every metric under the `cailloux` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("cailloux");
        r.register(
            "records_received",
            "Records received from peers, by path",
            self.received.clone(),
        );
        r.register(
            "records_accepted",
            "Records verified and stored, by path",
            self.accepted.clone(),
        );
        r.register(
            "records_rejected",
            "Records refused at validation, by reason",
            self.rejected.clone(),
        );
        r.register(
            "records_duplicate",
            "Announcements of records already held",
            self.duplicates.clone(),
        );
        r.register(
            "blobs_fetched",
            "Attached files fetched from peers, verified and cached",
            self.blobs_fetched.clone(),
        );
        r.register(
            "records_published",
            "Records published on this node",
            self.published.clone(),
        );
        r.register(
            "sync_rounds",
            "Reconciliation sessions completed",
            self.sync_rounds.clone(),
        );
        r.register(
            "sync_records_fetched",
            "Records fetched by catch-up",
            self.sync_records_fetched.clone(),
        );
        r.register(
            "sync_bytes_fetched",
            "Record bytes fetched by catch-up",
            self.sync_bytes_fetched.clone(),
        );
        r.register("peers", "Connected peers", self.peers.clone());
        r.register(
            "peers_banned",
            "Peers disconnected and blocked for a while, by reason",
            self.banned.clone(),
        );
        r.register(
            "connections_closed",
            "Connections the connection policy closed (above max_peers), by what the peer was",
            self.connections_closed.clone(),
        );
        r.register(
            "connections_dialled",
            "Dials the connection policy made, by reason",
            self.connections_dialled.clone(),
        );
        r.register(
            "connections_denied",
            "Connections and dials the connection policy denied, by reason",
            self.connections_denied.clone(),
        );
        r.register(
            "http_refused",
            "HTTP connections and requests refused, by reason",
            self.http_refused.clone(),
        );
        r.register(
            "http_closed",
            "HTTP connections the node closed on its own, by reason",
            self.http_closed.clone(),
        );
        r.register(
            "submit_verified",
            "Signatures checked for submissions",
            self.submit_verified.clone(),
        );
        r.register(
            "submit_held",
            "Submitted records already held, answered without checking them again",
            self.submit_held.clone(),
        );
        r.register(
            "reachability_changes",
            "Changes of this node's reachability from outside (AutoNAT), by the new state",
            self.reachability_changes.clone(),
        );
        r.register(
            "hole_punches",
            "Attempts to turn a relayed connection into a direct one (DCUtR), by outcome",
            self.hole_punches.clone(),
        );
        r.register(
            "relay_reservations_held",
            "Reservations this node holds on relays (a node that cannot be reached from outside)",
            self.relay_reservations_held.clone(),
        );
        r.register(
            "relay_reservations_served",
            "Reservation requests this relay answered, by outcome",
            self.relay_reservations_served.clone(),
        );
        r.register(
            "relay_circuits_served",
            "Circuit requests this relay answered, by outcome",
            self.relay_circuits_served.clone(),
        );
    }

    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&Reason { reason }).inc();
    }

    pub fn http_refuse(&self, reason: &'static str) {
        self.http_refused
            .get_or_create(&HttpReason { reason })
            .inc();
    }

    pub fn http_close(&self, reason: &'static str) {
        self.http_closed.get_or_create(&HttpReason { reason }).inc();
    }

    pub fn ban(&self, reason: &'static str) {
        self.banned.get_or_create(&BanReason { reason }).inc();
    }

    /// Counts one event of `family` with this outcome.
    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }
}
