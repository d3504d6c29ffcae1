//! Memory of a small VM: the anonymous memory (`RssAnon`) of a node in a process of its own,
//! sampled every 50 ms from `/proc/PID/status`, with the node's memory bounds (the defaults)
//! beside the same run's baseline with the bounds before issue 10 (store cache 1024 MiB, index
//! writer 64 MB with four merge threads, an unbounded indexer queue, four catch-up fetches per
//! session; `Tuning::BEFORE`).
//!
//! Catch-up (default): a source node in this process holds N records of about 4 KB (signed
//! here, stored through its writer); a new town, a child process (this program run again with
//! `CAILLOUX_MEMORY_ROLE=town`), bootstraps to it and catches up. Printed: the peak while it
//! catches up and indexes, the figure at rest `IDLE_AFTER` after its search index holds every
//! record, the catch-up time (from its start to holding all in its store) and the time until
//! its search index holds all.
//!
//! Store alone (`--store`): a child stores N records through the store only, to tell sled's
//! share.
//!
//! Gossip (`--gossip`): five nodes in a chain, each a child process (`CAILLOUX_MEMORY_ROLE=
//! gossip`, catch-up every 5 s as `--sync-interval 5`), and a record published every
//! `--every-ms` (default 500) on a random one, `--records` (default 120) in all; printed, once
//! every node holds them all and a rest of `IDLE_AFTER`: each node's figure, and the largest.
//!
//! With `--ablate`, either mode also runs the default bounds with one bound as it was before
//! (store cache, index writer, indexer queue, catch-up fetches in flight), to show what held
//! the memory. The allocator is the node's (jemalloc, `node_allocator!`); `--features
//! system-allocator` runs both sides on the system's instead, for the comparison.
//!
//! Run: `cargo bench -p cailloux-node --bench memory` (optionally `-- 20000` records),
//! `cargo bench -p cailloux-node --bench memory -- --gossip [--records 200 --every-ms 2500]`.

mod common;

// The node's allocator, as in the `cailloux` binary: the children are this program.
cailloux_node::node_allocator!();

use cailloux_node::daemon::{DEFAULT_STORE_CACHE_MB, Daemon};
use cailloux_node::memory::Tuning;
use cailloux_node::search::{SearchIndex, WriterMemory};
use cailloux_node::writer::Origin;
use cailloux_node::{Home, Multiaddr, Store};
use cailloux_protocol::Record;
use common::{listen_addr, options, text};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long after the last record arrives the figure at rest is taken.
const IDLE_AFTER: Duration = Duration::from_secs(25);
/// How often `RssAnon` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The store cache before issue 10 (sled's default).
const BEFORE_STORE_CACHE_MB: u64 = 1024;

const ROLE: &str = "CAILLOUX_MEMORY_ROLE";
const BOUNDS: &str = "CAILLOUX_MEMORY_BOUNDS";
const BOOTSTRAP: &str = "CAILLOUX_MEMORY_BOOTSTRAP";
const COUNT: &str = "CAILLOUX_MEMORY_COUNT";
const WRAP: &str = "CAILLOUX_MEMORY_WRAP";

/// Record `i`, of about 4 KB, signed by one of 50 town keys.
fn record(i: usize) -> Record {
    let body = format!(
        "## Contexte\n{}\n\n## Démarche\n{}\n\n## Résultats\n{}\n",
        text(i, 150),
        text(i + 5, 100),
        text(i + 2, 110)
    );
    common::sign(i, common::publication(i, body))
}

/// The bounds a child runs with: the defaults, those before issue 10, or (`--ablate`, to see
/// what holds the memory) the defaults but for one bound as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bounds {
    Before,
    Default,
    OldCache,
    OldWriter,
    OldQueue,
    OldFetches,
}

impl Bounds {
    const ABLATIONS: [Bounds; 4] = [
        Bounds::OldCache,
        Bounds::OldWriter,
        Bounds::OldQueue,
        Bounds::OldFetches,
    ];

    fn name(self) -> &'static str {
        match self {
            Bounds::Before => "before",
            Bounds::Default => "default",
            Bounds::OldCache => "default, store cache 1024 MiB",
            Bounds::OldWriter => "default, index writer 64 MB/4 merge threads",
            Bounds::OldQueue => "default, unbounded indexer queue",
            Bounds::OldFetches => "default, 4 catch-up fetches per session, unbounded in all",
        }
    }

    fn from_env() -> Bounds {
        let name = std::env::var(BOUNDS).unwrap_or_default();
        [Bounds::Before, Bounds::Default]
            .into_iter()
            .chain(Bounds::ABLATIONS)
            .find(|b| b.name() == name)
            .unwrap_or(Bounds::Default)
    }

    fn options(self) -> (u64, Tuning) {
        let (mut cache, mut tuning) = (DEFAULT_STORE_CACHE_MB, Tuning::default());
        match self {
            Bounds::Before => return (BEFORE_STORE_CACHE_MB, Tuning::BEFORE),
            Bounds::Default => {}
            Bounds::OldCache => cache = BEFORE_STORE_CACHE_MB,
            Bounds::OldWriter => tuning.index_writer = Tuning::BEFORE.index_writer,
            Bounds::OldQueue => tuning.index_queue_bytes = Tuning::BEFORE.index_queue_bytes,
            Bounds::OldFetches => tuning.catchup = Tuning::BEFORE.catchup,
        }
        (cache, tuning)
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match std::env::var(ROLE).as_deref() {
        Ok("town") => runtime.block_on(town()),
        Ok("gossip") => runtime.block_on(gossip_node()),
        Ok("store") => store_only(),
        _ => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let ablate = args.iter().any(|a| a == "--ablate");
            if args.iter().any(|a| a == "--store") {
                let n = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
                store_alone(n)
            } else if args.iter().any(|a| a == "--gossip") {
                let flag = |name: &str, default: usize| {
                    args.iter()
                        .position(|a| a == name)
                        .and_then(|i| args.get(i + 1))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(default)
                };
                gossip(
                    flag("--records", 120),
                    flag("--every-ms", 500) as u64,
                    ablate,
                )
            } else {
                let n = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
                runtime.block_on(catch_up(n, ablate))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The children.

fn child_home() -> anyhow::Result<(tempfile::TempDir, Home)> {
    let dir = tempfile::tempdir()?;
    let home = Home::new(dir.path());
    Ok((dir, home))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Lines from standard input, read on a thread of their own.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The new town: starts, catches up from the bootstrap node, says when it holds every record
/// and when its search index does, then rests until standard input closes.
async fn town() -> anyhow::Result<()> {
    let n: usize = std::env::var(COUNT)?.parse()?;
    let bootstrap: Multiaddr = std::env::var(BOOTSTRAP)?.parse()?;
    let (store_cache_mb, tuning) = Bounds::from_env().options();
    let (_dir, home) = child_home()?;
    let mut opts = options(vec![bootstrap]);
    opts.store_cache_mb = store_cache_mb;
    let mut input = stdin_lines();
    let started = Instant::now();
    let node = Daemon::start_tuned(home, opts, tuning).await?;
    let mut events = node.writer().subscribe();
    let mut held = 0usize;
    while held < n {
        match tokio::time::timeout(Duration::from_secs(600), events.recv()).await {
            Ok(Ok(stored)) => held += stored.records.len(),
            Ok(Err(e)) => anyhow::bail!("lost storage events: {e}"),
            Err(_) => anyhow::bail!("holds {held} of {n} after {:?}", started.elapsed()),
        }
    }
    say(&format!("caught_up {}", started.elapsed().as_secs_f64()));
    while node.search_len() < n as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the search index holds {} of {n}", node.search_len());
        }
    }
    say(&format!("indexed {}", started.elapsed().as_secs_f64()));
    while input.recv().await.is_some() {}
    node.stop().await
}

/// A node of the gossip network: says its address, publishes record `i` on `publish i`, says
/// how many records it holds whenever that changes, until standard input closes.
async fn gossip_node() -> anyhow::Result<()> {
    let bootstrap: Vec<Multiaddr> = match std::env::var(BOOTSTRAP) {
        Ok(a) if !a.is_empty() => vec![a.parse()?],
        _ => Vec::new(),
    };
    let (store_cache_mb, tuning) = Bounds::from_env().options();
    let (_dir, home) = child_home()?;
    let mut opts = options(bootstrap);
    opts.store_cache_mb = store_cache_mb;
    opts.sync_interval = Duration::from_secs(5);
    let node = Daemon::start_tuned(home, opts, tuning).await?;
    say(&format!("ready {}", listen_addr(&node).await?));
    let mut events = node.writer().subscribe();
    let mut input = stdin_lines();
    let mut held = 0usize;
    loop {
        tokio::select! {
            line = input.recv() => match line {
                Some(line) => {
                    if let Some(i) = line.strip_prefix("publish ").and_then(|i| i.parse().ok()) {
                        node.writer().insert(vec![record(i)], Origin::Local).await?;
                    }
                }
                None => break,
            },
            stored = events.recv() => match stored {
                Ok(stored) => {
                    held += stored.records.len();
                    say(&format!("held {held}"));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => anyhow::bail!("lost storage events: {e}"),
            },
        }
    }
    node.stop().await
}

// ---------------------------------------------------------------------------------------------
// The parent: spawning children, sampling their memory.

/// A child process, its standard input, and the lines it prints.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    peak_kb: u64,
}

impl Proc {
    fn spawn(role: &str, bounds: Bounds, env: &[(&str, String)]) -> anyhow::Result<Proc> {
        // A program around the child: a heap profiler, to tell what holds its memory (its
        // figures are then the profiler's process's, not to be reported):
        // `CAILLOUX_MEMORY_WRAP=heaptrack`, with `--features system-allocator` (heaptrack sees
        // `malloc`, not jemalloc's own entry points).
        let mut command = match std::env::var_os(WRAP) {
            Some(wrap) => {
                let mut c = Command::new(wrap);
                c.arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        command
            .env(ROLE, role)
            .env(BOUNDS, bounds.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            stdin,
            lines,
            peak_kb: 0,
        })
    }

    /// `RssAnon` now, in KiB; the peak is kept.
    fn sample(&mut self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no RssAnon in /proc/{}/status", self.child.id()))?;
        self.peak_kb = self.peak_kb.max(kb);
        Ok(kb)
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("stdin closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes standard input (the child stops its node and exits) and waits for it.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "a child ended with {status}");
        Ok(())
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// What one new town measured.
struct Town {
    catchup_s: f64,
    indexed_s: f64,
    peak_kb: u64,
    /// The peak until the store held every record (the rest of `peak_kb` is the indexing's).
    catchup_peak_kb: u64,
    idle_kb: u64,
}

fn new_town(addr: &Multiaddr, n: usize, bounds: Bounds) -> anyhow::Result<Town> {
    let mut town = Proc::spawn(
        "town",
        bounds,
        &[(BOOTSTRAP, addr.to_string()), (COUNT, n.to_string())],
    )?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut caught_up, mut indexed) = (None, None);
    let mut idle_kb = None;
    let mut catchup_peak_kb = 0;
    while idle_kb.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the new town took too long");
        if let Some(status) = town.child.try_wait()? {
            anyhow::bail!("the new town ended early: {status}");
        }
        let kb = town.sample()?;
        if caught_up.is_none() {
            catchup_peak_kb = town.peak_kb;
        }
        while let Ok(line) = town.lines.try_recv() {
            let secs = |l: &str| l.split(' ').nth(1).and_then(|s| s.parse::<f64>().ok());
            if line.starts_with("caught_up ") {
                caught_up = secs(&line).map(|s| (s, Instant::now()));
            } else if line.starts_with("indexed ") {
                indexed = secs(&line).map(|s| (s, Instant::now()));
            }
        }
        if let Some((_, at)) = indexed
            && at.elapsed() >= IDLE_AFTER
        {
            idle_kb = Some(kb);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    let measured = Town {
        catchup_s: caught_up.map_or(0.0, |(s, _)| s),
        indexed_s: indexed.map_or(0.0, |(s, _)| s),
        peak_kb: town.peak_kb,
        catchup_peak_kb,
        idle_kb: idle_kb.unwrap_or(0),
    };
    town.finish()?;
    Ok(measured)
}

async fn catch_up(n: usize, ablate: bool) -> anyhow::Result<()> {
    eprintln!("preparing {n} signed records of about 4 KB…");
    let records: Vec<Record> = (0..n).map(record).collect();
    let size = records.iter().map(|r| r.bytes().len()).sum::<usize>() / n.max(1);
    let build = index_build(&records[..n.min(20_000)])?;
    let home = tempfile::tempdir()?;
    let source = Daemon::start(Home::new(home.path()), options(Vec::new())).await?;
    eprintln!("storing them in the source node…");
    for chunk in records.chunks(1000) {
        source
            .writer()
            .insert(chunk.to_vec(), Origin::Local)
            .await?;
    }
    drop(records);
    let addr = listen_addr(&source).await?;
    eprintln!("baseline: a new town with the bounds before issue 10…");
    let town = |bounds: Bounds| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || new_town(&addr, n, bounds))
    };
    let before = town(Bounds::Before).await??;
    eprintln!("a new town with the default bounds…");
    let now = town(Bounds::Default).await??;
    let mut ablations = Vec::new();
    for bounds in Bounds::ABLATIONS.into_iter().filter(|_| ablate) {
        eprintln!("a new town with the bounds {}…", bounds.name());
        ablations.push((bounds, town(bounds).await??));
    }
    source.stop().await?;

    println!("a new town catching up {n} records of {size} bytes from one peer (RssAnon):");
    for (name, t) in [("before (baseline)", &before), ("default bounds", &now)] {
        println!(
            "  {name:<18} peak {:>7.1} MiB ({:.1} until caught up), idle {:>7.1} MiB ({} s after indexing), catch-up {:>6.2} s, indexed at {:>6.2} s",
            mb(t.peak_kb),
            mb(t.catchup_peak_kb),
            mb(t.idle_kb),
            IDLE_AFTER.as_secs(),
            t.catchup_s,
            t.indexed_s
        );
    }
    for (bounds, t) in &ablations {
        println!(
            "  {}: peak {:.1} MiB ({:.1} until caught up), idle {:.1} MiB, catch-up {:.2} s, indexed at {:.2} s",
            bounds.name(),
            mb(t.peak_kb),
            mb(t.catchup_peak_kb),
            mb(t.idle_kb),
            t.catchup_s,
            t.indexed_s
        );
    }
    println!(
        "  ratios (default / baseline): peak {:.2}, idle {:.2}, catch-up time {:.2}",
        now.peak_kb as f64 / before.peak_kb as f64,
        now.idle_kb as f64 / before.idle_kb as f64,
        now.catchup_s / before.catchup_s
    );
    println!(
        "  index build from a store of {} records (`reindex`, a catch-up's indexing): {:.0} records/s with the default writer (15 MB, 1 merge thread), {:.0} with the old one (64 MB, 4 merge threads) = {:.2}x",
        build.records,
        build.now,
        build.before,
        build.now / build.before
    );
    println!("records={n}");
    println!("catchup_s={:.2}", now.catchup_s);
    println!("baseline_catchup_s={:.2}", before.catchup_s);
    println!("indexed_s={:.2}", now.indexed_s);
    println!("baseline_indexed_s={:.2}", before.indexed_s);
    println!("rss_anon_peak_mb={:.1}", mb(now.peak_kb));
    println!("rss_anon_idle_mb={:.1}", mb(now.idle_kb));
    println!("baseline_rss_anon_peak_mb={:.1}", mb(before.peak_kb));
    println!("baseline_rss_anon_idle_mb={:.1}", mb(before.idle_kb));
    Ok(())
}

/// Index build rates (records/s) with the default writer memory and the old one.
struct Build {
    records: usize,
    now: f64,
    before: f64,
}

/// Builds the search index of a store holding `records`, with each writer memory.
fn index_build(records: &[Record]) -> anyhow::Result<Build> {
    eprintln!("index build of {} records, both writers…", records.len());
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("store"),
        cailloux_protocol::Mode::Open,
        DEFAULT_STORE_CACHE_MB,
    )?;
    for chunk in records.chunks(2048) {
        store.insert_batch(chunk, cailloux_node::now_millis())?;
    }
    let rate = |memory: WriterMemory, name: &str| -> anyhow::Result<f64> {
        let started = Instant::now();
        let (index, _) = SearchIndex::open_with(&dir.path().join(name), memory)?;
        index.catch_up(&store, &mut |_| {})?;
        anyhow::ensure!(index.len() == records.len() as u64);
        Ok(records.len() as f64 / started.elapsed().as_secs_f64())
    };
    let before = rate(WriterMemory::BEFORE, "before")?;
    let now = rate(WriterMemory::default(), "now")?;
    Ok(Build {
        records: records.len(),
        now,
        before,
    })
}

/// The store alone (`--store`): a child stores N records through `insert_batch`, 512 at a
/// time as catch-up does, generated as it goes; its peak and its figure 5 s after.
fn store_only() -> anyhow::Result<()> {
    let n: usize = std::env::var(COUNT)?.parse()?;
    let (cache, _) = Bounds::from_env().options();
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("store"),
        cailloux_protocol::Mode::Open,
        cache,
    )?;
    let started = Instant::now();
    for start in (0..n).step_by(512) {
        let batch: Vec<Record> = (start..(start + 512).min(n)).map(record).collect();
        store.insert_batch(&batch, cailloux_node::now_millis())?;
    }
    say(&format!("caught_up {}", started.elapsed().as_secs_f64()));
    say(&format!("indexed {}", started.elapsed().as_secs_f64()));
    let mut input = std::io::stdin().lock().lines();
    while input.next().is_some() {}
    Ok(())
}

fn store_alone(n: usize) -> anyhow::Result<()> {
    for bounds in [Bounds::Before, Bounds::Default] {
        let mut child = Proc::spawn("store", bounds, &[(COUNT, n.to_string())])?;
        let (mut done, mut idle) = (None, None);
        while idle.is_none() {
            let kb = child.sample()?;
            while let Ok(line) = child.lines.try_recv() {
                if line.starts_with("caught_up ") {
                    done = Some((line, Instant::now()));
                }
            }
            if let Some((_, at)) = &done
                && at.elapsed() >= Duration::from_secs(5)
            {
                idle = Some(kb);
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
        let peak = child.peak_kb;
        child.finish()?;
        println!(
            "store alone, {n} records, {}: peak {:.1} MiB, 5 s after {:.1} MiB ({})",
            bounds.name(),
            mb(peak),
            mb(idle.unwrap_or(0)),
            done.map(|d| d.0).unwrap_or_default()
        );
    }
    Ok(())
}

/// What a gossip network measured: each node's peak and figure at rest, in KiB.
fn network(records: usize, every: Duration, bounds: Bounds) -> anyhow::Result<Vec<(u64, u64)>> {
    const NODES: usize = 5;
    let mut nodes: Vec<Proc> = Vec::new();
    let mut last = String::new();
    for _ in 0..NODES {
        let node = Proc::spawn("gossip", bounds, &[(BOOTSTRAP, last.clone())])?;
        let line = node.lines.recv_timeout(Duration::from_secs(60))?;
        last = line
            .strip_prefix("ready ")
            .ok_or_else(|| anyhow::anyhow!("unexpected line {line:?}"))?
            .to_string();
        nodes.push(node);
    }
    let mut held = [0usize; NODES];
    let watch = |nodes: &mut [Proc], held: &mut [usize; NODES]| -> anyhow::Result<()> {
        for (node, held) in nodes.iter_mut().zip(held.iter_mut()) {
            node.sample()?;
            while let Ok(line) = node.lines.try_recv() {
                if let Some(n) = line.strip_prefix("held ").and_then(|n| n.parse().ok()) {
                    *held = n;
                }
            }
        }
        Ok(())
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = Instant::now();
    for i in 0..records {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        nodes[(rng % NODES as u64) as usize].send(&format!("publish {i}"))?;
        next += every;
        while Instant::now() < next {
            watch(&mut nodes, &mut held)?;
            std::thread::sleep(SAMPLE_EVERY);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while held.iter().any(|h| *h < records) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the nodes hold {held:?} of {records} records"
        );
        watch(&mut nodes, &mut held)?;
        std::thread::sleep(SAMPLE_EVERY);
    }
    let rest = Instant::now() + IDLE_AFTER;
    while Instant::now() < rest {
        watch(&mut nodes, &mut held)?;
        std::thread::sleep(SAMPLE_EVERY);
    }
    let mut figures = Vec::new();
    for mut node in nodes {
        let idle = node.sample()?;
        figures.push((node.peak_kb, idle));
        node.finish()?;
    }
    Ok(figures)
}

fn gossip(records: usize, every_ms: u64, ablate: bool) -> anyhow::Result<()> {
    let every = Duration::from_millis(every_ms);
    eprintln!("baseline: five nodes with the bounds before issue 10…");
    let before = network(records, every, Bounds::Before)?;
    eprintln!("five nodes with the default bounds…");
    let now = network(records, every, Bounds::Default)?;
    let mut ablations = Vec::new();
    for bounds in Bounds::ABLATIONS.into_iter().filter(|_| ablate) {
        eprintln!("five nodes with the bounds {}…", bounds.name());
        ablations.push((bounds, network(records, every, bounds)?));
    }
    println!(
        "five nodes in a chain, {records} records published every {every_ms} ms on a random one, \
         catch-up every 5 s (RssAnon, {} s after the last arrived):",
        IDLE_AFTER.as_secs()
    );
    for (i, ((bp, bi), (p, idle))) in before.iter().zip(&now).enumerate() {
        println!(
            "  node {i}: baseline peak {:>6.1} MiB, at rest {:>6.1} MiB; default bounds peak {:>6.1} MiB, at rest {:>6.1} MiB",
            mb(*bp),
            mb(*bi),
            mb(*p),
            mb(*idle)
        );
    }
    let max = |v: &[(u64, u64)], f: fn(&(u64, u64)) -> u64| v.iter().map(f).max().unwrap_or(0);
    for (bounds, figures) in &ablations {
        println!(
            "  {}: largest peak {:.1} MiB, largest at rest {:.1} MiB",
            bounds.name(),
            mb(max(figures, |f| f.0)),
            mb(max(figures, |f| f.1))
        );
    }
    let (peak, idle) = (max(&now, |f| f.0), max(&now, |f| f.1));
    let (bpeak, bidle) = (max(&before, |f| f.0), max(&before, |f| f.1));
    println!(
        "  ratios (default / baseline), largest node: peak {:.2}, at rest {:.2}",
        peak as f64 / bpeak as f64,
        idle as f64 / bidle as f64
    );
    println!("gossip_records={records}");
    println!("gossip_rss_anon_peak_max_mb={:.1}", mb(peak));
    println!("gossip_rss_anon_idle_max_mb={:.1}", mb(idle));
    println!("baseline_gossip_rss_anon_peak_max_mb={:.1}", mb(bpeak));
    println!("baseline_gossip_rss_anon_idle_max_mb={:.1}", mb(bidle));
    Ok(())
}
