//! `GET /api/v1/export`: the whole corpus as JSONL or CSV, streamed as it is read from the
//! store.

use super::params::Params;
use super::{ApiError, ApiState, bad_request};
use crate::exchange;
use crate::search::{check_known, flag, shown};
use crate::store::Filter;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// What `/export` takes: `format` (`jsonl`, the default, or `csv`), and the switches
/// `include_retracted` and `all_versions` (`true` or `false`).
#[derive(Debug)]
struct ExportQuery {
    csv: bool,
    include_retracted: bool,
    all_versions: bool,
}

const EXPORT_PARAMS: &[&str] = &["format", "include_retracted", "all_versions"];

impl ExportQuery {
    fn from_params(params: &HashMap<String, String>) -> Result<ExportQuery, ApiError> {
        let bad = |e: crate::search::ParamError| bad_request(e.to_string());
        check_known(params, EXPORT_PARAMS).map_err(bad)?;
        let csv = match params.get("format").map(|f| f.trim()) {
            None | Some("") | Some("jsonl") => false,
            Some("csv") => true,
            Some(other) => {
                return Err(bad_request(format!(
                    "format: `{}` is not `jsonl` or `csv`",
                    shown(other)
                )));
            }
        };
        Ok(ExportQuery {
            csv,
            include_retracted: flag(params, "include_retracted")
                .map_err(bad)?
                .unwrap_or(false),
            all_versions: flag(params, "all_versions").map_err(bad)?.unwrap_or(false),
        })
    }
}

/// Streams the export as it is read from the store: memory stays flat whatever its size.
pub(super) async fn export(
    State(state): State<ApiState>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let q = ExportQuery::from_params(&params)?;
    let csv = q.csv;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let store = state.store.clone();
    let filter = Filter {
        include_retracted: q.include_retracted,
        all_versions: q.all_versions,
        ..Filter::default()
    };
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(64 * 1024),
        };
        let result = if csv {
            exchange::export_csv(&store, &filter, &mut out, &mut || {})
        } else {
            exchange::export_jsonl(&store, &filter, &mut out, &mut || {})
        };
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/jsonl"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A blocking `Write` that sends 64 KiB chunks into a channel.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buffer));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        }
        Ok(())
    }
}
