//! The keyset collector: the best `limit` documents that come strictly after a cursor's key, in
//! the total order of [`Key`] (score, then newest, then the smaller id). Each segment keeps a
//! heap of at most `limit` candidates, whatever the depth of the page: a page at the end of
//! the results costs what the first one does (an offset would make the index hold every
//! document before the page, and a huge one made tantivy reserve memory for them all).
//!
//! Ids are compared through the `id` fast field's term ordinals within a segment (its
//! dictionary is sorted, so ordinal order is the ids' hexadecimal, hence byte, order); an id is
//! read as text only for the candidates kept, and for a document tying with the cursor's key on
//! score and creation time.

use super::cursor::Key;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentReader};

/// Documents in rank order, with their keys.
pub(super) type Ranked = Vec<(Key, DocAddress)>;

/// What a segment sends back: its best candidates and the most it held at once.
pub(super) struct SegmentFruit {
    ranked: Ranked,
    held: usize,
}

/// The page: at most `limit` documents, best first, and the most documents any one segment
/// held at once (never more than `limit`; tests check it).
#[derive(Debug)]
pub(super) struct Page {
    pub ranked: Ranked,
    pub held: usize,
}

pub(super) struct Keyset {
    /// How many documents to keep (a page and one more, to know whether another follows).
    pub limit: usize,
    /// Only documents strictly after this key.
    pub after: Option<Key>,
    /// Whether the order is by score (else scores are 0 and the order is newest first).
    pub scored: bool,
}

impl Collector for Keyset {
    type Fruit = Page;
    type Child = KeysetSegment;

    fn for_segment(
        &self,
        segment_ord: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let ff = segment.fast_fields();
        Ok(KeysetSegment {
            segment_ord,
            created_at: ff.u64("created_at").ok(),
            ids: ff.str("id")?,
            after: self.after,
            limit: self.limit,
            heap: BinaryHeap::with_capacity(self.limit.min(1024) + 1),
            held: 0,
            text: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scored
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Page> {
        let held = fruits.iter().map(|f| f.held).max().unwrap_or(0);
        let mut ranked: Ranked = fruits.into_iter().flat_map(|f| f.ranked).collect();
        ranked.sort_by(|a, b| a.0.rank(&b.0));
        ranked.truncate(self.limit);
        Ok(Page { ranked, held })
    }
}

/// A candidate within one segment; `Ord` puts the worst greatest, so the heap's top is the
/// one to drop.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: Score,
    created_at: u64,
    /// The id's ordinal in this segment's dictionary: ordinal order is id order.
    ord: u64,
    doc: DocId,
}

impl Candidate {
    /// `Less` when `self` comes first.
    fn rank(&self, other: &Candidate) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.created_at.cmp(&self.created_at))
            .then(self.ord.cmp(&other.ord))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

pub(super) struct KeysetSegment {
    segment_ord: u32,
    created_at: Option<Column<u64>>,
    ids: Option<StrColumn>,
    after: Option<Key>,
    limit: usize,
    heap: BinaryHeap<Candidate>,
    held: usize,
    text: String,
}

impl KeysetSegment {
    fn id_of(&mut self, ord: u64) -> Option<[u8; 32]> {
        let ids = self.ids.as_ref()?;
        self.text.clear();
        if !ids.ord_to_str(ord, &mut self.text).unwrap_or(false) {
            return None;
        }
        cailloux_protocol::RecordId::from_hex(&self.text).map(|id| id.0)
    }

    /// Whether a document comes strictly after the cursor's key.
    fn is_after(&mut self, c: &Candidate) -> bool {
        let Some(after) = self.after else {
            return true;
        };
        match after
            .score
            .total_cmp(&c.score)
            .then(after.created_at.cmp(&c.created_at))
        {
            // The key scores more, or is as good and newer: the document comes after it.
            Ordering::Greater => true,
            Ordering::Less => false,
            // A tie on score and time (a record published in the same millisecond): the ids
            // decide; the key's own record is not after itself.
            Ordering::Equal => self.id_of(c.ord).is_some_and(|id| id > after.id),
        }
    }
}

impl SegmentCollector for KeysetSegment {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(ord) = self.ids.as_ref().and_then(|c| c.term_ords(doc).next()) else {
            return;
        };
        let created_at = self
            .created_at
            .as_ref()
            .and_then(|c| c.first(doc))
            .unwrap_or(0);
        let candidate = Candidate {
            score,
            created_at,
            ord,
            doc,
        };
        if self.limit == 0 {
            return;
        }
        if self.heap.len() == self.limit
            && self
                .heap
                .peek()
                .is_some_and(|worst| candidate.rank(worst) != Ordering::Less)
        {
            return;
        }
        if !self.is_after(&candidate) {
            return;
        }
        if self.heap.len() == self.limit {
            self.heap.pop();
        }
        self.heap.push(candidate);
        self.held = self.held.max(self.heap.len());
    }

    fn harvest(mut self) -> SegmentFruit {
        let heap = std::mem::take(&mut self.heap);
        let mut ranked = Vec::with_capacity(heap.len());
        for c in heap.into_sorted_vec() {
            if let Some(id) = self.id_of(c.ord) {
                ranked.push((
                    Key {
                        score: c.score,
                        created_at: c.created_at,
                        id,
                    },
                    DocAddress::new(self.segment_ord, c.doc),
                ));
            }
        }
        SegmentFruit {
            ranked,
            held: self.held,
        }
    }
}
