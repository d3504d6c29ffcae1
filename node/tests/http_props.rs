//! Hostile HTTP, as a property: arbitrary methods, paths, query strings and bodies sent to every
//! endpoint of a real node's routers (a `Daemon` in this process, its local and public addresses
//! on loopback, spoken to over raw TCP so that nothing is cleaned up on the way). Whatever comes
//! in, the node answers: never a 5xx, never a panic or an abort (which would end this process),
//! within a time bound, and without allocating more than a bound while it answers (a counting
//! global allocator enforces it).

use cailloux_node::daemon::{Daemon, NodeOptions};
use cailloux_node::writer::Origin;
use cailloux_node::{Home, now_millis};
use cailloux_protocol::{Record, SigningKey};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Counts what the process allocates; each request runs under a limit of what was allocated
/// before it plus `ALLOC_BOUND`. An allocation past the limit fails, and a failed allocation
/// aborts the process: the test then fails loudly, as a node would have died.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// What one request may cost: time to the end of the answer, and memory allocated above the
/// level before it (the node's own background work is in this figure too, so it is generous;
/// what it catches is a request that makes the node reserve gigabytes).
const TIME_BOUND: Duration = Duration::from_secs(10);
const ALLOC_BOUND: usize = 256 * 1024 * 1024;

struct Node {
    local: String,
    public: String,
    token: String,
    _daemon: Daemon,
    _runtime: tokio::runtime::Runtime,
}

/// One node for every case: started once, with a few records to find.
fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // The node lives as long as the process (a static is never dropped), so its home is
        // not a temporary folder that would be left behind: it is in Cargo's folder for test
        // files, emptied at each start.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_props-home");
        let _ = std::fs::remove_dir_all(&dir);
        let home = Home::new(&dir);
        home.init("Propville").unwrap_or_else(|e| panic!("{e}"));
        let options = NodeOptions {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            api: "127.0.0.1:0".into(),
            public_api: Some("127.0.0.1:0".into()),
            public_url: None,
            bootstrap: Vec::new(),
            mdns: false,
            town: None,
            sync_interval: Duration::from_secs(3600),
            max_peers: cailloux_node::daemon::DEFAULT_MAX_PEERS,
            store_cache_mb: cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
            blob_cache_mb: cailloux_node::home::DEFAULT_BLOB_CACHE_MB,
            relay: false,
        };
        let daemon = runtime
            .block_on(Daemon::start(home.clone(), options))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = SigningKey::from_bytes(&[7; 32]);
        let records: Vec<Record> = (0..20)
            .map(|i| {
                let text = format!(
                    "---\nkind: practice\ntitle: Jardin partagé numéro {i}\nsummary: Des \
                     habitants (et la mairie) cultivent ensemble.\nthemes: [food]\ntown: \
                     Propville\n---\nUn jardin, des bacs, un [lien](https://example.org/{i}).\n"
                );
                let p = cailloux_protocol::parse_publication(&text, None)
                    .unwrap_or_else(|v| panic!("{v:?}"))
                    .publication;
                Record::sign(&key, now_millis() - 1000 + i, p).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        daemon
            .writer()
            .insert_blocking(records, Origin::Local)
            .unwrap_or_else(|e| panic!("{e}"));
        Node {
            local: daemon.api_addr().to_owned(),
            public: daemon
                .public_addr()
                .unwrap_or_else(|| panic!("no public address"))
                .to_owned(),
            token: home.api_token().unwrap_or_else(|e| panic!("{e}")),
            _daemon: daemon,
            _runtime: runtime,
        }
    })
}

/// Sends raw bytes, reads the whole answer (the request says `Connection: close`); returns the
/// status code, or None when the node closed without a status line.
fn exchange(addr: &str, request: &[u8]) -> (Option<u16>, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(TIME_BOUND));
    let _ = stream.set_write_timeout(Some(TIME_BOUND));
    // The node may answer (and close) before it has read the whole body: that is its right.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Only the status line matters; keep the first bytes, drain the rest.
                if answer.len() < 256 {
                    answer.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        if start.elapsed() > TIME_BOUND * 2 {
            break;
        }
    }
    let status = std::str::from_utf8(&answer)
        .ok()
        .and_then(|text| text.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, start.elapsed())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const ROUTES: &[&str] = &[
    "/",
    "/api/v1/records",
    "/api/v1/records/",
    "/api/v1/stats",
    "/api/v1/export",
    "/api/v1/vocabulary",
    "/api/v1/members",
    "/api/v1/openapi.json",
    "/api/v1/status",
    "/api/v1/peers",
    "/api/v1/publish",
    "/api/v1/submit",
    "/api/v1/import",
    "/metrics",
    "/api/v1/",
    "/nowhere",
];

const PARAMS: &[&str] = &[
    "q",
    "kind",
    "theme",
    "town",
    "since",
    "until",
    "outcome",
    "limit",
    "cursor",
    "facets",
    "format",
    "include_retracted",
    "all_versions",
];

/// Values that have hurt parsers: deep nesting, huge and odd numbers, query syntax, odd text.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..3000).prop_map(|n| format!("{}jardin{}", "(".repeat(n), ")".repeat(n))),
        (1usize..3000).prop_map(|n| "(".repeat(n)),
        (1usize..3000).prop_map(|n| "[".repeat(n) + &"\"".repeat(n % 7)),
        Just("1000000000".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("NaN".to_owned()),
        Just("1e308".to_owned()),
        Just("title:jardin AND body:*".to_owned()),
        Just("\"unclosed phrase".to_owned()),
        Just("jardin -\"jardin partagé\" -\"a a\" -A-A".to_owned()),
        Just("jardin~2^100".to_owned()),
        Just("a".repeat(100_000)),
        (1usize..5000).prop_map(|n| "mot ".repeat(n)),
        any::<String>(),
        "[a-z0-9:()\\[\\]{}^~*?\"'+\\-!\\\\ ]{0,200}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        proptest::sample::select(PARAMS).prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ];
    proptest::collection::vec((key, hostile_value()), 0..4).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(ROUTES).prop_map(str::to_owned),
        (proptest::sample::select(ROUTES), hostile_value())
            .prop_map(|(r, tail)| format!("{r}{}", percent_encode(&tail))),
        "/[a-zA-Z0-9/._%-]{0,300}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..4096),
        hostile_value().prop_map(|v| format!("{{\"records\": [\"{v}\"]}}").into_bytes()),
        (0usize..600).prop_map(|n| {
            let one = "\"gmEBAg==\"";
            format!("{{\"records\": [{}]}}", vec![one; n].join(",")).into_bytes()
        }),
        hostile_value().prop_map(|v| {
            serde_json::json!({ "files": [{ "path": "/tmp/x.md", "text": v }], "supersedes": v })
                .to_string()
                .into_bytes()
        }),
        hostile_value().prop_map(|v| format!("{v}\n{{\"record\": \"{v}\"}}\n").into_bytes()),
    ]
}

fn request(method: &str, path: &str, query: &str, body: &[u8], token: Option<&str>) -> Vec<u8> {
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: node\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn check(addr: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = ALLOCATOR.set_limit(ALLOCATOR.allocated().saturating_add(ALLOC_BOUND));
    let (status, took) = exchange(addr, bytes);
    let _ = ALLOCATOR.set_limit(usize::MAX);
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    prop_assert!(
        took <= TIME_BOUND,
        "answered in {took:?} (bound {TIME_BOUND:?}): {shown}"
    );
    if let Some(code) = status {
        prop_assert!(code < 500, "{code} for {shown}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_request_makes_the_node_fail(
        method in proptest::sample::select(&["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"][..]),
        path in path(),
        query in query(),
        body in body(),
        with_token in any::<bool>(),
        public in any::<bool>(),
    ) {
        let node = node();
        let (addr, token) = if public {
            (&node.public, None)
        } else {
            (&node.local, with_token.then_some(node.token.as_str()))
        };
        check(addr, &request(method, &path, &query, &body, token))?;
    }
}

/// The requests that brought nodes down, each once, on both addresses.
#[test]
fn the_requests_that_stopped_nodes_are_answered() {
    let node = node();
    let deep = format!("{}jardin{}", "(".repeat(800), ")".repeat(800));
    let cases = [
        format!("/api/v1/records?q={}", percent_encode(&deep)),
        format!("/api/v1/records?q={}", percent_encode(&"(".repeat(100_000))),
        "/api/v1/records?cursor=1000000000".to_owned(),
        "/api/v1/records?cursor=18446744073709551615&limit=500".to_owned(),
        "/api/v1/records?q=jardin&cursor=1000000000".to_owned(),
    ];
    for target in &cases {
        for addr in [&node.local, &node.public] {
            check(addr, &request("GET", target, "", b"", None)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // And the node still answers.
    let (status, _) = exchange(
        &node.local,
        &request("GET", "/api/v1/status", "", b"", None),
    );
    assert_eq!(status, Some(200));
}
