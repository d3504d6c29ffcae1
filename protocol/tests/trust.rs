//! The ledger's rules, one case each: who may write in a federation and in open mode, what a
//! revocation or an expiry changes and from when, who may revise or retract.

use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::{
    Act, Admission, Delegation, Denied, Known, Ledger, Mode, Retraction, Revocation,
};
use cailloux_protocol::{Kind, Link, LinkRel, Publication, Record, RecordId, SigningKey};
use std::collections::HashMap;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn public(k: &SigningKey) -> AuthorKey {
    AuthorKey(k.verifying_key().to_bytes())
}

fn publication(town: &str, kind: Kind, links: Vec<Link>) -> Publication {
    let front = match kind {
        Kind::Experiment => "kind: experiment\noutcome: partial",
        _ => "kind: practice",
    };
    let text = format!(
        "---\n{front}\ntitle: Essai\nsummary: Essai.\nthemes: [food]\ntown: {town}\n---\nCorps.\n"
    );
    let mut p = cailloux_protocol::parse_publication(&text, None)
        .unwrap_or_else(|v| panic!("{v:?}"))
        .publication;
    p.links = links;
    p
}

/// A ledger and the records it holds, checked and applied in order like the store does.
struct World {
    ledger: Ledger,
    held: HashMap<RecordId, Known>,
}

impl World {
    fn new(mode: Mode) -> World {
        World {
            ledger: Ledger::new(mode),
            held: HashMap::new(),
        }
    }

    fn offer(&mut self, record: &Record) -> Result<(), Denied> {
        let held = &self.held;
        self.ledger.check(record, |id| held.get(id).cloned())?;
        self.ledger.apply(record);
        self.held.insert(record.id(), Known::of(record));
        Ok(())
    }

    fn act(&mut self, by: &SigningKey, at: u64, act: Act) -> Result<Record, Denied> {
        let r = Record::sign_act(by, at, act).unwrap_or_else(|e| panic!("{e}"));
        self.offer(&r).map(|()| r)
    }

    fn publish(
        &mut self,
        by: &SigningKey,
        at: u64,
        town: &str,
        kind: Kind,
        links: Vec<Link>,
    ) -> Result<Record, Denied> {
        let r =
            Record::sign(by, at, publication(town, kind, links)).unwrap_or_else(|e| panic!("{e}"));
        self.offer(&r).map(|()| r)
    }
}

fn reason(r: Result<Record, Denied>) -> &'static str {
    match r {
        Ok(_) => "accepted",
        Err(Denied::Refused { reason, .. }) => reason,
        Err(Denied::Pending(_)) => "pending",
    }
}

fn admit(town: &SigningKey, name: &str, until: Option<u64>) -> Act {
    Act::Admit(Admission {
        key: public(town),
        town: name.into(),
        country: "FR".into(),
        code: None,
        until,
    })
}

fn delegate(person: &SigningKey, kinds: Vec<Kind>) -> Act {
    Act::Delegate(Delegation {
        key: public(person),
        name: "Jeanne".into(),
        role: None,
        kinds,
        until: None,
    })
}

fn revoke(k: &SigningKey) -> Act {
    Act::Revoke(Revocation {
        key: public(k),
        reason: "départ".into(),
    })
}

#[test]
fn a_federation_accepts_its_towns_and_their_delegates_only() {
    let (fed, town, other, person, outsider) = (key(1), key(2), key(3), key(4), key(5));
    let mut w = World::new(Mode::Federation(public(&fed)));
    let e = Kind::Experiment;
    assert_eq!(
        reason(w.publish(&town, 10, "Vallon", e, vec![])),
        "not_member"
    );
    assert_eq!(
        reason(w.act(&town, 11, admit(&other, "Autre", None))),
        "not_member"
    );
    assert_eq!(
        reason(w.act(&fed, 20, admit(&town, "Vallon", None))),
        "accepted"
    );
    // Only the federation admits, even a member town may not.
    assert_eq!(
        reason(w.act(&town, 22, admit(&other, "Autre", None))),
        "not_allowed"
    );
    assert_eq!(
        reason(w.act(&fed, 21, admit(&other, "Autre", Some(50)))),
        "accepted"
    );
    // Before its admission, after it, under another town's name.
    assert_eq!(
        reason(w.publish(&town, 19, "Vallon", e, vec![])),
        "not_member"
    );
    assert_eq!(
        reason(w.publish(&town, 30, "VALLON", e, vec![])),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&town, 30, "Autre", e, vec![])),
        "wrong_town"
    );
    // An admission's end.
    assert_eq!(
        reason(w.publish(&other, 50, "Autre", e, vec![])),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&other, 51, "Autre", e, vec![])),
        "not_member"
    );
    // The federation key signs acts, not publications; an outsider signs nothing that counts.
    assert_eq!(
        reason(w.publish(&fed, 30, "Vallon", e, vec![])),
        "not_allowed"
    );
    assert_eq!(
        reason(w.publish(&outsider, 30, "Vallon", e, vec![])),
        "not_member"
    );
    // A delegate, limited to practices; it may not delegate in turn.
    assert_eq!(
        reason(w.act(&town, 40, delegate(&person, vec![Kind::Practice]))),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&person, 41, "Vallon", Kind::Practice, vec![])),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&person, 41, "Vallon", e, vec![])),
        "kind_not_allowed"
    );
    assert_eq!(
        reason(w.act(&person, 42, delegate(&outsider, vec![]))),
        "not_allowed"
    );
    let standing = w
        .ledger
        .standing(&public(&person), 41)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(standing.town.as_deref(), Some("Vallon"));
    assert_eq!(standing.town_key, public(&town));
}

#[test]
fn a_revocation_counts_from_its_own_time_and_a_town_revocation_covers_its_delegates() {
    let (fed, town, person) = (key(1), key(2), key(4));
    let mut w = World::new(Mode::Federation(public(&fed)));
    let p = Kind::Practice;
    w.act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    w.act(&town, 20, delegate(&person, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    w.act(&town, 100, revoke(&person))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reason(w.publish(&person, 99, "Vallon", p, vec![])),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&person, 100, "Vallon", p, vec![])),
        "not_member"
    );
    // The federation revokes the town: its own and its (other) delegates' later records go.
    let second = key(6);
    w.act(&town, 110, delegate(&second, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    w.act(&fed, 200, revoke(&town))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reason(w.publish(&second, 150, "Vallon", p, vec![])),
        "accepted"
    );
    assert_eq!(
        reason(w.publish(&second, 200, "Vallon", p, vec![])),
        "not_member"
    );
    assert_eq!(
        reason(w.publish(&town, 201, "Vallon", p, vec![])),
        "not_member"
    );
    // A delegate may not revoke.
    assert_eq!(reason(w.act(&second, 150, revoke(&town))), "not_allowed");
    let roster = w.ledger.roster(300);
    assert_eq!(roster.towns.len(), 1);
    assert!(roster.towns[0].revoked.is_some() && !roster.towns[0].valid_now);
    assert_eq!(roster.towns[0].delegates.len(), 2);
}

#[test]
fn revisions_and_retractions_come_from_the_author_or_its_town_in_either_mode() {
    for federated in [false, true] {
        let (fed, town, person, stranger) = (key(1), key(2), key(4), key(7));
        let mode = if federated {
            Mode::Federation(public(&fed))
        } else {
            Mode::Open
        };
        let mut w = World::new(mode);
        let p = Kind::Practice;
        w.act(&fed, 10, admit(&town, "Vallon", None))
            .unwrap_or_else(|e| panic!("{e}"));
        w.act(&fed, 10, admit(&stranger, "Ailleurs", None))
            .unwrap_or_else(|e| panic!("{e}"));
        w.act(&town, 20, delegate(&person, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
        let original = w
            .publish(&person, 30, "Vallon", p, vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        let supersedes = vec![Link {
            rel: LinkRel::Supersedes,
            id: original.id(),
        }];
        let missing = vec![Link {
            rel: LinkRel::Supersedes,
            id: RecordId([9; 32]),
        }];
        assert_eq!(
            reason(w.publish(&person, 40, "Vallon", p, missing)),
            "pending"
        );
        assert_eq!(
            reason(w.publish(&stranger, 40, "Ailleurs", p, supersedes.clone())),
            "not_author",
            "federated: {federated}"
        );
        let retract = |id| {
            Act::Retract(Retraction {
                id,
                reason: "erreur".into(),
            })
        };
        assert_eq!(
            reason(w.act(&stranger, 41, retract(original.id()))),
            "not_author"
        );
        // Vouching for someone else's practitioner gives no hold on their records.
        w.act(&stranger, 42, delegate(&person, vec![]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reason(w.act(&stranger, 43, retract(original.id()))),
            "not_author"
        );
        assert_eq!(
            reason(w.act(&town, 41, retract(RecordId([8; 32])))),
            "pending"
        );
        // In a federation the town revises its delegate's record; in open mode, where a town's
        // vouching is only its own claim, only the author may. The new version hides the old.
        let reviser = if federated {
            &town
        } else {
            assert_eq!(
                reason(w.publish(&town, 45, "Vallon", p, supersedes.clone())),
                "not_author"
            );
            &person
        };
        let revision = w
            .publish(reviser, 50, "Vallon", p, supersedes)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(w.ledger.is_superseded(&original.id()));
        assert_eq!(
            w.ledger.history(&original.id()),
            vec![original.id(), revision.id()]
        );
        // The revision's author retracts it.
        assert_eq!(
            reason(w.act(reviser, 60, retract(revision.id()))),
            "accepted"
        );
        assert!(w.ledger.is_retracted(&revision.id()));
        let hidden: Vec<RecordId> = w.ledger.hidden().copied().collect();
        assert!(hidden.contains(&original.id()) && hidden.contains(&revision.id()));
    }
}

#[test]
fn acts_round_trip_and_break_no_rule_silently() {
    let fed = key(1);
    let r = Record::sign_act(&fed, 5, admit(&key(2), "Vallon", Some(99)))
        .unwrap_or_else(|e| panic!("{e}"));
    let back = cailloux_protocol::Unverified::decode(r.bytes().to_vec())
        .and_then(|u| u.verify().map_err(|_| panic!("signature")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.act(), r.act());
    assert!(back.publication().is_none());
    // Rules: an empty town, a self-admission.
    let bad = Record::sign_act(&fed, 5, admit(&fed, " ", None));
    let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("town: is empty"), "{message}");
    assert!(
        message.contains("key: is the signing key itself"),
        "{message}"
    );
}
