//! The command line: every command, its flags and their help text (clap).

use cailloux_protocol::Kind;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Cailloux: share what your town learns — signed experiment write-ups, practice sheets and
/// evaluations — with other towns.
#[derive(Debug, Parser)]
#[command(name = "cailloux", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// The town's home folder (identity, config.toml, store). Default: $XDG_DATA_HOME/cailloux,
    /// that is ~/.local/share/cailloux.
    #[arg(long, global = true, env = "CAILLOUX_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    Search(SearchArgs),
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
        /// Have the running node fetch the record's files it lacks from its peers first.
        #[arg(long)]
        fetch: bool,
    },
    /// Export every record, oldest first (or those the filters keep).
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// CSV only: one row per record (the default), per indicator, or per link.
        #[arg(long, value_enum)]
        table: Option<TableArg>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// JSONL only: also write the exported records' files into DIR, each named by its
        /// hash (the running node fetches those it lacks from its peers).
        #[arg(long, value_name = "DIR")]
        with_files: Option<PathBuf>,
        #[command(flatten)]
        hidden: HiddenArgs,
    },
    /// Import a JSONL export from any node: verify every line, store the good ones.
    Import {
        /// The JSONL file, or - for standard input.
        file: PathBuf,
        /// Take the records' files from DIR (as `export --with-files` wrote it), each checked
        /// against its record.
        #[arg(long, value_name = "DIR")]
        files: Option<PathBuf>,
    },
    /// Check every signature and id of a JSONL export, offline; needs no home.
    Verify {
        /// The JSONL file, or - for standard input.
        file: PathBuf,
        /// Also check every file the records attach in DIR (named by hash): there, its size,
        /// its hash, its type.
        #[arg(long, value_name = "DIR")]
        files: Option<PathBuf>,
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
pub(crate) struct HiddenArgs {
    /// Include retracted records (kept for audit).
    #[arg(long)]
    pub(crate) include_retracted: bool,
    /// Include versions that a newer version supersedes.
    #[arg(long)]
    pub(crate) all_versions: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FederationCommand {
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
pub(crate) enum KeyCommand {
    /// Create a practitioner's personal key in this home (never a town's node's home).
    New {
        #[arg(long)]
        json: bool,
    },
}

/// `search`'s words, filters and output.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// The words to look for.
    #[arg(value_name = "QUERY")]
    pub(crate) words: Vec<String>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// From this year on (the start of the record's period, else its creation).
    #[arg(long, value_name = "YEAR")]
    pub(crate) since: Option<u64>,
    /// Up to this year, included.
    #[arg(long, value_name = "YEAR")]
    pub(crate) until: Option<u64>,
    /// An experiment's outcome: succeeded, partial, failed or abandoned.
    #[arg(long)]
    pub(crate) outcome: Option<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 10)]
    pub(crate) limit: usize,
    /// Print one JSON array: the list fields plus `score` and `snippet`.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The filters `list`, `search` and `export` share.
#[derive(Debug, clap::Args)]
pub(crate) struct FilterArgs {
    #[arg(long, value_enum)]
    pub(crate) kind: Option<KindArg>,
    /// A theme slug, such as energy or social-link.
    #[arg(long)]
    pub(crate) theme: Option<String>,
    /// A town name (case and accents do not matter).
    #[arg(long)]
    pub(crate) town: Option<String>,
}

/// Flags of `cailloux node`; each has a `config.toml` twin, and the flag wins.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// A libp2p address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/4747 and
    /// /ip4/0.0.0.0/udp/4747/quic-v1.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// The local API's address. Default: 127.0.0.1:4748 (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) api: Option<String>,
    /// Also serve the corpus browser and the read API (nothing that writes) on this address,
    /// for the public.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) public_api: Option<String>,
    /// The URL the public reaches that address at (behind a reverse proxy): the open-data
    /// catalogue's links start with it. Default: the visitor's own Host.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// A peer to connect to at start, ending in /p2p/<peer id> (repeatable).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Do not look for peers on the local network (mDNS).
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// The town's name, used when this run creates the identity.
    #[arg(long)]
    pub(crate) town: Option<String>,
    /// Log lines as text or as JSON (for log shippers). Verbosity: RUST_LOG.
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Seconds between catch-up rounds with a random peer.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) sync_interval: Option<u64>,
    /// The most peers kept connected, inbound included (default 24).
    #[arg(long, value_name = "N")]
    pub(crate) max_peers: Option<usize>,
    /// Memory for the store's page cache, in MiB (default 16).
    #[arg(long, value_name = "MIB")]
    pub(crate) store_cache_mb: Option<u64>,
    /// Disk for other towns' attached files, in MiB; the least recently used go first
    /// (default 1024; the town's own files are always kept).
    #[arg(long, value_name = "MIB")]
    pub(crate) blob_cache_mb: Option<u64>,
    /// Serve relay circuits for towns behind NAT (a public node: the federation's
    /// coordinator, an intercommunal IT service).
    #[arg(long)]
    pub(crate) relay: bool,
    /// Read records only up to this format version, as a node of an older release would (for
    /// tests of how versions meet; see PROTOCOL.md, "Version rules").
    #[arg(long, value_name = "VERSION", hide = true)]
    pub(crate) read_format: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum KindArg {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Jsonl,
    Csv,
}

/// The CSV export's tables.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum TableArg {
    Records,
    Indicators,
    Links,
}

impl From<TableArg> for cailloux_node::exchange::Table {
    fn from(t: TableArg) -> Self {
        match t {
            TableArg::Records => Self::Records,
            TableArg::Indicators => Self::Indicators,
            TableArg::Links => Self::Links,
        }
    }
}
