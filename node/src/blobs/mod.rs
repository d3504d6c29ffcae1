//! The files of records (attachments), beside the store and never in sled: one file per BLAKE3
//! hash under `<home>/blobs/`, with its BLAKE3 tree (a bao "outboard", 64 bytes per 16 KiB)
//! beside it, so that any range of it can be served with a proof against the hash that the
//! record signed, and checked as it arrives.
//!
//! - `kept/`: the town's own files, never removed (the node is where they come from);
//! - `cache/`: other towns' files, fetched on demand, within `blob_cache_mb` (least recently
//!   used out first);
//! - `tmp/`: files being written. A file is written there, verified against its hash, synced,
//!   then renamed into place, so a blob that exists is whole and right; `tmp/` is emptied at
//!   open.
//!
//! Which records list a hash is the store's business (`Store::attachment`); this module knows
//! only bytes and hashes.

mod incoming;
mod transfer;
pub use incoming::{Incoming, Opened};
pub use transfer::{FetchError, MAX_TRANSFERS, Transfers, WINDOW};

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::{BaoTree, BlockSize};
use cailloux_protocol::{BlobHash, MediaType, Recogniser};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// BLAKE3 chunk groups of 16 KiB (2^4 chunks of 1 KiB): the unit a transfer verifies. The
/// outboard costs 64 bytes per group (100 KiB for a 25 MiB file).
pub const BLOCK: BlockSize = BlockSize::from_chunk_log(4);
/// Files are read and written this much at a time.
const IO_BYTES: usize = 256 * 1024;

/// Why a file cannot be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{name}` changed while it was read: it is {got}, and was {expected} when checked")]
    Changed {
        name: String,
        expected: String,
        got: String,
    },
    #[error("{0}")]
    Content(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file's hash, size and type, read from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Examined {
    pub hash: BlobHash,
    pub size: u64,
    pub media_type: MediaType,
}

/// Reads a file once: its size (refused past the limit before anything is read), its BLAKE3
/// hash, and whether its content is the type its name claims. Memory: one read buffer.
pub fn examine(path: &Path, name: &str) -> Result<Examined, BlobError> {
    let claimed = MediaType::from_name(name).ok_or_else(|| {
        BlobError::Content(format!(
            "`{name}` is not of an accepted type; attach {}",
            MediaType::accepted()
        ))
    })?;
    let mut file = File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    cailloux_protocol::attachment::check_size(name, size).map_err(BlobError::Content)?;
    let mut hasher = blake3::Hasher::new();
    let mut recogniser = Recogniser::new(claimed);
    let mut buf = vec![0; IO_BYTES];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > size {
            return Err(BlobError::Content(format!(
                "`{name}` grew while it was read; publish it once it is written"
            )));
        }
        hasher.update(&buf[..n]);
        recogniser.feed(&buf[..n]);
    }
    let media_type = recogniser.finish(name).map_err(BlobError::Content)?;
    Ok(Examined {
        hash: BlobHash(*hasher.finalize().as_bytes()),
        size: read,
        media_type,
    })
}

/// Where a held file is.
#[derive(Clone, Debug)]
pub struct Held {
    pub path: PathBuf,
    pub size: u64,
    pub kept: bool,
}

/// What the blobs take, for `status` and the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub kept_files: u64,
    pub kept_bytes: u64,
    pub cached_files: u64,
    pub cached_bytes: u64,
    pub cache_quota_bytes: u64,
}

#[derive(Debug, Default)]
struct Index {
    kept: HashMap<BlobHash, u64>,
    /// Cached files: size and last use.
    cached: HashMap<BlobHash, (u64, u64)>,
    /// Last use → file: the eviction order.
    by_use: BTreeMap<u64, BlobHash>,
    cached_bytes: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, hash: &BlobHash) {
        self.clock += 1;
        let now = self.clock;
        if let Some((_, used)) = self.cached.get_mut(hash) {
            self.by_use.remove(used);
            *used = now;
            self.by_use.insert(now, *hash);
        }
    }

    fn add_cached(&mut self, hash: BlobHash, size: u64) {
        self.clock += 1;
        if let Some((old, used)) = self.cached.insert(hash, (size, self.clock)) {
            self.by_use.remove(&used);
            self.cached_bytes -= old;
        }
        self.by_use.insert(self.clock, hash);
        self.cached_bytes += size;
    }

    fn remove_cached(&mut self, hash: &BlobHash) -> Option<u64> {
        let (size, used) = self.cached.remove(hash)?;
        self.by_use.remove(&used);
        self.cached_bytes -= size;
        Some(size)
    }
}

/// The blob folder. Cheap to clone, safe to share.
#[derive(Clone, Debug)]
pub struct Blobs {
    root: PathBuf,
    quota: u64,
    index: Arc<Mutex<Index>>,
}

impl Blobs {
    /// Opens (creating) `root`, empties `tmp/`, and reads what is held; the cache's use order
    /// starts as the files' modification times. Then trims the cache to `cache_quota` bytes.
    pub fn open(root: &Path, cache_quota: u64) -> Result<Blobs, BlobError> {
        for sub in ["kept", "cache", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(io(&tmp))? {
            let entry = entry.map_err(io(&tmp))?;
            let _ = std::fs::remove_file(entry.path());
        }
        let mut index = Index::default();
        for (hash, size, _) in scan(&root.join("kept"))? {
            index.kept.insert(hash, size);
        }
        let mut cached = scan(&root.join("cache"))?;
        cached.sort_by_key(|(_, _, modified)| *modified);
        for (hash, size, _) in cached {
            if index.kept.contains_key(&hash) {
                let _ = remove_blob(&root.join("cache"), &hash);
            } else {
                index.add_cached(hash, size);
            }
        }
        let blobs = Blobs {
            root: root.to_owned(),
            quota: cache_quota,
            index: Arc::new(Mutex::new(index)),
        };
        blobs.trim(0);
        Ok(blobs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn place(&self, kept: bool, hash: &BlobHash) -> PathBuf {
        self.root
            .join(if kept { "kept" } else { "cache" })
            .join(hash.to_hex())
    }

    /// The held file of `hash`, marking it used.
    pub fn get(&self, hash: &BlobHash) -> Option<Held> {
        let mut index = self.lock();
        if let Some(size) = index.kept.get(hash) {
            return Some(Held {
                path: self.place(true, hash),
                size: *size,
                kept: true,
            });
        }
        let size = index.cached.get(hash)?.0;
        index.touch(hash);
        Some(Held {
            path: self.place(false, hash),
            size,
            kept: false,
        })
    }

    pub fn has(&self, hash: &BlobHash) -> bool {
        let index = self.lock();
        index.kept.contains_key(hash) || index.cached.contains_key(hash)
    }

    pub fn usage(&self) -> Usage {
        let index = self.lock();
        Usage {
            kept_files: index.kept.len() as u64,
            kept_bytes: index.kept.values().sum(),
            cached_files: index.cached.len() as u64,
            cached_bytes: index.cached_bytes,
            cache_quota_bytes: self.quota,
        }
    }

    /// The cache quota, in bytes.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// The BLAKE3 tree of a held file, to serve ranges of it with their proofs.
    pub fn outboard(&self, hash: &BlobHash) -> Result<PreOrderMemOutboard, BlobError> {
        let held = self
            .get(hash)
            .ok_or_else(|| BlobError::Content(format!("file {hash} is not held here")))?;
        let path = outboard_path(&held.path);
        let data = std::fs::read(&path).map_err(io(&path))?;
        let tree = BaoTree::new(held.size, BLOCK);
        if data.len() as u64 != tree.outboard_size() {
            return Err(BlobError::Content(format!(
                "{}: {} bytes, where a tree of {} bytes has {}",
                path.display(),
                data.len(),
                held.size,
                tree.outboard_size()
            )));
        }
        Ok(PreOrderMemOutboard {
            root: blake3::Hash::from(hash.0),
            tree,
            data,
        })
    }

    /// Copies the file at `source` into the store as `expected` (its hash and size), checking
    /// both as it copies, with its tree beside it: a town's own file when `kept`. Holding it
    /// already is success. The source may have changed since it was examined: then nothing is
    /// stored.
    pub fn add_file(
        &self,
        source: &Path,
        name: &str,
        expected: &Examined,
        kept: bool,
    ) -> Result<(), BlobError> {
        if self.has(&expected.hash) {
            if kept {
                self.keep(&expected.hash)?;
            }
            return Ok(());
        }
        let file = File::open(source).map_err(io(source))?;
        let tmp = self.temporary(&expected.hash);
        let written = self.write_checked(file.take(expected.size + 1), &tmp, name, expected);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(outboard_path(&tmp));
        }
        written?;
        self.install(&tmp, &expected.hash, expected.size, kept)
    }

    /// A fresh temporary path for `hash` (several writers of one hash never share one).
    fn temporary(&self, hash: &BlobHash) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}.{}.{n}", hash.to_hex(), std::process::id()))
    }

    /// Writes `data` to `tmp` and its tree beside it, and checks hash and size.
    fn write_checked(
        &self,
        data: impl Read,
        tmp: &Path,
        name: &str,
        expected: &Examined,
    ) -> Result<(), BlobError> {
        let mut out = File::create(tmp).map_err(io(tmp))?;
        let tree = BaoTree::new(expected.size, BLOCK);
        let mut outboard = PreOrderMemOutboard {
            root: blake3::Hash::from([0; 32]),
            tree,
            data: vec![0; tree.outboard_size() as usize],
        };
        let mut tee = Tee {
            inner: data,
            out: &mut out,
            copied: 0,
            error: None,
        };
        let root = bao_tree::io::sync::outboard(&mut tee, tree, &mut outboard);
        if let Some(e) = tee.error.take() {
            return Err(BlobError::Io {
                path: tmp.to_owned(),
                source: e,
            });
        }
        let mut rest = [0u8; 1];
        let longer = tee.inner.read(&mut rest).map_err(io(tmp))? > 0;
        let changed = |got: String| BlobError::Changed {
            name: name.to_owned(),
            expected: format!("{} bytes with hash {}", expected.size, expected.hash),
            got,
        };
        let root = match root {
            Ok(root) if !longer => root,
            Ok(_) => return Err(changed("longer".into())),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(changed(format!("{} bytes", tee.copied)));
            }
            Err(e) => return Err(io(tmp)(e)),
        };
        if root.as_bytes() != &expected.hash.0 {
            return Err(changed(format!("hash {}", BlobHash(*root.as_bytes()))));
        }
        out.sync_all().map_err(io(tmp))?;
        let ob_path = outboard_path(tmp);
        let mut ob = File::create(&ob_path).map_err(io(&ob_path))?;
        ob.write_all(&outboard.data).map_err(io(&ob_path))?;
        ob.sync_all().map_err(io(&ob_path))
    }

    /// Moves a verified temporary file and its tree into place: the tree first, so a file in
    /// place always has one.
    fn install(&self, tmp: &Path, hash: &BlobHash, size: u64, kept: bool) -> Result<(), BlobError> {
        let place = self.place(kept, hash);
        let ob = outboard_path(tmp);
        let ob_place = outboard_path(&place);
        std::fs::rename(&ob, &ob_place).map_err(io(&ob_place))?;
        std::fs::rename(tmp, &place).map_err(io(&place))?;
        if let Some(dir) = place.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        let mut index = self.lock();
        if kept {
            index.kept.insert(*hash, size);
        } else {
            index.add_cached(*hash, size);
        }
        drop(index);
        if !kept {
            self.trim(0);
        }
        Ok(())
    }

    /// Removes files that `Plan::store_files` added for records that were then refused.
    pub fn remove_new(&self, hashes: &[BlobHash]) {
        let mut index = self.lock();
        for hash in hashes {
            if index.kept.remove(hash).is_some() {
                let _ = remove_blob(&self.root.join("kept"), hash);
            } else if index.remove_cached(hash).is_some() {
                let _ = remove_blob(&self.root.join("cache"), hash);
            }
        }
    }

    /// Makes a cached file the town's own (never evicted).
    pub fn keep(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let mut index = self.lock();
        if index.kept.contains_key(hash) {
            return Ok(());
        }
        let Some(size) = index.remove_cached(hash) else {
            return Ok(());
        };
        let (from, to) = (self.place(false, hash), self.place(true, hash));
        std::fs::rename(outboard_path(&from), outboard_path(&to)).map_err(io(&to))?;
        std::fs::rename(&from, &to).map_err(io(&to))?;
        index.kept.insert(*hash, size);
        Ok(())
    }

    /// Removes least recently used cached files until `room` more bytes fit in the quota.
    /// Returns whether they do (a file larger than the quota never does).
    pub fn trim(&self, room: u64) -> bool {
        let mut index = self.lock();
        while index.cached_bytes.saturating_add(room) > self.quota {
            let Some((_, hash)) = index.by_use.pop_first() else {
                break;
            };
            if let Some((size, _)) = index.cached.remove(&hash) {
                index.cached_bytes -= size;
            }
            let _ = remove_blob(&self.root.join("cache"), &hash);
            tracing::debug!("blob cache: removed {hash} (least recently used)");
        }
        index.cached_bytes.saturating_add(room) <= self.quota
    }
}

fn outboard_path(blob: &Path) -> PathBuf {
    let mut name = blob.file_name().unwrap_or_default().to_owned();
    name.push(".obao");
    blob.with_file_name(name)
}

fn remove_blob(dir: &Path, hash: &BlobHash) -> std::io::Result<()> {
    let path = dir.join(hash.to_hex());
    std::fs::remove_file(&path)?;
    std::fs::remove_file(outboard_path(&path))
}

/// The blobs in a folder: (hash, size, modified). A file without its tree, or with a name that
/// is not a hash, is not a blob: it is removed (left by a crash between the two renames, or
/// put there by hand).
fn scan(dir: &Path) -> Result<Vec<(BlobHash, u64, std::time::SystemTime)>, BlobError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".obao") {
            let blob = dir.join(name.trim_end_matches(".obao"));
            if !blob.exists() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Some(hash) = BlobHash::from_hex(name) else {
            continue;
        };
        if !outboard_path(&path).exists() {
            tracing::warn!("{}: no BLAKE3 tree beside it; removed", path.display());
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let meta = entry.metadata().map_err(io(&path))?;
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        out.push((hash, meta.len(), modified));
    }
    Ok(out)
}

/// A reader that copies what it reads to `out` (the bytes hashed are the bytes written).
struct Tee<'a, R> {
    inner: R,
    out: &'a mut File,
    copied: u64,
    error: Option<std::io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let kind = e.kind();
            self.error = Some(e);
            return Err(std::io::Error::new(kind, "write failed"));
        }
        self.copied += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examined(bytes: &[u8]) -> Examined {
        Examined {
            hash: BlobHash::of(bytes),
            size: bytes.len() as u64,
            media_type: MediaType::Text,
        }
    }

    #[test]
    fn files_are_checked_kept_and_cached_within_the_quota() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap_or_else(|e| panic!("{e}"));
        let blobs =
            Blobs::open(&dir.path().join("blobs"), 250_000).unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, bytes: &[u8]| {
            let path = src.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
            path
        };
        let own = vec![b'k'; 300_000];
        let path = write("own.txt", &own);
        assert_eq!(
            examine(&path, "own.txt").unwrap_or_else(|e| panic!("{e}")),
            examined(&own)
        );
        blobs
            .add_file(&path, "own.txt", &examined(&own), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let held = blobs
            .get(&BlobHash::of(&own))
            .unwrap_or_else(|| panic!("held"));
        assert!(held.kept);
        assert_eq!(std::fs::read(&held.path).unwrap_or_default(), own);
        // The tree beside it proves the hash.
        let ob = blobs
            .outboard(&BlobHash::of(&own))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ob.root.as_bytes(), &BlobHash::of(&own).0);

        // Cached files: the least recently used goes first; kept files never count.
        let (a, b, c) = (
            vec![b'a'; 100_000],
            vec![b'b'; 100_000],
            vec![b'c'; 100_000],
        );
        for (name, bytes) in [("a.txt", &a), ("b.txt", &b)] {
            let p = write(name, bytes);
            blobs
                .add_file(&p, name, &examined(bytes), false)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(blobs.get(&BlobHash::of(&a)).is_some()); // a used after b
        let p = write("c.txt", &c);
        blobs
            .add_file(&p, "c.txt", &examined(&c), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(blobs.has(&BlobHash::of(&a)) && blobs.has(&BlobHash::of(&c)));
        assert!(
            !blobs.has(&BlobHash::of(&b)),
            "b was the least recently used"
        );
        let usage = blobs.usage();
        assert_eq!((usage.kept_files, usage.cached_files), (1, 2));
        assert_eq!(usage.cached_bytes, 200_000);

        // A file that changed since it was examined is not stored, and leaves nothing.
        let p = write("d.txt", b"one text");
        let wrong = examined(b"another text");
        let e = blobs.add_file(&p, "d.txt", &wrong, false);
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("changed while it was read"), "{e}");
        assert!(!blobs.has(&wrong.hash));
        let tmp: Vec<_> = std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        assert!(tmp.is_empty());

        // Reopened: the same files, in the same places.
        drop(blobs);
        let blobs =
            Blobs::open(&dir.path().join("blobs"), 250_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(blobs.usage().kept_files, 1);
        assert_eq!(blobs.usage().cached_files, 2);
    }
}
