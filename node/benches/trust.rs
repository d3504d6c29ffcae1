//! What the chain of trust costs: importing the same records into a store in open mode and
//! into one that belongs to a federation (every record's author checked against the ledger: a
//! certified town, valid at the record's time, not revoked), in the same run, as a ratio. Also
//! the ledger's check alone, per record.
//!
//! Run: `cargo bench -p cailloux-node --bench trust` (optionally `-- 50000` for the count).

use cailloux_node::Store;
use cailloux_node::exchange;
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::{Act, Admission, Ledger, Mode};
use cailloux_protocol::{Record, SigningKey};
mod common;

use common::{count_arg, median, records_and_jsonl};
use std::time::Instant;

fn main() {
    let n = count_arg(20_000);
    let (records, jsonl) = records_and_jsonl(n);
    // The records' 50 authors (see common::records) are the towns of a federation.
    let federation = SigningKey::from_bytes(&[200; 32]);
    let public = AuthorKey(federation.verifying_key().to_bytes());
    let admissions: Vec<Record> = (0..50u8)
        .map(|j| {
            let town = SigningKey::from_bytes(&[j + 1; 32]);
            Record::sign_act(
                &federation,
                1_600_000_000_000,
                Act::Admit(Admission {
                    key: AuthorKey(town.verifying_key().to_bytes()),
                    town: format!("Commune-{j}"),
                    country: "FR".into(),
                    code: None,
                    until: None,
                }),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();

    let mut open_rates = Vec::new();
    let mut federated_rates = Vec::new();
    for round in 1..=3 {
        for mode in [Mode::Open, Mode::Federation(public)] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let store = Store::open(
                &dir.path().join("store"),
                mode,
                cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            store
                .insert_batch(&admissions, cailloux_node::now_millis())
                .unwrap_or_else(|e| panic!("{e}"));
            let t = Instant::now();
            let report = exchange::import(&store, &mut jsonl.as_slice(), None, &mut |_| {})
                .unwrap_or_else(|e| panic!("{e}"));
            let rate = n as f64 / t.elapsed().as_secs_f64();
            assert_eq!(
                report.stored as usize,
                n,
                "every record stored: {:?}",
                report.bad.first()
            );
            match mode {
                Mode::Open => open_rates.push(rate),
                Mode::Federation(_) => federated_rates.push(rate),
            }
        }
        eprintln!(
            "round {round}: open {:.0}/s, federation {:.0}/s",
            open_rates[round - 1],
            federated_rates[round - 1]
        );
    }

    // The ledger's check alone.
    let mut ledger = Ledger::new(Mode::Federation(public));
    for a in &admissions {
        ledger.apply(a);
    }
    let t = Instant::now();
    for r in &records {
        ledger
            .check(r, cailloux_node::now_millis())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let check_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let (open, federated) = (median(open_rates), median(federated_rates));
    println!(
        "import, open mode:       {open:.0} records/s (median of 3)\n\
         import, in a federation: {federated:.0} records/s = {:.2}x open mode\n\
         ledger check alone:      {check_ns:.0} ns per record ({:.2}% of an open-mode import's time per record)",
        federated / open,
        check_ns / (1e9 / open) * 100.0
    );
}
