//! What each periodic exchange costs per connection per minute on a quiet network (nothing
//! published): ping, identify, Kademlia's refresh, gossipsub's heartbeat (mesh upkeep and IHAVE)
//! and the periodic reconciliation.
//!
//! libp2p counts bytes per transport, not per protocol, so the cost is found by difference:
//! several networks of the same shape (N nodes, default 10, in this one process, real libp2p
//! over loopback TCP, each node bootstrapping to two random earlier ones) run side by side
//! through the same quiet period; one runs every exchange at its default interval, and each of
//! the others slows one exchange down to once a day (gossipsub's heartbeat to once a minute: the
//! mesh needs it). A protocol's cost is what the network with every exchange receives more than
//! the network without it (all libp2p traffic, after encryption and framing, from each node's
//! `/metrics`), per connection (both directions of it) per minute. What no variant accounts for
//! is printed as the remainder.
//!
//! The quiet period (default 300 s, `--quiet SECS`) must hold at least one period of the slowest
//! exchange to see it; the reconciliation runs at `--sync-interval SECS` (default 60, the
//! node's default) at the base.
//!
//! Every node holds the same records (`--records R`, default 200), as towns do between
//! publications.
//!
//! Run: `cargo bench -p cailloux-node --bench chatter` (options `--nodes N`, `--quiet SECS`,
//! `--sync-interval SECS`, `--records R`, `--seed S`).

mod common;

use cailloux_node::network::Chatter;
use common::net::{Net, Rng, flag};
use common::options;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = flag("--nodes", 10)?;
    let quiet = Duration::from_secs(flag("--quiet", 300)?);
    let sync = Duration::from_secs(flag("--sync-interval", 60)?);
    let seed: u64 = flag("--seed", 0xc4a7)?;
    let records_held: usize = flag("--records", 200)?;
    anyhow::ensure!(n >= 2, "--nodes must be at least 2");
    let base = Chatter::default();
    println!(
        "chatter: {n}-node networks side by side in one process (in-process Daemons, real libp2p \
         over loopback TCP); defaults {base:?}, reconciliation every {sync:?} at the base; \
         quiet period {quiet:?}; every node holds the same {records_held} records"
    );
    let variants: Vec<(&str, Chatter, Duration)> = vec![
        ("every exchange", base.clone(), sync),
        (
            "ping",
            Chatter {
                ping: DAY,
                ..base.clone()
            },
            sync,
        ),
        (
            "identify",
            Chatter {
                identify: DAY,
                ..base.clone()
            },
            sync,
        ),
        (
            "kademlia refresh",
            Chatter {
                kad_refresh: DAY,
                ..base.clone()
            },
            sync,
        ),
        (
            "gossipsub heartbeat",
            Chatter {
                heartbeat: Duration::from_secs(60),
                ..base.clone()
            },
            sync,
        ),
        ("reconciliation", base.clone(), DAY),
    ];
    let mut nets = Vec::new();
    for (name, chatter, sync_interval) in &variants {
        let mut rng = Rng::new(seed);
        let sync_interval = *sync_interval;
        let net = Net::start(
            n,
            2,
            &mut rng,
            |bootstrap| {
                let mut o = options(bootstrap);
                o.sync_interval = sync_interval;
                o
            },
            chatter,
        )
        .await?;
        println!("started the network without {name}");
        nets.push(net);
    }
    // Every node connected to at least two others (with a one-minute heartbeat the gossip mesh
    // forms slowly; the mesh is not what is measured here).
    let deadline = Instant::now() + Duration::from_secs(60);
    for net in &nets {
        loop {
            let conns = net.connections().await?;
            if conns.iter().all(|&c| c >= 2.min(n - 1)) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the networks did not connect");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every node holds the same records (as towns do between publications), stored as if they
    // had come from a peer, so that nothing is announced: reconciliation compares real sets.
    let records = common::records(records_held);
    for net in &nets {
        for node in &net.nodes {
            node.writer()
                .insert(records.clone(), cailloux_node::writer::Origin::Peer)
                .await?;
        }
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut before = Vec::new();
    for net in &nets {
        before.push(net.inbound_bytes().await);
    }
    tokio::time::sleep(quiet).await;
    let minutes = quiet.as_secs_f64() / 60.0;
    let mut rows = Vec::new();
    for (net, b) in nets.iter().zip(&before) {
        let bytes = net.inbound_bytes().await - b;
        let conns = net.connections().await?;
        let connections = conns.iter().sum::<usize>() as f64 / 2.0;
        rows.push((bytes, connections));
    }
    let (all, all_conns) = rows[0];
    let per_conn_min = |bytes: f64| bytes / all_conns / minutes;
    println!();
    println!(
        "{:<22} {:>14} {:>16} {:>12}",
        "exchange", "B/conn/min", "B/node/min", "connections"
    );
    let mut attributed = 0.0;
    for ((name, _, _), (bytes, connections)) in variants.iter().zip(&rows).skip(1) {
        let cost = all - bytes;
        attributed += cost;
        println!(
            "{name:<22} {:>14.0} {:>16.0} {:>12.0}",
            per_conn_min(cost),
            cost / n as f64 / minutes,
            connections
        );
    }
    println!(
        "{:<22} {:>14.0} {:>16.0} {:>12}",
        "remainder",
        per_conn_min(all - attributed),
        (all - attributed) / n as f64 / minutes,
        ""
    );
    println!(
        "{:<22} {:>14.0} {:>16.0} {:>12.0}",
        "all",
        per_conn_min(all),
        all / n as f64 / minutes,
        all_conns
    );
    println!("background_bytes_per_connection_per_min={:.0}", per_conn_min(all));
    println!(
        "background_bytes_per_node_per_min={:.0}",
        all / n as f64 / minutes
    );
    for net in nets {
        net.stop().await?;
    }
    Ok(())
}
