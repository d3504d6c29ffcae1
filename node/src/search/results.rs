//! A page of results: the hits (records read back from the store, with a score and a snippet),
//! the facet counts, and the page's JSON as the API and `search --json` show it.

use cailloux_protocol::{Record, RecordId};
use std::collections::BTreeMap;

/// A page of results as the API and `search --json` show it: the matching records' list fields
/// with `score` and `snippet`, the total, the facet counts, and the cursor of the next page.
pub fn results_json(results: &Results) -> serde_json::Value {
    let records: Vec<serde_json::Value> = results
        .hits
        .iter()
        .map(|hit| {
            let mut m = cailloux_protocol::view::summary_json(&hit.record);
            m.insert("score".into(), serde_json::json!(hit.score));
            m.insert("snippet".into(), serde_json::json!(hit.snippet));
            serde_json::Value::Object(m)
        })
        .collect();
    serde_json::json!({
        "total": results.total,
        "records": records,
        "next_cursor": results.next_cursor,
        "facets": results.facets,
    })
}

/// One hit: the record, its score (0 for a filtered listing) and a snippet, HTML-escaped text
/// with the matched words in `<mark>`.
#[derive(Clone, Debug)]
pub struct Hit {
    pub id: RecordId,
    pub score: f32,
    pub snippet: String,
    pub record: Record,
}

/// Counts of the matching records by facet value.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Facets {
    pub kind: BTreeMap<String, u64>,
    pub theme: BTreeMap<String, u64>,
    pub town: BTreeMap<String, u64>,
    pub year: BTreeMap<String, u64>,
    pub outcome: BTreeMap<String, u64>,
}

#[derive(Clone, Debug)]
pub struct Results {
    /// How many records match in all, exactly: counted with every search (the ranking visits
    /// every match anyway, so the count adds an increment per match).
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Whether more results follow this page.
    pub more: bool,
    /// The opaque token of the next page (see `search::cursor`), when one follows.
    pub next_cursor: Option<String>,
    pub facets: Facets,
    /// The most documents the ranking held at once in one segment: at most a page and one,
    /// however deep the page.
    pub held: usize,
}

/// Text as HTML text (a snippet without marks): it comes from another town's author.
pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
