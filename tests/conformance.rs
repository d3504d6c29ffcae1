//! The protocol as an outsider implements it: `conformance/check.py`, a verifier written in
//! Python from `PROTOCOL.md` alone (never importing or calling project code), run from the
//! tests' virtual environment. It must accept the golden vectors and an export the real
//! `cailloux` binary makes (format v2 with its files too), and refuse tampered copies of either,
//! naming the line (or the file).

mod util;

use serde_json::Value;
use std::path::Path;
use util::*;

const CHECK: &str = "conformance/check.py";

fn check(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = run_python(CHECK, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_golden_vectors_pass_and_a_tampered_copy_is_refused_by_file_and_line() {
    let vectors = workspace().join("protocol/tests/vectors");
    let (ok, text) = check(&["-q".as_ref(), "vectors".as_ref(), vectors.as_os_str()]);
    assert!(ok, "{text}");
    assert!(text.contains(" 0 failed"), "{text}");

    // One hex digit of the golden record changed: the signature and the id no longer hold.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(&vectors).into_iter().flatten().flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let golden = dir.path().join("golden.record.hex");
    let hex = std::fs::read_to_string(&golden).unwrap_or_default();
    let at = hex.len() / 2;
    let flipped = if hex.as_bytes()[at] == b'0' { "1" } else { "0" };
    std::fs::write(
        &golden,
        format!("{}{flipped}{}", &hex[..at], &hex[at + 1..]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, text) = check(&["-q".as_ref(), "vectors".as_ref(), dir.path().as_os_str()]);
    assert!(!ok, "a tampered golden record passes: {text}");
    assert!(text.contains("golden.record.hex:1:"), "{text}");
}

/// An export of the project's examples with every version and retraction (and of the shared
/// corpus beside this checkout, when there is one), as the real binary writes it.
fn export(dir: &Path) -> String {
    let home = TestHome::init("Ville-Conforme");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    if let Some(shared) = shared_corpus() {
        home.ok(&["publish", shared.to_str().unwrap_or_default()]);
    }
    let listed = home.listed_ids();
    home.ok(&["retract", &listed[0], "--reason", "doublon"]);
    let file = dir.join("revue.md");
    std::fs::write(
        &file,
        "---\nkind: evaluation\ntitle: Relevés revus\nsummary: Des relevés.\nthemes: [water]\nmethod: metered\nindicators:\n  - { name: Débit, unit: m3/j, value: 12.5, baseline: 10, target: 20, date: 2024-06, source: Régie }\nlinks:\n  - { rel: evaluates, id: \"ID\" }\n---\nCorps.\n"
            .replace("ID", &listed[1]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    home.ok(&[
        "publish",
        file.to_str().unwrap_or_default(),
        "--supersedes",
        &listed[2],
    ]);
    home.ok(&["export", "--all-versions", "--include-retracted"])
}

#[test]
fn an_export_of_the_real_binary_passes_and_each_tampered_line_is_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = export(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 10, "{text}");
    let statuses: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_default()["status"].to_string())
        .collect();
    for status in ["\"current\"", "\"superseded\"", "\"retracted\""] {
        assert!(statuses.iter().any(|s| s == status), "no {status} line");
    }
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = check(&["export".as_ref(), file.as_os_str()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{} good, 0 bad", lines.len())),
        "{out}"
    );

    // Four lines tampered, four ways; the others stay good.
    let edit = |line: &str, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        if let Some(m) = v.as_object_mut() {
            f(m);
        }
        v.to_string()
    };
    let mut bent: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    // Line 2: a readable field that the signature does not say.
    bent[1] = edit(lines[1], &|m| {
        m.insert("title".into(), Value::from("Un autre titre"));
    });
    // Line 3: one byte of the signed record changed.
    bent[2] = edit(lines[2], &|m| {
        let record = m["record"].as_str().unwrap_or_default().to_owned();
        let at = record.len() / 2;
        let c = if record.as_bytes()[at] == b'A' {
            'B'
        } else {
            'A'
        };
        m.insert(
            "record".into(),
            Value::from(format!("{}{c}{}", &record[..at], &record[at + 1..])),
        );
    });
    // Line 4: another record's id.
    let other = serde_json::from_str::<Value>(lines[0]).unwrap_or_default()["id"].clone();
    bent[3] = edit(lines[3], &|m| {
        m.insert("id".into(), other.clone());
    });
    // Line 5: a field no one signed.
    bent[4] = edit(lines[4], &|m| {
        m.insert("verified_by".into(), Value::from("the federation"));
    });
    std::fs::write(&file, bent.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = check(&["export".as_ref(), file.as_os_str()]);
    assert!(!ok, "a tampered export passes: {out}");
    for (line, says) in [
        (2, "title"),
        (3, "signature"),
        (4, "id"),
        (5, "verified_by"),
    ] {
        let named = out
            .lines()
            .find(|l| l.starts_with(&format!("line {line}:")))
            .unwrap_or_else(|| panic!("line {line} is not named: {out}"));
        assert!(named.contains(says), "line {line}: {named}");
    }
    assert!(
        out.contains(&format!("{} good, 4 bad", lines.len() - 4)),
        "{out}"
    );
    // The binary's own `verify` agrees on which lines are bad.
    let home = TestHome::empty();
    let err = home.fails(&["verify", file.to_str().unwrap_or_default()], 1);
    for line in 2..=5 {
        assert!(err.contains(&format!("line {line}:")), "{err}");
    }
}

/// Format v2: a publication with files, exported with them (`export --with-files`); the
/// verifier written from `PROTOCOL.md` reads its line and checks each file by size and hash,
/// and names the file that was changed afterwards.
#[test]
fn an_export_with_files_passes_and_a_changed_file_is_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = TestHome::init("Vallon-sur-Orge");
    let mut report = b"%PDF-1.7\n".to_vec();
    report.extend((0..60_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(dir.path().join("rapport.pdf"), &report).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("mesures.csv"), "jour;kWh\n1;12\n2;14\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let md = dir.path().join("bilan.md");
    std::fs::write(
        &md,
        "---\nkind: practice\ntitle: Un bilan et ses relevés\nsummary: Avec deux fichiers.\n\
         themes: [energy]\nattachments:\n  - { file: rapport.pdf, title: \"Rapport 2024\" }\n\
         \x20 - { file: mesures.csv }\n---\nCorps.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    home.ok(&["publish", md.to_str().unwrap_or_default()]);
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    let (file, files) = (dir.path().join("export.jsonl"), dir.path().join("fichiers"));
    home.ok(&[
        "export",
        "--out",
        file.to_str().unwrap_or_default(),
        "--with-files",
        files.to_str().unwrap_or_default(),
    ]);
    let args = [
        "export".as_ref(),
        file.as_os_str(),
        "--files".as_ref(),
        files.as_os_str(),
    ];
    let (ok, out) = check(&args);
    assert!(ok, "{out}");

    let hash = blake3::hash(&report).to_hex().to_string();
    let mut changed = report.clone();
    changed[5_000] ^= 1;
    std::fs::write(files.join(&hash), &changed).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = check(&args);
    assert!(!ok, "a changed file passes: {out}");
    assert!(out.contains("rapport.pdf"), "the file is named: {out}");
}
