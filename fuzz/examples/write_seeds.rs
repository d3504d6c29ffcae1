//! Writes the generated seeds of the committed corpus: signed records of the example
//! publications for `record_decode`, and wire and negentropy messages for `sync_messages`.
//! The `frontmatter` seeds are copies of Markdown files. Run from `fuzz/`:
//! `cargo run --example write_seeds` (deterministic: the same bytes every time).

use cailloux_fuzz::{SIGNING_TIME, items, signing_key, storage};
use cailloux_protocol::wire::{
    Announce, FetchRequest, FetchResponse, SYNC_FRAME_LIMIT, SyncRequest, SyncResponse,
};
use cailloux_protocol::{Record, RecordId, parse_publication};
use negentropy::Negentropy;
use std::path::Path;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let path = corpus.join(target).join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };

    // One signed record of each kind, from the examples.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut records = Vec::new();
    for (name, file) in [
        ("experiment", "saint-aubin-des-pres/01-chaufferie-bois.md"),
        ("practice", "vallon-sur-orge/02-fiche-jardins-partages.md"),
        (
            "evaluation",
            "saint-aubin-des-pres/03-evaluation-chaufferie.md",
        ),
    ] {
        let text =
            std::fs::read_to_string(examples.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut draft = parse_publication(&text, None).unwrap_or_else(|v| panic!("{v:?}"));
        for link in &mut draft.publication.links {
            link.id = RecordId([0x11; 32]);
        }
        let record = Record::sign(&signing_key(), SIGNING_TIME, draft.publication)
            .unwrap_or_else(|e| panic!("{e}"));
        write("record_decode", &format!("{name}.record"), record.bytes());
        records.push(record);
    }

    // A peer holding items 100..300 against our 0..200: its first query, and our reply.
    let peer = items(100..300);
    let mut initiator =
        Negentropy::borrowed(&peer, SYNC_FRAME_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let query = initiator.initiate().unwrap_or_else(|e| panic!("{e}"));
    let mut responder =
        Negentropy::borrowed(storage(), SYNC_FRAME_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let reply = responder
        .reconcile(&query)
        .unwrap_or_else(|e| panic!("{e}"));
    write("sync_messages", "negentropy-query", &query);
    write("sync_messages", "negentropy-reply", &reply);

    write(
        "sync_messages",
        "sync-request.cbor",
        &cbor(&SyncRequest { message: query }),
    );
    write(
        "sync_messages",
        "sync-response-reply.cbor",
        &cbor(&SyncResponse::Reply(reply)),
    );
    write(
        "sync_messages",
        "sync-response-refused.cbor",
        &cbor(&SyncResponse::Refused("busy".into())),
    );
    write(
        "sync_messages",
        "fetch-request.cbor",
        &cbor(&FetchRequest {
            ids: records.iter().map(Record::id).collect(),
        }),
    );
    write(
        "sync_messages",
        "fetch-response.cbor",
        &cbor(&FetchResponse {
            records: vec![records[1].bytes().to_vec().into()],
        }),
    );
    write(
        "sync_messages",
        "announce",
        &Announce {
            id: records[0].id(),
        }
        .encode(),
    );
}

/// A wire message, encoded as CBOR.
fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}
