//! The memory that answering other peers' fetch requests may take: the bytes of answers read
//! from the store and not yet written to the peer that asked. Without a bound, a peer's queued
//! requests were read as fast as the store allows and handed to libp2p, which holds each answer
//! until the peer reads it: up to 8 answers of 4 MiB at a time per peer, over and over, times
//! hundreds of connections, for a peer that asks for large records and reads slowly or never.
//!
//! Before a request is read, its answer's largest possible size is reserved against a per-peer
//! and a global budget; the next queued request waits until both allow it. Once read, the
//! reservation shrinks to the answer's size, and it is released when libp2p reports the answer
//! written (`ResponseSent`) or failed (`InboundFailure`: a timeout, a closed connection), or
//! at once if the answer cannot be handed over. libp2p's request timeout (30 s) bounds how long
//! a peer that never reads can hold its share.

use libp2p::PeerId;
use std::collections::HashMap;
use std::hash::Hash;

/// Bytes of answers held for one peer: four answers of the largest size, what an honest peer's
/// catch-up (four batches in flight) asks for at once.
pub(super) const RESPONSE_BYTES_PER_PEER: usize = 16 * 1024 * 1024;
/// Bytes of answers held for all peers together: four peers at their per-peer budget. libp2p
/// encodes an answer before writing it, so the memory is at most about twice this.
pub(super) const RESPONSE_BYTES_TOTAL: usize = 64 * 1024 * 1024;

/// Reservations of answer bytes, per request (`R`: libp2p's `InboundRequestId`), against a
/// per-peer and a global budget.
#[derive(Debug)]
pub(super) struct ResponseBudget<R> {
    per_peer: usize,
    total: usize,
    used: usize,
    by_peer: HashMap<PeerId, usize>,
    held: HashMap<R, Held>,
}

#[derive(Debug)]
struct Held {
    peer: PeerId,
    bytes: usize,
    /// The answer has been handed to libp2p, which will report it written or failed.
    handed_over: bool,
    /// libp2p reported the request failed while its answer was still being read.
    failed: bool,
}

impl<R: Copy + Eq + Hash> ResponseBudget<R> {
    pub(super) fn new(per_peer: usize, total: usize) -> ResponseBudget<R> {
        ResponseBudget {
            per_peer,
            total,
            used: 0,
            by_peer: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Reserves `bytes` for the answer to `request` from `peer`, if both budgets allow it.
    pub(super) fn reserve(&mut self, request: R, peer: PeerId, bytes: usize) -> bool {
        let peer_used = self.used_by(&peer);
        if self.held.contains_key(&request)
            || peer_used + bytes > self.per_peer
            || self.used + bytes > self.total
        {
            return false;
        }
        self.add(peer, bytes);
        self.held.insert(
            request,
            Held {
                peer,
                bytes,
                handed_over: false,
                failed: false,
            },
        );
        true
    }

    /// The answer to `request` is read and holds `bytes`; `handed_over` says whether libp2p took
    /// it. Returns whether the reservation was released (libp2p did not take it, or the request
    /// had already failed): then other requests may be served.
    pub(super) fn answered(&mut self, request: R, bytes: usize, handed_over: bool) -> bool {
        let Some(held) = self.held.get_mut(&request) else {
            return false;
        };
        let (peer, before) = (held.peer, held.bytes);
        held.bytes = bytes;
        held.handed_over = handed_over;
        let release = !handed_over || held.failed;
        self.remove(peer, before);
        self.add(peer, bytes);
        if release {
            self.release(request);
        }
        // A smaller answer than reserved frees room too.
        release || bytes < before
    }

    /// libp2p reports the answer to `request` written, or the request failed. Returns whether
    /// the reservation was released. A request that fails while its answer is still being read
    /// keeps it until the read ends (`answered`).
    pub(super) fn finished(&mut self, request: R) -> bool {
        match self.held.get_mut(&request) {
            Some(held) if held.handed_over => self.release(request),
            Some(held) => {
                held.failed = true;
                false
            }
            None => false,
        }
    }

    /// Bytes held for `peer`.
    pub(super) fn used_by(&self, peer: &PeerId) -> usize {
        self.by_peer.get(peer).copied().unwrap_or(0)
    }

    /// Bytes held for all peers.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used
    }

    fn release(&mut self, request: R) -> bool {
        match self.held.remove(&request) {
            Some(held) => {
                self.remove(held.peer, held.bytes);
                true
            }
            None => false,
        }
    }

    fn add(&mut self, peer: PeerId, bytes: usize) {
        self.used += bytes;
        *self.by_peer.entry(peer).or_insert(0) += bytes;
    }

    fn remove(&mut self, peer: PeerId, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
        if let Some(used) = self.by_peer.get_mut(&peer) {
            *used = used.saturating_sub(bytes);
            if *used == 0 {
                self.by_peer.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn budget() -> ResponseBudget<u64> {
        ResponseBudget::new(16 * MIB, 40 * MIB)
    }

    #[test]
    fn a_peer_is_held_to_its_budget_and_all_peers_to_the_total() {
        let mut b = budget();
        let (p, q, r) = (PeerId::random(), PeerId::random(), PeerId::random());
        for request in 0..4 {
            assert!(b.reserve(request, p, 4 * MIB), "request {request}");
        }
        assert!(!b.reserve(4, p, 1), "p is at its budget");
        assert_eq!(b.used_by(&p), 16 * MIB);
        for request in 10..14 {
            assert!(b.reserve(request, q, 4 * MIB));
        }
        assert!(b.reserve(20, r, 8 * MIB));
        assert!(
            !b.reserve(21, r, 1),
            "the total is reached, r's own budget is not"
        );
        assert_eq!(b.used(), 40 * MIB);
        assert!(!b.reserve(20, r, 0), "one reservation per request");
    }

    #[test]
    fn a_read_answer_keeps_its_size_until_libp2p_reports_it_written_or_failed() {
        let mut b = budget();
        let p = PeerId::random();
        assert!(b.reserve(1, p, 4 * MIB));
        assert!(b.reserve(2, p, 4 * MIB));
        // Smaller than reserved: the difference is free at once.
        assert!(b.answered(1, MIB, true));
        assert_eq!(b.used_by(&p), 5 * MIB);
        assert!(!b.answered(2, 4 * MIB, true), "nothing freed");
        assert!(b.finished(1), "written");
        assert_eq!(b.used_by(&p), 4 * MIB);
        assert!(b.finished(2), "failed after it was handed over");
        assert_eq!((b.used_by(&p), b.used()), (0, 0));
        assert!(!b.finished(2), "released once");
    }

    #[test]
    fn an_answer_libp2p_refuses_or_a_request_that_failed_while_read_is_released_when_read() {
        let mut b = budget();
        let p = PeerId::random();
        assert!(b.reserve(1, p, 4 * MIB));
        assert!(b.answered(1, 3 * MIB, false), "the channel was closed");
        assert_eq!(b.used(), 0);
        assert!(b.reserve(2, p, 4 * MIB));
        assert!(!b.finished(2), "still being read: the bytes are still held");
        assert_eq!(b.used(), 4 * MIB);
        assert!(b.answered(2, 4 * MIB, true), "released when the read ends");
        assert_eq!(b.used(), 0);
        // Unknown requests change nothing.
        assert!(!b.answered(9, MIB, true));
        assert!(!b.finished(9));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn an_answer_larger_than_reserved_is_counted_as_it_is() {
        let mut b = budget();
        let p = PeerId::random();
        assert!(b.reserve(1, p, MIB));
        assert!(!b.answered(1, 2 * MIB, true));
        assert_eq!(b.used_by(&p), 2 * MIB);
        assert!(b.finished(1));
        assert_eq!(b.used(), 0);
    }
}
