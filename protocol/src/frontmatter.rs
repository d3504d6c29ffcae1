//! Reading a publication file: Markdown with a YAML front matter block. Every problem in a file
//! is collected, not just the first, so a practitioner fixes a file in one pass; typos in
//! closed vocabularies come back with the nearest valid value.

use crate::id::{IdPrefix, RecordId};
use crate::publication::{
    DEFAULT_LANGUAGE, DEFAULT_LICENCE, Indicator, Link, Number, Period, Publication, Violation,
};
use crate::time::PartialDate;
use crate::vocab::{
    Kind, LinkRel, Method, Need, Outcome, Participation, Theme, Vocabulary, nearest,
};
use yaml_rust2::{Yaml, YamlLoader};

/// The largest front matter read, in bytes (between the `---` lines). A publication with every
/// field at its limit takes about 68 KB in plain ASCII (64 indicators of 750 characters make
/// most of it); twice 64 KiB leaves room for accents and comments, and bounds what the YAML
/// parser is handed whatever the file holds.
pub const MAX_FRONT_MATTER_BYTES: usize = 128 * 1024;
/// The deepest nesting of lists and sets of fields in a front matter. A publication needs 3
/// (its fields, `links` or `indicators`, one link or indicator); yaml-rust2 builds the document
/// recursively, so a deeper one could exhaust the stack.
pub const MAX_FRONT_MATTER_DEPTH: usize = 16;

/// The front-matter keys.
pub const FIELDS: &[&str] = &[
    "kind",
    "title",
    "summary",
    "language",
    "town",
    "themes",
    "tags",
    "sdgs",
    "period",
    "participation",
    "licence",
    "links",
    "outcome",
    "need",
    "method",
    "indicators",
    "attachments",
];

/// Where a link in a file points before it is resolved to a whole record id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A record id or a unique prefix of one, looked up in the local store.
    Id(IdPrefix),
    /// Another file of the same `publish` call, as written (relative to this file's folder).
    File(String),
}

/// A link's target as written, and where in the file it was written (`links[2]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftLink {
    pub field: String,
    pub target: LinkTarget,
}

/// A file to attach, as written: its path relative to the publication's folder, and its title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftAttachment {
    /// Where in the front matter it was written (`attachments[1]`).
    pub field: String,
    pub file: String,
    pub title: Option<String>,
}

/// A parsed, valid publication whose links still name their targets as written. Its
/// `publication.links[i].id` is a placeholder until `link_targets[i]` is resolved, and its
/// `publication.attachments` is empty until the files of `attachment_files` are read (by the
/// caller, which can read files).
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub publication: Publication,
    pub link_targets: Vec<DraftLink>,
    pub attachment_files: Vec<DraftAttachment>,
}

/// Parses and validates a publication file. `default_town` is the publishing node's town, used
/// when the file names none.
pub fn parse_publication(text: &str, default_town: Option<&str>) -> Result<Draft, Vec<Violation>> {
    match parse_partial(text, default_town) {
        (Some(draft), violations) if violations.is_empty() => Ok(draft),
        (_, violations) => Err(violations),
    }
}

/// Like `parse_publication`, but also returns what could be read of an invalid file (when its
/// front matter is readable at all), so that a caller can check its links too and report every
/// problem in one pass. The draft is valid only when the violations are empty.
pub fn parse_partial(text: &str, default_town: Option<&str>) -> (Option<Draft>, Vec<Violation>) {
    match parse_inner(text, default_town) {
        Ok((draft, violations)) => (Some(draft), violations),
        Err(violations) => (None, violations),
    }
}

fn parse_inner(
    text: &str,
    default_town: Option<&str>,
) -> Result<(Draft, Vec<Violation>), Vec<Violation>> {
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let (front, body) = split_front_matter(&text).map_err(|v| vec![v])?;
    check_yaml(front).map_err(|v| vec![v])?;
    let docs = YamlLoader::load_from_str(front).map_err(|e| vec![not_yaml(&e)])?;
    let Some(Yaml::Hash(map)) = docs.into_iter().next() else {
        return Err(vec![Violation::new(
            "front matter",
            "must be a set of `key: value` lines, starting with `kind:`",
        )]);
    };
    let mut p = Parser {
        violations: Vec::new(),
    };
    let get = |key: &str| field(&map, key);

    let kind_given = get("kind").map(|y| p.vocab::<Kind>("kind", y));
    let outcome = get("outcome").and_then(|y| p.vocab::<Outcome>("outcome", y));
    let need = get("need").and_then(|y| p.vocab::<Need>("need", y));
    let method = get("method").and_then(|y| p.vocab::<Method>("method", y));
    let indicators = get("indicators")
        .map(|y| p.indicators(y))
        .unwrap_or_default();
    let kind = match kind_given {
        Some(Some(k)) => k,
        given => {
            if given.is_none() {
                p.push(Violation::new(
                    "kind",
                    format!("is required: one of {}", Kind::slugs().join(", ")),
                ));
            }
            // Judge the rest of the file as the kind its fields suggest, so that the other
            // violations are the ones that would remain once `kind` is fixed.
            if get("outcome").is_some() || get("need").is_some() {
                Kind::Experiment
            } else if get("method").is_some() || get("indicators").is_some() {
                Kind::Evaluation
            } else {
                Kind::Practice
            }
        }
    };
    let title = p.required_text(get("title"), "title");
    let summary = p.required_text(get("summary"), "summary");
    let language = get("language")
        .and_then(|y| p.text("language", y))
        .unwrap_or_else(|| DEFAULT_LANGUAGE.into());
    let town = get("town")
        .and_then(|y| p.text("town", y))
        .or_else(|| default_town.map(str::to_owned))
        .unwrap_or_default();
    let themes = match get("themes") {
        Some(y) => p.list(y, "themes", |p, f, y| p.vocab::<Theme>(f, y)),
        None => Vec::new(),
    };
    let tags = get("tags")
        .map(|y| p.list(y, "tags", |p, f, y| p.text(f, y)))
        .unwrap_or_default();
    let sdgs = get("sdgs")
        .map(|y| p.list(y, "sdgs", |p, f, y| p.sdg(f, y)))
        .unwrap_or_default();
    let period = get("period").and_then(|y| p.period(y));
    let participation =
        get("participation").and_then(|y| p.vocab::<Participation>("participation", y));
    let licence = get("licence")
        .and_then(|y| p.text("licence", y))
        .unwrap_or_else(|| DEFAULT_LICENCE.into());
    let (links, link_targets) = get("links").map(|y| p.links(y)).unwrap_or_default();
    let attachment_files = get("attachments")
        .map(|y| p.attachments(y))
        .unwrap_or_default();

    for key in map.keys() {
        match key.as_str() {
            Some(k) if FIELDS.contains(&k) => {}
            Some(k) => p.push(
                Violation::new(k, "is not a field of the publication format")
                    .suggest(nearest(k, FIELDS.iter().copied()))
                    .or_list(),
            ),
            None => p.push(Violation::new(
                "front matter",
                format!("the key {key:?} is not a field name"),
            )),
        }
    }

    let publication = Publication {
        kind,
        title,
        summary,
        language,
        town,
        themes,
        tags,
        sdgs,
        period,
        participation,
        licence,
        links,
        outcome,
        need,
        method,
        indicators,
        attachments: Vec::new(),
        body: body.to_owned(),
    };
    let mut violations = p.violations;
    // A field that failed to parse is absent from `publication`; do not report it twice.
    let reported: Vec<String> = violations
        .iter()
        .map(|v| root_field(&v.field).to_owned())
        .collect();
    violations.extend(
        publication
            .violations()
            .into_iter()
            .filter(|v| !reported.iter().any(|r| r == root_field(&v.field))),
    );
    // Report in the order of the file; missing fields last.
    let keys: Vec<&str> = map.keys().filter_map(Yaml::as_str).collect();
    violations.sort_by_key(|v| {
        keys.iter()
            .position(|k| *k == root_field(&v.field))
            .unwrap_or(usize::MAX)
    });
    Ok((
        Draft {
            publication,
            link_targets,
            attachment_files,
        },
        violations,
    ))
}

trait OrList {
    fn or_list(self) -> Self;
}

impl OrList for Violation {
    /// Names the valid fields when no single one is near enough to suggest.
    fn or_list(mut self) -> Self {
        if self.suggestion.is_none() {
            self.message
                .push_str(&format!("; the fields are: {}", FIELDS.join(", ")));
        }
        self
    }
}

fn root_field(path: &str) -> &str {
    path.split(['[', '.']).next().unwrap_or(path)
}

/// Splits `---\n<yaml>\n---\n<body>`; the closing line may also be `...`.
fn split_front_matter(text: &str) -> Result<(&str, &str), Violation> {
    let missing = || {
        Violation::new(
            "front matter",
            "is missing: a publication starts with a line `---`, its fields, and a closing line `---`",
        )
    };
    let rest = text.strip_prefix("---\n").ok_or_else(missing)?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            let body = &rest[offset + line.len()..];
            return Ok((&rest[..offset], body.strip_prefix('\n').unwrap_or(body)));
        }
        offset += line.len();
    }
    Err(Violation::new(
        "front matter",
        "is not closed: add a line `---` between the fields and the body",
    ))
}

/// The first pass over a front matter, before any document is built: its size, then its YAML
/// events, refusing anchors and aliases (yaml-rust2 expands aliases as it builds the document,
/// so a few hundred bytes of them make gigabytes: a "billion laughs"; a publication never needs
/// them) and nesting deeper than `MAX_FRONT_MATTER_DEPTH` (yaml-rust2 builds and drops the
/// document recursively). The event parser itself keeps an explicit stack, and is linear in
/// the size of what it reads.
fn check_yaml(front: &str) -> Result<(), Violation> {
    use yaml_rust2::parser::{Event, Parser};
    if front.len() > MAX_FRONT_MATTER_BYTES {
        return Err(Violation::new(
            "front matter",
            format!(
                "is {} bytes; the limit is {MAX_FRONT_MATTER_BYTES} ({} KiB): move long text to the body",
                front.len(),
                MAX_FRONT_MATTER_BYTES / 1024
            ),
        ));
    }
    let at_line = |mark: &yaml_rust2::scanner::Marker| {
        // The front matter starts on the file's second line.
        format!("line {}, column {}", mark.line() + 1, mark.col() + 1)
    };
    let mut parser = Parser::new_from_str(front);
    let mut depth = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| not_yaml(&e))?;
        let anchor = match event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => {
                return Err(Violation::new(
                    "front matter",
                    format!(
                        "{}: YAML aliases (`*name`) are not supported in a publication; write the value itself",
                        at_line(&mark)
                    ),
                ));
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                depth += 1;
                if depth > MAX_FRONT_MATTER_DEPTH {
                    return Err(Violation::new(
                        "front matter",
                        format!(
                            "{}: lists and sets of fields are nested more than \
                             {MAX_FRONT_MATTER_DEPTH} levels deep; a publication needs 3",
                            at_line(&mark)
                        ),
                    ));
                }
                anchor
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                0
            }
            Event::Scalar(_, _, anchor, _) => anchor,
            _ => 0,
        };
        if anchor != 0 {
            return Err(Violation::new(
                "front matter",
                format!(
                    "{}: YAML anchors (`&name`) are not supported in a publication; write each value where it belongs",
                    at_line(&mark)
                ),
            ));
        }
    }
}

/// The violation for a front matter that is not YAML, naming where.
fn not_yaml(e: &yaml_rust2::ScanError) -> Violation {
    let m = e.marker();
    // The front matter starts on the file's second line.
    Violation::new(
        "front matter",
        format!(
            "is not valid YAML at line {}, column {}: {}",
            m.line() + 1,
            m.col() + 1,
            e.info()
        ),
    )
}

struct Parser {
    violations: Vec<Violation>,
}

impl Parser {
    fn push(&mut self, v: Violation) {
        self.violations.push(v);
    }

    fn required_text(&mut self, y: Option<&Yaml>, field: &str) -> String {
        match y {
            Some(y) => self.text(field, y).unwrap_or_default(),
            None => {
                self.push(Violation::new(field, "is required"));
                String::new()
            }
        }
    }

    /// A scalar as text: `title: 2024` is the text "2024".
    fn text(&mut self, field: &str, y: &Yaml) -> Option<String> {
        match y {
            Yaml::String(s) | Yaml::Real(s) => Some(s.trim().to_owned()),
            Yaml::Integer(i) => Some(i.to_string()),
            Yaml::Boolean(b) => Some(b.to_string()),
            _ => {
                self.push(Violation::new(
                    field,
                    format!("must be text, not {}", describe(y)),
                ));
                None
            }
        }
    }

    fn vocab<T: Vocabulary>(&mut self, field: &str, y: &Yaml) -> Option<T> {
        let s = self.text(field, y)?;
        let found = T::from_slug(&s);
        if found.is_none() {
            self.push(
                Violation::new(
                    field,
                    format!(
                        "`{s}` is not a known {}; valid: {}",
                        T::WHAT,
                        T::slugs().join(", ")
                    ),
                )
                .suggest(T::suggest(&s)),
            );
        }
        found
    }

    /// A sequence, or a single value standing for a sequence of one.
    fn list<T>(
        &mut self,
        y: &Yaml,
        field: &str,
        mut item: impl FnMut(&mut Self, &str, &Yaml) -> Option<T>,
    ) -> Vec<T> {
        match y {
            Yaml::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, y)| item(self, &format!("{field}[{i}]"), y))
                .collect(),
            Yaml::Hash(_) => {
                self.push(Violation::new(field, "must be a list such as `[a, b]`"));
                Vec::new()
            }
            y => item(self, &format!("{field}[0]"), y).into_iter().collect(),
        }
    }

    fn number(&mut self, field: &str, y: &Yaml) -> Option<Number> {
        match y {
            Yaml::Integer(i) => Some(Number::Int(*i)),
            Yaml::Real(s) => match s.parse::<f64>() {
                Ok(f) if f.is_finite() => Some(Number::Float(f)),
                _ => {
                    self.push(Violation::new(
                        field,
                        format!("`{s}` is not a finite number"),
                    ));
                    None
                }
            },
            Yaml::String(s) => {
                let hint = s.replace(',', ".").replace(' ', "");
                let hint = hint.parse::<f64>().is_ok().then_some(hint);
                self.push(
                    Violation::new(field, format!("must be a number, not the text `{s}`"))
                        .suggest(hint.as_deref()),
                );
                None
            }
            y => {
                self.push(Violation::new(
                    field,
                    format!("must be a number, not {}", describe(y)),
                ));
                None
            }
        }
    }

    fn sdg(&mut self, field: &str, y: &Yaml) -> Option<u8> {
        match self.number(field, y)? {
            Number::Int(i) if (1..=17).contains(&i) => u8::try_from(i).ok(),
            n => {
                self.push(Violation::new(
                    field,
                    format!("{n} is not a Sustainable Development Goal; they are numbered 1 to 17"),
                ));
                None
            }
        }
    }

    fn date(&mut self, field: &str, y: &Yaml) -> Option<PartialDate> {
        let s = match y {
            Yaml::Integer(i) => i.to_string(),
            Yaml::String(s) => s.trim().to_owned(),
            y => {
                self.push(Violation::new(
                    field,
                    format!(
                        "must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not {}",
                        describe(y)
                    ),
                ));
                return None;
            }
        };
        PartialDate::parse(&s)
            .map_err(|e| self.push(Violation::new(field, e)))
            .ok()
    }

    fn period(&mut self, y: &Yaml) -> Option<Period> {
        let Yaml::Hash(map) = y else {
            // `period: 2019` reads as a period that started in 2019.
            return self
                .date("period.start", y)
                .map(|start| Period { start, end: None });
        };
        self.only_keys(map, "period", &["start", "end"]);
        let start = match field(map, "start") {
            Some(y) => self.date("period.start", y),
            None => {
                self.push(Violation::new(
                    "period.start",
                    "is required when `period` is given",
                ));
                None
            }
        };
        let end = field(map, "end").and_then(|y| self.date("period.end", y));
        Some(Period { start: start?, end })
    }

    fn links(&mut self, y: &Yaml) -> (Vec<Link>, Vec<DraftLink>) {
        let parsed = self.list(y, "links", |p, f, y| p.link(f, y));
        parsed.into_iter().unzip()
    }

    fn link(&mut self, f: &str, y: &Yaml) -> Option<(Link, DraftLink)> {
        let Yaml::Hash(map) = y else {
            self.push(Violation::new(
                f,
                "must be `{ rel: ..., id: ... }` or `{ rel: ..., file: ... }`",
            ));
            return None;
        };
        self.only_keys(map, f, &["rel", "id", "file"]);
        let rel = match field(map, "rel") {
            Some(y) => self.vocab::<LinkRel>(&format!("{f}.rel"), y),
            None => {
                self.push(Violation::new(
                    format!("{f}.rel"),
                    format!("is required: one of {}", LinkRel::slugs().join(", ")),
                ));
                None
            }
        };
        let target = match (field(map, "id"), field(map, "file")) {
            (Some(id), None) => {
                let s = self.text(&format!("{f}.id"), id)?;
                match IdPrefix::parse(&s) {
                    Ok(p) => Some(LinkTarget::Id(p)),
                    Err(e) => {
                        self.push(Violation::new(format!("{f}.id"), e));
                        None
                    }
                }
            }
            (None, Some(file)) => self.text(&format!("{f}.file"), file).map(LinkTarget::File),
            (Some(_), Some(_)) => {
                self.push(Violation::new(f, "names both `id` and `file`; keep one"));
                None
            }
            (None, None) => {
                self.push(Violation::new(
                    f,
                    "needs a target: `id: <record id>` or `file: <file.md>`",
                ));
                None
            }
        };
        let target = DraftLink {
            field: f.to_owned(),
            target: target?,
        };
        Some((
            Link {
                rel: rel?,
                id: RecordId([0; 32]),
            },
            target,
        ))
    }

    fn attachments(&mut self, y: &Yaml) -> Vec<DraftAttachment> {
        let files = self.list(y, "attachments", |p, f, y| {
            let Yaml::Hash(map) = y else {
                p.push(Violation::new(
                    f,
                    "must be `{ file: rapport.pdf, title: \"...\" }`",
                ));
                return None;
            };
            p.only_keys(map, f, &["file", "title"]);
            let file = match field(map, "file") {
                Some(y) => p.text(&format!("{f}.file"), y),
                None => {
                    p.push(Violation::new(
                        format!("{f}.file"),
                        "is required: the file's path, next to the Markdown file or below it",
                    ));
                    None
                }
            };
            let title = field(map, "title").and_then(|y| p.text(&format!("{f}.title"), y));
            Some(DraftAttachment {
                field: f.to_owned(),
                file: file?,
                title,
            })
        });
        if files.len() > crate::attachment::MAX_ATTACHMENTS {
            self.push(Violation::new(
                "attachments",
                format!(
                    "{} files; the limit is {} per publication",
                    files.len(),
                    crate::attachment::MAX_ATTACHMENTS
                ),
            ));
        }
        files
    }

    fn indicators(&mut self, y: &Yaml) -> Vec<Indicator> {
        self.list(y, "indicators", |p, f, y| {
            let Yaml::Hash(map) = y else {
                p.push(Violation::new(
                    f,
                    "must be `{ name: ..., unit: ..., value: ... }`",
                ));
                return None;
            };
            p.only_keys(
                map,
                f,
                &[
                    "name", "unit", "value", "baseline", "target", "date", "source",
                ],
            );
            let required = |p: &mut Self, key: &str| {
                let y = field(map, key);
                if y.is_none() {
                    p.push(Violation::new(format!("{f}.{key}"), "is required"));
                }
                y
            };
            let name = required(p, "name").and_then(|y| p.text(&format!("{f}.name"), y));
            let unit = required(p, "unit").and_then(|y| p.text(&format!("{f}.unit"), y));
            let value = required(p, "value").and_then(|y| p.number(&format!("{f}.value"), y));
            let baseline =
                field(map, "baseline").and_then(|y| p.number(&format!("{f}.baseline"), y));
            let target = field(map, "target").and_then(|y| p.number(&format!("{f}.target"), y));
            let date = field(map, "date").and_then(|y| p.date(&format!("{f}.date"), y));
            let source = field(map, "source").and_then(|y| p.text(&format!("{f}.source"), y));
            Some(Indicator {
                name: name?,
                unit: unit?,
                value: value?,
                baseline,
                target,
                date,
                source,
            })
        })
    }

    fn only_keys(&mut self, map: &yaml_rust2::yaml::Hash, at: &str, allowed: &[&str]) {
        for key in map.keys() {
            let k = key.as_str().unwrap_or("?");
            if !allowed.contains(&k) {
                self.push(
                    Violation::new(
                        format!("{at}.{k}"),
                        format!(
                            "is not a field here; the fields are: {}",
                            allowed.join(", ")
                        ),
                    )
                    .suggest(nearest(k, allowed.iter().copied())),
                );
            }
        }
    }
}

fn field<'a>(map: &'a yaml_rust2::yaml::Hash, key: &str) -> Option<&'a Yaml> {
    map.get(&Yaml::String(key.to_owned()))
        .filter(|y| !matches!(y, Yaml::Null))
}

fn describe(y: &Yaml) -> &'static str {
    match y {
        Yaml::Array(_) => "a list",
        Yaml::Hash(_) => "a set of fields",
        Yaml::Integer(_) | Yaml::Real(_) => "a number",
        Yaml::Boolean(_) => "true/false",
        Yaml::Alias(_) => "an alias (aliases are not supported)",
        _ => "this value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "---\nkind: practice\ntitle: Un titre\nsummary: Un résumé.\ntown: Ville\nthemes: [energy]\n";

    /// The front-matter violations of `text`: it must be refused.
    fn refused(text: &str) -> Vec<Violation> {
        match parse_publication(text, None) {
            Ok(_) => panic!("accepted: {text:.200}"),
            Err(v) => v,
        }
    }

    fn one_front_matter_violation(text: &str) -> String {
        let v = refused(text);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "front matter", "{v:?}");
        v[0].message.clone()
    }

    #[test]
    fn the_head_alone_is_a_valid_publication() {
        let text = format!("{HEAD}---\nCorps.\n");
        assert!(parse_publication(&text, None).is_ok());
    }

    #[test]
    fn an_anchor_is_refused_naming_its_line() {
        let text = "---\nkind: practice\ntitle: &t Un titre\nsummary: *t\ntown: Ville\nthemes: [energy]\n---\nCorps.\n";
        let m = one_front_matter_violation(text);
        assert!(m.contains("line 3"), "{m}");
        assert!(m.contains("anchor"), "{m}");
    }

    #[test]
    fn an_alias_is_refused_naming_its_line() {
        // An anchor on a key, which the document's values never show, then an alias.
        let text = "---\nkind: practice\n&k title: Un titre\nsummary: Un résumé.\ntown: Ville\nthemes: [energy]\ntags: [*k]\n---\nCorps.\n";
        let m = one_front_matter_violation(text);
        assert!(m.contains("line 3") && m.contains("anchor"), "{m}");
        // An alias of an anchor never set is not YAML (so every alias follows an anchor, which
        // is refused first).
        let text = format!("{HEAD}tags: [*nulle]\n---\nCorps.\n");
        let m = one_front_matter_violation(&text);
        assert!(m.contains("line 7") && m.contains("unknown anchor"), "{m}");
    }

    #[test]
    fn a_billion_laughs_is_refused_before_anything_is_expanded() {
        let mut text = String::from(
            "---\nkind: practice\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (name, prev) in [
            ("b", "a"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
            ("f", "e"),
            ("g", "f"),
            ("h", "g"),
            ("i", "h"),
        ] {
            let item = format!("*{prev}");
            text.push_str(&format!("{name}: &{name} [{}]\n", vec![item; 9].join(",")));
        }
        text.push_str("---\nCorps.\n");
        assert!(text.len() < 600);
        let m = one_front_matter_violation(&text);
        assert!(m.contains("line 3") && m.contains("anchor"), "{m}");
    }

    #[test]
    fn a_front_matter_over_the_size_limit_is_refused_before_parsing() {
        let filler = "# un commentaire qui ne compte pas mais pèse\n";
        let mut text = HEAD.to_owned();
        while text.len() <= MAX_FRONT_MATTER_BYTES + 4 {
            text.push_str(filler);
        }
        text.push_str("---\nCorps.\n");
        let m = one_front_matter_violation(&text);
        assert!(m.contains("bytes") && m.contains("131072"), "{m}");
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_naming_its_line() {
        // In flow style and in block style.
        let deep = "[".repeat(MAX_FRONT_MATTER_DEPTH) + &"]".repeat(MAX_FRONT_MATTER_DEPTH);
        let text = format!("{HEAD}tags: {deep}\n---\nCorps.\n");
        let m = one_front_matter_violation(&text);
        assert!(m.contains("line 7") && m.contains("deep"), "{m}");
        let mut block = format!("{HEAD}tags:\n");
        for depth in 0..MAX_FRONT_MATTER_DEPTH {
            block.push_str(&format!("{}- \n", "  ".repeat(depth)));
        }
        block.push_str("---\nCorps.\n");
        let m = one_front_matter_violation(&block);
        assert!(m.contains("deep"), "{m}");
        // As deep as the limit allows is fine as YAML (and then judged as a publication).
        let ok = "[".repeat(MAX_FRONT_MATTER_DEPTH - 2) + &"]".repeat(MAX_FRONT_MATTER_DEPTH - 2);
        let text = format!("{HEAD}tags: {ok}\n---\nCorps.\n");
        assert!(refused(&text).iter().all(|v| v.field != "front matter"));
    }

    #[test]
    fn a_nesting_that_would_exhaust_the_stack_is_refused() {
        // 30,000 levels in 60 KB, within the size limit: refused by the first pass, never
        // handed to the recursive loader.
        let text = format!("{HEAD}tags:\n{}x\n---\nCorps.\n", "- ".repeat(30_000));
        assert!(text.len() < MAX_FRONT_MATTER_BYTES);
        let m = one_front_matter_violation(&text);
        assert!(m.contains("line 8") && m.contains("deep"), "{m}");
    }

    #[test]
    fn a_publication_with_every_field_at_its_limit_fits_in_the_front_matter_limit() {
        use crate::publication::{MAX_SUMMARY_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS};
        let mut text = format!(
            "---\nkind: evaluation\ntitle: \"{}\"\nsummary: \"{}\"\ntown: \"{}\"\nthemes: [energy]\nmethod: metered\nsdgs: [{}]\ntags:\n",
            "t".repeat(MAX_TITLE_CHARS),
            "s".repeat(MAX_SUMMARY_CHARS),
            "v".repeat(crate::publication::MAX_TOWN_CHARS),
            (1..=17)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
        for i in 0..MAX_TAGS {
            text.push_str(&format!(
                "  - \"{i:02}{}\"\n",
                "g".repeat(MAX_TAG_CHARS - 2)
            ));
        }
        text.push_str("links:\n");
        for i in 0..crate::publication::MAX_LINKS {
            text.push_str(&format!("  - {{ rel: evaluates, id: \"{i:064x}\" }}\n"));
        }
        text.push_str("indicators:\n");
        for i in 0..crate::publication::MAX_INDICATORS {
            text.push_str(&format!(
                "  - {{ name: \"{i:02}{}\", unit: \"{}\", value: -123456.789, baseline: 123456.789, target: 123456.789, date: 2024-10-31, source: \"{}\" }}\n",
                "n".repeat(198),
                "u".repeat(50),
                "o".repeat(500)
            ));
        }
        text.push_str("---\nCorps.\n");
        assert!(
            text.len() > 64 * 1024,
            "{} bytes: at their limits, the fields need more than 64 KiB",
            text.len()
        );
        if let Err(v) = parse_publication(&text, None) {
            panic!("{v:?}");
        }
    }
}
