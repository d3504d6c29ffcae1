//! The index's schema and analyzers: which fields a record becomes, and how each language's
//! text is cut into words (lower-casing and accent folding before stemming, so that a word
//! written with or without accents, singular or plural, meets the same term). The query builder
//! analyses the user's words with these same analyzers.

use cailloux_protocol::Record;
use cailloux_protocol::time::year_of_millis;
use tantivy::Index;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer,
};

/// The languages with an analyzer of their own; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lang {
    Fr,
    En,
    Other,
}

impl Lang {
    pub(super) const ALL: [Lang; 3] = [Lang::Fr, Lang::En, Lang::Other];

    pub(super) fn of(tag: &str) -> Lang {
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

    pub(super) fn analyzer(self) -> &'static str {
        match self {
            Lang::Fr => "cailloux_fr",
            Lang::En => "cailloux_en",
            Lang::Other => "cailloux_folded",
        }
    }

    pub(super) fn suffix(self) -> &'static str {
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
pub(super) struct TextFields {
    pub(super) title: Field,
    pub(super) text: Field,
}

#[derive(Clone, Debug)]
pub(super) struct Fields {
    pub(super) id: Field,
    pub(super) kind: Field,
    pub(super) themes: Field,
    pub(super) town: Field,
    pub(super) town_key: Field,
    pub(super) year: Field,
    pub(super) outcome: Field,
    pub(super) created_at: Field,
    pub(super) links_to: Field,
    pub(super) text: [TextFields; 3],
}

pub(super) fn schema() -> (Schema, Fields) {
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

/// A language's analyzer: words cut at anything that is not a letter or a digit, words of 40
/// bytes or more dropped, lower-cased, accents folded, then stemmed when a stemmer is given.
fn analyzer(stemmer: Option<Language>) -> TextAnalyzer {
    let base = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter);
    match stemmer {
        Some(lang) => base.filter(Stemmer::new(lang)).build(),
        None => base.build(),
    }
}

/// The analyzer of languages without a stemmer (it cuts words as all the others do).
pub(super) fn folding_analyzer() -> TextAnalyzer {
    analyzer(None)
}

pub(super) fn register_analyzers(index: &Index) {
    let tokenizers = index.tokenizers();
    tokenizers.register(Lang::Fr.analyzer(), analyzer(Some(Language::French)));
    tokenizers.register(Lang::En.analyzer(), analyzer(Some(Language::English)));
    tokenizers.register(Lang::Other.analyzer(), folding_analyzer());
}

/// The year a record is filed under: the start of its period, else its creation.
pub fn record_year(record: &Record) -> u64 {
    match record.publication().and_then(|p| p.period.as_ref()) {
        Some(period) => u64::from(period.start.year),
        None => year_of_millis(record.created_at()).max(0) as u64,
    }
}
