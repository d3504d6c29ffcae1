//! The node's local HTTP API (axum): what the `cailloux` command uses while a node runs for its
//! home (the node holds the store), and `/metrics` for Prometheus.
//!
//! Reads are open to whoever can reach the address (127.0.0.1 by default). Writes (`publish`,
//! `import`) also need the bearer token the node keeps in `<home>/api.token`, readable by the
//! home's owner only. JSON field names are the CLI's.

use crate::exchange::{self, ExchangeError};
use crate::metrics::Metrics;
use crate::network::Client;
use crate::publish;
use crate::search::{SearchIndex, SearchQuery};
use crate::store::{Filter, ResolveError, Store, StoreError};
use crate::writer::{Origin, Writer};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cailloux_protocol::trust::Mode;
use cailloux_protocol::view::full_json;
use cailloux_protocol::{IdPrefix, Record, RecordId, SigningKey};
use futures::TryStreamExt;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub client: Client,
    pub store: Store,
    pub writer: Writer,
    /// The reconciliation index: its length is the record count, without a scan.
    pub index: Arc<crate::sync::SyncIndex>,
    pub search: Arc<SearchIndex>,
    pub key: Arc<SigningKey>,
    pub town: Option<String>,
    pub token: Arc<str>,
    pub api_addr: String,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
}

/// Everything: what the local API serves (127.0.0.1 by default).
pub fn router(state: ApiState) -> Router {
    read_routes()
        .route("/api/v1/status", get(status))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/publish", post(publish_files))
        .route("/api/v1/submit", post(submit))
        .route(
            "/api/v1/import",
            post(import).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What may be opened to the public (`--public-api`): the corpus browser and the read API;
/// nothing that writes, nothing about the node's peers.
/// In a federation, practitioners submit signed records here too: their signature is their
/// credential, checked like gossip. In open mode, where anyone's signature would do, the public
/// address takes no writes at all. At most `PUBLIC_CONCURRENCY` requests are served at once
/// (the others wait their turn), so what the public can make the node hold stays bounded: with
/// axum's 2 MiB body limit, 64 MiB at most.
pub fn public_router(state: ApiState) -> Router {
    const PUBLIC_CONCURRENCY: usize = 32;
    let federated = matches!(state.store.mode(), Mode::Federation(_));
    let routes = read_routes();
    let routes = if federated {
        routes.route("/api/v1/submit", post(submit))
    } else {
        routes
    };
    routes
        .layer(tower::limit::ConcurrencyLimitLayer::new(PUBLIC_CONCURRENCY))
        .with_state(state)
}

fn read_routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/records", get(list))
        .route("/api/v1/records/{id}", get(show))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/export", get(export))
        .route("/api/v1/vocabulary", get(vocabulary))
        .route("/api/v1/members", get(members))
        .route("/api/v1/openapi.json", get(openapi))
}

/// The corpus browser: one page, every asset inline, nothing fetched from elsewhere.
async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../web/index.html"),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// The French labels of the closed vocabularies, for the page.
async fn vocabulary() -> Json<Value> {
    use cailloux_protocol::{Kind, Outcome, Theme};
    let table = |pairs: Vec<(&str, &str)>| -> Value {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Json(json!({
        "kinds": table(Kind::ALL.iter().map(|k| (k.slug(), k.label_fr())).collect()),
        "themes": table(Theme::ALL.iter().map(|t| (t.slug(), t.label_fr())).collect()),
        "outcomes": table(Outcome::ALL.iter().map(|o| (o.slug(), o.label_fr())).collect()),
    }))
}

/// The body's Markdown as HTML. Raw HTML in the Markdown is shown as text, never run: a
/// publication comes from another town, not from this page's authors.
pub fn markdown_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html};
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
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
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("API: {e}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn unavailable() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node is stopping".into(),
    )
}

fn authorise(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

async fn status(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let net = state.client.status().await.map_err(|_| unavailable())?;
    let records = state.index.len();
    Ok(Json(json!({
        "peer_id": net.peer_id,
        "public_key": cailloux_protocol::id::encode_hex(state.key.verifying_key().as_bytes()),
        "town": state.town,
        "listen_addrs": net.listen_addrs,
        "api": state.api_addr,
        "records": records,
        "federation": match state.store.mode() {
            Mode::Open => Value::Null,
            Mode::Federation(key) => json!(key.to_hex()),
        },
        "peers": net.peers,
        "gossip_peers": net.gossip_peers,
        "banned_peers": net.banned_peers,
    })))
}

async fn peers(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let peers = state.client.peers().await.map_err(|_| unavailable())?;
    Ok(Json(json!(peers)))
}

/// Searches and lists: `q` (words, optional) and the filters `kind`, `theme`, `town`, `since`,
/// `until`, `outcome`; `limit` and `cursor` page through the results.
async fn list(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = SearchQuery::from_params(&params).map_err(bad_request)?;
    let (search, store) = (state.search.clone(), state.store.clone());
    let page = blocking(move || {
        search
            .search(&query, &store)
            .map(|results| crate::search::results_json(&query, &results))
    })
    .await?
    .map_err(internal)?;
    Ok(Json(page))
}

/// Counts by kind, theme, town, year and outcome, of everything or of what the filters keep.
async fn stats(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = SearchQuery::from_params(&params).map_err(bad_request)?;
    let search = state.search.clone();
    let (total, facets) = blocking(move || search.stats(&query))
        .await?
        .map_err(internal)?;
    Ok(Json(json!({ "total": total, "facets": facets })))
}

/// The whole record, its signature status, and its links both ways (with the linked records'
/// titles, kinds and towns when this node holds them).
async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let prefix = IdPrefix::parse(&id).map_err(bad_request)?;
    let (store, search) = (state.store.clone(), state.search.clone());
    let found = blocking(move || record_page(&store, &search, &prefix)).await?;
    match found {
        Ok(page) => Ok(Json(page)),
        Err(PageError::Resolve(e @ ResolveError::NotFound(_))) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(PageError::Resolve(e @ ResolveError::Ambiguous { .. })) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(internal(e)),
    }
}

/// Why a record page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
}

/// `full_json` of a record, plus `signature`, `links_out` and `links_in`.
pub fn record_page(
    store: &Store,
    search: &SearchIndex,
    prefix: &IdPrefix,
) -> Result<Value, PageError> {
    let id = store.resolve(prefix)?;
    let record = store
        .get(&id)?
        .ok_or(ResolveError::NotFound(prefix.clone()))?;
    let mut page = full_json(&record);
    // Records are verified before they are stored; the bytes are here for anyone to re-check.
    page.insert(
        "signature".into(),
        json!({ "status": "verified", "algorithm": "ed25519", "record": base64_record(&record) }),
    );
    page.insert("provenance".into(), provenance(store, &record));
    let Some(publication) = record.publication() else {
        return Ok(Value::Object(page));
    };
    page.insert("versions".into(), versions(store, &id)?);
    let describe = |rel: &str, other: &RecordId| -> Result<Value, PageError> {
        let mut link = json!({ "rel": rel, "id": other.to_hex() });
        if let Some(r) = store.get(other)?
            && let Some(p) = r.publication()
        {
            link["title"] = json!(p.title);
            link["kind"] = json!(p.kind);
            link["town"] = json!(p.town);
            link["created_at"] = json!(cailloux_protocol::time::rfc3339_millis(r.created_at()));
        }
        Ok(link)
    };
    let out: Vec<Value> = publication
        .links
        .iter()
        .map(|l| describe(l.rel.slug(), &l.id))
        .collect::<Result<_, _>>()?;
    let mut incoming = Vec::new();
    for source in search.linking_to(&id)? {
        if let Some(r) = store.get(&source)?
            && let Some(p) = r.publication()
        {
            for l in p.links.iter().filter(|l| l.id == id) {
                incoming.push(describe(l.rel.slug(), &source)?);
            }
        }
    }
    page.insert("body_html".into(), json!(markdown_html(&publication.body)));
    page.insert("links_out".into(), Value::Array(out));
    page.insert("links_in".into(), Value::Array(incoming));
    Ok(Value::Object(page))
}

/// Who stands behind a record, as this node's ledger sees it at the record's creation time:
/// the federation's certificate of the town, the town's delegation of the person.
pub fn provenance(store: &Store, record: &Record) -> Value {
    let ledger = store.ledger();
    let federation = match ledger.mode() {
        Mode::Open => Value::Null,
        Mode::Federation(key) => json!(key.to_hex()),
    };
    let town = record.publication().map(|p| p.town.as_str());
    match ledger.standing_for(&record.author(), record.created_at(), town) {
        Ok(s) => json!({
            "federation": federation,
            "chain": if s.federation { "federation" } else if s.delegate.is_some() { "delegate" } else { "town" },
            "town_key": s.town_key.to_hex(),
            "town": s.town,
            "delegate": s.delegate.map(|d| json!({ "name": d.name, "role": d.role, "kinds": d.kinds })),
        }),
        Err(e) => json!({ "federation": federation, "chain": "none", "problem": e.to_string() }),
    }
}

/// The versions of a record and whether it was retracted: `superseded_by` (the versions that
/// replace it: those a live version descends from), `history` (every version, oldest first,
/// with retraction and voiding marks and whether it is current), `retracted`, `voided`. The
/// ledger's one rule of visibility decides all of them: a retracted or voided version hides
/// nothing.
pub fn versions(store: &Store, id: &RecordId) -> Result<Value, StoreError> {
    let ledger = store.ledger();
    let retraction = |id: &RecordId| {
        ledger.retraction(id).map(|r| {
            json!({
                "by": r.issuer.to_hex(),
                "at": cailloux_protocol::time::rfc3339_millis(r.at),
                "reason": r.act.reason,
                "record": r.id.to_hex(),
            })
        })
    };
    let mut history = Vec::new();
    for v in ledger.history(id) {
        let mut entry = json!({ "id": v.to_hex(), "retracted": retraction(&v) });
        if let Some(r) = store.get(&v)? {
            entry["created_at"] = json!(cailloux_protocol::time::rfc3339_millis(r.created_at()));
            entry["author"] = json!(r.author().to_hex());
            if let Some(p) = r.publication() {
                entry["title"] = json!(p.title);
            }
        }
        // One rule with listings: current unless a live version descends from it.
        entry["current"] = json!(!ledger.is_superseded(&v));
        entry["voided"] = json!(ledger.is_voided(&v));
        history.push(entry);
    }
    Ok(json!({
        "retracted": retraction(id),
        "voided": ledger.is_voided(id),
        "superseded_by": ledger.superseded_by(id).iter().map(RecordId::to_hex).collect::<Vec<_>>(),
        "supersedes": ledger.supersedes(id).map(|v| v.to_hex()),
        "history": history,
    }))
}

fn base64_record(record: &Record) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(record.bytes())
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
    #[serde(default)]
    include_retracted: bool,
    #[serde(default)]
    all_versions: bool,
}

/// Streams the export as it is read from the store: memory stays flat whatever its size.
async fn export(
    State(state): State<ApiState>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(bad_request(format!(
                "format: `{other}` is not `jsonl` or `csv`"
            )));
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let store = state.store.clone();
    let filter = Filter {
        include_retracted: q.include_retracted,
        all_versions: q.all_versions,
        ..Filter::default()
    };
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(64 * 1024),
        };
        let result = if csv {
            exchange::export_csv(&store, &filter, &mut out, &mut || {})
        } else {
            exchange::export_jsonl(&store, &filter, &mut out, &mut || {})
        };
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/jsonl"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A blocking `Write` that sends 64 KiB chunks into a channel.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buffer));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        }
        Ok(())
    }
}

/// The signed records with their files (or the ledger's refusals), or every problem of every
/// file.
type Published = Result<Result<Vec<(PathBuf, Record)>, Vec<Value>>, Vec<publish::FileViolations>>;

#[derive(Debug, Deserialize)]
pub struct PublishRequest {
    pub files: Vec<PublishFile>,
    /// Publish the one file as a new version of this record.
    #[serde(default)]
    pub supersedes: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PublishFile {
    /// The file's absolute path: file links are resolved against it.
    pub path: PathBuf,
    pub text: String,
}

/// Validates, signs (with the town's key), stores and announces publications. 422 with every
/// problem of every file when any is invalid; nothing is stored then.
async fn publish_files(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(request): Json<PublishRequest>,
) -> Result<Response, ApiError> {
    authorise(&state, &headers)?;
    let supersedes = request
        .supersedes
        .as_deref()
        .map(|hex| {
            RecordId::from_hex(hex).ok_or_else(|| {
                bad_request(format!(
                    "supersedes: `{hex}` is not a record id (64 hexadecimal characters)"
                ))
            })
        })
        .transpose()?;
    let files: Vec<(PathBuf, String)> = request
        .files
        .into_iter()
        .map(|f| (f.path, f.text))
        .collect();
    let (store, key, town, writer) = (
        state.store.clone(),
        state.key.clone(),
        state.town.clone(),
        state.writer.clone(),
    );
    let outcome = blocking(move || -> Result<Published, String> {
        let mut plan = match publish::plan(files, town.as_deref(), Some(&store)) {
            Ok(plan) => plan,
            Err(problems) => return Ok(Err(problems)),
        };
        if let Some(old) = supersedes
            && let Err(message) = plan.supersede(old)
        {
            return Ok(Ok(Err(vec![
                json!({ "id": old.to_hex(), "reason": "invalid", "message": message }),
            ])));
        }
        let signed: Vec<(PathBuf, Record)> = plan
            .sign(&key, crate::now_millis)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let records = signed.iter().map(|(_, r)| r.clone()).collect();
        match store_all_or_nothing(&store, &writer, records)? {
            Ok(_) => Ok(Ok(Ok(signed))),
            Err(problems) => Ok(Ok(Err(problems))),
        }
    })
    .await?
    .map_err(internal)?;
    let outcome = match outcome {
        Ok(Err(refused)) => return Ok(refusal(refused)),
        Ok(Ok(signed)) => Ok(signed),
        Err(problems) => Err(problems),
    };
    match outcome {
        Ok(signed) => {
            state.metrics.published.inc_by(signed.len() as u64);
            let published: Vec<Value> = signed
                .iter()
                .map(|(f, r)| json!({ "file": f.display().to_string(), "id": r.id().to_hex() }))
                .collect();
            Ok(Json(json!({ "published": published })).into_response())
        }
        Err(problems) => {
            let list: Vec<Value> = problems
                .iter()
                .flat_map(|p| {
                    p.violations.iter().map(|v| {
                        json!({ "file": p.file.display().to_string(), "field": v.field, "message": v.message, "suggestion": v.suggestion })
                    })
                })
                .collect();
            let files = problems.len();
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": format!("{} problem(s) in {files} file(s); nothing was published", list.len()), "problems": list }))).into_response())
        }
    }
}

/// The roster as this node sees it.
async fn members(State(state): State<ApiState>) -> Json<Value> {
    Json(members_json(&state.store, crate::now_millis()))
}

/// The federation, its towns and their delegates, with validity and revocations, as JSON (the
/// API's `/members` and `cailloux members --json`).
pub fn members_json(store: &Store, now: u64) -> Value {
    use cailloux_protocol::time::rfc3339_millis;
    let roster = store.ledger().roster(now);
    let time = |t: Option<u64>| t.map(rfc3339_millis);
    let revoked = |r: &Option<(u64, String)>| {
        r.as_ref()
            .map(|(at, why)| json!({ "at": rfc3339_millis(*at), "reason": why }))
    };
    json!({
        "federation": roster.federation.map(|k| k.to_hex()),
        "name": roster.name,
        "towns": roster.towns.iter().map(|t| json!({
            "town": t.town,
            "country": t.country,
            "code": t.code,
            "key": t.key.to_hex(),
            "certificate": t.record.to_hex(),
            "from": rfc3339_millis(t.from),
            "until": time(t.until),
            "revoked": revoked(&t.revoked),
            "valid": t.valid_now,
            "delegates": t.delegates.iter().map(|d| json!({
                "name": d.name,
                "role": d.role,
                "kinds": d.kinds,
                "key": d.key.to_hex(),
                "delegation": d.record.to_hex(),
                "from": rfc3339_millis(d.from),
                "until": time(d.until),
                "revoked": revoked(&d.revoked),
                "valid": d.valid_now,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
pub struct SubmitRequest {
    /// Signed records, base64 (standard alphabet), in the order to store them.
    pub records: Vec<String>,
}

/// Stores records signed elsewhere (a practitioner's own key, a federation's key): decoded,
/// verified and checked against the ledger like anything from a peer, then announced. All or
/// nothing: 403 with every refusal when any record is refused.
async fn submit(
    State(state): State<ApiState>,
    Json(request): Json<SubmitRequest>,
) -> Result<Response, ApiError> {
    use base64::Engine;
    const MAX_SUBMITTED: usize = 512;
    if request.records.len() > MAX_SUBMITTED {
        return Err(bad_request(format!(
            "records: {} records; at most {MAX_SUBMITTED} per request",
            request.records.len()
        )));
    }
    let mut records = Vec::with_capacity(request.records.len());
    for (i, text) in request.records.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| bad_request(format!("records[{i}]: not base64: {e}")))?;
        let unverified = cailloux_protocol::Unverified::decode(bytes)
            .map_err(|e| bad_request(format!("records[{i}]: {e}")))?;
        let record = unverified
            .verify()
            .map_err(|e| bad_request(format!("records[{i}]: {e}")))?;
        records.push(record);
    }
    let (store, writer) = (state.store.clone(), state.writer.clone());
    let outcome = blocking(move || store_all_or_nothing(&store, &writer, records))
        .await?
        .map_err(internal)?;
    match outcome {
        Ok(stored) => {
            state.metrics.published.inc_by(stored.len() as u64);
            Ok(Json(json!({ "stored": stored })).into_response())
        }
        Err(problems) => Ok(refusal(problems)),
    }
}

/// Refusals of a batch: 403, or 409 when records only wait for others this node lacks.
fn refusal(problems: Vec<Value>) -> Response {
    let pending = problems.iter().all(|p| p["reason"] == "pending");
    let status = if pending {
        StatusCode::CONFLICT
    } else {
        StatusCode::FORBIDDEN
    };
    let error = format!(
        "{} record(s) refused; nothing was stored: {}",
        problems.len(),
        problems
            .iter()
            .filter_map(|p| p["message"].as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    (
        status,
        Json(json!({ "error": error, "problems": problems })),
    )
        .into_response()
}

/// Checks a batch against the ledger and stores it only if every record is accepted (or was
/// already here). Ok: `{id, new}` per record; Err: `{id, reason, message}` per refusal.
fn store_all_or_nothing(
    store: &Store,
    writer: &Writer,
    records: Vec<Record>,
) -> Result<Result<Vec<Value>, Vec<Value>>, String> {
    let ids: Vec<RecordId> = records.iter().map(Record::id).collect();
    let checked = store
        .check_batch(&records, crate::now_millis())
        .map_err(|e| e.to_string())?;
    let problems = denials_of(&ids, &checked);
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let outcomes = writer
        .insert_blocking(records, Origin::Local)
        .map_err(|e| e.to_string())?;
    let problems = denials_of(&ids, &outcomes);
    if !problems.is_empty() {
        // The roster changed between the check and the write (a revocation arrived).
        return Ok(Err(problems));
    }
    Ok(Ok(ids
        .iter()
        .zip(&outcomes)
        .map(|(id, o)| json!({ "id": id.to_hex(), "new": o.is_new() }))
        .collect()))
}

fn denials_of(ids: &[RecordId], outcomes: &[crate::store::Outcome]) -> Vec<Value> {
    use cailloux_protocol::trust::Denied;
    ids.iter()
        .zip(outcomes)
        .filter_map(|(id, o)| match o {
            crate::store::Outcome::Denied(Denied::Refused { reason, message }) => {
                Some(json!({ "id": id.to_hex(), "reason": reason, "message": message }))
            }
            crate::store::Outcome::Denied(Denied::Pending(message)) => {
                Some(json!({ "id": id.to_hex(), "reason": "pending", "message": message }))
            }
            _ => None,
        })
        .collect()
}

/// Imports a JSONL export streamed in the request body (the network announces what was new).
async fn import(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    authorise(&state, &headers)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let writer = state.writer.clone();
    let result = blocking(move || {
        let mut input =
            std::io::BufReader::with_capacity(1 << 20, tokio_util::io::SyncIoBridge::new(reader));
        exchange::import_into(&mut input, &mut |_| {}, |good| {
            Ok::<_, ExchangeError>(writer.insert_blocking(good.to_vec(), Origin::Local)?)
        })
    })
    .await?;
    let report = result.map_err(internal)?;
    state
        .metrics
        .accepted
        .get_or_create(&crate::metrics::Via { via: "import" })
        .inc_by(report.stored);
    let bad: Vec<Value> = report
        .bad
        .iter()
        .map(|b| json!({ "line": b.line, "reason": b.reason }))
        .collect();
    Ok(Json(
        json!({ "good": report.good, "stored": report.stored, "bad": bad }),
    ))
}

async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry).map_err(internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
