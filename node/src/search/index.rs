//! The index itself: opening (and recreating when damaged), adding and hiding records,
//! catching up with the store, and running searches.

use super::facets::FacetCollector;
use super::results::html_escape;
use super::schema::{Fields, Lang, record_year, register_analyzers, schema};
use super::{Facets, Hit, Results, SearchError, SearchQuery};
use crate::store::{Filter, Store};
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{Record, RecordId};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, TantivyDocument, Term,
    doc,
};

/// Snippets are cut from the summary, else from this many first characters of the body.
const BODY_SNIPPET_CHARS: usize = 500;

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
    /// Adds new publications and removes the ones they hide (retracted or superseded), in one
    /// commit: the index holds the current version of each record, never a retracted one.
    pub fn add(&self, records: &[Record], hidden: &[RecordId]) -> Result<(), SearchError> {
        if records.is_empty() && hidden.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for document in records.iter().filter_map(|r| self.document(r)) {
            writer.add_document(document)?;
        }
        // Deletions apply to documents added before them, in this commit too.
        for id in hidden {
            writer.delete_term(Term::from_field_text(self.fields.id, &id.to_hex()));
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
        let hidden: Vec<RecordId> = store.ledger().hidden().copied().collect();
        if !hidden.is_empty() {
            let searcher = self.reader.searcher();
            let mut stale = Vec::new();
            for id in hidden {
                if self.contains(&searcher, &id)? {
                    stale.push(id);
                }
            }
            if !stale.is_empty() {
                self.add(&[], &stale)?;
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
