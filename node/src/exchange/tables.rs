//! The CSV export's three tables, for spreadsheets and data tools: `records` (one row per
//! publication), `indicators` (one row per indicator of an evaluation) and `links` (one row per
//! link). Every row ends with the record's `status` and `certified` (`marks`).
//!
//! Cells are unambiguous: a list is a JSON array (`["vélo","compteur"]`), so a tag holding `;`
//! or `,` splits back exactly; a number is written as the record holds it (`412`, `7.5`), and
//! an absent value is an empty cell. Every cell goes through `csv_cell`, which keeps a
//! spreadsheet from running it as a formula.

use super::marks::Marks;
use cailloux_protocol::time::rfc3339_millis;
use cailloux_protocol::{Number, Record};

/// One of the CSV export's tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Table {
    #[default]
    Records,
    Indicators,
    Links,
}

const RECORDS: &[&str] = &[
    "id",
    "kind",
    "title",
    "town",
    "author",
    "created_at",
    "language",
    "themes",
    "tags",
    "sdgs",
    "period_start",
    "period_end",
    "participation",
    "licence",
    "outcome",
    "need",
    "method",
    "summary",
    "status",
    "certified",
];

const INDICATORS: &[&str] = &[
    "record_id",
    "town",
    "title",
    "name",
    "unit",
    "value",
    "baseline",
    "target",
    "date",
    "source",
    "status",
    "certified",
];

const LINKS: &[&str] = &["from", "rel", "to", "status", "certified"];

impl Table {
    pub const ALL: [Table; 3] = [Table::Records, Table::Indicators, Table::Links];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::Indicators => "indicators",
            Table::Links => "links",
        }
    }

    pub fn parse(word: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == word)
    }

    /// The header row.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Records => RECORDS,
            Table::Indicators => INDICATORS,
            Table::Links => LINKS,
        }
    }

    /// The rows `record` gives in this table, in the order of `columns`, every cell safe for a
    /// spreadsheet: none for an act, one for a publication in `records`, one per indicator or
    /// link.
    pub fn rows(self, record: &Record, marks: Marks) -> Vec<Vec<String>> {
        let Some(p) = record.publication() else {
            return Vec::new();
        };
        let id = record.id().to_hex();
        let marks = [
            marks.status.as_str().to_owned(),
            marks.certified.to_string(),
        ];
        let opt = |s: Option<String>| s.unwrap_or_default();
        let rows: Vec<Vec<String>> = match self {
            Table::Records => vec![vec![
                id,
                p.kind.to_string(),
                p.title.clone(),
                p.town.clone(),
                record.author().to_hex(),
                rfc3339_millis(record.created_at()),
                p.language.clone(),
                json_cell(&p.themes),
                json_cell(&p.tags),
                json_cell(&p.sdgs),
                opt(p.period.as_ref().map(|x| x.start.to_string())),
                opt(p.period.as_ref().and_then(|x| x.end).map(|d| d.to_string())),
                opt(p.participation.map(|x| x.to_string())),
                p.licence.clone(),
                opt(p.outcome.map(|x| x.to_string())),
                opt(p.need.map(|x| x.to_string())),
                opt(p.method.map(|x| x.to_string())),
                p.summary.clone(),
            ]],
            Table::Indicators => p
                .indicators
                .iter()
                .map(|i| {
                    vec![
                        id.clone(),
                        p.town.clone(),
                        p.title.clone(),
                        i.name.clone(),
                        i.unit.clone(),
                        number(i.value),
                        opt(i.baseline.map(number)),
                        opt(i.target.map(number)),
                        opt(i.date.map(|d| d.to_string())),
                        opt(i.source.clone()),
                    ]
                })
                .collect(),
            Table::Links => p
                .links
                .iter()
                .map(|l| vec![id.clone(), l.rel.to_string(), l.id.to_hex()])
                .collect(),
        };
        rows.into_iter()
            .map(|row| {
                row.into_iter()
                    .chain(marks.iter().cloned())
                    .map(csv_cell)
                    .collect()
            })
            .collect()
    }
}

/// A number as the record holds it: `35` stays an integer, `0.35` a decimal.
fn number(n: Number) -> String {
    serde_json::to_string(&n).unwrap_or_default()
}

/// A list as a JSON array. A `;` inside its strings is written `\u003b`, which JSON reads back
/// as `;`: a spreadsheet whose list separator is `;` (a French Excel) splits a cell at every `;`,
/// quoted or not, and would break the array (and could start a formula in a piece). An array
/// begins with `[`, never a formula.
fn json_cell<T: serde::Serialize>(list: &T) -> String {
    serde_json::to_string(list)
        .unwrap_or_default()
        .replace(';', "\\u003b")
}

/// A cell as a spreadsheet may open it safely. Text that begins with `=`, `+`, `-`, `@`, a tab
/// or a carriage return is a formula to Excel, LibreOffice Calc and Google Sheets (CSV
/// injection: a title `=HYPERLINK(…)` would be a live link, a town `+cmd|…` a command), so it
/// gets the usual apostrophe in front, which they show as text. A cell that is a plain decimal
/// number (`-12`, `+3.5`, `-2.5e-3`) is left as it is: a spreadsheet reads it as that number,
/// never as a formula. The JSONL export is never changed: it is the signed text.
pub fn csv_cell(cell: String) -> String {
    // A spreadsheet whose list separator is `;` (French Excel) splits a cell at each `;`, quotes
    // or not, and reads each piece as a cell of its own: each piece is neutralised as a cell.
    if !cell.contains(';') {
        return neutral(cell);
    }
    cell.split(';')
        .map(|piece| neutral(piece.to_owned()))
        .collect::<Vec<_>>()
        .join(";")
}

fn neutral(cell: String) -> String {
    let live = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if live && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// An optional sign, digits, optionally a point and more digits, optionally an exponent.
fn is_plain_number(s: &str) -> bool {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    digits(whole) && digits(fraction) && exponent.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_a_formula_get_an_apostrophe_and_plain_numbers_do_not() {
        for (cell, expected) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("- une liste", "'- une liste"),
            ("-", "'-"),
            ("-.5", "'-.5"),
            ("-e5", "'-e5"),
            ("-1e", "'-1e"),
            ("-12", "-12"),
            ("+3.5", "+3.5"),
            ("-0.25", "-0.25"),
            ("-2.5e-3", "-2.5e-3"),
            ("12", "12"),
            ("Jardins = potagers", "Jardins = potagers"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell.to_owned()), expected, "{cell:?}");
        }
    }

    #[test]
    fn a_list_cell_is_a_json_array_with_no_semicolon_that_reads_back_exactly() {
        let tags = vec!["a;=cmd".to_owned(), "b,c".to_owned(), "\"q\"".to_owned()];
        let cell = csv_cell(json_cell(&tags));
        assert!(cell.starts_with('[') && !cell.contains(';'), "{cell}");
        let back: Vec<String> = serde_json::from_str(&cell).unwrap_or_default();
        assert_eq!(back, tags);
    }
}
