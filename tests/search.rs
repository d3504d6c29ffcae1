//! Searching the corpus through the real binary: French words with or without accents, singular
//! or plural, filters and facets; the API answers what the CLI answers; a damaged index is
//! rebuilt from the store; bad queries get a 400 that names the parameter.

mod util;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use util::*;

fn published_home() -> TestHome {
    let home = TestHome::init("Ville-Test");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    if let Some(shared) = shared_corpus() {
        home.ok(&["publish", shared.to_str().unwrap_or_default()]);
    }
    home
}

fn titles(home: &TestHome, args: &[&str]) -> Vec<String> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.push("--json");
    home.json(&all)
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn words_match_with_or_without_accents_and_in_singular_or_plural() {
    let home = published_home();
    for query in [
        &["methanisation"][..],
        &["méthanisation"],
        &["METHANISATION"],
    ] {
        let found = titles(&home, query);
        assert!(
            found
                .iter()
                .any(|t| t.starts_with("Méthanisation collective")),
            "{query:?}: {found:?}"
        );
    }
    for query in [
        &["forets", "nourricieres"][..],
        &["forêt", "nourricière"],
        &["foret nourriciere"],
    ] {
        let found = titles(&home, query);
        assert_eq!(found.len(), 1, "{query:?}: {found:?}");
        assert!(
            found[0].contains("forêt nourricière"),
            "{query:?}: {found:?}"
        );
    }
    // Plural in the query, singular in the text, and the other way round.
    let jardins = titles(&home, &["jardins"]);
    let jardin = titles(&home, &["jardin"]);
    assert!(jardins.len() >= 3, "{jardins:?}");
    assert_eq!(
        jardins.iter().collect::<BTreeSet<_>>(),
        jardin.iter().collect::<BTreeSet<_>>()
    );
    // Every word must match: a word found nowhere empties the result.
    assert!(titles(&home, &["jardin", "zeppelin"]).is_empty());
    // English records are analysed as English.
    let repair = titles(&home, &["repairs"]);
    assert!(
        repair.iter().any(|t| t.contains("repair café")),
        "{repair:?}"
    );
}

#[test]
fn title_matches_rank_first_and_snippets_mark_the_words() {
    let home = published_home();
    let hits = home.json(&["search", "chaufferie", "--json"]);
    let first = &hits[0];
    assert!(
        first["title"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("chaufferie"),
        "{hits}"
    );
    let scores: Vec<f64> = hits
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["score"].as_f64())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    assert!(
        hits.as_array()
            .into_iter()
            .flatten()
            .any(|h| h["snippet"].as_str().unwrap_or_default().contains("<mark>")),
        "{hits}"
    );
    for field in [
        "id",
        "kind",
        "title",
        "town",
        "author",
        "themes",
        "created_at",
        "score",
        "snippet",
    ] {
        assert!(!first[field].is_null(), "search --json lacks {field}");
    }
    // Human output marks the words too (« » when piped).
    let text = home.ok(&["search", "chaufferie"]);
    assert!(
        text.contains("«chaufferie»") || text.contains("«Chaufferie»"),
        "{text}"
    );
}

#[test]
fn filters_narrow_and_an_empty_query_lists() {
    let home = published_home();
    let all = home
        .json(&["search", "--limit", "500", "--json"])
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(
        all,
        home.listed_ids().len(),
        "an empty query lists everything"
    );
    let evaluations = home.json(&["search", "--kind", "evaluation", "--limit", "500", "--json"]);
    assert!(
        evaluations
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|r| r["kind"] == "evaluation"))
    );
    let energy = home.json(&[
        "search",
        "--theme",
        "energy",
        "--town",
        "SAINT-AUBIN-DES-PRES",
        "--json",
    ]);
    assert!(energy.as_array().is_some_and(|a| !a.is_empty()));
    assert!(
        energy
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["town"] == "Saint-Aubin-des-Prés"),
        "{energy}"
    );
    let abandoned = titles(&home, &["--outcome", "abandoned"]);
    assert!(
        abandoned.iter().any(|t| t.contains("Méthanisation")),
        "{abandoned:?}"
    );
    assert!(
        abandoned.iter().any(|t| t.contains("pédibus")),
        "{abandoned:?}"
    );
    // Years: the start of the record's period.
    let since_2021 = titles(&home, &["--since", "2021", "--until", "2021"]);
    assert!(
        since_2021
            .iter()
            .any(|t| t.contains("jardins partagés au pied")),
        "{since_2021:?}"
    );
    assert!(
        since_2021.iter().all(|t| !t.contains("Méthanisation")),
        "2019 is not 2021: {since_2021:?}"
    );
    // Bad values are refused with the parameter named.
    let err = home.fails(&["search", "x", "--theme", "energie"], 1);
    assert!(
        err.contains("theme: `energie`") && err.contains("did you mean `energy`?"),
        "{err}"
    );
    let err = home.fails(&["search", "x", "--since", "2020", "--until", "2010"], 1);
    assert!(err.contains("since: 2020 is after until (2010)"), "{err}");
}

#[test]
fn stats_count_by_kind_theme_town_year_and_outcome() {
    let home = published_home();
    let stats = home.json(&["stats", "--json"]);
    let total = home.listed_ids().len() as u64;
    assert_eq!(stats["total"].as_u64(), Some(total));
    let kinds: u64 = stats["facets"]["kind"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert_eq!(kinds, total, "every record has one kind");
    assert_eq!(stats["facets"]["town"]["Kilmore"], 1);
    assert!(stats["facets"]["year"]["2021"].as_u64() >= Some(2));
    // As many abandoned experiments as the files say.
    let mut folders = vec![examples()];
    folders.extend(shared_corpus());
    let abandoned = folders
        .iter()
        .flat_map(|f| md_files(f))
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == "outcome: abandoned")
        })
        .count() as u64;
    assert!(abandoned >= 2);
    assert_eq!(
        stats["facets"]["outcome"]["abandoned"].as_u64(),
        Some(abandoned)
    );
    let text = home.ok(&["stats"]);
    assert!(
        text.contains("transition énergétique"),
        "French labels: {text}"
    );
}

#[test]
fn the_api_answers_what_the_cli_answers_and_refuses_bad_queries_with_400() {
    let home = published_home();
    let queries: [&[&str]; 4] = [
        &["jardin"],
        &["methanisation"],
        &["--theme", "food"],
        &["habitants", "--kind", "practice"],
    ];
    let offline: Vec<Vec<String>> = queries
        .iter()
        .map(|q| ids_of(&home.json(&[&["search"], *q, &["--json"]].concat())))
        .collect();
    let offline_stats = home.json(&["stats", "--json"]);
    // The same home, now served by a node: the CLI goes through its API.
    let mut node = NodeProcess {
        home,
        child: None,
        town: "Ville-Test".into(),
    };
    node.restart(&[]);
    for (q, expected) in queries.iter().zip(&offline) {
        let through_api = ids_of(&node.home.json(&[&["search"], *q, &["--json"]].concat()));
        assert_eq!(&through_api, expected, "{q:?}");
    }
    assert_eq!(node.home.json(&["stats", "--json"]), offline_stats);
    let base = format!("http://{}/api/v1", node.api());
    let get = |path: &str| -> (u16, Value) {
        match ureq::get(format!("{base}{path}")).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_json().unwrap_or(Value::Null),
            ),
            Err(ureq::Error::StatusCode(code)) => (code, Value::Null),
            Err(e) => panic!("{e}"),
        }
    };
    let (status, page) = get("/records?q=jardin&limit=2&facets=true");
    assert_eq!(status, 200);
    assert_eq!(page["records"].as_array().map(Vec::len), Some(2));
    // Facets count every match, not just the page.
    let counted: u64 = page["facets"]["kind"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    assert_eq!(Some(counted), page["total"].as_u64());
    assert!(page["total"].as_u64() > Some(2));
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    let (_, next) = get(&format!("/records?q=jardin&limit=2&cursor={cursor}"));
    assert_ne!(
        next["records"][0]["id"], page["records"][0]["id"],
        "the cursor moves on"
    );
    assert!(page["facets"]["kind"].is_object());
    // The record page: links both ways, signature status.
    let practice = ids_of(
        &node
            .home
            .json(&["search", "ouvrir un jardin partagé", "--json"]),
    )[0]
    .clone();
    let (status, record) = get(&format!("/records/{}", &practice[..10]));
    assert_eq!(status, 200);
    assert_eq!(record["signature"]["status"], "verified");
    assert_eq!(record["links_out"][0]["rel"], "derived-from");
    assert!(
        record["links_out"][0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("jardins partagés"))
    );
    let (_, adapted) = get(&format!(
        "/records/{}",
        record["links_out"][0]["id"].as_str().unwrap_or_default()
    ));
    assert!(
        adapted["links_in"].as_array().is_some_and(|l| l
            .iter()
            .any(|x| x["rel"] == "adapts" && x["town"] == "Brieuc-la-Forêt")),
        "{adapted}"
    );
    // Bad queries: 400, naming the parameter.
    for (path, names) in [
        ("/records?kind=poem", "kind"),
        ("/records?theme=energie", "theme"),
        ("/records?since=soon", "since"),
        ("/records?limit=0", "limit"),
        ("/records?cursor=abc", "cursor"),
        ("/records?colour=blue", "colour"),
        ("/records/xyz", "xyz"),
        ("/stats?outcome=won", "outcome"),
        ("/records?facets=maybe", "facets"),
        ("/export?format=xml", "format"),
    ] {
        let response = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .get(format!("{base}{path}"))
            .call();
        let mut response = response.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(names)),
            "{path}: {body}"
        );
    }
    let _ = node.stop();
}

#[test]
fn a_damaged_index_is_rebuilt_from_the_store_when_the_node_starts() {
    let home = published_home();
    let before = ids_of(&home.json(&["search", "jardin", "--json"]));
    assert!(!before.is_empty());
    // Damage every segment file of the index.
    let index = home.path().join("index");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&index).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(".idx") || name.ends_with(".store") || name.ends_with(".term") {
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            if !bytes.is_empty() {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "found no index file to damage");
    let mut node = NodeProcess {
        home,
        child: None,
        town: "Ville-Test".into(),
    };
    node.restart(&[]);
    let rebuilt = wait_until(Duration::from_secs(20), || {
        ids_of(&node.home.json(&["search", "jardin", "--json"])) == before
    });
    assert!(rebuilt, "search did not come back; log:\n{}", node.log());
    assert!(
        node.log().contains("rebuilding it from the store"),
        "{}",
        node.log()
    );
    node.stop();
    // Deleting the index entirely works too, without a node: the CLI rebuilds it on use.
    std::fs::remove_dir_all(node.home.path().join("index")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ids_of(&node.home.json(&["search", "jardin", "--json"])),
        before
    );
    node.home.ok(&["reindex"]);
    assert_eq!(
        ids_of(&node.home.json(&["search", "jardin", "--json"])),
        before
    );
}
