//! The town's store: every verified record, by id, and the catalogue that listings read, in one
//! sled tree.
//!
//! Layout (one tree, two key spaces):
//! - `r` + id (32 bytes) -> the signed record bytes;
//! - `c` + created_at (8 bytes, big-endian) + id -> a compact summary (kind, themes, author,
//!   folded town). Keys sort by time, so a reverse scan lists newest first, and the filters of
//!   `list` (kind, theme, town, author) are answered from the summary without decoding records.
//!
//! Why one catalogue entry per record and not one index entry per filter value: sled costs about
//! 8 µs per key written, whatever its size; seven index keys per record made importing four
//! times slower than verifying signatures. A second key per record keeps the store's share of an
//! import below the signature check's.
//!
//! Invariants:
//! - Only verified records enter (`Record` values come from signing or from verification).
//! - A record and its catalogue entry are written in one atomic sled batch, so the catalogue
//!   never points at nothing and a stored record is never missing from listings.
//! - `insert_batch` returns only once the batch is flushed to disk: a caller may tell a person
//!   "stored" as soon as it returns (group commit: one flush per batch, not per record).
//! - Inserting a record that is already there changes nothing.
//!
//! The store is synchronous. The daemon drives it from blocking threads, never from the async
//! runtime's workers.

use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{IdPrefix, Kind, Record, RecordId, Theme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the store at {path} is in use by another process (is a node running for this home?)")]
    Locked { path: PathBuf },
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("the store holds a corrupt record {id}: {reason}")]
    Corrupt { id: String, reason: String },
}

/// Why an id prefix did not name exactly one record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("no record in this store has an id starting with {0}")]
    NotFound(IdPrefix),
    #[error("{prefix} is ambiguous: it starts {} ids ({}); type more characters", .matches.len(), short_list(.matches))]
    Ambiguous {
        prefix: IdPrefix,
        matches: Vec<RecordId>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn short_list(ids: &[RecordId]) -> String {
    let mut shown: Vec<String> = ids.iter().take(4).map(RecordId::short).collect();
    if ids.len() > 4 {
        shown.push("…".into());
    }
    shown.join(", ")
}

/// Which records a listing wants. Every field narrows; the default lists everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub theme: Option<Theme>,
    /// Compared case- and accent-insensitively.
    pub town: Option<String>,
    pub author: Option<AuthorKey>,
}

impl Filter {
    fn matches_summary(&self, s: &Summary) -> bool {
        self.kind.is_none_or(|k| s.kind == kind_byte(k))
            && self.theme.is_none_or(|t| s.themes & theme_bit(t) != 0)
            && self.town.as_deref().is_none_or(|t| fold(t) == s.town)
            && self.author.is_none_or(|a| s.author == a.0)
    }
}

fn kind_byte(k: Kind) -> u8 {
    Kind::ALL.iter().position(|x| *x == k).unwrap_or(0) as u8
}

fn theme_bit(t: Theme) -> u32 {
    1 << Theme::ALL.iter().position(|x| *x == t).unwrap_or(31)
}

/// What a catalogue entry knows of a record: enough to filter a listing.
#[derive(Debug, PartialEq)]
struct Summary {
    kind: u8,
    themes: u32,
    author: [u8; 32],
    /// Folded (lower case, no accents), so that `--town loos-en-gohelle` finds `Loos-en-Gohelle`.
    town: String,
}

impl Summary {
    fn of(record: &Record) -> Summary {
        let p = record.publication();
        Summary {
            kind: kind_byte(p.kind),
            themes: p.themes.iter().fold(0, |acc, t| acc | theme_bit(*t)),
            author: record.author().0,
            town: fold(&p.town),
        }
    }

    fn encode(&self) -> Vec<u8> {
        [
            &[self.kind][..],
            &self.themes.to_le_bytes(),
            &self.author,
            self.town.as_bytes(),
        ]
        .concat()
    }

    fn decode(bytes: &[u8]) -> Option<Summary> {
        Some(Summary {
            kind: *bytes.first()?,
            themes: u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?),
            author: bytes.get(5..37)?.try_into().ok()?,
            town: String::from_utf8(bytes.get(37..)?.to_vec()).ok()?,
        })
    }
}

fn record_key(id: &RecordId) -> [u8; 33] {
    let mut key = [b'r'; 33];
    key[1..].copy_from_slice(&id.0);
    key
}

fn catalogue_key(record: &Record) -> [u8; 41] {
    let mut key = [b'c'; 41];
    key[1..9].copy_from_slice(&record.created_at().to_be_bytes());
    key[9..].copy_from_slice(&record.id().0);
    key
}

/// A handle on the store; cheap to clone, safe to share between threads.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises writers, so that "was it new?" is answered exactly.
    write: Arc<Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the store in the folder `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(path).open().map_err(|e| match e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                StoreError::Locked {
                    path: path.to_owned(),
                }
            }
            e => StoreError::Open {
                path: path.to_owned(),
                source: e,
            },
        })?;
        let tree = db.open_tree("records")?;
        Ok(Store {
            db,
            tree,
            write: Arc::default(),
        })
    }

    /// Stores records and their catalogue entries atomically, then flushes. Returns, for each
    /// record, whether it was new. Durable on return.
    pub fn insert_batch(&self, batch: &[Record]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self
            .write
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut fresh = Vec::with_capacity(batch.len());
        let mut writes = sled::Batch::default();
        let mut in_batch = std::collections::HashSet::new();
        for record in batch {
            let key = record_key(&record.id());
            let new = !self.tree.contains_key(key)? && in_batch.insert(record.id());
            if new {
                writes.insert(&key[..], record.bytes());
                writes.insert(&catalogue_key(record)[..], Summary::of(record).encode());
            }
            fresh.push(new);
        }
        self.tree.apply_batch(writes)?;
        self.db.flush()?;
        Ok(fresh)
    }

    pub fn contains(&self, id: &RecordId) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(record_key(id))?)
    }

    pub fn get(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.tree
            .get(record_key(id))?
            .map(|bytes| decode_stored(id, bytes.to_vec()))
            .transpose()
    }

    /// The one record whose id starts with `prefix`.
    pub fn resolve(&self, prefix: &IdPrefix) -> Result<RecordId, ResolveError> {
        let mut matches = Vec::new();
        for item in self
            .tree
            .scan_prefix([&b"r"[..], &prefix.leading_bytes()].concat())
            .keys()
        {
            let key = item.map_err(StoreError::from)?;
            let id = RecordId(key[1..].try_into().map_err(|_| StoreError::Corrupt {
                id: cailloux_protocol::id::encode_hex(&key),
                reason: "a key that is not a 32-byte id".into(),
            })?);
            if prefix.matches(&id) {
                matches.push(id);
                if matches.len() > 16 {
                    break;
                }
            }
        }
        match matches.len() {
            0 => Err(ResolveError::NotFound(prefix.clone())),
            1 => Ok(matches[0]),
            _ => Err(ResolveError::Ambiguous {
                prefix: prefix.clone(),
                matches,
            }),
        }
    }

    /// Records matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        let filter = filter.clone();
        self.scan_catalogue(true, move |s| filter.matches_summary(s))
    }

    /// Every record, oldest first: the order of exports.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.scan_catalogue(false, |_| true)
    }

    fn scan_catalogue(
        &self,
        newest_first: bool,
        keep: impl Fn(&Summary) -> bool + 'static,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        let entries = self.tree.scan_prefix(b"c");
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if newest_first {
                Box::new(entries.rev())
            } else {
                Box::new(entries)
            };
        entries.filter_map(move |entry| {
            let (key, value) = match entry {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            let corrupt = |reason: &str| StoreError::Corrupt {
                id: cailloux_protocol::id::encode_hex(&key[key.len().saturating_sub(32)..]),
                reason: reason.into(),
            };
            let Some(summary) = Summary::decode(&value) else {
                return Some(Err(corrupt("an unreadable catalogue entry")));
            };
            if !keep(&summary) {
                return None;
            }
            let Ok(id) = key[9..].try_into().map(RecordId) else {
                return Some(Err(corrupt("a catalogue key too short to hold an id")));
            };
            Some(
                self.get(&id).and_then(|r| {
                    r.ok_or_else(|| corrupt("a catalogue entry points at no record"))
                }),
            )
        })
    }

    /// (created_at, id) of every record, oldest first, from the catalogue keys alone.
    pub fn catalogue(&self) -> impl Iterator<Item = Result<(u64, RecordId), StoreError>> + '_ {
        self.tree.scan_prefix(b"c").keys().map(|key| {
            let key = key?;
            let time = key
                .get(1..9)
                .and_then(|t| t.try_into().ok())
                .map(u64::from_be_bytes);
            let id = key.get(9..41).and_then(|i| i.try_into().ok()).map(RecordId);
            match (time, id) {
                (Some(time), Some(id)) => Ok((time, id)),
                _ => Err(StoreError::Corrupt {
                    id: "?".into(),
                    reason: "a malformed catalogue key".into(),
                }),
            }
        })
    }

    /// Flushes everything written to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix(b"c").keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.scan_prefix(b"c").next().is_none()
    }
}

fn decode_stored(id: &RecordId, bytes: Vec<u8>) -> Result<Record, StoreError> {
    Record::from_trusted_bytes(bytes).map_err(|e| StoreError::Corrupt {
        id: id.to_hex(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cailloux_protocol::{Outcome, Publication, SigningKey};

    fn record(i: u64, kind: Kind, themes: Vec<Theme>, town: &str) -> Record {
        let p = Publication {
            kind,
            title: format!("Essai {i}"),
            summary: "Résumé.".into(),
            language: "fr".into(),
            town: town.into(),
            themes,
            tags: Vec::new(),
            sdgs: Vec::new(),
            period: None,
            participation: None,
            licence: "etalab-2.0".into(),
            links: Vec::new(),
            outcome: (kind == Kind::Experiment).then_some(Outcome::Failed),
            need: None,
            method: None,
            indicators: Vec::new(),
            body: String::new(),
        };
        Record::sign(&SigningKey::from_bytes(&[i as u8 % 3; 32]), 1_000 + i, p)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn inserts_once_lists_newest_first_and_filters() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("s")).unwrap_or_else(|e| panic!("{e}"));
        let records = vec![
            record(1, Kind::Experiment, vec![Theme::Energy], "Loos-en-Gohelle"),
            record(
                2,
                Kind::Practice,
                vec![Theme::Food, Theme::Energy],
                "Mouans-Sartoux",
            ),
            record(3, Kind::Experiment, vec![Theme::Water], "Écully"),
        ];
        assert_eq!(
            store.insert_batch(&records).ok(),
            Some(vec![true, true, true])
        );
        // Twice, and twice within one batch: nothing new.
        assert_eq!(
            store
                .insert_batch(&[records[0].clone(), records[0].clone()])
                .ok(),
            Some(vec![false, false])
        );
        assert_eq!(store.len(), 3);
        let ids = |f: Filter| -> Vec<u64> {
            store
                .list(&f)
                .map(|r| r.map(|r| r.created_at() - 1_000).unwrap_or(0))
                .collect()
        };
        assert_eq!(ids(Filter::default()), vec![3, 2, 1]);
        assert_eq!(
            ids(Filter {
                kind: Some(Kind::Experiment),
                ..Filter::default()
            }),
            vec![3, 1]
        );
        assert_eq!(
            ids(Filter {
                theme: Some(Theme::Energy),
                ..Filter::default()
            }),
            vec![2, 1]
        );
        assert_eq!(
            ids(Filter {
                town: Some("ECULLY".into()),
                ..Filter::default()
            }),
            vec![3]
        );
        assert_eq!(
            ids(Filter {
                author: Some(records[1].author()),
                ..Filter::default()
            }),
            vec![2]
        );
        let oldest: Vec<u64> = store
            .iter_oldest_first()
            .map(|r| r.map(|r| r.created_at() - 1_000).unwrap_or(0))
            .collect();
        assert_eq!(oldest, vec![1, 2, 3]);
        let prefix =
            IdPrefix::parse(&records[2].id().to_hex()[..9]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.resolve(&prefix).ok(), Some(records[2].id()));
    }
}
