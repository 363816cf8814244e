use std::time::Duration;

use chrono_tz::Tz;

use super::*;
use crate::env_windows::EnvWindows;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    t("2026-01-01T00:00:00Z")
}

fn freezes(yaml: &str, tz: Tz) -> Freezes {
    let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
    parse("environments.prod.freeze", &v, tz, now()).unwrap()
}

fn errors(yaml: &str) -> String {
    let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
    parse("environments.prod.freeze", &v, chrono_tz::UTC, now())
        .unwrap_err()
        .iter()
        .map(|e| {
            format!(
                "{}: {} ({})",
                e.path,
                e.message,
                e.hint.clone().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn schedule(expr: &str, tz: Tz, window: Duration) -> Schedule {
    Schedule::new(CronExpr::parse(expr).unwrap(), tz, window).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);

/// `start..end` of open slots, `start..end frozen (reason)` of frozen ones.
fn show(slots: impl IntoIterator<Item = Slot>) -> Vec<String> {
    slots
        .into_iter()
        .map(|s| {
            let w = s.window();
            let span = format!("{}..{}", w.id(), w.end.format("%m-%dT%H:%MZ"));
            match s {
                Slot::Open(_) => span,
                Slot::Frozen { reason, .. } => format!("{span} frozen ({reason})"),
            }
        })
        .collect()
}

#[test]
fn dated_bounds_are_whole_days_in_the_time_zone_or_exact_instants() {
    let prague = chrono_tz::Europe::Prague;
    let ny = chrono_tz::America::New_York;
    let santiago = chrono_tz::America::Santiago;
    // (bound, time zone, is the end, instant)
    let cases: &[(&str, Tz, bool, &str)] = &[
        ("2026-12-21", prague, false, "2026-12-20T23:00:00Z"),
        ("2027-01-04", prague, true, "2027-01-04T23:00:00Z"),
        // The day of the spring change has 23 hours, of the autumn one 25.
        ("2026-03-29", prague, false, "2026-03-28T23:00:00Z"),
        ("2026-03-29", prague, true, "2026-03-29T22:00:00Z"),
        ("2026-10-25", prague, false, "2026-10-24T22:00:00Z"),
        ("2026-10-25", prague, true, "2026-10-25T23:00:00Z"),
        ("2026-03-08", ny, false, "2026-03-08T05:00:00Z"),
        ("2026-03-08", ny, true, "2026-03-09T04:00:00Z"),
        ("2026-11-01", ny, false, "2026-11-01T04:00:00Z"),
        ("2026-11-01", ny, true, "2026-11-02T05:00:00Z"),
        // Chile springs forward at midnight: the day starts at 01:00.
        ("2026-09-06", santiago, false, "2026-09-06T04:00:00Z"),
        ("2026-09-05", santiago, true, "2026-09-06T04:00:00Z"),
        (
            "2026-12-01T09:00:00+01:00",
            prague,
            false,
            "2026-12-01T08:00:00Z",
        ),
        ("2026-12-01T09:00:00Z", prague, true, "2026-12-01T09:00:00Z"),
    ];
    for (bound, tz, end, want) in cases {
        assert_eq!(
            parse_bound(bound, *tz, *end),
            Ok(t(want)),
            "{bound} in {tz} (end: {end})"
        );
    }
    assert!(parse_bound("2026-12-01T09:00", prague, false)
        .unwrap_err()
        .contains("neither a day"));
}

#[test]
fn every_bad_freeze_names_its_field() {
    let cases: &[(&str, &str)] = &[
        ("{}", "environments.prod.freeze: expected a list of freezes"),
        ("[3]", "environments.prod.freeze[0]: expected a mapping"),
        (
            "[{from: 2026-12-21, to: 2027-01-04}]",
            "environments.prod.freeze[0].reason: missing",
        ),
        (
            "[{from: 2026-12-21, reason: x}]",
            "environments.prod.freeze[0].to: missing",
        ),
        (
            "[{to: 2026-12-21, reason: x}]",
            "environments.prod.freeze[0].from: missing",
        ),
        (
            "[{from: 2026-12-21, to: 2027-01-04, reason: \" \"}]",
            "environments.prod.freeze[0].reason: expected a non-empty string",
        ),
        (
            "[{from: 2026-12-21, to: 2026-12-20, reason: x}]",
            "environments.prod.freeze[0].to: is before `from`",
        ),
        (
            "[{from: 2026-12-21T10:00:00Z, to: 2026-12-21T10:00:00Z, reason: x}]",
            "environments.prod.freeze[0].to: is before `from`",
        ),
        (
            "[{from: 21.12.2026, to: 2026-12-22, reason: x}]",
            "environments.prod.freeze[0].from: `21.12.2026` is neither a day",
        ),
        (
            "[{from: 2026-12-21, to: tomorrow, reason: x}]",
            "environments.prod.freeze[0].to: `tomorrow` is neither",
        ),
        (
            "[{from: 2026-12-21, to: 2026-12-22, reason: x, until: 2027-01-01}]",
            "environments.prod.freeze[0].until: unknown key `until` (a dated freeze has",
        ),
        (
            "[{schedule: \"0 0 * * 5\", window: 3d, reason: x, from: 2026-12-21}]",
            "environments.prod.freeze[0].from: unknown key `from` (a recurring freeze has",
        ),
        (
            "[{schedule: \"0 0 * * 8\", window: 3d, reason: x}]",
            "environments.prod.freeze[0].schedule:",
        ),
        (
            "[{schedule: \"0 0 * * 5\", reason: x}]",
            "environments.prod.freeze[0].window: missing",
        ),
        (
            "[{schedule: \"0 0 * * 5\", window: 0s, reason: x}]",
            "environments.prod.freeze[0].window: must be longer than zero",
        ),
        (
            "[{schedule: \"0 0 * * 5\", window: soon, reason: x}]",
            "environments.prod.freeze[0].window:",
        ),
        (
            "[{schedule: \"0 0 * * 5\", window: 7d, reason: x}]",
            "environments.prod.freeze[0].window: 7d is not shorter than the gap",
        ),
        (
            "[{schedule: \"0 0 * * 5\", window: 1d, reason: x}, {window: 1d, reason: y}]",
            "environments.prod.freeze[1].schedule: missing",
        ),
    ];
    for (yaml, want) in cases {
        let got = errors(yaml);
        assert!(got.contains(want), "{yaml}: want {want:?} in:\n{got}");
    }
    assert_eq!(
        errors("[{from: x, to: y}]").lines().count(),
        3,
        "every problem of a freeze is reported"
    );
}

#[test]
fn valid_freezes_parse() {
    let v: Value = serde_yaml_ng::from_str("null").unwrap();
    assert_eq!(
        parse("f", &v, chrono_tz::UTC, now()),
        Ok(Freezes::default())
    );
    let f = freezes(
        "[{from: 2026-12-21, to: 2027-01-04, reason: holidays}, {schedule: \"0 0 * * 5\", window: 3d, reason: weekend}, {from: 2026-12-01T09:00:00Z, to: 2026-12-01T10:00:00Z, reason: 42}]",
        chrono_tz::Europe::Prague,
    );
    assert_eq!(
        f.rules(),
        [
            FreezeRule::Period {
                start: t("2026-12-20T23:00:00Z"),
                end: t("2027-01-04T23:00:00Z"),
                reason: "holidays".into()
            },
            FreezeRule::Recurring {
                schedule: schedule(
                    "0 0 * * 5",
                    chrono_tz::Europe::Prague,
                    Duration::from_secs(3 * 86400)
                ),
                reason: "weekend".into()
            },
            FreezeRule::Period {
                start: t("2026-12-01T09:00:00Z"),
                end: t("2026-12-01T10:00:00Z"),
                reason: "42".into()
            },
        ]
    );
    assert!(!f.is_empty());
    assert!(Freezes::none().is_empty());
}

#[test]
fn split_cuts_a_window_into_open_and_frozen_parts() {
    let w = Window {
        start: t("2026-06-01T10:00:00Z"),
        end: t("2026-06-01T12:00:00Z"),
    };
    let period = |from: &str, to: &str, reason: &str| FreezeRule::Period {
        start: t(from),
        end: t(to),
        reason: reason.into(),
    };
    let cases: Vec<(Vec<FreezeRule>, Vec<&str>)> = vec![
        (vec![], vec!["2026-06-01T10:00:00Z..06-01T12:00Z"]),
        // Touching the window at either end freezes nothing of it.
        (
            vec![
                period("2026-06-01T09:00:00Z", "2026-06-01T10:00:00Z", "a"),
                period("2026-06-01T12:00:00Z", "2026-06-01T13:00:00Z", "b"),
            ],
            vec!["2026-06-01T10:00:00Z..06-01T12:00Z"],
        ),
        (
            vec![period(
                "2026-06-01T09:00:00Z",
                "2026-06-01T13:00:00Z",
                "all",
            )],
            vec!["2026-06-01T10:00:00Z..06-01T12:00Z frozen (all)"],
        ),
        (
            vec![period(
                "2026-06-01T10:30:00Z",
                "2026-06-01T11:00:00Z",
                "mid",
            )],
            vec![
                "2026-06-01T10:00:00Z..06-01T10:30Z",
                "2026-06-01T10:30:00Z..06-01T11:00Z frozen (mid)",
                "2026-06-01T11:00:00Z..06-01T12:00Z",
            ],
        ),
        // Overlapping and touching freezes join; the first reason stays.
        (
            vec![
                period("2026-06-01T11:00:00Z", "2026-06-01T11:40:00Z", "late"),
                period("2026-06-01T09:00:00Z", "2026-06-01T10:20:00Z", "early"),
                period("2026-06-01T10:10:00Z", "2026-06-01T10:30:00Z", "inner"),
                period("2026-06-01T10:15:00Z", "2026-06-01T10:20:00Z", "inside"),
                period("2026-06-01T11:40:00Z", "2026-06-01T11:50:00Z", "next"),
            ],
            vec![
                "2026-06-01T10:00:00Z..06-01T10:30Z frozen (early)",
                "2026-06-01T10:30:00Z..06-01T11:00Z",
                "2026-06-01T11:00:00Z..06-01T11:50Z frozen (late)",
                "2026-06-01T11:50:00Z..06-01T12:00Z",
            ],
        ),
    ];
    for (rules, want) in cases {
        let f = Freezes::new(rules.clone());
        assert_eq!(show(f.split(w)), want, "{rules:?}");
    }
}

#[test]
fn with_adds_freezes() {
    let f = Freezes::none().with([FreezeRule::Period {
        start: t("2026-06-01T10:00:00Z"),
        end: t("2026-06-01T11:00:00Z"),
        reason: "r".into(),
    }]);
    assert_eq!(f.rules().len(), 1);
    assert_eq!(f.with(f.rules().to_vec()).rules().len(), 2);
    assert_eq!(
        f.at(t("2026-06-01T10:59:59Z")).map(|f| f.reason),
        Some("r".into())
    );
    assert_eq!(f.at(t("2026-06-01T11:00:00Z")), None);
    assert_eq!(f.at(t("2026-06-01T09:59:59Z")), None);
}

/// Slots from an instant, for a schedule and freezes in one time zone,
/// across the daylight saving changes of Europe/Prague (2026-03-29,
/// 2026-10-25) and America/New_York (2026-03-08, 2026-11-01).
#[test]
fn frozen_windows_across_daylight_saving_changes() {
    let prague = chrono_tz::Europe::Prague;
    let ny = chrono_tz::America::New_York;
    // (schedule, zone, freezes, from, slots)
    let cases: &[(&str, Tz, &str, &str, &[&str])] = &[
        // The whole spring-change day (23 hours) is frozen, the days around
        // it are not.
        (
            "30 2 * * *",
            prague,
            "[{from: 2026-03-29, to: 2026-03-29, reason: spring}]",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z..03-28T02:30Z",
                "2026-03-29T01:00:00Z..03-29T02:00Z frozen (spring)",
                "2026-03-30T00:30:00Z..03-30T01:30Z",
            ],
        ),
        // A freeze through the day before the autumn change ends at
        // midnight CEST; the window at 02:30 CEST opens.
        (
            "30 2 * * *",
            prague,
            "[{from: 2026-10-23, to: 2026-10-24, reason: autumn}]",
            "2026-10-22T12:00:00Z",
            &[
                "2026-10-23T00:30:00Z..10-23T01:30Z frozen (autumn)",
                "2026-10-24T00:30:00Z..10-24T01:30Z frozen (autumn)",
                "2026-10-25T00:30:00Z..10-25T01:30Z",
            ],
        ),
        // The autumn-change day has 25 hours, all frozen: from midnight
        // CEST to midnight CET, cutting the windows that cross them.
        (
            "30 23 * * *",
            prague,
            "[{from: 2026-10-25, to: 2026-10-25, reason: long day}]",
            "2026-10-24T12:00:00Z",
            &[
                "2026-10-24T21:30:00Z..10-24T22:00Z",
                "2026-10-24T22:00:00Z..10-24T22:30Z frozen (long day)",
                "2026-10-25T22:30:00Z..10-25T23:00Z frozen (long day)",
                "2026-10-25T23:00:00Z..10-25T23:30Z",
            ],
        ),
        // Friday to Monday, 3 days of elapsed time: across the spring
        // change that is until 01:00 CEST on Monday.
        (
            "30 2 * * *",
            prague,
            "[{schedule: \"0 0 * * 5\", window: 3d, reason: weekend}]",
            "2026-03-26T12:00:00Z",
            &[
                "2026-03-27T01:30:00Z..03-27T02:30Z frozen (weekend)",
                "2026-03-28T01:30:00Z..03-28T02:30Z frozen (weekend)",
                "2026-03-29T01:00:00Z..03-29T02:00Z frozen (weekend)",
                "2026-03-30T00:30:00Z..03-30T01:30Z",
            ],
        ),
        (
            "30 2 * * *",
            prague,
            "[{schedule: \"0 0 * * 5\", window: 3d, reason: weekend}]",
            "2026-10-22T12:00:00Z",
            &[
                "2026-10-23T00:30:00Z..10-23T01:30Z frozen (weekend)",
                "2026-10-24T00:30:00Z..10-24T01:30Z frozen (weekend)",
                "2026-10-25T00:30:00Z..10-25T01:30Z frozen (weekend)",
                "2026-10-26T01:30:00Z..10-26T02:30Z",
            ],
        ),
        // A deny window at 03:00 for 30 minutes cuts the second half off
        // the 02:30 window; on the spring-change day both start at 03:00
        // CEST, on the autumn-change day the deny window comes after the
        // window (03:00 CET) and cuts nothing.
        (
            "30 2 * * *",
            prague,
            "[{schedule: \"0 3 * * *\", window: 30m, reason: backup}]",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z..03-28T02:00Z",
                "2026-03-28T02:00:00Z..03-28T02:30Z frozen (backup)",
                "2026-03-29T01:00:00Z..03-29T01:30Z frozen (backup)",
                "2026-03-29T01:30:00Z..03-29T02:00Z",
            ],
        ),
        (
            "30 2 * * *",
            prague,
            "[{schedule: \"0 3 * * *\", window: 30m, reason: backup}]",
            "2026-10-24T00:00:00Z",
            &[
                "2026-10-24T00:30:00Z..10-24T01:00Z",
                "2026-10-24T01:00:00Z..10-24T01:30Z frozen (backup)",
                "2026-10-25T00:30:00Z..10-25T01:30Z",
            ],
        ),
        // Exact instants cut exactly, inside the repeated hour.
        (
            "30 2 * * *",
            prague,
            "[{from: \"2026-10-25T02:45:00+02:00\", to: \"2026-10-25T02:15:00+01:00\", reason: deploy}]",
            "2026-10-25T00:00:00Z",
            &[
                "2026-10-25T00:30:00Z..10-25T00:45Z",
                "2026-10-25T00:45:00Z..10-25T01:15Z frozen (deploy)",
                "2026-10-25T01:15:00Z..10-25T01:30Z",
            ],
        ),
        (
            "0 1 * * *",
            ny,
            "[{from: 2026-03-08, to: 2026-03-08, reason: spring}]",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T06:00:00Z..03-07T07:00Z",
                "2026-03-08T06:00:00Z..03-08T07:00Z frozen (spring)",
                "2026-03-09T05:00:00Z..03-09T06:00Z",
            ],
        ),
        // Through October 31: the window at 01:00 EDT on November 1 opens.
        (
            "0 1 * * *",
            ny,
            "[{from: 2026-10-31, to: 2026-10-31, reason: halloween}]",
            "2026-10-30T12:00:00Z",
            &[
                "2026-10-31T05:00:00Z..10-31T06:00Z frozen (halloween)",
                "2026-11-01T05:00:00Z..11-01T06:00Z",
            ],
        ),
        (
            "0 1 * * *",
            ny,
            "[{schedule: \"0 0 * * 0\", window: 1d, reason: sunday}]",
            "2026-10-31T12:00:00Z",
            &[
                "2026-11-01T05:00:00Z..11-01T06:00Z frozen (sunday)",
                "2026-11-02T06:00:00Z..11-02T07:00Z",
            ],
        ),
    ];
    for (expr, tz, yaml, from, want) in cases {
        let s = schedule(expr, *tz, HOUR);
        let f = freezes(yaml, *tz);
        let w = EnvWindows::frozen(&s, &f);
        let from = t(from);
        let opens = want.iter().filter(|s| !s.contains("frozen")).count();
        let mut open = 0;
        let got: Vec<_> = w
            .slots(from)
            .take_while(|s| {
                let more = open < opens;
                open += usize::from(matches!(s, Slot::Open(_)));
                more
            })
            .collect();
        assert_eq!(show(got), *want, "{expr} in {tz} with {yaml} from {from}");
        let first_open = want.iter().find(|s| !s.contains("frozen")).unwrap();
        assert_eq!(
            show(w.current_or_next(from).map(Slot::Open)),
            [*first_open],
            "{yaml}"
        );
    }
}

/// Decisions inside, around and after freezes: the window open now, the
/// freeze and its reason, the next window that really opens.
#[test]
fn current_and_passed_windows_skip_frozen_parts() {
    let s = schedule("30 2 * * *", chrono_tz::Europe::Prague, HOUR);
    let f = freezes(
        "[{from: \"2026-10-25T02:45:00+02:00\", to: \"2026-10-25T02:15:00+01:00\", reason: deploy}, {from: 2026-10-27, to: 2026-10-27, reason: day}]",
        chrono_tz::Europe::Prague,
    );
    let w = EnvWindows::frozen(&s, &f);
    // (now, current window, freeze reason)
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        (
            "2026-10-25T00:30:00Z",
            Some("2026-10-25T00:30:00Z..10-25T00:45Z"),
            None,
        ),
        (
            "2026-10-25T00:44:59Z",
            Some("2026-10-25T00:30:00Z..10-25T00:45Z"),
            None,
        ),
        ("2026-10-25T00:45:00Z", None, Some("deploy")),
        ("2026-10-25T01:14:59Z", None, Some("deploy")),
        (
            "2026-10-25T01:15:00Z",
            Some("2026-10-25T01:15:00Z..10-25T01:30Z"),
            None,
        ),
        ("2026-10-25T01:30:00Z", None, None),
        ("2026-10-27T01:30:00Z", None, Some("day")),
    ];
    for (now, current, reason) in cases {
        let now = t(now);
        assert_eq!(
            show(w.current(now).map(Slot::Open)),
            current.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{now}"
        );
        assert_eq!(
            w.freeze_at(now).map(|f| f.reason).as_deref(),
            *reason,
            "{now}"
        );
    }
    assert_eq!(
        show(
            w.passed(t("2026-10-24T00:00:00Z"), t("2026-10-29T00:00:00Z"))
                .into_iter()
                .map(Slot::Open)
        ),
        [
            "2026-10-24T00:30:00Z..10-24T01:30Z",
            "2026-10-25T00:30:00Z..10-25T00:45Z",
            "2026-10-25T01:15:00Z..10-25T01:30Z",
            "2026-10-26T01:30:00Z..10-26T02:30Z",
            "2026-10-28T01:30:00Z..10-28T02:30Z",
        ]
    );
}

/// A freeze longer than the search gives up on reports no window rather
/// than searching for ever; a shorter one is looked past.
#[test]
fn a_very_long_freeze_ends_the_search() {
    let s = schedule("0 2 * * *", chrono_tz::UTC, HOUR);
    let long = freezes(
        "[{from: 2026-01-01, to: 2027-12-31, reason: long}]",
        chrono_tz::UTC,
    );
    assert_eq!(
        EnvWindows::frozen(&s, &long).current_or_next(t("2026-01-01T00:00:00Z")),
        None
    );
    let limit = freezes(
        "[{from: 2026-01-01, to: 2027-02-04, reason: long}]",
        chrono_tz::UTC,
    );
    // 2026-01-01 02:00 + 400 days = 2027-02-05 02:00, the last one looked at.
    assert_eq!(
        EnvWindows::frozen(&s, &limit)
            .current_or_next(t("2026-01-01T00:00:00Z"))
            .map(|w| w.id()),
        Some("2027-02-05T02:00:00Z".into())
    );
    let beyond = freezes(
        "[{from: 2026-01-01, to: 2027-02-05, reason: long}]",
        chrono_tz::UTC,
    );
    assert_eq!(
        EnvWindows::frozen(&s, &beyond).current_or_next(t("2026-01-01T00:00:00Z")),
        None
    );
    // Leap days only: the one after a single frozen one is found, four
    // years later; after two frozen ones in a row the search ends.
    let leap = schedule("0 2 29 2 *", chrono_tz::UTC, HOUR);
    let one = freezes(
        "[{from: 2028-02-29, to: 2028-02-29, reason: one}]",
        chrono_tz::UTC,
    );
    assert_eq!(
        EnvWindows::frozen(&leap, &one)
            .current_or_next(t("2026-01-01T00:00:00Z"))
            .map(|w| w.id()),
        Some("2032-02-29T02:00:00Z".into())
    );
    let two = freezes(
        "[{from: 2028-02-29, to: 2032-02-29, reason: two}]",
        chrono_tz::UTC,
    );
    assert_eq!(
        EnvWindows::frozen(&leap, &two).current_or_next(t("2026-01-01T00:00:00Z")),
        None
    );
}

/// A deny window that starts as an import window ends, or ends as one
/// starts, touches it without freezing any of it: both ends are exclusive.
#[test]
fn a_deny_window_touching_a_window_freezes_none_of_it() {
    let f = freezes(
        "[{schedule: \"0 3 * * *\", window: 1h, reason: backups}]",
        chrono_tz::UTC,
    );
    let before = Window {
        start: t("2026-11-24T02:00:00Z"),
        end: t("2026-11-24T03:00:00Z"),
    };
    assert_eq!(f.split(before), [Slot::Open(before)]);
    assert!(
        f.overlapping(before.start, before.end).is_empty(),
        "a freeze starting at `to` does not overlap"
    );
    let after = Window {
        start: t("2026-11-24T04:00:00Z"),
        end: t("2026-11-24T05:00:00Z"),
    };
    assert_eq!(f.split(after), [Slot::Open(after)]);
    assert_eq!(f.at(t("2026-11-24T04:00:00Z")), None);
    assert_eq!(
        f.at(t("2026-11-24T03:00:00Z")).map(|f| f.reason),
        Some("backups".into())
    );
}
