//! The network's side of file transfers (`/cailloux/blob/1`): routing this node's segment
//! requests and their answers, and handing peers' requests to `blobs::Transfers`, which reads
//! (or fetches) off the loop. What a transfer does is in `blobs/transfer.rs`.
//!
//! Bound: `BLOBS_SERVED_PER_PEER` requests of a peer being answered at once; beyond, `Busy` at
//! once. Each answer is at most `MAX_BLOB_RESPONSE_BYTES`.

use super::{EventLoop, Internal};
use cailloux_protocol::wire::{BlobRequest, BlobResponse};
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use tokio::sync::oneshot;

/// A peer's segment requests answered at once.
pub(super) const BLOBS_SERVED_PER_PEER: usize = 8;

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
        peer: PeerId,
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) {
        let _ = self
            .swarm
            .behaviour_mut()
            .blob
            .send_response(channel, response);
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
                        request, channel, ..
                    },
                ..
            } => {
                let served = self.blobs_served.entry(peer).or_default();
                let Some(transfers) = self
                    .transfers
                    .clone()
                    .filter(|_| *served < BLOBS_SERVED_PER_PEER)
                else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blob
                        .send_response(channel, BlobResponse::Busy);
                    return;
                };
                *served += 1;
                let internal = self.shared.internal.clone();
                tokio::spawn(async move {
                    let response = transfers.serve(request, peer).await;
                    let _ = internal.send(Internal::RespondBlob(peer, channel, response));
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
            _ => {}
        }
    }
}
