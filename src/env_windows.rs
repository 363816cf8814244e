//! Which windows an environment has: the one open at an instant, the next
//! ones, and the ones that passed between two instants.
//!
//! The loop's decision, the metrics, `status`, `check` and `next` all ask
//! these questions; they ask them here, so a window is the same window
//! everywhere (including across daylight saving changes, which
//! [`Schedule`] resolves).

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Environment, Mode};
use crate::freeze::{Freezes, Frozen, Slot, FREEZE_SEARCH_DAYS};
use crate::schedule::{Schedule, Window, Windows};

/// How many past windows are reported as missed at once, at most.
pub const MAX_MISSED_REPORTED: usize = 8;

static NO_FREEZES: Freezes = Freezes::none();

/// The windows of one windowed environment (or of a bare schedule): the
/// schedule's windows less their frozen parts.
#[derive(Clone, Copy, Debug)]
pub struct EnvWindows<'a> {
    schedule: &'a Schedule,
    freezes: &'a Freezes,
}

impl<'a> EnvWindows<'a> {
    /// The windows of `env`; `None` in immediate mode, which has none.
    pub fn of(env: &'a Environment) -> Option<EnvWindows<'a>> {
        match &env.mode {
            Mode::Windowed { schedule, .. } => Some(EnvWindows::frozen(schedule, &env.freeze)),
            Mode::Immediate => None,
        }
    }

    /// The windows `schedule` opens.
    pub fn new(schedule: &'a Schedule) -> EnvWindows<'a> {
        EnvWindows::frozen(schedule, &NO_FREEZES)
    }

    /// The windows `schedule` opens outside `freezes`.
    pub fn frozen(schedule: &'a Schedule, freezes: &'a Freezes) -> EnvWindows<'a> {
        EnvWindows { schedule, freezes }
    }

    /// The window open at `now`, if any.
    pub fn current(&self, now: DateTime<Utc>) -> Option<Window> {
        match self.slots(now).next()? {
            Slot::Open(w) if w.contains(now) => Some(w),
            _ => None,
        }
    }

    /// The freeze covering `now`, if any.
    pub fn freeze_at(&self, now: DateTime<Utc>) -> Option<Frozen> {
        self.freezes.at(now)
    }

    /// The window open at `now`, else the next one to open; `None` if the
    /// schedule opens none within its search horizon.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Option<Window> {
        self.upcoming(now).next()
    }

    /// The window open at `now` (if any) first, then every following one.
    pub fn upcoming(&self, now: DateTime<Utc>) -> impl Iterator<Item = Window> + 'a {
        self.slots(now).filter_map(|s| match s {
            Slot::Open(w) => Some(w),
            Slot::Frozen { .. } => None,
        })
    }

    /// Like [`EnvWindows::upcoming`], with the frozen parts of windows
    /// between the open ones. Ends when wholly frozen windows follow each
    /// other for more than [`FREEZE_SEARCH_DAYS`] (the window right after a
    /// single frozen one is always looked at).
    pub fn slots(&self, now: DateTime<Utc>) -> Slots<'a> {
        Slots {
            raw: Some(self.schedule.windows(now)),
            freezes: self.freezes,
            after: now,
            pending: Vec::new(),
            frozen_since: None,
        }
    }

    /// Windows that opened at or after `since` and ended by `now`: they
    /// passed while the environment was not handling them (daemon down, not
    /// leader, paused). Oldest first, at most [`MAX_MISSED_REPORTED`].
    pub fn passed(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Window> {
        self.upcoming(since)
            .filter(|w| w.start >= since)
            .take_while(|w| w.end <= now)
            .take(MAX_MISSED_REPORTED)
            .collect()
    }
}

/// Iterator returned by [`EnvWindows::slots`].
#[derive(Clone, Debug)]
pub struct Slots<'a> {
    raw: Option<Windows<'a>>,
    freezes: &'a Freezes,
    /// Parts that ended by this instant are skipped.
    after: DateTime<Utc>,
    /// Parts of the current raw window still to yield, last first.
    pending: Vec<Slot>,
    /// Start of the first of the frozen windows in a row and how many there
    /// are, if the last raw window was wholly frozen.
    frozen_since: Option<(DateTime<Utc>, u32)>,
}

impl Iterator for Slots<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        loop {
            if let Some(slot) = self.pending.pop() {
                return Some(slot);
            }
            let raw = self.raw.as_mut()?.next()?;
            if let Some((since, count)) = self.frozen_since {
                // The window right after a frozen one is always looked at,
                // however sparse the schedule.
                if count > 1 && raw.start - since > TimeDelta::days(FREEZE_SEARCH_DAYS) {
                    self.raw = None;
                    return None;
                }
            }
            let slots = self.freezes.split(raw);
            self.frozen_since = if slots.iter().any(|s| matches!(s, Slot::Open(_))) {
                None
            } else {
                let (since, count) = self.frozen_since.unwrap_or((raw.start, 0));
                Some((since, count + 1))
            };
            let after = self.after;
            self.pending = slots
                .into_iter()
                .filter(|s| s.window().end > after)
                .rev()
                .collect();
        }
    }
}

/// Windows of `schedule` that opened at or after `since` and ended by `now`
/// (see [`EnvWindows::passed`]).
pub fn passed_windows(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Window> {
    EnvWindows::new(schedule).passed(since, now)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::OnMissedWindow;
    use crate::schedule::CronExpr;
    use crate::test_fixtures::environment as env;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn schedule(expr: &str, tz: chrono_tz::Tz, window: Duration) -> Schedule {
        Schedule::new(CronExpr::parse(expr).unwrap(), tz, window).unwrap()
    }

    fn ids(ws: impl IntoIterator<Item = Window>) -> Vec<String> {
        ws.into_iter()
            .map(|w| format!("{}..{}", w.id(), w.end.format("%H:%MZ")))
            .collect()
    }

    #[test]
    fn immediate_environments_have_no_windows() {
        assert!(EnvWindows::of(&env(Mode::Immediate)).is_none());
        let windowed = env(Mode::Windowed {
            schedule: schedule("0 2 * * 2", chrono_tz::UTC, Duration::from_secs(3600)),
            on_missed_window: OnMissedWindow::Skip,
        });
        let w = EnvWindows::of(&windowed).expect("windowed");
        assert_eq!(
            ids(w.current(t("2026-11-24T02:30:00Z"))),
            ["2026-11-24T02:00:00Z..03:00Z"]
        );
    }

    /// Daily 02:30 in Prague, one hour: on 2026-03-29 02:30 does not exist
    /// (clocks jump 02:00 -> 03:00), the window opens when the gap ends; on
    /// 2026-10-25 02:30 happens twice, the window opens at the first.
    #[test]
    fn windows_across_daylight_saving_changes() {
        let s = schedule(
            "30 2 * * *",
            chrono_tz::Europe::Prague,
            Duration::from_secs(3600),
        );
        let w = EnvWindows::new(&s);
        // (now, current, current or next, the two next from now)
        let cases: &[(&str, Option<&str>, &str, [&str; 2])] = &[
            (
                "2026-03-28T01:00:00Z",
                None,
                "2026-03-28T01:30:00Z..02:30Z",
                [
                    "2026-03-28T01:30:00Z..02:30Z",
                    "2026-03-29T01:00:00Z..02:00Z",
                ],
            ),
            (
                "2026-03-29T00:59:59Z",
                None,
                "2026-03-29T01:00:00Z..02:00Z",
                [
                    "2026-03-29T01:00:00Z..02:00Z",
                    "2026-03-30T00:30:00Z..01:30Z",
                ],
            ),
            (
                "2026-03-29T01:00:00Z",
                Some("2026-03-29T01:00:00Z..02:00Z"),
                "2026-03-29T01:00:00Z..02:00Z",
                [
                    "2026-03-29T01:00:00Z..02:00Z",
                    "2026-03-30T00:30:00Z..01:30Z",
                ],
            ),
            (
                "2026-03-29T02:00:00Z",
                None,
                "2026-03-30T00:30:00Z..01:30Z",
                [
                    "2026-03-30T00:30:00Z..01:30Z",
                    "2026-03-31T00:30:00Z..01:30Z",
                ],
            ),
            (
                "2026-10-24T01:29:59Z",
                Some("2026-10-24T00:30:00Z..01:30Z"),
                "2026-10-24T00:30:00Z..01:30Z",
                [
                    "2026-10-24T00:30:00Z..01:30Z",
                    "2026-10-25T00:30:00Z..01:30Z",
                ],
            ),
            (
                "2026-10-25T01:00:00Z",
                Some("2026-10-25T00:30:00Z..01:30Z"),
                "2026-10-25T00:30:00Z..01:30Z",
                [
                    "2026-10-25T00:30:00Z..01:30Z",
                    "2026-10-26T01:30:00Z..02:30Z",
                ],
            ),
            (
                "2026-10-25T01:30:00Z",
                None,
                "2026-10-26T01:30:00Z..02:30Z",
                [
                    "2026-10-26T01:30:00Z..02:30Z",
                    "2026-10-27T01:30:00Z..02:30Z",
                ],
            ),
        ];
        for (now, current, first, next_two) in cases {
            let now = t(now);
            assert_eq!(
                ids(w.current(now)),
                current.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "current at {now}"
            );
            assert_eq!(
                ids(w.current_or_next(now)),
                [*first],
                "current or next at {now}"
            );
            assert_eq!(
                ids(w.upcoming(now).take(2)),
                *next_two,
                "upcoming from {now}"
            );
        }
    }

    #[test]
    fn windows_passed_across_daylight_saving_changes() {
        let s = schedule(
            "30 2 * * *",
            chrono_tz::Europe::Prague,
            Duration::from_secs(3600),
        );
        let w = EnvWindows::new(&s);
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "2026-03-28T00:00:00Z",
                "2026-03-30T01:30:00Z",
                &[
                    "2026-03-28T01:30:00Z..02:30Z",
                    "2026-03-29T01:00:00Z..02:00Z",
                    "2026-03-30T00:30:00Z..01:30Z",
                ],
            ),
            (
                "2026-10-24T00:00:00Z",
                "2026-10-26T02:29:59Z",
                &[
                    "2026-10-24T00:30:00Z..01:30Z",
                    "2026-10-25T00:30:00Z..01:30Z",
                ],
            ),
            // A window still open at `now` has not passed; one that opened
            // before `since` was handled by whoever ran then.
            ("2026-03-29T01:00:01Z", "2026-03-29T01:59:59Z", &[]),
            (
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z",
                &["2026-03-29T01:00:00Z..02:00Z"],
            ),
        ];
        for (since, now, want) in cases {
            assert_eq!(ids(w.passed(t(since), t(now))), *want, "{since} .. {now}");
        }
    }

    #[test]
    fn passed_windows_between_two_instants() {
        let s = schedule(
            "0 2 * * 2",
            chrono_tz::Europe::Prague,
            Duration::from_secs(3600),
        );
        let since = t("2026-11-10T00:00:00Z");
        let got = passed_windows(&s, since, t("2026-11-24T01:30:00Z"));
        let starts: Vec<_> = got.iter().map(|w| w.id()).collect();
        assert_eq!(
            starts,
            ["2026-11-10T01:00:00Z", "2026-11-17T01:00:00Z"],
            "the open window is not passed"
        );
        assert!(
            passed_windows(&s, t("2026-11-24T00:00:00Z"), t("2026-11-24T01:30:00Z")).is_empty()
        );
        let many = passed_windows(&s, t("2025-01-01T00:00:00Z"), t("2026-11-24T00:00:00Z"));
        assert_eq!(many.len(), MAX_MISSED_REPORTED);
    }
}
