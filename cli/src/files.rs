//! `export --with-files DIR`: the exported records' files, written into DIR named by hash.
//!
//! The export's lines are watched as they are written (`Tap`), so the files are exactly those
//! of the records exported, whatever the filters, from the store or from the running node.
//! Each file is then copied from this home's blobs, or, with the node running, asked of it
//! (it fetches what it lacks from its peers); its bytes are hashed as they are written and the
//! file is renamed into place only when they are exactly what the record signs. A file DIR
//! already holds, with the right bytes, is left as it is, so an interrupted export can be run
//! again.

use crate::Refused;
use crate::exchange::write_replacing;
use crate::remote::Remote;
use cailloux_node::Home;
use cailloux_node::exchange::files::file_in;
use cailloux_protocol::BlobHash;
use cailloux_protocol::attachment::human_size;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A file a line attaches: its name (for messages) and size.
pub(crate) type Wanted = BTreeMap<BlobHash, (String, u64)>;

/// Collects the files that the JSONL lines written through it attach.
#[derive(Default)]
pub(crate) struct Tap {
    line: Vec<u8>,
    pub(crate) files: Wanted,
}

impl Tap {
    /// A writer that passes everything to `inner` and watches the lines.
    pub(crate) fn on<'a>(&'a mut self, inner: &'a mut dyn Write) -> Tapped<'a> {
        Tapped { tap: self, inner }
    }

    fn line_done(&mut self) {
        const KEY: &[u8] = b"\"attachments\"";
        if self.line.windows(KEY.len()).any(|w| w == KEY)
            && let Ok(line) = serde_json::from_slice::<Value>(&self.line)
        {
            for a in line["attachments"].as_array().into_iter().flatten() {
                if let (Some(hash), Some(size)) = (
                    a["hash"].as_str().and_then(BlobHash::from_hex),
                    a["size"].as_u64(),
                ) {
                    let name = a["name"].as_str().unwrap_or_default().to_owned();
                    self.files.insert(hash, (name, size));
                }
            }
        }
        self.line.clear();
    }
}

pub(crate) struct Tapped<'a> {
    tap: &'a mut Tap,
    inner: &'a mut dyn Write,
}

impl Write for Tapped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for piece in buf[..n].split_inclusive(|b| *b == b'\n') {
            self.tap.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                self.tap.line_done();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hasher: blake3::Hasher,
    written: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `path` holds exactly the file `hash` of `size` bytes.
fn holds(path: &Path, hash: &BlobHash, size: u64) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(size) {
        return false;
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .is_ok_and(|h| h.finalize().as_bytes() == &hash.0)
}

/// Where the files come from: the running node, or this home's blobs when none runs.
enum Source<'a> {
    Node(&'a Remote),
    Home(cailloux_node::blobs::Blobs),
}

/// Writes every file of `wanted` into `dir`; refuses, naming them, if any could not be written
/// (the export itself is complete either way).
pub(crate) fn write_all(
    home: &Home,
    remote: Option<&Remote>,
    dir: &Path,
    wanted: Wanted,
) -> anyhow::Result<()> {
    let source = match remote {
        Some(remote) => Source::Node(remote),
        None => Source::Home(home.open_blobs(home.load_config()?.blob_cache_mb)?),
    };
    let (mut written, mut present, mut failed) = (0u64, 0u64, Vec::new());
    let total: u64 = wanted.values().map(|(_, size)| size).sum();
    let bar = crate::ui::progress_bar(Some(total), "files");
    for (hash, (name, size)) in &wanted {
        let path = file_in(dir, hash);
        if holds(&path, hash, *size) {
            present += 1;
            bar.inc(*size);
            continue;
        }
        let result = write_replacing(&path, |w| {
            let mut out = Hashing {
                inner: w,
                hasher: blake3::Hasher::new(),
                written: 0,
            };
            match &source {
                Source::Node(remote) => {
                    remote.download(&format!("/api/v1/attachments/{hash}"), &[], &mut out)?;
                }
                Source::Home(blobs) => {
                    let held = blobs.get(hash).ok_or_else(|| {
                        Refused(
                            "not held in this home; start the node (`cailloux node`) and export \
                             again: it fetches the files it lacks from its peers"
                                .into(),
                        )
                    })?;
                    let mut file = std::fs::File::open(&held.path)?;
                    std::io::copy(&mut file, &mut out)?;
                }
            }
            let got = BlobHash(*out.hasher.finalize().as_bytes());
            if out.written != *size || got != *hash {
                anyhow::bail!(
                    "the bytes came as {} bytes with hash {got}, not the {size} bytes with hash \
                     {hash} the record signs",
                    out.written
                );
            }
            Ok(None)
        });
        bar.inc(*size);
        match result {
            Ok(_) => written += 1,
            Err(e) => failed.push(format!("{name} ({hash}): {e:#}")),
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{written} file(s) written to {} ({}), {present} there already",
        dir.display(),
        human_size(total)
    );
    if failed.is_empty() {
        return Ok(());
    }
    Err(Refused(format!(
        "{} file(s) could not be written (the export itself is complete): {}",
        failed.len(),
        failed.join("; ")
    ))
    .into())
}
