//! `cailloux`: the command a town's practitioners and IT use. It parses the command line, calls
//! the node library and prints; the rules live in `cailloux-protocol`, the storage and the
//! operations in `cailloux-node`.
//!
//! Exit codes (also in the README): 0 success; 1 the input was refused (an invalid publication,
//! a bad line in an import or a verification, an unknown id); 2 the command line is wrong;
//! 3 the environment failed (home, store, files, disk).

mod templates;

use anyhow::Context;
use cailloux_node::exchange::{self, BadLine, Report};
use cailloux_node::publish::{self, FileViolations};
use cailloux_node::{Filter, Home, ResolveError, Store, now_millis};
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::time::rfc3339_millis;
use cailloux_protocol::view::{full_json, summary_json};
use cailloux_protocol::{IdPrefix, Kind, Record, Theme};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
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
    },
    /// List records, newest first.
    List {
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// A theme slug, such as energy or social-link.
        #[arg(long)]
        theme: Option<String>,
        /// A town name (case and accents do not matter).
        #[arg(long)]
        town: Option<String>,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one record in full.
    Show {
        /// A record id, or a unique prefix of 8 characters or more.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Export every record, oldest first.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = home_dir(cli.home)?;
    match cli.command {
        Command::Init { town } => init(&home, &town),
        Command::New { kind } => {
            print!("{}", templates::template(kind.into()));
            Ok(())
        }
        Command::Publish { paths, json } => publish(&home, &paths, json),
        Command::List {
            kind,
            theme,
            town,
            json,
        } => list(&home, kind, theme, town, json),
        Command::Show { id, json } => show(&home, &id, json),
        Command::Export { format, out } => export(&home, format, out),
        Command::Import { file } => import(&home, &file),
        Command::Verify { file } => verify(&file),
    }
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

fn publish(home: &Home, paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let files = publish::collect_files(paths).map_err(|e| Refused(e.to_string()))?;
    let identity = home.load_identity()?;
    let config = home.load_config()?;
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Refused(format!("{}: {e}", file.display())))?;
        sources.push((file, text));
    }
    let total = sources.len();
    let store = home.open_store()?;
    let plan = match publish::plan(sources, config.town.as_deref(), Some(&store)) {
        Ok(plan) => plan,
        Err(problems) => {
            report_violations(&problems, total);
            return Err(Refused(String::new()).into());
        }
    };
    let bar = progress_bar(Some(plan.len() as u64), "publishing");
    let mut stdout = std::io::stdout().lock();
    let mut batch: Vec<(PathBuf, Record)> = Vec::with_capacity(PUBLISH_BATCH);
    let mut signed = plan.sign(identity.signing_key(), now_millis).peekable();
    while let Some(item) = signed.next() {
        batch.push(item?);
        if batch.len() == PUBLISH_BATCH || signed.peek().is_none() {
            let records: Vec<Record> = batch.iter().map(|(_, r)| r.clone()).collect();
            store.insert_batch(&records)?;
            // Durable now: only now may the ids be printed.
            for (file, record) in batch.drain(..) {
                bar.suspend(|| print_published(&mut stdout, &file, &record, json))?;
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

fn print_published(
    out: &mut dyn Write,
    file: &Path,
    record: &Record,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line =
            serde_json::json!({ "file": file.display().to_string(), "id": record.id().to_hex() });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{}  {}", record.id(), file.display())
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

fn list(
    home: &Home,
    kind: Option<KindArg>,
    theme: Option<String>,
    town: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let filter = Filter {
        kind: kind.map(Kind::from),
        theme: theme.as_deref().map(parse_theme).transpose()?,
        town,
        author: None,
    };
    let store = home.open_existing_store()?;
    let records: Vec<Record> = match &store {
        Some(store) => store.list(&filter).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let array: Vec<Value> = records
            .iter()
            .map(|r| Value::Object(summary_json(r)))
            .collect();
        serde_json::to_writer_pretty(&mut out, &array)?;
        writeln!(out)?;
    } else {
        for r in &records {
            let p = r.publication();
            writeln!(
                out,
                "{}  {:<10}  {}  {:<20}  {}",
                r.id().short(),
                p.kind.slug(),
                &rfc3339_millis(r.created_at())[..10],
                p.town,
                p.title
            )?;
        }
        if records.is_empty() {
            eprintln!("no records match");
        }
    }
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

fn show(home: &Home, id: &str, json: bool) -> anyhow::Result<()> {
    let store = home.open_existing_store()?;
    let record = find(store.as_ref(), id)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &Value::Object(full_json(&record)))?;
        writeln!(out)?;
        return Ok(());
    }
    let p = record.publication();
    let mut field = |name: &str, value: String| -> std::io::Result<()> {
        if value.is_empty() {
            Ok(())
        } else {
            writeln!(out, "{name:<14}{value}")
        }
    };
    field("title", p.title.clone())?;
    field("id", record.id().to_hex())?;
    field("kind", format!("{} ({})", p.kind, p.kind.label_fr()))?;
    field("town", p.town.clone())?;
    field("author", author_line(record.author()))?;
    field("created", rfc3339_millis(record.created_at()))?;
    field(
        "themes",
        p.themes
            .iter()
            .map(|t| format!("{t} ({})", t.label_fr()))
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    field("language", p.language.clone())?;
    field("tags", p.tags.join(", "))?;
    field(
        "sdgs",
        p.sdgs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    )?;
    if let Some(period) = &p.period {
        field(
            "period",
            match period.end {
                Some(end) => format!("{} – {end}", period.start),
                None => format!("since {}", period.start),
            },
        )?;
    }
    field(
        "participation",
        p.participation.map(|x| x.to_string()).unwrap_or_default(),
    )?;
    field(
        "outcome",
        p.outcome
            .map(|x| format!("{x} ({})", x.label_fr()))
            .unwrap_or_default(),
    )?;
    field("need", p.need.map(|x| x.to_string()).unwrap_or_default())?;
    field(
        "method",
        p.method
            .map(|x| format!("{x} ({})", x.label_fr()))
            .unwrap_or_default(),
    )?;
    field("licence", p.licence.clone())?;
    for ind in &p.indicators {
        let mut line = format!("{}: {} {}", ind.name, ind.value, ind.unit);
        if let Some(b) = ind.baseline {
            line.push_str(&format!(" (baseline {b})"));
        }
        if let Some(t) = ind.target {
            line.push_str(&format!(" (target {t})"));
        }
        if let Some(d) = ind.date {
            line.push_str(&format!(" [{d}]"));
        }
        if let Some(s) = &ind.source {
            line.push_str(&format!(" — {s}"));
        }
        field("indicator", line)?;
    }
    for link in &p.links {
        let title = store
            .as_ref()
            .and_then(|s| s.get(&link.id).ok().flatten())
            .map(|r| format!("  {}", r.publication().title))
            .unwrap_or_else(|| "  (not in this store)".into());
        field("link", format!("{} {}{title}", link.rel, link.id.short()))?;
    }
    writeln!(out, "\n{}\n\n{}", p.summary, p.body.trim_end())?;
    Ok(())
}

fn author_line(key: AuthorKey) -> String {
    format!("{key} (signature verified when stored)")
}

fn export(home: &Home, format: Format, out: Option<PathBuf>) -> anyhow::Result<()> {
    let store = home.open_existing_store()?;
    let Some(store) = store else {
        eprintln!("the store is empty: nothing to export");
        return Ok(());
    };
    let bar = progress_bar(Some(store.len() as u64), "exporting");
    let mut tick = || bar.inc(1);
    let count = match &out {
        Some(path) => {
            // Write beside the target, then rename: a reader never sees half an export.
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let n = match format {
                Format::Jsonl => exchange::export_jsonl(&store, &mut w, &mut tick)?,
                Format::Csv => exchange::export_csv(&store, &mut w, &mut tick)?,
            };
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            n
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            match format {
                Format::Jsonl => exchange::export_jsonl(&store, &mut w, &mut tick)?,
                Format::Csv => exchange::export_csv(&store, &mut w, &mut tick)?,
            }
        }
    };
    bar.finish_and_clear();
    if let Some(path) = out {
        eprintln!("exported {count} record(s) to {}", path.display());
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
    let store = home.open_store()?;
    let (bar, mut tick) = line_progress("importing");
    let report = exchange::import(&store, &mut input, &mut tick)?;
    bar.finish_and_clear();
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
