//! `GET /api/v1/export`: the whole corpus as JSONL or CSV, streamed in steps as the visitor
//! reads it.
//!
//! Each step is a short blocking call (`exchange::ExportSteps`) that reads the next records
//! after the last one sent and serialises about `STEP_BYTES` of them, then returns: the body
//! stream asks for the next step only when the connection has taken the previous one. An
//! export in progress therefore holds no thread between steps, and one whose visitor stops
//! reading holds one step's bytes until the connection's idle timeout closes it.
//!
//! Exports are bounded at once, in all and per client address (`ExportLimits`), for their
//! whole life: the permit is taken before the answer starts and moves into the body stream,
//! which gives it back when the export ends or when the stream is dropped with its connection.
//! Beyond a bound the answer is 429 (this address holds its share) or 503 (all are taken), with
//! a JSON error naming the bound and `Retry-After`.

use super::params::Params;
use super::{ApiError, ApiState, bad_request};
use crate::exchange::{ExportFormat, ExportSteps, Table};
use crate::http::ClientAddr;
use crate::http::admission::refusal;
use crate::http::permits::{AddressLimit, Full, Permit};
use crate::search::{check_known, flag, shown, town, vocab};
use crate::store::{Filter, Store};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// About this much of the export per step: what a stalled export holds (and what hyper holds
/// of it before waiting for the socket), and per step a few milliseconds of a blocking thread.
pub const STEP_BYTES: usize = 64 * 1024;

/// Exports at once, in all and per client address, on one address.
#[derive(Clone, Copy, Debug)]
pub struct ExportLimits {
    pub total: usize,
    pub per_address: usize,
}

impl ExportLimits {
    /// A fresh set of permits for one router.
    pub(super) fn permits(self) -> Arc<AddressLimit> {
        AddressLimit::new(self.total, self.per_address)
    }
}

/// The public address: an export reads and serialises the whole store, so a handful at once is
/// what the disk and two cores can stream without starving everything else; two per address
/// lets one researcher fetch JSONL and CSV together, and leaves the rest to others.
pub const PUBLIC_EXPORTS: ExportLimits = ExportLimits {
    total: 8,
    per_address: 2,
};

/// The local address: the town's own commands (`export`, a search's read of the export) and
/// scripts, all from one address.
pub const LOCAL_EXPORTS: ExportLimits = ExportLimits {
    total: 4,
    per_address: 4,
};

/// What `/export` takes: `format` (`jsonl`, the default, or `csv`), `table` (CSV only:
/// `records`, the default, `indicators` or `links`), the filters `kind`, `theme` and `town`
/// (as a search takes them), and the switches `include_retracted` and `all_versions` (`true`
/// or `false`).
#[derive(Debug)]
struct ExportQuery {
    format: ExportFormat,
    filter: Filter,
}

const EXPORT_PARAMS: &[&str] = &[
    "format",
    "table",
    "kind",
    "theme",
    "town",
    "include_retracted",
    "all_versions",
];

impl ExportQuery {
    fn from_params(params: &HashMap<String, String>) -> Result<ExportQuery, ApiError> {
        let bad = |e: crate::search::ParamError| bad_request(e.to_string());
        check_known(params, EXPORT_PARAMS).map_err(bad)?;
        let table = match params.get("table").map(|t| t.trim()) {
            None | Some("") => None,
            Some(word) => Some(Table::parse(word).ok_or_else(|| {
                bad_request(format!(
                    "table: `{}` is not `records`, `indicators` or `links`",
                    shown(word)
                ))
            })?),
        };
        let format = match (params.get("format").map(|f| f.trim()), table) {
            (None | Some("") | Some("jsonl"), None) => ExportFormat::Jsonl,
            (Some("csv"), table) => ExportFormat::Csv(table.unwrap_or_default()),
            (None | Some("") | Some("jsonl"), Some(_)) => {
                return Err(bad_request(
                    "table: only a CSV export has tables (add `format=csv`); a JSONL line holds the whole record",
                ));
            }
            (Some(other), _) => {
                return Err(bad_request(format!(
                    "format: `{}` is not `jsonl` or `csv`",
                    shown(other)
                )));
            }
        };
        let filter = Filter {
            kind: vocab(params, "kind").map_err(bad)?,
            theme: vocab(params, "theme").map_err(bad)?,
            town: town(params).map_err(bad)?,
            author: None,
            include_retracted: flag(params, "include_retracted")
                .map_err(bad)?
                .unwrap_or(false),
            all_versions: flag(params, "all_versions").map_err(bad)?.unwrap_or(false),
        };
        Ok(ExportQuery { format, filter })
    }
}

/// Streams the export in steps, holding an export permit until it ends.
pub(super) async fn export(
    State(state): State<ApiState>,
    Extension(permits): Extension<Arc<AddressLimit>>,
    client: Option<Extension<ClientAddr>>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let q = ExportQuery::from_params(&params)?;
    let format = q.format;
    // Outside `http::serve` (in-process callers) there is no client address: they share one.
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
    let permit = match permits.try_acquire(ip) {
        Ok(permit) => permit,
        Err(Full::PerAddress) => {
            state.metrics.http_refuse("exports_per_address");
            return Ok(refusal(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many exports from your address: at most {} at once; retry when one has ended",
                    permits.per_address()
                ),
            ));
        }
        Err(Full::Total) => {
            state.metrics.http_refuse("exports");
            return Ok(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many exports in progress: at most {} at once on this address; retry in a moment",
                    permits.total()
                ),
            ));
        }
    };
    let filter = q.filter;
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    let export = Export {
        steps: ExportSteps::new(format, filter),
        store: state.store.clone(),
        _permit: permit,
    };
    let stream = futures::stream::try_unfold(export, next_step);
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// An export in progress: where it is, and the permit it holds until it is dropped.
struct Export {
    steps: ExportSteps,
    store: Store,
    _permit: Permit,
}

/// Runs steps on a blocking thread, one short call each, until one has bytes (a step of a
/// filtered export may have none) or the export ends; the permit stays with the stream
/// meanwhile. None (and the permit given back) once the export has ended.
async fn next_step(export: Export) -> std::io::Result<Option<(Bytes, Export)>> {
    let Export {
        mut steps,
        mut store,
        _permit,
    } = export;
    loop {
        let step;
        (steps, store, step) = tokio::task::spawn_blocking(move || {
            let step = steps.next_step(&store, STEP_BYTES);
            (steps, store, step)
        })
        .await
        .map_err(std::io::Error::other)?;
        match step {
            // Nothing kept among the entries examined: the next step, after the runtime has
            // had its turn.
            Ok(Some(bytes)) if bytes.is_empty() => tokio::task::yield_now().await,
            Ok(Some(bytes)) => {
                return Ok(Some((
                    Bytes::from(bytes),
                    Export {
                        steps,
                        store,
                        _permit,
                    },
                )));
            }
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!("export: {e}");
                return Err(std::io::Error::other(e.to_string()));
            }
        }
    }
}
