//! Records as files: `export` (JSONL, or one of the CSV tables), `import` and `verify`, each
//! with the records' files in a folder beside the export when asked (`files`).

use crate::Refused;
use crate::args::*;
use crate::files;
use crate::reading::parse_theme;
use crate::remote::{Remote, error_text};
use crate::ui::progress_bar;
use anyhow::Context;
use cailloux_node::exchange::{self, BadLine, ExportFormat, Report, Table};
use cailloux_node::{Filter, Home};
use cailloux_protocol::Kind;
use indicatif::ProgressBar;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub(crate) fn export(
    home: &Home,
    format: Format,
    table: Option<TableArg>,
    filter: FilterArgs,
    out: Option<PathBuf>,
    with_files: Option<PathBuf>,
    hidden: &HiddenArgs,
) -> anyhow::Result<()> {
    if with_files.is_some() && (format != Format::Jsonl || table.is_some()) {
        return Err(Refused(
            "--with-files: the files are named by the JSONL lines; export with --format jsonl \
             (the default)"
                .into(),
        )
        .into());
    }
    if let Some(dir) = &with_files {
        std::fs::create_dir_all(dir)
            .map_err(|e| Refused(format!("--with-files {}: {e}", dir.display())))?;
    }
    let mut tap = files::Tap::default();
    let remote = Remote::find(home);
    exported(
        home,
        remote.as_ref(),
        format,
        table,
        filter,
        out,
        hidden,
        &mut tap,
    )?;
    match with_files {
        Some(dir) => files::write_all(home, remote.as_ref(), &dir, tap.files),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn exported(
    home: &Home,
    remote: Option<&Remote>,
    format: Format,
    table: Option<TableArg>,
    filter: FilterArgs,
    out: Option<PathBuf>,
    hidden: &HiddenArgs,
    tap: &mut files::Tap,
) -> anyhow::Result<()> {
    let format = match (format, table) {
        (Format::Jsonl, None) => ExportFormat::Jsonl,
        (Format::Csv, table) => ExportFormat::Csv(table.map(Table::from).unwrap_or_default()),
        (Format::Jsonl, Some(_)) => {
            return Err(Refused(
                "--table: only a CSV export has tables (add --format csv); a JSONL line holds the whole record"
                    .into(),
            )
            .into());
        }
    };
    let FilterArgs { kind, theme, town } = filter;
    let filter = Filter {
        kind: kind.map(Kind::from),
        theme: theme.as_deref().map(parse_theme).transpose()?,
        town,
        author: None,
        include_retracted: hidden.include_retracted,
        all_versions: hidden.all_versions,
    };
    if let Some(remote) = remote {
        let mut query: Vec<(&str, String)> = vec![(
            "format",
            match format {
                ExportFormat::Jsonl => "jsonl".into(),
                ExportFormat::Csv(_) => "csv".into(),
            },
        )];
        // `records` is the default: a node from before the tables takes the query too.
        if let ExportFormat::Csv(table) = format
            && table != Table::Records
        {
            query.push(("table", table.as_str().into()));
        }
        if let Some(k) = filter.kind {
            query.push(("kind", k.slug().into()));
        }
        if let Some(t) = filter.theme {
            query.push(("theme", t.slug().into()));
        }
        if let Some(t) = &filter.town {
            query.push(("town", t.clone()));
        }
        if hidden.include_retracted {
            query.push(("include_retracted", "true".into()));
        }
        if hidden.all_versions {
            query.push(("all_versions", "true".into()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return write_output(out.as_deref(), |w| {
            remote.download("/api/v1/export", &query, &mut tap.on(w))?;
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
        Ok(Some(exchange::export(
            &store,
            format,
            &filter,
            &mut tap.on(w),
            &mut tick,
        )?))
    })?;
    bar.finish_and_clear();
    Ok(())
}

/// Writes to FILE or to standard output. FILE is written through a temporary file created
/// exclusively, under a random name, in FILE's folder (so the rename stays on one file system):
/// nothing planted at a predictable name (a symbolic link, another file) is followed or
/// clobbered. It is synced, then renamed over FILE, so a reader never sees half an export; on any
/// failure it is removed and FILE is as it was.
pub(crate) fn write_output(
    out: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<Option<u64>>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            let count = write_replacing(path, write)?;
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

pub(crate) fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<Option<u64>>,
) -> anyhow::Result<Option<u64>> {
    let name = path
        .file_name()
        .ok_or_else(|| Refused(format!("{}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    // The mode `File::create` would give (before the umask), not the 0600 of a secret.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    // Removed when dropped, on every path that does not persist it.
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut w = std::io::BufWriter::new(tmp.as_file_mut());
    let count = write(&mut w)?;
    w.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The rename is durable once the folder is synced; the export is complete either way.
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(count)
}

pub(crate) fn open_input(file: &Path) -> anyhow::Result<(Box<dyn BufRead + Send>, Option<u64>)> {
    if file == Path::new("-") {
        return Ok((Box::new(BufReader::new(std::io::stdin())), None));
    }
    let f = std::fs::File::open(file).map_err(|e| Refused(format!("{}: {e}", file.display())))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), size))
}

/// A line-count progress bar; the total is unknown until the file is read, so it spins.
pub(crate) fn line_progress(what: &str) -> (ProgressBar, impl FnMut(u64)) {
    let bar = progress_bar(None, what);
    let b = bar.clone();
    (bar, move |n| b.inc(n))
}

pub(crate) fn report_bad_lines(bad: &[BadLine], file: &Path) {
    let mut err = std::io::stderr().lock();
    for b in bad {
        let _ = writeln!(err, "{}:{b}", file.display());
    }
}

pub(crate) fn import(home: &Home, file: &Path, files: Option<&Path>) -> anyhow::Result<()> {
    let files = files
        .map(|dir| {
            std::path::absolute(dir)
                .ok()
                .filter(|d| d.is_dir())
                .ok_or_else(|| Refused(format!("--files {}: not a folder", dir.display())))
        })
        .transpose()?;
    let (mut input, _) = open_input(file)?;
    let report = if let Some(remote) = Remote::find(home) {
        let dir = files.as_ref().map(|d| d.to_string_lossy().into_owned());
        let query: Vec<(&str, &str)> = dir.iter().map(|d| ("files", d.as_str())).collect();
        let answer = remote.post_stream("/api/v1/import", &query, &mut input)?;
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
            files: exchange::files::FilesTaken {
                taken: b["files"]["taken"].as_u64().unwrap_or(0),
                absent: b["files"]["absent"].as_u64().unwrap_or(0),
            },
        }
    } else {
        let store = home.open_store()?;
        let blobs = match files {
            Some(_) => Some(home.open_blobs(home.load_config()?.blob_cache_mb)?),
            None => None,
        };
        let with = files.as_deref().zip(blobs.as_ref());
        let (bar, mut tick) = line_progress("importing");
        let report = exchange::import(&store, &mut input, with, &mut tick)?;
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
    if let Some(dir) = &files {
        println!(
            "{} file(s) taken from {}; {} not there (the node fetches them from its peers when asked)",
            report.files.taken,
            dir.display(),
            report.files.absent
        );
    }
    refuse_if_bad(&report, file, "imported the good lines only")
}

pub(crate) fn verify(file: &Path, files: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = files
        && !dir.is_dir()
    {
        return Err(Refused(format!("--files {}: not a folder", dir.display())).into());
    }
    let (mut input, _) = open_input(file)?;
    let (bar, mut tick) = line_progress("verifying");
    let report = exchange::verify(&mut input, files, &mut tick)?;
    bar.finish_and_clear();
    println!(
        "{} good line(s), {} bad line(s)",
        report.good,
        report.bad.len()
    );
    if let Some(dir) = files {
        println!(
            "{} file(s) in {} match their records",
            report.files.taken,
            dir.display()
        );
    }
    refuse_if_bad(&report, file, "every other line verified")
}

pub(crate) fn refuse_if_bad(report: &Report, file: &Path, what: &str) -> anyhow::Result<()> {
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
