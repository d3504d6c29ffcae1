//! A Cailloux town node as a library: its home folder, its store and search index, the
//! operations the CLI and the daemon share (publishing files, exporting, importing, verifying,
//! searching), and the daemon itself (network, API and the HTTP serving under it, metrics).
//!
//! The store, the search index and the exchange functions are synchronous; the daemon runs them
//! on threads of their own or on blocking threads, never on the async runtime's workers.

pub mod api;
pub mod blobs;
pub mod catalog;
pub mod daemon;
pub mod exchange;
pub mod home;
pub mod http;
pub mod markdown;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod publish;
pub mod search;
pub mod store;
pub mod sync;
pub mod writer;

pub use home::{Config, Home, HomeError, Identity};
pub use libp2p::Multiaddr;
pub use store::{Filter, ResolveError, Store, StoreError};

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
