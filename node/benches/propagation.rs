//! Propagation across a mesh of 10 local nodes (in one process, real libp2p over loopback TCP):
//! for 100 records published one after another on node 0, the time until every node holds the
//! record (p50, p99), and the bytes each node receives per record (all libp2p traffic, after
//! encryption and framing, from the transport's own counters) divided by the record's size.
//!
//! Run: `cargo bench -p cailloux-node --bench propagation` (optionally `-- NODES RECORDS`).

mod common;

use cailloux_node::Home;
use cailloux_node::daemon::Daemon;
use cailloux_node::writer::Origin;
use common::net::inbound_bytes;
use common::{listen_addr, options, quantile, records};
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, count) = (
        args.first().copied().unwrap_or(10),
        args.get(1).copied().unwrap_or(100),
    );
    let dirs: Vec<tempfile::TempDir> = (0..n)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    let mut nodes: Vec<Daemon> = Vec::new();
    let mut addrs: Vec<cailloux_node::Multiaddr> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        // Each node bootstraps to the previous one and to the one three before it: a connected
        // mesh that is not a full graph; Kademlia may add links.
        let bootstrap: Vec<cailloux_node::Multiaddr> = [i.checked_sub(1), i.checked_sub(3)]
            .into_iter()
            .flatten()
            .map(|j| addrs[j].clone())
            .collect();
        let node = Daemon::start(Home::new(dir.path()), options(bootstrap)).await?;
        let addr = listen_addr(&node).await?;
        addrs.push(addr);
        nodes.push(node);
    }
    // Wait for the gossip mesh: every node has at least two mesh peers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = true;
        for node in &nodes {
            ready &= node.net_status().await?.gossip_peers >= 2;
        }
        if ready {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the mesh did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut connections = 0;
    for node in &nodes {
        connections += node.net_status().await?.peers;
    }
    println!(
        "{n} nodes, {} connections, gossip mesh formed",
        connections / 2
    );

    let records = records(count);
    let size = records.iter().map(|r| r.bytes().len()).sum::<usize>() as f64 / count as f64;
    let mut events: Vec<_> = nodes.iter().map(|node| node.writer().subscribe()).collect();
    let before: f64 = nodes
        .iter()
        .map(|node| inbound_bytes(node.api_addr()))
        .sum();
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for record in records {
        let id = record.id();
        let t0 = Instant::now();
        nodes[0]
            .writer()
            .insert(vec![record], Origin::Local)
            .await?;
        let mut holding: HashSet<usize> = HashSet::from([0]);
        let deadline = t0 + Duration::from_secs(10);
        while holding.len() < n {
            for (i, rx) in events.iter_mut().enumerate().skip(1) {
                while let Ok(stored) = rx.try_recv() {
                    if stored.records.iter().any(|(r, _)| *r == id) {
                        holding.insert(i);
                    }
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "record {} reached only {} nodes",
                id.short(),
                holding.len()
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let elapsed = started.elapsed();
    let after: f64 = nodes
        .iter()
        .map(|node| inbound_bytes(node.api_addr()))
        .sum();
    let per_node_per_record = (after - before) / (n - 1) as f64 / count as f64;
    println!(
        "{count} records of {size:.0} bytes on average, published one after another on node 0 ({elapsed:.2?} in all)"
    );
    println!(
        "time until all {n} nodes hold a record: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(latencies.clone(), 0.5),
        quantile(latencies.clone(), 0.99),
        quantile(latencies, 1.0)
    );
    println!(
        "bytes received per node per record: {per_node_per_record:.0} = {:.2}x the record's size (baseline: the record itself, 1.00x)",
        per_node_per_record / size
    );
    for node in nodes {
        node.stop().await?;
    }
    Ok(())
}
