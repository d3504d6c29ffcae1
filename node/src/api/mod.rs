//! The node's local HTTP API (axum): what the `cailloux` command uses while a node runs for its
//! home (the node holds the store), and `/metrics` for Prometheus.
//!
//! Reads are open to whoever can reach the address (127.0.0.1 by default). Writes (`publish`,
//! `import`) also need the bearer token the node keeps in `<home>/api.token`, readable by the
//! home's owner only. JSON field names are the CLI's.
//!
//! Both routers are served by `crate::http::serve` (connection deadlines and bounds); the
//! public one also sheds load and bounds each request (`crate::http::admission`), and exports
//! are bounded per router, in all and per client address, for as long as they stream.
//! Both routers end in the same security-headers layer (`headers`): every answer, fallback and
//! error included, carries the Content-Security-Policy and its companions. The public router's
//! reads are open to pages of other origins (`cors`).

mod attachments;
mod catalog;
mod cors;
mod export;
mod headers;
mod node;
mod page;
mod params;
mod records;
mod write;

pub use headers::CONTENT_SECURITY_POLICY;
pub use records::{PageError, mark_held, members_json, provenance, record_page, versions};
pub use write::{PublishFile, PublishRequest, SubmitRequest};

use crate::http::admission::{self, Admission, RequestLimits};
use crate::metrics::Metrics;
use crate::network::Client;
use crate::search::SearchIndex;
use crate::store::Store;
use crate::writer::Writer;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cailloux_protocol::SigningKey;
use cailloux_protocol::trust::Mode;
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Submissions checked at once (decoded and their signatures verified, on a blocking thread),
/// whichever address they come to: what visitors can make the node spend on signatures is one
/// core of two. The others wait their turn without holding a thread (on the public address,
/// within its request deadline).
pub const SUBMIT_VERIFIERS: usize = 1;

/// The public address's bounds on requests:
/// - 32 in handlers at once (beyond: 503 at once), 8 of them from one client address (beyond:
///   429), so that it takes several addresses to keep everyone else waiting. Each holds at most
///   a 2 MiB body (axum's limit, which every handler keeps), so 64 MiB at most;
/// - bodies of at most 2 MiB, refused from their `Content-Length` before anything is read (a
///   1 GB promise costs nothing);
/// - 30 s from the request head to the answer's head: a submission of 2 MiB over a slow uplink
///   and its checks take far less; a request that has not been answered by then is not going
///   to be usefully.
pub const PUBLIC_REQUESTS: RequestLimits = RequestLimits {
    concurrent: 32,
    per_address: 8,
    max_body: 2 * 1024 * 1024,
    deadline: Duration::from_secs(30),
};

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub client: Client,
    pub store: Store,
    /// Attached files.
    pub blobs: crate::blobs::Blobs,
    /// Files fetched from peers on demand.
    pub transfers: crate::blobs::Transfers,
    pub writer: Writer,
    /// The reconciliation index: its length is the record count, without a scan.
    pub index: Arc<crate::sync::SyncIndex>,
    pub search: Arc<SearchIndex>,
    pub key: Arc<SigningKey>,
    pub town: Option<String>,
    pub token: Arc<str>,
    pub api_addr: String,
    /// The URL the public address is reached at, for the catalogue's links.
    pub public_url: Option<Arc<str>>,
    /// The corpus summary the catalogue is made from.
    pub catalog: Arc<crate::catalog::CorpusCache>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    /// Turns to check a submission (`SUBMIT_VERIFIERS`), shared by both addresses.
    pub verifier: Arc<tokio::sync::Semaphore>,
}

/// Everything: what the local API serves (127.0.0.1 by default).
pub fn router(state: ApiState) -> Router {
    read_routes(export::LOCAL_EXPORTS)
        .route("/api/v1/status", get(node::status))
        .route("/api/v1/peers", get(node::peers))
        .route("/api/v1/publish", post(write::publish_files))
        .route("/api/v1/submit", post(write::submit))
        .route(
            "/api/v1/import",
            post(write::import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/metrics", get(node::metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn(headers::security_headers))
}

/// What may be opened to the public (`--public-api`): the corpus browser and the read API;
/// nothing that writes, nothing about the node's peers.
/// In a federation, practitioners submit signed records here too: their signature is their
/// credential, checked like gossip. In open mode, where anyone's signature would do, the public
/// address takes no writes at all. Requests are admitted within `PUBLIC_REQUESTS` (beyond:
/// refused at once, never queued), so what the public can make the node hold stays bounded.
pub fn public_router(state: ApiState) -> Router {
    let federated = matches!(state.store.mode(), Mode::Federation(_));
    let routes = read_routes(export::PUBLIC_EXPORTS);
    let routes = if federated {
        routes.route("/api/v1/submit", post(write::submit))
    } else {
        routes
    };
    let admission = Admission::new(PUBLIC_REQUESTS, state.metrics.clone());
    routes
        .layer(axum::middleware::from_fn_with_state(
            admission,
            admission::admit,
        ))
        .with_state(state)
        // Outside admission: a preflight is answered from its head alone, costs nothing, and
        // refusals (429, 503) carry the CORS header so a page elsewhere can read them.
        .layer(axum::middleware::from_fn(cors::public_reads))
        .layer(axum::middleware::from_fn(headers::security_headers))
}

fn read_routes(exports: export::ExportLimits) -> Router<ApiState> {
    Router::new()
        .route("/", get(page::page))
        .route("/assets/app.js", get(page::script))
        .route("/assets/app.css", get(page::style))
        .route("/api/v1/records", get(records::list))
        .route("/api/v1/records/{id}", get(records::show))
        .route("/api/v1/stats", get(records::stats))
        .route(
            "/api/v1/export",
            get(export::export).layer(axum::Extension(exports.permits())),
        )
        .route("/api/v1/vocabulary", get(page::vocabulary))
        .route("/api/v1/members", get(records::members))
        .route("/api/v1/openapi.json", get(page::openapi))
        .route("/api/v1/catalog.jsonld", get(catalog::catalog))
        .route("/api/v1/attachments/{hash}", get(attachments::attachment))
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("api_addr", &self.api_addr)
            .finish_non_exhaustive()
    }
}

/// An error answer: a status and a message that names what is wrong.
#[derive(Debug)]
pub struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("API: {e}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) fn unavailable() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node is stopping".into(),
    )
}

pub(super) fn authorise(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this endpoint writes: send `Authorization: Bearer <token>` with the token in <home>/api.token".into(),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}
