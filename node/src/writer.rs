//! The store's single writer: a thread of its own that takes batches of verified records from
//! every path (publish, import, gossip, catch-up), writes whatever has queued up as one atomic
//! sled batch with one flush (group commit), adds the new records to the reconciliation index,
//! and answers each caller once its records are durable.
//!
//! After each flush it broadcasts what was new (`Stored`), with where it came from: the network
//! task announces the records published or imported here, and benchmarks time arrivals. A slow
//! listener that falls behind the broadcast loses events, never records: the store has them, and
//! peers that missed an announcement catch up by reconciliation.
//!
//! It is a plain thread, not an async task: sled's flush blocks, and blocking work stays off the
//! async runtime's workers.

use crate::store::{Outcome, Store, StoreError};
use crate::sync::SyncIndex;
use cailloux_protocol::Record;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::{broadcast, oneshot};

/// What became of each record of a job; or why nothing was written.
type Written = Result<Vec<Outcome>, Arc<StoreError>>;
type Reply = oneshot::Sender<Written>;

/// New records for the search indexer, the records they hide (retracted or superseded), and,
/// for a local write, the caller to answer once they are searchable (with what became of each
/// record of its job).
#[derive(Debug)]
pub struct IndexJob {
    pub records: Vec<Record>,
    pub hidden: Vec<cailloux_protocol::RecordId>,
    pub reply: Option<(Reply, Vec<Outcome>)>,
}

impl IndexJob {
    /// Answers the caller, if any: its records are durable and indexed.
    pub fn done(self) {
        if let Some((reply, fresh)) = self.reply {
            let _ = reply.send(Ok(fresh));
        }
    }
}

/// Where records came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Published or imported on this node: to be announced to peers.
    Local,
    /// Received from a peer (gossip or catch-up).
    Peer,
}

/// Records that have just become durable and were not in the store before.
#[derive(Clone, Debug)]
pub struct Stored {
    pub origin: Origin,
    /// (id, created_at) of each new record.
    pub records: Vec<(cailloux_protocol::RecordId, u64)>,
}

struct Job {
    records: Vec<Record>,
    origin: Origin,
    reply: Reply,
}

/// A handle on the writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stored: broadcast::Sender<Stored>,
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
    /// New records are also handed to `indexer`, the search index's thread; a local write
    /// (publish, import) is answered by the indexer once its records are searchable, so that a
    /// person who publishes finds what they published. Records from peers are answered as soon
    /// as they are durable.
    pub fn start(
        store: Store,
        index: Arc<SyncIndex>,
        indexer: Option<mpsc::Sender<IndexJob>>,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let (stored, _) = broadcast::channel(1024);
        let events = stored.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&store, &index, &rx, &events, indexer.as_ref()))
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (Writer { tx, stored }, handle)
    }

    /// What becomes durable from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Stored> {
        self.stored.subscribe()
    }

    fn queue(
        &self,
        records: Vec<Record>,
        origin: Origin,
    ) -> Result<oneshot::Receiver<Written>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                records,
                origin,
                reply,
            })
            .map_err(|_| WriteError::Closed)?;
        Ok(answer)
    }

    /// Stores records; resolves, once they are durable, to what became of each.
    pub async fn insert(
        &self,
        records: Vec<Record>,
        origin: Origin,
    ) -> Result<Vec<Outcome>, WriteError> {
        let answer = self.queue(records, origin)?;
        answer
            .await
            .map_err(|_| WriteError::Closed)?
            .map_err(WriteError::Store)
    }

    /// `insert`, for a blocking thread.
    pub fn insert_blocking(
        &self,
        records: Vec<Record>,
        origin: Origin,
    ) -> Result<Vec<Outcome>, WriteError> {
        let answer = self.queue(records, origin)?;
        answer
            .blocking_recv()
            .map_err(|_| WriteError::Closed)?
            .map_err(WriteError::Store)
    }
}

/// `first` and whatever else is queued behind it, up to about 4096 records: one batch, one
/// flush or one commit for all of them.
pub(crate) fn coalesce<J>(
    rx: &mpsc::Receiver<J>,
    first: J,
    records: impl Fn(&J) -> usize,
) -> Vec<J> {
    let mut size = records(&first);
    let mut jobs = vec![first];
    while size < 4096 {
        match rx.try_recv() {
            Ok(more) => {
                size += records(&more);
                jobs.push(more);
            }
            Err(_) => break,
        }
    }
    jobs
}

/// Takes everything queued, writes it as one batch, answers every caller, tells listeners.
fn run(
    store: &Store,
    index: &SyncIndex,
    rx: &mpsc::Receiver<Job>,
    events: &broadcast::Sender<Stored>,
    indexer: Option<&mpsc::Sender<IndexJob>>,
) {
    while let Ok(first) = rx.recv() {
        let jobs = coalesce(rx, first, |j| j.records.len());
        let all: Vec<Record> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        match store.insert_batch(&all) {
            Ok(written) => {
                index.insert(
                    all.iter()
                        .zip(&written.outcomes)
                        .filter(|(_, o)| o.is_new())
                        .map(|(r, _)| (r.created_at(), r.id())),
                );
                let mut hidden = Some(written.hidden);
                let mut outcomes = written.outcomes.into_iter();
                for job in jobs {
                    let mine: Vec<Outcome> = outcomes.by_ref().take(job.records.len()).collect();
                    let new: Vec<_> = job
                        .records
                        .iter()
                        .zip(&mine)
                        .filter(|(_, o)| o.is_new())
                        .map(|(r, _)| (r.id(), r.created_at()))
                        .collect();
                    if !new.is_empty() {
                        // No listener is fine: nobody needs to know.
                        let _ = events.send(Stored {
                            origin: job.origin,
                            records: new,
                        });
                    }
                    let records: Vec<Record> = job
                        .records
                        .into_iter()
                        .zip(&mine)
                        .filter(|(_, o)| o.is_new())
                        .map(|(r, _)| r)
                        .collect();
                    // The batch's hidden records go with its first job (order does not matter
                    // to the index).
                    let hidden = hidden.take().unwrap_or_default();
                    let wait = job.origin == Origin::Local;
                    match indexer {
                        Some(indexer) => {
                            let reply = if wait {
                                Some((job.reply, mine))
                            } else {
                                let _ = job.reply.send(Ok(mine));
                                None
                            };
                            // If the indexer has stopped, the caller is answered by the drop
                            // (as a closed store), and the index catches up when next opened.
                            let _ = indexer.send(IndexJob {
                                records,
                                hidden,
                                reply,
                            });
                        }
                        None => {
                            let _ = job.reply.send(Ok(mine));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!("store write failed: {e}");
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
