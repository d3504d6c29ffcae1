//! The node's corpus as an open-data catalogue: DCAT-AP 3.0 in JSON-LD, what data.gouv.fr and
//! the European data portal harvest (`GET /api/v1/catalog.jsonld`).
//!
//! One `dcat:Dataset` per town present, and one for the whole corpus; each has two
//! distributions, the JSONL export and the CSV `records` table, whose download URLs are the
//! export filtered to that town. Themes map to the EU "data theme" vocabulary, the temporal
//! coverage spans the records' periods, the town is the publisher of its dataset, and the read
//! API is a `dcat:DataService`. The `@context` is inline: a harvester (or a test) needs nothing
//! but the document.
//!
//! Who publishes a town's dataset depends on what the node knows: in a federation, every record
//! it holds chains to a town the federation certified, and that town is the publisher; in open
//! mode a town is only what a record's signer wrote, so the node itself publishes every dataset
//! ("filed under" the town), and says so.
//!
//! Building it reads every current record (`Corpus::scan`), so the answer is made from a summary
//! kept for `CORPUS_TTL`, and its rendering is kept beside it for the last base URL asked: a
//! visitor asking again and again costs one scan a minute, whatever the rate. While a summary is
//! made again, other requests are answered from the one before (only the very first summary is
//! waited for). At most `MAX_TOWN_DATASETS` towns get a dataset of their own (those with the
//! most records), so the answer stays bounded whatever the towns signers name.

use crate::store::{Filter, Store, StoreError};
use cailloux_protocol::Theme;
use cailloux_protocol::time::{PartialDate, rfc3339_millis};
use cailloux_protocol::vocab::fold;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a corpus summary is reused before the store is read again.
pub const CORPUS_TTL: Duration = Duration::from_secs(60);

/// Towns with a dataset of their own, at most (those with the most records); the corpus's
/// dataset holds every record whatever their number. About 3 KB of JSON-LD each.
pub const MAX_TOWN_DATASETS: usize = 500;

/// The EU data theme a Cailloux theme belongs to
/// (<http://publications.europa.eu/resource/authority/data-theme>).
pub fn data_theme(theme: Theme) -> (&'static str, &'static str) {
    match theme {
        Theme::Energy => ("ENER", "Energy"),
        Theme::Food => ("AGRI", "Agriculture, fisheries, forestry and food"),
        Theme::Economy => ("ECON", "Economy and finance"),
        Theme::Culture | Theme::Education => ("EDUC", "Education, culture and sport"),
        Theme::SocialAction | Theme::SocialLink => ("SOCI", "Population and society"),
        Theme::Mobility => ("TRAN", "Transport"),
        Theme::Participation | Theme::Governance => ("GOVE", "Government and public sector"),
        Theme::Biodiversity
        | Theme::EcoConstruction
        | Theme::NaturalEnvironment
        | Theme::Water
        | Theme::Waste => ("ENVI", "Environment"),
    }
}

const DATA_THEMES: &str = "http://publications.europa.eu/resource/authority/data-theme";

/// What the catalogue says of a set of records.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// The town's name as its newest record spells it.
    pub name: String,
    pub records: u64,
    pub themes: BTreeSet<&'static str>,
    pub licences: BTreeSet<String>,
    pub languages: BTreeSet<String>,
    /// The earliest day a record's period (or, without one, its creation) covers.
    pub start: Option<(u16, u8, u8)>,
    /// The latest.
    pub end: Option<(u16, u8, u8)>,
    /// The newest record's creation time.
    pub modified: u64,
}

impl Part {
    fn add(&mut self, record: &cailloux_protocol::Record, p: &cailloux_protocol::Publication) {
        self.records += 1;
        if record.created_at() >= self.modified {
            self.modified = record.created_at();
            self.name = p.town.clone();
        }
        self.themes
            .extend(p.themes.iter().map(|t| data_theme(*t).0));
        self.licences.insert(p.licence.clone());
        self.languages.insert(p.language.clone());
        let created = created_day(record.created_at());
        let (first, last) = match &p.period {
            Some(period) => (
                first_day(period.start),
                period.end.map_or(last_day(period.start), last_day),
            ),
            None => (created, created),
        };
        self.start = Some(self.start.map_or(first, |s| s.min(first)));
        self.end = Some(self.end.map_or(last, |e| e.max(last)));
    }
}

/// The corpus by town, and in all.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// By folded town name.
    pub towns: BTreeMap<String, Part>,
    pub all: Part,
}

impl Corpus {
    /// Reads every current publication (blocking).
    pub fn scan(store: &Store) -> Result<Corpus, StoreError> {
        let mut corpus = Corpus::default();
        for record in store.iter_oldest_first(&Filter::default()) {
            let record = record?;
            let Some(p) = record.publication() else {
                continue;
            };
            corpus
                .towns
                .entry(fold(&p.town))
                .or_default()
                .add(&record, p);
            corpus.all.add(&record, p);
        }
        Ok(corpus)
    }
}

/// A corpus summary, made again once it is older than `CORPUS_TTL`, and the catalogue last
/// rendered from it.
#[derive(Debug, Default)]
pub struct CorpusCache {
    /// Held only to read or swap what it holds, never during a scan.
    held: Mutex<Option<Held>>,
    /// Set while a stale summary is being made again (by one request; the others are answered
    /// from the stale one).
    refreshing: AtomicBool,
    /// Serialises the first scan, when there is nothing to answer from yet.
    first: Mutex<()>,
}

#[derive(Debug)]
struct Held {
    at: Instant,
    corpus: Arc<Corpus>,
    /// The catalogue rendered from `corpus`, for one base URL.
    rendered: Option<(String, Arc<[u8]>)>,
}

/// Clears `refreshing` when the refresh ends, however it ends.
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl CorpusCache {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store_fresh(&self, corpus: Arc<Corpus>) {
        *self.held() = Some(Held {
            at: Instant::now(),
            corpus,
            rendered: None,
        });
    }

    /// The summary: the one held while it is fresh; when it is stale, a new one made by this
    /// caller if no other is making one, else the stale one. Blocking (it may read the store).
    pub fn get(&self, store: &Store) -> Result<Arc<Corpus>, StoreError> {
        let current = self.held().as_ref().map(|h| (h.at, h.corpus.clone()));
        match current {
            Some((at, corpus)) if at.elapsed() < CORPUS_TTL => Ok(corpus),
            Some((_, stale)) => {
                if self.refreshing.swap(true, Ordering::AcqRel) {
                    return Ok(stale);
                }
                let _refreshing = Refreshing(&self.refreshing);
                let fresh = Arc::new(Corpus::scan(store)?);
                self.store_fresh(fresh.clone());
                Ok(fresh)
            }
            None => {
                let _first = self.first.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(h) = self.held().as_ref() {
                    return Ok(h.corpus.clone());
                }
                let fresh = Arc::new(Corpus::scan(store)?);
                self.store_fresh(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// The catalogue as JSON-LD bytes for `node` (blocking): rendered again only when the
    /// summary or the base URL changed.
    pub fn catalog(&self, store: &Store, node: &Node<'_>) -> Result<Arc<[u8]>, StoreError> {
        let corpus = self.get(store)?;
        if let Some(h) = self.held().as_ref()
            && Arc::ptr_eq(&h.corpus, &corpus)
            && let Some((base, bytes)) = &h.rendered
            && base == node.base
        {
            return Ok(bytes.clone());
        }
        let bytes: Arc<[u8]> = serde_json::to_vec(&catalog(&corpus, node))
            .unwrap_or_default()
            .into();
        if let Some(h) = self.held().as_mut()
            && Arc::ptr_eq(&h.corpus, &corpus)
        {
            h.rendered = Some((node.base.to_owned(), bytes.clone()));
        }
        Ok(bytes)
    }
}

/// Who runs the node, for the catalogue's publisher.
#[derive(Clone, Debug)]
pub struct Node<'a> {
    /// `https://cailloux.example-town.fr`, without a trailing `/`.
    pub base: &'a str,
    /// The node's own town, when it has one.
    pub town: Option<&'a str>,
    /// Whether the node belongs to a federation (its records' towns are then certified).
    pub federated: bool,
}

/// The catalogue, in JSON-LD.
pub fn catalog(corpus: &Corpus, node: &Node<'_>) -> Value {
    let base = node.base;
    let service = format!("{base}/#api");
    let mut datasets = vec![dataset(
        &format!("{base}/#corpus"),
        "Cailloux : tout le corpus de ce nœud",
        &format!(
            "Les {} publications (retours d'expérience, fiches pratiques, résultats d'évaluation) que ce nœud du réseau Cailloux tient, de {} commune(s), signées par leurs auteurs.",
            corpus.all.records,
            corpus.towns.len()
        ),
        &corpus.all,
        None,
        node,
        &service,
    )];
    // The towns with the most records first, at most `MAX_TOWN_DATASETS` of them; then in
    // the order of their names, so the document is stable.
    let mut towns: Vec<&Part> = corpus.towns.values().collect();
    towns.sort_by(|a, b| b.records.cmp(&a.records).then_with(|| a.name.cmp(&b.name)));
    towns.truncate(MAX_TOWN_DATASETS);
    towns.sort_by_key(|p| fold(&p.name));
    for part in towns {
        let (title, description) = if node.federated {
            (
                format!("Cailloux : publications de {}", part.name),
                format!(
                    "Les {} publications de {} que ce nœud du réseau Cailloux tient : retours d'expérience, fiches pratiques et résultats d'évaluation, signés par la commune ou ses délégués, que la fédération a certifiés.",
                    part.records, part.name
                ),
            )
        } else {
            (
                format!("Cailloux : publications déposées au nom de {}", part.name),
                format!(
                    "Les {} publications que ce nœud du réseau Cailloux tient et que leurs auteurs ont déposées au nom de {} : ce nœud n'appartient à aucune fédération, la commune n'est donc que ce que dit la signature.",
                    part.records, part.name
                ),
            )
        };
        datasets.push(dataset(
            &format!("{base}/#town/{}", url_encode(&fold(&part.name))),
            &title,
            &description,
            part,
            Some(&part.name),
            node,
            &service,
        ));
    }
    let publisher_name = node.town.unwrap_or("Nœud Cailloux");
    json!({
        "@context": context(),
        "@id": format!("{base}/api/v1/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": fr("Cailloux : le corpus d'un nœud du réseau"),
        "dct:description": fr("Retours d'expérience, fiches pratiques et résultats d'évaluation que des communes partagent sur le réseau Cailloux, chacun signé par la commune qui l'a écrit et vérifiable par tous."),
        "dct:publisher": agent(&format!("{base}/#publisher"), publisher_name),
        "dct:identifier": format!("{base}/api/v1/catalog.jsonld"),
        "dct:language": language("fr"),
        "dct:modified": date_time(corpus.all.modified),
        "foaf:homepage": document(&format!("{base}/")),
        "dcat:themeTaxonomy": {
            "@id": DATA_THEMES,
            "@type": "skos:ConceptScheme",
            "dct:title": { "@value": "Data theme", "@language": "en" },
        },
        "dcat:dataset": datasets,
        "dcat:service": {
            "@id": service,
            "@type": "dcat:DataService",
            "dct:title": fr("L'API de lecture du nœud Cailloux"),
            "dct:description": fr("Recherche, fiches et exports du corpus ; décrite en OpenAPI."),
            "dcat:endpointURL": resource(&format!("{base}/api/v1/")),
            "dcat:endpointDescription": resource(&format!("{base}/api/v1/openapi.json")),
            "dcat:servesDataset": { "@id": format!("{base}/#corpus") },
            "dct:license": licence("etalab-2.0"),
        },
    })
}

#[allow(clippy::too_many_arguments)]
fn dataset(
    id: &str,
    title: &str,
    description: &str,
    part: &Part,
    town: Option<&str>,
    node: &Node<'_>,
    service: &str,
) -> Value {
    let base = node.base;
    let filter = town.map_or(String::new(), |t| format!("&town={}", url_encode(t)));
    let licence_of = || -> Value {
        match part.licences.iter().collect::<Vec<_>>().as_slice() {
            [one] => licence(one),
            _ => Value::Null,
        }
    };
    let distribution = |suffix: &str, title: &str, format: &str, media: &str, query: &str| {
        let mut d = json!({
            "@id": format!("{id}/{suffix}"),
            "@type": "dcat:Distribution",
            "dct:title": fr(title),
            "dcat:accessURL": resource(&format!("{base}/api/v1/export?{query}{filter}")),
            "dcat:downloadURL": resource(&format!("{base}/api/v1/export?{query}{filter}")),
            "dcat:mediaType": {
                "@id": format!("https://www.iana.org/assignments/media-types/{media}"),
                "@type": "dct:MediaType",
            },
            "dct:format": {
                "@id": format!("http://publications.europa.eu/resource/authority/file-type/{format}"),
                "@type": "dct:MediaTypeOrExtent",
            },
            "dcat:accessService": { "@id": service },
        });
        match licence_of() {
            Value::Null => {
                d["dct:rights"] = json!({
                    "@type": "dct:RightsStatement",
                    "rdfs:label": fr(&format!(
                        "Chaque publication porte sa licence (champ licence) : {}",
                        part.licences.iter().cloned().collect::<Vec<_>>().join(", ")
                    )),
                });
            }
            l => d["dct:license"] = l,
        }
        d
    };
    let keywords: Vec<Value> = ["retour d'expérience", "évaluation", "transition", "commune"]
        .into_iter()
        .map(fr)
        .collect();
    let mut d = json!({
        "@id": id,
        "@type": "dcat:Dataset",
        "dct:title": fr(title),
        "dct:description": fr(description),
        "dct:identifier": id,
        "dct:modified": date_time(part.modified),
        "dcat:keyword": keywords,
        "dcat:theme": part.themes.iter().map(|code| theme_concept(code)).collect::<Vec<_>>(),
        "dct:language": part.languages.iter().map(|l| language(l)).collect::<Vec<_>>(),
        "dcat:distribution": [
            distribution("jsonl", "Export JSON Lines : chaque publication et son enregistrement signé", "JSON", "application/jsonl", "format=jsonl"),
            distribution("csv", "Export CSV : une ligne par publication", "CSV", "text/csv", "format=csv&table=records"),
        ],
        "dcat:landingPage": document(&format!("{base}/")),
    });
    if let (Some(start), Some(end)) = (part.start, part.end) {
        d["dct:temporal"] = json!({
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": date(start),
            "dcat:endDate": date(end),
        });
    }
    // A certified town publishes its own dataset; otherwise the node does.
    d["dct:publisher"] = match town {
        Some(t) if node.federated => {
            agent(&format!("{base}/#publisher/{}", url_encode(&fold(t))), t)
        }
        _ => agent(
            &format!("{base}/#publisher"),
            node.town.unwrap_or("Nœud Cailloux"),
        ),
    };
    d
}

fn context() -> Value {
    json!({
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        "skos": "http://www.w3.org/2004/02/skos/core#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
    })
}

fn fr(text: &str) -> Value {
    json!({ "@value": text, "@language": "fr" })
}

/// A web page (`foaf:Document`, as DCAT-AP wants a home or landing page).
fn document(url: &str) -> Value {
    json!({ "@id": url, "@type": "foaf:Document" })
}

/// A URL (`rdfs:Resource`, as DCAT-AP wants an access, download or endpoint URL).
fn resource(url: &str) -> Value {
    json!({ "@id": url, "@type": "rdfs:Resource" })
}

fn agent(id: &str, name: &str) -> Value {
    json!({ "@id": id, "@type": "foaf:Agent", "foaf:name": name })
}

/// A language as the EU's authority table names it, from a BCP 47 tag (`fr`, `en`, `br`...).
fn language(tag: &str) -> Value {
    let primary = tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
    let code = match primary.as_str() {
        "fr" => "FRA",
        "en" => "ENG",
        "de" => "DEU",
        "es" => "SPA",
        "it" => "ITA",
        "nl" => "NLD",
        "pt" => "POR",
        "br" => "BRE",
        "oc" => "OCI",
        "eu" => "EUS",
        "ca" => "CAT",
        "co" => "COS",
        _ => "MUL",
    };
    json!({
        "@id": format!("http://publications.europa.eu/resource/authority/language/{code}"),
        "@type": "dct:LinguisticSystem",
    })
}

/// A record's licence id (SPDX), as the SPDX licence page.
fn licence(id: &str) -> Value {
    json!({
        "@id": format!("https://spdx.org/licenses/{id}.html"),
        "@type": "dct:LicenseDocument",
    })
}

fn theme_concept(code: &str) -> Value {
    let label = Theme::ALL
        .iter()
        .map(|t| data_theme(*t))
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, l)| l);
    json!({
        "@id": format!("{DATA_THEMES}/{code}"),
        "@type": "skos:Concept",
        "skos:prefLabel": { "@value": label, "@language": "en" },
        "skos:inScheme": { "@id": DATA_THEMES },
    })
}

fn date_time(ms: u64) -> Value {
    json!({ "@value": rfc3339_millis(ms), "@type": "xsd:dateTime" })
}

fn date((y, m, d): (u16, u8, u8)) -> Value {
    json!({ "@value": format!("{y:04}-{m:02}-{d:02}"), "@type": "xsd:date" })
}

fn first_day(p: PartialDate) -> (u16, u8, u8) {
    (p.year, p.month.unwrap_or(1), p.day.unwrap_or(1))
}

fn last_day(p: PartialDate) -> (u16, u8, u8) {
    let month = p.month.unwrap_or(12);
    let day = p.day.unwrap_or_else(|| days_in(p.year, month));
    (p.year, month, day)
}

fn days_in(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn created_day(ms: u64) -> (u16, u8, u8) {
    let text = rfc3339_millis(ms);
    let part = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse().ok()).unwrap_or(1);
    (part(0..4) as u16, part(5..7) as u8, part(8..10) as u8)
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a query value or a
/// fragment.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_theme_has_an_eu_data_theme() {
        let codes: BTreeSet<&str> = Theme::ALL.iter().map(|t| data_theme(*t).0).collect();
        for code in &codes {
            assert_eq!(code.len(), 4, "{code}");
        }
        assert!(codes.contains("ENVI") && codes.contains("GOVE"));
    }

    #[test]
    fn periods_cover_whole_months_and_years() {
        let p = |s: &str| PartialDate::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first_day(p("2021-04")), (2021, 4, 1));
        assert_eq!(last_day(p("2024-02")), (2024, 2, 29));
        assert_eq!(last_day(p("2023-02")), (2023, 2, 28));
        assert_eq!(last_day(p("2025")), (2025, 12, 31));
        assert_eq!(last_day(p("2025-03-15")), (2025, 3, 15));
        assert_eq!(url_encode("Brieuc-la-Forêt"), "Brieuc-la-For%C3%AAt");
    }
}
