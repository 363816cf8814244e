//! Which freeze is in force on an environment at an instant, and what
//! changed since the freeze people were last told about.
//!
//! `status` shows the freeze in force; the daemon compares it with the one
//! it last announced (kept in the status ConfigMap, so a restart or a
//! failover does not announce it again) and sends one notice per change.
//! Pure: the caller reads the manual freezes and the clock, and sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Environment, Mode};
use crate::manual_freeze::ManualFreeze;
use crate::notify::{self, Notice};

/// The freeze covering an instant: the one that started first, as
/// [`crate::freeze::Freezes::at`] picks it (on a tie, the configured one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreezeInForce {
    pub reason: String,
    /// When it started.
    pub since: DateTime<Utc>,
    /// When it ends (exclusive); a freeze following right after may extend it.
    pub until: DateTime<Utc>,
    pub source: FreezeSource,
    /// Who set it, for a freeze set with `freeze` (as the API server knew
    /// the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Where a freeze comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FreezeSource {
    /// The environment's `freeze` list.
    Configuration,
    /// The `freeze` command (a record in the status ConfigMap).
    Manual,
}

impl FreezeSource {
    pub fn name(self) -> &'static str {
        match self {
            FreezeSource::Configuration => "configuration",
            FreezeSource::Manual => "manual",
        }
    }
}

/// What people should hear about a freeze.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeChange {
    /// A freeze began to apply, or replaced another (a new reason, end or
    /// author).
    Frozen(FreezeInForce),
    /// The freeze told about no longer applies and none other does.
    Unfrozen { lifted: FreezeInForce },
}

/// The freeze in force on `configured` at `now`, counting `manual` freezes
/// (set with `freeze`). `None` in immediate mode, where freezes do not apply.
pub fn in_force(
    configured: &Environment,
    manual: &[ManualFreeze],
    now: DateTime<Utc>,
) -> Option<FreezeInForce> {
    if matches!(configured.mode, Mode::Immediate) {
        return None;
    }
    let from_config = configured.freeze.at(now).map(|f| FreezeInForce {
        reason: f.reason,
        since: f.start,
        until: f.end,
        source: FreezeSource::Configuration,
        by: None,
    });
    let from_manual = manual
        .iter()
        .filter(|m| m.start <= now && now < m.end)
        .min_by_key(|m| m.start)
        .map(|m| FreezeInForce {
            reason: m.reason.clone(),
            since: m.start,
            until: m.end,
            source: FreezeSource::Manual,
            by: Some(m.by.clone()),
        });
    match (from_config, from_manual) {
        (Some(c), Some(m)) if m.since < c.since => Some(m),
        (Some(c), _) => Some(c),
        (None, m) => m,
    }
}

/// What changed between the freeze last told about (`told`) and the one in
/// force now (`current`); `None` when nothing did.
pub fn change(
    told: Option<&FreezeInForce>,
    current: Option<&FreezeInForce>,
) -> Option<FreezeChange> {
    match (told, current) {
        (told, Some(current)) if told != Some(current) => {
            Some(FreezeChange::Frozen(current.clone()))
        }
        (Some(told), None) => Some(FreezeChange::Unfrozen {
            lifted: told.clone(),
        }),
        _ => None,
    }
}

/// The notice of `change` on environment `env`; `next_window` is when the
/// next window that really opens starts (for an unfreeze).
pub fn notice(env: &str, change: &FreezeChange, next_window: Option<DateTime<Utc>>) -> Notice {
    match change {
        FreezeChange::Frozen(f) => Notice::Frozen(notify::Frozen {
            env: env.to_owned(),
            by: f.by.clone(),
            until: Some(f.until),
            reason: f.reason.clone(),
        }),
        FreezeChange::Unfrozen { .. } => Notice::Unfrozen(notify::Unfrozen {
            env: env.to_owned(),
            by: None,
            next_window,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::OnMissedWindow;
    use crate::freeze::{FreezeRule, Freezes};
    use crate::schedule::{CronExpr, Schedule};
    use crate::test_fixtures::{environment, prod};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn period(start: &str, end: &str, reason: &str) -> FreezeRule {
        FreezeRule::Period {
            start: t(start),
            end: t(end),
            reason: reason.into(),
        }
    }

    fn manual(start: &str, end: &str, reason: &str, by: &str) -> ManualFreeze {
        ManualFreeze {
            start: t(start),
            end: t(end),
            reason: reason.into(),
            by: by.into(),
            at: t(start),
            skipped_window: None,
        }
    }

    /// Prod (Prague, Tuesdays 02:00) frozen through 2026-12-01 in the
    /// configuration, and every Friday for three days by a deny window.
    fn frozen_prod() -> Environment {
        let mut env = prod(OnMissedWindow::Skip);
        let weekend = Schedule::new(
            CronExpr::parse("0 0 * * 5").unwrap(),
            chrono_tz::Europe::Prague,
            Duration::from_secs(3 * 86400),
        )
        .unwrap();
        env.freeze = Freezes::new(vec![
            period("2026-11-30T23:00:00Z", "2026-12-01T23:00:00Z", "release"),
            FreezeRule::Recurring {
                schedule: weekend,
                reason: "weekend".into(),
            },
        ]);
        env
    }

    fn config(reason: &str, since: &str, until: &str) -> FreezeInForce {
        FreezeInForce {
            reason: reason.into(),
            since: t(since),
            until: t(until),
            source: FreezeSource::Configuration,
            by: None,
        }
    }

    #[test]
    fn the_freeze_in_force_is_the_first_started_of_configured_and_manual_ones() {
        let env = frozen_prod();
        let alice = manual(
            "2026-12-01T08:00:00Z",
            "2026-12-02T08:00:00Z",
            "ops",
            "alice",
        );
        let bob = manual("2026-11-30T12:00:00Z", "2026-12-01T12:00:00Z", "db", "bob");
        let by_alice = FreezeInForce {
            reason: "ops".into(),
            since: alice.start,
            until: alice.end,
            source: FreezeSource::Manual,
            by: Some("alice".into()),
        };
        let cases: Vec<(&str, Vec<ManualFreeze>, Option<FreezeInForce>)> = vec![
            ("2026-11-30T22:59:59Z", vec![], None),
            (
                "2026-11-30T23:00:00Z",
                vec![],
                Some(config(
                    "release",
                    "2026-11-30T23:00:00Z",
                    "2026-12-01T23:00:00Z",
                )),
            ),
            // Alice's started after the configured one, which stays in force.
            (
                "2026-12-01T09:00:00Z",
                vec![alice.clone()],
                Some(config(
                    "release",
                    "2026-11-30T23:00:00Z",
                    "2026-12-01T23:00:00Z",
                )),
            ),
            // Once the configured one ended, Alice's is.
            (
                "2026-12-01T23:00:00Z",
                vec![alice.clone()],
                Some(by_alice.clone()),
            ),
            // The earlier of two manual ones, before the configured one.
            (
                "2026-12-01T08:00:00Z",
                vec![alice.clone(), bob.clone()],
                Some(FreezeInForce {
                    reason: "db".into(),
                    since: bob.start,
                    until: bob.end,
                    source: FreezeSource::Manual,
                    by: Some("bob".into()),
                }),
            ),
            // Its end is exclusive.
            ("2026-12-02T08:00:00Z", vec![alice.clone()], None),
            // The Friday deny window, midnight in Prague, across no DST change.
            (
                "2026-12-04T10:00:00Z",
                vec![],
                Some(config(
                    "weekend",
                    "2026-12-03T23:00:00Z",
                    "2026-12-06T23:00:00Z",
                )),
            ),
            // The one of late October lasts three days (72 hours) across
            // the clocks going back: until Sunday 23:00 local time.
            (
                "2026-10-25T12:00:00Z",
                vec![],
                Some(config(
                    "weekend",
                    "2026-10-22T22:00:00Z",
                    "2026-10-25T22:00:00Z",
                )),
            ),
            ("2026-10-25T22:00:00Z", vec![], None),
        ];
        for (now, manual, want) in cases {
            assert_eq!(in_force(&env, &manual, t(now)), want, "at {now}");
        }
    }

    #[test]
    fn a_manual_freeze_starting_with_a_configured_one_yields_to_it() {
        let env = frozen_prod();
        let same_start = manual(
            "2026-11-30T23:00:00Z",
            "2026-12-05T00:00:00Z",
            "ops",
            "alice",
        );
        let got = in_force(&env, &[same_start], t("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(got.source, FreezeSource::Configuration);
    }

    #[test]
    fn immediate_environments_are_never_frozen() {
        let mut env = environment(Mode::Immediate);
        env.freeze = Freezes::new(vec![period(
            "2026-11-30T00:00:00Z",
            "2026-12-02T00:00:00Z",
            "release",
        )]);
        let m = manual("2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z", "ops", "a");
        assert_eq!(in_force(&env, &[m], t("2026-12-01T00:00:00Z")), None);
    }

    #[test]
    fn one_change_per_freeze_beginning_replaced_or_lifted() {
        let release = config("release", "2026-11-30T23:00:00Z", "2026-12-01T23:00:00Z");
        let extended = FreezeInForce {
            until: t("2026-12-02T23:00:00Z"),
            ..release.clone()
        };
        let by_alice = FreezeInForce {
            source: FreezeSource::Manual,
            by: Some("alice".into()),
            ..release.clone()
        };
        let cases = [
            (None, None, None),
            (
                None,
                Some(&release),
                Some(FreezeChange::Frozen(release.clone())),
            ),
            (Some(&release), Some(&release), None),
            (
                Some(&release),
                None,
                Some(FreezeChange::Unfrozen {
                    lifted: release.clone(),
                }),
            ),
            (
                Some(&release),
                Some(&extended),
                Some(FreezeChange::Frozen(extended.clone())),
            ),
            (
                Some(&release),
                Some(&by_alice),
                Some(FreezeChange::Frozen(by_alice.clone())),
            ),
        ];
        for (told, current, want) in cases {
            assert_eq!(change(told, current), want, "{told:?} -> {current:?}");
        }
    }

    #[test]
    fn notices_say_who_froze_until_when_and_the_next_window_after() {
        let by_alice = FreezeInForce {
            source: FreezeSource::Manual,
            by: Some("alice".into()),
            ..config("ops", "2026-11-30T23:00:00Z", "2026-12-01T23:00:00Z")
        };
        assert_eq!(
            notice("prod", &FreezeChange::Frozen(by_alice.clone()), None),
            Notice::Frozen(notify::Frozen {
                env: "prod".into(),
                by: Some("alice".into()),
                until: Some(t("2026-12-01T23:00:00Z")),
                reason: "ops".into(),
            })
        );
        let next = Some(t("2026-12-08T01:00:00Z"));
        assert_eq!(
            notice("prod", &FreezeChange::Unfrozen { lifted: by_alice }, next),
            Notice::Unfrozen(notify::Unfrozen {
                env: "prod".into(),
                by: None,
                next_window: next,
            })
        );
    }

    #[test]
    fn the_record_keeps_its_json_shape() {
        let f = config("release", "2026-11-30T23:00:00Z", "2026-12-01T23:00:00Z");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "reason": "release",
                "since": "2026-11-30T23:00:00Z",
                "until": "2026-12-01T23:00:00Z",
                "source": "configuration",
            })
        );
        assert_eq!(serde_json::from_value::<FreezeInForce>(json).unwrap(), f);
        assert_eq!(FreezeSource::Manual.name(), "manual");
        assert_eq!(FreezeSource::Configuration.name(), "configuration");
    }
}
