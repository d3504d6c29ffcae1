//! Reading JSONL exports back: the checks that `import` and `verify` run on every line, and
//! the three-stage pipeline (decode, verify, store) that runs them.
//!
//! A line is good when its record decodes, its signature verifies and its readable fields are
//! exactly those of the record. The node's marks (`status`, `certified`) are not signed: a line
//! may carry them or not, and when it does they must be well formed; they are never taken on
//! trust (the importing node's own ledger decides them).

use super::files::{FileCheck, FilesTaken, attachments, check_file, take_files};
use super::marks::Status;
use super::{CHUNK, ExchangeError};
use crate::blobs::Blobs;
use crate::store::{Outcome, Store};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cailloux_protocol::view::full_json;
use cailloux_protocol::{KeyCache, Record, Unverified, verify_all};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

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

/// The fast path: a line exactly as an export writes it is checked by writing the expected
/// readable fields from its record and comparing bytes, without parsing the JSON; between them
/// and the record, the line may hold well-formed marks and nothing else. Anything else (a line
/// reformatted by another tool, or a bad one) takes the field-by-field path.
fn exact_export_line(line: &str, keys: &mut KeyCache) -> Option<Unverified> {
    const MARK: &str = ",\"record\":\"";
    let at = line.rfind(MARK)?;
    let encoded = line[at + MARK.len()..].strip_suffix("\"}")?;
    let unverified = Unverified::decode_with(BASE64.decode(encoded).ok()?, keys).ok()?;
    let expected = serde_json::to_string(&full_json(unverified.claimed())).ok()?;
    // `expected` is `{...}`; the line is `{...,"status":"…","certified":…,"record":"..."}`.
    let fields = expected.len() - 1;
    let same = line.len() >= fields && expected.as_bytes()[..fields] == line.as_bytes()[..fields];
    // A line whose last readable field ends in `,"record":"` text puts `at` before `fields`:
    // no slice is taken then, and the general path judges the line.
    let marks = || line.get(fields..at).is_some_and(well_formed_marks);
    (same && (fields == at || marks())).then_some(unverified)
}

/// `,"status":"<status>","certified":<bool>`, as an export writes its marks.
fn well_formed_marks(text: &str) -> bool {
    let Some(rest) = text.strip_prefix(",\"status\":\"") else {
        return false;
    };
    let Some((status, certified)) = rest.split_once("\",\"certified\":") else {
        return false;
    };
    Status::parse(status).is_some() && matches!(certified, "true" | "false")
}

/// The marks of a parsed line, taken out of `fields`: absent, or well formed.
fn take_marks(fields: &mut serde_json::Map<String, Value>) -> Result<(), String> {
    match fields.remove("status") {
        None => {}
        Some(Value::String(s)) if Status::parse(&s).is_some() => {}
        Some(other) => {
            return Err(format!(
                "`status` is {other}: it must be one of {}",
                Status::ALL
                    .map(|s| format!("\"{}\"", s.as_str()))
                    .join(", ")
            ));
        }
    }
    match fields.remove("certified") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(format!("`certified` is {other}: it must be true or false")),
    }
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
    take_marks(&mut fields)?;
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
    /// The files taken from a folder beside the export (import with files only).
    pub files: FilesTaken,
}

/// What the last stage made of one good line: `Ok(true)` stored, `Ok(false)` present already
/// (or only verified), `Err` why the line is bad after all.
type LineOutcome = Result<bool, String>;

/// Reads lines in chunks, checks them and hands each chunk's good records to `sink`, in three
/// stages on three threads, each a chunk ahead of the next: reading, parsing and decoding; batch
/// signature verification; `sink` (storing). On two cores this keeps both busy.
fn process(
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
    mut sink: impl FnMut(&[Record]) -> Result<Vec<LineOutcome>, ExchangeError>,
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
                    Ok(stored) => {
                        report.stored += u64::from(stored);
                        report.good += 1;
                    }
                    Err(reason) => report.bad.push(BadLine { line, reason }),
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
/// the clock has caught up stores it. With `files`, the files the stored records attach are
/// taken from that folder (`files::take_files`).
pub fn import(
    store: &Store,
    input: &mut (dyn BufRead + Send),
    files: Option<(&Path, &Blobs)>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    import_into(input, progress, files, |good| {
        Ok(store.insert_batch(good, crate::now_millis())?.outcomes)
    })
}

/// `import`, storing through `store`, which returns what became of each record (a running
/// node stores through its writer, which also keeps its sync index current). A record the
/// ledger refuses (its author is not a member, say) is a bad line with the reason. A stored
/// record whose file in `files` is not what it signs is a bad line too, saying the record is
/// stored and what is wrong with the file.
pub fn import_into(
    input: &mut (dyn BufRead + Send),
    progress: &mut dyn FnMut(u64),
    files: Option<(&Path, &Blobs)>,
    mut store: impl FnMut(&[Record]) -> Result<Vec<Outcome>, ExchangeError>,
) -> Result<Report, ExchangeError> {
    let mut taken = FilesTaken::default();
    let mut report = process(input, progress, |good| {
        let outcomes = store(good)?;
        Ok(good
            .iter()
            .zip(outcomes)
            .map(|(record, outcome)| {
                let stored = match outcome {
                    Outcome::New => true,
                    Outcome::Duplicate => false,
                    Outcome::Denied(denied) => return Err(denied.to_string()),
                };
                match files {
                    Some((dir, blobs)) => take_files(dir, record, blobs, &mut taken)
                        .map(|()| stored)
                        .map_err(|why| format!("the record is stored, but {why}")),
                    None => Ok(stored),
                }
            })
            .collect())
    })?;
    report.files = taken;
    Ok(report)
}

/// Checks every line of a JSONL export, offline; with `files`, also every file each line's
/// record attaches, in that folder (`files::check_file`): an absent or wrong file makes its
/// line bad.
pub fn verify(
    input: &mut (dyn BufRead + Send),
    files: Option<&Path>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ExchangeError> {
    let mut checked = 0u64;
    let mut report = process(input, progress, |good| {
        Ok(good
            .iter()
            .map(|record| {
                let Some(dir) = files else { return Ok(false) };
                let problems: Vec<String> = attachments(record)
                    .iter()
                    .filter_map(|a| match check_file(dir, a) {
                        FileCheck::Good(..) => {
                            checked += 1;
                            None
                        }
                        FileCheck::Absent(why) | FileCheck::Wrong(why) => Some(why),
                    })
                    .collect();
                if problems.is_empty() {
                    Ok(false)
                } else {
                    Err(problems.join("; "))
                }
            })
            .collect())
    })?;
    report.files.taken = checked;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::marks::Marks;
    use crate::exchange::{jsonl_line, jsonl_line_marked};
    use cailloux_protocol::SigningKey;
    use cailloux_protocol::trust::Mode;

    fn practice(body: &str) -> Record {
        let text = format!(
            "---\nkind: practice\ntitle: Fiche\nsummary: Essai.\nthemes: [food]\ntown: Vallon\n---\n{body}"
        );
        let p = cailloux_protocol::parse_publication(&text, None)
            .unwrap_or_else(|v| panic!("{v:?}"))
            .publication;
        Record::sign(&SigningKey::from_bytes(&[2; 32]), 1_000, p).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_fast_path_takes_marked_lines_and_nothing_between_the_marks_and_the_record() {
        let record = practice("Corps.\n");
        let marks = Marks {
            status: Status::Superseded,
            certified: true,
        };
        let mut keys = KeyCache::default();
        let marked = jsonl_line_marked(&record, marks).to_string();
        assert!(exact_export_line(&marked, &mut keys).is_some(), "{marked}");
        let bare = jsonl_line(&record).to_string();
        assert!(exact_export_line(&bare, &mut keys).is_some(), "{bare}");
        // Something unsigned between the marks and the record: not the fast path, and the
        // general path names it.
        let smuggled = marked.replace(
            ",\"certified\":true,",
            ",\"certified\":true,\"signed_by\":\"la préfecture\",",
        );
        assert!(exact_export_line(&smuggled, &mut keys).is_none());
        let err = check_line(&smuggled, &mut keys).err().unwrap_or_default();
        assert!(err.contains("signed_by"), "{err}");
        let bent = marked.replace("\"superseded\"", "\"canonical\"");
        assert!(exact_export_line(&bent, &mut keys).is_none());
        assert!(check_line(&bent, &mut keys).is_err());
    }

    /// A body that ends in `,` and a hand-made line that follows the readable fields with
    /// `record":"…"}` put the last `,"record":"` inside the readable fields (the body's `,` and
    /// closing quote): refused, never a panic.
    #[test]
    fn a_line_whose_body_ends_like_the_record_field_is_refused_without_a_panic() {
        let record = practice("Corps,");
        assert!(record.publication().is_some_and(|p| p.body.ends_with(',')));
        let expected = serde_json::to_string(&full_json(&record)).unwrap_or_default();
        let encoded = BASE64.encode(record.bytes());
        let line = format!(
            "{}record\":\"{encoded}\"}}",
            &expected[..expected.len() - 1]
        );
        assert!(
            line.rfind(",\"record\":\"")
                .is_some_and(|at| at < expected.len() - 1)
        );
        let mut keys = KeyCache::default();
        assert!(exact_export_line(&line, &mut keys).is_none());
        assert!(check_line(&line, &mut keys).is_err());
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
        let report = import(&store, &mut jsonl.as_bytes(), None, &mut |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
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
}
