//! Records: golden vectors that pin the wire format, round trips, and tampering.

use cailloux_protocol::record::SIGNING_CONTEXT;
use cailloux_protocol::*;
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn golden_publication() -> Publication {
    let text = include_str!("vectors/golden.md");
    let mut draft = parse_publication(text, None).unwrap_or_else(|v| panic!("{v:?}"));
    draft.publication.links[0].id = RecordId([0x11; 32]);
    draft.publication
}

const GOLDEN_TIME: u64 = 1_764_000_000_000;

/// Any change to the encoding, the signing context or the id derivation changes these bytes:
/// that is a new format version, not a patch.
#[test]
fn golden_vector() {
    let record =
        Record::sign(&key(7), GOLDEN_TIME, golden_publication()).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    if std::env::var_os("CAILLOUX_BLESS").is_some() {
        // Deliberate format changes only: regenerate the vectors, and bump FORMAT_VERSION.
        std::fs::write(
            dir.join("golden.record.hex"),
            id::encode_hex(record.bytes()) + "\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("golden.id"), record.id().to_hex() + "\n")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (expected_hex, expected_id) = (read("golden.record.hex"), read("golden.id"));
    let (expected_hex, expected_id) = (expected_hex.trim(), expected_id.trim());
    assert_eq!(
        id::encode_hex(record.bytes()),
        expected_hex,
        "the encoding of the golden record changed"
    );
    assert_eq!(record.id().to_hex(), expected_id);
    assert_eq!(
        record.author().to_hex(),
        "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
    );
    // Decoding the stored bytes verifies and yields the same id and publication.
    let bytes = id::decode_hex(expected_hex).unwrap_or_default();
    let decoded = Unverified::decode(bytes)
        .unwrap_or_else(|e| panic!("{e}"))
        .verify();
    let decoded = decoded.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.id().to_hex(), expected_id);
    assert_eq!(decoded.publication(), Some(&golden_publication()));
    // The id is the plain BLAKE3 of the record bytes, so anyone can check it with b3sum.
    assert_eq!(blake3::hash(decoded.bytes()).to_hex().as_str(), expected_id);
}

#[test]
fn signature_covers_the_domain_separated_body() {
    use ed25519_dalek::Verifier;
    let record =
        Record::sign(&key(3), GOLDEN_TIME, golden_publication()).unwrap_or_else(|e| panic!("{e}"));
    let bytes = record.bytes();
    // [0x82, 0x59, len_hi, len_lo, body..., 0x58, 0x40, sig...]
    let body_len = usize::from(bytes[2]) << 8 | usize::from(bytes[3]);
    let body = &bytes[4..4 + body_len];
    let vk = key(3).verifying_key();
    let sig = ed25519_dalek::Signature::from_bytes(record.signature());
    assert!(vk.verify(&[SIGNING_CONTEXT, body].concat(), &sig).is_ok());
    assert!(
        vk.verify(body, &sig).is_err(),
        "a bare body must not verify"
    );
}

#[test]
fn oversize_records_are_refused_on_sign_and_decode() {
    let mut p = golden_publication();
    p.body = "x".repeat(MAX_RECORD_BYTES);
    assert!(matches!(
        Record::sign(&key(1), GOLDEN_TIME, p),
        Err(SignError::TooLarge { .. })
    ));
    let big = vec![0x82; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        Unverified::decode(big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn a_forged_signature_fails_and_batch_finds_it() {
    let good: Vec<Record> = (0..9)
        .map(|i| {
            Record::sign(&key(i), GOLDEN_TIME + u64::from(i), golden_publication())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let mut inputs: Vec<Unverified> = good
        .iter()
        .map(|r| Unverified::decode(r.bytes().to_vec()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    // Record 4 claims the author of record 5: a valid signature, by the wrong key.
    let mut forged = good[4].bytes().to_vec();
    let author_at = find(&forged, &good[4].author().0);
    forged[author_at..author_at + 32].copy_from_slice(&good[5].author().0);
    inputs[4] = Unverified::decode(forged).unwrap_or_else(|e| panic!("{e}"));
    let results = verify_all(inputs);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_err(), i == 4, "record {i}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("not found"))
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Zéèàçœ0-9 ,.'!?-]{{0,{max}}}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .prop_map(|s| format!("x{s}"))
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        (-1e12f64..1e12).prop_map(Number::Float)
    ]
}

fn date() -> impl Strategy<Value = time::PartialDate> {
    (1000u16..2100, proptest::option::of(1u8..=12), 1u8..=28).prop_map(|(year, month, d)| {
        time::PartialDate {
            year,
            month,
            day: month.map(|_| d),
        }
    })
}

fn indicator() -> impl Strategy<Value = Indicator> {
    (
        text(40),
        text(10),
        number(),
        proptest::option::of(number()),
        proptest::option::of(date()),
        proptest::option::of(text(30)),
    )
        .prop_map(|(name, unit, value, baseline, date, source)| Indicator {
            name,
            unit,
            value,
            baseline,
            target: None,
            date,
            source,
        })
}

prop_compose! {
    fn publication()(
        kind in prop::sample::select(Kind::ALL.to_vec()),
        title in text(120),
        summary in text(300),
        town in text(30),
        themes in prop::sample::subsequence(Theme::ALL.to_vec(), 1..4),
        tags in prop::collection::vec(text(20), 0..4),
        sdgs in prop::sample::subsequence((1u8..=17).collect::<Vec<_>>(), 0..4),
        start in proptest::option::of(date()),
        participation in proptest::option::of(prop::sample::select(Participation::ALL.to_vec())),
        links in prop::collection::vec((prop::sample::select(LinkRel::ALL.to_vec()), any::<[u8; 32]>()), 0..4),
        outcome in prop::sample::select(Outcome::ALL.to_vec()),
        need in proptest::option::of(prop::sample::select(Need::ALL.to_vec())),
        method in prop::sample::select(Method::ALL.to_vec()),
        indicators in prop::collection::vec(indicator(), 1..4),
        body in "(?s).{0,400}",
    ) -> Publication {
        let mut links: Vec<Link> = links.into_iter().map(|(rel, id)| Link { rel, id: RecordId(id) }).collect();
        if kind == Kind::Evaluation {
            links.push(Link { rel: LinkRel::Evaluates, id: RecordId([9; 32]) });
        }
        Publication {
            kind,
            title,
            summary,
            language: "fr".into(),
            town,
            themes,
            tags,
            sdgs,
            period: start.map(|start| Period { start, end: None }),
            participation,
            licence: "etalab-2.0".into(),
            links,
            outcome: (kind == Kind::Experiment).then_some(outcome),
            need: need.filter(|_| kind == Kind::Experiment),
            method: (kind == Kind::Evaluation).then_some(method),
            indicators: if kind == Kind::Evaluation { indicators } else { Vec::new() },
            attachments: Vec::new(),
            body,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn decode_of_encode_is_identity(p in publication(), seed in any::<[u8; 32]>(), at in 0..=record::MAX_CREATED_AT) {
        let record = Record::sign(&SigningKey::from_bytes(&seed), at, p.clone());
        let record = record.unwrap_or_else(|e| panic!("{e}"));
        let back = Unverified::decode(record.bytes().to_vec()).unwrap_or_else(|e| panic!("{e}"));
        let back = back.verify().unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(back.publication(), Some(&p));
        prop_assert_eq!(back.created_at(), at);
        prop_assert_eq!(back.id(), record.id());
        prop_assert_eq!(&back, &record);
    }

    #[test]
    fn any_flipped_byte_is_refused(p in publication(), position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let record = Record::sign(&key(5), GOLDEN_TIME, p).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = record.bytes().to_vec();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let verdict = Unverified::decode(bytes).map(Unverified::verify);
        prop_assert!(!matches!(verdict, Ok(Ok(_))), "flipping bit {} of byte {} went unnoticed", bit, at);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Unverified::decode(bytes).map(Unverified::verify);
    }
}

#[test]
fn every_byte_of_one_record_is_covered() {
    // The exhaustive version of the property above, on one record: every bit of every byte.
    let record =
        Record::sign(&key(9), GOLDEN_TIME, golden_publication()).unwrap_or_else(|e| panic!("{e}"));
    for at in 0..record.bytes().len() {
        for bit in 0..8 {
            let mut bytes = record.bytes().to_vec();
            bytes[at] ^= 1 << bit;
            let verdict = Unverified::decode(bytes).map(Unverified::verify);
            assert!(!matches!(verdict, Ok(Ok(_))), "bit {bit} of byte {at}");
        }
    }
}

#[test]
fn no_decoding_error_reads_as_rust_debug_text() {
    // Every flipped bit of one record that fails to decode says what is wrong in words: the
    // field and what was expected, never ciborium's debug text.
    let record =
        Record::sign(&key(9), GOLDEN_TIME, golden_publication()).unwrap_or_else(|e| panic!("{e}"));
    for at in 0..record.bytes().len() {
        for bit in 0..8 {
            let mut bytes = record.bytes().to_vec();
            bytes[at] ^= 1 << bit;
            if let Err(e) = Unverified::decode(bytes) {
                let text = e.to_string();
                for debug in ["Semantic(", "Syntax(", "Io(", "Some(", "None", "Recursion"] {
                    assert!(!text.contains(debug), "bit {bit} of byte {at}: {text}");
                }
            }
        }
    }
}

/// The acts' encoding, pinned like the publication's: one record per line, in this order:
/// found, admit, delegate, revoke, retract.
#[test]
fn golden_act_vectors() {
    use cailloux_protocol::record::AuthorKey;
    use cailloux_protocol::trust::{Act, Admission, Delegation, Founding, Retraction, Revocation};
    let public = |seed: u8| AuthorKey(key(seed).verifying_key().to_bytes());
    let acts = [
        Act::Found(Founding {
            name: "Réseau des cailloux".into(),
        }),
        Act::Admit(Admission {
            key: public(8),
            town: "Loos-en-Gohelle".into(),
            country: "FR".into(),
            code: Some("62523".into()),
            until: Some(1_893_455_999_999),
        }),
        Act::Delegate(Delegation {
            key: public(9),
            name: "Jeanne Martin".into(),
            role: Some("chargée de mission".into()),
            kinds: vec![cailloux_protocol::Kind::Experiment],
            until: None,
        }),
        Act::Revoke(Revocation {
            key: public(9),
            reason: "a quitté la mairie".into(),
        }),
        Act::Retract(Retraction {
            id: cailloux_protocol::RecordId([3; 32]),
            reason: "chiffres erronés".into(),
        }),
    ];
    let lines: Vec<String> = acts
        .into_iter()
        .map(|act| {
            let r = Record::sign_act(&key(7), GOLDEN_TIME, act).unwrap_or_else(|e| panic!("{e}"));
            format!("{} {}", r.id().to_hex(), id::encode_hex(r.bytes()))
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/acts.hex");
    if std::env::var_os("CAILLOUX_BLESS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(lines, expected, "the encoding of an act changed");
    for line in expected {
        let (id, hex) = line.split_once(' ').unwrap_or_default();
        let bytes = id::decode_hex(hex).unwrap_or_default();
        let r = Unverified::decode(bytes)
            .unwrap_or_else(|e| panic!("{e}"))
            .verify()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.id().to_hex(), id);
        assert!(r.act().is_some() && r.publication().is_none());
    }
}

/// The last millisecond a record may be dated: 9999-12-31T23:59:59.999Z.
const LAST_MILLISECOND: u64 = 253_402_300_799_999;

/// A signed record with any creation time, built by hand (`Record::sign` refuses dates after
/// year 9999): what a hostile peer could send.
fn signed_by_hand(at: u64) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let body = record::Body {
        v: MIN_FORMAT_VERSION,
        author: AuthorKey(key(7).verifying_key().to_bytes()),
        created_at: at,
        publication: Some(golden_publication()),
        act: None,
    };
    let mut body_bytes = Vec::new();
    ciborium::into_writer(&body, &mut body_bytes).unwrap_or_else(|e| panic!("{e}"));
    let signature = key(7).sign(&[SIGNING_CONTEXT, &body_bytes].concat());
    let length = u16::try_from(body_bytes.len()).unwrap_or_else(|e| panic!("{e}"));
    [
        &[0x82, 0x59][..],
        &length.to_be_bytes(),
        &body_bytes,
        &[0x58, 0x40],
        &signature.to_bytes(),
    ]
    .concat()
}

/// Creation times after year 9999 are not valid: `u64::MAX` ms would reach the reconciliation
/// index, which reads it as infinity. The vectors pin the bytes: the last valid millisecond,
/// the one after it, and `u64::MAX`.
#[test]
fn a_record_dated_after_year_9999_is_not_a_record() {
    assert_eq!(record::MAX_CREATED_AT, LAST_MILLISECOND);
    let times = [LAST_MILLISECOND, LAST_MILLISECOND + 1, u64::MAX];
    let lines: Vec<String> = times
        .iter()
        .map(|at| format!("{at} {}", id::encode_hex(&signed_by_hand(*at))))
        .collect();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/far_future.hex");
    if std::env::var_os("CAILLOUX_BLESS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lines, expected.lines().collect::<Vec<_>>());
    for line in expected.lines() {
        let (at, hex) = line.split_once(' ').unwrap_or_default();
        let at: u64 = at.parse().unwrap_or_else(|e| panic!("{e}"));
        let decoded = Unverified::decode(id::decode_hex(hex).unwrap_or_default());
        if at == LAST_MILLISECOND {
            let record = decoded
                .unwrap_or_else(|e| panic!("{e}"))
                .verify()
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                time::rfc3339_millis(record.created_at()),
                "9999-12-31T23:59:59.999Z"
            );
            continue;
        }
        match decoded {
            Err(DecodeError::Invalid(v)) => {
                assert_eq!(v.len(), 1, "{v:?}");
                assert_eq!(v[0].field, "created_at");
                assert!(
                    v[0].message.contains("9999-12-31T23:59:59.999Z"),
                    "{}",
                    v[0]
                );
            }
            other => panic!("a record dated {at} decoded as {other:?}"),
        }
    }
    // Signing refuses it too.
    let refused = Record::sign(&key(7), LAST_MILLISECOND + 1, golden_publication());
    assert!(
        matches!(&refused, Err(SignError::Invalid(v)) if v[0].field == "created_at"),
        "{refused:?}"
    );
    assert!(Record::sign(&key(7), LAST_MILLISECOND, golden_publication()).is_ok());
}
