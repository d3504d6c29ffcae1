//! Reading an endpoint's query string and path: every refusal is the API's JSON 400 that names
//! the parameter (never axum's plain-text rejection), a parameter given twice is refused, and
//! a refusal quotes at most a short piece of what was sent.

use super::{ApiError, bad_request};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cailloux_protocol::IdPrefix;
use std::collections::HashMap;

/// The query string's parameters, each given once. Invalid UTF-8 in a value reads as U+FFFD,
/// which the parameter's own check then refuses or matches as text.
#[derive(Debug)]
pub(super) struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Params, ApiError> {
        parse(parts.uri.query().unwrap_or(""))
    }
}

fn parse(query: &str) -> Result<Params, ApiError> {
    let mut params = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if params.contains_key(key.as_ref()) {
            return Err(bad_request(format!(
                "{}: given twice; give each parameter once",
                crate::search::shown(&key)
            )));
        }
        params.insert(key.into_owned(), value.into_owned());
    }
    Ok(Params(params))
}

/// A record id or unique prefix from the path, refused shortly whatever its length.
pub(super) fn id_prefix(id: &str) -> Result<IdPrefix, ApiError> {
    // Longer than any id (64 hex digits): refused without quoting it.
    if id.len() > 64 {
        return Err(bad_request(format!(
            "id: {} characters; an id or id prefix has 8 to 64 hexadecimal characters",
            id.chars().count()
        )));
    }
    IdPrefix::parse(id).map_err(|e| bad_request(format!("id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_once_each() {
        let Params(p) =
            parse("q=jardin+partag%C3%A9&limit=5&empty=").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p["q"], "jardin partagé");
        assert_eq!(p["limit"], "5");
        assert_eq!(p["empty"], "");
        let twice = parse("q=a&q=b").err().map(|e| e.1);
        assert!(twice.is_some_and(|m| m.starts_with("q: given twice")));
        // Bytes that are not UTF-8 read as replacement characters, never a failure.
        let Params(p) = parse("q=%FF%FE").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p["q"], "\u{fffd}\u{fffd}");
    }

    #[test]
    fn a_long_id_is_refused_without_being_quoted() {
        let e = id_prefix(&"a".repeat(10_240))
            .err()
            .map(|e| e.1)
            .unwrap_or_default();
        assert!(e.starts_with("id: 10240 characters"), "{e}");
        assert!(e.len() < 200);
    }
}
