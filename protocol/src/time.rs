//! Dates as the format writes them: partial calendar dates (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) for
//! periods and indicators, and creation times as milliseconds since the Unix epoch, shown in
//! RFC 3339. Hand-written civil-calendar arithmetic keeps the protocol crate free of clocks and
//! time-zone databases: it never asks what time it is, it is told.

use std::fmt;

/// A calendar date given to the precision its author knew: a year, a month or a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartialDate {
    pub year: u16,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

impl PartialDate {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, checking that the date exists.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a date; write YYYY, YYYY-MM or YYYY-MM-DD");
        let parts: Vec<&str> = s.split('-').collect();
        let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
        let ok_shape = match parts.as_slice() {
            [y] => digits(y, 4),
            [y, m] => digits(y, 4) && digits(m, 2),
            [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
            _ => false,
        };
        if !ok_shape {
            return Err(bad());
        }
        let year: u16 = parts[0].parse().map_err(|_| bad())?;
        if year < 1000 {
            return Err(format!("`{s}`: the year must have four digits, from 1000"));
        }
        let month = match parts.get(1) {
            Some(m) => {
                let m: u8 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&m) {
                    return Err(format!(
                        "`{s}`: month {m} does not exist; months go from 01 to 12"
                    ));
                }
                Some(m)
            }
            None => None,
        };
        let day = match (parts.get(2), month) {
            (Some(d), Some(m)) => {
                let d: u8 = d.parse().map_err(|_| bad())?;
                let last = days_in_month(i64::from(year), m);
                if d == 0 || d > last {
                    return Err(format!(
                        "`{s}`: day {d} does not exist; {year}-{m:02} has {last} days"
                    ));
                }
                Some(d)
            }
            _ => None,
        };
        Ok(PartialDate { year, month, day })
    }
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A date before the Unix epoch, where times (milliseconds since 1970-01-01) cannot go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{date} is before 1970-01-01; times are counted from 1970-01-01 (UTC), give a date from then on"
)]
pub struct BeforeEpoch {
    pub date: PartialDate,
}

impl PartialDate {
    /// The last millisecond of the period the date names (UTC): `2027` ends on 31 December
    /// 2027, `2027-06` on 30 June. For "valid until" dates. Refused for a period that ends
    /// before 1970 (it would wrap around a `u64` into the year 584556019).
    pub fn end_millis(&self) -> Result<u64, BeforeEpoch> {
        let y = i64::from(self.year);
        let m = self.month.unwrap_or(12);
        let d = self.day.unwrap_or_else(|| days_in_month(y, m));
        let days = days_from_civil(y, m, d) + 1;
        match u64::try_from(days) {
            Ok(days) if days > 0 => Ok(days * 86_400_000 - 1),
            _ => Err(BeforeEpoch { date: *self }),
        }
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The calendar year of a creation time, for filters and statistics.
pub fn year_of_millis(ms: u64) -> i64 {
    civil_from_days(((ms / 1000) as i64).div_euclid(86_400)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_ends_on_its_last_millisecond() {
        let end = |s: &str| {
            PartialDate::parse(s)
                .map(|d| d.end_millis().map(rfc3339_millis))
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(end("2027"), "2027-12-31T23:59:59.999Z");
        assert_eq!(end("2024-02"), "2024-02-29T23:59:59.999Z");
        assert_eq!(end("2026-11-26"), "2026-11-26T23:59:59.999Z");
        assert_eq!(end("1970-01-01"), "1970-01-01T23:59:59.999Z");
        assert_eq!(end("9999"), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_date_before_1970_has_no_end_in_milliseconds() {
        for s in ["1969-12-31", "1969-12", "1969", "1000-01-01"] {
            let date = PartialDate::parse(s).unwrap_or_else(|e| panic!("{e}"));
            let err = date.end_millis().err().map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some(
                    format!(
                        "{s} is before 1970-01-01; times are counted from 1970-01-01 (UTC), give a \
                         date from then on"
                    )
                    .as_str()
                ),
            );
        }
    }

    #[test]
    fn parses_partial_dates() {
        assert_eq!(
            PartialDate::parse("2024").map(|d| d.to_string()).as_deref(),
            Ok("2024")
        );
        assert_eq!(
            PartialDate::parse("2024-06")
                .map(|d| d.to_string())
                .as_deref(),
            Ok("2024-06")
        );
        assert!(PartialDate::parse("2024-02-29").is_ok());
        assert!(PartialDate::parse("2023-02-29").is_err());
        assert!(PartialDate::parse("2024-13").is_err());
        assert!(PartialDate::parse("24-06").is_err());
        assert!(PartialDate::parse("juin 2024").is_err());
        assert!(PartialDate::parse("2024-6").is_err());
    }

    #[test]
    fn orders_partial_dates() {
        let a = PartialDate::parse("2019").unwrap_or_else(|e| panic!("{e}"));
        let b = PartialDate::parse("2019-03").unwrap_or_else(|e| panic!("{e}"));
        assert!(a < b);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(year_of_millis(1_700_000_000_123), 2023);
    }
}
