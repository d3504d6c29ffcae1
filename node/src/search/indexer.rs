//! The indexer thread: the search index's single writer in the daemon. It receives every new
//! record from the store's writer and commits what has queued at once, so that a burst of
//! records costs one commit (every commit makes a segment, and segments cost every query).

use super::SearchIndex;
use crate::store::Store;
use crate::writer::IndexJob;
use cailloux_protocol::{Record, RecordId};

/// What should become of one record in the index after some jobs.
enum Fate {
    New(Record),
    Hidden,
    Revealed(Record),
}

/// The net effect of jobs taken in order (one may hide what an earlier one revealed): new
/// records, records to remove, records to add back; no record in two of them.
fn net(jobs: &mut [IndexJob]) -> (Vec<Record>, Vec<RecordId>, Vec<Record>) {
    let mut fate: std::collections::HashMap<RecordId, Fate> = std::collections::HashMap::new();
    for job in jobs.iter_mut() {
        for r in std::mem::take(&mut job.records) {
            fate.insert(r.id(), Fate::New(r));
        }
        for id in std::mem::take(&mut job.hidden) {
            fate.insert(id, Fate::Hidden);
        }
        for r in std::mem::take(&mut job.revealed) {
            fate.insert(r.id(), Fate::Revealed(r));
        }
    }
    let (mut new, mut hidden, mut revealed) = (Vec::new(), Vec::new(), Vec::new());
    for (id, f) in fate {
        match f {
            Fate::New(r) => new.push(r),
            Fate::Hidden => hidden.push(id),
            Fate::Revealed(r) => revealed.push(r),
        }
    }
    (new, hidden, revealed)
}

/// Starts the thread that keeps `index` current: it first catches up with the store, then
/// indexes what the store writer sends, coalescing whatever has queued into one commit. It
/// stops when every sender is gone.
pub fn start_indexer(
    index: std::sync::Arc<SearchIndex>,
    store: Store,
) -> (
    std::sync::mpsc::Sender<IndexJob>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<IndexJob>();
    let handle = std::thread::Builder::new()
        .name("search-indexer".into())
        .spawn(move || {
            if let Err(e) = index.catch_up(&store, &mut |_| {}) {
                tracing::error!("cannot bring the search index up to date: {e}");
            }
            while let Ok(first) = rx.recv() {
                let mut jobs = crate::writer::coalesce(&rx, first, |j| j.records.len());
                let (batch, hidden, revealed) = net(&mut jobs);
                if let Err(e) = index.add(&batch, &hidden, &revealed) {
                    // The records are durable; the index catches up when it is next opened.
                    tracing::error!("cannot index {} record(s): {e}", batch.len());
                }
                jobs.into_iter().for_each(IndexJob::done);
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the search indexer thread: {e}"));
    (tx, handle)
}
