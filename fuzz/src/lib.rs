//! The bodies of the fuzz targets, one function per target. The cargo-fuzz binaries in
//! `fuzz_targets/` call them, and `protocol/tests/fuzz_regressions.rs` includes this file to
//! replay the committed corpus and crash files through the very same functions. Each function
//! must not panic on any input; the assertions in them are properties that hold for every input
//! the code accepts, so a failing one is a bug too.
//!
//! This file is compiled both here and as a module of the protocol crate's test, under the root
//! workspace's lints: no `unwrap`, no `unsafe`.

use cailloux_protocol::frontmatter::{MAX_FRONT_MATTER_BYTES, MAX_FRONT_MATTER_DEPTH};
// Not in the protocol crate's replay test (which includes this file and has no node crate):
// `node/tests/fuzz_regressions.rs` replays this target's corpus.
#[cfg(not(test))]
pub mod query_builder;

use cailloux_protocol::wire::{
    Announce, FetchRequest, FetchResponse, SYNC_FRAME_LIMIT, SyncRequest, SyncResponse,
};
use cailloux_protocol::{
    Record, SignError, SigningKey, Unverified, parse_partial, parse_publication,
};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::OnceLock;

/// The creation time given to records that the targets sign (2025-11-24).
pub const SIGNING_TIME: u64 = 1_764_000_000_000;

/// The key that the targets sign with.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// `record_decode`: bytes from a peer, an import or a file, decoded, schema-checked and verified.
pub fn record_decode(data: &[u8]) {
    // What a node does with bytes it stored itself; they must not panic it either.
    if let Ok(record) = Record::from_trusted_bytes(data.to_vec()) {
        assert_eq!(record.bytes(), data);
    }
    let Ok(unverified) = Unverified::decode(data.to_vec()) else {
        return;
    };
    assert_eq!(
        unverified.claimed().bytes(),
        data,
        "decoding keeps the bytes"
    );
    let id = unverified.id();
    let Ok(record) = unverified.verify() else {
        return;
    };
    assert_eq!(record.id(), id);
    // Exactly one of a publication and an act, and that one valid.
    assert!(record.body().violations().is_empty());
    assert_ne!(record.publication().is_some(), record.act().is_some());
    // A verified record is stored as its bytes and read back as the same record.
    let stored = Record::from_trusted_bytes(record.bytes().to_vec())
        .unwrap_or_else(|e| panic!("a verified record does not read back: {e}"));
    assert_eq!(stored, record);
}

/// `frontmatter`: a publication file as a practitioner may write it (any UTF-8 text), and the
/// same text as the YAML between the `---` lines of a file, so that mutations reach the YAML
/// parser without having to keep the framing.
pub fn frontmatter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    publication_file(text);
    front_matter_only(text);
}

/// `text` as the front matter of a file: what is read as a document has no anchor or alias
/// (yaml-rust2 would expand them: a "billion laughs") and is no deeper than the limit.
fn front_matter_only(text: &str) {
    let file = format!("---\n{text}\n---\nCorps.\n");
    let (draft, violations) = parse_partial(&file, Some("Fuzzville"));
    // The front matter is `text` itself only when nothing in it ends the block early or is
    // rewritten first (line endings, a byte-order mark).
    let whole = !text.contains('\r')
        && !text.starts_with('\u{feff}')
        && !text
            .split('\n')
            .any(|l| matches!(l.trim_end(), "---" | "..."));
    if draft.is_none() || !whole {
        assert!(draft.is_some() || !violations.is_empty());
        return;
    }
    // Exactly what the parser was handed: the text and its line's end.
    let front = format!("{text}\n");
    assert!(front.len() <= MAX_FRONT_MATTER_BYTES);
    let mut parser = yaml_rust2::parser::Parser::new_from_str(&front);
    let mut depth = 0usize;
    loop {
        use yaml_rust2::parser::Event;
        let Ok((event, _)) = parser.next_token() else {
            panic!("a front matter that is not YAML was read: {text:?}");
        };
        match event {
            Event::StreamEnd => break,
            Event::Alias(_) => panic!("an alias was read: {text:?}"),
            Event::Scalar(_, _, anchor, _) => assert_eq!(anchor, 0, "an anchor was read"),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                assert_eq!(anchor, 0, "an anchor was read: {text:?}");
                depth += 1;
                assert!(depth <= MAX_FRONT_MATTER_DEPTH, "too deep: {text:?}");
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

fn publication_file(text: &str) {
    let (draft, violations) = parse_partial(text, None);
    let parsed = parse_publication(text, None);
    assert_eq!(parsed.is_ok(), draft.is_some() && violations.is_empty());
    // With a default town, as `cailloux publish` parses on a node that has one.
    let Ok(draft) = parse_publication(text, Some("Fuzzville")) else {
        return;
    };
    let publication = draft.publication;
    assert_eq!(draft.link_targets.len(), publication.links.len());
    assert!(publication.violations().is_empty());
    // What parses is what the node signs and every peer accepts, unchanged.
    let record = match Record::sign(&signing_key(), SIGNING_TIME, publication.clone()) {
        Ok(record) => record,
        Err(SignError::TooLarge { .. }) => return,
        Err(e) => panic!("a publication that parsed cannot be signed: {e}"),
    };
    let decoded = Unverified::decode(record.bytes().to_vec())
        .unwrap_or_else(|e| panic!("a signed publication does not decode: {e}"))
        .verify()
        .unwrap_or_else(|e| panic!("a signed publication does not verify: {e}"));
    assert_eq!(decoded.publication(), Some(&publication));
    assert_eq!(decoded.id(), record.id());
}

/// `sync_messages`: what a peer sends during catch-up and fetching: the CBOR messages of
/// `cailloux_protocol::wire`, gossip announcements, and negentropy messages, which reach both the
/// responder (a peer's query) and the initiator (a peer's reply).
pub fn sync_messages(data: &[u8]) {
    cbor_round_trip::<SyncRequest>(data);
    cbor_round_trip::<SyncResponse>(data);
    cbor_round_trip::<FetchRequest>(data);
    cbor_round_trip::<FetchResponse>(data);
    if let Ok(announce) = Announce::decode(data) {
        assert_eq!(announce.encode().as_slice(), data);
    }
    let storage = storage();
    // The node's frame limit, and negentropy's smallest, which truncates replies over this set.
    for limit in [SYNC_FRAME_LIMIT, 4096] {
        let Ok(mut responder) = Negentropy::borrowed(storage, limit) else {
            panic!("the frame limit {limit} is refused");
        };
        if let Ok(reply) = responder.reconcile(data) {
            assert!(
                reply.len() as u64 <= limit,
                "a reply of {} bytes is over the frame limit {limit}",
                reply.len()
            );
        }
        let Ok(mut initiator) = Negentropy::borrowed(storage, limit) else {
            panic!("the frame limit {limit} is refused");
        };
        if initiator.initiate().is_ok() {
            let (mut have, mut need) = (Vec::new(), Vec::new());
            if let Ok(Some(next)) = initiator.reconcile_with_ids(data, &mut have, &mut need) {
                assert!(
                    next.len() as u64 <= limit,
                    "a message of {} bytes is over the frame limit {limit}",
                    next.len()
                );
            }
        }
    }
}

/// Decodes `data` as a `T`; what decodes must encode and decode back to itself.
fn cbor_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(value) = ciborium::from_reader::<T, _>(data) else {
        return;
    };
    let mut encoded = Vec::new();
    ciborium::into_writer(&value, &mut encoded)
        .unwrap_or_else(|e| panic!("a decoded {value:?} does not encode: {e}"));
    let again: T = ciborium::from_reader(encoded.as_slice())
        .unwrap_or_else(|e| panic!("a re-encoded {value:?} does not decode: {e}"));
    assert_eq!(again, value);
}

/// The fixed set of (created_at, id) items that the negentropy sides hold: 200 items, enough
/// for fingerprint ranges (32 items or more) and for truncated id lists under a 4096-byte frame,
/// with runs of equal timestamps so that bounds carry id prefixes.
pub fn storage() -> &'static NegentropyStorageVector {
    static STORAGE: OnceLock<NegentropyStorageVector> = OnceLock::new();
    STORAGE.get_or_init(|| items(0..200))
}

/// A sealed storage of the items numbered `range` (the same item for the same number).
pub fn items(range: std::ops::Range<u64>) -> NegentropyStorageVector {
    let mut storage = NegentropyStorageVector::with_capacity(200);
    for n in range {
        // Fails only once sealed.
        let _ = storage.insert(1_700_000_000_000 + n / 3 * 1000, Id::from_byte_array(id(n)));
    }
    let _ = storage.seal();
    storage
}

/// A well-mixed 32-byte id for item `n` (splitmix64).
fn id(n: u64) -> [u8; 32] {
    let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = [0; 32];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out
}
