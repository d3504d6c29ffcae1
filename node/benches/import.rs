//! Import throughput (decode + verify + store + index, through `exchange::import`, the code path
//! of `cailloux import`) beside raw ed25519 verification of the same records on the same machine
//! in the same run, printed as a ratio because the machine is shared and noisy.
//!
//! Run: `cargo bench -p cailloux-node --bench import` (optionally `-- 50000` for the record count).

use cailloux_node::Store;
use cailloux_node::exchange;
use cailloux_protocol::record::SIGNING_CONTEXT;
mod common;

use common::{count_arg, median, records_and_jsonl};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::time::Instant;

fn main() {
    let n = count_arg(20_000);
    let (records, jsonl) = records_and_jsonl(n);
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
        let store = Store::open(
            &dir.path().join("store"),
            cailloux_protocol::Mode::Open,
            cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        let report = exchange::import(&store, &mut jsonl.as_slice(), None, &mut |_| {})
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
