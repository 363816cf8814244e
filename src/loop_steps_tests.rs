//! Rules of the environment loop, without a cluster or a clock.

use super::*;
use crate::decide::decide;
use crate::test_fixtures::prod;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn stg() -> Environment {
    Environment {
        name: "stg".into(),
        mode: Mode::Immediate,
        ..prod(OnMissedWindow::Skip)
    }
}

fn window(start: &str) -> Window {
    let start = t(start);
    Window {
        start,
        end: start + chrono::Duration::hours(1),
    }
}

fn failing(reason: &str) -> Failing {
    Failing {
        attempts: 1,
        retry_at: t("2026-11-24T01:10:00Z"),
        reason: reason.into(),
        transient: true,
        source: "quay.io/packit/a:prod".into(),
    }
}

fn due(poll: &str, watch: &str, retry: Option<&str>) -> Due {
    Due {
        poll: t(poll),
        watch: t(watch),
        retry: retry.map(t),
    }
}

#[test]
fn catch_up_tracks_streams_until_current() {
    let mut c = CatchUp::Nothing;
    assert_eq!(c.only(), None);
    c.add(["a".to_string(), "b".to_string()]);
    assert_eq!(c, CatchUp::Streams(set(&["a", "b"])));
    assert_eq!(c.only(), Some(&set(&["a", "b"])));
    c.add(["c".to_string()]);
    assert_eq!(c, CatchUp::Streams(set(&["a", "b", "c"])));
    c.settle(&set(&["a", "b"]), &set(&["a", "c"]));
    assert_eq!(c, CatchUp::Streams(set(&["b"])));
    c.settle(&set(&["b"]), &set(&["a", "b"]));
    assert!(!c.pending());
    c.add(Vec::new());
    assert_eq!(c, CatchUp::All, "no stream recorded: all of them");
    assert_eq!(c.only(), None);
    c.add(["a".to_string()]);
    assert_eq!(c, CatchUp::All, "all stays all");
    c.settle(&set(&[]), &set(&[]));
    assert_eq!(c, CatchUp::All, "nothing checked yet: still pending");
    c.settle(&set(&["a", "b"]), &set(&["a"]));
    assert_eq!(c, CatchUp::All);
    c.settle(&set(&["a", "b"]), &set(&["a", "b"]));
    assert!(!c.pending());
    c.settle(&set(&["a"]), &set(&["a"]));
    assert_eq!(c, CatchUp::Nothing, "nothing stays nothing");
}

#[test]
fn a_catch_up_round_completes_when_every_checked_tag_is_current() {
    let mut pass = Pass {
        done: set(&["a"]),
        ..Pass::default()
    };
    pass.failing
        .insert("b".into(), failing("TooManyRequests: slow down"));
    let mut all = CatchUp::All;
    assert!(!all.settle_round(&pass), "b failed: not complete");
    assert_eq!(all, CatchUp::All);
    pass.failing.clear();
    pass.done = set(&["a", "b"]);
    assert!(all.settle_round(&pass), "every checked tag is current");

    let mut some = CatchUp::Streams(set(&["a", "c"]));
    pass.done = set(&["a"]);
    assert!(!some.settle_round(&pass));
    assert_eq!(some, CatchUp::Streams(set(&["c"])));
    pass.done = set(&["c"]);
    assert!(some.settle_round(&pass));
}

#[test]
fn a_restarted_pass_keeps_only_what_was_seen() {
    let mut pass = Pass::for_window(Some(window("2026-11-24T01:00:00Z")));
    pass.known = set(&["a"]);
    pass.done = set(&["a"]);
    pass.failing.insert("a".into(), failing("x"));
    pass.held_reported = set(&["a"]);
    pass.discovery_error = Some("down".into());
    pass.seen.record("a", Some("sha256:1"));
    assert_eq!(pass.next_retry(), Some(t("2026-11-24T01:10:00Z")));
    let next = window("2026-12-01T01:00:00Z");
    pass.restart(Some(next));
    assert_eq!(pass.window, Some(next));
    assert!(pass.known.is_empty() && pass.done.is_empty() && pass.failing.is_empty());
    assert!(pass.held_reported.is_empty() && pass.discovery_error.is_none());
    assert_eq!(pass.next_retry(), None);
    let mut seen = SeenImages::default();
    seen.record("a", Some("sha256:1"));
    assert_eq!(pass.seen, seen);
}

fn saved(
    window_id: Option<&str>,
    window_end: Option<&str>,
    known: &[&str],
    done: &[&str],
) -> Resumed {
    Resumed {
        window_id: window_id.map(String::from),
        window_end: window_end.map(t),
        known: set(known),
        done: set(done),
    }
}

#[test]
fn resuming_inside_the_same_window_continues_it() {
    let env = prod(OnMissedWindow::Skip);
    let s = saved(
        Some("2026-11-24T01:00:00Z"),
        Some("2026-11-24T02:00:00Z"),
        &["a", "b"],
        &["a"],
    );
    assert_eq!(
        resume(&env, &s, t("2026-11-24T01:30:00Z")),
        Resume::Continue {
            window: window("2026-11-24T01:00:00Z"),
            known: set(&["a", "b"]),
            done: set(&["a"]),
        }
    );
    // Another window is open now: it starts afresh. Only windows that
    // opened after the saved one ended are missed, here none.
    assert_eq!(resume(&env, &s, t("2026-12-01T01:30:00Z")), Resume::Fresh);
    let later = resume(&env, &s, t("2026-12-08T01:30:00Z"));
    let Resume::Missed { windows, .. } = later else {
        panic!("{later:?}")
    };
    assert_eq!(
        windows.iter().map(Window::id).collect::<Vec<_>>(),
        ["2026-12-01T01:00:00Z"],
        "the window open now is not missed"
    );
}

#[test]
fn windows_that_passed_while_nobody_ran_are_missed() {
    let cases = [
        // (policy, saved window end, now, missed window ids, catch up)
        (
            OnMissedWindow::Skip,
            "2026-11-10T02:00:00Z",
            "2026-11-24T03:00:00Z",
            vec!["2026-11-17T01:00:00Z", "2026-11-24T01:00:00Z"],
            false,
        ),
        (
            OnMissedWindow::ImportNow,
            "2026-11-10T02:00:00Z",
            "2026-11-24T03:00:00Z",
            vec!["2026-11-17T01:00:00Z", "2026-11-24T01:00:00Z"],
            true,
        ),
        (
            OnMissedWindow::ImportNow,
            "2026-11-10T02:00:00Z",
            "2026-11-17T01:59:59Z",
            vec![],
            false,
        ),
        (
            OnMissedWindow::ImportNow,
            "2026-11-10T02:00:00Z",
            "2026-11-17T02:00:00Z",
            vec!["2026-11-17T01:00:00Z"],
            true,
        ),
    ];
    for (policy, end, now, want, catch_up) in cases {
        let env = prod(policy);
        let s = saved(Some("2026-11-10T01:00:00Z"), Some(end), &["a", "b"], &["a"]);
        let got = resume(&env, &s, t(now));
        if want.is_empty() {
            assert_eq!(got, Resume::Fresh, "{now}");
            continue;
        }
        let tags = vec![
            TagRecord {
                stream: "a".into(),
                reason: NO_SCHEDULER_RUNNING.into(),
            },
            TagRecord {
                stream: "b".into(),
                reason: NO_SCHEDULER_RUNNING.into(),
            },
        ];
        assert_eq!(
            got,
            Resume::Missed {
                windows: want.iter().map(|id| window(id)).collect(),
                tags,
                catch_up,
            },
            "{policy:?} at {now}"
        );
    }
}

#[test]
fn nothing_recorded_means_only_windows_from_now_on() {
    let env = prod(OnMissedWindow::ImportNow);
    let s = saved(None, None, &[], &[]);
    assert_eq!(resume(&env, &s, t("2026-11-24T03:00:00Z")), Resume::Fresh);
    assert_eq!(
        resume(
            &stg(),
            &saved(Some("x"), Some("2026-11-10T02:00:00Z"), &["a"], &[]),
            t("2026-11-24T03:00:00Z")
        ),
        Resume::Fresh,
        "immediate mode has no windows to resume"
    );
    // A recorded window end with no stream known: missed, every stream caught up.
    let got = resume(
        &env,
        &saved(None, Some("2026-11-17T00:00:00Z"), &[], &[]),
        t("2026-11-24T03:00:00Z"),
    );
    assert_eq!(
        got,
        Resume::Missed {
            windows: vec![
                window("2026-11-17T01:00:00Z"),
                window("2026-11-24T01:00:00Z")
            ],
            tags: vec![],
            catch_up: true,
        }
    );
}

fn pass_in_window(known: &[&str], done: &[&str]) -> Pass {
    let mut p = Pass::for_window(Some(window("2026-11-24T01:00:00Z")));
    p.known = set(known);
    p.done = set(done);
    p
}

#[test]
fn closing_a_window_reports_the_tags_not_brought_up_to_date() {
    let env = prod(OnMissedWindow::ImportNow);
    assert_eq!(
        close(&env, &Pass::default()),
        None,
        "no window, nothing to close"
    );

    let mut p = pass_in_window(&["a", "b", "c"], &["a"]);
    p.failing
        .insert("b".into(), failing("Unauthorized: pull secret"));
    let c = close(&env, &p).expect("a window");
    assert_eq!(c.window, window("2026-11-24T01:00:00Z"));
    assert_eq!((c.done, c.known), (1, 3));
    assert_eq!(
        c.missed,
        Some((
            vec![
                TagRecord {
                    stream: "b".into(),
                    reason: "Unauthorized: pull secret".into()
                },
                TagRecord {
                    stream: "c".into(),
                    reason: NOT_IMPORTED_BEFORE_CLOSE.into()
                },
            ],
            "2 of 3 tags were not imported".into()
        ))
    );
    assert!(c.catch_up, "importNow catches the missed tags up");
    let skip = close(&prod(OnMissedWindow::Skip), &p).expect("a window");
    assert!(
        skip.missed.is_some() && !skip.catch_up,
        "skip: reported, not caught up"
    );
}

#[test]
fn a_window_with_every_tag_current_or_no_stream_is_not_missed() {
    let env = prod(OnMissedWindow::ImportNow);
    let all_done = close(&env, &pass_in_window(&["a", "b"], &["a", "b"])).expect("a window");
    assert_eq!((all_done.missed, all_done.catch_up), (None, false));
    assert_eq!((all_done.done, all_done.known), (2, 2));
    let empty = close(&env, &pass_in_window(&[], &[])).expect("a window");
    assert_eq!(
        (empty.missed, empty.catch_up),
        (None, false),
        "no stream: nothing to miss"
    );
}

#[test]
fn a_window_whose_streams_could_not_be_listed_is_missed() {
    let env = prod(OnMissedWindow::ImportNow);
    let mut p = pass_in_window(&[], &[]);
    p.discovery_error = Some("connection refused".into());
    let c = close(&env, &p).expect("a window");
    assert_eq!(
        c.missed,
        Some((
            vec![],
            "the image streams could not be listed: connection refused".into()
        ))
    );
    assert!(c.catch_up, "every stream is caught up");
    // Listed once, then the listing failed: the known tags are missed.
    let mut p = pass_in_window(&["a"], &[]);
    p.discovery_error = Some("connection refused".into());
    let c = close(&env, &p).expect("a window");
    assert_eq!(
        c.missed.map(|(tags, why)| (tags.len(), why)),
        Some((1, "1 of 1 tags were not imported".into()))
    );
    // Listed, every tag current, then the listing failed: nothing missed.
    let mut p = pass_in_window(&["a"], &["a"]);
    p.discovery_error = Some("connection refused".into());
    assert_eq!(close(&env, &p).expect("a window").missed, None);
}

const OPEN: &str = "2026-11-24T01:00:00Z";

#[test]
fn steps_of_a_window() {
    let env = prod(OnMissedWindow::Skip);
    let w = window(OPEN);
    let at = |s: &str| (t(s), decide(&env, t(s), false));
    type Case = (
        &'static str,
        DateTime<Utc>,
        Decision,
        Option<Window>,
        Due,
        Step,
    );
    let cases: Vec<Case> = vec![
        {
            let (now, d) = at("2026-11-24T00:59:00Z");
            (
                "before the window, watch due",
                now,
                d,
                None,
                due("2026-11-24T00:00:00Z", "2026-11-24T00:59:00Z", None),
                Step {
                    close: false,
                    work: Work::Watch,
                },
            )
        },
        {
            let (now, d) = at("2026-11-24T00:59:00Z");
            (
                "before the window, watch not due",
                now,
                d,
                None,
                due(
                    "2026-11-24T00:00:00Z",
                    "2026-11-24T00:59:01Z",
                    Some("2026-11-24T00:00:00Z"),
                ),
                Step {
                    close: false,
                    work: Work::Idle,
                },
            )
        },
        {
            let (now, d) = at(OPEN);
            (
                "the window opens",
                now,
                d,
                None,
                due("2026-11-24T02:00:00Z", "2026-11-24T02:00:00Z", None),
                Step {
                    close: false,
                    work: Work::Open(w),
                },
            )
        },
        {
            let (now, d) = at("2026-11-24T01:01:00Z");
            (
                "poll due",
                now,
                d,
                Some(w),
                due(
                    "2026-11-24T01:01:00Z",
                    "2026-11-24T00:00:00Z",
                    Some("2026-11-24T01:00:30Z"),
                ),
                Step {
                    close: false,
                    work: Work::Round(Trigger::Poll),
                },
            )
        },
        {
            let (now, d) = at("2026-11-24T01:01:00Z");
            (
                "retry due",
                now,
                d,
                Some(w),
                due(
                    "2026-11-24T01:01:01Z",
                    "2026-11-24T00:00:00Z",
                    Some("2026-11-24T01:01:00Z"),
                ),
                Step {
                    close: false,
                    work: Work::Round(Trigger::Retry),
                },
            )
        },
        {
            let (now, d) = at("2026-11-24T01:01:00Z");
            (
                "nothing due",
                now,
                d,
                Some(w),
                due(
                    "2026-11-24T01:01:01Z",
                    "2026-11-24T00:00:00Z",
                    Some("2026-11-24T01:01:01Z"),
                ),
                Step {
                    close: false,
                    work: Work::Idle,
                },
            )
        },
        {
            let (now, d) = at("2026-11-24T02:00:00Z");
            (
                "the window closes; watching starts",
                now,
                d,
                Some(w),
                due(
                    "2026-11-24T02:00:00Z",
                    "2026-11-24T02:00:00Z",
                    Some("2026-11-24T01:59:00Z"),
                ),
                Step {
                    close: true,
                    work: Work::Watch,
                },
            )
        },
        {
            let now = t("2026-12-01T01:00:00Z");
            (
                "a pass still in last week's window: close it, open this one",
                now,
                decide(&env, now, false),
                Some(w),
                due("2026-12-01T02:00:00Z", "2026-12-01T02:00:00Z", None),
                Step {
                    close: true,
                    work: Work::Open(window("2026-12-01T01:00:00Z")),
                },
            )
        },
    ];
    for (name, now, decision, pass_window, due, want) in cases {
        assert_eq!(step(&decision, now, pass_window, &due), want, "{name}");
    }
}

#[test]
fn steps_of_catch_up_follow_and_pause() {
    let now = t("2026-11-24T03:00:00Z");
    let w = window(OPEN);
    let not_due = due(
        "2026-11-24T03:00:01Z",
        "2026-11-24T03:00:01Z",
        Some("2026-11-24T03:00:01Z"),
    );
    let poll_due = due("2026-11-24T03:00:00Z", "2026-11-24T04:00:00Z", None);
    let retry_due = due(
        "2026-11-24T03:00:01Z",
        "2026-11-24T04:00:00Z",
        Some("2026-11-24T03:00:00Z"),
    );
    let cases = [
        (
            "catch-up at a poll",
            Decision::CatchUp,
            None,
            poll_due,
            Work::Round(Trigger::CatchUp),
            false,
        ),
        (
            "catch-up at a retry",
            Decision::CatchUp,
            None,
            retry_due,
            Work::Round(Trigger::CatchUp),
            false,
        ),
        (
            "catch-up, nothing due",
            Decision::CatchUp,
            None,
            not_due,
            Work::Idle,
            false,
        ),
        (
            "the window closed into a catch-up: its retries are gone",
            Decision::CatchUp,
            Some(w),
            retry_due,
            Work::Idle,
            true,
        ),
        (
            "the window closed into a catch-up at a poll",
            Decision::CatchUp,
            Some(w),
            poll_due,
            Work::Round(Trigger::CatchUp),
            true,
        ),
        (
            "follow at a poll",
            Decision::Follow,
            None,
            poll_due,
            Work::Round(Trigger::Poll),
            false,
        ),
        (
            "follow at a retry",
            Decision::Follow,
            None,
            retry_due,
            Work::Round(Trigger::Retry),
            false,
        ),
        (
            "follow, nothing due",
            Decision::Follow,
            None,
            not_due,
            Work::Idle,
            false,
        ),
        (
            "paused",
            Decision::Paused,
            None,
            poll_due,
            Work::Idle,
            false,
        ),
        (
            "paused inside a window",
            Decision::Paused,
            Some(w),
            poll_due,
            Work::Idle,
            true,
        ),
    ];
    for (name, decision, pass_window, due, work, close) in cases {
        assert_eq!(
            step(&decision, now, pass_window, &due),
            Step { close, work },
            "{name}"
        );
    }
}

#[test]
fn only_polls_openings_and_catch_ups_restart_the_poll_interval() {
    let w = window(OPEN);
    let cases = [
        (Work::Idle, false),
        (Work::Watch, false),
        (Work::Open(w), true),
        (Work::Round(Trigger::Poll), true),
        (Work::Round(Trigger::CatchUp), true),
        (Work::Round(Trigger::Retry), false),
        (Work::Round(Trigger::Hook), false),
        (Work::Round(Trigger::WindowOpened), false),
    ];
    for (work, restarts) in cases {
        assert_eq!(work.restarts_poll(), restarts, "{work:?}");
    }
}

#[test]
fn the_loop_wakes_at_once_when_its_window_closed_during_the_turn() {
    let env = prod(OnMissedWindow::Skip);
    let w = window(OPEN);
    let now = t("2026-11-24T02:00:00Z");
    let d = decide(&env, now, false);
    let due = due("2026-11-24T02:01:00Z", "2026-11-24T02:00:30Z", None);
    assert_eq!(wake(&d, now, Some(w), &due), now);
    assert_eq!(
        wake(&d, now, None, &due),
        t("2026-11-24T02:00:30Z"),
        "outside a window: at the next watch"
    );
    let inside = t("2026-11-24T01:30:00Z");
    let d = decide(&env, inside, false);
    let due = Due {
        poll: t("2026-11-24T01:31:00Z"),
        watch: t("2026-11-24T01:30:10Z"),
        retry: Some(t("2026-11-24T01:30:20Z")),
    };
    assert_eq!(
        wake(&d, inside, Some(w), &due),
        t("2026-11-24T01:30:20Z"),
        "inside: the retry, not the watch"
    );
    let due = Due { retry: None, ..due };
    assert_eq!(
        wake(&d, inside, Some(w), &due),
        t("2026-11-24T01:31:00Z"),
        "inside: the poll"
    );
}

#[test]
fn a_window_that_closes_gated_is_missed_with_the_gates_reason() {
    use crate::gates::{Gate, GatedTag, Hold};
    let env = prod(OnMissedWindow::Skip);
    let mut p = pass_in_window(&["a", "b", "c"], &["c"]);
    let hold = |gate, reason: &str| Hold {
        gate,
        reason: reason.into(),
    };
    p.gated.insert(
        "a".into(),
        GatedTag {
            digest: "sha256:1".into(),
            holds: vec![
                hold(Gate::Soak, "never ran in stg"),
                hold(Gate::Approval, "not approved"),
            ],
            window: window(OPEN).id(),
            since: t("2026-11-24T01:00:00Z"),
        },
    );
    // A tag that failed before the gates held it: the gates are why now.
    p.failing
        .insert("a".into(), failing("Timeout: slow registry"));
    p.failing.insert("b".into(), failing("NotFound: gone"));
    let c = close(&env, &p).expect("a window");
    let (tags, why) = c.missed.expect("missed");
    assert_eq!(why, "2 of 3 tags were not imported (1 held by gates)");
    assert_eq!(
        tags,
        vec![
            TagRecord {
                stream: "a".into(),
                reason: "held by gates until the window closed: soak: never ran in stg; approval: not approved".into()
            },
            TagRecord {
                stream: "b".into(),
                reason: "NotFound: gone".into()
            },
        ]
    );
}

#[test]
fn a_later_poll_finding_the_imported_image_leaves_the_window_s_update_told() {
    use crate::notify::Outcome;
    let mut outcomes = BTreeMap::new();
    let updated = Outcome::Updated {
        from: Some("sha256:a".into()),
        to: "sha256:b".into(),
    };
    keep_outcome(&mut outcomes, "worker", updated.clone());
    keep_outcome(
        &mut outcomes,
        "worker",
        Outcome::Unchanged {
            digest: "sha256:b".into(),
        },
    );
    assert_eq!(outcomes["worker"], updated);
    // Another image than the one imported: that is what the tag has now.
    let other = Outcome::Unchanged {
        digest: "sha256:c".into(),
    };
    keep_outcome(&mut outcomes, "worker", other.clone());
    assert_eq!(outcomes["worker"], other);
    // A later failure is told, and an unchanged tag stays unchanged.
    let failed = Outcome::Failed {
        reason: "Timeout: slow".into(),
    };
    keep_outcome(&mut outcomes, "worker", updated);
    keep_outcome(&mut outcomes, "worker", failed.clone());
    assert_eq!(outcomes["worker"], failed);
    keep_outcome(&mut outcomes, "service", other.clone());
    keep_outcome(&mut outcomes, "service", other.clone());
    assert_eq!(outcomes["service"], other);
}
