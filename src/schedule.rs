//! The schedule engine: when windows open and close.
//!
//! Pure code: no I/O, no clock. Every question takes the instant it is about
//! ("now") as an argument, so callers, tests and benchmarks decide what time
//! it is.
//!
//! # Expressions
//!
//! A [`CronExpr`] means exactly what the same text means in a Kubernetes
//! CronJob `schedule` (the standard 5-field parser of robfig/cron v3):
//!
//! - five fields: minute (0-59), hour (0-23), day of month (1-31), month
//!   (1-12 or `JAN`-`DEC`), day of week (0-7 or `SUN`-`SAT`; 0 and 7 are both
//!   Sunday, so `0 2 * * 2` is Tuesday 02:00). Names are case-insensitive.
//! - each field is a comma-separated list of `*`, `?` (the same as `*`),
//!   values, ranges `a-b` and steps `*/n`, `a-b/n` and `a/n` (which means
//!   `a-<last>/n`; for the day of week the last value of a step is 6).
//! - macros `@yearly` (= `@annually`), `@monthly`, `@weekly`, `@daily`
//!   (= `@midnight`) and `@hourly`.
//! - day of month and day of week: if either field is unrestricted (its text
//!   starts with `*` or `?` and has no step larger than 1), a day must match
//!   both fields, which means only the other field counts. If both are
//!   restricted, a day matches when either field matches (`0 0 13 * FRI` is
//!   every 13th and every Friday). Note that `*/2` counts as restricted, as
//!   it does in robfig/cron.
//!
//! Rejected, each with a message saying what to write instead: 6-field
//! (seconds) expressions, `TZ=`/`CRON_TZ=` prefixes (the time zone is a
//! separate setting), `@every` and `@reboot` (they do not define wall-clock
//! start times), Quartz extensions (`L`, `W`, `#`). Beyond robfig/cron, the
//! day of week also accepts 7 for Sunday, as classic cron does (the CronJob
//! documentation mentions it).
//!
//! # Windows and daylight-saving time
//!
//! A [`Schedule`] is an expression evaluated in the wall-clock time of an
//! IANA time zone, plus a window length. Each start opens the window
//! `[start, start + window)`; the end is `window` of elapsed time after the
//! start, whatever the wall clock does in between.
//!
//! Start times are resolved as follows:
//!
//! - a wall-clock time that occurs once opens a window at that instant;
//! - a wall-clock time that does not exist (the clock springs forward over
//!   it) opens a window at the first instant after the gap: in Europe/Prague
//!   on 2026-03-29, 02:30 does not exist and the window opens at 03:00 CEST
//!   (01:00 UTC);
//! - a wall-clock time that occurs twice (the clock falls back) opens one
//!   window, at its first occurrence; the repeated hour does not open
//!   windows again;
//! - several wall-clock times that resolve to the same instant (all the
//!   nonexistent ones in a gap, and the time right after it) open one window.
//!
//! So every start is a distinct instant, and starts are strictly increasing.
//!
//! # Search horizon
//!
//! [`Schedule::next_start_after`] looks at most [`SEARCH_HORIZON_DAYS`] days
//! (11 years) ahead, which covers every expression that can match at all
//! (`0 0 29 2 *` across the non-leap year 2100 included). An expression
//! that can never match (`0 0 30 2 *`) is recognised when parsed and yields
//! `None` at once. Instants outside the years 1 to 9999 have no windows.
//!
//! Time-zone rules come from the IANA database built into chrono-tz, which
//! spells out daylight-saving changes up to 2099 and keeps the standard
//! offset after that.
//!
//! The search walks over matching days using per-month day bitsets and over
//! matching times of day using minute and hour bitsets; it never steps
//! minute by minute and does not allocate.

use std::fmt;
use std::iter::FusedIterator;
use std::str::FromStr;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, Offset, SecondsFormat,
    TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// How many days past the given instant the search for a window start looks.
pub const SEARCH_HORIZON_DAYS: u64 = 11 * 366;

/// Minutes in a day: times of day are minute-of-day numbers below this.
const MINUTES_PER_DAY: u32 = 24 * 60;

/// The example every "write this instead" message points to.
const EXAMPLE: &str = "\"0 2 * * 2\" (Tuesdays at 02:00)";

/// One of the five fields of a cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// Smallest and largest value a user may write.
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    /// Last value of `*` and of an open-ended step `a/n`. Only differs from
    /// the upper bound for the day of week, where 7 is an alias of 0.
    fn step_end(self) -> u32 {
        match self {
            CronField::DayOfWeek => 6,
            other => other.bounds().1,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            CronField::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }

    /// Value of the first name in [`CronField::names`].
    fn first_name_value(self) -> u32 {
        match self {
            CronField::Month => 1,
            _ => 0,
        }
    }

    fn numeric_range(self) -> &'static str {
        match self {
            CronField::Minute => "0-59",
            CronField::Hour => "0-23",
            CronField::DayOfMonth => "1-31",
            CronField::Month => "1-12",
            CronField::DayOfWeek => "0-7 (0 and 7 are Sunday)",
        }
    }

    fn accepted(self) -> &'static str {
        match self {
            CronField::Minute => "a minute 0-59",
            CronField::Hour => "an hour 0-23",
            CronField::DayOfMonth => "a day 1-31",
            CronField::Month => "a month 1-12 or JAN-DEC",
            CronField::DayOfWeek => "a weekday 0-7 (0 and 7 are Sunday) or SUN-SAT",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// What is wrong inside one field; see [`CronError::Field`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// A list with an empty element, such as `1,,2` or `1,`.
    EmptyItem {
        text: String,
    },
    /// A number outside the field's range.
    OutOfRange {
        value: String,
    },
    /// Neither a number nor (where the field has names) a name.
    NotAValue {
        text: String,
    },
    /// Quartz-only syntax: `L`, `W`, `#`.
    Unsupported {
        text: String,
    },
    /// `-5`, `1-`, `/5`: a range or step with a side missing.
    MissingValue {
        item: String,
    },
    /// `*` used as one end of a range, such as `*-5`.
    StarInRange {
        item: String,
    },
    TooManyHyphens {
        item: String,
    },
    TooManySlashes {
        item: String,
    },
    /// A step that is not a positive whole number.
    BadStep {
        item: String,
    },
    ZeroStep {
        item: String,
    },
    /// A range whose start is after its end, such as `5-1`.
    Reversed {
        item: String,
    },
    /// A stepped day of week starting at 7, such as `7/2`.
    StepFromSeven {
        item: String,
    },
}

impl FieldProblem {
    fn message(&self, field: CronField) -> String {
        match self {
            FieldProblem::EmptyItem { text } => format!(
                "{text:?} has an empty list element; separate values with single commas, e.g. 1,15"
            ),
            FieldProblem::OutOfRange { value } => {
                format!("{value} is out of range {}", field.numeric_range())
            }
            FieldProblem::NotAValue { text } => {
                format!("{text:?} is not valid here; write {}", field.accepted())
            }
            FieldProblem::Unsupported { text } => format!(
                "{text:?} uses L, W or #, which Kubernetes CronJob does not support; \
                 write values, ranges (1-5) and steps (*/15)"
            ),
            FieldProblem::MissingValue { item } => format!(
                "{item:?} is missing a value; write ranges as low-high (1-5) and steps as \
                 range/step (*/15); negative values are not allowed"
            ),
            FieldProblem::StarInRange { item } => format!(
                "{item:?}: * cannot be one end of a range; write * alone or a range such as 1-5"
            ),
            FieldProblem::TooManyHyphens { item } => {
                format!("{item:?} has more than one '-'; write a range as low-high, e.g. 1-5")
            }
            FieldProblem::TooManySlashes { item } => format!(
                "{item:?} has more than one '/'; write a step as range/step, e.g. */15 or 0-30/5"
            ),
            FieldProblem::BadStep { item } => format!(
                "the step in {item:?} is not a whole number; write a step as range/step, e.g. */15"
            ),
            FieldProblem::ZeroStep { item } => {
                format!("the step in {item:?} is 0; a step must be 1 or more, e.g. */15")
            }
            FieldProblem::Reversed { item } => format!(
                "range {item:?} runs backwards; write the smaller value first, and split a range \
                 that wraps around into two, e.g. 22-23,0-2"
            ),
            FieldProblem::StepFromSeven { item } => format!(
                "{item:?}: a stepped range cannot start at 7; write it with 0 (also Sunday), e.g. 0/2"
            ),
        }
    }
}

/// Why a text is not a valid cron expression. Every message says what to
/// write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("the schedule is empty; write 5 fields (minute hour day-of-month month day-of-week), e.g. {EXAMPLE}")]
    Empty,
    #[error(
        "{found} fields given; write exactly 5 fields (minute hour day-of-month month \
         day-of-week), e.g. {EXAMPLE}"
    )]
    FieldCount { found: usize },
    #[error(
        "6 fields given, but seconds (6-field expressions) and commands are not supported; \
         write the 5 fields minute hour day-of-month month day-of-week, e.g. {EXAMPLE}"
    )]
    SixFields,
    #[error(
        "a {prefix} prefix is not supported in the schedule; put the time zone in the \
         timeZone field (or --time-zone) and write only the 5 fields, e.g. {EXAMPLE}"
    )]
    TimeZonePrefix { prefix: String },
    #[error(
        "@every is not supported: a window needs wall-clock start times; write 5 fields \
         instead, e.g. \"0 */6 * * *\" (every 6 hours) or \"*/30 * * * *\" (every 30 minutes)"
    )]
    Every,
    #[error(
        "@reboot is not supported: a window needs wall-clock start times; write 5 fields \
         instead, e.g. {EXAMPLE}"
    )]
    Reboot,
    #[error(
        "unknown macro {text:?}; use one of @yearly, @annually, @monthly, @weekly, @daily, \
         @midnight, @hourly (lower case) or 5 fields, e.g. {EXAMPLE}"
    )]
    UnknownMacro { text: String },
    #[error("{field} field: {message}", message = .problem.message(*.field))]
    Field {
        field: CronField,
        problem: FieldProblem,
    },
}

/// A parsed cron expression (see the module documentation for its meaning).
///
/// `Display` prints the text it was parsed from, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    /// Bit n set: minute n matches.
    minutes: u64,
    /// Bit n set: hour n matches.
    hours: u32,
    /// Bit n set: day of month n matches (bits 1-31).
    days: u32,
    /// Bit n set: month n matches (bits 1-12).
    months: u16,
    /// Bit n set: weekday n matches, Sunday = 0 (bits 0-6).
    weekdays: u8,
    /// The field counts as `*` for the day-of-month/day-of-week rule.
    days_star: bool,
    weekdays_star: bool,
    /// For a month starting on weekday `w` (Sunday = 0), bit d of
    /// `weekday_masks[w]` is set when day d falls on a matching weekday.
    weekday_masks: [u32; 7],
    /// First and last matching minute of the day.
    first_tod: u32,
    last_tod: u32,
    /// Smallest distance in minutes between two matching times of the same
    /// day; `None` when only one time of day matches.
    min_tod_gap: Option<u32>,
    /// No day ever matches (`0 0 30 2 *`).
    never: bool,
}

impl CronExpr {
    /// Parses a 5-field expression or a macro.
    pub fn parse(s: &str) -> Result<CronExpr, CronError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        for prefix in ["TZ=", "CRON_TZ="] {
            if text
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            {
                return Err(CronError::TimeZonePrefix {
                    prefix: prefix.to_owned(),
                });
            }
        }
        let fields_text = if text.starts_with('@') {
            match text {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ if text
                    .get(..6)
                    .is_some_and(|p| p.eq_ignore_ascii_case("@every")) =>
                {
                    return Err(CronError::Every)
                }
                _ if text.eq_ignore_ascii_case("@reboot") => return Err(CronError::Reboot),
                _ => {
                    return Err(CronError::UnknownMacro {
                        text: text.to_owned(),
                    })
                }
            }
        } else {
            text
        };

        let mut fields = [""; 5];
        let mut count = 0;
        for field in fields_text.split_whitespace() {
            if let Some(slot) = fields.get_mut(count) {
                *slot = field;
            }
            count += 1;
        }
        match count {
            5 => {}
            6 => return Err(CronError::SixFields),
            found => return Err(CronError::FieldCount { found }),
        }

        let mut bits = [0u64; 5];
        let mut stars = [false; 5];
        for (i, field) in CronField::ALL.into_iter().enumerate() {
            let (b, star) = parse_field(field, fields[i])
                .map_err(|problem| CronError::Field { field, problem })?;
            bits[i] = b;
            stars[i] = star;
        }
        // parse_field keeps every bit inside the field's range, so the
        // narrowing casts below lose nothing.
        let minutes = bits[0];
        let hours = bits[1] as u32;
        let days = bits[2] as u32;
        let months = bits[3] as u16;
        let weekdays = bits[4] as u8;

        let mut weekday_masks = [0u32; 7];
        for (first_weekday, mask) in (0u32..).zip(weekday_masks.iter_mut()) {
            for day in 1..=31u32 {
                if weekdays & (1 << ((first_weekday + day - 1) % 7)) != 0 {
                    *mask |= 1 << day;
                }
            }
        }

        let mut expr = CronExpr {
            text: text.to_owned(),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: stars[2],
            weekdays_star: stars[4],
            weekday_masks,
            first_tod: 0,
            last_tod: 0,
            min_tod_gap: None,
            never: false,
        };
        // With the day of week unrestricted only the day of month counts, and
        // it may name days no selected month has. Every other combination
        // matches some day of every selected month.
        expr.never = expr.weekdays_star
            && (1..=12u32).all(|month| {
                let longest = if month == 2 {
                    29
                } else {
                    days_in_month(2001, month)
                };
                months & (1 << month) == 0 || days & (((1u64 << (longest + 1)) - 2) as u32) == 0
            });
        // Every field has at least one bit, so some time of day matches.
        let first_tod = expr.next_tod(0).unwrap_or(0);
        let mut last_tod = first_tod;
        let mut min_tod_gap: Option<u32> = None;
        while let Some(tod) = expr.next_tod(last_tod + 1) {
            let gap = tod - last_tod;
            min_tod_gap = Some(min_tod_gap.map_or(gap, |g| g.min(gap)));
            last_tod = tod;
        }
        expr.first_tod = first_tod;
        expr.last_tod = last_tod;
        expr.min_tod_gap = min_tod_gap;
        Ok(expr)
    }

    /// The text the expression was parsed from, trimmed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the wall-clock minute `local` matches (seconds are ignored).
    pub fn matches(&self, local: NaiveDateTime) -> bool {
        self.minutes & (1 << local.minute()) != 0
            && self.hours & (1 << local.hour()) != 0
            && self.day_matches(local.date())
    }

    /// Whether any time of the day `date` matches.
    pub fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Bit d set: day d of the month matches.
    fn month_day_mask(&self, year: i32, month: u32) -> u32 {
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else {
            return 0;
        };
        let valid = ((1u64 << (days_in_month(year, month) + 1)) - 2) as u32;
        let dom = self.days & valid;
        let dow = self.weekday_masks[first.weekday().num_days_from_sunday() as usize] & valid;
        if self.days_star || self.weekdays_star {
            dom & dow
        } else {
            dom | dow
        }
    }

    /// The first matching day at or after `from` and at or before `limit`.
    fn next_matching_day(&self, from: NaiveDate, limit: NaiveDate) -> Option<NaiveDate> {
        let (mut year, mut month, mut day) = (from.year(), from.month(), from.day());
        while (year, month) <= (limit.year(), limit.month()) {
            if self.months & (1 << month) != 0 {
                let mask = self.month_day_mask(year, month) & !((1u32 << day) - 1);
                if mask != 0 {
                    let date = NaiveDate::from_ymd_opt(year, month, mask.trailing_zeros())?;
                    return (date <= limit).then_some(date);
                }
            }
            day = 1;
            month += 1;
            if month > 12 {
                month = 1;
                year += 1;
            }
        }
        None
    }

    /// The first matching minute of the day at or after minute-of-day `from`.
    fn next_tod(&self, from: u32) -> Option<u32> {
        if from >= MINUTES_PER_DAY {
            return None;
        }
        let (hour, minute) = (from / 60, from % 60);
        if self.hours & (1 << hour) != 0 {
            let later = self.minutes & (u64::MAX << minute);
            if later != 0 {
                return Some(hour * 60 + later.trailing_zeros());
            }
        }
        let later_hours = self.hours & (u32::MAX.checked_shl(hour + 1).unwrap_or(0));
        if later_hours == 0 {
            return None;
        }
        Some(later_hours.trailing_zeros() * 60 + self.minutes.trailing_zeros())
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

/// Parses one field into its bits and whether it counts as `*` for the
/// day-of-month/day-of-week rule (robfig/cron's "star bit").
fn parse_field(field: CronField, text: &str) -> Result<(u64, bool), FieldProblem> {
    let mut bits = 0u64;
    let mut star = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(FieldProblem::EmptyItem {
                text: text.to_owned(),
            });
        }
        let owned_item = || item.to_owned();
        let (range, step) = match item.split_once('/') {
            None => (item, None),
            Some((range, step)) => {
                if step.contains('/') {
                    return Err(FieldProblem::TooManySlashes { item: owned_item() });
                }
                if step.is_empty() || range.is_empty() {
                    return Err(FieldProblem::MissingValue { item: owned_item() });
                }
                if !step.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FieldProblem::BadStep { item: owned_item() });
                }
                // Any step beyond the field's size selects only the start.
                let step: u32 = step.parse().unwrap_or(u32::MAX);
                if step == 0 {
                    return Err(FieldProblem::ZeroStep { item: owned_item() });
                }
                (range, Some(step))
            }
        };
        let (start, end) = if range == "*" || range == "?" {
            // robfig/cron: a step above 1 makes the field count as restricted.
            if step.is_none_or(|s| s <= 1) {
                star = true;
            }
            (field.bounds().0, field.step_end())
        } else {
            match range.split_once('-') {
                Some((low, high)) => {
                    if high.contains('-') {
                        return Err(FieldProblem::TooManyHyphens { item: owned_item() });
                    }
                    if [low, high].iter().any(|s| *s == "*" || *s == "?") {
                        return Err(FieldProblem::StarInRange { item: owned_item() });
                    }
                    if low.is_empty() || high.is_empty() {
                        return Err(FieldProblem::MissingValue { item: owned_item() });
                    }
                    let (low, high) = (parse_value(field, low)?, parse_value(field, high)?);
                    if low > high {
                        return Err(FieldProblem::Reversed { item: owned_item() });
                    }
                    (low, high)
                }
                None => {
                    let value = parse_value(field, range)?;
                    match step {
                        None => (value, value),
                        Some(_) if value > field.step_end() => {
                            return Err(FieldProblem::StepFromSeven { item: owned_item() })
                        }
                        Some(_) => (value, field.step_end()),
                    }
                }
            }
        };
        let step = step.unwrap_or(1);
        let mut value = start;
        while value <= end {
            // Day of week 7 is Sunday, bit 0.
            let bit = if field == CronField::DayOfWeek {
                value % 7
            } else {
                value
            };
            bits |= 1 << bit;
            match value.checked_add(step) {
                Some(next) => value = next,
                None => break,
            }
        }
    }
    Ok((bits, star))
}

/// Parses a number or (month, day of week) a three-letter name.
fn parse_value(field: CronField, text: &str) -> Result<u32, FieldProblem> {
    let (min, max) = field.bounds();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(value) if (min..=max).contains(&value) => Ok(value),
            _ => Err(FieldProblem::OutOfRange {
                value: text.to_owned(),
            }),
        };
    }
    if let Some(index) = field
        .names()
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(field.first_name_value() + index as u32);
    }
    let quartz_suffix = text
        .strip_suffix(['W', 'w', 'L', 'l'])
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()));
    if text.contains('#') || quartz_suffix {
        return Err(FieldProblem::Unsupported {
            text: text.to_owned(),
        });
    }
    Err(FieldProblem::NotAValue {
        text: text.to_owned(),
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Why a time zone or schedule is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "unknown time zone {name:?}{hint}; write an IANA time zone name such as \
         Europe/Prague, America/New_York or UTC",
        hint = suggestion_hint(.suggestion)
    )]
    UnknownTimeZone {
        name: String,
        suggestion: Option<String>,
    },
    #[error("the window is zero; a window must be longer than zero, e.g. 30m or 1h")]
    ZeroWindow,
    #[error("the window {window} is too long to compute with; write e.g. 1h or 2d")]
    WindowTooLong { window: String },
}

fn suggestion_hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean {name:?}?)"),
        None => String::new(),
    }
}

/// Parses an IANA time zone name such as `Europe/Prague` or `UTC`.
pub fn parse_time_zone(s: &str) -> Result<Tz, ScheduleError> {
    let name = s.trim();
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let suggestion = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .map(|tz| tz.name().to_owned());
    Err(ScheduleError::UnknownTimeZone {
        name: name.to_owned(),
        suggestion,
    })
}

/// One window: open from `start` (inclusive) to `end` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// A stable identifier: the start in RFC 3339, UTC, whole seconds, e.g.
    /// `2026-11-24T01:00:00Z`.
    pub fn id(&self) -> String {
        self.start.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Whether `t` is inside: `start <= t < end`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// An expression in a time zone with a window length: the answer to "when
/// may imports happen". See the module documentation for the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    expr: CronExpr,
    tz: Tz,
    window: Duration,
    window_delta: TimeDelta,
}

impl Schedule {
    /// A schedule whose windows open when `expr` matches in `tz` and stay open
    /// for `window`. The window must be longer than zero. Windows that
    /// overlap are not rejected here; see [`Schedule::min_gap`].
    pub fn new(expr: CronExpr, tz: Tz, window: Duration) -> Result<Schedule, ScheduleError> {
        if window.is_zero() {
            return Err(ScheduleError::ZeroWindow);
        }
        let window_delta =
            TimeDelta::from_std(window).map_err(|_| ScheduleError::WindowTooLong {
                window: crate::duration::format_duration(window),
            })?;
        Ok(Schedule {
            expr,
            tz,
            window,
            window_delta,
        })
    }

    pub fn expr(&self) -> &CronExpr {
        &self.expr
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// The first window start strictly after `t`, or `None` if there is none
    /// within [`SEARCH_HORIZON_DAYS`].
    pub fn next_start_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.expr.never {
            return None;
        }
        let local = self.local(t)?;
        let today = local.date();
        let limit = today
            .checked_add_days(Days::new(SEARCH_HORIZON_DAYS))
            .map_or(last_supported_day(), |d| d.min(last_supported_day()));
        // Matching times earlier on the local day of `t` resolve to instants
        // at or before `t`, so the first day is searched from the minute of `t`.
        let tod_of_t = local.hour() * 60 + local.minute();
        let mut day = today;
        loop {
            let date = self.expr.next_matching_day(day, limit)?;
            let from_tod = if date == today { tod_of_t } else { 0 };
            if let Some(start) = self.first_start_on_day(date, from_tod, t) {
                return Some(start);
            }
            day = date.succ_opt()?;
        }
    }

    /// The window open at `t`, if any. If windows overlap (the window is
    /// longer than the gap between two starts), this is the earliest of the
    /// windows open at `t`.
    pub fn window_at(&self, t: DateTime<Utc>) -> Option<Window> {
        let start = self.next_start_after(t.checked_sub_signed(self.window_delta)?)?;
        if start > t {
            return None;
        }
        self.window_from(start)
    }

    /// Windows in order: the one open at `from` first (if any), then every
    /// following one. The iterator ends when no start is found within the
    /// search horizon of the previous one.
    pub fn windows(&self, from: DateTime<Utc>) -> Windows<'_> {
        Windows {
            schedule: self,
            first: self.window_at(from),
            cursor: Some(from),
        }
    }

    /// The shortest gap between two consecutive window starts that both lie
    /// in `[from, from + horizon]`, or `None` if fewer than two starts do.
    ///
    /// Stops early and returns the gap found so far as soon as it is shorter
    /// than this schedule's window, since that alone shows that windows
    /// overlap; compare the result with [`Schedule::window`]. Otherwise
    /// costs about two time-zone lookups per matching day, whatever the
    /// number of starts per day (on days without an offset change, the gaps
    /// inside the day are the same every day).
    pub fn min_gap(&self, from: DateTime<Utc>, horizon: TimeDelta) -> Option<TimeDelta> {
        if horizon < TimeDelta::zero() || self.expr.never {
            return None;
        }
        let end = from
            .checked_add_signed(horizon)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let first_day = self.local(from)?.date();
        let last_day = self
            .local(end)
            .map_or(last_supported_day(), |l| l.date())
            .min(last_supported_day());
        // A day either side: a start's local date can differ from the local
        // date of the instants around it when offsets change at midnight.
        let mut day = first_day.pred_opt().unwrap_or(first_day);
        let last_day = last_day.succ_opt().unwrap_or(last_day);
        let intra_day_gap = self
            .expr
            .min_tod_gap
            .map(|minutes| TimeDelta::minutes(i64::from(minutes)));

        let mut prev: Option<DateTime<Utc>> = None;
        let mut best: Option<TimeDelta> = None;
        fn shortest(best: &mut Option<TimeDelta>, gap: TimeDelta) {
            *best = Some(best.map_or(gap, |b| b.min(gap)));
        }
        while let Some(date) = self.expr.next_matching_day(day, last_day) {
            let (first_tod, last_tod) = (self.expr.first_tod, self.expr.last_tod);
            let uniform = match (
                self.resolve_unique(date, first_tod),
                self.resolve_unique(date, last_tod),
            ) {
                (Some((first, first_offset)), Some((last, last_offset)))
                    if first_offset == last_offset
                        && first >= from
                        && last <= end
                        && prev.is_none_or(|p| first > p) =>
                {
                    Some((first, last))
                }
                _ => None,
            };
            if let Some((first, last)) = uniform {
                // One offset all day: starts are the matching times of day.
                if let Some(p) = prev {
                    shortest(&mut best, first - p);
                }
                if let Some(gap) = intra_day_gap {
                    shortest(&mut best, gap);
                }
                prev = Some(last);
            } else {
                let mut tod = Some(first_tod);
                while let Some(minute) = tod {
                    if let Some(start) = self.resolve(date, minute) {
                        if start > end {
                            break;
                        }
                        if start >= from && prev.is_none_or(|p| start > p) {
                            if let Some(p) = prev {
                                shortest(&mut best, start - p);
                            }
                            prev = Some(start);
                        }
                    }
                    tod = self.expr.next_tod(minute + 1);
                }
            }
            if best.is_some_and(|b| b < self.window_delta) {
                return best;
            }
            day = match date.succ_opt() {
                Some(next) => next,
                None => break,
            };
        }
        best
    }

    /// The window that opens at `start`.
    fn window_from(&self, start: DateTime<Utc>) -> Option<Window> {
        Some(Window {
            start,
            end: start.checked_add_signed(self.window_delta)?,
        })
    }

    /// Wall-clock time of `t` in the schedule's zone, within the supported years.
    fn local(&self, t: DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = t.naive_utc();
        let offset = self.tz.offset_from_utc_datetime(&utc).fix();
        let local = utc.checked_add_offset(offset)?;
        (1..=9999).contains(&local.year()).then_some(local)
    }

    /// The earliest start on `date` at or after minute-of-day `from_tod` that
    /// is strictly after `after`.
    fn first_start_on_day(
        &self,
        date: NaiveDate,
        from_tod: u32,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut tod = self.expr.next_tod(from_tod);
        while let Some(minute) = tod {
            if let Some(start) = self.resolve(date, minute) {
                if start > after {
                    return Some(start);
                }
            }
            tod = self.expr.next_tod(minute + 1);
        }
        None
    }

    /// The instant at which wall-clock minute `tod` of `date` opens a window,
    /// by the rules in the module documentation.
    fn resolve(&self, date: NaiveDate, tod: u32) -> Option<DateTime<Utc>> {
        let local = date.and_hms_opt(tod / 60, tod % 60, 0)?;
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => self.end_of_gap(local),
        }
    }

    /// Like [`Schedule::resolve`] for a wall-clock time that occurs exactly
    /// once, with its UTC offset in seconds; `None` otherwise.
    fn resolve_unique(&self, date: NaiveDate, tod: u32) -> Option<(DateTime<Utc>, i32)> {
        let local = date.and_hms_opt(tod / 60, tod % 60, 0)?;
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => {
                Some((t.with_timezone(&Utc), t.offset().fix().local_minus_utc()))
            }
            _ => None,
        }
    }

    /// The first instant after the gap in wall-clock time that contains
    /// `local`, found by bisection over instants: no UTC offset exceeds 18
    /// hours, so 18 hours either side brackets the transition.
    fn end_of_gap(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        const BRACKET: i64 = 18 * 3600;
        let target = local.and_utc().timestamp();
        let wall_clock = |ts: i64| -> Option<i64> {
            let utc = DateTime::from_timestamp(ts, 0)?.naive_utc();
            let offset = self.tz.offset_from_utc_datetime(&utc).fix();
            Some(ts + i64::from(offset.local_minus_utc()))
        };
        // Invariant: the wall clock reads before `local` at `low` and after
        // it at `high`.
        let (mut low, mut high) = (target - BRACKET, target + BRACKET);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if wall_clock(mid)? > target {
                high = mid;
            } else {
                low = mid;
            }
        }
        DateTime::from_timestamp(high, 0)
    }
}

fn last_supported_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX)
}

/// Iterator returned by [`Schedule::windows`].
#[derive(Clone, Debug)]
pub struct Windows<'a> {
    schedule: &'a Schedule,
    first: Option<Window>,
    /// Next windows start strictly after this; `None` once exhausted.
    cursor: Option<DateTime<Utc>>,
}

impl Iterator for Windows<'_> {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        if let Some(window) = self.first.take() {
            self.cursor = Some(window.start);
            return Some(window);
        }
        let after = self.cursor?;
        let window = self
            .schedule
            .next_start_after(after)
            .and_then(|start| self.schedule.window_from(start));
        self.cursor = window.map(|w| w.start);
        window
    }
}

impl FusedIterator for Windows<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPRESSIONS: [&str; 9] = [
        "* * * * *",
        "0 2 * * 2",
        "*/7 */5 * * *",
        "59 23 31 * *",
        "0 0 13 * 5",
        "0 0 */2 * 1",
        "0 0 29 2 *",
        "5/15 9-17 1-7 jan,jul mon-fri",
        "0 0 30 2 *",
    ];

    #[test]
    fn next_tod_agrees_with_checking_every_minute() {
        for text in EXPRESSIONS {
            let expr = CronExpr::parse(text).expect("valid");
            let day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
            let matching: Vec<u32> = (0..MINUTES_PER_DAY)
                .filter(|tod| {
                    let hour_minute = day.and_hms_opt(tod / 60, tod % 60, 0).expect("valid time");
                    expr.minutes & (1 << hour_minute.minute()) != 0
                        && expr.hours & (1 << hour_minute.hour()) != 0
                })
                .collect();
            for from in 0..=MINUTES_PER_DAY {
                let expected = matching.iter().copied().find(|tod| *tod >= from);
                assert_eq!(expr.next_tod(from), expected, "{text} from {from}");
            }
            assert_eq!(Some(expr.first_tod), matching.first().copied(), "{text}");
            assert_eq!(Some(expr.last_tod), matching.last().copied(), "{text}");
            let min_gap = matching.windows(2).map(|w| w[1] - w[0]).min();
            assert_eq!(expr.min_tod_gap, min_gap, "{text}");
        }
    }

    #[test]
    fn next_matching_day_agrees_with_checking_every_day() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
        let limit = NaiveDate::from_ymd_opt(2030, 12, 31).expect("valid date");
        for text in EXPRESSIONS {
            let expr = CronExpr::parse(text).expect("valid");
            let mut day = start;
            while day <= limit {
                let expected = day
                    .iter_days()
                    .take_while(|d| *d <= limit)
                    .find(|d| expr.day_matches(*d));
                assert_eq!(
                    expr.next_matching_day(day, limit),
                    expected,
                    "{text} from {day}"
                );
                day = day + Days::new(13);
            }
        }
    }

    #[test]
    fn gaps_end_at_the_transition() {
        let cases = [
            (
                chrono_tz::Europe::Prague,
                (2026, 3, 29, 2, 30),
                "2026-03-29T01:00:00Z",
            ),
            (
                chrono_tz::America::New_York,
                (2026, 3, 8, 2, 0),
                "2026-03-08T07:00:00Z",
            ),
            (
                chrono_tz::Australia::Lord_Howe,
                (2026, 10, 4, 2, 15),
                "2026-10-03T15:30:00Z",
            ),
            // Samoa skipped 2011-12-30 entirely.
            (
                chrono_tz::Pacific::Apia,
                (2011, 12, 30, 12, 0),
                "2011-12-30T10:00:00Z",
            ),
        ];
        for (tz, (y, mo, d, h, mi), expected) in cases {
            let expr = CronExpr::parse("* * * * *").expect("valid");
            let schedule = Schedule::new(expr, tz, Duration::from_secs(60)).expect("valid");
            let local = NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|date| date.and_hms_opt(h, mi, 0))
                .expect("valid local time");
            assert!(
                tz.from_local_datetime(&local).single().is_none(),
                "{tz} {local}"
            );
            let end = schedule.end_of_gap(local).map(|t| t.to_rfc3339());
            assert_eq!(
                end.as_deref(),
                Some(expected.replace('Z', "+00:00").as_str()),
                "{tz} {local}"
            );
        }
    }
}
