//! Following a rollout on the cluster: the I/O edge around
//! [`super::verdict`].
//!
//! It finds the consumers of `<stream>:<tag>` (Deployments, StatefulSets
//! and DaemonSets of the namespace with an image trigger on it), then polls
//! them and the namespace's pods until the verdict is no longer
//! `InProgress`. It only reads: `list` on those three kinds and on pods.
//!
//! # Cost
//!
//! Polling, not watching: a rollout check is short (bounded by
//! `verify.timeout`) and runs only after an import changed a tag, so an
//! idle daemon sends nothing and holds no watch connection or cache (the
//! namespace's pods are never mirrored in memory between checks). Finding
//! the consumers is 3 `list` requests (one per kind); each poll is one
//! `list` per kind that has a consumer plus one `list` of pods: at most 4
//! requests every [`FollowSpec::poll_interval`] (2 s by default), so a
//! rollout that takes 40 s costs about 3 + 20 x 2 = 43 requests for one
//! Deployment, and a check that runs into a 10-minute timeout at most
//! 3 + 300 x 4 = 1203. A watch would cost one long request per kind
//! per check but would need a relist after every dropped connection and
//! the same reads to start from; at these rates polling is cheaper to get
//! right and to resume after a restart (no resourceVersion to keep).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use tracing::debug;

use super::verdict::{verdict, PodState, Verdict, WorkloadKind, WorkloadState};
pub use super::workloads::{Consumer, Workloads};

/// What to follow.
#[derive(Clone, Debug)]
pub struct FollowSpec {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// The image the import brought, `sha256:...`.
    pub new_digest: String,
    /// `verify.timeout`.
    pub timeout: Duration,
    /// How long the check already ran before this call (after a restart,
    /// from the time kept in the status ConfigMap; else zero).
    pub already_elapsed: Duration,
    /// Time between two polls.
    pub poll_interval: Duration,
}

/// Default time between two polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The end of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// `Succeeded` or `Failed`.
    pub verdict: Verdict,
    pub consumers: Vec<Consumer>,
    /// Workloads whose trigger annotation could not be read: not followed.
    pub unreadable: Vec<String>,
    /// Requests sent, for the cost figures.
    pub requests: u64,
}

/// The Deployments, StatefulSets and DaemonSets of `namespace`, listed
/// together (3 requests); no pods.
async fn list_workloads(client: &Client, namespace: &str) -> kube::Result<Workloads> {
    let lp = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), namespace);
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), namespace);
    let (deployments, statefulsets, daemonsets) = tokio::try_join!(
        deployments.list(&lp),
        statefulsets.list(&lp),
        daemonsets.list(&lp),
    )?;
    Ok(Workloads {
        deployments: deployments.items,
        statefulsets: statefulsets.items,
        daemonsets: daemonsets.items,
        pods: Vec::new(),
    })
}

/// Reads every workload and pod of `namespace` (4 requests, sent
/// together): what the soak gate judges all of a round's tags from.
pub async fn read_workloads(client: &Client, namespace: &str) -> kube::Result<Workloads> {
    let lp = ListParams::default();
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let (mut seen, pods) = tokio::try_join!(list_workloads(client, namespace), pods.list(&lp))?;
    seen.pods = pods.items;
    Ok(seen)
}

/// Reads the consumers of `stream:tag` in `namespace` (3 requests).
pub async fn find_consumers(
    client: &Client,
    namespace: &str,
    stream: &str,
    tag: &str,
) -> kube::Result<(Vec<Consumer>, Vec<String>)> {
    Ok(list_workloads(client, namespace)
        .await?
        .consumers(namespace, stream, tag))
}

/// One look at the consumers and their new pods: one `list` per kind that
/// has a consumer and one of pods. Returns the states and the number of
/// requests sent.
pub async fn observe(
    client: &Client,
    namespace: &str,
    consumers: &[Consumer],
    digest: &str,
) -> kube::Result<(Vec<WorkloadState>, Vec<PodState>, u64)> {
    let lp = ListParams::default();
    let wanted = |kind: WorkloadKind| consumers.iter().any(|c| c.kind == kind);
    let mut seen = Workloads::default();
    let mut requests = 1;
    if wanted(WorkloadKind::Deployment) {
        requests += 1;
        seen.deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?
            .items;
    }
    if wanted(WorkloadKind::StatefulSet) {
        requests += 1;
        seen.statefulsets = Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?
            .items;
    }
    if wanted(WorkloadKind::DaemonSet) {
        requests += 1;
        seen.daemonsets = Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?
            .items;
    }
    seen.pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?
        .items;
    let (states, pods) = seen.states(consumers, digest);
    Ok((states, pods, requests))
}

/// Follows the rollout of `spec.new_digest` until a verdict. A failed
/// request is logged and retried at the next poll; once the timeout has
/// passed, the last error is returned instead of a verdict.
pub async fn follow(client: &Client, spec: &FollowSpec) -> kube::Result<Followed> {
    let started = tokio::time::Instant::now();
    let elapsed = || spec.already_elapsed + started.elapsed();
    let mut requests = 0u64;
    let (consumers, unreadable) = loop {
        requests += 3;
        match find_consumers(client, &spec.namespace, &spec.stream, &spec.tag).await {
            Ok(found) => break found,
            Err(e) if elapsed() < spec.timeout => {
                debug!(
                    namespace = spec.namespace,
                    "listing workloads failed: {e}; trying again"
                );
                tokio::time::sleep(spec.poll_interval).await;
            }
            Err(e) => return Err(e),
        }
    };
    loop {
        match observe(client, &spec.namespace, &consumers, &spec.new_digest).await {
            Ok((states, pods, sent)) => {
                requests += sent;
                // A consumer deleted meanwhile is no longer waited for.
                match verdict(&states, &pods, elapsed(), spec.timeout) {
                    Verdict::InProgress { waiting_for } => {
                        debug!(
                            namespace = spec.namespace,
                            stream = spec.stream,
                            tag = spec.tag,
                            "rollout in progress: waiting for {waiting_for}"
                        );
                    }
                    done => {
                        return Ok(Followed {
                            verdict: done,
                            consumers,
                            unreadable,
                            requests,
                        })
                    }
                }
            }
            Err(e) if elapsed() < spec.timeout => {
                requests += 1;
                debug!(
                    namespace = spec.namespace,
                    "reading the rollout failed: {e}; trying again"
                );
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(spec.poll_interval).await;
    }
}
