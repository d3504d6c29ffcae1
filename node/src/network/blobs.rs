//! The network's side of file transfers (`/cailloux/blob/1`): routing this node's segment
//! requests and their answers, and handing peers' requests to `blobs::Transfers`, which reads
//! (or fetches) off the loop. What a transfer does is in `blobs/transfer.rs`.
//!
//! Bound: `BLOBS_SERVED_PER_PEER` requests of a peer being answered at once (from its arrival
//! to its answer's last byte sent); beyond, `Busy` at once. Requests are read up to 1 KiB,
//! answers up to `MAX_BLOB_RESPONSE_BYTES` (the codec's limits, `blob_codec`); a longer answer
//! fails to decode and costs its sender that transfer.

use super::{EventLoop, Internal};
use cailloux_protocol::wire::{BlobRequest, BlobResponse};
use libp2p::PeerId;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use tokio::sync::oneshot;

/// The CBOR codec with this protocol's limits.
pub(super) fn blob_codec() -> request_response::cbor::codec::Codec<BlobRequest, BlobResponse> {
    request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(1024)
        .set_response_size_maximum(cailloux_protocol::wire::MAX_BLOB_RESPONSE_BYTES as u64)
}

/// A peer's segment requests answered at once: as many as a node like this one sends one peer
/// at most (every transfer's window on it), so that an honest peer is never told `Busy`.
pub(super) const BLOBS_SERVED_PER_PEER: usize = crate::blobs::MAX_TRANSFERS * crate::blobs::WINDOW;

/// Where the answer to one of this node's segment requests goes.
pub(super) type BlobReply = oneshot::Sender<Result<BlobResponse, String>>;

impl EventLoop {
    pub(super) fn send_blob_request(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        reply: BlobReply,
    ) {
        let id: OutboundRequestId = self.swarm.behaviour_mut().blob.send_request(&peer, request);
        self.blob_requests.insert(id, reply);
    }

    pub(super) fn respond_blob(
        &mut self,
        request_id: InboundRequestId,
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .blob
            .send_response(channel, response)
            .is_err()
        {
            // The stream is gone: no event will say the answer was sent.
            self.blob_answered(request_id);
        }
    }

    /// A counted request's answer is sent (or will never be): the peer may ask again.
    fn blob_answered(&mut self, request_id: InboundRequestId) {
        let Some(peer) = self.blobs_serving.remove(&request_id) else {
            return;
        };
        if let Some(n) = self.blobs_served.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.blobs_served.remove(&peer);
            }
        }
    }

    pub(super) fn on_blob_event(
        &mut self,
        event: request_response::Event<BlobRequest, BlobResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request,
                        channel,
                        request_id,
                    },
                ..
            } => {
                let served = self.blobs_served.get(&peer).copied().unwrap_or(0);
                let Some(transfers) = self
                    .transfers
                    .clone()
                    .filter(|_| served < BLOBS_SERVED_PER_PEER)
                else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blob
                        .send_response(channel, BlobResponse::Busy);
                    return;
                };
                // Counted only once it is taken: a refused request leaves no entry behind.
                *self.blobs_served.entry(peer).or_default() += 1;
                self.blobs_serving.insert(request_id, peer);
                let internal = self.shared.internal.clone();
                tokio::spawn(async move {
                    let response = transfers.serve(request, peer).await;
                    let _ = internal.send(Internal::RespondBlob(request_id, channel, response));
                });
            }
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.blob_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.blob_requests.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => {
                self.blob_answered(request_id);
            }
        }
    }
}
