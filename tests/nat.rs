//! Towns behind NAT, through real kernel NATs: network namespaces joined by veth links, an
//! "internet" bridge on 203.0.113.0/24 and town LANs on 100.64.0.0/10, nftables masquerade on
//! each town's router (`util::netns`). Everything the tests make is removed at the end, even
//! when they fail.

mod util;

use std::time::{Duration, Instant};
use util::netns::{INTERNET, Lab, NatKind, exists};
use util::*;

/// The public node's address on the internet bridge.
const PUBLIC_HOST: u8 = 10;

/// Listens on TCP, any port, every interface of its namespace.
const TCP_ANY: &str = "/ip4/0.0.0.0/tcp/0";

/// A public relay R on the internet and towns A and B behind NATs of one kind, each bootstrapped
/// from R; returned once all three know their reachability (R public, A and B private), with
/// when A started.
struct Towns {
    r: NodeProcess,
    a: NodeProcess,
    b: NodeProcess,
    a_started: Instant,
    // Last: the lab outlives the nodes in it.
    _lab: Lab,
}

fn towns_behind(kind: NatKind) -> Towns {
    let mut lab = Lab::new();
    let internet = lab.internet(PUBLIC_HOST);
    let a_ns = lab.town_behind_nat(&internet, "a", 1, 1, kind);
    let b_ns = lab.town_behind_nat(&internet, "b", 2, 2, kind);
    // Nothing has a route beyond the lab: the routers have none besides their two links.
    for router in [format!("{a_ns}r"), format!("{b_ns}r")] {
        let out = std::process::Command::new("ip")
            .args(["-n", &router, "route", "show", "default"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.stdout.is_empty(), "{router} has a default route");
    }
    let r = NodeProcess::start_in_netns_with(&internet, "R", TCP_ANY, &[], &["--relay"]);
    let r_addr = r.addr_on(&format!("/ip4/{INTERNET}.{PUBLIC_HOST}/"));
    let a_started = Instant::now();
    let a = NodeProcess::start_in_netns(&a_ns, "A", TCP_ANY, std::slice::from_ref(&r_addr));
    let b = NodeProcess::start_in_netns(&b_ns, "B", TCP_ANY, &[r_addr]);
    for (node, expected) in [(&r, "public"), (&a, "private"), (&b, "private")] {
        let mut seen = serde_json::Value::Null;
        let known = wait_until(Duration::from_secs(60), || {
            seen = node.status()["reachability"].clone();
            seen != "unknown"
        });
        assert!(
            known && seen == expected,
            "{}'s reachability is {seen}, not {expected}, after 60 s; its log:\n{}",
            node.town,
            node.log()
        );
        let words = node.home.ok(&["status"]);
        assert!(
            words.contains(&format!("reachability {expected}: ")),
            "{}'s status does not say it is {expected}:\n{words}",
            node.town
        );
    }
    // R sees A and B from their routers' public addresses: the NAT is real.
    let peers = r.home.json(&["peers", "--json"]);
    for host in [1, 2] {
        let prefix = format!("/ip4/{INTERNET}.{host}/");
        assert!(
            peers
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["connection"] == "direct"
                    && p["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|a| a.as_str().is_some_and(|a| a.starts_with(&prefix)))),
            "R does not reach a town directly from its router's address {prefix}: {peers}"
        );
    }
    Towns {
        r,
        a,
        b,
        a_started,
        _lab: lab,
    }
}

impl Towns {
    /// Waits until A sees B connected as `kind` (`direct`, `relayed`); how long after A started.
    fn connected(&self, kind: &str) -> Duration {
        let mut seen = None;
        let done = wait_until(Duration::from_secs(90), || {
            seen = connection(&self.a, &self.b);
            seen.as_deref() == Some(kind)
        });
        assert!(
            done,
            "A does not see B connected {kind} after 90 s (but {seen:?}); A's log:\n{}\nB's log:\n{}",
            self.a.log(),
            self.b.log()
        );
        self.a_started.elapsed()
    }
}

/// How `from` is connected to `to` (`direct`, `relayed`), if it is.
fn connection(from: &NodeProcess, to: &NodeProcess) -> Option<String> {
    let id = to.peer_id();
    from.home
        .json(&["peers", "--json"])
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer_id"] == id.as_str())
        .and_then(|p| p["connection"].as_str().map(str::to_owned))
}

/// Bytes this node sent and received over relayed connections (libp2p's bandwidth metrics, by
/// transport: `p2p-circuit` is the relay's).
fn relayed_bytes(node: &NodeProcess) -> f64 {
    node.metrics()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("bandwidth") && l.contains("p2p-circuit"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn hole_punches(node: &NodeProcess, outcome: &str) -> f64 {
    node.metric(&format!(
        "cailloux_hole_punches_total{{outcome=\"{outcome}\"}}"
    ))
}

/// Publishes `n` records on `from` and waits until `to` holds them all.
fn records_flow(from: &NodeProcess, to: &NodeProcess, n: usize, tag: &str) -> Duration {
    let files = publication_files(n, tag);
    let started = Instant::now();
    let out = from
        .home
        .ok(&["publish", "--json", &files.path().to_string_lossy()]);
    let ids: Vec<String> = published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), n);
    let arrived = wait_until(Duration::from_secs(20), || {
        let held = to.ids();
        ids.iter().all(|id| held.contains(id))
    });
    assert!(
        arrived,
        "{}'s records did not reach {} within 20 s; {}'s log:\n{}",
        from.town,
        to.town,
        to.town,
        to.log()
    );
    started.elapsed()
}

#[test]
fn behind_port_preserving_nats_towns_punch_through_and_keep_exchanging_without_the_relay() {
    let mut t = towns_behind(NatKind::PortPreserving);
    let to_direct = t.connected("direct");
    let mut punched = 0.0;
    wait_until(Duration::from_secs(10), || {
        punched = hole_punches(&t.a, "direct") + hole_punches(&t.b, "direct");
        punched >= 1.0
    });
    assert!(
        punched >= 1.0,
        "A and B counted no hole punch: {punched}; A's peers: {}; A's log:\n{}",
        t.a.home.json(&["peers", "--json"]),
        t.a.log()
    );
    let relayed = relayed_bytes(&t.a) + relayed_bytes(&t.b);
    // The relay gone, A's new records still reach B, over their direct connection.
    t.r.kill();
    let took = records_flow(&t.a, &t.b, 3, "sans relais");
    assert_eq!(connection(&t.a, &t.b).as_deref(), Some("direct"));
    eprintln!(
        "port-preserving NATs: A-B direct {to_direct:?} after A started; hole punches that \
         succeeded: {punched}; bytes relayed (A and B, both directions): {relayed}; with R \
         stopped, 3 records A -> B in {took:?}"
    );
}

#[test]
fn behind_port_randomising_nats_towns_stay_connected_through_the_relay() {
    let t = towns_behind(NatKind::PortRandomising);
    let to_relayed = t.connected("relayed");
    let took = records_flow(&t.a, &t.b, 3, "par le relais");
    // The NATs pick a new port for every mapping: hole punching fails, and says so.
    let failed = wait_until(Duration::from_secs(60), || {
        hole_punches(&t.a, "failed") + hole_punches(&t.b, "failed") >= 1.0
    });
    assert!(
        failed,
        "no failed hole punch counted on A or B; A's log:\n{}",
        t.a.log()
    );
    assert_eq!(connection(&t.a, &t.b).as_deref(), Some("relayed"));
    assert_eq!(
        hole_punches(&t.a, "direct") + hole_punches(&t.b, "direct"),
        0.0
    );
    let bytes = relayed_bytes(&t.a) + relayed_bytes(&t.b);
    assert!(bytes > 0.0, "no byte went through the relay");
    let served =
        t.r.metric("cailloux_relay_circuits_served_total{outcome=\"accepted\"}");
    assert!(served >= 1.0, "R counted no circuit: {served}");
    eprintln!(
        "port-randomising NATs: A-B relayed {to_relayed:?} after A started; 3 records A -> B \
         in {took:?}; hole punches failed: {}; bytes relayed (A and B, both directions): {bytes}",
        hole_punches(&t.a, "failed") + hole_punches(&t.b, "failed")
    );
}

#[test]
fn a_partitioned_network_agrees_again_within_30_s_of_healing() {
    let mut lab = Lab::new();
    let left = lab.bridge("west", 201);
    let right = lab.bridge("east", 202);
    lab.join_bridges(&left, &right);
    let mut nodes: Vec<NodeProcess> = Vec::new();
    let mut first = Vec::new();
    for i in 1..=6u8 {
        let ns = lab.host(&format!("n{i}"));
        let bridge = if i <= 3 { &left } else { &right };
        lab.join_internet(bridge, &ns, &format!("p{i}"), i);
        let node = NodeProcess::start_in_netns(&ns, &format!("N{i}"), TCP_ANY, &first);
        if i == 1 {
            first = vec![node.addr_on(&format!("/ip4/{INTERNET}.1/"))];
        }
        nodes.push(node);
    }
    let meshed = wait_until(Duration::from_secs(60), || {
        nodes
            .iter()
            .all(|n| n.status()["peers"].as_u64() >= Some(5))
    });
    assert!(
        meshed,
        "the six nodes did not all connect to each other within 60 s"
    );

    // A real partition: the link between the two bridges goes down.
    lab.set_link(&left, "trunk", false);
    let cut = Instant::now();
    let west = records_on(&nodes[0], 200, "ouest");
    let east = records_on(&nodes[3], 200, "est");
    // Each side's records spread on its side (gossip within seconds; catch-up finishes the rest
    // at its own pace, its rounds with peers across the cut hanging until they time out) and
    // never across.
    let started_spreading = wait_until(Duration::from_secs(30), || {
        nodes[..3]
            .iter()
            .filter(|n| !n.ids().is_disjoint(&west))
            .count()
            >= 2
            && nodes[3..]
                .iter()
                .filter(|n| !n.ids().is_disjoint(&east))
                .count()
                >= 2
    });
    let held_at_cut: Vec<(String, usize)> = nodes
        .iter()
        .map(|n| (n.town.clone(), n.ids().len()))
        .collect();
    assert!(
        started_spreading,
        "records did not spread on either side of the cut within 30 s: {held_at_cut:?}"
    );
    let spread = cut.elapsed();
    for (n, other_side) in nodes[..3]
        .iter()
        .map(|n| (n, &east))
        .chain(nodes[3..].iter().map(|n| (n, &west)))
    {
        assert!(
            n.ids().is_disjoint(other_side),
            "{} holds records from across the cut",
            n.town
        );
    }

    lab.set_link(&left, "trunk", true);
    let healed = Instant::now();
    let all: std::collections::BTreeSet<String> = west.union(&east).cloned().collect();
    let agreed = wait_until(Duration::from_secs(30), || {
        nodes.iter().all(|n| all.is_subset(&n.ids()))
    });
    let held: Vec<(String, usize)> = nodes
        .iter()
        .map(|n| (n.town.clone(), n.ids().intersection(&all).count()))
        .collect();
    assert!(
        agreed,
        "30 s after the link came back, not every node holds the 400 records: {held:?}"
    );
    eprintln!(
        "partition: each side published 200 records and began spreading them in {spread:?} \
         (records held then: {held_at_cut:?}); healed: all six nodes hold the 400 records {:?} after \
         the link came back",
        healed.elapsed()
    );
}

/// Publishes `n` records on `node`; their ids.
fn records_on(node: &NodeProcess, n: usize, tag: &str) -> std::collections::BTreeSet<String> {
    let files = publication_files(n, tag);
    let out = node
        .home
        .ok(&["publish", "--json", &files.path().to_string_lossy()]);
    let ids: std::collections::BTreeSet<String> =
        published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), n);
    ids
}

#[test]
fn the_lab_removes_its_namespaces_and_processes_even_when_a_test_fails() {
    let failed = std::panic::catch_unwind(|| {
        let mut lab = Lab::new();
        let internet = lab.internet(PUBLIC_HOST);
        lab.town_behind_nat(&internet, "a", 1, 1, NatKind::PortRandomising);
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &internet, "sleep", "600"])
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let names = lab.namespaces().to_vec();
        assert!(names.iter().all(|n| exists(n)), "{names:?}");
        // A failing test: the lab is dropped while this unwinds.
        std::panic::panic_any((names, child));
    });
    let payload = failed.expect_err("the closure panics");
    let (names, mut child) = *payload
        .downcast::<(Vec<String>, std::process::Child)>()
        .unwrap_or_else(|_| panic!("a panic of the lab itself, not the test's"));
    assert_eq!(names.len(), 3, "{names:?}");
    for ns in &names {
        assert!(!exists(ns), "namespace {ns} is still there");
    }
    let mut ended = None;
    let killed = wait_until(Duration::from_secs(5), || {
        ended = child.try_wait().ok().flatten();
        ended.is_some()
    });
    if !killed {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(killed, "the process started in the lab is still running");
    assert!(!ended.is_some_and(|s| s.success()), "{ended:?}");
}
