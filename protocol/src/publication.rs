//! A publication: what a practitioner writes (Markdown with YAML front matter), and the rules
//! that make it valid. The same rules run on a file before it is signed and on every record
//! decoded from a peer, so the store only ever holds publications that a person could have
//! published through the CLI.

use crate::attachment::{self, Attachment};
use crate::id::RecordId;
use crate::time::PartialDate;
use crate::vocab::{Kind, LinkRel, Method, Need, Outcome, Participation, Theme};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub const MAX_TITLE_CHARS: usize = 250;
pub const MAX_SUMMARY_CHARS: usize = 2000;
pub const MAX_TOWN_CHARS: usize = 120;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_LINKS: usize = 64;
pub const MAX_INDICATORS: usize = 64;
pub const DEFAULT_LANGUAGE: &str = "fr";
pub const DEFAULT_LICENCE: &str = "etalab-2.0";

/// The content of a record: every front-matter field, with defaults filled in, and the body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    pub kind: Kind,
    pub title: String,
    pub summary: String,
    pub language: String,
    pub town: String,
    pub themes: Vec<Theme>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sdgs: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation: Option<Participation>,
    pub licence: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Experiments only, required there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Experiments only, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<Need>,
    /// Evaluations only, required there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Evaluations only, at least one there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<Indicator>,
    /// Files beside the publication (record format v2 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub start: PartialDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<PartialDate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub rel: LinkRel,
    pub id: RecordId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    pub name: String,
    pub unit: String,
    pub value: Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<PartialDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A measured quantity, kept as written: `35` stays an integer, `0.35` a float.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn is_finite(self) -> bool {
        match self {
            Number::Int(_) => true,
            Number::Float(f) => f.is_finite(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

impl Serialize for PartialDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartialDate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One broken rule: which field, what is wrong, and the nearest valid value when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field's path in the front matter: `themes[1]`, `indicators[0].unit`, `body`.
    pub field: String,
    pub message: String,
    pub suggestion: Option<String>,
}

impl Violation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            field: field.into(),
            message: message.into(),
            suggestion: None,
        }
    }

    pub fn suggest(mut self, suggestion: Option<&str>) -> Self {
        self.suggestion = suggestion.map(str::to_owned);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl Publication {
    /// Every rule of the format this publication breaks, in field order; empty when valid.
    pub fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        text_rule(&mut v, "title", &self.title, MAX_TITLE_CHARS);
        if self.title.contains('\n') {
            v.push(Violation::new("title", "must be a single line"));
        }
        text_rule(&mut v, "summary", &self.summary, MAX_SUMMARY_CHARS);
        if !is_language_tag(&self.language) {
            v.push(Violation::new(
                "language",
                format!(
                    "`{}` is not a BCP 47 language tag such as `fr`, `en` or `fr-BE`",
                    self.language
                ),
            ));
        }
        if self.town.trim().is_empty() {
            v.push(Violation::new(
                "town",
                "is missing: write `town: <name>` in the front matter, or name this node's town \
                 with `cailloux init --town <name>`",
            ));
        } else {
            text_rule(&mut v, "town", &self.town, MAX_TOWN_CHARS);
        }
        if self.themes.is_empty() {
            v.push(Violation::new(
                "themes",
                format!(
                    "needs at least one theme, from: {}",
                    Theme::slugs().join(", ")
                ),
            ));
        }
        for (i, t) in self.themes.iter().enumerate() {
            if self.themes[..i].contains(t) {
                v.push(Violation::new(
                    format!("themes[{i}]"),
                    format!("`{t}` is listed twice"),
                ));
            }
        }
        if self.tags.len() > MAX_TAGS {
            v.push(Violation::new(
                "tags",
                format!("{} tags; the limit is {MAX_TAGS}", self.tags.len()),
            ));
        }
        for (i, t) in self.tags.iter().enumerate() {
            text_rule(&mut v, &format!("tags[{i}]"), t, MAX_TAG_CHARS);
        }
        for (i, s) in self.sdgs.iter().enumerate() {
            if !(1..=17).contains(s) {
                v.push(Violation::new(
                    format!("sdgs[{i}]"),
                    format!("{s} is not a Sustainable Development Goal; they are numbered 1 to 17"),
                ));
            } else if self.sdgs[..i].contains(s) {
                v.push(Violation::new(
                    format!("sdgs[{i}]"),
                    format!("{s} is listed twice"),
                ));
            }
        }
        if let Some(Period {
            start,
            end: Some(end),
        }) = &self.period
            && ends_before(end, start)
        {
            v.push(Violation::new(
                "period.end",
                format!("{end} is before the start, {start}"),
            ));
        }
        if !is_licence_id(&self.licence) {
            v.push(Violation::new(
                "licence",
                format!(
                    "`{}` is not a licence identifier such as `etalab-2.0` or `CC-BY-4.0`",
                    self.licence
                ),
            ));
        }
        if self.links.len() > MAX_LINKS {
            v.push(Violation::new(
                "links",
                format!("{} links; the limit is {MAX_LINKS}", self.links.len()),
            ));
        }
        self.kind_rules(&mut v);
        attachment::violations(&self.attachments, &mut v);
        v
    }

    fn kind_rules(&self, v: &mut Vec<Violation>) {
        let only = |v: &mut Vec<Violation>, field: &str, present: bool, kind: Kind| {
            if present && self.kind != kind {
                v.push(Violation::new(
                    field,
                    format!(
                        "applies to {kind} records only, and this one is a {}",
                        self.kind
                    ),
                ));
            }
        };
        only(v, "outcome", self.outcome.is_some(), Kind::Experiment);
        only(v, "need", self.need.is_some(), Kind::Experiment);
        only(v, "method", self.method.is_some(), Kind::Evaluation);
        only(
            v,
            "indicators",
            !self.indicators.is_empty(),
            Kind::Evaluation,
        );
        match self.kind {
            Kind::Experiment if self.outcome.is_none() => v.push(Violation::new(
                "outcome",
                format!(
                    "is required for an experiment: one of {}",
                    Outcome::slugs().join(", ")
                ),
            )),
            Kind::Evaluation => {
                if self.method.is_none() {
                    v.push(Violation::new(
                        "method",
                        format!(
                            "is required for an evaluation: one of {}",
                            Method::slugs().join(", ")
                        ),
                    ));
                }
                if self.indicators.is_empty() {
                    v.push(Violation::new(
                        "indicators",
                        "an evaluation needs at least one indicator `{ name, unit, value }`",
                    ));
                }
                if !self.links.iter().any(|l| l.rel == LinkRel::Evaluates) {
                    v.push(Violation::new(
                        "links",
                        "an evaluation needs at least one `{ rel: evaluates, id: ... }` link to what it measures",
                    ));
                }
            }
            _ => {}
        }
        if self.indicators.len() > MAX_INDICATORS {
            v.push(Violation::new(
                "indicators",
                format!(
                    "{} indicators; the limit is {MAX_INDICATORS}",
                    self.indicators.len()
                ),
            ));
        }
        for (i, ind) in self.indicators.iter().enumerate() {
            text_rule(v, &format!("indicators[{i}].name"), &ind.name, 200);
            text_rule(v, &format!("indicators[{i}].unit"), &ind.unit, 50);
            for (field, n) in [
                ("value", Some(ind.value)),
                ("baseline", ind.baseline),
                ("target", ind.target),
            ] {
                if n.is_some_and(|n| !n.is_finite()) {
                    v.push(Violation::new(
                        format!("indicators[{i}].{field}"),
                        "must be a finite number",
                    ));
                }
            }
            if let Some(s) = &ind.source {
                text_rule(v, &format!("indicators[{i}].source"), s, 500);
            }
        }
    }
}

/// Non-empty after trimming, and at most `max` characters.
pub(crate) fn text_rule(v: &mut Vec<Violation>, field: &str, s: &str, max: usize) {
    let n = s.chars().count();
    if s.trim().is_empty() {
        v.push(Violation::new(field, "is empty"));
    } else if n > max {
        v.push(Violation::new(
            field,
            format!(
                "is {n} characters; the limit is {max} (shorten it by {})",
                n - max
            ),
        ));
    }
}

/// True when `end` is certainly before `start`, comparing only the precision both give.
fn ends_before(end: &PartialDate, start: &PartialDate) -> bool {
    let key = |d: &PartialDate, other: &PartialDate| {
        let month = d.month.filter(|_| other.month.is_some()).unwrap_or(0);
        let day = d.day.filter(|_| other.day.is_some()).unwrap_or(0);
        (d.year, month, day)
    };
    key(end, start) < key(start, end)
}

/// `fr`, `en`, `fr-BE`, `zh-Hant-TW`: a 2-3 letter primary tag and optional subtags.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// SPDX-like: letters, digits, `.`, `+` and `-`, at most 64 characters.
fn is_licence_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_comparison_respects_precision() {
        let d = |s| PartialDate::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(!ends_before(&d("2024"), &d("2024-06")));
        assert!(ends_before(&d("2023"), &d("2024-06")));
        assert!(ends_before(&d("2024-05"), &d("2024-06-01")));
        assert!(!ends_before(&d("2024-06-01"), &d("2024-06-01")));
    }

    #[test]
    fn language_and_licence_shapes() {
        assert!(is_language_tag("fr") && is_language_tag("fr-BE") && !is_language_tag("français"));
        assert!(is_licence_id("CC-BY-4.0") && !is_licence_id("CC BY"));
    }
}
