//! The record bytes, out of sled: one append-only file, `records.log`, in the store's folder.
//! sled keeps, for each record, where its bytes are (`Location`: 13 bytes) beside the
//! catalogue, so its tree stays small.
//!
//! Why: sled 0.34 keeps what it has written or read in memory whatever its cache setting (its
//! `cache_capacity` counts on-disk sizes, and is a hint): a node holding 100,000 records of
//! 4 KB rested at about 210 MiB for the store alone, against about 30 MiB with the bytes in a
//! file and only their places in sled (measured in a scratch crate; the `memory` benchmark
//! measures the node). Reading a record is one sled lookup and one `pread` (the kernel's page
//! cache holds the hot ones, and it is the kernel's to size); writing is one append.
//!
//! Invariants:
//! - The file only grows. Bytes are appended under the store's write lock, and synced to disk
//!   before sled holds their location (`append` returns once they are durable), so a location
//!   in sled never points past what the disk holds, whatever order a power cut keeps.
//! - Bytes beyond the last location sled holds belong to no record (a batch whose sled write
//!   never happened): they are never read, and a later append simply comes after them.
//! - A record read back is checked against its id by the store (the id is the hash of its
//!   bytes), so a damaged file is reported as a corrupt record, never served as another.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The first byte of a location in sled. The record bytes that stores made before the log held
/// in sled start with a CBOR map or array header, never 0.
const TAG: u8 = 0;

/// Where a record's bytes are in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub const ENCODED: usize = 13;

    pub fn encode(&self) -> [u8; Self::ENCODED] {
        let mut out = [TAG; Self::ENCODED];
        out[1..9].copy_from_slice(&self.offset.to_be_bytes());
        out[9..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// A location, or `None` for anything else (the record bytes themselves, in a store made
    /// before the log).
    pub fn decode(value: &[u8]) -> Option<Location> {
        if value.len() != Self::ENCODED || value[0] != TAG {
            return None;
        }
        Some(Location {
            offset: u64::from_be_bytes(value[1..9].try_into().ok()?),
            len: u32::from_be_bytes(value[9..].try_into().ok()?),
        })
    }
}

/// The append-only file of record bytes.
#[derive(Debug)]
pub struct RecordLog {
    file: File,
    path: PathBuf,
    /// Where the next append goes: the file's length.
    end: Mutex<u64>,
}

impl RecordLog {
    pub const FILE: &'static str = "records.log";

    /// Opens (creating if needed) the log in the store's folder `dir`.
    pub fn open(dir: &Path) -> io::Result<RecordLog> {
        let path = dir.join(Self::FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let end = file.metadata()?.len();
        Ok(RecordLog {
            file,
            path,
            end: Mutex::new(end),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` (in order) as one write, syncs it to disk, and returns where each is.
    pub fn append<'a>(
        &self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<Vec<Location>> {
        let mut end = self.end.lock().unwrap_or_else(|p| p.into_inner());
        let mut buffer = Vec::new();
        let mut locations = Vec::new();
        for bytes in records {
            let len = u32::try_from(bytes.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a record over 4 GiB"))?;
            locations.push(Location {
                offset: *end + buffer.len() as u64,
                len,
            });
            buffer.extend_from_slice(bytes);
        }
        if buffer.is_empty() {
            return Ok(locations);
        }
        let mut file = &self.file;
        if let Err(e) = file.write_all(&buffer).and_then(|()| self.file.sync_data()) {
            // Whatever part was written belongs to no record; appends go after it.
            *end = self.file.metadata().map(|m| m.len()).unwrap_or(*end);
            return Err(e);
        }
        *end += buffer.len() as u64;
        Ok(locations)
    }

    /// The bytes at `at`. A location longer than any record (a damaged entry) is refused
    /// before anything is allocated for it.
    pub fn read(&self, at: Location) -> io::Result<Vec<u8>> {
        if at.len as usize > cailloux_protocol::MAX_RECORD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a location of {} bytes, more than a record may hold ({})",
                    at.len,
                    cailloux_protocol::MAX_RECORD_BYTES
                ),
            ));
        }
        let mut bytes = vec![0; at.len as usize];
        self.file.read_exact_at(&mut bytes, at.offset)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_appended_reads_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = RecordLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let first = log
            .append([&b"one"[..], &b"three"[..]])
            .unwrap_or_else(|e| panic!("{e}"));
        drop(log);
        let log = RecordLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let second = log.append([&b"four"[..]]).unwrap_or_else(|e| panic!("{e}"));
        let read = |at| log.read(at).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(first[0]), b"one");
        assert_eq!(read(first[1]), b"three");
        assert_eq!(read(second[0]), b"four");
        assert_eq!(second[0].offset, 8);
        assert!(
            log.read(Location { offset: 10, len: 5 }).is_err(),
            "past the end"
        );
    }

    #[test]
    fn a_location_is_told_from_record_bytes() {
        let at = Location {
            offset: 1 << 40,
            len: 4000,
        };
        assert_eq!(Location::decode(&at.encode()), Some(at));
        // A record as a store made before the log held it: a CBOR map.
        assert_eq!(Location::decode(&[0xa5; 13]), None);
        assert_eq!(Location::decode(&[0; 12]), None);
    }

    #[test]
    fn a_location_longer_than_any_record_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = RecordLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let at = Location {
            offset: 0,
            len: u32::MAX,
        };
        let err = match log.read(at) {
            Err(e) => e,
            Ok(bytes) => panic!("read {} bytes", bytes.len()),
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("more than a record may hold"),
            "{err}"
        );
    }
}
