//! Networks of in-process nodes for the network benchmarks (`scale`, `chatter`): starting N
//! `Daemon`s in this process, each bootstrapping to a couple of random earlier ones, and reading
//! what they report (connections, libp2p's inbound byte counters, the process's memory).

#![allow(dead_code)]

use cailloux_node::daemon::{Daemon, NodeOptions};
use cailloux_node::network::Chatter;
use cailloux_node::{Home, Multiaddr};
use std::time::{Duration, Instant};

/// A seeded xorshift: the same seed draws the same network.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Nodes running in this process, and their homes.
pub struct Net {
    pub nodes: Vec<Daemon>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Net {
    /// Starts `n` nodes one after another; node `i > 0` bootstraps to `fanout` distinct random
    /// nodes among those before it.
    pub async fn start(
        n: usize,
        fanout: usize,
        rng: &mut Rng,
        options: impl Fn(Vec<Multiaddr>) -> NodeOptions,
        chatter: &Chatter,
    ) -> anyhow::Result<Net> {
        let mut nodes: Vec<Daemon> = Vec::with_capacity(n);
        let mut dirs = Vec::with_capacity(n);
        let mut addrs: Vec<Multiaddr> = Vec::with_capacity(n);
        for i in 0..n {
            let mut picks: Vec<usize> = Vec::new();
            while picks.len() < fanout.min(i) {
                let j = rng.below(i);
                if !picks.contains(&j) {
                    picks.push(j);
                }
            }
            let bootstrap = picks.iter().map(|&j| addrs[j].clone()).collect();
            let dir = tempfile::tempdir()?;
            let node =
                Daemon::start_with(Home::new(dir.path()), options(bootstrap), chatter.clone())
                    .await?;
            addrs.push(super::listen_addr(&node).await?);
            nodes.push(node);
            dirs.push(dir);
        }
        Ok(Net { nodes, _dirs: dirs })
    }

    /// Connected peers of each node.
    pub async fn connections(&self) -> anyhow::Result<Vec<usize>> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            out.push(node.net_status().await?.peers);
        }
        Ok(out)
    }

    /// Waits until every node has at least `min` gossip mesh peers.
    pub async fn wait_for_mesh(&self, min: usize, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let mut short = 0;
            for node in &self.nodes {
                if node.net_status().await?.gossip_peers < min {
                    short += 1;
                }
            }
            if short == 0 {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < within,
                "the gossip mesh did not form within {within:?}: {short} nodes have fewer than {min} mesh peers"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Bytes received by all nodes so far (all libp2p traffic).
    pub async fn inbound_bytes(&self) -> f64 {
        let apis: Vec<String> = self.nodes.iter().map(|n| n.api_addr().to_owned()).collect();
        tokio::task::spawn_blocking(move || apis.iter().map(|a| inbound_bytes(a)).sum())
            .await
            .unwrap_or(f64::NAN)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        for node in self.nodes {
            node.stop().await?;
        }
        Ok(())
    }
}

/// The bytes a node has received over libp2p, after encryption and framing: the sum of the
/// inbound `libp2p_bandwidth_bytes_total` counters of its `/metrics`.
pub fn inbound_bytes(api: &str) -> f64 {
    let text = ureq::get(format!("http://{api}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("libp2p_bandwidth_bytes_total{") && l.contains("direction=\"Inbound\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`), or the count (`Threads`).
pub fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Parses `--name value` from the command line.
pub fn flag<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}: cannot read {value:?}"))
        }
    }
}
