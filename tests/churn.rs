//! Churn: towns' nodes come and go (restarts for updates, crashes, power cuts) while others
//! publish. Twenty real `cailloux node` processes on loopback; while records are published on
//! several of them, a third of the nodes are stopped (SIGTERM, or SIGKILL for some) and started
//! again one by one, each publishing a record of its own once back. At the end every node must
//! hold the same set, every record published anywhere, within a deadline: gossip carries what
//! it reaches and catch-up repairs what a node missed while it was down.

mod util;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use util::*;

const NODES: usize = 20;

/// Publishes the `n`th file of `files` on `node`; returns its id.
fn publish_one(node: &NodeProcess, files: &tempfile::TempDir, n: usize) -> String {
    let file = files.path().join(format!("{n:04}.md"));
    let out = node
        .home
        .ok(&["publish", "--json", file.to_str().unwrap_or_default()]);
    published(&out)
        .pop()
        .unwrap_or_else(|| panic!("publish printed no id: {out}"))
        .1
}

#[test]
fn twenty_nodes_with_a_third_restarting_end_with_the_same_records() {
    // Node i bootstraps to i-1 and i-3: a connected graph that is not a full mesh.
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for i in 0..NODES {
        let bootstrap: Vec<String> = [i.checked_sub(1), i.checked_sub(3)]
            .into_iter()
            .flatten()
            .map(|j| nodes[j].addr())
            .collect();
        nodes.push(NodeProcess::start(&format!("Ville-{i:02}"), &bootstrap));
    }
    // Every third node (1, 4, 7, ...) restarts; the others stay up and keep publishing.
    let (victims, stable): (Vec<_>, Vec<_>) =
        nodes.into_iter().enumerate().partition(|(i, _)| i % 3 == 1);
    let mut victims: Vec<NodeProcess> = victims.into_iter().map(|(_, n)| n).collect();
    let stable: Vec<NodeProcess> = stable.into_iter().map(|(_, n)| n).collect();
    assert!(
        wait_until(Duration::from_secs(30), || stable
            .iter()
            .chain(&victims)
            .all(|n| n.status()["peers"].as_u64() >= Some(1))),
        "not every node connected to a peer"
    );
    let stable_addrs: Vec<String> = stable.iter().map(NodeProcess::addr).collect();

    let files = publication_files(400, "churn");
    let next_file = std::sync::atomic::AtomicUsize::new(0);
    let published_ids: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        // The publisher: a record every 250 ms, on the stable nodes in turn.
        scope.spawn(|| {
            let mut k = 0;
            while !done.load(Ordering::SeqCst) {
                let n = next_file.fetch_add(1, Ordering::SeqCst);
                let id = publish_one(&stable[k % stable.len()], &files, n);
                published_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(id);
                k += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let count = || {
            published_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
        };
        for (v, victim) in victims.iter_mut().enumerate() {
            if v % 3 == 2 {
                victim.kill();
            } else {
                assert!(
                    victim.stop().success(),
                    "{}: SIGTERM, clean exit",
                    victim.town
                );
            }
            // It is down while at least three records are published elsewhere.
            let before = count();
            assert!(
                wait_until(Duration::from_secs(30), || count() >= before + 3),
                "the publisher stalled"
            );
            let bootstrap = [
                stable_addrs[v % stable_addrs.len()].clone(),
                stable_addrs[(v + 5) % stable_addrs.len()].clone(),
            ];
            victim.restart(&bootstrap);
            // Back, it publishes a record of its own.
            let n = next_file.fetch_add(1, Ordering::SeqCst);
            let id = publish_one(victim, &files, n);
            published_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id);
        }
        done.store(true, Ordering::SeqCst);
    });
    let expected: BTreeSet<String> = published_ids
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .collect();
    eprintln!(
        "{} records published on {} nodes while {} restarted, in {:.1?}",
        expected.len(),
        NODES,
        victims.len(),
        started.elapsed()
    );
    let churn_ended = Instant::now();
    let all: Vec<&NodeProcess> = stable.iter().chain(&victims).collect();
    let same = wait_until(Duration::from_secs(90), || {
        all.iter().all(|n| n.ids() == expected)
    });
    let lagging: Vec<String> = all
        .iter()
        .filter_map(|n| {
            let held = n.ids();
            (held != expected).then(|| {
                format!(
                    "{} holds {} of {} ({} foreign)",
                    n.town,
                    held.intersection(&expected).count(),
                    expected.len(),
                    held.difference(&expected).count()
                )
            })
        })
        .collect();
    assert!(
        same,
        "after 90 s: {}; log of the first:\n{}",
        lagging.join(", "),
        all.iter()
            .find(|n| n.ids() != expected)
            .map(|n| n.log())
            .unwrap_or_default()
    );
    eprintln!(
        "all {NODES} nodes hold the same {} records {:.1?} after the churn ended",
        expected.len(),
        churn_ended.elapsed()
    );
}
