//! The indexer thread: the search index's single writer in the daemon. It receives every new
//! record from the store's writer and commits what has queued as one, so that a burst of
//! records costs one commit (every commit makes a segment, and segments cost every query):
//! records from peers wait for the burst they came in to end (`PEER_COMMIT_QUIET`, at most
//! 10-20 s) and share its commit; a local write is committed at once.

use super::SearchIndex;
use crate::store::Store;
use crate::writer::IndexJob;
use cailloux_protocol::{Record, RecordId};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

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

/// The writer's side of the indexer's queue, bounded in bytes. A job that must be answered once
/// searchable (a local write) is always queued: its caller waits, so there are few. Records from
/// peers are queued while the records waiting hold less than `bound` bytes; beyond, they are
/// not queued but the indexer is told it is behind, and catches up from the store (which holds
/// them) once its queue is empty. A new town catching up 100,000 records stores them faster
/// than it indexes them: unbounded, this queue held most of them (400 MB) at once.
#[derive(Clone, Debug)]
pub struct IndexQueue {
    tx: mpsc::Sender<(IndexJob, usize)>,
    queued: Arc<AtomicUsize>,
    behind: Arc<AtomicBool>,
    bound: usize,
}

impl IndexQueue {
    /// Queues a job, or leaves it to the indexer's catch-up (see above). Fails only when the
    /// indexer has stopped.
    pub fn send(&self, job: IndexJob) -> Result<(), IndexJob> {
        let bytes = job_bytes(&job);
        if job.reply.is_none() && self.queued.load(Ordering::Acquire) + bytes > self.bound {
            // Before anything the indexer could take: it sees the flag once its queue is empty.
            self.behind.store(true, Ordering::Release);
            return Ok(());
        }
        self.queued.fetch_add(bytes, Ordering::AcqRel);
        self.tx
            .send((job, bytes))
            .map_err(|mpsc::SendError((job, bytes))| {
                self.queued.fetch_sub(bytes, Ordering::AcqRel);
                job
            })
    }
}

fn job_bytes(job: &IndexJob) -> usize {
    job.records
        .iter()
        .chain(&job.revealed)
        .map(|r| r.bytes().len())
        .sum::<usize>()
        + job.hidden.len() * std::mem::size_of::<RecordId>()
}

/// How long the indexer waits on an empty queue before it looks again whether it is behind.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// Records from peers are committed once no other has come for `PEER_COMMIT_QUIET`, and at
/// the latest 10 to 20 s after the first of them (`PEER_COMMIT_DELAY`). A commit costs about
/// the same for one record as for a thousand (a new segment: the writer's arena, a handful of
/// files, later a merge): committed one by one, a burst of gossip or a catch-up round spent most of a small
/// machine's CPU there, and records wait to be forwarded behind it. The records are readable in
/// the store meanwhile (listings, `show`, exports); only search shows them a little later. A
/// local write is committed at once: its caller waits.
pub const PEER_COMMIT_QUIET: Duration = Duration::from_millis(1000);
/// See `PEER_COMMIT_QUIET`: the latest is between this and twice this, drawn at random for
/// each commit. Every node of a network receives a burst at about the same moment; nodes that
/// share a machine (an intercommunal IT service hosting several towns, the scale benchmark)
/// would otherwise all commit at once, and 300 nodes on two cores then stalled for 5 s.
pub const PEER_COMMIT_DELAY: Duration = Duration::from_secs(10);

/// `PEER_COMMIT_DELAY`, stretched by a random factor in [1, 2).
fn commit_deadline(now: Instant) -> Instant {
    use std::hash::BuildHasher;
    // Randomly keyed hasher: a fresh draw each time, without a dependency for it.
    let draw = std::collections::hash_map::RandomState::new().hash_one(now);
    let fraction = (draw >> 11) as f64 / (1u64 << 53) as f64;
    now + PEER_COMMIT_DELAY.mul_f64(1.0 + fraction)
}

/// At most this many records in one commit.
const COMMIT_RECORDS: usize = 4096;

/// `first` and the jobs that come after it, until `PEER_COMMIT_QUIET` passes without one or
/// `commit_deadline`, a job whose caller waits, or `COMMIT_RECORDS` records:
/// one commit. Returns the jobs and their bytes in the queue.
fn gather(
    rx: &mpsc::Receiver<(IndexJob, usize)>,
    first: (IndexJob, usize),
) -> (Vec<IndexJob>, usize) {
    let latest = commit_deadline(Instant::now());
    let records = |j: &IndexJob| j.records.len() + j.revealed.len() + j.hidden.len();
    let (mut count, mut bytes, mut waits) = (records(&first.0), first.1, first.0.reply.is_some());
    let mut jobs = vec![first.0];
    while count < COMMIT_RECORDS && !waits {
        let next = match rx.try_recv() {
            Ok(next) => next,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                let wait = PEER_COMMIT_QUIET.min(latest.saturating_duration_since(Instant::now()));
                match rx.recv_timeout(wait) {
                    Ok(next) => next,
                    Err(_) => break,
                }
            }
        };
        count += records(&next.0);
        bytes += next.1;
        waits |= next.0.reply.is_some();
        jobs.push(next.0);
    }
    (jobs, bytes)
}

/// Starts the thread that keeps `index` current: it first catches up with the store, then
/// indexes what the store writer sends, coalescing whatever has queued into one commit, and
/// catches up with the store again whenever records were left out of its queue (at most
/// `queue_bytes` of records wait in it). It stops when every sender is gone.
pub fn start_indexer(
    index: Arc<SearchIndex>,
    store: Store,
    queue_bytes: usize,
) -> (IndexQueue, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<(IndexJob, usize)>();
    let queued = Arc::new(AtomicUsize::new(0));
    let behind = Arc::new(AtomicBool::new(false));
    let queue = IndexQueue {
        tx,
        queued: queued.clone(),
        behind: behind.clone(),
        bound: queue_bytes,
    };
    let catch_up = move |index: &SearchIndex| {
        if let Err(e) = index.catch_up(&store, &mut |_| {}) {
            tracing::error!("cannot bring the search index up to date: {e}");
        }
    };
    let handle = std::thread::Builder::new()
        .name("search-indexer".into())
        .spawn(move || {
            catch_up(&index);
            loop {
                let first = match rx.try_recv() {
                    Ok(first) => first,
                    Err(mpsc::TryRecvError::Empty) => {
                        // Cleared before the catch-up reads the store: a record left out while
                        // it runs sets it again.
                        if behind.swap(false, Ordering::AcqRel) {
                            catch_up(&index);
                            continue;
                        }
                        match rx.recv_timeout(IDLE_CHECK) {
                            Ok(first) => first,
                            Err(mpsc::RecvTimeoutError::Timeout) => continue,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                };
                let (mut jobs, bytes) = gather(&rx, first);
                let (batch, hidden, revealed) = net(&mut jobs);
                if let Err(e) = index.add(&batch, &hidden, &revealed) {
                    // The records are durable; the index catches up when it is next opened.
                    tracing::error!("cannot index {} record(s): {e}", batch.len());
                }
                // Counted in the queue's bound until committed.
                queued.fetch_sub(bytes, Ordering::AcqRel);
                jobs.into_iter().for_each(IndexJob::done);
            }
            if behind.load(Ordering::Acquire) {
                catch_up(&index);
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the search indexer thread: {e}"));
    (queue, handle)
}
