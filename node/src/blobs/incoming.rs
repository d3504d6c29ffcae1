//! A file read while it is being fetched. The API answers a file this node lacks as its groups
//! are verified, rather than once the whole file has come and been synced: the first bytes
//! leave at once, and the time to fetch and the time to send overlap.
//!
//! Invariant: nothing unverified is read (only groups the transfer has checked and written),
//! and the last group is held back until the transfer is done: the whole file verified, its
//! content checked against a type its records claim, and installed (so a reader that has the whole
//! answer finds the node holding the file). A transfer that fails ends the
//! stream with an error before its last byte, so a reader never takes a file that did not pass
//! for a whole one (the HTTP answer is cut short of its `Content-Length`).

use super::transfer::{Progress, Transfers, Wanted};
use super::{FetchError, Held};
use cailloux_protocol::BlobHash;
use cailloux_protocol::wire::{BLOB_GROUP_BYTES, MAX_BLOB_HOPS};
use futures::Stream;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::sync::watch;

/// Bytes read at a time.
const READ_BYTES: u64 = 256 * 1024;

/// A file to read: held whole, or coming.
#[derive(Debug)]
pub enum Opened {
    Held(Held),
    Incoming(Incoming),
}

/// A file being fetched, read as it is verified.
#[derive(Debug)]
pub struct Incoming {
    file: Arc<File>,
    progress: watch::Receiver<Progress>,
    size: u64,
    read: u64,
}

impl Transfers {
    /// The file `hash` that one of this node's records attaches: held, or being fetched from
    /// the peers (started now if need be) once its first group is here; each size the records
    /// claim for it in turn. An error when no peer serves even that.
    pub async fn open(&self, hash: BlobHash) -> Result<Opened, FetchError> {
        let held = || {
            self.blobs()
                .get(&hash)
                .map(Opened::Held)
                .ok_or_else(|| FetchError::Local(format!("file {hash} was fetched and is gone")))
        };
        if self.blobs().has(&hash) {
            return held();
        }
        let mut last = FetchError::Unknown(hash);
        for wanted in self.wanted(hash).await? {
            // A transfer that stopped for want of readers just as this one joined is started
            // again (once: a second stop is not a race).
            for _ in 0..2 {
                match self.follow(&wanted).await {
                    Ok(Some(opened)) => return Ok(opened),
                    Ok(None) => return held(),
                    Err(e @ FetchError::Abandoned(_)) => last = e,
                    // This claim (its size) failed: the next one may hold.
                    Err(e @ (FetchError::NotServed { .. } | FetchError::TooLarge { .. })) => {
                        last = e;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last)
    }

    /// Joins (or starts) the transfer of one claim, and waits until its first group is here:
    /// the file to read (`None` if it is held now), or why that claim failed.
    async fn follow(&self, wanted: &Wanted) -> Result<Option<Opened>, FetchError> {
        let Some((transfer, mut progress)) = self.join(wanted, MAX_BLOB_HOPS)? else {
            return Ok(None);
        };
        loop {
            let now = progress.borrow_and_update().clone();
            match now {
                Progress::Done => return Ok(None),
                Progress::Failed(e) => return Err(e),
                Progress::Groups(_) | Progress::Checked if now.any() => {
                    if let Some(file) = transfer.file() {
                        return Ok(Some(Opened::Incoming(Incoming {
                            file,
                            progress,
                            size: transfer.size(),
                            read: 0,
                        })));
                    }
                }
                Progress::Groups(_) | Progress::Checked => {}
            }
            // The transfer (held here) always ends with `Done` or `Failed`.
            if progress.changed().await.is_err() {
                return Err(FetchError::Local("the transfer stopped".into()));
            }
        }
    }
}

impl Incoming {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's first bytes (up to `HEAD_BYTES`, within its first group: verified).
    pub fn head(&self) -> std::io::Result<Vec<u8>> {
        let len = self
            .size
            .min(cailloux_protocol::attachment::HEAD_BYTES as u64);
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// How far the file may be read now; an error if the transfer failed.
    fn readable(&self, now: &Progress) -> Result<u64, std::io::Error> {
        match now {
            Progress::Done => Ok(self.size),
            Progress::Groups(_) | Progress::Checked => {
                let total = self.size.div_ceil(BLOB_GROUP_BYTES);
                let n = match now {
                    Progress::Groups(n) => *n,
                    _ => total,
                };
                Ok((n * BLOB_GROUP_BYTES).min((total - 1) * BLOB_GROUP_BYTES))
            }
            Progress::Failed(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// The file's bytes, as they are verified, `READ_BYTES` at a time.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
        futures::stream::try_unfold(self, |mut s| async move {
            if s.read >= s.size {
                return Ok(None);
            }
            let ready = loop {
                let now = s.progress.borrow_and_update().clone();
                let ready = s.readable(&now)?;
                if ready > s.read {
                    break ready;
                }
                if s.progress.changed().await.is_err() {
                    let last = s.progress.borrow().clone();
                    match s.readable(&last)? {
                        ready if ready > s.read => break ready,
                        _ => return Err(std::io::Error::other("the transfer stopped")),
                    }
                }
            };
            let (file, at) = (s.file.clone(), s.read);
            let len = (ready - at).min(READ_BYTES);
            let bytes = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; len as usize];
                file.read_exact_at(&mut buf, at).map(|()| buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            s.read += len;
            Ok(Some((bytes, s)))
        })
    }
}
