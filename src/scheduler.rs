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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::{after, sleep_until, SharedClock};
use crate::config::{Environment, Mode, OnMissedWindow};
pub use crate::decide::RETRY_INITIAL;
use crate::decide::{
    decide, failure_backoff, needs_import, passed_windows, poll_skips_failing, wake_at,
    watch_interval, Decision, SeenImages,
};
use crate::http::HookEvent;
use crate::importer::{ImportOutcome, Importer, Target, TargetSelector};
use crate::report::{Reporter, TagRecord};
use crate::schedule::Window;

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
}

/// Why a tag is being checked: recorded in logs and Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Poll,
    WindowOpened,
    Retry,
    Hook,
    CatchUp,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Poll => "poll",
            Trigger::WindowOpened => "window-opened",
            Trigger::Retry => "retry",
            Trigger::Hook => "push-hook",
            Trigger::CatchUp => "missed-window-catch-up",
        }
    }
}

/// Tags of missed windows still to import (`onMissedWindow: importNow`).
#[derive(Debug, Default, PartialEq)]
enum CatchUp {
    #[default]
    Nothing,
    /// Which streams missed is unknown (nothing was recorded): all of them.
    All,
    Streams(BTreeSet<String>),
}

impl CatchUp {
    fn pending(&self) -> bool {
        *self != CatchUp::Nothing
    }

    fn add(&mut self, streams: impl IntoIterator<Item = String>) {
        let mut streams: BTreeSet<String> = streams.into_iter().collect();
        *self = match std::mem::take(self) {
            CatchUp::All => CatchUp::All,
            _ if streams.is_empty() => CatchUp::All,
            CatchUp::Streams(mut s) => {
                s.append(&mut streams);
                CatchUp::Streams(s)
            }
            CatchUp::Nothing => CatchUp::Streams(streams),
        };
    }

    /// Forgets the streams now current; `All` ends once every known one is.
    fn settle(&mut self, known: &BTreeSet<String>, done: &BTreeSet<String>) {
        match self {
            CatchUp::Nothing => {}
            CatchUp::All => {
                if !known.is_empty() && known.is_subset(done) {
                    *self = CatchUp::Nothing;
                }
            }
            CatchUp::Streams(s) => {
                s.retain(|x| !done.contains(x));
                if s.is_empty() {
                    *self = CatchUp::Nothing;
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Failing {
    attempts: u32,
    retry_at: DateTime<Utc>,
    reason: String,
    /// False when a person must fix it (see [`failure_backoff`]).
    transient: bool,
    /// The tag's source when it failed.
    source: String,
}

/// Progress of one window (or, in immediate mode, of the running process).
#[derive(Debug, Default)]
struct Pass {
    window: Option<Window>,
    /// Streams seen while the window was open.
    known: BTreeSet<String>,
    /// Streams whose tag was verified current or imported in this window.
    done: BTreeSet<String>,
    failing: BTreeMap<String, Failing>,
    held_reported: BTreeSet<String>,
    scheduled_reported: BTreeSet<String>,
    missing_reported: BTreeSet<String>,
    skipped_reported: BTreeSet<String>,
    discovery_error: Option<String>,
    /// Newest images the daemon imported or saw while it could import; kept
    /// across windows (see [`Pass::restart`]).
    seen: SeenImages,
}

impl Pass {
    fn for_window(window: Option<Window>) -> Pass {
        Pass {
            window,
            ..Pass::default()
        }
    }

    /// Starts over for `window` (or none), keeping what was seen of the streams.
    fn restart(&mut self, window: Option<Window>) {
        let seen = std::mem::take(&mut self.seen);
        *self = Pass {
            seen,
            ..Pass::for_window(window)
        };
    }

    fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.failing.values().map(|f| f.retry_at).min()
    }
}

/// Runs one environment until `rt.stop` fires. Configuration changes arrive
/// on `env_rx` and take effect at once.
pub async fn run_environment(mut env_rx: watch::Receiver<Arc<Environment>>, rt: Runtime) {
    let mut hooks = rt.hooks.subscribe();
    let mut env = env_rx.borrow_and_update().clone();
    let mut pass = Pass::default();
    let mut catch_up = CatchUp::Nothing;
    let mut next_poll = rt.clock.now();
    let mut next_watch = rt.clock.now();
    let mut last_decision: Option<Decision> = None;

    resume(&env, &rt, &mut pass, &mut catch_up).await;

    loop {
        if rt.stop.is_cancelled() {
            break;
        }
        let now = rt.clock.now();
        let decision = decide(&env, now, catch_up.pending());

        // A window that is no longer the open one has closed.
        if let Some(w) = pass.window {
            if decision != Decision::InWindow(w) {
                close_window(&env, &rt, &mut pass, &mut catch_up).await;
            }
        }
        if last_decision.as_ref() != Some(&decision) {
            rt.reporter.decision(&env, &decision, now);
            last_decision = Some(decision.clone());
        }

        match &decision {
            Decision::Paused => {}
            Decision::Wait { .. } => {
                if now >= next_watch {
                    watch_outside_window(&env, &rt, &mut pass).await;
                    // From the listing's end: a slow listing never runs back to back.
                    next_watch = after(rt.clock.now(), watch_interval(env.poll_interval));
                }
            }
            Decision::Follow => {
                if pass.window.is_some() {
                    pass.restart(None);
                }
                if now >= next_poll {
                    round(&env, &rt, &mut pass, Trigger::Poll, None).await;
                    next_poll = after(now, env.poll_interval);
                } else if pass.next_retry().is_some_and(|t| t <= now) {
                    round(&env, &rt, &mut pass, Trigger::Retry, None).await;
                }
            }
            Decision::InWindow(w) => {
                if pass.window != Some(*w) {
                    pass.restart(Some(*w));
                    rt.reporter.window_opened(&env, w, false).await;
                    round(&env, &rt, &mut pass, Trigger::WindowOpened, None).await;
                    next_poll = after(now, env.poll_interval);
                } else if now >= next_poll {
                    round(&env, &rt, &mut pass, Trigger::Poll, None).await;
                    next_poll = after(now, env.poll_interval);
                } else if pass.next_retry().is_some_and(|t| t <= now) {
                    round(&env, &rt, &mut pass, Trigger::Retry, None).await;
                }
            }
            Decision::CatchUp => {
                if now >= next_poll || pass.next_retry().is_some_and(|t| t <= now) {
                    let only = match &catch_up {
                        CatchUp::Streams(s) => Some(s.clone()),
                        _ => None,
                    };
                    round(&env, &rt, &mut pass, Trigger::CatchUp, only.as_ref()).await;
                    // Every stream checked in a catch-up round counts.
                    let known: BTreeSet<String> = pass
                        .done
                        .union(&pass.failing.keys().cloned().collect())
                        .cloned()
                        .collect();
                    catch_up.settle(&known, &pass.done);
                    if !catch_up.pending() {
                        info!(env = %env.name, decision = "catch-up complete", "every tag of the missed window is now imported");
                        pass.restart(None);
                    }
                    next_poll = after(now, env.poll_interval);
                }
            }
        }

        let now = rt.clock.now();
        let decision = decide(&env, now, catch_up.pending());
        rt.reporter.next_window(&env, &decision, now);
        let wake = match pass.window {
            // The window closed during the round: close it (and report what
            // it missed) now, not at the next wake-up.
            Some(w) if decision != Decision::InWindow(w) => now,
            _ => {
                let poll_at = match decision {
                    Decision::Wait { .. } => next_watch,
                    _ => next_poll,
                };
                wake_at(&decision, now, poll_at, pass.next_retry())
            }
        };
        tokio::select! {
            _ = rt.stop.cancelled() => break,
            _ = sleep_until(rt.clock.as_ref(), wake) => {}
            changed = env_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = env_rx.borrow_and_update().clone();
                info!(env = %new.name, decision = "configuration applied", mode = new.mode.name(), paused = new.paused, "environment configuration changed");
                env = new;
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
/// replica before a failover) left off.
async fn resume(env: &Environment, rt: &Runtime, pass: &mut Pass, catch_up: &mut CatchUp) {
    let Mode::Windowed {
        schedule,
        on_missed_window,
    } = &env.mode
    else {
        return;
    };
    let now = rt.clock.now();
    let Some(saved) = rt.reporter.load(&env.name).await else {
        return;
    };
    let open = schedule.window_at(now);
    if let (Some(open), Some(id)) = (open, saved.window_id.as_deref()) {
        if open.id() == id {
            pass.restart(Some(open));
            pass.done = saved.done.clone();
            pass.known = saved.known.clone();
            rt.reporter.window_opened(env, &open, true).await;
            return;
        }
    }
    // Windows that ended while nobody handled them.
    let since = saved.window_end.unwrap_or(now);
    let passed = passed_windows(schedule, since, now);
    for w in &passed {
        let tags: Vec<TagRecord> = saved
            .known
            .iter()
            .map(|s| TagRecord {
                stream: s.clone(),
                reason: "no scheduler was running during the window".into(),
            })
            .collect();
        rt.reporter
            .missed(env, w, &tags, "no scheduler was running during the window")
            .await;
    }
    if !passed.is_empty() && *on_missed_window == OnMissedWindow::ImportNow {
        catch_up.add(saved.known.iter().cloned());
    }
}

async fn close_window(env: &Environment, rt: &Runtime, pass: &mut Pass, catch_up: &mut CatchUp) {
    let Some(w) = pass.window else { return };
    // A cluster that went away mid-window is why the rest was not done.
    let listing = pass
        .discovery_error
        .as_ref()
        .map(|e| format!("; then the image streams could not be listed: {e}"))
        .unwrap_or_default();
    let missed: Vec<TagRecord> = pass
        .known
        .iter()
        .filter(|s| !pass.done.contains(*s))
        .map(|s| TagRecord {
            stream: s.clone(),
            reason: pass
                .failing
                .get(s)
                .map(|f| f.reason.clone())
                .unwrap_or_else(|| "not imported before the window closed".into())
                + &listing,
        })
        .collect();
    if !missed.is_empty() || pass.known.is_empty() {
        let why = match (&pass.discovery_error, missed.is_empty()) {
            (Some(e), true) => format!("the image streams could not be listed: {e}"),
            (None, true) => "no image stream with the tag was found".to_string(),
            _ => format!(
                "{} of {} tags were not imported",
                missed.len(),
                pass.known.len()
            ),
        };
        // An environment without streams has nothing to miss.
        if !(pass.known.is_empty() && pass.discovery_error.is_none()) {
            rt.reporter.missed(env, &w, &missed, &why).await;
            if matches!(
                env.mode,
                Mode::Windowed {
                    on_missed_window: OnMissedWindow::ImportNow,
                    ..
                }
            ) {
                catch_up.add(missed.iter().map(|t| t.stream.clone()));
            }
        }
    }
    rt.reporter
        .window_closed(env, &w, pass.done.len(), pass.known.len())
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
    for t in discovery.targets.iter().filter(|t| t.held) {
        pass.seen.record(&t.stream, t.current.as_deref());
    }
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
            let matching = |t: &Target| hook_matches(&t.source, event);
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
        Decision::Paused | Decision::CatchUp => {}
    }
}

/// Whether a push to `event`'s repository moves the tag a target follows.
pub fn hook_matches(source: &str, event: &HookEvent) -> bool {
    let (repo, tag) = split_reference(source);
    let want = event.docker_url.trim_end_matches('/');
    let tag_ok = event.updated_tags.is_empty() || event.updated_tags.iter().any(|t| t == tag);
    tag_ok && (repo == want || repo.ends_with(&format!("/{want}")))
}

/// `quay.io/packit/worker:prod` -> (`quay.io/packit/worker`, `prod`); no tag means `latest`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
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
        return;
    }

    // Each outcome is reported as it completes, not after the whole round:
    // with hundreds of streams the first imports are long done before the
    // last one ends.
    // The report (an Event is an API call) runs inside each import's own
    // future, so it never holds up the other imports of the round.
    let mut in_flight = futures::stream::iter(due)
        .map(|t| async {
            let r = check_and_import(rt, &t, window.as_ref()).await;
            if let Some((outcome, took)) = &r {
                rt.reporter
                    .outcome(env, window.as_ref(), &t, outcome, *took, trigger)
                    .await;
            }
            (t, r)
        })
        .buffer_unordered(rt.concurrency.max(1));
    let mut results: Vec<(Target, Option<(ImportOutcome, Duration)>)> = Vec::new();
    let mut updated = 0;
    let mut failed = 0;
    let mut skipped = 0;
    while let Some((t, r)) = in_flight.next().await {
        let Some((outcome, _)) = &r else {
            skipped += 1;
            results.push((t, r));
            continue;
        };
        match outcome {
            ImportOutcome::Updated { .. }
            | ImportOutcome::Unchanged { .. }
            | ImportOutcome::Held { .. } => {
                match outcome {
                    ImportOutcome::Updated { to, .. } => {
                        updated += 1;
                        pass.seen.record(&t.stream, Some(to));
                    }
                    ImportOutcome::Unchanged { digest } => {
                        pass.seen.record(&t.stream, Some(digest))
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
    if skipped > 0 {
        info!(env = %env.name, window = window.map(|w| w.id()).unwrap_or_default(), decision = "imports not started", skipped, reason = if rt.stop.is_cancelled() { "stopping" } else { "window closed" }, "no import starts after the window's end or once stopping");
    }
    let attempted = results.len() - skipped;
    debug!(env = %env.name, trigger = trigger.name(), attempted, updated, failed, "round finished");
    rt.reporter
        .persist(env, window.as_ref(), &pass.done, &results)
        .await;
}

/// Previews one tag and imports it when the source moved. `None`: not started
/// (stopping, or the window closed before it could start).
async fn check_and_import(
    rt: &Runtime,
    t: &Target,
    window: Option<&Window>,
) -> Option<(ImportOutcome, Duration)> {
    let may_start = || !rt.stop.is_cancelled() && window.is_none_or(|w| rt.clock.now() < w.end);
    if !may_start() {
        return None;
    }
    let started = Instant::now();
    let source = match rt.importer.preview(t).await {
        Ok(digest) => digest,
        Err(e) => {
            return Some((
                ImportOutcome::Failed {
                    reason: e.reason().to_string(),
                    message: e.to_string(),
                    transient: e.is_transient(),
                },
                started.elapsed(),
            ))
        }
    };
    if !needs_import(t.current.as_deref(), &source) {
        return Some((
            ImportOutcome::Unchanged { digest: source },
            started.elapsed(),
        ));
    }
    if !may_start() {
        return None;
    }
    let outcome = rt.importer.import(t).await;
    Some((outcome, started.elapsed()))
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

    fn hook(url: &str, tags: &[&str]) -> HookEvent {
        HookEvent {
            docker_url: url.into(),
            updated_tags: tags.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        let cases = [
            (
                "quay.io/packit/worker:prod",
                ("quay.io/packit/worker", "prod"),
            ),
            ("quay.io/packit/worker", ("quay.io/packit/worker", "latest")),
            (
                "127.0.0.1:5000/packit/worker:stg",
                ("127.0.0.1:5000/packit/worker", "stg"),
            ),
            (
                "127.0.0.1:5000/packit/worker",
                ("127.0.0.1:5000/packit/worker", "latest"),
            ),
            (
                "quay.io/packit/worker@sha256:abc",
                ("quay.io/packit/worker", "latest"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(split_reference(input), want, "{input}");
        }
    }

    #[test]
    fn hooks_match_repository_and_tag() {
        let src = "quay.io/packit/packit-worker:prod";
        assert!(hook_matches(
            src,
            &hook("quay.io/packit/packit-worker", &["prod"])
        ));
        assert!(hook_matches(
            src,
            &hook("packit/packit-worker", &["prod", "stg"])
        ));
        assert!(
            hook_matches(src, &hook("quay.io/packit/packit-worker", &[])),
            "no tags named: every tag"
        );
        assert!(!hook_matches(
            src,
            &hook("quay.io/packit/packit-worker", &["stg"])
        ));
        assert!(!hook_matches(
            src,
            &hook("quay.io/packit/packit-service", &["prod"])
        ));
        assert!(
            !hook_matches(src, &hook("it/packit-worker", &["prod"])),
            "path segments, not substrings"
        );
    }

    #[test]
    fn catch_up_tracks_streams_until_current() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut c = CatchUp::Nothing;
        c.add(["a".to_string(), "b".to_string()]);
        assert_eq!(c, CatchUp::Streams(set(&["a", "b"])));
        c.settle(&set(&["a", "b"]), &set(&["a"]));
        assert_eq!(c, CatchUp::Streams(set(&["b"])));
        c.settle(&set(&["b"]), &set(&["a", "b"]));
        assert!(!c.pending());
        c.add(Vec::new());
        assert_eq!(c, CatchUp::All, "no stream recorded: all of them");
        c.settle(&set(&[]), &set(&[]));
        assert_eq!(c, CatchUp::All, "nothing checked yet: still pending");
        c.settle(&set(&["a", "b"]), &set(&["a"]));
        assert_eq!(c, CatchUp::All);
        c.settle(&set(&["a", "b"]), &set(&["a", "b"]));
        assert!(!c.pending());
    }

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
