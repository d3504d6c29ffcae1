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
//!
//! Nothing in a search recurses on its input and every input is bounded: `q` is read by a flat
//! scan (at most 500 characters and 16 words), the query is built as objects of a fixed depth,
//! pages are found by a keyset cursor (no offset: a deep page costs what the first does) and
//! every parameter is checked before any work.
//!
//! One file per concern: `schema` (fields and analyzers), `params` (what a search asks, from
//! URL parameters), `words` (reading `q`), `builder` (the query from the words), `cursor` (the
//! page token), `collector` (the keyset collector), `run` (running a search), `facets` (the
//! facet counts' collector), `results` (a page of results and its JSON), `index` (opening and
//! filling the index), `indexer` (the writer thread).

mod builder;
mod collector;
mod cursor;
mod facets;
mod index;
mod indexer;
mod params;
mod results;
mod run;
mod schema;
mod words;

pub use cursor::{CursorError, MAX_CURSOR_CHARS};
pub use index::{SearchIndex, WriterMemory};
pub use indexer::{IndexQueue, start_indexer};
pub use params::{
    FILTER_PARAMS, MAX_LIMIT, ParamError, SEARCH_PARAMS, SearchQuery, check_known, flag, shown,
    town, vocab,
};
pub use results::{Facets, Hit, Results, results_json};
pub use run::Ranking;
pub use schema::record_year;
pub use words::{MAX_QUERY_CHARS, MAX_TERMS, QueryError, Words};

use crate::store::StoreError;
use std::path::PathBuf;

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
    /// The words (`q`) are refused: too long, or too many.
    #[error(transparent)]
    BadQuery(#[from] QueryError),
    /// The cursor is not one this index gave out for this query.
    #[error(transparent)]
    BadCursor(#[from] CursorError),
    #[error(transparent)]
    BadParam(#[from] ParamError),
    #[error("no randomness for the cursors' key: {0}")]
    Random(String),
    #[error("the search index is damaged: {0}")]
    Damaged(String),
}

impl SearchError {
    /// Whether the search's input is at fault (a 400), not the index.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SearchError::BadQuery(_) | SearchError::BadCursor(_) | SearchError::BadParam(_)
        )
    }
}

#[cfg(test)]
mod tests;
