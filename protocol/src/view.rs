//! The readable JSON of a record, one definition for every place a person or a program reads
//! one: `list --json`, `show --json`, the JSONL export and the checks of `verify` and `import`.
//! Field names are part of the CLI's contract.

use crate::attachment::Attachment;
use crate::record::Record;
use crate::time::rfc3339_millis;
use crate::trust::Act;
use crate::vocab::Kind;
use serde_json::{Map, Value, json};

/// The fields `list --json` prints: id, kind, title, town, author, themes, created_at.
pub fn summary_json(record: &Record) -> Map<String, Value> {
    let Some(p) = record.publication() else {
        return act_json(record);
    };
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
/// experiments, `method` and `indicators` on evaluations); absent optional fields are `null`;
/// `attachments` appears when the record has files.
pub fn full_json(record: &Record) -> Map<String, Value> {
    let Some(p) = record.publication() else {
        return act_json(record);
    };
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
    if !p.attachments.is_empty() {
        m.insert("attachments".into(), attachments_json(&p.attachments));
    }
    m.insert("body".into(), json!(p.body));
    m
}

/// A record's files (format v2): `name`, `title`, `media_type`, `size` (bytes), `hash` (hex).
/// Lines of records without files have no `attachments` key, so v1 lines read as before.
pub fn attachments_json(attachments: &[Attachment]) -> Value {
    attachments
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "title": a.title,
                "media_type": a.media_type.as_str(),
                "size": a.size,
                "hash": a.hash.to_hex(),
            })
        })
        .collect()
}

/// An act (admission, delegation, revocation, retraction): `id`, `act`, `author`,
/// `created_at`, then the act's own fields (keys in hex, times in RFC 3339).
pub fn act_json(record: &Record) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(record.id().to_hex()));
    let Some(act) = record.act() else {
        return m;
    };
    m.insert("act".into(), json!(act.name()));
    m.insert("author".into(), json!(record.author().to_hex()));
    m.insert(
        "created_at".into(),
        json!(rfc3339_millis(record.created_at())),
    );
    let until = |u: Option<u64>| u.map(rfc3339_millis);
    match act {
        Act::Found(f) => {
            m.insert("name".into(), json!(f.name));
        }
        Act::Admit(a) => {
            m.insert("key".into(), json!(a.key.to_hex()));
            m.insert("town".into(), json!(a.town));
            m.insert("country".into(), json!(a.country));
            m.insert("code".into(), json!(a.code));
            m.insert("until".into(), json!(until(a.until)));
        }
        Act::Delegate(d) => {
            m.insert("key".into(), json!(d.key.to_hex()));
            m.insert("name".into(), json!(d.name));
            m.insert("role".into(), json!(d.role));
            m.insert("kinds".into(), json!(d.kinds));
            m.insert("until".into(), json!(until(d.until)));
        }
        Act::Revoke(r) => {
            m.insert("key".into(), json!(r.key.to_hex()));
            m.insert("reason".into(), json!(r.reason));
        }
        Act::Retract(r) => {
            m.insert("target".into(), json!(r.id.to_hex()));
            m.insert("reason".into(), json!(r.reason));
        }
    }
    m
}
