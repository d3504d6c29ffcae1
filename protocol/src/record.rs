//! Signed records: a publication, its author's key and its creation time, encoded once as CBOR,
//! signed with ed25519, and named by the BLAKE3 hash of the signed bytes.
//!
//! Wire format v1 (all CBOR, RFC 8949):
//!
//! ```text
//! record    = [ body: bstr, signature: bstr .size 64 ]        ; a 2-array, definite lengths
//! body      = { "v": 1, "author": bstr .size 32, "created_at": uint (ms since the Unix epoch),
//!               "publication": { kind, title, ... , body } }
//! signature = ed25519(author, "cailloux/record/v1\0" || body)
//! id        = BLAKE3(record)                                   ; all of it, signature included
//! ```
//!
//! The bytes are kept as received: the signature is checked over the body bytes as they are,
//! never over a re-encoding, so two implementations that encode maps differently still agree.
//! The id covers the signature too, so a forged copy of a record can never take the id of the
//! real one (gossip drops a message whose id it has seen).

use crate::id::{Bytes32, RecordId, encode_hex};
use crate::publication::{Publication, Violation};
use crate::trust::Act;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The newest format version this crate writes and reads. Version 2 added attachments; a
/// record is written in the oldest version that can hold it (v1 unless it has attachments), so
/// nodes that read only v1 keep receiving every record they can read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version read.
pub const MIN_FORMAT_VERSION: u32 = 1;

/// The newest version this process reads: `FORMAT_VERSION`, unless lowered (see
/// `read_versions_up_to`).
static READABLE_VERSION: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(FORMAT_VERSION);

/// Makes this process read records as a node of an older version would: a record of a later
/// version than `max` decodes to `DecodeError::NewerVersion`, as one of a version not yet
/// defined does. For tests of how nodes of two versions meet (a node started with
/// `CAILLOUX_READ_FORMAT=1`); `max` is clamped to the versions this crate knows.
pub fn read_versions_up_to(max: u32) {
    READABLE_VERSION.store(
        max.clamp(MIN_FORMAT_VERSION, FORMAT_VERSION),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The newest version this process reads.
pub fn readable_version() -> u32 {
    READABLE_VERSION.load(std::sync::atomic::Ordering::Relaxed)
}
/// The largest encoded record, enforced when signing and when decoding.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// The last millisecond a record may be dated: 9999-12-31T23:59:59.999Z. Creation times are
/// stated by the signer; past this one they are not dates any more, and the largest (2^64 - 1)
/// would reach the reconciliation index, which reads it as infinity (such a record would never
/// be caught up). Nodes also refuse, for now, records dated ahead of their clock
/// (`trust::MAX_CLOCK_SKEW_MS`); this rule is the one that needs no clock.
pub const MAX_CREATED_AT: u64 = 253_402_300_799_999;
/// Prepended to the body before signing, so a record signature can never be replayed as the
/// signature of any other message the same key signs (libp2p handshakes, future record types).
pub const SIGNING_CONTEXT: &[u8] = b"cailloux/record/v1\0";

/// A record whose signature has been verified (or that this node signed itself).
#[derive(Clone, PartialEq)]
pub struct Record {
    bytes: Vec<u8>,
    id: RecordId,
    body: Body,
    body_start: usize,
    body_len: usize,
    signature: [u8; 64],
}

/// A record decoded and schema-checked but whose signature is not checked yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Unverified {
    record: Record,
    /// The author key, decompressed once at decoding (it costs as much as a third of a
    /// signature check).
    key: VerifyingKey,
}

/// The signed part of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub v: u32,
    pub author: AuthorKey,
    pub created_at: u64,
    /// Exactly one of `publication` and `act` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
}

impl Body {
    /// The rules of a record: a creation time no later than `MAX_CREATED_AT`, exactly one of
    /// a publication and an act, that one valid, and nothing its version does not define.
    pub fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if self.created_at > MAX_CREATED_AT {
            v.push(Violation::new(
                "created_at",
                format!(
                    "{} ms is {}, after 9999-12-31T23:59:59.999Z, the last time a record may \
                     carry",
                    self.created_at,
                    crate::time::rfc3339_millis(self.created_at)
                ),
            ));
        }
        match (&self.publication, &self.act) {
            (Some(p), None) => {
                v.extend(p.violations());
                if self.v < 2 && !p.attachments.is_empty() {
                    v.push(Violation::new(
                        "attachments",
                        format!(
                            "appear in record format 2; this record is of version {}",
                            self.v
                        ),
                    ));
                }
            }
            (None, Some(a)) => v.extend(a.violations(&self.author)),
            _ => v.push(Violation::new(
                "record",
                "must carry exactly one of a publication and an act",
            )),
        }
        v
    }
}

/// An author's ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthorKey(pub [u8; 32]);

impl AuthorKey {
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Whether the bytes are an ed25519 public key that can verify anything (a valid, non-weak
    /// curve point): a typo in a hex key usually is not.
    pub fn is_valid(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|k| !k.is_weak())
    }
}

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorKey({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for AuthorKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuthorKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes32::deserialize(d).map(|b| AuthorKey(b.0))
    }
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("record is {size} bytes; the limit is {max}", max = MAX_RECORD_BYTES)]
    TooLarge { size: usize },
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The body is not a v1 body: which field, and what was expected there.
    #[error("malformed record body: {0}")]
    Body(String),
    #[error("record format version {0} is not a version (versions start at {MIN_FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    /// A version newer than this node reads: not garbage, only not readable here. Callers
    /// ignore such a record without holding it against whoever sent it.
    #[error(
        "record format version {version} is newer than this node reads (up to {readable}); upgrade cailloux to read it"
    )]
    NewerVersion { version: u32, readable: u32 },
    #[error("the author key is not a valid ed25519 public key")]
    BadAuthorKey,
    #[error("the record breaks the format: {}", join(.0))]
    Invalid(Vec<Violation>),
}

/// Why a record cannot be signed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("the publication breaks the format: {}", join(.0))]
    Invalid(Vec<Violation>),
    #[error("the signed record would be {size} bytes; the limit is {max} (shorten the body)", max = MAX_RECORD_BYTES)]
    TooLarge { size: usize },
}

/// The signature does not match the body and author key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify: the record was altered or not signed by its author key")]
pub struct BadSignature;

fn join(v: &[Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Record {
    /// Signs a publication as `key`'s, created at `created_at` (ms since the Unix epoch).
    pub fn sign(
        key: &SigningKey,
        created_at: u64,
        publication: Publication,
    ) -> Result<Record, SignError> {
        Self::sign_body(key, created_at, Some(publication), None)
    }

    /// Signs an act (an admission, a delegation, a revocation, a retraction) as `key`'s.
    pub fn sign_act(key: &SigningKey, created_at: u64, act: Act) -> Result<Record, SignError> {
        Self::sign_body(key, created_at, None, Some(act))
    }

    fn sign_body(
        key: &SigningKey,
        created_at: u64,
        publication: Option<Publication>,
        act: Option<Act>,
    ) -> Result<Record, SignError> {
        // The oldest version that holds the record (see FORMAT_VERSION).
        let v = if publication
            .as_ref()
            .is_some_and(|p| !p.attachments.is_empty())
        {
            2
        } else {
            MIN_FORMAT_VERSION
        };
        let body = Body {
            v,
            author: AuthorKey(key.verifying_key().to_bytes()),
            created_at,
            publication,
            act,
        };
        let violations = body.violations();
        if !violations.is_empty() {
            return Err(SignError::Invalid(violations));
        }
        let mut body_bytes = Vec::with_capacity(1024);
        // Writing to a Vec cannot fail, and every field of Body is encodable.
        ciborium::into_writer(&body, &mut body_bytes).map_err(|e| {
            SignError::Invalid(vec![Violation::new(
                "record",
                format!("cannot be encoded: {e}"),
            )])
        })?;
        let signature = key.sign_prehashless(&body_bytes);
        let mut bytes = Vec::with_capacity(body_bytes.len() + 80);
        bytes.push(0x82);
        write_bstr_header(&mut bytes, body_bytes.len());
        let body_start = bytes.len();
        bytes.extend_from_slice(&body_bytes);
        write_bstr_header(&mut bytes, 64);
        bytes.extend_from_slice(&signature);
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(SignError::TooLarge { size: bytes.len() });
        }
        Ok(Record {
            id: RecordId(*blake3::hash(&bytes).as_bytes()),
            bytes,
            body,
            body_start,
            body_len: body_bytes.len(),
            signature,
        })
    }

    /// Decodes bytes that this node verified before storing them: no signature check, no schema
    /// check. Never use it on bytes from outside.
    pub fn from_trusted_bytes(bytes: Vec<u8>) -> Result<Record, DecodeError> {
        decode(bytes, None).map(|(record, _)| record)
    }

    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The signed record exactly as encoded: what is stored, sent and exported.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn author(&self) -> AuthorKey {
        self.body.author
    }

    pub fn created_at(&self) -> u64 {
        self.body.created_at
    }

    /// The publication this record carries, unless it is an act.
    pub fn publication(&self) -> Option<&Publication> {
        self.body.publication.as_ref()
    }

    /// The act this record carries, unless it is a publication.
    pub fn act(&self) -> Option<&Act> {
        self.body.act.as_ref()
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    fn signed_message(&self) -> Vec<u8> {
        let body = &self.bytes[self.body_start..self.body_start + self.body_len];
        [SIGNING_CONTEXT, body].concat()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("author", &self.body.author)
            .field("created_at", &self.body.created_at)
            .field(
                "title",
                &self
                    .publication()
                    .map(|p| p.title.as_str())
                    .unwrap_or_else(|| self.act().map_or("", Act::name)),
            )
            .finish()
    }
}

impl Unverified {
    /// Decodes and schema-checks a record from outside (a peer, an import, a file).
    pub fn decode(bytes: Vec<u8>) -> Result<Unverified, DecodeError> {
        Self::decode_with(bytes, &mut KeyCache::default())
    }

    /// `decode`, reusing the author keys that `keys` already decompressed: in bulk, authors
    /// repeat, and decompressing a key costs a quarter of checking a signature.
    pub fn decode_with(bytes: Vec<u8>, keys: &mut KeyCache) -> Result<Unverified, DecodeError> {
        match decode(bytes, Some(keys))? {
            (record, Some(key)) => Ok(Unverified { record, key }),
            (_, None) => Err(DecodeError::BadAuthorKey),
        }
    }

    pub fn id(&self) -> RecordId {
        self.record.id
    }

    /// What the record claims, before its signature is checked.
    pub fn claimed(&self) -> &Record {
        &self.record
    }

    /// Checks the signature of one record.
    pub fn verify(self) -> Result<Record, BadSignature> {
        verify_all(vec![self]).pop().unwrap_or(Err(BadSignature))
    }
}

/// Checks many signatures at once with ed25519 batch verification, about twice as fast as one by
/// one; when a batch fails, halves it to find the bad records. A single record goes through the
/// same batch equation, so whether a signature is accepted never depends on its company.
pub fn verify_all(records: Vec<Unverified>) -> Vec<Result<Record, BadSignature>> {
    let ok = batch_ok(&records);
    if ok {
        return records.into_iter().map(|u| Ok(u.record)).collect();
    }
    if records.len() == 1 {
        return vec![Err(BadSignature)];
    }
    let mut records = records;
    let second = records.split_off(records.len() / 2);
    let mut out = verify_all(records);
    out.extend(verify_all(second));
    out
}

fn batch_ok(records: &[Unverified]) -> bool {
    let messages: Vec<Vec<u8>> = records.iter().map(|u| u.record.signed_message()).collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = records
        .iter()
        .map(|u| Signature::from_bytes(&u.record.signature))
        .collect();
    let keys: Vec<VerifyingKey> = records.iter().map(|u| u.key).collect();
    ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok()
}

/// Signing with the context prefix. (Named so that no call site signs a bare body by mistake.)
trait SignWithContext {
    fn sign_prehashless(&self, body: &[u8]) -> [u8; 64];
}

impl SignWithContext for SigningKey {
    fn sign_prehashless(&self, body: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.sign(&[SIGNING_CONTEXT, body].concat()).to_bytes()
    }
}

fn write_bstr_header(out: &mut Vec<u8>, len: usize) {
    const MAJOR: u8 = 2 << 5;
    match len {
        0..=23 => out.push(MAJOR | len as u8),
        24..=0xff => out.extend_from_slice(&[MAJOR | 24, len as u8]),
        0x100..=0xffff => {
            out.push(MAJOR | 25);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(MAJOR | 26);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// Reads a definite-length byte-string header at `at`; returns (content start, length).
fn read_bstr_header(bytes: &[u8], at: usize) -> Result<(usize, usize), DecodeError> {
    let short = || {
        DecodeError::Malformed(
            "the record ends too early: a record is a CBOR array of two byte strings, the body \
             and a 64-byte signature"
                .into(),
        )
    };
    let first = *bytes.get(at).ok_or_else(short)?;
    if first >> 5 != 2 {
        return Err(DecodeError::Malformed(format!(
            "expected a byte string at offset {at}"
        )));
    }
    let info = usize::from(first & 31);
    let (len, header) = match info {
        0..=23 => (info, 1),
        24..=26 => {
            let n = 1 << (info - 24);
            let raw = bytes.get(at + 1..at + 1 + n).ok_or_else(short)?;
            let len = raw.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, 1 + n)
        }
        _ => {
            return Err(DecodeError::Malformed(format!(
                "unsupported length encoding at offset {at}"
            )));
        }
    };
    // Only the shortest length encoding is accepted, so that one record has one byte string and
    // therefore one id.
    let minimal = match header {
        1 => true,
        2 => len >= 24,
        3 => len > 0xff,
        _ => len > 0xffff,
    };
    if !minimal {
        return Err(DecodeError::Malformed(format!(
            "non-minimal length encoding at offset {at}"
        )));
    }
    let start = at + header;
    if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
        return Err(short());
    }
    Ok((start, len))
}

/// `NewerVersion` when a body that did not decode as one of the versions read here says it is
/// of a later version. Only the `v` key is read; everything else is skipped, and any failure
/// (not a map, no `v`) means the body is simply malformed.
fn newer_version(body: &[u8]) -> Option<DecodeError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        v: u32,
    }
    let VersionOnly { v } = ciborium::from_reader(body).ok()?;
    let readable = readable_version();
    (v > readable).then_some(DecodeError::NewerVersion {
        version: v,
        readable,
    })
}

/// Valid author keys already decompressed, for decoding many records. Bounded: it forgets
/// everything when full.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: std::collections::HashMap<[u8; 32], VerifyingKey>,
}

impl KeyCache {
    const CAPACITY: usize = 4096;

    /// The author key, if it is a valid, non-weak ed25519 point.
    fn key(&mut self, bytes: &[u8; 32]) -> Option<VerifyingKey> {
        if let Some(key) = self.keys.get(bytes) {
            return Some(*key);
        }
        let key = VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())?;
        if self.keys.len() >= Self::CAPACITY {
            self.keys.clear();
        }
        self.keys.insert(*bytes, key);
        Some(key)
    }
}

/// Decodes a record. With `keys` (bytes from outside), also checks the author key and the
/// publication's rules, and returns the decompressed key; without (bytes this node stored),
/// trusts them.
fn decode(
    bytes: Vec<u8>,
    keys: Option<&mut KeyCache>,
) -> Result<(Record, Option<VerifyingKey>), DecodeError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLarge { size: bytes.len() });
    }
    if bytes.first() != Some(&0x82) {
        return Err(DecodeError::Malformed(
            "a record is a CBOR array of two byte strings".into(),
        ));
    }
    let (body_start, body_len) = read_bstr_header(&bytes, 1)?;
    let (sig_start, sig_len) = read_bstr_header(&bytes, body_start + body_len)?;
    if sig_len != 64 {
        return Err(DecodeError::Malformed(format!(
            "the signature is {sig_len} bytes; ed25519 signatures are 64"
        )));
    }
    if sig_start + 64 != bytes.len() {
        return Err(DecodeError::Malformed(format!(
            "{} unexpected bytes after the signature",
            bytes.len() - sig_start - 64
        )));
    }
    let body_slice = &bytes[body_start..body_start + body_len];
    let mut body_bytes = body_slice;
    let body: Body = match ciborium::from_reader(&mut body_bytes) {
        Ok(body) => body,
        // A later version may add fields this one does not know: its version says so.
        Err(e) => {
            return Err(newer_version(body_slice)
                .unwrap_or_else(|| DecodeError::Body(crate::body_error::explain(body_slice, &e))));
        }
    };
    if !body_bytes.is_empty() {
        return Err(DecodeError::Body(format!(
            "{} unexpected bytes after its end",
            body_bytes.len()
        )));
    }
    let readable = readable_version();
    if body.v > readable {
        return Err(DecodeError::NewerVersion {
            version: body.v,
            readable,
        });
    }
    if body.v < MIN_FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(body.v));
    }
    let mut key = None;
    if let Some(keys) = keys {
        key = Some(keys.key(&body.author.0).ok_or(DecodeError::BadAuthorKey)?);
        let violations = body.violations();
        if !violations.is_empty() {
            return Err(DecodeError::Invalid(violations));
        }
    }
    let mut signature = [0; 64];
    signature.copy_from_slice(&bytes[sig_start..]);
    let record = Record {
        id: RecordId(*blake3::hash(&bytes).as_bytes()),
        bytes,
        body,
        body_start,
        body_len,
        signature,
    };
    Ok((record, key))
}
