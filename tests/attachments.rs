//! Attachments (record format v2) with the real binary: files checked at publish (type from
//! content, size), stored beside the store, served byte for byte by the API; and a node that
//! reads only v1 meeting v2 records over the network without penalising their sender.

mod util;

use libp2p::Multiaddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use util::{NodeProcess, TestHome, published, wait_until};

/// Bytes that start like a PDF, then `len` pseudo-random bytes (so no two runs' files can be
/// confused, and compression would not hide a truncation).
fn pdf(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut x = seed | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len, 0x5a);
    bytes
}

fn publication(title: &str, attachments: &str) -> String {
    format!(
        "---\nkind: practice\ntitle: {title}\nsummary: Une pratique avec ses fichiers.\n\
         themes: [energy]\n{attachments}---\nLe corps du texte.\n"
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Writes `files` and a publication attaching them (in that order) into `dir`, publishes it
/// from `home` and returns its id.
fn publish_with_files(home: &TestHome, dir: &Path, title: &str, files: &[(&str, &[u8])]) -> String {
    let mut attachments = String::from("attachments:\n");
    for (name, bytes) in files {
        write(dir, name, bytes);
        attachments.push_str(&format!("  - {{ file: {name} }}\n"));
    }
    write(dir, "r.md", publication(title, &attachments).as_bytes());
    published(&home.ok(&["publish", "--json", &dir.join("r.md").display().to_string()]))[0]
        .1
        .clone()
}

/// The first record `home` exports, verified, and its publication (to forge others from).
fn first_exported(home: &TestHome) -> (cailloux_protocol::Record, cailloux_protocol::Publication) {
    use base64::Engine;
    let line: serde_json::Value =
        serde_json::from_str(home.ok(&["export"]).lines().next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line["record"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let record = cailloux_protocol::Unverified::decode(bytes)
        .map_err(|e| e.to_string())
        .and_then(|u| u.verify().map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let publication = record
        .publication()
        .cloned()
        .unwrap_or_else(|| panic!("a publication"));
    (record, publication)
}

fn blob_files(home: &TestHome) -> usize {
    ["kept", "cache"]
        .iter()
        .filter_map(|d| std::fs::read_dir(home.path().join("blobs").join(d)).ok())
        .flatten()
        .count()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

fn get(url: &str) -> ureq::http::Response<ureq::Body> {
    agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn files_are_checked_at_publish_stored_and_served_byte_for_byte() {
    let home = TestHome::init("Loos-en-Gohelle");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (report, map) = (pdf(300_000, 7), png(40_000));
    write(dir.path(), "rapport.pdf", &report);
    write(dir.path(), "carte.png", &map);
    // A disguised file and one over the limit: both refused in one pass, naming the files,
    // and nothing stored.
    write(
        dir.path(),
        "faux.pdf",
        b"<!DOCTYPE html><html><script>alert(1)</script>",
    );
    write(dir.path(), "gros.pdf", &pdf(40 * 1024 * 1024, 3));
    write(
        dir.path(),
        "bad.md",
        &publication(
            "Des fichiers refusés",
            "attachments:\n  - { file: faux.pdf }\n  - { file: gros.pdf }\n  - { file: absent.pdf }\n",
        )
        .into_bytes(),
    );
    let bad = dir.path().join("bad.md");
    let err = home.fails(&["publish", bad.to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("attachments[0].file")
            && err.contains("`faux.pdf` is not a PDF document")
            && err.contains("HTML"),
        "{err}"
    );
    assert!(
        err.contains("attachments[1].file")
            && err.contains("`gros.pdf` is 40.0 MiB; the limit is 25.0 MiB"),
        "{err}"
    );
    assert!(err.contains("`absent.pdf` does not exist"), "{err}");
    assert!(
        err.contains("3 problem(s)") && err.contains("nothing was published"),
        "{err}"
    );
    assert!(home.listed_ids().is_empty());
    assert_eq!(blob_files(&home), 0, "nothing stored half-way");

    // A good one, published with no node running: the record lists both files.
    write(
        dir.path(),
        "good.md",
        &publication(
            "Éteindre la nuit",
            "attachments:\n  - { file: rapport.pdf, title: \"Rapport d'évaluation 2023\" }\n  - { file: carte.png }\n",
        )
        .into_bytes(),
    );
    let good = dir.path().join("good.md");
    let out = home.ok(&["publish", "--json", good.to_str().unwrap_or_default()]);
    let id = published(&out)[0].1.clone();
    let shown = home.json(&["show", &id, "--json"]);
    let files = shown["attachments"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), 2, "{shown}");
    assert_eq!(files[0]["name"], "rapport.pdf");
    assert_eq!(files[0]["title"], "Rapport d'évaluation 2023");
    assert_eq!(files[0]["media_type"], "application/pdf");
    assert_eq!(files[0]["size"], report.len());
    assert_eq!(files[0]["hash"], blake3::hash(&report).to_hex().as_str());
    assert_eq!(files[0]["held"], true);
    assert_eq!(
        files[1]["title"], "carte.png",
        "the title defaults to the name"
    );
    assert_eq!(files[1]["media_type"], "image/png");
    let human = home.ok(&["show", &id]);
    assert!(
        human.contains("rapport.pdf") && human.contains("PDF document"),
        "{human}"
    );

    // The node serves them with the recorded type, length, a strong ETag, and nosniff.
    let node = NodeProcess::start_in(home, "Loos-en-Gohelle", &[]);
    let base = format!("http://{}/api/v1/attachments", node.api());
    for (bytes, media, disposition) in [
        (
            &report,
            "application/pdf",
            "attachment; filename=\"rapport.pdf\"",
        ),
        (&map, "image/png", "inline; filename=\"carte.png\""),
    ] {
        let hash = blake3::hash(bytes).to_hex().to_string();
        let mut answer = get(&format!("{base}/{hash}"));
        assert_eq!(answer.status(), 200);
        let h = answer.headers().clone();
        let header = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), media);
        assert_eq!(header("content-length"), bytes.len().to_string());
        assert_eq!(header("etag"), format!("\"{hash}\""));
        assert_eq!(header("content-disposition"), disposition);
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = answer
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        assert!(body == *bytes, "the bytes served are the bytes published");
        // The ETag answers a revalidation without the bytes.
        let again = agent()
            .get(&format!("{base}/{hash}"))
            .header("if-none-match", &format!("\"{hash}\""))
            .call()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.status(), 304);
    }
    let unknown = blake3::hash(b"nobody attached this").to_hex().to_string();
    let mut answer = get(&format!("{base}/{unknown}"));
    assert_eq!(answer.status(), 404);
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    assert!(text.contains(&unknown), "a 404 names the hash: {text}");
    assert_eq!(get(&format!("{base}/not-a-hash")).status(), 400);

    // Through the running node too (it reads the files itself, beside the Markdown file).
    write(
        dir.path(),
        "mesures.csv",
        "quartier;kWh\nCentre;1200\n".as_bytes(),
    );
    write(
        dir.path(),
        "csv.md",
        &publication("Les mesures", "attachments:\n  - { file: mesures.csv }\n").into_bytes(),
    );
    let csv = dir.path().join("csv.md");
    node.home.ok(&["publish", csv.to_str().unwrap_or_default()]);
    let hash = blake3::hash("quartier;kWh\nCentre;1200\n".as_bytes())
        .to_hex()
        .to_string();
    let mut answer = get(&format!("{base}/{hash}"));
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.body_mut().read_to_string().unwrap_or_default(),
        "quartier;kWh\nCentre;1200\n"
    );
}

/// A node that reads only format v1 (the previous release's decoding, `--read-format 1`) meets
/// a v2 record by gossip and catch-up: it ignores it, does not count it against the sender,
/// stays connected, and keeps receiving v1 records.
#[test]
fn a_node_reading_only_v1_ignores_v2_records_and_keeps_its_peer() {
    let a = NodeProcess::start("Loos-en-Gohelle", &[]);
    let mut b = NodeProcess {
        home: TestHome::empty(),
        child: None,
        town: "Arras".into(),
        flags: vec!["--read-format".into(), "1".into()],
    };
    b.restart(&[a.addr()]);
    assert!(
        wait_until(Duration::from_secs(20), || b.status()["gossip_peers"] == 1),
        "B joins A's gossip"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "carte.png", &png(5_000));
    write(
        dir.path(),
        "v2.md",
        &publication("Avec une carte", "attachments:\n  - { file: carte.png }\n").into_bytes(),
    );
    write(
        dir.path(),
        "v1.md",
        &publication("Sans fichier", "").into_bytes(),
    );
    let v2 = published(&a.home.ok(&[
        "publish",
        "--json",
        &dir.path().join("v2.md").display().to_string(),
    ]))[0]
        .1
        .clone();
    let newer =
        |n: &NodeProcess| n.metric("cailloux_records_rejected_total{reason=\"newer_version\"}");
    assert!(
        wait_until(Duration::from_secs(20), || newer(&b) >= 1.0),
        "B read the v2 record as newer than it reads: {}",
        b.log()
    );
    let v1 = published(&a.home.ok(&[
        "publish",
        "--json",
        &dir.path().join("v1.md").display().to_string(),
    ]))[0]
        .1
        .clone();
    assert!(
        wait_until(Duration::from_secs(20), || b.ids().contains(&v1)),
        "the v1 record after it still reaches B"
    );
    assert!(!b.ids().contains(&v2), "B cannot hold what it cannot read");
    assert_eq!(b.status()["peers"], 1, "still connected");
    let banned = b.metrics();
    assert!(
        !banned
            .lines()
            .any(|l| l.starts_with("cailloux_peers_banned_total") && !l.ends_with(" 0")),
        "A was not banned: {banned}"
    );
    for reason in ["malformed", "invalid", "bad_signature", "wrong_id"] {
        assert_eq!(
            b.metric(&format!(
                "cailloux_records_rejected_total{{reason=\"{reason}\"}}"
            )),
            0.0,
            "nothing was held against A as {reason}"
        );
    }
    // Catch-up rounds (every 2 s here) do not fetch it again and again.
    let before = newer(&b);
    let rounds = |n: &NodeProcess| n.metric("cailloux_sync_rounds_total");
    let start = rounds(&b);
    assert!(wait_until(Duration::from_secs(30), || rounds(&b) >= start + 3.0));
    assert!(
        newer(&b) <= before + 1.0,
        "the unreadable record is not fetched each round"
    );
    // A, the newer node, holds it, of course.
    assert!(a.ids().contains(&v2));
}

/// A peer that speaks only the file protocol and serves `bytes` honestly for the first
/// segment and with one byte flipped in every later one; or, with no bytes, answers nothing
/// (every request left waiting).
async fn run_corrupt_server(target: Multiaddr, bytes: Vec<u8>, asked: Arc<AtomicUsize>) {
    use bao_tree::io::outboard::PreOrderMemOutboard;
    use bao_tree::{BlockSize, ChunkNum, ChunkRanges};
    use cailloux_protocol::wire::{BLOB_PROTOCOL, BlobRequest, BlobResponse};
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{StreamProtocol, noise, tcp, yamux};

    let outboard = PreOrderMemOutboard::create(&bytes, BlockSize::from_chunk_log(4));
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .with_behaviour(|_| {
            request_response::cbor::Behaviour::<BlobRequest, BlobResponse>::new(
                [(StreamProtocol::new(BLOB_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(120)),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    swarm.dial(target).unwrap_or_else(|e| panic!("{e}"));
    let mut unanswered = Vec::new();
    loop {
        if let SwarmEvent::Behaviour(request_response::Event::Message {
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        }) = swarm.select_next_some().await
        {
            asked.fetch_add(1, Ordering::SeqCst);
            if bytes.is_empty() {
                unanswered.push(channel);
                continue;
            }
            let ranges = ChunkRanges::from(
                ChunkNum(request.start * 16)
                    ..ChunkNum((request.start + u64::from(request.groups)) * 16),
            );
            let mut out = Vec::new();
            bao_tree::io::sync::encode_ranges_validated(&bytes[..], &outboard, &ranges, &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            if request.start > 0 {
                let at = out.len() - 100;
                out[at] ^= 0x20;
            }
            let _ = swarm
                .behaviour_mut()
                .send_response(channel, BlobResponse::Segment(out));
        }
    }
}

/// A record with a PDF and a PNG reaches B by gossip; B holds neither file until asked, then
/// fetches them, verified, and serves them byte for byte. A peer that serves corrupt segments
/// is caught at the first bad one, counted against (B's answer, sent as the file verifies,
/// stops short), and the file then comes from an honest peer.
#[test]
fn files_come_on_demand_verified_and_a_corrupt_peer_is_caught() {
    let mut a = NodeProcess::start("Loos-en-Gohelle", &[]);
    let b = NodeProcess::start("Arras", &[a.addr()]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (report, map) = (pdf(3 * 1024 * 1024 + 5_000, 11), png(70_000));
    let id = publish_with_files(
        &a.home,
        dir.path(),
        "Le rapport et la carte",
        &[("rapport.pdf", &report), ("carte.png", &map)],
    );
    assert!(
        wait_until(Duration::from_secs(20), || b.ids().contains(&id)),
        "the record reaches B"
    );
    let shown = b.home.json(&["show", &id, "--json"]);
    assert_eq!(
        shown["attachments"][0]["held"], false,
        "records travel, files do not"
    );
    let base = format!("http://{}/api/v1/attachments", b.api());
    let (pdf_hash, png_hash) = (
        blake3::hash(&report).to_hex().to_string(),
        blake3::hash(&map).to_hex().to_string(),
    );

    // Only a corrupt peer can serve B: caught at its second segment, struck, nothing cached.
    a.stop();
    assert!(wait_until(Duration::from_secs(20), || b.status()["peers"] == 0));
    let asked = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let b_addr: Multiaddr = b.addr().parse().unwrap_or_else(|e| panic!("{e}"));
    runtime.spawn(run_corrupt_server(b_addr, report.clone(), asked.clone()));
    assert!(wait_until(Duration::from_secs(20), || b.status()["peers"] == 1));
    // B sends the file as it is verified: what went out of the first segment goes, then the
    // answer is cut short (or, if the corrupt segment came before the answer's head, the
    // connection closes, or, if the transfer failed before the reader saw its first group,
    // a 404 says why), never completed with what did not verify.
    let url = format!("{base}/{pdf_hash}");
    if let Ok(mut answer) = agent().get(&url).call() {
        if answer.status() != 200 {
            let status = answer.status();
            let body = answer.body_mut().read_to_string().unwrap_or_default();
            assert!(
                status == 404 && body.contains(&pdf_hash) && body.contains("corrupt"),
                "a 200 cut short, or a 404 naming the file and the corrupt peer, not {status}: \
                 {body}\nB's log:\n{}",
                b.log()
            );
        } else {
            let mut got = Vec::new();
            let read = std::io::Read::read_to_end(
                &mut answer
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .reader(),
                &mut got,
            );
            assert!(read.is_err(), "the answer is cut short of its length");
            assert!(
                got.len() < report.len() && report.starts_with(&got),
                "only verified bytes, a prefix of the file: {} of {}",
                got.len(),
                report.len()
            );
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || b
            .log()
            .contains("served a corrupt segment")),
        "B says why"
    );
    assert!(
        b.metric("cailloux_records_rejected_total{reason=\"corrupt_file\"}") >= 1.0,
        "the corrupt segment is counted against the peer"
    );
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "it was asked, and served the first segment"
    );
    assert_eq!(
        b.home.json(&["show", &id, "--json"])["attachments"][0]["held"],
        false
    );

    // The honest peer back: both files come from it, byte for byte.
    a.restart(&[b.addr()]);
    assert!(wait_until(Duration::from_secs(20), || b.status()["peers"] == 2));
    for (hash, bytes) in [(&pdf_hash, &report), (&png_hash, &map)] {
        let mut answer = get(&format!("{base}/{hash}"));
        let status = answer.status();
        let body = answer
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(body == *bytes, "B serves the bytes A published");
    }
    assert_eq!(b.metric("cailloux_blobs_fetched_total"), 2.0);
    let shown = b.home.json(&["show", &id, "--json"]);
    assert_eq!(shown["attachments"][0]["held"], true);
    assert_eq!(shown["attachments"][1]["held"], true);
    drop(runtime);
}

/// The files beside the records, end to end through the CLI: `show --fetch` on a node that
/// lacks them, `export --with-files` (through the running node, then from a home's own blobs),
/// `verify --files` (a changed byte and an absent file named), and `import --files` into a
/// home that then holds them.
#[test]
fn show_fetch_export_with_files_verify_and_import_carry_the_files() {
    let a = NodeProcess::start("Loos-en-Gohelle", &[]);
    let b = NodeProcess::start("Arras", &[a.addr()]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (report, map) = (pdf(1024 * 1024 + 17, 5), png(30_000));
    let id = publish_with_files(
        &a.home,
        dir.path(),
        "Un bilan et sa carte",
        &[("rapport.pdf", &report), ("carte.png", &map)],
    );
    assert!(
        wait_until(Duration::from_secs(20), || b.ids().contains(&id)),
        "the record reaches B"
    );
    let (pdf_hash, png_hash) = (
        blake3::hash(&report).to_hex().to_string(),
        blake3::hash(&map).to_hex().to_string(),
    );

    // B lacks both files; `show --fetch` has it fetch them.
    assert_eq!(
        b.home.ok(&["show", &id]).matches("not held here").count(),
        2
    );
    let shown = b.home.ok(&["show", &id, "--fetch"]);
    assert_eq!(shown.matches("held here").count(), 2, "{shown}");
    assert!(!shown.contains("not held here"), "{shown}");
    assert_eq!(b.metric("cailloux_blobs_fetched_total"), 2.0);

    // An export with its files, through the running node.
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (jsonl, files) = (out.path().join("corpus.jsonl"), out.path().join("fichiers"));
    let (jsonl_arg, files_arg) = (jsonl.display().to_string(), files.display().to_string());
    b.home
        .ok(&["export", "--out", &jsonl_arg, "--with-files", &files_arg]);
    for (hash, bytes) in [(&pdf_hash, &report), (&png_hash, &map)] {
        let copy = std::fs::read(files.join(hash)).unwrap_or_default();
        assert!(copy == *bytes, "{hash} is written, named by its hash");
    }
    let refused = b.home.fails(
        &["export", "--format", "csv", "--with-files", &files_arg],
        1,
    );
    assert!(refused.contains("--format jsonl"), "{refused}");

    // Verified offline, file by file.
    let verified = TestHome::empty().ok(&["verify", &jsonl_arg, "--files", &files_arg]);
    assert!(verified.contains("2 file(s)"), "{verified}");
    let mut bent = report.clone();
    bent[700_000] ^= 1;
    std::fs::write(files.join(&pdf_hash), &bent).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(files.join(&png_hash)).unwrap_or_else(|e| panic!("{e}"));
    let refused = TestHome::empty().fails(&["verify", &jsonl_arg, "--files", &files_arg], 1);
    assert!(
        refused.contains("`rapport.pdf`") && refused.contains("the record signs"),
        "the changed byte is named: {refused}"
    );
    assert!(
        refused.contains("`carte.png`") && refused.contains("not in"),
        "the absent file is named: {refused}"
    );

    // Exported again: the wrong file is replaced, the absent one written.
    b.home
        .ok(&["export", "--out", &jsonl_arg, "--with-files", &files_arg]);
    TestHome::empty().ok(&["verify", &jsonl_arg, "--files", &files_arg]);

    // Imported with its files into a home with no node running: it holds them.
    let c = TestHome::init("Lens");
    let imported = c.ok(&["import", &jsonl_arg, "--files", &files_arg]);
    assert!(imported.contains("2 file(s) taken"), "{imported}");
    let shown = c.json(&["show", &id, "--json"]);
    assert_eq!(shown["attachments"][0]["held"], true);
    assert_eq!(shown["attachments"][1]["held"], true);
    // And that home exports them from its own blobs.
    let again = out.path().join("encore");
    c.ok(&[
        "export",
        "--out",
        &out.path().join("encore.jsonl").display().to_string(),
        "--with-files",
        &again.display().to_string(),
    ]);
    assert!(std::fs::read(again.join(&pdf_hash)).unwrap_or_default() == report);
    assert!(std::fs::read(again.join(&png_hash)).unwrap_or_default() == map);
}

/// Records (other authors') that name a town's file by its hash but misstate it: one its size
/// (the tree's shape comes from the size, so the honest holder's bytes would not verify under
/// it), one its type and name. Both sort before the true record. The holder answers that it
/// has no file of the wrong size, no honest peer is counted against, and the file is fetched
/// at the size the true record gives and served under its true type and name.
#[test]
fn records_misstating_a_file_neither_block_it_nor_rename_it() {
    use cailloux_protocol::{Record, SigningKey};
    let a = NodeProcess::start("Loos-en-Gohelle", &[]);
    let b = NodeProcess::start("Arras", &[a.addr()]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let report = pdf(200_000, 3);
    let id = publish_with_files(
        &a.home,
        dir.path(),
        "Le vrai rapport",
        &[("rapport.pdf", &report)],
    );
    assert!(wait_until(Duration::from_secs(20), || b
        .ids()
        .contains(&id)));

    // The same file, one byte longer by its record's word, from an author of its own; its id
    // sorts before the true record's, so it is the record B goes by.
    let (honest, publication) = first_exported(&a.home);
    // Keys tried in turn until one signs an id below the honest one's (as many as it takes:
    // an honest id near zero needs many).
    let sorting_first = |publication: &cailloux_protocol::Publication, from: u8| {
        (0u32..)
            .map(|n| {
                let mut key = [from; 32];
                key[..4].copy_from_slice(&n.to_le_bytes());
                Record::sign(
                    &SigningKey::from_bytes(&key),
                    honest.created_at(),
                    publication.clone(),
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .find(|r| r.id().to_hex() < honest.id().to_hex())
            .unwrap_or_else(|| panic!("some key signs an id below any but the lowest"))
    };
    let mut longer = publication.clone();
    longer.attachments[0].size += 1;
    let mut renamed = publication.clone();
    renamed.attachments[0].media_type = cailloux_protocol::MediaType::Png;
    renamed.attachments[0].name = "photo.png".into();
    let jsonl = dir.path().join("lying.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "{}\n{}\n",
            cailloux_node::exchange::jsonl_line(&sorting_first(&longer, 1)),
            cailloux_node::exchange::jsonl_line(&sorting_first(&renamed, 101)),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    b.home.ok(&["import", &jsonl.display().to_string()]);

    let hash = blake3::hash(&report).to_hex().to_string();
    let mut answer = get(&format!("http://{}/api/v1/attachments/{hash}", b.api()));
    let (status, headers) = (answer.status(), answer.headers().clone());
    let body = answer.body_mut().read_to_vec().unwrap_or_default();
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        b.log()
    );
    assert!(body == report, "the file A published");
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"rapport.pdf\""
    );
    assert_eq!(
        b.metric("cailloux_records_rejected_total{reason=\"corrupt_file\"}"),
        0.0,
        "the honest holder is not counted against"
    );
    assert_eq!(b.status()["peers"], 1, "and stays connected");
}

/// Readers asking for many files that no peer answers for (a peer that takes requests and
/// never replies): the transfers running or waiting for a turn are bounded, the readers past
/// the bound told 503 at once, the peer asked for at most every running transfer's window,
/// and the transfers stop once their readers have gone.
#[test]
fn transfers_waiting_on_a_silent_peer_are_bounded_and_stop_when_their_readers_leave() {
    let publisher = TestHome::init("Loos-en-Gohelle");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut hashes = Vec::new();
    for record in 0..2u64 {
        let sub = dir.path().join(record.to_string());
        std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("{e}"));
        let files: Vec<(String, Vec<u8>)> = (0..10u64)
            .map(|n| (format!("f{n}.pdf"), pdf(40_000, (record * 100 + n) * 2 + 1)))
            .collect();
        hashes.extend(
            files
                .iter()
                .map(|(_, b)| blake3::hash(b).to_hex().to_string()),
        );
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        publish_with_files(&publisher, &sub, &format!("Dossier {record}"), &files);
    }
    let exported = dir.path().join("records.jsonl");
    publisher.ok(&["export", "--out", &exported.display().to_string()]);

    let b = NodeProcess::start("Arras", &[]);
    b.home.ok(&["import", &exported.display().to_string()]);
    let asked = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let b_addr: Multiaddr = b.addr().parse().unwrap_or_else(|e| panic!("{e}"));
    runtime.spawn(run_corrupt_server(b_addr, Vec::new(), asked.clone()));
    assert!(wait_until(Duration::from_secs(20), || b.status()["peers"] == 1));

    // 20 readers at once, each giving up after 4 s.
    let base = format!("http://{}/api/v1/attachments", b.api());
    let readers: Vec<_> = hashes
        .iter()
        .map(|hash| {
            let url = format!("{base}/{hash}");
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(4)))
                    .build()
                    .into();
                let status = agent.get(&url).call().ok().map(|r| r.status().as_u16());
                (status, started.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_else(|_| panic!("a reader panicked")))
        .collect();
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == Some(503)).collect();
    assert_eq!(
        busy.len(),
        4,
        "16 transfers run or wait, the other readers are told 503: {answers:?}\n{}",
        b.log()
    );
    assert!(
        busy.iter().all(|(_, took)| *took < Duration::from_secs(2)),
        "at once: {answers:?}"
    );
    assert!(
        answers.iter().all(|(s, _)| *s != Some(200)),
        "nothing was served: {answers:?}"
    );
    let most = cailloux_node::blobs::MAX_TRANSFERS * cailloux_node::blobs::WINDOW;
    assert!(
        asked.load(Ordering::SeqCst) <= most,
        "at most {most} segments asked at once, were {}",
        asked.load(Ordering::SeqCst)
    );

    // The readers have gone: every transfer stops (those waiting for a turn at once, those
    // waiting on the peer within seconds), and a new reader gets a transfer again.
    assert!(
        wait_until(Duration::from_secs(30), || b
            .log()
            .matches("nobody waited for it any more")
            .count()
            >= 16),
        "the transfers stop: {}",
        b.log()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let again = agent
        .get(&format!("{base}/{}", hashes[0]))
        .call()
        .map(|r| r.status().as_u16());
    assert!(
        !matches!(again, Ok(503)),
        "a new reader is not told busy: {again:?}"
    );
    drop(runtime);
}

/// A record (another key's) that names a town's PNG by its hash as a PDF, on a node that holds
/// no other record of it: the fetch stops once the file's head is read, since no type a record
/// claims can hold, and the reader is told why. The peer serving it is not counted against
/// (its bytes are the signed ones), and nothing is cached.
#[test]
fn a_file_whose_head_refutes_its_records_type_is_not_fetched_further() {
    use cailloux_protocol::{MediaType, Record, SigningKey};
    let publisher = TestHome::init("Loos-en-Gohelle");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let map = png(3 * 1024 * 1024);
    publish_with_files(&publisher, dir.path(), "La carte", &[("carte.png", &map)]);
    let (honest, mut publication) = first_exported(&publisher);
    publication.attachments[0].media_type = MediaType::Pdf;
    publication.attachments[0].name = "rapport.pdf".into();
    let lying = Record::sign(
        &SigningKey::from_bytes(&[7; 32]),
        honest.created_at(),
        publication,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let jsonl = dir.path().join("lying.jsonl");
    std::fs::write(
        &jsonl,
        format!("{}\n", cailloux_node::exchange::jsonl_line(&lying)),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let b = NodeProcess::start("Arras", &[]);
    b.home.ok(&["import", &jsonl.display().to_string()]);
    // A peer with the true bytes for the first segment, and flipped bytes after.
    let asked = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let b_addr: Multiaddr = b.addr().parse().unwrap_or_else(|e| panic!("{e}"));
    runtime.spawn(run_corrupt_server(b_addr, map.clone(), asked.clone()));
    assert!(wait_until(Duration::from_secs(20), || b.status()["peers"] == 1));

    let hash = blake3::hash(&map).to_hex().to_string();
    let mut answer = get(&format!("http://{}/api/v1/attachments/{hash}", b.api()));
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(answer.status(), 404, "{text}");
    assert!(
        text.contains(&hash) && text.contains("does not start like a PDF"),
        "{text}"
    );
    assert_eq!(
        b.metric("cailloux_records_rejected_total{reason=\"corrupt_file\"}"),
        0.0,
        "stopped at the first segment, before the corrupt ones: {}",
        b.log()
    );
    assert_eq!(blob_files(&b.home), 0, "nothing cached");
    drop(runtime);
}
