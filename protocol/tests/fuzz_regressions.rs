//! Fuzzing's regression tests. Every committed file under `fuzz/corpus/<target>/` (the seeds)
//! and `fuzz/artifacts/<target>/` (crash files that cargo-fuzz wrote) is replayed through the
//! fuzz target's own function, from `fuzz/src/lib.rs`: a crash file committed there is a test,
//! with no code to write. Bugs the fuzzers found also get a named test below, with the
//! minimised input inline. See fuzz/README.md.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use std::path::Path;

/// A fuzz target's body.
type Target = fn(&[u8]);

/// The fuzz targets, by the name of their directory in `corpus/` and `artifacts/`.
const TARGETS: &[(&str, Target)] = &[
    ("record_decode", fuzz::record_decode),
    ("frontmatter", fuzz::frontmatter),
    ("sync_messages", fuzz::sync_messages),
];

/// Targets whose corpus another crate's test replays: `query_builder` needs the node crate,
/// which this one may not depend on (`node/tests/fuzz_regressions.rs` replays it).
const REPLAYED_ELSEWHERE: &[&str] = &["query_builder"];

/// libFuzzer names the inputs it adds to a corpus by their SHA-1; they are not committed
/// (fuzz/.gitignore), so a local fuzzing run does not slow this test down.
fn is_local_corpus_file(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn corpus_and_crash_files_replay_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let (mut replayed, mut failed) = (0, Vec::new());
    for kind in ["corpus", "artifacts"] {
        let Ok(dirs) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || REPLAYED_ELSEWHERE.contains(&name.as_str()) {
                continue;
            }
            let Some((_, run)) = TARGETS.iter().find(|(target, _)| *target == name) else {
                panic!("fuzz/{kind}/{name}: no fuzz target of that name");
            };
            let files =
                std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("fuzz/{kind}/{name}: {e}"));
            for file in files.flatten() {
                let file_name = file.file_name().to_string_lossy().into_owned();
                if file_name.starts_with('.')
                    || kind == "corpus" && is_local_corpus_file(&file_name)
                {
                    continue;
                }
                let path = format!("fuzz/{kind}/{name}/{file_name}");
                let bytes = std::fs::read(file.path()).unwrap_or_else(|e| panic!("{path}: {e}"));
                replayed += 1;
                if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                    failed.push(path);
                }
            }
        }
    }
    assert!(failed.is_empty(), "the fuzz targets panic on: {failed:#?}");
    if root.join("corpus").is_dir() {
        assert!(replayed > 0, "fuzz/corpus holds no input");
    }
}
