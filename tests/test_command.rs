//! The README's test command, `./test.sh`, on a machine that lacks what the tests need: it says
//! which Debian packages to install and stops (exit 1) when it may not install them, rather than
//! letting the browser test skip; with them present it runs `cargo test --workspace` with the
//! arguments it was given. Run with a `PATH` of stand-ins (a `cargo` that prints its arguments,
//! an `id` that says "not root"), so nothing is installed and no real build starts.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A folder of stand-in commands: `cargo` prints its arguments, `id -u` answers 1000, and the
/// few real tools the script calls are linked in.
fn stand_ins() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    script(dir.path(), "cargo", "echo \"fake cargo: $*\"");
    script(dir.path(), "id", "echo 1000");
    for tool in ["dirname", "bash"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, dir.path().join(tool)).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// Runs test.sh with `path` as its PATH and a Python environment of its own (never the one the
/// real tests use).
fn run(path: &Path, args: &[&str]) -> std::process::Output {
    let bash = ["/usr/bin/bash", "/bin/bash"]
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("bash not found"));
    Command::new(bash)
        .arg(util::workspace().join("test.sh"))
        .args(args)
        .env("PATH", path)
        .env("CAILLOUX_VENV", path.join("venv"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run test.sh: {e}"))
}

#[test]
fn without_chromium_nor_the_namespace_tools_and_without_root_it_names_the_packages_and_stops() {
    let bin = stand_ins();
    let out = run(bin.path(), &["--test", "search"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("chromium chromium-driver iproute2 nftables curl python3 python3-venv")
            && stderr.contains("apt-get install"),
        "the message names the packages and how to install them: {stderr}"
    );
    assert!(!stdout.contains("fake cargo"), "no test ran: {stdout}");
}

#[test]
fn with_what_the_tests_need_it_runs_every_test_with_the_arguments_given() {
    let bin = stand_ins();
    script(bin.path(), "chromium", "exit 0");
    script(bin.path(), "chromedriver", "exit 0");
    script(bin.path(), "ip", "exit 0");
    script(bin.path(), "nft", "exit 0");
    script(bin.path(), "curl", "exit 0");
    // A python3 whose `-m venv DIR` makes a DIR/bin/pip that installs nothing.
    script(
        bin.path(),
        "python3",
        r#"if [ "$1" = -m ] && [ "$2" = venv ]; then
  for dir; do :; done
  mkdir -p "$dir/bin" && printf '#!/bin/sh\nexit 0\n' >"$dir/bin/pip" && chmod +x "$dir/bin/pip"
fi
exit 0"#,
    );
    for tool in ["cat", "mkdir", "printf", "chmod"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = run(bin.path(), &["--test", "search"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fake cargo: test --workspace --test search"),
        "{stdout}"
    );
    assert!(
        stdout.contains("making the Python environment"),
        "a fresh machine gets the tests' Python: {stdout}"
    );
}
