//! `GET /api/v1/catalog.jsonld`: the corpus as a DCAT-AP 3.0 catalogue (`crate::catalog`), on
//! both addresses, for open-data portals to harvest.

use super::{ApiError, ApiState, blocking};
use crate::catalog::{Node, catalog as build};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

/// The catalogue, with links that start with the node's public URL, or else with the `Host`
/// the visitor asked for (when it is a plain host name or address), or else with the address
/// the request came to.
pub(super) async fn catalog(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = match &state.public_url {
        Some(url) => url.to_string(),
        None => format!("http://{}", host(&headers).unwrap_or(&state.api_addr)),
    };
    let (store, cache) = (state.store.clone(), state.catalog.clone());
    let corpus = blocking(move || cache.get(&store))
        .await?
        .map_err(super::internal)?;
    let node = Node {
        base: &base,
        town: state.town.as_deref(),
    };
    let body = serde_json::to_vec(&build(&corpus, &node)).map_err(super::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/ld+json")], body).into_response())
}

/// The request's `Host`, when it is a host name or an address with an optional port: letters,
/// digits, `.`, `-`, `:`, `[`, `]`, at most 255 of them. Anything else is not put in a link.
fn host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plain.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn only_a_plain_host_goes_into_a_link() {
        let with = |h: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(h));
            host(&headers).map(str::to_owned)
        };
        assert_eq!(
            with("cailloux.example.fr").as_deref(),
            Some("cailloux.example.fr")
        );
        assert_eq!(with("127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(with("[::1]:8080").as_deref(), Some("[::1]:8080"));
        for bad in ["evil.example/\"><script>", "a b", "x@y", ""] {
            assert_eq!(with(bad), None, "{bad}");
        }
        assert_eq!(host(&HeaderMap::new()), None);
    }
}
