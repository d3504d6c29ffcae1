//! `cailloux`: the command a town's practitioners and IT use. It parses the command line, calls
//! the node library and prints; the rules live in `cailloux-protocol`, the storage and the
//! operations in `cailloux-node`.
//!
//! Exit codes (also in the README): 0 success; 1 the input was refused (an invalid publication,
//! a bad line in an import or a verification, an unknown id); 2 the command line is wrong;
//! 3 the environment failed (home, store, files, disk).

mod args;
mod exchange;
mod files;
mod publishing;
mod reading;
mod remote;
mod running;
mod templates;
mod trust;
mod ui;

// jemalloc, set to give back what a catch-up freed (node/src/memory.rs).
cailloux_node::node_allocator!();

use anyhow::Context;
use args::*;
use cailloux_node::Home;
use clap::Parser;
use exchange::{export, import, verify};
use publishing::publish;
use reading::{list, reindex, search, show, stats};
use running::{init, node, peers, status};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// The input was refused: exit 1. The message has been printed, or is this error's text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(String);

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
/// for the other commands). Colours only on a terminal, and never with `NO_COLOR` set
/// (no-color.org): a log file or the journal gets plain text.
pub(crate) fn init_logging(default: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_allowed())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Whether standard error may carry colour codes: a terminal, and no `NO_COLOR` (a non-empty
/// value turns colour off, as no-color.org says).
fn colour_allowed() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
        Command::Show {
            id,
            json,
            history,
            fetch,
        } => show(&home, &id, json, history, fetch),
        Command::Search(args) => search(&home, args),
        Command::Stats { json } => stats(&home, json),
        Command::Reindex => reindex(&home),
        Command::Export {
            format,
            table,
            filter,
            out,
            with_files,
            hidden,
        } => export(&home, format, table, filter, out, with_files, &hidden),
        Command::Import { file, files } => import(&home, &file, files.as_deref()),
        Command::Verify { file, files } => verify(&file, files.as_deref()),
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
