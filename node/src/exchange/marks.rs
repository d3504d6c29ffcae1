//! What a node says about a record beside its signed fields, in its exports: where the record
//! stands in this node's ledger (`status`) and whether its town chains to this node's
//! federation (`certified`). Neither is signed: they are this node's reading of what it holds,
//! so `import` and `verify` check their form and never take them on trust.

use cailloux_protocol::Record;
use cailloux_protocol::trust::{Ledger, Mode};
use cailloux_protocol::vocab::fold;

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
    // The chain must go through the town the record is filed under: a key that two towns
    // vouch for is certified for a record only through that record's own town.
    let filed = record.publication().map(|p| fold(&p.town));
    let certified = matches!(ledger.mode(), Mode::Federation(_))
        && ledger
            .standing_for(&record.author(), record.created_at(), filed.as_deref())
            .is_ok_and(|s| {
                s.federation
                    || s.town
                        .as_deref()
                        .is_some_and(|t| filed.as_ref().is_none_or(|f| fold(t) == *f))
            });
    Marks { status, certified }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::world::*;

    #[test]
    fn each_record_gets_the_strongest_reason_and_only_members_are_certified() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(&dir, "federation");
        let (admission, delegation) = (admit(2, "Vallon", 10), delegate(2, 4, 20));
        let first = publish(4, 50, "Vallon", None);
        let second = publish(4, 60, "Vallon", Some(&first));
        let gone = publish(2, 70, "Vallon", None);
        let retraction = retract(2, &gone, 80);
        // The delegate is revoked at 100; its record of 150 arrives first, and is voided when
        // the revocation comes; the town retracts it too: voided is the stronger reason.
        let late = publish(4, 150, "Vallon", None);
        let late_retraction = retract(2, &late, 160);
        insert(
            &store,
            &[
                admission,
                delegation,
                first.clone(),
                second.clone(),
                gone.clone(),
                retraction,
                late.clone(),
                late_retraction,
            ],
        );
        insert(&store, &[revoke(2, 4, 100)]);
        let of = |r: &Record| marks(&store.ledger(), r);
        let expect = |status, certified| Marks { status, certified };
        assert_eq!(of(&first), expect(Status::Superseded, true));
        assert_eq!(of(&second), expect(Status::Current, true));
        assert_eq!(of(&gone), expect(Status::Retracted, true));
        assert_eq!(of(&late), expect(Status::Voided, false));

        // In open mode a town is only what the signer says: no one is certified.
        let open_store = reopen(&dir.path().join("open"), Mode::Open);
        let anyone = publish(9, 50, "Vallon", None);
        insert(&open_store, std::slice::from_ref(&anyone));
        assert_eq!(
            marks(&open_store.ledger(), &anyone),
            expect(Status::Current, false)
        );
    }
}
