//! Publishing through the real binary: the identity, templates, every invalid case of the
//! format (each with its error, nothing stored), links, and durability under `kill -9`.

mod util;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use util::*;

const VALID: &str = r#"---
kind: experiment
title: "Un essai valide"
summary: Un résumé.
themes: [energy]
outcome: succeeded
---
## Contexte
Texte.
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn init_creates_a_private_identity_and_refuses_to_overwrite_it() {
    let home = TestHome::empty();
    let key = home.ok(&["init", "--town", "Loos-en-Gohelle"]);
    assert_eq!(key.trim().len(), 64, "prints the public key: {key}");
    let identity = home.path().join("identity.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&identity)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(mode & 0o777, 0o600, "identity readable by its owner only");
    }
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap_or_default();
    assert!(config.contains("town = \"Loos-en-Gohelle\""), "{config}");
    assert!(
        config.lines().any(|l| l.starts_with('#')),
        "the config is documented"
    );
    let before = std::fs::read(&identity).ok();
    let err = home.fails(&["init", "--town", "Autre"], 3);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(
        std::fs::read(&identity).ok(),
        before,
        "the identity is untouched"
    );
}

#[test]
fn publishing_needs_an_identity_and_says_how_to_make_one() {
    let home = TestHome::empty();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = write(dir.path(), "a.md", VALID);
    let err = home.fails(&["publish", file.to_str().unwrap_or_default()], 3);
    assert!(err.contains("cailloux init --town"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let home = TestHome::empty();
    home.fails(&["publish"], 2);
    home.fails(&["new", "poem"], 2);
    home.fails(&["list", "--kind", "essay"], 2);
}

#[test]
fn templates_publish_once_filled() {
    let home = TestHome::init("Ma-Commune");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let experiment = write(
        dir.path(),
        "experience.md",
        &home.ok(&["new", "experiment"]),
    );
    let practice = write(dir.path(), "fiche.md", &home.ok(&["new", "practice"]));
    let out = home.ok(&[
        "publish",
        "--json",
        experiment.to_str().unwrap_or_default(),
        practice.to_str().unwrap_or_default(),
    ]);
    let ids = published(&out);
    assert_eq!(ids.len(), 2);
    // The town comes from config.toml when the file names none.
    let shown = home.json(&["show", &ids[0].1, "--json"]);
    assert_eq!(shown["town"], "Ma-Commune");
    assert_eq!(shown["language"], "fr");
    assert_eq!(shown["licence"], "etalab-2.0");
    // The evaluation template asks for the id of what it measures.
    let evaluation = home
        .ok(&["new", "evaluation"])
        .replace("identifiant-a-completer", &ids[0].1[..10]);
    let evaluation = write(dir.path(), "evaluation.md", &evaluation);
    let out = home.ok(&["publish", "--json", evaluation.to_str().unwrap_or_default()]);
    let id = &published(&out)[0].1;
    let shown = home.json(&["show", id, "--json"]);
    assert_eq!(
        shown["links"][0]["id"],
        serde_json::Value::String(ids[0].1.clone())
    );
    assert_eq!(shown["links"][0]["rel"], "evaluates");
}

/// One invalid case of the format spec: how to break the valid file, and what the error says.
struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    field: &'static str,
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown kind",
        from: "kind: experiment",
        to: "kind: experiance",
        field: "kind",
        says: "did you mean `experiment`?",
    },
    Case {
        name: "unknown theme",
        from: "themes: [energy]",
        to: "themes: [energie]",
        field: "themes[0]",
        says: "did you mean `energy`?",
    },
    Case {
        name: "missing title",
        from: "title: \"Un essai valide\"\n",
        to: "",
        field: "title",
        says: "is required",
    },
    Case {
        name: "missing outcome",
        from: "outcome: succeeded\n",
        to: "",
        field: "outcome",
        says: "is required for an experiment",
    },
    Case {
        name: "title too long",
        from: "\"Un essai valide\"",
        to: "TITLE300",
        field: "title",
        says: "the limit is 250",
    },
    Case {
        name: "sdg out of range",
        from: "themes: [energy]",
        to: "themes: [energy]\nsdgs: [7, 18]",
        field: "sdgs[1]",
        says: "numbered 1 to 17",
    },
    Case {
        name: "not a date",
        from: "themes: [energy]",
        to: "themes: [energy]\nperiod: { start: 2024-02-30 }",
        field: "period.start",
        says: "does not exist",
    },
    Case {
        name: "not a date either",
        from: "themes: [energy]",
        to: "themes: [energy]\nperiod: { start: printemps 2024 }",
        field: "period.start",
        says: "YYYY-MM-DD",
    },
    Case {
        name: "indicator without unit",
        from: "kind: experiment",
        to: "kind: evaluation\nmethod: survey\nindicators:\n  - { name: Participants, value: 12 }\nlinks:\n  - { rel: evaluates, id: \"0123456789abcdef\" }",
        field: "indicators[0].unit",
        says: "is required",
    },
    Case {
        name: "indicator value as text",
        from: "kind: experiment",
        to: "kind: evaluation\nmethod: survey\nindicators:\n  - { name: Participants, unit: personnes, value: \"12\" }\nlinks:\n  - { rel: evaluates, id: \"0123456789abcdef\" }",
        field: "indicators[0].value",
        says: "must be a number",
    },
    Case {
        name: "malformed link id",
        from: "themes: [energy]",
        to: "themes: [energy]\nlinks:\n  - { rel: cites, id: \"9f2c-41d7\" }",
        field: "links[0].id",
        says: "not a record id",
    },
    Case {
        name: "short link id",
        from: "themes: [energy]",
        to: "themes: [energy]\nlinks:\n  - { rel: cites, id: \"9f2c41\" }",
        field: "links[0].id",
        says: "8 to 64",
    },
    Case {
        name: "unknown link rel",
        from: "themes: [energy]",
        to: "themes: [energy]\nlinks:\n  - { rel: inspired-by, id: \"9f2c41d7\" }",
        field: "links[0].rel",
        says: "not a known link rel",
    },
    Case {
        name: "unknown field",
        from: "themes: [energy]",
        to: "themes: [energy]\noutcomes: failed",
        field: "outcomes",
        says: "did you mean `outcome`?",
    },
    Case {
        name: "bad language",
        from: "themes: [energy]",
        to: "themes: [energy]\nlanguage: français",
        field: "language",
        says: "BCP 47",
    },
    Case {
        name: "no front matter",
        from: "---\nkind",
        to: "kind",
        field: "front matter",
        says: "is missing",
    },
    Case {
        name: "broken YAML",
        from: "themes: [energy]",
        to: "themes: [energy",
        field: "front matter",
        says: "not valid YAML",
    },
    Case {
        name: "outcome on a practice",
        from: "kind: experiment",
        to: "kind: practice",
        field: "outcome",
        says: "applies to experiment records only",
    },
];

#[test]
fn every_invalid_case_gives_its_error_and_stores_nothing() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let valid = write(dir.path(), "valid.md", VALID);
    for case in CASES {
        let text = VALID.replace(case.from, &case.to.replace("TITLE300", &"é".repeat(300)));
        assert_ne!(text, VALID, "{}: the mutation must apply", case.name);
        let bad = write(dir.path(), "bad.md", &text);
        // The valid file comes first: nothing of the call may be stored.
        let err = home.fails(
            &[
                "publish",
                valid.to_str().unwrap_or_default(),
                bad.to_str().unwrap_or_default(),
            ],
            1,
        );
        let expected = format!("bad.md: {}: ", case.field);
        let line = err.lines().find(|l| l.contains(&expected));
        assert!(
            line.is_some_and(|l| l.contains(case.says)),
            "{}: expected `{expected}…{}` in:\n{err}",
            case.name,
            case.says
        );
        assert!(
            !err.contains("valid.md:"),
            "{}: the valid file has no problem:\n{err}",
            case.name
        );
        assert!(err.contains("nothing was published"), "{err}");
        assert!(
            home.listed_ids().is_empty(),
            "{}: something was stored",
            case.name
        );
    }
}

#[test]
fn every_violation_of_every_file_is_reported_at_once() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(
        dir.path(),
        "a.md",
        &VALID
            .replace("[energy]", "[energie, watter]")
            .replace("Un résumé.", "\"\""),
    );
    write(
        dir.path(),
        "b.md",
        &VALID.replace("outcome: succeeded", "outcome: won\nsdgs: [0]"),
    );
    write(dir.path(), "c.md", VALID);
    let err = home.fails(&["publish", dir.path().to_str().unwrap_or_default()], 1);
    for expected in [
        "a.md: themes[0]: `energie`",
        "a.md: themes[1]: `watter` is not a known theme; valid: energy",
        "did you mean `water`?",
        "a.md: summary: is empty",
        "b.md: outcome: `won`",
        "b.md: sdgs[0]: 0 is not",
        "5 problem(s) in 2 of 3 file(s); nothing was published",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(home.listed_ids().is_empty());
}

#[test]
fn links_resolve_by_file_and_by_id_prefix() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // b links to a, which sorts after it: a must be signed first.
    write(
        dir.path(),
        "b.md",
        &VALID.replace("kind: experiment", "kind: practice").replace(
            "outcome: succeeded",
            "links:\n  - { rel: derived-from, file: z-a.md }",
        ),
    );
    write(dir.path(), "z-a.md", VALID);
    let out = published(&home.ok(&["publish", "--json", dir.path().to_str().unwrap_or_default()]));
    let a = out
        .iter()
        .find(|(f, _)| f.ends_with("z-a.md"))
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    let b = out
        .iter()
        .find(|(f, _)| f.ends_with("b.md"))
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    assert!(out[0].0.ends_with("z-a.md"), "dependency first: {out:?}");
    assert_eq!(
        home.json(&["show", &b, "--json"])["links"][0]["id"],
        serde_json::Value::String(a.clone())
    );

    // A later publication links by id prefix, resolved against the store to the full id.
    let dir2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = write(
        dir2.path(),
        "c.md",
        &VALID.replace(
            "outcome: succeeded",
            &format!(
                "outcome: failed\nlinks:\n  - {{ rel: adapts, id: \"{}\" }}",
                &a[..8].to_uppercase()
            ),
        ),
    );
    let id = published(&home.ok(&["publish", "--json", c.to_str().unwrap_or_default()]))[0]
        .1
        .clone();
    assert_eq!(
        home.json(&["show", &id, "--json"])["links"][0]["id"],
        serde_json::Value::String(a.clone())
    );

    // Unknown prefixes and missing files are violations; nothing is stored.
    let before = home.listed_ids().len();
    let d = write(dir2.path(), "d.md", &VALID.replace("outcome: succeeded", "outcome: failed\nlinks:\n  - { rel: cites, id: \"00000000\" }\n  - { rel: cites, file: absent.md }"));
    let err = home.fails(&["publish", d.to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("links[0].id: no record in this store has an id starting with 00000000"),
        "{err}"
    );
    assert!(
        err.contains("links[1].file: `absent.md` does not exist"),
        "{err}"
    );
    // A file that exists but is not part of the call.
    let e = write(
        dir2.path(),
        "e.md",
        &VALID.replace(
            "outcome: succeeded",
            "outcome: failed\nlinks:\n  - { rel: cites, file: c.md }",
        ),
    );
    let err = home.fails(&["publish", e.to_str().unwrap_or_default()], 1);
    assert!(
        err.contains("`c.md` is not among the files of this publish call"),
        "{err}"
    );
    assert_eq!(home.listed_ids().len(), before);
}

#[test]
fn id_prefixes_must_be_long_enough_and_name_a_record() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Enough records that two share their first two hex digits.
    for i in 0..40 {
        write(
            dir.path(),
            &format!("{i:02}.md"),
            &VALID.replace("Un essai valide", &format!("Essai {i}")),
        );
    }
    let ids: Vec<String> =
        published(&home.ok(&["publish", "--json", dir.path().to_str().unwrap_or_default()]))
            .into_iter()
            .map(|(_, id)| id)
            .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let shared = sorted
        .windows(2)
        .map(|w| {
            w[0].chars()
                .zip(w[1].chars())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(shared >= 1);
    // A prefix too short to be unique cannot be typed (8 characters minimum), so check the store's
    // answer for an 8-character prefix that matches nothing and for a whole id.
    let err = home.fails(&["show", "ffffffff0"], 1);
    assert!(
        err.contains("no record") || err.contains("ambiguous"),
        "{err}"
    );
    home.ok(&["show", &ids[3]]);
    let err = home.fails(&["show", "1234"], 1);
    assert!(err.contains("8 to 64"), "{err}");
}

#[test]
fn cycles_between_files_are_refused() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(
        dir.path(),
        "a.md",
        &VALID.replace(
            "outcome: succeeded",
            "outcome: failed\nlinks:\n  - { rel: cites, file: b.md }",
        ),
    );
    write(
        dir.path(),
        "b.md",
        &VALID.replace(
            "outcome: succeeded",
            "outcome: failed\nlinks:\n  - { rel: cites, file: a.md }",
        ),
    );
    let err = home.fails(&["publish", dir.path().to_str().unwrap_or_default()], 1);
    assert!(err.contains("file links form a cycle"), "{err}");
    assert!(home.listed_ids().is_empty());
}

#[test]
fn kill_9_during_a_publish_keeps_every_printed_id() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let body = "Un paragraphe de récit, assez long pour que chaque enregistrement pèse son poids. "
        .repeat(40);
    for i in 0..500 {
        write(
            dir.path(),
            &format!("{i:03}.md"),
            &format!(
                "{}{body}\n",
                VALID.replace("Un essai valide", &format!("Essai {i}"))
            ),
        );
    }
    let mut child = home
        .command(&["publish", "--json", dir.path().to_str().unwrap_or_default()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut reader = BufReader::new(stdout);
    let mut printed = Vec::new();
    let mut line = String::new();
    // Kill as soon as the first batch is reported durable: mid-way through the 500.
    if reader.read_line(&mut line).unwrap_or(0) > 0 {
        printed.push(line.clone());
    }
    child.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL on Unix
    for l in reader.lines() {
        printed.push(l.unwrap_or_default());
    }
    let _ = child.wait();
    let printed = published(&printed.join("\n"));
    assert!(
        !printed.is_empty(),
        "publish printed nothing before it was killed"
    );
    eprintln!("{} of 500 ids printed before SIGKILL", printed.len());
    // The store opens, and holds every id that was printed.
    let stored = home.listed_ids();
    for (file, id) in &printed {
        assert!(
            stored.contains(id),
            "{file}: {id} was printed but is not in the store"
        );
    }
    assert!(stored.len() >= printed.len());
}

#[test]
fn a_revision_is_published_offline_with_supersedes() {
    // No node runs for this home: the store is opened once, and the old id is resolved in it.
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = write(dir.path(), "a.md", VALID);
    let out = home.ok(&["publish", "--json", first.to_str().unwrap_or_default()]);
    let old = published(&out)[0].1.clone();
    let second = write(
        dir.path(),
        "b.md",
        &VALID.replace("Un essai valide", "Un essai valide, revu"),
    );
    let out = home.ok(&[
        "publish",
        "--json",
        second.to_str().unwrap_or_default(),
        "--supersedes",
        &old[..12],
    ]);
    let new = published(&out)[0].1.clone();
    assert_eq!(
        home.listed_ids(),
        vec![new.clone()],
        "only the new version is listed"
    );
    let history = home.json(&["show", &new, "--json"]);
    assert!(
        history.to_string().contains(&old),
        "the new version names the one it supersedes: {history}"
    );
    // An unknown id is refused by name, and nothing is stored.
    let third = write(dir.path(), "c.md", &VALID.replace("valide", "encore"));
    let err = home.fails(
        &[
            "publish",
            third.to_str().unwrap_or_default(),
            "--supersedes",
            "0123456789ab",
        ],
        1,
    );
    assert!(err.contains("0123456789ab"), "{err}");
    assert_eq!(home.listed_ids(), vec![new]);
}

/// The classic "billion laughs": nine anchors, each a list of nine aliases of the one before,
/// under 600 bytes, that expand to 9^9 strings.
fn billion_laughs() -> String {
    let mut text = String::from(
        "---\nkind: practice\ntitle: Rires\nsummary: Un milliard.\nthemes: [energy]\n",
    );
    text.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        .map(|(p, n)| (n, *p))
    {
        let item = format!("*{prev}");
        text.push_str(&format!("{name}: &{name} [{}]\n", vec![item; 9].join(",")));
    }
    text.push_str("---\nCorps.\n");
    text
}

#[test]
fn yaml_anchors_aliases_and_deep_nesting_are_refused_fast_naming_file_and_line() {
    let home = TestHome::init("Ville-Test");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let laughs = write(dir.path(), "rires.md", &billion_laughs());
    assert!(std::fs::metadata(&laughs).is_ok_and(|m| m.len() < 700));
    let deep = write(
        dir.path(),
        "profond.md",
        &VALID.replace(
            "themes: [energy]",
            &format!("themes: [energy]\ntags:\n{}x", "- ".repeat(30_000)),
        ),
    );
    for (file, line, says) in [
        (&laughs, 6, "anchors"),
        (&deep, 7, "nested more than 16 levels"),
    ] {
        let started = std::time::Instant::now();
        let err = home.fails(&["publish", file.to_str().unwrap_or_default()], 1);
        let took = started.elapsed();
        let expected = format!("{}: front matter: line {line}, ", file.display());
        assert!(
            err.lines()
                .any(|l| l.starts_with(&expected) && l.contains(says)),
            "expected `{expected}… {says}` in:\n{err}"
        );
        // Expanding the laughs took 17 s and over 4 GB; the deep nesting overflowed the stack.
        assert!(
            took < std::time::Duration::from_secs(5),
            "{} took {took:?}",
            file.display()
        );
    }
    assert!(home.listed_ids().is_empty(), "nothing stored");
}
