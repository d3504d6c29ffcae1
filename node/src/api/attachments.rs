//! `GET /api/v1/attachments/{hash}`: a record's file, on the local and the public address.
//!
//! The bytes are streamed from the blob folder (never read whole), with the type the record
//! signed, its length, a strong `ETag` (the hash: the content can never change under it) and
//! `Content-Disposition: attachment` for everything but images, which a page shows inline;
//! `X-Content-Type-Options: nosniff` comes with every answer (`headers`). A file this node
//! lacks is fetched from its peers and sent as it is verified (`blobs::Incoming`); what no peer
//! serves is a 404 that names the hash.

use super::{ApiError, ApiState, bad_request, blocking, internal};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cailloux_protocol::{Attachment, BlobHash, RecordId};

/// Caching for a file: its bytes never change under its hash.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(super) async fn attachment(
    State(state): State<ApiState>,
    hash: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let text = hash.map(|Path(h)| h).unwrap_or_default();
    let hash = BlobHash::from_hex(&text).ok_or_else(|| {
        bad_request(format!(
            "hash: `{}` is not a file hash: 64 hexadecimal characters, the `hash` of one of a \
             record's `attachments`",
            text.escape_debug()
        ))
    })?;
    let (store, blobs) = (state.store.clone(), state.blobs.clone());
    let (candidates, held) = blocking(move || {
        let found = store.attachments(&hash)?;
        Ok::<_, crate::store::StoreError>((found, blobs.get(&hash)))
    })
    .await?
    .map_err(internal)?;
    if candidates.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no record held by this node attaches a file with hash {hash}"),
        ));
    }
    let etag = format!("\"{hash}\"");
    // The bytes behind a hash never change: a reader that has them needs nothing more, whether
    // this node holds them or not.
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, IMMUTABLE.into()),
            ],
        )
            .into_response());
    }
    let opened = match held {
        Some(held) => crate::blobs::Opened::Held(held),
        // Fetched from the peers that hold it and sent on as its groups are verified.
        None => match state.transfers.open(hash).await {
            Ok(opened) => opened,
            Err(e @ (crate::blobs::FetchError::Busy | crate::blobs::FetchError::Abandoned(_))) => {
                return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()));
            }
            Err(e @ crate::blobs::FetchError::Local(_)) => return Err(internal(e)),
            Err(e) => return Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        },
    };
    let head = match &opened {
        crate::blobs::Opened::Held(held) => {
            let path = held.path.clone();
            blocking(move || {
                use std::io::Read;
                let mut head = Vec::new();
                std::fs::File::open(&path)?
                    .take(cailloux_protocol::attachment::HEAD_BYTES as u64)
                    .read_to_end(&mut head)
                    .map(|_| head)
            })
            .await?
        }
        crate::blobs::Opened::Incoming(incoming) => incoming.head(),
    }
    .map_err(internal)?;
    let (body, size) = match opened {
        crate::blobs::Opened::Held(held) => {
            let file = tokio::fs::File::open(&held.path).await.map_err(internal)?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
            (Body::from_stream(stream), held.size)
        }
        crate::blobs::Opened::Incoming(incoming) => {
            let size = incoming.size();
            (Body::from_stream(incoming.into_stream()), size)
        }
    };
    let attachment = described(&candidates, size, &head);
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(attachment.media_type.as_str()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(v) = HeaderValue::from_str(&disposition(attachment)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// The record entry a file is served under: the best record (`Store::attachments`) whose size
/// is the file's and whose type its content bears out (a binary type by its signature, a text
/// type when it has none), so that a record misdescribing a town's file gives it neither its
/// type nor its name. Failing that, the best of the right size, then the best.
fn described<'a>(
    candidates: &'a [(Attachment, RecordId)],
    size: u64,
    head: &[u8],
) -> &'a Attachment {
    let found = cailloux_protocol::attachment::signature(head);
    let sized = || candidates.iter().map(|(a, _)| a).filter(|a| a.size == size);
    sized()
        .find(|a| match found {
            Some(t) => a.media_type == t,
            None => a.media_type.is_text(),
        })
        .or_else(|| sized().next())
        .unwrap_or(&candidates[0].0)
}

/// `inline` for images, `attachment` for the rest, with the recorded name: plain in `filename`
/// when it is ASCII (record names hold no quotes, slashes or control characters), and in
/// `filename*` (RFC 8187) as UTF-8 otherwise, with an ASCII stand-in.
fn disposition(a: &Attachment) -> String {
    let how = if a.media_type.is_image() {
        "inline"
    } else {
        "attachment"
    };
    if a.name.is_ascii() {
        return format!("{how}; filename=\"{}\"", a.name);
    }
    let ascii: String = a
        .name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let encoded: String = a
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{how}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cailloux_protocol::MediaType;

    #[test]
    fn images_are_inline_and_other_files_downloads_with_their_names() {
        let a = |name: &str, media_type| Attachment {
            name: name.into(),
            title: "t".into(),
            media_type,
            size: 1,
            hash: BlobHash([0; 32]),
        };
        assert_eq!(
            disposition(&a("rapport.pdf", MediaType::Pdf)),
            "attachment; filename=\"rapport.pdf\""
        );
        assert_eq!(
            disposition(&a("carte.png", MediaType::Png)),
            "inline; filename=\"carte.png\""
        );
        assert_eq!(
            disposition(&a("été.csv", MediaType::Csv)),
            "attachment; filename=\"_t_.csv\"; filename*=UTF-8''%C3%A9t%C3%A9.csv"
        );
    }
}
