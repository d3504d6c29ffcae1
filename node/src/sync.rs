//! The reconciliation index: every stored record as (created_at, id), sorted, in memory, kept
//! current as records land, and the negentropy sessions that run over it.
//!
//! Negentropy (range-based set reconciliation) finds the ids two peers do not share in a few
//! round trips whose size grows with the difference, not with the sets. Its storage here is a
//! sorted vector behind an `Arc`: a session works on a snapshot (a clone of the `Arc`, no copy),
//! and new records are merged into the vector, copying it only while a snapshot is alive. The
//! index is built from the store's catalogue once, at start, never per round.

use crate::store::{Store, StoreError};
use cailloux_protocol::RecordId;
use cailloux_protocol::wire::SYNC_FRAME_LIMIT;
use negentropy::{Bound, Id, Item, Negentropy, NegentropyStorageBase};
use std::sync::{Arc, RwLock};

/// Negentropy's protocol version 1, the first byte of every message.
const PROTOCOL_V1: u8 = 0x61;
/// The mode of a range whose fingerprint follows.
const MODE_FINGERPRINT: u8 = 1;

/// The sorted set of (created_at, id) of the store's records.
#[derive(Debug, Default)]
pub struct SyncIndex {
    items: RwLock<Arc<Vec<Item>>>,
}

fn item(created_at: u64, id: &RecordId) -> Item {
    Item::with_timestamp_and_id(created_at, Id::from_byte_array(id.0))
}

impl SyncIndex {
    /// Builds the index from the store's keys (publications and acts; no record is decoded).
    pub fn load(store: &Store) -> Result<SyncIndex, StoreError> {
        let mut items = Vec::new();
        for entry in store.all_records() {
            let (created_at, id) = entry?;
            items.push(item(created_at, &id));
        }
        // The catalogue is sorted by (time, id) already; keep the invariant explicit.
        items.sort_unstable();
        items.dedup();
        Ok(SyncIndex {
            items: RwLock::new(Arc::new(items)),
        })
    }

    /// Adds records that have just been stored.
    pub fn insert(&self, new: impl IntoIterator<Item = (u64, RecordId)>) {
        let mut new: Vec<Item> = new.into_iter().map(|(t, id)| item(t, &id)).collect();
        if new.is_empty() {
            return;
        }
        new.sort_unstable();
        let mut guard = self.items.write().unwrap_or_else(|p| p.into_inner());
        let items = Arc::make_mut(&mut guard);
        // Fresh records are usually the newest: then this is an append.
        if items.last().is_none_or(|last| *last < new[0]) {
            items.extend(new);
            items.dedup();
        } else {
            items.extend(new);
            items.sort_unstable();
            items.dedup();
        }
    }

    pub fn len(&self) -> usize {
        self.items.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set as it is now, for one session; later inserts do not change it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.items.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A frozen view of the index that negentropy reads.
#[derive(Clone, Debug)]
pub struct Snapshot(Arc<Vec<Item>>);

impl NegentropyStorageBase for Snapshot {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.0.len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.0.get(i).copied())
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let items = self.0.get(begin..end).ok_or(negentropy::Error::BadRange)?;
        for (offset, item) in items.iter().enumerate() {
            if !cb(*item, begin + offset)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        let last = last.min(self.0.len());
        let first = first.min(last);
        first + self.0[first..last].partition_point(|item| *item < value.item)
    }
}

/// Answers one reconciliation message from a peer (the responder's side is stateless).
pub fn respond(snapshot: Snapshot, message: &[u8]) -> Result<Vec<u8>, String> {
    let mut negentropy =
        Negentropy::owned(snapshot, SYNC_FRAME_LIMIT).map_err(|e| e.to_string())?;
    negentropy
        .reconcile(message)
        .map_err(|e| format!("cannot reconcile: {e}"))
}

/// The initiator's side of one reconciliation with one peer.
pub struct Session {
    negentropy: Negentropy<'static, Snapshot>,
    /// Ids the peer holds and this node does not.
    pub need: Vec<RecordId>,
    /// Ids this node holds and the peer does not (the peer fetches them in its own session).
    pub have: usize,
    pub round_trips: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("need", &self.need.len())
            .field("round_trips", &self.round_trips)
            .finish()
    }
}

impl Session {
    /// Starts a session; returns it and the first message to send.
    ///
    /// The first message is one fingerprint of the whole set (20 bytes), not negentropy's usual
    /// opening (16 fingerprints of as many ranges, about 350 bytes, or every id of a set of
    /// fewer than 32, which the peer answers with every id of its own): when the sets are equal,
    /// as they almost always are on a quiet network, the peer answers with one byte and the
    /// round ends there; when they differ, the peer splits the range and the session goes on as
    /// usual, one round trip longer. It is a well-formed negentropy message, so any peer
    /// answers it.
    pub fn start(snapshot: Snapshot) -> Result<(Session, Vec<u8>), String> {
        let fingerprint = snapshot
            .fingerprint(0, snapshot.0.len())
            .map_err(|e| e.to_string())?;
        let mut negentropy =
            Negentropy::owned(snapshot, SYNC_FRAME_LIMIT).map_err(|e| e.to_string())?;
        negentropy.set_initiator();
        // Protocol version 1; the upper bound "infinity" (timestamp 0 means the largest, and no
        // id prefix); mode 1, a fingerprint; the fingerprint of every item below that bound.
        let mut first = vec![PROTOCOL_V1, 0, 0, MODE_FINGERPRINT];
        first.extend(fingerprint.to_bytes());
        Ok((
            Session {
                negentropy,
                need: Vec::new(),
                have: 0,
                round_trips: 0,
            },
            first,
        ))
    }

    /// Takes the peer's reply; returns the next message to send, or `None` when done.
    pub fn step(&mut self, reply: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.round_trips += 1;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = self
            .negentropy
            .reconcile_with_ids(reply, &mut have, &mut need)
            .map_err(|e| format!("bad reconciliation reply: {e}"))?;
        self.have += have.len();
        self.need
            .extend(need.into_iter().map(|id| RecordId(id.to_bytes())));
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RecordId {
        let mut b = [0; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        RecordId(*blake3::hash(&b).as_bytes())
    }

    /// Runs a whole reconciliation in memory; returns what the initiator needs and the round trips.
    fn reconcile(a: &SyncIndex, b: &SyncIndex) -> (Vec<RecordId>, usize, u32) {
        let (mut session, mut msg) = Session::start(a.snapshot()).unwrap_or_else(|e| panic!("{e}"));
        loop {
            let reply = respond(b.snapshot(), &msg).unwrap_or_else(|e| panic!("{e}"));
            match session.step(&reply).unwrap_or_else(|e| panic!("{e}")) {
                Some(next) => msg = next,
                None => break,
            }
        }
        let mut need = session.need;
        need.sort();
        (need, session.have, session.round_trips)
    }

    #[test]
    fn finds_exactly_the_difference_and_tracks_inserts() {
        let a = SyncIndex::default();
        let b = SyncIndex::default();
        a.insert((0..3000).map(|n| (u64::from(n) * 10, id(n))));
        b.insert(
            (0..3000)
                .filter(|n| n % 100 != 7)
                .map(|n| (u64::from(n) * 10, id(n))),
        );
        b.insert([(5, id(90_000)), (7_000_000, id(90_001))]);
        let (need, have, _) = reconcile(&b, &a);
        let mut expected: Vec<RecordId> = (0..3000).filter(|n| n % 100 == 7).map(id).collect();
        expected.sort();
        assert_eq!(need, expected);
        assert_eq!(have, 2);
        // A snapshot taken before an insert does not see it; the index does.
        let before = a.snapshot();
        a.insert(need.iter().map(|i| (1, *i)));
        assert_eq!(before.size().ok(), Some(3000));
        assert_eq!(a.len(), 3030);
    }

    #[test]
    fn equal_sets_need_nothing_and_one_small_round_trip() {
        for size in [0, 1, 31, 32, 500] {
            let a = SyncIndex::default();
            let b = SyncIndex::default();
            for s in [&a, &b] {
                s.insert((0..size).map(|n| (u64::from(n), id(n))));
            }
            let (need, have, round_trips) = reconcile(&a, &b);
            assert!(need.is_empty() && have == 0, "{size}");
            assert_eq!(round_trips, 1, "{size}");
            // One fingerprint out, one byte back.
            let (_, first) = Session::start(a.snapshot()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first.len(), 20, "{size}");
            let reply = respond(b.snapshot(), &first).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reply.len(), 1, "{size}");
        }
    }

    #[test]
    fn small_and_empty_sets_find_the_difference() {
        // Sizes around negentropy's switch from fingerprints to id lists (32 items), and empty
        // sets on either side.
        for (left, right) in [
            (0, 5),
            (5, 0),
            (0, 40),
            (40, 0),
            (3, 7),
            (31, 33),
            (100, 64),
        ] {
            let a = SyncIndex::default();
            let b = SyncIndex::default();
            a.insert((0..left).map(|n| (u64::from(n) * 3, id(n))));
            b.insert((0..right).map(|n| (u64::from(n) * 3, id(n))));
            let (need, have, _) = reconcile(&a, &b);
            let mut expected: Vec<RecordId> = (left..right.max(left)).map(id).collect();
            expected.sort();
            assert_eq!(need, expected, "{left} {right}");
            assert_eq!(have, left.saturating_sub(right) as usize, "{left} {right}");
        }
    }

    /// A peer that opens the usual way (negentropy's own `initiate`) is still answered, and
    /// this side's opening is answered by a plain negentropy responder: the wire is unchanged.
    #[test]
    fn interoperates_with_the_usual_opening() {
        let a = SyncIndex::default();
        let b = SyncIndex::default();
        a.insert((0..300).map(|n| (u64::from(n), id(n))));
        b.insert(
            (0..300)
                .filter(|n| n % 50 != 1)
                .map(|n| (u64::from(n), id(n))),
        );
        let mut old =
            Negentropy::owned(b.snapshot(), SYNC_FRAME_LIMIT).unwrap_or_else(|e| panic!("{e}"));
        let mut msg = old.initiate().unwrap_or_else(|e| panic!("{e}"));
        let (mut have, mut need) = (Vec::new(), Vec::new());
        loop {
            let reply = respond(a.snapshot(), &msg).unwrap_or_else(|e| panic!("{e}"));
            match old
                .reconcile_with_ids(&reply, &mut have, &mut need)
                .unwrap_or_else(|e| panic!("{e}"))
            {
                Some(next) => msg = next,
                None => break,
            }
        }
        assert_eq!(need.len(), 6);
        assert!(have.is_empty());
    }
}
