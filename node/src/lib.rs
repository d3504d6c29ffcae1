//! A Cailloux town node as a library: its home folder, its store, and the operations the CLI and
//! (later) the daemon share: publishing files, exporting, importing and verifying.
//!
//! Everything here is synchronous; an async caller runs it on blocking threads.

pub mod api;
pub mod daemon;
pub mod exchange;
pub mod home;
pub mod metrics;
pub mod network;
pub mod publish;
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
