//! Moving records between nodes and tools as files: the JSONL export (each signed record beside
//! its readable fields, verifiable offline by anyone), the CSV export for spreadsheets, and the
//! checks that `import` and `verify` run on every line.
//!
//! A JSONL line is one JSON object: the readable fields of `cailloux_protocol::view::full_json`,
//! then `record`, the signed record bytes in standard base64. A line is good when its record
//! decodes, its signature verifies and its readable fields are exactly those of the record.

use crate::store::{Filter, Outcome, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cailloux_protocol::time::rfc3339_millis;
use cailloux_protocol::view::full_json;
use cailloux_protocol::{KeyCache, Record, Unverified, verify_all};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::mpsc::{SyncSender, sync_channel};

/// Lines are checked, verified and stored this many at a time: one batch verification and one
/// flush per chunk.
pub const CHUNK: usize = 512;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] crate::writer::WriteError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Writes every publication `filter` lets through (by default: neither retracted nor
/// superseded), oldest first, as JSON Lines. Calls `progress` after each record.
pub fn export_jsonl(
    store: &Store,
    filter: &Filter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(),
) -> Result<u64, ExchangeError> {
    let mut n = 0;
    for record in store.iter_oldest_first(filter) {
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
/// Every cell goes through `csv_cell`.
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

/// Writes every publication `filter` lets through, oldest first, as CSV with a header row.
pub fn export_csv(
    store: &Store,
    filter: &Filter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(),
) -> Result<u64, ExchangeError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    let mut n = 0;
    for record in store.iter_oldest_first(filter) {
        let record = record?;
        let Some(p) = record.publication() else {
            continue;
        };
        let join = |items: Vec<String>| items.join(";");
        let opt = |s: Option<String>| s.unwrap_or_default();
        let cells = [
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
        ];
        w.write_record(cells.map(csv_cell))?;
        n += 1;
        progress();
    }
    w.flush()?;
    Ok(n)
}

/// A cell as a spreadsheet may open it safely. Text that begins with `=`, `+`, `-`, `@`, a tab
/// or a carriage return is a formula to Excel, LibreOffice Calc and Google Sheets (CSV
/// injection: a title `=HYPERLINK(…)` would be a live link, a town `+cmd|…` a command), so it
/// gets the usual apostrophe in front, which they show as text. A cell that is a plain decimal
/// number (`-12`, `+3.5`) is left as it is: a spreadsheet reads it as that number, never as a
/// formula. No column is numeric today (indicators are text), so only a free-text cell that
/// happens to be a number (a title `-12`) is concerned. The JSONL export is never changed: it is
/// the signed text.
pub fn csv_cell(cell: String) -> String {
    let live = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if live && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// An optional sign, digits, and optionally a point and more digits.
fn is_plain_number(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
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
pub fn check_line(line: &str, keys: &mut KeyCache) -> Result<Unverified, String> {
    match exact_export_line(line, keys) {
        Some(unverified) => Ok(unverified),
        None => check_line_fields(line, keys),
    }
}

/// The fast path: a line exactly as `export_jsonl` writes it is checked by writing the expected
/// line from its record and comparing bytes, without parsing the JSON. Anything else (a line
/// reformatted by another tool, or a bad one) takes the field-by-field path.
fn exact_export_line(line: &str, keys: &mut KeyCache) -> Option<Unverified> {
    const MARK: &str = ",\"record\":\"";
    let at = line.rfind(MARK)?;
    let encoded = line[at + MARK.len()..].strip_suffix("\"}")?;
    let unverified = Unverified::decode_with(BASE64.decode(encoded).ok()?, keys).ok()?;
    let expected = serde_json::to_string(&full_json(unverified.claimed())).ok()?;
    // `expected` is `{...}`; the line is `{...,"record":"..."}`.
    (expected.len() == at + 1 && expected.as_bytes()[..at] == line.as_bytes()[..at])
        .then_some(unverified)
}

/// The general path: parse the JSON and compare each readable field with the signed record's.
fn check_line_fields(line: &str, keys: &mut KeyCache) -> Result<Unverified, String> {
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
    let unverified = Unverified::decode_with(bytes, keys).map_err(|e| e.to_string())?;
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

/// What an import or a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Good lines.
    pub good: u64,
    /// Good lines whose record was not in the store before (import only).
    pub stored: u64,
    pub bad: Vec<BadLine>,
}

/// Reads lines in chunks, checks them and hands each chunk's good records to `sink`, in three
/// stages on three threads, each a chunk ahead of the next: reading, parsing and decoding; batch
/// signature verification; `sink` (storing). On two cores this keeps both busy.
fn process(
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
    mut sink: impl FnMut(&[Record]) -> Result<Vec<Outcome>, ExchangeError>,
) -> Result<Report, ExchangeError> {
    // Two chunks in flight per stage at most: memory stays bounded whatever the file's size.
    let (decoded_tx, decoded_rx) = sync_channel::<std::io::Result<Chunk<Unverified>>>(2);
    let (verified_tx, verified_rx) = sync_channel::<std::io::Result<Chunk<Record>>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || read_and_decode(input, &decoded_tx));
        scope.spawn(move || {
            for chunk in decoded_rx {
                // A closed channel means the receiver stopped on an error: stop too.
                if verified_tx.send(chunk.map(verify_chunk)).is_err() {
                    return;
                }
            }
        });
        let mut report = Report::default();
        for chunk in verified_rx {
            let chunk = chunk?;
            let (lines, good): (Vec<usize>, Vec<Record>) = chunk.items.into_iter().unzip();
            for (line, outcome) in lines.into_iter().zip(sink(&good)?) {
                match outcome {
                    Outcome::New => {
                        report.stored += 1;
                        report.good += 1;
                    }
                    Outcome::Duplicate => report.good += 1,
                    Outcome::Denied(denied) => report.bad.push(BadLine {
                        line,
                        reason: denied.to_string(),
                    }),
                }
            }
            report.bad.extend(chunk.bad);
            progress(chunk.lines);
        }
        report.bad.sort_by_key(|b| b.line);
        Ok(report)
    })
}

/// A chunk of numbered items on its way through the stages, with the lines found bad so far.
struct Chunk<T> {
    items: Vec<(usize, T)>,
    bad: Vec<BadLine>,
    /// Lines read for this chunk, blank ones included.
    lines: u64,
}

fn read_and_decode(input: &mut dyn BufRead, tx: &SyncSender<std::io::Result<Chunk<Unverified>>>) {
    let mut keys = KeyCache::default();
    let mut chunk = Chunk {
        items: Vec::with_capacity(CHUNK),
        bad: Vec::new(),
        lines: 0,
    };
    for (n, line) in input.lines().enumerate() {
        chunk.lines += 1;
        match line {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => match check_line(&line, &mut keys) {
                Ok(u) => chunk.items.push((n + 1, u)),
                Err(reason) => chunk.bad.push(BadLine {
                    line: n + 1,
                    reason,
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                chunk.bad.push(BadLine {
                    line: n + 1,
                    reason: "not UTF-8 text".into(),
                });
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        if chunk.items.len() == CHUNK {
            let full = std::mem::replace(
                &mut chunk,
                Chunk {
                    items: Vec::with_capacity(CHUNK),
                    bad: Vec::new(),
                    lines: 0,
                },
            );
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if chunk.lines > 0 {
        let _ = tx.send(Ok(chunk));
    }
}

/// Verifies a chunk's signatures in one batch; the bad ones join the chunk's bad lines.
fn verify_chunk(chunk: Chunk<Unverified>) -> Chunk<Record> {
    let Chunk {
        items,
        mut bad,
        lines,
    } = chunk;
    let (numbers, candidates): (Vec<usize>, Vec<Unverified>) = items.into_iter().unzip();
    let mut good = Vec::with_capacity(numbers.len());
    for (n, result) in numbers.into_iter().zip(verify_all(candidates)) {
        match result {
            Ok(record) => good.push((n, record)),
            Err(e) => bad.push(BadLine {
                line: n,
                reason: e.to_string(),
            }),
        }
    }
    Chunk {
        items: good,
        bad,
        lines,
    }
}

/// Imports a JSONL export: stores every good line (durably, one flush per chunk), reports every
/// bad one. Importing the same file twice stores nothing the second time.
pub fn import(
    store: &Store,
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    import_into(input, progress, |good| {
        Ok(store.insert_batch(good)?.outcomes)
    })
}

/// `import`, storing through `store`, which returns what became of each record (a running
/// node stores through its writer, which also keeps its sync index current). A record the
/// ledger refuses (its author is not a member, say) is a bad line with the reason.
pub fn import_into(
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
    store: impl FnMut(&[Record]) -> Result<Vec<Outcome>, ExchangeError>,
) -> Result<Report, ExchangeError> {
    process(input, progress, store)
}

/// Checks every line of a JSONL export, offline.
pub fn verify(
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    process(input, progress, |good| {
        Ok(vec![Outcome::Duplicate; good.len()])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_a_formula_get_an_apostrophe_and_plain_numbers_do_not() {
        for (cell, expected) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("- une liste", "'- une liste"),
            ("-", "'-"),
            ("-.5", "'-.5"),
            ("-12", "-12"),
            ("+3.5", "+3.5"),
            ("-0.25", "-0.25"),
            ("12", "12"),
            ("Jardins = potagers", "Jardins = potagers"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell.to_owned()), expected, "{cell:?}");
        }
    }
}
