//! The `query_builder` fuzz target's regression test: every committed file under
//! `fuzz/corpus/query_builder/` (the seeds) and `fuzz/artifacts/query_builder/` (crash files
//! that cargo-fuzz wrote) is replayed through the target's own function, from
//! `fuzz/src/query_builder.rs`. The protocol crate's replay test does the other targets (it
//! cannot build this one: it has no node crate). See fuzz/README.md.

#[path = "../../fuzz/src/query_builder.rs"]
mod query_builder;

use std::path::Path;

/// libFuzzer names the inputs it adds to a corpus by their SHA-1; they are not committed.
fn is_local_corpus_file(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn query_builder_corpus_and_crash_files_replay_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let (mut replayed, mut failed) = (0, Vec::new());
    for kind in ["corpus", "artifacts"] {
        let Ok(files) = std::fs::read_dir(root.join(kind).join("query_builder")) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || kind == "corpus" && is_local_corpus_file(&name) {
                continue;
            }
            let path = format!("fuzz/{kind}/query_builder/{name}");
            let bytes = std::fs::read(file.path()).unwrap_or_else(|e| panic!("{path}: {e}"));
            replayed += 1;
            if std::panic::catch_unwind(|| query_builder::query_builder(&bytes)).is_err() {
                failed.push(path);
            }
        }
    }
    assert!(failed.is_empty(), "query_builder panics on: {failed:#?}");
    assert!(replayed > 0, "fuzz/corpus/query_builder holds no input");
}
