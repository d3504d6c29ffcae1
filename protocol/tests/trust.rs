//! The ledger's rules, one case each: who may write in a federation and in open mode, what a
//! revocation or an expiry changes and from when, who may revise or retract.

use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::{
    Act, Admission, Delegation, Denied, Held, Ledger, Mode, Retraction, Revocation,
};
use cailloux_protocol::{Kind, Link, LinkRel, Publication, Record, RecordId, SigningKey};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn public(k: &SigningKey) -> AuthorKey {
    AuthorKey(k.verifying_key().to_bytes())
}

fn publication(town: &str, kind: Kind, links: Vec<Link>) -> Publication {
    let front = match kind {
        Kind::Experiment => "kind: experiment\noutcome: partial".to_owned(),
        Kind::Evaluation => format!(
            "kind: evaluation\nmethod: self\nindicators: [{{ name: tonnes, unit: t, value: 3 }}]\nlinks: [{{ rel: evaluates, id: \"{}\" }}]",
            RecordId([3; 32]).to_hex()
        ),
        _ => "kind: practice".to_owned(),
    };
    let text = format!(
        "---\n{front}\ntitle: Essai\nsummary: Essai.\nthemes: [food]\ntown: {town}\n---\nCorps.\n"
    );
    let mut p = cailloux_protocol::parse_publication(&text, None)
        .unwrap_or_else(|v| panic!("{v:?}"))
        .publication;
    p.links.retain(|l| l.rel == LinkRel::Evaluates);
    p.links.extend(links);
    p
}

/// The clock of the node these tests run: every record is dated well before it.
const NOW: u64 = 1_000_000;

/// A ledger, checked and applied in order like the store does.
struct World {
    ledger: Ledger,
}

impl World {
    fn new(mode: Mode) -> World {
        World {
            ledger: Ledger::new(mode),
        }
    }

    fn offer(&mut self, record: &Record) -> Result<(), Denied> {
        self.ledger.check(record, NOW)?;
        self.ledger.apply(record);
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
        // The revision's author retracts it: a retracted version hides nothing, so the
        // original is shown again.
        assert_eq!(
            reason(w.act(reviser, 60, retract(revision.id()))),
            "accepted"
        );
        assert!(w.ledger.is_retracted(&revision.id()));
        assert_eq!(w.ledger.hidden(), vec![revision.id()]);
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

fn supersedes(old: &Record) -> Vec<Link> {
    vec![Link {
        rel: LinkRel::Supersedes,
        id: old.id(),
    }]
}

fn retract(old: &Record) -> Act {
    Act::Retract(Retraction {
        id: old.id(),
        reason: "erreur".into(),
    })
}

#[test]
fn a_delegate_may_revise_only_records_of_the_kinds_it_may_publish() {
    let (fed, town, person) = (key(1), key(2), key(4));
    let mut w = World::new(Mode::Federation(public(&fed)));
    w.act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    w.act(&town, 20, delegate(&person, vec![Kind::Evaluation]))
        .unwrap_or_else(|e| panic!("{e}"));
    let experiment = w
        .publish(&town, 30, "Vallon", Kind::Experiment, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    // An evaluation it may publish; replacing the town's experiment with it, it may not.
    let revision = w.publish(
        &person,
        40,
        "Vallon",
        Kind::Evaluation,
        supersedes(&experiment),
    );
    let message = match &revision {
        Err(Denied::Refused { message, .. }) => message.clone(),
        _ => String::new(),
    };
    assert_eq!(reason(revision), "kind_not_allowed");
    assert!(
        message.contains("experiment") && message.contains(&experiment.id().short()),
        "{message}"
    );
    assert!(!w.ledger.is_superseded(&experiment.id()));
    // Its own kind it may revise.
    let evaluation = w
        .publish(&person, 50, "Vallon", Kind::Evaluation, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reason(w.publish(
            &person,
            60,
            "Vallon",
            Kind::Evaluation,
            supersedes(&evaluation)
        )),
        "accepted"
    );
}

#[test]
fn a_version_must_be_newer_than_the_record_it_replaces() {
    let (fed, town) = (key(1), key(2));
    let mut w = World::new(Mode::Federation(public(&fed)));
    let p = Kind::Practice;
    w.act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    let original = w
        .publish(&town, 100, "Vallon", p, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    for at in [50, 100] {
        let older = w.publish(&town, at, "Vallon", p, supersedes(&original));
        let message = match &older {
            Err(Denied::Refused { message, .. }) => message.clone(),
            _ => String::new(),
        };
        assert_eq!(reason(older), "not_newer", "dated {at}");
        assert!(message.contains("newer"), "{message}");
    }
    assert!(!w.ledger.is_superseded(&original.id()));
    assert_eq!(
        reason(w.publish(&town, 101, "Vallon", p, supersedes(&original))),
        "accepted"
    );
}

#[test]
fn a_retracted_version_hides_nothing() {
    let (fed, town) = (key(1), key(2));
    let mut w = World::new(Mode::Federation(public(&fed)));
    let p = Kind::Practice;
    w.act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    let first = w
        .publish(&town, 20, "Vallon", p, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    let second = w
        .publish(&town, 30, "Vallon", p, supersedes(&first))
        .unwrap_or_else(|e| panic!("{e}"));
    let third = w
        .publish(&town, 40, "Vallon", p, supersedes(&second))
        .unwrap_or_else(|e| panic!("{e}"));
    let hidden = |w: &World| -> Vec<RecordId> {
        let mut h = w.ledger.hidden();
        h.sort();
        h
    };
    let mut both = vec![first.id(), second.id()];
    both.sort();
    assert_eq!(hidden(&w), both);
    // Retracting the newest version brings back the one before it, not the first.
    w.act(&town, 50, retract(&third))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!w.ledger.is_superseded(&second.id()));
    assert!(w.ledger.is_superseded(&first.id()));
    let mut now = vec![first.id(), third.id()];
    now.sort();
    assert_eq!(hidden(&w), now);
    // Retracting that one too brings back the first.
    w.act(&town, 60, retract(&second))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!w.ledger.is_superseded(&first.id()));
    assert!(w.ledger.superseded_by(&first.id()).is_empty());
    assert!(!hidden(&w).contains(&first.id()));
}

/// The same records, restored into a new ledger and judged again from scratch, as a store does
/// when it opens: the ledger that every order of arrival should lead to.
fn rebuilt(records: &[&Record], mode: Mode) -> Ledger {
    let mut ledger = Ledger::new(mode);
    for r in records {
        ledger.restore(r.id(), Held::of(r));
    }
    ledger.settle();
    ledger
}

#[test]
fn a_town_that_revokes_itself_is_revoked_from_then_on_whatever_arrives_first() {
    let (fed, town, person) = (key(1), key(2), key(4));
    let mode = Mode::Federation(public(&fed));
    let mut w = World::new(mode);
    let p = Kind::Practice;
    let admission = w
        .act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    let delegation = w
        .act(&town, 20, delegate(&person, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let before = w
        .publish(&person, 30, "Vallon", p, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    let after = w
        .publish(&person, 60, "Vallon", p, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    // The town's key revokes itself at 40, after both records arrived: a revocation is judged
    // by the roster just before it, so it stands, and voids what its town vouched for since.
    let revocation = w
        .act(&town, 40, revoke(&town))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.ledger.is_voided(&after.id()));
    assert!(!w.ledger.is_voided(&before.id()) && !w.ledger.is_voided(&revocation.id()));
    assert_eq!(w.ledger.hidden(), vec![after.id()]);
    let all = [&admission, &delegation, &before, &after, &revocation];
    assert_eq!(rebuilt(&all, mode).hidden(), vec![after.id()]);
    // A second revocation of the same millisecond does not undo the first.
    let again = Record::sign_act(
        &town,
        40,
        Act::Revoke(Revocation {
            key: public(&town),
            reason: "encore".into(),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    w.offer(&again).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.ledger.hidden(), vec![after.id()]);
}

#[test]
fn a_record_dated_too_far_ahead_of_the_clock_waits() {
    let town = key(2);
    let ledger = Ledger::new(Mode::Open);
    let now = 1_764_000_000_000;
    let skew = cailloux_protocol::trust::MAX_CLOCK_SKEW_MS;
    let at = |t: u64| {
        Record::sign(&town, t, publication("Vallon", Kind::Practice, vec![]))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(ledger.check(&at(now + skew), now), Ok(()));
    let ahead = at(now + 2 * 3_600_000);
    match ledger.check(&ahead, now) {
        Err(Denied::Pending(message)) => {
            assert!(
                message.contains("2025-11-24T18:00:00.000Z")
                    && message.contains("2 h 0 min ahead")
                    && message.contains("2025-11-24T16:00:00.000Z")
                    && message.contains("10 minutes"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The same record, once the clock has caught up.
    assert_eq!(ledger.check(&ahead, now + 2 * 3_600_000 - skew), Ok(()));
}

#[test]
fn a_trial_leaves_the_ledger_as_it_was() {
    let (fed, town, person) = (key(1), key(2), key(4));
    let mode = Mode::Federation(public(&fed));
    let mut w = World::new(mode);
    let p = Kind::Practice;
    w.act(&fed, 10, admit(&town, "Vallon", None))
        .unwrap_or_else(|e| panic!("{e}"));
    w.act(&town, 20, delegate(&person, vec![]))
        .unwrap_or_else(|e| panic!("{e}"));
    let record = w
        .publish(&person, 60, "Vallon", p, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    let revocation = Record::sign_act(&town, 50, revoke(&person)).unwrap_or_else(|e| panic!("{e}"));
    let hidden = w.ledger.trial(|ledger| {
        ledger
            .check(&revocation, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        ledger.apply(&revocation)
    });
    assert_eq!(hidden.hidden, vec![record.id()]);
    assert!(!w.ledger.holds(&revocation.id()));
    assert!(!w.ledger.is_voided(&record.id()));
    assert!(w.ledger.hidden().is_empty());
    assert!(w.ledger.standing(&public(&person), 70).is_ok());
}
