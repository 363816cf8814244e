//! Freezes set from the command line (`freeze --until`, `freeze
//! --skip-next-window`), kept in the status ConfigMap with who set them and
//! when, and added to the configuration's freezes at every decision.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::{Environment, Mode};
use crate::env_windows::EnvWindows;
use crate::freeze::{parse_bound, FreezeRule};
use crate::schedule::Window;

/// One freeze set by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualFreeze {
    /// Frozen from (inclusive).
    pub start: DateTime<Utc>,
    /// Frozen until (exclusive).
    pub end: DateTime<Utc>,
    pub reason: String,
    /// Who set it, as the API server knows the caller.
    pub by: String,
    /// When it was set.
    pub at: DateTime<Utc>,
    /// The window skipped, for `--skip-next-window` (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_window: Option<String>,
}

impl ManualFreeze {
    pub fn rule(&self) -> FreezeRule {
        FreezeRule::Period {
            start: self.start,
            end: self.end,
            reason: self.reason.clone(),
        }
    }

    /// Whether it still freezes anything at or after `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        now < self.end
    }
}

/// `env` with `manual` freezes added to its configured ones (the same
/// environment when there are none).
pub fn with_manual(env: &Arc<Environment>, manual: &[ManualFreeze]) -> Arc<Environment> {
    if manual.is_empty() {
        return env.clone();
    }
    let mut e = (**env).clone();
    e.freeze = e.freeze.with(manual.iter().map(ManualFreeze::rule));
    Arc::new(e)
}

/// The end of `--until`: an RFC 3339 instant, a local time
/// (`2026-12-01T09:00`, in `tz`), or a day (frozen through its end).
pub fn parse_until(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(s, format) {
            return tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("`{s}` does not exist in {tz} (a daylight saving gap)"));
        }
    }
    parse_bound(s, tz, true).map_err(|_| {
        format!("`{s}` is not a time; write e.g. 2026-12-01T09:00 (in {tz}), 2026-12-01T09:00:00Z or 2026-12-01")
    })
}

/// The time zone of `env`'s windows (UTC in immediate mode).
pub fn time_zone(env: &Environment) -> Tz {
    match &env.mode {
        Mode::Windowed { schedule, .. } => schedule.time_zone(),
        Mode::Immediate => chrono_tz::UTC,
    }
}

/// The window `--skip-next-window` skips: the one open at `now`, else the
/// next that would really open (configured and manual freezes counted).
pub fn next_to_skip(env: &Environment, now: DateTime<Utc>) -> Option<Window> {
    EnvWindows::of(env)?.current_or_next(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn until_reads_local_times_instants_and_days() {
        let prague = chrono_tz::Europe::Prague;
        let cases = [
            ("2026-12-01T09:00", "2026-12-01T08:00:00Z"),
            ("2026-07-01T09:00:30", "2026-07-01T07:00:30Z"),
            ("2026-12-01 09:00", "2026-12-01T08:00:00Z"),
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01", "2026-12-01T23:00:00Z"),
        ];
        for (s, want) in cases {
            assert_eq!(parse_until(s, prague), Ok(t(want)), "{s}");
        }
        assert!(parse_until("2026-03-29T02:30", prague)
            .unwrap_err()
            .contains("does not exist"));
        assert!(parse_until("tomorrow", prague)
            .unwrap_err()
            .contains("is not a time"));
    }

    #[test]
    fn the_time_zone_and_the_window_to_skip_are_the_environments() {
        use crate::config::OnMissedWindow;
        use crate::test_fixtures::{environment, prod};
        let windowed = prod(OnMissedWindow::Skip);
        assert_eq!(time_zone(&windowed), chrono_tz::Europe::Prague);
        assert_eq!(time_zone(&environment(Mode::Immediate)), chrono_tz::UTC);
        // Tuesdays 02:00-03:00 in Prague: the one open now, else the next.
        let tuesday = Window {
            start: t("2026-11-24T01:00:00Z"),
            end: t("2026-11-24T02:00:00Z"),
        };
        assert_eq!(
            next_to_skip(&windowed, t("2026-11-24T01:30:00Z")),
            Some(tuesday)
        );
        assert_eq!(
            next_to_skip(&windowed, t("2026-11-20T00:00:00Z")),
            Some(tuesday)
        );
        assert_eq!(
            next_to_skip(&environment(Mode::Immediate), t("2026-11-20T00:00:00Z")),
            None
        );
    }

    #[test]
    fn state_records_round_trip_and_expire() {
        let f = ManualFreeze {
            start: t("2026-12-01T08:00:00Z"),
            end: t("2026-12-01T09:00:00Z"),
            reason: "r".into(),
            by: "alice".into(),
            at: t("2026-12-01T08:00:00Z"),
            skipped_window: None,
        };
        let json = serde_json::to_string(&f).unwrap();
        assert!(!json.contains("skippedWindow"), "{json}");
        assert_eq!(serde_json::from_str::<ManualFreeze>(&json).unwrap(), f);
        assert!(f.active(t("2026-12-01T08:59:59Z")));
        assert!(!f.active(t("2026-12-01T09:00:00Z")));
        assert_eq!(
            f.rule(),
            FreezeRule::Period {
                start: f.start,
                end: f.end,
                reason: "r".into()
            }
        );
    }
}
