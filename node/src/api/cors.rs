//! Cross-origin reads on the public address: `Access-Control-Allow-Origin: *` on every GET and
//! HEAD answer (errors and refusals included, so that a notebook or a web page elsewhere sees
//! why it was refused), and an answer to the browser's preflight for them. Nothing that writes
//! is opened: a preflight for another method, or for `/api/v1/submit`, gets no permission, so a
//! page elsewhere cannot submit in a visitor's browser.
//!
//! The local address sends none of these: it serves the node's status, peers and metrics, which
//! a page on another site the operator happens to visit has no business reading. Tools that are
//! not browsers (curl, DuckDB, pandas) need no CORS at all.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The path that writes; every other path of the public address only reads.
const WRITE_PATH: &str = "/api/v1/submit";

/// The headers a cross-origin script may read beside the simple ones: an export's file name,
/// and when to retry after a refusal.
const EXPOSED: &str = "Content-Disposition, Retry-After";

/// How long a browser may keep a preflight's answer, in seconds (a day).
const PREFLIGHT_MAX_AGE: &str = "86400";

/// The middleware (`axum::middleware::from_fn`), for the public router.
pub(super) async fn public_reads(request: Request, next: Next) -> Response {
    let reads = request.uri().path() != WRITE_PATH;
    let method = request.method().clone();
    if method == Method::OPTIONS
        && reads
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(&request);
    }
    let mut response = next.run(request).await;
    if reads && (method == Method::GET || method == Method::HEAD) {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
    response
}

/// A preflight: GET and HEAD are allowed, with the headers a reader sends; anything else is
/// left out of the answer, which the browser takes as a refusal.
fn preflight(request: &Request) -> Response {
    let asked = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if matches!(asked, "GET" | "HEAD") {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Accept, Accept-Language, Content-Language"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
    }
    response
}
