//! Helpers shared by the integration tests: a temporary home, and the real `cailloux` binary run
//! in it.

#![allow(dead_code)]

pub mod http;
pub mod netns;

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
    /// The network namespace its commands run in (`ip netns exec`), for the NAT test bed.
    pub netns: Option<String>,
}

impl TestHome {
    /// A home with no identity yet.
    pub fn empty() -> TestHome {
        TestHome {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            netns: None,
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
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
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

/// Polls `condition` every 50 ms until it holds or `within` has passed; returns whether it held.
pub fn wait_until(within: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Where a node listens unless told otherwise: loopback, an ephemeral port.
const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

/// A `cailloux node` process on loopback, with ephemeral ports and mDNS off.
pub struct NodeProcess {
    pub home: TestHome,
    pub child: Option<std::process::Child>,
    pub town: String,
    /// More `cailloux node` flags, on every start.
    pub flags: Vec<String>,
}

impl NodeProcess {
    /// Starts a node for a new home; `bootstrap` are multiaddrs of other nodes.
    pub fn start(town: &str, bootstrap: &[String]) -> NodeProcess {
        NodeProcess::start_in(TestHome::empty(), town, bootstrap)
    }

    /// Starts a node in a home prepared beforehand (joined to a federation, say).
    pub fn start_in(home: TestHome, town: &str, bootstrap: &[String]) -> NodeProcess {
        NodeProcess::started(home, town, LOOPBACK, bootstrap)
    }

    /// A node of `home`, started listening on `listen`.
    fn started(home: TestHome, town: &str, listen: &str, bootstrap: &[String]) -> NodeProcess {
        let mut node = NodeProcess {
            home,
            child: None,
            town: town.to_owned(),
            flags: Vec::new(),
        };
        node.restart_on(listen, bootstrap);
        node
    }

    /// Starts the node again in the same home (after `stop` or `kill`).
    pub fn restart(&mut self, bootstrap: &[String]) {
        self.restart_on(LOOPBACK, bootstrap);
    }

    /// Starts a node in network namespace `ns`, listening on `listen`; its CLI commands run
    /// there too.
    pub fn start_in_netns(ns: &str, town: &str, listen: &str, bootstrap: &[String]) -> NodeProcess {
        NodeProcess::start_in_netns_with(ns, town, listen, bootstrap, &[])
    }

    /// Likewise, with more `cailloux node` flags (`--relay`).
    pub fn start_in_netns_with(
        ns: &str,
        town: &str,
        listen: &str,
        bootstrap: &[String],
        flags: &[&str],
    ) -> NodeProcess {
        let mut home = TestHome::empty();
        home.netns = Some(ns.to_owned());
        let mut node = NodeProcess {
            home,
            child: None,
            town: town.to_owned(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        node.restart_on(listen, bootstrap);
        node
    }

    /// The first address it listens on that starts with `prefix` (`/ip4/203.0.113.10/`), with
    /// its peer id (as `status` gives them): what a node elsewhere bootstraps from.
    pub fn addr_on(&self, prefix: &str) -> String {
        let status = self.status();
        status["listen_addrs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with(prefix))
            .unwrap_or_else(|| panic!("{} listens on no {prefix} address: {status}", self.town))
            .to_owned()
    }

    /// Starts a node listening on `listen` (a multiaddr).
    pub fn start_on(town: &str, listen: &str, bootstrap: &[String]) -> NodeProcess {
        NodeProcess::started(TestHome::empty(), town, listen, bootstrap)
    }

    pub fn restart_on(&mut self, listen: &str, bootstrap: &[String]) {
        let mut args: Vec<String> = [
            "node",
            "--town",
            &self.town,
            "--listen",
            listen,
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
            "--sync-interval",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for b in bootstrap {
            args.push("--bootstrap".into());
            args.push(b.clone());
        }
        args.extend(self.flags.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = std::fs::remove_file(self.home.path().join("api.addr"));
        let log = std::fs::File::create(
            self.home
                .path()
                .join(format!("node-{}.log", std::process::id())),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let child = self
            .home
            .command(&args)
            .env(
                "RUST_LOG",
                std::env::var("CAILLOUX_TEST_LOG").unwrap_or_else(|_| "info,libp2p=warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a node: {e}"));
        self.child = Some(child);
        let ready = wait_until(std::time::Duration::from_secs(20), || {
            self.home.path().join("api.addr").exists()
                && self
                    .status_opt()
                    .is_some_and(|s| !s["listen_addrs"].as_array().is_none_or(|a| a.is_empty()))
        });
        assert!(
            ready,
            "node {} did not start; log:\n{}",
            self.town,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(
            self.home
                .path()
                .join(format!("node-{}.log", std::process::id())),
        )
        .unwrap_or_default()
    }

    fn status_opt(&self) -> Option<Value> {
        let out = self.home.run(&["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    pub fn status(&self) -> Value {
        self.home.json(&["status", "--json"])
    }

    /// A multiaddr other nodes can bootstrap from.
    pub fn addr(&self) -> String {
        self.status()["listen_addrs"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn peer_id(&self) -> String {
        self.status()["peer_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn api(&self) -> String {
        std::fs::read_to_string(self.home.path().join("api.addr"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        self.home.listed_ids().into_iter().collect()
    }

    /// The node's Prometheus text (inside its network namespace, if it runs in one, by curl).
    pub fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.api());
        if let Some(ns) = &self.home.netns {
            return Command::new("ip")
                .args(["netns", "exec", ns, "curl", "-sf", &url])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
        }
        ureq::get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap_or_else(|| panic!("not running"));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` valid publication files in a new folder, titles prefixed with `tag`.
pub fn publication_files(n: usize, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let text = format!(
            "---\nkind: experiment\ntitle: \"{tag} {i}\"\nsummary: Un essai.\nthemes: [energy]\noutcome: partial\n---\n## Contexte\nEssai {i} de {tag}.\n"
        );
        std::fs::write(dir.path().join(format!("{i:04}.md")), text)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// The Python of the tests' virtual environment, which `./test.sh` makes (`CAILLOUX_PYTHON`;
/// else `target/venv`). Missing, the test fails saying so: a missing tool is never a pass.
pub fn python() -> PathBuf {
    let path = std::env::var_os("CAILLOUX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/venv/bin/python"));
    assert!(
        path.exists(),
        "no Python environment for the tests at {}: run ./test.sh, which makes it from tests/python/requirements.txt",
        path.display()
    );
    path
}

/// Runs `python` on `script` (a path in the workspace) with `args`; its output, whatever its exit.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(python())
        .arg(workspace().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"))
}
