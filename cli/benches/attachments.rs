//! A 20 MiB PDF published on node A, fetched by node C through B (a chain A-B-C of real
//! `cailloux node` processes on loopback; A and C keep one peer, B): the fetch's throughput
//! against a plain TCP copy of the same bytes over loopback in the same run (file to socket to
//! file, synced, as the fetch writes and syncs), and the fetching node's peak memory above its
//! idle level (the file must stream through, never sit whole in memory).
//!
//! `cargo bench -p cailloux --bench attachments` (or `-- 3` for three runs; each run is new
//! nodes). Last lines, key=value:
//! `fetch_mib_s`, `tcp_copy_mib_s`, `throughput_ratio` (goal >= 0.5), `peak_rss_above_idle_mib`
//! (goal < 64).

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SIZE: usize = 20 * 1024 * 1024;

struct Node {
    home: tempfile::TempDir,
    child: Child,
}

impl Node {
    fn start(town: &str, bootstrap: Option<&str>, max_peers: &str) -> Node {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec![
            "node",
            "--town",
            town,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
            "--max-peers",
            max_peers,
        ];
        if let Some(b) = bootstrap {
            args.extend(["--bootstrap", b]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_cailloux"))
            .args(&args)
            .env("CAILLOUX_HOME", home.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cailloux: {e}"));
        let node = Node { home, child };
        wait(Duration::from_secs(30), || {
            node.home.path().join("api.addr").exists()
        });
        node
    }

    fn api(&self) -> String {
        std::fs::read_to_string(self.home.path().join("api.addr"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn get(&self, path: &str) -> Value {
        ureq::get(format!("http://{}{path}", self.api()))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json().ok())
            .unwrap_or(Value::Null)
    }

    fn addr(&self) -> String {
        let status = self.get("/api/v1/status");
        status["network"]["listen_addrs"][0]
            .as_str()
            .or_else(|| status["listen_addrs"][0].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn peers(&self) -> usize {
        self.get("/api/v1/peers").as_array().map_or(0, Vec::len)
    }

    /// (resident, peak) in KiB, from /proc.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Resets the peak (VmHWM) to the present resident size.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pdf(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while bytes.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(SIZE);
    let path = dir.join("rapport.pdf");
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    (path, bytes)
}

/// The baseline: the file read, sent over a loopback TCP connection, written and synced.
fn tcp_copy(source: &Path, dir: &Path) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let target = dir.join("copy.pdf");
    let started = Instant::now();
    let receiver = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let mut out = std::fs::File::create(&target).unwrap_or_else(|e| panic!("{e}"));
        std::io::copy(&mut socket, &mut out).unwrap_or_else(|e| panic!("{e}"));
        out.sync_all().unwrap_or_else(|e| panic!("{e}"));
    });
    let mut socket = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let mut file = std::fs::File::open(source).unwrap_or_else(|e| panic!("{e}"));
    std::io::copy(&mut file, &mut socket).unwrap_or_else(|e| panic!("{e}"));
    drop(socket);
    receiver.join().unwrap_or_else(|_| panic!("receiver"));
    started.elapsed()
}

struct Run {
    fetch: Duration,
    tcp: Duration,
    peak_above_idle_kib: u64,
}

fn run(dir: &Path, source: &Path, bytes: &[u8]) -> Run {
    let a = Node::start("Loos-en-Gohelle", None, "1");
    let b = Node::start("Arras", Some(&a.addr()), "24");
    let c = Node::start("Lens", Some(&b.addr()), "1");
    wait(Duration::from_secs(30), || {
        a.peers() == 1 && b.peers() == 2 && c.peers() == 1
    });
    let md = dir.join("r.md");
    std::fs::write(
        &md,
        "---\nkind: practice\ntitle: Le rapport\nsummary: Un rapport de 20 Mio.\nthemes: [energy]\n\
         attachments:\n  - { file: rapport.pdf }\n---\nLe rapport.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_cailloux"))
        .args(["publish", "--json"])
        .arg(&md)
        .env("CAILLOUX_HOME", a.home.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let id = id["id"].as_str().unwrap_or_default().to_owned();
    wait(Duration::from_secs(30), || {
        c.get(&format!("/api/v1/records/{id}"))["id"] == id.as_str()
    });
    // C must reach A only through B.
    assert_eq!(c.peers(), 1, "C is connected to B alone");
    std::thread::sleep(Duration::from_secs(1));
    let (idle, _) = c.memory();
    c.reset_peak();
    let hash = blake3::hash(bytes).to_hex().to_string();
    let started = Instant::now();
    let mut answer = ureq::get(format!("http://{}/api/v1/attachments/{hash}", c.api()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    if answer.status() != 200 {
        panic!(
            "C answered {}: {}",
            answer.status(),
            answer.body_mut().read_to_string().unwrap_or_default()
        );
    }
    let mut reader = answer
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .reader();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; 256 * 1024];
    let mut got = 0;
    loop {
        let n = reader.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        if n == 0 {
            break;
        }
        got += n;
        hasher.update(&buf[..n]);
    }
    let fetch = started.elapsed();
    assert_eq!(got, SIZE);
    assert_eq!(
        hasher.finalize().to_hex().as_str(),
        hash,
        "C served the bytes A published"
    );
    let (_, peak) = c.memory();
    let tcp = tcp_copy(source, dir);
    Run {
        fetch,
        tcp,
        peak_above_idle_kib: peak.saturating_sub(idle),
    }
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (source, bytes) = pdf(dir.path());
    let mib = SIZE as f64 / (1024.0 * 1024.0);
    let mut results = Vec::new();
    for i in 0..runs {
        let r = run(dir.path(), &source, &bytes);
        println!(
            "run {}: fetch A-B-C {:.0} ms ({:.0} MiB/s), TCP copy {:.0} ms ({:.0} MiB/s), C's peak {:.1} MiB above idle",
            i + 1,
            r.fetch.as_secs_f64() * 1e3,
            mib / r.fetch.as_secs_f64(),
            r.tcp.as_secs_f64() * 1e3,
            mib / r.tcp.as_secs_f64(),
            r.peak_above_idle_kib as f64 / 1024.0
        );
        results.push(r);
        let _ = std::io::stdout().flush();
    }
    // The median run by fetch time.
    results.sort_by_key(|r| r.fetch);
    let r = &results[results.len() / 2];
    let fetch = mib / r.fetch.as_secs_f64();
    let tcp = mib / r.tcp.as_secs_f64();
    println!("fetch_mib_s={fetch:.1}");
    println!("tcp_copy_mib_s={tcp:.1}");
    println!("throughput_ratio={:.2}", fetch / tcp);
    println!(
        "peak_rss_above_idle_mib={:.1}",
        r.peak_above_idle_kib as f64 / 1024.0
    );
}
