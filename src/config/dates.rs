//! Relative dates in parameter values (`@today-7d`, `@month_start-1m`, `@now-36h`),
//! read from a parameter's text and evaluated against an as-of instant in the job's time
//! zone. Pure: the instant and the zone are given, so every rule is unit-tested here.
//!
//! # The rules
//!
//! - An expression is an anchor, then any number of steps applied left to right: a sign,
//!   a whole number and a unit, `h` (hours), `d` (days), `w` (weeks), `m` (months) or
//!   `y` (years). `@today-1m+2d` is a month before today, then two days later.
//! - The date anchors `@today`, `@yesterday`, `@month_start`, `@year_start` and
//!   `@week_start` (the ISO week's Monday) are dates in the zone at the as-of instant;
//!   with only `d`, `w`, `m` and `y` steps the value is a date, `YYYY-MM-DD`.
//! - `@now`, `@hour_start` (the start of the as-of instant's local hour) and any
//!   expression with an `h` step are timestamps, written as RFC 3339 with the zone's
//!   offset, to the second: `2026-03-08T03:30:00-04:00` (`+00:00` in UTC). An `h` step on
//!   a date anchor starts from the date's local midnight.
//! - Months and years keep the day of the month, clamped to the month's end:
//!   2026-01-31 `+1m` is 2026-02-28; 2024-02-29 `+1y` is 2025-02-28.
//! - On a timestamp, `d`, `w`, `m` and `y` move the local wall-clock date and keep its
//!   time of day (`@now-1d` is yesterday at the same local time), while `h` is elapsed
//!   time (`@now-24h` is exactly 24 hours earlier); across a daylight saving change the two
//!   differ by the change.
//! - A local time that does not exist (the hour skipped when clocks go forward) moves
//!   forward by the gap: 02:30 on the night clocks go from 02:00 to 03:00 is 03:30. A
//!   local time that happens twice (clocks go back) is its first occurrence, with the
//!   offset in effect before the change.
//! - `@@` at the start is the literal text with one `@` removed (`@@home` is `@home`);
//!   text not starting with `@` is itself.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    SecondsFormat, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The forms a relative date takes, for the messages of those that do not parse.
const FORMS: &str = "a relative date is @today, @yesterday, @now, @month_start, @year_start, \
                     @week_start or @hour_start, then optional steps such as -7d, +1m or -36h \
                     (units h, d, w, m, y); start with @@ for a literal @";

/// Why a relative date, an as-of instant or a time zone could not be read. The caller
/// puts in front of it which parameter or setting gave it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DateError {
    #[error("`{value}` is not a relative date ({reason}); {FORMS}")]
    Malformed { value: String, reason: Malformed },
    /// The expression moves past the dates chrono represents (about ±262,000 years).
    #[error("`{0}` is out of the range of dates")]
    OutOfRange(String),
    #[error(
        "`{0}` is not a date (YYYY-MM-DD), a timestamp with an offset (2026-03-01T06:00:00Z, \
         2026-03-01T07:00:00+01:00) or a local timestamp (2026-03-01T06:00:00)"
    )]
    AsOf(String),
    #[error(
        "unknown time zone `{0}`: use an IANA name such as UTC, Europe/Berlin or America/New_York"
    )]
    Zone(String),
}

/// What is wrong with an expression, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    #[error("no anchor after `@`")]
    NoAnchor,
    #[error("unknown anchor `@{0}`")]
    UnknownAnchor(String),
    #[error("`{0}` where a step's + or - was expected")]
    Unexpected(char),
    #[error("a number must follow `{0}`")]
    NoNumber(char),
    #[error("`{0}` is too large a number")]
    TooLarge(String),
    #[error("the step `{0}` has no unit")]
    NoUnit(String),
    #[error("unknown unit `{unit}` in the step `{step}`")]
    UnknownUnit { step: String, unit: char },
}

/// Where an expression starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Today,
    Yesterday,
    Now,
    MonthStart,
    YearStart,
    /// The Monday of the ISO week.
    WeekStart,
    HourStart,
}

impl Anchor {
    const NAMES: [(&'static str, Anchor); 7] = [
        ("today", Anchor::Today),
        ("yesterday", Anchor::Yesterday),
        ("now", Anchor::Now),
        ("month_start", Anchor::MonthStart),
        ("year_start", Anchor::YearStart),
        ("week_start", Anchor::WeekStart),
        ("hour_start", Anchor::HourStart),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

/// One step of an expression: `-7d` is `{ back: true, count: 7, unit: Days }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub back: bool,
    pub count: u32,
    pub unit: Unit,
}

/// A parsed relative date: an anchor and the steps applied to it in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelativeDate {
    pub anchor: Anchor,
    pub steps: Vec<Step>,
}

/// A parameter's text, read for relative dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamText<'a> {
    /// Text that is its own value: without a leading `@`, or with `@@` and one `@` removed.
    Literal(&'a str),
    /// A relative date.
    Relative(RelativeDate),
}

impl ParamText<'_> {
    /// Reads `text`: a relative date when it starts with one `@`, else a literal.
    pub fn read(text: &str) -> Result<ParamText<'_>, DateError> {
        match text.strip_prefix('@') {
            None => Ok(ParamText::Literal(text)),
            Some(rest) if rest.starts_with('@') => Ok(ParamText::Literal(rest)),
            Some(_) => RelativeDate::parse(text).map(ParamText::Relative),
        }
    }
}

/// The value of a relative date: a date, or an instant in the job's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    Date(NaiveDate),
    Timestamp(DateTime<Tz>),
}

impl fmt::Display for DateValue {
    /// `2026-03-08`, or `2026-03-08T03:30:00-04:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            DateValue::Timestamp(t) => f.write_str(&rfc3339(t)),
        }
    }
}

impl RelativeDate {
    /// Parses `@anchor` followed by steps such as `-7d` and `+1m`.
    pub fn parse(text: &str) -> Result<RelativeDate, DateError> {
        let malformed = |reason| DateError::Malformed {
            value: text.to_string(),
            reason,
        };
        let body = text
            .strip_prefix('@')
            .ok_or(malformed(Malformed::NoAnchor))?;
        let name_end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let (name, mut rest) = body.split_at(name_end);
        if name.is_empty() {
            return Err(malformed(Malformed::NoAnchor));
        }
        let anchor = Anchor::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| malformed(Malformed::UnknownAnchor(name.to_string())))?;
        let mut steps = Vec::new();
        while let Some(sign) = rest.chars().next() {
            let back = match sign {
                '+' => false,
                '-' => true,
                other => return Err(malformed(Malformed::Unexpected(other))),
            };
            let after_sign = &rest[1..];
            let digits = after_sign
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_sign.len());
            if digits == 0 {
                return Err(malformed(Malformed::NoNumber(sign)));
            }
            let number = &after_sign[..digits];
            let count: u32 = number
                .parse()
                .map_err(|_| malformed(Malformed::TooLarge(number.to_string())))?;
            let step = &rest[..1 + digits];
            let unit = match after_sign[digits..].chars().next() {
                None | Some('+' | '-') => {
                    return Err(malformed(Malformed::NoUnit(step.to_string())));
                }
                Some('h') => Unit::Hours,
                Some('d') => Unit::Days,
                Some('w') => Unit::Weeks,
                Some('m') => Unit::Months,
                Some('y') => Unit::Years,
                Some(unit) => {
                    return Err(malformed(Malformed::UnknownUnit {
                        step: format!("{step}{unit}"),
                        unit,
                    }));
                }
            };
            steps.push(Step { back, count, unit });
            rest = &after_sign[digits + 1..];
        }
        Ok(RelativeDate { anchor, steps })
    }

    /// The expression's value at `as_of`, in `as_of`'s zone; `None` past the range of
    /// dates.
    pub fn evaluate(&self, as_of: &DateTime<Tz>) -> Option<DateValue> {
        let zone = as_of.timezone();
        let today = as_of.date_naive();
        let start = match self.anchor {
            Anchor::Today => DateValue::Date(today),
            Anchor::Yesterday => DateValue::Date(today.pred_opt()?),
            Anchor::MonthStart => DateValue::Date(today.with_day(1)?),
            Anchor::YearStart => DateValue::Date(NaiveDate::from_ymd_opt(today.year(), 1, 1)?),
            Anchor::WeekStart => DateValue::Date(
                today.checked_sub_days(Days::new(today.weekday().num_days_from_monday().into()))?,
            ),
            Anchor::Now => DateValue::Timestamp(*as_of),
            // Elapsed time back to the local hour's start: unlike setting the wall clock's
            // minutes to zero, never lands in the other occurrence of a repeated hour.
            Anchor::HourStart => {
                let into_hour = i64::from(as_of.minute() * 60 + as_of.second());
                DateValue::Timestamp(
                    as_of.checked_sub_signed(TimeDelta::new(into_hour, as_of.nanosecond())?)?,
                )
            }
        };
        let hours = self.steps.iter().any(|s| s.unit == Unit::Hours);
        let mut value = match start {
            DateValue::Date(d) if hours => {
                DateValue::Timestamp(local(zone, d.and_time(NaiveTime::MIN))?)
            }
            other => other,
        };
        for step in &self.steps {
            value = match value {
                DateValue::Date(d) => DateValue::Date(calendar_step(d, step)?),
                DateValue::Timestamp(t) => DateValue::Timestamp(match step.unit {
                    Unit::Hours => {
                        let hours = TimeDelta::try_hours(i64::from(step.count))?;
                        if step.back {
                            t.checked_sub_signed(hours)?
                        } else {
                            t.checked_add_signed(hours)?
                        }
                    }
                    _ => local(zone, calendar_step(t.naive_local(), step)?)?,
                }),
            };
        }
        Some(value)
    }
}

/// A date or a wall-clock time moved by a step of days, weeks, months or years; months
/// and years clamp the day to the month's end.
fn calendar_step<T: Calendar>(from: T, step: &Step) -> Option<T> {
    let (days, months) = match step.unit {
        Unit::Days => (step.count, 0),
        Unit::Weeks => (step.count.checked_mul(7)?, 0),
        Unit::Months => (0, step.count),
        Unit::Years => (0, step.count.checked_mul(12)?),
        Unit::Hours => unreachable!("hours are elapsed time, never a calendar step"),
    };
    match (step.back, months) {
        (false, 0) => from.add_days(Days::new(days.into())),
        (true, 0) => from.sub_days(Days::new(days.into())),
        (false, m) => from.add_months(Months::new(m)),
        (true, m) => from.sub_months(Months::new(m)),
    }
}

/// What calendar steps need of a date or a wall-clock time.
trait Calendar: Sized {
    fn add_days(self, days: Days) -> Option<Self>;
    fn sub_days(self, days: Days) -> Option<Self>;
    fn add_months(self, months: Months) -> Option<Self>;
    fn sub_months(self, months: Months) -> Option<Self>;
}

/// Both types have the same checked calendar arithmetic, under the same names.
macro_rules! calendar {
    ($($t:ty),*) => {$(
        impl Calendar for $t {
            fn add_days(self, days: Days) -> Option<Self> {
                self.checked_add_days(days)
            }
            fn sub_days(self, days: Days) -> Option<Self> {
                self.checked_sub_days(days)
            }
            fn add_months(self, months: Months) -> Option<Self> {
                self.checked_add_months(months)
            }
            fn sub_months(self, months: Months) -> Option<Self> {
                self.checked_sub_months(months)
            }
        }
    )*};
}

calendar!(NaiveDate, NaiveDateTime);

/// The instant a wall-clock time in `zone` names. A time in a gap (clocks going
/// forward) is read with the offset in effect before the gap, which moves it forward by
/// the gap; a time that happens twice (clocks going back) is the first one.
pub fn local(zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
        LocalResult::None => {
            // Read as UTC and moved back by the largest offset there is (+14:00), the
            // wall-clock time is an instant before the gap's transition and within a day
            // of it: its offset is the one before the gap.
            let before = wall.checked_sub_signed(TimeDelta::try_hours(14)?)?;
            let offset = zone.offset_from_utc_datetime(&before).fix();
            let utc =
                wall.checked_sub_signed(TimeDelta::try_seconds(offset.local_minus_utc().into())?)?;
            Some(zone.from_utc_datetime(&utc))
        }
    }
}

/// An IANA time zone by its exact name (`UTC`, `Europe/Berlin`).
pub fn zone(name: &str) -> Result<Tz, DateError> {
    name.parse().map_err(|_| DateError::Zone(name.to_string()))
}

/// The as-of instant `text` gives in `zone`, to the second: a date is its local
/// midnight, an RFC 3339 timestamp with an offset or `Z` is that instant, a timestamp
/// without one (`T` or a space between date and time, seconds optional) is wall-clock
/// time in `zone`.
pub fn parse_as_of(text: &str, zone: Tz) -> Result<DateTime<Tz>, DateError> {
    let t = text.trim();
    let error = || DateError::AsOf(text.to_string());
    let instant = if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        local(zone, date.and_time(NaiveTime::MIN))
    } else if let Ok(instant) = DateTime::parse_from_rfc3339(t) {
        Some(instant.with_timezone(&zone))
    } else {
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(t, format).ok())
        .map(|wall| local(zone, wall))
        .ok_or_else(error)?
    };
    instant.and_then(whole_seconds).ok_or_else(error)
}

/// Now in `zone`, to the second: the as-of instant when none is given.
pub fn now(zone: Tz) -> DateTime<Tz> {
    let now = Utc::now().with_timezone(&zone);
    whole_seconds(now).unwrap_or(now)
}

/// The instant without its fraction of a second, as values are written to the second.
/// Elapsed time, not `with_nanosecond`, which fails in a repeated hour.
fn whole_seconds(t: DateTime<Tz>) -> Option<DateTime<Tz>> {
    t.checked_sub_signed(TimeDelta::new(0, t.nanosecond())?)
}

/// RFC 3339 to the second with the zone's offset: `2026-03-08T03:30:00-04:00`,
/// `2026-03-08T08:30:00+00:00`.
pub fn rfc3339(t: &DateTime<Tz>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A parameter's text resolved at `as_of`: its value, and the expression when it was a
/// relative date.
pub fn resolve_text(
    text: &str,
    as_of: &DateTime<Tz>,
) -> Result<(String, Option<String>), DateError> {
    match ParamText::read(text)? {
        ParamText::Literal(literal) => Ok((literal.to_string(), None)),
        ParamText::Relative(date) => {
            let value = date
                .evaluate(as_of)
                .ok_or_else(|| DateError::OutOfRange(text.to_string()))?;
            Ok((value.to_string(), Some(text.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The as-of instant `rfc3339` (with an offset) seen in `zone`.
    fn at(rfc3339: &str, zone: &str) -> DateTime<Tz> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&super::zone(zone).unwrap())
    }

    /// `expr` evaluated at `as_of`, as the parameter's text.
    fn eval(expr: &str, as_of: &DateTime<Tz>) -> String {
        let (value, expression) = resolve_text(expr, as_of).unwrap();
        assert_eq!(expression.as_deref(), Some(expr));
        value
    }

    /// Each expression at `as_of` in `zone`, against the expected text.
    fn table(as_of: &str, zone: &str, cases: &[(&str, &str)]) {
        let as_of = at(as_of, zone);
        for (expr, expected) in cases {
            assert_eq!(
                eval(expr, &as_of),
                *expected,
                "{expr} at {} in {zone}",
                rfc3339(&as_of)
            );
        }
    }

    #[test]
    fn date_anchors_and_calendar_steps() {
        // A Thursday.
        table(
            "2026-03-12T15:45:10Z",
            "UTC",
            &[
                ("@today", "2026-03-12"),
                ("@yesterday", "2026-03-11"),
                ("@month_start", "2026-03-01"),
                ("@year_start", "2026-01-01"),
                ("@week_start", "2026-03-09"),
                ("@today-7d", "2026-03-05"),
                ("@today+2w", "2026-03-26"),
                ("@month_start-1m", "2026-02-01"),
                ("@year_start-1y", "2025-01-01"),
                ("@today-1m+2d", "2026-02-14"),
                ("@today-0d", "2026-03-12"),
                ("@now", "2026-03-12T15:45:10+00:00"),
                ("@hour_start", "2026-03-12T15:00:00+00:00"),
                ("@now-36h", "2026-03-11T03:45:10+00:00"),
                // An hour step on a date anchor starts from local midnight.
                ("@today+6h", "2026-03-12T06:00:00+00:00"),
                ("@yesterday-1d+1h", "2026-03-10T01:00:00+00:00"),
            ],
        );
    }

    #[test]
    fn months_and_years_clamp_to_the_months_end() {
        table(
            "2026-03-31T12:00:00Z",
            "UTC",
            &[
                ("@today-1m", "2026-02-28"),
                ("@today-1m+1m", "2026-03-28"),
                ("@today+1m", "2026-04-30"),
                ("@today-13m", "2025-02-28"),
                ("@now-1m", "2026-02-28T12:00:00+00:00"),
            ],
        );
        table(
            "2026-01-31T00:00:00Z",
            "UTC",
            &[("@today+1m", "2026-02-28"), ("@today+1y", "2027-01-31")],
        );
        // Leap years.
        table(
            "2024-01-31T08:00:00Z",
            "UTC",
            &[("@today+1m", "2024-02-29")],
        );
        table(
            "2024-02-29T08:00:00Z",
            "UTC",
            &[
                ("@today+1y", "2025-02-28"),
                ("@today-1y", "2023-02-28"),
                ("@today+4y", "2028-02-29"),
                ("@today-12m", "2023-02-28"),
                ("@year_start", "2024-01-01"),
                ("@month_start", "2024-02-01"),
                ("@today+1d", "2024-03-01"),
            ],
        );
        table(
            "2024-12-31T23:00:00Z",
            "UTC",
            &[("@year_start", "2024-01-01"), ("@today-365d", "2024-01-01")],
        );
        table(
            "2028-03-01T00:00:00Z",
            "UTC",
            &[
                ("@yesterday", "2028-02-29"),
                ("@year_start+59d", "2028-02-29"),
            ],
        );
    }

    #[test]
    fn week_start_is_the_iso_monday() {
        // A Monday is its own week's start; a Sunday belongs to the week before.
        table(
            "2026-03-09T00:00:00Z",
            "UTC",
            &[
                ("@week_start", "2026-03-09"),
                ("@week_start-1w", "2026-03-02"),
            ],
        );
        table(
            "2026-03-15T23:59:59Z",
            "UTC",
            &[("@week_start", "2026-03-09")],
        );
        // Across a year's end.
        table(
            "2027-01-01T10:00:00Z",
            "UTC",
            &[("@week_start", "2026-12-28")],
        );
    }

    #[test]
    fn elapsed_hours_and_calendar_days_differ_across_daylight_saving() {
        // New York springs forward at 2026-03-08 02:00 EST (-05:00) to 03:00 EDT (-04:00).
        table(
            "2026-03-08T12:00:00-04:00",
            "America/New_York",
            &[
                ("@now", "2026-03-08T12:00:00-04:00"),
                ("@now-24h", "2026-03-07T11:00:00-05:00"),
                ("@now-1d", "2026-03-07T12:00:00-05:00"),
                ("@today+6h", "2026-03-08T07:00:00-04:00"),
                ("@today", "2026-03-08"),
            ],
        );
        // ... and falls back at 2026-11-01 02:00 EDT to 01:00 EST.
        table(
            "2026-11-01T12:00:00-05:00",
            "America/New_York",
            &[
                ("@now-24h", "2026-10-31T13:00:00-04:00"),
                ("@now-1d", "2026-10-31T12:00:00-04:00"),
                ("@today+6h", "2026-11-01T05:00:00-05:00"),
            ],
        );
        // Berlin springs forward at 2026-03-29 02:00 CET (+01:00) to 03:00 CEST (+02:00)
        // and falls back at 2026-10-25 03:00 CEST to 02:00 CET.
        table(
            "2026-03-29T12:00:00+02:00",
            "Europe/Berlin",
            &[
                ("@now-24h", "2026-03-28T11:00:00+01:00"),
                ("@now-1d", "2026-03-28T12:00:00+01:00"),
            ],
        );
        table(
            "2026-03-30T09:00:00+02:00",
            "Europe/Berlin",
            &[
                ("@now-24h", "2026-03-29T09:00:00+02:00"),
                ("@now-48h", "2026-03-28T08:00:00+01:00"),
                ("@now-2d", "2026-03-28T09:00:00+01:00"),
                ("@now-1w", "2026-03-23T09:00:00+01:00"),
            ],
        );
        table(
            "2026-10-25T18:00:00+01:00",
            "Europe/Berlin",
            &[
                ("@now-24h", "2026-10-24T19:00:00+02:00"),
                ("@now-1d", "2026-10-24T18:00:00+02:00"),
                ("@now+1d", "2026-10-26T18:00:00+01:00"),
            ],
        );
    }

    #[test]
    fn missing_local_times_move_forward_and_repeated_ones_take_the_first() {
        // 02:30 on 2026-03-08 does not exist in New York: a day after 02:30 the day
        // before is 03:30 EDT, an hour (the gap) later on the wall clock.
        table(
            "2026-03-07T02:30:00-05:00",
            "America/New_York",
            &[
                ("@now+1d", "2026-03-08T03:30:00-04:00"),
                ("@now+24h", "2026-03-08T03:30:00-04:00"),
                ("@now+1d+1d", "2026-03-09T03:30:00-04:00"),
            ],
        );
        // 01:30 on 2026-11-01 happens twice in New York: first in EDT.
        table(
            "2026-10-31T01:30:00-04:00",
            "America/New_York",
            &[
                ("@now+1d", "2026-11-01T01:30:00-04:00"),
                ("@now+1d+1h", "2026-11-01T01:30:00-05:00"),
                ("@now+1d+2h", "2026-11-01T02:30:00-05:00"),
            ],
        );
        // Berlin: 02:30 on 2026-03-29 does not exist; 02:30 on 2026-10-25 is twice.
        table(
            "2026-03-28T02:30:00+01:00",
            "Europe/Berlin",
            &[("@now+1d", "2026-03-29T03:30:00+02:00")],
        );
        table(
            "2026-10-24T02:30:00+02:00",
            "Europe/Berlin",
            &[("@now+1d", "2026-10-25T02:30:00+02:00")],
        );
        // Within the repeated hour, its start is the same hour's, not the other one's.
        table(
            "2026-11-01T01:40:00-05:00",
            "America/New_York",
            &[("@hour_start", "2026-11-01T01:00:00-05:00")],
        );
        // A midnight that does not exist: Havana springs forward at 00:00 to 01:00.
        table(
            "2026-03-08T12:00:00-04:00",
            "America/Havana",
            &[("@today+1h", "2026-03-08T02:00:00-04:00")],
        );
    }

    #[test]
    fn the_zone_decides_the_date() {
        table(
            "2026-12-05T23:30:00Z",
            "Asia/Tokyo",
            &[
                ("@today", "2026-12-06"),
                ("@now", "2026-12-06T08:30:00+09:00"),
                ("@hour_start", "2026-12-06T08:00:00+09:00"),
            ],
        );
        table("2026-12-05T23:30:00Z", "UTC", &[("@today", "2026-12-05")]);
        // India's offset is not whole hours: the hour starts on its local clock.
        table(
            "2026-12-05T23:50:00Z",
            "Asia/Kolkata",
            &[("@hour_start", "2026-12-06T05:00:00+05:30")],
        );
    }

    #[test]
    fn double_at_is_a_literal_at() {
        let as_of = at("2026-03-01T00:00:00Z", "UTC");
        for (text, value) in [
            ("@@home", "@home"),
            ("@@today", "@today"),
            ("@@", "@"),
            ("@@@x", "@@x"),
            ("plain", "plain"),
            ("", ""),
            ("a@today", "a@today"),
        ] {
            assert_eq!(
                resolve_text(text, &as_of).unwrap(),
                (value.to_string(), None),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_expressions_are_named_with_the_reason() {
        for (text, reason) in [
            ("@tomorrow", "unknown anchor `@tomorrow`"),
            ("@Today", "unknown anchor `@Today`"),
            ("@today-7", "the step `-7` has no unit"),
            ("@today-7+1d", "the step `-7` has no unit"),
            ("@today-7x", "unknown unit `x` in the step `-7x`"),
            ("@", "no anchor after `@`"),
            ("@-1d", "no anchor after `@`"),
            ("@today 1d", "` ` where a step's + or - was expected"),
            ("@today-d", "a number must follow `-`"),
            ("@today+99999999999d", "`99999999999` is too large a number"),
        ] {
            let err = ParamText::read(text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("`{text}` is not a relative date ({reason});")),
                "{text}: {message}"
            );
            assert!(message.contains("@today, @yesterday, @now"), "{message}");
        }
        let as_of = at("2026-03-01T00:00:00Z", "UTC");
        assert_eq!(
            resolve_text("@today+4000000000y", &as_of).unwrap_err(),
            DateError::OutOfRange("@today+4000000000y".into())
        );
        assert_eq!(
            resolve_text("@now+4000000000h", &as_of).unwrap_err(),
            DateError::OutOfRange("@now+4000000000h".into())
        );
    }

    #[test]
    fn as_of_reads_dates_absolute_and_local_timestamps() {
        let ny = zone("America/New_York").unwrap();
        let read = |text: &str, zone: Tz| rfc3339(&parse_as_of(text, zone).unwrap());
        assert_eq!(read("2026-03-01", Tz::UTC), "2026-03-01T00:00:00+00:00");
        assert_eq!(read("2026-03-01", ny), "2026-03-01T00:00:00-05:00");
        // An offset is absolute; the zone only shows it.
        assert_eq!(
            read("2026-03-02T03:00:00Z", ny),
            "2026-03-01T22:00:00-05:00"
        );
        assert_eq!(
            read("2026-07-01T12:00:00+02:00", ny),
            "2026-07-01T06:00:00-04:00"
        );
        // Without one, wall-clock time in the zone, to the second.
        assert_eq!(read("2026-07-01T12:00:00", ny), "2026-07-01T12:00:00-04:00");
        assert_eq!(read("2026-07-01 12:00", ny), "2026-07-01T12:00:00-04:00");
        assert_eq!(
            read("2026-07-01T12:00:09.75", ny),
            "2026-07-01T12:00:09-04:00"
        );
        assert_eq!(read("2026-03-08T02:30:00", ny), "2026-03-08T03:30:00-04:00");
        assert_eq!(
            read("2026-11-01T01:30:00.5", ny),
            "2026-11-01T01:30:00-04:00"
        );
        assert_eq!(
            read("2026-11-01T06:30:00.5Z", ny),
            "2026-11-01T01:30:00-05:00"
        );
        for bad in ["yesterday", "2026-02-30", "2026-03-01T25:00", "12:00", ""] {
            assert_eq!(
                parse_as_of(bad, Tz::UTC).unwrap_err(),
                DateError::AsOf(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn zones_are_iana_names() {
        assert_eq!(zone("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(zone("UTC").unwrap(), Tz::UTC);
        let err = zone("Mars/Olympus").unwrap_err();
        assert!(err.to_string().contains("`Mars/Olympus`"), "{err}");
    }
}
