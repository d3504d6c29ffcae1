//! Trust, with real nodes on loopback: a federation of three towns accepts its members' and
//! their delegates' records and nobody else's; a revocation stops a delegate's new records and
//! keeps the earlier ones; a revision or a retraction is accepted only from the record's author
//! or its town, and retracting a version brings back the one before it; a retraction reaches a
//! node that was offline when it was made. Every wait has a deadline.

mod util;

use serde_json::Value;
use std::time::Duration;
use util::*;

const TOWNS: [(&str, &str); 3] = [
    ("Vallon-sur-Orge", "91999"),
    ("Saint-Aubin-des-Prés", "35999"),
    ("Brieuc-la-Forêt", "22999"),
];

struct Federation {
    coordinator: TestHome,
    key: String,
    towns: Vec<NodeProcess>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The roster a node shows: (town, valid) and (delegate name, valid).
fn members(node: &NodeProcess) -> Value {
    node.home.json(&["members", "--json"])
}

fn town_count(node: &NodeProcess) -> usize {
    members(node)["towns"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["valid"] == true).count())
}

fn delegate_state(node: &NodeProcess, name: &str) -> Option<Value> {
    members(node)["towns"]
        .as_array()?
        .iter()
        .flat_map(|t| t["delegates"].as_array().cloned().unwrap_or_default())
        .find(|d| d["name"] == name)
}

/// A federation created by a coordinator (who runs no node), three town nodes that joined it
/// before their first start, each admitted by the coordinator through the first node.
fn federation_of_three() -> Federation {
    let coordinator = TestHome::empty();
    let created = coordinator.json(&[
        "federation",
        "create",
        "--name",
        "Réseau des cailloux",
        "--json",
    ]);
    let key = text(&created["federation"]);
    assert_eq!(key.len(), 64, "{created}");
    let mut towns: Vec<NodeProcess> = Vec::new();
    for (i, (town, _)) in TOWNS.iter().enumerate() {
        let home = TestHome::empty();
        home.ok(&["join", &key]);
        if i == 0 {
            // The first town also serves the public: the page, the read API and, being in a
            // federation, submissions.
            with_public_api(&home);
        }
        let bootstrap: Vec<String> = towns.iter().map(NodeProcess::addr).collect();
        towns.push(NodeProcess::start_in(home, town, &bootstrap));
    }
    let first = towns[0].api();
    for (node, (town, code)) in towns.iter().zip(TOWNS) {
        assert_eq!(node.status()["federation"], key.as_str());
        let town_key = text(&node.status()["public_key"]);
        coordinator.ok(&[
            "federation",
            "admit",
            &town_key,
            "--town",
            town,
            "--code",
            code,
            "--node",
            &first,
        ]);
    }
    for node in &towns {
        assert!(
            wait_until(Duration::from_secs(20), || town_count(node) == 3),
            "{} does not see the three towns: {}\n{}",
            node.town,
            members(node),
            node.log()
        );
    }
    Federation {
        coordinator,
        key,
        towns,
    }
}

fn with_public_api_fresh(home: &TestHome) {
    std::fs::write(
        home.path().join("config.toml"),
        "town = \"Nulle-Part\"\npublic_api = \"127.0.0.1:0\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn with_public_api(home: &TestHome) {
    use std::io::Write;
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(home.path().join("config.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    writeln!(config, "public_api = \"127.0.0.1:0\"").unwrap_or_else(|e| panic!("{e}"));
}

/// The public address a node logged at start.
fn public_addr(node: &NodeProcess) -> String {
    let log = node.log();
    let marker = "corpus browser on http://";
    let at = log
        .find(marker)
        .unwrap_or_else(|| panic!("no public address in the log:\n{log}"));
    let rest = &log[at + marker.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\u{1b}')
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// One publication file in a new folder; no `town:` (the publisher's town is the default).
fn one_file(title: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "---\nkind: experiment\ntitle: \"{title}\"\nsummary: Un essai partagé.\nthemes: [food]\noutcome: succeeded\n---\n## Contexte\n{title}.\n"
    );
    std::fs::write(dir.path().join("fiche.md"), text).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn file_of(dir: &tempfile::TempDir) -> String {
    dir.path().join("fiche.md").display().to_string()
}

/// Publishes through the node running for `home` (or `extra` arguments such as `--node URL`).
fn publish(home: &TestHome, dir: &tempfile::TempDir, extra: &[&str]) -> String {
    let file = file_of(dir);
    let mut args = vec!["publish", "--json", file.as_str()];
    args.extend_from_slice(extra);
    let out = home.ok(&args);
    published(&out)[0].1.clone()
}

fn everywhere(towns: &[NodeProcess], id: &str) -> bool {
    towns.iter().all(|t| t.ids().contains(id))
}

#[test]
fn a_federation_takes_its_members_and_delegates_and_refuses_outsiders_and_the_revoked() {
    let fed = federation_of_three();
    let [a, b, c] = &fed.towns[..] else {
        panic!("three towns")
    };

    // A town's own record spreads.
    let own = publish(&a.home, &one_file("Jardin partagé de la mairie"), &[]);
    assert!(
        wait_until(Duration::from_secs(10), || everywhere(&fed.towns, &own)),
        "a member's record did not reach every node"
    );

    // An outsider: a node in open mode, connected to all three, publishes; each of them fetches
    // the record (by gossip or catch-up), refuses it, counts why, and stores nothing.
    let outsider_home = TestHome::empty();
    with_public_api_fresh(&outsider_home);
    let outsider =
        NodeProcess::start_in(outsider_home, "Nulle-Part", &[a.addr(), b.addr(), c.addr()]);
    let stranger = publish(&outsider.home, &one_file("Record d'un inconnu"), &[]);
    for node in &fed.towns {
        let refused = wait_until(Duration::from_secs(20), || {
            node.metric("cailloux_records_rejected_total{reason=\"not_member\"}") >= 1.0
        });
        assert!(
            refused,
            "{} did not refuse the outsider's record; log:\n{}",
            node.town,
            node.log()
        );
        assert!(!node.ids().contains(&stranger), "{} stored it", node.town);
    }
    // Submitted directly, the outsider's record is refused with the reason.
    let other = one_file("Autre essai d'un inconnu");
    let file = file_of(&other);
    let err = outsider
        .home
        .fails(&["publish", &file, "--node", &a.api()], 1);
    assert!(err.contains("not a member"), "{err}");
    // An open node's public address takes no submissions at all.
    let err = outsider
        .home
        .fails(&["publish", &file, "--node", &public_addr(&outsider)], 1);
    assert!(err.contains("takes no submissions"), "{err}");

    // A practitioner's own key, delegated by town A, publishes from its own home.
    let practitioner = TestHome::empty();
    let key = text(&practitioner.json(&["key", "new", "--json"])["public_key"]);
    assert_eq!(key.len(), 64);
    a.home.ok(&[
        "delegate",
        &key,
        "--name",
        "Jeanne Martin",
        "--role",
        "chargée de mission",
        "--kinds",
        "experiment,practice",
    ]);
    for node in &fed.towns {
        assert!(
            wait_until(Duration::from_secs(20), || {
                delegate_state(node, "Jeanne Martin").is_some_and(|d| d["valid"] == true)
            }),
            "{} does not see the delegation: {}",
            node.town,
            members(node)
        );
    }
    // Through the town's public address: the signature is the credential.
    let public = public_addr(a);
    let earlier = publish(
        &practitioner,
        &one_file("Compost en pied d'immeuble"),
        &["--node", &public],
    );
    let status = ureq::get(format!("http://{public}/api/v1/status")).call();
    assert!(
        status.is_err_and(|e| matches!(e, ureq::Error::StatusCode(404))),
        "the public address serves no status"
    );
    assert!(
        wait_until(Duration::from_secs(10), || everywhere(&fed.towns, &earlier)),
        "the delegate's record did not reach every node"
    );
    let shown = c.home.json(&["show", &earlier, "--json"]);
    assert_eq!(shown["town"], TOWNS[0].0, "filed under the delegating town");
    assert_eq!(shown["provenance"]["chain"], "delegate", "{shown}");
    assert_eq!(shown["provenance"]["delegate"]["name"], "Jeanne Martin");
    assert_eq!(shown["provenance"]["town_key"], a.status()["public_key"]);
    // A kind the delegation does not cover is refused.
    let evaluation = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        evaluation.path().join("fiche.md"),
        format!(
            "---\nkind: evaluation\ntitle: Mesure\nsummary: Mesure.\nthemes: [food]\nmethod: self\nindicators: [{{ name: tonnes, unit: t, value: 3 }}]\nlinks: [{{ rel: evaluates, id: \"{earlier}\" }}]\n---\nMesure.\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = practitioner.fails(&["publish", &file_of(&evaluation), "--node", &a.api()], 1);
    assert!(
        err.contains("may publish experiment, practice only"),
        "{err}"
    );

    // The town revokes the delegate: every node learns it, refuses the delegate's new records,
    // keeps the earlier one.
    a.home
        .ok(&["revoke", &key, "--reason", "a quitté la mairie"]);
    for node in &fed.towns {
        assert!(
            wait_until(Duration::from_secs(20), || {
                delegate_state(node, "Jeanne Martin").is_some_and(|d| d["revoked"].is_object())
            }),
            "{} does not see the revocation",
            node.town
        );
    }
    let after = one_file("Après le départ");
    for node in &fed.towns {
        let err = practitioner.fails(&["publish", &file_of(&after), "--node", &node.api()], 1);
        assert!(err.contains("revoked"), "{}: {err}", node.town);
    }
    for node in &fed.towns {
        assert!(
            node.ids().contains(&earlier),
            "{} lost the earlier record",
            node.town
        );
    }
    // Relaying records the ledger refuses is no ground for a ban (only garbage is).
    for node in &fed.towns {
        assert_eq!(
            node.metric("cailloux_peers_banned_total{reason=\"gossip_score\"}"),
            0.0,
            "{} banned a peer",
            node.town
        );
    }
    // Every node knows the federation by its key and, from the founding act, its name.
    for node in &fed.towns {
        assert_eq!(members(node)["federation"], fed.key.as_str());
        assert_eq!(members(node)["name"], "Réseau des cailloux");
    }
    assert!(fed.coordinator.path().join("federation.key").exists());
}

#[test]
fn revisions_and_retractions_come_only_from_the_author_or_its_town_and_reach_offline_nodes() {
    let mut fed = federation_of_three();
    let first = publish(&fed.towns[0].home, &one_file("Compost partagé"), &[]);
    let doomed = publish(&fed.towns[0].home, &one_file("Chiffres provisoires"), &[]);
    assert!(wait_until(Duration::from_secs(10), || {
        everywhere(&fed.towns, &first) && everywhere(&fed.towns, &doomed)
    }));

    // Another town may neither revise nor retract town A's record.
    let b = &fed.towns[1];
    let err = b.home.fails(
        &[
            "publish",
            &file_of(&one_file("Compost partagé, revu par B")),
            "--supersedes",
            &first,
        ],
        1,
    );
    assert!(err.contains("only the author"), "{err}");
    let err = b
        .home
        .fails(&["retract", &first, "--reason", "pas à nous"], 1);
    assert!(err.contains("only the author"), "{err}");
    // Signed with B's key and handed straight to each node, it is refused by each.
    let revised = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        revised.path().join("fiche.md"),
        format!(
            "---\nkind: experiment\ntitle: Compost revu\nsummary: Revu.\nthemes: [food]\noutcome: partial\ntown: {}\n---\nRevu.\n",
            TOWNS[1].0
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for node in &fed.towns {
        let file = file_of(&revised);
        let args = [
            "publish",
            &file,
            "--supersedes",
            &first,
            "--node",
            &node.api(),
        ];
        let err = b.home.fails(&args, 1);
        assert!(err.contains("only the author"), "{}: {err}", node.town);
        let args = ["retract", &first, "--reason", "non", "--node", &node.api()];
        let err = b.home.fails(&args, 1);
        assert!(err.contains("only the author"), "{}: {err}", node.town);
    }

    // Town A revises it: the new version replaces the old in listings and search everywhere;
    // the history keeps both.
    let second = publish(
        &fed.towns[0].home,
        &one_file("Compost partagé, deuxième version"),
        &["--supersedes", &first[..12]],
    );
    let c = &fed.towns[2];
    assert!(
        wait_until(Duration::from_secs(10), || {
            let ids = c.ids();
            ids.contains(&second) && !ids.contains(&first)
        }),
        "C does not show the new version alone"
    );
    let all = ids_of(&c.home.json(&["list", "--json", "--all-versions"]));
    assert!(all.contains(&first) && all.contains(&second));
    let found = ids_of(&c.home.json(&["search", "compost", "--json"]));
    assert_eq!(
        found,
        vec![second.clone()],
        "search shows the latest version"
    );
    let old = c.home.json(&["show", &first, "--json"]);
    assert_eq!(old["versions"]["superseded_by"][0], second.as_str());
    let history = c.home.ok(&["show", &second, "--history"]);
    assert!(
        history.contains(&first) && history.contains(&second) && history.contains("superseded"),
        "{history}"
    );

    // Town A retracts the new version: a retracted version hides nothing, so every node lists
    // the first version again, and search finds it again.
    fed.towns[0]
        .home
        .ok(&["retract", &second, "--reason", "version erronée"]);
    for node in &fed.towns {
        assert!(
            wait_until(Duration::from_secs(10), || {
                let ids = node.ids();
                ids.contains(&first) && !ids.contains(&second)
            }),
            "{} does not list the first version again",
            node.town
        );
    }
    let found = ids_of(&c.home.json(&["search", "compost", "--json"]));
    assert_eq!(
        found,
        vec![first.clone()],
        "search finds the first version again"
    );
    let old = c.home.json(&["show", &first, "--json"]);
    assert_eq!(old["versions"]["superseded_by"], serde_json::json!([]));

    // C goes offline; A retracts a record; C learns of it when it comes back.
    assert!(fed.towns[2].stop().success());
    let a = &fed.towns[0];
    a.home
        .ok(&["retract", &doomed, "--reason", "chiffres erronés"]);
    assert!(
        !a.ids().contains(&doomed),
        "A still lists the retracted record"
    );
    assert!(ids_of(&a.home.json(&["list", "--json", "--include-retracted"])).contains(&doomed));
    let a_addr = a.addr();
    fed.towns[2].restart(&[a_addr]);
    let c = &fed.towns[2];
    assert!(
        wait_until(Duration::from_secs(20), || !c.ids().contains(&doomed)),
        "the retraction did not reach C; log:\n{}",
        c.log()
    );
    assert!(ids_of(&c.home.json(&["list", "--json", "--include-retracted"])).contains(&doomed));
    let shown = c.home.json(&["show", &doomed, "--json"]);
    assert_eq!(shown["versions"]["retracted"]["reason"], "chiffres erronés");
    let export = c.home.ok(&["export"]);
    assert!(
        !export.contains(&doomed),
        "exports leave retracted records out"
    );
    // Asked for everything, the export marks each record with its status, and every town here
    // chains to the federation: certified.
    let all = c
        .home
        .ok(&["export", "--all-versions", "--include-retracted"]);
    let lines: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let marks = |id: &str| {
        lines
            .iter()
            .find(|v| v["id"] == id)
            .map(|v| (v["status"].clone(), v["certified"].clone()))
            .unwrap_or_else(|| panic!("{id} is not in the export"))
    };
    for (id, status) in [
        (&doomed, "retracted"),
        (&second, "retracted"),
        (&first, "current"),
    ] {
        assert_eq!(
            marks(id),
            (serde_json::json!(status), serde_json::json!(true)),
            "{id}"
        );
    }
    assert!(
        lines.iter().all(|v| v["certified"] == true),
        "every record of a federation's members is certified"
    );
    let csv_text = c.home.ok(&[
        "export",
        "--format",
        "csv",
        "--all-versions",
        "--include-retracted",
    ]);
    let row = csv_text
        .lines()
        .find(|l| l.starts_with(doomed.as_str()))
        .unwrap_or_else(|| panic!("no row for {doomed}: {csv_text}"));
    assert!(row.ends_with(",retracted,true"), "{row}");

    // Every town here is certified: each publishes its own dataset in the node's catalogue.
    let local: std::net::SocketAddr = c.api().parse().unwrap_or_else(|e| panic!("{e}"));
    let catalog = util::http::request_from(
        util::http::loopback(1),
        local,
        b"GET /api/v1/catalog.jsonld HTTP/1.1\r\nHost: cailloux.test\r\nConnection: close\r\n\r\n",
        1 << 20,
    )
    .map(|a| a.json())
    .unwrap_or_default();
    let towns: Vec<&str> = fed.towns.iter().map(|t| t.town.as_str()).collect();
    let mut published = 0;
    for dataset in catalog["dcat:dataset"].as_array().into_iter().flatten() {
        if dataset["@id"] == "http://cailloux.test/#corpus" {
            continue;
        }
        let publisher = dataset["dct:publisher"]["foaf:name"].as_str().unwrap_or("");
        assert!(towns.contains(&publisher), "{publisher}: {dataset}");
        assert_eq!(
            dataset["dct:title"]["@value"],
            format!("Cailloux : publications de {publisher}")
        );
        published += 1;
    }
    assert!(published >= 1, "{catalog}");
}

#[test]
fn trust_commands_say_what_is_wrong_and_what_would_be_right() {
    let home = TestHome::init("Vallon-sur-Orge");
    let err = home.fails(&["join", "0123abcd"], 1);
    assert!(err.contains("64 hexadecimal characters"), "{err}");
    let err = home.fails(&["delegate", &"ab".repeat(32), "--name", "X"], 1);
    assert!(err.contains("is not a public key"), "{err}");
    // Admitting needs the federation key, which only the coordinator's home holds.
    let err = home.fails(&["key", "new"], 3);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let err = home.fails(&["federation", "admit", &"0".repeat(64), "--town", "X"], 3);
    assert!(err.contains("federation create"), "{err}");
    let err = home.fails(&["federation", "admit", "--town", "X"], 2);
    assert!(err.contains("PUBKEY"), "{err}");
    let err = home.fails(&["retract", "0123456789ab", "--reason", "x"], 1);
    assert!(err.contains("no record"), "{err}");
    let err = home.fails(&["members", "--node", "https://example.org"], 1);
    assert!(err.contains("plain HTTP"), "{err}");
    // A federation made here: its key, then its founding act in the store.
    let created = home.json(&["federation", "create", "--name", "Essai", "--json"]);
    let key = text(&created["federation"]);
    let err = home.fails(&["federation", "create", "--name", "Encore"], 3);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let roster = home.json(&["members", "--json"]);
    assert_eq!(
        roster["federation"],
        Value::Null,
        "this home has not joined it"
    );
    home.ok(&["join", &key]);
    let roster = home.json(&["members", "--json"]);
    assert_eq!(roster["federation"], key.as_str());
    assert_eq!(roster["name"], "Essai");
    // This town's key is not admitted: publishing offline is refused, all of it.
    let files = publication_files(3, "refusé");
    let err = home.fails(&["publish", files.path().to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("not a member") && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(home.listed_ids().is_empty());
}
