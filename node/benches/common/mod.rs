//! Synthetic records for the benchmarks: French-looking text from a small vocabulary, about
//! 2.5 KB per record (the size of the sample corpus' write-ups), signed by 50 town keys.

#![allow(dead_code)]

pub mod net;

use cailloux_node::Multiaddr;
use cailloux_node::daemon::{Daemon, NodeOptions};
use cailloux_protocol::{Kind, Outcome, Publication, Record, SigningKey, Theme};
use std::time::Duration;

/// A node on loopback with an ephemeral port, mDNS off, and no periodic catch-up (it would add
/// traffic unrelated to what is measured).
pub fn options(bootstrap: Vec<Multiaddr>) -> NodeOptions {
    NodeOptions {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        ],
        api: "127.0.0.1:0".into(),
        public_api: None,
        public_url: None,
        bootstrap,
        mdns: false,
        town: Some("Bench".into()),
        sync_interval: Duration::from_secs(3600),
        max_peers: cailloux_node::daemon::DEFAULT_MAX_PEERS,
        store_cache_mb: cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
        blob_cache_mb: cailloux_node::home::DEFAULT_BLOB_CACHE_MB,
        relay: false,
    }
}

/// The node's first listen address, once it is listening.
pub async fn listen_addr(node: &Daemon) -> anyhow::Result<Multiaddr> {
    loop {
        if let Some(addr) = node.net_status().await?.listen_addrs.first() {
            return Ok(addr.parse()?);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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

pub fn text(seed: usize, words: usize) -> String {
    (0..words)
        .map(|i| WORDS[(seed * 7 + i * 13 + i / 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Publication `i` of the synthetic corpus, with `body` as its text.
pub fn publication(i: usize, body: String) -> Publication {
    Publication {
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
        attachments: Vec::new(),
        body,
    }
}

/// Signs publication `i` with one of 50 town keys, dated `i` ms after a fixed instant.
pub fn sign(i: usize, p: Publication) -> Record {
    let key = SigningKey::from_bytes(&[(i % 50) as u8 + 1; 32]);
    Record::sign(&key, 1_700_000_000_000 + i as u64, p).unwrap_or_else(|e| panic!("{e}"))
}

pub fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let body = format!(
                "## Contexte\n{}\n\n## Résultats\n{}\n",
                text(i, 120),
                text(i + 2, 80)
            );
            sign(i, publication(i, body))
        })
        .collect()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The value at quantile `q` (0..=1) of `v`.
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The record count given on the command line (`cargo bench ... -- 50000`), else `default`.
pub fn count_arg(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// `records(n)` and their JSONL export, as `cailloux export` writes it.
pub fn records_and_jsonl(n: usize) -> (Vec<Record>, Vec<u8>) {
    eprintln!("preparing {n} signed records…");
    let records = records(n);
    let mut jsonl = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut jsonl, &cailloux_node::exchange::jsonl_line(r))
            .unwrap_or_else(|e| panic!("{e}"));
        jsonl.push(b'\n');
    }
    (records, jsonl)
}
