//! Import throughput (decode + verify + store + index, through `exchange::import`, the code path
//! of `cailloux import`) beside raw ed25519 verification of the same records on the same machine
//! in the same run, printed as a ratio because the machine is shared and noisy.
//!
//! Run: `cargo bench -p cailloux-node --bench import` (optionally `-- 50000` for the record count).

use cailloux_node::Store;
use cailloux_node::exchange::{self, jsonl_line};
use cailloux_protocol::record::SIGNING_CONTEXT;
use cailloux_protocol::{Kind, Outcome, Publication, Record, SigningKey, Theme};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::time::Instant;

const WORDS: &[&str] = &[
    "habitants",
    "commune",
    "jardin",
    "énergie",
    "chantier",
    "convention",
    "quartier",
    "école",
    "bénévoles",
    "mairie",
    "projet",
    "récolte",
    "chaufferie",
    "réseau",
    "transition",
    "village",
    "association",
    "élus",
    "atelier",
    "compost",
    "mobilité",
    "enquête",
    "bilan",
    "partage",
];

fn text(seed: usize, words: usize) -> String {
    (0..words)
        .map(|i| WORDS[(seed * 7 + i * 13 + i / 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn records(n: usize) -> Vec<Record> {
    let keys: Vec<SigningKey> = (0..50u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    (0..n)
        .map(|i| {
            let p = Publication {
                kind: Kind::Experiment,
                title: format!("Essai {i} : {}", text(i, 8)),
                summary: text(i + 1, 40),
                language: "fr".into(),
                town: format!("Commune-{}", i % 50),
                themes: vec![
                    Theme::ALL[i % Theme::ALL.len()],
                    Theme::ALL[(i + 3) % Theme::ALL.len()],
                ],
                tags: vec!["essai".into(), text(i, 1)],
                sdgs: vec![11],
                period: None,
                participation: None,
                licence: "etalab-2.0".into(),
                links: Vec::new(),
                outcome: Some(Outcome::ALL[i % 4]),
                need: None,
                method: None,
                indicators: Vec::new(),
                body: format!(
                    "## Contexte\n{}\n\n## Résultats\n{}\n",
                    text(i, 120),
                    text(i + 2, 80)
                ),
            };
            Record::sign(&keys[i % keys.len()], 1_700_000_000_000 + i as u64, p)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    eprintln!("preparing {n} signed records…");
    let records = records(n);
    let mut jsonl = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut jsonl, &jsonl_line(r)).unwrap_or_else(|e| panic!("{e}"));
        jsonl.push(b'\n');
    }
    let avg = records.iter().map(|r| r.bytes().len()).sum::<usize>() / n;
    println!(
        "{n} records, {avg} bytes each on average, JSONL export {} MiB",
        jsonl.len() >> 20
    );

    // The raw cost of checking one ed25519 signature at a time: the baseline.
    let prepared: Vec<(VerifyingKey, Vec<u8>, Signature)> = records
        .iter()
        .map(|r| {
            let body = &r.bytes()[4..r.bytes().len() - 66];
            let key = VerifyingKey::from_bytes(&r.author().0).unwrap_or_else(|e| panic!("{e}"));
            (
                key,
                [SIGNING_CONTEXT, body].concat(),
                Signature::from_bytes(r.signature()),
            )
        })
        .collect();

    let mut verify_rates = Vec::new();
    let mut batch_rates = Vec::new();
    let mut import_rates = Vec::new();
    for round in 1..=3 {
        let t = Instant::now();
        for (key, msg, sig) in &prepared {
            key.verify(msg, sig)
                .unwrap_or_else(|e| panic!("baseline: {e}"));
        }
        verify_rates.push(n as f64 / t.elapsed().as_secs_f64());

        let t = Instant::now();
        for chunk in prepared.chunks(exchange::CHUNK) {
            let msgs: Vec<&[u8]> = chunk.iter().map(|(_, m, _)| m.as_slice()).collect();
            let sigs: Vec<Signature> = chunk.iter().map(|(_, _, s)| *s).collect();
            let keys: Vec<VerifyingKey> = chunk.iter().map(|(k, _, _)| *k).collect();
            ed25519_dalek::verify_batch(&msgs, &sigs, &keys)
                .unwrap_or_else(|e| panic!("batch: {e}"));
        }
        batch_rates.push(n as f64 / t.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        let report = exchange::import(&store, &mut jsonl.as_slice(), &mut |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let rate = n as f64 / t.elapsed().as_secs_f64();
        assert_eq!(report.stored as usize, n, "every record stored");
        assert!(report.bad.is_empty());
        import_rates.push(rate);
        eprintln!(
            "round {round}: verify {:.0}/s, verify_batch {:.0}/s, import {:.0}/s",
            verify_rates[round - 1],
            batch_rates[round - 1],
            rate
        );
    }
    let (verify, batch, import) = (
        median(verify_rates),
        median(batch_rates),
        median(import_rates),
    );
    println!("single-signature verify : {verify:>9.0} records/s   (baseline)");
    println!(
        "batch verify ({:>4})     : {batch:>9.0} records/s   ({:.2}x baseline)",
        exchange::CHUNK,
        batch / verify
    );
    println!(
        "import (decode+verify+store+index, durable): {import:.0} records/s = {:.0}% of single-signature verify",
        100.0 * import / verify
    );
}
