//! Property tests for the schedule engine and the duration parser.
//!
//! The reference used here is deliberately naive: it walks minute by minute
//! through UTC, reads the wall clock with chrono-tz and applies the rules of
//! the module documentation directly (a start is a matching wall-clock
//! minute at its first occurrence, or the first instant after a gap that
//! swallowed a matching minute). The engine must agree with it exactly.
//! A second, independent oracle is the `cron` crate.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use import_scheduler::duration::{format_duration, parse_duration};
use import_scheduler::schedule::{CronExpr, Schedule};
use proptest::prelude::*;
use proptest::test_runner::Config;

// ---------------------------------------------------------------- inputs

/// Zones with the interesting rules: none, whole-hour DST, 30-minute DST
/// (Lord Howe), odd offsets (Kolkata, Chatham, St John's), changes at
/// midnight (Santiago, Havana, Sao Paulo until 2019, Tehran until 2022),
/// Morocco's Ramadan changes, and Samoa skipping 2011-12-30 altogether.
const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Europe::Prague,
    chrono_tz::Europe::London,
    chrono_tz::America::New_York,
    chrono_tz::America::Santiago,
    chrono_tz::America::Havana,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::America::St_Johns,
    chrono_tz::Asia::Tokyo,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Asia::Tehran,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Pacific::Apia,
    chrono_tz::Africa::Casablanca,
];

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES)
}

/// 1995-01-01 to 2090-01-01.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (788_918_400i64..3_786_912_000i64)
        .prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct FieldDef {
    min: u32,
    max: u32,
    /// Last value of `*` and of `a/n`.
    step_end: u32,
    names: &'static [&'static str],
    name_base: u32,
    day_of_week: bool,
}

const MINUTE: FieldDef = FieldDef {
    min: 0,
    max: 59,
    step_end: 59,
    names: &[],
    name_base: 0,
    day_of_week: false,
};
const HOUR: FieldDef = FieldDef {
    max: 23,
    step_end: 23,
    ..MINUTE
};
const DAY_OF_MONTH: FieldDef = FieldDef {
    min: 1,
    max: 31,
    step_end: 31,
    ..MINUTE
};
const MONTH: FieldDef = FieldDef {
    min: 1,
    max: 12,
    step_end: 12,
    names: &[
        "JAN", "feb", "Mar", "APR", "may", "Jun", "JUL", "aug", "Sep", "OCT", "nov", "Dec",
    ],
    name_base: 1,
    day_of_week: false,
};
const DAY_OF_WEEK: FieldDef = FieldDef {
    min: 0,
    max: 7,
    step_end: 6,
    names: &["SUN", "mon", "Tue", "WED", "thu", "Fri", "SAT"],
    name_base: 0,
    day_of_week: true,
};

#[derive(Clone, Debug)]
enum Item {
    Star,
    Question,
    StarStep(u32),
    Value(u32),
    Name(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    ValueStep(u32, u32),
}

/// One list element of a field. `oracle` keeps to what the `cron` crate can
/// express after translation: no `?` and no day-of-week range ending in 7.
fn item(def: FieldDef, dense: bool, oracle: bool) -> BoxedStrategy<Item> {
    let value = def.min..=def.max;
    let range_max = if def.day_of_week && oracle {
        def.step_end
    } else {
        def.max
    };
    let range = (def.min..=range_max, def.min..=range_max).prop_map(|(a, b)| (a.min(b), a.max(b)));
    // The cron crate wants steps up to the field's maximum.
    let step = 1..=def.max.max(1);
    let small_step = 1..=(def.max / 3).max(2);
    let star_weight = if dense { 6 } else { 1 };
    let mut options: Vec<(u32, BoxedStrategy<Item>)> = vec![
        (star_weight, Just(Item::Star).boxed()),
        (
            star_weight,
            small_step.clone().prop_map(Item::StarStep).boxed(),
        ),
        (1, step.clone().prop_map(Item::StarStep).boxed()),
        (3, value.clone().prop_map(Item::Value).boxed()),
        (
            2,
            range.clone().prop_map(|(a, b)| Item::Range(a, b)).boxed(),
        ),
        (
            2,
            (range, small_step)
                .prop_map(|((a, b), k)| Item::RangeStep(a, b, k))
                .boxed(),
        ),
        (
            1,
            (def.min..=def.step_end, step)
                .prop_map(|(a, k)| Item::ValueStep(a, k))
                .boxed(),
        ),
    ];
    if !def.names.is_empty() {
        let last = def.name_base + def.names.len() as u32 - 1;
        options.push((2, (def.name_base..=last).prop_map(Item::Name).boxed()));
    }
    if !oracle {
        options.push((1, Just(Item::Question).boxed()));
    }
    prop::strategy::Union::new_weighted(options).boxed()
}

fn field(def: FieldDef, dense: bool, oracle: bool) -> BoxedStrategy<Vec<Item>> {
    prop::collection::vec(item(def, dense, oracle), 1..=3).boxed()
}

/// Renders a field in this crate's syntax, or (`cron_crate`) in the syntax
/// of the `cron` crate.
///
/// The translation for the `cron` crate only touches the day of week,
/// where that crate counts 1 = Sunday to 7 = Saturday: a value `n` (0-7)
/// becomes `n % 7 + 1`, a name becomes its number that way, a range `a-b`
/// (b at most 6) becomes `(a+1)-(b+1)`, and steps keep their step: `*/k`
/// over 0-6 selects the same weekdays as `*/k` over 1-7, and `a/k` (which
/// here runs to 6) is `(a+1)/k` (which there runs to 7). Names in other
/// fields are written as numbers; everything else is the same text.
fn render(def: FieldDef, items: &[Item], cron_crate: bool) -> String {
    let shift = if cron_crate && def.day_of_week { 1 } else { 0 };
    let number = |v: u32| {
        if cron_crate && def.day_of_week {
            v % 7 + 1
        } else {
            v
        }
    };
    items
        .iter()
        .map(|item| match item {
            Item::Star => "*".to_string(),
            Item::Question => "?".to_string(),
            Item::StarStep(k) => format!("*/{k}"),
            Item::Value(v) => number(*v).to_string(),
            Item::Name(v) if cron_crate => number(*v).to_string(),
            Item::Name(v) => def.names[(v - def.name_base) as usize].to_string(),
            Item::Range(a, b) => format!("{}-{}", a + shift, b + shift),
            Item::RangeStep(a, b, k) => format!("{}-{}/{k}", a + shift, b + shift),
            Item::ValueStep(a, k) => format!("{}/{k}", a + shift),
        })
        .collect::<Vec<_>>()
        .join(",")
}

const FIELDS: [FieldDef; 5] = [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];

/// A valid expression. `dense` favours `*` and small steps in every field,
/// so that a span of a few days holds many starts.
fn expression(dense: bool) -> impl Strategy<Value = String> {
    let macros = prop::sample::select(vec![
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ])
    .prop_map(str::to_string);
    let fields = (
        field(MINUTE, dense, false),
        field(HOUR, dense, false),
        field(DAY_OF_MONTH, dense, false),
        field(MONTH, dense, false),
        field(DAY_OF_WEEK, dense, false),
    )
        .prop_map(|(mi, h, dom, mo, dow)| {
            [mi, h, dom, mo, dow]
                .iter()
                .zip(FIELDS)
                .map(|(items, def)| render(def, items, false))
                .collect::<Vec<_>>()
                .join(" ")
        });
    prop_oneof![1 => macros, 12 => fields]
}

fn schedule(text: &str, tz: Tz, window: Duration) -> Schedule {
    let expr = CronExpr::parse(text).unwrap_or_else(|e| panic!("{text:?} did not parse: {e}"));
    Schedule::new(expr, tz, window).expect("window is positive")
}

// ------------------------------------------------------------- reference

fn wall_clock(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The first instant at which the wall clock shows `local`, if it ever does.
fn first_occurrence(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether the whole minute `u` opens a window by the documented rules.
fn is_reference_start(expr: &CronExpr, tz: Tz, u: DateTime<Utc>) -> bool {
    let local = wall_clock(tz, u);
    if expr.matches(local) && first_occurrence(tz, local) == Some(u) {
        return true;
    }
    // The wall clock jumped forward just before `u`: `u` is the first
    // instant after the gap, and opens a window if a skipped minute matches.
    let mut skipped = wall_clock(tz, u - TimeDelta::minutes(1)) + TimeDelta::minutes(1);
    while skipped < local {
        if expr.matches(skipped) {
            return true;
        }
        skipped += TimeDelta::minutes(1);
    }
    false
}

fn ceil_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let rounded = if t.timestamp_subsec_nanos() == 0 && secs.rem_euclid(60) == 0 {
        secs
    } else {
        secs - secs.rem_euclid(60) + 60
    };
    DateTime::from_timestamp(rounded, 0).expect("in range")
}

/// Every start in `[from, to]`, minute by minute.
fn reference_starts(
    expr: &CronExpr,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut u = ceil_minute(from);
    while u <= to {
        if is_reference_start(expr, tz, u) {
            out.push(u);
        }
        u += TimeDelta::minutes(1);
    }
    out
}

/// Every start in `[from, to]` according to the engine.
fn engine_starts(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from - TimeDelta::nanoseconds(1);
    while let Some(next) = s.next_start_after(t) {
        if next > to {
            break;
        }
        out.push(next);
        t = next;
    }
    out
}

/// The first change of UTC offset after `t` within about a year, to the
/// minute; `t` itself if the zone has none.
fn next_offset_change(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let offset = |t: DateTime<Utc>| {
        use chrono::Offset;
        tz.offset_from_utc_datetime(&t.naive_utc()).fix()
    };
    let start = offset(t);
    let mut hour = t;
    for _ in 0..(400 * 24) {
        let next = hour + TimeDelta::hours(1);
        if offset(next) != start {
            let mut minute = hour;
            while offset(minute) == start {
                minute += TimeDelta::minutes(1);
            }
            return minute;
        }
        hour = next;
    }
    t
}

// ------------------------------------------------------------ properties

proptest! {
    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        if let Ok(expr) = CronExpr::parse(&text) {
            prop_assert_eq!(CronExpr::parse(&expr.to_string()), Ok(expr));
        }
    }

    #[test]
    fn parse_never_panics_on_cron_like_text(text in "[-0-9*?/,@ A-Za-z#=_]{0,40}") {
        if let Ok(expr) = CronExpr::parse(&text) {
            prop_assert_eq!(CronExpr::parse(&expr.to_string()), Ok(expr));
        }
    }

    #[test]
    fn parse_duration_never_panics(text in any::<String>()) {
        let _ = parse_duration(&text);
    }

    #[test]
    fn parse_duration_round_trips(text in "[-+0-9dhms. ]{0,16}") {
        if let Ok(d) = parse_duration(&text) {
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn any_duration_formats_and_parses_back(secs in any::<u64>()) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn generated_expressions_parse(text in expression(false)) {
        let expr = CronExpr::parse(&text);
        prop_assert!(expr.is_ok(), "{:?}: {:?}", text, expr);
    }
}

proptest! {
    #![proptest_config(Config { cases: 192, ..Config::default() })]

    /// Starts come in strictly increasing order after the instant asked
    /// about, each one a matching wall-clock minute at its first occurrence
    /// or the end of a gap that swallowed one; windows have the configured
    /// length; `windows` lists the same starts.
    #[test]
    fn starts_increase_and_match(
        text in expression(false),
        tz in zone(),
        t in instant(),
        window_minutes in 1i64..=(3 * 24 * 60),
    ) {
        let window = Duration::from_secs(window_minutes as u64 * 60);
        let s = schedule(&text, tz, window);
        let expr = s.expr().clone();
        let mut previous = t;
        let mut chain = Vec::new();
        for _ in 0..25 {
            let Some(start) = s.next_start_after(previous) else { break };
            prop_assert!(start > previous, "{} <= {}", start, previous);
            prop_assert!(
                is_reference_start(&expr, tz, start),
                "{} ({}) is not a start of {:?} in {}", start, wall_clock(tz, start), text, tz
            );
            chain.push(start);
            previous = start;
        }
        // `windows` lists the open window first, then the starts after it.
        let mut windows = s.windows(t);
        let mut anchor = t;
        if let Some(open) = s.window_at(t) {
            prop_assert!(open.contains(t));
            prop_assert_eq!(windows.next(), Some(open));
            anchor = open.start;
        }
        for window in windows.take(25) {
            prop_assert_eq!(Some(window.start), s.next_start_after(anchor));
            prop_assert_eq!(window.end - window.start, TimeDelta::minutes(window_minutes));
            anchor = window.start;
        }
        if s.window_at(t).is_none() {
            prop_assert_eq!(s.windows(t).take(25).map(|w| w.start).collect::<Vec<_>>(), chain);
        }
    }

    /// Around daylight-saving changes, minute by minute: the engine finds
    /// exactly the reference starts, so every start matches and nothing
    /// between two starts does.
    #[test]
    fn starts_equal_the_minute_by_minute_reference(
        text in expression(true),
        tz in zone(),
        base in instant(),
        before_change in 0i64..(2 * 24 * 60),
    ) {
        let change = next_offset_change(tz, base);
        let from = change - TimeDelta::minutes(before_change) + TimeDelta::seconds(17);
        let to = from + TimeDelta::days(3);
        let s = schedule(&text, tz, Duration::from_secs(60));
        let expected = reference_starts(s.expr(), tz, from, to);
        prop_assert_eq!(engine_starts(&s, from, to), expected, "{:?} in {}", text, tz);
    }

    /// `min_gap` is the smallest distance between consecutive reference
    /// starts, or a smaller-than-window gap when it stops early.
    #[test]
    fn min_gap_matches_the_reference(
        text in expression(true),
        tz in zone(),
        base in instant(),
        before_change in 0i64..(2 * 24 * 60),
        window_minutes in 1i64..=(2 * 24 * 60),
    ) {
        let change = next_offset_change(tz, base);
        let from = change - TimeDelta::minutes(before_change);
        let span = TimeDelta::days(3);
        let reference = reference_starts(
            CronExpr::parse(&text).as_ref().expect("valid"), tz, from, from + span,
        );
        let true_min = reference.windows(2).map(|w| w[1] - w[0]).min();

        let exact = schedule(&text, tz, Duration::from_secs(60));
        prop_assert_eq!(exact.min_gap(from, span), true_min, "{:?} in {}", text, tz);

        let window = TimeDelta::minutes(window_minutes);
        let early = schedule(&text, tz, window.to_std().expect("positive"));
        let found = early.min_gap(from, span);
        match (found, true_min) {
            (None, None) => {}
            (Some(found), Some(true_min)) => {
                prop_assert!(found >= true_min, "{} < {}", found, true_min);
                prop_assert!(found == true_min || found < window, "{} vs {}", found, window);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// The window open at `t` is the one that opened last within `window`
    /// before `t`, earliest first if several are open.
    #[test]
    fn window_at_matches_the_reference(
        text in expression(true),
        tz in zone(),
        base in instant(),
        before_change in -(2 * 24 * 60i64)..(2 * 24 * 60),
        window_minutes in 1i64..=(6 * 60),
    ) {
        let t = next_offset_change(tz, base) - TimeDelta::minutes(before_change)
            + TimeDelta::seconds(29);
        let window = TimeDelta::minutes(window_minutes);
        let s = schedule(&text, tz, window.to_std().expect("positive"));
        let expected = reference_starts(s.expr(), tz, t - window, t)
            .into_iter()
            .find(|start| *start > t - window);
        prop_assert_eq!(s.window_at(t).map(|w| w.start), expected);
    }
}

fn oracle_expression() -> impl Strategy<Value = (String, String)> {
    let star = prop::sample::select(vec!["*", "?"])
        .prop_map(|s| vec![if s == "*" { Item::Star } else { Item::Question }]);
    let days = prop_oneof![
        (field(DAY_OF_MONTH, false, true), star.clone()),
        (star, field(DAY_OF_WEEK, false, true)),
    ];
    (
        field(MINUTE, false, true),
        field(HOUR, false, true),
        days,
        field(MONTH, false, true),
    )
        .prop_map(|(minute, hour, (dom, dow), month)| {
            let fields = [minute, hour, dom, month, dow];
            let ours = fields
                .iter()
                .zip(FIELDS)
                .map(|(items, def)| render(def, items, false))
                .collect::<Vec<_>>()
                .join(" ");
            let theirs = fields
                .iter()
                .zip(FIELDS)
                .map(|(items, def)| render(def, items, true))
                .collect::<Vec<_>>()
                .join(" ");
            // The cron crate has a leading seconds field.
            (ours, format!("0 {theirs}"))
        })
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    /// The `cron` crate agrees on the next starts, for expressions in which
    /// the day of month or the day of week is `*` or `?` (that crate always
    /// requires both day fields to match, which is the CronJob rule only in
    /// that case). Zones without daylight-saving time since 1995, because
    /// the two differ on purpose around DST changes.
    #[test]
    fn cron_crate_agrees_on_next_starts(
        (ours, theirs) in oracle_expression(),
        tz in prop::sample::select(vec![chrono_tz::UTC, chrono_tz::Asia::Tokyo, chrono_tz::Asia::Kolkata]),
        // 2000-01-01 to 2085-01-01: the cron crate stops at 2100.
        secs in 946_684_800i64..3_313_526_400i64,
    ) {
        let t = DateTime::from_timestamp(secs, 0).expect("in range");
        let s = schedule(&ours, tz, Duration::from_secs(60));
        let oracle = cron::Schedule::from_str(&theirs)
            .unwrap_or_else(|e| panic!("cron crate rejected {theirs:?} (from {ours:?}): {e}"));
        let expected: Vec<DateTime<Utc>> = oracle
            .after(&t.with_timezone(&tz))
            .take(3)
            .map(|t| t.with_timezone(&Utc))
            .collect();
        let mut actual = Vec::new();
        let mut after = t;
        while actual.len() < 3 {
            let Some(next) = s.next_start_after(after) else { break };
            actual.push(next);
            after = next;
        }
        prop_assert_eq!(actual, expected, "ours {:?}, cron crate {:?}", ours, theirs);
    }
}
