//! Full-text search over 100,000 synthetic French records (generated from a vocabulary, with
//! accents and plurals): index build rate, and query latency p50/p99 for one-word, two-word and
//! filtered queries through `SearchIndex::search` (the code path of `cailloux search` and of
//! `GET /api/v1/records`, snippets and the exact total included), beside SQLite FTS5 (bundled SQLite, unicode61
//! tokenizer with diacritics removed, bm25 ranking, snippets) on the same records in the same
//! run, as ratios.
//!
//! Run: `cargo bench -p cailloux-node --bench search` (optionally `-- 20000` for fewer records).

mod common;

use cailloux_node::Store;
use cailloux_node::search::{SearchIndex, SearchQuery};
use cailloux_protocol::{Kind, Outcome, Publication, Record, SigningKey, Theme};
use common::quantile;
use std::time::Instant;

const WORDS: &[&str] = &[
    "jardin",
    "jardins",
    "partagé",
    "partagés",
    "habitant",
    "habitants",
    "commune",
    "communes",
    "école",
    "écoles",
    "cantine",
    "cantines",
    "bio",
    "énergie",
    "énergies",
    "solaire",
    "toiture",
    "toitures",
    "chaufferie",
    "bois",
    "forêt",
    "forêts",
    "nourricière",
    "nourricières",
    "méthanisation",
    "biogaz",
    "déchets",
    "compost",
    "composteur",
    "réemploi",
    "réparation",
    "mobilité",
    "vélo",
    "vélos",
    "pédibus",
    "hippobus",
    "transport",
    "quartier",
    "quartiers",
    "association",
    "associations",
    "bénévole",
    "bénévoles",
    "chantier",
    "chantiers",
    "convention",
    "élu",
    "élus",
    "conseil",
    "participatif",
    "participation",
    "concertation",
    "budget",
    "subvention",
    "évaluation",
    "enquête",
    "indicateur",
    "résultat",
    "résultats",
    "réussite",
    "échec",
    "abandon",
    "leçon",
    "leçons",
    "méthode",
    "étape",
    "étapes",
    "terrain",
    "parcelle",
    "parcelles",
    "récolte",
    "récoltes",
    "légume",
    "légumes",
    "verger",
    "vergers",
    "arbre",
    "arbres",
    "haie",
    "haies",
    "bocage",
    "eau",
    "pluie",
    "sécheresse",
    "arrosage",
    "biodiversité",
    "insecte",
    "insectes",
    "prairie",
    "friche",
    "friches",
    "logement",
    "logements",
    "rénovation",
    "isolation",
    "chauffage",
    "économie",
    "économies",
    "emploi",
    "insertion",
    "jeunesse",
    "jeunes",
    "enfant",
    "enfants",
    "famille",
    "familles",
    "personne",
    "âgée",
    "âgées",
    "lien",
    "social",
    "culture",
    "fête",
    "fêtes",
    "patrimoine",
    "mine",
    "terril",
    "terrils",
    "transition",
    "vision",
    "caillou",
    "cailloux",
    "blanc",
    "blancs",
    "coopérative",
    "régie",
    "agricole",
    "agriculteur",
    "agriculteurs",
    "marché",
    "marchés",
    "circuit",
    "court",
    "alimentation",
    "repas",
    "restauration",
];

const FUNCTION_WORDS: &[&str] = &[
    "la", "le", "les", "des", "de", "et", "un", "une", "pour", "avec", "dans", "sur", "par", "au",
    "aux", "est", "sont", "qui", "que", "en",
];
const SYLLABLES: &[&str] = &[
    "ma", "ri", "lé", "ton", "ché", "vu", "ille", "pra", "gno", "sel", "dou", "fè", "bar", "quin",
    "ré", "mon", "tu", "lo", "vè", "zan",
];
const VOCABULARY: usize = 6000;

/// The vocabulary by rank: function words, then the real words, then pseudo-French words made
/// of syllables. Words are drawn with probability about 1/rank (Zipf), as in real text.
fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = FUNCTION_WORDS
        .iter()
        .chain(WORDS)
        .map(|w| w.to_string())
        .collect();
    let mut i = 0usize;
    while v.len() < VOCABULARY {
        let n = SYLLABLES.len();
        v.push(format!(
            "{}{}{}",
            SYLLABLES[i % n],
            SYLLABLES[(i / n) % n],
            SYLLABLES[(i / (n * n) + i) % n]
        ));
        i += 1;
    }
    v
}

fn text(vocabulary: &[String], seed: u64, n: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let ln = (vocabulary.len() as f64).ln();
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let rank = ((u * ln).exp() as usize)
                .saturating_sub(1)
                .min(vocabulary.len() - 1);
            vocabulary[rank].as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn records(n: usize) -> Vec<Record> {
    let key = SigningKey::from_bytes(&[3; 32]);
    let vocabulary = vocabulary();
    let text = |seed: u64, n: usize| text(&vocabulary, seed, n);
    (0..n)
        .map(|i| {
            let i64 = i as u64;
            let kind = Kind::ALL[i % 3];
            let p = Publication {
                kind,
                title: text(i64, 8),
                summary: text(i64 + 1_000_000, 35),
                language: "fr".into(),
                town: format!("Commune-{}", i % 400),
                themes: vec![
                    Theme::ALL[i % 15],
                    Theme::ALL[(i % 15 + 1 + (i / 15) % 14) % 15],
                ],
                tags: vec![text(i64 + 7, 1)],
                sdgs: Vec::new(),
                period: None,
                participation: None,
                licence: "etalab-2.0".into(),
                links: if kind == Kind::Evaluation {
                    vec![cailloux_protocol::Link {
                        rel: cailloux_protocol::LinkRel::Evaluates,
                        id: cailloux_protocol::RecordId([1; 32]),
                    }]
                } else {
                    Vec::new()
                },
                outcome: (kind == Kind::Experiment).then_some(Outcome::ALL[i % 4]),
                need: None,
                method: (kind == Kind::Evaluation).then_some(cailloux_protocol::Method::Survey),
                indicators: if kind == Kind::Evaluation {
                    vec![cailloux_protocol::Indicator {
                        name: "n".into(),
                        unit: "u".into(),
                        value: cailloux_protocol::Number::Int(1),
                        baseline: None,
                        target: None,
                        date: None,
                        source: None,
                    }]
                } else {
                    Vec::new()
                },
                attachments: Vec::new(),
                body: format!(
                    "## Contexte\n{}\n\n## Résultats\n{}\n",
                    text(i64 + 2_000_000, 150),
                    text(i64 + 3_000_000, 100)
                ),
            };
            Record::sign(&key, 1_600_000_000_000 + i64 * 1000, p).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn latencies(mut run: impl FnMut(usize) -> usize, n: usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(n);
    let mut hits = 0;
    for i in 0..n {
        let t = Instant::now();
        hits += run(i);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (quantile(times.clone(), 0.5), quantile(times, 0.99), hits)
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    eprintln!("generating and signing {n} records…");
    let records = records(n);
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("store"),
        cailloux_protocol::Mode::Open,
        cailloux_node::daemon::DEFAULT_STORE_CACHE_MB,
    )?;
    for chunk in records.chunks(2048) {
        store.insert_batch(chunk, cailloux_node::now_millis())?;
    }

    // Build: tantivy through SearchIndex, SQLite FTS5 with the same text.
    let t = Instant::now();
    let index = SearchIndex::rebuild(&dir.path().join("index"), &store, &mut |_| {})?;
    let tantivy_build = n as f64 / t.elapsed().as_secs_f64();
    let db = rusqlite::Connection::open(dir.path().join("fts.sqlite"))?;
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE VIRTUAL TABLE t USING fts5(title, summary, tags, body, kind UNINDEXED, themes UNINDEXED, id UNINDEXED,
                                           tokenize = 'unicode61 remove_diacritics 2');",
    )?;
    let t = Instant::now();
    let tx = db.unchecked_transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO t (title, summary, tags, body, kind, themes, id) VALUES (?, ?, ?, ?, ?, ?, ?)")?;
        for r in &records {
            let Some(p) = r.publication() else { continue };
            let themes: Vec<&str> = p.themes.iter().map(|t| t.slug()).collect();
            insert.execute(rusqlite::params![
                p.title,
                p.summary,
                p.tags.join(" "),
                p.body,
                p.kind.slug(),
                format!(" {} ", themes.join(" ")),
                r.id().to_hex()
            ])?;
        }
    }
    tx.commit()?;
    let fts_build = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{n} records; index build: tantivy {tantivy_build:.0} records/s, FTS5 {fts_build:.0} records/s ({:.2}x)",
        tantivy_build / fts_build
    );

    // Queries: the same words for both; FTS5 gets prefix queries for plurals (it does not stem).
    let q = |i: usize| WORDS[(i * 7) % WORDS.len()];
    let q2 = |i: usize| {
        format!(
            "{} {}",
            WORDS[(i * 7) % WORDS.len()],
            WORDS[(i * 13 + 5) % WORDS.len()]
        )
    };
    let runs = 300;
    let search = |text: String, filtered: bool| -> usize {
        let query = SearchQuery {
            text,
            kind: filtered.then_some(Kind::Practice),
            theme: filtered.then_some(Theme::Food),
            limit: 10,
            ..SearchQuery::default()
        };
        index
            .search(&query, &store)
            .map(|r| r.hits.len())
            .unwrap_or(0)
    };
    let mut fts = db.prepare(
        "SELECT id, snippet(t, 3, '<mark>', '</mark>', '…', 20) FROM t WHERE t MATCH ?1 ORDER BY bm25(t, 3.0, 1.5, 1.5, 1.0) LIMIT 10",
    )?;
    let mut fts_filtered = db.prepare(
        "SELECT id, snippet(t, 3, '<mark>', '</mark>', '…', 20) FROM t WHERE t MATCH ?1 AND kind = 'practice' AND themes LIKE '% food %' ORDER BY bm25(t, 3.0, 1.5, 1.5, 1.0) LIMIT 10",
    )?;
    let fold = |w: &str| {
        w.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
    };
    let fts_query = |text: &str| {
        text.split(' ')
            .map(|w| format!("{}*", fold(w)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let rows = |stmt: &mut rusqlite::Statement, text: &str| -> usize {
        stmt.query_map([fts_query(text)], |row| row.get::<_, String>(1))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    println!(
        "{:<18} {:>14} {:>14} {:>14} {:>14} {:>10}",
        "query", "tantivy p50", "tantivy p99", "FTS5 p50", "FTS5 p99", "p99 ratio"
    );
    type MakeQuery<'a> = Box<dyn Fn(usize) -> String + 'a>;
    let cases: [(&str, MakeQuery, bool); 3] = [
        ("one word", Box::new(|i| q(i).to_owned()), false),
        ("two words", Box::new(q2), false),
        ("one word + filters", Box::new(|i| q(i).to_owned()), true),
    ];
    for (name, make, filtered) in cases {
        let (t50, t99, th) = latencies(|i| search(make(i), filtered), runs);
        let stmt = if filtered {
            &mut fts_filtered
        } else {
            &mut fts
        };
        let (f50, f99, fh) = latencies(|i| rows(stmt, &make(i)), runs);
        println!(
            "{name:<18} {:>11.3} ms {:>11.3} ms {:>11.3} ms {:>11.3} ms {:>9.1}x   (hits: {th} / {fh})",
            t50,
            t99,
            f50,
            f99,
            f99 / t99
        );
    }
    // Every tantivy page above also carries the exact total of matches (a count beside the
    // ranking, which visits every match anyway); FTS5 needs a second query for it.
    let mut fts_count = db.prepare("SELECT count(*) FROM t WHERE t MATCH ?1")?;
    let (t50, t99, th) = latencies(|i| search(q(i).to_owned(), false), runs);
    let (f50, f99, fh) = latencies(
        |i| {
            let counted: i64 = fts_count
                .query_row([fts_query(q(i))], |row| row.get(0))
                .unwrap_or(0);
            rows(&mut fts, q(i)) + usize::from(counted < 0)
        },
        runs,
    );
    println!(
        "{:<18} {:>11.3} ms {:>11.3} ms {:>11.3} ms {:>11.3} ms {:>9.1}x   (hits: {th} / {fh})",
        "one word + total",
        t50,
        t99,
        f50,
        f99,
        f99 / t99
    );
    println!(
        "ratio = FTS5 p99 / tantivy p99 (higher is better for tantivy); both return the top 10 with snippets, and every tantivy page its exact total (FTS5 counts it only on the last line)"
    );
    Ok(())
}
