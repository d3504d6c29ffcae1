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
//! that vouched for it under the town it is filed in. In open mode a delegation is only its
//! issuer's claim (the delegate never consented), so there only the author may.
//!
//! `Ledger::check` is the one gate: the node's store asks it about every record before writing,
//! whichever path the record came by. A record whose check needs a record this node does not
//! hold yet (the target of a retraction, say) is `Pending`, not refused: catch-up brings the
//! missing record and the next round brings this one again.

use crate::id::RecordId;
use crate::publication::{Violation, text_rule};
use crate::record::{AuthorKey, Record};
use crate::time::rfc3339_millis;
use crate::vocab::{Kind, LinkRel, fold};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

pub const MAX_NAME_CHARS: usize = 120;
pub const MAX_COUNTRY_CHARS: usize = 60;
pub const MAX_CODE_CHARS: usize = 32;
pub const MAX_REASON_CHARS: usize = 1000;

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

/// What the ledger needs to know of a record that a revision or a retraction names.
#[derive(Clone, Debug)]
pub struct Known {
    pub author: AuthorKey,
    pub created_at: u64,
    /// The town a publication is filed under; `None` for an act.
    pub town: Option<String>,
}

impl Known {
    pub fn of(record: &Record) -> Known {
        Known {
            author: record.author(),
            created_at: record.created_at(),
            town: record.publication().map(|p| p.town.clone()),
        }
    }
}

/// Why a record is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// For good: whoever sends it again gets the same answer (until the roster changes).
    #[error("{message}")]
    Refused {
        /// A short label for metrics: `not_member`, `wrong_town`, `kind_not_allowed`,
        /// `not_author`, `not_allowed`.
        reason: &'static str,
        message: String,
    },
    /// It depends on a record this node does not hold yet.
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

/// An act as the ledger keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<T> {
    pub id: RecordId,
    pub issuer: AuthorKey,
    pub at: u64,
    pub act: T,
}

/// The acts a node holds, indexed for checking records, and the versions and retractions that
/// decide what listings show. Built from the store at start, updated by the store's writer.
#[derive(Clone, Debug)]
pub struct Ledger {
    mode: Mode,
    founding: Option<Entry<Founding>>,
    admissions: HashMap<AuthorKey, Vec<Entry<Admission>>>,
    delegations: HashMap<AuthorKey, Vec<Entry<Delegation>>>,
    revocations: HashMap<AuthorKey, Vec<Entry<Revocation>>>,
    retractions: HashMap<RecordId, Entry<Retraction>>,
    superseded_by: HashMap<RecordId, Vec<RecordId>>,
    supersedes: HashMap<RecordId, RecordId>,
    /// Records accepted before this node learnt of a revocation that covers them.
    voided: HashSet<RecordId>,
}

fn short(key: &AuthorKey) -> String {
    key.to_hex()[..12].to_owned()
}

impl Ledger {
    pub fn new(mode: Mode) -> Ledger {
        Ledger {
            mode,
            founding: None,
            admissions: HashMap::new(),
            delegations: HashMap::new(),
            revocations: HashMap::new(),
            retractions: HashMap::new(),
            superseded_by: HashMap::new(),
            supersedes: HashMap::new(),
            voided: HashSet::new(),
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

    /// The founding act this ledger holds (the federation's, in a federation).
    pub fn founding(&self) -> Option<&Entry<Founding>> {
        self.founding.as_ref()
    }

    /// The federation's name, once its founding act is here.
    pub fn federation_name(&self) -> Option<&str> {
        self.founding.as_ref().map(|f| f.act.name.as_str())
    }

    /// The revocation of `key` by one of `issuers` in force at `at`, if any.
    fn revoked(
        &self,
        key: &AuthorKey,
        issuers: &[AuthorKey],
        at: u64,
    ) -> Option<&Entry<Revocation>> {
        self.revocations
            .get(key)?
            .iter()
            .filter(|r| r.at <= at && issuers.contains(&r.issuer))
            .min_by_key(|r| r.at)
    }

    /// The federation's admission of `key` valid at `at`, or why there is none.
    fn admitted(&self, key: &AuthorKey, at: u64) -> Result<&Entry<Admission>, String> {
        let Some(federation) = self.federation() else {
            return Err("this node is in open mode".into());
        };
        let grants: Vec<&Entry<Admission>> = self
            .admissions
            .get(key)
            .into_iter()
            .flatten()
            .filter(|a| a.issuer == federation)
            .collect();
        if grants.is_empty() {
            return Err(format!(
                "key {} has no certificate from the federation {}",
                short(key),
                short(&federation)
            ));
        }
        if let Some(r) = self.revoked(key, &[federation, *key], at) {
            return Err(format!(
                "the certificate of key {} was revoked on {} ({})",
                short(key),
                rfc3339_millis(r.at),
                r.act.reason
            ));
        }
        grants
            .iter()
            .copied()
            .find(|a| a.at <= at && a.act.until.is_none_or(|u| at <= u))
            .ok_or_else(|| {
                let a = grants[0];
                format!(
                    "the certificate of key {} for {} is valid from {} to {}, not at {}",
                    short(key),
                    a.act.town,
                    rfc3339_millis(a.at),
                    a.act.until.map_or("no end".into(), rfc3339_millis),
                    rfc3339_millis(at)
                )
            })
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
        let Some(federation) = self.federation() else {
            // Open mode: nothing is certified, and a delegation is only its issuer's claim (it
            // needs no consent from the key it names), so a key answers for itself alone.
            return Ok(Standing {
                town_key: *author,
                town: None,
                delegate: None,
                federation: false,
            });
        };
        if *author == federation {
            return Ok(Standing {
                town_key: federation,
                town: None,
                delegate: None,
                federation: true,
            });
        }
        let wanted = town.map(fold);
        let mut chains = Vec::new();
        let mut why = Vec::new();
        match self.admitted(author, at) {
            Ok(a) => {
                let standing = Standing {
                    town_key: *author,
                    town: Some(a.act.town.clone()),
                    delegate: None,
                    federation: false,
                };
                // The common case, a town's own record: no need to look further.
                if wanted.as_ref().is_none_or(|w| fold(&a.act.town) == *w) {
                    return Ok(standing);
                }
                chains.push(standing);
            }
            Err(e) => why.push(e),
        }
        let grants: Vec<&Entry<Delegation>> =
            self.delegations.get(author).into_iter().flatten().collect();
        for d in grants {
            if let Some(r) = self.revoked(author, &[d.issuer, federation, *author], at) {
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
            match self.admitted(&d.issuer, at) {
                Ok(a) => chains.push(Standing {
                    town_key: d.issuer,
                    town: Some(a.act.town.clone()),
                    delegate: Some(d.act.clone()),
                    federation: false,
                }),
                Err(e) => why.push(format!("the town that vouched for it is not valid: {e}")),
            }
        }
        if chains.is_empty() {
            if self.delegations.get(author).is_none_or(Vec::is_empty) {
                why.push("it has no delegation from a certified town".into());
            }
            return Err(refused(
                "not_member",
                format!(
                    "the author {} is not a member of the federation {} at {}: {}",
                    short(author),
                    short(&federation),
                    rfc3339_millis(at),
                    why.join("; ")
                ),
            ));
        }
        let pick = chains
            .iter()
            .position(|c| {
                wanted
                    .as_ref()
                    .is_none_or(|w| c.town.as_deref().map(fold).as_ref() == Some(w))
            })
            .unwrap_or(0);
        Ok(chains.swap_remove(pick))
    }

    /// Whether `record` may be stored, given what this node holds (`known` looks records up).
    pub fn check(
        &self,
        record: &Record,
        known: impl Fn(&RecordId) -> Option<Known>,
    ) -> Result<(), Denied> {
        let author = record.author();
        let at = record.created_at();
        let town = record.publication().map(|p| p.town.as_str());
        let standing = self.standing_for(&author, at, town)?;
        let federated = self.federation().is_some();
        if let Some(p) = record.publication() {
            if standing.federation {
                return Err(refused(
                    "not_allowed",
                    "the federation key signs certificates and revocations, not publications"
                        .into(),
                ));
            }
            if let Some(town) = &standing.town
                && fold(town) != fold(&p.town)
            {
                return Err(refused(
                    "wrong_town",
                    format!(
                        "the record is filed under `{}` but its author is certified for `{town}`",
                        p.town
                    ),
                ));
            }
            if let Some(d) = &standing.delegate
                && !d.kinds.is_empty()
                && !d.kinds.contains(&p.kind)
            {
                return Err(refused(
                    "kind_not_allowed",
                    format!(
                        "{} may publish {} only, not {}",
                        d.name,
                        d.kinds
                            .iter()
                            .map(|k| k.slug())
                            .collect::<Vec<_>>()
                            .join(", "),
                        p.kind
                    ),
                ));
            }
            for link in p.links.iter().filter(|l| l.rel == LinkRel::Supersedes) {
                self.same_hand(&author, Some(&standing), &link.id, &known, "revise")?;
            }
            return Ok(());
        }
        let Some(act) = record.act() else {
            return Err(refused("not_allowed", "a record with no content".into()));
        };
        let delegate = standing.delegate.is_some();
        match act {
            Act::Found(_) | Act::Admit(_) if federated && !standing.federation => Err(refused(
                "not_allowed",
                format!("only the federation key may {}", act.name()),
            )),
            Act::Delegate(_) if federated && (standing.federation || delegate) => Err(refused(
                "not_allowed",
                "only a town's key may delegate (not the federation key, not a delegate)".into(),
            )),
            Act::Revoke(_) if delegate => Err(refused(
                "not_allowed",
                "a delegate may not revoke keys; its town or the federation may".into(),
            )),
            Act::Retract(r) => self.same_hand(&author, None, &r.id, &known, "retract"),
            _ => Ok(()),
        }
    }

    /// A revision or a retraction of `target` by `author`: only from its author or, in a
    /// federation, from the town key that vouched for it under its town; a revision also from
    /// another key of that town (`standing`: the revision's own chain).
    fn same_hand(
        &self,
        author: &AuthorKey,
        standing: Option<&Standing>,
        target: &RecordId,
        known: &impl Fn(&RecordId) -> Option<Known>,
        verb: &str,
    ) -> Result<(), Denied> {
        let Some(old) = known(target) else {
            return Err(Denied::Pending(format!(
                "cannot {verb} record {}: this node does not hold it yet",
                target.short()
            )));
        };
        let Some(old_town) = old.town.as_deref() else {
            return Err(refused(
                "not_allowed",
                format!("record {} is not a publication", target.short()),
            ));
        };
        if old.author == *author {
            return Ok(());
        }
        if self.federation().is_some() {
            let answers_for_old = self
                .standing_for(&old.author, old.created_at, Some(old_town))
                .map_or(old.author, |s| s.town_key);
            if answers_for_old == *author
                || standing.is_some_and(|s| !s.federation && s.town_key == answers_for_old)
            {
                return Ok(());
            }
        }
        let who = match standing {
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

    /// Takes an accepted record into account. Returns the ids that it hides from listings
    /// (the record it retracts, the version it supersedes).
    pub fn apply(&mut self, record: &Record) -> Vec<RecordId> {
        let id = record.id();
        let issuer = record.author();
        let at = record.created_at();
        if let Some(p) = record.publication() {
            let mut hidden = Vec::new();
            for link in p.links.iter().filter(|l| l.rel == LinkRel::Supersedes) {
                self.supersede(link.id, id);
                hidden.push(link.id);
            }
            return hidden;
        }
        let Some(act) = record.act() else {
            return Vec::new();
        };
        match act.clone() {
            Act::Found(act) => {
                let first = self.founding.as_ref().is_none_or(|f| f.at > at);
                if self.federation().is_none_or(|f| f == issuer) && first {
                    self.founding = Some(Entry {
                        id,
                        issuer,
                        at,
                        act,
                    });
                }
            }
            Act::Admit(act) => push(&mut self.admissions, act.key, id, issuer, at, act),
            Act::Delegate(act) => push(&mut self.delegations, act.key, id, issuer, at, act),
            Act::Revoke(act) => push(&mut self.revocations, act.key, id, issuer, at, act),
            Act::Retract(act) => {
                let target = act.id;
                let earliest = self.retractions.get(&target).is_none_or(|r| r.at > at);
                if earliest {
                    self.retractions.insert(
                        target,
                        Entry {
                            id,
                            issuer,
                            at,
                            act,
                        },
                    );
                }
                return vec![target];
            }
        }
        Vec::new()
    }

    /// Records that `new` supersedes `old` (also called when loading the store).
    pub fn supersede(&mut self, old: RecordId, new: RecordId) {
        let newer = self.superseded_by.entry(old).or_default();
        if !newer.contains(&new) {
            newer.push(new);
        }
        self.supersedes.insert(new, old);
    }

    pub fn retraction(&self, id: &RecordId) -> Option<&Entry<Retraction>> {
        self.retractions.get(id)
    }

    /// The versions that replace `id` (usually one).
    pub fn superseded_by(&self, id: &RecordId) -> &[RecordId] {
        self.superseded_by.get(id).map_or(&[], Vec::as_slice)
    }

    /// The version `id` replaces.
    pub fn supersedes(&self, id: &RecordId) -> Option<RecordId> {
        self.supersedes.get(id).copied()
    }

    pub fn is_retracted(&self, id: &RecordId) -> bool {
        self.retractions.contains_key(id)
    }

    /// Marks a stored record as voided: created after a revocation of its author's key (or of
    /// its town's) that reached this node after the record did. Listed like a retraction.
    pub fn void(&mut self, id: RecordId) {
        self.voided.insert(id);
    }

    pub fn is_voided(&self, id: &RecordId) -> bool {
        self.voided.contains(id)
    }

    /// The earliest revocation, if any: stored records created since may need voiding.
    pub fn earliest_revocation(&self) -> Option<u64> {
        self.revocations.values().flatten().map(|r| r.at).min()
    }

    pub fn is_superseded(&self, id: &RecordId) -> bool {
        self.superseded_by.contains_key(id)
    }

    /// Every record that default listings leave out: retracted, or replaced by a newer version.
    pub fn hidden(&self) -> impl Iterator<Item = &RecordId> {
        self.retractions
            .keys()
            .chain(self.superseded_by.keys())
            .chain(self.voided.iter())
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
            queue.extend(self.superseded_by(&next).iter().rev());
        }
        out
    }

    /// The roster as this node sees it, at time `now`.
    /// In open mode nothing is certified: the roster names no town.
    pub fn roster(&self, now: u64) -> Roster {
        let Some(federation) = self.federation() else {
            return Roster {
                federation: None,
                name: None,
                towns: Vec::new(),
            };
        };
        let mut towns: Vec<RosterTown> = Vec::new();
        for (key, grants) in &self.admissions {
            for a in grants.iter().filter(|a| a.issuer == federation) {
                let revoked = self
                    .revoked(key, &[a.issuer, *key], u64::MAX)
                    .map(|r| (r.at, r.act.reason.clone()));
                let delegates = self
                    .delegations
                    .iter()
                    .flat_map(|(dkey, ds)| ds.iter().map(move |d| (dkey, d)))
                    .filter(|(_, d)| d.issuer == *key)
                    .map(|(dkey, d)| RosterDelegate {
                        key: *dkey,
                        record: d.id,
                        name: d.act.name.clone(),
                        role: d.act.role.clone(),
                        kinds: d.act.kinds.clone(),
                        from: d.at,
                        until: d.act.until,
                        revoked: self
                            .revoked(dkey, &[*key, a.issuer, *dkey], u64::MAX)
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
        towns.sort_by(|a, b| fold(&a.town).cmp(&fold(&b.town)).then(a.from.cmp(&b.from)));
        for t in &mut towns {
            t.delegates
                .sort_by(|a, b| fold(&a.name).cmp(&fold(&b.name)).then(a.from.cmp(&b.from)));
        }
        Roster {
            federation: Some(federation),
            name: self.federation_name().map(str::to_owned),
            towns,
        }
    }
}

fn push<T>(
    map: &mut HashMap<AuthorKey, Vec<Entry<T>>>,
    key: AuthorKey,
    id: RecordId,
    issuer: AuthorKey,
    at: u64,
    act: T,
) {
    let entries = map.entry(key).or_default();
    if !entries.iter().any(|e| e.id == id) {
        entries.push(Entry {
            id,
            issuer,
            at,
            act,
        });
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
