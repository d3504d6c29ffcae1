//! What tools that are not Cailloux see of a node, against a real `cailloux node` with a public
//! address: the read API's answers checked against its OpenAPI document (by Python's
//! `jsonschema`, from the tests' virtual environment), exact totals, cross-origin reads on the
//! public address and nothing that writes, and exports that name their file.

mod util;

use cailloux_protocol::vocab::fold;
use serde_json::{Value, json};
use util::http::*;
use util::*;

/// A node with a public address holding the project's examples, one of them retracted and one
/// revised, so that pages show versions and retractions.
struct Corpus {
    node: NodeProcess,
    /// Every publication the node holds, with versions and retracted ones.
    ids: Vec<String>,
}

fn corpus() -> Corpus {
    corpus_with("")
}

/// `corpus`, with more lines in the node's `config.toml`.
fn corpus_with(config: &str) -> Corpus {
    let home = home_with_public_api(None);
    let mut text = std::fs::read_to_string(home.path().join("config.toml")).unwrap_or_default();
    text.push_str(config);
    std::fs::write(home.path().join("config.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let node = NodeProcess::start_in(home, "Ville-Outils", &[]);
    node.home
        .ok(&["publish", examples().to_str().unwrap_or_default()]);
    let listed = node.home.listed_ids();
    assert!(listed.len() >= 8, "{listed:?}");
    node.home
        .ok(&["retract", &listed[0], "--reason", "doublon"]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let revised = dir.path().join("revue.md");
    std::fs::write(
        &revised,
        "---\nkind: practice\ntitle: Fiche revue\nsummary: Une fiche, revue.\nthemes: [water]\n---\nCorps.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let first =
        published(
            &node
                .home
                .ok(&["publish", "--json", revised.to_str().unwrap_or_default()]),
        )[0]
        .1
        .clone();
    std::fs::write(
        &revised,
        "---\nkind: practice\ntitle: Fiche revue deux fois\nsummary: Une fiche, revue.\nthemes: [water]\n---\nCorps.\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    node.home.ok(&[
        "publish",
        revised.to_str().unwrap_or_default(),
        "--supersedes",
        &first,
    ]);
    let ids = ids_of(
        &node
            .home
            .json(&["list", "--json", "--include-retracted", "--all-versions"]),
    );
    Corpus { node, ids }
}

/// A GET on `addr`; panics when no answer comes.
fn get_from(addr: std::net::SocketAddr, path: &str) -> RawAnswer {
    request(addr, "GET", path, &[])
}

/// A request with the given head lines and no body, on a connection closed after the answer
/// (so that a streamed answer ends when the connection does).
fn request(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[&str]) -> RawAnswer {
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: cailloux.test\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    request_from(loopback(1), addr, text.as_bytes(), 4 << 20)
        .unwrap_or_else(|| panic!("no answer to {method} {path}"))
}

/// One answer for the OpenAPI check: what it is, the document's path template, its status.
fn answer(what: &str, template: &str, status: u16, value: Value) -> Value {
    json!({ "what": what, "path": template, "method": "get", "status": status, "value": value })
}

#[test]
fn every_read_answer_matches_the_openapi_document_field_for_field() {
    let c = corpus();
    let local = local_addr(&c.node);
    let public = public_addr(&c.node);
    let mut answers = Vec::new();
    let mut json_of = |addr, path: &str, template: &str, status: u16| {
        let a = get_from(addr, path);
        assert_eq!(
            a.status,
            status,
            "GET {path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let value = a.json();
        answers.push(answer(path, template, status, value.clone()));
        value
    };
    for addr in [local, public] {
        let page = json_of(addr, "/api/v1/records?limit=2", "/api/v1/records", 200);
        let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        json_of(
            addr,
            &format!("/api/v1/records?limit=2&cursor={cursor}"),
            "/api/v1/records",
            200,
        );
        json_of(
            addr,
            "/api/v1/records?q=jardin&facets=true",
            "/api/v1/records",
            200,
        );
        json_of(addr, "/api/v1/records?kind=nothing", "/api/v1/records", 400);
        for id in &c.ids {
            json_of(
                addr,
                &format!("/api/v1/records/{id}"),
                "/api/v1/records/{id}",
                200,
            );
        }
        json_of(
            addr,
            "/api/v1/records/not-an-id",
            "/api/v1/records/{id}",
            400,
        );
        json_of(
            addr,
            &format!("/api/v1/records/{}", "0".repeat(64)),
            "/api/v1/records/{id}",
            404,
        );
        json_of(addr, "/api/v1/stats", "/api/v1/stats", 200);
        json_of(addr, "/api/v1/stats?theme=water", "/api/v1/stats", 200);
        json_of(addr, "/api/v1/vocabulary", "/api/v1/vocabulary", 200);
        json_of(addr, "/api/v1/members", "/api/v1/members", 200);
        json_of(addr, "/api/v1/export?format=xml", "/api/v1/export", 400);
    }
    json_of(local, "/api/v1/status", "/api/v1/status", 200);
    json_of(local, "/api/v1/peers", "/api/v1/peers", 200);
    // An act's page: the retraction.
    let all = c.node.home.ok(&["export", "--include-retracted"]);
    let retracted: Value = all
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_default())
        .find(|v| v["status"] == "retracted")
        .unwrap_or_else(|| panic!("no retracted record in {all}"));
    let retraction = c.node.home.json(&[
        "show",
        retracted["id"].as_str().unwrap_or_default(),
        "--json",
    ])["versions"]["retracted"]["record"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let act = json_of(
        local,
        &format!("/api/v1/records/{retraction}"),
        "/api/v1/records/{id}",
        200,
    );
    assert_eq!(act["act"], "retract", "{act}");

    // The document's vocabularies are the node's.
    let doc: Value = serde_json::from_slice(&get_from(local, "/api/v1/openapi.json").body)
        .unwrap_or_else(|e| panic!("{e}"));
    let vocabulary = get_from(local, "/api/v1/vocabulary").json();
    let slugs = |v: &Value| {
        let mut s: Vec<String> = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        s.sort();
        s
    };
    let enumerated = |v: &Value| {
        let mut s: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect();
        s.sort();
        s
    };
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        enumerated(&schemas["Summary"]["properties"]["themes"]["items"]["enum"]),
        slugs(&vocabulary["themes"])
    );
    assert_eq!(
        enumerated(&schemas["Summary"]["properties"]["kind"]["enum"]),
        slugs(&vocabulary["kinds"])
    );
    assert_eq!(
        enumerated(&schemas["Publication"]["properties"]["outcome"]["enum"]),
        slugs(&vocabulary["outcomes"])
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (doc_file, answers_file) = (
        dir.path().join("openapi.json"),
        dir.path().join("answers.json"),
    );
    std::fs::write(&doc_file, serde_json::to_vec(&doc).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &answers_file,
        serde_json::to_vec(&answers).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = run_python(
        "tests/python/openapi_answers.py",
        &[doc_file.as_os_str(), answers_file.as_os_str()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "answers that the OpenAPI document does not describe:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} answer(s) checked, 0 failure(s)",
            answers.len()
        )),
        "{stdout}"
    );

    // The check bites: an answer with a field the document does not describe, or without one
    // it requires, fails by name.
    let mut bent = answers.clone();
    bent[0]["value"]["undocumented"] = json!(1);
    if let Some(first) = bent[0]["value"]["records"][0].as_object_mut() {
        first.remove("title");
    }
    std::fs::write(&answers_file, serde_json::to_vec(&bent).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run_python(
        "tests/python/openapi_answers.py",
        &[doc_file.as_os_str(), answers_file.as_os_str()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("'undocumented' was unexpected")
            && stdout.contains("'title' is a required property"),
        "{stdout}"
    );
}

#[test]
fn every_list_answer_has_the_exact_total_without_asking_for_facets() {
    let c = corpus();
    let local = local_addr(&c.node);
    let current = c.node.home.listed_ids().len() as u64;
    for (query, expected) in [
        ("limit=1".to_owned(), current),
        ("limit=1&facets=true".to_owned(), current),
        (
            "kind=practice&limit=1".to_owned(),
            c.node
                .home
                .json(&["list", "--json", "--kind", "practice"])
                .as_array()
                .map_or(0, |a| a.len() as u64),
        ),
        ("q=zzzzqqqq".to_owned(), 0),
    ] {
        let page = get_from(local, &format!("/api/v1/records?{query}")).json();
        assert_eq!(page["total"].as_u64(), Some(expected), "{query}: {page}");
    }
    // A words query: the total counts every match, whatever the page's size.
    let all = get_from(local, "/api/v1/records?q=jardin&limit=100").json();
    let matches = all["records"].as_array().map_or(0, |a| a.len() as u64);
    assert!(matches >= 2, "{all}");
    let one = get_from(local, "/api/v1/records?q=jardin&limit=1").json();
    assert_eq!(one["total"].as_u64(), Some(matches), "{one}");
}

#[test]
fn public_reads_are_open_to_other_origins_and_nothing_that_writes_is() {
    let c = corpus();
    let (local, public) = (local_addr(&c.node), public_addr(&c.node));
    let origin = "Origin: https://notebook.example";
    for path in [
        "/api/v1/records?limit=1",
        "/api/v1/records/not-an-id",
        "/api/v1/stats",
        "/api/v1/export",
        "/api/v1/openapi.json",
    ] {
        let a = request(public, "GET", path, &[origin]);
        assert_eq!(
            a.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "GET {path} on the public address: {}",
            a.head
        );
        let a = request(local, "GET", path, &[origin]);
        assert_eq!(
            a.header("access-control-allow-origin"),
            None,
            "GET {path} on the local address: {}",
            a.head
        );
    }
    // A browser's preflight for a read is answered; for a write, or another method, it is not.
    let read = request(
        public,
        "OPTIONS",
        "/api/v1/records",
        &[origin, "Access-Control-Request-Method: GET"],
    );
    assert_eq!(read.status, 204, "{}", read.head);
    assert_eq!(
        read.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(
        read.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET") && !m.contains("POST")),
        "{}",
        read.head
    );
    for (path, method) in [
        ("/api/v1/submit", "POST"),
        ("/api/v1/records", "POST"),
        ("/api/v1/records", "DELETE"),
    ] {
        let refused = request(
            public,
            "OPTIONS",
            path,
            &[origin, &format!("Access-Control-Request-Method: {method}")],
        );
        assert_eq!(
            refused.header("access-control-allow-origin"),
            None,
            "a preflight for {method} {path} is given permission: {}",
            refused.head
        );
        assert_eq!(refused.header("access-control-allow-methods"), None);
    }
    let post = request(public, "POST", "/api/v1/submit", &[origin]);
    assert_eq!(
        post.header("access-control-allow-origin"),
        None,
        "{}",
        post.head
    );
}

#[test]
fn without_public_url_the_catalogue_links_to_the_host_asked_for_and_says_it_varies() {
    let c = corpus();
    let public = public_addr(&c.node);
    let answer = get_from(public, "/api/v1/catalog.jsonld");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.header("vary").as_deref(), Some("Host"));
    let catalog = answer.json();
    assert_eq!(
        catalog["dcat:service"]["dcat:endpointURL"]["@id"],
        "http://cailloux.test/api/v1/"
    );
    // No Host (HTTP/1.0), or one that is not a plain host: no links made from it.
    for head in [
        "GET /api/v1/catalog.jsonld HTTP/1.0\r\n\r\n".to_owned(),
        "GET /api/v1/catalog.jsonld HTTP/1.1\r\nHost: evil.example/\"><x\r\nConnection: close\r\n\r\n"
            .to_owned(),
    ] {
        let refused = request_from(loopback(1), public, head.as_bytes(), 1 << 16)
            .unwrap_or_else(|| panic!("no answer"));
        assert_eq!(refused.status, 400, "{}", refused.head);
        assert!(
            refused.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("Host") && e.contains("public_url")),
            "{:?}",
            refused.json()
        );
    }
}

#[test]
fn an_export_names_its_file_and_its_media_type() {
    let c = corpus();
    let public = public_addr(&c.node);
    for (query, media, file) in [
        ("", "application/jsonl", "cailloux.jsonl"),
        ("?format=csv", "text/csv", "cailloux-records.csv"),
        (
            "?format=csv&table=indicators",
            "text/csv",
            "cailloux-indicators.csv",
        ),
        ("?format=csv&table=links", "text/csv", "cailloux-links.csv"),
    ] {
        let a = get_from(public, &format!("/api/v1/export{query}"));
        assert_eq!(a.status, 200, "{query}: {}", a.head);
        assert!(
            a.header("content-type")
                .is_some_and(|t| t.starts_with(media)),
            "{query}: {}",
            a.head
        );
        assert_eq!(
            a.header("content-disposition").as_deref(),
            Some(format!("attachment; filename=\"{file}\"").as_str()),
            "{query}"
        );
    }
    let bad = get_from(public, "/api/v1/export?table=links");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("format=csv")),
        "{:?}",
        bad.json()
    );
}

/// Percent-encoding of everything but unreserved characters, as the catalogue's fragments are.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An answer's body, its chunked transfer coding undone.
fn body_of(answer: &RawAnswer) -> Vec<u8> {
    let chunked = answer
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    if !chunked {
        return answer.body.clone();
    }
    let (mut rest, mut out) = (answer.body.as_slice(), Vec::new());
    while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..at])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or_else(|| panic!("a bad chunk size in {}", String::from_utf8_lossy(rest)));
        rest = &rest[at + 2..];
        if size == 0 {
            break;
        }
        assert!(rest.len() >= size + 2, "a chunk cut short");
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    out
}

/// Every JSONL line of an export answer.
fn jsonl_records(answer: &RawAnswer) -> Vec<Value> {
    String::from_utf8_lossy(&body_of(answer))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_catalogue_is_dcat_ap_with_a_dataset_per_town_whose_downloads_work() {
    const PUBLIC_URL: &str = "https://cailloux.example-town.fr";
    let c = corpus_with(&format!("public_url = \"{PUBLIC_URL}/\"\n"));
    let (local, public) = (local_addr(&c.node), public_addr(&c.node));
    let answer = get_from(public, "/api/v1/catalog.jsonld");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/ld+json")),
        "{}",
        answer.head
    );
    assert_eq!(
        answer.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let catalog = answer.json();
    assert_eq!(get_from(local, "/api/v1/catalog.jsonld").json(), catalog);
    assert_eq!(catalog["@type"], "dcat:Catalog");

    // One dataset per town of the current records, and one for the whole corpus.
    let current = jsonl_records(&get_from(public, "/api/v1/export"));
    let mut towns: Vec<String> = current
        .iter()
        .filter_map(|r| r["town"].as_str().map(str::to_owned))
        .collect();
    towns.sort();
    towns.dedup();
    assert!(towns.len() >= 3, "{towns:?}");
    let datasets = catalog["dcat:dataset"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(datasets.len(), towns.len() + 1, "{catalog:#}");
    let mut with_dataset: Vec<String> = Vec::new();
    for dataset in &datasets {
        assert_eq!(dataset["@type"], "dcat:Dataset");
        // Open mode: a town is only what signers say, so the node publishes every dataset.
        assert_eq!(
            dataset["dct:publisher"]["foaf:name"], "Ville-Outils",
            "{dataset}"
        );
        let id = dataset["@id"].as_str().unwrap_or_default();
        let town = (id != format!("{PUBLIC_URL}/#corpus")).then(|| {
            towns
                .iter()
                .find(|t| id == format!("{PUBLIC_URL}/#town/{}", url_encoded(&fold(t))))
                .cloned()
                .unwrap_or_else(|| panic!("{id}: a dataset for no town the node holds"))
        });
        if let Some(t) = &town {
            let title = dataset["dct:title"]["@value"].as_str().unwrap_or_default();
            assert!(title.ends_with(&format!("au nom de {t}")), "{title}");
            with_dataset.push(t.clone());
        }
        let expected: Vec<&Value> = current
            .iter()
            .filter(|r| town.as_deref().is_none_or(|t| r["town"] == t))
            .collect();
        // Temporal coverage: from the earliest period's start to the latest period's end.
        let temporal = &dataset["dct:temporal"];
        let (start, end) = (
            temporal["dcat:startDate"]["@value"].as_str().unwrap_or(""),
            temporal["dcat:endDate"]["@value"].as_str().unwrap_or(""),
        );
        assert!(
            start.len() == 10 && end.len() == 10 && start <= end,
            "{temporal}"
        );
        for r in &expected {
            if let Some(s) = r["period"]["start"].as_str() {
                // `2019-01-01` against `2019`: as far as the period says.
                let covered = &start[..s.len().min(start.len())];
                assert!(
                    covered <= s,
                    "{start} is after the period {s} of {}",
                    r["id"]
                );
            }
        }
        let themes = dataset["dcat:theme"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!themes.is_empty());
        assert!(themes.iter().all(|t| t["@id"].as_str().is_some_and(|id| {
            id.starts_with("http://publications.europa.eu/resource/authority/data-theme/")
        })));
        // Each distribution's download is the export, filtered to the dataset's town.
        let distributions = dataset["dcat:distribution"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut media: Vec<String> = Vec::new();
        for d in &distributions {
            media.push(d["dcat:mediaType"]["@id"].as_str().unwrap_or("").to_owned());
            // One licence: its URI; several: a rights statement naming each.
            let mut licences: Vec<&str> = expected
                .iter()
                .filter_map(|r| r["licence"].as_str())
                .collect();
            licences.sort();
            licences.dedup();
            match licences.as_slice() {
                [one] => assert_eq!(
                    d["dct:license"]["@id"],
                    format!("https://spdx.org/licenses/{one}.html"),
                    "{d}"
                ),
                several => {
                    let rights = d["dct:rights"]["rdfs:label"]["@value"]
                        .as_str()
                        .unwrap_or("");
                    assert!(several.iter().all(|l| rights.contains(l)), "{d}");
                }
            }
            let url = d["dcat:downloadURL"]["@id"].as_str().unwrap_or_default();
            let path = url
                .strip_prefix(PUBLIC_URL)
                .unwrap_or_else(|| panic!("{url} does not start with the public URL"));
            let got = get_from(public, path);
            assert_eq!(got.status, 200, "{url}: {}", got.head);
            if path.contains("format=jsonl") {
                let lines = jsonl_records(&got);
                assert_eq!(lines.len(), expected.len(), "{url}");
                assert!(
                    lines
                        .iter()
                        .all(|l| expected.iter().any(|e| e["id"] == l["id"]))
                );
            } else {
                let text = String::from_utf8_lossy(&body_of(&got)).into_owned();
                assert!(text.contains("id,kind,title,town"), "{url}: {text}");
            }
        }
        media.sort();
        assert_eq!(
            media,
            [
                "https://www.iana.org/assignments/media-types/application/jsonl",
                "https://www.iana.org/assignments/media-types/text/csv"
            ]
        );
    }
    with_dataset.sort();
    assert_eq!(with_dataset, towns, "each town has its dataset");
    assert_eq!(
        answer.header("vary"),
        None,
        "links from public_url do not vary"
    );
    let service = &catalog["dcat:service"];
    assert_eq!(service["@type"], "dcat:DataService");
    assert_eq!(
        service["dcat:endpointDescription"]["@id"],
        format!("{PUBLIC_URL}/api/v1/openapi.json")
    );

    // DCAT-AP 3.0.0's shapes, by pySHACL: the catalogue conforms; one without a distribution's
    // access URL or a dataset's title does not.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let shapes = workspace().join("tests/dcat-ap/dcat-ap-3.0.0-SHACL.ttl");
    let file = dir.path().join("catalog.jsonld");
    std::fs::write(&file, &answer.body).unwrap_or_else(|e| panic!("{e}"));
    let out = run_python(
        "tests/python/dcat_validate.py",
        &[shapes.as_os_str(), file.as_os_str()],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("conforms: True"),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut broken = catalog.clone();
    if let Some(d) = broken["dcat:dataset"][1].as_object_mut() {
        d.remove("dct:title");
    }
    if let Some(d) = broken["dcat:dataset"][0]["dcat:distribution"][0].as_object_mut() {
        d.remove("dcat:accessURL");
    }
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run_python(
        "tests/python/dcat_validate.py",
        &[shapes.as_os_str(), file.as_os_str()],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("dcat:accessURL") && report.contains("title"),
        "{report}"
    );
}

/// The code of the README's example marked `<!-- example: NAME -->`.
fn readme_example(name: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap_or_default();
    let marker = format!("<!-- example: {name} -->");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"));
    let rest = &readme[at..];
    let open = "```python\n";
    let start = rest
        .find(open)
        .unwrap_or_else(|| panic!("no python block after {marker}"))
        + open.len();
    let end = rest[start..]
        .find("```")
        .unwrap_or_else(|| panic!("the block after {marker} does not end"));
    rest[start..start + end].to_owned()
}

#[test]
fn the_readme_duckdb_and_pandas_examples_run_on_a_real_export() {
    let home = TestHome::init("Ville-Mesures");
    home.ok(&["publish", examples().to_str().unwrap_or_default()]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let experiment = home.listed_ids()[0].clone();
    let evaluation = dir.path().join("mesures.md");
    std::fs::write(
        &evaluation,
        format!(
            "---\nkind: evaluation\ntitle: Deux mesures\nsummary: Avant, après.\nthemes: [energy]\nmethod: metered\nindicators:\n  - {{ name: Consommation, unit: kWh, value: 800, baseline: 1000 }}\n  - {{ name: Participants, unit: personnes, value: 40, baseline: 25.5 }}\n  - {{ name: Sans référence, unit: '%', value: 3 }}\nlinks:\n  - {{ rel: evaluates, id: \"{experiment}\" }}\n---\nCorps.\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    home.ok(&["publish", evaluation.to_str().unwrap_or_default()]);
    let csv = dir.path().join("indicators.csv");
    home.ok(&[
        "export",
        "--format",
        "csv",
        "--table",
        "indicators",
        "--out",
        csv.to_str().unwrap_or_default(),
    ]);
    let run = |name: &str| {
        // Not `duckdb.py`: a script of that name would shadow the module it imports.
        let script = dir.path().join(format!("readme_{name}.py"));
        std::fs::write(&script, readme_example(name)).unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new(python())
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the README's {name} example fails:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // DuckDB: one tuple per indicator with a baseline, the change computed from numbers.
    let duck = run("duckdb");
    for expected in [
        "'Saint-Aubin-des-Prés'",
        "'Chaleur livrée', 'MWh/an', 395.0, 410.0, 15.0",
        "'Ville-Mesures', 'Deux mesures', 'Consommation', 'kWh', 1000.0, 800.0, -200.0",
        "'Participants', 'personnes', 25.5, 40.0, 14.5",
    ] {
        assert!(duck.contains(expected), "{expected} not in:\n{duck}");
    }
    assert!(!duck.contains("Sans référence"), "{duck}");
    // pandas: the same rows, and by town how many indicators have a baseline and improved.
    let pandas = run("pandas");
    for expected in [
        "Saint-Aubin-des-Prés,Chaleur livrée,MWh/an,395.0,410.0,15.0",
        "Ville-Mesures,Consommation,kWh,1000.0,800.0,-200.0",
        "Ville-Mesures,Participants,personnes,25.5,40.0,14.5",
        "Ville-Mesures,2,1",
        "Saint-Aubin-des-Prés,1,1",
    ] {
        assert!(pandas.contains(expected), "{expected} not in:\n{pandas}");
    }
}
