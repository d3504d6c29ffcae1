//! The full-text index: a tantivy index beside the store, for searching the corpus by words in
//! French and English, narrowing by kind, theme, town, year and outcome, and counting facets.
//!
//! The store is the source of truth; this index is derived from it and can always be rebuilt.
//! `open` recreates an index that is missing or fails its checksums; `catch_up` adds whatever
//! the store holds and the index lacks (after a crash, or after records were stored by a CLI
//! with no node running); an index that holds more than the store is rebuilt.
//!
//! Analysis is per language, chosen by the record's `language`: French and English get
//! lower-casing, accent folding *then* stemming (so `methanisation` finds `méthanisation` and
//! `forets nourricieres` finds `forêt nourricière`); other languages get folding without
//! stemming. Title matches weigh three times body matches.

use crate::store::{Filter, Store, StoreError};
use crate::writer::IndexJob;
use cailloux_protocol::time::year_of_millis;
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{Kind, Outcome, Record, RecordId, Theme};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, Term, doc,
};

/// Why the index could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadQuery(String),
    #[error("the search index is damaged: {0}")]
    Damaged(String),
}

/// The languages with an analyzer of their own; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Fr,
    En,
    Other,
}

impl Lang {
    const ALL: [Lang; 3] = [Lang::Fr, Lang::En, Lang::Other];

    fn of(tag: &str) -> Lang {
        match tag
            .split('-')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .as_str()
        {
            "fr" => Lang::Fr,
            "en" => Lang::En,
            _ => Lang::Other,
        }
    }

    fn analyzer(self) -> &'static str {
        match self {
            Lang::Fr => "cailloux_fr",
            Lang::En => "cailloux_en",
            Lang::Other => "cailloux_folded",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
            Lang::Other => "other",
        }
    }
}

/// The text fields of one language: the title, weighed more, and everything else (summary,
/// tags, body) in one field, so that a word costs two posting lists per language, not four. No
/// text is stored in the index: snippets are cut from the records in the store.
#[derive(Clone, Copy, Debug)]
struct TextFields {
    title: Field,
    text: Field,
}

#[derive(Clone, Debug)]
struct Fields {
    id: Field,
    kind: Field,
    themes: Field,
    town: Field,
    town_key: Field,
    year: Field,
    outcome: Field,
    created_at: Field,
    links_to: Field,
    text: [TextFields; 3],
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_text_field("id", STRING | FAST);
    let kind = b.add_text_field("kind", STRING | FAST);
    let themes = b.add_text_field("themes", STRING | FAST);
    let town = b.add_text_field("town", STRING | FAST);
    let town_key = b.add_text_field("town_key", STRING);
    let year = b.add_u64_field("year", INDEXED | FAST);
    let outcome = b.add_text_field("outcome", STRING | FAST);
    let created_at = b.add_u64_field("created_at", FAST);
    let links_to = b.add_text_field("links_to", STRING);
    let text = Lang::ALL.map(|lang| {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(lang.analyzer())
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let s = lang.suffix();
        TextFields {
            title: b.add_text_field(&format!("title_{s}"), options.clone()),
            text: b.add_text_field(&format!("text_{s}"), options),
        }
    });
    (
        b.build(),
        Fields {
            id,
            kind,
            themes,
            town,
            town_key,
            year,
            outcome,
            created_at,
            links_to,
            text,
        },
    )
}

fn register_analyzers(index: &Index) {
    let analyzer = |stemmer: Option<Language>| {
        let base = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter);
        match stemmer {
            Some(lang) => base.filter(Stemmer::new(lang)).build(),
            None => base.build(),
        }
    };
    index
        .tokenizers()
        .register(Lang::Fr.analyzer(), analyzer(Some(Language::French)));
    index
        .tokenizers()
        .register(Lang::En.analyzer(), analyzer(Some(Language::English)));
    index
        .tokenizers()
        .register(Lang::Other.analyzer(), analyzer(None));
}

/// The year a record is filed under: the start of its period, else its creation.
pub fn record_year(record: &Record) -> u64 {
    match record.publication().and_then(|p| p.period.as_ref()) {
        Some(period) => u64::from(period.start.year),
        None => year_of_millis(record.created_at()).max(0) as u64,
    }
}

/// What a search asks. An empty `text` lists the matches of the filters, newest first.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub text: String,
    pub kind: Option<Kind>,
    pub theme: Option<Theme>,
    /// Compared case- and accent-insensitively.
    pub town: Option<String>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub outcome: Option<Outcome>,
    pub limit: usize,
    pub offset: usize,
    /// Also count the facets of every match (the page's filters need them; a plain search does
    /// not, and counting costs a pass over every match).
    pub facets: bool,
}

/// Snippets are cut from the summary, else from this many first characters of the body.
const BODY_SNIPPET_CHARS: usize = 500;

/// The largest page of results.
pub const MAX_LIMIT: usize = 500;

impl SearchQuery {
    /// Reads a query from URL parameters (`q`, `kind`, `theme`, `town`, `since`, `until`,
    /// `outcome`, `limit`, `cursor`); the error names the parameter and what it accepts.
    pub fn from_params(
        params: &std::collections::HashMap<String, String>,
    ) -> Result<SearchQuery, String> {
        const KNOWN: &[&str] = &[
            "q", "kind", "theme", "town", "since", "until", "outcome", "limit", "cursor", "facets",
        ];
        if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&String::as_str(k))) {
            let hint = cailloux_protocol::vocab::nearest(unknown, KNOWN.iter().copied())
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "`{unknown}` is not a parameter{hint}; the parameters are: {}",
                KNOWN.join(", ")
            ));
        }
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        fn vocab<T: cailloux_protocol::vocab::Vocabulary>(
            name: &str,
            v: Option<&str>,
        ) -> Result<Option<T>, String> {
            v.map(|v| {
                T::from_slug(v).ok_or_else(|| {
                    let hint = T::suggest(v)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    format!(
                        "{name}: `{v}` is not a {}{hint}; valid: {}",
                        T::WHAT,
                        T::slugs().join(", ")
                    )
                })
            })
            .transpose()
        }
        let year = |name: &str| -> Result<Option<u64>, String> {
            get(name)
                .map(|v| match v.parse::<u64>() {
                    Ok(y) if (1000..=9999).contains(&y) => Ok(y),
                    _ => Err(format!(
                        "{name}: `{v}` is not a year; write four digits, such as 2019"
                    )),
                })
                .transpose()
        };
        let limit = match get("limit") {
            None => 50,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit: `{v}` is not a number from 1 to {MAX_LIMIT}"
                    ));
                }
            },
        };
        let offset = match get("cursor") {
            None => 0,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| format!("cursor: `{v}` is not a cursor this node gave out"))?,
        };
        let query = SearchQuery {
            text: get("q").unwrap_or("").to_owned(),
            kind: vocab("kind", get("kind"))?,
            theme: vocab("theme", get("theme"))?,
            town: get("town").map(str::to_owned),
            since: year("since")?,
            until: year("until")?,
            outcome: vocab("outcome", get("outcome"))?,
            limit,
            offset,
            facets: match get("facets") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(format!("facets: `{other}` is not `true` or `false`")),
            },
        };
        if let (Some(a), Some(b)) = (query.since, query.until)
            && a > b
        {
            return Err(format!("since: {a} is after until ({b})"));
        }
        Ok(query)
    }

    /// The same query as URL parameters (for the CLI talking to a node).
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("limit", self.limit.to_string())];
        if !self.text.trim().is_empty() {
            p.push(("q", self.text.clone()));
        }
        if let Some(k) = self.kind {
            p.push(("kind", k.slug().into()));
        }
        if let Some(t) = self.theme {
            p.push(("theme", t.slug().into()));
        }
        if let Some(t) = &self.town {
            p.push(("town", t.clone()));
        }
        if let Some(y) = self.since {
            p.push(("since", y.to_string()));
        }
        if let Some(y) = self.until {
            p.push(("until", y.to_string()));
        }
        if let Some(o) = self.outcome {
            p.push(("outcome", o.slug().into()));
        }
        if self.offset > 0 {
            p.push(("cursor", self.offset.to_string()));
        }
        if self.facets {
            p.push(("facets", "true".into()));
        }
        p
    }
}

/// A page of results as the API and `search --json` show it: the matching records' list fields
/// with `score` and `snippet`, the total, the facet counts, and the cursor of the next page.
pub fn results_json(query: &SearchQuery, results: &Results) -> serde_json::Value {
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
    let next = query.offset + results.hits.len();
    serde_json::json!({
        "total": results.total,
        "records": records,
        "next_cursor": results.more.then(|| next.to_string()),
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
    /// How many records match in all.
    /// How many records match in all; counted only with facets (counting visits every match,
    /// which the ranking alone does not need to).
    pub total: Option<usize>,
    pub hits: Vec<Hit>,
    /// Whether more results follow this page.
    pub more: bool,
    pub facets: Facets,
}

/// Documents in rank order, with their scores.
type Ranked = Vec<(Score, DocAddress)>;

/// The index and its single writer.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    dir: PathBuf,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if missing and recreating it (empty) if it cannot
    /// be opened or fails its checksums. Returns whether it was (re)created empty.
    pub fn open(dir: &Path) -> Result<(SearchIndex, bool), SearchError> {
        match Self::open_existing(dir) {
            Ok(Some(index)) => Ok((index, false)),
            Ok(None) => Ok((Self::create(dir)?, true)),
            Err(e) => {
                tracing::warn!(
                    "the search index at {} is damaged ({e}); rebuilding it from the store",
                    dir.display()
                );
                Ok((Self::create(dir)?, true))
            }
        }
    }

    fn open_existing(dir: &Path) -> Result<Option<SearchIndex>, SearchError> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir)?;
        let damaged = index.validate_checksum()?;
        if !damaged.is_empty() {
            return Err(SearchError::Damaged(format!(
                "{} file(s) fail their checksum",
                damaged.len()
            )));
        }
        let (schema, fields) = schema();
        if index.schema() != schema {
            return Err(SearchError::Damaged(
                "the index was built with another schema".into(),
            ));
        }
        Self::wrap(index, fields, dir).map(Some)
    }

    fn create(dir: &Path) -> Result<SearchIndex, SearchError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| SearchError::Io {
                path: dir.to_owned(),
                source: e,
            })?;
        }
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Io {
            path: dir.to_owned(),
            source: e,
        })?;
        let (schema, fields) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        Self::wrap(index, fields, dir)
    }

    fn wrap(index: Index, fields: Fields, dir: &Path) -> Result<SearchIndex, SearchError> {
        register_analyzers(&index);
        let writer = index.writer_with_num_threads(1, 64_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            dir: dir.to_owned(),
        })
    }

    /// How many records the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index's document of a publication (acts are not searched).
    fn document(&self, record: &Record) -> Option<TantivyDocument> {
        let f = &self.fields;
        let p = record.publication()?;
        let mut d = doc!(
            f.id => record.id().to_hex(),
            f.kind => p.kind.slug(),
            f.town => p.town.clone(),
            f.town_key => fold(&p.town),
            f.year => record_year(record),
            f.created_at => record.created_at(),
        );
        for t in &p.themes {
            d.add_text(f.themes, t.slug());
        }
        if let Some(o) = p.outcome {
            d.add_text(f.outcome, o.slug());
        }
        for l in &p.links {
            d.add_text(f.links_to, l.id.to_hex());
        }
        let lang = Lang::of(&p.language);
        let text = f.text[Lang::ALL.iter().position(|l| *l == lang).unwrap_or(2)];
        d.add_text(text.title, &p.title);
        d.add_text(text.text, &p.summary);
        d.add_text(text.text, p.tags.join(" "));
        d.add_text(text.text, &p.body);
        Some(d)
    }

    /// Indexes records (that the store holds and the index does not) and commits.
    /// Adds new publications, removes the ones they hide (retracted, superseded, voided) and
    /// adds back the ones shown again (`revealed`, replacing any copy), in one commit: the index
    /// holds what default listings show. `hidden` and `revealed` are disjoint.
    pub fn add(
        &self,
        records: &[Record],
        hidden: &[RecordId],
        revealed: &[Record],
    ) -> Result<(), SearchError> {
        if records.is_empty() && hidden.is_empty() && revealed.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for document in records.iter().filter_map(|r| self.document(r)) {
            writer.add_document(document)?;
        }
        // Deletions apply to documents added before them, in this commit too.
        let back: Vec<RecordId> = revealed.iter().map(Record::id).collect();
        for id in hidden.iter().chain(&back) {
            writer.delete_term(Term::from_field_text(self.fields.id, &id.to_hex()));
        }
        for document in revealed.iter().filter_map(|r| self.document(r)) {
            writer.add_document(document)?;
        }
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    fn contains(&self, searcher: &tantivy::Searcher, id: &RecordId) -> Result<bool, SearchError> {
        let term = Term::from_field_text(self.fields.id, &id.to_hex());
        Ok(searcher.doc_freq(&term)? > 0)
    }

    /// Brings the index in step with the store: adds what it lacks; empties and refills it if
    /// it holds more. `progress` is called with the number of records indexed so far.
    pub fn catch_up(
        &self,
        store: &Store,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SearchError> {
        // What the ledger hides since the index last saw it (a crash between the store's flush
        // and the index's commit) goes first.
        let hidden: Vec<RecordId> = store.ledger().hidden();
        if !hidden.is_empty() {
            let searcher = self.reader.searcher();
            let mut stale = Vec::new();
            for id in hidden {
                if self.contains(&searcher, &id)? {
                    stale.push(id);
                }
            }
            if !stale.is_empty() {
                self.add(&[], &stale, &[])?;
            }
        }
        let stored = store.visible_len() as u64;
        if self.len() > stored {
            tracing::warn!("the search index holds records the store does not; rebuilding it");
            let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            writer.delete_all_documents()?;
            writer.commit()?;
            drop(writer);
            self.reader.reload()?;
        }
        if self.len() == stored {
            return Ok(());
        }
        // One commit at the end: every commit makes a segment, and every segment costs every
        // query a little (a rebuild committing per thousand records answered ten times slower).
        let searcher = self.reader.searcher();
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = 0;
        for record in store.iter_oldest_first(&Filter::default()) {
            let record = record?;
            if !self.contains(&searcher, &record.id())?
                && let Some(document) = self.document(&record)
            {
                writer.add_document(document)?;
                done += 1;
                if done % 1024 == 0 {
                    progress(done);
                }
            }
        }
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        progress(done);
        Ok(())
    }

    /// Empties the index and indexes the whole store again.
    pub fn rebuild(
        dir: &Path,
        store: &Store,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SearchIndex, SearchError> {
        let index = Self::create(dir)?;
        index.catch_up(store, progress)?;
        Ok(index)
    }

    fn filters(&self, q: &SearchQuery) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(k) = q.kind {
            clauses.push((Occur::Must, term(f.kind, k.slug())));
        }
        if let Some(t) = q.theme {
            clauses.push((Occur::Must, term(f.themes, t.slug())));
        }
        if let Some(t) = &q.town {
            clauses.push((Occur::Must, term(f.town_key, &fold(t))));
        }
        if let Some(o) = q.outcome {
            clauses.push((Occur::Must, term(f.outcome, o.slug())));
        }
        if q.since.is_some() || q.until.is_some() {
            let bound = |y: Option<u64>, inclusive: fn(Term) -> Bound<Term>| match y {
                Some(y) => inclusive(Term::from_field_u64(f.year, y)),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(q.since, Bound::Included),
                    bound(q.until, Bound::Included),
                )),
            ));
        }
        clauses
    }

    /// Searches. Best first when there are words; newest first when there are none.
    /// The records come from `store`, which also gives the text that snippets are cut from.
    pub fn search(&self, q: &SearchQuery, store: &Store) -> Result<Results, SearchError> {
        if let (Some(a), Some(b)) = (q.since, q.until)
            && a > b
        {
            return Err(SearchError::BadQuery(format!(
                "since ({a}) is after until ({b})"
            )));
        }
        let searcher = self.reader.searcher();
        let words = q.text.trim();
        let text_query: Option<Box<dyn Query>> = if words.is_empty() {
            None
        } else {
            let fields: Vec<Field> = self
                .fields
                .text
                .iter()
                .flat_map(|t| [t.title, t.text])
                .collect();
            let mut parser = QueryParser::for_index(&self.index, fields);
            parser.set_conjunction_by_default();
            for t in &self.fields.text {
                parser.set_field_boost(t.title, 3.0);
            }
            let (query, _errors) = parser.parse_query_lenient(words);
            Some(query)
        };
        let mut clauses = self.filters(q);
        if let Some(text) = &text_query {
            clauses.push((Occur::Must, text.box_clone()));
        }
        let query: Box<dyn Query> = if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        let limit = q.limit.max(1);
        // One more than the page, to know whether another page follows.
        let counted = q.facets.then_some((Count, FacetCollector));
        let (mut docs, counts): (Ranked, Option<(usize, Facets)>) = if text_query.is_some() {
            let top = TopDocs::with_limit(limit + 1)
                .and_offset(q.offset)
                .order_by_score();
            searcher.search(&query, &(top, counted))?
        } else {
            let top = TopDocs::with_limit(limit + 1)
                .and_offset(q.offset)
                .order_by_u64_field("created_at", Order::Desc);
            let (docs, counts) = searcher.search(&query, &(top, counted))?;
            (docs.into_iter().map(|(_, d)| (0.0, d)).collect(), counts)
        };
        let more = docs.len() > limit;
        docs.truncate(limit);
        let (total, facets) = match counts {
            Some((total, facets)) => (Some(total), Some(facets)),
            None => (None, None),
        };
        let facets = facets.unwrap_or_default();
        // Snippets come from the summary when the words are there (it is short, so cheap to
        // analyse), else from the body.
        let generator = |field: Field| -> Option<SnippetGenerator> {
            let q = text_query.as_ref()?;
            let mut g = SnippetGenerator::create(&searcher, q.as_ref(), field).ok()?;
            g.set_max_num_chars(180);
            Some(g)
        };
        // One generator per language, made when a hit of that language needs it.
        let mut generators: [Option<Option<SnippetGenerator>>; 3] = [None, None, None];
        let ids = IdReader::new(&searcher)?;
        let mut hits = Vec::with_capacity(docs.len());
        for (score, address) in docs {
            let id = ids.id(address)?;
            // A hit the store does not hold is an index out of step; it is skipped, and the
            // index is brought back in step when next opened.
            let Some(record) = store.get(&id)? else {
                continue;
            };
            let Some(p) = record.publication() else {
                continue;
            };
            let lang = Lang::ALL
                .iter()
                .position(|l| *l == Lang::of(&p.language))
                .unwrap_or(2);
            let g = generators[lang].get_or_insert_with(|| generator(self.fields.text[lang].text));
            // From the summary when the words are there (it is short), else from the body.
            let marked = |text: &str| {
                g.as_ref()
                    .map(|g| g.snippet(text))
                    .filter(|s| !s.highlighted().is_empty())
            };
            // Analysing text costs about a microsecond a word: only the body's beginning is read.
            let body_head = p
                .body
                .char_indices()
                .nth(BODY_SNIPPET_CHARS)
                .map_or(p.body.as_str(), |(i, _)| &p.body[..i]);
            let snippet = match marked(&p.summary).or_else(|| marked(body_head)) {
                Some(snippet) => snippet
                    .to_html()
                    .replace("<b>", "<mark>")
                    .replace("</b>", "</mark>"),
                None => html_escape(&p.summary.chars().take(180).collect::<String>()),
            };
            hits.push(Hit {
                id,
                score,
                snippet,
                record,
            });
        }
        Ok(Results {
            total,
            hits,
            more,
            facets,
        })
    }

    /// Facet counts of the records matching the filters of `q` (its text is ignored).
    pub fn stats(&self, q: &SearchQuery) -> Result<(usize, Facets), SearchError> {
        let clauses = self.filters(q);
        let query: Box<dyn Query> = if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        Ok(self
            .reader
            .searcher()
            .search(&query, &(Count, FacetCollector))?)
    }

    /// Ids of the records that link to `id`.
    pub fn linking_to(&self, id: &RecordId) -> Result<Vec<RecordId>, SearchError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.links_to, &id.to_hex()),
            IndexRecordOption::Basic,
        );
        let docs = searcher.search(
            &query,
            &TopDocs::with_limit(1000).order_by_u64_field("created_at", Order::Asc),
        )?;
        let ids = IdReader::new(&searcher)?;
        docs.into_iter()
            .map(|(_, address)| ids.id(address))
            .collect()
    }
}

/// Reads record ids from the `id` fast field (no stored document is loaded).
struct IdReader {
    columns: Vec<Option<StrColumn>>,
}

impl IdReader {
    fn new(searcher: &tantivy::Searcher) -> Result<IdReader, SearchError> {
        let columns = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().str("id"))
            .collect::<Result<_, _>>()?;
        Ok(IdReader { columns })
    }

    fn id(&self, address: DocAddress) -> Result<RecordId, SearchError> {
        let column = self
            .columns
            .get(address.segment_ord as usize)
            .and_then(Option::as_ref);
        let mut text = String::new();
        if let Some(column) = column
            && let Some(ord) = column.term_ords(address.doc_id).next()
        {
            let _ = column.ord_to_str(ord, &mut text);
        }
        RecordId::from_hex(&text)
            .ok_or_else(|| SearchError::Damaged("an index entry without an id".into()))
    }
}

/// Text as HTML text (a snippet without marks): it comes from another town's author.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Counts facet values of every matching document from the fast fields.
struct FacetCollector;

struct FacetSegment {
    columns: [(usize, Option<StrColumn>); 4],
    year: Option<tantivy::columnar::Column<u64>>,
    counts: [BTreeMap<u64, u64>; 4],
    years: BTreeMap<u64, u64>,
}

const STR_FACETS: [&str; 4] = ["kind", "themes", "town", "outcome"];

impl Collector for FacetCollector {
    type Fruit = Facets;
    type Child = FacetSegment;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<FacetSegment> {
        let ff = segment.fast_fields();
        let mut columns = [(0, None), (1, None), (2, None), (3, None)];
        for (i, name) in STR_FACETS.iter().enumerate() {
            columns[i] = (i, ff.str(name)?);
        }
        Ok(FacetSegment {
            columns,
            year: ff.u64("year").ok(),
            counts: Default::default(),
            years: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Facets>) -> tantivy::Result<Facets> {
        let mut out = Facets::default();
        for f in fruits {
            for (target, source) in [
                (&mut out.kind, f.kind),
                (&mut out.theme, f.theme),
                (&mut out.town, f.town),
                (&mut out.year, f.year),
                (&mut out.outcome, f.outcome),
            ] {
                for (k, v) in source {
                    *target.entry(k).or_default() += v;
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for FacetSegment {
    type Fruit = Facets;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for (i, column) in &self.columns {
            if let Some(column) = column {
                for ord in column.term_ords(doc) {
                    *self.counts[*i].entry(ord).or_default() += 1;
                }
            }
        }
        if let Some(year) = self.year.as_ref().and_then(|c| c.first(doc)) {
            *self.years.entry(year).or_default() += 1;
        }
    }

    fn harvest(self) -> Facets {
        let mut facets = Facets::default();
        let names =
            |column: &Option<StrColumn>, counts: BTreeMap<u64, u64>| -> BTreeMap<String, u64> {
                let mut out = BTreeMap::new();
                let mut s = String::new();
                for (ord, n) in counts {
                    s.clear();
                    if let Some(c) = column
                        && c.ord_to_str(ord, &mut s).unwrap_or(false)
                    {
                        out.insert(s.clone(), n);
                    }
                }
                out
            };
        let [kind, themes, town, outcome] = self.counts;
        facets.kind = names(&self.columns[0].1, kind);
        facets.theme = names(&self.columns[1].1, themes);
        facets.town = names(&self.columns[2].1, town);
        facets.outcome = names(&self.columns[3].1, outcome);
        facets.year = self
            .years
            .into_iter()
            .map(|(y, n)| (y.to_string(), n))
            .collect();
        facets
    }
}

/// What should become of one record in the index after some jobs.
enum Fate {
    New(Record),
    Hidden,
    Revealed(Record),
}

/// The net effect of jobs taken in order (one may hide what an earlier one revealed): new
/// records, records to remove, records to add back; no record in two of them.
fn net(jobs: &mut [IndexJob]) -> (Vec<Record>, Vec<RecordId>, Vec<Record>) {
    let mut fate: std::collections::HashMap<RecordId, Fate> = std::collections::HashMap::new();
    for job in jobs.iter_mut() {
        for r in std::mem::take(&mut job.records) {
            fate.insert(r.id(), Fate::New(r));
        }
        for id in std::mem::take(&mut job.hidden) {
            fate.insert(id, Fate::Hidden);
        }
        for r in std::mem::take(&mut job.revealed) {
            fate.insert(r.id(), Fate::Revealed(r));
        }
    }
    let (mut new, mut hidden, mut revealed) = (Vec::new(), Vec::new(), Vec::new());
    for (id, f) in fate {
        match f {
            Fate::New(r) => new.push(r),
            Fate::Hidden => hidden.push(id),
            Fate::Revealed(r) => revealed.push(r),
        }
    }
    (new, hidden, revealed)
}

/// Starts the thread that keeps `index` current: it first catches up with the store, then
/// indexes what the store writer sends, coalescing whatever has queued into one commit. It
/// stops when every sender is gone.
pub fn start_indexer(
    index: std::sync::Arc<SearchIndex>,
    store: Store,
) -> (
    std::sync::mpsc::Sender<IndexJob>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<IndexJob>();
    let handle = std::thread::Builder::new()
        .name("search-indexer".into())
        .spawn(move || {
            if let Err(e) = index.catch_up(&store, &mut |_| {}) {
                tracing::error!("cannot bring the search index up to date: {e}");
            }
            while let Ok(first) = rx.recv() {
                let mut jobs = crate::writer::coalesce(&rx, first, |j| j.records.len());
                let (batch, hidden, revealed) = net(&mut jobs);
                if let Err(e) = index.add(&batch, &hidden, &revealed) {
                    // The records are durable; the index catches up when it is next opened.
                    tracing::error!("cannot index {} record(s): {e}", batch.len());
                }
                jobs.into_iter().for_each(IndexJob::done);
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the search indexer thread: {e}"));
    (tx, handle)
}
