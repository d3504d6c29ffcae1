//! Moving records between nodes and tools as files: the JSONL export (each signed record beside
//! its readable fields, verifiable offline by anyone), the CSV export's tables for spreadsheets
//! and data tools (`tables`), reading exports back (`check`: `import`, `verify`), and the
//! records' files in a folder beside an export (`files`).
//!
//! A JSONL line is one JSON object: the readable fields of `cailloux_protocol::view::full_json`,
//! then this node's marks (`status`, `certified`: `marks`), then `record`, the signed record
//! bytes in standard base64. Every CSV row carries the same marks.
//!
//! An export is written by one writer (`Sink`) whether it goes in one go (`export`, the CLI's
//! own store) or in steps (`ExportSteps`, the API's stream), so both give the same bytes.

mod check;
pub mod files;
pub mod marks;
pub mod tables;

pub use check::{BadLine, Report, check_line, import, import_into, verify};
pub use marks::{Marks, Status};
pub use tables::{Table, csv_cell};

use crate::store::{Filter, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cailloux_protocol::Record;
use cailloux_protocol::view::full_json;
use serde_json::Value;
use std::io::Write;

/// Lines are checked, verified and stored this many at a time: one batch verification and one
/// flush per chunk.
pub const CHUNK: usize = 512;

/// Catalogue entries one export step examines at most, kept or not: a filtered export of a
/// large store (a town with few records, say) is many short steps, never one long scan.
/// Skipped entries cost a catalogue read each (tens of bytes), so a step stays in the
/// milliseconds.
pub const SCAN_BUDGET: usize = 4096;

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

/// The formats of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv(Table),
}

impl ExportFormat {
    /// The media type an export of this format is served as.
    pub fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/jsonl",
            ExportFormat::Csv(_) => "text/csv; charset=utf-8",
        }
    }

    /// The file name an export of this format is offered under.
    pub fn file_name(self) -> String {
        match self {
            ExportFormat::Jsonl => "cailloux.jsonl".into(),
            ExportFormat::Csv(table) => format!("cailloux-{}.csv", table.as_str()),
        }
    }
}

/// One export line without marks: the signed record's readable fields and the record. What a
/// line of another node's export reduces to once its marks are set aside.
pub fn jsonl_line(record: &Record) -> Value {
    let mut line = full_json(record);
    line.insert(
        "record".into(),
        Value::String(BASE64.encode(record.bytes())),
    );
    Value::Object(line)
}

/// One export line as `export` writes it: the readable fields, the marks, the record.
pub fn jsonl_line_marked(record: &Record, marks: Marks) -> Value {
    let mut line = full_json(record);
    line.insert("status".into(), Value::String(marks.status.as_str().into()));
    line.insert("certified".into(), Value::Bool(marks.certified));
    line.insert(
        "record".into(),
        Value::String(BASE64.encode(record.bytes())),
    );
    Value::Object(line)
}

/// Where an export's lines or rows go.
enum Sink<W: Write> {
    Jsonl(W),
    Csv(Table, Box<csv::Writer<W>>),
}

impl<W: Write> Sink<W> {
    /// A sink on `out`; a CSV one writes its header first when `header` is set.
    fn new(format: ExportFormat, out: W, header: bool) -> Result<Sink<W>, ExchangeError> {
        Ok(match format {
            ExportFormat::Jsonl => Sink::Jsonl(out),
            ExportFormat::Csv(table) => {
                let mut w = csv::Writer::from_writer(out);
                if header {
                    w.write_record(table.columns())?;
                }
                Sink::Csv(table, Box::new(w))
            }
        })
    }

    /// Writes `record`; false when it has nothing in this export (an act, or a record without
    /// indicators or links, in a CSV table).
    fn record(&mut self, store: &Store, record: &Record) -> Result<bool, ExchangeError> {
        // The ledger's read lock, held for this record only.
        let marks = marks::marks(&store.ledger(), record);
        match self {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, &jsonl_line_marked(record, marks))
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                Ok(true)
            }
            Sink::Csv(table, w) => {
                let rows = table.rows(record, marks);
                for row in &rows {
                    w.write_record(row)?;
                }
                Ok(!rows.is_empty())
            }
        }
    }

    /// Flushes, and gives the output back.
    fn finish(self) -> Result<W, ExchangeError> {
        match self {
            Sink::Jsonl(mut out) => {
                out.flush()?;
                Ok(out)
            }
            Sink::Csv(_, w) => w.into_inner().map_err(|e| e.into_error().into()),
        }
    }
}

/// Writes every record `filter` lets through (by default: neither retracted, voided nor
/// superseded), oldest first, in `format`. Calls `progress` after each record read; returns how
/// many records the export holds (in a CSV table, those with at least one row).
pub fn export(
    store: &Store,
    format: ExportFormat,
    filter: &Filter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(),
) -> Result<u64, ExchangeError> {
    let mut sink = Sink::new(format, out, true)?;
    let mut n = 0;
    for record in store.iter_oldest_first(filter) {
        if sink.record(store, &record?)? {
            n += 1;
        }
        progress();
    }
    sink.finish()?;
    Ok(n)
}

/// An export made in steps, each a short call that reads the next records from the store and
/// returns their bytes: what the node's API streams, one step per demand of the visitor's
/// connection, so that an export in progress holds no thread between steps and a visitor that
/// stops reading costs one step's bytes. The bytes, all steps together, are exactly those of
/// `export` (the same writer; the CSV header comes first). Records stored while the export
/// runs appear in it if they sort after where it has reached.
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
    /// `min_bytes` are written (a record is never split), `SCAN_BUDGET` catalogue entries have
    /// been examined, or the export ends. The bytes may be empty when a filter (a town, a
    /// table without rows for those records) kept nothing among the entries examined: the
    /// export goes on at the next step. None once it has ended. Blocking (it reads the store).
    pub fn next_step(
        &mut self,
        store: &Store,
        min_bytes: usize,
    ) -> Result<Option<Vec<u8>>, ExchangeError> {
        if self.done {
            return Ok(None);
        }
        let out = Vec::with_capacity(min_bytes.min(1 << 20) + 4096);
        let header = !std::mem::replace(&mut self.header_written, true);
        let mut sink = Sink::new(self.format, out, header)?;
        let filter = self.filter.clone();
        let mut ended = true;
        for (examined, scanned) in store
            .scan_oldest_first_after(&filter, self.after)
            .enumerate()
        {
            if examined == SCAN_BUDGET {
                ended = false;
                break;
            }
            let scanned = scanned?;
            self.after = Some(scanned.at);
            let Some(record) = scanned.record else {
                continue;
            };
            sink.record(store, &record)?;
            let written = match &mut sink {
                Sink::Jsonl(out) => out.len(),
                Sink::Csv(_, w) => {
                    w.flush()?;
                    w.get_ref().len()
                }
            };
            if written >= min_bytes {
                ended = false;
                break;
            }
        }
        let out = sink.finish()?;
        self.done = ended;
        Ok((!(ended && out.is_empty())).then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cailloux_protocol::trust::Mode;
    use cailloux_protocol::{
        Indicator, Kind, Link, LinkRel, Method, Number, Publication, RecordId, SigningKey, Theme,
    };

    /// An evaluation with two indicators and a link, so that every table has rows.
    fn record(i: u64) -> Record {
        let indicator = |name: &str, value| Indicator {
            name: name.into(),
            unit: "%".into(),
            value,
            baseline: Some(Number::Int(i as i64)),
            target: None,
            date: None,
            source: Some("Relevé, \"mairie\"".into()),
        };
        let p = Publication {
            kind: Kind::Evaluation,
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
            links: vec![Link {
                rel: LinkRel::Evaluates,
                id: RecordId([i as u8; 32]),
            }],
            outcome: None,
            need: None,
            method: Some(Method::External),
            indicators: vec![
                indicator("Part; modale", Number::Float(7.5)),
                indicator("=Passages", Number::Int(-12)),
            ],
            attachments: Vec::new(),
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
        for format in formats() {
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
            for format in formats() {
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

    /// A town with 3 records in a store of twice `SCAN_BUDGET` more: the export takes short
    /// steps, each examining at most `SCAN_BUDGET` entries (some of them empty), and gives the
    /// bytes of the export in one go.
    #[test]
    fn a_filtered_export_of_a_large_store_is_made_of_short_steps() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("s"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // `record(i)` files i under Ville-{i % 3}; Rare gets three.
        let mut records: Vec<Record> = (0..2 * SCAN_BUDGET as u64).map(record).collect();
        for (n, at) in [(0u64, 10), (1, 5_000), (2, 9_000)] {
            let mut p = record(at)
                .publication()
                .cloned()
                .unwrap_or_else(|| panic!("no publication"));
            p.town = "Rare".into();
            p.title = format!("Rare {n}");
            records.push(
                Record::sign(&SigningKey::from_bytes(&[7; 32]), 1_000 + at, p)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        store
            .insert_batch(&records, crate::now_millis())
            .unwrap_or_else(|e| panic!("{e}"));
        let rare = Filter {
            town: Some("rare".into()),
            ..Filter::default()
        };
        for format in formats() {
            let mut steps = ExportSteps::new(format, rare.clone());
            let (mut out, mut count, mut empty) = (Vec::new(), 0, 0);
            while let Some(step) = steps.next_step(&store, 1).unwrap_or_else(|e| panic!("{e}")) {
                count += 1;
                empty += usize::from(step.is_empty());
                out.extend(step);
            }
            assert_eq!(out, whole(&store, format, &rare), "{format:?}");
            assert!(
                count >= 3 && empty >= 1,
                "{format:?}: {count} steps, {empty} empty"
            );
        }
    }

    fn whole(store: &Store, format: ExportFormat, filter: &Filter) -> Vec<u8> {
        let mut out = Vec::new();
        export(store, format, filter, &mut out, &mut || {}).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn formats() -> Vec<ExportFormat> {
        std::iter::once(ExportFormat::Jsonl)
            .chain(Table::ALL.map(ExportFormat::Csv))
            .collect()
    }
}
