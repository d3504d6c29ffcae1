//! Running a search: the filters and the words become one query (`builder`), the keyset
//! collector picks the page after the cursor (`collector`), the cursor of the next page is
//! made (`cursor`), and the hits are read back from the store with their snippets.
//!
//! A word search scores with BM25 statistics (document counts) frozen at its first page and
//! carried by its cursor: new records change the live statistics, hence every score, and a
//! keyset over scores that move would repeat or skip records.

use super::builder::{Builder, TextQuery};
use super::collector::Keyset;
use super::cursor::{Cursor, CursorError, Order, Stats};
use super::facets::FacetCollector;
use super::results::html_escape;
use super::schema::Lang;
use super::words::Words;
use super::{Facets, Hit, Results, SearchError, SearchIndex, SearchQuery};
use crate::store::Store;
use cailloux_protocol::RecordId;
use cailloux_protocol::vocab::fold;
use std::ops::Bound;
use tantivy::collector::Count;
use tantivy::query::{Bm25StatisticsProvider, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Searcher, Term};

/// Snippets are cut from the summary, else from this many first characters of the body.
const BODY_SNIPPET_CHARS: usize = 500;

/// A page of a search before the store is read: what the index alone decides.
#[derive(Clone, Debug)]
pub struct Ranking {
    /// The page's records, best first, with their scores (0 for a listing).
    pub hits: Vec<(RecordId, f32)>,
    /// The token of the next page, if another follows.
    pub next_cursor: Option<String>,
    /// How many records match in all, exactly.
    pub total: usize,
    pub facets: Facets,
    /// The most documents the ranking held at once in one segment: at most a page and one,
    /// however deep the page.
    pub held: usize,
}

/// The statistics a word search scores with: those of its first page, from its cursor.
struct Frozen<'a> {
    searcher: &'a Searcher,
    fields: [Field; 6],
    terms: &'a [Term],
    stats: &'a Stats,
}

impl Bm25StatisticsProvider for Frozen<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        match self
            .fields
            .iter()
            .position(|f| *f == field)
            .and_then(|i| self.stats.tokens.get(i))
        {
            Some(&n) => Ok(n),
            None => self.searcher.total_num_tokens(field),
        }
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.stats.num_docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let n = match self
            .terms
            .binary_search(term)
            .ok()
            .and_then(|i| self.stats.doc_freqs.get(i))
        {
            Some(&n) => n,
            None => self.searcher.doc_freq(term)?,
        };
        // BM25 asserts that no term is in more documents than the index holds.
        Ok(n.min(self.stats.num_docs))
    }
}

impl SearchIndex {
    pub(super) fn text_fields(&self) -> [Field; 6] {
        let t = &self.fields.text;
        [
            t[0].title, t[0].text, t[1].title, t[1].text, t[2].title, t[2].text,
        ]
    }

    pub(super) fn filters(&self, q: &SearchQuery) -> Vec<(Occur, Box<dyn Query>)> {
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

    /// The statistics of `terms` in the index as it is now.
    fn live_stats(&self, searcher: &Searcher, terms: &[Term]) -> Result<Stats, SearchError> {
        Ok(Stats {
            num_docs: searcher.total_num_docs()?.max(1),
            tokens: self
                .text_fields()
                .iter()
                .map(|f| searcher.total_num_tokens(*f))
                .collect::<Result<_, _>>()?,
            doc_freqs: terms
                .iter()
                .map(|t| searcher.doc_freq(t))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Ranks a page: what the index decides, without reading the store. Refuses bad words
    /// ([`SearchError::BadQuery`]) and a cursor that is not this index's for this query
    /// ([`SearchError::BadCursor`]).
    pub fn rank(&self, q: &SearchQuery) -> Result<Ranking, SearchError> {
        self.run(q).map(|(ranking, _, _)| ranking)
    }

    fn run(&self, q: &SearchQuery) -> Result<(Ranking, TextQuery, Searcher), SearchError> {
        if let (Some(a), Some(b)) = (q.since, q.until)
            && a > b
        {
            return Err(
                super::ParamError::new("since", format!("{a} is after until ({b})")).into(),
            );
        }
        let words = Words::parse(&q.text)?;
        let text = self.builder.text_query(&words)?;
        let order = if text.score.is_some() {
            Order::Score
        } else {
            Order::Newest
        };
        let fingerprint = fingerprint(q, &words, order);
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c, &self.secret, &fingerprint))
            .transpose()?;
        let searcher = self.reader.searcher();
        let stats = match (order, cursor.as_ref().and_then(|c| c.stats.clone())) {
            (Order::Newest, _) => None,
            (Order::Score, Some(stats)) => Some(stats),
            (Order::Score, None) if cursor.is_some() => return Err(CursorError::Malformed.into()),
            (Order::Score, None) => Some(self.live_stats(&searcher, &text.scored_terms)?),
        };
        if let Some(s) = &stats
            && (s.tokens.len() != 6 || s.doc_freqs.len() != text.scored_terms.len())
        {
            return Err(CursorError::OtherQuery.into());
        }
        let query = Builder::combine(self.filters(q), &text);
        let limit = q.limit.max(1);
        // One more than the page, to know whether another page follows.
        let keyset = Keyset {
            limit: limit + 1,
            after: cursor.map(|c| c.key),
            scored: order == Order::Score,
        };
        // The total is always counted (a count of matching documents, no scoring): exact and
        // cheap. Facets are counted only on request.
        let collectors = (keyset, Count, q.facets.then_some(FacetCollector));
        let (page, total, facets) = match &stats {
            Some(stats) => {
                let frozen = Frozen {
                    searcher: &searcher,
                    fields: self.text_fields(),
                    terms: &text.scored_terms,
                    stats,
                };
                searcher.search_with_statistics_provider(query.as_ref(), &collectors, &frozen)?
            }
            None => searcher.search(query.as_ref(), &collectors)?,
        };
        let mut ranked = page.ranked;
        let more = ranked.len() > limit;
        ranked.truncate(limit);
        let next_cursor = match ranked.last() {
            Some((key, _)) if more => Some(
                Cursor {
                    order,
                    query: fingerprint,
                    key: *key,
                    stats,
                }
                .encode(&self.secret),
            ),
            _ => None,
        };
        let facets = facets.unwrap_or_default();
        let ranking = Ranking {
            hits: ranked
                .iter()
                .map(|(key, _)| (RecordId(key.id), key.score))
                .collect(),
            next_cursor,
            total,
            facets,
            held: page.held,
        };
        Ok((ranking, text, searcher))
    }

    /// Searches. Best first when there are words; newest first when there are none.
    /// The records come from `store`, which also gives the text that snippets are cut from.
    pub fn search(&self, q: &SearchQuery, store: &Store) -> Result<Results, SearchError> {
        let (ranking, text, searcher) = self.run(q)?;
        // Snippets come from the summary when the words are there (it is short, so cheap to
        // analyse), else from the body.
        let generator = |field: Field| -> Option<SnippetGenerator> {
            let q = text.score.as_ref()?;
            let mut g = SnippetGenerator::create(&searcher, q.as_ref(), field).ok()?;
            g.set_max_num_chars(180);
            Some(g)
        };
        // One generator per language, made when a hit of that language needs it.
        let mut generators: [Option<Option<SnippetGenerator>>; 3] = [None, None, None];
        let mut hits = Vec::with_capacity(ranking.hits.len());
        for &(id, score) in &ranking.hits {
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
            total: ranking.total,
            hits,
            more: ranking.next_cursor.is_some(),
            next_cursor: ranking.next_cursor,
            facets: ranking.facets,
            held: ranking.held,
        })
    }
}

/// What a cursor is bound to: the order, the words as read and the filters (not the page
/// size, which may change from page to page).
fn fingerprint(q: &SearchQuery, words: &Words, order: Order) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(b"cailloux/search-cursor/v1\0");
    h.update(&[order as u8]);
    let mut text = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for part in &words.parts {
        text(if part.exclude { "-" } else { "+" });
        text(&part.text);
    }
    text("|");
    text(q.kind.map_or("", |k| k.slug()));
    text(q.theme.map_or("", |t| t.slug()));
    text(&q.town.as_deref().map(fold).unwrap_or_default());
    text(&q.since.map(|y| y.to_string()).unwrap_or_default());
    text(&q.until.map(|y| y.to_string()).unwrap_or_default());
    text(q.outcome.map_or("", |o| o.slug()));
    let hash = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.as_bytes()[..16]);
    out
}
