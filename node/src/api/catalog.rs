//! `GET /api/v1/catalog.jsonld`: the corpus as a DCAT-AP 3.0 catalogue (`crate::catalog`), on
//! both addresses, for open-data portals to harvest.

use super::{ApiError, ApiState, bad_request, blocking};
use crate::catalog::Node;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cailloux_protocol::trust::Mode;

/// The catalogue, with links that start with the node's public URL, or else with the `Host`
/// the visitor asked for (over plain `http`; the answer then varies by `Host`). Without either,
/// a 400 says what is missing: a catalogue's links must be absolute.
pub(super) async fn catalog(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = match (&state.public_url, host(&headers)) {
        (Some(url), _) => url.to_string(),
        (None, Some(host)) => format!("http://{host}"),
        (None, None) => {
            return Err(bad_request(
                "Host: the catalogue's links need the address this node is reached at: send a Host header (a host name or address, with an optional port), or set public_url in the node's config.toml",
            ));
        }
    };
    let vary = state.public_url.is_none();
    let federated = matches!(state.store.mode(), Mode::Federation(_));
    let (store, cache, town) = (
        state.store.clone(),
        state.catalog.clone(),
        state.town.clone(),
    );
    let bytes = blocking(move || {
        let node = Node {
            base: &base,
            town: town.as_deref(),
            federated,
        };
        cache.catalog(&store, &node)
    })
    .await?
    .map_err(super::internal)?;
    let mut response = (
        [(header::CONTENT_TYPE, "application/ld+json")],
        Body::from(Bytes::from_owner(bytes)),
    )
        .into_response();
    if vary {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Host"));
    }
    Ok(response)
}

/// The request's `Host`, when it is a host name or an address with an optional port: letters,
/// digits, `.`, `-`, `_`, `:`, `[`, `]`, at most 255 of them. Anything else is not put in a link.
fn host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
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
        assert_eq!(
            with("cailloux_node:8080").as_deref(),
            Some("cailloux_node:8080")
        );
        for bad in ["evil.example/\"><script>", "a b", "x@y", ""] {
            assert_eq!(with(bad), None, "{bad}");
        }
        assert_eq!(host(&HeaderMap::new()), None);
    }
}
