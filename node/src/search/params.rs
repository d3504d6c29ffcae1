//! What a search asks, read from URL parameters (the API's and, through them, the CLI's): each
//! parameter is checked and bounded here, and a bad one is refused with a message that names
//! it and says what it accepts.

use cailloux_protocol::{Kind, Outcome, Theme};

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
