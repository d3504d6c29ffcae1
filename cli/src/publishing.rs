//! `publish`: validating and signing files, into the home's store, through the running node, or
//! to another node's `/api/v1/submit` with a personal key.

use crate::Refused;
use crate::remote::{Remote, error_text};
use crate::trust;
use crate::ui::progress_bar;
use cailloux_node::publish::{self, FileViolations};
use cailloux_node::{Home, now_millis};
use cailloux_protocol::Record;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Records are signed and stored this many at a time: one flush per batch.
pub(crate) const PUBLISH_BATCH: usize = 64;

pub(crate) fn publish(
    home: &Home,
    paths: &[PathBuf],
    json: bool,
    node: Option<&str>,
    supersedes: Option<&str>,
) -> anyhow::Result<()> {
    let files = publish::collect_files(paths).map_err(|e| Refused(e.to_string()))?;
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Refused(format!("{}: {e}", file.display())))?;
        sources.push((file, text));
    }
    let total = sources.len();
    if let Some(url) = node {
        return publish_to(home, url, sources, json, supersedes);
    }
    if let Some(remote) = Remote::find(home) {
        let supersedes = supersedes
            .map(|id| trust::resolve_id(home, None, id))
            .transpose()?;
        return publish_remote(&remote, sources, json, supersedes);
    }
    let identity = home.load_identity()?;
    let config = home.load_config()?;
    let store = home.open_store()?;
    let mut plan = match publish::plan(sources, config.town.as_deref(), Some(&store)) {
        Ok(plan) => plan,
        Err(problems) => {
            report_violations(&problems, total);
            return Err(Refused(String::new()).into());
        }
    };
    if let Some(old) = supersedes {
        let old = trust::resolve_in(&store, old)?;
        plan.supersede(old).map_err(Refused)?;
    }
    let bar = progress_bar(Some(plan.len() as u64), "publishing");
    let mut stdout = std::io::stdout().lock();
    let plan_files = plan.files();
    // All or nothing: the ledger sees every record before any is stored (a node in a
    // federation refuses a town key that is not admitted, say).
    let signed: Vec<(PathBuf, Record)> = plan
        .sign(identity.signing_key(), now_millis)
        .collect::<Result<_, _>>()?;
    let records: Vec<Record> = signed.iter().map(|(_, r)| r.clone()).collect();
    trust::all_accepted(&store, &records)?;
    // The files before the records that name them.
    let blobs = home.open_blobs(config.blob_cache_mb)?;
    let added = plan_files
        .store(&blobs)
        .map_err(|e| Refused(e.to_string()))?;
    let mut batch: Vec<(PathBuf, Record)> = Vec::with_capacity(PUBLISH_BATCH);
    let mut signed = signed.into_iter().peekable();
    while let Some(item) = signed.next() {
        batch.push(item);
        if batch.len() == PUBLISH_BATCH || signed.peek().is_none() {
            let records: Vec<Record> = batch.iter().map(|(_, r)| r.clone()).collect();
            if let Err(e) = store.insert_batch(&records, now_millis()) {
                blobs.remove_new(&added);
                return Err(e.into());
            }
            // Durable now: only now may the ids be printed.
            for (file, record) in batch.drain(..) {
                bar.suspend(|| print_published(&mut stdout, &file, &record.id().to_hex(), json))?;
                bar.inc(1);
            }
            stdout.flush()?;
        }
    }
    bar.finish_and_clear();
    if !json {
        eprintln!("published {total} record(s)");
    }
    Ok(())
}

pub(crate) fn print_published(
    out: &mut dyn Write,
    file: &Path,
    id: &str,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({ "file": file.display().to_string(), "id": id });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{id}  {}", file.display())
    }
}

/// A practitioner publishing from their own machine: signs with this home's personal key and
/// submits the signed records to the town's node at `url`, which checks the chain of trust like
/// any record from a peer. The town defaults to the one that delegated this key.
pub(crate) fn publish_to(
    home: &Home,
    url: &str,
    sources: Vec<(PathBuf, String)>,
    json: bool,
    supersedes: Option<&str>,
) -> anyhow::Result<()> {
    let total = sources.len();
    let identity = home.load_identity()?;
    let mut town = home.load_config()?.town;
    if town.is_none() {
        town = trust::town_of(home, url, &identity.public_key())?;
    }
    let mut plan = match publish::plan(sources, town.as_deref(), None) {
        Ok(plan) => plan,
        Err(problems) => {
            report_violations(&problems, total);
            return Err(Refused(String::new()).into());
        }
    };
    if let Some(old) = supersedes {
        plan.supersede(trust::resolve_id(home, Some(url), old)?)
            .map_err(Refused)?;
    }
    if plan.has_files() {
        return Err(Refused(format!(
            "attachments cannot be sent to another node with --node yet; publish the files on \
             the town's own node ({url}), or without `attachments:` here"
        ))
        .into());
    }
    let signed: Vec<(PathBuf, Record)> = plan
        .sign(identity.signing_key(), now_millis)
        .collect::<Result<_, _>>()?;
    trust::submit(
        home,
        Some(url),
        signed.iter().map(|(_, r)| r.clone()).collect(),
    )?;
    let mut out = std::io::stdout().lock();
    for (file, record) in &signed {
        print_published(&mut out, file, &record.id().to_hex(), json)?;
    }
    if !json {
        eprintln!("published {total} record(s) to {url}");
    }
    Ok(())
}

/// Publishing through the running node: it validates, signs with the town's key, stores and
/// gossips. File paths travel absolute (file links resolve against them) and print as given.
pub(crate) fn publish_remote(
    remote: &Remote,
    sources: Vec<(PathBuf, String)>,
    json: bool,
    supersedes: Option<cailloux_protocol::RecordId>,
) -> anyhow::Result<()> {
    let total = sources.len();
    let mut given: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    let mut files = Vec::with_capacity(total);
    for (path, text) in sources {
        let absolute = path
            .canonicalize()
            .map_err(|e| Refused(format!("{}: {e}", path.display())))?;
        given.insert(absolute.display().to_string(), path);
        files.push(serde_json::json!({ "path": absolute, "text": text }));
    }
    let answer = remote.post_json(
        "/api/v1/publish",
        &serde_json::json!({ "files": files, "supersedes": supersedes.map(|id| id.to_hex()) }),
    )?;
    let as_given = |v: &Value| {
        let file = v["file"].as_str().unwrap_or_default();
        given
            .get(file)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(file))
    };
    match answer.status {
        200 => {
            let mut out = std::io::stdout().lock();
            for p in answer.body["published"].as_array().into_iter().flatten() {
                print_published(
                    &mut out,
                    &as_given(p),
                    p["id"].as_str().unwrap_or_default(),
                    json,
                )?;
            }
            if !json {
                eprintln!("published {total} record(s) through the running node");
            }
            Ok(())
        }
        422 => {
            let mut problems: Vec<FileViolations> = Vec::new();
            for p in answer.body["problems"].as_array().into_iter().flatten() {
                let file = as_given(p);
                let violation = cailloux_protocol::Violation::new(
                    p["field"].as_str().unwrap_or_default(),
                    p["message"].as_str().unwrap_or_default(),
                )
                .suggest(p["suggestion"].as_str());
                match problems.last_mut() {
                    Some(last) if last.file == file => last.violations.push(violation),
                    _ => problems.push(FileViolations {
                        file,
                        violations: vec![violation],
                    }),
                }
            }
            report_violations(&problems, total);
            Err(Refused(String::new()).into())
        }
        400 | 403 | 409 => Err(Refused(error_text(&answer.body)).into()),
        _ => Err(anyhow::anyhow!(
            "the node refused: {}",
            error_text(&answer.body)
        )),
    }
}

pub(crate) fn report_violations(problems: &[FileViolations], total: usize) {
    let mut err = std::io::stderr().lock();
    let count: usize = problems.iter().map(|p| p.violations.len()).sum();
    for p in problems {
        for v in &p.violations {
            let _ = writeln!(err, "{}: {v}", p.file.display());
        }
    }
    let _ = writeln!(
        err,
        "error: {count} problem(s) in {} of {total} file(s); nothing was published",
        problems.len()
    );
}
