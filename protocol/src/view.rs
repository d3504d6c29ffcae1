//! The readable JSON of a record, one definition for every place a person or a program reads
//! one: `list --json`, `show --json`, the JSONL export and the checks of `verify` and `import`.
//! Field names are part of the CLI's contract.

use crate::record::Record;
use crate::time::rfc3339_millis;
use crate::vocab::Kind;
use serde_json::{Map, Value, json};

/// The fields `list --json` prints: id, kind, title, town, author, themes, created_at.
pub fn summary_json(record: &Record) -> Map<String, Value> {
    let p = record.publication();
    let mut m = Map::new();
    m.insert("id".into(), json!(record.id().to_hex()));
    m.insert("kind".into(), json!(p.kind));
    m.insert("title".into(), json!(p.title));
    m.insert("town".into(), json!(p.town));
    m.insert("author".into(), json!(record.author().to_hex()));
    m.insert("themes".into(), json!(p.themes));
    m.insert(
        "created_at".into(),
        json!(rfc3339_millis(record.created_at())),
    );
    m
}

/// Every readable field of a record: the summary fields, then the rest of the front matter and
/// the body. Kind-specific fields appear only on their kind (`outcome` and `need` on
/// experiments, `method` and `indicators` on evaluations); absent optional fields are `null`.
pub fn full_json(record: &Record) -> Map<String, Value> {
    let p = record.publication();
    let mut m = summary_json(record);
    m.insert("summary".into(), json!(p.summary));
    m.insert("language".into(), json!(p.language));
    m.insert("tags".into(), json!(p.tags));
    m.insert("sdgs".into(), json!(p.sdgs));
    m.insert(
        "period".into(),
        match &p.period {
            Some(period) => json!({ "start": period.start, "end": period.end }),
            None => Value::Null,
        },
    );
    m.insert("participation".into(), json!(p.participation));
    m.insert("licence".into(), json!(p.licence));
    m.insert(
        "links".into(),
        p.links
            .iter()
            .map(|l| json!({ "rel": l.rel, "id": l.id.to_hex() }))
            .collect(),
    );
    match p.kind {
        Kind::Experiment => {
            m.insert("outcome".into(), json!(p.outcome));
            m.insert("need".into(), json!(p.need));
        }
        Kind::Evaluation => {
            m.insert("method".into(), json!(p.method));
            m.insert("indicators".into(), json!(p.indicators));
        }
        Kind::Practice => {}
    }
    m.insert("body".into(), json!(p.body));
    m
}
