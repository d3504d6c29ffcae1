//! Reading the user's words (`q`) without a query language: a flat scan, one pass, no recursion
//! and no syntax that can fail, so that no text can exhaust the stack or the memory of the node.
//!
//! What `q` may hold:
//! - words: every word must match (in any language's title or text);
//! - `"quoted phrases"`: the words in that order, next to each other; a quote without its
//!   closing partner is a separator;
//! - `-word` and `-"a phrase"`: records holding it are left out.
//!
//! Every other character that a query language would read as syntax (`( ) [ ] { } : ^ ~ + * !
//! \`) separates words, like a space. Inside a word, other punctuation is left to the analyzer,
//! which cuts there too: `saint-aubin` or `l'eau` is then a phrase of two words, as written.
//!
//! Bounds: at most [`MAX_QUERY_CHARS`] characters and [`MAX_TERMS`] words after analysis
//! (each word costs six posting lists, two fields in three languages); beyond them the query is
//! refused with a [`QueryError`] naming `q` and the bound.

use super::schema::folding_analyzer;
use tantivy::tokenizer::TextAnalyzer;

/// The longest `q`, in characters: a long paragraph. A search needs a few words; the bound
/// keeps what one request can cost small (and the refusal happens before any analysis).
pub const MAX_QUERY_CHARS: usize = 500;

/// The most words a query may hold after analysis, phrases and exclusions included.
pub const MAX_TERMS: usize = 16;

/// Why `q` was refused. Its message starts with `q:`, the parameter's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("q: {chars} characters or more; a search takes at most {MAX_QUERY_CHARS} characters")]
    TooLong { chars: usize },
    #[error("q: {terms} words; a search takes at most {MAX_TERMS} words")]
    TooManyTerms { terms: usize },
}

/// One part of `q`: a word, or several to match as a phrase, to require or to exclude.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The text as the user wrote it (without quotes or the leading `-`); analysed later by
    /// each language's analyzer.
    pub text: String,
    /// Records holding it are left out.
    pub exclude: bool,
    /// How many words the analyzers cut it into (at least one).
    pub terms: usize,
}

/// `q`, read: its parts in order. Parts with no word (punctuation only) are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words {
    pub parts: Vec<Part>,
}

impl Words {
    /// Reads `q`. Refuses it beyond [`MAX_QUERY_CHARS`] characters (white space around it not
    /// counted, as the API's parameters reader trims it) or [`MAX_TERMS`] words.
    pub fn parse(q: &str) -> Result<Words, QueryError> {
        let q = q.trim();
        // Counting stops at the bound: a 100 MB `q` costs no more than a 501-character one.
        if q.chars().nth(MAX_QUERY_CHARS).is_some() {
            return Err(QueryError::TooLong {
                chars: MAX_QUERY_CHARS + 1,
            });
        }
        let mut analyzer = folding_analyzer();
        let mut parts = Vec::new();
        let mut terms = 0;
        for (text, exclude) in split(q) {
            let n = count_terms(&mut analyzer, &text);
            if n == 0 {
                continue;
            }
            terms += n;
            if terms > MAX_TERMS {
                // Go on counting (within 500 characters) so the message says how many.
                continue;
            }
            parts.push(Part {
                text,
                exclude,
                terms: n,
            });
        }
        if terms > MAX_TERMS {
            return Err(QueryError::TooManyTerms { terms });
        }
        Ok(Words { parts })
    }

    /// No word to require: the filters alone list the records (the exclusions still apply).
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.exclude)
    }

    /// How many words, phrases and exclusions included.
    pub fn terms(&self) -> usize {
        self.parts.iter().map(|p| p.terms).sum()
    }
}

/// The characters that separate words as a space does (a query language's syntax).
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | '[' | ']' | '{' | '}' | ':' | '^' | '~' | '+' | '*' | '!' | '\\'
        )
}

/// Cuts `q` into its parts, each with whether it is excluded. One pass over the characters.
fn split(q: &str) -> Vec<(String, bool)> {
    // Quotes pair up from the left; an odd last one pairs with nothing and separates.
    let quotes = q.matches('"').count();
    let mut paired = quotes - quotes % 2;
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut exclude = false;
    let mut in_phrase = false;
    let mut at_start = true;
    let flush = |current: &mut String, exclude: &mut bool, parts: &mut Vec<(String, bool)>| {
        if !current.is_empty() {
            parts.push((std::mem::take(current), *exclude));
        }
        *exclude = false;
    };
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' && (in_phrase || paired > 0) {
            if in_phrase {
                paired -= 2;
                flush(&mut current, &mut exclude, &mut parts);
                in_phrase = false;
                at_start = true;
            } else {
                // A phrase starts: what came before it is a part of its own (keeping a `-`
                // written right before the quote).
                let excluded = exclude && current.is_empty();
                flush(&mut current, &mut exclude, &mut parts);
                exclude = excluded;
                in_phrase = true;
            }
            continue;
        }
        if in_phrase {
            current.push(c);
            continue;
        }
        if c == '"' || is_separator(c) {
            flush(&mut current, &mut exclude, &mut parts);
            at_start = true;
            continue;
        }
        if c == '-' && at_start {
            // A `-` right before a word or a quote excludes it; before nothing it separates.
            exclude = chars
                .peek()
                .is_some_and(|&n| n == '"' || !(n == '-' || is_separator(n)));
            continue;
        }
        at_start = false;
        current.push(c);
    }
    flush(&mut current, &mut exclude, &mut parts);
    parts
}

/// How many terms the analyzers cut `text` into. Every language's analyzer cuts words alike
/// (they differ only in stemming, which keeps each word), so the folding one counts for all.
fn count_terms(analyzer: &mut TextAnalyzer, text: &str) -> usize {
    let mut stream = analyzer.token_stream(text);
    let mut n = 0;
    while stream.advance() {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(q: &str) -> Vec<(String, bool)> {
        Words::parse(q)
            .unwrap_or_else(|e| panic!("{e}"))
            .parts
            .into_iter()
            .map(|p| (p.text, p.exclude))
            .collect()
    }

    fn plain(words: &[&str]) -> Vec<(String, bool)> {
        words.iter().map(|w| ((*w).to_owned(), false)).collect()
    }

    /// The API's parameters reader trims `q` before reading it: the bound counts what is
    /// left, here too (a fuzzer found the two disagreeing on a query padded with tabs).
    #[test]
    fn white_space_around_a_query_does_not_count_against_its_bound() {
        let padded = format!("{}jardin{}", "\t".repeat(300), "\t".repeat(300));
        assert!(Words::parse(&padded).is_ok());
        let params = std::collections::HashMap::from([("q".to_owned(), padded)]);
        assert!(crate::search::SearchQuery::from_params(&params).is_ok());
        let long = format!(" {} ", "a".repeat(MAX_QUERY_CHARS + 1));
        assert!(Words::parse(&long).is_err());
    }

    #[test]
    fn syntax_characters_separate_words() {
        assert_eq!(parts("jardin partagé"), plain(&["jardin", "partagé"]));
        assert_eq!(parts("((jardin))"), plain(&["jardin"]));
        assert_eq!(parts("title:jardin^3~"), plain(&["title", "jardin", "3"]));
        assert_eq!(parts("[a TO z]"), plain(&["a", "TO", "z"]));
        assert_eq!(parts("+jardin* !x \\y"), plain(&["jardin", "x", "y"]));
        assert_eq!(parts("saint-aubin l'eau"), plain(&["saint-aubin", "l'eau"]));
        assert!(parts("()[]{}:^~+*!\\ - -- \"").is_empty());
    }

    #[test]
    fn quotes_make_phrases_and_a_dash_excludes() {
        assert_eq!(
            parts("\"jardin partagé\" bois"),
            plain(&["jardin partagé", "bois"])
        );
        assert_eq!(
            parts("jardin -bois -\"forêt nourricière\""),
            vec![
                ("jardin".to_owned(), false),
                ("bois".to_owned(), true),
                ("forêt nourricière".to_owned(), true)
            ]
        );
        // An unpaired quote separates; pairs are taken from the left.
        assert_eq!(parts("\"jardin partagé"), plain(&["jardin", "partagé"]));
        assert_eq!(parts("\"a b\" \"c d"), plain(&["a b", "c", "d"]));
        assert_eq!(parts("x-y -"), plain(&["x-y"]));
        assert_eq!(parts("--bois"), vec![("bois".to_owned(), true)]);
    }

    #[test]
    fn the_bounds_are_counted_in_characters_and_in_words() {
        assert!(Words::parse(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
        assert_eq!(
            Words::parse(&"é".repeat(MAX_QUERY_CHARS + 1)),
            Err(QueryError::TooLong {
                chars: MAX_QUERY_CHARS + 1
            })
        );
        assert!(Words::parse(&vec!["mot"; MAX_TERMS].join(" ")).is_ok());
        assert_eq!(
            Words::parse(&vec!["mot"; 20].join(" ")),
            Err(QueryError::TooManyTerms { terms: 20 })
        );
        // A phrase counts its words; punctuation counts nothing.
        assert_eq!(
            Words::parse("\"a b c\" -d (((e)))").map(|w| w.terms()),
            Ok(5)
        );
    }
}
