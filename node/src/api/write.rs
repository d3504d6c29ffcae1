//! The endpoints that write: `publish` and `import` (the town's own, behind the bearer token)
//! and `submit` (records signed elsewhere, whose signature is their credential).
//!
//! `submit` is open to the public (in a federation), so what one request can make the node do
//! is bounded: a body of at most 2 MiB and 512 records; decoding and signature checks on a
//! blocking thread, one submission at a time (`SUBMIT_VERIFIERS`); signatures checked in
//! batches of `VERIFY_BATCH`, in order, stopping at the first bad one; and a record the store
//! already holds is answered `new: false` without being decoded or checked again. Its id is the
//! BLAKE3 hash of its bytes, so the same id means the same bytes, already checked when stored:
//! replaying a body costs a hash and a lookup per record.

use super::params::Params;
use super::{ApiError, ApiState, authorise, bad_request, blocking, internal, unavailable};
use crate::exchange::{self, ExchangeError};
use crate::publish;
use crate::store::Store;
use crate::writer::{Origin, Writer};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cailloux_protocol::{KeyCache, Record, RecordId, Unverified, verify_all};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

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
pub(super) async fn publish_files(
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
    let (store, blobs, key, town, writer) = (
        state.store.clone(),
        state.blobs.clone(),
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
        // The files before the records that name them (a file without its record is only
        // disk, and is removed again if the records are refused; a record without its file
        // would be a broken promise).
        let added = plan.files().store(&blobs).map_err(|e| e.to_string())?;
        let signed: Vec<(PathBuf, Record)> = plan
            .sign(&key, crate::now_millis)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let records = signed.iter().map(|(_, r)| r.clone()).collect();
        match store_all_or_nothing(&store, &writer, records)? {
            Ok(_) => Ok(Ok(Ok(signed))),
            Err(problems) => {
                blobs.remove_new(&added);
                Ok(Ok(Err(problems)))
            }
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

#[derive(Debug, Deserialize)]
pub struct SubmitRequest {
    /// Signed records, base64 (standard alphabet), in the order to store them.
    pub records: Vec<String>,
}

/// At most this many records per submission.
const MAX_SUBMITTED: usize = 512;
/// Signatures are checked this many at a time, in order: a batch check costs about half as much
/// per signature as one alone, and a body of forged records costs one batch (halved down to the
/// bad ones) before it is refused, not 512 checks.
const VERIFY_BATCH: usize = 32;

/// Stores records signed elsewhere (a practitioner's own key, a federation's key): decoded,
/// verified and checked against the ledger like anything from a peer, then announced. All or
/// nothing: 403 with every refusal when any record is refused. Records already held are
/// answered `new: false` unchecked (see the module's documentation).
pub(super) async fn submit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !json_content_type(&headers) {
        // The answer axum's `Json` extractor gives.
        return Ok((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        )
            .into_response());
    }
    let turn = state
        .verifier
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| unavailable())?;
    let store = state.store.clone();
    let checked = blocking(move || {
        let checked = check_submission(&store, &body);
        drop(turn);
        checked
    })
    .await?;
    let Checked {
        slots,
        fresh,
        verified,
        held,
    } = match checked {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused.into_response()),
    };
    state.metrics.submit_verified.inc_by(verified);
    state.metrics.submit_held.inc_by(held);
    let answers = if fresh.is_empty() {
        Vec::new()
    } else {
        let (store, writer) = (state.store.clone(), state.writer.clone());
        match blocking(move || store_all_or_nothing(&store, &writer, fresh))
            .await?
            .map_err(internal)?
        {
            Ok(answers) => answers,
            Err(problems) => return Ok(refusal(problems)),
        }
    };
    let mut answers = answers.into_iter();
    let stored: Vec<Value> = slots
        .iter()
        .map(|slot| match slot {
            Slot::Held(id) => json!({ "id": id.to_hex(), "new": false }),
            Slot::Fresh => answers.next().unwrap_or_default(),
        })
        .collect();
    state.metrics.published.inc_by(stored.len() as u64);
    Ok(Json(json!({ "stored": stored })).into_response())
}

/// `Content-Type: application/json`, or any `application/*+json`, as axum's `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.split_once('/').is_some_and(|(kind, sub)| {
        kind == "application" && (sub == "json" || sub.ends_with("+json"))
    })
}

/// A submission, checked: each record in order, held already or fresh (verified, in `fresh`).
#[derive(Debug, Default)]
struct Checked {
    slots: Vec<Slot>,
    fresh: Vec<Record>,
    /// Signatures checked.
    verified: u64,
    /// Records answered from the store.
    held: u64,
}

#[derive(Debug)]
enum Slot {
    Held(RecordId),
    /// The next of `fresh`.
    Fresh,
}

/// Why a submission was refused before the ledger saw it.
#[derive(Debug)]
enum Unchecked {
    /// Not the JSON of a `SubmitRequest` (axum's `Json` answer).
    Json(axum::extract::rejection::JsonRejection),
    /// A record (named by its index) or the request is bad: 400.
    Bad(String),
    /// The store could not be read: 500.
    Store(String),
}

impl IntoResponse for Unchecked {
    fn into_response(self) -> Response {
        match self {
            Unchecked::Json(rejection) => rejection.into_response(),
            Unchecked::Bad(message) => bad_request(message).into_response(),
            Unchecked::Store(message) => internal(message).into_response(),
        }
    }
}

/// Parses, decodes and verifies a submission's body (blocking: run on a blocking thread). The
/// first bad record, in order, is the answer, as when each was checked in turn: its index and
/// why (400).
fn check_submission(store: &Store, body: &[u8]) -> Result<Checked, Unchecked> {
    let Json(request) = Json::<SubmitRequest>::from_bytes(body).map_err(Unchecked::Json)?;
    let bad = Unchecked::Bad;
    if request.records.len() > MAX_SUBMITTED {
        return Err(bad(format!(
            "records: {} records; at most {MAX_SUBMITTED} per request",
            request.records.len()
        )));
    }
    let mut checked = Checked::default();
    let mut keys = KeyCache::default();
    let mut pending: Vec<(usize, Unverified)> = Vec::with_capacity(VERIFY_BATCH);
    for (i, text) in request.records.iter().enumerate() {
        let bytes = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => bytes,
            Err(e) => {
                checked.verify(&mut pending)?;
                return Err(bad(format!("records[{i}]: not base64: {e}")));
            }
        };
        let id = RecordId(*blake3::hash(&bytes).as_bytes());
        if store
            .contains(&id)
            .map_err(|e| Unchecked::Store(e.to_string()))?
        {
            checked.slots.push(Slot::Held(id));
            checked.held += 1;
            continue;
        }
        match Unverified::decode_with(bytes, &mut keys) {
            Ok(unverified) => {
                checked.slots.push(Slot::Fresh);
                pending.push((i, unverified));
                if pending.len() == VERIFY_BATCH {
                    checked.verify(&mut pending)?;
                }
            }
            Err(e) => {
                checked.verify(&mut pending)?;
                return Err(bad(format!("records[{i}]: {e}")));
            }
        }
    }
    checked.verify(&mut pending)?;
    Ok(checked)
}

impl Checked {
    /// Verifies the records decoded since the last batch, in one batch; the first bad one is the
    /// answer.
    fn verify(&mut self, pending: &mut Vec<(usize, Unverified)>) -> Result<(), Unchecked> {
        if pending.is_empty() {
            return Ok(());
        }
        let (indices, batch): (Vec<usize>, Vec<Unverified>) = pending.drain(..).unzip();
        self.verified += batch.len() as u64;
        for (i, result) in indices.into_iter().zip(verify_all(batch)) {
            match result {
                Ok(record) => self.fresh.push(record),
                Err(e) => return Err(Unchecked::Bad(format!("records[{i}]: {e}"))),
            }
        }
        Ok(())
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
/// `files`, an absolute folder on this machine (the local address only serves the town's own
/// CLI, which reads and writes this home too), holds the records' files named by hash.
pub(super) async fn import(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Params(params): Params,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    authorise(&state, &headers)?;
    let files = match params.get("files") {
        None => None,
        Some(dir) if Path::new(dir).is_absolute() && Path::new(dir).is_dir() => {
            Some(PathBuf::from(dir))
        }
        Some(dir) => {
            return Err(bad_request(format!(
                "files: `{}` is not a folder's absolute path on this machine; give the folder \
                 that `export --with-files` wrote",
                dir.escape_debug()
            )));
        }
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let (writer, blobs) = (state.writer.clone(), state.blobs.clone());
    let result = blocking(move || {
        let mut input =
            std::io::BufReader::with_capacity(1 << 20, tokio_util::io::SyncIoBridge::new(reader));
        let files = files.as_deref().map(|dir| (dir, &blobs));
        exchange::import_into(&mut input, &mut |_| {}, files, |good| {
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
    Ok(Json(json!({
        "good": report.good,
        "stored": report.stored,
        "bad": bad,
        "files": { "taken": report.files.taken, "absent": report.files.absent },
    })))
}
