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

#[test]
fn records_of_a_town_behind_nat_reach_another_through_a_public_node() {
    let mut lab = Lab::new();
    let internet = lab.internet(PUBLIC_HOST);
    let a_ns = lab.town_behind_nat(&internet, "a", 1, 1, NatKind::PortPreserving);
    let b_ns = lab.town_behind_nat(&internet, "b", 2, 2, NatKind::PortPreserving);
    // Nothing has a route beyond the lab: the routers have none besides their two links.
    for router in [format!("{a_ns}r"), format!("{b_ns}r")] {
        let out = std::process::Command::new("ip")
            .args(["-n", &router, "route", "show", "default"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.stdout.is_empty(), "{router} has a default route");
    }

    let r = NodeProcess::start_in_netns(&internet, "R", "/ip4/0.0.0.0/tcp/0", &[]);
    let r_addr = r.addr_on(&format!("/ip4/{INTERNET}.{PUBLIC_HOST}/"));
    let a = NodeProcess::start_in_netns(
        &a_ns,
        "A",
        "/ip4/0.0.0.0/tcp/0",
        std::slice::from_ref(&r_addr),
    );
    let b = NodeProcess::start_in_netns(&b_ns, "B", "/ip4/0.0.0.0/tcp/0", &[r_addr]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            r.status()["gossip_peers"].as_u64() >= Some(2)
        }),
        "A and B did not both join R's gossip mesh; R's log:\n{}\nA's log:\n{}",
        r.log(),
        a.log()
    );
    // R sees A and B from their routers' public addresses: the NAT is real.
    let peers = r.home.json(&["peers", "--json"]);
    let seen: Vec<String> = peers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert!(
        peers
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["connection"] == "direct"),
        "R reaches A and B directly: {peers}"
    );
    assert!(
        seen.iter()
            .any(|a| a.starts_with(&format!("/ip4/{INTERNET}.1/")))
            && seen
                .iter()
                .any(|a| a.starts_with(&format!("/ip4/{INTERNET}.2/"))),
        "R does not see A and B from their routers' addresses: {peers}"
    );

    let files = publication_files(3, "derrière le routeur");
    let started = Instant::now();
    let out = a
        .home
        .ok(&["publish", "--json", &files.path().to_string_lossy()]);
    let ids: Vec<String> = published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 3);
    let arrived = wait_until(Duration::from_secs(15), || {
        let held = b.ids();
        ids.iter().all(|id| held.contains(id))
    });
    assert!(
        arrived,
        "A's records did not reach B through R within 15 s; B's log:\n{}",
        b.log()
    );
    eprintln!(
        "A (behind NAT) -> R -> B (behind NAT): {:?}",
        started.elapsed()
    );
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
