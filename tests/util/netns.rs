//! A test bed of network namespaces with real kernel NAT (nftables), for what crosses NATs.
//!
//! Every address is inside namespaces the test makes itself: the "internet" is a bridge in a
//! namespace of its own on 203.0.113.0/24 (a documentation range), the towns' LANs are in
//! 100.64.0.0/10; no namespace has a route to anything else, and none is joined to the
//! machine's own network. Everything made is removed when the `Lab` is dropped, on success or
//! on a failed assertion (a panic unwinds through `Drop`): the processes in each namespace are
//! killed, then the namespaces (which takes their links and bridges with them).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); `./test.sh` installs both. Where
//! namespaces cannot be made, `Lab::new` fails with a message saying so, never a skip.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The internet's prefix (a /24), and its bridge's address (the public node's host).
pub const INTERNET: &str = "203.0.113";

/// How a NAT router maps its LAN's connections on its public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// `masquerade`: keeps the source port when it is free (what most home routers do).
    PortPreserving,
    /// `masquerade fully-random`: a random public port for every mapping (carrier-grade NATs,
    /// some firewalls): hole punching cannot guess it.
    PortRandomising,
}

/// A set of namespaces, removed on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

/// Runs a command, panicking with what it printed when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed? ./test.sh installs iproute2 and nftables)"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lab {
    /// A new, empty lab; fails with a clear message where network namespaces cannot be made
    /// (not root, no iproute2, a sandbox without the capability).
    pub fn new() -> Lab {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "cx{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            prefix,
            namespaces: Vec::new(),
        };
        let probe = lab.name("probe");
        let made = Command::new("ip").args(["netns", "add", &probe]).output();
        match made {
            Ok(out) if out.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            }
            Ok(out) => panic!(
                "network namespaces cannot be made here (`ip netns add` said: {}): these tests \
                 need root (CI runs as root) and a kernel that allows namespaces",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!(
                "`ip` cannot be run ({e}): these tests need iproute2 and nftables \
                 (`apt-get install iproute2 nftables`; ./test.sh installs them)"
            ),
        }
        lab
    }

    fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The namespaces this lab has made, by their full names.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// A new namespace with its loopback up; returns its full name.
    pub fn host(&mut self, short: &str) -> String {
        let ns = self.name(short);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        self.exec(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside namespace `ns`, panicking when it fails.
    pub fn exec(&self, ns: &str, command: &[&str]) {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(command);
        run("ip", &args);
    }

    /// A veth link between `a` (interface `a_if`, address `a_addr` with its prefix length) and
    /// `b` (`b_if`, `b_addr`); either address may be empty (a bridge port).
    pub fn link(&self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        run(
            "ip",
            &[
                "-n", a, "link", "add", "name", a_if, "type", "veth", "peer", "name", b_if,
                "netns", b,
            ],
        );
        for (ns, name, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            if !addr.is_empty() {
                self.exec(ns, &["ip", "addr", "add", addr, "dev", name]);
            }
            self.exec(ns, &["ip", "link", "set", name, "up"]);
        }
    }

    /// The internet: a namespace holding a bridge `inet0` with address `203.0.113.<host>/24`; its
    /// name. Other namespaces join it with `join_internet`.
    pub fn internet(&mut self, host: u8) -> String {
        self.bridge("net", host)
    }

    /// A namespace `short` holding a bridge `inet0` on the internet's /24 as `203.0.113.<host>`
    /// (`internet` is one; two of them joined by `join_bridges` are one network that can be cut).
    pub fn bridge(&mut self, short: &str, host: u8) -> String {
        let ns = self.host(short);
        self.exec(
            &ns,
            &["ip", "link", "add", "name", "inet0", "type", "bridge"],
        );
        self.exec(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{INTERNET}.{host}/24"),
                "dev",
                "inet0",
            ],
        );
        self.exec(&ns, &["ip", "link", "set", "inet0", "up"]);
        ns
    }

    /// Joins namespace `ns` to the internet's bridge, as `203.0.113.<host>` on its interface
    /// `wan`; port `port` of the bridge (unique per joined namespace).
    pub fn join_internet(&self, internet: &str, ns: &str, port: &str, host: u8) {
        self.link(
            ns,
            "wan",
            &format!("{INTERNET}.{host}/24"),
            internet,
            port,
            "",
        );
        self.exec(internet, &["ip", "link", "set", port, "master", "inet0"]);
    }

    /// Joins two bridges by a veth link, `<a's interface>` being `trunk` on both sides; cut it
    /// with `set_link(a, "trunk", false)`.
    pub fn join_bridges(&self, a: &str, b: &str) {
        self.link(a, "trunk", "", b, "trunk", "");
        for ns in [a, b] {
            self.exec(ns, &["ip", "link", "set", "trunk", "master", "inet0"]);
        }
    }

    /// Takes interface `name` of namespace `ns` up or down.
    pub fn set_link(&self, ns: &str, name: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        self.exec(ns, &["ip", "link", "set", name, state]);
    }

    /// A town behind a NAT router: a router namespace on the internet as `203.0.113.<host>`
    /// with a LAN `100.64.<lan>.0/24`, and the town's host on it at `100.64.<lan>.2`, whose only
    /// route out is the router. The router masquerades what leaves by `wan` (`kind`) and drops
    /// what arrives from the internet unless it belongs to a connection from inside (a
    /// stateful firewall, as town halls have), silently: a connection attempt from outside to
    /// the router itself is dropped too, not answered with a reset. Returns the town's
    /// namespace.
    pub fn town_behind_nat(
        &mut self,
        internet: &str,
        short: &str,
        host: u8,
        lan: u8,
        kind: NatKind,
    ) -> String {
        let router = self.host(&format!("{short}r"));
        let town = self.host(short);
        self.join_internet(internet, &router, &format!("p{short}"), host);
        self.link(
            &router,
            "lan",
            &format!("100.64.{lan}.1/24"),
            &town,
            "eth0",
            &format!("100.64.{lan}.2/24"),
        );
        self.exec(
            &town,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("100.64.{lan}.1"),
            ],
        );
        self.exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        let masquerade = match kind {
            NatKind::PortPreserving => "masquerade",
            NatKind::PortRandomising => "masquerade fully-random",
        };
        let rules = format!(
            "table ip nat {{\n\
               chain outbound {{ type nat hook postrouting priority 100; oifname \"wan\" {masquerade}; }}\n\
             }}\n\
             table ip filter {{\n\
               chain through {{ type filter hook forward priority 0; policy drop;\n\
                 iifname \"lan\" accept; ct state established,related accept; }}\n\
               chain mine {{ type filter hook input priority 0; policy accept;\n\
                 iifname \"wan\" ct state new drop; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!("{router}.nft"));
        std::fs::write(&path, rules).unwrap_or_else(|e| panic!("{e}"));
        self.exec(&router, &["nft", "-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        town
    }

    /// Kills every process still in the lab's namespaces.
    fn kill_all(&self) {
        for ns in &self.namespaces {
            let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
                continue;
            };
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_all();
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Whether a namespace of this name exists.
pub fn exists(ns: &str) -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns))
        })
        .unwrap_or(false)
}
