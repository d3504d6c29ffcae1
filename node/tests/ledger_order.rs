//! The ledger's order independence, through the real store (`Store::insert_batch`, sled in a
//! temporary folder), the gate every node uses: random federations (a federation key, towns,
//! a town's replacement key, delegates with kind limits, admissions and delegations with and
//! without an end, revocations by whoever, publications, revisions and retractions by authors,
//! towns, other delegates and outsiders, dated before or after what they name) are offered in
//! several random orders and batchings, with catch-up modelled as offering again every record
//! not stored yet until a round stores nothing (refused and pending records come again later,
//! as in the real network). Every order must end with the same records shown, also once the
//! store is opened again (the ledger rebuilt from disk), and nothing may be hidden by a version
//! that is not itself shown.

use cailloux_node::store::{Filter, Outcome, Store};
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::{Act, Admission, Delegation, Mode, Retraction, Revocation};
use cailloux_protocol::{Kind, Link, LinkRel, Record, RecordId, SigningKey};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashSet};

/// Keys: 1 the federation, 2 and 3 towns, 4 town 2's replacement key (also "Vallon"), 5 to 7
/// practitioners, 8 an outsider.
const FEDERATION: u8 = 1;
const TOWNS: [(u8, &str); 3] = [(2, "Vallon"), (3, "Brieuc"), (4, "Vallon")];
const PEOPLE: [u8; 3] = [5, 6, 7];
/// Every key that signs something.
const SIGNERS: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// The node's clock: every record is dated well before it.
const NOW: u64 = 1_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn public(n: u8) -> AuthorKey {
    AuthorKey(key(n).verifying_key().to_bytes())
}

/// One record of a world, before it is dated and signed.
#[derive(Clone, Debug)]
enum Spec {
    Admit {
        town: usize,
        /// Valid for this long after the admission, or without end.
        lasts: Option<u64>,
    },
    Delegate {
        town: usize,
        person: usize,
        kinds: usize,
        lasts: Option<u64>,
    },
    Revoke {
        by: usize,
        key: usize,
    },
    Publish {
        by: usize,
        experiment: bool,
        /// For a practitioner, 0 to 2 pick a town that vouched for it, 3 any town; for a town,
        /// 3 is a town not its own.
        town: usize,
    },
    /// A new version of an earlier publication of the world.
    Revise {
        target: prop::sample::Index,
        /// 0 to 3: the target's author; 4 to 6: a key of the target's town; 7 and 8: a
        /// practitioner; 9: anyone.
        hand: usize,
        /// Under the target's town, or another one.
        same_town: bool,
        /// Dated this long after the target, or (`None`) at its own slot, before or after.
        after: Option<u64>,
        experiment: bool,
    },
    Retract {
        by: usize,
        target: prop::sample::Index,
    },
}

/// The roster most worlds start from: towns 2 and 3 admitted early (usually), the replacement
/// key 4 sometimes, each practitioner delegated by some town.
fn roster() -> impl Strategy<Value = Vec<(Spec, u64)>> {
    let lasts = prop::option::weighted(0.2, 30..200u64);
    let admission = |town: usize, p: f64| {
        prop::option::weighted(p, (lasts.clone(), 0..3u64))
            .prop_map(move |a| a.map(|(lasts, slot)| (Spec::Admit { town, lasts }, slot)))
    };
    let delegation = |person: usize, p: f64| {
        let town = prop_oneof![4 => 0..2usize, 1 => Just(2usize)];
        prop::option::weighted(p, (town, 0..4usize, 3..6u64)).prop_map(move |d| {
            d.map(|(town, kinds, slot)| {
                let lasts = None;
                (
                    Spec::Delegate {
                        town,
                        person,
                        kinds,
                        lasts,
                    },
                    slot,
                )
            })
        })
    };
    (
        admission(0, 0.9),
        admission(1, 0.9),
        admission(2, 0.4),
        (delegation(0, 0.9), delegation(1, 0.9), delegation(2, 0.9)),
        // A second town vouching for the same practitioner, sometimes.
        (delegation(0, 0.3), delegation(1, 0.3), delegation(2, 0.3)),
    )
        .prop_map(|(a, b, c, (d, e, f), (g, h, i))| {
            [a, b, c, d, e, f, g, h, i].into_iter().flatten().collect()
        })
}

/// A record of the world and the slot of time it falls in (admissions early, delegations soon
/// after, the rest anywhere): dense enough that most records stand, so that revocations,
/// expiries and revisions have something to act on.
fn spec() -> impl Strategy<Value = (Spec, u64)> {
    let lasts = prop::option::weighted(0.25, 20..200u64);
    let index = any::<prop::sample::Index>();
    prop_oneof![
        3 => (0..TOWNS.len(), lasts.clone(), 0..4u64)
            .prop_map(|(town, lasts, slot)| (Spec::Admit { town, lasts }, slot)),
        4 => (0..TOWNS.len(), 0..PEOPLE.len(), 0..4usize, lasts, 3..12u64).prop_map(
            |(town, person, kinds, lasts, slot)| {
                (Spec::Delegate { town, person, kinds, lasts }, slot)
            }
        ),
        // Mostly the federation or a town, of a town or a practitioner; sometimes anyone, of
        // anyone (the key itself, say).
        4 => (
            prop_oneof![2 => Just(0usize), 2 => 1..4usize, 1 => 4..8usize],
            prop_oneof![4 => 1..7usize, 1 => 0..8usize],
            6..20u64,
        )
            .prop_map(|(by, key, slot)| (Spec::Revoke { by, key }, slot)),
        // Mostly towns and practitioners; the federation and the outsider sometimes.
        10 => (
            prop_oneof![6 => 1..3usize, 1 => Just(3usize), 5 => 4..7usize, 1 => Just(0usize), 1 => Just(7usize)],
            0..4usize,
            any::<bool>(),
            2..20u64,
        )
            .prop_map(|(by, town, experiment, slot)| {
                // A town files under its own name, mostly.
                let town = match SIGNERS[by] {
                    2 | 4 if town != 3 => 0,
                    3 if town != 3 => 1,
                    _ => town,
                };
                (Spec::Publish { by, town, experiment }, slot)
            }),
        6 => (
            index.clone(),
            0..10usize,
            prop::bool::weighted(0.9),
            prop::option::weighted(0.75, 1..600u64),
            any::<bool>(),
            2..20u64,
        )
            .prop_map(|(target, hand, same_town, after, experiment, slot)| {
                (Spec::Revise { target, hand, same_town, after, experiment }, slot)
            }),
        3 => (prop_oneof![1..3usize, 0..SIGNERS.len()], index, 2..20u64)
            .prop_map(|(by, target, slot)| (Spec::Retract { by, target }, slot)),
    ]
}

fn practice(
    town: &str,
    experiment: bool,
    title: String,
    old: Option<RecordId>,
) -> cailloux_protocol::Publication {
    let front = if experiment {
        "kind: experiment\noutcome: partial"
    } else {
        "kind: practice"
    };
    let text = format!(
        "---\n{front}\ntitle: \"{title}\"\nsummary: Essai.\nthemes: [food]\ntown: {town}\n---\nCorps.\n"
    );
    let mut p = cailloux_protocol::parse_publication(&text, None)
        .unwrap_or_else(|v| panic!("{v:?}"))
        .publication;
    p.links.extend(old.map(|id| Link {
        rel: LinkRel::Supersedes,
        id,
    }));
    p
}

/// Signs the world: record `i` is dated `times[i]` (distinct times, in any order).
fn build(specs: &[Spec], times: &[u64]) -> Vec<Record> {
    let mut records = Vec::new();
    // (id, created_at, author, town) of each publication signed so far.
    let mut publications: Vec<(RecordId, u64, u8, &str)> = Vec::new();
    let mut used: HashSet<u64> = times.iter().copied().collect();
    for (i, (spec, at)) in specs.iter().zip(times).enumerate() {
        let at = *at;
        let act = |by: u8, act: Act| Record::sign_act(&key(by), at, act).ok();
        let record = match spec {
            Spec::Admit { town, lasts } => {
                let (k, name) = TOWNS[*town];
                act(
                    FEDERATION,
                    Act::Admit(Admission {
                        key: public(k),
                        town: name.into(),
                        country: "FR".into(),
                        code: None,
                        until: lasts.map(|l| at + l * 100),
                    }),
                )
            }
            Spec::Delegate {
                town,
                person,
                kinds,
                lasts,
            } => act(
                TOWNS[*town].0,
                Act::Delegate(Delegation {
                    key: public(PEOPLE[*person]),
                    name: format!("Personne {person}"),
                    role: None,
                    kinds: match kinds {
                        0 => vec![],
                        1 => vec![Kind::Practice],
                        2 => vec![Kind::Experiment],
                        _ => vec![Kind::Practice, Kind::Experiment],
                    },
                    until: lasts.map(|l| at + l * 100),
                }),
            ),
            Spec::Revoke { by, key } => act(
                SIGNERS[*by],
                Act::Revoke(Revocation {
                    key: public(SIGNERS[*key]),
                    reason: "départ".into(),
                }),
            ),
            Spec::Publish {
                by,
                town,
                experiment,
            } => {
                let author = SIGNERS[*by];
                // A practitioner files under a town that vouched for it, mostly.
                let name = match PEOPLE.iter().position(|p| *p == author) {
                    Some(person) if *town < 3 => {
                        let towns: Vec<&str> = specs
                            .iter()
                            .filter_map(|s| match s {
                                Spec::Delegate {
                                    town, person: p, ..
                                } if *p == person => Some(TOWNS[*town].1),
                                _ => None,
                            })
                            .collect();
                        towns
                            .get(*town % towns.len().max(1))
                            .copied()
                            .unwrap_or("Vallon")
                    }
                    _ => TOWNS[*town % 2].1,
                };
                let p = practice(name, *experiment, format!("Essai {i}"), None);
                let r = Record::sign(&key(author), at, p).ok();
                publications.extend(r.as_ref().map(|r| (r.id(), at, author, name)));
                r
            }
            Spec::Revise {
                target,
                hand,
                same_town,
                after,
                experiment,
            } => {
                if publications.is_empty() {
                    None
                } else {
                    let (old, old_at, old_author, old_town) = *target.get(&publications);
                    let author = match hand {
                        0..=3 => old_author,
                        4..=6 if old_town == "Brieuc" => 3,
                        4 | 5 => 2,
                        6 => 4,
                        7 | 8 => PEOPLE[i % PEOPLE.len()],
                        _ => SIGNERS[i % SIGNERS.len()],
                    };
                    let town = if *same_town {
                        old_town
                    } else if old_town == "Vallon" {
                        "Brieuc"
                    } else {
                        "Vallon"
                    };
                    let mut at = after.map_or(at, |d| old_at + d);
                    while !used.insert(at) {
                        at += 1;
                    }
                    let p = practice(town, *experiment, format!("Version {i}"), Some(old));
                    let r = Record::sign(&key(author), at, p).ok();
                    publications.extend(r.as_ref().map(|r| (r.id(), at, author, town)));
                    r
                }
            }
            Spec::Retract { by, target } => {
                if publications.is_empty() {
                    None
                } else {
                    act(
                        SIGNERS[*by],
                        Act::Retract(Retraction {
                            id: target.get(&publications).0,
                            reason: "erreur".into(),
                        }),
                    )
                }
            }
        };
        records.extend(record);
    }
    records
}

/// A small deterministic generator for orders and batch sizes (xorshift).
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.next(i + 1));
        }
    }
}

fn shown(store: &Store) -> BTreeSet<RecordId> {
    store
        .list(&Filter::default())
        .map(|r| r.map(|r| r.id()).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Offers the records in `dice`'s order and batches, again and again, until a round stores
/// nothing; a trial (`check_batch`) before each round must change nothing.
fn catch_up(store: &Store, records: &[Record], dice: &mut Dice) {
    let mut order: Vec<&Record> = records.iter().collect();
    dice.shuffle(&mut order);
    let mut stored: HashSet<RecordId> = HashSet::new();
    loop {
        let waiting: Vec<Record> = order
            .iter()
            .filter(|r| !stored.contains(&r.id()))
            .map(|r| (*r).clone())
            .collect();
        let before = shown(store);
        store
            .check_batch(&waiting, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(store), before, "a trial left a trace");
        let mut progress = false;
        let mut rest = waiting.as_slice();
        while !rest.is_empty() {
            let n = (1 + dice.next(8)).min(rest.len());
            let (batch, more) = rest.split_at(n);
            rest = more;
            let written = store
                .insert_batch(batch, NOW)
                .unwrap_or_else(|e| panic!("{e}"));
            for (r, o) in batch.iter().zip(&written.outcomes) {
                if *o == Outcome::New {
                    stored.insert(r.id());
                    progress = true;
                }
            }
        }
        if !progress {
            return;
        }
    }
}

/// Opens a store again. Sled lets go of its lock file from a background thread, shortly after
/// the last handle is dropped: wait for it a little.
fn reopen(path: &std::path::Path, mode: Mode) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(path, mode, cailloux_node::daemon::DEFAULT_STORE_CACHE_MB) {
            Ok(store) => return store,
            Err(cailloux_node::StoreError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Nothing is hidden by a version that is not itself shown: every publication that a version
/// hides has a descendant that is shown.
fn superseded_only_by_what_is_shown(store: &Store, records: &[Record]) -> Result<(), String> {
    let ledger = store.ledger();
    for r in records.iter().filter(|r| ledger.holds(&r.id())) {
        let id = r.id();
        if r.publication().is_none() || !ledger.visibility(&id).superseded {
            continue;
        }
        let mut stack: Vec<RecordId> = ledger.successors(&id).to_vec();
        let mut found = false;
        while let Some(next) = stack.pop() {
            if ledger.shows(&next) {
                found = true;
                break;
            }
            stack.extend_from_slice(ledger.successors(&next));
        }
        if !found {
            return Err(format!(
                "{id:?} is hidden by versions none of which is shown"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_order_of_arrival_shows_the_same_records(
        base in roster(),
        more in prop::collection::vec(spec(), 8..30),
        seed in 1..u64::MAX,
        federated in prop::bool::weighted(0.85),
    ) {
        let mut dice = Dice(seed);
        // Distinct times: the slot, then the record's place in the world.
        let (specs, times): (Vec<Spec>, Vec<u64>) = base
            .into_iter()
            .chain(more)
            .enumerate()
            .map(|(i, (spec, slot))| (spec, 1 + slot * 100 + i as u64))
            .unzip();
        let records = build(&specs, &times);
        let mode = if federated { Mode::Federation(public(FEDERATION)) } else { Mode::Open };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut seen: Vec<BTreeSet<RecordId>> = Vec::new();
        for n in 0..3 {
            let path = dir.path().join(format!("store-{n}"));
            {
                let store = Store::open(&path, mode, cailloux_node::daemon::DEFAULT_STORE_CACHE_MB).unwrap_or_else(|e| panic!("{e}"));
                catch_up(&store, &records, &mut dice);
                let listed = shown(&store);
                prop_assert_eq!(store.visible_len(), listed.len());
                superseded_only_by_what_is_shown(&store, &records).map_err(TestCaseError::fail)?;
                seen.push(listed);
            }
            let again = reopen(&path, mode);
            prop_assert_eq!(&shown(&again), &seen[n], "reopened, store {} shows something else", n);
        }
        prop_assert_eq!(&seen[0], &seen[1]);
        prop_assert_eq!(&seen[0], &seen[2]);
    }
}
