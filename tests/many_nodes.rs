//! Many towns: 60 real `cailloux node` processes on loopback (ephemeral ports, mDNS off), each
//! bootstrapping to two earlier ones. Records published at either end (the first node and the
//! last) reach every node within 30 s, and no node ever holds more than 32 connections: the
//! connection policy (`node/src/network/connections.rs`) keeps `max_peers` (24 by default) and
//! closes the excess, where without it every node ended up connected to all 59 others.
//!
//! A watcher thread reads every node's `/api/v1/status` throughout the run and keeps each node's
//! highest `peers`. Every process is killed when the test ends, passed or failed (`Network`'s
//! nodes are `NodeProcess`es, killed on drop, and the watcher stops on drop too).

mod util;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::*;

const NODES: usize = 60;
/// The bound: no node holds more than this many connections.
const MAX_CONNECTIONS: u64 = 32;
const DEADLINE: Duration = Duration::from_secs(30);

fn get_json(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    response.body_mut().read_json().ok()
}

fn status_of(api: &str) -> Option<Value> {
    get_json(&format!("http://{api}/api/v1/status"))
}

/// Whether the node at `api` holds the record `id`.
fn holds(api: &str, id: &str) -> bool {
    get_json(&format!("http://{api}/api/v1/records/{id}")).is_some()
}

/// Reads every node's status in a loop and keeps the highest peer count each showed.
struct Watcher {
    stop: Arc<AtomicBool>,
    highest: Arc<Mutex<Vec<u64>>>,
    apis: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start() -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let highest = Arc::new(Mutex::new(Vec::new()));
        let apis: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, highest, apis) = (stop.clone(), highest.clone(), apis.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let now: Vec<String> = apis.lock().map(|a| a.clone()).unwrap_or_default();
                    for (i, api) in now.iter().enumerate() {
                        if let Some(peers) = status_of(api).and_then(|s| s["peers"].as_u64())
                            && let Ok(mut h) = highest.lock()
                        {
                            if h.len() <= i {
                                h.resize(i + 1, 0);
                            }
                            h[i] = h[i].max(peers);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Watcher {
            stop,
            highest,
            apis,
            thread: Some(thread),
        }
    }

    fn watch(&self, api: String) {
        if let Ok(mut a) = self.apis.lock() {
            a.push(api);
        }
    }

    fn highest(&self) -> Vec<u64> {
        self.highest.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The nodes, killed on drop (each `NodeProcess` kills its process when dropped), after the
/// watcher has stopped.
struct Network {
    watcher: Watcher,
    nodes: Vec<NodeProcess>,
}

fn publish_one(node: &NodeProcess, tag: &str) -> String {
    let files = publication_files(1, tag);
    let out = node.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    published(&out)
        .first()
        .map(|(_, id)| id.clone())
        .unwrap_or_else(|| panic!("nothing published: {out}"))
}

#[test]
fn sixty_nodes_each_bootstrapping_to_two_earlier_ones_all_receive_records_published_at_either_end_and_none_holds_more_than_32_connections()
 {
    let started = Instant::now();
    let mut net = Network {
        watcher: Watcher::start(),
        nodes: Vec::with_capacity(NODES),
    };
    let mut addrs: Vec<String> = Vec::with_capacity(NODES);
    // Node i bootstraps to node i-1 and to another earlier node, picked by a fixed LCG so that
    // runs are alike: a chain with shortcuts, and some early nodes that many name.
    let mut lcg: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..NODES {
        let mut bootstrap = Vec::new();
        if i >= 1 {
            bootstrap.push(addrs[i - 1].clone());
        }
        if i >= 2 {
            lcg = lcg
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = ((lcg >> 33) % (i as u64 - 1)) as usize;
            bootstrap.push(addrs[j].clone());
        }
        let node = NodeProcess::start(&format!("Ville{i:02}"), &bootstrap);
        let api = node.api();
        let addr = status_of(&api)
            .and_then(|s| s["listen_addrs"][0].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("node {i} has no listening address"));
        addrs.push(addr);
        net.watcher.watch(api);
        net.nodes.push(node);
    }
    let apis: Vec<String> = net.nodes.iter().map(NodeProcess::api).collect();
    eprintln!("{NODES} nodes started in {:?}", started.elapsed());

    // Every node is connected to someone before anything is published.
    assert!(
        wait_until(Duration::from_secs(30), || apis.iter().all(|a| {
            status_of(a)
                .and_then(|s| s["peers"].as_u64())
                .is_some_and(|p| p >= 1)
        })),
        "some node has no peer"
    );

    let first = publish_one(&net.nodes[0], "premier");
    let last = publish_one(&net.nodes[NODES - 1], "dernier");
    let published_at = Instant::now();
    let mut arrived: Vec<Option<Duration>> = vec![None; NODES];
    let all_arrived = wait_until(DEADLINE, || {
        for (i, api) in apis.iter().enumerate() {
            if arrived[i].is_none() && holds(api, &first) && holds(api, &last) {
                arrived[i] = Some(published_at.elapsed());
            }
        }
        arrived.iter().all(Option::is_some)
    });

    let finals: Vec<Value> = apis
        .iter()
        .map(|a| status_of(a).unwrap_or(Value::Null))
        .collect();
    let now_peers: Vec<u64> = finals
        .iter()
        .map(|s| s["peers"].as_u64().unwrap_or(0))
        .collect();
    let mut highest = net.watcher.highest();
    highest.resize(NODES, 0);
    for (h, n) in highest.iter_mut().zip(&now_peers) {
        *h = (*h).max(*n);
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let mesh: Vec<u64> = finals
        .iter()
        .map(|s| s["gossip_peers"].as_u64().unwrap_or(0))
        .collect();
    let mut times: Vec<Duration> = arrived.iter().flatten().copied().collect();
    times.sort();
    let by = |via: &str| {
        net.nodes
            .iter()
            .map(|n| n.metric(&format!("cailloux_records_accepted_total{{via=\"{via}\"}}")))
            .sum::<f64>()
    };
    eprintln!(
        "connections per node: highest during the run max {} mean {:.1}; at the end max {} mean {:.1} (gossip mesh mean {:.1})",
        highest.iter().max().unwrap_or(&0),
        mean(&highest),
        now_peers.iter().max().unwrap_or(&0),
        mean(&now_peers),
        mean(&mesh),
    );
    eprintln!(
        "records reached {}/{NODES} nodes; time to reach all: {:?} (median node {:?}); received by gossip {}, by catch-up {}",
        times.len(),
        times.last(),
        times.get(times.len() / 2),
        by("gossip"),
        by("sync"),
    );
    let total = |series: &str| net.nodes.iter().map(|n| n.metric(series)).sum::<f64>();
    eprintln!(
        "connection policy, all nodes: closed idle {} busy {} mesh {}; dialled bootstrap {} diversity {}; denied inbound_full {} cooldown {} dial_at_bound {}",
        total("cailloux_connections_closed_total{reason=\"idle\"}"),
        total("cailloux_connections_closed_total{reason=\"busy\"}"),
        total("cailloux_connections_closed_total{reason=\"mesh\"}"),
        total("cailloux_connections_dialled_total{reason=\"bootstrap\"}"),
        total("cailloux_connections_dialled_total{reason=\"diversity\"}"),
        total("cailloux_connections_denied_total{reason=\"inbound_full\"}"),
        total("cailloux_connections_denied_total{reason=\"cooldown\"}"),
        total("cailloux_connections_denied_total{reason=\"dial_at_bound\"}"),
    );
    eprintln!("whole run {:?}", started.elapsed());

    let missing: Vec<usize> = (0..NODES).filter(|i| arrived[*i].is_none()).collect();
    assert!(
        all_arrived,
        "nodes {missing:?} lack a record {DEADLINE:?} after publication; the first's log:\n{}",
        missing
            .first()
            .map(|i| net.nodes[*i].log())
            .unwrap_or_default()
    );
    let over: Vec<(usize, u64)> = highest
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, h)| *h > MAX_CONNECTIONS)
        .collect();
    assert!(
        over.is_empty(),
        "nodes held more than {MAX_CONNECTIONS} connections (node, highest): {over:?}"
    );
}
