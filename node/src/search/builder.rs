//! Building the tantivy query from the user's words ([`Words`]), directly as `TermQuery`,
//! `PhraseQuery` and `BooleanQuery` objects: no query language is parsed, so nothing recurses
//! on the input and the query's shape is fixed (three levels, whatever `q` holds).
//!
//! Each part of `q` is analysed by every language's analyzer and may match in any language's
//! title (weighing three times) or text. The query has two halves:
//! - what must match: every required part, the filters, none of the excluded parts; these
//!   clauses score zero, so that filters never move the ranking;
//! - what scores: one union of the required parts, summed in the order they were written.
//!
//! The split keeps scores reproducible to the bit: tantivy orders the clauses of an
//! intersection by their cost, which changes as segments are merged, and float addition in
//! another order can differ in its last bit; a union adds in its clauses' order. The keyset
//! cursor compares scores exactly, so a record's score must not move between two pages.

use super::schema::{Fields, Lang};
use super::words::{MAX_TERMS, QueryError, Words};
use std::collections::BTreeSet;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, QueryClone,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{Score, Term};

/// A title match weighs this many times a text match.
const TITLE_BOOST: Score = 3.0;

/// The query of some words, ready to be combined with the filters.
pub(super) struct TextQuery {
    /// What must match (scoring zero): the required parts, and the excluded ones as
    /// `MustNot`.
    pub must: Vec<(Occur, Box<dyn Query>)>,
    /// What scores: the union of the required parts; `None` when there is none (the filters
    /// alone then list the records, newest first).
    pub score: Option<Box<dyn Query>>,
    /// The terms whose statistics the score uses, sorted and without repeats: a cursor
    /// carries their document frequencies, so that the next page scores as this one did.
    pub scored_terms: Vec<Term>,
}

/// Builds queries against an index's fields and analyzers.
#[derive(Clone)]
pub(super) struct Builder {
    fields: Fields,
    tokenizers: TokenizerManager,
}

impl Builder {
    pub fn new(fields: Fields, tokenizers: TokenizerManager) -> Builder {
        Builder { fields, tokenizers }
    }

    /// The query of `words`. Refuses more than [`MAX_TERMS`] terms in any one language (the
    /// words were counted when read; this holds whatever the analyzers do).
    pub fn text_query(&self, words: &Words) -> Result<TextQuery, QueryError> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut scoring: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut scored_terms = BTreeSet::new();
        let mut terms_per_lang = [0usize; 3];
        for part in &words.parts {
            let mut fields: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (i, lang) in Lang::ALL.iter().enumerate() {
                let Some(mut analyzer) = self.tokenizers.get(lang.analyzer()) else {
                    continue;
                };
                let mut tokens: Vec<(usize, String)> = Vec::new();
                let mut stream = analyzer.token_stream(&part.text);
                while stream.advance() {
                    let token = stream.token();
                    tokens.push((token.position, token.text.clone()));
                }
                terms_per_lang[i] += tokens.len();
                if terms_per_lang[i] > MAX_TERMS {
                    return Err(QueryError::TooManyTerms {
                        terms: terms_per_lang[i],
                    });
                }
                let text = self.fields.text[i];
                for (field, boost) in [(text.title, TITLE_BOOST), (text.text, 1.0)] {
                    let query = if part.exclude {
                        all_words_query(field, &tokens)
                    } else {
                        words_query(field, &tokens)
                    };
                    let Some(query) = query else {
                        continue;
                    };
                    if !part.exclude {
                        scored_terms.extend(tokens.iter().map(|(_, t)| term(field, t)));
                    }
                    let query: Box<dyn Query> = if boost == 1.0 {
                        query
                    } else {
                        Box::new(BoostQuery::new(query, boost))
                    };
                    fields.push((Occur::Should, query));
                }
            }
            if fields.is_empty() {
                continue;
            }
            let any_field: Box<dyn Query> = Box::new(BooleanQuery::new(fields));
            if part.exclude {
                must.push((Occur::MustNot, any_field));
            } else {
                must.push((Occur::Must, zero(any_field.box_clone())));
                scoring.push((Occur::Should, any_field));
            }
        }
        Ok(TextQuery {
            must,
            score: (!scoring.is_empty())
                .then(|| Box::new(BooleanQuery::new(scoring)) as Box<dyn Query>),
            scored_terms: scored_terms.into_iter().collect(),
        })
    }

    /// The whole query: the filters and the words' required and excluded parts must match;
    /// the words' union scores.
    pub fn combine(filters: Vec<(Occur, Box<dyn Query>)>, text: &TextQuery) -> Box<dyn Query> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = filters
            .into_iter()
            .map(|(occur, q)| (occur, zero(q)))
            .collect();
        must.extend(text.must.iter().map(|(o, q)| (*o, q.box_clone())));
        if !must.iter().any(|(o, _)| *o == Occur::Must) {
            // Only exclusions, or nothing: everything but them.
            must.push((Occur::Must, zero(Box::new(AllQuery))));
        }
        match &text.score {
            None => Box::new(BooleanQuery::new(must)),
            Some(score) => Box::new(BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(must)) as Box<dyn Query>,
                ),
                (Occur::Should, score.box_clone()),
            ])),
        }
    }
}

/// A clause that filters and scores zero.
fn zero(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

fn term(field: Field, text: &str) -> Term {
    Term::from_field_text(field, text)
}

/// One word's term query, or several words' phrase query, in `field`.
fn words_query(field: Field, tokens: &[(usize, String)]) -> Option<Box<dyn Query>> {
    match tokens {
        [] => None,
        [(_, word)] => Some(Box::new(TermQuery::new(
            term(field, word),
            IndexRecordOption::WithFreqs,
        ))),
        _ => Some(Box::new(PhraseQuery::new_with_offset(
            tokens.iter().map(|(p, t)| (*p, term(field, t))).collect(),
        ))),
    }
}

/// What an excluded part leaves out in `field`: the records holding every one of its words.
/// Not a phrase: tantivy 0.27's exclusion seeks a phrase scorer backwards once the phrase's
/// words have run out (a debug assertion fails in `PhraseScorer::seek_danger`; the fuzz target
/// found it with `-"a a"` and `jardin -"jardin partagé"`), so no `PhraseQuery` goes under
/// `MustNot`.
fn all_words_query(field: Field, tokens: &[(usize, String)]) -> Option<Box<dyn Query>> {
    let words: BTreeSet<&str> = tokens.iter().map(|(_, t)| t.as_str()).collect();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = words
        .into_iter()
        .map(|word| {
            let query: Box<dyn Query> =
                Box::new(TermQuery::new(term(field, word), IndexRecordOption::Basic));
            (Occur::Must, query)
        })
        .collect();
    match clauses.len() {
        0 => None,
        1 => clauses.pop().map(|(_, q)| q),
        _ => Some(Box::new(BooleanQuery::new(clauses))),
    }
}
