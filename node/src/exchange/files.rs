//! Files beside an export. `export --with-files DIR` writes each record's attachments into one
//! folder, each named by its hash (64 hex characters, no extension: the record names, types and
//! sizes it); `verify --files DIR` checks every file a line's record attaches against the
//! record; `import` given DIR takes the files from there into the node's blobs.
//!
//! A file is taken only once it is exactly what the signed record says: its size, its BLAKE3
//! hash and its content of the recorded type, all read in one pass. A file absent from DIR is
//! not an error for an import (files travel on demand; a peer may serve it later), but it is for
//! a verification, whose point is that the folder is complete.

use crate::blobs::{Blobs, Examined, examine};
use cailloux_protocol::attachment::human_size;
use cailloux_protocol::{Attachment, BlobHash, Record};
use std::path::{Path, PathBuf};

/// Where a file of an export is, in its folder.
pub fn file_in(dir: &Path, hash: &BlobHash) -> PathBuf {
    dir.join(hash.to_hex())
}

/// The attachments a record signs (none for an act or a v1 record).
pub fn attachments(record: &Record) -> &[Attachment] {
    record
        .publication()
        .map(|p| p.attachments.as_slice())
        .unwrap_or_default()
}

/// What became of one file.
#[derive(Debug)]
pub enum FileCheck {
    /// In the folder and exactly what the record signs.
    Good(PathBuf, Examined),
    /// Not in the folder.
    Absent(String),
    /// In the folder, and not what the record signs: why.
    Wrong(String),
}

/// Reads `a`'s file in `dir` once and compares its size, hash and type with the record's.
pub fn check_file(dir: &Path, a: &Attachment) -> FileCheck {
    let path = file_in(dir, &a.hash);
    let named = format!("file `{}` ({})", a.name, a.hash);
    if !path.is_file() {
        return FileCheck::Absent(format!(
            "{named}: not in {}, where it would be {} ({})",
            dir.display(),
            a.hash,
            human_size(a.size)
        ));
    }
    let examined = match examine(&path, &a.name) {
        Ok(e) => e,
        Err(e) => return FileCheck::Wrong(format!("{named}: {e}")),
    };
    if examined.size != a.size || examined.hash != a.hash {
        return FileCheck::Wrong(format!(
            "{named}: {} holds {} bytes with hash {}; the record signs {} bytes with hash {}",
            path.display(),
            examined.size,
            examined.hash,
            a.size,
            a.hash
        ));
    }
    if examined.media_type != a.media_type {
        return FileCheck::Wrong(format!(
            "{named}: its content is {}, the record says {}",
            examined.media_type.as_str(),
            a.media_type.as_str()
        ));
    }
    FileCheck::Good(path, examined)
}

/// What taking files from a folder did.
#[derive(Debug, Default)]
pub struct FilesTaken {
    /// Files copied into the blobs (or held already).
    pub taken: u64,
    /// Files the records attach that the folder does not hold.
    pub absent: u64,
}

/// Takes every file `record` attaches from `dir` into `blobs` (cached, within the quota). The
/// problems of the files that are there but wrong are returned, one per file; the others are
/// taken.
pub fn take_files(
    dir: &Path,
    record: &Record,
    blobs: &Blobs,
    taken: &mut FilesTaken,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for a in attachments(record) {
        if blobs.has(&a.hash) {
            taken.taken += 1;
            continue;
        }
        match check_file(dir, a) {
            FileCheck::Good(path, examined) => {
                match blobs.add_file(&path, &a.name, &examined, false) {
                    Ok(()) => taken.taken += 1,
                    Err(e) => problems.push(format!("file `{}`: {e}", a.name)),
                }
            }
            FileCheck::Absent(_) => taken.absent += 1,
            FileCheck::Wrong(why) => problems.push(why),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
