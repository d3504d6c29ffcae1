//! `cailloux`: the command a town's practitioners and IT use. It parses the command line, calls
//! the node library and prints; the rules live in `cailloux-protocol`, the storage and the
//! operations in `cailloux-node`.
//!
//! Exit codes (also in the README): 0 success; 1 the input was refused (an invalid publication,
//! a bad line in an import or a verification, an unknown id); 2 the command line is wrong;
//! 3 the environment failed (home, store, files, disk).

mod remote;
mod templates;
mod trust;

use anyhow::Context;
use cailloux_node::daemon::{self, NodeOptions};
use cailloux_node::exchange::{self, BadLine, Report};
use cailloux_node::publish::{self, FileViolations};
use cailloux_node::search::{MAX_LIMIT, SearchIndex, SearchQuery, results_json};
use cailloux_node::{Filter, Home, ResolveError, Store, now_millis};
use cailloux_protocol::view::{full_json, summary_json};
use cailloux_protocol::{IdPrefix, Kind, Record, Theme};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use remote::{Remote, error_text};
use serde_json::Value;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Cailloux: share what your town learns — signed experiment write-ups, practice sheets and
/// evaluations — with other towns.
#[derive(Debug, Parser)]
#[command(name = "cailloux", version, about, max_term_width = 100)]
struct Cli {
    /// The town's home folder (identity, config.toml, store). Default: $XDG_DATA_HOME/cailloux,
    /// that is ~/.local/share/cailloux.
    #[arg(long, global = true, env = "CAILLOUX_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run this town's node in the foreground: share records with other towns, serve the local
    /// API. Creates the identity on first run. Stops cleanly on Ctrl-C or SIGTERM.
    Node(NodeArgs),
    /// The running node's identity, addresses and counts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The peers the running node is connected to.
    Peers {
        #[arg(long)]
        json: bool,
    },
    /// Create this town's identity and config.toml; prints the public key.
    Init {
        /// The town's name, as it should appear on its publications.
        #[arg(long)]
        town: String,
    },
    /// Print a commented template for a new publication.
    New {
        #[arg(value_enum)]
        kind: KindArg,
    },
    /// Validate, sign and store publications (.md files or folders of them).
    Publish {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print JSON Lines {"file": ..., "id": ...}.
        #[arg(long)]
        json: bool,
        /// Sign with this home's (personal) key and submit the signed records to the node at
        /// URL, e.g. http://mairie.example:4748: the signature is the credential.
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// Publish the file as a new version of record ID (same author or same town only).
        #[arg(long, value_name = "ID")]
        supersedes: Option<String>,
    },
    /// List records, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hidden: HiddenArgs,
    },
    /// Search the corpus by words (accents and plurals do not matter), best first; with no words,
    /// list what the filters keep, newest first.
    Search {
        /// The words to look for.
        #[arg(value_name = "QUERY")]
        words: Vec<String>,
        #[command(flatten)]
        filter: FilterArgs,
        /// From this year on (the start of the record's period, else its creation).
        #[arg(long, value_name = "YEAR")]
        since: Option<u64>,
        /// Up to this year, included.
        #[arg(long, value_name = "YEAR")]
        until: Option<u64>,
        /// An experiment's outcome: succeeded, partial, failed or abandoned.
        #[arg(long)]
        outcome: Option<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print one JSON array: the list fields plus `score` and `snippet`.
        #[arg(long)]
        json: bool,
    },
    /// Counts by kind, theme, town, year and outcome.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the store.
    Reindex,
    /// Show one record in full.
    Show {
        /// A record id, or a unique prefix of 8 characters or more.
        id: String,
        #[arg(long)]
        json: bool,
        /// Also list every version of the record (oldest first) and its retractions.
        #[arg(long)]
        history: bool,
    },
    /// Export every record, oldest first.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        hidden: HiddenArgs,
    },
    /// Import a JSONL export from any node: verify every line, store the good ones.
    Import {
        /// The JSONL file, or - for standard input.
        file: PathBuf,
    },
    /// Check every signature and id of a JSONL export, offline; needs no home.
    Verify {
        /// The JSONL file, or - for standard input.
        file: PathBuf,
    },
    /// The federation's coordinator: create it, admit towns.
    Federation {
        #[command(subcommand)]
        command: FederationCommand,
    },
    /// Make this node a member of a federation (writes config.toml; restart the node).
    Join {
        #[arg(value_name = "FEDERATION_KEY")]
        key: String,
        #[arg(long = "bootstrap", value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
    },
    /// A practitioner's own key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Vouch, with this town's key, for a practitioner's personal key.
    Delegate {
        #[arg(value_name = "PUBKEY")]
        key: String,
        /// The person's name, shown on their records.
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: Option<String>,
        /// The kinds they may publish (comma-separated). Absent: all.
        #[arg(long, value_enum, value_delimiter = ',')]
        kinds: Vec<KindArg>,
        /// Last day of validity: YYYY, YYYY-MM or YYYY-MM-DD. Absent: no end.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key from now on (a delegate's, with the town's key; a town's, with the
    /// federation key). KEY|ID: the key, or the id of its admission or delegation.
    Revoke {
        #[arg(value_name = "KEY|ID")]
        target: String,
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a publication (its author or its town only); kept for audit.
    Retract {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The federation's towns and delegates, as this node sees them.
    Members {
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// What default listings leave out, on request.
#[derive(Debug, clap::Args)]
struct HiddenArgs {
    /// Include retracted records (kept for audit).
    #[arg(long)]
    include_retracted: bool,
    /// Include versions that a newer version supersedes.
    #[arg(long)]
    all_versions: bool,
}

#[derive(Debug, Subcommand)]
enum FederationCommand {
    /// Create a federation: its key (in <home>/federation.key) and its founding act. Prints the
    /// federation's public key, which every town joins with.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Admit a town's key (as `cailloux init` or `status` printed it) into the federation.
    Admit {
        #[arg(value_name = "PUBKEY")]
        key: String,
        #[arg(long)]
        town: String,
        /// ISO 3166 country code.
        #[arg(long, default_value = "FR")]
        country: String,
        /// Official code, such as the INSEE code of a French commune.
        #[arg(long)]
        code: Option<String>,
        /// Last day of validity: YYYY, YYYY-MM or YYYY-MM-DD. Absent: no end.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a practitioner's personal key in this home (never a town's node's home).
    New {
        #[arg(long)]
        json: bool,
    },
}

/// The filters `list` and `search` share.
#[derive(Debug, clap::Args)]
struct FilterArgs {
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// A theme slug, such as energy or social-link.
    #[arg(long)]
    theme: Option<String>,
    /// A town name (case and accents do not matter).
    #[arg(long)]
    town: Option<String>,
}

/// Flags of `cailloux node`; each has a `config.toml` twin, and the flag wins.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// A libp2p address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/4747 and
    /// /ip4/0.0.0.0/udp/4747/quic-v1.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// The local API's address. Default: 127.0.0.1:4748 (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT")]
    api: Option<String>,
    /// Also serve the corpus browser and the read API (nothing that writes) on this address,
    /// for the public.
    #[arg(long, value_name = "HOST:PORT")]
    public_api: Option<String>,
    /// A peer to connect to at start, ending in /p2p/<peer id> (repeatable).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Do not look for peers on the local network (mDNS).
    #[arg(long)]
    no_mdns: bool,
    /// The town's name, used when this run creates the identity.
    #[arg(long)]
    town: Option<String>,
    /// Log lines as text or as JSON (for log shippers). Verbosity: RUST_LOG.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Seconds between catch-up rounds with a random peer.
    #[arg(long, value_name = "SECONDS")]
    sync_interval: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KindArg {
    Experiment,
    Practice,
    Evaluation,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Experiment => Kind::Experiment,
            KindArg::Practice => Kind::Practice,
            KindArg::Evaluation => Kind::Evaluation,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

/// The input was refused: exit 1. The message has been printed, or is this error's text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let refused = e.downcast_ref::<Refused>().is_some();
            if !refused || !e.to_string().is_empty() {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(if refused { 1 } else { 3 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn home_dir(flag: Option<PathBuf>) -> anyhow::Result<Home> {
    if let Some(dir) = flag {
        return Ok(Home::new(dir));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("cannot find a home folder: set --home, CAILLOUX_HOME or HOME")?;
    Ok(Home::new(data.join("cailloux")))
}

/// Logs go to standard error; RUST_LOG sets the verbosity (default: info for the node, warnings
/// for the other commands).
fn init_logging(default: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = home_dir(cli.home)?;
    if let Command::Node(args) = cli.command {
        return node(home, args);
    }
    init_logging("warn", LogFormat::Text);
    match cli.command {
        Command::Node(_) => Ok(()),
        Command::Status { json } => status(&home, json),
        Command::Peers { json } => peers(&home, json),
        Command::Init { town } => init(&home, &town),
        Command::New { kind } => {
            print!("{}", templates::template(kind.into()));
            Ok(())
        }
        Command::Publish {
            paths,
            json,
            node,
            supersedes,
        } => publish(&home, &paths, json, node.as_deref(), supersedes.as_deref()),
        Command::List {
            filter,
            hidden,
            json,
        } => list(&home, filter, &hidden, json),
        Command::Show { id, json, history } => show(&home, &id, json, history),
        Command::Search {
            words,
            filter: FilterArgs { kind, theme, town },
            since,
            until,
            outcome,
            limit,
            json,
        } => {
            let mut params: std::collections::HashMap<String, String> =
                std::collections::HashMap::new();
            params.insert("q".into(), words.join(" "));
            params.insert("limit".into(), limit.to_string());
            let optional = [
                ("kind", kind.map(|k| Kind::from(k).slug().to_owned())),
                ("theme", theme),
                ("town", town),
                ("since", since.map(|y| y.to_string())),
                ("until", until.map(|y| y.to_string())),
                ("outcome", outcome),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    params.insert(k.into(), v);
                }
            }
            let query = SearchQuery::from_params(&params).map_err(Refused)?;
            search(&home, &query, json)
        }
        Command::Stats { json } => stats(&home, json),
        Command::Reindex => reindex(&home),
        Command::Export {
            format,
            out,
            hidden,
        } => export(&home, format, out, &hidden),
        Command::Import { file } => import(&home, &file),
        Command::Verify { file } => verify(&file),
        Command::Federation {
            command: FederationCommand::Create { name, node, json },
        } => trust::federation_create(&home, &name, node.as_deref(), json),
        Command::Federation {
            command:
                FederationCommand::Admit {
                    key,
                    town,
                    country,
                    code,
                    until,
                    node,
                    json,
                },
        } => trust::federation_admit(
            &home,
            &key,
            &town,
            &country,
            code,
            until.as_deref(),
            node.as_deref(),
            json,
        ),
        Command::Join { key, bootstrap } => trust::join(&home, &key, &bootstrap),
        Command::Key {
            command: KeyCommand::New { json },
        } => trust::key_new(&home, json),
        Command::Delegate {
            key,
            name,
            role,
            kinds,
            until,
            node,
            json,
        } => trust::delegate(
            &home,
            &key,
            &name,
            role,
            &kinds,
            until.as_deref(),
            node.as_deref(),
            json,
        ),
        Command::Revoke {
            target,
            reason,
            node,
            json,
        } => trust::revoke(&home, &target, &reason, node.as_deref(), json),
        Command::Retract {
            id,
            reason,
            node,
            json,
        } => trust::retract(&home, &id, &reason, node.as_deref(), json),
        Command::Members { node, json } => trust::members(&home, node.as_deref(), json),
    }
}

fn parse_addrs(flag: &str, addrs: &[String]) -> anyhow::Result<Vec<cailloux_node::Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse().map_err(|e| {
                Refused(format!("{flag} {a}: not a multiaddr ({e}); write e.g. /ip4/203.0.113.7/tcp/4747/p2p/12D3KooW…")).into()
            })
        })
        .collect()
}

fn node(home: Home, args: NodeArgs) -> anyhow::Result<()> {
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
    let options = NodeOptions {
        listen,
        api: args
            .api
            .or(config.api.clone())
            .unwrap_or_else(|| daemon::DEFAULT_API.into()),
        public_api: args.public_api.or(config.public_api.clone()),
        bootstrap: parse_addrs("--bootstrap", &bootstrap)?,
        mdns: !args.no_mdns && config.mdns.unwrap_or(true),
        town: args.town.or(config.town.clone()),
        sync_interval: std::time::Duration::from_secs(
            args.sync_interval
                .or(config.sync_interval_secs)
                .unwrap_or(60)
                .max(1),
        ),
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

fn running_node(home: &Home) -> anyhow::Result<Remote> {
    Remote::find(home).ok_or_else(|| {
        anyhow::anyhow!(
            "no node is running for {} (start one with `cailloux node`)",
            home.root().display()
        )
    })
}

fn status(home: &Home, json: bool) -> anyhow::Result<()> {
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
    println!("peers        {}", s["peers"]);
    Ok(())
}

fn peers(home: &Home, json: bool) -> anyhow::Result<()> {
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
            "{}  {:<20}  {}",
            p["peer_id"].as_str().unwrap_or(""),
            p["town"].as_str().unwrap_or("?"),
            addrs.join(" ")
        );
    }
    Ok(())
}

fn init(home: &Home, town: &str) -> anyhow::Result<()> {
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

/// A progress bar on stderr when a person is watching (stdout and stderr are terminals), and a
/// hidden one otherwise, so piped output stays clean.
fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = match len {
        Some(_) => format!("{what} [{{bar:30}}] {{pos}}/{{len}} ({{eta}} left)"),
        None => format!("{what} {{spinner}} {{pos}} lines ({{elapsed}})"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Records are signed and stored this many at a time: one flush per batch.
const PUBLISH_BATCH: usize = 64;

fn publish(
    home: &Home,
    paths: &[PathBuf],
    json: bool,
    node: Option<&str>,
    supersedes: Option<&str>,
) -> anyhow::Result<()> {
    let files = publish::collect_files(paths).map_err(|e| Refused(e.to_string()))?;
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Refused(format!("{}: {e}", file.display())))?;
        sources.push((file, text));
    }
    let total = sources.len();
    if let Some(url) = node {
        return publish_to(home, url, sources, json, supersedes);
    }
    if let Some(remote) = Remote::find(home) {
        let supersedes = supersedes
            .map(|id| trust::resolve_id(home, None, id))
            .transpose()?;
        return publish_remote(&remote, sources, json, supersedes);
    }
    let identity = home.load_identity()?;
    let config = home.load_config()?;
    let store = home.open_store()?;
    let mut plan = match publish::plan(sources, config.town.as_deref(), Some(&store)) {
        Ok(plan) => plan,
        Err(problems) => {
            report_violations(&problems, total);
            return Err(Refused(String::new()).into());
        }
    };
    if let Some(old) = supersedes {
        let old = trust::resolve_id(home, None, old)?;
        plan.supersede(old).map_err(Refused)?;
    }
    let bar = progress_bar(Some(plan.len() as u64), "publishing");
    let mut stdout = std::io::stdout().lock();
    // All or nothing: the ledger sees every record before any is stored (a node in a
    // federation refuses a town key that is not admitted, say).
    let signed: Vec<(PathBuf, Record)> = plan
        .sign(identity.signing_key(), now_millis)
        .collect::<Result<_, _>>()?;
    let records: Vec<Record> = signed.iter().map(|(_, r)| r.clone()).collect();
    trust::all_accepted(&store, &records)?;
    let mut batch: Vec<(PathBuf, Record)> = Vec::with_capacity(PUBLISH_BATCH);
    let mut signed = signed.into_iter().peekable();
    while let Some(item) = signed.next() {
        batch.push(item);
        if batch.len() == PUBLISH_BATCH || signed.peek().is_none() {
            let records: Vec<Record> = batch.iter().map(|(_, r)| r.clone()).collect();
            store.insert_batch(&records, now_millis())?;
            // Durable now: only now may the ids be printed.
            for (file, record) in batch.drain(..) {
                bar.suspend(|| print_published(&mut stdout, &file, &record.id().to_hex(), json))?;
                bar.inc(1);
            }
            stdout.flush()?;
        }
    }
    bar.finish_and_clear();
    if !json {
        eprintln!("published {total} record(s)");
    }
    Ok(())
}

fn print_published(out: &mut dyn Write, file: &Path, id: &str, json: bool) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({ "file": file.display().to_string(), "id": id });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{id}  {}", file.display())
    }
}

/// A practitioner publishing from their own machine: signs with this home's personal key and
/// submits the signed records to the town's node at `url`, which checks the chain of trust like
/// any record from a peer. The town defaults to the one that delegated this key.
fn publish_to(
    home: &Home,
    url: &str,
    sources: Vec<(PathBuf, String)>,
    json: bool,
    supersedes: Option<&str>,
) -> anyhow::Result<()> {
    let total = sources.len();
    let identity = home.load_identity()?;
    let mut town = home.load_config()?.town;
    if town.is_none() {
        town = trust::town_of(home, url, &identity.public_key())?;
    }
    let mut plan = match publish::plan(sources, town.as_deref(), None) {
        Ok(plan) => plan,
        Err(problems) => {
            report_violations(&problems, total);
            return Err(Refused(String::new()).into());
        }
    };
    if let Some(old) = supersedes {
        plan.supersede(trust::resolve_id(home, Some(url), old)?)
            .map_err(Refused)?;
    }
    let signed: Vec<(PathBuf, Record)> = plan
        .sign(identity.signing_key(), now_millis)
        .collect::<Result<_, _>>()?;
    trust::submit(
        home,
        Some(url),
        signed.iter().map(|(_, r)| r.clone()).collect(),
    )?;
    let mut out = std::io::stdout().lock();
    for (file, record) in &signed {
        print_published(&mut out, file, &record.id().to_hex(), json)?;
    }
    if !json {
        eprintln!("published {total} record(s) to {url}");
    }
    Ok(())
}

/// Publishing through the running node: it validates, signs with the town's key, stores and
/// gossips. File paths travel absolute (file links resolve against them) and print as given.
fn publish_remote(
    remote: &Remote,
    sources: Vec<(PathBuf, String)>,
    json: bool,
    supersedes: Option<cailloux_protocol::RecordId>,
) -> anyhow::Result<()> {
    let total = sources.len();
    let mut given: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    let mut files = Vec::with_capacity(total);
    for (path, text) in sources {
        let absolute = path
            .canonicalize()
            .map_err(|e| Refused(format!("{}: {e}", path.display())))?;
        given.insert(absolute.display().to_string(), path);
        files.push(serde_json::json!({ "path": absolute, "text": text }));
    }
    let answer = remote.post_json(
        "/api/v1/publish",
        &serde_json::json!({ "files": files, "supersedes": supersedes.map(|id| id.to_hex()) }),
    )?;
    let as_given = |v: &Value| {
        let file = v["file"].as_str().unwrap_or_default();
        given
            .get(file)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(file))
    };
    match answer.status {
        200 => {
            let mut out = std::io::stdout().lock();
            for p in answer.body["published"].as_array().into_iter().flatten() {
                print_published(
                    &mut out,
                    &as_given(p),
                    p["id"].as_str().unwrap_or_default(),
                    json,
                )?;
            }
            if !json {
                eprintln!("published {total} record(s) through the running node");
            }
            Ok(())
        }
        422 => {
            let mut problems: Vec<FileViolations> = Vec::new();
            for p in answer.body["problems"].as_array().into_iter().flatten() {
                let file = as_given(p);
                let violation = cailloux_protocol::Violation::new(
                    p["field"].as_str().unwrap_or_default(),
                    p["message"].as_str().unwrap_or_default(),
                )
                .suggest(p["suggestion"].as_str());
                match problems.last_mut() {
                    Some(last) if last.file == file => last.violations.push(violation),
                    _ => problems.push(FileViolations {
                        file,
                        violations: vec![violation],
                    }),
                }
            }
            report_violations(&problems, total);
            Err(Refused(String::new()).into())
        }
        400 | 403 | 409 => Err(Refused(error_text(&answer.body)).into()),
        _ => Err(anyhow::anyhow!(
            "the node refused: {}",
            error_text(&answer.body)
        )),
    }
}

fn report_violations(problems: &[FileViolations], total: usize) {
    let mut err = std::io::stderr().lock();
    let count: usize = problems.iter().map(|p| p.violations.len()).sum();
    for p in problems {
        for v in &p.violations {
            let _ = writeln!(err, "{}: {v}", p.file.display());
        }
    }
    let _ = writeln!(
        err,
        "error: {count} problem(s) in {} of {total} file(s); nothing was published",
        problems.len()
    );
}

fn parse_theme(s: &str) -> anyhow::Result<Theme> {
    Theme::from_slug(s).ok_or_else(|| {
        let hint = Theme::suggest(s)
            .map(|t| format!("did you mean `{t}`? "))
            .unwrap_or_default();
        Refused(format!(
            "`{s}` is not a theme; {hint}the themes are: {}",
            Theme::slugs().join(", ")
        ))
        .into()
    })
}

fn list(home: &Home, filter: FilterArgs, hidden: &HiddenArgs, json: bool) -> anyhow::Result<()> {
    let FilterArgs { kind, theme, town } = filter;
    let theme = theme.as_deref().map(parse_theme).transpose()?;
    let kind = kind.map(Kind::from);
    let filter = Filter {
        kind,
        theme,
        town: town.clone(),
        author: None,
        include_retracted: hidden.include_retracted,
        all_versions: hidden.all_versions,
    };
    let remote = Remote::find(home);
    let records: Vec<Value> = if let Some(remote) = remote
        .as_ref()
        .filter(|_| hidden.include_retracted || hidden.all_versions)
    {
        // The search index holds current records only: read the export, which takes the same
        // switches, and filter it here.
        let mut lines = Vec::new();
        let mut query = vec![("format", "jsonl")];
        if hidden.include_retracted {
            query.push(("include_retracted", "true"));
        }
        if hidden.all_versions {
            query.push(("all_versions", "true"));
        }
        remote.download("/api/v1/export", &query, &mut lines)?;
        let mut records = Vec::new();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let full: Value = serde_json::from_slice(line)?;
            let keep = filter.kind.is_none_or(|k| full["kind"] == k.slug())
                && filter.theme.is_none_or(|t| {
                    full["themes"]
                        .as_array()
                        .is_some_and(|a| a.contains(&Value::from(t.slug())))
                })
                && filter.town.as_deref().is_none_or(|t| {
                    cailloux_protocol::vocab::fold(t)
                        == cailloux_protocol::vocab::fold(full["town"].as_str().unwrap_or(""))
                });
            if keep {
                let summary: serde_json::Map<String, Value> = [
                    "id",
                    "kind",
                    "title",
                    "town",
                    "author",
                    "themes",
                    "created_at",
                ]
                .iter()
                .map(|k| ((*k).to_owned(), full[*k].clone()))
                .collect();
                records.push(Value::Object(summary));
            }
        }
        records.reverse();
        records
    } else if let Some(remote) = remote {
        let mut query = Vec::new();
        if let Some(k) = kind {
            query.push(("kind", k.slug().to_owned()));
        }
        if let Some(t) = theme {
            query.push(("theme", t.slug().to_owned()));
        }
        if let Some(t) = &town {
            query.push(("town", t.clone()));
        }
        query.push(("limit", MAX_LIMIT.to_string()));
        let mut records = Vec::new();
        loop {
            let params: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = remote.get("/api/v1/records", &params)?;
            if answer.status != 200 {
                return Err(Refused(error_text(&answer.body)).into());
            }
            for mut r in answer.body["records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if let Some(m) = r.as_object_mut() {
                    m.remove("score");
                    m.remove("snippet");
                }
                records.push(r);
            }
            match answer.body["next_cursor"].as_str() {
                Some(cursor) => {
                    query.retain(|(k, _)| *k != "cursor");
                    query.push(("cursor", cursor.to_owned()));
                }
                None => break,
            }
        }
        records
    } else {
        match home.open_existing_store()? {
            Some(store) => store
                .list(&filter)
                .map(|r| r.map(|r| Value::Object(summary_json(&r))))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    for r in &records {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let (id, created) = (text("id"), text("created_at"));
        writeln!(
            out,
            "{}  {:<10}  {}  {:<20}  {}",
            id.get(..12).unwrap_or(&id),
            text("kind"),
            created.get(..10).unwrap_or(&created),
            text("town"),
            text("title")
        )?;
    }
    if records.is_empty() {
        eprintln!("no records match");
    }
    Ok(())
}

/// The search index of a home with no running node, brought in step with the store first.
fn local_search(home: &Home) -> anyhow::Result<Option<(Store, SearchIndex)>> {
    let Some(store) = home.open_existing_store()? else {
        return Ok(None);
    };
    let (index, _) = SearchIndex::open(&home.search_path())?;
    if index.len() != store.len() as u64 {
        let bar = progress_bar(Some(store.len() as u64), "indexing");
        index.catch_up(&store, &mut |n| bar.set_position(n))?;
        bar.finish_and_clear();
    }
    Ok(Some((store, index)))
}

fn search(home: &Home, query: &SearchQuery, json: bool) -> anyhow::Result<()> {
    let page = if let Some(remote) = Remote::find(home) {
        let params = query.to_params();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = remote.get("/api/v1/records", &params)?;
        if answer.status != 200 {
            return Err(Refused(error_text(&answer.body)).into());
        }
        answer.body
    } else {
        match local_search(home)? {
            Some((store, index)) => {
                let results = index
                    .search(query, &store)
                    .map_err(|e| Refused(e.to_string()))?;
                results_json(query, &results)
            }
            None => {
                serde_json::json!({ "total": 0, "records": [], "next_cursor": null, "facets": {} })
            }
        }
    };
    let records = page["records"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
        return Ok(());
    }
    let bold = std::io::stdout().is_terminal();
    for r in &records {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let id = text("id");
        writeln!(
            out,
            "{}  {:<10}  {:<20}  {}",
            id.get(..12).unwrap_or(&id),
            text("kind"),
            text("town"),
            text("title")
        )?;
        let snippet = plain_snippet(&text("snippet"), bold);
        if !snippet.is_empty() {
            writeln!(out, "              {snippet}")?;
        }
    }
    let more = if page["next_cursor"].is_string() {
        " (more with a higher --limit)"
    } else {
        ""
    };
    eprintln!("{} result(s){more}", records.len());
    Ok(())
}

/// A snippet's HTML as terminal text: marks in bold on a terminal, «like this» otherwise.
fn plain_snippet(html: &str, bold: bool) -> String {
    let (open, close) = if bold {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("«", "»")
    };
    html.replace("<mark>", open)
        .replace("</mark>", close)
        .replace('\n', " ")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn stats(home: &Home, json: bool) -> anyhow::Result<()> {
    let body = if let Some(remote) = Remote::find(home) {
        remote.get("/api/v1/stats", &[])?.body
    } else {
        match local_search(home)? {
            Some((_, index)) => {
                let (total, facets) = index.stats(&SearchQuery::default())?;
                serde_json::json!({ "total": total, "facets": facets })
            }
            None => serde_json::json!({ "total": 0, "facets": {} }),
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &body)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{} record(s)", body["total"])?;
    for facet in ["kind", "theme", "town", "year", "outcome"] {
        let Some(counts) = body["facets"][facet].as_object() else {
            continue;
        };
        if counts.is_empty() {
            continue;
        }
        writeln!(out, "\n{facet}")?;
        for (value, n) in counts {
            let label = match facet {
                "kind" => Kind::from_slug(value).map(|k| format!(" ({})", k.label_fr())),
                "theme" => Theme::from_slug(value).map(|t| format!(" ({})", t.label_fr())),
                _ => None,
            };
            writeln!(
                out,
                "  {:>6}  {value}{}",
                n.as_u64().unwrap_or(0),
                label.unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

fn reindex(home: &Home) -> anyhow::Result<()> {
    if Remote::find(home).is_some() {
        anyhow::bail!(
            "a node is running for {}: it keeps the index current, and rebuilds a damaged one when it starts; stop it to rebuild by hand",
            home.root().display()
        );
    }
    let store = home.open_store()?;
    let bar = progress_bar(Some(store.len() as u64), "indexing");
    let index = SearchIndex::rebuild(&home.search_path(), &store, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    eprintln!(
        "indexed {} record(s) in {}",
        index.len(),
        home.search_path().display()
    );
    Ok(())
}

fn find(store: Option<&Store>, id: &str) -> anyhow::Result<Record> {
    let prefix = IdPrefix::parse(id).map_err(Refused)?;
    let store = store.ok_or_else(|| {
        Refused(format!(
            "no record in this store has an id starting with {prefix} (the store is empty)"
        ))
    })?;
    let id = store.resolve(&prefix).map_err(|e| match e {
        ResolveError::Store(e) => anyhow::Error::from(e),
        e => Refused(e.to_string()).into(),
    })?;
    store
        .get(&id)?
        .ok_or_else(|| Refused(format!("record {id} vanished")).into())
}

fn show(home: &Home, id: &str, json: bool, history: bool) -> anyhow::Result<()> {
    let record: Value = if let Some(remote) = Remote::find(home) {
        let prefix = IdPrefix::parse(id).map_err(Refused)?;
        let answer = remote.get(&format!("/api/v1/records/{prefix}"), &[])?;
        match answer.status {
            200 => answer.body,
            400 | 404 | 409 => return Err(Refused(error_text(&answer.body)).into()),
            _ => {
                return Err(anyhow::anyhow!(
                    "the node failed: {}",
                    error_text(&answer.body)
                ));
            }
        }
    } else {
        let store = home.open_existing_store()?;
        let record = find(store.as_ref(), id)?;
        let mut page = full_json(&record);
        if let Some(store) = &store {
            page.insert(
                "provenance".into(),
                cailloux_node::api::provenance(store, &record),
            );
            if record.publication().is_some() {
                page.insert(
                    "versions".into(),
                    cailloux_node::api::versions(store, &record.id())?,
                );
            }
        }
        Value::Object(page)
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
        return Ok(());
    }
    print_record(&mut out, &record)?;
    if history {
        writeln!(out, "\nversions, oldest first:")?;
        for v in record["versions"]["history"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mark = if v["retracted"].is_object() {
                "retracted"
            } else if v["current"] == true {
                "current"
            } else {
                "superseded"
            };
            let created = v["created_at"].as_str().unwrap_or_default();
            writeln!(
                out,
                "  {}  {}  {:<10}  {}",
                v["id"].as_str().unwrap_or_default(),
                created.get(..10).unwrap_or(created),
                mark,
                v["title"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// The readable form of `show`, from the record's JSON (the same whether it came from the store
/// or from the running node).
fn print_record(out: &mut dyn Write, r: &Value) -> std::io::Result<()> {
    let text = |k: &str| match &r[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    };
    let mut field = |name: &str, value: String| -> std::io::Result<()> {
        if value.is_empty() {
            Ok(())
        } else {
            writeln!(out, "{name:<14}{value}")
        }
    };
    field("title", text("title"))?;
    field("id", text("id"))?;
    let kind = text("kind");
    let label = Kind::from_slug(&kind)
        .map(|k| format!("{kind} ({})", k.label_fr()))
        .unwrap_or(kind);
    field("kind", label)?;
    field("town", text("town"))?;
    field(
        "author",
        format!("{} (signature verified when stored)", text("author")),
    )?;
    field("created", text("created_at"))?;
    let p = &r["provenance"];
    match p["chain"].as_str() {
        Some("delegate") => field(
            "signed by",
            format!(
                "{}{}, for {} (delegated by town key {})",
                p["delegate"]["name"].as_str().unwrap_or_default(),
                p["delegate"]["role"]
                    .as_str()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                p["town"].as_str().unwrap_or("its town"),
                p["town_key"].as_str().unwrap_or_default(),
            ),
        )?,
        Some("town") if p["town"].is_string() => field(
            "signed by",
            format!(
                "the town key of {}, admitted by the federation {}",
                p["town"].as_str().unwrap_or_default(),
                p["federation"].as_str().unwrap_or_default()
            ),
        )?,
        _ => {}
    }
    let v = &r["versions"];
    if let Some(retracted) = v["retracted"].as_object() {
        field(
            "RETRACTED",
            format!(
                "{} by {}: {}",
                retracted["at"].as_str().unwrap_or_default(),
                retracted["by"].as_str().unwrap_or_default(),
                retracted["reason"].as_str().unwrap_or_default()
            ),
        )?;
    }
    if v["voided"] == true {
        field(
            "VOIDED",
            "created after a revocation of its author's key that reached this node later".into(),
        )?;
    }
    for newer in v["superseded_by"].as_array().into_iter().flatten() {
        field(
            "superseded by",
            newer.as_str().unwrap_or_default().to_owned(),
        )?;
    }
    if let Some(older) = v["supersedes"].as_str() {
        field("supersedes", older.to_owned())?;
    }
    let themes: Vec<String> = r["themes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| {
            Theme::from_slug(t)
                .map(|th| format!("{t} ({})", th.label_fr()))
                .unwrap_or_else(|| t.to_owned())
        })
        .collect();
    field("themes", themes.join(", "))?;
    for key in [
        "language",
        "tags",
        "sdgs",
        "participation",
        "outcome",
        "need",
        "method",
        "licence",
    ] {
        field(key, text(key))?;
    }
    if let Some(start) = r["period"]["start"].as_str() {
        field(
            "period",
            match r["period"]["end"].as_str() {
                Some(end) => format!("{start} – {end}"),
                None => format!("since {start}"),
            },
        )?;
    }
    for ind in r["indicators"].as_array().into_iter().flatten() {
        let mut line = format!(
            "{}: {} {}",
            ind["name"].as_str().unwrap_or(""),
            ind["value"],
            ind["unit"].as_str().unwrap_or("")
        );
        for (key, label) in [("baseline", "baseline"), ("target", "target")] {
            if !ind[key].is_null() {
                line.push_str(&format!(" ({label} {})", ind[key]));
            }
        }
        if let Some(d) = ind["date"].as_str() {
            line.push_str(&format!(" [{d}]"));
        }
        if let Some(s) = ind["source"].as_str() {
            line.push_str(&format!(" — {s}"));
        }
        field("indicator", line)?;
    }
    for link in r["links"].as_array().into_iter().flatten() {
        field(
            "link",
            format!(
                "{} {}",
                link["rel"].as_str().unwrap_or(""),
                link["id"].as_str().unwrap_or("")
            ),
        )?;
    }
    writeln!(out, "\n{}\n\n{}", text("summary"), text("body").trim_end())
}

fn export(
    home: &Home,
    format: Format,
    out: Option<PathBuf>,
    hidden: &HiddenArgs,
) -> anyhow::Result<()> {
    let filter = Filter {
        include_retracted: hidden.include_retracted,
        all_versions: hidden.all_versions,
        ..Filter::default()
    };
    if let Some(remote) = Remote::find(home) {
        let format = match format {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        };
        let mut query = vec![("format", format)];
        if hidden.include_retracted {
            query.push(("include_retracted", "true"));
        }
        if hidden.all_versions {
            query.push(("all_versions", "true"));
        }
        return write_output(out.as_deref(), |w| {
            remote.download("/api/v1/export", &query, w)?;
            Ok(None)
        });
    }
    let store = home.open_existing_store()?;
    let Some(store) = store else {
        eprintln!("the store is empty: nothing to export");
        return Ok(());
    };
    let bar = progress_bar(Some(store.len() as u64), "exporting");
    let mut tick = || bar.inc(1);
    write_output(out.as_deref(), |w| {
        Ok(Some(match format {
            Format::Jsonl => exchange::export_jsonl(&store, &filter, w, &mut tick)?,
            Format::Csv => exchange::export_csv(&store, &filter, w, &mut tick)?,
        }))
    })?;
    bar.finish_and_clear();
    Ok(())
}

/// Writes to FILE (through FILE.partial, renamed when complete, so a reader never sees half an
/// export) or to standard output.
fn write_output(
    out: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<Option<u64>>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let count = write(&mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            match count {
                Some(n) => eprintln!("exported {n} record(s) to {}", path.display()),
                None => eprintln!("exported to {}", path.display()),
            }
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write(&mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

fn open_input(file: &Path) -> anyhow::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    if file == Path::new("-") {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let f = std::fs::File::open(file).map_err(|e| Refused(format!("{}: {e}", file.display())))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), size))
}

/// A line-count progress bar; the total is unknown until the file is read, so it spins.
fn line_progress(what: &str) -> (ProgressBar, impl FnMut(u64)) {
    let bar = progress_bar(None, what);
    let b = bar.clone();
    (bar, move |n| b.inc(n))
}

fn report_bad_lines(bad: &[BadLine], file: &Path) {
    let mut err = std::io::stderr().lock();
    for b in bad {
        let _ = writeln!(err, "{}:{b}", file.display());
    }
}

fn import(home: &Home, file: &Path) -> anyhow::Result<()> {
    let (mut input, _) = open_input(file)?;
    let report = if let Some(remote) = Remote::find(home) {
        let answer = remote.post_stream("/api/v1/import", &mut input)?;
        if answer.status != 200 {
            return Err(anyhow::anyhow!(
                "the node refused the import: {}",
                error_text(&answer.body)
            ));
        }
        let b = &answer.body;
        Report {
            good: b["good"].as_u64().unwrap_or(0),
            stored: b["stored"].as_u64().unwrap_or(0),
            bad: b["bad"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| BadLine {
                    line: x["line"].as_u64().unwrap_or(0) as usize,
                    reason: x["reason"].as_str().unwrap_or("").to_owned(),
                })
                .collect(),
        }
    } else {
        let store = home.open_store()?;
        let (bar, mut tick) = line_progress("importing");
        let report = exchange::import(&store, &mut input, &mut tick)?;
        bar.finish_and_clear();
        report
    };
    println!(
        "{} good line(s): {} stored, {} already present; {} bad line(s)",
        report.good,
        report.stored,
        report.good - report.stored,
        report.bad.len()
    );
    refuse_if_bad(&report, file, "imported the good lines only")
}

fn verify(file: &Path) -> anyhow::Result<()> {
    let (mut input, _) = open_input(file)?;
    let (bar, mut tick) = line_progress("verifying");
    let report = exchange::verify(&mut input, &mut tick)?;
    bar.finish_and_clear();
    println!(
        "{} good line(s), {} bad line(s)",
        report.good,
        report.bad.len()
    );
    refuse_if_bad(&report, file, "every other line verified")
}

fn refuse_if_bad(report: &Report, file: &Path, what: &str) -> anyhow::Result<()> {
    if report.bad.is_empty() {
        return Ok(());
    }
    report_bad_lines(&report.bad, file);
    let lines: Vec<String> = report
        .bad
        .iter()
        .take(10)
        .map(|b| b.line.to_string())
        .collect();
    Err(Refused(format!(
        "{} bad line(s) in {} (lines {}{}); {what}",
        report.bad.len(),
        file.display(),
        lines.join(", "),
        if report.bad.len() > 10 { ", …" } else { "" }
    ))
    .into())
}
