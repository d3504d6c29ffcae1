//! Time, with the real binary: a node refuses records dated too far ahead of its clock as
//! pending (they heal through catch-up once the clock reaches them) and records dated after
//! year 9999 as invalid; the trust commands refuse `--until` dates before 1970.

mod util;

use base64::Engine;
use cailloux_protocol::record::{AuthorKey, Body, SIGNING_CONTEXT};
use cailloux_protocol::{MIN_FORMAT_VERSION, Publication, Record, SigningKey, parse_publication};
use serde_json::{Value, json};
use util::*;

fn publication(title: &str) -> Publication {
    let text = format!(
        "---\nkind: practice\ntitle: \"{title}\"\nsummary: Un essai daté.\nthemes: [food]\ntown: Vallon\n---\nCorps.\n"
    );
    parse_publication(&text, None)
        .unwrap_or_else(|v| panic!("{v:?}"))
        .publication
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The bytes of a record signed by hand, whatever its date (`Record::sign` refuses dates after
/// year 9999, as a hostile peer's code would not).
fn signed_by_hand(key: &SigningKey, at: u64, p: Publication) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let body = Body {
        v: MIN_FORMAT_VERSION,
        author: AuthorKey(key.verifying_key().to_bytes()),
        created_at: at,
        publication: Some(p),
        act: None,
    };
    let mut body_bytes = Vec::new();
    ciborium::into_writer(&body, &mut body_bytes).unwrap_or_else(|e| panic!("{e}"));
    let signature = key.sign(&[SIGNING_CONTEXT, &body_bytes].concat());
    // CBOR: a 2-array of byte strings, lengths in their shortest form.
    let header: Vec<u8> = match body_bytes.len() {
        n @ 0..=23 => vec![0x40 | n as u8],
        n @ 24..=0xff => vec![0x58, n as u8],
        n => [&[0x59][..], &(n as u16).to_be_bytes()].concat(),
    };
    [
        &[0x82][..],
        &header,
        &body_bytes,
        &[0x58, 0x40],
        &signature.to_bytes(),
    ]
    .concat()
}

/// POSTs records to a node's `/api/v1/submit`: (status, JSON answer).
fn submit(node: &NodeProcess, records: &[Vec<u8>]) -> (u16, Value) {
    let encoded: Vec<String> = records
        .iter()
        .map(|r| base64::engine::general_purpose::STANDARD.encode(r))
        .collect();
    let mut response = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("http://{}/api/v1/submit", node.api()))
        .send_json(json!({ "records": encoded }))
        .unwrap_or_else(|e| panic!("{e}"));
    let body = response.body_mut().read_json().unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

fn status_of(node: &NodeProcess, id: &str) -> u16 {
    let response = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("http://{}/api/v1/records/{id}", node.api()))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    response.status().as_u16()
}

#[test]
fn a_node_takes_records_dated_a_little_ahead_and_holds_back_the_rest() {
    let mut node = NodeProcess::start("Vallon", &[]);
    let key = SigningKey::from_bytes(&[42; 32]);
    let now = now_millis();

    // Two hours ahead: pending (409), with the record's date, the node's clock and the skew.
    let ahead = Record::sign(
        &key,
        now + 2 * 3600 * 1000,
        publication("Deux heures d'avance"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, answer) = submit(&node, &[ahead.bytes().to_vec()]);
    assert_eq!(status, 409, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    let date = cailloux_protocol::time::rfc3339_millis(ahead.created_at());
    assert!(
        error.contains(&date) && error.contains("clock") && error.contains("10 minutes"),
        "{answer}"
    );
    assert_eq!(answer["problems"][0]["reason"], "pending", "{answer}");
    assert_eq!(status_of(&node, &ahead.id().to_hex()), 404, "not stored");
    assert!(!node.ids().contains(&ahead.id().to_hex()), "not listed");

    // A few seconds ahead (a clock a little fast): stored and listed.
    let soon = Record::sign(&key, now + 5_000, publication("Cinq secondes d'avance"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, answer) = submit(&node, &[soon.bytes().to_vec()]);
    assert_eq!(status, 200, "{answer}");
    assert!(node.ids().contains(&soon.id().to_hex()));

    // After year 9999: not a record at all (400, naming the field).
    let far = signed_by_hand(&key, 253_402_300_800_000, publication("An 10000"));
    let (status, answer) = submit(&node, &[far]);
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("created_at") && error.contains("9999-12-31T23:59:59.999Z"),
        "{answer}"
    );
    let _ = node.stop();
}

#[test]
fn until_dates_before_1970_are_refused() {
    let coordinator = TestHome::empty();
    coordinator.ok(&["federation", "create", "--name", "Essai"]);
    let town = TestHome::empty();
    let town_key = town
        .ok(&["init", "--town", "Vallon-sur-Orge"])
        .trim()
        .to_owned();
    let err = coordinator.fails(
        &[
            "federation",
            "admit",
            &town_key,
            "--town",
            "Vallon-sur-Orge",
            "--until",
            "1969-12-31",
        ],
        1,
    );
    assert!(
        err.contains("--until: 1969-12-31 is before 1970-01-01"),
        "{err}"
    );
    let person = TestHome::empty();
    let person_key = person.json(&["key", "new", "--json"])["public_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let err = town.fails(
        &[
            "delegate",
            &person_key,
            "--name",
            "Jeanne",
            "--until",
            "1969",
        ],
        1,
    );
    assert!(err.contains("--until: 1969 is before 1970-01-01"), "{err}");
    // 1970 itself is fine.
    town.ok(&[
        "delegate",
        &person_key,
        "--name",
        "Jeanne",
        "--until",
        "1970-01-01",
    ]);
}
