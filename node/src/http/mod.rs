//! Serving HTTP on the node's two addresses, the local API and the public one (`--public-api`),
//! with a deadline on every connection. Both use `serve` instead of `axum::serve`, which has no
//! timeout at all: a visitor that connects and sends nothing, or half a request, or stops
//! reading an answer, would hold its connection (and whatever the answer holds) forever, and
//! the node could not even stop while one did.
//!
//! One accept loop per address, over hyper's HTTP/1.1 connections (no HTTP/2: nothing here
//! needs it, and it is much more to bound):
//! - **Connections are bounded** in all and per client address (`permits`). Beyond a bound a
//!   connection is answered at once with a canned 429/503 (written only if the socket takes it
//!   without waiting) and closed: a refusal costs an accept and a write, never a task.
//! - **A request head must arrive in full** within `header_read` of the connection opening or
//!   of the previous answer (hyper's timer), and be at most `MAX_HEAD_BYTES` in
//!   `MAX_HEADERS` headers (beyond: 431). That also bounds an idle keep-alive connection.
//! - **A connection that moves no byte** for `idle`, reading or writing, is closed (`idle`):
//!   it cuts a body that never comes and a visitor that stops reading a streamed answer, and
//!   drops that answer's body (an export gives back its permit then).
//! - **Stopping drains, with a deadline**: the listener closes, every connection is asked to
//!   finish its request and close (idle keep-alive ones close at once), and whatever is still
//!   open after `drain` is cut. A stop never waits on a visitor.
//!
//! Each request carries its client's address (`ClientAddr`) for the per-address bounds of the
//! handlers (exports). What a request may cost once admitted (concurrency, body size, time to
//! answer) is bounded by the public router's layers (`admission`).

pub mod admission;
mod idle;
pub mod permits;

use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use permits::{AddressLimit, Full};
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The largest request head (request line and headers). A browser's is a few KiB and the
/// longest URL the corpus browser makes well under 8 KiB; beyond, 431. Also the most hyper
/// buffers for a connection's reads, and what it holds of an answer before waiting for the
/// socket, so a stalled connection costs at most about this much beside its socket.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers in a request head. Browsers send about twenty.
pub const MAX_HEADERS: usize = 64;

/// The deadlines and bounds of one address.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head must arrive in full within this long of the connection opening or of the
    /// previous answer on it.
    pub header_read: Duration,
    /// A connection that reads and writes nothing for this long is closed.
    pub idle: Duration,
    /// Open connections on the address.
    pub connections: usize,
    /// Open connections from one client address (an IPv4 address, an IPv6 /64).
    pub connections_per_address: usize,
    /// On stop, how long requests in progress may take to finish before every connection is
    /// cut.
    pub drain: Duration,
}

/// The public address, facing the internet.
/// - `header_read` 10 s: a request head is a few KiB, sent in well under a second even on a
///   poor mobile link; ten is generous, and a slowloris holds a connection 10 s at most.
/// - `idle` 30 s: every answer here is ready in milliseconds (a submission's checks in well
///   under a second), so 30 s without a byte moving means the visitor has gone or stalls.
/// - 16 connections per address: a browser opens at most 6 per host; 16 leaves room for a few
///   visitors behind one NAT. 512 in all: at most `MAX_HEAD_BYTES` of buffer each, 32 MiB.
/// - `drain` 5 s: what is in progress then has had time to finish; a stop stays quick.
pub const PUBLIC: Limits = Limits {
    header_read: Duration::from_secs(10),
    idle: Duration::from_secs(30),
    connections: 512,
    connections_per_address: 16,
    drain: Duration::from_secs(5),
};

/// The local address (127.0.0.1 by default), for the town's own `cailloux` command: the same
/// head deadline, a longer idle timeout (an export piped into a slow reader, a publish of a big
/// batch that is checked and signed before its answer), and one bound for all (its callers all
/// come from the same address).
pub const LOCAL: Limits = Limits {
    header_read: Duration::from_secs(10),
    idle: Duration::from_secs(120),
    connections: 128,
    connections_per_address: 128,
    drain: Duration::from_secs(5),
};

/// A pause after an accept error other than a connection's own (out of file descriptors,
/// say), so that the loop does not spin while it lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The address of the client a request came from (a request extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module's
/// documentation). Resolves once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = AddressLimit::new(limits.connections, limits.connections_per_address);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.try_acquire(peer.ip()) {
                    Ok(slot) => {
                        let (router, metrics, stopping) =
                            (router.clone(), metrics.clone(), stopping.clone());
                        connections.spawn(async move {
                            connection(stream, peer, router, limits, &metrics, stopping).await;
                            drop(slot);
                        });
                    }
                    Err(full) => refuse(&stream, full, &limits, &metrics),
                },
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!("HTTP: cannot accept a connection: {e}");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "HTTP: {} connection(s) still open {:?} after the stop began: closing them",
            connections.len(),
            limits.drain
        );
        for _ in 0..connections.len() {
            metrics.http_close("drain");
        }
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Errors that concern one connection only (it went away before it was accepted).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection beyond a bound, if its socket takes the answer without waiting, and
/// closes it (when `stream` is dropped by the caller).
fn refuse(stream: &TcpStream, full: Full, limits: &Limits, metrics: &Metrics) {
    let (status, reason, message) = match full {
        Full::PerAddress => (
            "429 Too Many Requests",
            "connections_per_address",
            format!(
                "too many connections from your address: at most {} at once; close some and retry",
                limits.connections_per_address
            ),
        ),
        Full::Total => (
            "503 Service Unavailable",
            "connections",
            format!(
                "too many connections: at most {} at once on this address; retry in a moment",
                limits.connections
            ),
        ),
    };
    metrics.http_refuse(reason);
    let body = json!({ "error": message }).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        admission::RETRY_AFTER_SECONDS,
        body.len()
    );
    // What the visitor already sent is read first (as much as has arrived, without waiting),
    // so that closing sends a FIN rather than a reset that could discard the answer.
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves one connection until it closes, idles out, or the drain ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    metrics: &Metrics,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (io, progress) = idle::Watched::new(stream);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ClientAddr(peer));
        let mut router = router.clone();
        async move { tower::Service::call(&mut router, request).await }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let idle = progress.idle_for(limits.idle);
    tokio::pin!(idle);
    let mut draining = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics.http_close("header_timeout");
                    }
                    tracing::debug!("HTTP: connection from {peer}: {e}");
                }
                return;
            }
            () = &mut idle => {
                metrics.http_close("idle");
                tracing::debug!("HTTP: connection from {peer} idle for {:?}: closed", limits.idle);
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::routing::get;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    const QUICK: Limits = Limits {
        header_read: Duration::from_millis(300),
        idle: Duration::from_secs(3),
        connections: 4,
        connections_per_address: 2,
        drain: Duration::from_millis(300),
    };

    /// Dropped when the streamed body is dropped.
    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
        dropped: Arc<AtomicBool>,
    }

    /// `/` answers "ok"; `/endless` streams 64 KiB chunks without end.
    async fn server(limits: Limits) -> Server {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/endless",
            get(move || {
                let flag = Flag(flag.clone());
                async move {
                    let chunks = futures::stream::unfold(flag, |flag| async move {
                        Some((
                            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024])),
                            flag,
                        ))
                    });
                    Body::from_stream(chunks)
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            router,
            limits,
            Arc::new(Metrics::default()),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            stop: Some(stop),
            task,
            dropped,
        }
    }

    /// Reads until the peer closes; when that happened.
    /// A connection (from `source`, else from 127.0.0.1) that has been served one answer, so
    /// that the accept loop has counted it before the next one connects.
    async fn served(addr: SocketAddr, source: Option<&str>) -> TcpStream {
        let mut stream = match source {
            Some(source) => {
                let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
                socket
                    .bind(SocketAddr::new(
                        source.parse().unwrap_or_else(|e| panic!("{e}")),
                        0,
                    ))
                    .unwrap_or_else(|e| panic!("{e}"));
                socket.connect(addr).await
            }
            None => TcpStream::connect(addr).await,
        }
        .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buffer = [0u8; 256];
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        stream
    }

    /// What the server says to a connection it refuses before any request.
    async fn refusal(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut refused = String::new();
        let _ = stream.read_to_string(&mut refused).await;
        refused
    }

    async fn closed(stream: &mut TcpStream) -> Instant {
        let mut buffer = vec![0u8; 64 * 1024];
        while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        Instant::now()
    }

    async fn answer(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text).await;
        text
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_or_half_a_head_is_closed_at_the_header_deadline() {
        let server = server(QUICK).await;
        for sent in [&b""[..], b"GET / HT"] {
            let opened = Instant::now();
            let mut stream = TcpStream::connect(server.addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            stream
                .write_all(sent)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let after = closed(&mut stream).await - opened;
            assert!(
                after >= QUICK.header_read && after < QUICK.idle,
                "closed after {after:?}"
            );
        }
        assert!(answer(server.addr).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_at_the_header_deadline_after_its_answer() {
        let server = server(QUICK).await;
        let mut stream = TcpStream::connect(server.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buffer = [0u8; 256];
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        let answered = Instant::now();
        let after = closed(&mut stream).await - answered;
        assert!(
            after >= QUICK.header_read - Duration::from_millis(50) && after < QUICK.idle,
            "closed {after:?} after its answer"
        );
    }

    /// `QUICK`, but connections held by a test stay open however slow the machine.
    const PATIENT: Limits = Limits {
        header_read: Duration::from_secs(30),
        idle: Duration::from_secs(30),
        ..QUICK
    };

    #[tokio::test]
    async fn connections_beyond_the_total_are_refused_at_once() {
        let server = server(PATIENT).await;
        let mut held = Vec::new();
        for source in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..QUICK.connections_per_address {
                held.push(served(server.addr, Some(source)).await);
            }
        }
        let refused = refusal(server.addr).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("at most 4 at once"), "{refused}");
        assert!(refused.contains("retry-after: 5"), "{refused}");
    }

    #[tokio::test]
    async fn a_visitor_that_stops_reading_is_cut_after_the_idle_timeout_and_its_body_dropped() {
        let server = server(QUICK).await;
        let mut stream = TcpStream::connect(server.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let deadline = started + 10 * QUICK.idle;
        while !server.dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            server.dropped.load(Ordering::SeqCst),
            "the body stream was not dropped"
        );
        assert!(started.elapsed() >= QUICK.idle);
        drop(stream);
    }

    #[tokio::test]
    async fn connections_beyond_an_address_bound_are_refused_at_once() {
        let server = server(PATIENT).await;
        let mut held = Vec::new();
        for _ in 0..QUICK.connections_per_address {
            held.push(served(server.addr, None).await);
        }
        // The refusal comes before any request is sent.
        let refused = refusal(server.addr).await;
        assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
        assert!(refused.contains("at most 2 at once"), "{refused}");
        drop(held);
        let mut served = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !served && Instant::now() < deadline {
            served = answer(server.addr).await.starts_with("HTTP/1.1 200");
        }
        assert!(served, "not served again once the others closed");
    }

    #[tokio::test]
    async fn a_stop_finishes_within_the_drain_deadline_whatever_is_stalled() {
        let mut server = server(Limits {
            header_read: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            ..QUICK
        })
        .await;
        let mut half = TcpStream::connect(server.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        half.write_all(b"GET / HT")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut reader = TcpStream::connect(server.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        reader
            .write_all(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buffer = [0u8; 16];
        let _ = reader.read(&mut buffer).await;
        let started = Instant::now();
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut server.task)
            .await
            .unwrap_or_else(|_| panic!("the server did not stop"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(started.elapsed() < QUICK.drain + Duration::from_secs(1));
        assert!(server.dropped.load(Ordering::SeqCst));
    }
}
