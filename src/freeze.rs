//! Freezes: times when no window opens, whatever the schedule says.
//!
//! An environment's `freeze` list holds dated periods (`from`/`to`, whole
//! days in the environment's time zone with both ends inclusive, or exact
//! RFC 3339 instants) and recurring deny windows (`schedule` + `window`,
//! resolved across daylight saving changes like the import windows). A
//! window that falls in a freeze does not open; one that overlaps a freeze
//! opens only for its unfrozen parts ([`Freezes::split`]).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_yaml_ng::Value;

use crate::duration::parse_duration;
use crate::field_error::FieldError;
use crate::schedule::{CronExpr, Schedule, Window};

/// How far past a run of frozen windows the search for the next open one
/// goes before it gives up ("no window ahead").
pub const FREEZE_SEARCH_DAYS: i64 = 400;

/// The freezes of one environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Freezes {
    rules: Vec<FreezeRule>,
}

/// One freeze.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeRule {
    /// From `start` (inclusive) to `end` (exclusive).
    Period {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
    /// Every window of `schedule` is frozen.
    Recurring { schedule: Schedule, reason: String },
}

/// One frozen stretch of time: `start` (inclusive) to `end` (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frozen {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

/// A part of a window: open, or frozen (with the reason of the first
/// freeze covering it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    Open(Window),
    Frozen { window: Window, reason: String },
}

impl Slot {
    pub fn window(&self) -> Window {
        match self {
            Slot::Open(w) | Slot::Frozen { window: w, .. } => *w,
        }
    }
}

impl Freezes {
    /// No freezes.
    pub const fn none() -> Freezes {
        Freezes { rules: Vec::new() }
    }

    pub fn new(rules: Vec<FreezeRule>) -> Freezes {
        Freezes { rules }
    }

    pub fn rules(&self) -> &[FreezeRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// These freezes and `more`'s.
    pub fn with(&self, more: impl IntoIterator<Item = FreezeRule>) -> Freezes {
        let mut rules = self.rules.clone();
        rules.extend(more);
        Freezes { rules }
    }

    /// Frozen stretches that overlap `[from, to)`, by start.
    pub fn overlapping(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Frozen> {
        let mut out = Vec::new();
        for rule in &self.rules {
            match rule {
                FreezeRule::Period { start, end, reason } => {
                    if *start < to && from < *end {
                        out.push(Frozen {
                            start: *start,
                            end: *end,
                            reason: reason.clone(),
                        });
                    }
                }
                FreezeRule::Recurring { schedule, reason } => out.extend(
                    schedule
                        .windows(from)
                        .take_while(|w| w.start < to)
                        .filter(|w| from < w.end)
                        .map(|w| Frozen {
                            start: w.start,
                            end: w.end,
                            reason: reason.clone(),
                        }),
                ),
            }
        }
        out.sort_by_key(|f| f.start);
        out
    }

    /// The freeze covering `t` that started first, if any.
    pub fn at(&self, t: DateTime<Utc>) -> Option<Frozen> {
        let next = t.checked_add_signed(TimeDelta::nanoseconds(1))?;
        self.overlapping(t, next).into_iter().next()
    }

    /// `window` cut into its open and frozen parts, in order, together
    /// covering it exactly; neighbouring frozen parts are joined (keeping
    /// the first reason).
    pub fn split(&self, window: Window) -> Vec<Slot> {
        let mut slots: Vec<Slot> = Vec::new();
        let mut cursor = window.start;
        for f in self.overlapping(window.start, window.end) {
            if f.end <= cursor {
                continue;
            }
            if f.start > cursor {
                slots.push(Slot::Open(Window {
                    start: cursor,
                    end: f.start,
                }));
                cursor = f.start;
            }
            let end = f.end.min(window.end);
            match slots.last_mut() {
                Some(Slot::Frozen { window: w, .. }) if w.end == cursor => w.end = end,
                _ => slots.push(Slot::Frozen {
                    window: Window { start: cursor, end },
                    reason: f.reason,
                }),
            }
            cursor = end;
        }
        if cursor < window.end {
            slots.push(Slot::Open(Window {
                start: cursor,
                end: window.end,
            }));
        }
        slots
    }
}

const PERIOD_KEYS: &[&str] = &["from", "to", "reason"];
const RECURRING_KEYS: &[&str] = &["schedule", "window", "reason"];

/// Reads an environment's `freeze` list at `path` (e.g.
/// `environments.prod.freeze`); dates are days in `tz`. Every problem is
/// returned, each naming its field.
pub fn parse(
    path: &str,
    value: &Value,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Freezes, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |path: String, message: String, hint: Option<&str>| {
        errors.push(FieldError {
            path,
            message,
            hint: hint.map(str::to_string),
        })
    };
    let items = match value {
        Value::Null => return Ok(Freezes::default()),
        Value::Sequence(items) => items,
        _ => {
            err(
                path.to_string(),
                "expected a list of freezes".into(),
                Some("write e.g. `freeze: [{from: 2026-12-21, to: 2027-01-04, reason: holidays}]`"),
            );
            return Err(errors);
        }
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::Mapping(m) = item else {
            err(
                at,
                "expected a mapping with `from`/`to` or `schedule`/`window`, and `reason`".into(),
                None,
            );
            continue;
        };
        let mut map: BTreeMap<String, &Value> = BTreeMap::new();
        for (k, v) in m {
            match k.as_str() {
                Some(k) => {
                    map.insert(k.to_string(), v);
                }
                None => err(at.clone(), "keys must be strings".into(), None),
            }
        }
        let recurring = map.contains_key("schedule") || map.contains_key("window");
        let allowed = if recurring {
            RECURRING_KEYS
        } else {
            PERIOD_KEYS
        };
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = if recurring {
                    "a recurring freeze has `schedule`, `window` and `reason`"
                } else {
                    "a dated freeze has `from`, `to` and `reason`"
                };
                err(
                    format!("{at}.{k}"),
                    format!("unknown key `{k}`"),
                    Some(hint),
                );
            }
        }
        let text =
            |key: &str, errs: &mut dyn FnMut(String, String, Option<&str>)| match map.get(key) {
                None => {
                    errs(format!("{at}.{key}"), "missing".into(), None);
                    None
                }
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => {
                    errs(
                        format!("{at}.{key}"),
                        "expected a non-empty string".into(),
                        None,
                    );
                    None
                }
            };
        let reason = text("reason", &mut err);
        if recurring {
            let expr = text("schedule", &mut err).and_then(|s| match CronExpr::parse(&s) {
                Ok(e) => Some(e),
                Err(e) => {
                    err(format!("{at}.schedule"), e.to_string(), None);
                    None
                }
            });
            let window = text("window", &mut err).and_then(|s| match parse_duration(&s) {
                Ok(d) if d > Duration::ZERO => Some(d),
                Ok(_) => {
                    err(
                        format!("{at}.window"),
                        "must be longer than zero".into(),
                        Some("write e.g. 3d, 12h"),
                    );
                    None
                }
                Err(e) => {
                    err(format!("{at}.window"), e.to_string(), None);
                    None
                }
            });
            let (Some(expr), Some(window), Some(reason)) = (expr, window, reason) else {
                continue;
            };
            let schedule = match Schedule::new(expr, tz, window) {
                Ok(s) => s,
                Err(e) => {
                    err(format!("{at}.window"), e.to_string(), None);
                    continue;
                }
            };
            // Deny windows that touch or overlap leave no time unfrozen.
            if let Some(gap) = schedule.min_gap(now, TimeDelta::days(366)) {
                if TimeDelta::from_std(window).is_ok_and(|w| w >= gap) {
                    err(
                        format!("{at}.window"),
                        format!(
                            "{} is not shorter than the gap between two starts of `{}`: every instant would be frozen",
                            crate::duration::format_duration(window),
                            schedule.expr()
                        ),
                        Some("shorten the window, or use a dated freeze (`from`/`to`)"),
                    );
                    continue;
                }
            }
            rules.push(FreezeRule::Recurring { schedule, reason });
        } else {
            let from = text("from", &mut err).and_then(|s| match parse_bound(&s, tz, false) {
                Ok(t) => Some(t),
                Err(m) => {
                    err(format!("{at}.from"), m, Some(BOUND_HINT));
                    None
                }
            });
            let to = text("to", &mut err).and_then(|s| match parse_bound(&s, tz, true) {
                Ok(t) => Some(t),
                Err(m) => {
                    err(format!("{at}.to"), m, Some(BOUND_HINT));
                    None
                }
            });
            let (Some(start), Some(end), Some(reason)) = (from, to, reason) else {
                continue;
            };
            if end <= start {
                err(
                    format!("{at}.to"),
                    "is before `from`: the freeze would cover no time".into(),
                    Some("swap `from` and `to`"),
                );
                continue;
            }
            rules.push(FreezeRule::Period { start, end, reason });
        }
    }
    if errors.is_empty() {
        Ok(Freezes { rules })
    } else {
        Err(errors)
    }
}

const BOUND_HINT: &str = "write a day such as 2026-12-21 (whole day in the environment's time zone) or an RFC 3339 instant such as 2026-12-21T09:00:00+01:00";

/// A freeze bound: a day (`YYYY-MM-DD`, its start in `tz`; with `end`, the
/// start of the following day, so the day itself is frozen) or an exact
/// RFC 3339 instant.
pub fn parse_bound(s: &str, tz: Tz, end: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end {
            day.checked_add_days(Days::new(1))
                .ok_or_else(|| format!("`{s}` is out of range"))?
        } else {
            day
        };
        return start_of_day(day, tz).ok_or_else(|| format!("`{s}` is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{s}` is neither a day (YYYY-MM-DD) nor an RFC 3339 instant"))
}

/// The first instant of `day` in `tz`: local midnight, or when a daylight
/// saving gap that swallows midnight ends.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    // Gaps are at most a few hours; step through the first minutes of the
    // day until one exists.
    (0..=24 * 60).find_map(|m| {
        let t = NaiveTime::from_hms_opt(m / 60, m % 60, 0)?;
        tz.from_local_datetime(&day.and_time(t))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

#[cfg(test)]
#[path = "freeze_tests.rs"]
mod tests;
