//! Running a node, and asking the running node about itself: `node`, `status`, `peers`, `init`.

use crate::args::*;
use crate::remote::Remote;
use crate::{Refused, init_logging};
use cailloux_node::Home;
use cailloux_node::daemon::{self, NodeOptions};
use serde_json::Value;

pub(crate) fn parse_addrs(
    flag: &str,
    addrs: &[String],
) -> anyhow::Result<Vec<cailloux_node::Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse().map_err(|e| {
                Refused(format!("{flag} {a}: not a multiaddr ({e}); write e.g. /ip4/203.0.113.7/tcp/4747/p2p/12D3KooW…")).into()
            })
        })
        .collect()
}

pub(crate) fn node(home: Home, args: NodeArgs) -> anyhow::Result<()> {
    let config = home.load_config()?;
    let format = match (args.log_format, config.log_format.as_deref()) {
        (Some(f), _) => f,
        (None, Some("json")) => LogFormat::Json,
        (None, None | Some("text")) => LogFormat::Text,
        (None, Some(other)) => {
            return Err(Refused(format!(
                "{}: log_format = \"{other}\": write \"text\" or \"json\"",
                home.config_path().display()
            ))
            .into());
        }
    };
    init_logging("info", format);
    let listen = if !args.listen.is_empty() {
        parse_addrs("--listen", &args.listen)?
    } else if let Some(listen) = &config.listen {
        parse_addrs("listen", listen)?
    } else {
        NodeOptions::default_listen()
    };
    let bootstrap = if !args.bootstrap.is_empty() {
        args.bootstrap.clone()
    } else {
        config.bootstrap.clone().unwrap_or_default()
    };
    if let Some(v) = args.read_format {
        cailloux_protocol::read_versions_up_to(v);
        tracing::warn!(
            "reading record formats up to version {} only",
            cailloux_protocol::readable_version()
        );
    }
    let options = NodeOptions {
        listen,
        api: args
            .api
            .or(config.api.clone())
            .unwrap_or_else(|| daemon::DEFAULT_API.into()),
        public_api: args.public_api.or(config.public_api.clone()),
        public_url: args
            .public_url
            .or(config.public_url.clone())
            .map(|u| daemon::check_public_url(&u))
            .transpose()?,
        bootstrap: parse_addrs("--bootstrap", &bootstrap)?,
        mdns: !args.no_mdns && config.mdns.unwrap_or(true),
        town: args.town.or(config.town.clone()),
        sync_interval: std::time::Duration::from_secs(
            args.sync_interval
                .or(config.sync_interval_secs)
                .unwrap_or(60)
                .max(1),
        ),
        max_peers: args
            .max_peers
            .or(config.max_peers)
            .unwrap_or(daemon::DEFAULT_MAX_PEERS)
            .max(1),
        store_cache_mb: args
            .store_cache_mb
            .or(config.store_cache_mb)
            .unwrap_or(daemon::DEFAULT_STORE_CACHE_MB)
            .max(1),
        blob_cache_mb: args
            .blob_cache_mb
            .or(config.blob_cache_mb)
            .unwrap_or(cailloux_node::home::DEFAULT_BLOB_CACHE_MB),
        relay: args.relay || config.relay.unwrap_or(false),
    };
    if !home.has_identity() && options.town.is_none() {
        eprintln!(
            "note: creating an identity for an unnamed town; name it with `--town <name>` now or `town = \"...\"` in {} later",
            home.config_path().display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(daemon::run(home, options, daemon::signals()))
}

pub(crate) fn running_node(home: &Home) -> anyhow::Result<Remote> {
    Remote::find(home).ok_or_else(|| {
        anyhow::anyhow!(
            "no node is running for {} (start one with `cailloux node`)",
            home.root().display()
        )
    })
}

pub(crate) fn status(home: &Home, json: bool) -> anyhow::Result<()> {
    let answer = running_node(home)?.get("/api/v1/status", &[])?;
    let s = &answer.body;
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("town         {}", s["town"].as_str().unwrap_or("(unnamed)"));
    println!("public key   {}", s["public_key"].as_str().unwrap_or(""));
    println!("peer id      {}", s["peer_id"].as_str().unwrap_or(""));
    for addr in s["listen_addrs"].as_array().into_iter().flatten() {
        println!("listening    {}", addr.as_str().unwrap_or(""));
    }
    println!("api          http://{}", s["api"].as_str().unwrap_or(""));
    match s["federation"].as_str() {
        Some(key) => println!("federation   {key}"),
        None => println!("federation   none (open mode: any valid signature is accepted)"),
    }
    println!("records      {}", s["records"]);
    let b = &s["blobs"];
    let size =
        |v: &serde_json::Value| cailloux_protocol::attachment::human_size(v.as_u64().unwrap_or(0));
    println!(
        "files        {} own ({}), {} cached ({} of {})",
        b["kept_files"],
        size(&b["kept_bytes"]),
        b["cached_files"],
        size(&b["cached_bytes"]),
        size(&b["cache_quota_bytes"])
    );
    println!("peers        {}", s["peers"]);
    println!("reachability {}", reachability_words(s));
    for addr in s["external_addrs"].as_array().into_iter().flatten() {
        println!("reached at   {}", addr.as_str().unwrap_or(""));
    }
    if s["relay_service"] == true {
        println!("relay        serving circuits for towns behind NAT");
    }
    Ok(())
}

/// What `reachability` means for the operator, in a line.
fn reachability_words(s: &serde_json::Value) -> String {
    let relays = s["relays"].as_array().map_or(0, Vec::len);
    match s["reachability"].as_str() {
        Some("public") => "public: other towns can connect to this node".into(),
        Some("private") if relays > 0 => format!(
            "private: other towns cannot connect to this node directly (NAT or firewall); \
             they reach it through {relays} relay{}",
            if relays == 1 { "" } else { "s" }
        ),
        Some("private") => "private: other towns cannot connect to this node (NAT or firewall), \
             and no relay holds a reservation for it yet: it reaches others, they cannot reach it"
            .into(),
        _ => "unknown: not yet tested (it takes a connected peer and about 10 s)".into(),
    }
}

pub(crate) fn peers(home: &Home, json: bool) -> anyhow::Result<()> {
    let answer = running_node(home)?.get("/api/v1/peers", &[])?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
        return Ok(());
    }
    for p in answer.body.as_array().into_iter().flatten() {
        let addrs: Vec<&str> = p["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{}  {:<20}  {:<7}  {}",
            p["peer_id"].as_str().unwrap_or(""),
            p["town"].as_str().unwrap_or("?"),
            p["connection"].as_str().unwrap_or("?"),
            addrs.join(" ")
        );
    }
    Ok(())
}

pub(crate) fn init(home: &Home, town: &str) -> anyhow::Result<()> {
    let identity = home.init(town)?;
    println!("{}", identity.public_key());
    eprintln!(
        "created the identity of {} in {} (keep identity.key secret and backed up); settings in {}",
        town.trim(),
        home.identity_path().display(),
        home.config_path().display()
    );
    Ok(())
}
