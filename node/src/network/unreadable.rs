//! Records of a format version later than this node reads (`DecodeError::NewerVersion`). They
//! are not garbage (a newer node wrote them, and its peers hold them), so whoever served one is
//! not held to account; but this node cannot store them, and every reconciliation would find
//! them missing again. Their ids are remembered here, boundedly, and catch-up does not fetch
//! them again; an upgraded node forgets them at restart and fetches them.

use cailloux_protocol::RecordId;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// The most ids remembered; past it, the oldest are forgotten (and fetched once more).
pub(super) const MAX_UNREADABLE: usize = 65_536;

#[derive(Debug, Default)]
pub(super) struct Unreadable {
    inner: Mutex<(HashSet<RecordId>, VecDeque<RecordId>)>,
}

impl Unreadable {
    pub(super) fn insert(&self, id: RecordId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *inner;
        if set.insert(id) {
            order.push_back(id);
            if order.len() > MAX_UNREADABLE
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }

    /// Drops the ids remembered as unreadable from `ids`.
    pub(super) fn retain_readable(&self, ids: &mut Vec<RecordId>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.0.is_empty() {
            ids.retain(|id| !inner.0.contains(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_number_oldest_out_first() {
        let u = Unreadable::default();
        let id = |n: u32| {
            let mut b = [0; 32];
            b[..4].copy_from_slice(&n.to_be_bytes());
            RecordId(b)
        };
        for n in 0..=MAX_UNREADABLE as u32 {
            u.insert(id(n));
        }
        let mut ids = vec![id(0), id(1), id(MAX_UNREADABLE as u32), id(u32::MAX)];
        u.retain_readable(&mut ids);
        assert_eq!(ids, vec![id(0), id(u32::MAX)]);
    }
}
