//! Catch-up: a node that was offline while 10,000 records were published comes back; records/s
//! from its start (dialing, reconciliation, fetching, verifying, storing) until it holds them
//! all, beside a local `import` of the same records in the same run (the same checks and stores,
//! without the network) as the baseline.
//!
//! Run: `cargo bench -p cailloux-node --bench catchup` (optionally `-- 50000`).

mod common;

use cailloux_node::daemon::Daemon;
use cailloux_node::exchange::{self, jsonl_line};
use cailloux_node::writer::Origin;
use cailloux_node::{Home, Store};
use common::{listen_addr, options, records};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    eprintln!("preparing {n} signed records…");
    let records = records(n);

    // Baseline: import the same records from a JSONL export into a fresh store.
    let mut jsonl = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut jsonl, &jsonl_line(r))?;
        jsonl.push(b'\n');
    }
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("store"),
        cailloux_protocol::Mode::Open,
        cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
    )?;
    let started = Instant::now();
    let report = exchange::import(&store, &mut jsonl.as_slice(), None, &mut |_| {})?;
    let import_rate = n as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(report.stored as usize == n);
    drop(store);

    // A holds the records (published while C was offline).
    let (home_a, home_c) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = Daemon::start(Home::new(home_a.path()), options(Vec::new())).await?;
    for chunk in records.chunks(1000) {
        a.writer().insert(chunk.to_vec(), Origin::Local).await?;
    }
    let addr = listen_addr(&a).await?;

    // C comes back.
    let started = Instant::now();
    let c = Daemon::start(Home::new(home_c.path()), options(vec![addr])).await?;
    let mut events = c.writer().subscribe();
    let mut held = 0usize;
    let deadline = started + Duration::from_secs(120);
    while held < n {
        match tokio::time::timeout_at(deadline.into(), events.recv()).await {
            Ok(Ok(stored)) => held += stored.records.len(),
            Ok(Err(e)) => anyhow::bail!("lost storage events: {e}"),
            Err(_) => anyhow::bail!("C holds {held} of {n} after {:?}", started.elapsed()),
        }
    }
    let elapsed = started.elapsed();
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{n} records of about {} bytes",
        records.iter().map(|r| r.bytes().len()).sum::<usize>() / n
    );
    println!("local import (baseline)   : {import_rate:>8.0} records/s");
    println!(
        "catch-up over the network : {rate:>8.0} records/s ({n} in {elapsed:.2?}, from start to holding all) = {:.0}% of import",
        100.0 * rate / import_rate
    );
    c.stop().await?;
    a.stop().await?;
    Ok(())
}
