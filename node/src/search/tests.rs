//! The search module's own tests: hostile words never panic nor recurse and stay within the
//! bounds; pages follow one total order and hold no more documents deep in the results than on
//! the first page.

use super::*;
use crate::store::Store;
use cailloux_protocol::trust::Mode;
use cailloux_protocol::{Kind, Publication, Record, RecordId, SigningKey, Theme};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};

fn publication(title: &str, body: &str) -> Publication {
    Publication {
        kind: Kind::Practice,
        title: title.into(),
        summary: "Un résumé.".into(),
        language: "fr".into(),
        town: "Ville-Test".into(),
        themes: vec![Theme::Food],
        tags: Vec::new(),
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

/// A store and its index in a temporary folder.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    index: SearchIndex,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("store"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (index, _) =
            SearchIndex::open(&dir.path().join("index")).unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            _dir: dir,
            store,
            index,
        }
    }

    /// Stores and indexes records (one commit, so one segment per call).
    fn add(&self, records: &[Record]) {
        self.store
            .insert_batch(records, crate::now_millis())
            .unwrap_or_else(|e| panic!("{e}"));
        self.index
            .add(records, &[], &[])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn search(&self, text: &str) -> Result<Results, SearchError> {
        let query = SearchQuery {
            text: text.into(),
            limit: 10,
            ..SearchQuery::default()
        };
        self.index.search(&query, &self.store)
    }
}

fn record(i: u64, created_at: u64, title: &str, body: &str) -> Record {
    Record::sign(
        &SigningKey::from_bytes(&[(i % 7) as u8 + 1; 32]),
        created_at,
        publication(title, body),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn small_corpus() -> Fixture {
    let f = Fixture::new();
    f.add(&[
        record(
            0,
            1_000,
            "Jardins partagés",
            "Des jardins au pied des immeubles.",
        ),
        record(1, 2_000, "Chaufferie bois", "Une chaufferie collective."),
    ]);
    f
}

/// The words as the analyzers cut them (runs of letters and digits, shorter than 40 bytes):
/// what the bound on terms counts.
fn words_in(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() < 40)
        .count()
}

/// Runs `f` on a thread with a small stack (256 KiB, where the main thread has 8 MiB): a
/// recursion on the input would overflow it.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap_or_else(|e| panic!("{e}"))
        .join()
        .unwrap_or_else(|_| panic!("the search panicked"))
}

#[test]
fn nested_brackets_are_answered_on_a_small_stack_and_the_word_inside_still_matches() {
    let f = std::sync::Arc::new(small_corpus());
    let found = on_small_stack(move || {
        let deep = format!("{}jardin{}", "(".repeat(240), ")".repeat(240));
        let deep = f.search(&deep).map(|r| r.hits.len());
        let huge = format!("{}jardin{}", "([{".repeat(100_000), "}])".repeat(100_000));
        let huge = f.search(&huge).map(|r| r.hits.len());
        (deep, huge.is_err())
    });
    assert_eq!(found.0.ok(), Some(1));
    assert!(found.1, "a query of 600,000 characters is refused");
}

#[test]
fn a_query_is_refused_beyond_its_length_or_its_number_of_terms_with_the_bound_named() {
    let f = small_corpus();
    let sixteen = vec!["jardin"; 16].join(" ");
    assert!(f.search(&sixteen).is_ok());
    let seventeen = vec!["jardin"; 17].join(" ");
    let e = f.search(&seventeen).err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("q:") && e.contains("16")),
        "{e:?}"
    );
    let long = "a".repeat(501);
    let e = f.search(&long).err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("q:") && e.contains("500")),
        "{e:?}"
    );
    // The same bounds when the query is read from URL parameters.
    let params: HashMap<String, String> = [("q".to_owned(), seventeen)].into();
    let e = SearchQuery::from_params(&params)
        .err()
        .map(|e| e.to_string());
    assert!(e.as_deref().is_some_and(|e| e.contains("q:")), "{e:?}");
}

#[test]
fn phrases_match_words_in_order_and_exclusions_leave_records_out() {
    let f = small_corpus();
    let titles = |q: &str| -> Vec<String> {
        f.search(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .hits
            .iter()
            .filter_map(|h| h.record.publication().map(|p| p.title.clone()))
            .collect()
    };
    assert_eq!(titles("\"pied des immeubles\""), ["Jardins partagés"]);
    assert!(titles("\"immeubles des pied\"").is_empty());
    assert!(titles("jardin -immeubles").is_empty());
    assert_eq!(titles("-jardin"), ["Chaufferie bois"]);
    assert_eq!(titles("-\"au pied\" -zeppelin"), ["Chaufferie bois"]);
    // Only punctuation: no word, so the listing of everything, newest first.
    assert_eq!(titles("()!*"), ["Chaufferie bois", "Jardins partagés"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any text: an answer or a refusal naming `q`, never a panic; refused exactly when it is
    /// longer than 500 characters or holds more than 16 words.
    #[test]
    fn any_text_is_answered_within_the_bounds(
        text in proptest::string::string_regex(
            "([()\\[\\]{}:^~\"+*!\\\\ -]|jardin|chaufferie|é|ß|ﬁ|\u{0301}|[a-z0-9]{1,45}|AND|OR|NOT|TO){0,260}"
        ).unwrap_or_else(|e| panic!("{e}"))
    ) {
        let f = small_corpus();
        let too_long = text.chars().count() > 500;
        let too_many = words_in(&text) > 16;
        match f.search(&text) {
            Ok(results) => {
                prop_assert!(!too_long && !too_many, "accepted: {text:?}");
                prop_assert!(results.hits.len() <= 2);
            }
            Err(SearchError::BadQuery(e)) => {
                prop_assert!(too_long || too_many, "refused {text:?}: {e}");
                prop_assert!(e.to_string().starts_with("q:"), "{e}");
            }
            Err(e) => prop_assert!(false, "{text:?}: {e}"),
        }
    }
}

/// Every page of `query`, following the cursors: the ids of each page.
fn all_pages(f: &Fixture, query: &SearchQuery) -> Vec<Vec<RecordId>> {
    let mut pages = Vec::new();
    let mut query = query.clone();
    loop {
        let results = f
            .index
            .search(&query, &f.store)
            .unwrap_or_else(|e| panic!("{e}"));
        // However deep the page, the ranking holds a page and one at most.
        assert!(
            results.held <= query.limit + 1,
            "page {}: held {} documents",
            pages.len(),
            results.held
        );
        pages.push(results.hits.iter().map(|h| h.id).collect());
        let page = results_json(&results);
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let mut params: HashMap<String, String> = query
                    .to_params()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                params.insert("cursor".into(), cursor.to_owned());
                query = SearchQuery::from_params(&params).unwrap_or_else(|e| panic!("{e}"));
            }
            None => break,
        }
        assert!(pages.len() < 1000);
    }
    pages
}

#[test]
fn pages_follow_one_total_order_and_a_deep_page_holds_no_more_than_the_first() {
    let f = Fixture::new();
    // 300 records in six segments; scores tie in groups, and so do creation times.
    for segment in 0..6u64 {
        let batch: Vec<Record> = (0..50u64)
            .map(|i| {
                let n = segment * 50 + i;
                let words = "jardin ".repeat(1 + (n % 4) as usize);
                record(n, 1_000 + n / 3, &format!("Essai {n}"), &words)
            })
            .collect();
        f.add(&batch);
    }
    for text in ["jardin", ""] {
        let query = SearchQuery {
            text: text.into(),
            limit: 10,
            ..SearchQuery::default()
        };
        let pages = all_pages(&f, &query);
        let seen: Vec<RecordId> = pages.iter().flatten().copied().collect();
        assert_eq!(seen.len(), 300, "{text:?}");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 300, "{text:?}");
        // The same order as one page of everything.
        let everything = f
            .index
            .search(
                &SearchQuery {
                    limit: MAX_LIMIT,
                    ..query.clone()
                },
                &f.store,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let one_page: Vec<RecordId> = everything.hits.iter().map(|h| h.id).collect();
        assert_eq!(seen, one_page, "{text:?}");
        assert!(pages.iter().all(|p| p.len() <= 10));
    }
}
