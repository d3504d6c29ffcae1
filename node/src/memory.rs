//! What bounds a node's memory: a town's server is often a virtual machine of 1 or 2 GB, and a
//! node shares it. The page cache of the store is `store_cache_mb` (a town's setting, in
//! `NodeOptions`); the rest are bounds a town has no reason to change, gathered here as
//! `Tuning` so that a benchmark can set the values they had before (its same-run baseline)
//! without a hidden global.
//!
//! Where the memory went before these bounds, on a new town catching up 100,000 records of
//! 4 KB: sled's page cache (1 GiB by default), the search indexer's queue (unbounded: records
//! are stored faster than they are indexed, so most of them waited there), and tantivy's
//! writer (a 64 MB arena, four merge threads).
//!
//! And what a peak leaves behind: glibc's malloc keeps freed memory in its arenas (up to eight
//! per core, one taken by each thread that allocates) for the next allocation, and gives back
//! only what lies at the top of a heap. A node's threads (the runtime's, the writer, the
//! indexer, tantivy's, sled's) each fill an arena during a catch-up and keep it. So the node
//! caps the arenas at `ARENAS` and, after a burst of writes and every `TRIM_EVERY`, asks glibc
//! to return its free pages (`malloc_trim`): the only `unsafe` code of the project, two calls
//! into the C library with integer arguments.

use crate::search::WriterMemory;
use crate::writer::Writer;
use std::time::{Duration, Instant};

/// The memory bounds of a node besides the store's page cache. `Default` is what a node runs
/// with; `Tuning::BEFORE` is what it ran with before issue 10, for benchmarks' baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// The search index writer's arena and merge threads.
    pub index_writer: WriterMemory,
    /// The bytes of records that may wait for the search indexer; records from peers beyond it
    /// are indexed from the store instead (`search::IndexQueue`).
    pub index_queue_bytes: usize,
    /// Cap glibc's arenas at `ARENAS` (`cap_arenas`).
    pub cap_arenas: bool,
    /// Give freed memory back after bursts and periodically (`spawn_trimmer`).
    pub trim: bool,
}

/// The default `index_queue_bytes`: four catch-up answers.
pub const INDEX_QUEUE_BYTES: usize = 16 * 1024 * 1024;

impl Tuning {
    /// The bounds before issue 10: a 64 MB index arena with four merge threads, an unbounded
    /// indexer queue.
    pub const BEFORE: Tuning = Tuning {
        index_writer: WriterMemory::BEFORE,
        index_queue_bytes: usize::MAX,
        cap_arenas: false,
        trim: false,
    };
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            index_writer: WriterMemory::default(),
            index_queue_bytes: INDEX_QUEUE_BYTES,
            cap_arenas: true,
            trim: true,
        }
    }
}

/// glibc malloc's arenas at most (its default is eight per core).
pub const ARENAS: i32 = 2;
/// Free memory is returned once the writer has stored nothing for this long after a burst.
pub const QUIET: Duration = Duration::from_secs(2);
/// And at least this often (searches, exports and the indexer allocate without the writer).
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Caps glibc's arenas at `ARENAS`, for the threads that allocate from now on (the earlier the
/// better: a thread keeps the arena it first took). Whether it could.
pub fn cap_arenas() -> bool {
    glibc::cap_arenas(ARENAS)
}

/// Returns the allocator's free memory to the system. Whether any was.
pub fn trim() -> bool {
    glibc::trim()
}

/// A task that returns free memory `QUIET` after the writer's last write of a burst, and every
/// `TRIM_EVERY` (a trim of a resting node costs well under a millisecond); it ends with the
/// writer.
pub fn spawn_trimmer(writer: &Writer) -> tokio::task::JoinHandle<()> {
    let mut stored = writer.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUIET / 2);
        let mut last_write: Option<Instant> = None;
        let mut last_trim = Instant::now();
        loop {
            tokio::select! {
                event = stored.recv() => match event {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        last_write = Some(Instant::now());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    let after_burst = last_write.is_some_and(|at| at.elapsed() >= QUIET);
                    if after_burst || last_trim.elapsed() >= TRIM_EVERY {
                        last_write = None;
                        last_trim = Instant::now();
                        let _ = tokio::task::spawn_blocking(trim).await;
                    }
                }
            }
        }
    })
}

/// The two calls into glibc's allocator.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub(super) fn cap_arenas(arenas: i32) -> bool {
        // SAFETY: `mallopt` takes two integers and changes a setting of the allocator under its
        // own lock; it reads and writes no memory of the caller's.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }

    pub(super) fn trim() -> bool {
        // SAFETY: `malloc_trim` takes an integer (the bytes to keep at the top of the main
        // heap) and, under the allocator's locks, returns pages that hold no allocation; it
        // touches no memory still allocated.
        unsafe { libc::malloc_trim(0) == 1 }
    }
}

/// Other allocators (musl's, macOS's) have neither call: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub(super) fn cap_arenas(_: i32) -> bool {
        false
    }

    pub(super) fn trim() -> bool {
        false
    }
}
