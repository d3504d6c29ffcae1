//! What a node says about a record beside its signed fields, in its exports: where the record
//! stands in this node's ledger (`status`) and whether its town chains to this node's
//! federation (`certified`). Neither is signed: they are this node's reading of what it holds,
//! so `import` and `verify` check their form and never take them on trust.

use cailloux_protocol::Record;
use cailloux_protocol::trust::{Ledger, Mode};

/// Where a record stands: one word, the strongest reason first (a voided version that was also
/// retracted is `voided`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Shown by default listings.
    Current,
    /// A live version descends from it.
    Superseded,
    /// A valid retraction names it.
    Retracted,
    /// Its author did not stand when it was written (a revocation, a late one included), or it
    /// depends on a voided record.
    Voided,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Current,
        Status::Superseded,
        Status::Retracted,
        Status::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Superseded => "superseded",
            Status::Retracted => "retracted",
            Status::Voided => "voided",
        }
    }

    pub fn parse(word: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

/// A record's marks in an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub status: Status,
    /// True when the node belongs to a federation and the record's author chains to it at the
    /// record's creation time through a town the federation certified (or is the federation
    /// key). Always false in open mode, where a town is only what the signer claims.
    pub certified: bool,
}

/// The marks `ledger` gives `record`.
pub fn marks(ledger: &Ledger, record: &Record) -> Marks {
    let v = ledger.visibility(&record.id());
    let status = if v.voided {
        Status::Voided
    } else if v.retracted {
        Status::Retracted
    } else if v.superseded {
        Status::Superseded
    } else {
        Status::Current
    };
    let certified = matches!(ledger.mode(), Mode::Federation(_))
        && ledger
            .standing_for(
                &record.author(),
                record.created_at(),
                record.publication().map(|p| p.town.as_str()),
            )
            .is_ok_and(|s| s.federation || s.town.is_some());
    Marks { status, certified }
}
