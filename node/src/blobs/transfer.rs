//! Fetching files from peers, and answering their requests for files (`/cailloux/blob/1`).
//!
//! A record travels whole; its files do not. When one is asked for (the API, the page,
//! `show --fetch`, an export with files, or a peer), `Transfers::fetch` asks connected peers for
//! it a segment (at most 1 MiB) at a time. Each segment comes as BLAKE3 verified streaming
//! (`bao-tree`): the tree's parents from the root down, then the bytes, so every 16 KiB group is
//! checked against the hash the record signed before it is written, and a corrupt group is
//! caught when it arrives, not when the whole file has come. A peer that serves a corrupt
//! segment is struck like a peer that serves a bad record; the transfer resumes from the last
//! verified group with the next peer. The file is written to `blobs/tmp/` and moved into the
//! cache whole.
//!
//! One transfer per file: whoever asks for a file being fetched waits on that transfer. A peer's
//! request for a file this node lacks, but that one of its records attaches, starts (or joins)
//! a transfer with one hop less (`MAX_BLOB_HOPS`), never asking the requester back, and is
//! answered as soon as the groups it asks for are verified here: a file streams through a chain
//! of nodes instead of being stored and forwarded.
//!
//! Bounds: `MAX_TRANSFERS` files fetched at once (beyond, a fetch waits for a turn, at most
//! `TURN_WAIT`); `WINDOW` segment requests in flight per transfer; a transfer holds at most
//! `WINDOW` segments and the file's tree in memory. Requests served per peer are bounded by the
//! network loop.

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
use cailloux_protocol::{Attachment, BlobHash, Recogniser};
use libp2p::PeerId;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Files fetched at once.
pub const MAX_TRANSFERS: usize = 4;
/// Segment requests in flight per transfer.
pub const WINDOW: usize = 4;
/// How long a fetch of this node's own waits for a turn.
const TURN_WAIT: Duration = Duration::from_secs(60);
/// How long a peer's request waits for groups not yet here: well within the request timeout
/// (30 s), so that the answer still reaches the asker.
const SERVE_WAIT: Duration = Duration::from_secs(20);
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
    #[error("{0}")]
    Local(String),
}

/// How far a transfer has come: the groups verified and written, from the start.
#[derive(Clone, Debug)]
pub(super) enum Progress {
    Groups(u64),
    /// Every group verified and the content checked against the record's type: whole and
    /// right, being synced and installed.
    Checked,
    Done,
    Failed(FetchError),
}

impl Progress {
    /// Whether any group is written (so the temporary file exists).
    pub(super) fn any(&self) -> bool {
        matches!(self, Progress::Groups(n) if *n > 0) || matches!(self, Progress::Checked)
    }
}

/// A file being fetched.
struct Transfer {
    tmp: PathBuf,
    tree: BaoTree,
    /// The parents received so far (zeros elsewhere).
    outboard: Mutex<PreOrderMemOutboard>,
    /// The content so far against the record's type (fed in order, as groups are written).
    content: Mutex<Recogniser>,
    progress: watch::Sender<Progress>,
}

/// The node's file transfers. Cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    blobs: Blobs,
    store: Store,
    client: Client,
    metrics: Arc<crate::metrics::Metrics>,
    active: Arc<Mutex<HashMap<BlobHash, Arc<Transfer>>>>,
    turns: Arc<Semaphore>,
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
        }
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Makes sure this node holds the file `hash` that one of its records attaches, fetching it
    /// from peers if needed.
    pub async fn fetch(&self, hash: BlobHash) -> Result<(), FetchError> {
        self.fetch_for(hash, None, MAX_BLOB_HOPS).await
    }

    pub(super) async fn attachment(&self, hash: BlobHash) -> Result<Attachment, FetchError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.attachment(&hash))
            .await
            .map_err(|e| FetchError::Local(e.to_string()))?
            .map_err(|e| FetchError::Local(e.to_string()))?
            .map(|(a, _)| a)
            .ok_or(FetchError::Unknown(hash))
    }

    /// `fetch`, on behalf of `asker` (never asked back), passing the request on `hops` more
    /// times.
    async fn fetch_for(
        &self,
        hash: BlobHash,
        asker: Option<PeerId>,
        hops: u8,
    ) -> Result<(), FetchError> {
        if self.blobs.has(&hash) {
            return Ok(());
        }
        let attachment = self.attachment(hash).await?;
        let mut progress = self.join_or_start(&attachment, asker, hops)?;
        loop {
            match &*progress.borrow_and_update() {
                Progress::Done => return Ok(()),
                Progress::Failed(e) => return Err(e.clone()),
                Progress::Groups(_) | Progress::Checked => {}
            }
            if progress.changed().await.is_err() {
                return if self.blobs.has(&hash) {
                    Ok(())
                } else {
                    Err(FetchError::Local("the transfer stopped".into()))
                };
            }
        }
    }

    /// The progress of this node's own transfer of `a` (started now if none runs) and the
    /// temporary file it writes.
    pub(super) fn watch(
        &self,
        a: &Attachment,
        hops: u8,
    ) -> Result<(watch::Receiver<Progress>, PathBuf), FetchError> {
        let progress = self.join_or_start(a, None, hops)?;
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = active
            .get(&a.hash)
            .map(|t| t.tmp.clone())
            .unwrap_or_default();
        Ok((progress, tmp))
    }

    /// The progress of the transfer of `a`, started now if none runs.
    fn join_or_start(
        &self,
        a: &Attachment,
        asker: Option<PeerId>,
        hops: u8,
    ) -> Result<watch::Receiver<Progress>, FetchError> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = active.get(&a.hash) {
            return Ok(t.progress.subscribe());
        }
        if a.size > self.blobs.quota() {
            return Err(FetchError::TooLarge {
                hash: a.hash,
                name: a.name.clone(),
                size: a.size,
                quota: self.blobs.quota(),
            });
        }
        let tree = BaoTree::new(a.size, BLOCK);
        let transfer = Arc::new(Transfer {
            tmp: self.blobs.temporary(&a.hash),
            tree,
            outboard: Mutex::new(PreOrderMemOutboard {
                root: blake3::Hash::from(a.hash.0),
                tree,
                data: vec![0; tree.outboard_size() as usize],
            }),
            content: Mutex::new(Recogniser::new(a.media_type)),
            progress: watch::Sender::new(Progress::Groups(0)),
        });
        let receiver = transfer.progress.subscribe();
        active.insert(a.hash, transfer.clone());
        drop(active);
        let this = self.clone();
        let a = a.clone();
        tokio::spawn(async move {
            let result = this.run(&a, &transfer, asker, hops).await;
            let _ = std::fs::remove_file(&transfer.tmp);
            this.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&a.hash);
            match result {
                Ok(()) => {
                    this.metrics.blobs_fetched.inc();
                    transfer.progress.send_replace(Progress::Done);
                }
                Err(e) => {
                    tracing::info!("{e}");
                    transfer.progress.send_replace(Progress::Failed(e));
                }
            }
        });
        Ok(receiver)
    }

    /// Fetches the whole file into `t.tmp`, then installs it in the cache.
    async fn run(
        &self,
        a: &Attachment,
        t: &Arc<Transfer>,
        asker: Option<PeerId>,
        hops: u8,
    ) -> Result<(), FetchError> {
        let _turn = tokio::time::timeout(TURN_WAIT, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| FetchError::Busy)?
            .map_err(|_| FetchError::Busy)?;
        let local = |e: std::io::Error| FetchError::Local(format!("{}: {e}", t.tmp.display()));
        let file = File::create(&t.tmp).map_err(local)?;
        file.set_len(a.size).map_err(local)?;
        let file = Arc::new(file);
        let total = groups_of(a.size);
        let mut done = 0u64;
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
                .fetch_from(a, t, &file, peer, &mut done, total, hops)
                .await
            {
                Ok(()) => break,
                Err(e) => why = e,
            }
        }
        if done < total {
            return Err(FetchError::NotServed {
                hash: a.hash,
                name: a.name.clone(),
                why,
            });
        }
        // The content is checked against the type its record claims, as at publish: a town
        // that signed an HTML page as a PDF gets no help spreading it.
        let content = std::mem::replace(
            &mut *t.content.lock().unwrap_or_else(|p| p.into_inner()),
            Recogniser::new(a.media_type),
        );
        content
            .finish(&a.name)
            .map_err(|why| FetchError::NotServed {
                hash: a.hash,
                name: a.name.clone(),
                why: format!("its content is not what its record says: {why}"),
            })?;
        // Peers may have the last group now; this node's own readers once it is installed.
        t.progress.send_replace(Progress::Checked);
        file.sync_all().map_err(local)?;
        drop(file);
        let (blobs, tmp, outboard, a2) = (
            self.blobs.clone(),
            t.tmp.clone(),
            t.outboard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .data
                .clone(),
            a.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<(), FetchError> {
            blobs
                .install_fetched(&tmp, &a2.hash, a2.size, &outboard)
                .map_err(|e| FetchError::Local(e.to_string()))
        })
        .await
        .map_err(|e| FetchError::Local(e.to_string()))?
    }

    /// Fetches from `peer`, from group `done` on, with `WINDOW` segments in flight, advancing
    /// `done` as groups are verified. An error says why this peer did not finish.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_from(
        &self,
        a: &Attachment,
        t: &Arc<Transfer>,
        file: &Arc<File>,
        peer: PeerId,
        done: &mut u64,
        total: u64,
        hops: u8,
    ) -> Result<(), String> {
        use futures::stream::{FuturesOrdered, StreamExt};
        let mut next = *done;
        let mut in_flight = FuturesOrdered::new();
        let request = |start: u64| {
            let groups = (total - start).min(u64::from(MAX_BLOB_SEGMENT_GROUPS));
            let client = self.client.clone();
            let req = BlobRequest {
                hash: a.hash,
                size: a.size,
                start,
                groups: groups as u32,
                hops: hops.saturating_sub(1),
            };
            async move { (start, start + groups, client.blob_request(peer, req).await) }
        };
        while *done < total {
            while in_flight.len() < WINDOW && next < total {
                in_flight.push_back(request(next));
                next = (next + u64::from(MAX_BLOB_SEGMENT_GROUPS)).min(total);
            }
            let Some((start, end, answer)) = in_flight.next().await else {
                break;
            };
            let bytes = match answer {
                Ok(BlobResponse::Segment(bytes)) => bytes,
                Ok(BlobResponse::Missing) => return Err(format!("{peer} does not hold it")),
                Ok(BlobResponse::Busy) => return Err(format!("{peer} is busy")),
                Err(e) => return Err(format!("{peer}: {e}")),
            };
            let (t2, file2) = (t.clone(), file.clone());
            let checked =
                tokio::task::spawn_blocking(move || write_segment(&t2, &file2, start, end, &bytes))
                    .await
                    .map_err(|e| e.to_string())?;
            if let Err(Segment::Unwritten(e)) = checked {
                return Err(format!("this node could not write the file: {e}"));
            }
            if let Err(Segment::Corrupt(e)) = checked {
                tracing::warn!(
                    "{peer} served a corrupt segment of file {} (groups {start}..{end}): {e}",
                    a.hash.short()
                );
                self.metrics.reject("corrupt_file");
                self.client.strike(peer).await;
                return Err(format!("{peer} served corrupt bytes"));
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
        let groups = u64::from(groups);
        let hops = hops.min(MAX_BLOB_HOPS - 1);
        if let Some(held) = self.blobs.get(&hash) {
            if held.size != size {
                return BlobResponse::Missing;
            }
            let blobs = self.blobs.clone();
            let end = (start.saturating_add(groups)).min(groups_of(held.size));
            if start >= end {
                return BlobResponse::Missing;
            }
            return tokio::task::spawn_blocking(move || {
                let outboard = blobs.outboard(&hash).ok()?;
                let data = File::open(&held.path).ok()?;
                encode(data, &outboard, start, end)
            })
            .await
            .ok()
            .flatten()
            .map_or(BlobResponse::Missing, BlobResponse::Segment);
        }
        // Being fetched here, or one of this node's records attaches it: answer as soon as
        // the groups asked for are here.
        let transfer = {
            let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.get(&hash).cloned()
        };
        let transfer = match transfer {
            Some(t) => t,
            None if hops > 0 => {
                let Ok(a) = self.attachment(hash).await else {
                    return BlobResponse::Missing;
                };
                if a.size != size {
                    return BlobResponse::Missing;
                }
                // A peer's request never waits for a turn: it would outlast its timeout.
                if self.turns.available_permits() == 0 {
                    return BlobResponse::Busy;
                }
                match self.join_or_start(&a, Some(asker), hops) {
                    Ok(_) => {}
                    Err(FetchError::Busy) => return BlobResponse::Busy,
                    Err(_) => return BlobResponse::Missing,
                }
                let found = self
                    .active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&hash)
                    .cloned();
                match found {
                    Some(t) => t,
                    // Finished meanwhile.
                    None if self.blobs.has(&hash) => {
                        return Box::pin(self.serve(request, asker)).await;
                    }
                    None => return BlobResponse::Missing,
                }
            }
            None => return BlobResponse::Missing,
        };
        if transfer.tree.size() != size {
            return BlobResponse::Missing;
        }
        let total = groups_of(size);
        let end = start.saturating_add(groups).min(total);
        if start >= end {
            return BlobResponse::Missing;
        }
        let mut progress = transfer.progress.subscribe();
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
        if !arrived {
            return BlobResponse::Missing;
        }
        if self.blobs.has(&hash) {
            return Box::pin(self.serve(request, asker)).await;
        }
        let served = tokio::task::spawn_blocking(move || {
            let outboard = transfer
                .outboard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let data = File::open(&transfer.tmp).ok()?;
            // Verified on arrival, moments ago: not hashed again.
            encode_verified(data, &outboard, start, end)
        })
        .await
        .ok()
        .flatten();
        match served {
            Some(segment) => BlobResponse::Segment(segment),
            // Installed between the check above and the read: the temporary file is now the
            // held one.
            None if self.blobs.has(&hash) => Box::pin(self.serve(request, asker)).await,
            None => BlobResponse::Missing,
        }
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

/// `encode` for groups this transfer verified as they came (a partial file being fetched).
fn encode_verified(
    data: File,
    outboard: &PreOrderMemOutboard,
    start: u64,
    end: u64,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(((end - start) * BLOB_GROUP_BYTES) as usize + 4096);
    encode_ranges(data, outboard, &chunk_ranges(start, end), &mut out).ok()?;
    Some(out)
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
        content.feed(&data);
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
