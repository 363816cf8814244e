//! The text a person reads: one title line, the details, and the command to
//! run next. Used as the chat message and as the Sentry event's message.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::notice::{short_digest, Notice, Outcome};

const CLI: &str = "import-scheduler";

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%MZ").to_string()
}

fn span(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    if start.date_naive() == end.date_naive() {
        format!("{} - {}", at(start), end.format("%H:%MZ"))
    } else {
        format!("{} - {}", at(start), at(end))
    }
}

/// The one-line summary (chat preview, Sentry issue title).
pub fn title(notice: &Notice) -> String {
    match notice {
        Notice::WindowSummary(n) => {
            let failed = n
                .tags
                .iter()
                .filter(|t| {
                    matches!(
                        t.outcome,
                        Outcome::Failed { .. }
                            | Outcome::RolloutFailed { .. }
                            | Outcome::RolledBack { .. }
                    )
                })
                .count();
            let updated = n
                .tags
                .iter()
                .filter(|t| matches!(t.outcome, Outcome::Updated { .. }))
                .count();
            let mut s = format!(
                "[{}] window {} closed: {updated} updated",
                n.env,
                span(n.window_start, n.window_end)
            );
            if failed > 0 {
                let _ = write!(s, ", {failed} failed");
            }
            let _ = write!(s, " ({} tags)", n.tags.len());
            s
        }
        Notice::WindowMissed(n) => format!(
            "[{}] window {} missed",
            n.env,
            span(n.window_start, n.window_end)
        ),
        Notice::ImportFailed(n) => format!(
            "[{}] {}:{} import failed {} time{}",
            n.env,
            n.stream,
            n.tag,
            n.attempts,
            if n.attempts == 1 { "" } else { "s" }
        ),
        Notice::RolledBack(n) => format!(
            "[{}] {}:{} rolled back {} -> {}",
            n.env,
            n.stream,
            n.tag,
            short_digest(&n.from),
            short_digest(&n.to)
        ),
        Notice::RolloutFailed(n) => format!(
            "[{}] {}:{} rollout of {} failed",
            n.env,
            n.stream,
            n.tag,
            short_digest(&n.digest)
        ),
        Notice::Frozen(n) => match n.until {
            Some(until) => format!("[{}] frozen until {}", n.env, at(until)),
            None => format!("[{}] frozen", n.env),
        },
        Notice::Unfrozen(n) => format!("[{}] unfrozen", n.env),
        Notice::ConfigRejected(n) => format!(
            "configuration rejected: {} error{}",
            n.errors.len(),
            if n.errors.len() == 1 { "" } else { "s" }
        ),
    }
}

/// The whole message: title, details, what to run next.
pub fn text(notice: &Notice) -> String {
    let mut s = title(notice);
    s.push('\n');
    match notice {
        Notice::WindowSummary(n) => {
            for t in &n.tags {
                let _ = write!(s, "• {}:{} ", t.stream, t.tag);
                let _ = match &t.outcome {
                    Outcome::Updated { from: Some(from), to } => {
                        writeln!(s, "updated {} -> {}", short_digest(from), short_digest(to))
                    }
                    Outcome::Updated { from: None, to } => {
                        writeln!(s, "updated -> {} (first image)", short_digest(to))
                    }
                    Outcome::Unchanged { digest } => {
                        writeln!(s, "unchanged at {}", short_digest(digest))
                    }
                    Outcome::Held { digest } => writeln!(
                        s,
                        "held at {} (pinned; to follow the source again: `{CLI} restore --env {} --stream {}`)",
                        short_digest(digest),
                        n.env,
                        t.stream
                    ),
                    Outcome::Failed { reason } => writeln!(
                        s,
                        "FAILED: {reason} (retry: `{CLI} import --env {} --stream {}`)",
                        n.env, t.stream
                    ),
                    Outcome::RolloutFailed { digest, reason } => writeln!(
                        s,
                        "imported {} but its ROLLOUT FAILED: {reason}",
                        short_digest(digest)
                    ),
                    Outcome::RolledBack { from, to, reason } => writeln!(
                        s,
                        "ROLLED BACK {} -> {}: {reason} (pinned; after a fix: `{CLI} restore --env {} --stream {}`)",
                        short_digest(from),
                        short_digest(to),
                        n.env,
                        t.stream
                    ),
                };
            }
            if n.tags.is_empty() {
                s.push_str("no tags were managed in this window\n");
            }
        }
        Notice::WindowMissed(n) => {
            if let Some(reason) = &n.reason {
                let _ = writeln!(s, "reason: {reason}");
            }
            for t in &n.tags {
                let _ = writeln!(s, "• {}:{} not imported: {}", t.stream, t.tag, t.reason);
            }
            if let Some(next) = n.next_window {
                let _ = writeln!(s, "next window: {}", at(next));
            }
            let _ = writeln!(
                s,
                "import now: `{CLI} import --env {}`; details: `{CLI} status --env {}`",
                n.env, n.env
            );
        }
        Notice::ImportFailed(n) => {
            let _ = writeln!(s, "source: {}", n.source);
            let _ = writeln!(s, "reason: {}", n.reason);
            if let Some(next) = n.next_attempt {
                let _ = writeln!(s, "next attempt: {}", at(next));
            }
            let _ = writeln!(
                s,
                "retry now: `{CLI} import --env {} --stream {}`; details: `{CLI} status --env {}`",
                n.env, n.stream, n.env
            );
        }
        Notice::RolledBack(n) => {
            let _ = writeln!(s, "reason: {}", n.reason);
            let _ = writeln!(
                s,
                "the tag stays pinned; to follow the source again: `{CLI} restore --env {} --stream {}`",
                n.env, n.stream
            );
        }
        Notice::RolloutFailed(n) => {
            let _ = writeln!(s, "reason: {}", n.reason);
            let _ = writeln!(s, "{}", n.next);
            let _ = writeln!(s, "details: `{CLI} status --env {}`", n.env);
        }
        Notice::Frozen(n) => {
            let _ = writeln!(s, "reason: {}", n.reason);
            match &n.by {
                Some(by) => {
                    let _ = writeln!(s, "by: {by}");
                    let _ = writeln!(s, "lift it: `{CLI} unfreeze --env {}`", n.env);
                }
                // `unfreeze` lifts only freezes set with `freeze`.
                None => {
                    let _ = writeln!(
                        s,
                        "set in the configuration (`environments.{}.freeze`): it ends by itself, or remove it there",
                        n.env
                    );
                }
            }
        }
        Notice::Unfrozen(n) => {
            if let Some(by) = &n.by {
                let _ = writeln!(s, "by: {by}");
            }
            if let Some(next) = n.next_window {
                let _ = writeln!(s, "next window: {}", at(next));
            }
            let _ = writeln!(s, "details: `{CLI} status --env {}`", n.env);
        }
        Notice::ConfigRejected(n) => {
            let _ = writeln!(s, "origin: {}", n.origin);
            for e in &n.errors {
                let _ = writeln!(s, "• {e}");
            }
            let _ = writeln!(
                s,
                "the previous configuration stays in force; check a file before applying it: `{CLI} check --config FILE`"
            );
        }
    }
    s.truncate(s.trim_end().len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const OLD: &str = "sha256:233da6868f76eae8593711754387acbd4f03ed36c33265a6d8dc88ea52cc113c";
    const NEW: &str = "sha256:336531c6ed48426468d69239a0a190758777d345406955024edb32616a1ba28d";

    #[test]
    fn window_summary_lists_each_tag_with_short_digests_and_commands() {
        let notice = Notice::WindowSummary(WindowSummary {
            env: "prod".into(),
            window_start: t("2026-11-24T01:00:00Z"),
            window_end: t("2026-11-24T02:00:00Z"),
            tags: vec![
                TagOutcome {
                    stream: "packit-worker".into(),
                    tag: "prod".into(),
                    outcome: Outcome::Updated {
                        from: Some(OLD.into()),
                        to: NEW.into(),
                    },
                },
                TagOutcome {
                    stream: "packit-service".into(),
                    tag: "prod".into(),
                    outcome: Outcome::Unchanged { digest: OLD.into() },
                },
                TagOutcome {
                    stream: "packit-api".into(),
                    tag: "prod".into(),
                    outcome: Outcome::Held { digest: NEW.into() },
                },
                TagOutcome {
                    stream: "packit-dashboard".into(),
                    tag: "prod".into(),
                    outcome: Outcome::Failed {
                        reason: "registry answered NotFound".into(),
                    },
                },
            ],
        });
        assert_eq!(
            text(&notice),
            "[prod] window 2026-11-24 01:00Z - 02:00Z closed: 1 updated, 1 failed (4 tags)\n\
             • packit-worker:prod updated 233da6868f76 -> 336531c6ed48\n\
             • packit-service:prod unchanged at 233da6868f76\n\
             • packit-api:prod held at 336531c6ed48 (pinned; to follow the source again: `import-scheduler restore --env prod --stream packit-api`)\n\
             • packit-dashboard:prod FAILED: registry answered NotFound (retry: `import-scheduler import --env prod --stream packit-dashboard`)"
        );
    }

    #[test]
    fn a_window_without_failures_says_nothing_of_failures() {
        let notice = Notice::WindowSummary(WindowSummary {
            env: "prod".into(),
            window_start: t("2026-11-24T01:00:00Z"),
            window_end: t("2026-11-24T02:00:00Z"),
            tags: vec![TagOutcome {
                stream: "packit-worker".into(),
                tag: "prod".into(),
                outcome: Outcome::Unchanged { digest: NEW.into() },
            }],
        });
        let title = title(&notice);
        assert!(title.ends_with("closed: 0 updated (1 tags)"), "{title}");
    }

    #[test]
    fn every_notice_names_its_environment_and_the_command_to_run() {
        let cases = [
            (
                Notice::WindowMissed(WindowMissed {
                    env: "prod".into(),
                    window_start: t("2026-11-24T01:00:00Z"),
                    window_end: t("2026-11-25T01:00:00Z"),
                    reason: Some("no replica was running".into()),
                    tags: vec![TagFailure {
                        stream: "packit-worker".into(),
                        tag: "prod".into(),
                        reason: "timeout".into(),
                    }],
                    next_window: Some(t("2026-12-01T01:00:00Z")),
                }),
                "[prod] window 2026-11-24 01:00Z - 2026-11-25 01:00Z missed\n\
                 reason: no replica was running\n\
                 • packit-worker:prod not imported: timeout\n\
                 next window: 2026-12-01 01:00Z\n\
                 import now: `import-scheduler import --env prod`; details: `import-scheduler status --env prod`",
            ),
            (
                Notice::ImportFailed(ImportFailed {
                    env: "stg".into(),
                    stream: "packit-worker".into(),
                    tag: "stg".into(),
                    source: "quay.io/packit/worker:stg".into(),
                    reason: "Forbidden".into(),
                    attempts: 1,
                    next_attempt: None,
                }),
                "[stg] packit-worker:stg import failed 1 time\n\
                 source: quay.io/packit/worker:stg\n\
                 reason: Forbidden\n\
                 retry now: `import-scheduler import --env stg --stream packit-worker`; details: `import-scheduler status --env stg`",
            ),
            (
                Notice::RolledBack(RolledBack {
                    env: "prod".into(),
                    stream: "packit-worker".into(),
                    tag: "prod".into(),
                    from: NEW.into(),
                    to: OLD.into(),
                    reason: "rollout failed".into(),
                }),
                "[prod] packit-worker:prod rolled back 336531c6ed48 -> 233da6868f76\n\
                 reason: rollout failed\n\
                 the tag stays pinned; to follow the source again: `import-scheduler restore --env prod --stream packit-worker`",
            ),
            (
                Notice::RolloutFailed(RolloutFailed {
                    env: "stg".into(),
                    stream: "packit-worker".into(),
                    tag: "stg".into(),
                    digest: NEW.into(),
                    reason: "Deployment worker, pod worker-1, container worker: CrashLoopBackOff".into(),
                    next: "onFailedRollout is report: the tag stays on the new image".into(),
                }),
                "[stg] packit-worker:stg rollout of 336531c6ed48 failed\n\
                 reason: Deployment worker, pod worker-1, container worker: CrashLoopBackOff\n\
                 onFailedRollout is report: the tag stays on the new image\n\
                 details: `import-scheduler status --env stg`",
            ),
            (
                Notice::Frozen(Frozen {
                    env: "prod".into(),
                    by: Some("alice".into()),
                    until: Some(t("2026-12-01T09:00:00Z")),
                    reason: "release week".into(),
                }),
                "[prod] frozen until 2026-12-01 09:00Z\n\
                 reason: release week\n\
                 by: alice\n\
                 lift it: `import-scheduler unfreeze --env prod`",
            ),
            (
                Notice::Unfrozen(Unfrozen {
                    env: "prod".into(),
                    by: None,
                    next_window: None,
                }),
                "[prod] unfrozen\ndetails: `import-scheduler status --env prod`",
            ),
            (
                Notice::Frozen(Frozen {
                    env: "prod".into(),
                    by: None,
                    until: Some(t("2027-01-05T00:00:00Z")),
                    reason: "holidays".into(),
                }),
                "[prod] frozen until 2027-01-05 00:00Z\n\
                 reason: holidays\n\
                 set in the configuration (`environments.prod.freeze`): it ends by itself, or remove it there",
            ),
            (
                Notice::ConfigRejected(ConfigRejected {
                    origin: "ConfigMap packit--prod/image-import-scheduler".into(),
                    errors: vec!["environments.prod.mode: missing".into()],
                }),
                "configuration rejected: 1 error\n\
                 origin: ConfigMap packit--prod/image-import-scheduler\n\
                 • environments.prod.mode: missing\n\
                 the previous configuration stays in force; check a file before applying it: `import-scheduler check --config FILE`",
            ),
        ];
        for (notice, expected) in cases {
            assert_eq!(text(&notice), expected);
        }
    }
}
