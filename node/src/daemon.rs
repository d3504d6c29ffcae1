//! `cailloux node`: the long-running process of a town. It owns the store, runs the network
//! task and serves the local API, and stops in a fixed order.
//!
//! Start: identity (created on first run), store, reconciliation index (one scan of the
//! catalogue), writer thread, network task, API listener; then the API address is written to
//! `<home>/api.addr` so that the `cailloux` command finds the node.
//!
//! Stop (SIGINT, SIGTERM, or the `shutdown` future): remove `api.addr` and stop taking API calls
//! (in-flight ones finish, within the HTTP drain deadline; stalled connections are cut then), stop
//! the network task (closing every connection), stop the writer (it finishes what is queued,
//! then flushes), flush the store.
//!
//! Both HTTP addresses are served by `http::serve`, each with its own limits (`http::LOCAL`,
//! `http::PUBLIC`): a visitor can hold neither a connection nor a stop for long.

use crate::api::{self, ApiState};
use crate::home::{Home, HomeError};
use crate::http;
use crate::memory::Tuning;
use crate::metrics::Metrics;
use crate::network::{self, NetworkConfig};
use crate::search::SearchIndex;
use crate::sync::SyncIndex;
use crate::writer::Writer;
use anyhow::Context;
use libp2p::Multiaddr;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The default libp2p port, TCP and UDP (QUIC).
pub const DEFAULT_P2P_PORT: u16 = 4747;
/// The default API address.
pub const DEFAULT_API: &str = "127.0.0.1:4748";
/// The default bound on connected peers (`max_peers`), inbound included.
pub const DEFAULT_MAX_PEERS: usize = 24;
/// The default size of sled's page cache (`store_cache_mb`); sled's own default is 1 GiB.
pub const DEFAULT_STORE_CACHE_MB: u64 = 16;

/// A `public_url` that cannot start the catalogue's links.
#[derive(Debug, thiserror::Error)]
#[error(
    "public_url: `{0}` is not a URL such as https://cailloux.example-town.fr (http or https, a host, an optional path; no user or password, query or fragment)"
)]
pub struct BadPublicUrl(pub String);

/// The public URL as the catalogue's links start with it: `http://` or `https://`, a host, an
/// optional path, nothing a link could not hold; without a trailing `/`.
pub fn check_public_url(url: &str) -> Result<String, BadPublicUrl> {
    let bad = || BadPublicUrl(url.chars().take(200).collect());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or("");
    let fits = |c: char| c.is_ascii_graphic() && !"\"<>\\^`{|}?#".contains(c);
    // No `user:password@`: it would be published in every link.
    if host.is_empty() || host.contains('@') || !url.chars().all(fits) {
        return Err(bad());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Everything `cailloux node` needs, after flags and `config.toml` are merged (flags win).
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub listen: Vec<Multiaddr>,
    pub api: String,
    /// A second address serving only the corpus browser and the read API, for the public.
    pub public_api: Option<String>,
    /// The URL the public address is reached at (`public_url`), checked by `check_public_url`.
    pub public_url: Option<String>,
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    /// Names the town when the identity is created on this run.
    pub town: Option<String>,
    pub sync_interval: Duration,
    /// The most peers kept connected, inbound included (`max_peers`).
    pub max_peers: usize,
    /// sled's page cache, in MiB (`store_cache_mb`).
    pub store_cache_mb: u64,
    /// Disk for other towns' attached files, in MiB (`blob_cache_mb`).
    pub blob_cache_mb: u64,
    /// Serve relay circuits for nodes behind NAT (`relay`).
    pub relay: bool,
}

impl NodeOptions {
    pub fn default_listen() -> Vec<Multiaddr> {
        [
            format!("/ip4/0.0.0.0/tcp/{DEFAULT_P2P_PORT}"),
            format!("/ip4/0.0.0.0/udp/{DEFAULT_P2P_PORT}/quic-v1"),
        ]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
    }
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    home: Home,
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let node = Daemon::start(home, options).await?;
    shutdown.await;
    node.stop().await
}

/// A running node: its tasks and what the outside may use of it.
pub struct Daemon {
    home: Home,
    api_addr: String,
    public_addr: Option<String>,
    client: network::Client,
    writer: Writer,
    store: crate::Store,
    search: Arc<SearchIndex>,
    network_task: tokio::task::JoinHandle<()>,
    writer_thread: std::thread::JoinHandle<()>,
    indexer_thread: std::thread::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    public: Option<tokio::task::JoinHandle<()>>,
    stop_api: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("home", &self.home)
            .field("api_addr", &self.api_addr)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Starts every part of the node; returns once the API answers.
    pub async fn start(home: Home, options: NodeOptions) -> anyhow::Result<Daemon> {
        Self::start_tuned(home, options, Tuning::default()).await
    }

    /// `start` with other intervals for the periodic exchanges (for benchmarks that measure
    /// what each costs).
    pub async fn start_with(
        home: Home,
        options: NodeOptions,
        chatter: network::Chatter,
    ) -> anyhow::Result<Daemon> {
        Self::start_all(home, options, Tuning::default(), chatter).await
    }

    /// `start`, with memory bounds other than the defaults (benchmarks' baselines).
    pub async fn start_tuned(
        home: Home,
        options: NodeOptions,
        tuning: Tuning,
    ) -> anyhow::Result<Daemon> {
        Self::start_all(home, options, tuning, network::Chatter::default()).await
    }

    async fn start_all(
        home: Home,
        options: NodeOptions,
        tuning: Tuning,
        chatter: network::Chatter,
    ) -> anyhow::Result<Daemon> {
        let identity = match home.load_identity() {
            Ok(identity) => identity,
            Err(HomeError::NoIdentity { .. }) => {
                let identity = home.create_identity(options.town.as_deref())?;
                tracing::info!(
                    "created this node's identity in {}; public key {}",
                    home.identity_path().display(),
                    identity.public_key()
                );
                identity
            }
            Err(e) => return Err(e.into()),
        };
        let config = home.load_config()?;
        let town = config
            .town
            .clone()
            .or(options.town.clone())
            .filter(|t| !t.trim().is_empty());
        if town.is_none() {
            tracing::warn!(
                "this town is unnamed: publications must each name their `town:`. Name it with `town = \"...\"` in {}",
                home.config_path().display()
            );
        }
        let store = home.open_store_cached(options.store_cache_mb)?;
        let blobs = home.open_blobs(Some(options.blob_cache_mb))?;
        match store.mode() {
            cailloux_protocol::Mode::Federation(key) => tracing::info!(
                "member of the federation {key}: only records whose author chains to it are accepted"
            ),
            cailloux_protocol::Mode::Open => tracing::warn!(
                "open mode: any validly signed record is accepted, whatever town it names; join a \
                 federation with `cailloux join <key>` for records you can vouch for"
            ),
        }
        let index = Arc::new(
            tokio::task::spawn_blocking({
                let store = store.clone();
                move || SyncIndex::load(&store)
            })
            .await??,
        );
        let metrics = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let search = Arc::new(
            tokio::task::spawn_blocking({
                let dir = home.search_path();
                move || SearchIndex::open_with(&dir, tuning.index_writer)
            })
            .await??
            .0,
        );
        let (to_indexer, indexer_thread) =
            crate::search::start_indexer(search.clone(), store.clone(), tuning.index_queue_bytes);
        let (writer, writer_thread) = Writer::start(store.clone(), index.clone(), Some(to_indexer));
        let net_config = NetworkConfig {
            listen: options.listen.clone(),
            bootstrap: options.bootstrap.clone(),
            mdns: options.mdns,
            town: town.clone(),
            sync_interval: options.sync_interval,
            max_peers: options.max_peers,
            chatter,
            catchup: tuning.catchup,
            relay: options.relay,
        };
        let (client, event_loop) = network::new(
            identity.seed(),
            &net_config,
            store.clone(),
            writer.clone(),
            index.clone(),
            metrics.clone(),
            &mut registry,
        )?;
        let network_task = tokio::spawn(event_loop.run());
        let transfers = crate::blobs::Transfers::new(
            blobs.clone(),
            store.clone(),
            client.clone(),
            metrics.clone(),
        );
        client.set_transfers(transfers.clone()).await;

        let listener = tokio::net::TcpListener::bind(&options.api)
            .await
            .with_context(|| format!("cannot listen for the API on {}", options.api))?;
        let api_addr = listener.local_addr()?.to_string();
        let state = ApiState {
            client: client.clone(),
            store: store.clone(),
            blobs: blobs.clone(),
            transfers,
            writer: writer.clone(),
            index: index.clone(),
            search: search.clone(),
            key: Arc::new(identity.signing_key().clone()),
            town: town.clone(),
            token: home.api_token()?.into(),
            api_addr: api_addr.clone(),
            public_url: options.public_url.as_deref().map(Arc::from),
            catalog: Arc::new(crate::catalog::CorpusCache::default()),
            metrics: metrics.clone(),
            registry: Arc::new(registry),
            verifier: Arc::new(tokio::sync::Semaphore::new(api::SUBMIT_VERIFIERS)),
        };
        let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut public_addr = None;
        let public = match &options.public_api {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for the public API on {addr}"))?;
                let bound = listener.local_addr()?.to_string();
                tracing::info!("public read API and corpus browser on http://{bound}");
                public_addr = Some(bound);
                Some(tokio::spawn(http::serve(
                    listener,
                    api::public_router(state.clone()),
                    http::PUBLIC,
                    metrics.clone(),
                    stopped(api_stopped.clone()),
                )))
            }
            None => None,
        };
        let server = tokio::spawn(http::serve(
            listener,
            api::router(state),
            http::LOCAL,
            metrics,
            stopped(api_stopped),
        ));
        let addr_file = home.api_addr_path();
        std::fs::write(&addr_file, format!("{api_addr}\n"))
            .with_context(|| format!("cannot write {}", addr_file.display()))?;
        tracing::info!(
            "node of {} running; API on http://{api_addr}; {} records",
            town.as_deref().unwrap_or("an unnamed town"),
            index.len()
        );
        Ok(Daemon {
            home,
            api_addr,
            public_addr,
            client,
            writer,
            store,
            search,
            network_task,
            writer_thread,
            indexer_thread,
            server,
            public,
            stop_api,
        })
    }

    /// The address the API listens on.
    pub fn api_addr(&self) -> &str {
        &self.api_addr
    }

    /// The public address (`--public-api`), once bound, if there is one.
    pub fn public_addr(&self) -> Option<&str> {
        self.public_addr.as_deref()
    }

    /// The network's view: peer id, listen addresses (with `/p2p/`), peers.
    pub async fn net_status(&self) -> anyhow::Result<network::NetStatus> {
        Ok(self.client.status().await?)
    }

    /// The store writer: what the API's publish and import use, for in-process callers
    /// (benchmarks) that bring records already signed.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// How many records the search index holds.
    pub fn search_len(&self) -> u64 {
        self.search.len()
    }

    /// Stops in order: API, network, writer, store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Daemon {
            home,
            client,
            writer,
            store,
            network_task,
            writer_thread,
            indexer_thread,
            server,
            public,
            stop_api,
            ..
        } = self;
        tracing::info!("stopping: API, then network, then store");
        let _ = std::fs::remove_file(home.api_addr_path());
        let _ = stop_api.send(true);
        // Both drain at once; each is done within its drain deadline.
        for server in std::iter::once(server).chain(public) {
            if let Err(e) = server.await {
                tracing::warn!("API server: {e}");
            }
        }
        client.stop().await;
        let _ = network_task.await;
        drop(writer);
        // The writer thread ends once every handle is gone: the API's went with the server, the
        // network's with its task; tasks it spawned finish their store write first.
        tokio::task::spawn_blocking(move || {
            let _ = writer_thread.join();
            // The writer held the indexer's only sender: the indexer finishes its queue and ends.
            let _ = indexer_thread.join();
            store.flush()
        })
        .await??;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::check_public_url;

    #[test]
    fn a_public_url_is_http_or_https_with_a_host_and_loses_its_trailing_slash() {
        for (url, expected) in [
            ("https://cailloux.example.fr", "https://cailloux.example.fr"),
            (
                "https://cailloux.example.fr/",
                "https://cailloux.example.fr",
            ),
            (
                "http://203.0.113.7:8080/cailloux/",
                "http://203.0.113.7:8080/cailloux",
            ),
        ] {
            assert_eq!(
                check_public_url(url).ok().as_deref(),
                Some(expected),
                "{url}"
            );
        }
        for bad in [
            "cailloux.example.fr",
            "ftp://cailloux.example.fr",
            "https://",
            "https:///path",
            "https://a.example/?q=1",
            "https://a.example/#x",
            "https://a.example/\"><script>",
            "https://a b.example",
            "https://user:secret@a.example",
        ] {
            let err = check_public_url(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("https://cailloux.example-town.fr")),
                "{bad}: {err:?}"
            );
        }
    }
}
