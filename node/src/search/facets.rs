//! Counting the matches by kind, theme, town, year and outcome, from the fast fields, in one
//! pass over every matching document (no stored document is read).

use super::Facets;
use std::collections::BTreeMap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentReader};

/// Counts facet values of every matching document from the fast fields.
pub(super) struct FacetCollector;

pub(super) struct FacetSegment {
    columns: [(usize, Option<StrColumn>); 4],
    year: Option<tantivy::columnar::Column<u64>>,
    counts: [BTreeMap<u64, u64>; 4],
    years: BTreeMap<u64, u64>,
}

const STR_FACETS: [&str; 4] = ["kind", "themes", "town", "outcome"];

impl Collector for FacetCollector {
    type Fruit = Facets;
    type Child = FacetSegment;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<FacetSegment> {
        let ff = segment.fast_fields();
        let mut columns = [(0, None), (1, None), (2, None), (3, None)];
        for (i, name) in STR_FACETS.iter().enumerate() {
            columns[i] = (i, ff.str(name)?);
        }
        Ok(FacetSegment {
            columns,
            year: ff.u64("year").ok(),
            counts: Default::default(),
            years: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Facets>) -> tantivy::Result<Facets> {
        let mut out = Facets::default();
        for f in fruits {
            for (target, source) in [
                (&mut out.kind, f.kind),
                (&mut out.theme, f.theme),
                (&mut out.town, f.town),
                (&mut out.year, f.year),
                (&mut out.outcome, f.outcome),
            ] {
                for (k, v) in source {
                    *target.entry(k).or_default() += v;
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for FacetSegment {
    type Fruit = Facets;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for (i, column) in &self.columns {
            if let Some(column) = column {
                for ord in column.term_ords(doc) {
                    *self.counts[*i].entry(ord).or_default() += 1;
                }
            }
        }
        if let Some(year) = self.year.as_ref().and_then(|c| c.first(doc)) {
            *self.years.entry(year).or_default() += 1;
        }
    }

    fn harvest(self) -> Facets {
        let mut facets = Facets::default();
        let names =
            |column: &Option<StrColumn>, counts: BTreeMap<u64, u64>| -> BTreeMap<String, u64> {
                let mut out = BTreeMap::new();
                let mut s = String::new();
                for (ord, n) in counts {
                    s.clear();
                    if let Some(c) = column
                        && c.ord_to_str(ord, &mut s).unwrap_or(false)
                    {
                        out.insert(s.clone(), n);
                    }
                }
                out
            };
        let [kind, themes, town, outcome] = self.counts;
        facets.kind = names(&self.columns[0].1, kind);
        facets.theme = names(&self.columns[1].1, themes);
        facets.town = names(&self.columns[2].1, town);
        facets.outcome = names(&self.columns[3].1, outcome);
        facets.year = self
            .years
            .into_iter()
            .map(|(y, n)| (y.to_string(), n))
            .collect();
        facets
    }
}
