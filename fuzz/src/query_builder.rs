//! `query_builder`: what anyone may send to `GET /api/v1/records` as `q` and `cursor`, read
//! and built into a query against an in-memory index of the node's schema and analyzers (no
//! store, no HTTP: pure parsing, building and ranking). It must never panic nor recurse (deep
//! nesting is answered at constant stack), a query it accepts is within the bounds (500
//! characters, 16 words), and a refusal is always one of bad input.
//!
//! The input is UTF-8 text: `q`, then optionally a NUL and a cursor. This file is compiled in
//! the fuzz crate and, for the regression test that replays the committed corpus, as a module
//! of `node/tests/fuzz_regressions.rs` (the protocol crate's replay cannot: it has no node).

use cailloux_node::search::{MAX_QUERY_CHARS, MAX_TERMS, SearchIndex, SearchQuery, Words};
use cailloux_protocol::{Kind, Publication, Record, SigningKey, Theme};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A publication for the in-memory index.
fn publication(language: &str, title: &str, body: &str) -> Publication {
    Publication {
        kind: Kind::Practice,
        title: title.into(),
        summary: "Un résumé.".into(),
        language: language.into(),
        town: "Fuzzville".into(),
        themes: vec![Theme::Food],
        tags: vec!["jardin".into()],
        sdgs: Vec::new(),
        period: None,
        participation: None,
        licence: "etalab-2.0".into(),
        links: Vec::new(),
        outcome: None,
        need: None,
        method: None,
        indicators: Vec::new(),
        attachments: Vec::new(),
        body: body.into(),
    }
}

/// An in-memory index holding a few records in each language, made once.
fn index() -> Option<&'static SearchIndex> {
    static INDEX: OnceLock<Option<SearchIndex>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let index = SearchIndex::in_memory().ok()?;
            let key = SigningKey::from_bytes(&[42; 32]);
            let texts = [
                (
                    "fr",
                    "Jardins partagés",
                    "Un jardin au pied des immeubles, à Saint-Aubin.",
                ),
                (
                    "fr",
                    "Chaufferie bois",
                    "La chaufferie collective chauffe l'école.",
                ),
                ("en", "Repair café", "Repairs every month; gardens too."),
                ("de", "Gemeinschaftsgarten", "Ein Garten für alle."),
                ("fr", "Jardin", "jardin jardin jardin"),
            ];
            let records: Vec<Record> = texts
                .iter()
                .enumerate()
                .filter_map(|(i, (lang, title, body))| {
                    Record::sign(
                        &key,
                        1_764_000_000_000 + i as u64 / 2,
                        publication(lang, title, body),
                    )
                    .ok()
                })
                .collect();
            index.add(&records, &[], &[]).ok()?;
            Some(index)
        })
        .as_ref()
}

pub fn query_builder(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (q, cursor) = match text.split_once('\0') {
        Some((q, cursor)) => (q, Some(cursor)),
        None => (text, None),
    };
    // Reading the words: within the bounds, or refused.
    let words = Words::parse(q);
    if let Ok(words) = &words {
        assert!(q.trim().chars().count() <= MAX_QUERY_CHARS);
        assert!(words.terms() <= MAX_TERMS);
        assert!(
            words
                .parts
                .iter()
                .all(|p| p.terms > 0 && !p.text.is_empty())
        );
    }
    // The same through the URL parameters' reader.
    let mut params = HashMap::from([
        ("q".to_owned(), q.to_owned()),
        ("limit".to_owned(), "2".to_owned()),
    ]);
    if let Some(c) = cursor {
        params.insert("cursor".into(), c.to_owned());
    }
    let from_params = SearchQuery::from_params(&params);
    if words.is_err() {
        assert!(
            from_params.is_err(),
            "a refused q passed the parameters' reader"
        );
    }
    let Some(index) = index() else {
        return;
    };
    // Ranking, with the cursor as given (whatever it holds).
    let query = SearchQuery {
        text: q.to_owned(),
        cursor: cursor.map(str::to_owned),
        limit: 2,
        ..SearchQuery::default()
    };
    let first = match index.rank(&query) {
        Ok(ranking) => ranking,
        Err(e) => {
            assert!(e.is_bad_input(), "{e}");
            assert!(
                words.is_err() || cursor.is_some(),
                "accepted words refused: {e}"
            );
            return;
        }
    };
    assert!(words.is_ok());
    assert!(first.hits.len() <= 2 && first.held <= 3);
    // The next page, with this index's own cursor: accepted, and no record twice.
    if let Some(next) = first.next_cursor.clone() {
        let second = index
            .rank(&SearchQuery {
                cursor: Some(next),
                ..query.clone()
            })
            .unwrap_or_else(|e| panic!("the index refused its own cursor: {e}"));
        for (id, _) in &second.hits {
            assert!(
                first.hits.iter().all(|(seen, _)| seen != id),
                "a record on two pages"
            );
        }
    }
}
