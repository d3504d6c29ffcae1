//! Hostile HTTP visitors for the tests of a node's public address: raw TCP connections from a
//! chosen loopback address (127.0.0.x: the node counts connections per client address), that
//! send what a hostile visitor sends and then stall, and ways to watch what the node does about
//! it (when it closes them; its threads and resident memory from `/proc`).
//!
//! Everything here talks to loopback only.

use super::{NodeProcess, TestHome};
use cailloux_protocol::trust::{Act, Admission};
use cailloux_protocol::{AuthorKey, Record, SigningKey};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A home whose node serves a public address (`public_api` in `config.toml`), in open mode or,
/// with `federation`, as a member of that federation.
pub fn home_with_public_api(federation: Option<&SigningKey>) -> TestHome {
    let home = TestHome::empty();
    with_public_api(&home, federation);
    home
}

/// Adds a public address (and a federation) to a home's `config.toml`.
pub fn with_public_api(home: &TestHome, federation: Option<&SigningKey>) {
    let mut config = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.path().join("config.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    writeln!(config, "public_api = \"127.0.0.1:0\"").unwrap_or_else(|e| panic!("{e}"));
    if let Some(key) = federation {
        let key = AuthorKey(key.verifying_key().to_bytes()).to_hex();
        writeln!(config, "federation = \"{key}\"").unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The public address a node logged at start.
pub fn public_addr(node: &NodeProcess) -> SocketAddr {
    let log = node.log();
    let marker = "corpus browser on http://";
    let at = log
        .find(marker)
        .unwrap_or_else(|| panic!("no public address in the log:\n{log}"));
    let rest = &log[at + marker.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\u{1b}')
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", &rest[..end]))
}

/// The node's local API address.
pub fn local_addr(node: &NodeProcess) -> SocketAddr {
    node.api()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", node.api()))
}

pub fn pid(node: &NodeProcess) -> u32 {
    node.child.as_ref().map_or(0, std::process::Child::id)
}

/// A field of `/proc/<pid>/status` (`VmRSS`, `Threads`), as a number (kB for sizes).
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    proc_status(pid, "VmRSS") * 1024
}

/// Threads of process `pid`.
pub fn threads(pid: u32) -> u64 {
    proc_status(pid, "Threads")
}

pub const MIB: u64 = 1024 * 1024;

/// Polls a node's local `status` on a thread until finished, `pause` apart (none: back to
/// back): the latencies, the polls that failed, and the peak resident memory of `pid` (0: not
/// watched).
pub struct StatusPoller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Duration>, u64, usize)>,
}

impl StatusPoller {
    pub fn start(api: String, pid: Option<u32>, pause: Duration) -> StatusPoller {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let url = format!("http://{api}/api/v1/status");
                let agent = ureq::Agent::new_with_defaults();
                let (mut latencies, mut peak, mut failures) = (Vec::new(), 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = agent
                        .get(&url)
                        .call()
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                        .is_some_and(|body| body.contains("peer_id"));
                    latencies.push(started.elapsed());
                    failures += usize::from(!ok);
                    if let Some(pid) = pid {
                        peak = peak.max(rss_bytes(pid));
                    }
                    std::thread::sleep(pause);
                }
                (latencies, peak, failures)
            }
        });
        StatusPoller { stop, thread }
    }

    /// Sorted latencies, the peak RSS, and how many polls failed.
    pub fn finish(self) -> (Vec<Duration>, u64, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut latencies, peak, failures) = self
            .thread
            .join()
            .unwrap_or_else(|_| panic!("poller panicked"));
        latencies.sort();
        (latencies, peak, failures)
    }
}

/// The `i`-th loopback address 127.0.0.`i` (Linux answers on all of 127.0.0.0/8).
pub fn loopback(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

/// A TCP connection to `target` from `source` (port chosen by the system), optionally with a
/// small receive buffer so that a visitor that stops reading stalls the sender early. Blocking.
/// Err when the connection cannot be made.
pub fn connect_from(
    source: Ipv4Addr,
    target: SocketAddr,
    receive_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Reads (and drops) whatever comes until the peer closes the connection or `within` has
/// passed since `opened`: when the peer closed it, measured from `opened`; None if it is still
/// open.
pub fn closed_within(
    stream: &mut TcpStream,
    opened: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut buffer = [0u8; 4096];
    loop {
        let left = within.checked_sub(opened.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buffer) {
            Ok(0) => return Some(opened.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Reset: closed too.
            Err(_) => return Some(opened.elapsed()),
        }
    }
}

/// An HTTP answer read from a raw connection: its status and the body it came with.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Reads an answer's head, then its body until `body_limit` bytes (or all of it when it says its
/// length and that is less) have come, within `within`; the body holds what was read, which may
/// be more. None when the connection closes or stalls before a whole head arrives.
pub fn read_answer(
    stream: &mut TcpStream,
    body_limit: usize,
    within: Duration,
) -> Option<RawAnswer> {
    let deadline = Instant::now() + within;
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut answer = RawAnswer {
        status,
        head,
        body: data[head_end..].to_vec(),
    };
    let wanted = answer
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .map_or(body_limit, |l| l.min(body_limit));
    while answer.body.len() < wanted {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        if stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            break;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.body.extend_from_slice(&buffer[..n]),
        }
    }
    Some(answer)
}

/// Sends `request` on a new connection from `source` and reads the answer (its body up to
/// `body_limit` bytes). None when the node closed the connection without an answer.
pub fn request_from(
    source: Ipv4Addr,
    target: SocketAddr,
    request: &[u8],
    body_limit: usize,
) -> Option<RawAnswer> {
    let mut stream = connect_from(source, target, None).ok()?;
    stream.write_all(request).ok()?;
    read_answer(&mut stream, body_limit, Duration::from_secs(10))
}

/// `GET path` as a complete HTTP/1.1 request.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: cailloux.test\r\n\r\n").into_bytes()
}

/// `POST path` with a JSON body.
pub fn post_json(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: cailloux.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// `n` admissions of distinct town keys, signed by the federation key `federation`: records a
/// member node accepts from anyone (the signature is the credential).
pub fn admissions(federation: &SigningKey, n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[8..8 + tag.len().min(24)].copy_from_slice(&tag.as_bytes()[..tag.len().min(24)]);
            let town = SigningKey::from_bytes(&seed);
            Record::sign_act(
                federation,
                1_760_000_000_000 + i as u64,
                Act::Admit(Admission {
                    key: AuthorKey(town.verifying_key().to_bytes()),
                    town: format!("Ville-{tag}-{i}"),
                    country: "FR".into(),
                    code: None,
                    until: None,
                }),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// The body of `POST /api/v1/submit` for `records`.
pub fn submit_body(records: &[Record]) -> Vec<u8> {
    use base64::Engine;
    let encoded: Vec<String> = records
        .iter()
        .map(|r| base64::engine::general_purpose::STANDARD.encode(r.bytes()))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "records": encoded })).unwrap_or_default()
}

/// Admits the node's own town key with `federation`, through its local API, so that it may
/// publish its own records.
pub fn admit_own_town(node: &NodeProcess, federation: &SigningKey) {
    let key = node.status()["public_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{e}"));
    }
    let admission = Record::sign_act(
        federation,
        1_700_000_000_000,
        Act::Admit(Admission {
            key: AuthorKey(bytes),
            town: node.town.clone(),
            country: "FR".into(),
            code: None,
            until: None,
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let answer = request_from(
        loopback(1),
        local_addr(node),
        &post_json("/api/v1/submit", &submit_body(&[admission])),
        1 << 20,
    )
    .unwrap_or_else(|| panic!("no answer to the admission"));
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// `n` publication files of about `kib` KiB of body each, in a new folder: a corpus whose export
/// is far larger than the socket buffers between a node and a visitor that stops reading.
pub fn large_publication_files(n: usize, kib: usize, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let paragraph = "Les habitants ont planté des haies et suivi la consommation d'eau du quartier, \
                     semaine après semaine, avec les écoles et le centre social.\n\n";
    let body: String = paragraph.repeat(kib * 1024 / paragraph.len() + 1);
    for i in 0..n {
        let text = format!(
            "---\nkind: experiment\ntitle: \"{tag} {i}\"\nsummary: Un long essai.\nthemes: [water]\noutcome: partial\n---\n## Contexte\n{body}"
        );
        std::fs::write(dir.path().join(format!("{i:04}.md")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// A visitor that asked for the export and stopped reading after the answer's head: its
/// connection (kept open) and the answer's status and head. Refusals come with their JSON body.
pub struct StalledExport {
    pub stream: Option<TcpStream>,
    pub answer: Option<RawAnswer>,
}

/// Asks for `GET /api/v1/export` from `source` with a small receive buffer, reads the answer's
/// head (and a refusal's body) and stops reading.
pub fn stalled_export(source: Ipv4Addr, target: SocketAddr) -> StalledExport {
    let Ok(mut stream) = connect_from(source, target, Some(4096)) else {
        return StalledExport {
            stream: None,
            answer: None,
        };
    };
    if stream.write_all(&get("/api/v1/export")).is_err() {
        return StalledExport {
            stream: None,
            answer: None,
        };
    }
    // A 200's body is streamed: read none of it (the head comes with at most a few KiB of it).
    let answer = read_answer(&mut stream, 0, Duration::from_secs(10));
    let answer = match answer {
        Some(a) if a.status != 200 => {
            let length = a
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0);
            let mut a = a;
            let mut rest = vec![0u8; length.saturating_sub(a.body.len())];
            if stream.read_exact(&mut rest).is_ok() {
                a.body.extend_from_slice(&rest);
            }
            Some(a)
        }
        other => other,
    };
    StalledExport {
        stream: Some(stream),
        answer,
    }
}

/// p-quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// SIGTERM, then waits at most `within` for the node to exit: how long it took and how it
/// exited, or None if it is still running (it is killed when dropped).
pub fn terminate_within(
    node: &mut NodeProcess,
    within: Duration,
) -> Option<(Duration, std::process::ExitStatus)> {
    let child = node.child.as_mut()?;
    let started = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut exited = None;
    super::wait_until(within, || {
        exited = child.try_wait().ok().flatten();
        exited.is_some()
    });
    let status = exited?;
    node.child = None;
    Some((started.elapsed(), status))
}
