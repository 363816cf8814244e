//! What a namespace's workloads and pods say about a tag's rollout (pure):
//! which workloads consume `<stream>:<tag>` (an image trigger on it) and
//! how they and their pods run a digest, as [`super::verdict`] reads them.
//! [`super::follow`] reads the cluster into a [`Workloads`].

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::warn;

use super::triggers::{triggers_on, TRIGGERS_ANNOTATION};
use super::verdict::{ContainerState, PodState, WorkloadKind, WorkloadState};

/// One read of a namespace: the workloads of each kind and the pods. A
/// kind not read is empty.
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
    pub pods: Vec<Pod>,
}

impl Workloads {
    /// The consumers of `stream:tag` in `namespace`, and the workloads whose
    /// trigger annotation cannot be read.
    pub fn consumers(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
    ) -> (Vec<Consumer>, Vec<String>) {
        let objects = self
            .deployments
            .iter()
            .map(|d| (WorkloadKind::Deployment, &d.metadata))
            .chain(
                self.statefulsets
                    .iter()
                    .map(|d| (WorkloadKind::StatefulSet, &d.metadata)),
            )
            .chain(
                self.daemonsets
                    .iter()
                    .map(|d| (WorkloadKind::DaemonSet, &d.metadata)),
            );
        consumers_among(objects, namespace, stream, tag)
    }

    /// How `consumers` and their pods that run `digest` stand. A consumer
    /// no longer there is left out (deleted meanwhile: not waited for).
    pub fn states(
        &self,
        consumers: &[Consumer],
        digest: &str,
    ) -> (Vec<WorkloadState>, Vec<PodState>) {
        let mut states = Vec::new();
        for c in consumers {
            let state = match c.kind {
                WorkloadKind::Deployment => self
                    .deployments
                    .iter()
                    .find(|d| name(&d.metadata) == c.name)
                    .map(|d| deployment_state(d, c, digest)),
                WorkloadKind::StatefulSet => self
                    .statefulsets
                    .iter()
                    .find(|d| name(&d.metadata) == c.name)
                    .map(|d| statefulset_state(d, c, digest)),
                WorkloadKind::DaemonSet => self
                    .daemonsets
                    .iter()
                    .find(|d| name(&d.metadata) == c.name)
                    .map(|d| daemonset_state(d, c, digest)),
            };
            states.extend(state);
        }
        let pods = self
            .pods
            .iter()
            .filter_map(|p| new_pod(p, consumers, digest))
            .collect();
        (states, pods)
    }
}

/// A workload whose image trigger names the tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub kind: WorkloadKind,
    pub name: String,
    /// The containers the trigger sets (`None`: named by index, so every
    /// container counts).
    pub containers: Vec<Option<String>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn trigger(tag: &str, container: &str) -> String {
        json!([{"from": {"kind": "ImageStreamTag", "name": tag},
                "fieldPath": format!("spec.template.spec.containers[?(@.name==\"{container}\")].image")}])
        .to_string()
    }

    fn template(container: &str, digest: &str) -> serde_json::Value {
        json!({"spec": {"containers": [{"name": container, "image": format!("registry/ns/worker@{digest}")}]}})
    }

    fn deployment(name: &str, tag: &str, digest: &str, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 2,
                         "annotations": {TRIGGERS_ANNOTATION: trigger(tag, "worker")}},
            "spec": {"replicas": 1, "selector": {}, "template": template("worker", digest)},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": ready, "availableReplicas": ready}
        }))
        .unwrap()
    }

    fn statefulset(name: &str, tag: &str, digest: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 1,
                         "annotations": {TRIGGERS_ANNOTATION: trigger(tag, "worker")}},
            "spec": {"replicas": 2, "selector": {}, "serviceName": name, "template": template("worker", digest)},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                       "currentRevision": "a", "updateRevision": "b"}
        }))
        .unwrap()
    }

    fn daemonset(name: &str, tag: &str, digest: &str) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 3,
                         "annotations": {TRIGGERS_ANNOTATION: trigger(tag, "worker")}},
            "spec": {"selector": {}, "template": template("worker", digest)},
            "status": {"observedGeneration": 3, "desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                       "updatedNumberScheduled": 3, "numberReady": 2, "numberAvailable": 1,
                       "numberMisscheduled": 0}
        }))
        .unwrap()
    }

    fn pod(name: &str, owner_kind: &str, owner: &str, digest: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "uid": "u"}]},
            "spec": {"containers": [{"name": "worker", "image": format!("registry/ns/worker@{digest}")}]},
            "status": {"containerStatuses": [{"name": "worker", "ready": ready, "restartCount": 3,
                "image": "i", "imageID": "i",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}
        }))
        .unwrap()
    }

    fn namespace() -> Workloads {
        Workloads {
            deployments: vec![
                deployment("web", "worker:prod", NEW, 1),
                deployment("other", "other:prod", NEW, 1),
            ],
            statefulsets: vec![statefulset("db", "worker:prod", NEW)],
            daemonsets: vec![daemonset("agent", "worker:prod", OLD)],
            pods: vec![
                pod("web-5d9f-abcde", "ReplicaSet", "web-5d9f", NEW, true),
                pod("web-5d9f-old", "ReplicaSet", "web-5d9f", OLD, true),
                pod("db-0", "StatefulSet", "db", NEW, false),
                pod("other-5d9f-x", "ReplicaSet", "other-5d9f", NEW, true),
                pod("agent-x", "DaemonSet", "agent", NEW, true),
            ],
        }
    }

    #[test]
    fn consumers_are_the_workloads_triggered_by_the_tag_of_every_kind() {
        let (found, unreadable) = namespace().consumers("ns", "worker", "prod");
        let names: Vec<(WorkloadKind, &str)> =
            found.iter().map(|c| (c.kind, c.name.as_str())).collect();
        assert_eq!(
            names,
            vec![
                (WorkloadKind::Deployment, "web"),
                (WorkloadKind::StatefulSet, "db"),
                (WorkloadKind::DaemonSet, "agent")
            ]
        );
        assert!(unreadable.is_empty());
        assert!(namespace().consumers("ns", "worker", "stg").0.is_empty());
    }

    #[test]
    fn states_read_each_kind_and_only_the_consumers_new_pods() {
        let w = namespace();
        let (consumers, _) = w.consumers("ns", "worker", "prod");
        let (states, pods) = w.states(&consumers, NEW);
        let web = &states[0];
        assert_eq!(
            (
                web.kind,
                web.name.as_str(),
                web.generation,
                web.observed_generation
            ),
            (Some(WorkloadKind::Deployment), "web", 2, 2)
        );
        assert_eq!(
            (
                web.desired,
                web.replicas,
                web.updated,
                web.ready,
                web.available
            ),
            (1, 1, 1, 1, 1)
        );
        assert!(web.template_has_new_image);
        let db = &states[1];
        assert_eq!(db.kind, Some(WorkloadKind::StatefulSet));
        assert_eq!((db.desired, db.replicas, db.ready), (2, 2, 2));
        assert_eq!(db.update_revision.as_deref(), Some("b"));
        assert_eq!(db.current_revision.as_deref(), Some("a"));
        let agent = &states[2];
        assert_eq!(agent.kind, Some(WorkloadKind::DaemonSet));
        assert_eq!(
            (
                agent.desired,
                agent.replicas,
                agent.updated,
                agent.ready,
                agent.available,
                agent.generation
            ),
            (4, 4, 3, 2, 1, 3)
        );
        assert!(
            !agent.template_has_new_image,
            "its template names the old image"
        );
        assert_eq!(states.len(), 3);

        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["web-5d9f-abcde", "db-0", "agent-x"]);
        let db0 = &pods[1];
        assert_eq!(
            db0.workload,
            Some((WorkloadKind::StatefulSet, "db".to_owned()))
        );
        assert_eq!(
            db0.containers[0].waiting_reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(db0.containers[0].restart_count, 3);
        assert!(!db0.containers[0].ready);
        assert!(pods[0].containers[0].ready);
    }

    #[test]
    fn a_consumer_no_longer_there_is_left_out() {
        let mut w = namespace();
        let (consumers, _) = w.consumers("ns", "worker", "prod");
        w.deployments.clear();
        let (states, _) = w.states(&consumers, NEW);
        let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["db", "agent"]);
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_says_so() {
        let mut d = deployment("web", "worker:prod", NEW, 0);
        let condition = |status: &str, reason: &str| {
            serde_json::from_value(json!({"type": "Progressing", "status": status,
                "reason": reason, "message": "ReplicaSet web-5d9f has timed out progressing."}))
            .unwrap()
        };
        let w = |d: &Deployment| Workloads {
            deployments: vec![d.clone()],
            ..Workloads::default()
        };
        let states = |w: &Workloads| {
            let (consumers, _) = w.consumers("ns", "worker", "prod");
            w.states(&consumers, NEW).0
        };
        d.status.as_mut().unwrap().conditions = Some(vec![
            condition("True", "ProgressDeadlineExceeded"),
            condition("False", "NewReplicaSetAvailable"),
        ]);
        assert_eq!(states(&w(&d))[0].progress_deadline_exceeded, None);
        d.status.as_mut().unwrap().conditions =
            Some(vec![condition("False", "ProgressDeadlineExceeded")]);
        assert_eq!(
            states(&w(&d))[0].progress_deadline_exceeded.as_deref(),
            Some("ReplicaSet web-5d9f has timed out progressing.")
        );
        // Another container than the triggered one names the new image:
        // the template is not updated.
        let mut other = deployment("web", "worker:prod", OLD, 1);
        let spec = other.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        spec.containers.push(
            serde_json::from_value(
                json!({"name": "sidecar", "image": format!("registry/ns/worker@{NEW}")}),
            )
            .unwrap(),
        );
        assert!(!states(&w(&other))[0].template_has_new_image);
    }
}
