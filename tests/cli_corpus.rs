//! The whole path of a town's corpus through the real binary: publish every folder, list, show,
//! export, verify, import into a second home; on the project's examples and, when present, the
//! shared sample corpus.

mod util;

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use util::*;

fn round_trip(corpus: &Path) {
    let files = md_files(corpus);
    assert!(!files.is_empty());
    let home = TestHome::init("Ville-Test");

    let out = home.run(&["publish", "--json", corpus.to_str().unwrap_or_default()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Piped output: no progress bar, only the summary line.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let published = published(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(published.len(), files.len(), "one line per file");
    let ids: BTreeSet<String> = published.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), files.len(), "one record per file");
    let by_file: HashMap<String, String> = published
        .iter()
        .map(|(f, id)| {
            (
                Path::new(f)
                    .canonicalize()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                id.clone(),
            )
        })
        .collect();

    // list: every record, newest first.
    let listed = home.json(&["list", "--json"]);
    let listed_ids = ids_of(&listed);
    assert_eq!(listed_ids.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let times: Vec<&str> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["created_at"].as_str().unwrap_or(""))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for r in listed.as_array().into_iter().flatten() {
        for field in [
            "id",
            "kind",
            "title",
            "town",
            "author",
            "themes",
            "created_at",
        ] {
            assert!(!r[field].is_null(), "list --json lacks {field}: {r}");
        }
    }

    // show: every record in full, by an 8-character prefix; links point at records of the corpus.
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let shown = home.json(&["show", &id[..8], "--json"]);
        assert_eq!(shown["id"], Value::String(id.clone()));
        for field in [
            "summary",
            "body",
            "language",
            "tags",
            "sdgs",
            "period",
            "participation",
            "licence",
            "links",
        ] {
            assert!(shown.get(field).is_some(), "show --json lacks {field}");
        }
        let kind = shown["kind"].as_str().unwrap_or_default().to_owned();
        let specific: &[&str] = match kind.as_str() {
            "experiment" => &["outcome", "need"],
            "evaluation" => &["method", "indicators"],
            _ => &[],
        };
        for field in specific {
            assert!(shown.get(*field).is_some(), "{kind} lacks {field}");
        }
        for link in shown["links"].as_array().into_iter().flatten() {
            let target = link["id"].as_str().unwrap_or_default();
            assert!(ids.contains(target), "link to {target} outside the corpus");
        }
        *kinds.entry(kind).or_default() += 1;
        let human = home.ok(&["show", &id[..10]]);
        assert!(human.contains(id), "show prints the id");
    }

    // Every file link of the corpus was resolved to the id its target file got.
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let id = &by_file[&file
            .canonicalize()
            .map(|p| p.display().to_string())
            .unwrap_or_default()];
        let shown = home.json(&["show", id, "--json"]);
        for line in text.lines().filter(|l| l.contains("file:")) {
            let name = line
                .split("file:")
                .nth(1)
                .unwrap_or("")
                .trim()
                .trim_end_matches('}')
                .trim();
            let target = file
                .parent()
                .map(|d| d.join(name))
                .and_then(|p| p.canonicalize().ok());
            let target_id = &by_file[&target.map(|p| p.display().to_string()).unwrap_or_default()];
            assert!(
                shown["links"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|l| l["id"] == Value::String(target_id.clone())),
                "{}: link to {name} not resolved",
                file.display()
            );
        }
    }

    // Filters agree with what show says.
    for (kind, n) in &kinds {
        let filtered = ids_of(&home.json(&["list", "--kind", kind, "--json"]));
        assert_eq!(filtered.len(), *n, "--kind {kind}");
    }
    let first = home.json(&["show", &listed_ids[0], "--json"]);
    let town = first["town"].as_str().unwrap_or_default().to_uppercase();
    let by_town = home.json(&["list", "--town", &town, "--json"]);
    assert!(!ids_of(&by_town).is_empty());
    assert!(
        by_town
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["town"].as_str().map(str::to_uppercase) == Some(town.clone()))
    );
    let theme = first["themes"][0].as_str().unwrap_or_default().to_owned();
    let by_theme = home.json(&["list", "--theme", &theme, "--json"]);
    assert!(ids_of(&by_theme).contains(&listed_ids[0]));
    assert!(by_theme.as_array().into_iter().flatten().all(|r| {
        r["themes"]
            .as_array()
            .is_some_and(|t| t.contains(&Value::String(theme.clone())))
    }));

    // export -> verify -> import into a second home: the same ids.
    let export = home.path().join("export.jsonl");
    home.ok(&["export", "--out", export.to_str().unwrap_or_default()]);
    let verified = home.ok(&["verify", export.to_str().unwrap_or_default()]);
    assert!(
        verified.contains(&format!("{} good line(s), 0 bad", ids.len())),
        "{verified}"
    );
    let second = TestHome::empty();
    let imported = second.ok(&["import", export.to_str().unwrap_or_default()]);
    assert!(
        imported.contains(&format!("{} stored", ids.len())),
        "{imported}"
    );
    assert_eq!(
        second.listed_ids().into_iter().collect::<BTreeSet<_>>(),
        ids
    );
    assert_eq!(second.listed_ids(), listed_ids, "same order");
    let again = second.ok(&["import", export.to_str().unwrap_or_default()]);
    assert!(
        again.contains("0 stored"),
        "importing twice changes nothing: {again}"
    );
    assert_eq!(second.listed_ids().len(), ids.len());
    // The second home's export is byte-identical: the records are the same bytes.
    let export2 = second.path().join("export.jsonl");
    second.ok(&["export", "--out", export2.to_str().unwrap_or_default()]);
    assert_eq!(std::fs::read(&export).ok(), std::fs::read(&export2).ok());

    // CSV: a header and one row per record.
    let csv_text = home.ok(&["export", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().cloned().unwrap_or_default();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows.len(), ids.len());
    assert!(rows.iter().all(|r| ids.contains(&r[0])));
}

#[test]
fn examples_round_trip() {
    round_trip(&examples());
}

#[test]
fn shared_corpus_round_trip() {
    match shared_corpus() {
        Some(dir) => round_trip(&dir),
        None => {
            eprintln!("no ../shared/corpus beside this checkout; the examples test covers the path")
        }
    }
}

#[test]
fn every_folder_of_the_shared_corpus_publishes_on_its_own() {
    let Some(dir) = shared_corpus() else { return };
    let home = TestHome::init("Ville-Test");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let folder = entry.path();
        let out = home.ok(&["publish", "--json", folder.to_str().unwrap_or_default()]);
        total += published(&out).len();
    }
    assert_eq!(home.listed_ids().len(), total);
    assert_eq!(total, md_files(&dir).len());
}
