//! The indexer thread: the search index's single writer in the daemon. It receives every new
//! record from the store's writer and commits what has queued at once, so that a burst of
//! records costs one commit (every commit makes a segment, and segments cost every query).

use super::SearchIndex;
use crate::store::Store;
use crate::writer::IndexJob;
use cailloux_protocol::{Record, RecordId};

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
                let batch: Vec<Record> = jobs
                    .iter_mut()
                    .flat_map(|j| std::mem::take(&mut j.records))
                    .collect();
                let hidden: Vec<RecordId> = jobs
                    .iter_mut()
                    .flat_map(|j| std::mem::take(&mut j.hidden))
                    .collect();
                if let Err(e) = index.add(&batch, &hidden) {
                    // The records are durable; the index catches up when it is next opened.
                    tracing::error!("cannot index {} record(s): {e}", batch.len());
                }
                jobs.into_iter().for_each(IndexJob::done);
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the search indexer thread: {e}"));
    (tx, handle)
}
