//! Keeps one environment's loop ([`run_environment`]) connected to the
//! cluster it lives on, so that trouble with one cluster stays with the
//! environments on it:
//!
//! - Before the loop can start, the environment's [`Connection`] must be
//!   made; for another cluster that means reading its kubeconfig Secret. A
//!   failure is reported and retried with backoff ([`RETRY_INITIAL`] doubling
//!   to [`RETRY_MAX`]).
//! - While the loop runs, the cluster's reachability record is looked at
//!   every [`CHECK_EVERY`]: a change to unreachable, refusing, or back to
//!   usable is reported once (log, Event on the configuration ConfigMap,
//!   `cluster_available{cluster}`, `/readyz` notes). The loop itself keeps
//!   trying at its poll interval, so a window whose cluster stays away is
//!   reported missed by the loop with the reason.
//! - The kubeconfig Secret is read again every [`REREAD_EVERY`], and sooner
//!   while the cluster refuses the daemon (a rotated token): when it holds
//!   another kubeconfig, the loop restarts with a new client. So does a
//!   change of the environment's `cluster`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clusters::{Clusters, Connection};
use crate::config::{Environment, ImportSettings};
use crate::events::{action, reason, EventSink, EventType};
use crate::metrics::Metrics;
use crate::reachability::Verdict;
use crate::scheduler::{run_environment, Runtime};

/// First wait before connecting again after a failure.
pub const RETRY_INITIAL: Duration = Duration::from_secs(5);
/// Longest wait between attempts to connect.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How often a running environment's cluster is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often a kubeconfig Secret is read again while all is well.
pub const REREAD_EVERY: Duration = Duration::from_secs(300);

/// What every supervised environment shares.
#[derive(Clone)]
pub struct Shared {
    pub clusters: Arc<Clusters>,
    pub import: ImportSettings,
    /// The loops' runtime on the daemon's cluster; a remote environment's
    /// gets its importer and ImageStream Events from its own cluster.
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Events about the configuration (on the daemon's cluster).
    pub events: EventSink,
    /// The configuration ConfigMap, when there is one.
    pub config_ref: Option<ObjectReference>,
    /// `reportingInstance` of a remote environment's Events.
    pub identity: String,
}

/// The next wait after `current`.
pub fn next_backoff(current: Duration) -> Duration {
    current.saturating_mul(2).min(RETRY_MAX)
}

/// Runs `env_rx`'s environment until `stop` fires or the sender is dropped.
pub async fn supervise(
    mut env_rx: watch::Receiver<Arc<Environment>>,
    shared: Shared,
    stop: CancellationToken,
) {
    let mut backoff = RETRY_INITIAL;
    let mut reported = Verdict::Fine;
    loop {
        let env = env_rx.borrow_and_update().clone();
        let label = env.cluster_label();
        let health = shared.clusters.health(&label);
        let connection = match shared.clusters.connect(&env, &shared.import).await {
            Ok(c) => c,
            Err(e) => {
                health.set_setup_error(Some(e.to_string()));
                report(
                    &shared,
                    &env,
                    &mut reported,
                    health.verdict(),
                    Some(backoff),
                )
                .await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                    changed = env_rx.changed() => if changed.is_err() { return },
                }
                backoff = next_backoff(backoff);
                continue;
            }
        };
        health.set_setup_error(None);
        backoff = RETRY_INITIAL;
        if !connection.is_local() {
            if reported == Verdict::Fine {
                shared.metrics.set_cluster_available(&label, None);
            }
            info!(env = %env.name, cluster = %label, namespace = %env.namespace, decision = "cluster connected", "the environment is driven on its own cluster");
        }
        let loop_stop = stop.child_token();
        let (tx, rx) = watch::channel(env.clone());
        let mut handle = tokio::spawn(run_environment(
            rx,
            runtime_for(&shared, &connection, &loop_stop),
        ));
        let mut tick = tokio::time::interval(CHECK_EVERY);
        let mut last_read = Instant::now();
        let mut reread = REREAD_EVERY;
        let restart = loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    // The loop stops on the same token; imports in flight finish.
                    let _ = (&mut handle).await;
                    return;
                }
                _ = &mut handle => break true,
                changed = env_rx.changed() => {
                    if changed.is_err() {
                        loop_stop.cancel();
                        let _ = (&mut handle).await;
                        return;
                    }
                    let new = env_rx.borrow_and_update().clone();
                    if new.cluster != env.cluster {
                        info!(env = %new.name, decision = "cluster changed", "reconnecting the environment to its new cluster");
                        break false;
                    }
                    let _ = tx.send(new);
                }
                _ = tick.tick() => {
                    if connection.is_local() {
                        continue;
                    }
                    let verdict = health.verdict();
                    report(&shared, &env, &mut reported, verdict.clone(), None).await;
                    // A refused token may have been rotated: read the Secret sooner.
                    let due = if matches!(verdict, Verdict::Denied(_)) { reread.min(RETRY_INITIAL * 6) } else { reread };
                    if last_read.elapsed() < due {
                        continue;
                    }
                    last_read = Instant::now();
                    let Some(cluster) = &env.cluster else { continue };
                    match shared.clusters.changed(cluster, &connection).await {
                        Ok(true) => {
                            info!(env = %env.name, cluster = %label, decision = "kubeconfig changed", "the kubeconfig Secret changed; reconnecting");
                            break false;
                        }
                        Ok(false) => reread = REREAD_EVERY,
                        Err(e) => {
                            warn!(env = %env.name, cluster = %label, error = %e, "cannot read the kubeconfig Secret again; keeping the current client");
                            reread = next_backoff(reread.min(RETRY_MAX / 2));
                        }
                    }
                }
            }
        };
        if restart {
            // The loop ended by itself (its handle is done and must not be
            // polled again); on shutdown the stop token ended it.
            if stop.is_cancelled() {
                return;
            }
            warn!(env = %env.name, decision = "loop ended", "the environment loop ended unexpectedly; starting it again");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY_INITIAL) => {}
            }
        } else {
            loop_stop.cancel();
            let _ = (&mut handle).await;
        }
    }
}

/// The loop's runtime: the shared one, with the connection's importer and,
/// on another cluster, Events about ImageStreams sent there.
fn runtime_for(shared: &Shared, connection: &Connection, stop: &CancellationToken) -> Runtime {
    let mut rt = shared.runtime.clone();
    rt.importer = connection.importer.clone();
    if !connection.is_local() {
        let mut events = connection.events(&shared.identity);
        if let Some(object) = &shared.config_ref {
            events =
                events.with_fallback(shared.events.clone(), object.clone(), &connection.cluster);
        }
        rt.reporter = rt.reporter.with_events(events);
    }
    rt.stop = stop.clone();
    rt
}

/// Reports a change of the cluster's verdict (nothing when unchanged).
async fn report(
    shared: &Shared,
    env: &Environment,
    reported: &mut Verdict,
    verdict: Verdict,
    retry_in: Option<Duration>,
) {
    if *reported == verdict {
        return;
    }
    let label = env.cluster_label();
    let (type_, reason, note) = match verdict.problem() {
        Some((kind, why)) => {
            let retry = retry_in
                .map(|d| format!("connecting again in {}s", d.as_secs()))
                .unwrap_or_else(|| "the environment keeps trying at its poll interval".to_owned());
            warn!(env = %env.name, cluster = %label, reason = kind, decision = "cluster unavailable", error = %why, "{retry}; the other environments are unaffected");
            shared.metrics.set_cluster_available(&label, Some(kind));
            (
                EventType::Warning,
                reason::CLUSTER_UNAVAILABLE,
                format!(
                    "environment {}: cluster {label} ({kind}): {why}; {retry}",
                    env.name
                ),
            )
        }
        None => {
            info!(env = %env.name, cluster = %label, decision = "cluster available", "the environment's cluster can be used again");
            shared.metrics.set_cluster_available(&label, None);
            (
                EventType::Normal,
                reason::CLUSTER_AVAILABLE,
                format!(
                    "environment {}: cluster {label} can be used again",
                    env.name
                ),
            )
        }
    };
    *reported = verdict;
    if let Some(object) = &shared.config_ref {
        shared
            .events
            .publish(object, type_, reason, action::SCHEDULE, note)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(next_backoff(RETRY_INITIAL), Duration::from_secs(10));
        assert_eq!(next_backoff(Duration::from_secs(200)), RETRY_MAX);
        assert_eq!(next_backoff(RETRY_MAX), RETRY_MAX);
        assert_eq!(next_backoff(Duration::MAX), RETRY_MAX);
    }
}
