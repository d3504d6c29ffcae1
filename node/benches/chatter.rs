//! What each periodic exchange costs per connection per minute on a quiet network (nothing
//! published): ping, identify, Kademlia's refresh, gossipsub's heartbeat (mesh upkeep and IHAVE)
//! and the periodic reconciliation.
//!
//! libp2p counts bytes per transport, not per protocol, so the cost is found by difference:
//! several networks of the same shape (N nodes, default 10, in this one process, real libp2p
//! over loopback TCP, each node bootstrapping to two random earlier ones) run side by side
//! through the same quiet period. In the floor network every exchange is slowed down to once a
//! day (gossipsub's heartbeat to once a minute: the mesh needs it); each other network runs one
//! exchange at its default interval over that floor, and the last runs them all. An exchange's
//! cost is what its network receives more than the floor (all libp2p traffic, after encryption
//! and framing, from each node's `/metrics`), per connection (both directions of it) per minute.
//! (Taking each one away from the full set instead was drowned in Kademlia's variations.)
//!
//! The quiet period (default 300 s, `--quiet SECS`) must hold at least one period of the slowest
//! exchange to see it; the reconciliation runs at `--sync-interval SECS` (default 60, the
//! node's default) at the base.
//!
//! Every node holds the same records (`--records R`, default 200), as towns do between
//! publications.
//!
//! Run: `cargo bench -p cailloux-node --bench chatter` (options `--nodes N`, `--quiet SECS`,
//! `--sync-interval SECS`, `--records R`, `--seed S`, `--before`: the intervals of before they
//! were cut).

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
    // `--before`: the intervals this node ran before they were cut (libp2p's defaults, and a
    // 700 ms heartbeat); reconciliation's opening and back-off are code, not intervals, and stay.
    let base = if std::env::args().any(|a| a == "--before") {
        Chatter {
            ping: Duration::from_secs(15),
            identify: Duration::from_secs(300),
            kad_refresh: Duration::from_secs(300),
            heartbeat: Duration::from_millis(700),
        }
    } else {
        Chatter::default()
    };
    println!(
        "chatter: {n}-node networks side by side in one process (in-process Daemons, real libp2p \
         over loopback TCP); defaults {base:?}, reconciliation every {sync:?} at the base; \
         quiet period {quiet:?}; every node holds the same {records_held} records"
    );
    // Each exchange alone, beside a network where all are slowed down (the floor), and one
    // where all run (the total).
    let none = Chatter {
        ping: DAY,
        identify: DAY,
        kad_refresh: DAY,
        heartbeat: Duration::from_secs(60),
    };
    let variants: Vec<(&str, Chatter, Duration)> = vec![
        ("none", none.clone(), DAY),
        (
            "ping",
            Chatter {
                ping: base.ping,
                ..none.clone()
            },
            DAY,
        ),
        (
            "identify",
            Chatter {
                identify: base.identify,
                ..none.clone()
            },
            DAY,
        ),
        (
            "kademlia refresh",
            Chatter {
                kad_refresh: base.kad_refresh,
                ..none.clone()
            },
            DAY,
        ),
        (
            "gossipsub heartbeat",
            Chatter {
                heartbeat: base.heartbeat,
                ..none.clone()
            },
            DAY,
        ),
        ("reconciliation", none.clone(), sync),
        ("all", base.clone(), sync),
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
        println!("started the network with {name}");
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
    let (floor, _) = rows[0];
    let (all, all_conns) = rows[rows.len() - 1];
    let per_conn_min = |bytes: f64| bytes / all_conns / minutes;
    println!();
    println!(
        "{:<22} {:>14} {:>16} {:>12}",
        "exchange", "B/conn/min", "B/node/min", "connections"
    );
    let mut attributed = 0.0;
    for ((name, _, _), (bytes, connections)) in
        variants.iter().zip(&rows).skip(1).take(variants.len() - 2)
    {
        let cost = bytes - floor;
        attributed += cost;
        println!(
            "{name:<22} {:>14.0} {:>16.0} {:>12.0}",
            per_conn_min(cost),
            cost / n as f64 / minutes,
            connections
        );
    }
    for (name, bytes) in [
        ("floor (none of them)", floor),
        ("all, less the above", all - attributed - floor),
        ("all", all),
    ] {
        println!(
            "{name:<22} {:>14.0} {:>16.0} {:>12.0}",
            per_conn_min(bytes),
            bytes / n as f64 / minutes,
            all_conns
        );
    }
    println!(
        "background_bytes_per_connection_per_min={:.0}",
        per_conn_min(all)
    );
    println!(
        "background_bytes_per_node_per_min={:.0}",
        all / n as f64 / minutes
    );
    for net in nets {
        net.stop().await?;
    }
    Ok(())
}
