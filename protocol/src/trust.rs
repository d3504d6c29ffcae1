//! Who may write, and what becomes of what was written: the acts of a federation and the
//! ledger that every node keeps of them.
//!
//! A signature proves which key wrote a record, not that the key belongs to a town. In a
//! federation, whoever coordinates the network holds the *federation key*. It signs an
//! admission for each town's key; a town's key signs delegations for its practitioners' own
//! keys; either revokes what it granted. A publication is accepted only when its author chains
//! to the federation key, valid at the record's creation time and not revoked by then. Acts are
//! records like publications (signed, named by their hash, spread by gossip and catch-up), so
//! the roster reaches every node the way the corpus does.
//!
//! The same ledger also decides versions and retractions: a revision (`supersedes`) or a
//! retraction is accepted only from the record's author or, in a federation, from the town key
//! that vouched for it under the town it is filed in; a delegate revises only records of the
//! kinds it may publish, and a version is always newer than the record it replaces. In open
//! mode a delegation is only its issuer's claim (the delegate never consented), so there only
//! the author may.
//!
//! `Ledger::check` is the one gate: the node's store asks it about every record before writing,
//! whichever path the record came by. A record whose check needs a record this node does not
//! hold yet (the target of a retraction, say) is `Pending`, not refused: catch-up brings the
//! missing record and the next round brings this one again. So is a record dated more than
//! `MAX_CLOCK_SKEW_MS` ahead of the node's clock, which the caller passes in: this crate reads
//! no clock.
//!
//! **Order independence.** Records reach nodes in any order, and what a node shows must not
//! depend on it. Standing at a time depends only on acts dated at or before it, so the ledger
//! keeps what it would hold had every record been replayed in creation-time order: whenever a
//! record arrives that changes someone's standing (a revocation that arrives late, a
//! delegation that arrives late), the records it affects are judged again, with the same
//! `judge` that `check` uses, and marked voided or valid accordingly. A voided record has no
//! effect: a voided act grants, revokes and retracts nothing, and what depends on a voided
//! record (a version of it, a retraction of it) is voided too, as it would have stayed pending
//! had the record been refused. Records are judged again in (creation time, class, id) order,
//! the class putting a millisecond's revocations first, then admissions, delegations,
//! publications and retractions, so that each is judged after what it depends on. A revocation
//! covers what is dated at or after it, except another revocation of the same millisecond: a
//! revocation is judged by the roster as it stood just before it, so that no two acts ever
//! depend on each other.
//!
//! **What a revocation costs.** Every record is indexed by its author, and every delegation by
//! its issuer, so a revocation of key K judges again only the records by K, and by the keys
//! whose chain goes through K, dated at or after it; a revocation from someone with no say over
//! K (another town) judges nothing.
//!
//! **Visibility** is derived, never latched: a publication is shown by default when it is not
//! retracted (by a valid retraction), not voided, and no *live* (valid, not retracted) version
//! descends from it through `supersedes`. `Ledger::visibility` is that one rule; listings,
//! counts, the search index and the versions of a record all ask it.

use crate::id::RecordId;
use crate::publication::{Violation, text_rule};
use crate::record::{AuthorKey, Record};
use crate::time::rfc3339_millis;
use crate::vocab::{Kind, LinkRel, fold};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub const MAX_NAME_CHARS: usize = 120;
pub const MAX_COUNTRY_CHARS: usize = 60;
pub const MAX_CODE_CHARS: usize = 32;
pub const MAX_REASON_CHARS: usize = 1000;

/// How far ahead of a node's clock a record may be dated: 10 minutes.
///
/// Creation times are stated by the signer, and listings show the newest first, so a record
/// dated next year would stay on top of every listing for a year. A machine whose clock is set
/// by NTP is within a second of the truth; one that is not (a practitioner's laptop) drifts by
/// seconds, or minutes after months. Ten minutes lets such a clock through while keeping any
/// record from sitting above honest ones for longer than that. A record dated further ahead is
/// `Pending`, not refused: an honest clock a little fast heals by itself, since catch-up offers
/// the record again and the node takes it once its own clock is within the skew.
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;
/// What a record can say besides a publication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// The federation key names its federation (signed by the federation key).
    Found(Founding),
    /// The federation admits a town's key (signed by the federation key).
    Admit(Admission),
    /// A town vouches for a practitioner's personal key (signed by the town's key).
    Delegate(Delegation),
    /// The issuer withdraws what it granted to a key, from the revocation's creation time on.
    Revoke(Revocation),
    /// A publication's author, or its town, withdraws it.
    Retract(Retraction),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Founding {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub key: AuthorKey,
    pub town: String,
    pub country: String,
    /// An official code, such as the INSEE code of a French commune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Valid from the act's creation time until this time (ms), or without end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    pub key: AuthorKey,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The kinds of publication the delegate may publish; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub key: AuthorKey,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retraction {
    pub id: RecordId,
    pub reason: String,
}

impl Act {
    /// The act's name as the CLI and the JSON views write it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Found(_) => "found",
            Act::Admit(_) => "admit",
            Act::Delegate(_) => "delegate",
            Act::Revoke(_) => "revoke",
            Act::Retract(_) => "retract",
        }
    }

    /// Every rule this act breaks; `author` is the key that signs it.
    pub fn violations(&self, author: &AuthorKey) -> Vec<Violation> {
        let mut v = Vec::new();
        let not_self = |v: &mut Vec<Violation>, key: &AuthorKey| {
            if key == author {
                v.push(Violation::new("key", "is the signing key itself"));
            }
        };
        match self {
            Act::Found(f) => text_rule(&mut v, "name", &f.name, MAX_NAME_CHARS),
            Act::Admit(a) => {
                not_self(&mut v, &a.key);
                text_rule(&mut v, "town", &a.town, MAX_NAME_CHARS);
                text_rule(&mut v, "country", &a.country, MAX_COUNTRY_CHARS);
                if let Some(code) = &a.code {
                    text_rule(&mut v, "code", code, MAX_CODE_CHARS);
                }
            }
            Act::Delegate(d) => {
                not_self(&mut v, &d.key);
                text_rule(&mut v, "name", &d.name, MAX_NAME_CHARS);
                if let Some(role) = &d.role {
                    text_rule(&mut v, "role", role, MAX_NAME_CHARS);
                }
                for (i, k) in d.kinds.iter().enumerate() {
                    if d.kinds[..i].contains(k) {
                        v.push(Violation::new(
                            format!("kinds[{i}]"),
                            format!("`{k}` is listed twice"),
                        ));
                    }
                }
            }
            Act::Revoke(r) => text_rule(&mut v, "reason", &r.reason, MAX_REASON_CHARS),
            Act::Retract(r) => text_rule(&mut v, "reason", &r.reason, MAX_REASON_CHARS),
        }
        v
    }
}

/// Whether this node belongs to a federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Any valid signature is accepted: for trials. A record's town is only what it says.
    Open,
    /// Only authors that chain to this federation key are accepted.
    Federation(AuthorKey),
}

/// What the ledger keeps of each record it holds: enough to judge it again when the acts it
/// depends on change, without reading the record back. (A store rebuilds it at start from the
/// acts and from its catalogue's summaries.)
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub author: AuthorKey,
    pub created_at: u64,
    pub what: What,
}

/// What a held record is.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    Publication {
        kind: Kind,
        /// The town it is filed under, folded (lower case, no accents).
        town: Arc<str>,
        /// The versions it replaces.
        supersedes: Box<[RecordId]>,
    },
    Act(Act),
    /// Neither a publication nor an act (only a damaged store holds one): never valid.
    Empty,
}

impl Held {
    pub fn of(record: &Record) -> Held {
        let what = match (record.publication(), record.act()) {
            (Some(p), _) => What::Publication {
                kind: p.kind,
                town: Arc::from(fold(&p.town)),
                supersedes: p
                    .links
                    .iter()
                    .filter(|l| l.rel == LinkRel::Supersedes)
                    .map(|l| l.id)
                    .collect(),
            },
            (None, Some(act)) => What::Act(act.clone()),
            (None, None) => What::Empty,
        };
        Held {
            author: record.author(),
            created_at: record.created_at(),
            what,
        }
    }

    /// A publication as a store's catalogue summarises it (`town` already folded).
    pub fn publication(
        author: AuthorKey,
        created_at: u64,
        kind: Kind,
        town: &str,
        supersedes: Vec<RecordId>,
    ) -> Held {
        Held {
            author,
            created_at,
            what: What::Publication {
                kind,
                town: Arc::from(town),
                supersedes: supersedes.into_boxed_slice(),
            },
        }
    }

    fn is_publication(&self) -> bool {
        matches!(self.what, What::Publication { .. })
    }

    /// Within a millisecond, what a record may depend on comes first: revocations (which see
    /// only earlier ones), admissions, delegations, publications, then retractions.
    fn class(&self) -> u8 {
        match &self.what {
            What::Act(Act::Revoke(_)) => 0,
            What::Act(Act::Found(_) | Act::Admit(_)) => 1,
            What::Act(Act::Delegate(_)) => 2,
            What::Publication { .. } | What::Empty => 3,
            What::Act(Act::Retract(_)) => 4,
        }
    }
}

/// The order records are judged in: (creation time, class, id).
type Key = (u64, u8, RecordId);

/// Why a record is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// For good: whoever sends it again gets the same answer (until the roster changes).
    #[error("{message}")]
    Refused {
        /// A short label for metrics: `not_member`, `wrong_town`, `kind_not_allowed`,
        /// `not_author`, `not_newer`, `voided`, `not_allowed`.
        reason: &'static str,
        message: String,
    },
    /// It depends on a record this node does not hold yet, or it is dated ahead of this node's
    /// clock: catch-up brings it again later.
    #[error("{0}")]
    Pending(String),
}

fn refused(reason: &'static str, message: String) -> Denied {
    Denied::Refused { reason, message }
}

/// An author's place in the federation at a given time.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// The key that answers for the author: its town's key, or its own.
    pub town_key: AuthorKey,
    /// The town the federation certified (federation mode only).
    pub town: Option<String>,
    /// Set when the author is a practitioner vouched for by `town_key`.
    pub delegate: Option<Delegation>,
    /// The author is the federation key itself.
    pub federation: bool,
}

impl Standing {
    fn in_town(&self, folded: &str) -> bool {
        self.town.as_deref().is_none_or(|t| fold(t) == folded)
    }

    fn may_publish(&self, kind: Kind) -> bool {
        self.delegate
            .as_ref()
            .is_none_or(|d| d.kinds.is_empty() || d.kinds.contains(&kind))
    }
}

/// An act as the ledger keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<T> {
    pub id: RecordId,
    pub issuer: AuthorKey,
    pub at: u64,
    pub act: T,
}

/// Why a publication is left out of default listings; all false when it is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    /// A valid retraction names it.
    pub retracted: bool,
    /// Its author did not stand at its creation time, or it depends on a record that is voided.
    pub voided: bool,
    /// A live (valid, not retracted) version descends from it.
    pub superseded: bool,
}

impl Visibility {
    /// Whether default listings show it.
    pub fn shown(self) -> bool {
        !(self.retracted || self.voided || self.superseded)
    }
}

/// Publications that records just applied hid from default listings, and the ones they
/// brought back (a retracted or voided version hides nothing). A record new to the ledger
/// counts as not shown before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub hidden: Vec<RecordId>,
    pub revealed: Vec<RecordId>,
}

impl Changes {
    /// These changes followed by `later`: hidden then revealed again is no change.
    pub fn then(&mut self, later: Changes) {
        for id in later.hidden {
            match self.revealed.iter().position(|r| *r == id) {
                Some(i) => {
                    self.revealed.swap_remove(i);
                }
                None => self.hidden.push(id),
            }
        }
        for id in later.revealed {
            match self.hidden.iter().position(|h| *h == id) {
                Some(i) => {
                    self.hidden.swap_remove(i);
                }
                None => self.revealed.push(id),
            }
        }
    }
}

/// A change to undo when a trial ends.
#[derive(Clone, Debug)]
enum Undo {
    /// The record was added.
    Held(RecordId),
    /// Whether the record was voided before.
    Voided(RecordId, bool),
}

/// When a judgement looks at the roster: a record sees the revocations dated up to its own
/// time; a revocation only those dated before it (so two revocations of one millisecond never
/// depend on each other).
#[derive(Clone, Copy, Debug)]
struct Moment {
    at: u64,
    strict: bool,
}

impl Moment {
    fn of(held: &Held) -> Moment {
        Moment {
            at: held.created_at,
            strict: matches!(held.what, What::Act(Act::Revoke(_))),
        }
    }

    fn at(at: u64) -> Moment {
        Moment { at, strict: false }
    }

    fn sees_revocation(self, at: u64) -> bool {
        if self.strict {
            at < self.at
        } else {
            at <= self.at
        }
    }
}

/// Whose records a change of a key's standing affects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// The key's own records.
    Key,
    /// The key's records and those of the practitioners it vouched for (a town's admission).
    WithDelegates,
}

/// The records a node holds, indexed for judging records and for deciding what listings show:
/// the acts (admissions, delegations, revocations, retractions), every record by its author,
/// versions, and which records are voided. Built from the store at start, updated by the
/// store's writer.
#[derive(Clone, Debug)]
pub struct Ledger {
    mode: Mode,
    held: HashMap<RecordId, Held>,
    /// Every held record by its author, (created_at, id): what a change of the author's
    /// standing may affect.
    by_author: HashMap<AuthorKey, BTreeSet<(u64, RecordId)>>,
    /// The voided ones among them: what a late grant may restore.
    voided_by_author: HashMap<AuthorKey, BTreeSet<(u64, RecordId)>>,
    voided: HashSet<RecordId>,
    foundings: Vec<Entry<Founding>>,
    /// By the key admitted.
    admissions: HashMap<AuthorKey, Vec<Entry<Admission>>>,
    /// By the key delegated.
    delegations: HashMap<AuthorKey, Vec<Entry<Delegation>>>,
    /// By issuer: (key delegated, delegation id).
    issued: HashMap<AuthorKey, Vec<(AuthorKey, RecordId)>>,
    /// By the key revoked.
    revocations: HashMap<AuthorKey, Vec<Entry<Revocation>>>,
    /// By the record retracted.
    retractions: HashMap<RecordId, Vec<Entry<Retraction>>>,
    /// Old version -> the versions that name it in `supersedes`.
    successors: HashMap<RecordId, Vec<RecordId>>,
    publications: usize,
    /// Folded town names, shared by the publications filed under them.
    towns: HashSet<Arc<str>>,
    /// How many times a held record was judged again.
    examined: u64,
    /// What to undo at the end of a `trial`.
    journal: Option<Vec<Undo>>,
}

fn short(key: &AuthorKey) -> String {
    key.to_hex()[..12].to_owned()
}

/// "2 h 5 min", "12 min", "40 s": how far ahead a record is dated.
fn span(ms: u64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => format!("{} s", ms / 1000),
        1..120 => format!("{minutes} min"),
        _ => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

fn kinds_list(d: &Delegation) -> String {
    d.kinds
        .iter()
        .map(|k| k.slug())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ledger {
    pub fn new(mode: Mode) -> Ledger {
        Ledger {
            mode,
            held: HashMap::new(),
            by_author: HashMap::new(),
            voided_by_author: HashMap::new(),
            voided: HashSet::new(),
            foundings: Vec::new(),
            admissions: HashMap::new(),
            delegations: HashMap::new(),
            issued: HashMap::new(),
            revocations: HashMap::new(),
            retractions: HashMap::new(),
            successors: HashMap::new(),
            publications: 0,
            towns: HashSet::new(),
            examined: 0,
            journal: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn federation(&self) -> Option<AuthorKey> {
        match self.mode {
            Mode::Open => None,
            Mode::Federation(key) => Some(key),
        }
    }

    /// Whether the ledger holds this record (valid or voided).
    pub fn holds(&self, id: &RecordId) -> bool {
        self.held.contains_key(id)
    }

    /// What the ledger keeps of a held record.
    pub fn get(&self, id: &RecordId) -> Option<&Held> {
        self.held.get(id)
    }

    /// How many times a held record was judged again since this ledger was made (when records
    /// it depends on arrived or changed): what revocations and late grants cost.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    fn valid(&self, id: &RecordId) -> bool {
        !self.voided.contains(id)
    }

    /// The founding act this ledger holds (the federation's, in a federation): the earliest.
    pub fn founding(&self) -> Option<&Entry<Founding>> {
        self.foundings
            .iter()
            .filter(|f| self.valid(&f.id) && self.federation().is_none_or(|k| k == f.issuer))
            .min_by_key(|f| (f.at, f.id))
    }

    /// The federation's name, once its founding act is here.
    pub fn federation_name(&self) -> Option<&str> {
        self.founding().map(|f| f.act.name.as_str())
    }

    /// The earliest valid revocation of `key` by one of `issuers` that `moment` sees.
    fn revoked(
        &self,
        key: &AuthorKey,
        issuers: &[AuthorKey],
        moment: Moment,
    ) -> Option<&Entry<Revocation>> {
        self.revocations
            .get(key)?
            .iter()
            .filter(|r| {
                moment.sees_revocation(r.at) && issuers.contains(&r.issuer) && self.valid(&r.id)
            })
            .min_by_key(|r| (r.at, r.id))
    }

    /// The federation's admissions of `key` valid at `moment` (oldest first), or why there is
    /// none.
    fn admitted(&self, key: &AuthorKey, moment: Moment) -> Result<Vec<&Entry<Admission>>, String> {
        let Some(federation) = self.federation() else {
            return Err("this node is in open mode".into());
        };
        let mut grants: Vec<&Entry<Admission>> = self
            .admissions
            .get(key)
            .into_iter()
            .flatten()
            .filter(|a| a.issuer == federation && self.valid(&a.id))
            .collect();
        if grants.is_empty() {
            return Err(format!(
                "key {} has no certificate from the federation {}",
                short(key),
                short(&federation)
            ));
        }
        if let Some(r) = self.revoked(key, &[federation, *key], moment) {
            return Err(format!(
                "the certificate of key {} was revoked on {} ({})",
                short(key),
                rfc3339_millis(r.at),
                r.act.reason
            ));
        }
        grants.sort_by_key(|a| (a.at, a.id));
        let at = moment.at;
        let first = grants[0];
        let valid: Vec<&Entry<Admission>> = grants
            .into_iter()
            .filter(|a| a.at <= at && a.act.until.is_none_or(|u| at <= u))
            .collect();
        if valid.is_empty() {
            return Err(format!(
                "the certificate of key {} for {} is valid from {} to {}, not at {}",
                short(key),
                first.act.town,
                rfc3339_millis(first.at),
                first.act.until.map_or("no end".into(), rfc3339_millis),
                rfc3339_millis(at)
            ));
        }
        Ok(valid)
    }

    /// Every chain from `author` to the federation key at `moment` (its own admissions first,
    /// then the delegations it holds, oldest first), and why the others fail.
    fn chains(&self, author: &AuthorKey, moment: Moment) -> (Vec<Standing>, Vec<String>) {
        let Some(federation) = self.federation() else {
            // Open mode: nothing is certified, and a delegation is only its issuer's claim (it
            // needs no consent from the key it names), so a key answers for itself alone.
            let own = Standing {
                town_key: *author,
                town: None,
                delegate: None,
                federation: false,
            };
            return (vec![own], Vec::new());
        };
        if *author == federation {
            let standing = Standing {
                town_key: federation,
                town: None,
                delegate: None,
                federation: true,
            };
            return (vec![standing], Vec::new());
        }
        let at = moment.at;
        let mut chains = Vec::new();
        let mut why = Vec::new();
        match self.admitted(author, moment) {
            Ok(grants) => chains.extend(grants.into_iter().map(|a| Standing {
                town_key: *author,
                town: Some(a.act.town.clone()),
                delegate: None,
                federation: false,
            })),
            Err(e) => why.push(e),
        }
        let mut grants: Vec<&Entry<Delegation>> = self
            .delegations
            .get(author)
            .into_iter()
            .flatten()
            .filter(|d| self.valid(&d.id))
            .collect();
        grants.sort_by_key(|d| (d.at, d.id));
        if grants.is_empty() {
            why.push("it has no delegation from a certified town".into());
        }
        for d in grants {
            if let Some(r) = self.revoked(author, &[d.issuer, federation, *author], moment) {
                why.push(format!(
                    "its delegation from {} was revoked on {} ({})",
                    short(&d.issuer),
                    rfc3339_millis(r.at),
                    r.act.reason
                ));
                continue;
            }
            if d.at > at || d.act.until.is_some_and(|u| at > u) {
                why.push(format!(
                    "its delegation from {} is valid from {} to {}, not at {}",
                    short(&d.issuer),
                    rfc3339_millis(d.at),
                    d.act.until.map_or("no end".into(), rfc3339_millis),
                    rfc3339_millis(at)
                ));
                continue;
            }
            match self.admitted(&d.issuer, moment) {
                Ok(towns) => chains.extend(towns.into_iter().map(|a| Standing {
                    town_key: d.issuer,
                    town: Some(a.act.town.clone()),
                    delegate: Some(d.act.clone()),
                    federation: false,
                })),
                Err(e) => why.push(format!("the town that vouched for it is not valid: {e}")),
            }
        }
        (chains, why)
    }

    fn not_member(&self, author: &AuthorKey, at: u64, why: &[String]) -> Denied {
        refused(
            "not_member",
            format!(
                "the author {} is not a member of the federation {} at {}: {}",
                short(author),
                self.federation().map_or_else(String::new, |f| short(&f)),
                rfc3339_millis(at),
                why.join("; ")
            ),
        )
    }

    /// Where `author` stands at time `at`; in a federation, refused when it does not chain to
    /// the federation key.
    pub fn standing(&self, author: &AuthorKey, at: u64) -> Result<Standing, Denied> {
        self.standing_for(author, at, None)
    }

    /// `standing`, preferring a chain to `town` (folded) when the key has several (a person
    /// vouched for by two towns): a record filed under a town is judged by that town's chain.
    pub fn standing_for(
        &self,
        author: &AuthorKey,
        at: u64,
        town: Option<&str>,
    ) -> Result<Standing, Denied> {
        let (mut chains, why) = self.chains(author, Moment::at(at));
        if chains.is_empty() {
            return Err(self.not_member(author, at, &why));
        }
        let wanted = town.map(fold);
        let pick = chains
            .iter()
            .position(|c| wanted.as_deref().is_none_or(|w| c.in_town(w)))
            .unwrap_or(0);
        Ok(chains.swap_remove(pick))
    }

    /// Whether `record` may be stored, given what this node holds and its clock (`now`, ms
    /// since the Unix epoch): `judge`, after refusing (as pending) a record dated more than
    /// `MAX_CLOCK_SKEW_MS` ahead.
    pub fn check(&self, record: &Record, now: u64) -> Result<(), Denied> {
        let at = record.created_at();
        if at > now.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Denied::Pending(format!(
                "record {} is dated {}, {} ahead of this node's clock ({}); a node takes records \
                 dated at most {} minutes ahead of its clock, so it will take this one when its \
                 clock gets there (or check the signer's clock)",
                record.id().short(),
                rfc3339_millis(at),
                span(at - now),
                rfc3339_millis(now),
                MAX_CLOCK_SKEW_MS / 60_000
            )));
        }
        self.judge(
            &Held::of(record),
            record.publication().map(|p| p.town.as_str()),
        )
    }

    /// The one rule: whether a record stands, given the other records this ledger holds and
    /// the validity of each. `check` asks it of a record offered, re-judgement of a record held.
    /// `town` is the record's town as written, for messages.
    fn judge(&self, held: &Held, town: Option<&str>) -> Result<(), Denied> {
        match &held.what {
            What::Publication {
                kind,
                town: folded,
                supersedes,
            } => self.judge_publication(held, *kind, town.unwrap_or(folded), folded, supersedes),
            What::Act(act) => self.judge_act(held, act),
            What::Empty => Err(refused("not_allowed", "a record with no content".into())),
        }
    }

    fn judge_publication(
        &self,
        held: &Held,
        kind: Kind,
        written: &str,
        town: &str,
        supersedes: &[RecordId],
    ) -> Result<(), Denied> {
        let author = &held.author;
        if self.federation() == Some(*author) {
            return Err(refused(
                "not_allowed",
                "the federation key signs certificates and revocations, not publications".into(),
            ));
        }
        let (chains, why) = self.chains(author, Moment::of(held));
        if chains.is_empty() {
            return Err(self.not_member(author, held.created_at, &why));
        }
        let in_town: Vec<&Standing> = chains.iter().filter(|c| c.in_town(town)).collect();
        let Some(first) = in_town.first() else {
            return Err(refused(
                "wrong_town",
                format!(
                    "the record is filed under `{written}` but its author is certified for `{}`",
                    chains[0].town.as_deref().unwrap_or_default()
                ),
            ));
        };
        let allowed: Vec<&Standing> = in_town
            .iter()
            .copied()
            .filter(|c| c.may_publish(kind))
            .collect();
        if allowed.is_empty() {
            let name = first.delegate.as_ref().map_or("", |d| d.name.as_str());
            let kinds = first.delegate.as_ref().map(kinds_list).unwrap_or_default();
            return Err(refused(
                "kind_not_allowed",
                format!("{name} may publish {kinds} only, not {kind}"),
            ));
        }
        let mut olds = Vec::with_capacity(supersedes.len());
        for target in supersedes {
            let old = self.target(target, "revise")?;
            if old.created_at >= held.created_at {
                return Err(refused(
                    "not_newer",
                    format!(
                        "a version must be newer than the record it replaces: record {} was \
                         created at {}, this version at {}",
                        target.short(),
                        rfc3339_millis(old.created_at),
                        rfc3339_millis(held.created_at)
                    ),
                ));
            }
            olds.push((target, old));
        }
        let mut first_error = None;
        for chain in allowed {
            let verdict = olds
                .iter()
                .try_for_each(|(target, old)| self.may_revise(author, chain, target, old));
            match verdict {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// What a revision or a retraction names: a valid publication this node holds.
    fn target(&self, target: &RecordId, verb: &str) -> Result<&Held, Denied> {
        let Some(old) = self.held.get(target) else {
            return Err(Denied::Pending(format!(
                "cannot {verb} record {}: this node does not hold it yet",
                target.short()
            )));
        };
        if !old.is_publication() {
            return Err(refused(
                "not_allowed",
                format!("record {} is not a publication", target.short()),
            ));
        }
        if !self.valid(target) {
            return Err(refused(
                "voided",
                format!(
                    "cannot {verb} record {}: it is voided (its author did not stand at its \
                     creation time, or it depends on a record that is voided)",
                    target.short()
                ),
            ));
        }
        Ok(old)
    }

    /// A revision of `old` by `author` through `chain`: a delegate only revises the kinds it
    /// may publish, and only the author or its town revises.
    fn may_revise(
        &self,
        author: &AuthorKey,
        chain: &Standing,
        target: &RecordId,
        old: &Held,
    ) -> Result<(), Denied> {
        if let (What::Publication { kind, .. }, Some(d)) = (&old.what, &chain.delegate)
            && !d.kinds.is_empty()
            && !d.kinds.contains(kind)
        {
            return Err(refused(
                "kind_not_allowed",
                format!(
                    "{} may revise {} only, and record {} is {kind}",
                    d.name,
                    kinds_list(d),
                    target.short()
                ),
            ));
        }
        self.same_hand(author, Some(chain), target, old, "revise")
    }

    fn judge_act(&self, held: &Held, act: &Act) -> Result<(), Denied> {
        let author = &held.author;
        let Some(federation) = self.federation() else {
            return match act {
                Act::Retract(r) => self.judge_retraction(author, r),
                _ => Ok(()),
            };
        };
        let (chains, why) = self.chains(author, Moment::of(held));
        if chains.is_empty() {
            return Err(self.not_member(author, held.created_at, &why));
        }
        let is_federation = *author == federation;
        let is_town = chains.iter().any(|c| !c.federation && c.delegate.is_none());
        match act {
            Act::Found(_) | Act::Admit(_) if !is_federation => Err(refused(
                "not_allowed",
                format!("only the federation key may {}", act.name()),
            )),
            Act::Delegate(_) if !is_town => Err(refused(
                "not_allowed",
                "only a town's key may delegate (not the federation key, not a delegate)".into(),
            )),
            Act::Revoke(_) if !(is_federation || is_town) => Err(refused(
                "not_allowed",
                "a delegate may not revoke keys; its town or the federation may".into(),
            )),
            Act::Retract(r) => self.judge_retraction(author, r),
            _ => Ok(()),
        }
    }

    fn judge_retraction(&self, author: &AuthorKey, r: &Retraction) -> Result<(), Denied> {
        let old = self.target(&r.id, "retract")?;
        self.same_hand(author, None, &r.id, old, "retract")
    }

    /// A revision or a retraction of `target` by `author`: only from its author or, in a
    /// federation, from a town key that vouched for it under its town; a revision also from
    /// another key of that town (`chain`: the revision's own chain).
    fn same_hand(
        &self,
        author: &AuthorKey,
        chain: Option<&Standing>,
        target: &RecordId,
        old: &Held,
        verb: &str,
    ) -> Result<(), Denied> {
        if old.author == *author {
            return Ok(());
        }
        if let What::Publication { town, .. } = &old.what
            && self.federation().is_some()
        {
            let (chains, _) = self.chains(&old.author, Moment::at(old.created_at));
            let answers = chains
                .iter()
                .filter(|c| !c.federation && c.in_town(town))
                .any(|c| {
                    c.town_key == *author
                        || chain.is_some_and(|s| !s.federation && s.town_key == c.town_key)
                });
            if answers {
                return Ok(());
            }
        }
        let who = match chain {
            Some(_) => "its author or its town",
            None => "its author or the town that vouched for it",
        };
        Err(refused(
            "not_author",
            format!(
                "only the author of record {} or its town may {verb} it ({who}); {} is neither{}",
                target.short(),
                short(author),
                if self.federation().is_none() {
                    " (in open mode, only its author)"
                } else {
                    ""
                }
            ),
        ))
    }

    /// Takes an accepted record into account (call `check` first), then judges again the
    /// records it may change (a late revocation voids what it covers, a late grant restores
    /// what it allows, and so on down what depends on them). Returns the publications it hid
    /// from default listings and the ones it brought back.
    pub fn apply(&mut self, record: &Record) -> Changes {
        let id = record.id();
        if self.held.contains_key(&id) {
            return Changes::default();
        }
        let held = Held::of(record);
        let mut touched = HashMap::new();
        match &held.what {
            What::Publication { supersedes, .. } => {
                touched.insert(id, false);
                for old in supersedes.iter() {
                    self.touch(old, &mut touched);
                }
            }
            What::Act(Act::Retract(r)) => self.touch(&r.id, &mut touched),
            _ => {}
        }
        self.hold(id, held.clone());
        let mut queue = BTreeSet::new();
        self.push_dependents(&id, &held, true, &mut queue);
        self.settle_from(Vec::new(), queue, &mut touched);
        self.changes(touched)
    }

    /// Adds a record that this node stored earlier, without judging it: for rebuilding a
    /// ledger from a store. Call `settle` once every record is in.
    pub fn restore(&mut self, id: RecordId, held: Held) {
        if !self.held.contains_key(&id) {
            self.hold(id, held);
        }
    }

    /// Judges every held record again, in (creation time, class, id) order, and what depends
    /// on those that change: after `restore`, the ledger is what it would be had the records
    /// arrived one by one in any order.
    pub fn settle(&mut self) {
        let mut all: Vec<Key> = self
            .held
            .iter()
            .map(|(id, h)| (h.created_at, h.class(), *id))
            .collect();
        all.sort_unstable();
        let mut touched = HashMap::new();
        self.settle_from(all, BTreeSet::new(), &mut touched);
    }

    /// Judges again `first` (sorted) and `queue`, smallest key first, and what depends on each
    /// record whose validity changes, until nothing changes. The dependencies form no cycle (a
    /// record depends on records before it in key order, a retraction on its target), so this
    /// ends, at the one state that every order of arrival leads to, with each record changing
    /// at most once or twice. As a safeguard against a loop (which would need a cycle), a
    /// record that changes more than `MAX_FLIPS` times is left voided, where it has no effect.
    fn settle_from(
        &mut self,
        first: Vec<Key>,
        mut queue: BTreeSet<Key>,
        touched: &mut HashMap<RecordId, bool>,
    ) {
        const MAX_FLIPS: u8 = 4;
        let mut flips: HashMap<RecordId, u8> = HashMap::new();
        let mut first = first.into_iter().peekable();
        loop {
            let from_queue = match (queue.first(), first.peek()) {
                (Some(q), Some(f)) => q <= f,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if from_queue {
                queue.pop_first()
            } else {
                first.next()
            };
            let Some((_, _, id)) = next else { break };
            let Some(held) = self.held.get(&id).cloned() else {
                continue;
            };
            self.examined += 1;
            let flipped = flips.get(&id).copied().unwrap_or(0);
            let valid = flipped < MAX_FLIPS && self.judge(&held, None).is_ok();
            if valid != self.valid(&id) {
                flips.insert(id, flipped.saturating_add(1));
                match &held.what {
                    What::Publication { .. } => self.touch(&id, touched),
                    What::Act(Act::Retract(r)) => self.touch(&r.id, touched),
                    _ => {}
                }
                self.set_voided(id, &held, !valid);
                self.push_dependents(&id, &held, valid, &mut queue);
            } else if held.is_publication() {
                // Its author's chains at its time may have changed without changing whether it
                // stands; who may revise or retract it depends on them.
                self.push_versions(&id, &mut queue);
            }
        }
    }

    /// Records, before a change, whether `id` and every version it replaces were shown.
    fn touch(&self, id: &RecordId, touched: &mut HashMap<RecordId, bool>) {
        let mut stack = vec![*id];
        while let Some(next) = stack.pop() {
            if touched.contains_key(&next) {
                continue;
            }
            touched.insert(next, self.shows(&next));
            if let Some(What::Publication { supersedes, .. }) =
                self.held.get(&next).map(|h| &h.what)
            {
                stack.extend(supersedes.iter());
            }
        }
    }

    fn changes(&self, touched: HashMap<RecordId, bool>) -> Changes {
        let mut changes = Changes::default();
        for (id, before) in touched {
            match (before, self.shows(&id)) {
                (true, false) => changes.hidden.push(id),
                (false, true) => changes.revealed.push(id),
                _ => {}
            }
        }
        changes.hidden.sort();
        changes.revealed.sort();
        changes
    }

    fn key_of(&self, id: &RecordId) -> Option<Key> {
        self.held.get(id).map(|h| (h.created_at, h.class(), *id))
    }

    /// Queues the versions and retractions of a publication.
    fn push_versions(&self, id: &RecordId, queue: &mut BTreeSet<Key>) {
        let versions = self.successors.get(id).into_iter().flatten().copied();
        let retractions = self.retractions.get(id).into_iter().flatten().map(|r| r.id);
        queue.extend(versions.chain(retractions).filter_map(|r| self.key_of(&r)));
    }

    /// Queues what may change now that `id` became valid (`valid`: or was just added) or
    /// voided.
    fn push_dependents(&self, id: &RecordId, held: &Held, valid: bool, queue: &mut BTreeSet<Key>) {
        let at = held.created_at;
        match &held.what {
            What::Publication { .. } | What::Empty => self.push_versions(id, queue),
            // A grant gained restores at most what was voided; a grant lost may void anything.
            What::Act(Act::Admit(a)) => {
                self.push_key(&a.key, at, Reach::WithDelegates, valid, queue);
            }
            What::Act(Act::Delegate(d)) => self.push_key(&d.key, at, Reach::Key, valid, queue),
            What::Act(Act::Revoke(r)) => {
                // Only the federation, the key itself or a town that vouched for it has a say
                // over a key: anyone else's revocation changes nothing and costs nothing.
                let issuer = held.author;
                let over_admission = self.federation() == Some(issuer) || issuer == r.key;
                let over_delegation = || {
                    self.delegations
                        .get(&r.key)
                        .is_some_and(|ds| ds.iter().any(|d| d.issuer == issuer))
                };
                let reach = if self.federation().is_none() {
                    None
                } else if over_admission {
                    Some(Reach::WithDelegates)
                } else if over_delegation() {
                    Some(Reach::Key)
                } else {
                    None
                };
                if let Some(reach) = reach {
                    self.push_key(&r.key, at, reach, !valid, queue);
                }
            }
            What::Act(Act::Found(_) | Act::Retract(_)) => {}
        }
    }

    /// Queues the records by `key` dated at or after `from` (only the voided ones when
    /// `only_voided`), and with `Reach::WithDelegates` those of the practitioners it vouched
    /// for, whose chain goes through it.
    fn push_key(
        &self,
        key: &AuthorKey,
        from: u64,
        reach: Reach,
        only_voided: bool,
        queue: &mut BTreeSet<Key>,
    ) {
        let index = if only_voided {
            &self.voided_by_author
        } else {
            &self.by_author
        };
        let mut push = |key: &AuthorKey, from: u64| {
            if let Some(set) = index.get(key) {
                for (_, id) in set.range((from, RecordId([0; 32]))..) {
                    queue.extend(self.key_of(id));
                }
            }
        };
        push(key, from);
        if reach == Reach::WithDelegates {
            for (delegate, delegation) in self.issued.get(key).into_iter().flatten() {
                if let Some(d) = self.held.get(delegation)
                    && self.valid(delegation)
                {
                    push(delegate, from.max(d.created_at));
                }
            }
        }
    }

    fn journal(&mut self, undo: Undo) {
        if let Some(journal) = &mut self.journal {
            journal.push(undo);
        }
    }

    fn set_voided(&mut self, id: RecordId, held: &Held, voided: bool) {
        let was = self.voided.contains(&id);
        if was == voided {
            return;
        }
        self.journal(Undo::Voided(id, was));
        let entry = (held.created_at, id);
        if voided {
            self.voided.insert(id);
            self.voided_by_author
                .entry(held.author)
                .or_default()
                .insert(entry);
        } else {
            self.voided.remove(&id);
            if let Some(set) = self.voided_by_author.get_mut(&held.author) {
                set.remove(&entry);
                if set.is_empty() {
                    self.voided_by_author.remove(&held.author);
                }
            }
        }
    }

    /// Adds a record to every index (valid, until judged otherwise).
    fn hold(&mut self, id: RecordId, mut held: Held) {
        let issuer = held.author;
        let at = held.created_at;
        self.by_author.entry(issuer).or_default().insert((at, id));
        fn entry<T>(id: RecordId, issuer: AuthorKey, at: u64, act: T) -> Entry<T> {
            Entry {
                id,
                issuer,
                at,
                act,
            }
        }
        match &mut held.what {
            What::Publication {
                town, supersedes, ..
            } => {
                match self.towns.get(&**town) {
                    Some(shared) => *town = shared.clone(),
                    None => {
                        self.towns.insert(town.clone());
                    }
                }
                for old in supersedes.iter() {
                    let versions = self.successors.entry(*old).or_default();
                    if !versions.contains(&id) {
                        versions.push(id);
                    }
                }
                self.publications += 1;
            }
            What::Act(act) => match act.clone() {
                Act::Found(f) => self.foundings.push(entry(id, issuer, at, f)),
                Act::Admit(a) => {
                    let key = a.key;
                    self.admissions
                        .entry(key)
                        .or_default()
                        .push(entry(id, issuer, at, a));
                }
                Act::Delegate(d) => {
                    let key = d.key;
                    self.issued.entry(issuer).or_default().push((key, id));
                    self.delegations
                        .entry(key)
                        .or_default()
                        .push(entry(id, issuer, at, d));
                }
                Act::Revoke(r) => {
                    let key = r.key;
                    self.revocations
                        .entry(key)
                        .or_default()
                        .push(entry(id, issuer, at, r));
                }
                Act::Retract(r) => {
                    let target = r.id;
                    self.retractions
                        .entry(target)
                        .or_default()
                        .push(entry(id, issuer, at, r));
                }
            },
            What::Empty => {}
        }
        self.held.insert(id, held);
        self.journal(Undo::Held(id));
    }

    /// Takes a record out of every index again (undoing `hold`).
    fn unhold(&mut self, id: &RecordId) {
        let Some(held) = self.held.remove(id) else {
            return;
        };
        self.set_voided(*id, &held, false);
        fn drop_from<K: std::hash::Hash + Eq, T>(
            map: &mut HashMap<K, Vec<T>>,
            key: &K,
            gone: impl Fn(&T) -> bool,
        ) {
            if let Some(list) = map.get_mut(key) {
                list.retain(|e| !gone(e));
                if list.is_empty() {
                    map.remove(key);
                }
            }
        }
        if let Some(set) = self.by_author.get_mut(&held.author) {
            set.remove(&(held.created_at, *id));
            if set.is_empty() {
                self.by_author.remove(&held.author);
            }
        }
        match &held.what {
            What::Publication { supersedes, .. } => {
                for old in supersedes.iter() {
                    drop_from(&mut self.successors, old, |v| v == id);
                }
                self.publications = self.publications.saturating_sub(1);
            }
            What::Act(Act::Found(_)) => self.foundings.retain(|f| f.id != *id),
            What::Act(Act::Admit(a)) => drop_from(&mut self.admissions, &a.key, |e| e.id == *id),
            What::Act(Act::Delegate(d)) => {
                drop_from(&mut self.delegations, &d.key, |e| e.id == *id);
                drop_from(&mut self.issued, &held.author, |(_, e)| e == id);
            }
            What::Act(Act::Revoke(r)) => drop_from(&mut self.revocations, &r.key, |e| e.id == *id),
            What::Act(Act::Retract(r)) => drop_from(&mut self.retractions, &r.id, |e| e.id == *id),
            What::Empty => {}
        }
    }

    /// Runs `f` on this ledger and then undoes whatever it applied: what a batch would do,
    /// without copying the ledger (the cost is that of the batch, not of the ledger).
    pub fn trial<R>(&mut self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let outer = self.journal.replace(Vec::new());
        let result = f(self);
        let journal = self.journal.take().unwrap_or_default();
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Held(id) => self.unhold(&id),
                Undo::Voided(id, was) => {
                    if let Some(held) = self.held.get(&id).cloned() {
                        self.set_voided(id, &held, was);
                    }
                }
            }
        }
        self.journal = outer;
        result
    }

    /// The valid retraction of `id`, the earliest if several.
    pub fn retraction(&self, id: &RecordId) -> Option<&Entry<Retraction>> {
        self.retractions
            .get(id)?
            .iter()
            .filter(|r| self.valid(&r.id))
            .min_by_key(|r| (r.at, r.id))
    }

    pub fn is_retracted(&self, id: &RecordId) -> bool {
        self.retraction(id).is_some()
    }

    /// Held but voided: its author did not stand at its creation time (a revocation reached
    /// this node after it did), or it depends on a voided record. Kept for audit, listed like a
    /// retraction.
    pub fn is_voided(&self, id: &RecordId) -> bool {
        self.voided.contains(id)
    }

    /// A valid publication that no valid retraction names.
    fn is_live(&self, id: &RecordId) -> bool {
        self.held.get(id).is_some_and(Held::is_publication)
            && self.valid(id)
            && !self.is_retracted(id)
    }

    /// Whether a live version descends from `id` through `supersedes`.
    pub fn is_superseded(&self, id: &RecordId) -> bool {
        let mut stack: Vec<RecordId> = self.successors(id).to_vec();
        let mut seen = HashSet::new();
        while let Some(next) = stack.pop() {
            if !seen.insert(next) || !self.valid(&next) {
                continue;
            }
            if self.is_live(&next) {
                return true;
            }
            stack.extend_from_slice(self.successors(&next));
        }
        false
    }

    /// Why `id` is left out of default listings, if it is: the one rule of visibility.
    pub fn visibility(&self, id: &RecordId) -> Visibility {
        Visibility {
            retracted: self.is_retracted(id),
            voided: self.is_voided(id),
            superseded: self.is_superseded(id),
        }
    }

    /// Whether default listings show `id`: a held publication whose visibility is clear.
    pub fn shows(&self, id: &RecordId) -> bool {
        self.held.get(id).is_some_and(Held::is_publication) && self.visibility(id).shown()
    }

    /// The versions that replace `id`: those it names in `supersedes` through which a live
    /// version descends (usually one).
    pub fn superseded_by(&self, id: &RecordId) -> Vec<RecordId> {
        self.successors(id)
            .iter()
            .filter(|v| self.valid(v) && (self.is_live(v) || self.is_superseded(v)))
            .copied()
            .collect()
    }

    /// Every held version that names `id` in `supersedes`, live or not.
    pub fn successors(&self, id: &RecordId) -> &[RecordId] {
        self.successors.get(id).map_or(&[], Vec::as_slice)
    }

    /// The version `id` replaces (the first, if it names several).
    pub fn supersedes(&self, id: &RecordId) -> Option<RecordId> {
        match &self.held.get(id)?.what {
            What::Publication { supersedes, .. } => supersedes.first().copied(),
            _ => None,
        }
    }

    /// Every publication that default listings leave out: retracted, voided, or replaced by a
    /// live version.
    pub fn hidden(&self) -> Vec<RecordId> {
        let candidates: HashSet<&RecordId> = self
            .voided
            .iter()
            .chain(self.retractions.keys())
            .chain(self.successors.keys())
            .collect();
        let mut hidden: Vec<RecordId> = candidates
            .into_iter()
            .filter(|id| self.held.get(id).is_some_and(Held::is_publication))
            .filter(|id| !self.visibility(id).shown())
            .copied()
            .collect();
        hidden.sort();
        hidden
    }

    /// How many publications default listings show.
    pub fn shown_len(&self) -> usize {
        self.publications.saturating_sub(self.hidden().len())
    }

    /// Every version of the record `id` belongs to, oldest first.
    pub fn history(&self, id: &RecordId) -> Vec<RecordId> {
        let mut first = *id;
        let mut seen = vec![first];
        while let Some(older) = self.supersedes(&first) {
            if seen.contains(&older) {
                break;
            }
            seen.push(older);
            first = older;
        }
        let mut out = Vec::new();
        let mut queue = vec![first];
        while let Some(next) = queue.pop() {
            if out.contains(&next) || out.len() > 1000 {
                continue;
            }
            out.push(next);
            queue.extend(self.successors(&next).iter().rev());
        }
        out
    }

    /// The roster as this node sees it, at time `now`: each town with the practitioners it
    /// vouched for (found through the index of delegations by issuer, so the cost is that of
    /// the towns and delegations, not their product). In open mode nothing is certified: the
    /// roster names no town.
    pub fn roster(&self, now: u64) -> Roster {
        self.roster_counting(now, &mut 0)
    }

    /// `roster`, counting in `visits` the admissions and delegations it looks at: each once
    /// (delegations are indexed by the key that issued them), so `/members` costs towns plus
    /// delegations, not towns times delegations.
    fn roster_counting(&self, now: u64, visits: &mut u64) -> Roster {
        let Some(federation) = self.federation() else {
            return Roster {
                federation: None,
                name: None,
                towns: Vec::new(),
            };
        };
        let ever = Moment::at(u64::MAX);
        let mut towns: Vec<RosterTown> = Vec::new();
        for (key, grants) in &self.admissions {
            for a in grants
                .iter()
                .filter(|a| a.issuer == federation && self.valid(&a.id))
            {
                *visits += 1;
                let revoked = self
                    .revoked(key, &[a.issuer, *key], ever)
                    .map(|r| (r.at, r.act.reason.clone()));
                let delegates = self
                    .issued
                    .get(key)
                    .into_iter()
                    .flatten()
                    .filter_map(|(dkey, id)| {
                        *visits += 1;
                        let d = self.delegations.get(dkey)?.iter().find(|d| d.id == *id)?;
                        self.valid(id).then_some((dkey, d))
                    })
                    .map(|(dkey, d)| RosterDelegate {
                        key: *dkey,
                        record: d.id,
                        name: d.act.name.clone(),
                        role: d.act.role.clone(),
                        kinds: d.act.kinds.clone(),
                        from: d.at,
                        until: d.act.until,
                        revoked: self
                            .revoked(dkey, &[*key, a.issuer, *dkey], ever)
                            .map(|r| (r.at, r.act.reason.clone())),
                        valid_now: self
                            .standing_for(dkey, now, Some(&a.act.town))
                            .is_ok_and(|s| s.town_key == *key),
                    })
                    .collect();
                towns.push(RosterTown {
                    key: *key,
                    record: a.id,
                    town: a.act.town.clone(),
                    country: a.act.country.clone(),
                    code: a.act.code.clone(),
                    from: a.at,
                    until: a.act.until,
                    valid_now: revoked.as_ref().is_none_or(|r| r.0 > now)
                        && a.at <= now
                        && a.act.until.is_none_or(|u| now <= u),
                    revoked,
                    delegates,
                });
            }
        }
        towns.sort_by(|a, b| {
            fold(&a.town)
                .cmp(&fold(&b.town))
                .then(a.from.cmp(&b.from))
                .then(a.record.cmp(&b.record))
        });
        for t in &mut towns {
            t.delegates.sort_by(|a, b| {
                fold(&a.name)
                    .cmp(&fold(&b.name))
                    .then(a.from.cmp(&b.from))
                    .then(a.record.cmp(&b.record))
            });
        }
        Roster {
            federation: Some(federation),
            name: self.federation_name().map(str::to_owned),
            towns,
        }
    }
}

/// The members of a federation as one node sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Roster {
    pub federation: Option<AuthorKey>,
    pub name: Option<String>,
    pub towns: Vec<RosterTown>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RosterTown {
    pub key: AuthorKey,
    /// The admission record.
    pub record: RecordId,
    pub town: String,
    pub country: String,
    pub code: Option<String>,
    pub from: u64,
    pub until: Option<u64>,
    /// (when, why), if the certificate was revoked.
    pub revoked: Option<(u64, String)>,
    pub valid_now: bool,
    pub delegates: Vec<RosterDelegate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RosterDelegate {
    pub key: AuthorKey,
    pub record: RecordId,
    pub name: String,
    pub role: Option<String>,
    pub kinds: Vec<Kind>,
    pub from: u64,
    pub until: Option<u64>,
    pub revoked: Option<(u64, String)>,
    pub valid_now: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn the_roster_looks_at_each_admission_and_delegation_once() {
        let key = |n: u32| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&n.to_le_bytes());
            seed[4] = 1;
            SigningKey::from_bytes(&seed)
        };
        let public = |k: &SigningKey| AuthorKey(k.verifying_key().to_bytes());
        let federation = key(0);
        let mut ledger = Ledger::new(Mode::Federation(public(&federation)));
        let (towns, per_town) = (30u32, 20u32);
        let mut at = 1_000;
        let mut offer = |ledger: &mut Ledger, by: &SigningKey, act: Act| {
            at += 1;
            let record = Record::sign_act(by, at, act).unwrap_or_else(|e| panic!("{e}"));
            ledger
                .check(&record, 10_000_000)
                .unwrap_or_else(|e| panic!("{e}"));
            ledger.apply(&record);
        };
        for t in 1..=towns {
            let town = key(t);
            let admission = Act::Admit(Admission {
                key: public(&town),
                town: format!("Ville {t}"),
                country: "FR".into(),
                code: None,
                until: None,
            });
            offer(&mut ledger, &federation, admission);
            for d in 0..per_town {
                let person = key(1_000 * t + d);
                let delegation = Act::Delegate(Delegation {
                    key: public(&person),
                    name: format!("Personne {d}"),
                    role: None,
                    kinds: Vec::new(),
                    until: None,
                });
                offer(&mut ledger, &town, delegation);
            }
        }
        let mut visits = 0;
        let roster = ledger.roster_counting(10_000_000, &mut visits);
        assert_eq!(roster.towns.len(), towns as usize);
        assert!(
            roster
                .towns
                .iter()
                .all(|t| t.delegates.len() == per_town as usize)
        );
        // Towns plus delegations: 630. Looking through every delegation for every town, as
        // the roster once did, is towns times delegations: 18,000.
        assert_eq!(visits, u64::from(towns + towns * per_town));
    }
}
