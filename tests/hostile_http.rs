//! Hostile visitors on a node's public HTTP address, against real `cailloux node` processes on
//! loopback: connections that send nothing or half a request and stall; exports asked for and
//! never read; one address opening connection after connection; the same body of signed
//! records submitted again and again; a node stopped while all that is going on. Each test
//! measures what the node spends (threads and resident memory from `/proc`, how long it keeps a
//! stalled connection) and that it keeps answering everyone else.
//!
//! The bounds are the node's documented limits (README, "Security"), restated here: the tests
//! check the promise, not the implementation's constants.

mod util;

use cailloux_protocol::SigningKey;
use serde_json::{Value, json};
use std::io::Write;
use std::time::{Duration, Instant};
use util::http::*;
use util::*;

/// A request head must arrive in full within this long of a connection opening.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that makes no progress (reads nothing, writes nothing) for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections from one client address on the public address.
const CONNECTIONS_PER_ADDRESS: usize = 16;
/// Exports streaming at once on the public address, in all and per client address.
const EXPORTS: usize = 8;
const EXPORTS_PER_ADDRESS: usize = 2;
/// Room for a loaded two-core machine on top of a timeout.
const MARGIN: Duration = Duration::from_secs(5);
/// SIGTERM to exit, with stalled connections open: the drain deadline and the rest of a stop.
const STOP_BOUND: Duration = Duration::from_secs(10);

#[test]
fn stalled_connections_are_closed_within_the_header_timeout_while_the_node_keeps_answering() {
    let node = NodeProcess::start_in(home_with_public_api(None), "Ville-Lente", &[]);
    let public = public_addr(&node);
    // 100 connections from ten addresses, ten each (within the per-address bound: every one is
    // accepted, and must be timed out): half send nothing, half send half a request line.
    let watchers: Vec<std::thread::JoinHandle<Option<Duration>>> = (0..100u8)
        .map(|i| {
            let source = loopback(11 + i / 10);
            std::thread::spawn(move || {
                let opened = Instant::now();
                let mut stream = connect_from(source, public, None)
                    .unwrap_or_else(|e| panic!("cannot connect from {source}: {e}"));
                if i % 2 == 1 {
                    stream
                        .write_all(b"GET /api/v1/sta")
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                closed_within(&mut stream, opened, HEADER_READ_TIMEOUT + 2 * MARGIN)
            })
        })
        .collect();
    // Meanwhile the public and local addresses keep answering.
    let poller = StatusPoller::start(node.api(), None, Duration::from_millis(5));
    let stats = format!("http://{public}/api/v1/stats");
    let (mut public_ok, mut public_failed) = (0, 0);
    let deadline = Instant::now() + HEADER_READ_TIMEOUT + 3 * MARGIN;
    while !watchers.iter().all(std::thread::JoinHandle::is_finished) && Instant::now() < deadline {
        match ureq::get(&stats).call() {
            Ok(r) if r.status() == 200 => public_ok += 1,
            _ => public_failed += 1,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (latencies, _, status_failed) = poller.finish();
    let closes: Vec<Option<Duration>> = watchers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|_| panic!("watcher panicked")))
        .collect();
    let mut closed: Vec<Duration> = closes.iter().flatten().copied().collect();
    closed.sort();
    eprintln!(
        "stalled connections: {} of 100 closed by the node, after {:?} to {:?}; public stats \
         {public_ok} answered, {public_failed} failed; local status p50 {:?}, p99 {:?}, \
         {status_failed} failed",
        closed.len(),
        closed.first().copied().unwrap_or_default(),
        closed.last().copied().unwrap_or_default(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    );
    assert_eq!(
        closed.len(),
        100,
        "connections still open {:?} after they opened",
        HEADER_READ_TIMEOUT + 2 * MARGIN
    );
    let last = closed.last().copied().unwrap_or_default();
    assert!(
        last <= HEADER_READ_TIMEOUT + MARGIN,
        "the last stalled connection was closed after {last:?}"
    );
    assert!(
        closed[0] >= HEADER_READ_TIMEOUT / 2,
        "a connection was closed after {:?}: refused rather than timed out",
        closed[0]
    );
    assert_eq!(public_failed, 0, "the public address stopped answering");
    assert!(public_ok > 0);
    assert_eq!(status_failed, 0, "the local address stopped answering");
}

#[test]
fn one_address_is_refused_beyond_its_connection_bound_while_another_is_served() {
    let node = NodeProcess::start_in(home_with_public_api(None), "Ville-Bornée", &[]);
    let public = public_addr(&node);
    let (mut open, mut refusals) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let mut stream = connect_from(loopback(61), public, None).unwrap_or_else(|e| panic!("{e}"));
        let sent = stream.write_all(&get("/api/v1/stats")).is_ok();
        match sent
            .then(|| read_answer(&mut stream, 1 << 20, Duration::from_secs(5)))
            .flatten()
        {
            // Served, and kept open (keep-alive): it counts against the address.
            Some(answer) if answer.status == 200 => open.push(stream),
            other => refusals.push(other),
        }
    }
    let answered: Vec<&RawAnswer> = refusals.iter().flatten().collect();
    eprintln!(
        "one address, 40 connections: {} served, {} refused ({} with an answer: {:?})",
        open.len(),
        refusals.len(),
        answered.len(),
        answered
            .first()
            .map(|a| (a.status, String::from_utf8_lossy(&a.body)))
    );
    assert_eq!(open.len(), CONNECTIONS_PER_ADDRESS, "connections served");
    assert_eq!(refusals.len(), 40 - CONNECTIONS_PER_ADDRESS);
    for answer in answered {
        assert_eq!(answer.status, 429, "{answer:?}");
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains(&format!("at most {CONNECTIONS_PER_ADDRESS}")),
            "{error}"
        );
    }
    // Another loopback address is served meanwhile; the first is still refused.
    let other = request_from(loopback(62), public, &get("/api/v1/stats"), 1 << 20);
    assert_eq!(
        other.map(|a| a.status),
        Some(200),
        "127.0.0.62 was not served"
    );
    let again = request_from(loopback(61), public, &get("/api/v1/stats"), 1 << 20);
    assert_ne!(
        again.map(|a| a.status),
        Some(200),
        "127.0.0.61 was served beyond its bound"
    );
    // Once its connections close, the first address is served again.
    drop(open);
    assert!(
        wait_until(Duration::from_secs(5), || {
            request_from(loopback(61), public, &get("/api/v1/stats"), 1 << 20)
                .is_some_and(|a| a.status == 200)
        }),
        "127.0.0.61 was not served again after closing its connections"
    );
}

#[test]
fn stalled_exports_are_bounded_hold_no_thread_and_are_cut_after_the_idle_timeout() {
    const RECORDS: usize = 100;
    // About 25 MB of export: far more than the socket buffers hold for a visitor that stops.
    // Published before the node starts (no request body limit then).
    let home = TestHome::init("Ville-Export");
    let files = large_publication_files(RECORDS, 100, "export");
    home.ok(&["publish", files.path().to_str().unwrap_or_default()]);
    with_public_api(&home, None);
    let mut node = NodeProcess::start_in(home, "Ville-Export", &[]);
    let public = public_addr(&node);
    let pid = pid(&node);
    let (threads_before, rss_before) = (threads(pid), rss_bytes(pid));

    // Forty visitors ask for the export, four from each of ten addresses, and stop reading.
    let stalled: Vec<(u8, StalledExport)> = (0..40u8)
        .map(|i| (31 + i / 4, stalled_export(loopback(31 + i / 4), public)))
        .collect();
    // For three seconds, what the node holds for them.
    let (mut peak_threads, mut peak_rss) = (0, 0);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak_threads = peak_threads.max(threads(pid));
        peak_rss = peak_rss.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let statuses: Vec<Option<u16>> = stalled
        .iter()
        .map(|(_, s)| s.answer.as_ref().map(|a| a.status))
        .collect();
    let streaming = statuses.iter().filter(|s| **s == Some(200)).count();
    eprintln!(
        "stalled exports: 40 asked, {streaming} streaming, answers {statuses:?}; node threads \
         {threads_before} before, peak {peak_threads}; RSS {} MiB before, peak {} MiB",
        rss_before / MIB,
        peak_rss / MIB
    );
    // At most one blocking thread per export while it runs a step, and some room.
    assert!(
        peak_threads <= threads_before + EXPORTS as u64 + 8,
        "the node went from {threads_before} to {peak_threads} threads"
    );
    assert!(
        peak_rss <= rss_before + 64 * MIB,
        "the node's RSS went from {} to {} MiB",
        rss_before / MIB,
        peak_rss / MIB
    );
    assert_eq!(streaming, EXPORTS, "exports streaming at once");
    for source in 31..41u8 {
        let mine = stalled
            .iter()
            .filter(|(s, e)| *s == source && e.answer.as_ref().is_some_and(|a| a.status == 200))
            .count();
        assert!(
            mine <= EXPORTS_PER_ADDRESS,
            "127.0.0.{source} streams {mine}"
        );
    }
    for (_, export) in &stalled {
        let Some(answer) = export.answer.as_ref().filter(|a| a.status != 200) else {
            continue;
        };
        assert!(matches!(answer.status, 429 | 503), "{answer:?}");
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let limit = if answer.status == 429 {
            EXPORTS_PER_ADDRESS
        } else {
            EXPORTS
        };
        assert!(error.contains(&format!("at most {limit}")), "{error}");
        assert!(answer.header("retry-after").is_some(), "{answer:?}");
    }

    // A new visitor is refused while the stalled ones hold every slot, and served in full once
    // the idle timeout has cut them.
    let export = format!("http://{public}/api/v1/export");
    let full_export = || -> Option<String> {
        let mut response = ureq::get(&export).call().ok()?;
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .ok()
    };
    assert!(full_export().is_none(), "served beyond the bound");
    // While they stay stalled, they hold no thread: the blocking threads their steps used go
    // idle and end (after 10 s), and the node is back to its threads before.
    let mut threads_stalled = 0;
    assert!(
        wait_until(IDLE_TIMEOUT / 2, || {
            threads_stalled = threads(pid);
            threads_stalled <= threads_before + 2
        }),
        "stalled exports hold threads: {threads_stalled}, {threads_before} before them"
    );
    eprintln!("stalled exports: node threads {threads_stalled} while they stay stalled");
    let waiting = Instant::now();
    let mut lines = 0;
    assert!(
        wait_until(IDLE_TIMEOUT + 2 * MARGIN, || {
            full_export()
                .map(|text| lines = text.lines().count())
                .is_some()
        }),
        "no export was served {:?} after the stalled ones stopped reading",
        IDLE_TIMEOUT + 2 * MARGIN
    );
    eprintln!(
        "stalled exports: slots free again {:?} later",
        waiting.elapsed()
    );
    assert_eq!(lines, RECORDS, "the export after the cut is whole");
    drop(stalled);

    // Stalled exports do not hold up a stop either.
    let again: Vec<StalledExport> = (0..2)
        .map(|_| stalled_export(loopback(51), public))
        .collect();
    assert!(
        again
            .iter()
            .all(|e| e.answer.as_ref().is_some_and(|a| a.status == 200))
    );
    let stopped = terminate_within(&mut node, STOP_BOUND);
    eprintln!("stalled exports: SIGTERM to exit {stopped:?}");
    assert!(
        stopped.is_some_and(|(_, status)| status.success()),
        "the node did not stop within {STOP_BOUND:?} with stalled exports open"
    );
}

#[test]
fn replayed_submissions_are_answered_from_the_store_without_verifying_again() {
    const N: usize = 512;
    const REPLAYS: usize = 20;
    let federation = SigningKey::from_bytes(&[42; 32]);
    let node = NodeProcess::start_in(
        home_with_public_api(Some(&federation)),
        "Ville-Rejouée",
        &[],
    );
    let public = public_addr(&node);
    let records = admissions(&federation, N, "rejeu");
    let request = post_json("/api/v1/submit", &submit_body(&records));
    let expected = |new: bool| json!({ "stored": records.iter().map(|r| json!({ "id": r.id().to_hex(), "new": new })).collect::<Vec<_>>() });
    let verified = || node.metric("cailloux_submit_verified_total");

    let started = Instant::now();
    let first = request_from(loopback(71), public, &request, 1 << 22)
        .unwrap_or_else(|| panic!("no answer to the first submission"));
    let first_took = started.elapsed();
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.json(), expected(true));
    assert_eq!(
        verified(),
        N as f64,
        "the first submission verifies each signature once"
    );

    // Two visitors replay the same body while the local status is polled.
    let poller = StatusPoller::start(node.api(), None, Duration::from_millis(5));
    let replayers: Vec<_> = (0..2u8)
        .map(|v| {
            let request = request.clone();
            std::thread::spawn(move || {
                (0..REPLAYS / 2)
                    .map(|_| {
                        let started = Instant::now();
                        let answer = request_from(loopback(72 + v), public, &request, 1 << 22);
                        (answer, started.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let replays: Vec<(Option<RawAnswer>, Duration)> = replayers
        .into_iter()
        .flat_map(|r| r.join().unwrap_or_else(|_| panic!("replayer panicked")))
        .collect();
    let (latencies, _, status_failed) = poller.finish();
    let mut took: Vec<Duration> = replays.iter().map(|(_, t)| *t).collect();
    took.sort();
    eprintln!(
        "replayed submissions: first (512 new) answered in {first_took:?}; {} replays, p50 {:?}, \
         max {:?}; signatures verified {}, records answered as held {}; local status p50 {:?}, \
         p99 {:?}",
        replays.len(),
        quantile(&took, 0.5),
        took.last().copied().unwrap_or_default(),
        verified(),
        node.metric("cailloux_submit_held_total"),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    );
    for (answer, _) in &replays {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|| panic!("a replay was not answered"));
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json(), expected(false), "a replay's answer changed");
    }
    assert_eq!(verified(), N as f64, "replays verified signatures again");
    assert_eq!(
        node.metric("cailloux_submit_held_total"),
        (N * REPLAYS) as f64
    );
    assert_eq!(status_failed, 0);
    // Replays cost a hash and a lookup per record, so status stays quick beside them; the bound
    // leaves room for a loaded two-core machine (the flood test holds status to 100 ms).
    let p99 = quantile(&latencies, 0.99);
    assert!(
        p99 < Duration::from_millis(250),
        "status p99 {p99:?} beside replays"
    );

    // Held records beside a new one: only the new one is verified, answers in order.
    let new = admissions(&federation, 1, "nouveau");
    let mixed: Vec<_> = records[..10].iter().chain(&new).cloned().collect();
    let answer = request_from(
        loopback(71),
        public,
        &post_json("/api/v1/submit", &submit_body(&mixed)),
        1 << 22,
    )
    .unwrap_or_else(|| panic!("no answer"));
    let stored: Vec<(String, bool)> = answer.json()["stored"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["new"] == true,
            )
        })
        .collect();
    let wanted: Vec<(String, bool)> = mixed
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id().to_hex(), i == 10))
        .collect();
    assert_eq!(stored, wanted);
    assert_eq!(verified(), (N + 1) as f64);

    // A forged record behind held ones is still refused by its index, and nothing is stored.
    let mut forged = admissions(&federation, 1, "forgé")[0].bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    use base64::Engine;
    let mut encoded: Vec<Value> = records[..3]
        .iter()
        .map(|r| {
            base64::engine::general_purpose::STANDARD
                .encode(r.bytes())
                .into()
        })
        .collect();
    encoded.push(
        base64::engine::general_purpose::STANDARD
            .encode(&forged)
            .into(),
    );
    let body = serde_json::to_vec(&json!({ "records": encoded })).unwrap_or_default();
    let answer = request_from(
        loopback(71),
        public,
        &post_json("/api/v1/submit", &body),
        1 << 20,
    )
    .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(answer.status, 400, "{answer:?}");
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("records[3]: ") && error.contains("signature"),
        "{error}"
    );
}

#[test]
fn the_node_stops_promptly_with_stalled_connections_open() {
    let mut node = NodeProcess::start_in(home_with_public_api(None), "Ville-Arrêtée", &[]);
    let (public, local) = (public_addr(&node), local_addr(&node));
    // On both addresses: connections that sent nothing, half a request line, a request whose
    // promised body never comes, and a served one kept open.
    let mut stalls = Vec::new();
    for target in [public, local] {
        for (i, sent) in [
            &b""[..],
            b"GET /api/v1/rec",
            b"POST /api/v1/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"rec",
        ]
        .iter()
        .enumerate()
        {
            for _ in 0..5 {
                let mut stream = connect_from(loopback(81 + i as u8), target, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                stream.write_all(sent).unwrap_or_else(|e| panic!("{e}"));
                stalls.push(stream);
            }
        }
        let mut served = connect_from(loopback(84), target, None).unwrap_or_else(|e| panic!("{e}"));
        served
            .write_all(&get("/api/v1/stats"))
            .unwrap_or_else(|e| panic!("{e}"));
        let answer = read_answer(&mut served, 1 << 20, Duration::from_secs(5));
        assert_eq!(answer.map(|a| a.status), Some(200));
        stalls.push(served);
    }
    let stopped = terminate_within(&mut node, STOP_BOUND);
    eprintln!("stop with stalled connections: SIGTERM to exit {stopped:?}");
    assert!(
        stopped.is_some_and(|(_, status)| status.success()),
        "the node did not stop within {STOP_BOUND:?}; log:\n{}",
        node.log()
    );
    assert!(
        !node.home.path().join("api.addr").exists(),
        "api.addr is left behind"
    );
    drop(stalls);
}
