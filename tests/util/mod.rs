//! Helpers shared by the integration tests: a temporary home, and the real `cailloux` binary run
//! in it.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cailloux")
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The project's own example corpus.
pub fn examples() -> PathBuf {
    workspace().join("examples")
}

/// The shared sample corpus, when this checkout sits beside one (a fresh clone elsewhere has none).
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = workspace().join("../shared/corpus");
    dir.is_dir().then_some(dir)
}

/// Every `.md` file below `dir`.
pub fn md_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            out.extend(md_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out
}

/// A temporary home folder and a way to run `cailloux --home <it>`.
pub struct TestHome {
    pub dir: tempfile::TempDir,
}

impl TestHome {
    /// A home with no identity yet.
    pub fn empty() -> TestHome {
        TestHome {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// A home whose town is `town`.
    pub fn init(town: &str) -> TestHome {
        let home = TestHome::empty();
        home.ok(&["init", "--town", town]);
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("CAILLOUX_HOME")
            .env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run cailloux: {e}"))
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cailloux {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "cailloux {args:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("cailloux {args:?}: not JSON ({e}): {out}"))
    }

    /// The ids `list --json` shows, in its order.
    pub fn listed_ids(&self) -> Vec<String> {
        ids_of(&self.json(&["list", "--json"]))
    }
}

pub fn ids_of(array: &Value) -> Vec<String> {
    array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"))
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id in {r}"))
                .to_owned()
        })
        .collect()
}

/// Parses `publish --json` output into (file, id) pairs.
pub fn published(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["file"].as_str().unwrap_or_default().to_owned(),
                v["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
