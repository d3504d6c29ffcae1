//! The store's single writer: a thread of its own that takes batches of verified records from
//! every path (publish, import, gossip, catch-up), writes whatever has queued up as one atomic
//! sled batch with one flush (group commit), adds the new records to the reconciliation index,
//! and answers each caller: a local write (publish, import) once its records are durable and
//! searchable, records from peers as soon as they are written and readable, before the flush,
//! so that gossip forwards them without waiting for the disk (a crash before the flush loses
//! them here only, and catch-up brings them back). It hands the search indexer the new
//! records, the ones they hide and the ones they bring back (a retracted or voided version hides
//! nothing, so the version before it is searchable again).
//!
//! After each flush it broadcasts what was new (`Stored`), with where it came from: the network
//! task announces the records published or imported here, and benchmarks time arrivals. A slow
//! listener that falls behind the broadcast loses events, never records: the store has them, and
//! peers that missed an announcement catch up by reconciliation.
//!
//! It is a plain thread, not an async task: sled's flush blocks, and blocking work stays off the
//! async runtime's workers.

use crate::search::IndexQueue;
use crate::store::{Outcome, Store, StoreError};
use crate::sync::SyncIndex;
use cailloux_protocol::Record;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::{broadcast, oneshot};

/// What became of each record of a job; or why nothing was written.
type Written = Result<Vec<Outcome>, Arc<StoreError>>;
type Reply = oneshot::Sender<Written>;

/// New records for the search indexer, the records they hide (retracted, superseded, voided),
/// the records they bring back (a retracted or voided version hides nothing), and, for a local
/// write, the caller to answer once they are searchable (with what became of each record of
/// its job).
#[derive(Debug)]
pub struct IndexJob {
    pub records: Vec<Record>,
    pub hidden: Vec<cailloux_protocol::RecordId>,
    pub revealed: Vec<Record>,
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
    /// as they are written, before the flush.
    pub fn start(
        store: Store,
        index: Arc<SyncIndex>,
        indexer: Option<IndexQueue>,
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

    /// Stores records; resolves to what became of each: for a local write once they are
    /// durable, for records from peers once they are written and readable (see `run`).
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
/// flush for all of them.
fn coalesce(rx: &mpsc::Receiver<Job>, first: Job) -> Vec<Job> {
    let mut size = first.records.len();
    let mut jobs = vec![first];
    while size < 4096 {
        match rx.try_recv() {
            Ok(more) => {
                size += more.records.len();
                jobs.push(more);
            }
            Err(_) => break,
        }
    }
    jobs
}

/// Takes everything queued, writes it as one batch, answers every caller, tells listeners.
///
/// Records from peers are answered as soon as the batch is written (checked by the ledger and
/// readable), before its flush: gossip forwards them meanwhile, so a hop costs no disk flush,
/// and a peer that asks for one is served from the store at once. A crash before the flush
/// loses them here only; catch-up brings them back. Local writes are answered once durable
/// (and searchable), and `Stored` is sent once durable.
fn run(
    store: &Store,
    index: &SyncIndex,
    rx: &mpsc::Receiver<Job>,
    events: &broadcast::Sender<Stored>,
    indexer: Option<&IndexQueue>,
) {
    while let Ok(first) = rx.recv() {
        let jobs = coalesce(rx, first);
        let all: Vec<Record> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        let written = match store.write_batch(&all, crate::now_millis()) {
            Ok(written) => written,
            Err(e) => {
                fail(jobs.into_iter().map(|j| j.reply), e);
                continue;
            }
        };
        index.insert(
            all.iter()
                .zip(&written.outcomes)
                .filter(|(_, o)| o.is_new())
                .map(|(r, _)| (r.created_at(), r.id())),
        );
        let mut outcomes = written.outcomes.into_iter();
        // (records, origin, outcomes, the caller still to answer)
        let jobs: Vec<_> = jobs
            .into_iter()
            .map(
                |Job {
                     records,
                     origin,
                     reply,
                 }| {
                    let mine: Vec<Outcome> = outcomes.by_ref().take(records.len()).collect();
                    let reply = match origin {
                        Origin::Peer => {
                            let _ = reply.send(Ok(mine.clone()));
                            None
                        }
                        Origin::Local => Some(reply),
                    };
                    (records, origin, mine, reply)
                },
            )
            .collect();
        if let Err(e) = store.flush() {
            fail(jobs.into_iter().filter_map(|(_, _, _, reply)| reply), e);
            continue;
        }
        // What the batch brings back is read from the store for the indexer (a record
        // missing here is caught up when the index is next opened).
        let revealed: Vec<Record> = written
            .revealed
            .iter()
            .filter_map(|id| store.get(id).ok().flatten())
            .collect();
        let mut changed = Some((written.hidden, revealed));
        let last = jobs.len().saturating_sub(1);
        for (n, (records, origin, mine, reply)) in jobs.into_iter().enumerate() {
            let new: Vec<_> = records
                .iter()
                .zip(&mine)
                .filter(|(_, o)| o.is_new())
                .map(|(r, _)| (r.id(), r.created_at()))
                .collect();
            if !new.is_empty() {
                // No listener is fine: nobody needs to know.
                let _ = events.send(Stored {
                    origin,
                    records: new,
                });
            }
            let records: Vec<Record> = records
                .into_iter()
                .zip(&mine)
                .filter(|(_, o)| o.is_new())
                .map(|(r, _)| r)
                .collect();
            // The batch's hidden and revealed records go with its last job: they are the
            // batch's net effect, after all its new records (the indexer applies a job's
            // records, then its changes, in order; a record that a later job of the batch
            // brings and the batch hides must not come back after it).
            let (hidden, revealed) = if n == last {
                changed.take().unwrap_or_default()
            } else {
                Default::default()
            };
            match (indexer, reply) {
                (Some(indexer), reply) => {
                    // If the indexer has stopped, the caller is answered by the drop (as a
                    // closed store), and the index catches up when next opened.
                    let _ = indexer.send(IndexJob {
                        records,
                        hidden,
                        revealed,
                        reply: reply.map(|r| (r, mine)),
                    });
                }
                (None, Some(reply)) => {
                    let _ = reply.send(Ok(mine));
                }
                (None, None) => {}
            }
        }
    }
}

/// The batch could not be written or flushed: every caller still waiting is told why.
fn fail(replies: impl Iterator<Item = Reply>, e: StoreError) {
    tracing::error!("store write failed: {e}");
    let e = Arc::new(e);
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{SearchIndex, SearchQuery, start_indexer};
    use cailloux_protocol::trust::{Act, Mode, Retraction};
    use cailloux_protocol::{Link, LinkRel, RecordId, SigningKey};

    fn practice(at: u64, title: &str, old: Option<&Record>) -> Record {
        let text = format!(
            "---\nkind: practice\ntitle: \"{title}\"\nsummary: Compost partagé.\nthemes: [food]\ntown: Vallon\n---\nCompost.\n"
        );
        let mut p = cailloux_protocol::parse_publication(&text, None)
            .unwrap_or_else(|v| panic!("{v:?}"))
            .publication;
        p.links.extend(old.map(|o| Link {
            rel: LinkRel::Supersedes,
            id: o.id(),
        }));
        Record::sign(&SigningKey::from_bytes(&[2; 32]), at, p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A store and a search index in `dir`.
    fn store_and_index(dir: &std::path::Path) -> (Store, Arc<SearchIndex>) {
        let store = Store::open(
            &dir.join("store"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (search, _) = SearchIndex::open(&dir.join("index")).unwrap_or_else(|e| panic!("{e}"));
        (store, Arc::new(search))
    }

    /// The ids a search for "compost" finds, sorted.
    fn compost(search: &SearchIndex, store: &Store) -> Vec<RecordId> {
        let q = SearchQuery {
            text: "compost".into(),
            limit: 10,
            ..SearchQuery::default()
        };
        let results = search.search(&q, store).unwrap_or_else(|e| panic!("{e}"));
        let mut ids: Vec<RecordId> = results.hits.iter().map(|h| h.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn retracting_a_version_brings_the_one_before_it_back_into_search() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, search) = store_and_index(dir.path());
        let sync = Arc::new(SyncIndex::load(&store).unwrap_or_else(|e| panic!("{e}")));
        let (indexer, indexing) = start_indexer(
            search.clone(),
            store.clone(),
            crate::memory::INDEX_QUEUE_BYTES,
        );
        let (writer, writing) = Writer::start(store.clone(), sync, Some(indexer));
        let found = || compost(&search, &store);
        let first = practice(10, "Compost", None);
        let second = practice(20, "Compost, deuxième version", Some(&first));
        let retraction = Record::sign_act(
            &SigningKey::from_bytes(&[2; 32]),
            30,
            Act::Retract(Retraction {
                id: second.id(),
                reason: "erreur".into(),
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for record in [first.clone(), second.clone()] {
            let outcomes = writer
                .insert_blocking(vec![record], Origin::Local)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(outcomes[0].is_new(), "{outcomes:?}");
        }
        assert_eq!(found(), vec![second.id()]);
        writer
            .insert_blocking(vec![retraction], Origin::Local)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found(),
            vec![first.id()],
            "the first version is searchable again"
        );
        drop(writer);
        let _ = (writing.join(), indexing.join());
    }

    /// Two jobs the writer takes as one batch: a record, then a version and the version that
    /// replaces it. The batch hides the first version; it must not reach the index after that.
    #[test]
    fn a_version_replaced_within_one_batch_is_not_searchable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, search) = store_and_index(dir.path());
        let sync = SyncIndex::load(&store).unwrap_or_else(|e| panic!("{e}"));
        let (indexer, indexing) = start_indexer(
            search.clone(),
            store.clone(),
            crate::memory::INDEX_QUEUE_BYTES,
        );
        let other = practice(5, "Compost du quartier", None);
        let first = practice(10, "Compost", None);
        let second = practice(20, "Compost, deuxième version", Some(&first));
        // Both jobs wait in the channel before the writer's loop runs: one batch.
        let (tx, rx) = mpsc::channel::<Job>();
        let mut answers = Vec::new();
        for records in [vec![other.clone()], vec![first.clone(), second.clone()]] {
            let (reply, answer) = oneshot::channel();
            tx.send(Job {
                records,
                origin: Origin::Peer,
                reply,
            })
            .unwrap_or_else(|e| panic!("{e}"));
            answers.push(answer);
        }
        drop(tx);
        let (events, _) = broadcast::channel(16);
        run(&store, &sync, &rx, &events, Some(&indexer));
        for answer in answers {
            let outcomes = answer
                .blocking_recv()
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(outcomes.iter().all(Outcome::is_new), "{outcomes:?}");
        }
        drop(indexer);
        let _ = indexing.join();
        let found = compost(&search, &store);
        let mut expected = vec![other.id(), second.id()];
        expected.sort();
        assert_eq!(found, expected, "the replaced version is not searchable");
    }

    /// The indexer's queue holds at most its bound in bytes: records from peers beyond it are
    /// not queued (a new town catching up stored them faster than they were indexed, and the
    /// queue held most of them) but indexed from the store, and what they hide is removed; a
    /// local write is always queued, and searchable when it is answered.
    #[test]
    fn records_beyond_the_indexer_queue_bound_are_indexed_from_the_store() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, search) = store_and_index(dir.path());
        let sync = Arc::new(SyncIndex::load(&store).unwrap_or_else(|e| panic!("{e}")));
        // No room at all: every job from a peer is left to the catch-up.
        let (indexer, indexing) = start_indexer(search.clone(), store.clone(), 0);
        let (writer, writing) = Writer::start(store.clone(), sync, Some(indexer));
        let found = || compost(&search, &store);
        let local = practice(5, "Compost local", None);
        writer
            .insert_blocking(vec![local.clone()], Origin::Local)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found(),
            vec![local.id()],
            "a local write is searchable at once"
        );
        let peers: Vec<Record> = (0..3)
            .map(|i| practice(10 + i, &format!("Compost {i}"), None))
            .collect();
        let retraction = Record::sign_act(
            &SigningKey::from_bytes(&[2; 32]),
            30,
            Act::Retract(Retraction {
                id: local.id(),
                reason: "erreur".into(),
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for record in peers.iter().cloned().chain([retraction]) {
            writer
                .insert_blocking(vec![record], Origin::Peer)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut expected: Vec<RecordId> = peers.iter().map(Record::id).collect();
        expected.sort();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while found() != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "the index shows {:?}, not {expected:?}",
                found()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(writer);
        let _ = (writing.join(), indexing.join());
    }
}
