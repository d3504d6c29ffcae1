//! What bounds a node's memory: a town's server is often a virtual machine of 1 or 2 GB, and a
//! node shares it. The page cache of the store is `store_cache_mb` (a town's setting, in
//! `NodeOptions`); the rest are bounds a town has no reason to change, gathered here as
//! `Tuning` so that a benchmark can set the values they had before (its same-run baseline)
//! without a hidden global.
//!
//! Where the memory went before these bounds, on a new town catching up 100,000 records of
//! 4 KB: sled's page cache (1 GiB by default), the search indexer's queue (unbounded: records
//! are stored faster than they are indexed, so most of them waited there), tantivy's writer
//! (a 64 MB arena, four merge threads), and the catch-up answers in flight (four of up to 4 MiB
//! per peer, each held as bytes and again decoded).
//!
//! And what a peak leaves behind: glibc's malloc kept freed memory in its arenas (up to eight
//! per core, one taken by each thread that allocates) and gave back only what lay at the top of
//! a heap; capped at two arenas and trimmed after every burst, a node that had caught up 100,000
//! records still rested about 60 MiB above its live heap. So a node's programs (the `cailloux`
//! binary, the benchmarks that measure it) run on jemalloc, set by `node_allocator!` to two
//! arenas and a background thread that returns freed pages after about a second
//! (`MALLOC_CONF`). A town can change the settings without a rebuild through jemalloc's
//! environment variable `_RJEM_MALLOC_CONF` (for example `narenas:1`).
//!
//! A library cannot choose the allocator of the program it is linked into (a test that counts
//! allocations brings its own), hence a macro that each program writes once.

use crate::network::CatchupWidth;
use crate::search::WriterMemory;

/// The memory bounds of a node besides the store's page cache. `Default` is what a node runs
/// with; `Tuning::BEFORE` is what it ran with before issue 10, for benchmarks' baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// The search index writer's arena and merge threads.
    pub index_writer: WriterMemory,
    /// The bytes of records that may wait for the search indexer; records from peers beyond it
    /// are indexed from the store instead (`search::IndexQueue`).
    pub index_queue_bytes: usize,
    /// Catch-up fetches in flight, per session and in all (`network::CatchupWidth`).
    pub catchup: CatchupWidth,
}

/// The default `index_queue_bytes`: two catch-up answers.
pub const INDEX_QUEUE_BYTES: usize = 8 * 1024 * 1024;

impl Tuning {
    /// The bounds before issue 10: a 64 MB index arena with four merge threads, an unbounded
    /// indexer queue, four catch-up fetches per session and no bound over all.
    pub const BEFORE: Tuning = Tuning {
        index_writer: WriterMemory::BEFORE,
        index_queue_bytes: usize::MAX,
        catchup: CatchupWidth::BEFORE,
    };
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            index_writer: WriterMemory::default(),
            index_queue_bytes: INDEX_QUEUE_BYTES,
            catchup: CatchupWidth::DEFAULT,
        }
    }
}

/// jemalloc's settings for a node (its `malloc_conf`, read before `main`): two arenas
/// (jemalloc's default is four per core: each keeps pages of its own), a background thread that
/// purges freed pages instead of the thread that frees them, dirty pages returned after a
/// second, and no lazily-purged ("muzzy") stage, which would keep them counted as resident.
pub const MALLOC_CONF: &[u8; 70] =
    b"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
// jemalloc reads a C string: it must end with its NUL.
const _: () = assert!(MALLOC_CONF[MALLOC_CONF.len() - 1] == 0);

/// The allocator `node_allocator!` installs: jemalloc; the system's with the feature
/// `system-allocator` (for a heap profiler such as heaptrack, which sees only `malloc`, or to
/// compare: `cargo bench -p cailloux-node --bench memory --features system-allocator`).
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
pub type Allocator = tikv_jemallocator::Jemalloc;
/// The allocator `node_allocator!` installs: the system's (feature `system-allocator`, or a
/// target jemalloc does not build for).
#[cfg(any(target_env = "msvc", feature = "system-allocator"))]
pub type Allocator = std::alloc::System;
/// The value of `Allocator`.
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
pub const ALLOCATOR: Allocator = tikv_jemallocator::Jemalloc;
/// The value of `Allocator`.
#[cfg(any(target_env = "msvc", feature = "system-allocator"))]
pub const ALLOCATOR: Allocator = std::alloc::System;

/// Makes `Allocator` (jemalloc, with `MALLOC_CONF`) the allocator of the program that writes
/// it, once, at the top level of its crate.
#[macro_export]
macro_rules! node_allocator {
    () => {
        #[global_allocator]
        static NODE_ALLOCATOR: $crate::memory::Allocator = $crate::memory::ALLOCATOR;

        /// jemalloc reads its settings from this symbol when it starts. The project's only
        /// `unsafe` attribute: the symbol's name must be exact and defined once, which the
        /// allocator crate leaves to the program.
        #[cfg(not(target_env = "msvc"))]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static malloc_conf: &[u8; $crate::memory::MALLOC_CONF.len()] = $crate::memory::MALLOC_CONF;
    };
}
