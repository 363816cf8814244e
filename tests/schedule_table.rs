//! Table tests for the schedule engine: each case is an input and the answer
//! a person who knows Kubernetes CronJob expects, written out by hand.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use import_scheduler::schedule::{
    parse_time_zone, CronError, CronExpr, CronField, FieldProblem, Schedule, ScheduleError, Window,
};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expr: &str, tz: &str, window: Duration) -> Schedule {
    let expr = CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
    let tz = parse_time_zone(tz).unwrap_or_else(|e| panic!("{tz:?}: {e}"));
    Schedule::new(expr, tz, window).expect("valid schedule")
}

const HOUR: Duration = Duration::from_secs(3600);

/// The first `n` window starts strictly after `after`, as RFC 3339 UTC.
fn starts(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let s = schedule(expr, tz, HOUR);
    let mut t = utc(after);
    let mut out = Vec::new();
    for _ in 0..n {
        match s.next_start_after(t) {
            Some(next) => {
                out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                t = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn weekday_numbers_follow_cronjob() {
    // 2026-11-20 is a Friday.
    let cases: &[(&str, &str)] = &[
        ("0 2 * * 0", "2026-11-22T02:00:00Z"), // Sunday
        ("0 2 * * 7", "2026-11-22T02:00:00Z"), // Sunday again
        ("0 2 * * 1", "2026-11-23T02:00:00Z"), // Monday
        ("0 2 * * 2", "2026-11-24T02:00:00Z"), // Tuesday
        ("0 2 * * 3", "2026-11-25T02:00:00Z"),
        ("0 2 * * 4", "2026-11-26T02:00:00Z"),
        ("0 2 * * 5", "2026-11-27T02:00:00Z"), // the same Friday is over at 12:00
        ("0 2 * * 6", "2026-11-21T02:00:00Z"), // Saturday
        ("0 2 * * SUN", "2026-11-22T02:00:00Z"),
        ("0 2 * * tue", "2026-11-24T02:00:00Z"),
        ("0 2 * * Tue", "2026-11-24T02:00:00Z"),
        ("0 2 * * SAT", "2026-11-21T02:00:00Z"),
    ];
    for (expr, expected) in cases {
        assert_eq!(
            starts(expr, "UTC", "2026-11-20T12:00:00Z", 1),
            vec![expected.to_string()],
            "{expr}"
        );
    }
}

#[test]
fn weekday_ranges_lists_and_steps() {
    let cases: &[(&str, &[&str])] = &[
        // Fri, Sat, Sun: 7 closes the range as Sunday.
        (
            "0 9 * * 5-7",
            &[
                "2026-11-21T09:00:00Z",
                "2026-11-22T09:00:00Z",
                "2026-11-27T09:00:00Z",
            ],
        ),
        (
            "0 9 * * MON-WED",
            &[
                "2026-11-23T09:00:00Z",
                "2026-11-24T09:00:00Z",
                "2026-11-25T09:00:00Z",
            ],
        ),
        // */2 over 0-6: Sun, Tue, Thu, Sat.
        (
            "0 9 * * */2",
            &[
                "2026-11-21T09:00:00Z",
                "2026-11-22T09:00:00Z",
                "2026-11-24T09:00:00Z",
            ],
        ),
        // 1/3 is 1-6/3: Mon, Thu.
        (
            "0 9 * * 1/3",
            &[
                "2026-11-23T09:00:00Z",
                "2026-11-26T09:00:00Z",
                "2026-11-30T09:00:00Z",
            ],
        ),
        (
            "0 9 * * 0,SAT",
            &[
                "2026-11-21T09:00:00Z",
                "2026-11-22T09:00:00Z",
                "2026-11-28T09:00:00Z",
            ],
        ),
    ];
    for (expr, expected) in cases {
        assert_eq!(
            starts(expr, "UTC", "2026-11-20T12:00:00Z", expected.len()),
            *expected,
            "{expr}"
        );
    }
}

#[test]
fn minute_hour_month_steps_ranges_and_names() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "*/15 * * * *",
            "2026-01-01T10:07:00Z",
            &[
                "2026-01-01T10:15:00Z",
                "2026-01-01T10:30:00Z",
                "2026-01-01T10:45:00Z",
                "2026-01-01T11:00:00Z",
            ],
        ),
        // a/n is a-59/n.
        (
            "5/20 * * * *",
            "2026-01-01T10:00:00Z",
            &[
                "2026-01-01T10:05:00Z",
                "2026-01-01T10:25:00Z",
                "2026-01-01T10:45:00Z",
                "2026-01-01T11:05:00Z",
            ],
        ),
        (
            "1-30/10 * * * *",
            "2026-01-01T10:00:00Z",
            &[
                "2026-01-01T10:01:00Z",
                "2026-01-01T10:11:00Z",
                "2026-01-01T10:21:00Z",
                "2026-01-01T11:01:00Z",
            ],
        ),
        (
            "0 */6 * * *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T06:00:00Z",
                "2026-01-01T12:00:00Z",
                "2026-01-01T18:00:00Z",
                "2026-01-02T00:00:00Z",
            ],
        ),
        (
            "30 9-11 * * *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T09:30:00Z",
                "2026-01-01T10:30:00Z",
                "2026-01-01T11:30:00Z",
                "2026-01-02T09:30:00Z",
            ],
        ),
        (
            "0,30 22-23,0-1 * * *",
            "2026-01-01T21:00:00Z",
            &[
                "2026-01-01T22:00:00Z",
                "2026-01-01T22:30:00Z",
                "2026-01-01T23:00:00Z",
                "2026-01-01T23:30:00Z",
                "2026-01-02T00:00:00Z",
            ],
        ),
        (
            "0 0 1 JAN,jul *",
            "2026-03-01T00:00:00Z",
            &["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"],
        ),
        (
            "0 0 1 */4 *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-05-01T00:00:00Z",
                "2026-09-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ],
        ),
        (
            "0 12 15 mar-may *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-03-15T12:00:00Z",
                "2026-04-15T12:00:00Z",
                "2026-05-15T12:00:00Z",
                "2027-03-15T12:00:00Z",
            ],
        ),
        (
            "59 23 31 * *",
            "2026-01-31T23:59:00Z",
            &["2026-03-31T23:59:00Z", "2026-05-31T23:59:00Z"],
        ),
        (
            "0 0 29 2 *",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        // Across the non-leap year 2100.
        (
            "0 0 29 2 *",
            "2096-03-01T00:00:00Z",
            &["2104-02-29T00:00:00Z"],
        ),
    ];
    for (expr, after, expected) in cases {
        assert_eq!(
            starts(expr, "UTC", after, expected.len()),
            *expected,
            "{expr}"
        );
    }
}

#[test]
fn day_of_month_and_day_of_week_rule() {
    // 2026-01-01 is a Thursday.
    let cases: &[(&str, &[&str])] = &[
        // Both restricted: the 13th OR any Friday.
        (
            "0 0 13 * 5",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-13T00:00:00Z",
                "2026-01-16T00:00:00Z",
            ],
        ),
        // Days 1-7 OR any Monday (not "the first Monday").
        (
            "0 0 1-7 * MON",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-03T00:00:00Z",
                "2026-01-04T00:00:00Z",
                "2026-01-05T00:00:00Z",
                "2026-01-06T00:00:00Z",
                "2026-01-07T00:00:00Z",
                "2026-01-12T00:00:00Z",
            ],
        ),
        // Day of week is *: only the day of month counts.
        (
            "0 0 13 * *",
            &["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"],
        ),
        (
            "0 0 13 * ?",
            &["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"],
        ),
        // Day of month is *: only the day of week counts.
        (
            "0 0 * * 5",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-16T00:00:00Z",
            ],
        ),
        (
            "0 0 ? * 5",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-16T00:00:00Z",
            ],
        ),
        // */1 still counts as *: Mondays only.
        (
            "0 0 */1 * 1",
            &["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"],
        ),
        // */2 counts as restricted (robfig/cron): odd days OR Mondays.
        (
            "0 0 */2 * 1",
            &[
                "2026-01-03T00:00:00Z",
                "2026-01-05T00:00:00Z",
                "2026-01-07T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-11T00:00:00Z",
                "2026-01-12T00:00:00Z",
                "2026-01-13T00:00:00Z",
            ],
        ),
        // A list containing * counts as *: Fridays only.
        (
            "0 0 *,13 * 5",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-16T00:00:00Z",
            ],
        ),
        // Never on its own, but Mondays in February through the OR rule.
        (
            "0 0 30 2 1",
            &["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"],
        ),
    ];
    for (expr, expected) in cases {
        assert_eq!(
            starts(expr, "UTC", "2026-01-01T12:00:00Z", expected.len()),
            *expected,
            "{expr}"
        );
    }
}

#[test]
fn macros_mean_their_five_field_forms() {
    let cases = [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ];
    for (macro_text, fields) in cases {
        for zone in ["UTC", "Europe/Prague"] {
            assert_eq!(
                starts(macro_text, zone, "2026-03-27T12:34:00Z", 6),
                starts(fields, zone, "2026-03-27T12:34:00Z", 6),
                "{macro_text} in {zone}"
            );
        }
    }
    assert_eq!(
        starts("@weekly", "UTC", "2026-11-20T00:00:00Z", 1),
        ["2026-11-22T00:00:00Z"],
        "@weekly is Sunday midnight"
    );
    assert_eq!(
        CronExpr::parse(" @daily ").map(|e| e.to_string()),
        Ok("@daily".to_string())
    );
}

#[test]
fn expressions_display_as_written_and_parse_with_from_str() {
    for text in [
        "0 2 * * 2",
        "0 2 * * TUE",
        "*/15  9-17 * * mon-fri",
        "@hourly",
    ] {
        let expr: CronExpr = text.parse().expect("valid");
        assert_eq!(expr.to_string(), text);
        assert_eq!(expr.as_str(), text);
    }
    let a: CronExpr = "0 2 * * 2".parse().expect("valid");
    assert_eq!(a.clone(), a);
}

#[test]
fn matches_is_minute_granular_wall_clock() {
    let expr = CronExpr::parse("0 2 * * 2").expect("valid");
    let tuesday = |h, m, s| {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
            .and_then(|d| d.and_hms_opt(h, m, s))
            .expect("valid date")
    };
    assert!(expr.matches(tuesday(2, 0, 0)));
    assert!(expr.matches(tuesday(2, 0, 59)));
    assert!(!expr.matches(tuesday(2, 1, 0)));
    assert!(!expr.matches(tuesday(3, 0, 0)));
    let wednesday = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
        .and_then(|d| d.and_hms_opt(2, 0, 0))
        .expect("valid date");
    assert!(!expr.matches(wednesday));
}

#[test]
fn invalid_expressions_name_the_field_and_the_fix() {
    fn field(field: CronField) -> impl Fn(&CronError) -> bool {
        move |e| matches!(e, CronError::Field { field: f, .. } if *f == field)
    }
    type Check = Box<dyn Fn(&CronError) -> bool>;
    let cases: Vec<(&str, Check, &str)> = vec![
        ("", Box::new(|e| *e == CronError::Empty), "5 fields"),
        ("   ", Box::new(|e| *e == CronError::Empty), "5 fields"),
        (
            "0 2 * *",
            Box::new(|e| *e == CronError::FieldCount { found: 4 }),
            "exactly 5 fields",
        ),
        (
            "0 0 2 * * 2",
            Box::new(|e| *e == CronError::SixFields),
            "seconds",
        ),
        (
            "0 0 2 * * 2 2026",
            Box::new(|e| *e == CronError::FieldCount { found: 7 }),
            "exactly 5",
        ),
        (
            "TZ=Europe/Prague 0 2 * * 2",
            Box::new(|e| matches!(e, CronError::TimeZonePrefix { .. })),
            "timeZone field",
        ),
        (
            "CRON_TZ=UTC 0 2 * * 2",
            Box::new(|e| matches!(e, CronError::TimeZonePrefix { .. })),
            "--time-zone",
        ),
        (
            "@every 1h",
            Box::new(|e| *e == CronError::Every),
            "0 */6 * * *",
        ),
        ("@reboot", Box::new(|e| *e == CronError::Reboot), "5 fields"),
        (
            "@often",
            Box::new(|e| matches!(e, CronError::UnknownMacro { .. })),
            "@daily",
        ),
        (
            "@Daily",
            Box::new(|e| matches!(e, CronError::UnknownMacro { .. })),
            "lower case",
        ),
        (
            "60 * * * *",
            Box::new(field(CronField::Minute)),
            "minute field: 60 is out of range 0-59",
        ),
        (
            "0 24 * * *",
            Box::new(field(CronField::Hour)),
            "hour field: 24 is out of range 0-23",
        ),
        (
            "0 0 0 * *",
            Box::new(field(CronField::DayOfMonth)),
            "day-of-month field: 0 is out of range 1-31",
        ),
        ("0 0 32 * *", Box::new(field(CronField::DayOfMonth)), "1-31"),
        (
            "0 0 * 13 *",
            Box::new(field(CronField::Month)),
            "month field: 13 is out of range 1-12",
        ),
        (
            "0 0 * 0 *",
            Box::new(field(CronField::Month)),
            "month field",
        ),
        (
            "0 2 * * 8",
            Box::new(field(CronField::DayOfWeek)),
            "day-of-week field: 8 is out of range 0-7 (0 and 7 are Sunday)",
        ),
        (
            "0 2 * * MONDAY",
            Box::new(field(CronField::DayOfWeek)),
            "SUN-SAT",
        ),
        (
            "0 2 * JANUARY *",
            Box::new(field(CronField::Month)),
            "JAN-DEC",
        ),
        (
            "0 2 MON * *",
            Box::new(field(CronField::DayOfMonth)),
            "day-of-month field",
        ),
        (
            "5-1 * * * *",
            Box::new(field(CronField::Minute)),
            "22-23,0-2",
        ),
        (
            "0 0 * * FRI-MON",
            Box::new(field(CronField::DayOfWeek)),
            "runs backwards",
        ),
        (
            "*/0 * * * *",
            Box::new(field(CronField::Minute)),
            "step must be 1 or more",
        ),
        (
            "*/x * * * *",
            Box::new(field(CronField::Minute)),
            "not a whole number",
        ),
        (
            "*/-1 * * * *",
            Box::new(field(CronField::Minute)),
            "minute field",
        ),
        (
            "1-2-3 * * * *",
            Box::new(field(CronField::Minute)),
            "more than one '-'",
        ),
        (
            "*/5/2 * * * *",
            Box::new(field(CronField::Minute)),
            "more than one '/'",
        ),
        (
            "1,,2 * * * *",
            Box::new(field(CronField::Minute)),
            "empty list element",
        ),
        (
            "1, * * * *",
            Box::new(field(CronField::Minute)),
            "empty list element",
        ),
        (
            "-5 * * * *",
            Box::new(field(CronField::Minute)),
            "negative values are not allowed",
        ),
        (
            "1- * * * *",
            Box::new(field(CronField::Minute)),
            "missing a value",
        ),
        (
            "/5 * * * *",
            Box::new(field(CronField::Minute)),
            "missing a value",
        ),
        (
            "*-5 * * * *",
            Box::new(field(CronField::Minute)),
            "* cannot be one end of a range",
        ),
        (
            "a * * * *",
            Box::new(field(CronField::Minute)),
            "a minute 0-59",
        ),
        (
            "0 0 L * *",
            Box::new(field(CronField::DayOfMonth)),
            "L, W or #",
        ),
        (
            "0 0 15W * *",
            Box::new(field(CronField::DayOfMonth)),
            "L, W or #",
        ),
        (
            "0 0 * * 5#3",
            Box::new(field(CronField::DayOfWeek)),
            "L, W or #",
        ),
        (
            "0 0 * * 5L",
            Box::new(field(CronField::DayOfWeek)),
            "L, W or #",
        ),
        ("0 0 * * 7/2", Box::new(field(CronField::DayOfWeek)), "0/2"),
        (
            "99999999999 * * * *",
            Box::new(field(CronField::Minute)),
            "out of range",
        ),
        (
            "0 0 * * 1.5",
            Box::new(field(CronField::DayOfWeek)),
            "day-of-week field",
        ),
    ];
    for (input, check, needle) in cases {
        match CronExpr::parse(input) {
            Ok(expr) => panic!("{input:?} parsed as {expr:?}"),
            Err(e) => {
                assert!(check(&e), "{input:?} gave {e:?}");
                let message = e.to_string();
                assert!(
                    message.contains(needle),
                    "{input:?}: {message:?} lacks {needle:?}"
                );
            }
        }
    }
    // The exact wording for the most common mistake.
    assert_eq!(
        CronExpr::parse("0 2 * * 8").map_err(|e| e.to_string()),
        Err("day-of-week field: 8 is out of range 0-7 (0 and 7 are Sunday)".to_string())
    );
    assert_eq!(
        CronExpr::parse("0 2 * * 8"),
        Err(CronError::Field {
            field: CronField::DayOfWeek,
            problem: FieldProblem::OutOfRange { value: "8".into() }
        })
    );
}

#[test]
fn time_zones_shift_the_wall_clock() {
    // `0 2 * * 2` = Tuesday 02:00 local.
    let cases = [
        (
            "Europe/Prague",
            "2026-11-20T00:00:00Z",
            "2026-11-24T01:00:00Z",
        ), // CET +1
        (
            "Europe/Prague",
            "2026-07-01T00:00:00Z",
            "2026-07-07T00:00:00Z",
        ), // CEST +2
        (
            "America/New_York",
            "2026-11-20T00:00:00Z",
            "2026-11-24T07:00:00Z",
        ), // EST -5
        (
            "America/New_York",
            "2026-07-01T00:00:00Z",
            "2026-07-07T06:00:00Z",
        ), // EDT -4
        ("Asia/Tokyo", "2026-11-20T00:00:00Z", "2026-11-23T17:00:00Z"), // +9, Monday in UTC
        (
            "Asia/Kolkata",
            "2026-11-20T00:00:00Z",
            "2026-11-23T20:30:00Z",
        ), // +5:30
        (
            "Australia/Lord_Howe",
            "2026-07-01T00:00:00Z",
            "2026-07-06T15:30:00Z",
        ), // +10:30
        (
            "Australia/Lord_Howe",
            "2026-11-20T00:00:00Z",
            "2026-11-23T15:00:00Z",
        ), // +11
        ("UTC", "2026-11-20T00:00:00Z", "2026-11-24T02:00:00Z"),
    ];
    for (zone, after, expected) in cases {
        assert_eq!(
            starts("0 2 * * 2", zone, after, 1),
            [expected],
            "{zone} after {after}"
        );
    }
}

#[test]
fn spring_forward_opens_at_the_end_of_the_gap() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // Prague 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z.
        (
            "30 2 * * *",
            "Europe/Prague",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ],
        ),
        // 02:00 itself is the first missing minute.
        (
            "0 2 * * *",
            "Europe/Prague",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"],
        ),
        // 02:30 and 03:00 both resolve to 01:00Z: one window.
        (
            "0,30 2,3 * * *",
            "Europe/Prague",
            "2026-03-28T12:00:00Z",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:30:00Z",
                "2026-03-30T00:00:00Z",
            ],
        ),
        (
            "*/20 * * * *",
            "Europe/Prague",
            "2026-03-29T00:30:00Z",
            &[
                "2026-03-29T00:40:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:20:00Z",
            ],
        ),
        // New York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            "0 2 * * 0",
            "America/New_York",
            "2026-03-01T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-15T06:00:00Z"],
        ),
        // Lord Howe 2026-10-04: 02:00 +10:30 -> 02:30 +11, a 30-minute gap at 15:30Z.
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-02T00:00:00Z",
            &[
                "2026-10-02T15:45:00Z",
                "2026-10-03T15:30:00Z",
                "2026-10-04T15:15:00Z",
            ],
        ),
    ];
    for (expr, zone, after, expected) in cases {
        assert_eq!(
            starts(expr, zone, after, expected.len()),
            *expected,
            "{expr} in {zone}"
        );
    }
}

#[test]
fn fall_back_opens_once_at_the_first_occurrence() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // Prague 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z; 02:30 happens
        // at 00:30Z and again at 01:30Z.
        (
            "30 2 * * *",
            "Europe/Prague",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        // Asking from inside the repeated hour does not reopen it.
        (
            "30 2 * * *",
            "Europe/Prague",
            "2026-10-25T01:10:00Z",
            &["2026-10-26T01:30:00Z"],
        ),
        (
            "0,30 * * * *",
            "Europe/Prague",
            "2026-10-24T23:45:00Z",
            &[
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T02:30:00Z",
            ],
        ),
        // New York 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z.
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        // Lord Howe 2026-04-05: 02:00 +11 -> 01:30 +10:30 at 15:00Z.
        (
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-03T00:00:00Z",
            &[
                "2026-04-03T14:45:00Z",
                "2026-04-04T14:45:00Z",
                "2026-04-05T15:15:00Z",
            ],
        ),
    ];
    for (expr, zone, after, expected) in cases {
        assert_eq!(
            starts(expr, zone, after, expected.len()),
            *expected,
            "{expr} in {zone}"
        );
    }
}

#[test]
fn windows_last_elapsed_time_across_dst() {
    // 3 hours from 01:00 local on both change days in Prague.
    let s = schedule("0 1 * * *", "Europe/Prague", 3 * HOUR);
    let cases = [
        // Spring: 01:00 CET = 00:00Z, ends 03:00Z = 05:00 CEST on the wall clock.
        (
            "2026-03-28T12:00:00Z",
            "2026-03-29T00:00:00Z",
            "2026-03-29T03:00:00Z",
        ),
        // Autumn: 01:00 CEST = 23:00Z, ends 02:00Z = 03:00 CET on the wall clock.
        (
            "2026-10-24T12:00:00Z",
            "2026-10-24T23:00:00Z",
            "2026-10-25T02:00:00Z",
        ),
    ];
    for (after, start, end) in cases {
        let window = s.windows(utc(after)).next().expect("a window");
        assert_eq!(
            window,
            Window {
                start: utc(start),
                end: utc(end)
            }
        );
    }
}

#[test]
fn windows_cross_midnight_month_and_year_ends() {
    let s = schedule("30 23 * * *", "UTC", 2 * HOUR);
    let w = s
        .window_at(utc("2026-01-02T01:00:00Z"))
        .expect("open after midnight");
    assert_eq!(w.start, utc("2026-01-01T23:30:00Z"));
    assert_eq!(w.end, utc("2026-01-02T01:30:00Z"));
    assert_eq!(
        s.window_at(utc("2026-01-02T01:30:00Z")),
        None,
        "end is exclusive"
    );

    let s = schedule("0 22 28-31 * *", "UTC", 4 * HOUR);
    let w = s
        .window_at(utc("2026-03-01T01:59:59Z"))
        .expect("open into March");
    assert_eq!(w.start, utc("2026-02-28T22:00:00Z"));

    let s = schedule("0 23 31 12 *", "Europe/Prague", 2 * HOUR);
    // 00:30 on New Year's Day in Prague.
    let w = s
        .window_at(utc("2026-12-31T23:30:00Z"))
        .expect("open into the new year");
    assert_eq!(w.id(), "2026-12-31T22:00:00Z");
    assert_eq!(w.end, utc("2027-01-01T00:00:00Z"));

    // Local midnight in Tokyo is 15:00Z the day before.
    let s = schedule("0 0 1 * *", "Asia/Tokyo", HOUR);
    let w = s
        .windows(utc("2026-04-30T12:00:00Z"))
        .next()
        .expect("a window");
    assert_eq!(w.start, utc("2026-04-30T15:00:00Z"));
}

#[test]
fn window_ids_and_containment() {
    let s = schedule("0 2 * * 2", "Europe/Prague", HOUR);
    let w = s
        .windows(utc("2026-11-20T00:00:00Z"))
        .next()
        .expect("a window");
    assert_eq!(w.id(), "2026-11-24T01:00:00Z");
    assert!(w.contains(w.start));
    assert!(w.contains(w.end - TimeDelta::nanoseconds(1)));
    assert!(!w.contains(w.end));
    assert!(!w.contains(w.start - TimeDelta::seconds(1)));
    assert_eq!(
        serde_json::to_string(&w).expect("serializable"),
        r#"{"start":"2026-11-24T01:00:00Z","end":"2026-11-24T02:00:00Z"}"#
    );
}

#[test]
fn windows_list_the_open_window_first() {
    let s = schedule("0 2 * * 2", "Europe/Prague", HOUR);
    let ids = |from: &str, n: usize| -> Vec<String> {
        s.windows(utc(from)).take(n).map(|w| w.id()).collect()
    };
    // Inside a window: that window first.
    assert_eq!(
        ids("2026-11-24T01:30:00Z", 2),
        ["2026-11-24T01:00:00Z", "2026-12-01T01:00:00Z"]
    );
    // At the very start: included.
    assert_eq!(ids("2026-11-24T01:00:00Z", 1), ["2026-11-24T01:00:00Z"]);
    // At the end: closed, so the next one.
    assert_eq!(ids("2026-11-24T02:00:00Z", 1), ["2026-12-01T01:00:00Z"]);
    // Before: the next one.
    assert_eq!(ids("2026-11-24T00:59:59Z", 1), ["2026-11-24T01:00:00Z"]);

    assert_eq!(s.window_at(utc("2026-11-24T00:59:59Z")), None);
    assert_eq!(
        s.window_at(utc("2026-11-24T01:59:59Z")).map(|w| w.id()),
        Some("2026-11-24T01:00:00Z".to_string())
    );
    // next_start_after is strict.
    assert_eq!(
        s.next_start_after(utc("2026-11-24T01:00:00Z")),
        Some(utc("2026-12-01T01:00:00Z"))
    );
}

#[test]
fn overlapping_windows_report_the_earliest_open_one() {
    let s = schedule("0 * * * *", "UTC", 2 * HOUR);
    let w = s.window_at(utc("2026-01-01T10:30:00Z")).expect("open");
    assert_eq!(w.start, utc("2026-01-01T09:00:00Z"));
    let ids: Vec<String> = s
        .windows(utc("2026-01-01T10:30:00Z"))
        .take(3)
        .map(|w| w.id())
        .collect();
    assert_eq!(
        ids,
        [
            "2026-01-01T09:00:00Z",
            "2026-01-01T10:00:00Z",
            "2026-01-01T11:00:00Z"
        ]
    );
}

#[test]
fn never_matching_expressions_have_no_windows() {
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"] {
        let s = schedule(expr, "Europe/Prague", HOUR);
        let t = utc("2026-01-01T00:00:00Z");
        assert_eq!(s.next_start_after(t), None, "{expr}");
        assert_eq!(s.window_at(t), None, "{expr}");
        assert_eq!(s.windows(t).next(), None, "{expr}");
        assert_eq!(s.min_gap(t, TimeDelta::days(800)), None, "{expr}");
    }
}

#[test]
fn min_gap_finds_the_shortest_distance_between_starts() {
    let year = TimeDelta::days(366);
    let from = utc("2026-01-01T00:00:00Z");
    let cases: &[(&str, &str, Duration, TimeDelta)] = &[
        // The week with the spring-forward Sunday is an hour short.
        (
            "0 2 * * 2",
            "Europe/Prague",
            HOUR,
            TimeDelta::days(7) - TimeDelta::hours(1),
        ),
        ("0 2 * * 2", "UTC", HOUR, TimeDelta::days(7)),
        (
            "*/15 * * * *",
            "UTC",
            Duration::from_secs(60),
            TimeDelta::minutes(15),
        ),
        ("0 9,17 * * 1-5", "UTC", HOUR, TimeDelta::hours(8)),
        ("0 17 * * 1-5", "UTC", HOUR, TimeDelta::hours(24)),
        ("0 17,9 * * 1-5", "UTC", 9 * HOUR, TimeDelta::hours(8)),
        // Spring forward makes one day 23 hours long.
        ("0 2 * * *", "Europe/Prague", HOUR, TimeDelta::hours(23)),
        ("0 12 * * *", "America/New_York", HOUR, TimeDelta::hours(23)),
        ("0 12 * * *", "UTC", HOUR, TimeDelta::hours(24)),
        // 01:00 CET and 03:00 CEST on 2026-03-29 are one hour apart.
        ("0 1,3 * * *", "Europe/Prague", HOUR, TimeDelta::hours(1)),
        // Lord Howe's spring forward is 30 minutes.
        (
            "0 12 * * *",
            "Australia/Lord_Howe",
            HOUR,
            TimeDelta::minutes(23 * 60 + 30),
        ),
        ("0 0 1 * *", "UTC", HOUR, TimeDelta::days(28)),
    ];
    for (expr, zone, window, expected) in cases {
        let s = schedule(expr, zone, *window);
        assert_eq!(s.min_gap(from, year), Some(*expected), "{expr} in {zone}");
    }
}

#[test]
fn min_gap_is_cheap_for_dense_expressions_and_stops_early() {
    let from = utc("2026-01-01T00:00:00Z");
    let s = schedule("* * * * *", "Europe/Prague", Duration::from_secs(30));
    assert_eq!(
        s.min_gap(from, TimeDelta::days(3660)),
        Some(TimeDelta::minutes(1))
    );
    // With a window longer than a minute the first gap already shows overlap.
    let s = schedule("* * * * *", "Europe/Prague", HOUR);
    let gap = s.min_gap(from, TimeDelta::days(3660)).expect("a gap");
    assert!(gap < TimeDelta::hours(1), "{gap}");
    // Fewer than two starts in the horizon.
    let s = schedule("0 0 1 1 *", "UTC", HOUR);
    assert_eq!(s.min_gap(from, TimeDelta::days(300)), None);
    assert_eq!(
        s.min_gap(from, TimeDelta::days(400)),
        Some(TimeDelta::days(365))
    );
}

#[test]
fn time_zone_names() {
    for name in [
        "Europe/Prague",
        "UTC",
        "America/New_York",
        "Australia/Lord_Howe",
        " Asia/Tokyo ",
    ] {
        let tz: Tz = parse_time_zone(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tz.name(), name.trim());
    }
    let err = parse_time_zone("europe/prague").expect_err("wrong case");
    assert_eq!(
        err,
        ScheduleError::UnknownTimeZone {
            name: "europe/prague".into(),
            suggestion: Some("Europe/Prague".into())
        }
    );
    assert!(
        err.to_string().contains("did you mean \"Europe/Prague\""),
        "{err}"
    );
    for bad in ["", "Mars/Olympus", "+02:00", "CEST"] {
        let message = parse_time_zone(bad).expect_err(bad).to_string();
        assert!(message.contains("IANA"), "{message}");
        assert!(message.contains("Europe/Prague"), "{message}");
    }
}

#[test]
fn schedules_need_a_window() {
    let expr = CronExpr::parse("0 2 * * 2").expect("valid");
    assert_eq!(
        Schedule::new(expr.clone(), chrono_tz::UTC, Duration::ZERO),
        Err(ScheduleError::ZeroWindow)
    );
    let s = Schedule::new(expr.clone(), chrono_tz::Europe::Prague, HOUR).expect("valid");
    assert_eq!(s.expr(), &expr);
    assert_eq!(s.time_zone(), chrono_tz::Europe::Prague);
    assert_eq!(s.window(), HOUR);
}
