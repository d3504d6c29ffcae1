//! What a search asks, read from URL parameters (the API's and, through them, the CLI's): each
//! parameter is checked and bounded here, and a bad one is refused with a [`ParamError`] that
//! names it and says what it accepts. Values are echoed back shortened, so a refusal stays
//! short whatever was sent. The API's other endpoints read their parameters with the same
//! helpers ([`check_known`], [`flag`]).

use super::cursor::Cursor;
use super::words::Words;
use cailloux_protocol::publication::MAX_TOWN_CHARS;
use cailloux_protocol::{Kind, Outcome, Theme};
use std::collections::HashMap;

/// What a search asks. An empty `text` lists the matches of the filters, newest first.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// The words (see `search::words` for what they may hold and their bounds).
    pub text: String,
    pub kind: Option<Kind>,
    pub theme: Option<Theme>,
    /// Compared case- and accent-insensitively.
    pub town: Option<String>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub outcome: Option<Outcome>,
    pub limit: usize,
    /// The `next_cursor` of the previous page, exactly as given out: an opaque token.
    pub cursor: Option<String>,
    /// Also count the facets of every match (the page's filters need them; a plain search does
    /// not, and counting costs a pass over every match).
    pub facets: bool,
}

/// The largest page of results.
pub const MAX_LIMIT: usize = 500;

/// The parameters of `/records`.
pub const SEARCH_PARAMS: &[&str] = &[
    "q", "kind", "theme", "town", "since", "until", "outcome", "limit", "cursor", "facets",
];

/// The parameters of `/stats`: the filters.
pub const FILTER_PARAMS: &[&str] = &["kind", "theme", "town", "since", "until", "outcome"];

/// A refused parameter: its name, and a message that starts with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The parameter, as given (shortened when long).
    pub name: String,
    message: String,
}

impl ParamError {
    /// `name: problem`.
    pub fn new(name: &str, problem: impl std::fmt::Display) -> ParamError {
        ParamError {
            name: shown(name),
            message: format!("{}: {problem}", shown(name)),
        }
    }
}

/// A value as a refusal quotes it: at most 40 characters.
pub fn shown(value: &str) -> String {
    const SHOWN: usize = 40;
    match value.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_owned(),
    }
}

/// Refuses a parameter not in `known`, listing them (and the nearest, when one is near).
pub fn check_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ParamError> {
    // The first unknown one in name order, so the answer does not depend on hashing.
    let Some(unknown) = params.keys().filter(|k| !known.contains(&k.as_str())).min() else {
        return Ok(());
    };
    let hint = cailloux_protocol::vocab::nearest(unknown, known.iter().copied())
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let name = shown(unknown);
    Err(ParamError {
        message: format!(
            "`{name}` is not a parameter{hint}; the parameters are: {}",
            known.join(", ")
        ),
        name,
    })
}

/// A parameter's value, trimmed; absent when empty.
fn get<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `true` or `false`; absent when not given.
pub fn flag(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ParamError> {
    match get(params, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ParamError::new(
            name,
            format!("`{}` is not `true` or `false`", shown(other)),
        )),
    }
}

/// A word of one of the vocabularies (`kind`, `theme`, `outcome`); absent when not given.
pub fn vocab<T: cailloux_protocol::vocab::Vocabulary>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ParamError> {
    get(params, name)
        .map(|v| {
            T::from_slug(v).ok_or_else(|| {
                let hint = T::suggest(v)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                ParamError::new(
                    name,
                    format!(
                        "`{}` is not a {}{hint}; valid: {}",
                        shown(v),
                        T::WHAT,
                        T::slugs().join(", ")
                    ),
                )
            })
        })
        .transpose()
}

fn year(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ParamError> {
    get(params, name)
        .map(|v| match v.parse::<u64>() {
            Ok(y) if (1000..=9999).contains(&y) && v.len() == 4 => Ok(y),
            _ => Err(ParamError::new(
                name,
                format!(
                    "`{}` is not a year; write four digits, such as 2019",
                    shown(v)
                ),
            )),
        })
        .transpose()
}

/// `town`: a town's name, at most `MAX_TOWN_CHARS` characters; absent when not given.
pub fn town(params: &HashMap<String, String>) -> Result<Option<String>, ParamError> {
    match get(params, "town") {
        Some(t) if t.chars().nth(MAX_TOWN_CHARS).is_some() => Err(ParamError::new(
            "town",
            format!(
                "`{}` is longer than a town's name (at most {MAX_TOWN_CHARS} characters)",
                shown(t)
            ),
        )),
        t => Ok(t.map(str::to_owned)),
    }
}

impl SearchQuery {
    /// Reads a search from URL parameters (those of [`SEARCH_PARAMS`]); the error names the
    /// parameter and what it accepts.
    pub fn from_params(params: &HashMap<String, String>) -> Result<SearchQuery, ParamError> {
        check_known(params, SEARCH_PARAMS)?;
        let mut query = Self::filters(params)?;
        let text = get(params, "q").unwrap_or("");
        Words::parse(text).map_err(|e| ParamError {
            name: "q".into(),
            message: e.to_string(),
        })?;
        query.text = text.to_owned();
        query.limit = match get(params, "limit") {
            None => 50,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ParamError::new(
                        "limit",
                        format!("`{}` is not a number from 1 to {MAX_LIMIT}", shown(v)),
                    ));
                }
            },
        };
        query.cursor = get(params, "cursor")
            .map(|v| {
                Cursor::check_shape(v)
                    .map(|()| v.to_owned())
                    .map_err(|e| ParamError {
                        name: "cursor".into(),
                        message: e.to_string(),
                    })
            })
            .transpose()?;
        query.facets = flag(params, "facets")?.unwrap_or(false);
        Ok(query)
    }

    /// Reads the filters alone (those of [`FILTER_PARAMS`]), as `/stats` takes them.
    pub fn from_filter_params(params: &HashMap<String, String>) -> Result<SearchQuery, ParamError> {
        check_known(params, FILTER_PARAMS)?;
        Self::filters(params)
    }

    fn filters(params: &HashMap<String, String>) -> Result<SearchQuery, ParamError> {
        let town = town(params)?;
        let query = SearchQuery {
            kind: vocab(params, "kind")?,
            theme: vocab(params, "theme")?,
            town,
            since: year(params, "since")?,
            until: year(params, "until")?,
            outcome: vocab(params, "outcome")?,
            ..SearchQuery::default()
        };
        if let (Some(a), Some(b)) = (query.since, query.until)
            && a > b
        {
            return Err(ParamError::new(
                "since",
                format!("{a} is after until ({b})"),
            ));
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
        if let Some(c) = &self.cursor {
            p.push(("cursor", c.clone()));
        }
        if self.facets {
            p.push(("facets", "true".into()));
        }
        p
    }
}
