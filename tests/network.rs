//! Towns talk: real `cailloux node` processes on loopback (ephemeral ports, mDNS off) exchange
//! records by gossip and catch up by reconciliation. Every wait has a deadline.

mod util;

use std::time::{Duration, Instant};
use util::*;

#[test]
fn a_record_published_on_a_reaches_c_through_b_within_5_seconds() {
    let a = NodeProcess::start("A", &[]);
    let b = NodeProcess::start("B", &[a.addr()]);
    let c = NodeProcess::start("C", &[b.addr()]);
    // C knows only B (it may find A later through Kademlia, which is the point of it): wait until
    // the gossip mesh is formed along the chain.
    assert!(
        wait_until(Duration::from_secs(10), || {
            b.status()["gossip_peers"] == 2 && c.status()["gossip_peers"].as_u64() >= Some(1)
        }),
        "chain did not form; B's log:\n{}\nC's log:\n{}",
        b.log(),
        c.log()
    );
    let files = publication_files(1, "chaîne");
    let started = Instant::now();
    let out = a.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    let id = published(&out)[0].1.clone();
    let arrived = wait_until(Duration::from_secs(5), || c.ids().contains(&id));
    assert!(
        arrived,
        "the record did not reach C within 5 s; C's log:\n{}",
        c.log()
    );
    eprintln!("A -> B -> C in {:?}", started.elapsed());
    // It came by gossip, hop by hop, and was checked at each hop.
    assert!(c.metric("cailloux_records_accepted_total{via=\"gossip\"}") >= 1.0);
    // Peers are named by their town once identify has run.
    let peers = c.home.json(&["peers", "--json"]);
    assert!(
        peers
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["town"] == "B"),
        "{peers}"
    );
}

#[test]
fn a_node_that_was_offline_catches_up_200_records_by_reconciliation() {
    let a = NodeProcess::start("A", &[]);
    let mut c = NodeProcess::start("C", &[a.addr()]);
    assert!(
        wait_until(Duration::from_secs(10), || c.status()["peers"] == 1),
        "C did not connect to A; C's log:\n{}\nA's log:\n{}",
        c.log(),
        a.log()
    );
    assert!(c.stop().success(), "SIGTERM: clean exit");
    assert!(
        !c.home.path().join("api.addr").exists(),
        "api.addr is removed at stop"
    );

    let files = publication_files(200, "hors-ligne");
    let out = a.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    let published: std::collections::BTreeSet<String> =
        published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(published.len(), 200);

    c.restart(&[a.addr()]);
    let started = Instant::now();
    let caught_up = wait_until(Duration::from_secs(20), || published.is_subset(&c.ids()));
    assert!(
        caught_up,
        "C holds {} of 200 after 20 s; log:\n{}",
        c.ids().len(),
        c.log()
    );
    eprintln!("caught up 200 records in {:?}", started.elapsed());
    assert!(
        c.metric("cailloux_sync_records_fetched_total") >= 200.0,
        "fetched by reconciliation"
    );
    assert_eq!(
        c.metric("cailloux_records_accepted_total{via=\"gossip\"}"),
        0.0,
        "not by gossip replay"
    );
}

#[test]
fn two_towns_that_published_apart_reconcile_to_the_same_1000_ids() {
    let a = NodeProcess::start("A", &[]);
    let mut b = NodeProcess::start("B", &[]);
    let (fa, fb) = (publication_files(500, "A"), publication_files(500, "B"));
    a.home
        .ok(&["publish", fa.path().to_str().unwrap_or_default()]);
    b.home
        .ok(&["publish", fb.path().to_str().unwrap_or_default()]);
    assert_eq!(a.ids().len(), 500);
    assert_eq!(b.ids().len(), 500);
    b.stop();
    b.restart(&[a.addr()]);
    let same = wait_until(Duration::from_secs(30), || {
        let (x, y) = (a.ids(), b.ids());
        x.len() == 1000 && x == y
    });
    assert!(
        same,
        "A holds {}, B holds {}; A's log:\n{}\nB's log:\n{}",
        a.ids().len(),
        b.ids().len(),
        a.log(),
        b.log()
    );
}

#[test]
fn a_node_killed_with_sigkill_keeps_every_record_it_acknowledged() {
    let mut a = NodeProcess::start("A", &[]);
    let files = publication_files(120, "durable");
    let out = a.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    let acknowledged: Vec<String> = published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(acknowledged.len(), 120);
    a.kill();
    // The stale api.addr does not fool the CLI: with no node answering, it opens the store.
    assert!(a.home.path().join("api.addr").exists());
    let held = a.ids();
    assert!(
        acknowledged.iter().all(|id| held.contains(id)),
        "the store lost acknowledged records"
    );
    a.restart(&[]);
    assert_eq!(a.status()["records"], 120);
    assert_eq!(a.ids().len(), 120);
}

#[test]
fn the_cli_works_the_same_through_a_running_node() {
    let a = NodeProcess::start("Ville-A", &[]);
    // Publishing an invalid file through the node reports every problem and stores nothing.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("bad.md"),
        "---\nkind: essai\ntitle: x\nsummary: y\nthemes: [energie]\n---\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = a.home.fails(
        &[
            "publish",
            dir.path().join("bad.md").to_str().unwrap_or_default(),
        ],
        1,
    );
    assert!(err.contains("bad.md: kind: `essai`"), "{err}");
    assert!(err.contains("did you mean `energy`?"), "{err}");
    assert!(a.ids().is_empty());
    // The examples publish, list, show and export through the node; verify checks the export.
    let out = a
        .home
        .ok(&["publish", "--json", examples().to_str().unwrap_or_default()]);
    let ids: Vec<String> = published(&out).into_iter().map(|(_, id)| id).collect();
    assert_eq!(a.ids().len(), ids.len());
    let shown = a.home.json(&["show", &ids[0][..8], "--json"]);
    assert_eq!(shown["id"], serde_json::Value::String(ids[0].clone()));
    assert_eq!(
        a.home
            .json(&["list", "--kind", "evaluation", "--json"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let export = a.home.path().join("e.jsonl");
    a.home
        .ok(&["export", "--out", export.to_str().unwrap_or_default()]);
    a.home.ok(&["verify", export.to_str().unwrap_or_default()]);
    // Import into another running node.
    let b = NodeProcess::start("Ville-B", &[]);
    let out = b.home.ok(&["import", export.to_str().unwrap_or_default()]);
    assert!(out.contains(&format!("{} stored", ids.len())), "{out}");
    assert_eq!(b.ids(), a.ids());
    // Writes need the token; reads do not.
    let url = format!("http://{}/api/v1/import", a.api());
    let refused = ureq::post(&url).send("");
    assert!(
        matches!(refused, Err(ureq::Error::StatusCode(401))),
        "{refused:?}"
    );
    // Status names the town and counts the records.
    let status = a.status();
    assert_eq!(status["town"], "Ville-A");
    assert_eq!(status["records"], ids.len());
    assert_eq!(status["public_key"].as_str().map(str::len), Some(64));
    assert!(
        a.metrics()
            .contains(&format!("cailloux_records_published_total {}", ids.len()))
    );
}

#[test]
fn quic_transport_and_bootstrap_by_host_name() {
    let a = NodeProcess::start_on("A", "/ip4/127.0.0.1/udp/0/quic-v1", &[]);
    let addr = a.addr();
    assert!(addr.contains("/quic-v1/p2p/"), "{addr}");
    // The same address with a host name instead of an IP: resolved through `dns`.
    let by_name = addr.replacen("/ip4/127.0.0.1/", "/dns4/localhost/", 1);
    let b = NodeProcess::start_on("B", "/ip4/127.0.0.1/udp/0/quic-v1", &[by_name]);
    assert!(
        wait_until(Duration::from_secs(10), || b.status()["gossip_peers"] == 1),
        "B did not join A over QUIC"
    );
    let files = publication_files(1, "quic");
    let id = published(&a.home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]))[0]
        .1
        .clone();
    assert!(wait_until(Duration::from_secs(5), || b.ids().contains(&id)));
}

#[test]
fn a_node_on_a_fresh_home_creates_its_identity_and_says_when_the_town_is_unnamed() {
    let home = TestHome::empty();
    let child = home
        .command(&[
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_until(Duration::from_secs(20), || home
        .path()
        .join("api.addr")
        .exists()));
    assert!(home.path().join("identity.key").exists());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unnamed town") && stderr.contains("--town"),
        "{stderr}"
    );
}

#[test]
fn a_stale_api_address_taken_by_another_program_is_not_mistaken_for_a_node() {
    use std::io::{Read, Write};
    let home = TestHome::init("Ville-Test");
    // Another program now answers on the port a dead node wrote down: plain 404s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    std::fs::write(home.path().join("api.addr"), format!("{addr}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let files = publication_files(2, "local");
    let out = home.ok(&[
        "publish",
        "--json",
        files.path().to_str().unwrap_or_default(),
    ]);
    assert_eq!(
        published(&out).len(),
        2,
        "published into the store directly"
    );
    assert_eq!(home.listed_ids().len(), 2);
    let err = home.fails(&["status"], 3);
    assert!(err.contains("no node is running"), "{err}");
}

#[test]
fn a_node_logging_to_a_file_writes_no_colour_codes() {
    // The node's standard error goes to a file here, as under systemd or `2>node.log`: log lines
    // must be plain text, without ANSI escape sequences.
    let mut a = NodeProcess::start("A", &[]);
    a.stop();
    let log = a.log();
    assert!(log.contains("listening on"), "the node logged: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "an ESC byte in a log written to a file:\n{log:?}"
    );
}

/// The node runs on jemalloc with the settings of `node/src/memory.rs`: its background thread
/// (named `jemalloc_bg_thd`, started only when `background_thread:true` was read, so only when
/// the settings' symbol is linked) is what returns the memory a catch-up freed.
#[test]
fn the_node_runs_on_its_allocator_with_the_background_purge() {
    let node = NodeProcess::start("Allocville", &[]);
    let pid = util::http::pid(&node);
    let names = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                    .map(|c| c.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The background thread starts with the allocator's first use, before `main`; polled
    // anyway, so a slow start is not a failure.
    let started = wait_until(Duration::from_secs(10), || {
        names().iter().any(|n| n == "jemalloc_bg_thd")
    });
    assert!(
        started,
        "no jemalloc background thread in the node's threads {:?}: the allocator or its \
         settings (`_rjem_malloc_conf`) are not in the `cailloux` binary",
        names()
    );
}
