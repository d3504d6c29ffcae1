//! Gossipsub's peer scoring: the score parameters of the records topic and its thresholds, with
//! the reasoning behind each constant.

use cailloux_protocol::wire::GOSSIP_TOPIC;
use libp2p::gossipsub;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

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
pub(super) const SCORE_DECAY_INTERVAL: Duration = Duration::from_secs(1);
/// P4 weight: each invalid announcement counts, and the penalty is the count squared.
pub(super) const INVALID_WEIGHT: f64 = -1.0;
/// P4 decay: the invalid count falls to a tenth within this time.
pub(super) const INVALID_DECAY: Duration = Duration::from_secs(5 * 60);
/// P1: one point per minute in the mesh, up to ten.
pub(super) const MESH_TIME_QUANTUM: Duration = Duration::from_secs(60);
pub(super) const MESH_TIME_CAP: f64 = 10.0;
/// Below this, no IHAVE/IWANT with the peer (4 rejects).
pub(super) const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this, nothing is published to the peer (7 rejects).
pub(super) const PUBLISH_THRESHOLD: f64 = -40.0;
/// Below this, gossipsub drops everything the peer sends, and the node bans it (10 rejects).
pub(super) const GRAYLIST_THRESHOLD: f64 = -90.0;
/// Peer exchange on PRUNE is accepted only from peers above this: out of reach (scores stop at
/// MESH_TIME_CAP), as discovery is Kademlia's job and PX lists are a way to steer a node.
pub(super) const ACCEPT_PX_THRESHOLD: f64 = 100.0;
/// When the median mesh score falls below this (mesh peers newer than 3 minutes), gossipsub
/// grafts better-scoring peers.
pub(super) const OPPORTUNISTIC_GRAFT_THRESHOLD: f64 = 3.0;
/// P7 (broken IWANT promises, GRAFT during backoff): six offences are free, the rest cost their
/// square, and the count falls to a tenth within a minute.
pub(super) const BEHAVIOUR_PENALTY_WEIGHT: f64 = -1.0;
pub(super) const BEHAVIOUR_PENALTY_THRESHOLD: f64 = 6.0;
pub(super) const BEHAVIOUR_PENALTY_DECAY: Duration = Duration::from_secs(60);
/// A disconnected peer's counters are kept (not decayed) this long, so that a banned peer comes
/// back graylisted rather than with a clean slate.
pub(super) const RETAIN_SCORE: Duration = Duration::from_secs(60 * 60);

/// Gossipsub's peer scoring: the score parameters of the records topic and the thresholds (see
/// the constants for the reasoning).
pub(super) fn peer_scoring() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
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
}
