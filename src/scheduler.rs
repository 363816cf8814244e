//! The per-environment loop: carries out what [`crate::decide`] decides.
//!
//! - immediate: check every target tag at once and every `pollInterval`, and
//!   when a push hook names its source; import the tags whose source moved.
//! - windowed: the same, but only while a window is open. A window's
//!   progress (which tags are current) is kept in the status ConfigMap, so a
//!   restart or a failover inside the window resumes it. When the window
//!   closes, tags that were never brought up to date are reported as missed.
//!
//! No import starts after the stop token fires (shutdown or lost leadership)
//! or after the window's end; an import that already started finishes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::{after, sleep_until, SharedClock};
use crate::config::{Environment, Mode};
pub use crate::decide::RETRY_INITIAL;
use crate::decide::{
    decide, failure_backoff, needs_import, poll_skips_failing, watch_interval, Decision,
};
use crate::gate_check::RoundGates;
use crate::gates::{combine, Gate, GatedTag, Hold, Verdict};
use crate::hook_event::HookEvent;
use crate::importer::{ImportOutcome, Importer, Target, TargetSelector};
use crate::loop_steps::{self, CatchUp, Due, Failing, Pass, Resume, Work};
use crate::manual_freeze::with_manual;
use crate::report::{FreezeAnnouncer, Reporter};
use crate::rollout::check::{CheckContext, CheckJob};
use crate::rollout::record::{to_resume, RolloutRecord};
use crate::rollout::tracker::Rollouts;
use crate::schedule::Window;
use crate::trigger::Trigger;

/// What every environment loop shares.
#[derive(Clone)]
pub struct Runtime {
    pub importer: Arc<Importer>,
    pub reporter: Reporter,
    pub clock: SharedClock,
    /// Fires on shutdown or lost leadership: no new import starts after it.
    pub stop: CancellationToken,
    pub hooks: broadcast::Sender<HookEvent>,
    pub concurrency: usize,
    /// Rollout checks after imports, shared by every environment.
    pub rollouts: Rollouts,
}

/// How often a windowed environment's freezes set with `freeze` are read
/// from the status ConfigMap (besides before each window opens).
const MANUAL_FREEZE_REFRESH: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Runs one environment until `rt.stop` fires. Configuration changes arrive
/// on `env_rx` and take effect at once.
pub async fn run_environment(mut env_rx: watch::Receiver<Arc<Environment>>, rt: Runtime) {
    let mut hooks = rt.hooks.subscribe();
    let mut configured = env_rx.borrow_and_update().clone();
    let mut env = configured.clone();
    let mut pass = Pass::default();
    let mut catch_up = CatchUp::Nothing;
    let mut next_poll = rt.clock.now();
    let mut next_watch = rt.clock.now();
    let mut last_decision: Option<Decision> = None;
    let mut freezes_read: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut freezes_read_for: Option<Window> = None;
    let mut manual = Vec::new();
    let mut freeze_announcer = FreezeAnnouncer::default();

    resume(&env, &rt, &mut pass, &mut catch_up).await;
    resume_rollouts(&env, &rt).await;

    loop {
        if rt.stop.is_cancelled() {
            break;
        }
        let now = rt.clock.now();
        // Freezes set with the `freeze` command: read again every
        // MANUAL_FREEZE_REFRESH, and before a window opens, so one set just
        // before a window still holds.
        if matches!(configured.mode, Mode::Windowed { .. }) {
            let opening = match decide(&configured, now, false) {
                Decision::InWindow(w) => Some(w),
                _ => None,
            };
            let stale = freezes_read.is_none_or(|at| now - at >= MANUAL_FREEZE_REFRESH);
            if stale || (opening.is_some() && opening != freezes_read_for) {
                manual = rt.reporter.manual_freezes(&configured.name).await;
                env = with_manual(&configured, &manual);
                freezes_read = Some(now);
                freezes_read_for = opening;
            }
        }
        let decision = decide(&env, now, catch_up.pending());
        let due = Due {
            poll: next_poll,
            watch: next_watch,
            retry: pass.next_retry(),
        };
        let step = loop_steps::step(&decision, now, pass.window, &due);

        if step.close {
            close_window(&env, &rt, &mut pass, &mut catch_up).await;
        }
        if last_decision.as_ref() != Some(&decision) {
            rt.reporter.decision(&env, &decision, now);
            last_decision = Some(decision.clone());
        }

        match &step.work {
            Work::Idle => {}
            Work::Watch => {
                watch_outside_window(&env, &rt, &mut pass).await;
                // From the listing's end: a slow listing never runs back to back.
                next_watch = after(rt.clock.now(), watch_interval(env.poll_interval));
            }
            Work::Open(w) => {
                pass.restart(Some(*w));
                rt.reporter.window_opened(&env, w, false).await;
                round(&env, &rt, &mut pass, Trigger::WindowOpened, None).await;
            }
            Work::Round(Trigger::CatchUp) => {
                let only = catch_up.only().cloned();
                round(&env, &rt, &mut pass, Trigger::CatchUp, only.as_ref()).await;
                if catch_up.settle_round(&pass) {
                    info!(env = %env.name, decision = "catch-up complete", "every tag of the missed window is now imported");
                    pass.restart(None);
                }
            }
            Work::Round(trigger) => round(&env, &rt, &mut pass, *trigger, None).await,
        }
        if step.work.restarts_poll() {
            next_poll = after(now, env.poll_interval);
        }

        let now = rt.clock.now();
        // After the work: telling a freeze (a state write) never delays a
        // window that opens as the freeze ends.
        freeze_announcer
            .observe(&rt.reporter, &configured, &manual, &env, now)
            .await;
        let decision = decide(&env, now, catch_up.pending());
        rt.reporter.next_window(&env, &decision, now);
        let due = Due {
            poll: next_poll,
            watch: next_watch,
            retry: pass.next_retry(),
        };
        let wake = loop_steps::wake(&decision, now, pass.window, &due);
        tokio::select! {
            _ = rt.stop.cancelled() => break,
            _ = sleep_until(rt.clock.as_ref(), wake) => {}
            changed = env_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = env_rx.borrow_and_update().clone();
                info!(env = %new.name, decision = "configuration applied", mode = new.mode.name(), paused = new.paused, "environment configuration changed");
                configured = new;
                env = configured.clone();
                freezes_read = None;
                next_poll = rt.clock.now();
                next_watch = rt.clock.now();
                pass.held_reported.clear();
                pass.scheduled_reported.clear();
            }
            hook = hooks.recv() => match hook {
                Ok(event) => on_hook(&env, &rt, &mut pass, &event).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(env = %env.name, skipped = n, "push hook events arrived faster than they were handled; checking every tag");
                    next_poll = rt.clock.now();
                }
                Err(broadcast::error::RecvError::Closed) => {}
            },
        }
    }
    debug!(env = %env.name, "environment loop stopped");
}

/// Picks up where the last run (this process before a restart, or another
/// replica before a failover) left off (see [`loop_steps::resume`]).
async fn resume(env: &Environment, rt: &Runtime, pass: &mut Pass, catch_up: &mut CatchUp) {
    if !matches!(env.mode, Mode::Windowed { .. }) {
        return;
    }
    let Some(saved) = rt.reporter.load(&env.name).await else {
        return;
    };
    match loop_steps::resume(env, &saved, rt.clock.now()) {
        Resume::Fresh => {}
        Resume::Continue {
            window,
            known,
            done,
        } => {
            pass.restart(Some(window));
            pass.done = done;
            pass.known = known;
            rt.reporter.window_opened(env, &window, true).await;
        }
        Resume::Missed {
            windows,
            tags,
            catch_up: import_now,
        } => {
            for w in &windows {
                rt.reporter
                    .missed(
                        env,
                        w,
                        &tags,
                        loop_steps::NO_SCHEDULER_RUNNING,
                        rt.clock.now(),
                    )
                    .await;
            }
            if import_now {
                catch_up.add(tags.into_iter().map(|t| t.stream));
            }
        }
    }
}

/// The check of `record` for `stream`'s tag in `env`.
fn check_job(
    env: &Environment,
    stream: &str,
    uid: Option<String>,
    record: RolloutRecord,
) -> CheckJob {
    CheckJob {
        env: env.name.clone(),
        namespace: env.namespace.clone(),
        stream: stream.to_owned(),
        tag: env.tag.clone(),
        stream_uid: uid,
        policy: env.rollout,
        record,
    }
}

fn check_context(rt: &Runtime) -> CheckContext {
    CheckContext::new(rt.importer.clone(), rt.reporter.clone(), rt.clock.clone())
}

/// After an import brought `to` to `t`: follows the rollout it causes, as
/// its own task (the round and the window go on).
fn start_rollout_check(env: &Environment, rt: &Runtime, t: &Target, from: Option<&str>, to: &str) {
    let record = RolloutRecord::checking(to, from, rt.clock.now());
    let job = check_job(env, &t.stream, Some(t.uid.clone()), record);
    rt.reporter.rollout_started(&job, false);
    rt.rollouts.start(check_context(rt), job, &rt.stop);
}

/// Resumes the rollout checks an earlier run (this process before a
/// restart, or another replica before a failover) left in progress, with
/// the time they already ran counted against `verify.timeout`.
async fn resume_rollouts(env: &Environment, rt: &Runtime) {
    let records = rt.reporter.rollouts(&env.name).await;
    let running: Vec<String> = records
        .iter()
        .filter(|(stream, _, r)| rt.rollouts.is_running(&env.name, stream, &r.digest))
        .map(|(stream, _, _)| stream.clone())
        .collect();
    let ours = records
        .iter()
        .filter(|(_, tag, _)| *tag == env.tag)
        .map(|(stream, _, r)| (stream.as_str(), r));
    for (stream, record) in to_resume(ours, &running) {
        let job = check_job(env, &stream, None, record);
        rt.reporter.rollout_started(&job, true);
        rt.rollouts.start(check_context(rt), job, &rt.stop);
    }
}

/// Reports the end of the pass's window (see [`loop_steps::close`]) and
/// starts a pass without a window.
async fn close_window(env: &Environment, rt: &Runtime, pass: &mut Pass, catch_up: &mut CatchUp) {
    let Some(closing) = loop_steps::close(env, pass) else {
        return;
    };
    let w = closing.window;
    if let Some((missed, why)) = &closing.missed {
        rt.reporter
            .missed(env, &w, missed, why, rt.clock.now())
            .await;
        if closing.catch_up {
            catch_up.add(missed.iter().map(|t| t.stream.clone()));
        }
    }
    rt.reporter
        .window_closed(env, &w, closing.done, closing.known)
        .await;
    rt.reporter
        .window_summary(
            env,
            &w,
            &pass.known,
            &pass.done,
            &pass.outcomes,
            &rt.rollouts.ended(&env.name, w.start),
        )
        .await;
    pass.restart(None);
}

/// Outside a window of a windowed environment: lists the streams (the same
/// listing a round does) and reports each tag whose newest image changed
/// since the daemon last imported or saw it: someone else imported it
/// outside the window (OpenShift's controller after a change of `from`, a
/// `scheduled: true` tag, `oc import-image`). A pinned tag is a deliberate
/// change and only updates what was seen.
async fn watch_outside_window(env: &Environment, rt: &Runtime, pass: &mut Pass) {
    if !matches!(env.mode, Mode::Windowed { .. }) {
        return;
    }
    let discovery = match rt.importer.discover(&TargetSelector::of(env)).await {
        Ok(d) => d,
        Err(e) => {
            debug!(env = %env.name, decision = "watch failed", error = %e, "cannot list the image streams outside the window; trying again later");
            return;
        }
    };
    let mut held = 0;
    for t in discovery.targets.iter().filter(|t| t.held) {
        pass.seen.record(&t.stream, t.current.as_deref());
        held += 1;
    }
    rt.reporter.held_tags(env, held);
    let watched: Vec<&Target> = discovery.targets.iter().filter(|t| !t.held).collect();
    let foreign = pass.seen.observe_outside_window(
        watched
            .iter()
            .map(|t| (t.stream.as_str(), t.current.as_deref())),
    );
    for f in foreign {
        if let Some(t) = watched.iter().find(|t| t.stream == f.stream) {
            rt.reporter.foreign_import(env, t, &f.previous).await;
        }
    }
}

async fn on_hook(env: &Environment, rt: &Runtime, pass: &mut Pass, event: &HookEvent) {
    let now = rt.clock.now();
    match decide(env, now, false) {
        Decision::Follow | Decision::InWindow(_) => {
            info!(env = %env.name, decision = "push hook", repository = %event.docker_url, tags = ?event.updated_tags, "checking the streams that follow this repository");
            let matching = |t: &Target| event.moves(&t.source);
            round_matching(env, rt, pass, Trigger::Hook, matching).await;
        }
        Decision::Wait { next } => {
            info!(
                env = %env.name,
                decision = "push outside window",
                repository = %event.docker_url,
                next_window = next.map(|w| w.id()).unwrap_or_default(),
                "push noted; it is imported when the next window opens"
            );
        }
        Decision::Frozen { reason, next, .. } => {
            info!(
                env = %env.name,
                decision = "push while frozen",
                repository = %event.docker_url,
                reason = %reason,
                next_window = next.map(|w| w.id()).unwrap_or_default(),
                "push noted; it is imported when the next window after the freeze opens"
            );
        }
        Decision::Paused | Decision::CatchUp => {}
    }
}

async fn round(
    env: &Environment,
    rt: &Runtime,
    pass: &mut Pass,
    trigger: Trigger,
    only: Option<&BTreeSet<String>>,
) {
    let now = rt.clock.now();
    let retry_only = trigger == Trigger::Retry;
    let due_retry: BTreeSet<String> = pass
        .failing
        .iter()
        .filter(|(_, f)| f.retry_at <= now)
        .map(|(s, _)| s.clone())
        .collect();
    let failing = pass.failing.clone();
    let filter = |t: &Target| {
        let selected = only.is_none_or(|o| o.contains(&t.stream));
        let resting = failing.get(&t.stream).is_some_and(|f| {
            poll_skips_failing(f.transient, f.retry_at, &f.source, &t.source, now)
        });
        selected && !resting && (!retry_only || due_retry.contains(&t.stream))
    };
    round_matching(env, rt, pass, trigger, filter).await;
}

async fn round_matching(
    env: &Environment,
    rt: &Runtime,
    pass: &mut Pass,
    trigger: Trigger,
    select: impl Fn(&Target) -> bool,
) {
    let window = pass.window;
    let discovery = match rt.importer.discover(&TargetSelector::of(env)).await {
        Ok(d) => d,
        Err(e) => {
            let message = e.to_string();
            warn!(env = %env.name, window = window.map(|w| w.id()).unwrap_or_default(), decision = "discovery failed", error = %message, "cannot list the image streams; trying again at the next poll");
            pass.discovery_error = Some(message);
            return;
        }
    };
    pass.discovery_error = None;
    for name in &discovery.missing {
        if pass.missing_reported.insert(name.clone()) {
            warn!(env = %env.name, namespace = %env.namespace, stream = %name, tag = %env.tag, decision = "stream missing", "a configured image stream does not exist or has no such tag");
        }
    }
    for (name, why) in &discovery.skipped {
        if pass.skipped_reported.insert(name.clone()) {
            info!(env = %env.name, namespace = %env.namespace, stream = %name, tag = %env.tag, decision = "tag skipped", reason = %why, "not imported by this environment");
        }
    }
    let windowed = matches!(env.mode, Mode::Windowed { .. });
    let mut held: BTreeSet<String> = discovery
        .targets
        .iter()
        .filter(|t| t.held)
        .map(|t| t.stream.clone())
        .collect();
    rt.reporter.held_tags(env, held.len());
    let mut due = Vec::new();
    for t in discovery.targets {
        if window.is_some() {
            pass.known.insert(t.stream.clone());
        }
        // Whatever is newest now arrived while imports are allowed.
        pass.seen.record(&t.stream, t.current.as_deref());
        if t.held {
            if pass.held_reported.insert(t.stream.clone()) {
                rt.reporter.held(env, window.as_ref(), &t).await;
            }
            // A deliberate hold is not a miss.
            pass.done.insert(t.stream.clone());
            if window.is_some() {
                pass.outcomes.insert(
                    t.stream.clone(),
                    crate::notify::Outcome::Held {
                        digest: t.current.clone().unwrap_or_else(|| t.source.clone()),
                    },
                );
            }
            continue;
        }
        if windowed && t.scheduled && pass.scheduled_reported.insert(t.stream.clone()) {
            rt.reporter.scheduled_defeats(env, &t).await;
        }
        if select(&t) {
            due.push(t);
        }
    }
    if due.is_empty() {
        // Nothing to check: what the gates held at the last check is over.
        rt.reporter.gated_tags(env, &pass.gated);
        return;
    }

    // Each outcome is reported as it completes, not after the whole round:
    // with hundreds of streams the first imports are long done before the
    // last one ends.
    // The report (an Event is an API call) runs inside each import's own
    // future, so it never holds up the other imports of the round.
    // Gates are checked inside a window only (configuration refuses them
    // elsewhere); alerts and approvals are read once for the whole round.
    let gates =
        window.and_then(|w| RoundGates::new(env, &rt.importer, w.id(), rt.reporter.state_store()));
    let gates = gates.as_ref();
    // What held each tag at its previous check: a tag is checked once per
    // round, so the tag's own future can tell a new hold from the same one.
    let held_before = &pass.gated;
    let mut in_flight = futures::stream::iter(due)
        .map(|t| async {
            let (r, checked) = check_and_import(env, rt, &t, window.as_ref(), gates).await;
            if let Some((outcome, took)) = &r {
                rt.reporter
                    .outcome(env, window.as_ref(), &t, outcome, *took, trigger)
                    .await;
            }
            // Reported here, not in the loop below: an Event or a write of
            // the status ConfigMap there would hold up every other import
            // of the round.
            let current = matches!(
                r,
                Some((
                    ImportOutcome::Unchanged { .. } | ImportOutcome::Held { .. },
                    _
                ))
            );
            // A pass clears a hold the status ConfigMap records, if any.
            let recorded = || async {
                held_before.contains_key(&t.stream)
                    || match gates {
                        Some(g) => g.recorded_as_gated(&t.stream).await,
                        None => false,
                    }
            };
            let gated = match (checked, window) {
                (Some(checked), Some(w)) => {
                    let previous = held_before.get(&t.stream);
                    report_gates(env, rt, &t, &w, checked, previous, recorded).await
                }
                // Current without an import (the source moved back): no
                // gate holds it any more.
                (None, Some(_)) if current && recorded().await => {
                    rt.reporter.gates_passed(env, &t).await;
                    GatesAfter::Passed
                }
                _ => GatesAfter::NotChecked,
            };
            (t, r, gated)
        })
        .buffer_unordered(rt.concurrency.max(1));
    let mut results: Vec<(Target, Option<(ImportOutcome, Duration)>)> = Vec::new();
    let mut updated = 0;
    let mut failed = 0;
    let mut skipped = 0;
    let mut gated_now = Vec::new();
    while let Some((t, r, gates_after)) = in_flight.next().await {
        let gated = matches!(gates_after, GatesAfter::Held(_));
        gated_now.push((t.stream.clone(), gates_after));
        let Some((outcome, _)) = &r else {
            if !gated {
                skipped += 1;
            }
            results.push((t, r));
            continue;
        };
        if window.is_some() {
            loop_steps::keep_outcome(
                &mut pass.outcomes,
                &t.stream,
                loop_steps::notice_outcome(outcome),
            );
        }
        match outcome {
            ImportOutcome::Updated { .. }
            | ImportOutcome::Unchanged { .. }
            | ImportOutcome::Held { .. } => {
                match outcome {
                    ImportOutcome::Updated { from, to } => {
                        updated += 1;
                        pass.seen.record(&t.stream, Some(to));
                        start_rollout_check(env, rt, &t, from.as_deref(), to);
                    }
                    ImportOutcome::Unchanged { digest } => {
                        pass.seen.record(&t.stream, Some(digest))
                    }
                    // Pinned since it was listed.
                    ImportOutcome::Held { .. } if held.insert(t.stream.clone()) => {
                        rt.reporter.held_tags(env, held.len());
                    }
                    _ => {}
                }
                pass.done.insert(t.stream.clone());
                pass.failing.remove(&t.stream);
            }
            ImportOutcome::Failed {
                reason,
                message,
                transient,
                ..
            } => {
                failed += 1;
                let attempts = pass
                    .failing
                    .get(&t.stream)
                    .filter(|f| f.source == t.source)
                    .map_or(0, |f| f.attempts)
                    + 1;
                let backoff = jitter(failure_backoff(attempts, *transient, env.poll_interval));
                let retry_at = after(rt.clock.now(), backoff);
                if !transient {
                    info!(env = %env.name, window = window.map(|w| w.id()).unwrap_or_default(), stream = %t.stream, tag = %t.tag, source = %t.source, decision = "failure needs a fix", reason = %reason, attempts, next_try = %retry_at.format("%Y-%m-%dT%H:%M:%SZ"), "the import cannot succeed until someone fixes the source or the pull secret; trying again only at the next try");
                }
                // Told once per failing streak: when its retry failed too.
                if attempts == 2 {
                    rt.reporter.import_failed(
                        env,
                        &t,
                        format!("{reason}: {message}"),
                        attempts,
                        Some(retry_at),
                    );
                }
                pass.failing.insert(
                    t.stream.clone(),
                    Failing {
                        attempts,
                        retry_at,
                        reason: format!("{reason}: {message}"),
                        transient: *transient,
                        source: t.source.clone(),
                    },
                );
            }
        }
        results.push((t, r));
    }
    drop(in_flight);
    for (stream, after) in gated_now {
        match after {
            GatesAfter::Held(record) => {
                pass.gated.insert(stream, record);
            }
            GatesAfter::Passed => {
                pass.gated.remove(&stream);
            }
            GatesAfter::NotChecked => {}
        }
    }
    rt.reporter.gated_tags(env, &pass.gated);
    if skipped > 0 {
        info!(env = %env.name, window = window.map(|w| w.id()).unwrap_or_default(), decision = "imports not started", skipped, reason = if rt.stop.is_cancelled() { "stopping" } else { "window closed" }, "no import starts after the window's end or once stopping");
    }
    let attempted = results.len() - skipped;
    debug!(env = %env.name, trigger = trigger.name(), attempted, updated, failed, "round finished");
    rt.reporter
        .persist(env, window.as_ref(), &pass.done, &results)
        .await;
}

/// The gates' verdicts on one tag: the digest the window would import and
/// each configured gate's verdict.
struct GateCheck {
    digest: String,
    verdicts: Vec<(Gate, Verdict)>,
}

/// Previews one tag, checks its gates (if any) and imports it when the
/// source moved and no gate holds. `None` outcome: not started (stopping,
/// the window closed before it could start, or a gate holds it).
async fn check_and_import(
    env: &Environment,
    rt: &Runtime,
    t: &Target,
    window: Option<&Window>,
    gates: Option<&RoundGates<'_>>,
) -> (Option<(ImportOutcome, Duration)>, Option<GateCheck>) {
    let may_start = || !rt.stop.is_cancelled() && window.is_none_or(|w| rt.clock.now() < w.end);
    if !may_start() {
        return (None, None);
    }
    let started = Instant::now();
    let source = match rt.importer.preview(t).await {
        Ok(digest) => digest,
        Err(e) => return (Some((ImportOutcome::failed(&e), started.elapsed())), None),
    };
    if !needs_import(t.current.as_deref(), &source) {
        return (
            Some((
                ImportOutcome::Unchanged { digest: source },
                started.elapsed(),
            )),
            None,
        );
    }
    let checked = match gates {
        Some(g) => {
            let checking = Instant::now();
            let verdicts = g.check(t, &source, rt.clock.now()).await;
            let took = checking.elapsed();
            // Reported now, before the import it may allow.
            rt.reporter
                .gates_checked(env, t, g.window_id(), &source, &verdicts, took);
            let held = verdicts.iter().any(|(_, v)| v.is_err());
            let checked = GateCheck {
                digest: source,
                verdicts,
            };
            if held {
                return (None, Some(checked));
            }
            Some(checked)
        }
        None => None,
    };
    if !may_start() {
        return (None, checked);
    }
    let outcome = rt.importer.import(t).await;
    (Some((outcome, started.elapsed())), checked)
}

/// What a tag's gate check leaves for the pass.
enum GatesAfter {
    /// No gate was checked (none configured, or the tag was not due).
    NotChecked,
    Passed,
    Held(GatedTag),
}

/// Reports one tag's gate check: a pass clears the tag's hold in the
/// status ConfigMap when `recorded` says there may be one, a hold is reported (Event, state) when it is not the
/// hold `previous` already reported. The verdicts were counted when
/// checked.
async fn report_gates<F: std::future::Future<Output = bool>>(
    env: &Environment,
    rt: &Runtime,
    t: &Target,
    window: &Window,
    checked: GateCheck,
    previous: Option<&GatedTag>,
    recorded: impl FnOnce() -> F,
) -> GatesAfter {
    let holds = combine(checked.verdicts);
    if holds.is_empty() {
        // Most passes have nothing to clear: no write, no wait for one.
        if recorded().await {
            rt.reporter.gates_passed(env, t).await;
        }
        return GatesAfter::Passed;
    }
    let gates_of = |h: &[Hold]| h.iter().map(|h| h.gate).collect::<Vec<_>>();
    let same =
        previous.filter(|p| p.digest == checked.digest && gates_of(&p.holds) == gates_of(&holds));
    let record = GatedTag {
        digest: checked.digest,
        holds,
        window: window.id(),
        since: same.map_or_else(|| rt.clock.now(), |p| p.since),
    };
    rt.reporter.gated(env, t, &record, same.is_none()).await;
    GatesAfter::Held(record)
}

/// Full jitter on the upper half: a delay in `[d/2, d]`, so retries of many
/// tags spread out but none comes much sooner than planned.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
