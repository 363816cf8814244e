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
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::Client;
use tracing::{debug, warn};

use super::triggers::{triggers_on, TRIGGERS_ANNOTATION};
use super::verdict::{verdict, ContainerState, PodState, Verdict, WorkloadKind, WorkloadState};

/// A workload whose image trigger names the tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub kind: WorkloadKind,
    pub name: String,
    /// The containers the trigger sets (`None`: named by index, so every
    /// container counts).
    pub containers: Vec<Option<String>>,
}

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

fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The consumers among `objects` (kind, metadata), and the names of those
/// whose trigger annotation is not valid JSON.
pub fn consumers_among<'a>(
    objects: impl IntoIterator<Item = (WorkloadKind, &'a ObjectMeta)>,
    namespace: &str,
    stream: &str,
    tag: &str,
) -> (Vec<Consumer>, Vec<String>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for (kind, meta) in objects {
        let Some(annotation) = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(TRIGGERS_ANNOTATION))
        else {
            continue;
        };
        match triggers_on(annotation, namespace, stream, tag) {
            Ok(triggers) => {
                let active: Vec<Option<String>> = triggers
                    .into_iter()
                    .filter(|t| !t.paused)
                    .map(|t| t.container)
                    .collect();
                if !active.is_empty() {
                    found.push(Consumer {
                        kind,
                        name: name(meta),
                        containers: active,
                    });
                }
            }
            Err(e) => {
                warn!(
                    namespace,
                    kind = kind.name(),
                    workload = name(meta),
                    "{e}; not followed"
                );
                unreadable.push(format!("{} {}", kind.name(), name(meta)));
            }
        }
    }
    (found, unreadable)
}

/// Whether `image` is the image with `digest`.
fn is_image(image: &str, digest: &str) -> bool {
    image.rsplit_once('@').is_some_and(|(_, d)| d == digest)
}

/// Whether the template's triggered containers name the new image.
fn template_has(template: &PodTemplateSpec, consumer: &Consumer, digest: &str) -> bool {
    let Some(spec) = template.spec.as_ref() else {
        return false;
    };
    consumer.containers.iter().all(|wanted| {
        spec.containers
            .iter()
            .filter(|c| wanted.as_ref().is_none_or(|w| *w == c.name))
            .any(|c| c.image.as_deref().is_some_and(|i| is_image(i, digest)))
    })
}

fn deployment_state(d: &Deployment, c: &Consumer, digest: &str) -> WorkloadState {
    let spec = d.spec.clone().unwrap_or_default();
    let s = d.status.clone().unwrap_or_default();
    let deadline = s
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| c.message.clone().unwrap_or_default());
    WorkloadState {
        kind: Some(WorkloadKind::Deployment),
        name: name(&d.metadata),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: s.observed_generation.unwrap_or(0),
        desired: spec.replicas.unwrap_or(1),
        replicas: s.replicas.unwrap_or(0),
        updated: s.updated_replicas.unwrap_or(0),
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
        update_revision: None,
        current_revision: None,
        progress_deadline_exceeded: deadline,
        template_has_new_image: template_has(&spec.template, c, digest),
    }
}

fn statefulset_state(d: &StatefulSet, c: &Consumer, digest: &str) -> WorkloadState {
    let spec = d.spec.clone().unwrap_or_default();
    let s = d.status.clone().unwrap_or_default();
    WorkloadState {
        kind: Some(WorkloadKind::StatefulSet),
        name: name(&d.metadata),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: s.observed_generation.unwrap_or(0),
        desired: spec.replicas.unwrap_or(1),
        replicas: s.replicas,
        updated: s.updated_replicas.unwrap_or(0),
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
        update_revision: s.update_revision,
        current_revision: s.current_revision,
        progress_deadline_exceeded: None,
        template_has_new_image: template_has(&spec.template, c, digest),
    }
}

fn daemonset_state(d: &DaemonSet, c: &Consumer, digest: &str) -> WorkloadState {
    let spec = d.spec.clone().unwrap_or_default();
    let s = d.status.clone().unwrap_or_default();
    WorkloadState {
        kind: Some(WorkloadKind::DaemonSet),
        name: name(&d.metadata),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: s.observed_generation.unwrap_or(0),
        desired: s.desired_number_scheduled,
        replicas: s.current_number_scheduled,
        updated: s.updated_number_scheduled.unwrap_or(0),
        ready: s.number_ready,
        available: s.number_available.unwrap_or(0),
        update_revision: None,
        current_revision: None,
        progress_deadline_exceeded: None,
        template_has_new_image: template_has(&spec.template, c, digest),
    }
}

/// The consumer a pod belongs to: owned directly (StatefulSet, DaemonSet)
/// or through a ReplicaSet named `<deployment>-<hash>`.
fn owner_of(pod: &Pod, consumers: &[Consumer]) -> Option<(WorkloadKind, String)> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find_map(|o| {
            let (kind, owner) = match o.kind.as_str() {
                "ReplicaSet" => (WorkloadKind::Deployment, o.name.rsplit_once('-')?.0),
                "StatefulSet" => (WorkloadKind::StatefulSet, o.name.as_str()),
                "DaemonSet" => (WorkloadKind::DaemonSet, o.name.as_str()),
                _ => return None,
            };
            consumers
                .iter()
                .any(|c| c.kind == kind && c.name == owner)
                .then(|| (kind, owner.to_owned()))
        })
}

/// The pod as the verdict sees it, if it belongs to a consumer, runs the
/// new image and is not being deleted.
pub fn new_pod(pod: &Pod, consumers: &[Consumer], digest: &str) -> Option<PodState> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let workload = owner_of(pod, consumers)?;
    let spec: &PodSpec = pod.spec.as_ref()?;
    if !spec
        .containers
        .iter()
        .any(|c| c.image.as_deref().is_some_and(|i| is_image(i, digest)))
    {
        return None;
    }
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let containers = spec
        .containers
        .iter()
        .map(|c| {
            let status = statuses.iter().find(|s| s.name == c.name);
            let waiting = status
                .and_then(|s| s.state.as_ref())
                .and_then(|s| s.waiting.as_ref());
            ContainerState {
                name: c.name.clone(),
                ready: status.is_some_and(|s| s.ready),
                waiting_reason: waiting.and_then(|w| w.reason.clone()),
                waiting_message: waiting.and_then(|w| w.message.clone()),
                restart_count: status.map_or(0, |s| s.restart_count),
            }
        })
        .collect();
    Some(PodState {
        name: name(&pod.metadata),
        workload: Some(workload),
        containers,
    })
}

/// Reads the consumers of `stream:tag` in `namespace` (3 requests).
pub async fn find_consumers(
    client: &Client,
    namespace: &str,
    stream: &str,
    tag: &str,
) -> kube::Result<(Vec<Consumer>, Vec<String>)> {
    let lp = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let objects = deployments
        .items
        .iter()
        .map(|d| (WorkloadKind::Deployment, &d.metadata))
        .chain(
            statefulsets
                .items
                .iter()
                .map(|d| (WorkloadKind::StatefulSet, &d.metadata)),
        )
        .chain(
            daemonsets
                .items
                .iter()
                .map(|d| (WorkloadKind::DaemonSet, &d.metadata)),
        );
    Ok(consumers_among(objects, namespace, stream, tag))
}

/// One look at the consumers and their new pods; returns the states and
/// the number of requests sent.
pub async fn observe(
    client: &Client,
    namespace: &str,
    consumers: &[Consumer],
    digest: &str,
) -> kube::Result<(Vec<WorkloadState>, Vec<PodState>, u64)> {
    let lp = ListParams::default();
    let wanted = |kind: WorkloadKind| consumers.iter().filter(move |c| c.kind == kind);
    let mut states = Vec::new();
    let mut requests = 1;
    if wanted(WorkloadKind::Deployment).next().is_some() {
        requests += 1;
        let list = Api::<Deployment>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?;
        for c in wanted(WorkloadKind::Deployment) {
            if let Some(d) = list.items.iter().find(|d| name(&d.metadata) == c.name) {
                states.push(deployment_state(d, c, digest));
            }
        }
    }
    if wanted(WorkloadKind::StatefulSet).next().is_some() {
        requests += 1;
        let list = Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?;
        for c in wanted(WorkloadKind::StatefulSet) {
            if let Some(d) = list.items.iter().find(|d| name(&d.metadata) == c.name) {
                states.push(statefulset_state(d, c, digest));
            }
        }
    }
    if wanted(WorkloadKind::DaemonSet).next().is_some() {
        requests += 1;
        let list = Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .list(&lp)
            .await?;
        for c in wanted(WorkloadKind::DaemonSet) {
            if let Some(d) = list.items.iter().find(|d| name(&d.metadata) == c.name) {
                states.push(daemonset_state(d, c, digest));
            }
        }
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await?;
    let pods = pods
        .items
        .iter()
        .filter_map(|p| new_pod(p, consumers, digest))
        .collect();
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
