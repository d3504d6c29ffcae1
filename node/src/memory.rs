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
}

/// The default `index_queue_bytes`: four catch-up answers.
pub const INDEX_QUEUE_BYTES: usize = 16 * 1024 * 1024;

impl Tuning {
    /// The bounds before issue 10: a 64 MB index arena with four merge threads, an unbounded
    /// indexer queue.
    pub const BEFORE: Tuning = Tuning {
        index_writer: WriterMemory::BEFORE,
        index_queue_bytes: usize::MAX,
    };
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            index_writer: WriterMemory::default(),
            index_queue_bytes: INDEX_QUEUE_BYTES,
        }
    }
}
