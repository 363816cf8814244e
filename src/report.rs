//! Reporting: the one place where what the scheduler decided and what the
//! importer did becomes a log line, an Event, a metric and persisted state.
//!
//! Reporting never fails the caller: a state write or an Event that cannot be
//! sent is logged and the loop goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::config::Environment;
use crate::decide::Decision;
use crate::env_windows::EnvWindows;
use crate::events::{self, image_stream_ref, EventSink, EventType};
use crate::image_ref::short_digest;
use crate::importer::{ImportOutcome, Target};
use crate::loop_steps::{Resumed, TagRecord};
use crate::metrics::{ImportResult, Metrics};
use crate::notify::{self, Notice, Notifier, TagFailure, TagOutcome};
use crate::schedule::Window;
use crate::state::{self, EnvState, StateStore};
use crate::trigger::Trigger;

mod freeze_notices;
mod rollout;
pub use freeze_notices::FreezeAnnouncer;
#[path = "report_gates.rs"]
mod gates;

#[derive(Clone)]
pub struct Reporter {
    metrics: Arc<Metrics>,
    events: EventSink,
    /// The daemon's own cluster, for Events on its status ConfigMap (an
    /// environment on another cluster replaces `events` only).
    local_events: EventSink,
    state: Arc<StateStore>,
    /// Replaced as a whole when a configuration with other receivers is
    /// applied; every clone of the reporter sees the one in force.
    notifier: Arc<RwLock<Notifier>>,
}

/// A digest short for logs; `none` when there is none.
fn short(digest: Option<&str>) -> String {
    digest.map_or_else(|| "none".into(), short_digest)
}

/// The ImageStream of a target, for its Events.
fn stream_ref(t: &Target) -> k8s_openapi::api::core::v1::ObjectReference {
    image_stream_ref(&t.namespace, &t.stream, Some(t.uid.clone()))
}

fn window_id(w: Option<&Window>) -> String {
    w.map(Window::id).unwrap_or_default()
}

impl Reporter {
    pub fn new(metrics: Arc<Metrics>, events: EventSink, state: StateStore) -> Self {
        Self {
            metrics,
            local_events: events.clone(),
            events,
            state: Arc::new(state),
            notifier: Arc::new(RwLock::new(Notifier::disabled())),
        }
    }

    /// Puts `notifier` in force for every clone of this reporter.
    pub fn set_notifier(&self, notifier: Notifier) {
        *self.notifier.write().unwrap_or_else(|e| e.into_inner()) = notifier;
    }

    /// The notifier in force (cheap to clone).
    pub fn notifier(&self) -> Notifier {
        self.notifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues `notice` for the receivers that want it; never waits for them.
    pub fn notify(&self, notice: Notice) {
        self.notifier().send(notice);
    }

    /// The same reporter, with Events about ImageStreams going to `events`
    /// (an environment on another cluster); state and metrics stay shared.
    pub fn with_events(&self, events: EventSink) -> Self {
        Self {
            events,
            ..self.clone()
        }
    }

    /// The freezes set with the `freeze` command on `env`, read afresh so a
    /// freeze takes effect at the next decision; none if the state cannot be
    /// read (the configured freezes still hold).
    pub async fn manual_freezes(&self, env: &str) -> Vec<crate::manual_freeze::ManualFreeze> {
        match self.state.load().await {
            Ok(mut all) => all.remove(env).map(|s| s.freezes).unwrap_or_default(),
            Err(e) => {
                warn!(env, error = %e, "cannot read the status ConfigMap; freezes set with `freeze` are not seen until it can be read");
                Vec::new()
            }
        }
    }

    /// The persisted state of `env`, if any could be read.
    pub async fn load(&self, env: &str) -> Option<Resumed> {
        let all = match self.state.load().await {
            Ok(all) => all,
            Err(e) => {
                warn!(env, error = %e, "cannot read the status ConfigMap; starting without the previous run's progress");
                return None;
            }
        };
        let s = all.get(env)?;
        let mut r = Resumed {
            window_id: s.window_id.clone(),
            window_end: s.window_end,
            ..Resumed::default()
        };
        for (key, tag) in &s.tags {
            let stream = key
                .rsplit_once(':')
                .map_or(key.as_str(), |(s, _)| s)
                .to_string();
            if s.window_id.is_none() || tag.window_id == s.window_id {
                r.known.insert(stream.clone());
                if tag.imported_in_window {
                    r.done.insert(stream);
                }
            }
        }
        Some(r)
    }

    async fn update(&self, env: &str, f: impl Fn(&mut EnvState)) {
        if let Err(e) = self.state.update(env, f).await {
            warn!(env, error = %e, "cannot write the status ConfigMap; progress of this window may be repeated after a restart");
        }
    }

    /// One log line per change of decision.
    pub fn decision(&self, env: &Environment, d: &Decision, now: DateTime<Utc>) {
        self.metrics.set_paused(&env.name, env.paused);
        match d {
            Decision::Paused => {
                info!(env = %env.name, decision = "paused", "paused: nothing is imported until `paused` is false")
            }
            Decision::Follow => {
                info!(env = %env.name, decision = "follow", poll_interval = ?env.poll_interval, "immediate mode: importing as soon as a source moves")
            }
            Decision::CatchUp => {
                warn!(env = %env.name, decision = "catch-up", "importing the tags of a missed window now (onMissedWindow: importNow)")
            }
            // window_opened() says it, and whether the window resumes.
            Decision::InWindow(_) => {}
            Decision::Wait { next: Some(w) } => info!(
                env = %env.name,
                decision = "outside window",
                next_window = %w.id(),
                next_window_in = %crate::duration::format_duration((w.start - now).to_std().unwrap_or_default()),
                "nothing is imported until the next window"
            ),
            Decision::Frozen {
                reason,
                until,
                next,
            } => info!(
                env = %env.name,
                decision = "frozen",
                reason = %reason,
                frozen_until = %until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                next_window = next.map(|w| w.id()).unwrap_or_default(),
                "frozen: nothing is imported until the next window that opens"
            ),
            Decision::Wait { next: None } => {
                warn!(env = %env.name, decision = "no window", "the schedule opens no window in the search horizon")
            }
        }
    }

    pub fn next_window(&self, env: &Environment, d: &Decision, now: DateTime<Utc>) {
        let Some(windows) = EnvWindows::of(env) else {
            return;
        };
        let (open, next) = match d {
            Decision::InWindow(w) => (true, Some(*w)),
            _ => (false, windows.current_or_next(now)),
        };
        self.metrics.set_window_open(&env.name, open);
        self.metrics
            .set_next_window(&env.name, next.map(|w| (w.start, w.end)));
    }

    pub async fn window_opened(&self, env: &Environment, w: &Window, resumed: bool) {
        self.metrics.set_window_open(&env.name, true);
        if resumed {
            info!(env = %env.name, window = %w.id(), decision = "window resumed", window_end = %w.end.format("%Y-%m-%dT%H:%M:%SZ"), "continuing a window an earlier run started");
            return;
        }
        info!(env = %env.name, window = %w.id(), decision = "window opened", window_end = %w.end.format("%Y-%m-%dT%H:%M:%SZ"), "importing every tag whose source moved");
        let (id, start, end) = (w.id(), w.start, w.end);
        self.update(&env.name, |s| {
            s.begin_window(&id, start, end);
        })
        .await;
    }

    pub async fn window_closed(&self, env: &Environment, w: &Window, done: usize, total: usize) {
        self.metrics.set_window_open(&env.name, false);
        info!(env = %env.name, window = %w.id(), decision = "window closed", tags_current = done, tags = total, "no new import starts until the next window");
    }

    /// One notice, one log line and one Event (on the status ConfigMap) per
    /// closed window: each tag's last outcome in it, with the rollout
    /// verdicts reached in it (`rollouts`, by stream). A tag seen in the window without an outcome
    /// was not imported in time, unless it was brought up to date before a
    /// restart (in `done`): that run's notices told its outcome.
    pub async fn window_summary(
        &self,
        env: &Environment,
        w: &Window,
        known: &BTreeSet<String>,
        done: &BTreeSet<String>,
        outcomes: &BTreeMap<String, notify::Outcome>,
        rollouts: &BTreeMap<String, crate::rollout::tracker::Verdict>,
    ) {
        let streams: BTreeSet<&String> = known
            .iter()
            .filter(|s| !done.contains(*s))
            .chain(outcomes.keys())
            .collect();
        if streams.is_empty() {
            return;
        }
        let tags: Vec<TagOutcome> = streams
            .into_iter()
            .map(|stream| {
                let outcome =
                    outcomes
                        .get(stream)
                        .cloned()
                        .unwrap_or_else(|| notify::Outcome::Failed {
                            reason: crate::loop_steps::NOT_IMPORTED_BEFORE_CLOSE.into(),
                        });
                TagOutcome {
                    stream: stream.clone(),
                    tag: env.tag.clone(),
                    outcome: with_rollout(outcome, rollouts.get(stream)),
                }
            })
            .collect();
        let listed = tags
            .iter()
            .map(|t| format!("{}: {}", t.stream, outcome_word(&t.outcome)))
            .collect::<Vec<_>>()
            .join(", ");
        info!(env = %env.name, window = %w.id(), decision = "window summary", tags = tags.len(), outcomes = %listed, "what each tag of the window ended with");
        let (namespace, name) = self.state.object();
        self.local_events
            .publish(
                &events::config_map_ref(namespace, name, None),
                EventType::Normal,
                events::reason::WINDOW_SUMMARY,
                events::action::SCHEDULE,
                format!("environment {} window {}: {listed}", env.name, w.id()),
            )
            .await;
        self.notify(Notice::WindowSummary(notify::WindowSummary {
            env: env.name.clone(),
            window_start: w.start,
            window_end: w.end,
            tags,
        }));
    }

    /// A tag's import failed again after a retry: told once per failing
    /// streak, with when it is tried next.
    pub fn import_failed(
        &self,
        env: &Environment,
        t: &Target,
        reason: String,
        attempts: u32,
        next_attempt: Option<DateTime<Utc>>,
    ) {
        self.notify(Notice::ImportFailed(notify::ImportFailed {
            env: env.name.clone(),
            stream: t.stream.clone(),
            tag: t.tag.clone(),
            source: t.source.clone(),
            reason,
            attempts,
            next_attempt,
        }));
    }

    pub async fn outcome(
        &self,
        env: &Environment,
        window: Option<&Window>,
        t: &Target,
        outcome: &ImportOutcome,
        took: Duration,
        trigger: Trigger,
    ) {
        let now = Utc::now();
        let wid = window_id(window);
        let obj = stream_ref(t);
        let ms = took.as_millis() as u64;
        match outcome {
            ImportOutcome::Updated { from, to } => {
                self.metrics
                    .record_import(&env.name, ImportResult::Updated, took);
                self.metrics.set_last_success(&env.name, &t.stream, now);
                info!(env = %env.name, window = %wid, stream = %t.stream, tag = %t.tag, trigger = trigger.name(), outcome = "updated", from = %short(from.as_deref()), to = %short(Some(to)), duration_ms = ms, "imported a new image");
                self.events
                    .publish(
                        &obj,
                        EventType::Normal,
                        events::reason::IMPORT_SUCCEEDED,
                        events::action::IMPORT,
                        format!(
                            "{}:{} imported {} (was {}) [{}{}]",
                            t.stream,
                            t.tag,
                            to,
                            from.as_deref().unwrap_or("none"),
                            env.name,
                            if wid.is_empty() {
                                String::new()
                            } else {
                                format!(", window {wid}")
                            }
                        ),
                    )
                    .await;
            }
            ImportOutcome::Unchanged { digest } => {
                self.metrics
                    .record_import(&env.name, ImportResult::Unchanged, took);
                self.metrics.set_last_success(&env.name, &t.stream, now);
                tracing::debug!(env = %env.name, window = %wid, stream = %t.stream, tag = %t.tag, trigger = trigger.name(), outcome = "unchanged", digest = %short(Some(digest)), duration_ms = ms, "source has not moved");
            }
            ImportOutcome::Held { reference } => {
                self.metrics
                    .record_import(&env.name, ImportResult::Held, took);
                info!(env = %env.name, window = %wid, stream = %t.stream, tag = %t.tag, outcome = "held", reference = %reference, "tag is pinned to a digest; not imported");
            }
            ImportOutcome::Failed {
                reason,
                message,
                transient,
                ..
            } => {
                self.metrics
                    .record_import(&env.name, ImportResult::Failed, took);
                // A failure a person must fix is retried too, but slowly
                // (see the scheduler); the log says which kind this was.
                let next = if *transient {
                    "import failed; retrying with backoff"
                } else {
                    "import failed; needs a fix (retried slowly)"
                };
                warn!(env = %env.name, window = %wid, stream = %t.stream, tag = %t.tag, trigger = trigger.name(), outcome = "failed", reason = %reason, transient, error = %message, duration_ms = ms, "{next}");
                self.events
                    .publish(
                        &obj,
                        EventType::Warning,
                        events::reason::IMPORT_FAILED,
                        events::action::IMPORT,
                        format!(
                            "{}:{} from {}: {reason}: {message}",
                            t.stream, t.tag, t.source
                        ),
                    )
                    .await;
            }
        }
    }

    /// Persists one round's outcomes.
    pub async fn persist(
        &self,
        env: &Environment,
        window: Option<&Window>,
        done: &BTreeSet<String>,
        results: &[(Target, Option<(ImportOutcome, Duration)>)],
    ) {
        let wid = window.map(Window::id);
        let now = Utc::now();
        self.update(&env.name, |s| {
            for (t, r) in results {
                let Some((outcome, _)) = r else { continue };
                let tag = s.tag_mut(&t.stream, &t.tag);
                tag.at = now;
                tag.window_id = wid.clone();
                tag.digest_before = t.current.clone();
                match outcome {
                    ImportOutcome::Updated { from, to } => {
                        tag.last_outcome = state::outcome::UPDATED.into();
                        tag.digest_before = from.clone();
                        tag.digest_after = Some(to.clone());
                        tag.last_error = None;
                        tag.attempts = 0;
                    }
                    ImportOutcome::Unchanged { digest } => {
                        tag.last_outcome = state::outcome::UNCHANGED.into();
                        tag.digest_after = Some(digest.clone());
                        tag.last_error = None;
                        tag.attempts = 0;
                    }
                    ImportOutcome::Held { .. } => {
                        tag.last_outcome = state::outcome::HELD.into();
                    }
                    ImportOutcome::Failed {
                        reason, message, ..
                    } => {
                        tag.last_outcome = state::outcome::FAILED.into();
                        tag.last_error = Some(format!("{reason}: {message}"));
                        tag.attempts += 1;
                    }
                }
                tag.imported_in_window = done.contains(&t.stream);
            }
        })
        .await;
    }

    /// How many tags of `env` are pinned to a digest and left alone, as
    /// the last listing of its streams (and the imports since) showed.
    pub fn held_tags(&self, env: &Environment, count: usize) {
        self.metrics.set_held_tags(&env.name, count);
    }

    pub async fn held(&self, env: &Environment, window: Option<&Window>, t: &Target) {
        self.metrics
            .record_import(&env.name, ImportResult::Held, Duration::ZERO);
        info!(env = %env.name, window = %window_id(window), stream = %t.stream, tag = %t.tag, decision = "held", reference = %t.source, "tag is pinned to a digest: left alone (use `import-scheduler restore` to follow the source again)");
        self.events
            .publish(
                &stream_ref(t),
                EventType::Normal,
                events::reason::TAG_HELD,
                events::action::SCHEDULE,
                format!(
                    "{}:{} is pinned to {}; not imported",
                    t.stream, t.tag, t.source
                ),
            )
            .await;
    }

    pub async fn scheduled_defeats(&self, env: &Environment, t: &Target) {
        warn!(env = %env.name, stream = %t.stream, tag = %t.tag, decision = "scheduled import defeats window", "importPolicy.scheduled is true: OpenShift re-imports this tag every 15 minutes, outside any window; set it to false");
        self.events
            .publish(
                &stream_ref(t),
                EventType::Warning,
                events::reason::SCHEDULED_IMPORT_DEFEATS_WINDOW,
                events::action::SCHEDULE,
                format!(
                    "{}:{} has importPolicy.scheduled: true, so OpenShift imports it outside the windows of environment {}; set it to false",
                    t.stream, t.tag, env.name
                ),
            )
            .await;
    }

    /// A new newest image of `t` (now `t.current`) that the daemon did not
    /// import, seen outside the environment's windows; `previous` is the
    /// newest image the daemon had seen before.
    pub async fn foreign_import(&self, env: &Environment, t: &Target, previous: &str) {
        self.metrics.inc_foreign_import(&env.name, &t.stream);
        let image = t.current.as_deref().unwrap_or("none");
        let likely = if t.scheduled {
            "importPolicy.scheduled is true: OpenShift re-imports it every 15 minutes; set it to false"
        } else {
            "OpenShift's image controller imports a tag whose from, reference or importMode changed (a GitOps apply, oc tag), and oc import-image imports at once"
        };
        warn!(env = %env.name, namespace = %t.namespace, stream = %t.stream, tag = %t.tag, decision = "imported outside window", image = %image, previous = %previous, source = %t.source, "a new image reached the tag outside the windows and not by this daemon: {likely}");
        self.events
            .publish(
                &stream_ref(t),
                EventType::Warning,
                events::reason::IMPORTED_OUTSIDE_WINDOW,
                events::action::SCHEDULE,
                format!(
                    "{}:{} now points at {image} (was {previous}), imported outside the windows of environment {} and not by the scheduler; {likely}",
                    t.stream, t.tag, env.name
                ),
            )
            .await;
    }

    /// `now` picks the next window the notice names: the one after the
    /// missed window, or after now when windows passed unhandled.
    pub async fn missed(
        &self,
        env: &Environment,
        w: &Window,
        tags: &[TagRecord],
        why: &str,
        now: DateTime<Utc>,
    ) {
        self.metrics.inc_missed_window(&env.name);
        let names: Vec<&str> = tags.iter().map(|t| t.stream.as_str()).collect();
        warn!(env = %env.name, window = %w.id(), decision = "window missed", streams = ?names, reason = %why, "window closed with tags not imported");
        let next_window = EnvWindows::of(env)
            .and_then(|ws| ws.current_or_next(now.max(w.end)))
            .map(|n| n.start);
        self.notify(Notice::WindowMissed(notify::WindowMissed {
            env: env.name.clone(),
            window_start: w.start,
            window_end: w.end,
            reason: Some(why.to_string()),
            tags: tags
                .iter()
                .map(|t| TagFailure {
                    stream: t.stream.clone(),
                    tag: env.tag.clone(),
                    reason: t.reason.clone(),
                })
                .collect(),
            next_window,
        }));
        for t in tags {
            self.events
                .publish(
                    &image_stream_ref(&env.namespace, &t.stream, None),
                    EventType::Warning,
                    events::reason::WINDOW_MISSED,
                    events::action::SCHEDULE,
                    format!(
                        "{}:{} was not imported in window {} of {}: {}",
                        t.stream,
                        env.tag,
                        w.id(),
                        env.name,
                        t.reason
                    ),
                )
                .await;
        }
        let id = w.id();
        self.update(&env.name, |s| {
            s.last_missed_window = Some(id.clone());
        })
        .await;
    }
}

/// An import's outcome with the verdict of its rollout, when one is known
/// for the image it brought. A tag pinned back in the window is held by
/// the next listing: held at the image it was pinned back to is the
/// rollback, too.
fn with_rollout(
    outcome: notify::Outcome,
    rollout: Option<&crate::rollout::tracker::Verdict>,
) -> notify::Outcome {
    use crate::rollout::check::Ended;
    let Some(v) = rollout else {
        return outcome;
    };
    let ours = match (&outcome, &v.ended) {
        (notify::Outcome::Updated { to, .. }, _) => *to == v.digest,
        (notify::Outcome::Held { digest }, Ended::PinnedBack { to, .. }) => {
            digest == to || digest.ends_with(&format!("@{to}"))
        }
        _ => false,
    };
    if !ours {
        return outcome;
    }
    match &v.ended {
        Ended::Succeeded => outcome,
        Ended::Failed(reason) => notify::Outcome::RolloutFailed {
            digest: v.digest.clone(),
            reason: reason.clone(),
        },
        Ended::PinnedBack { to, reason } => notify::Outcome::RolledBack {
            from: v.digest.clone(),
            to: to.clone(),
            reason: reason.clone(),
        },
    }
}

/// One word (and digests) per outcome, for the summary's log line and Event.
fn outcome_word(outcome: &notify::Outcome) -> String {
    match outcome {
        notify::Outcome::Updated { from, to } => {
            format!(
                "imported {} (was {})",
                short(Some(to)),
                short(from.as_deref())
            )
        }
        notify::Outcome::Unchanged { .. } => "unchanged".into(),
        notify::Outcome::Held { digest } => format!("held at {}", short(Some(digest))),
        notify::Outcome::Failed { reason } => format!("failed ({reason})"),
        notify::Outcome::RolloutFailed { digest, .. } => {
            format!("imported {} but its rollout failed", short(Some(digest)))
        }
        notify::Outcome::RolledBack { from, to, .. } => format!(
            "rolled back from {} to {}",
            short(Some(from)),
            short(Some(to))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::check::Ended;
    use crate::rollout::tracker::Verdict;

    fn verdict(digest: &str, ended: Ended) -> Verdict {
        Verdict {
            digest: digest.into(),
            ended,
            at: DateTime::default(),
        }
    }

    #[test]
    fn rollout_verdicts_of_the_imported_image_change_the_outcome() {
        let updated = notify::Outcome::Updated {
            from: Some("sha256:1".into()),
            to: "sha256:2".into(),
        };
        let back = verdict(
            "sha256:2",
            Ended::PinnedBack {
                to: "sha256:1".into(),
                reason: "CrashLoopBackOff".into(),
            },
        );
        let rolled_back = notify::Outcome::RolledBack {
            from: "sha256:2".into(),
            to: "sha256:1".into(),
            reason: "CrashLoopBackOff".into(),
        };
        assert_eq!(with_rollout(updated.clone(), Some(&back)), rolled_back);
        // Listed again after the pin-back: held at the image pinned back to.
        for held in ["sha256:1", "quay.io/w@sha256:1"] {
            let held = notify::Outcome::Held {
                digest: held.into(),
            };
            assert_eq!(with_rollout(held, Some(&back)), rolled_back);
        }
        let other_pin = notify::Outcome::Held {
            digest: "sha256:3".into(),
        };
        assert_eq!(with_rollout(other_pin.clone(), Some(&back)), other_pin);
        let failed = verdict("sha256:2", Ended::Failed("x".into()));
        assert_eq!(
            outcome_word(&with_rollout(updated.clone(), Some(&failed))),
            "imported 2 but its rollout failed"
        );
        let held = notify::Outcome::Held {
            digest: "sha256:2".into(),
        };
        assert_eq!(with_rollout(held.clone(), Some(&failed)), held);
        // A verdict about another image, or a success, changes nothing.
        let other = verdict("sha256:9", Ended::Failed("x".into()));
        assert_eq!(with_rollout(updated.clone(), Some(&other)), updated);
        let ok = verdict("sha256:2", Ended::Succeeded);
        assert_eq!(with_rollout(updated.clone(), Some(&ok)), updated);
        assert_eq!(with_rollout(updated.clone(), None), updated);
        assert_eq!(
            outcome_word(&notify::Outcome::Held {
                digest: "sha256:1".into()
            }),
            "held at 1"
        );
        assert_eq!(outcome_word(&rolled_back), "rolled back from 2 to 1");
    }
}
