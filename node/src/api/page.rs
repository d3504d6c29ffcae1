//! The corpus browser (its page, script and style, compiled into the binary), the OpenAPI
//! document and the vocabulary's labels.
//!
//! The script and the style are files of their own under `/assets/`, not inline, so that the
//! Content-Security-Policy can refuse every inline script and style: the page runs only what
//! this binary ships.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The corpus browser: one page, its script and style from this node, nothing from elsewhere.
pub(super) async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../web/index.html"),
    )
        .into_response()
}

/// `/assets/app.js`: everything the page does.
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../web/app.js"),
    )
        .into_response()
}

/// `/assets/app.css`: how the page looks.
pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../web/app.css"),
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

/// The French labels of the closed vocabularies, for the page.
pub(super) async fn vocabulary() -> Json<Value> {
    use cailloux_protocol::{Kind, Outcome, Theme};
    let table = |pairs: Vec<(&str, &str)>| -> Value {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Json(json!({
        "kinds": table(Kind::ALL.iter().map(|k| (k.slug(), k.label_fr())).collect()),
        "themes": table(Theme::ALL.iter().map(|t| (t.slug(), t.label_fr())).collect()),
        "outcomes": table(Outcome::ALL.iter().map(|o| (o.slug(), o.label_fr())).collect()),
    }))
}
