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
        write_jsonl_line(&record?, out)?;
        n += 1;
        progress();
    }
    out.flush()?;
    Ok(n)
}

/// One export line and its newline, as `export_jsonl` writes it.
fn write_jsonl_line(record: &Record, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &jsonl_line(record)).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
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
        let Some(row) = csv_row(&record) else {
            continue;
        };
        w.write_record(row)?;
        n += 1;
        progress();
    }
    w.flush()?;
    Ok(n)
}

/// A publication's CSV row, in the order of `CSV_COLUMNS`; None for an act.
fn csv_row(record: &Record) -> Option<Vec<String>> {
    let p = record.publication()?;
    let join = |items: Vec<String>| items.join(";");
    let opt = |s: Option<String>| s.unwrap_or_default();
    Some(
        [
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
        ]
        .into_iter()
        .map(csv_cell)
        .collect(),
    )
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
    // A spreadsheet whose list separator is `;` (French Excel) splits a cell at each `;`, quotes
    // or not, and reads each piece as a cell of its own: each piece is neutralised as a cell.
    if !cell.contains(';') {
        return neutral(cell);
    }
    cell.split(';')
        .map(|piece| neutral(piece.to_owned()))
        .collect::<Vec<_>>()
        .join(";")
}

fn neutral(cell: String) -> String {
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

/// The formats of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// An export made in steps, each a short call that reads the next records from the store and
/// returns their bytes: what the node's API streams, one step per demand of the visitor's
/// connection, so that an export in progress holds no thread between steps and a visitor that
/// stops reading costs one step's bytes. The bytes, all steps together, are exactly those of
/// `export_jsonl` or `export_csv` (the same line and row writers; the CSV header comes first).
/// Records stored while the export runs appear in it if they sort after where it has reached.
#[derive(Debug)]
pub struct ExportSteps {
    format: ExportFormat,
    filter: Filter,
    /// The last record written, where the next step resumes.
    after: Option<(u64, cailloux_protocol::RecordId)>,
    header_written: bool,
    done: bool,
}

impl ExportSteps {
    pub fn new(format: ExportFormat, filter: Filter) -> ExportSteps {
        ExportSteps {
            format,
            filter,
            after: None,
            header_written: false,
            done: false,
        }
    }

    /// The next step's bytes: records from where the last step ended until at least
    /// `min_bytes` are written (a record is never split) or the export ends. None once it has
    /// ended. Blocking (it reads the store).
    pub fn next_step(
        &mut self,
        store: &Store,
        min_bytes: usize,
    ) -> Result<Option<Vec<u8>>, ExchangeError> {
        if self.done {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(min_bytes.min(1 << 20) + 4096);
        let header = !std::mem::replace(&mut self.header_written, true);
        let ended = match self.format {
            ExportFormat::Jsonl => self.jsonl_step(store, min_bytes, &mut out)?,
            ExportFormat::Csv => self.csv_step(store, min_bytes, header, &mut out)?,
        };
        self.done = ended;
        Ok((!out.is_empty()).then_some(out))
    }

    /// Whether the export ended.
    fn jsonl_step(
        &mut self,
        store: &Store,
        min_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, ExchangeError> {
        let filter = self.filter.clone();
        for record in store.iter_oldest_first_after(&filter, self.after) {
            let record = record?;
            self.after = Some((record.created_at(), record.id()));
            write_jsonl_line(&record, out)?;
            if out.len() >= min_bytes {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the export ended.
    fn csv_step(
        &mut self,
        store: &Store,
        min_bytes: usize,
        header: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, ExchangeError> {
        let mut w = csv::Writer::from_writer(out);
        if header {
            w.write_record(CSV_COLUMNS)?;
        }
        let filter = self.filter.clone();
        let mut ended = true;
        for record in store.iter_oldest_first_after(&filter, self.after) {
            let record = record?;
            self.after = Some((record.created_at(), record.id()));
            if let Some(row) = csv_row(&record) {
                w.write_record(row)?;
            }
            w.flush()?;
            if w.get_ref().len() >= min_bytes {
                ended = false;
                break;
            }
        }
        w.flush()?;
        Ok(ended)
    }
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
/// bad one. Importing the same file twice stores nothing the second time. A line whose record
/// is dated more than `trust::MAX_CLOCK_SKEW_MS` ahead of this machine's clock is not stored:
/// it is reported as a bad line, with the record's date, the clock and the skew, like any
/// record the ledger holds back; the other lines are stored, and importing the file again once
/// the clock has caught up stores it.
pub fn import(
    store: &Store,
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    import_into(input, progress, |good| {
        Ok(store.insert_batch(good, crate::now_millis())?.outcomes)
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
    use cailloux_protocol::trust::Mode;
    use cailloux_protocol::{Kind, Publication, SigningKey, Theme};

    fn record(i: u64) -> Record {
        let p = Publication {
            kind: Kind::Practice,
            // Quotes, commas and line breaks: CSV quoting must be the same in steps.
            title: format!("Fiche \"{i}\", {}", "é".repeat(i as usize % 7)),
            summary: format!("Résumé {i};\nsur deux lignes, avec « guillemets »."),
            language: "fr".into(),
            town: format!("Ville-{}", i % 3),
            themes: vec![Theme::Water],
            tags: vec![format!("tag{i}"), "eau".into()],
            sdgs: Vec::new(),
            period: None,
            participation: None,
            licence: "etalab-2.0".into(),
            links: Vec::new(),
            outcome: None,
            need: None,
            method: None,
            indicators: Vec::new(),
            body: "x".repeat(100 * (i as usize % 13)),
        };
        Record::sign(&SigningKey::from_bytes(&[7; 32]), 1_000 + i, p)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn in_steps(store: &Store, format: ExportFormat, filter: &Filter, min_bytes: usize) -> Vec<u8> {
        let mut steps = ExportSteps::new(format, filter.clone());
        let mut out = Vec::new();
        while let Some(step) = steps
            .next_step(store, min_bytes)
            .unwrap_or_else(|e| panic!("{e}"))
        {
            assert!(!step.is_empty());
            out.extend(step);
        }
        out
    }

    #[test]
    fn an_export_in_steps_is_byte_for_byte_the_export_in_one_go() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("s"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
            assert_eq!(
                in_steps(&store, format, &Filter::default(), 1),
                whole(&store, format, &Filter::default()),
                "empty store, {format:?}"
            );
        }
        let records: Vec<Record> = (0..40).map(record).collect();
        store
            .insert_batch(&records, crate::now_millis())
            .unwrap_or_else(|e| panic!("{e}"));
        let towns = Filter {
            town: Some("ville-1".into()),
            ..Filter::default()
        };
        for filter in [Filter::default(), towns] {
            for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
                let expected = whole(&store, format, &filter);
                assert!(expected.len() > 1000);
                for min_bytes in [1, 700, 4096, 1 << 20] {
                    assert_eq!(
                        String::from_utf8_lossy(&in_steps(&store, format, &filter, min_bytes)),
                        String::from_utf8_lossy(&expected),
                        "{format:?}, steps of {min_bytes} bytes, {filter:?}"
                    );
                }
            }
        }
    }

    fn whole(store: &Store, format: ExportFormat, filter: &Filter) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            ExportFormat::Jsonl => export_jsonl(store, filter, &mut out, &mut || {}),
            ExportFormat::Csv => export_csv(store, filter, &mut out, &mut || {}),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn a_line_dated_ahead_of_the_clock_is_named_and_the_others_are_stored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("store"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let record = |at: u64, title: &str| {
            let text = format!(
                "---\nkind: practice\ntitle: \"{title}\"\nsummary: Essai.\nthemes: [food]\ntown: Vallon\n---\nCorps.\n"
            );
            let p = cailloux_protocol::parse_publication(&text, None)
                .unwrap_or_else(|v| panic!("{v:?}"))
                .publication;
            Record::sign(&SigningKey::from_bytes(&[2; 32]), at, p).unwrap_or_else(|e| panic!("{e}"))
        };
        let now = crate::now_millis();
        let (today, tomorrow) = (
            record(now, "Aujourd'hui"),
            record(now + 86_400_000, "Demain"),
        );
        let jsonl = format!("{}\n{}\n", jsonl_line(&today), jsonl_line(&tomorrow));
        let report =
            import(&store, &mut jsonl.as_bytes(), &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((report.good, report.stored), (1, 1));
        assert_eq!(report.bad.len(), 1, "{:?}", report.bad);
        assert_eq!(report.bad[0].line, 2);
        let reason = &report.bad[0].reason;
        let date = cailloux_protocol::time::rfc3339_millis(tomorrow.created_at());
        assert!(
            reason.contains(&date) && reason.contains("ahead of this node's clock"),
            "{reason}"
        );
        assert!(store.contains(&today.id()).unwrap_or(false));
        assert!(!store.contains(&tomorrow.id()).unwrap_or(true));
    }

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
