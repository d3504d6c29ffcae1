//! A process that reads only v1, as a node of the previous version: a v2 record is
//! `NewerVersion` (ignored, not held against its sender), and v1 records read as before. Its
//! own test binary: `read_versions_up_to` sets the whole process.

use cailloux_protocol::*;

#[test]
fn a_v1_reader_finds_v2_records_newer_and_reads_v1_ones() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let text = include_str!("vectors/golden.md");
    let mut draft = parse_publication(text, None).unwrap_or_else(|v| panic!("{v:?}"));
    draft.publication.links[0].id = RecordId([0x11; 32]);
    let v1 = Record::sign(&key, 1_764_000_000_000, draft.publication.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    draft.publication.attachments = vec![Attachment {
        name: "carte.png".into(),
        title: "Carte".into(),
        media_type: MediaType::Png,
        size: 10,
        hash: BlobHash([3; 32]),
    }];
    let v2 =
        Record::sign(&key, 1_764_000_000_001, draft.publication).unwrap_or_else(|e| panic!("{e}"));

    read_versions_up_to(1);
    assert_eq!(readable_version(), 1);
    match Unverified::decode(v2.bytes().to_vec()) {
        Err(
            e @ DecodeError::NewerVersion {
                version: 2,
                readable: 1,
            },
        ) => {
            assert!(e.to_string().contains("upgrade cailloux"), "{e}");
        }
        other => panic!("expected NewerVersion, got {other:?}"),
    }
    let read = Unverified::decode(v1.bytes().to_vec())
        .unwrap_or_else(|e| panic!("{e}"))
        .verify()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.id(), v1.id());
    read_versions_up_to(99);
    assert_eq!(readable_version(), FORMAT_VERSION);
}
