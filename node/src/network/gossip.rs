//! Gossip: announcements of records by id. An announcement of a record this node lacks is
//! fetched from its sender, checked and written to the store (readable; the flush follows)
//! before gossipsub may forward it.

use super::peers::GOSSIP_FETCHES_PER_PEER;
use super::peers::PeerLoad;
use super::scoring::GRAYLIST_THRESHOLD;
use super::serve::decode_reason;
use super::{EventLoop, Fetch, Internal};
use crate::metrics::Via;
use crate::store::Outcome;
use crate::writer::Origin;
use cailloux_protocol::trust::Denied;
use cailloux_protocol::wire::{Announce, FetchRequest, FetchResponse};
use cailloux_protocol::{RecordId, Unverified};
use libp2p::{PeerId, gossipsub};
use std::time::Instant;

/// The record id an announcement names; for anything else, a hash of the bytes, so that a
/// malformed message still has an id under which to reject it.
pub(super) fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    match Announce::decode(&message.data) {
        Ok(a) => gossipsub::MessageId::from(a.id.0.to_vec()),
        Err(_) => gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec()),
    }
}

impl EventLoop {
    pub(super) fn on_announcement(
        &mut self,
        source: PeerId,
        message_id: gossipsub::MessageId,
        data: &[u8],
    ) {
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

    pub(super) fn report(
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

    /// Verifies and stores the record fetched for an announcement, then reports the verdict.
    pub(super) fn check_gossiped(
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
                // The id first: what is judged below (even "too new to read") is the record
                // announced, never another one served in its place.
                if blake3::hash(&bytes).as_bytes() != &id.0 {
                    return Err(Some("wrong_id"));
                }
                let record = Unverified::decode(bytes).map_err(|e| Some(decode_reason(&e)))?;
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
                Ok(Err(Some(reason @ "newer_version"))) => {
                    // A node of a later version wrote it: ignored, never held against the
                    // sender, and not fetched again by catch-up.
                    tracing::debug!(
                        "{source} announced record {}, of a later format than this node reads",
                        id.short()
                    );
                    shared.metrics.reject(reason);
                    shared.unreadable.insert(id);
                    gossipsub::MessageAcceptance::Ignore
                }
                Ok(Err(Some(reason))) => {
                    tracing::warn!(
                        "{source} announced record {} and served a bad one: {reason}",
                        id.short()
                    );
                    shared.metrics.reject(reason);
                    gossipsub::MessageAcceptance::Reject
                }
                Ok(Err(None)) => {
                    // Announced and not served (a peer that lost what it had not flushed).
                    let _ = shared.internal.send(Internal::Missed(source));
                    gossipsub::MessageAcceptance::Ignore
                }
                Err(_) => gossipsub::MessageAcceptance::Ignore,
            };
            let _ = shared.internal.send(Internal::Validated {
                message_id,
                source,
                acceptance,
            });
        });
    }

    /// An announcement from `source` has been fetched and checked (or its fetch failed).
    pub(super) fn gossip_fetch_done(&mut self, source: PeerId) {
        if let Some(load) = self.load.get_mut(&source) {
            load.gossip_fetches = load.gossip_fetches.saturating_sub(1);
        }
        self.forget_if_idle(source);
    }
}
