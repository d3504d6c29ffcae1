//! Moving records between nodes and tools as files: the JSONL export (each signed record beside
//! its readable fields, verifiable offline by anyone), the CSV export for spreadsheets, and the
//! checks that `import` and `verify` run on every line.
//!
//! A JSONL line is one JSON object: the readable fields of `cailloux_protocol::view::full_json`,
//! then `record`, the signed record bytes in standard base64. A line is good when its record
//! decodes, its signature verifies and its readable fields are exactly those of the record.

use crate::store::{Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cailloux_protocol::time::rfc3339_millis;
use cailloux_protocol::view::full_json;
use cailloux_protocol::{Record, Unverified, verify_all};
use serde_json::Value;
use std::io::{BufRead, Write};

/// Lines are checked, verified and stored this many at a time: one batch verification and one
/// flush per chunk.
pub const CHUNK: usize = 512;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Writes every record, oldest first, as JSON Lines. Calls `progress` after each record.
pub fn export_jsonl(
    store: &Store,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(),
) -> Result<u64, ExchangeError> {
    let mut n = 0;
    for record in store.iter_oldest_first() {
        let line = jsonl_line(&record?);
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        n += 1;
        progress();
    }
    out.flush()?;
    Ok(n)
}

/// One export line.
pub fn jsonl_line(record: &Record) -> Value {
    let mut line = full_json(record);
    line.insert(
        "record".into(),
        Value::String(BASE64.encode(record.bytes())),
    );
    Value::Object(line)
}

/// The CSV columns, in order. Lists are joined with `;`; links are `rel:id`; indicators are
/// `name=value unit`. The body is left out (it is Markdown prose; the JSONL export carries it).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "kind",
    "title",
    "town",
    "author",
    "created_at",
    "language",
    "themes",
    "tags",
    "sdgs",
    "period_start",
    "period_end",
    "participation",
    "licence",
    "outcome",
    "need",
    "method",
    "indicators",
    "links",
    "summary",
];

/// Writes every record, oldest first, as CSV with a header row.
pub fn export_csv(
    store: &Store,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(),
) -> Result<u64, ExchangeError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    let mut n = 0;
    for record in store.iter_oldest_first() {
        let record = record?;
        let p = record.publication();
        let join = |items: Vec<String>| items.join(";");
        let opt = |s: Option<String>| s.unwrap_or_default();
        w.write_record([
            record.id().to_hex(),
            p.kind.to_string(),
            p.title.clone(),
            p.town.clone(),
            record.author().to_hex(),
            rfc3339_millis(record.created_at()),
            p.language.clone(),
            join(p.themes.iter().map(ToString::to_string).collect()),
            join(p.tags.clone()),
            join(p.sdgs.iter().map(ToString::to_string).collect()),
            opt(p.period.as_ref().map(|x| x.start.to_string())),
            opt(p.period.as_ref().and_then(|x| x.end).map(|d| d.to_string())),
            opt(p.participation.map(|x| x.to_string())),
            p.licence.clone(),
            opt(p.outcome.map(|x| x.to_string())),
            opt(p.need.map(|x| x.to_string())),
            opt(p.method.map(|x| x.to_string())),
            join(
                p.indicators
                    .iter()
                    .map(|i| format!("{}={} {}", i.name, i.value, i.unit))
                    .collect(),
            ),
            join(
                p.links
                    .iter()
                    .map(|l| format!("{}:{}", l.rel, l.id))
                    .collect(),
            ),
            p.summary.clone(),
        ])?;
        n += 1;
        progress();
    }
    w.flush()?;
    Ok(n)
}

/// A bad line: its number (from 1) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Checks one line up to, not including, its signature.
pub fn check_line(line: &str) -> Result<Unverified, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err("not a JSON object".into());
    };
    let encoded = match fields.remove("record") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("`record` must be a base64 string".into()),
        None => return Err("no `record` field: this is not a Cailloux JSONL export line".into()),
    };
    let bytes = BASE64
        .decode(encoded.as_bytes())
        .map_err(|e| format!("`record` is not valid base64: {e}"))?;
    let unverified = Unverified::decode(bytes).map_err(|e| e.to_string())?;
    let expected = full_json(unverified.claimed());
    if fields != expected {
        let mut differing: Vec<&str> = expected
            .iter()
            .filter(|(k, v)| fields.get(*k) != Some(*v))
            .map(|(k, _)| k.as_str())
            .chain(
                fields
                    .keys()
                    .filter(|k| !expected.contains_key(*k))
                    .map(String::as_str),
            )
            .collect();
        differing.sort_unstable();
        return Err(format!(
            "the readable fields differ from the signed record: {} (the signed record is authoritative; re-export it)",
            differing.join(", ")
        ));
    }
    Ok(unverified)
}

/// Checks a chunk of numbered lines: decode and compare each, then verify the signatures of
/// the survivors in one batch.
fn check_chunk(chunk: &[(usize, String)]) -> (Vec<Record>, Vec<BadLine>) {
    let mut bad = Vec::new();
    let mut candidates = Vec::with_capacity(chunk.len());
    let mut numbers = Vec::with_capacity(chunk.len());
    for (n, line) in chunk {
        match check_line(line) {
            Ok(u) => {
                candidates.push(u);
                numbers.push(*n);
            }
            Err(reason) => bad.push(BadLine { line: *n, reason }),
        }
    }
    let mut good = Vec::with_capacity(candidates.len());
    for (n, result) in numbers.into_iter().zip(verify_all(candidates)) {
        match result {
            Ok(r) => good.push(r),
            Err(e) => bad.push(BadLine {
                line: n,
                reason: e.to_string(),
            }),
        }
    }
    bad.sort_by_key(|b| b.line);
    (good, bad)
}

/// What an import or a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Good lines.
    pub good: u64,
    /// Good lines whose record was not in the store before (import only).
    pub stored: u64,
    pub bad: Vec<BadLine>,
}

/// Reads lines in chunks, skipping blank ones, and hands each checked chunk to `sink`.
fn process(
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
    mut sink: impl FnMut(&[Record]) -> Result<u64, ExchangeError>,
) -> Result<Report, ExchangeError> {
    let mut report = Report::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut lines = input.lines().enumerate();
    loop {
        let next = lines.next();
        match &next {
            Some((n, line)) => {
                let line = match line {
                    Ok(l) => l.clone(),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        report.bad.push(BadLine {
                            line: n + 1,
                            reason: "not UTF-8 text".into(),
                        });
                        continue;
                    }
                    Err(e) => return Err(std::io::Error::new(e.kind(), e.to_string()).into()),
                };
                if !line.trim().is_empty() {
                    chunk.push((n + 1, line));
                }
            }
            None => {}
        }
        if chunk.len() == CHUNK || (next.is_none() && !chunk.is_empty()) {
            let (good, bad) = check_chunk(&chunk);
            report.stored += sink(&good)?;
            report.good += good.len() as u64;
            progress(chunk.len() as u64);
            report.bad.extend(bad);
            chunk.clear();
        }
        if next.is_none() {
            return Ok(report);
        }
    }
}

/// Imports a JSONL export: stores every good line (durably, one flush per chunk), reports every
/// bad one. Importing the same file twice stores nothing the second time.
pub fn import(
    store: &Store,
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    process(input, progress, |good| {
        Ok(store
            .insert_batch(good)?
            .into_iter()
            .filter(|fresh| *fresh)
            .count() as u64)
    })
}

/// Checks every line of a JSONL export, offline.
pub fn verify(
    input: &mut dyn BufRead,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    process(input, progress, |_| Ok(0))
}
