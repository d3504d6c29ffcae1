//! What a request on the public address must pass before a handler runs, and how long the
//! handler may take: load shedding, the body-size check, the request deadline. Each refusal is
//! immediate, a JSON error with `Retry-After` where trying again later can help.
//!
//! Why shed and not queue: a queue in front of handlers lets a few stalled requests (a body
//! that never comes, a visitor that never finishes) make everyone behind them wait without end.
//! Shedding answers at once that the node is busy; the deadline bounds how long any one request
//! holds its slot; a share per client address keeps one visitor from holding every slot. A streamed answer (an export) gives its slot back when its head is sent; its
//! body is bounded by the export permits and the connection's idle timeout instead.

use super::ClientAddr;
use super::permits::{AddressLimit, Full};
use crate::metrics::Metrics;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// Seconds a refused visitor is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The public address's bounds on requests.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Requests in handlers at once; beyond, 503 at once.
    pub concurrent: usize,
    /// Requests in handlers at once from one client address; beyond, 429 at once.
    pub per_address: usize,
    /// The largest body accepted, checked against `Content-Length` before anything is read (a
    /// body sent without one is cut at this size by the handler's extractor).
    pub max_body: u64,
    /// From the request head to the answer's head.
    pub deadline: Duration,
}

/// The admission state one router shares.
#[derive(Clone, Debug)]
pub struct Admission {
    limits: RequestLimits,
    slots: Arc<AddressLimit>,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(limits: RequestLimits, metrics: Arc<Metrics>) -> Admission {
        Admission {
            limits,
            slots: AddressLimit::new(limits.concurrent, limits.per_address),
            metrics,
        }
    }
}

/// A JSON error `{"error": message}` with `status` and `Retry-After`.
pub fn refusal(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let limits = admission.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        admission.metrics.http_refuse("body_too_large");
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": format!(
                "the body is larger than this address takes: at most {} bytes",
                limits.max_body
            ) })),
        )
            .into_response();
    }
    // Outside `serve` (in-process callers) there is no client address: they share one.
    let ip = request
        .extensions()
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let _slot = match admission.slots.try_acquire(ip) {
        Ok(slot) => slot,
        Err(Full::PerAddress) => {
            admission.metrics.http_refuse("busy_per_address");
            return refusal(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests at once from your address: at most {}; retry when one is answered",
                    limits.per_address
                ),
            );
        }
        Err(Full::Total) => {
            admission.metrics.http_refuse("busy");
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the node is busy: at most {} requests at once on this address; retry in a moment",
                    limits.concurrent
                ),
            );
        }
    };
    match tokio::time::timeout(limits.deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            admission.metrics.http_refuse("too_slow");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took longer than {} s (at most that long on this address)",
                    limits.deadline.as_secs()
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};

    const LIMITS: RequestLimits = RequestLimits {
        concurrent: 1,
        per_address: 1,
        max_body: 100,
        deadline: Duration::from_millis(300),
    };

    /// `/slow` answers after `release` is notified; `/stuck` never does; `/quick` at once.
    fn router(limits: RequestLimits, release: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route("/quick", get(|| async { "ok" }))
            .route(
                "/slow",
                get(move || async move {
                    release.notified().await;
                    "done"
                }),
            )
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/body", post(|body: String| async move { body }))
            .layer(axum::middleware::from_fn_with_state(
                Admission::new(limits, Arc::new(Metrics::default())),
                admit,
            ))
    }

    async fn call(router: &Router, request: axum::http::Request<Body>) -> Response {
        let mut router = router.clone();
        match tower::Service::call(&mut router, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn get_request(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A request as `serve` hands it over, from `client`.
    fn get_from(path: &str, client: &str) -> axum::http::Request<Body> {
        let mut request = get_request(path);
        let addr = client.parse().unwrap_or_else(|e| panic!("{e}"));
        request.extensions_mut().insert(ClientAddr(addr));
        request
    }

    async fn error_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn beyond_the_concurrency_a_request_is_shed_at_once_with_retry_after() {
        let release = Arc::new(tokio::sync::Notify::new());
        let limits = RequestLimits {
            deadline: Duration::from_secs(60),
            ..LIMITS
        };
        let router = router(limits, release.clone());
        let first = tokio::spawn({
            let router = router.clone();
            async move {
                call(&router, get_from("/slow", "192.0.2.1:1000"))
                    .await
                    .status()
            }
        });
        // Served while the first has not taken the one slot yet; shed once it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let shed = loop {
            let response = call(&router, get_from("/quick", "192.0.2.2:1000")).await;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                break response;
            }
            assert!(tokio::time::Instant::now() < deadline, "never shed");
            tokio::task::yield_now().await;
        };
        assert_eq!(
            shed.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
        assert!(error_of(shed).await.contains("at most 1 requests at once"));
        // The first's own address is told it holds its share.
        let mine = call(&router, get_from("/quick", "192.0.2.1:1001")).await;
        assert_eq!(mine.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            error_of(mine)
                .await
                .contains("from your address: at most 1")
        );
        release.notify_one();
        assert_eq!(first.await.ok(), Some(StatusCode::OK));
        assert_eq!(
            call(&router, get_request("/quick")).await.status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_503_and_its_slot_freed() {
        let router = router(LIMITS, Arc::new(tokio::sync::Notify::new()));
        let started = tokio::time::Instant::now();
        let response = call(&router, get_request("/stuck")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() >= LIMITS.deadline);
        assert!(error_of(response).await.contains("longer than"));
        // The slot is back: the next one is not shed but times out the same way.
        let again = call(&router, get_request("/stuck")).await;
        assert!(error_of(again).await.contains("longer than"));
    }

    #[tokio::test]
    async fn a_body_declared_larger_than_the_limit_is_refused_before_it_is_read() {
        let router = router(LIMITS, Arc::new(tokio::sync::Notify::new()));
        // The body never comes: only its declared length is read.
        let (_sender, body) =
            tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let request = axum::http::Request::post("/body")
            .header(header::CONTENT_LENGTH, "1073741824")
            .body(Body::from_stream(tokio_stream_of(body)))
            .unwrap_or_else(|e| panic!("{e}"));
        let response = tokio::time::timeout(Duration::from_secs(5), call(&router, request))
            .await
            .unwrap_or_else(|_| panic!("waited for the body"));
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error_of(response).await.contains("at most 100 bytes"));
        let small = axum::http::Request::post("/body")
            .header(header::CONTENT_LENGTH, "2")
            .body(Body::from("ok"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(call(&router, small).await.status(), StatusCode::OK);
    }

    fn tokio_stream_of<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
