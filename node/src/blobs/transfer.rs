//! Fetching files from peers, and answering their requests for files (`/cailloux/blob/1`).
//!
//! A record travels whole; its files do not. When one is asked for (the API, the page,
//! `show --fetch`, an export with files, or a peer), a transfer asks connected peers for
//! it a segment (at most 1 MiB) at a time. Each segment comes as BLAKE3 verified streaming
//! (`bao-tree`): the tree's parents from the root down, then the bytes, so every 16 KiB group is
//! checked against the hash the record signed before it is written, and a corrupt group is
//! caught when it arrives, not when the whole file has come. A peer that serves a corrupt
//! segment is struck like a peer that serves a bad record; the transfer resumes from the last
//! verified group with the next peer. The file is written to `blobs/tmp/` and moved into the
//! cache whole.
//!
//! One transfer per file and claimed size: whoever asks for a file being fetched waits on
//! that transfer (`Transfers::open`, in `incoming`). A peer's
//! request for a file this node lacks, but that one of its records attaches, starts (or joins)
//! a transfer with one hop less (`MAX_BLOB_HOPS`), never asking the requester back, and is
//! answered as soon as the groups it asks for are verified here: a file streams through a chain
//! of nodes instead of being stored and forwarded.
//!
//! Bounds: `MAX_TRANSFERS` files fetched at once and `MAX_ACTIVE` running or waiting (beyond,
//! `Busy`); this node's own fetches wait for a turn (at most `TURN_WAIT`), peers' start at once
//! or are `Busy` (`PEER_TRANSFERS` turns in all, `TRANSFERS_PER_PEER` each); a transfer nobody
//! waits for stops (`ABANDON`); `WINDOW` segment requests in flight per transfer; a transfer
//! holds at most `WINDOW` segments and the file's tree in memory. Requests served per peer are
//! bounded by the network loop.

use super::{BLOCK, BlobError, Blobs};
use crate::network::Client;
use crate::store::Store;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::{DecodeResponseIter, OutboardMut, encode_ranges, encode_ranges_validated};
use bao_tree::io::{BaoContentItem, Leaf, Parent};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use cailloux_protocol::wire::{
    BLOB_GROUP_BYTES, BlobRequest, BlobResponse, MAX_BLOB_HOPS, MAX_BLOB_SEGMENT_GROUPS,
};
use cailloux_protocol::{BlobHash, MediaType, Recogniser};
use libp2p::PeerId;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Files fetched at once.
pub const MAX_TRANSFERS: usize = 4;
/// Of those, started for peers (a chain relaying through this node): one turn is always left
/// for this node's own readers.
const PEER_TRANSFERS: usize = MAX_TRANSFERS - 1;
/// Transfers one peer's requests can have started here at once.
const TRANSFERS_PER_PEER: usize = 2;
/// Transfers running or waiting for a turn: beyond, `Busy` at once.
const MAX_ACTIVE: usize = 16;
/// Distinct sizes tried for one hash, best record's first (each a different signer's claim:
/// `Store::attachments` counts a signer for one size). A record misstating a file's size makes
/// that attempt fail (quickly: honest holders answer `Missing`), not the fetch.
const MAX_SIZES: usize = 8;
/// Segment requests in flight per transfer.
pub const WINDOW: usize = 4;
/// How long a fetch of this node's own waits for a turn.
const TURN_WAIT: Duration = Duration::from_secs(60);
/// How long a peer's request waits for groups not yet here: well within the request timeout
/// (30 s), so that the answer still reaches the asker.
const SERVE_WAIT: Duration = Duration::from_secs(20);
/// A transfer nobody has waited on for this long stops (its reader left).
const ABANDON: Duration = Duration::from_secs(10);
/// How often a transfer waiting on its peer looks whether anyone still waits on it.
const RECHECK: Duration = Duration::from_secs(1);
/// Chunks (1 KiB) per group.
const GROUP_CHUNKS: u64 = 1 << BLOCK.chunk_log();

/// Why a file could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no record held by this node attaches a file with hash {0}")]
    Unknown(BlobHash),
    #[error("no peer served file {hash} (`{name}`): {why}")]
    NotServed {
        hash: BlobHash,
        name: String,
        why: String,
    },
    #[error(
        "file {hash} (`{name}`) is {size} bytes, more than the blob cache holds ({quota} bytes): raise blob_cache_mb"
    )]
    TooLarge {
        hash: BlobHash,
        name: String,
        size: u64,
        quota: u64,
    },
    #[error("too many files are being fetched; try again in a minute")]
    Busy,
    /// Stopped because its readers left (one that joins just then starts it again).
    #[error("the fetch of file {0} stopped: nobody waited for it any more")]
    Abandoned(BlobHash),
    #[error("{0}")]
    Local(String),
}

/// How far a transfer has come: the groups verified and written, from the start.
#[derive(Clone, Debug)]
pub(super) enum Progress {
    Groups(u64),
    /// Every group verified and the content checked against a type its records claim: whole and
    /// right, being synced and installed.
    Checked,
    Done,
    Failed(FetchError),
}

impl Progress {
    /// Whether any group is written.
    pub(super) fn any(&self) -> bool {
        matches!(self, Progress::Groups(n) if *n > 0) || matches!(self, Progress::Checked)
    }
}

/// One claim about a file that records make: its size, and the types records of that size
/// give it. A transfer fetches one claim.
#[derive(Clone, Debug)]
pub(super) struct Wanted {
    hash: BlobHash,
    size: u64,
    /// The best record's name for it (for messages).
    name: String,
    types: Vec<MediaType>,
}

/// Who a transfer is for: this node's readers (who wait for a turn) or a peer's request
/// (which is answered `Busy` rather than wait: it would outlast its timeout).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    Local,
    Peer(PeerId),
}

/// A file being fetched.
pub(super) struct Transfer {
    hash: BlobHash,
    tmp: PathBuf,
    tree: BaoTree,
    turn: Turn,
    /// The file being written, open from the start of the fetch to the end of every read of
    /// it: readers never reopen `tmp`, which the install renames.
    file: OnceLock<Arc<File>>,
    /// The parents received so far (zeros elsewhere).
    outboard: Mutex<PreOrderMemOutboard>,
    /// The content so far against each type claimed (fed in order, as groups are written).
    content: Mutex<Vec<Recogniser>>,
    progress: watch::Sender<Progress>,
}

impl Transfer {
    /// The file being written, once the transfer has its turn.
    pub(super) fn file(&self) -> Option<Arc<File>> {
        self.file.get().cloned()
    }

    pub(super) fn size(&self) -> u64 {
        self.tree.size()
    }
}

/// A transfer joined: the transfer and its progress, or `None` when the file is held now.
pub(super) type Joined = Option<(Arc<Transfer>, watch::Receiver<Progress>)>;

/// The transfers running, by the claim fetched (hash and size).
type Active = HashMap<(BlobHash, u64), Arc<Transfer>>;

/// The node's file transfers. Cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    blobs: Blobs,
    store: Store,
    client: Client,
    metrics: Arc<crate::metrics::Metrics>,
    /// Keyed by the claim fetched (hash and size): a transfer of a size some record misstates
    /// (and that a peer may keep asking for) never stands in for the size another claims.
    active: Arc<Mutex<Active>>,
    turns: Arc<Semaphore>,
    peer_turns: Arc<Semaphore>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers").finish_non_exhaustive()
    }
}

fn groups_of(size: u64) -> u64 {
    size.div_ceil(BLOB_GROUP_BYTES)
}

fn chunk_ranges(start: u64, end: u64) -> ChunkRanges {
    ChunkRanges::from(ChunkNum(start * GROUP_CHUNKS)..ChunkNum(end * GROUP_CHUNKS))
}

/// Why `fetch_from` stopped short: the peer (try the next), or this node (stop).
enum Stop {
    Peer(String),
    Local(FetchError),
}

impl Transfers {
    pub fn new(
        blobs: Blobs,
        store: Store,
        client: Client,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Transfers {
        Transfers {
            blobs,
            store,
            client,
            metrics,
            active: Arc::default(),
            turns: Arc::new(Semaphore::new(MAX_TRANSFERS)),
            peer_turns: Arc::new(Semaphore::new(PEER_TRANSFERS)),
        }
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The claims made about file `hash` by the records that attach it, best record first,
    /// one per size (at most `MAX_SIZES`).
    pub(super) async fn wanted(&self, hash: BlobHash) -> Result<Vec<Wanted>, FetchError> {
        let store = self.store.clone();
        let candidates = tokio::task::spawn_blocking(move || store.attachments(&hash))
            .await
            .map_err(|e| FetchError::Local(e.to_string()))?
            .map_err(|e| FetchError::Local(e.to_string()))?;
        let mut wanted: Vec<Wanted> = Vec::new();
        for (a, _) in candidates {
            if let Some(w) = wanted.iter_mut().find(|w| w.size == a.size) {
                if !w.types.contains(&a.media_type) {
                    w.types.push(a.media_type);
                }
            } else if wanted.len() < MAX_SIZES {
                wanted.push(Wanted {
                    hash,
                    size: a.size,
                    name: a.name,
                    types: vec![a.media_type],
                });
            }
        }
        if wanted.is_empty() {
            return Err(FetchError::Unknown(hash));
        }
        Ok(wanted)
    }

    /// The transfer of `w` (whoever started it), or one started now for this node's own
    /// readers, passing requests on `hops` more times.
    pub(super) fn join(&self, w: &Wanted, hops: u8) -> Result<Joined, FetchError> {
        self.join_or_start(w, Turn::Local, hops)
    }

    /// The transfer of `w` (its hash at its size), started now for `turn` if none runs; `None`
    /// when the file is held.
    fn join_or_start(&self, w: &Wanted, turn: Turn, hops: u8) -> Result<Joined, FetchError> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = active.get(&(w.hash, w.size)) {
            return Ok(Some((t.clone(), t.progress.subscribe())));
        }
        // A transfer installs the file before it leaves `active`.
        if self.blobs.has(&w.hash) {
            return Ok(None);
        }
        if w.size > self.blobs.quota() {
            return Err(FetchError::TooLarge {
                hash: w.hash,
                name: w.name.clone(),
                size: w.size,
                quota: self.blobs.quota(),
            });
        }
        if active.len() >= MAX_ACTIVE {
            return Err(FetchError::Busy);
        }
        // A peer's transfer starts now or not at all.
        let permits = match turn {
            Turn::Local => None,
            Turn::Peer(peer) => {
                if active.values().filter(|t| t.turn == turn).count() >= TRANSFERS_PER_PEER {
                    tracing::debug!("{peer} has {TRANSFERS_PER_PEER} transfers started here");
                    return Err(FetchError::Busy);
                }
                let peer_turn = self.peer_turns.clone().try_acquire_owned();
                let turn = self.turns.clone().try_acquire_owned();
                match (peer_turn, turn) {
                    (Ok(p), Ok(t)) => Some((p, t)),
                    _ => return Err(FetchError::Busy),
                }
            }
        };
        let tree = BaoTree::new(w.size, BLOCK);
        let transfer = Arc::new(Transfer {
            hash: w.hash,
            tmp: self.blobs.temporary(&w.hash),
            tree,
            turn,
            file: OnceLock::new(),
            outboard: Mutex::new(PreOrderMemOutboard {
                root: blake3::Hash::from(w.hash.0),
                tree,
                data: vec![0; tree.outboard_size() as usize],
            }),
            content: Mutex::new(w.types.iter().map(|t| Recogniser::new(*t)).collect()),
            progress: watch::Sender::new(Progress::Groups(0)),
        });
        let receiver = transfer.progress.subscribe();
        active.insert((w.hash, w.size), transfer.clone());
        drop(active);
        let this = self.clone();
        let (w, t) = (w.clone(), transfer.clone());
        tokio::spawn(async move {
            let result = async {
                let _turns = match permits {
                    Some((peer_turn, turn)) => (Some(peer_turn), turn),
                    None => (None, this.wait_turn(&t).await?),
                };
                let asker = match turn {
                    Turn::Peer(peer) => Some(peer),
                    Turn::Local => None,
                };
                this.run(&w, &t, asker, hops).await
            }
            .await;
            let _ = std::fs::remove_file(&t.tmp);
            this.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(w.hash, w.size));
            match result {
                Ok(()) => {
                    this.metrics.blobs_fetched.inc();
                    t.progress.send_replace(Progress::Done);
                }
                Err(e) => {
                    tracing::info!("{e}");
                    t.progress.send_replace(Progress::Failed(e));
                }
            }
        });
        Ok(Some((transfer, receiver)))
    }

    /// A turn for this node's own transfer: waited for at most `TURN_WAIT`, and only while
    /// someone still waits for the file.
    async fn wait_turn(&self, t: &Transfer) -> Result<OwnedSemaphorePermit, FetchError> {
        tokio::select! {
            turn = tokio::time::timeout(TURN_WAIT, self.turns.clone().acquire_owned()) => {
                turn.map_err(|_| FetchError::Busy)?.map_err(|_| FetchError::Busy)
            }
            () = t.progress.closed() => Err(FetchError::Abandoned(t.hash)),
        }
    }

    /// Fetches the whole file into `t.tmp`, then installs it in the cache.
    async fn run(
        &self,
        w: &Wanted,
        t: &Arc<Transfer>,
        asker: Option<PeerId>,
        hops: u8,
    ) -> Result<(), FetchError> {
        let local = |e: std::io::Error| FetchError::Local(format!("{}: {e}", t.tmp.display()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&t.tmp)
            .map_err(local)?;
        file.set_len(w.size).map_err(local)?;
        let file = t.file.get_or_init(|| Arc::new(file)).clone();
        let total = groups_of(w.size);
        let mut done = 0u64;
        // Since when nobody has waited for the file (across peers: a new peer is no reader).
        let mut unwanted_since = None;
        let mut why = String::from("no peer is connected");
        let peers = self
            .client
            .peers()
            .await
            .map_err(|e| FetchError::Local(e.to_string()))?;
        for peer in peers
            .iter()
            .filter_map(|p| p.peer_id.parse::<PeerId>().ok())
        {
            if Some(peer) == asker || done == total {
                continue;
            }
            match self
                .fetch_from(
                    w,
                    t,
                    &file,
                    peer,
                    (&mut done, total),
                    &mut unwanted_since,
                    hops,
                )
                .await
            {
                Ok(()) => break,
                Err(Stop::Peer(e)) => why = e,
                Err(Stop::Local(e)) => return Err(e),
            }
        }
        if done < total {
            return Err(FetchError::NotServed {
                hash: w.hash,
                name: w.name.clone(),
                why,
            });
        }
        // The content is checked against the types its records claim, as at publish: a town
        // that signed an HTML page as a PDF gets no help spreading it.
        let content = std::mem::take(&mut *t.content.lock().unwrap_or_else(|p| p.into_inner()));
        let mut refused = Vec::new();
        for recogniser in content {
            match recogniser.finish(&w.name) {
                Ok(_) => {
                    refused.clear();
                    break;
                }
                Err(why) => refused.push(why),
            }
        }
        if !refused.is_empty() {
            return Err(FetchError::NotServed {
                hash: w.hash,
                name: w.name.clone(),
                why: format!(
                    "its content is not what its records say: {}",
                    refused.join("; ")
                ),
            });
        }
        // Peers may have the last group now; this node's own readers once it is installed.
        t.progress.send_replace(Progress::Checked);
        let (blobs, tmp, outboard, hash, size) = (
            self.blobs.clone(),
            t.tmp.clone(),
            t.outboard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .data
                .clone(),
            w.hash,
            w.size,
        );
        tokio::task::spawn_blocking(move || -> Result<(), FetchError> {
            file.sync_all()
                .map_err(|e| FetchError::Local(format!("{}: {e}", tmp.display())))?;
            blobs
                .install_fetched(&tmp, &hash, size, &outboard)
                .map_err(|e| FetchError::Local(e.to_string()))
        })
        .await
        .map_err(|e| FetchError::Local(e.to_string()))?
    }

    /// Fetches from `peer`, from group `done` of `total` on, with `WINDOW` segments in
    /// flight, advancing `done` as groups are verified. An error says why this peer did not
    /// finish, or why the transfer stops.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_from(
        &self,
        w: &Wanted,
        t: &Arc<Transfer>,
        file: &Arc<File>,
        peer: PeerId,
        (done, total): (&mut u64, u64),
        unwanted_since: &mut Option<Instant>,
        hops: u8,
    ) -> Result<(), Stop> {
        use futures::stream::{FuturesOrdered, StreamExt};
        let mut next = *done;
        let mut in_flight = FuturesOrdered::new();
        let request = |start: u64| {
            let groups = (total - start).min(u64::from(MAX_BLOB_SEGMENT_GROUPS));
            let client = self.client.clone();
            let req = BlobRequest {
                hash: w.hash,
                size: w.size,
                start,
                groups: groups as u32,
                hops: hops.saturating_sub(1),
            };
            async move { (start, start + groups, client.blob_request(peer, req).await) }
        };
        while *done < total {
            // A reader that left (a closed page, a peer that stopped asking) leaves nobody to
            // fetch for.
            if t.progress.receiver_count() > 0 {
                *unwanted_since = None;
            } else if unwanted_since.get_or_insert_with(Instant::now).elapsed() > ABANDON {
                return Err(Stop::Local(FetchError::Abandoned(w.hash)));
            }
            while in_flight.len() < WINDOW && next < total {
                in_flight.push_back(request(next));
                next = (next + u64::from(MAX_BLOB_SEGMENT_GROUPS)).min(total);
            }
            // Looked at again every `RECHECK` while answers are slow to come.
            let arrived = tokio::select! {
                arrived = in_flight.next() => arrived,
                () = tokio::time::sleep(RECHECK) => continue,
            };
            let Some((start, end, answer)) = arrived else {
                break;
            };
            let bytes = match answer {
                Ok(BlobResponse::Segment(bytes)) => bytes,
                Ok(BlobResponse::Missing) => {
                    return Err(Stop::Peer(format!("{peer} does not hold it")));
                }
                Ok(BlobResponse::Busy) => return Err(Stop::Peer(format!("{peer} is busy"))),
                Err(e) => return Err(Stop::Peer(format!("{peer}: {e}"))),
            };
            let (t2, file2) = (t.clone(), file.clone());
            let checked =
                tokio::task::spawn_blocking(move || write_segment(&t2, &file2, start, end, &bytes))
                    .await
                    .map_err(|e| Stop::Local(FetchError::Local(e.to_string())))?;
            match checked {
                Ok(()) => {}
                Err(Segment::Unwritten(e)) => {
                    return Err(Stop::Local(FetchError::Local(format!(
                        "this node could not write {}: {e}",
                        t.tmp.display()
                    ))));
                }
                Err(Segment::Corrupt(e)) => {
                    tracing::warn!(
                        "{peer} served a corrupt segment of file {} (groups {start}..{end}): {e}",
                        w.hash.short()
                    );
                    self.metrics.reject("corrupt_file");
                    self.client.strike(peer).await;
                    return Err(Stop::Peer(format!("{peer} served corrupt bytes")));
                }
            }
            // A file whose head already refutes every type its records claim is not fetched
            // further (nor sent on to readers) only to be refused at the end.
            let refused = {
                let content = t.content.lock().unwrap_or_else(|p| p.into_inner());
                !content.is_empty() && content.iter().all(Recogniser::refused_already)
            };
            if refused {
                return Err(Stop::Local(FetchError::NotServed {
                    hash: w.hash,
                    name: w.name.clone(),
                    why: format!(
                        "its content is not what its records say: it does not start like a {}",
                        w.types
                            .iter()
                            .map(|t| t.label())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                }));
            }
            *done = end;
            t.progress.send_replace(Progress::Groups(end));
        }
        Ok(())
    }

    /// Answers a peer's request for a segment.
    pub async fn serve(&self, request: BlobRequest, asker: PeerId) -> BlobResponse {
        let BlobRequest {
            hash,
            size,
            start,
            groups,
            hops,
        } = request;
        // A range this protocol never asks for is not answered with another one.
        if !(1..=MAX_BLOB_SEGMENT_GROUPS).contains(&groups) {
            return BlobResponse::Missing;
        }
        let end = start.saturating_add(u64::from(groups)).min(groups_of(size));
        if start >= end {
            return BlobResponse::Missing;
        }
        let hops = hops.min(MAX_BLOB_HOPS - 1);
        if let Some(held) = self.blobs.get(&hash) {
            return self.serve_held(held, hash, size, start, end).await;
        }
        // Being fetched here, or one of this node's records attaches it at this size: answer
        // as soon as the groups asked for are here.
        let running = {
            let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active
                .get(&(hash, size))
                .map(|t| (t.clone(), t.progress.subscribe()))
        };
        let (transfer, mut progress) = match running {
            Some(joined) => joined,
            None if hops > 0 => {
                let Ok(wanted) = self.wanted(hash).await else {
                    return BlobResponse::Missing;
                };
                let Some(w) = wanted.into_iter().find(|w| w.size == size) else {
                    return BlobResponse::Missing;
                };
                match self.join_or_start(&w, Turn::Peer(asker), hops) {
                    Ok(Some(joined)) => joined,
                    Ok(None) => match self.blobs.get(&hash) {
                        Some(held) => return self.serve_held(held, hash, size, start, end).await,
                        None => return BlobResponse::Missing,
                    },
                    Err(FetchError::Busy) => return BlobResponse::Busy,
                    Err(_) => return BlobResponse::Missing,
                }
            }
            None => return BlobResponse::Missing,
        };
        let arrived = tokio::time::timeout(SERVE_WAIT, async {
            loop {
                match &*progress.borrow_and_update() {
                    Progress::Groups(n) if *n >= end => return true,
                    Progress::Groups(_) => {}
                    Progress::Done | Progress::Checked => return true,
                    Progress::Failed(_) => return false,
                }
                if progress.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false);
        let Some(file) = transfer.file().filter(|_| arrived) else {
            return BlobResponse::Missing;
        };
        // Read from the transfer's own file (installed or not) and tree: verified on arrival,
        // moments ago, so not hashed again.
        tokio::task::spawn_blocking(move || {
            let outboard = transfer
                .outboard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut out = Vec::with_capacity(((end - start) * BLOB_GROUP_BYTES) as usize + 4096);
            encode_ranges(&*file, &outboard, &chunk_ranges(start, end), &mut out).ok()?;
            Some(out)
        })
        .await
        .ok()
        .flatten()
        .map_or(BlobResponse::Missing, BlobResponse::Segment)
    }

    /// Groups `start..end` of a held file, if it has the size asked for.
    async fn serve_held(
        &self,
        held: super::Held,
        hash: BlobHash,
        size: u64,
        start: u64,
        end: u64,
    ) -> BlobResponse {
        if held.size != size {
            return BlobResponse::Missing;
        }
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            let outboard = blobs.outboard(&hash).ok()?;
            let data = File::open(&held.path).ok()?;
            encode(data, &outboard, start, end)
        })
        .await
        .ok()
        .flatten()
        .map_or(BlobResponse::Missing, BlobResponse::Segment)
    }
}

/// The verified-streaming encoding of groups `start..end`, checked against the tree as it is
/// read (a file damaged on this disk is not served).
fn encode(data: File, outboard: &PreOrderMemOutboard, start: u64, end: u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(((end - start) * BLOB_GROUP_BYTES) as usize + 4096);
    match encode_ranges_validated(data, outboard, &chunk_ranges(start, end), &mut out) {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::error!("a held file does not match its tree: {e}");
            None
        }
    }
}

/// Why a segment was not taken: the peer's bytes, or this node's disk.
enum Segment {
    Corrupt(String),
    Unwritten(String),
}

/// Checks a segment against the tree and writes its bytes: every parent and every group is
/// verified from the root before anything is written.
fn write_segment(
    t: &Transfer,
    file: &File,
    start: u64,
    end: u64,
    bytes: &[u8],
) -> Result<(), Segment> {
    let ranges = chunk_ranges(start, end);
    let mut outboard = t.outboard.lock().unwrap_or_else(|p| p.into_inner());
    let root = outboard.root;
    let mut cursor = std::io::Cursor::new(bytes);
    let mut parents = Vec::new();
    let mut leaves = Vec::new();
    for item in DecodeResponseIter::new(root, t.tree, &mut cursor, &ranges) {
        match item.map_err(|e| Segment::Corrupt(e.to_string()))? {
            BaoContentItem::Parent(Parent { node, pair }) => parents.push((node, pair)),
            BaoContentItem::Leaf(Leaf { offset, data }) => leaves.push((offset, data)),
        }
    }
    if cursor.position() != bytes.len() as u64 {
        return Err(Segment::Corrupt(format!(
            "{} bytes after the segment",
            bytes.len() as u64 - cursor.position()
        )));
    }
    for (node, pair) in parents {
        outboard
            .save(node, &pair)
            .map_err(|e| Segment::Unwritten(e.to_string()))?;
    }
    drop(outboard);
    // Segments are written in order, and a segment's groups come in order.
    let mut content = t.content.lock().unwrap_or_else(|p| p.into_inner());
    for (offset, data) in leaves {
        file.write_all_at(&data, offset)
            .map_err(|e| Segment::Unwritten(e.to_string()))?;
        for recogniser in content.iter_mut() {
            recogniser.feed(&data);
        }
    }
    Ok(())
}

impl Blobs {
    /// Moves a fully fetched and verified file into the cache, with its tree.
    pub(super) fn install_fetched(
        &self,
        tmp: &std::path::Path,
        hash: &BlobHash,
        size: u64,
        outboard: &[u8],
    ) -> Result<(), BlobError> {
        if !self.trim(size) {
            return Err(BlobError::Content(format!(
                "file {hash} ({size} bytes) does not fit in the blob cache"
            )));
        }
        let ob = super::outboard_path(tmp);
        std::fs::write(&ob, outboard).map_err(super::io(&ob))?;
        File::open(&ob)
            .and_then(|f| f.sync_all())
            .map_err(super::io(&ob))?;
        self.install(tmp, hash, size, false)
    }
}
