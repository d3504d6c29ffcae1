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
        flags: Vec::new(),
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
        flags: Vec::new(),
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

/// Raw HTTP against a node's API: the status and the body, whatever the status.
struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn of(node: &NodeProcess) -> Api {
        Api {
            base: format!("http://{}/api/v1", node.api()),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
        }
    }

    /// GET `path` with query parameters (URL-encoded here): the status and the body's text.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<(u16, String), String> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let mut response = request.call().map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("{path}: {e}"))?;
        Ok((status, body))
    }

    fn json(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let (status, body) = self.get(path, params).unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} {params:?}: not JSON ({e}): {body:.300}"));
        (status, value)
    }

    /// Expects a JSON 400 whose message names `names` (and is short: it never echoes a whole
    /// hostile value back).
    fn refused(&self, path: &str, params: &[(&str, &str)], names: &[&str]) {
        let (status, body) = self
            .get(path, params)
            .unwrap_or_else(|e| panic!("{e} (is the node still up?)"));
        let shown: String = params
            .iter()
            .map(|(k, v)| format!("{k}={:.60}", v))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(status, 400, "{path}?{shown}: {body:.300}");
        assert!(
            body.len() < 1024,
            "{path}?{shown}: a long answer: {body:.300}"
        );
        let error: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}?{shown}: not JSON ({e}): {body:.300}"));
        let message = error["error"].as_str().unwrap_or_default();
        for name in names {
            assert!(message.contains(name), "{path}?{shown}: {message}");
        }
    }

    /// GET a target too long for the HTTP client's URI type (over 64 KiB), over a plain
    /// socket: the status and the body.
    fn raw(&self, target: &str) -> Result<(u16, String), String> {
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://");
        let host = address.split('/').next().unwrap_or_default();
        let mut socket = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        write!(
            socket,
            "GET /api/v1{target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        socket
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {answer:.200}"))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Like `refused`, over a plain socket, for a target of any length (already encoded). A
    /// target longer than HTTP's URIs (64 KiB) may get the server's 414 (or 431: the whole head
    /// is too large) before the API sees it.
    /// The HTTP layer may also answer such a target before the whole of it is sent, and close:
    /// the rest of the request then meets a closed socket (a broken pipe or a reset) and the
    /// 414 can be lost with it; that is a refusal too, provided the node still answers.
    fn raw_refused(&self, target: &str, names: &[&str]) {
        let answer = self.raw(target);
        if target.len() > 65_534 {
            match &answer {
                Ok((414 | 431, _)) => return,
                Err(e) if e.contains("Broken pipe") || e.contains("reset") => {
                    assert!(
                        self.alive(),
                        "{target:.60}: {e}, and the node no longer answers"
                    );
                    return;
                }
                _ => {}
            }
        }
        let (status, body) =
            answer.unwrap_or_else(|e| panic!("{target:.60}: {e} (is the node still up?)"));
        assert_eq!(status, 400, "{target:.60}: {body:.300}");
        assert!(
            body.len() < 1024,
            "{target:.60}: a long answer: {body:.300}"
        );
        let error: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{target:.60}: not JSON ({e}): {body:.300}"));
        let message = error["error"].as_str().unwrap_or_default();
        for name in names {
            assert!(message.contains(name), "{target:.60}: {message}");
        }
    }

    fn alive(&self) -> bool {
        matches!(self.get("/status", &[]), Ok((200, _)))
    }
}

fn served_corpus() -> NodeProcess {
    let mut node = NodeProcess {
        home: published_home(),
        child: None,
        town: "Ville-Test".into(),
        flags: Vec::new(),
    };
    node.restart(&[]);
    // The node indexes the store's records (published with no node running) as it starts.
    let api = Api::of(&node);
    let indexed = wait_until(Duration::from_secs(20), || {
        api.get("/records", &[("q", "jardin")])
            .is_ok_and(|(status, body)| status == 200 && body.contains("\"id\""))
    });
    assert!(
        indexed,
        "the node did not index the corpus; log:\n{}",
        node.log()
    );
    node
}

#[test]
fn hostile_words_get_an_answer_and_the_node_keeps_answering() {
    let node = served_corpus();
    let api = Api::of(&node);
    let ids = |v: &Value| {
        v["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, jardin) = api.json("/records", &[("q", "jardin")]);
    assert!(!ids(&jardin).is_empty());
    let nested =
        |depth: usize, word: &str| format!("{}{word}{}", "(".repeat(depth), ")".repeat(depth));
    let hundred_kb = "jardin ".repeat(100 * 1024 / 7);
    let ten_thousand_words = (0..10_000)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let hostile = [
        nested(800, "jardin"),
        nested(800, ""),
        "(".repeat(5000),
        "\"jardin".into(),
        "jardin\"".into(),
        "\"\"\"".into(),
        "title_fr:jardin".into(),
        "id:*".into(),
        "*".into(),
        "jardin*".into(),
        "+jardin -".into(),
        "-".into(),
        "\\".into(),
        "jardin^3~2".into(),
        "[a TO z]".into(),
        "{".into(),
        "!!!".into(),
        "jardin AND OR NOT".into(),
    ];
    for q in &hostile {
        let (status, body) = api
            .get("/records", &[("q", q)])
            .unwrap_or_else(|e| panic!("q={q:.60}: {e}; log:\n{}", node.log()));
        assert!(
            status == 200 || status == 400,
            "q={q:.60}: {status} {body:.300}"
        );
        if status == 400 {
            assert!(body.contains("q:"), "q={q:.60}: {body:.300}");
        }
        assert!(
            api.alive(),
            "the node died on q={q:.60}; log:\n{}",
            node.log()
        );
    }
    // Syntax characters are separators: the word inside still matches, at any depth that fits.
    let (status, deep) = api.json("/records", &[("q", &nested(240, "jardin"))]);
    assert_eq!(status, 200, "{deep}");
    assert_eq!(ids(&deep), ids(&jardin));
    let (status, fielded) = api.json("/records", &[("q", "[jardin]^")]);
    assert_eq!(status, 200, "{fielded}");
    assert_eq!(ids(&fielded), ids(&jardin));
    // The bounds, named.
    // Longer than the client's URIs: sent over a plain socket.
    let ten_kb = "jardin ".repeat(10 * 1024 / 7);
    api.refused("/records", &[("q", &ten_kb)], &["q:", "500"]);
    for q in [&hundred_kb, &ten_thousand_words] {
        api.raw_refused(
            &format!("/records?q={}", q.replace(' ', "+")),
            &["q:", "500"],
        );
        assert!(api.alive(), "log:\n{}", node.log());
    }
    let seventeen = (0..17)
        .map(|i| format!("mot{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    api.refused("/records", &[("q", &seventeen)], &["q:", "16"]);
    let sixteen = (0..16)
        .map(|i| format!("mot{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(api.json("/records", &[("q", &sixteen)]).0, 200);
    assert!(api.alive());
}

#[test]
fn every_parameter_is_bounded_and_refused_with_a_json_400_that_names_it() {
    let node = served_corpus();
    let api = Api::of(&node);
    let long = "9".repeat(10_000);
    // /records: numbers out of range or absurd.
    api.refused("/records", &[("cursor", "1000000000")], &["cursor"]);
    api.refused(
        "/records",
        &[("q", "jardin"), ("cursor", "1000000000")],
        &["cursor"],
    );
    api.refused(
        "/records",
        &[("limit", "999999999999999999999")],
        &["limit"],
    );
    api.refused("/records", &[("limit", "-1")], &["limit"]);
    api.refused("/records", &[("limit", &long)], &["limit"]);
    api.refused("/records", &[("since", "99999999999999999999")], &["since"]);
    api.refused("/records", &[("until", "-2020")], &["until"]);
    api.refused("/records", &[("kind", &long)], &["kind"]);
    api.refused("/records", &[("town", &long)], &["town"]);
    // Cursors: only the node's own, for the same query.
    for garbage in ["abc", "AAAA", "0", "-1", "%%%", "eyJ2IjoxfQ", &long] {
        api.refused(
            "/records",
            &[("q", "jardin"), ("cursor", garbage)],
            &["cursor"],
        );
        api.refused("/records", &[("cursor", garbage)], &["cursor"]);
    }
    let hundred_kb = "A".repeat(100_000);
    api.raw_refused(
        &format!("/records?q=jardin&cursor={hundred_kb}"),
        &["cursor"],
    );
    api.raw_refused(&format!("/records?cursor={hundred_kb}"), &["cursor"]);
    api.raw_refused(&format!("/records/{hundred_kb}"), &["id"]);
    let (_, page) = api.json("/records", &[("q", "jardin"), ("limit", "1")]);
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert!(!cursor.is_empty(), "{page}");
    assert_eq!(
        api.json(
            "/records",
            &[("q", "jardin"), ("limit", "1"), ("cursor", &cursor)]
        )
        .0,
        200
    );
    api.refused(
        "/records",
        &[("q", "habitants"), ("cursor", &cursor)],
        &["cursor"],
    );
    api.refused("/records", &[("cursor", &cursor)], &["cursor"]);
    // One character changed anywhere.
    for at in [0, cursor.len() / 2, cursor.len() - 1] {
        let mut forged: Vec<char> = cursor.chars().collect();
        forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
        let forged: String = forged.into_iter().collect();
        api.refused(
            "/records",
            &[("q", "jardin"), ("cursor", &forged)],
            &["cursor"],
        );
    }
    // A parameter given twice.
    api.refused("/records", &[("q", "jardin"), ("q", "chaufferie")], &["q"]);
    // /stats: the filters only, bounded the same way.
    api.refused("/stats", &[("since", "99999999999")], &["since"]);
    api.refused("/stats", &[("until", "12")], &["until"]);
    api.refused("/stats", &[("limit", "5")], &["limit", "kind, theme, town"]);
    assert_eq!(api.json("/stats", &[("theme", "food")]).0, 200);
    // /export: the API's JSON error, naming the parameter, for every bad value.
    api.refused(
        "/export",
        &[("include_retracted", "maybe")],
        &["include_retracted"],
    );
    api.refused("/export", &[("all_versions", "1")], &["all_versions"]);
    api.refused("/export", &[("format", &long)], &["format"]);
    api.refused(
        "/export",
        &[("colour", "blue")],
        &[
            "colour",
            "format, table, kind, theme, town, include_retracted, all_versions",
        ],
    );
    let (status, export) = api
        .get(
            "/export",
            &[("include_retracted", "true"), ("all_versions", "false")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    assert!(export.lines().count() > 3);
    // Path parameters: a short 400 whatever their length.
    api.refused(&format!("/records/{}", "a".repeat(10_240)), &[], &["id"]);
    api.refused(&format!("/records/{}", "z".repeat(10_240)), &[], &["id"]);
    api.refused("/records/%FF%FE", &[], &["id"]);
    assert!(api.alive(), "log:\n{}", node.log());
}

/// Every page of `params` from the first, following `next_cursor`: the ids in order.
fn pages(api: &Api, params: &[(&str, &str)], between: &mut dyn FnMut(usize)) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if let Some(c) = &cursor {
            all.push(("cursor", c));
        }
        let (status, body) = api.json("/records", &all);
        assert_eq!(status, 200, "page {page}: {body}");
        for r in body["records"].as_array().into_iter().flatten() {
            ids.push(r["id"].as_str().unwrap_or_default().to_owned());
        }
        between(page);
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(page < 100, "no end to the pages");
    }
    ids
}

#[test]
fn pages_neither_repeat_nor_skip_when_records_arrive_between_them() {
    let node = NodeProcess::start("Ville-Test", &[]);
    let api = Api::of(&node);
    // Forty records alike (their scores tie: the order must still be total).
    let first = publication_files(40, "zorglub");
    node.home
        .ok(&["publish", first.path().to_str().unwrap_or_default()]);
    let existing: BTreeSet<String> = node.ids();
    assert_eq!(existing.len(), 40);
    let mut batch = 0;
    let mut publish_between = |page: usize| {
        // After each of the first pages: newer records, some matching far better.
        if page < 3 {
            batch += 1;
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            for i in 0..4 {
                let text = format!(
                    "---\nkind: experiment\ntitle: \"zorglub zorglub zorglub {batch} {i}\"\nsummary: zorglub zorglub.\nthemes: [energy]\noutcome: partial\n---\n## Contexte\nzorglub zorglub zorglub zorglub.\n"
                );
                std::fs::write(dir.path().join(format!("new-{batch}-{i}.md")), text)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            node.home
                .ok(&["publish", dir.path().to_str().unwrap_or_default()]);
        }
    };
    for params in [
        &[("q", "zorglub"), ("limit", "7")][..],
        &[("theme", "energy"), ("limit", "7")][..],
    ] {
        let seen = pages(&api, params, &mut publish_between);
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{params:?}: a record repeats: {seen:?}"
        );
        for id in &existing {
            assert!(seen.contains(id), "{params:?}: {id} was skipped");
        }
    }
    // A word search's pages are in score order, then a total tie-break.
    let mut score_order = Vec::new();
    pages(&api, &[("q", "zorglub"), ("limit", "500")], &mut |_| {});
    let (_, all) = api.json("/records", &[("q", "zorglub"), ("limit", "500")]);
    for r in all["records"].as_array().into_iter().flatten() {
        score_order.push(r["id"].as_str().unwrap_or_default().to_owned());
    }
    let paged = pages(&api, &[("q", "zorglub"), ("limit", "3")], &mut |_| {});
    assert_eq!(
        paged, score_order,
        "small pages give the order of one big page"
    );
}
