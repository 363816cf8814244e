//! Pure decisions of the per-environment loop: given the environment, the
//! clock and what was already done, what happens now and until when.
//!
//! Nothing here talks to the cluster or sleeps; `scheduler.rs` carries the
//! decisions out. Keeping them pure lets the table tests below pin down every
//! rule of windowed mode without a cluster or a clock.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{Config, Environment, Mode, OnMissedWindow};
pub use crate::env_windows::passed_windows;
use crate::env_windows::EnvWindows;
use crate::schedule::Window;

/// How often the loop wakes up at the latest, whatever it waits for, so a
/// stepped wall clock (NTP, a suspended VM) is noticed within this time.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What an environment does now.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// `paused: true`: nothing is imported.
    Paused,
    /// Immediate mode: check sources now and every poll interval.
    Follow,
    /// A window is open: import now and every poll interval until it closes.
    InWindow(Window),
    /// Windows that ended without every tag imported, and the policy says to
    /// import them now anyway (`onMissedWindow: importNow`).
    CatchUp,
    /// Inside a freeze: nothing is imported (not even a catch-up) until
    /// `next`, the next window that really opens.
    Frozen {
        reason: String,
        /// When the freeze covering now ends.
        until: DateTime<Utc>,
        next: Option<Window>,
    },
    /// Outside any window: nothing is imported until `until`.
    Wait {
        /// The next window, if the schedule has one in the search horizon.
        next: Option<Window>,
    },
}

/// Decides what an environment does at `now`. `catch_up_pending` says that a
/// past window ended with tags not imported.
pub fn decide(env: &Environment, now: DateTime<Utc>, catch_up_pending: bool) -> Decision {
    if env.paused {
        return Decision::Paused;
    }
    match &env.mode {
        Mode::Immediate => Decision::Follow,
        Mode::Windowed {
            schedule,
            on_missed_window,
        } => {
            let windows = EnvWindows::frozen(schedule, &env.freeze);
            if let Some(w) = windows.current(now) {
                return Decision::InWindow(w);
            }
            if let Some(f) = windows.freeze_at(now) {
                return Decision::Frozen {
                    reason: f.reason,
                    until: f.end,
                    next: windows.current_or_next(now),
                };
            }
            if catch_up_pending && *on_missed_window == OnMissedWindow::ImportNow {
                return Decision::CatchUp;
            }
            Decision::Wait {
                next: windows.current_or_next(now),
            }
        }
    }
}

/// What the sender of a push of `pushed_tags` should know beyond "accepted":
/// which environments will not import it now, and when they will. An
/// environment is concerned when its tag is among the pushed tags (stg
/// follows `:stg`, prod `:prod`); the same decision as the loop's.
pub fn hook_notes(config: &Config, pushed_tags: &[String], now: DateTime<Utc>) -> Vec<String> {
    config
        .environments
        .values()
        .filter(|env| pushed_tags.contains(&env.tag))
        .filter_map(|env| match decide(env, now, false) {
            Decision::Wait { next: Some(window) } => Some(format!(
                "{} is windowed: imported when its next window opens at {}",
                env.name,
                window.start.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
            Decision::Wait { next: None } | Decision::Frozen { next: None, .. } => Some(format!(
                "{} is windowed and has no window ahead: not imported",
                env.name
            )),
            Decision::Frozen {
                reason,
                next: Some(window),
                ..
            } => Some(format!(
                "{} is frozen ({reason}): imported when its next window opens at {}",
                env.name,
                window.start.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
            Decision::Paused => Some(format!(
                "{} is paused: not imported until it is resumed",
                env.name
            )),
            Decision::Follow | Decision::InWindow(_) | Decision::CatchUp => None,
        })
        .collect()
}

/// When the loop next wakes up by itself (events, hooks and configuration
/// changes wake it earlier). `next_poll` is when sources are due to be
/// checked again (outside a window: when the streams are next listed to
/// notice imports made by others), `retry_at` when a failed tag may be
/// tried again.
pub fn wake_at(
    decision: &Decision,
    now: DateTime<Utc>,
    next_poll: DateTime<Utc>,
    retry_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let cap = crate::clock::after(now, MAX_SLEEP);
    let due = match decision {
        Decision::Paused => cap,
        Decision::Follow | Decision::CatchUp => earliest(next_poll, retry_at),
        // A poll or retry that would fall after the window's end is of no
        // use; wake at the end instead to close the window.
        Decision::InWindow(w) => earliest(next_poll, retry_at).min(w.end),
        Decision::Wait { next } | Decision::Frozen { next, .. } => {
            next.map(|w| w.start).unwrap_or(cap).min(next_poll)
        }
    };
    due.clamp(now, cap)
}

fn earliest(a: DateTime<Utc>, b: Option<DateTime<Utc>>) -> DateTime<Utc> {
    b.map_or(a, |b| a.min(b))
}

/// Whether a tag needs an import: the source resolves to another digest than
/// the newest history item.
pub fn needs_import(current: Option<&str>, source: &str) -> bool {
    current != Some(source)
}

/// Exponential backoff for a tag that failed `attempts` times in a row,
/// before jitter: `initial * 2^(attempts-1)`, at most `max`.
pub fn retry_backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    initial.saturating_mul(1 << exp).min(max)
}

/// First retry delay of a tag whose import failed transiently.
pub const RETRY_INITIAL: Duration = Duration::from_secs(5);
/// Longest wait before a tag whose failure only a person can fix is tried
/// again, unless the poll interval is longer.
pub const PERMANENT_RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// How long a tag that failed `attempts` times in a row waits, before jitter.
///
/// - Transient failures (rate limits, 5xx, unreachable registry, timeouts):
///   from [`RETRY_INITIAL`], doubling up to the poll interval.
/// - Failures only a person can fix (unknown repository or tag, access
///   denied, invalid reference): from the poll interval, doubling up to
///   [`PERMANENT_RETRY_MAX`] (or the poll interval, if longer), so a broken
///   tag is not asked for at full rate all window long; a fix is still
///   noticed within that time, and at once when the tag's source changes.
pub fn failure_backoff(attempts: u32, transient: bool, poll_interval: Duration) -> Duration {
    let poll = poll_interval.max(RETRY_INITIAL);
    if transient {
        retry_backoff(attempts, RETRY_INITIAL, poll)
    } else {
        retry_backoff(attempts, poll, poll.max(PERMANENT_RETRY_MAX))
    }
}

/// Whether a poll leaves a failing tag alone: only a failure a person must
/// fix rests until its retry time, and only while the tag still follows the
/// source that failed (`failed_source`; a corrected `from.name` is tried at
/// once). Transient failures are checked at every poll.
pub fn poll_skips_failing(
    transient: bool,
    retry_at: DateTime<Utc>,
    failed_source: &str,
    source: &str,
    now: DateTime<Utc>,
) -> bool {
    !transient && now < retry_at && failed_source == source
}

/// How often a windowed environment's streams are listed outside its
/// windows to notice images someone else imported: ten poll intervals, at
/// most [`MAX_WATCH_INTERVAL`] (never less than the poll interval). A report,
/// not an import, so it need not be prompt; at the default poll interval it
/// costs 6 requests an hour instead of 60.
pub fn watch_interval(poll_interval: Duration) -> Duration {
    poll_interval
        .saturating_mul(10)
        .min(MAX_WATCH_INTERVAL)
        .max(poll_interval)
}

/// The longest pause between two listings outside a window.
pub const MAX_WATCH_INTERVAL: Duration = Duration::from_secs(600);

/// A new newest history image of a tag that this daemon did not import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignImport {
    pub stream: String,
    /// The image now newest, `sha256:...`.
    pub image: String,
    /// The newest image the daemon saw before.
    pub previous: String,
}

/// The newest history image per stream of one environment's tag, as this
/// daemon last imported or observed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenImages(BTreeMap<String, String>);

impl SeenImages {
    /// Records `image` as the newest of `stream`, without judging it: the
    /// daemon imported it, or saw it while a window was open (or the tag is
    /// pinned, a deliberate change).
    pub fn record(&mut self, stream: &str, image: Option<&str>) {
        if let Some(image) = image.filter(|i| !i.is_empty()) {
            self.0.insert(stream.to_owned(), image.to_owned());
        }
    }

    /// Compares what a listing outside the window shows (stream, newest
    /// image) with what was seen before: each stream whose newest image
    /// changed was imported by someone else. Every change is reported once;
    /// a stream seen for the first time only sets the baseline.
    pub fn observe_outside_window<'a>(
        &mut self,
        observed: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Vec<ForeignImport> {
        let mut foreign = Vec::new();
        for (stream, image) in observed {
            let Some(image) = image.filter(|i| !i.is_empty()) else {
                continue;
            };
            match self.0.insert(stream.to_owned(), image.to_owned()) {
                Some(previous) if previous != image => foreign.push(ForeignImport {
                    stream: stream.to_owned(),
                    image: image.to_owned(),
                    previous,
                }),
                _ => {}
            }
        }
        foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::prod;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn hook_notes_say_which_environments_wait_and_until_when() {
        let stg = Environment {
            name: "stg".into(),
            namespace: "packit-stg".into(),
            tag: "stg".into(),
            mode: Mode::Immediate,
            ..prod(OnMissedWindow::Skip)
        };
        let mut paused = prod(OnMissedWindow::Skip);
        paused.name = "prod-eu".into();
        paused.paused = true;
        let config = Config {
            environments: [stg, prod(OnMissedWindow::Skip), paused]
                .into_iter()
                .map(|env| (env.name.clone(), env))
                .collect(),
            import: Default::default(),
            notifications: Default::default(),
        };
        let tags = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&["stg"], "2026-11-23T12:00:00Z", &[]),
            (
                &["prod"],
                "2026-11-23T12:00:00Z",
                &[
                    "prod is windowed: imported when its next window opens at 2026-11-24T01:00:00Z",
                    "prod-eu is paused: not imported until it is resumed",
                ],
            ),
            (
                &["stg", "prod"],
                "2026-11-24T01:30:00Z",
                &["prod-eu is paused: not imported until it is resumed"],
            ),
            (&["latest"], "2026-11-23T12:00:00Z", &[]),
        ];
        for (pushed, now, expected) in cases {
            assert_eq!(
                hook_notes(&config, &tags(pushed), t(now)),
                tags(expected),
                "{pushed:?} at {now}"
            );
        }
    }

    #[test]
    fn windowed_decisions_follow_the_window() {
        let env = prod(OnMissedWindow::Skip);
        // Tuesday 2026-11-24 02:00 Prague = 01:00Z.
        let window = Window {
            start: t("2026-11-24T01:00:00Z"),
            end: t("2026-11-24T02:00:00Z"),
        };
        let cases = [
            (
                "2026-11-24T00:59:59Z",
                Decision::Wait { next: Some(window) },
            ),
            ("2026-11-24T01:00:00Z", Decision::InWindow(window)),
            ("2026-11-24T01:59:59Z", Decision::InWindow(window)),
            (
                "2026-11-24T02:00:00Z",
                Decision::Wait {
                    next: Some(Window {
                        start: t("2026-12-01T01:00:00Z"),
                        end: t("2026-12-01T02:00:00Z"),
                    }),
                },
            ),
        ];
        for (now, want) in cases {
            assert_eq!(decide(&env, t(now), false), want, "at {now}");
        }
    }

    #[test]
    fn catch_up_only_with_import_now_and_only_outside_windows() {
        let now = t("2026-11-24T03:00:00Z");
        assert!(matches!(
            decide(&prod(OnMissedWindow::Skip), now, true),
            Decision::Wait { .. }
        ));
        assert_eq!(
            decide(&prod(OnMissedWindow::ImportNow), now, true),
            Decision::CatchUp
        );
        assert!(matches!(
            decide(&prod(OnMissedWindow::ImportNow), now, false),
            Decision::Wait { .. }
        ));
        let inside = t("2026-11-24T01:30:00Z");
        assert!(matches!(
            decide(&prod(OnMissedWindow::ImportNow), inside, true),
            Decision::InWindow(_)
        ));
    }

    /// Frozen from Monday 2026-11-23 to Tuesday 2026-11-24 (Prague days):
    /// the Tuesday window does not open, not even a catch-up happens, and
    /// the decision names the freeze and the next window that opens.
    #[test]
    fn frozen_windows_do_not_open() {
        let mut env = prod(OnMissedWindow::ImportNow);
        env.freeze = crate::freeze::Freezes::new(vec![crate::freeze::FreezeRule::Period {
            start: t("2026-11-22T23:00:00Z"),
            end: t("2026-11-24T23:00:00Z"),
            reason: "release week".into(),
        }]);
        let next = Window {
            start: t("2026-12-01T01:00:00Z"),
            end: t("2026-12-01T02:00:00Z"),
        };
        let frozen = Decision::Frozen {
            reason: "release week".into(),
            until: t("2026-11-24T23:00:00Z"),
            next: Some(next),
        };
        let cases = [
            (
                "2026-11-22T22:59:59Z",
                false,
                Decision::Wait { next: Some(next) },
            ),
            ("2026-11-22T22:59:59Z", true, Decision::CatchUp),
            ("2026-11-22T23:00:00Z", true, frozen.clone()),
            ("2026-11-24T01:30:00Z", false, frozen.clone()),
            ("2026-11-24T22:59:59Z", true, frozen.clone()),
            (
                "2026-11-24T23:00:00Z",
                false,
                Decision::Wait { next: Some(next) },
            ),
            ("2026-12-01T01:00:00Z", false, Decision::InWindow(next)),
        ];
        for (now, catch_up, want) in cases {
            assert_eq!(decide(&env, t(now), catch_up), want, "at {now}");
        }
        let config = Config {
            environments: [(env.name.clone(), env.clone())].into_iter().collect(),
            import: Default::default(),
            notifications: Default::default(),
        };
        assert_eq!(
            hook_notes(&config, &["prod".into()], t("2026-11-24T01:30:00Z")),
            ["prod is frozen (release week): imported when its next window opens at 2026-12-01T01:00:00Z"]
        );
        let now = t("2026-11-24T01:30:00Z");
        assert_eq!(
            wake_at(&frozen, now, t("2026-11-24T01:30:10Z"), None),
            t("2026-11-24T01:30:10Z"),
            "frozen: the next watch"
        );
        env.freeze = crate::freeze::Freezes::new(vec![crate::freeze::FreezeRule::Period {
            start: t("2026-11-01T00:00:00Z"),
            end: t("2028-01-01T00:00:00Z"),
            reason: "long".into(),
        }]);
        let config = Config {
            environments: [(env.name.clone(), env.clone())].into_iter().collect(),
            import: Default::default(),
            notifications: Default::default(),
        };
        assert_eq!(
            hook_notes(&config, &["prod".into()], now),
            ["prod is windowed and has no window ahead: not imported"]
        );
    }

    #[test]
    fn paused_and_immediate() {
        let mut env = prod(OnMissedWindow::Skip);
        env.paused = true;
        assert_eq!(
            decide(&env, t("2026-11-24T01:30:00Z"), false),
            Decision::Paused
        );
        env.paused = false;
        env.mode = Mode::Immediate;
        assert_eq!(
            decide(&env, t("2026-11-24T01:30:00Z"), false),
            Decision::Follow
        );
    }

    #[test]
    fn wake_times() {
        let now = t("2026-11-24T01:58:30Z");
        let w = Window {
            start: t("2026-11-24T01:00:00Z"),
            end: t("2026-11-24T02:00:00Z"),
        };
        let poll = t("2026-11-24T01:59:30Z");
        assert_eq!(wake_at(&Decision::InWindow(w), now, poll, None), poll);
        assert_eq!(
            wake_at(
                &Decision::InWindow(w),
                t("2026-11-24T01:59:30Z"),
                t("2026-11-24T02:05:00Z"),
                None
            ),
            w.end,
            "a poll after the window's end wakes at the end"
        );
        assert_eq!(
            wake_at(
                &Decision::InWindow(w),
                now,
                poll,
                Some(t("2026-11-24T01:58:40Z"))
            ),
            t("2026-11-24T01:58:40Z")
        );
        let next = Window {
            start: t("2026-12-01T01:00:00Z"),
            end: t("2026-12-01T02:00:00Z"),
        };
        assert_eq!(
            wake_at(&Decision::Wait { next: Some(next) }, now, poll, None),
            now + chrono::Duration::seconds(60),
            "long waits are cut into minutes so clock steps are noticed"
        );
        assert_eq!(
            wake_at(
                &Decision::Wait { next: Some(next) },
                now,
                t("2026-11-24T01:58:35Z"),
                Some(t("2026-11-24T01:58:31Z"))
            ),
            t("2026-11-24T01:58:35Z"),
            "outside a window: the next watch, not a retry"
        );
        let soon = Window {
            start: t("2026-11-24T01:58:40Z"),
            end: t("2026-11-24T02:58:40Z"),
        };
        assert_eq!(
            wake_at(&Decision::Wait { next: Some(soon) }, now, poll, None),
            soon.start,
            "the window's start when it comes first"
        );
        assert_eq!(
            wake_at(&Decision::Follow, now, t("2026-11-24T01:00:00Z"), None),
            now,
            "an overdue poll happens now"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let cases = [
            (0, s(5)),
            (1, s(5)),
            (2, s(10)),
            (3, s(20)),
            (4, s(40)),
            (5, s(60)),
            (40, s(60)),
        ];
        for (attempts, want) in cases {
            assert_eq!(
                retry_backoff(attempts, s(5), s(60)),
                want,
                "attempt {attempts}"
            );
        }
    }

    #[test]
    fn failures_a_person_must_fix_back_off_to_a_long_cap() {
        let s = Duration::from_secs;
        let cases = [
            // (attempts, transient, poll interval, expected)
            (1, true, s(60), s(5)),
            (3, true, s(60), s(20)),
            (10, true, s(60), s(60)),
            (10, true, s(1), s(5)),
            (1, false, s(60), s(60)),
            (2, false, s(60), s(120)),
            (4, false, s(60), s(480)),
            (5, false, s(60), s(900)),
            (40, false, s(60), s(900)),
            (1, false, s(1), s(5)),
            (9, false, s(1), s(900)),
            (1, false, s(3600), s(3600)),
            (3, false, s(3600), s(3600)),
        ];
        for (attempts, transient, poll, want) in cases {
            assert_eq!(
                failure_backoff(attempts, transient, poll),
                want,
                "attempt {attempts}, transient {transient}, poll {poll:?}"
            );
        }
    }

    #[test]
    fn polls_leave_only_resting_permanent_failures_alone() {
        let now = t("2026-11-24T01:30:00Z");
        let later = t("2026-11-24T01:40:00Z");
        let src = "quay.io/packit/w:prod";
        let cases = [
            // (transient, retry_at, failed source, source, skipped)
            (false, later, src, src, true),
            (false, now, src, src, false),
            (false, t("2026-11-24T01:00:00Z"), src, src, false),
            (false, later, src, "quay.io/packit/w:prod2", false),
            (true, later, src, src, false),
        ];
        for (transient, retry_at, failed, source, want) in cases {
            assert_eq!(
                poll_skips_failing(transient, retry_at, failed, source, now),
                want,
                "transient {transient}, retry at {retry_at}, {failed} -> {source}"
            );
        }
    }

    #[test]
    fn outside_the_window_only_images_the_daemon_did_not_see_are_foreign() {
        let mut seen = SeenImages::default();
        // The first look only sets the baseline.
        assert!(seen
            .observe_outside_window([
                ("a", Some("sha256:1")),
                ("b", Some("sha256:2")),
                ("c", None)
            ])
            .is_empty());
        // The daemon imported b's new image in a window.
        seen.record("b", Some("sha256:3"));
        seen.record("b", None);
        seen.record("b", Some(""));
        let got = seen.observe_outside_window([
            ("a", Some("sha256:9")),
            ("b", Some("sha256:3")),
            ("c", Some("sha256:5")),
            ("d", Some("")),
        ]);
        assert_eq!(
            got,
            [ForeignImport {
                stream: "a".into(),
                image: "sha256:9".into(),
                previous: "sha256:1".into()
            }]
        );
        // Reported once per new image.
        assert!(seen
            .observe_outside_window([("a", Some("sha256:9")), ("c", Some("sha256:5"))])
            .is_empty());
        // Back to an older image (A, B, A): a new newest item, reported.
        let got = seen.observe_outside_window([("a", Some("sha256:1")), ("c", None)]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].image.as_str(), got[0].previous.as_str()),
            ("sha256:1", "sha256:9")
        );
        // A tag whose history vanished keeps its baseline.
        assert!(seen
            .observe_outside_window([("c", Some("sha256:5"))])
            .is_empty());
    }

    #[test]
    fn watching_outside_windows_is_less_frequent_than_polling() {
        let s = Duration::from_secs;
        let cases = [
            (s(1), s(10)),
            (s(10), s(100)),
            (s(60), s(600)),
            (s(90), s(600)),
            (s(600), s(600)),
            (s(3600), s(3600)),
            (Duration::MAX, Duration::MAX),
        ];
        for (poll, want) in cases {
            assert_eq!(watch_interval(poll), want, "poll {poll:?}");
        }
    }

    #[test]
    fn import_needed_only_when_the_digest_moved() {
        assert!(needs_import(None, "sha256:a"));
        assert!(needs_import(Some("sha256:b"), "sha256:a"));
        assert!(!needs_import(Some("sha256:a"), "sha256:a"));
    }
}
