//! The index itself: opening (and recreating when damaged), adding and hiding records,
//! catching up with the store, facet counts and links. Searches run in `run`.

use super::builder::Builder;
use super::facets::FacetCollector;
use super::schema::{Fields, Lang, record_year, register_analyzers, schema};
use super::{Facets, SearchError, SearchQuery};
use crate::store::{Filter, Store};
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{Record, RecordId};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{AllQuery, BooleanQuery, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term, doc,
};

/// The least arena tantivy accepts per indexing thread (its `MIN_ARENA_BYTES`, not
/// exported): below it, opening the writer fails.
const MIN_ARENA_BYTES: usize = 15_000_000;

/// What the index writer may hold in memory. tantivy buffers a segment in an arena of
/// `arena_bytes` (it preallocates a term table sized from it for every segment, a commit being
/// one) and merges segments on `merge_threads` threads, each merge holding its own buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterMemory {
    pub arena_bytes: usize,
    pub merge_threads: usize,
}

impl WriterMemory {
    /// The bounds before issue 10 (64 MB, tantivy's 4 merge threads): the memory benchmark's
    /// baseline.
    pub const BEFORE: WriterMemory = WriterMemory {
        arena_bytes: 64_000_000,
        merge_threads: 4,
    };
}

impl Default for WriterMemory {
    /// The least arena tantivy accepts (15 MB) and one merge thread.
    fn default() -> WriterMemory {
        WriterMemory {
            arena_bytes: MIN_ARENA_BYTES,
            merge_threads: 1,
        }
    }
}

/// The index and its single writer.
pub struct SearchIndex {
    pub(super) reader: IndexReader,
    writer: Mutex<IndexWriter>,
    pub(super) fields: Fields,
    pub(super) builder: Builder,
    /// The key of this index's cursors, drawn when it opens: a cursor is good until the node
    /// restarts, and no one else can make one.
    pub(super) secret: [u8; 32],
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
        Self::open_with(dir, WriterMemory::default())
    }

    /// `open`, with the writer's memory set (benchmarks set the old, larger figures).
    pub fn open_with(dir: &Path, memory: WriterMemory) -> Result<(SearchIndex, bool), SearchError> {
        match Self::open_existing(dir, memory) {
            Ok(Some(index)) => Ok((index, false)),
            Ok(None) => Ok((Self::create(dir, memory)?, true)),
            Err(e) => {
                tracing::warn!(
                    "the search index at {} is damaged ({e}); rebuilding it from the store",
                    dir.display()
                );
                Ok((Self::create(dir, memory)?, true))
            }
        }
    }

    fn open_existing(dir: &Path, memory: WriterMemory) -> Result<Option<SearchIndex>, SearchError> {
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
        Self::wrap(index, fields, dir, memory).map(Some)
    }

    fn create(dir: &Path, memory: WriterMemory) -> Result<SearchIndex, SearchError> {
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
        Self::wrap(index, fields, dir, memory)
    }

    fn wrap(
        index: Index,
        fields: Fields,
        dir: &Path,
        memory: WriterMemory,
    ) -> Result<SearchIndex, SearchError> {
        register_analyzers(&index);
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| SearchError::Random(e.to_string()))?;
        let builder = Builder::new(fields.clone(), index.tokenizers().clone());
        let writer = index.writer_with_options(
            IndexWriterOptions::builder()
                .num_worker_threads(1)
                .memory_budget_per_thread(memory.arena_bytes.max(MIN_ARENA_BYTES))
                .num_merge_threads(memory.merge_threads.max(1))
                .build(),
        )?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            builder,
            secret,
            dir: dir.to_owned(),
        })
    }

    /// An empty index in memory, of the same schema and analyzers (for fuzzing and tests).
    pub fn in_memory() -> Result<SearchIndex, SearchError> {
        let (schema, fields) = schema();
        Self::wrap(
            Index::create_in_ram(schema),
            fields,
            Path::new(""),
            WriterMemory::default(),
        )
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
        // Deletions apply to documents added before them, in this commit too. Every record
        // added replaces any copy first: the indexer's catch-up at start may already have
        // indexed a record that a job queued meanwhile brings again, and a second copy would
        // be a second hit.
        let delete = |writer: &mut IndexWriter, id: &RecordId| {
            writer.delete_term(Term::from_field_text(self.fields.id, &id.to_hex()));
        };
        for record in records {
            if let Some(document) = self.document(record) {
                delete(&mut writer, &record.id());
                writer.add_document(document)?;
            }
        }
        let back: Vec<RecordId> = revealed.iter().map(Record::id).collect();
        for id in hidden.iter().chain(&back) {
            delete(&mut writer, id);
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
        let index = Self::create(dir, WriterMemory::default())?;
        index.catch_up(store, progress)?;
        Ok(index)
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
    pub fn linking_to(&self, id: &RecordId, limit: usize) -> Result<Vec<RecordId>, SearchError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.links_to, &id.to_hex()),
            IndexRecordOption::Basic,
        );
        let docs = searcher.search(
            &query,
            &TopDocs::with_limit(limit.max(1)).order_by_u64_field("created_at", Order::Asc),
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
