//! The town's store: every verified record, by id, and the catalogue that listings read, in one
//! sled tree; the records' bytes in an append-only file beside it (`log`).
//!
//! Layout (one tree, five key spaces):
//! - `r` + id (32 bytes) -> where the signed record bytes (publications and acts) are in the
//!   log (a store made before the log holds the bytes themselves, and they are read as such);
//! - `c` + created_at (8 bytes, big-endian) + id -> a compact summary (kind, themes, author,
//!   folded town) of each publication. Keys sort by time, so a reverse scan lists newest first,
//!   and the filters of `list` (kind, theme, town, author) are answered from the summary without
//!   decoding records;
//! - `a` + created_at + id -> nothing: the acts (admissions, delegations, revocations,
//!   retractions), read at start to build the ledger;
//! - `v` + old id + new id -> nothing: one version superseding another;
//! - `f` + file hash + id -> nothing: a publication that attaches the file (format v2). The
//!   bytes are in the blob folder (`crate::blobs`), never here.
//!
//! The store is the gate: `insert_batch` asks the trust ledger (`cailloux_protocol::trust`)
//! about every record, whatever path it came by (publish, import, gossip, catch-up), and writes
//! only what it accepts. The ledger lives here, beside the records it is built from, and changes
//! only in the same critical section that writes them. It holds what it needs of every stored
//! record (author, time, kind, town, versions), indexed by author, so a late revocation judges
//! again only the records it can void; what is voided is derived at open (`Ledger::settle`),
//! never written, so the store shows after a restart what it showed before. The caller passes
//! its clock to `insert_batch`: records dated too far ahead of it wait (pending).
//!
//! Why one catalogue entry per record and not one index entry per filter value: sled costs about
//! 8 µs per key written, whatever its size; seven index keys per record made importing four
//! times slower than verifying signatures. A second key per record keeps the store's share of an
//! import below the signature check's.
//!
//! Invariants:
//! - Only verified records enter (`Record` values come from signing or from verification), and
//!   only those the ledger accepts: in a federation, those whose author chains to the federation
//!   key; revisions and retractions only by the record's author (or, in a federation, its town).
//! - A record and its catalogue entry are written in one atomic sled batch, so the catalogue
//!   never points at nothing and a stored record is never missing from listings.
//! - `insert_batch` returns only once the batch is flushed to disk: a caller may tell a person
//!   "stored" as soon as it returns (group commit: one flush per batch, not per record). Its
//!   two halves, `write_batch` (judged, written, readable) and `flush`, are
//!   there for the writer, which answers peers' records between them.
//! - Inserting a record that is already there changes nothing.
//!
//! The store is synchronous. The daemon drives it from blocking threads, never from the async
//! runtime's workers.

use cailloux_protocol::LinkRel;
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::{Changes, Denied, Held, Ledger, Mode};
use cailloux_protocol::vocab::fold;
use cailloux_protocol::{
    Attachment, BlobHash, IdPrefix, Kind, Publication, Record, RecordId, Theme,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

mod log;
use log::{Location, RecordLog};

/// Records read at most to find who attaches a file (`Store::attachments`): a bound on what
/// one request for a file costs, far above what honest records of one file number.
pub const MAX_ATTACHING: usize = 1024;

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
    #[error("cannot read or write the record file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
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
    /// Also list retracted records, and records voided by a revocation (kept for audit).
    pub include_retracted: bool,
    /// Also list versions that a newer one supersedes.
    pub all_versions: bool,
}

impl Filter {
    /// The ledger's one rule of visibility, with what this filter also asks for.
    fn shows(&self, ledger: &Ledger, id: &RecordId) -> bool {
        let v = ledger.visibility(id);
        (self.include_retracted || !(v.retracted || v.voided))
            && (self.all_versions || !v.superseded)
    }

    fn matches_summary(&self, s: &Summary) -> bool {
        self.kind.is_none_or(|k| s.kind == kind_byte(k))
            && self.theme.is_none_or(|t| s.themes & theme_bit(t) != 0)
            && self
                .town
                .as_deref()
                .is_none_or(|t| fold(t.trim()) == s.town.trim())
            && self.author.is_none_or(|a| s.author == a.0)
    }
}

/// One catalogue entry a scan examined (`Store::scan_oldest_first_after`).
#[derive(Debug)]
pub struct Scanned {
    /// Where it is: the record's creation time and id, the catalogue's order.
    pub at: (u64, RecordId),
    /// The record, when the scan's filter lets it through.
    pub record: Option<Record>,
}

impl Scanned {
    /// The record a scan kept, or its error; None for an entry it skipped.
    fn kept(scanned: Result<Scanned, StoreError>) -> Option<Result<Record, StoreError>> {
        match scanned {
            Ok(s) => s.record.map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

/// What became of one record handed to `insert_batch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now.
    New,
    /// Already here: nothing written.
    Duplicate,
    /// Not stored: the ledger refused it, or it waits for a record this node lacks.
    Denied(Denied),
}

impl Outcome {
    pub fn is_new(&self) -> bool {
        matches!(self, Outcome::New)
    }
}

/// What one `insert_batch` did.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// One per record, in order.
    pub outcomes: Vec<Outcome>,
    /// Publications that default listings showed, or new ones, that they no longer show
    /// (retracted, superseded, or voided by a revocation that arrived late).
    pub hidden: Vec<RecordId>,
    /// Publications held before that default listings show again: the version that hid them
    /// was retracted or voided, a late grant restored them.
    pub revealed: Vec<RecordId>,
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
    fn of(record: &Record, p: &Publication) -> Summary {
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
    time_key(b'c', record)
}

fn act_key(record: &Record) -> [u8; 41] {
    time_key(b'a', record)
}

fn version_key(old: &RecordId, new: &RecordId) -> [u8; 65] {
    let mut key = [b'v'; 65];
    key[1..33].copy_from_slice(&old.0);
    key[33..].copy_from_slice(&new.0);
    key
}

fn file_key(hash: &BlobHash, id: &RecordId) -> [u8; 65] {
    let mut key = [b'f'; 65];
    key[1..33].copy_from_slice(&hash.0);
    key[33..].copy_from_slice(&id.0);
    key
}

fn time_key(space: u8, record: &Record) -> [u8; 41] {
    let mut key = [space; 41];
    key[1..9].copy_from_slice(&record.created_at().to_be_bytes());
    key[9..].copy_from_slice(&record.id().0);
    key
}

/// A handle on the store; cheap to clone, safe to share between threads.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    log: Arc<RecordLog>,
    /// Serialises writers, so that "was it new?" is answered exactly.
    write: Arc<Mutex<()>>,
    /// The acts, versions and retractions of what is stored; changed only under `write`.
    ledger: Arc<RwLock<Ledger>>,
    mode: Mode,
}

impl Store {
    /// Opens (creating if needed) the store in the folder `path`, accepting records as `mode`
    /// says (open, or only a federation's members), with a page cache of `cache_mb` MiB
    /// (`store_cache_mb`; sled's own default, 1 GiB, is most of a small VM, and it fills as
    /// records are read or written: a new town's catch-up filled it).
    pub fn open(path: &Path, mode: Mode, cache_mb: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.max(1).saturating_mul(1024 * 1024))
            // Every write is flushed by its writer (`insert_batch`, the store's writer thread):
            // sled's own flusher, a thread per store waking every 500 ms, has nothing to add.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
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
        let log = RecordLog::open(path).map_err(|source| StoreError::Log {
            path: path.join(RecordLog::FILE),
            source,
        })?;
        let store = Store {
            db,
            tree,
            log: Arc::new(log),
            write: Arc::default(),
            ledger: Arc::new(RwLock::new(Ledger::new(mode))),
            mode,
        };
        let ledger = store.load_ledger(mode)?;
        *store.ledger.write().unwrap_or_else(|p| p.into_inner()) = ledger;
        Ok(store)
    }

    /// Rebuilds the ledger from what the store holds: the acts (decoded; they are few), each
    /// publication from its catalogue summary and version links (no publication is decoded),
    /// then judges everything again in time order (`Ledger::settle`): what is voided is derived,
    /// never stored, so a store opened again shows what it showed.
    fn load_ledger(&self, mode: Mode) -> Result<Ledger, StoreError> {
        let mut ledger = Ledger::new(mode);
        let mut versions: HashMap<RecordId, Vec<RecordId>> = HashMap::new();
        for key in self.tree.scan_prefix(b"v").keys() {
            let key = key?;
            let ids = (key.get(1..33), key.get(33..65));
            if let (Some(old), Some(new)) = ids
                && let (Ok(old), Ok(new)) = (old.try_into(), new.try_into())
            {
                versions
                    .entry(RecordId(new))
                    .or_default()
                    .push(RecordId(old));
            }
        }
        for entry in self.time_keys(b'a') {
            let (_, id) = entry?;
            if let Some(record) = self.get(&id)? {
                ledger.restore(id, Held::of(&record));
            }
        }
        for entry in self.tree.scan_prefix(b"c") {
            let (key, value) = entry?;
            let (time, id) = parse_time_key(&key)?;
            let corrupt = || StoreError::Corrupt {
                id: id.to_hex(),
                reason: "an unreadable catalogue entry".into(),
            };
            let summary = Summary::decode(&value).ok_or_else(corrupt)?;
            let kind = Kind::ALL
                .get(usize::from(summary.kind))
                .copied()
                .ok_or_else(corrupt)?;
            let held = Held::publication(
                AuthorKey(summary.author),
                time,
                kind,
                &summary.town,
                versions.remove(&id).unwrap_or_default(),
            );
            ledger.restore(id, held);
        }
        ledger.settle();
        Ok(ledger)
    }

    /// Open, or the federation this store accepts records for (fixed when it is opened).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The trust ledger: the roster, versions and retractions, as of the last write.
    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the records that the ledger accepts, with their catalogue entries, atomically,
    /// then flushes. Returns what became of each record. Durable on return. Records are checked
    /// in order, each seeing the ones accepted before it in the same batch (a delegation, then
    /// the delegate's records). `now` is this node's clock (ms since the Unix epoch): a record
    /// dated more than `trust::MAX_CLOCK_SKEW_MS` ahead of it is pending.
    pub fn insert_batch(&self, batch: &[Record], now: u64) -> Result<Written, StoreError> {
        let written = self.write_batch(batch, now)?;
        self.flush()?;
        Ok(written)
    }

    /// `insert_batch` without the flush: what the ledger accepts is written atomically and
    /// readable at once (`get`, listings), but durable only once `flush` returns. The
    /// store's writer uses it to let gossip forward a record while the flush is under way.
    pub fn write_batch(&self, batch: &[Record], now: u64) -> Result<Written, StoreError> {
        if batch.is_empty() {
            return Ok(Written::default());
        }
        let _writer = self
            .write
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ledger = self.ledger.write().unwrap_or_else(|p| p.into_inner());
        let mut accepted = Vec::new();
        let written = Self::judge(&mut ledger, batch, now, |record| accepted.push(record));
        // Readers need not wait for the write; writers do (they hold `write`).
        drop(ledger);
        // The bytes are durable before sled holds where they are (see `log`).
        let locations = match self.log.append(accepted.iter().map(|r| r.bytes())) {
            Ok(locations) => locations,
            Err(source) => {
                self.reload_ledger();
                return Err(StoreError::Log {
                    path: self.log.path().to_owned(),
                    source,
                });
            }
        };
        let mut writes = sled::Batch::default();
        for (record, at) in accepted.into_iter().zip(locations) {
            writes.insert(&record_key(&record.id())[..], &at.encode()[..]);
            match record.publication() {
                Some(p) => {
                    writes.insert(&catalogue_key(record)[..], Summary::of(record, p).encode());
                    for link in p.links.iter().filter(|l| l.rel == LinkRel::Supersedes) {
                        writes.insert(&version_key(&link.id, &record.id())[..], &[][..]);
                    }
                    for a in &p.attachments {
                        writes.insert(&file_key(&a.hash, &record.id())[..], &[][..]);
                    }
                }
                None => writes.insert(&act_key(record)[..], &[][..]),
            }
        }
        if let Err(e) = self.tree.apply_batch(writes) {
            self.reload_ledger();
            return Err(e.into());
        }
        Ok(written)
    }

    /// Flushes everything written to disk. On failure the ledger may have run ahead of the
    /// disk: it is rebuilt from what the store holds.
    pub fn flush(&self) -> Result<(), StoreError> {
        if let Err(e) = self.db.flush() {
            self.reload_ledger();
            return Err(e.into());
        }
        Ok(())
    }

    /// The ledger ran ahead of the store: rebuild it from what the store holds.
    fn reload_ledger(&self) {
        if let Ok(fresh) = self.load_ledger(self.mode) {
            *self.ledger.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
    }

    /// What `insert_batch` would do with `batch`, without writing anything: lets a publisher
    /// refuse a whole batch when one record of it would be refused. The ledger tries the batch
    /// and undoes it (`Ledger::trial`), so a check costs what the batch touches, not a copy of
    /// the ledger.
    pub fn check_batch(&self, batch: &[Record], now: u64) -> Result<Vec<Outcome>, StoreError> {
        let mut ledger = self.ledger.write().unwrap_or_else(|p| p.into_inner());
        Ok(ledger
            .trial(|ledger| Self::judge(ledger, batch, now, |_| {}))
            .outcomes)
    }

    /// Asks the ledger about each record in order, applying each accepted one to it (so that
    /// later records of the batch see it) and handing it to `accept`. The ledger holds every
    /// stored record, so it also answers "already here?".
    fn judge<'a>(
        ledger: &mut Ledger,
        batch: &'a [Record],
        now: u64,
        mut accept: impl FnMut(&'a Record),
    ) -> Written {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut changes = Changes::default();
        let mut fresh = HashSet::new();
        for record in batch {
            if ledger.holds(&record.id()) {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            if let Err(denied) = ledger.check(record, now) {
                outcomes.push(Outcome::Denied(denied));
                continue;
            }
            accept(record);
            changes.then(ledger.apply(record));
            if record.publication().is_some() {
                fresh.insert(record.id());
            }
            outcomes.push(Outcome::New);
        }
        // New records go to listeners anyway: what is revealed is what was there before; what
        // is hidden includes the new records that the rest of the batch hid at once.
        let revealed = changes
            .revealed
            .into_iter()
            .filter(|id| !fresh.contains(id))
            .collect();
        let mut hidden = changes.hidden;
        hidden.extend(
            batch
                .iter()
                .map(Record::id)
                .filter(|id| fresh.contains(id) && !ledger.shows(id)),
        );
        hidden.sort();
        hidden.dedup();
        Written {
            outcomes,
            hidden,
            revealed,
        }
    }

    pub fn contains(&self, id: &RecordId) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(record_key(id))?)
    }

    pub fn get(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        let Some(value) = self.tree.get(record_key(id))? else {
            return Ok(None);
        };
        let bytes = match Location::decode(&value) {
            Some(at) => self.log.read(at).map_err(|e| StoreError::Corrupt {
                id: id.to_hex(),
                reason: format!(
                    "its {} bytes at offset {} of {} cannot be read: {e}",
                    at.len,
                    at.offset,
                    self.log.path().display()
                ),
            })?,
            // A store made before the log: the bytes themselves.
            None => value.to_vec(),
        };
        decode_stored(id, bytes).map(Some)
    }

    /// The entries of held publications that attach the file `hash`, best first: a current
    /// record whose town the federation certified, then any current record, then the rest;
    /// among equals, the lowest id. A record is only its signer's word about a file, and any
    /// key can sign one: a record misstating a file's size, type or name is one candidate
    /// among others, never the one that decides. Each signer counts for one size (its best
    /// record's): many records of one key cannot crowd out the sizes of others. At most
    /// `MAX_ATTACHING` records are read (lowest id first); empty when no held record names
    /// the hash.
    pub fn attachments(&self, hash: &BlobHash) -> Result<Vec<(Attachment, RecordId)>, StoreError> {
        use crate::exchange::marks::{Status, marks};
        let prefix = [&b"f"[..], &hash.0].concat();
        let ledger = self.ledger();
        let mut ranked = Vec::new();
        for item in self.tree.scan_prefix(prefix).take(MAX_ATTACHING) {
            let (key, _) = item?;
            let Some(id) = key.get(33..).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                continue;
            };
            let Some(record) = self.get(&RecordId(id))? else {
                continue;
            };
            let Some(a) = record
                .publication()
                .and_then(|p| p.attachments.iter().find(|a| a.hash == *hash))
            else {
                continue;
            };
            let rank = match marks(&ledger, &record) {
                m if m.status == Status::Current && m.certified => 0,
                m if m.status == Status::Current => 1,
                _ => 2,
            };
            ranked.push((rank, a.clone(), record.id(), record.author()));
        }
        ranked.sort_by_key(|(rank, _, id, _)| (*rank, *id));
        let mut sizes: HashMap<AuthorKey, u64> = HashMap::new();
        Ok(ranked
            .into_iter()
            .filter(|(_, a, _, author)| *sizes.entry(*author).or_insert(a.size) == a.size)
            .map(|(_, a, id, _)| (a, id))
            .collect())
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
        let ledger = self.ledger.clone();
        self.scan_catalogue(true, move |s, id| {
            filter.matches_summary(s)
                && filter.shows(&ledger.read().unwrap_or_else(|p| p.into_inner()), id)
        })
    }

    /// The publications `filter` lets through, oldest first: the order of exports.
    pub fn iter_oldest_first(
        &self,
        filter: &Filter,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.iter_oldest_first_after(filter, None)
    }

    /// `iter_oldest_first`, starting after the record `after` (created_at, id) that an earlier
    /// pass stopped at: an export made in steps resumes where the last step ended.
    pub fn iter_oldest_first_after(
        &self,
        filter: &Filter,
        after: Option<(u64, RecordId)>,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.scan_oldest_first_after(filter, after)
            .filter_map(Scanned::kept)
    }

    /// Every catalogue entry after `after`, oldest first, each with its record when `filter`
    /// lets it through: a caller that must bound its work per call (an export's step) counts
    /// the entries it examined, and resumes after the last one, whether it was kept or not.
    /// Skipped entries cost a catalogue read, not a record's.
    pub fn scan_oldest_first_after(
        &self,
        filter: &Filter,
        after: Option<(u64, RecordId)>,
    ) -> impl Iterator<Item = Result<Scanned, StoreError>> + '_ {
        let filter = filter.clone();
        let ledger = self.ledger.clone();
        let start = match after {
            Some((created_at, id)) => {
                let mut key = [b'c'; 41];
                key[1..9].copy_from_slice(&created_at.to_be_bytes());
                key[9..].copy_from_slice(&id.0);
                std::ops::Bound::Excluded(key.to_vec())
            }
            None => std::ops::Bound::Included(b"c".to_vec()),
        };
        self.catalogue_entries(false, start, move |s, id| {
            filter.matches_summary(s)
                && filter.shows(&ledger.read().unwrap_or_else(|p| p.into_inner()), id)
        })
    }

    fn scan_catalogue(
        &self,
        newest_first: bool,
        keep: impl Fn(&Summary, &RecordId) -> bool + 'static,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.scan_catalogue_from(newest_first, std::ops::Bound::Included(b"c".to_vec()), keep)
    }

    /// The catalogue from `start` on (to its end), or back from its end to `start`.
    fn scan_catalogue_from(
        &self,
        newest_first: bool,
        start: std::ops::Bound<Vec<u8>>,
        keep: impl Fn(&Summary, &RecordId) -> bool + 'static,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.catalogue_entries(newest_first, start, keep)
            .filter_map(Scanned::kept)
    }

    /// Every catalogue entry from `start` on, each with its record when `keep` keeps it.
    fn catalogue_entries(
        &self,
        newest_first: bool,
        start: std::ops::Bound<Vec<u8>>,
        keep: impl Fn(&Summary, &RecordId) -> bool + 'static,
    ) -> impl Iterator<Item = Result<Scanned, StoreError>> + '_ {
        let entries = self
            .tree
            .range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(b"d".to_vec())));
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if newest_first {
                Box::new(entries.rev())
            } else {
                Box::new(entries)
            };
        entries.map(move |entry| {
            let (key, value) = entry?;
            let corrupt = |reason: &str| StoreError::Corrupt {
                id: cailloux_protocol::id::encode_hex(&key[key.len().saturating_sub(32)..]),
                reason: reason.into(),
            };
            let Some(summary) = Summary::decode(&value) else {
                return Err(corrupt("an unreadable catalogue entry"));
            };
            let (Ok(id), Some(created_at)) = (
                key.get(9..).unwrap_or_default().try_into().map(RecordId),
                key.get(1..9)
                    .and_then(|t| t.try_into().ok())
                    .map(u64::from_be_bytes),
            ) else {
                return Err(corrupt(
                    "a catalogue key too short to hold a time and an id",
                ));
            };
            let record = if keep(&summary, &id) {
                Some(
                    self.get(&id)?
                        .ok_or_else(|| corrupt("a catalogue entry points at no record"))?,
                )
            } else {
                None
            };
            Ok(Scanned {
                at: (created_at, id),
                record,
            })
        })
    }

    /// (created_at, id) of every publication, oldest first, from the catalogue keys alone.
    pub fn catalogue(&self) -> impl Iterator<Item = Result<(u64, RecordId), StoreError>> + '_ {
        self.time_keys(b'c')
    }

    /// (created_at, id) of every record, publications and acts: what reconciliation compares.
    pub fn all_records(&self) -> impl Iterator<Item = Result<(u64, RecordId), StoreError>> + '_ {
        self.time_keys(b'c').chain(self.time_keys(b'a'))
    }

    fn time_keys(
        &self,
        space: u8,
    ) -> impl Iterator<Item = Result<(u64, RecordId), StoreError>> + '_ {
        self.tree
            .scan_prefix([space])
            .keys()
            .map(|key| parse_time_key(&key?))
    }

    /// How many publications the store holds.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix(b"c").keys().count()
    }

    /// How many publications default listings show (neither retracted, voided nor superseded).
    pub fn visible_len(&self) -> usize {
        self.ledger().shown_len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.scan_prefix(b"c").next().is_none()
    }
}

/// (created_at, id) from a `c` or `a` key.
fn parse_time_key(key: &[u8]) -> Result<(u64, RecordId), StoreError> {
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
}

fn decode_stored(id: &RecordId, bytes: Vec<u8>) -> Result<Record, StoreError> {
    let record = Record::from_trusted_bytes(bytes).map_err(|e| StoreError::Corrupt {
        id: id.to_hex(),
        reason: e.to_string(),
    })?;
    if record.id() != *id {
        return Err(StoreError::Corrupt {
            id: id.to_hex(),
            reason: format!("its stored bytes are those of record {}", record.id()),
        });
    }
    Ok(record)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cailloux_protocol::trust::Act;
    use cailloux_protocol::{Outcome as Result_, Publication, SigningKey};

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
            outcome: (kind == Kind::Experiment).then_some(Result_::Failed),
            need: None,
            method: None,
            indicators: Vec::new(),
            attachments: Vec::new(),
            body: String::new(),
        };
        Record::sign(&SigningKey::from_bytes(&[i as u8 % 3; 32]), 1_000 + i, p)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_revocation_that_arrives_late_voids_what_came_before_it_and_stays_so_on_reopening() {
        use cailloux_protocol::trust::{Admission, Delegation, Revocation};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (fed, town, person) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[0; 32]),
        );
        let public = |k: &SigningKey| AuthorKey(k.verifying_key().to_bytes());
        let mode = Mode::Federation(public(&fed));
        let act = |by: &SigningKey, at: u64, act: Act| {
            Record::sign_act(by, at, act).unwrap_or_else(|e| panic!("{e}"))
        };
        let admission = act(
            &fed,
            10,
            Act::Admit(Admission {
                key: public(&town),
                town: "Loos-en-Gohelle".into(),
                country: "FR".into(),
                code: None,
                until: None,
            }),
        );
        let delegation = act(
            &town,
            20,
            Act::Delegate(Delegation {
                key: public(&person),
                name: "Jeanne".into(),
                role: None,
                kinds: Vec::new(),
                until: None,
            }),
        );
        // Signed by key [0; 32] at 1_000 + i: the delegate's.
        let before = record(150, Kind::Practice, vec![Theme::Food], "Loos-en-Gohelle");
        let after = record(240, Kind::Practice, vec![Theme::Food], "Loos-en-Gohelle");
        let revocation = act(
            &town,
            1_200,
            Act::Revoke(Revocation {
                key: public(&person),
                reason: "départ".into(),
            }),
        );
        {
            let store = Store::open(
                &dir.path().join("s"),
                mode,
                crate::daemon::DEFAULT_STORE_CACHE_MB,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let w = store
                .insert_batch(&[admission, delegation, before.clone(), after.clone()], NOW)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(w.outcomes.iter().all(Outcome::is_new), "{:?}", w.outcomes);
            let w = store
                .insert_batch(&[revocation], NOW)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(w.hidden, vec![after.id()]);
            let listed: Vec<RecordId> = store
                .list(&Filter::default())
                .filter_map(Result::ok)
                .map(|r| r.id())
                .collect();
            assert_eq!(listed, vec![before.id()]);
        }
        let store = world::reopen(&dir.path().join("s"), mode);
        assert!(store.ledger().is_voided(&after.id()));
        assert!(!store.ledger().is_voided(&before.id()));
        let audit = Filter {
            include_retracted: true,
            ..Filter::default()
        };
        assert_eq!(store.list(&audit).count(), 2);
    }

    fn open_at(path: &Path) -> Store {
        Store::open(path, Mode::Open, crate::daemon::DEFAULT_STORE_CACHE_MB)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Records live in the log, sled only says where; a store made before the log (the bytes in
    /// sled) reads as it did, and both kinds read back after reopening.
    #[test]
    fn records_read_back_from_the_log_and_from_a_store_made_before_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s");
        let (old, new) = (
            record(1, Kind::Practice, vec![Theme::Energy], "Vallon"),
            record(2, Kind::Practice, vec![Theme::Food], "Vallon"),
        );
        let store = open_at(&path);
        store
            .insert_batch(&[old.clone(), new.clone()], 10_000)
            .unwrap_or_else(|e| panic!("{e}"));
        let value = |store: &Store, r: &Record| {
            store
                .tree
                .get(record_key(&r.id()))
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no entry"))
        };
        assert_eq!(
            value(&store, &new).len(),
            Location::ENCODED,
            "sled holds a location"
        );
        // As a store made before the log held it.
        store
            .tree
            .insert(record_key(&old.id()), old.bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        store.flush().unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let store = world::reopen(&path, Mode::Open);
        for r in [&old, &new] {
            let got = store.get(&r.id()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.as_ref().map(Record::bytes), Some(r.bytes()));
        }
        assert_eq!(store.list(&Filter::default()).count(), 2);
    }

    /// Bytes in the log that are not the record's any more are a corrupt record, named, never
    /// another record served in its place.
    #[test]
    fn a_damaged_log_is_reported_as_a_corrupt_record() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s");
        let r = record(1, Kind::Practice, vec![Theme::Energy], "Vallon");
        let store = open_at(&path);
        store
            .insert_batch(std::slice::from_ref(&r), 10_000)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let file = path.join(RecordLog::FILE);
        let mut bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes[..]).unwrap_or_else(|e| panic!("{e}"));
        let store = world::reopen(&path, Mode::Open);
        match store.get(&r.id()) {
            Err(StoreError::Corrupt { id, .. }) => assert_eq!(id, r.id().to_hex()),
            other => panic!("expected a corrupt record, got {other:?}"),
        }
        // Cut short: the same, with what is missing.
        std::fs::write(&file, &bytes[..10]).unwrap_or_else(|e| panic!("{e}"));
        let err = store.get(&r.id()).map(|_| ());
        assert!(
            matches!(&err, Err(StoreError::Corrupt { reason, .. }) if reason.contains("cannot be read")),
            "{err:?}"
        );
    }

    #[test]
    fn inserts_once_lists_newest_first_and_filters() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(
            &dir.path().join("s"),
            Mode::Open,
            crate::daemon::DEFAULT_STORE_CACHE_MB,
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
        let new = |w: Result<Written, StoreError>| -> Vec<bool> {
            w.map(|w| w.outcomes.iter().map(Outcome::is_new).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            new(store.insert_batch(&records, NOW)),
            vec![true, true, true]
        );
        // Twice, and twice within one batch: nothing new.
        assert_eq!(
            new(store.insert_batch(&[records[0].clone(), records[0].clone()], NOW)),
            vec![false, false]
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
            .iter_oldest_first(&Filter::default())
            .map(|r| r.map(|r| r.created_at() - 1_000).unwrap_or(0))
            .collect();
        assert_eq!(oldest, vec![1, 2, 3]);
        let after_first: Vec<u64> = store
            .iter_oldest_first_after(
                &Filter::default(),
                Some((records[0].created_at(), records[0].id())),
            )
            .map(|r| r.map(|r| r.created_at() - 1_000).unwrap_or(0))
            .collect();
        assert_eq!(after_first, vec![2, 3]);
        let prefix =
            IdPrefix::parse(&records[2].id().to_hex()[..9]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.resolve(&prefix).ok(), Some(records[2].id()));
    }

    /// The clock these tests' stores run by: every record is dated well before it.
    const NOW: u64 = 1_000_000_000;

    /// A small federation for the ledger's cases: the federation key 1, towns 2 and 3, a
    /// practitioner 4.
    /// Records of a small federation (key 1) and its towns, for tests here and elsewhere in
    /// the crate.
    pub(crate) mod world {
        use super::*;
        use cailloux_protocol::trust::{Admission, Delegation, Retraction, Revocation};
        use cailloux_protocol::{Link, Outcome as Result_};

        pub fn key(n: u8) -> SigningKey {
            SigningKey::from_bytes(&[n; 32])
        }

        pub fn public(n: u8) -> AuthorKey {
            AuthorKey(key(n).verifying_key().to_bytes())
        }

        pub fn mode() -> Mode {
            Mode::Federation(public(1))
        }

        pub fn act(by: u8, at: u64, act: Act) -> Record {
            Record::sign_act(&key(by), at, act).unwrap_or_else(|e| panic!("{e}"))
        }

        pub fn admit(town: u8, name: &str, at: u64) -> Record {
            act(
                1,
                at,
                Act::Admit(Admission {
                    key: public(town),
                    town: name.into(),
                    country: "FR".into(),
                    code: None,
                    until: None,
                }),
            )
        }

        pub fn delegate(by: u8, person: u8, at: u64) -> Record {
            act(
                by,
                at,
                Act::Delegate(Delegation {
                    key: public(person),
                    name: format!("Personne {person}"),
                    role: None,
                    kinds: Vec::new(),
                    until: None,
                }),
            )
        }

        pub fn revoke(by: u8, revoked: u8, at: u64) -> Record {
            act(
                by,
                at,
                Act::Revoke(Revocation {
                    key: public(revoked),
                    reason: "départ".into(),
                }),
            )
        }

        pub fn retract(by: u8, target: &Record, at: u64) -> Record {
            act(
                by,
                at,
                Act::Retract(Retraction {
                    id: target.id(),
                    reason: "erreur".into(),
                }),
            )
        }

        /// A practice filed under `town`, superseding `old` if given.
        pub fn publish(by: u8, at: u64, town: &str, old: Option<&Record>) -> Record {
            let p = Publication {
                kind: Kind::Practice,
                title: format!("Essai {at}"),
                summary: "Résumé.".into(),
                language: "fr".into(),
                town: town.into(),
                themes: vec![Theme::Food],
                tags: Vec::new(),
                sdgs: Vec::new(),
                period: None,
                participation: None,
                licence: "etalab-2.0".into(),
                links: old
                    .map(|o| Link {
                        rel: LinkRel::Supersedes,
                        id: o.id(),
                    })
                    .into_iter()
                    .collect(),
                outcome: None::<Result_>,
                need: None,
                method: None,
                indicators: Vec::new(),
                attachments: Vec::new(),
                body: String::new(),
            };
            Record::sign(&key(by), at, p).unwrap_or_else(|e| panic!("{e}"))
        }

        /// Opens a store (again). Sled lets go of its lock from a background thread shortly
        /// after the last handle is dropped: a reopening waits for it a little.
        pub fn open(dir: &tempfile::TempDir, name: &str) -> Store {
            reopen(&dir.path().join(name), mode())
        }

        pub fn reopen(path: &Path, mode: Mode) -> Store {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match Store::open(path, mode, crate::daemon::DEFAULT_STORE_CACHE_MB) {
                    Ok(store) => return store,
                    Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }

        pub fn insert(store: &Store, records: &[Record]) -> Vec<Outcome> {
            store
                .insert_batch(records, NOW)
                .unwrap_or_else(|e| panic!("{e}"))
                .outcomes
        }

        /// What a default listing shows, sorted.
        pub fn listed(store: &Store) -> Vec<RecordId> {
            let mut ids: Vec<RecordId> = store
                .list(&Filter::default())
                .map(|r| r.map(|r| r.id()).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            ids.sort();
            ids
        }

        /// Each batch in turn, in every store; then the listing of each, and of each reopened.
        pub fn in_orders(orders: &[&[&[Record]]]) -> Vec<Vec<RecordId>> {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let mut out = Vec::new();
            for (n, batches) in orders.iter().enumerate() {
                let name = format!("s{n}");
                {
                    let store = open(&dir, &name);
                    for batch in batches.iter() {
                        insert(&store, batch);
                    }
                    out.push(listed(&store));
                }
                out.push(listed(&open(&dir, &name)));
            }
            out
        }
    }

    #[test]
    fn a_retraction_signed_after_its_signers_revocation_loses_its_effect_when_it_arrives() {
        use world::*;
        let (admission, delegation) = (admit(2, "Vallon", 10), delegate(2, 4, 20));
        let record = publish(4, 30, "Vallon", None);
        // The federation revokes town 2 at 100; town 2's retraction is dated 200.
        let (revocation, retraction) = (revoke(1, 2, 100), retract(2, &record, 200));
        let first = [admission, delegation, record.clone()];
        let listings = in_orders(&[
            &[
                &first,
                std::slice::from_ref(&retraction),
                std::slice::from_ref(&revocation),
            ],
            &[
                &first,
                std::slice::from_ref(&revocation),
                std::slice::from_ref(&retraction),
            ],
        ]);
        for listing in listings {
            assert_eq!(listing, vec![record.id()]);
        }
    }

    #[test]
    fn a_revision_of_a_record_that_is_later_voided_is_voided_too() {
        use world::*;
        let (admission, delegation) = (admit(2, "Vallon", 10), delegate(2, 4, 20));
        let kept = publish(2, 50, "Vallon", None);
        // Town 2 revokes its delegate at 100; the delegate's record of 150 arrived first, and
        // the town revised it.
        let revocation = revoke(2, 4, 100);
        let late = publish(4, 150, "Vallon", None);
        let revision = publish(2, 160, "Vallon", Some(&late));
        let first = [admission, delegation, kept.clone()];
        let listings = in_orders(&[
            &[
                &first,
                &[late.clone(), revision.clone()],
                std::slice::from_ref(&revocation),
            ],
            &[&first, std::slice::from_ref(&revocation), &[late, revision]],
        ]);
        for listing in listings {
            assert_eq!(listing, vec![kept.id()]);
        }
    }

    #[test]
    fn a_voided_version_hides_nothing() {
        use world::*;
        let (admission, delegation) = (admit(2, "Vallon", 10), delegate(2, 4, 20));
        let original = publish(4, 50, "Vallon", None);
        let revocation = revoke(2, 4, 100);
        // The delegate's new version, dated after its revocation, arrives before it.
        let version = publish(4, 150, "Vallon", Some(&original));
        let first = [admission, delegation, original.clone()];
        let listings = in_orders(&[
            &[
                &first,
                std::slice::from_ref(&version),
                std::slice::from_ref(&revocation),
            ],
            &[
                &first,
                std::slice::from_ref(&revocation),
                std::slice::from_ref(&version),
            ],
        ]);
        for listing in listings {
            assert_eq!(listing, vec![original.id()]);
        }
    }

    #[test]
    fn a_late_grant_restores_what_a_revocation_had_voided() {
        use world::*;
        // Town key 2 for Vallon is revoked at 100 and replaced by key 3, which delegates the
        // practitioner again at 120: the practitioner's record of 125 stands through key 3.
        let old_town = [admit(2, "Vallon", 10), delegate(2, 4, 20)];
        let revocation = revoke(1, 2, 100);
        let new_town = [admit(3, "Vallon", 110), delegate(3, 4, 120)];
        let record = publish(4, 125, "Vallon", None);
        let listings = in_orders(&[
            &[
                &old_town,
                std::slice::from_ref(&revocation),
                &new_town,
                std::slice::from_ref(&record),
            ],
            &[
                &old_town,
                std::slice::from_ref(&record),
                std::slice::from_ref(&revocation),
                &new_town,
            ],
        ]);
        for listing in listings {
            assert_eq!(listing, vec![record.id()]);
        }
    }

    #[test]
    fn a_revocation_that_narrows_who_answers_for_a_record_voids_the_revision_it_no_longer_allows() {
        use world::*;
        // Practitioner 4 is vouched for by key 2 and by key 3, both for Vallon: either town key
        // may revise its record. Key 2 revokes it at 40, before the record: key 2's revision
        // of it no longer stands, though the record does (through key 3).
        let roster = [
            admit(2, "Vallon", 10),
            admit(3, "Vallon", 11),
            delegate(2, 4, 20),
            delegate(3, 4, 21),
        ];
        let record = publish(4, 50, "Vallon", None);
        let revision = publish(2, 60, "Vallon", Some(&record));
        let revocation = revoke(2, 4, 40);
        let listings = in_orders(&[
            &[
                &roster,
                std::slice::from_ref(&revocation),
                &[record.clone(), revision.clone()],
            ],
            &[
                &roster,
                &[record.clone(), revision],
                std::slice::from_ref(&revocation),
            ],
        ]);
        for listing in listings {
            assert_eq!(listing, vec![record.id()]);
        }
    }

    #[test]
    fn a_revocation_examines_only_the_records_it_can_void() {
        use world::*;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(&dir, "s");
        insert(&store, &[admit(2, "Vallon", 10), delegate(2, 4, 20)]);
        let many: Vec<Record> = (0..2000)
            .map(|i| publish(2, 1_000 + i, "Vallon", None))
            .collect();
        insert(&store, &many);
        let mine: Vec<Record> = (0..3)
            .map(|i| publish(4, 5_000 + i, "Vallon", None))
            .collect();
        insert(&store, &mine);
        // The federation revokes a key that wrote nothing: no record is looked at.
        let before = store.ledger().examined();
        let outcomes = insert(&store, &[revoke(1, 9, 500)]);
        assert!(outcomes[0].is_new(), "{outcomes:?}");
        assert_eq!(store.ledger().examined() - before, 0);
        // The town revokes its practitioner: only the practitioner's three records are.
        let before = store.ledger().examined();
        insert(&store, &[revoke(2, 4, 600)]);
        assert_eq!(store.ledger().examined() - before, 3);
        assert_eq!(store.visible_len(), 2000);
        // The federation revokes the town after its last record: the records of the
        // practitioner it vouched for, dated after that, are looked at (their chain goes
        // through the town); none of the town's own.
        let before = store.ledger().examined();
        insert(&store, &[revoke(1, 2, 5_001)]);
        assert_eq!(store.ledger().examined() - before, 2);
        assert_eq!(store.visible_len(), 2000);
    }

    /// Records that name a town's file by its hash and misstate its size: a hundred from one
    /// member of another town (all sorting before the town's), one each from four more. Each
    /// signer counts for one size, so the town's size is among the first few tried, however
    /// many records one key signs.
    #[test]
    fn each_signer_of_records_naming_a_file_counts_for_one_size() {
        use cailloux_protocol::{Attachment, BlobHash, MediaType};
        use world::*;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(&dir, "s");
        let hash = BlobHash([7; 32]);
        let naming = |by: u8, at: u64, town: &str, size: u64| {
            let mut p = publish(by, at, town, None)
                .publication()
                .cloned()
                .unwrap_or_else(|| panic!("a publication"));
            p.attachments = vec![Attachment {
                name: "rapport.pdf".into(),
                title: "Le rapport".into(),
                media_type: MediaType::Pdf,
                size,
                hash,
            }];
            Record::sign(&key(by), at, p).unwrap_or_else(|e| panic!("{e}"))
        };
        let mut members = vec![admit(2, "Vallon", 10), admit(3, "Autre", 10)];
        members.extend((5..9).map(|k| delegate(3, k, 20)));
        insert(&store, &members);
        let town = naming(2, 50, "Vallon", 1_000);
        let forged: Vec<Record> = (0..)
            .map(|n| naming(3, 100 + n, "Autre", 2_000 + n))
            .filter(|r| r.id() < town.id())
            .take(100)
            .collect();
        let others: Vec<Record> = (5..9)
            .map(|k| naming(k, 60, "Autre", 3_000 + u64::from(k)))
            .collect();
        for batch in [&forged[..], &others[..], std::slice::from_ref(&town)] {
            for outcome in insert(&store, batch) {
                assert!(outcome.is_new(), "{outcome:?}");
            }
        }
        let found = store.attachments(&hash).unwrap_or_else(|e| panic!("{e}"));
        let mut sizes: Vec<u64> = Vec::new();
        for (a, _) in &found {
            if !sizes.contains(&a.size) {
                sizes.push(a.size);
            }
        }
        let of_key_3 = sizes.iter().filter(|s| (2_000..3_000).contains(*s)).count();
        assert_eq!(of_key_3, 1, "{sizes:?}");
        assert_eq!(sizes.len(), 6, "one size per signer: {sizes:?}");
        assert!(found.iter().any(|(_, id)| *id == town.id()));
    }
}
