//! The town's store: every verified record, by id, and the indexes that listings need, in sled.
//!
//! Invariants:
//! - Only verified records enter (`Record` values come from signing or from verification).
//! - A record and its index entries are written in one sled transaction, so an index never
//!   points at nothing and a record is never unlisted.
//! - `insert_batch` returns only once the batch is flushed to disk: a caller may tell a person
//!   "stored" as soon as it returns (group commit: one flush per batch, not per record).
//! - Inserting a record that is already there changes nothing.
//!
//! The store is synchronous. The daemon drives it from blocking threads, never from the async
//! runtime's workers.

use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{IdPrefix, Kind, Record, RecordId, Theme};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::path::{Path, PathBuf};

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
    pub fn matches(&self, record: &Record) -> bool {
        let p = record.publication();
        self.kind.is_none_or(|k| p.kind == k)
            && self.theme.is_none_or(|t| p.themes.contains(&t))
            && self
                .town
                .as_deref()
                .is_none_or(|t| fold(t) == fold(&p.town))
            && self.author.is_none_or(|a| record.author() == a)
    }

    /// The index prefix to scan: the most selective filter given.
    fn index_prefix(&self) -> Vec<u8> {
        if let Some(t) = &self.town {
            return [b"w", fold(t).as_bytes(), b"\0"].concat();
        }
        if let Some(t) = self.theme {
            return [b"h", t.slug().as_bytes(), b"\0"].concat();
        }
        if let Some(a) = self.author {
            return [&b"a"[..], &a.0].concat();
        }
        if let Some(k) = self.kind {
            return vec![b'k', kind_byte(k)];
        }
        b"t".to_vec()
    }
}

fn kind_byte(k: Kind) -> u8 {
    Kind::ALL.iter().position(|x| *x == k).unwrap_or(0) as u8
}

/// The index keys of a record. Each ends with the creation time (big-endian, so keys sort by
/// time) and the id, which is how a scan finds the record.
fn index_keys(record: &Record) -> Vec<Vec<u8>> {
    let p = record.publication();
    let suffix = [&record.created_at().to_be_bytes()[..], &record.id().0].concat();
    let mut keys = vec![
        [&b"t"[..], &suffix].concat(),
        [&[b'k', kind_byte(p.kind)][..], &suffix].concat(),
        [b"w", fold(&p.town).as_bytes(), b"\0", &suffix].concat(),
        [&b"a"[..], &record.author().0, &suffix].concat(),
    ];
    keys.extend(
        p.themes
            .iter()
            .map(|t| [b"h", t.slug().as_bytes(), b"\0", &suffix].concat()),
    );
    keys
}

/// A handle on the store; cheap to clone, safe to share between threads.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    index: sled::Tree,
    path: PathBuf,
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
        let records = db.open_tree("records")?;
        let index = db.open_tree("index")?;
        Ok(Store {
            db,
            records,
            index,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores records and their index entries atomically, then flushes. Returns, for each record,
    /// whether it was new. Durable on return.
    pub fn insert_batch(&self, batch: &[Record]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<Vec<u8>>> = batch.iter().map(index_keys).collect();
        let fresh = (&self.records, &self.index)
            .transaction(|(records, index)| {
                let mut fresh = Vec::with_capacity(batch.len());
                for (record, keys) in batch.iter().zip(&keys) {
                    let id = &record.id().0;
                    if records.get(id)?.is_some() {
                        fresh.push(false);
                        continue;
                    }
                    records.insert(&id[..], record.bytes())?;
                    for key in keys {
                        index.insert(key.as_slice(), &[][..])?;
                    }
                    fresh.push(true);
                }
                Ok::<_, ConflictableTransactionError<()>>(fresh)
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Io(e),
                TransactionError::Abort(()) => {
                    StoreError::Io(sled::Error::Unsupported("aborted".into()))
                }
            })?;
        self.db.flush()?;
        Ok(fresh)
    }

    pub fn contains(&self, id: &RecordId) -> Result<bool, StoreError> {
        Ok(self.records.contains_key(id.0)?)
    }

    pub fn get(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        self.records
            .get(id.0)?
            .map(|bytes| decode_stored(id, bytes.to_vec()))
            .transpose()
    }

    /// The one record whose id starts with `prefix`.
    pub fn resolve(&self, prefix: &IdPrefix) -> Result<RecordId, ResolveError> {
        let mut matches = Vec::new();
        for item in self.records.scan_prefix(prefix.leading_bytes()).keys() {
            let key = item.map_err(StoreError::from)?;
            let id = RecordId(key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
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
        self.scan_index(filter.index_prefix(), true)
            .filter(move |r| r.as_ref().map_or(true, |r| filter.matches(r)))
    }

    /// Every record, oldest first: the order of exports.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.scan_index(b"t".to_vec(), false)
    }

    fn scan_index(
        &self,
        prefix: Vec<u8>,
        newest_first: bool,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        let keys = self.index.scan_prefix(prefix).keys();
        let keys: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = if newest_first {
            Box::new(keys.rev())
        } else {
            Box::new(keys)
        };
        keys.map(move |key| {
            let key = key?;
            let id = RecordId(
                key[key.len().saturating_sub(32)..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt {
                        id: "?".into(),
                        reason: "an index key too short to hold an id".into(),
                    })?,
            );
            self.get(&id)?.ok_or_else(|| StoreError::Corrupt {
                id: id.to_hex(),
                reason: "an index entry points at no record".into(),
            })
        })
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

fn decode_stored(id: &RecordId, bytes: Vec<u8>) -> Result<Record, StoreError> {
    Record::from_trusted_bytes(bytes).map_err(|e| StoreError::Corrupt {
        id: id.to_hex(),
        reason: e.to_string(),
    })
}
