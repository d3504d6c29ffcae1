//! The read API over the corpus: search and listing, facet counts, one record's page (its
//! signature, provenance, versions and links both ways), and the federation's roster.

use super::params::{Params, id_prefix};
use super::{ApiError, ApiState, bad_request, blocking, internal};
use crate::blobs::Blobs;
use crate::search::{SearchIndex, SearchQuery};
use crate::store::{ResolveError, Store, StoreError};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cailloux_protocol::trust::Mode;
use cailloux_protocol::view::full_json;
use cailloux_protocol::{BlobHash, IdPrefix, LinkRel, Record, RecordId};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Searches and lists: `q` (words, optional) and the filters `kind`, `theme`, `town`, `since`,
/// `until`, `outcome`; `limit` and `cursor` (the opaque `next_cursor` of the page before)
/// page through the results.
pub(super) async fn list(
    State(state): State<ApiState>,
    Params(params): Params,
) -> Result<Json<Value>, ApiError> {
    let query = SearchQuery::from_params(&params).map_err(|e| bad_request(e.to_string()))?;
    let (search, store) = (state.search.clone(), state.store.clone());
    let page = blocking(move || {
        search
            .search(&query, &store)
            .map(|results| crate::search::results_json(&results))
    })
    .await?
    .map_err(|e| {
        if e.is_bad_input() {
            bad_request(e.to_string())
        } else {
            internal(e)
        }
    })?;
    Ok(Json(page))
}

/// Counts by kind, theme, town, year and outcome, of everything or of what the filters keep.
pub(super) async fn stats(
    State(state): State<ApiState>,
    Params(params): Params,
) -> Result<Json<Value>, ApiError> {
    let query = SearchQuery::from_filter_params(&params).map_err(|e| bad_request(e.to_string()))?;
    let search = state.search.clone();
    let (total, facets) = blocking(move || search.stats(&query))
        .await?
        .map_err(internal)?;
    Ok(Json(json!({ "total": total, "facets": facets })))
}

/// The whole record, its signature status, and its links both ways (with the linked records'
/// titles, kinds and towns when this node holds them).
pub(super) async fn show(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(bad_request(
            "id: not a record id: ids are hexadecimal (0-9, a-f), 8 to 64 characters",
        ));
    };
    let prefix = id_prefix(&id)?;
    let (store, search, blobs) = (
        state.store.clone(),
        state.search.clone(),
        state.blobs.clone(),
    );
    let found = blocking(move || record_page(&store, &search, &blobs, &prefix)).await?;
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

/// Adds to each of a record's `attachments` whether this node holds its bytes (`held`).
pub fn mark_held(page: &mut serde_json::Map<String, Value>, blobs: &Blobs) {
    let Some(Value::Array(files)) = page.get_mut("attachments") else {
        return;
    };
    for file in files {
        let held = file["hash"]
            .as_str()
            .and_then(BlobHash::from_hex)
            .is_some_and(|h| blobs.has(&h));
        if let Value::Object(f) = file {
            f.insert("held".into(), json!(held));
        }
    }
}

/// Records linking to one shown on its page, at most: the rest are left out and
/// `links_in_more` says so. Each is read once, and named once per kind of link, so the page of
/// a record that many others name (each up to 64 times) costs a bounded amount.
pub const MAX_LINKS_IN: usize = 200;

/// `full_json` of a record, plus `signature`, `links_out` and `links_in`.
pub fn record_page(
    store: &Store,
    search: &SearchIndex,
    blobs: &Blobs,
    prefix: &IdPrefix,
) -> Result<Value, PageError> {
    let id = store.resolve(prefix)?;
    let record = store
        .get(&id)?
        .ok_or(ResolveError::NotFound(prefix.clone()))?;
    let mut page = full_json(&record);
    mark_held(&mut page, blobs);
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
    // Each linked record is read and decoded once, however many links name it.
    let mut seen: HashMap<RecordId, Option<Value>> = HashMap::new();
    let mut describe = |rel: &str, other: &RecordId, known: Option<&Record>| {
        let mut link = json!({ "rel": rel, "id": other.to_hex() });
        if !seen.contains_key(other) {
            let read = match known {
                Some(r) => Some(r.clone()),
                None => store.get(other)?,
            };
            let summary = read.as_ref().and_then(|r| {
                let p = r.publication()?;
                Some(json!({
                    "title": p.title,
                    "kind": p.kind,
                    "town": p.town,
                    "created_at": cailloux_protocol::time::rfc3339_millis(r.created_at()),
                }))
            });
            seen.insert(*other, summary);
        }
        if let Some(Some(Value::Object(summary))) = seen.get(other)
            && let Value::Object(fields) = &mut link
        {
            fields.extend(summary.clone());
        }
        Ok::<Value, PageError>(link)
    };
    let mut out = Vec::new();
    let mut written: HashSet<(LinkRel, RecordId)> = HashSet::new();
    for l in &publication.links {
        if written.insert((l.rel, l.id)) {
            out.push(describe(l.rel.slug(), &l.id, None)?);
        }
    }
    // Links in: at most `MAX_LINKS_IN` records (the oldest first), each (rel, record) once.
    let sources = search.linking_to(&id, MAX_LINKS_IN + 1)?;
    let more = sources.len() > MAX_LINKS_IN;
    let mut incoming = Vec::new();
    for source in sources.iter().take(MAX_LINKS_IN) {
        if let Some(r) = store.get(source)?
            && let Some(p) = r.publication()
        {
            let rels: BTreeSet<LinkRel> = p
                .links
                .iter()
                .filter(|l| l.id == id)
                .map(|l| l.rel)
                .collect();
            for rel in rels {
                incoming.push(describe(rel.slug(), source, Some(&r))?);
            }
        }
    }
    page.insert("links_in_more".into(), json!(more));
    page.insert(
        "body_html".into(),
        json!(crate::markdown::to_html(&publication.body)),
    );
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

/// The roster as this node sees it (read on a blocking thread: it takes the ledger's lock,
/// which a write may hold for a while).
pub(super) async fn members(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    Ok(Json(
        blocking(move || members_json(&store, crate::now_millis())).await?,
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use cailloux_protocol::{Link, SigningKey};

    fn practice(at: u64, links: Vec<Link>) -> Record {
        let text = "---\nkind: practice\ntitle: Fiche\nsummary: Essai.\nthemes: [food]\ntown: Vallon\n---\nCorps.\n";
        let mut p = cailloux_protocol::parse_publication(text, None)
            .unwrap_or_else(|v| panic!("{v:?}"))
            .publication;
        p.links = links;
        Record::sign(&SigningKey::from_bytes(&[3; 32]), at, p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A record that many others name, each up to 64 times: its page names each of them once
    /// per kind of link, at most `MAX_LINKS_IN` of them, and says that more exist.
    #[test]
    fn a_page_lists_each_record_linking_to_it_once_and_a_bounded_number_of_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("store"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (search, _) =
            SearchIndex::open(&dir.path().join("index")).unwrap_or_else(|e| panic!("{e}"));
        let blobs = Blobs::open(&dir.path().join("blobs"), 0).unwrap_or_else(|e| panic!("{e}"));
        let target = practice(1_000, Vec::new());
        let cites = Link {
            rel: LinkRel::Cites,
            id: target.id(),
        };
        let mut records = vec![target.clone()];
        records.extend(
            (0..MAX_LINKS_IN as u64 + 10).map(|i| practice(2_000 + i, vec![cites.clone(); 5])),
        );
        store
            .insert_batch(&records, crate::now_millis())
            .unwrap_or_else(|e| panic!("{e}"));
        search
            .add(&records, &[], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let prefix = IdPrefix::parse(&target.id().to_hex()).unwrap_or_else(|e| panic!("{e}"));
        let page = record_page(&store, &search, &blobs, &prefix).unwrap_or_else(|e| panic!("{e}"));
        let links_in = page["links_in"].as_array().cloned().unwrap_or_default();
        assert_eq!(links_in.len(), MAX_LINKS_IN);
        let distinct: HashSet<&str> = links_in.iter().filter_map(|l| l["id"].as_str()).collect();
        assert_eq!(distinct.len(), MAX_LINKS_IN, "each record once");
        assert_eq!(page["links_in_more"], true);
        assert!(links_in.iter().all(|l| l["title"] == "Fiche"));
    }
}
