//! What the local address alone serves about the node itself: its status, its peers, and the
//! Prometheus metrics.

use super::{ApiError, ApiState, internal, unavailable};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cailloux_protocol::trust::Mode;
use serde_json::{Value, json};

pub(super) async fn status(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let net = state.client.status().await.map_err(|_| unavailable())?;
    let records = state.index.len();
    Ok(Json(json!({
        "peer_id": net.peer_id,
        "public_key": cailloux_protocol::id::encode_hex(state.key.verifying_key().as_bytes()),
        "town": state.town,
        "listen_addrs": net.listen_addrs,
        "api": state.api_addr,
        "records": records,
        "federation": match state.store.mode() {
            Mode::Open => Value::Null,
            Mode::Federation(key) => json!(key.to_hex()),
        },
        "peers": net.peers,
        "gossip_peers": net.gossip_peers,
        "banned_peers": net.banned_peers,
        "reachability": net.reachability,
        "external_addrs": net.external_addrs,
        "relays": net.relays,
        "relay_service": net.relay_service,
        "blobs": state.blobs.usage(),
    })))
}

pub(super) async fn peers(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let peers = state.client.peers().await.map_err(|_| unavailable())?;
    Ok(Json(json!(peers)))
}

pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry).map_err(internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
