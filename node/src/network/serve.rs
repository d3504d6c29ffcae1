//! Answering other peers' fetch requests (records by id, read from the store off the loop),
//! and routing the answers to this node's own fetches.

use super::peers::FETCH_QUEUE_PER_PEER;
use super::peers::FETCHES_SERVED_PER_PEER;
use super::peers::PeerLoad;
use super::{EventLoop, Fetch, Internal};
use crate::store::Store;
use cailloux_protocol::wire::{
    FetchRequest, FetchResponse, MAX_FETCH_IDS, MAX_FETCH_RESPONSE_BYTES,
};
use cailloux_protocol::{DecodeError, RecordId};
use libp2p::request_response::{self};
use libp2p::{PeerId, gossipsub};
use std::time::Instant;

impl EventLoop {
    /// Starts reading the next fetch requests of `peer` that wait, up to the per-peer limit.
    pub(super) fn serve_fetches(&mut self, peer: PeerId) {
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

    pub(super) fn on_fetch_event(
        &mut self,
        event: request_response::Event<FetchRequest, FetchResponse>,
    ) {
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
pub(super) fn decode_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::TooLarge { .. } => "oversize",
        DecodeError::Invalid(_) => "invalid",
        _ => "malformed",
    }
}
