//! A network of towns at scale: N nodes (default 100) in this one process (in-process `Daemon`s,
//! each with its own store, index, writer and API; real libp2p between them over loopback TCP),
//! each bootstrapping to two random earlier nodes, `max_peers` at its default. Records are
//! published one after another from several nodes. Measured:
//! - connections per node (max and mean), once the gossip mesh has formed and the connections
//!   have settled, after publishing and after the quiet period (max: the largest seen; mean: at
//!   the end);
//! - the time until every node holds a record (p50, p99);
//! - amplification: bytes received per node per record (all libp2p traffic while publishing,
//!   after encryption and framing, from the transport's counters in each node's `/metrics`)
//!   divided by the record's size;
//! - background: bytes received per node per minute during a quiet period after publishing
//!   (nothing published; reconciliation at the default interval, ping, identify, Kademlia,
//!   gossipsub);
//! - memory: the process's RSS (`/proc/self/status`) divided by N.
//!
//! The same code first runs a 10-node network in the same process (the old propagation
//! benchmark's size) as the baseline; the N-node figures are printed beside it as ratios.
//!
//! Run: `cargo bench -p cailloux-node --bench scale -- --nodes 100` (options: `--records R`,
//! `--publishers P`, `--quiet SECS`, `--sync-interval SECS`, `--baseline N` (0: none),
//! `--fanout F`, `--seed S`).

mod common;

// The node's allocator, as in the `cailloux` binary.
cailloux_node::node_allocator!();

use cailloux_node::network::Chatter;
use cailloux_node::writer::Origin;
use cailloux_protocol::RecordId;
use common::net::{Net, Rng, flag, proc_status};
use common::{options, quantile, records};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Args {
    nodes: usize,
    baseline: usize,
    records: usize,
    publishers: usize,
    quiet: Duration,
    sync_interval: Duration,
    fanout: usize,
    seed: u64,
}

/// A record that did not reach every node counts as this long.
const RECORD_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone)]
struct Figures {
    nodes: usize,
    connections_max: usize,
    connections_mean: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Records that did not reach every node within RECORD_DEADLINE.
    late: usize,
    amplification: f64,
    amplification_less_background: f64,
    background_per_node_per_min: f64,
    rss_mb_per_node: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args {
        nodes: flag("--nodes", 100)?,
        baseline: flag("--baseline", 10)?,
        records: flag("--records", 50)?,
        publishers: flag("--publishers", 5)?,
        quiet: Duration::from_secs(flag("--quiet", 90)?),
        sync_interval: Duration::from_secs(flag("--sync-interval", 60)?),
        fanout: flag("--fanout", 2)?,
        seed: flag("--seed", 0x5ca1e)?,
    };
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    anyhow::ensure!(args.records >= 1, "--records must be at least 1");
    println!(
        "scale: nodes in one process (in-process Daemons with their own store, index and API; \
         real libp2p over loopback TCP), each bootstrapping to {} random earlier nodes, \
         max_peers {}, reconciliation every {:?} at the base, {} records from {} publishers, \
         quiet period {:?}",
        args.fanout,
        cailloux_node::daemon::DEFAULT_MAX_PEERS,
        args.sync_interval,
        args.records,
        args.publishers,
        args.quiet
    );
    let baseline = if args.baseline >= 2 {
        Some(run(args.baseline, &args).await?)
    } else {
        None
    };
    let figures = run(args.nodes, &args).await?;
    if let Some(base) = &baseline {
        println!();
        println!(
            "{:<44} {:>12} {:>12} {:>8}",
            "",
            format!("{} nodes", base.nodes),
            format!("{} nodes", figures.nodes),
            "ratio"
        );
        let rows: [(&str, f64, f64); 9] = [
            (
                "connections per node, max",
                base.connections_max as f64,
                figures.connections_max as f64,
            ),
            (
                "connections per node, mean",
                base.connections_mean,
                figures.connections_mean,
            ),
            ("time to all nodes, p50 (ms)", base.p50_ms, figures.p50_ms),
            ("time to all nodes, p99 (ms)", base.p99_ms, figures.p99_ms),
            ("time to all nodes, max (ms)", base.max_ms, figures.max_ms),
            (
                "amplification (all traffic)",
                base.amplification,
                figures.amplification,
            ),
            (
                "amplification less background",
                base.amplification_less_background,
                figures.amplification_less_background,
            ),
            (
                "background bytes per node per minute",
                base.background_per_node_per_min,
                figures.background_per_node_per_min,
            ),
            (
                "RSS per node (MB, process RSS / N)",
                base.rss_mb_per_node,
                figures.rss_mb_per_node,
            ),
        ];
        for (name, b, f) in rows {
            println!("{name:<44} {b:>12.2} {f:>12.2} {:>7.2}x", f / b);
        }
        println!(
            "{:<44} {:>12} {:>12}",
            "records late (counted as 30 s)", base.late, figures.late
        );
    }
    let f = &figures;
    println!("nodes={}", f.nodes);
    println!("connections_per_node_max={}", f.connections_max);
    println!("connections_per_node_mean={:.1}", f.connections_mean);
    println!("p50_ms={:.1}", f.p50_ms);
    println!("p99_ms={:.1}", f.p99_ms);
    println!("amplification={:.2}", f.amplification);
    println!(
        "background_bytes_per_node_per_min={:.0}",
        f.background_per_node_per_min
    );
    println!("rss_mb_per_node={:.1}", f.rss_mb_per_node);
    Ok(())
}

async fn run(n: usize, args: &Args) -> anyhow::Result<Figures> {
    println!();
    println!("== {n} nodes");
    let mut rng = Rng::new(args.seed ^ n as u64);
    let started = Instant::now();
    let sync_interval = args.sync_interval;
    let net = Net::start(
        n,
        args.fanout,
        &mut rng,
        |bootstrap| {
            let mut o = options(bootstrap);
            o.sync_interval = sync_interval;
            o
        },
        &Chatter::default(),
    )
    .await?;
    println!(
        "started in {:.1?}; process: {} threads, RSS {} MB",
        started.elapsed(),
        proc_status("Threads"),
        proc_status("VmRSS") / 1024
    );
    let formed = net
        .wait_for_mesh(2, Duration::from_secs(60 + n as u64))
        .await?;
    // Let the connections settle (Kademlia's lookups and the connection policy open and close
    // some after the mesh forms): the same total for 5 s, for at most a minute.
    let settling = Instant::now();
    let mut last = (0, Instant::now());
    while settling.elapsed() < Duration::from_secs(60) {
        let total: usize = net.connections().await?.iter().sum();
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut connections_max = 0;
    let conns = net.connections().await?;
    connections_max = connections_max.max(conns.iter().copied().max().unwrap_or(0));
    println!(
        "gossip mesh formed {formed:.1?} after the last start, connections settled {:.1?} later; connections per node: max {}, mean {:.1}",
        settling.elapsed(),
        connections_max,
        mean(&conns)
    );

    // Every node's storage events, time-stamped as they come.
    let (tx, mut arrivals) = mpsc::unbounded_channel::<(usize, RecordId, Instant)>();
    let mut listeners = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let mut rx = node.writer().subscribe();
        let tx = tx.clone();
        listeners.push(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(stored) => {
                        let now = Instant::now();
                        for (id, _) in stored.records {
                            let _ = tx.send((i, id, now));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    drop(tx);

    let records = records(args.records);
    let size = records.iter().map(|r| r.bytes().len()).sum::<usize>() as f64 / records.len() as f64;
    let publishers: Vec<usize> = (0..args.publishers.clamp(1, n))
        .map(|k| k * n / args.publishers.clamp(1, n))
        .collect();
    let before = net.inbound_bytes().await;
    let publishing = Instant::now();
    let mut latencies = Vec::with_capacity(records.len());
    // Per record: when it was published, ms until all nodes held it / until 90% did.
    let mut timeline = Vec::new();
    let mut late = 0;
    // Arrivals of a record seen before its turn (none expected: records go one at a time).
    let mut early: HashMap<RecordId, HashSet<usize>> = HashMap::new();
    for (k, record) in records.into_iter().enumerate() {
        let id = record.id();
        let publisher = publishers[k % publishers.len()];
        let t0 = Instant::now();
        net.nodes[publisher]
            .writer()
            .insert(vec![record], Origin::Local)
            .await?;
        let mut holding = early.remove(&id).unwrap_or_default();
        let mut times = vec![t0; holding.len()];
        let mut last = t0;
        let deadline = t0 + RECORD_DEADLINE;
        while holding.len() < n {
            match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
                Ok(Some((i, got, at))) if got == id => {
                    if holding.insert(i) {
                        times.push(at);
                    }
                    last = last.max(at);
                }
                Ok(Some((i, got, _))) => {
                    early.entry(got).or_default().insert(i);
                }
                Ok(None) => anyhow::bail!("storage events stopped"),
                Err(_) => break,
            }
        }
        if holding.len() < n {
            late += 1;
            println!(
                "record {k} ({}) from node {publisher} reached {} of {n} nodes within {RECORD_DEADLINE:?}",
                id.short(),
                holding.len()
            );
            latencies.push(RECORD_DEADLINE.as_secs_f64() * 1e3);
        } else {
            latencies.push((last - t0).as_secs_f64() * 1e3);
        }
        times.sort();
        let most = times
            .get((times.len() * 9).div_ceil(10).saturating_sub(1))
            .map_or(0.0, |t| (*t - t0).as_secs_f64() * 1e3);
        timeline.push(format!(
            "{:.1}s:{:.0}/{most:.0}",
            (t0 - publishing).as_secs_f64(),
            latencies.last().copied().unwrap_or(0.0)
        ));
    }
    let publish_time = publishing.elapsed();
    let after = net.inbound_bytes().await;
    println!(
        "per record, published at: ms until all / 90% of nodes held it: {}",
        timeline.join(" ")
    );
    let count = latencies.len() as f64;
    let per_node_per_record = (after - before) / (n - 1) as f64 / count;
    let conns = net.connections().await?;
    connections_max = connections_max.max(conns.iter().copied().max().unwrap_or(0));
    println!(
        "{} records of {size:.0} bytes from nodes {publishers:?}, one after another, in {publish_time:.1?}; connections per node now: max {}, mean {:.1}",
        latencies.len(),
        conns.iter().max().unwrap_or(&0),
        mean(&conns)
    );

    // Quiet: let the last announcements leave gossipsub's caches, then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let quiet_before = net.inbound_bytes().await;
    tokio::time::sleep(args.quiet).await;
    let quiet_after = net.inbound_bytes().await;
    let minutes = args.quiet.as_secs_f64() / 60.0;
    let background = (quiet_after - quiet_before) / n as f64 / minutes;
    let conns = net.connections().await?;
    connections_max = connections_max.max(conns.iter().copied().max().unwrap_or(0));
    let rss_kib = proc_status("VmRSS");
    let less_background =
        (after - before - background * n as f64 * publish_time.as_secs_f64() / 60.0)
            / (n - 1) as f64
            / count;
    let figures = Figures {
        nodes: n,
        connections_max,
        connections_mean: mean(&conns),
        p50_ms: quantile(latencies.clone(), 0.5),
        p99_ms: quantile(latencies.clone(), 0.99),
        max_ms: quantile(latencies, 1.0),
        late,
        amplification: per_node_per_record / size,
        amplification_less_background: less_background / size,
        background_per_node_per_min: background,
        rss_mb_per_node: rss_kib as f64 / 1024.0 / n as f64,
    };
    println!(
        "time until all {n} nodes hold a record: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
        figures.p50_ms,
        figures.p99_ms,
        figures.max_ms,
        if late > 0 {
            format!(" ({late} records late, counted as {RECORD_DEADLINE:?})")
        } else {
            String::new()
        }
    );
    println!(
        "bytes received per node per record: {per_node_per_record:.0} = {:.2}x the record's size ({:.2}x less the background rate)",
        figures.amplification, figures.amplification_less_background
    );
    println!(
        "quiet {:?}: {background:.0} bytes received per node per minute; connections per node: max {}, mean {:.1}",
        args.quiet,
        conns.iter().max().unwrap_or(&0),
        figures.connections_mean
    );
    println!(
        "process: RSS {} MB ({:.1} MB per node), {} threads",
        rss_kib / 1024,
        figures.rss_mb_per_node,
        proc_status("Threads")
    );
    for l in listeners {
        l.abort();
    }
    let stopping = Instant::now();
    net.stop().await?;
    println!("stopped in {:.1?}", stopping.elapsed());
    Ok(figures)
}

fn mean(v: &[usize]) -> f64 {
    v.iter().sum::<usize>() as f64 / v.len().max(1) as f64
}
