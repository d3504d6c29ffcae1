//! Answering other peers' fetch requests (records by id, read from the store off the loop),
//! and routing the answers to this node's own fetches.
//!
//! A request names each id once in its answer, however often it names it (an honest peer never
//! repeats one). It is served when the peer's count of requests being read and the answer
//! budget (`budget`) allow: the largest answer it can have is reserved before it is read.

use super::peers::FETCH_QUEUE_PER_PEER;
use super::peers::FETCHES_SERVED_PER_PEER;
use super::peers::PeerLoad;
use super::{EventLoop, Fetch, Internal};
use crate::store::Store;
use cailloux_protocol::wire::{
    FetchRequest, FetchResponse, MAX_FETCH_IDS, MAX_FETCH_RESPONSE_BYTES,
};
use cailloux_protocol::{DecodeError, MAX_RECORD_BYTES, RecordId};
use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use libp2p::{PeerId, gossipsub};
use std::collections::HashSet;
use std::time::Instant;

impl EventLoop {
    /// Starts reading the next fetch requests of `peer` that wait, up to the per-peer limit and
    /// as far as the answer budget allows.
    pub(super) fn serve_fetches(&mut self, peer: PeerId) {
        let Some(load) = self.load.get_mut(&peer) else {
            return;
        };
        while load.fetches_served < FETCHES_SERVED_PER_PEER {
            let Some((request_id, _, ids)) = load.fetch_queue.front() else {
                break;
            };
            let limit = answer_limit(ids.len());
            if !self.answers.reserve(*request_id, peer, limit) {
                // Served when answers held for this peer or for all are written.
                break;
            }
            let Some((request_id, channel, ids)) = load.fetch_queue.pop_front() else {
                break;
            };
            load.fetches_served += 1;
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                let response = read_records(&shared.store, &ids, limit);
                let _ = shared
                    .internal
                    .send(Internal::Respond(peer, request_id, channel, response));
            });
        }
    }

    /// Hands a read answer to libp2p, and serves what waits for the room it leaves.
    pub(super) fn respond(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        channel: ResponseChannel<FetchResponse>,
        response: FetchResponse,
    ) {
        let bytes = answer_bytes(&response);
        let handed_over = self
            .swarm
            .behaviour_mut()
            .fetch
            .send_response(channel, response)
            .is_ok();
        let freed = self.answers.answered(request_id, bytes, handed_over);
        if let Some(load) = self.load.get_mut(&peer) {
            load.fetches_served = load.fetches_served.saturating_sub(1);
        }
        self.serve_fetches(peer);
        if freed {
            self.serve_waiting();
        }
        self.forget_if_idle(peer);
    }

    /// An answer was written, or its request failed: its bytes are free again.
    fn answer_finished(&mut self, request_id: InboundRequestId) {
        if self.answers.finished(request_id) {
            self.serve_waiting();
        }
    }

    /// Serves the peers whose requests wait, now that some answer budget is free.
    fn serve_waiting(&mut self) {
        let waiting: Vec<PeerId> = self
            .load
            .iter()
            .filter(|(_, l)| !l.fetch_queue.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for peer in waiting {
            self.serve_fetches(peer);
        }
    }

    pub(super) fn on_fetch_event(
        &mut self,
        event: request_response::Event<FetchRequest, FetchResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
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
                let (ids, repeated) = distinct(request.ids);
                if repeated > 0 {
                    tracing::debug!(
                        "{peer} named {repeated} ids more than once in a fetch request: each is answered once"
                    );
                }
                load.fetch_queue.push_back((request_id, channel, ids));
                self.serve_fetches(peer);
            }
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => {
                self.answer_finished(request_id);
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
                    self.catch_up_elsewhere(source);
                }
                Some(Fetch::Sync { .. }) => {
                    tracing::info!("catch-up with {peer} interrupted: {error}");
                    self.sessions.remove(&peer);
                    self.fetch_waiting();
                }
                None => {}
            },
        }
    }
}

/// The first `MAX_FETCH_IDS` ids of a request, each once, in the order asked; and how many
/// were repeats.
fn distinct(mut ids: Vec<RecordId>) -> (Vec<RecordId>, usize) {
    ids.truncate(MAX_FETCH_IDS);
    let asked = ids.len();
    let mut seen = HashSet::with_capacity(asked);
    ids.retain(|id| seen.insert(*id));
    let repeated = asked - ids.len();
    (ids, repeated)
}

/// The largest answer to a request for `ids` distinct ids: what is reserved before reading it.
fn answer_limit(ids: usize) -> usize {
    ids.max(1)
        .saturating_mul(MAX_RECORD_BYTES)
        .min(MAX_FETCH_RESPONSE_BYTES)
}

/// The bytes an answer holds (its records; CBOR adds a few bytes each).
fn answer_bytes(response: &FetchResponse) -> usize {
    response.records.iter().map(|r| r.len()).sum()
}

/// The records asked for that the store holds, in the order asked, up to `limit` bytes (the
/// first record is always sent; no record is over `MAX_RECORD_BYTES`, nor `limit` under it).
fn read_records(store: &Store, ids: &[RecordId], limit: usize) -> FetchResponse {
    let mut records = Vec::new();
    let mut size = 0;
    for id in ids {
        if let Ok(Some(record)) = store.get(id) {
            let len = record.bytes().len();
            if size + len > limit && !records.is_empty() {
                break;
            }
            size += len;
            records.push(serde_bytes::ByteBuf::from(record.into_bytes()));
        }
    }
    FetchResponse { records }
}

/// The metric label of a decoding failure.
pub(super) fn decode_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::TooLarge { .. } => "oversize",
        DecodeError::Invalid(_) => "invalid",
        DecodeError::NewerVersion { .. } => "newer_version",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_each_id_once_in_the_order_asked() {
        let (a, b) = (RecordId([1; 32]), RecordId([2; 32]));
        assert_eq!(distinct(vec![a; 512]), (vec![a], 511));
        assert_eq!(distinct(vec![b, a, b, a]), (vec![b, a], 2));
        // Beyond MAX_FETCH_IDS, nothing is read, repeated or not.
        let mut many: Vec<RecordId> = (0..MAX_FETCH_IDS as u32)
            .map(|i| {
                let mut id = [0; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                RecordId(id)
            })
            .collect();
        many.push(a);
        assert_eq!(distinct(many).0.len(), MAX_FETCH_IDS);
    }

    #[test]
    fn the_reserved_answer_covers_every_record_asked_up_to_the_response_limit() {
        assert_eq!(answer_limit(0), MAX_RECORD_BYTES);
        assert_eq!(answer_limit(1), MAX_RECORD_BYTES);
        assert_eq!(answer_limit(3), 3 * MAX_RECORD_BYTES);
        assert_eq!(answer_limit(MAX_FETCH_IDS), MAX_FETCH_RESPONSE_BYTES);
    }
}
