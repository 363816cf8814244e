//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are
//! safe: only the leader imports, and a lost lease stops new imports at once.
//!
//! Semantics follow client-go's leader election:
//! - Expiry is judged on the local monotonic clock: a candidate takes over a
//!   lease held by someone else only after seeing it unchanged for the
//!   holder's `leaseDurationSeconds`, so wall-clock skew between nodes does
//!   not matter.
//! - The leader renews every `renew_period` with one request: it sends back
//!   the Lease as it last wrote it (a 409 means someone else wrote since, and
//!   only then is the Lease read again). If no renewal succeeds within
//!   `renew_deadline` (shorter than the lease duration) of the last
//!   successful one's start, leadership is given up locally *before* any
//!   other candidate may take the lease; a hanging API call does not delay
//!   this.
//! - Writes carry the Lease's `resourceVersion`, so of two candidates racing
//!   for an expired lease exactly one wins (the other gets 409).
//! - Releasing clears `holderIdentity` and sets the duration to 1 s, so a
//!   standby takes over at its next poll instead of after expiry.
//!
//! A maintained crate was considered: `kube-leader-election` 0.44 needs
//! kube 4, and `kube-lease-manager` 0.13 (kube 5) keeps reporting leadership
//! while renewals fail with API errors, which would let a partitioned leader
//! go on importing after its lease expired.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    api::{ObjectMeta, PostParams},
    Api, Client,
};
use rand::Rng;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Default `leaseDurationSeconds`. The daemon works in poll intervals of a
/// minute and windows of hours, so a slower failover costs little while
/// renewals are a steady load on the API server; with these defaults an idle
/// leader makes 48 requests an hour (one every 75 s) where client-go's
/// 15 s / 10 s / 2 s would make 720 or more.
///
/// Failover: when the leader stops (SIGTERM) it releases the Lease and a
/// standby takes over at its next poll, within 1.5 x [`RETRY_PERIOD`]
/// (7.5 s). When it crashes or is cut off, a standby takes over once it has
/// seen the Lease unchanged for [`LEASE_DURATION`]: at most
/// `LEASE_DURATION + 3 x RETRY_PERIOD` (135 s) after the crash, less the
/// time since the leader's last renewal (so 45-135 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(120);
/// Default renew deadline: a leader whose renewals all failed for this long
/// stops importing, 20 s before a standby may take the Lease over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(100);
/// Default renew period: one Lease update every 75 s while leading, leaving
/// 25 s of retries (every [`RETRY_PERIOD`]) before [`RENEW_DEADLINE`].
pub const RENEW_PERIOD: Duration = Duration::from_secs(75);
/// Default retry period: how often a standby reads the Lease and a failed
/// renewal is retried (each with up to 50 % jitter).
pub const RETRY_PERIOD: Duration = Duration::from_secs(5);

/// Timing of the election.
#[derive(Clone)]
pub struct LeaderOptions {
    /// How long a lease stays valid without renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// The leader gives up if no renewal succeeded for this long. Must be
    /// shorter than `lease_duration`; the difference is the safety margin.
    pub renew_deadline: Duration,
    /// The leader renews this often.
    pub renew_period: Duration,
    /// Candidates retry (and the leader retries failed renewals) about this
    /// often, with jitter.
    pub retry_period: Duration,
    /// Leadership is published in the `leader` gauge.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for LeaderOptions {
    fn default() -> Self {
        LeaderOptions {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            renew_period: RENEW_PERIOD,
            retry_period: RETRY_PERIOD,
            metrics: None,
        }
    }
}

impl std::fmt::Debug for LeaderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderOptions")
            .field("lease_duration", &self.lease_duration)
            .field("renew_deadline", &self.renew_deadline)
            .field("renew_period", &self.renew_period)
            .field("retry_period", &self.retry_period)
            .finish_non_exhaustive()
    }
}

/// Why leadership could not be released.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API refused or failed.
    #[error("cannot release lease {namespace}/{name}: {source}; the standby takes over after the lease expires")]
    Api {
        /// Namespace of the Lease.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The API did not answer in time.
    #[error("releasing lease {namespace}/{name} timed out; the standby takes over after the lease expires")]
    Timeout {
        /// Namespace of the Lease.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// This process's identity in the Lease: `POD_NAME` or `HOSTNAME` (or
/// `import-scheduler`) plus a random suffix, so a restarted process never
/// mistakes the previous one's lease for its own.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "import-scheduler".to_owned());
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{base}-{suffix}")
}

/// Takes part in the election for one Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    lease_name: String,
    identity: String,
    options: LeaderOptions,
}

/// What this process last saw of the Lease, and when (local clock).
struct Observed {
    resource_version: Option<String>,
    at: Instant,
    /// The Lease as this process last wrote it while taking or renewing it;
    /// a renewal sends it back without reading it first.
    written: Option<Lease>,
}

impl Observed {
    fn written(lease: Lease) -> Self {
        Observed {
            resource_version: lease.metadata.resource_version.clone(),
            at: Instant::now(),
            written: Some(lease),
        }
    }
}

impl LeaderElector {
    /// An elector for Lease `lease_name` in `namespace` (created if absent).
    pub fn new(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        options: LeaderOptions,
    ) -> Self {
        let mut options = options;
        if options.renew_deadline >= options.lease_duration {
            // A deadline at or past expiry would let two leaders overlap.
            options.renew_deadline = options.lease_duration.mul_f64(2.0 / 3.0);
            tracing::warn!(
                renew_deadline = ?options.renew_deadline,
                lease_duration = ?options.lease_duration,
                "renew deadline must be shorter than the lease duration; using two thirds of it"
            );
        }
        LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            lease_name: lease_name.to_owned(),
            identity: identity.to_owned(),
            options,
        }
    }

    /// This elector's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs the election in a task. The watch says whether this process leads
    /// now; it turns `false` as soon as leadership is lost or `shutdown` is
    /// cancelled. On `shutdown` the lease is released before the task ends,
    /// so cancel it only after in-flight imports have finished.
    pub fn spawn(self, shutdown: CancellationToken) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (sender, receiver) = watch::channel(false);
        let handle = tokio::spawn(async move { self.run(sender, shutdown).await });
        (receiver, handle)
    }

    fn publish(&self, sender: &watch::Sender<bool>, leading: bool) {
        // Metrics first, so whoever wakes on the watch sees them consistent.
        if let Some(metrics) = &self.options.metrics {
            metrics.set_leader(leading);
        }
        sender.send_replace(leading);
    }

    fn jittered(&self, period: Duration) -> Duration {
        period.mul_f64(1.0 + rand::rng().random_range(0.0..0.5))
    }

    async fn run(self, sender: watch::Sender<bool>, shutdown: CancellationToken) {
        let lease = format!("{}/{}", self.namespace, self.lease_name);
        let mut observed: Option<Observed> = None;
        // Start of the last successful acquire/renew while leading.
        let mut leading_since_attempt: Option<Instant> = None;
        let mut first = true;
        self.publish(&sender, false);

        loop {
            match leading_since_attempt {
                Some(last_success) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep_until(last_success + self.options.renew_period) => {}
                    }
                    let deadline = last_success + self.options.renew_deadline;
                    leading_since_attempt =
                        self.renew_until(deadline, &mut observed, &shutdown).await;
                    if shutdown.is_cancelled() {
                        break;
                    }
                    if leading_since_attempt.is_none() {
                        self.publish(&sender, false);
                        tracing::warn!(%lease, identity = %self.identity, "lost leadership: stopped starting imports");
                    }
                }
                None => {
                    if !first {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(self.jittered(self.options.retry_period)) => {}
                        }
                    }
                    first = false;
                    // Not leading: read the Lease before writing it.
                    if let Some(observed) = &mut observed {
                        observed.written = None;
                    }
                    let attempt = Instant::now();
                    let deadline = attempt + self.options.renew_deadline;
                    match tokio::time::timeout_at(
                        deadline,
                        self.try_acquire_or_renew(&mut observed),
                    )
                    .await
                    {
                        Ok(Ok(true)) => {
                            leading_since_attempt = Some(attempt);
                            self.publish(&sender, true);
                            tracing::info!(%lease, identity = %self.identity, "became leader");
                        }
                        Ok(Ok(false)) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%lease, %error, "cannot read or acquire the leader lease; retrying");
                        }
                        Err(_) => {
                            tracing::warn!(%lease, "leader lease request timed out; retrying");
                        }
                    }
                }
            }
        }

        let was_leading = leading_since_attempt.is_some() || *sender.borrow();
        self.publish(&sender, false);
        if was_leading {
            match self.release().await {
                Ok(()) => {
                    tracing::info!(%lease, identity = %self.identity, "released leader lease")
                }
                Err(error) => tracing::warn!(%error, "leader lease not released"),
            }
        }
    }

    /// Renews until success (returns the successful attempt's start) or the
    /// deadline (returns `None`). Returns early if another holder took over.
    async fn renew_until(
        &self,
        deadline: Instant,
        observed: &mut Option<Observed>,
        shutdown: &CancellationToken,
    ) -> Option<Instant> {
        loop {
            let attempt = Instant::now();
            if attempt >= deadline {
                tracing::warn!(lease = %self.lease_name, "no lease renewal succeeded within the renew deadline");
                return None;
            }
            match tokio::time::timeout_at(deadline, self.renew(observed)).await {
                Ok(Ok(true)) => return Some(attempt),
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %self.lease_name, "the lease is held by another process");
                    return None;
                }
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.lease_name, %error, "lease renewal failed; retrying until the renew deadline");
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease_name, "lease renewal did not finish within the renew deadline");
                    return None;
                }
            }
            let pause = self.jittered(self.options.retry_period);
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until((Instant::now() + pause).min(deadline)) => {}
            }
        }
    }

    /// One renewal while leading: the Lease as last written, with a new
    /// `renewTime`, in one request. If anyone wrote it since (409) or there
    /// is no written copy, falls back to reading it first.
    async fn renew(&self, observed: &mut Option<Observed>) -> Result<bool, kube::Error> {
        let Some(mut lease) = observed.as_mut().and_then(|o| o.written.take()) else {
            return self.try_acquire_or_renew(observed).await;
        };
        let kept = lease.clone();
        if let Some(spec) = &mut lease.spec {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self.write(&lease, observed).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                tracing::debug!(lease = %self.lease_name, "the lease changed since it was renewed; reading it");
                self.try_acquire_or_renew(observed).await
            }
            Err(error) => {
                // Unknown whether it landed: the next try sends the same
                // copy; if it did land, that one gets 409 and reads.
                if let Some(observed) = observed.as_mut() {
                    observed.written = Some(kept);
                }
                Err(error)
            }
        }
    }

    /// One step: create the Lease, take it if free or expired, renew it if
    /// ours. `Ok(true)` if we hold it afterwards.
    async fn try_acquire_or_renew(
        &self,
        observed: &mut Option<Observed>,
    ) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration_seconds =
            i32::try_from(self.options.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease_name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    *observed = Some(Observed::written(created));
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };

        let resource_version = lease.metadata.resource_version.clone();
        let seen_now = Instant::now();
        let observed_at = match observed {
            Some(previous) if previous.resource_version == resource_version => previous.at,
            _ => {
                *observed = Some(Observed {
                    resource_version: resource_version.clone(),
                    at: seen_now,
                    written: None,
                });
                seen_now
            }
        };

        let mut spec = lease.spec.take().unwrap_or_default();
        let holder = spec
            .holder_identity
            .clone()
            .filter(|holder| !holder.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = &holder {
            if !ours {
                let their_duration = spec
                    .lease_duration_seconds
                    .and_then(|seconds| u64::try_from(seconds).ok())
                    .map(Duration::from_secs)
                    .unwrap_or(self.options.lease_duration);
                if observed_at + their_duration > seen_now {
                    tracing::debug!(lease = %self.lease_name, %holder, "lease held by another process");
                    return Ok(false);
                }
                tracing::info!(lease = %self.lease_name, %holder, "lease expired; taking it over");
            }
        }
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        self.write(&lease, observed).await
    }

    /// Writes `lease` and remembers what was written. `replace` sends the
    /// Lease's resourceVersion: `Ok(false)` (409) if anyone wrote since.
    async fn write(
        &self,
        lease: &Lease,
        observed: &mut Option<Observed>,
    ) -> Result<bool, kube::Error> {
        match self
            .api
            .replace(&self.lease_name, &PostParams::default(), lease)
            .await
        {
            Ok(written) => {
                *observed = Some(Observed::written(written));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up if this process holds it, so a standby takes over
    /// at its next poll. Does nothing if someone else holds it.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let api_error = |source| LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
            source,
        };
        let attempt = async {
            for _ in 0..3 {
                let Some(mut lease) = self
                    .api
                    .get_opt(&self.lease_name)
                    .await
                    .map_err(api_error)?
                else {
                    return Ok(());
                };
                let mut spec = lease.spec.take().unwrap_or_default();
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    return Ok(());
                }
                let now = MicroTime(Timestamp::now());
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.renew_time = Some(now);
                lease.spec = Some(spec);
                match self
                    .api
                    .replace(&self.lease_name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(error) => return Err(api_error(error)),
                }
            }
            Ok(())
        };
        tokio::time::timeout(self.options.renew_deadline, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(LeaderError::Timeout {
                    namespace: self.namespace.clone(),
                    name: self.lease_name.clone(),
                })
            })
    }
}

/// Shorthand for [`LeaderElector::new`] followed by [`LeaderElector::spawn`].
pub fn spawn(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
    options: LeaderOptions,
    shutdown: CancellationToken,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    LeaderElector::new(client, namespace, lease_name, identity, options).spawn(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_and_name_the_pod() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (base, suffix) = a.rsplit_once('-').unwrap();
        assert!(!base.is_empty());
        assert_eq!(suffix.len(), 6);
    }

    #[test]
    fn default_timing_keeps_a_safety_margin() {
        let options = LeaderOptions::default();
        assert!(options.renew_period < options.renew_deadline);
        assert!(options.renew_deadline < options.lease_duration);
        // Idle cost: at most one renewal a minute.
        assert!(options.renew_period >= Duration::from_secs(60));
        // A failed renewal gets several retries before the deadline.
        assert!(options.renew_deadline - options.renew_period >= 3 * options.retry_period);
    }
}
