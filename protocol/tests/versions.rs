//! Format versions: v2 (attachments) beside v1, and what a node does with a record of a version
//! later than it reads (it is not garbage: `NewerVersion`, which callers ignore unpenalised).

use cailloux_protocol::record::SIGNING_CONTEXT;
use cailloux_protocol::*;
use ciborium::Value;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

const GOLDEN_TIME: u64 = 1_764_000_000_000;

/// The golden publication with one file, as `publish` would record it.
fn with_attachment() -> Publication {
    let text = include_str!("vectors/golden.md");
    let mut draft = parse_publication(text, None).unwrap_or_else(|v| panic!("{v:?}"));
    draft.publication.links[0].id = RecordId([0x11; 32]);
    draft.publication.attachments = vec![Attachment {
        name: "rapport-2025.pdf".into(),
        title: "Rapport d'évaluation 2025".into(),
        media_type: MediaType::Pdf,
        size: 16,
        hash: BlobHash::of(b"%PDF-1.7 exemple"),
    }];
    draft.publication
}

/// Frames and signs body bytes by hand, as a node of another version would.
fn signed(body: &Value) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let mut body_bytes = Vec::new();
    ciborium::into_writer(body, &mut body_bytes).unwrap_or_else(|e| panic!("{e}"));
    let signature = key(7).sign(&[SIGNING_CONTEXT, &body_bytes].concat());
    let mut record = Vec::new();
    ciborium::into_writer(
        &Value::Array(vec![
            Value::Bytes(body_bytes),
            Value::Bytes(signature.to_bytes().to_vec()),
        ]),
        &mut record,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    record
}

fn body(v: u64, extra: Option<(&str, Value)>) -> Value {
    let mut map = vec![
        (Value::Text("v".into()), Value::Integer(v.into())),
        (
            Value::Text("author".into()),
            Value::Bytes(key(7).verifying_key().to_bytes().to_vec()),
        ),
        (
            Value::Text("created_at".into()),
            Value::Integer(GOLDEN_TIME.into()),
        ),
    ];
    if let Some((k, value)) = extra {
        map.push((Value::Text(k.into()), value));
    }
    Value::Map(map)
}

/// The v2 golden vector: any change to how attachments are encoded changes these bytes.
#[test]
fn golden_v2_vector() {
    let record =
        Record::sign(&key(7), GOLDEN_TIME, with_attachment()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.body().v, 2, "a record with files is written as v2");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    if std::env::var_os("CAILLOUX_BLESS").is_some() {
        std::fs::write(
            dir.join("golden-v2.record.hex"),
            id::encode_hex(record.bytes()) + "\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(dir.join("golden-v2.record.hex"))
        .unwrap_or_else(|e| panic!("golden-v2.record.hex: {e}"));
    assert_eq!(id::encode_hex(record.bytes()), expected.trim());
    let decoded = Unverified::decode(id::decode_hex(expected.trim()).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"))
        .verify()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.publication(), Some(&with_attachment()));
    let json = view::full_json(&decoded);
    assert_eq!(json["attachments"][0]["media_type"], "application/pdf");
    assert_eq!(
        json["attachments"][0]["hash"],
        BlobHash::of(b"%PDF-1.7 exemple").to_hex()
    );
}

#[test]
fn a_record_without_files_stays_v1_and_lists_no_attachments() {
    let mut p = with_attachment();
    p.attachments.clear();
    let record = Record::sign(&key(7), GOLDEN_TIME, p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.body().v, 1);
    assert!(view::full_json(&record).get("attachments").is_none());
}

#[test]
fn a_v1_record_with_files_breaks_the_format() {
    let mut b = Record::sign(&key(7), GOLDEN_TIME, with_attachment())
        .unwrap_or_else(|e| panic!("{e}"))
        .body()
        .clone();
    b.v = 1;
    let violations = b.violations();
    assert!(
        violations
            .iter()
            .any(|v| v.field == "attachments" && v.message.contains("format 2")),
        "{violations:?}"
    );
}

#[test]
fn attachment_rules_hold_on_records_from_outside() {
    let mut p = with_attachment();
    p.attachments[0].size = 40 * 1024 * 1024;
    p.attachments[0].media_type = MediaType::Png;
    let mut second = p.attachments[0].clone();
    second.size = 1;
    p.attachments.push(second);
    let fields: Vec<String> = p.violations().into_iter().map(|v| v.field).collect();
    for field in [
        "attachments[0].media_type",
        "attachments[0].size",
        "attachments[1].name",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
}

#[test]
fn a_later_version_is_newer_not_malformed() {
    // A v3 body with a field this version does not know.
    let bytes = signed(&body(3, Some(("hologram", Value::Bool(true)))));
    match Unverified::decode(bytes) {
        Err(DecodeError::NewerVersion {
            version: 3,
            readable: 2,
        }) => {}
        other => panic!("expected NewerVersion, got {other:?}"),
    }
    // Version 0 is no version; a later version that is not even a map is malformed.
    assert!(matches!(
        Unverified::decode(signed(&body(0, None))),
        Err(DecodeError::UnsupportedVersion(0))
    ));
    assert!(matches!(
        Unverified::decode(signed(&Value::Array(vec![Value::Integer(3.into())]))),
        Err(DecodeError::Body(_))
    ));
}
