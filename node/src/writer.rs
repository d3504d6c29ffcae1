//! The store's single writer: a thread of its own that takes batches of verified records from
//! every path (publish, import, gossip, catch-up), writes whatever has queued up as one atomic
//! sled batch with one flush (group commit), adds the new records to the reconciliation index,
//! and answers each caller once its records are durable.
//!
//! It is a plain thread, not an async task: sled's flush blocks, and blocking work stays off the
//! async runtime's workers.

use crate::store::{Store, StoreError};
use crate::sync::SyncIndex;
use cailloux_protocol::Record;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<Vec<bool>, Arc<StoreError>>>;

/// A handle on the writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<(Vec<Record>, Reply)>,
}

/// The writer has stopped (the node is shutting down) or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the store is closed: the node is stopping")]
    Closed,
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl Writer {
    /// Starts the writer thread. It stops, after flushing, when every `Writer` handle is gone.
    pub fn start(store: Store, index: Arc<SyncIndex>) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<(Vec<Record>, Reply)>();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&store, &index, &rx))
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (Writer { tx }, handle)
    }

    /// Stores records; resolves, once they are durable, to whether each was new.
    pub async fn insert(&self, records: Vec<Record>) -> Result<Vec<bool>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((records, reply))
            .map_err(|_| WriteError::Closed)?;
        answer
            .await
            .map_err(|_| WriteError::Closed)?
            .map_err(WriteError::Store)
    }
}

impl Writer {
    /// `insert`, for a blocking thread.
    pub fn insert_blocking(&self, records: Vec<Record>) -> Result<Vec<bool>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((records, reply))
            .map_err(|_| WriteError::Closed)?;
        answer
            .blocking_recv()
            .map_err(|_| WriteError::Closed)?
            .map_err(WriteError::Store)
    }
}

/// Takes everything queued, writes it as one batch, answers every caller.
fn run(store: &Store, index: &SyncIndex, rx: &mpsc::Receiver<(Vec<Record>, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
            if jobs.iter().map(|(r, _)| r.len()).sum::<usize>() >= 4096 {
                break;
            }
        }
        let all: Vec<Record> = jobs
            .iter()
            .flat_map(|(records, _)| records.iter().cloned())
            .collect();
        match store.insert_batch(&all) {
            Ok(fresh) => {
                index.insert(
                    all.iter()
                        .zip(&fresh)
                        .filter(|(_, new)| **new)
                        .map(|(r, _)| (r.created_at(), r.id())),
                );
                let mut fresh = fresh.into_iter();
                for (records, reply) in jobs {
                    let mine: Vec<bool> = fresh.by_ref().take(records.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!("store write failed: {e}");
                let e = Arc::new(e);
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
