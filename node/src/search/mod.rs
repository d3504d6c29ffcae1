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
//! One file per concern: `schema` (fields and analyzers), `params` (what a search asks, from
//! URL parameters), `index` (the index and running a search), `facets` (the facet counts'
//! collector), `results` (a page of results and its JSON), `indexer` (the writer thread).

mod facets;
mod index;
mod indexer;
mod params;
mod results;
mod schema;

pub use index::SearchIndex;
pub use indexer::start_indexer;
pub use params::{MAX_LIMIT, SearchQuery};
pub use results::{Facets, Hit, Results, results_json};
pub use schema::record_year;

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
    #[error("{0}")]
    BadQuery(String),
    #[error("the search index is damaged: {0}")]
    Damaged(String),
}
