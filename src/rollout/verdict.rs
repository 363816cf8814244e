//! Whether the workloads that consume a tag run its new image: the pure
//! core of a rollout check.
//!
//! The input is what the API server says about the consumers (generation,
//! observed generation, replica counts, conditions, StatefulSet revisions)
//! and about the pods that run the new image (their containers' waiting
//! reasons), plus how long the check has run. Nothing here reads a clock
//! or the network, so every rule has a table test.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of workload a trigger can roll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// One consumer as observed. Counts are the status fields of its kind:
/// for a DaemonSet `desired` is `desiredNumberScheduled`, `replicas`
/// `currentNumberScheduled`, `updated` `updatedNumberScheduled`, `ready`
/// `numberReady`, `available` `numberAvailable`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadState {
    pub kind: Option<WorkloadKind>,
    pub name: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas` (Deployment, StatefulSet) or `desiredNumberScheduled`.
    pub desired: i32,
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// StatefulSet `status.updateRevision` and `status.currentRevision`.
    pub update_revision: Option<String>,
    pub current_revision: Option<String>,
    /// A Deployment's `Progressing` condition is `False` with reason
    /// `ProgressDeadlineExceeded`; its message.
    pub progress_deadline_exceeded: Option<String>,
    /// The pod template already names the new image (the image trigger
    /// has acted).
    pub template_has_new_image: bool,
}

/// One container of a pod that runs the new image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    pub ready: bool,
    /// `state.waiting.reason`, e.g. `CrashLoopBackOff`.
    pub waiting_reason: Option<String>,
    pub waiting_message: Option<String>,
    pub restart_count: i32,
}

/// A pod of the new revision (one whose containers name the new image),
/// not being deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    /// The consumer it belongs to (`kind`, name), as far as known.
    pub workload: Option<(WorkloadKind, String)>,
    pub containers: Vec<ContainerState>,
}

/// Why a rollout failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureReason {
    /// A Deployment's `progressDeadlineSeconds` passed.
    ProgressDeadlineExceeded,
    /// A container of the new image keeps exiting.
    CrashLoopBackOff,
    /// The new image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`,
    /// `InvalidImageName`, `ErrImageNeverPull`; the kubelet's word is kept).
    ImagePull(String),
    /// `verify.timeout` passed before every replica was updated and ready.
    NotReadyWithinTimeout,
    /// `verify.timeout` passed before the image trigger set the new image
    /// in the workload.
    ImageNotSetWithinTimeout,
}

impl FailureReason {
    /// The word for logs, Events and metrics.
    pub fn label(&self) -> &str {
        match self {
            FailureReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            FailureReason::CrashLoopBackOff => "CrashLoopBackOff",
            FailureReason::ImagePull(word) => word,
            FailureReason::NotReadyWithinTimeout => "NotReadyWithinTimeout",
            FailureReason::ImageNotSetWithinTimeout => "ImageNotSetWithinTimeout",
        }
    }
}

/// A failed rollout: where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: WorkloadKind,
    pub workload: String,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub reason: FailureReason,
    /// What the cluster said (the waiting message, the condition's message),
    /// or what was still missing at the timeout.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.workload)?;
        if let Some(pod) = &self.pod {
            write!(f, ", pod {pod}")?;
        }
        if let Some(container) = &self.container {
            write!(f, ", container {container}")?;
        }
        write!(f, ": {}", self.reason.label())?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

/// Where a rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not done yet; says what is awaited (for the log).
    InProgress {
        waiting_for: String,
    },
    /// Every consumer runs the new image on all its replicas, ready.
    Succeeded,
    Failed(Failure),
}

/// Waiting reasons that mean the image cannot be pulled.
const PULL_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// What a consumer still lacks, or `None` when it has rolled out.
pub fn missing(w: &WorkloadState) -> Option<String> {
    if !w.template_has_new_image {
        return Some("the image trigger to set the new image".to_owned());
    }
    if w.observed_generation < w.generation {
        return Some(format!(
            "the controller to observe generation {} (observed {})",
            w.generation, w.observed_generation
        ));
    }
    if w.updated < w.desired {
        return Some(format!("{}/{} replicas updated", w.updated, w.desired));
    }
    if w.ready < w.desired {
        return Some(format!("{}/{} updated replicas ready", w.ready, w.desired));
    }
    if w.replicas > w.desired {
        return Some(format!("{} old replicas to go", w.replicas - w.desired));
    }
    match w.kind {
        Some(WorkloadKind::StatefulSet) if w.update_revision != w.current_revision => {
            Some(format!(
                "currentRevision {} to reach updateRevision {}",
                w.current_revision.as_deref().unwrap_or("-"),
                w.update_revision.as_deref().unwrap_or("-")
            ))
        }
        Some(WorkloadKind::StatefulSet) => None,
        _ if w.available < w.desired => {
            Some(format!("{}/{} replicas available", w.available, w.desired))
        }
        _ => None,
    }
}

fn kind_of(w: &WorkloadState) -> WorkloadKind {
    w.kind.unwrap_or(WorkloadKind::Deployment)
}

/// The first container of a new pod that shows a failure, with its reason.
fn failing_container(pods: &[PodState]) -> Option<(&PodState, &ContainerState, FailureReason)> {
    pods.iter().find_map(|p| {
        p.containers.iter().find_map(|c| {
            let reason = match c.waiting_reason.as_deref()? {
                "CrashLoopBackOff" => FailureReason::CrashLoopBackOff,
                r if PULL_FAILURES.contains(&r) => FailureReason::ImagePull(r.to_owned()),
                _ => return None,
            };
            Some((p, c, reason))
        })
    })
}

/// The new pod of `w` that is not ready, and its first unready container.
fn unready_pod<'a>(
    w: &WorkloadState,
    pods: &'a [PodState],
) -> Option<(&'a PodState, &'a ContainerState)> {
    pods.iter()
        .filter(|p| {
            p.workload
                .as_ref()
                .is_none_or(|(k, n)| *k == kind_of(w) && *n == w.name)
        })
        .find_map(|p| p.containers.iter().find(|c| !c.ready).map(|c| (p, c)))
}

/// Where the rollout to the new image stands, `elapsed` after it started
/// (the import), against `timeout` (`verify.timeout`). With no consumers
/// there is nothing to wait for: succeeded.
///
/// Failures seen on the cluster win over success: a pod of the new image in
/// `CrashLoopBackOff` or failing to pull, or a Deployment past its progress
/// deadline, fails the rollout at once. Otherwise it succeeds when every
/// consumer has rolled out ([`missing`] is `None`), and fails once
/// `elapsed >= timeout` naming the first consumer still short.
pub fn verdict(
    workloads: &[WorkloadState],
    pods: &[PodState],
    elapsed: Duration,
    timeout: Duration,
) -> Verdict {
    if let Some((pod, container, reason)) = failing_container(pods) {
        let (kind, workload) = pod.workload.clone().unwrap_or_else(|| {
            workloads
                .first()
                .map(|w| (kind_of(w), w.name.clone()))
                .unwrap_or((WorkloadKind::Deployment, String::new()))
        });
        return Verdict::Failed(Failure {
            kind,
            workload,
            pod: Some(pod.name.clone()),
            container: Some(container.name.clone()),
            reason,
            message: container.waiting_message.clone().unwrap_or_default(),
        });
    }
    if let Some(w) = workloads
        .iter()
        .find(|w| w.template_has_new_image && w.progress_deadline_exceeded.is_some())
    {
        return Verdict::Failed(Failure {
            kind: kind_of(w),
            workload: w.name.clone(),
            pod: None,
            container: None,
            reason: FailureReason::ProgressDeadlineExceeded,
            message: w.progress_deadline_exceeded.clone().unwrap_or_default(),
        });
    }
    let Some((w, lacking)) = workloads.iter().find_map(|w| missing(w).map(|m| (w, m))) else {
        return Verdict::Succeeded;
    };
    if elapsed < timeout {
        return Verdict::InProgress {
            waiting_for: format!("{} {}: {lacking}", kind_of(w).name(), w.name),
        };
    }
    if !w.template_has_new_image {
        return Verdict::Failed(Failure {
            kind: kind_of(w),
            workload: w.name.clone(),
            pod: None,
            container: None,
            reason: FailureReason::ImageNotSetWithinTimeout,
            message: format!(
                "still waiting for {lacking}; check its image.openshift.io/triggers annotation"
            ),
        });
    }
    let unready = unready_pod(w, pods);
    let message = match unready.and_then(|(_, c)| c.waiting_reason.as_deref()) {
        Some(reason) => format!("{lacking}; the container waits: {reason}"),
        None => lacking,
    };
    Verdict::Failed(Failure {
        kind: kind_of(w),
        workload: w.name.clone(),
        pod: unready.map(|(p, _)| p.name.clone()),
        container: unready.map(|(_, c)| c.name.clone()),
        reason: FailureReason::NotReadyWithinTimeout,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(600);

    fn done(kind: WorkloadKind) -> WorkloadState {
        WorkloadState {
            kind: Some(kind),
            name: "worker".into(),
            generation: 3,
            observed_generation: 3,
            desired: 2,
            replicas: 2,
            updated: 2,
            ready: 2,
            available: 2,
            update_revision: Some("worker-2".into()),
            current_revision: Some("worker-2".into()),
            progress_deadline_exceeded: None,
            template_has_new_image: true,
        }
    }

    fn pod(reason: Option<&str>, ready: bool) -> PodState {
        PodState {
            name: "worker-abc".into(),
            workload: Some((WorkloadKind::Deployment, "worker".into())),
            containers: vec![ContainerState {
                name: "worker".into(),
                ready,
                waiting_reason: reason.map(str::to_owned),
                waiting_message: reason.map(|r| format!("{r} message")),
                restart_count: 0,
            }],
        }
    }

    #[test]
    fn what_a_consumer_still_lacks() {
        use WorkloadKind::*;
        let d = done(Deployment);
        let cases: Vec<(WorkloadState, Option<&str>)> = vec![
            (d.clone(), None),
            (done(StatefulSet), None),
            (done(DaemonSet), None),
            (
                WorkloadState {
                    template_has_new_image: false,
                    ..d.clone()
                },
                Some("the image trigger to set the new image"),
            ),
            (
                WorkloadState {
                    observed_generation: 2,
                    ..d.clone()
                },
                Some("the controller to observe generation 3 (observed 2)"),
            ),
            (
                WorkloadState {
                    observed_generation: 4,
                    ..d.clone()
                },
                None,
            ),
            (
                WorkloadState {
                    updated: 1,
                    ..d.clone()
                },
                Some("1/2 replicas updated"),
            ),
            (
                WorkloadState {
                    updated: 3,
                    ..d.clone()
                },
                None,
            ),
            (
                WorkloadState {
                    ready: 1,
                    ..d.clone()
                },
                Some("1/2 updated replicas ready"),
            ),
            (
                WorkloadState {
                    ready: 3,
                    ..d.clone()
                },
                None,
            ),
            (
                WorkloadState {
                    replicas: 3,
                    ..d.clone()
                },
                Some("1 old replicas to go"),
            ),
            (
                WorkloadState {
                    replicas: 1,
                    ..d.clone()
                },
                None,
            ),
            (
                WorkloadState {
                    available: 1,
                    ..d.clone()
                },
                Some("1/2 replicas available"),
            ),
            (
                WorkloadState {
                    available: 3,
                    ..d.clone()
                },
                None,
            ),
            (
                WorkloadState {
                    available: 1,
                    ..done(DaemonSet)
                },
                Some("1/2 replicas available"),
            ),
            (
                WorkloadState {
                    available: 1,
                    kind: None,
                    ..d.clone()
                },
                Some("1/2 replicas available"),
            ),
            // A StatefulSet counts revisions, not availability.
            (
                WorkloadState {
                    available: 0,
                    ..done(StatefulSet)
                },
                None,
            ),
            (
                WorkloadState {
                    current_revision: Some("worker-1".into()),
                    ..done(StatefulSet)
                },
                Some("currentRevision worker-1 to reach updateRevision worker-2"),
            ),
            (
                WorkloadState {
                    current_revision: None,
                    ..done(StatefulSet)
                },
                Some("currentRevision - to reach updateRevision worker-2"),
            ),
            (
                WorkloadState {
                    update_revision: None,
                    ..done(StatefulSet)
                },
                Some("currentRevision worker-2 to reach updateRevision -"),
            ),
            // Revisions mean nothing for a Deployment.
            (
                WorkloadState {
                    current_revision: Some("x".into()),
                    ..d.clone()
                },
                None,
            ),
        ];
        for (w, want) in cases {
            assert_eq!(missing(&w).as_deref(), want, "{w:?}");
        }
    }

    fn failed(v: Verdict) -> Failure {
        match v {
            Verdict::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn failing_pods_fail_the_rollout_at_once() {
        let rolling = WorkloadState {
            ready: 1,
            ..done(WorkloadKind::Deployment)
        };
        for (reason, want) in [
            ("CrashLoopBackOff", FailureReason::CrashLoopBackOff),
            (
                "ErrImagePull",
                FailureReason::ImagePull("ErrImagePull".into()),
            ),
            (
                "ImagePullBackOff",
                FailureReason::ImagePull("ImagePullBackOff".into()),
            ),
            (
                "InvalidImageName",
                FailureReason::ImagePull("InvalidImageName".into()),
            ),
            (
                "ErrImageNeverPull",
                FailureReason::ImagePull("ErrImageNeverPull".into()),
            ),
        ] {
            let f = failed(verdict(
                std::slice::from_ref(&rolling),
                &[pod(Some(reason), false)],
                Duration::ZERO,
                T,
            ));
            assert_eq!(f.reason, want);
            assert_eq!(f.reason.label(), reason);
            assert_eq!(f.pod.as_deref(), Some("worker-abc"));
            assert_eq!(f.container.as_deref(), Some("worker"));
            assert_eq!(
                (f.kind, f.workload.as_str()),
                (WorkloadKind::Deployment, "worker")
            );
            assert_eq!(f.message, format!("{reason} message"));
        }
        // Waiting for other reasons is a rollout still starting.
        for reason in ["ContainerCreating", "PodInitializing"] {
            assert!(matches!(
                verdict(
                    std::slice::from_ref(&rolling),
                    &[pod(Some(reason), false)],
                    Duration::ZERO,
                    T
                ),
                Verdict::InProgress { .. }
            ));
        }
    }

    #[test]
    fn a_failing_pod_of_unknown_owner_is_blamed_on_the_first_consumer() {
        let mut p = pod(Some("CrashLoopBackOff"), false);
        p.workload = None;
        let sts = WorkloadState {
            name: "db".into(),
            ..done(WorkloadKind::StatefulSet)
        };
        let f = failed(verdict(&[sts], &[p.clone()], Duration::ZERO, T));
        assert_eq!(
            (f.kind, f.workload.as_str()),
            (WorkloadKind::StatefulSet, "db")
        );
        let f = failed(verdict(&[], &[p], Duration::ZERO, T));
        assert_eq!(
            (f.kind, f.workload.as_str()),
            (WorkloadKind::Deployment, "")
        );
    }

    #[test]
    fn a_progress_deadline_fails_only_once_the_new_image_is_set() {
        let past = WorkloadState {
            progress_deadline_exceeded: Some(
                "ReplicaSet \"worker-1\" has timed out progressing.".into(),
            ),
            ready: 1,
            ..done(WorkloadKind::Deployment)
        };
        let f = failed(verdict(std::slice::from_ref(&past), &[], Duration::ZERO, T));
        assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
        assert_eq!(f.reason.label(), "ProgressDeadlineExceeded");
        assert_eq!(f.pod, None);
        assert!(f.message.contains("timed out progressing"));
        // A deadline left over from the previous image is not this rollout's.
        let stale = WorkloadState {
            template_has_new_image: false,
            ..past
        };
        assert!(matches!(
            verdict(&[stale], &[], Duration::ZERO, T),
            Verdict::InProgress { .. }
        ));
    }

    #[test]
    fn done_when_every_consumer_rolled_out() {
        let all = [
            done(WorkloadKind::Deployment),
            done(WorkloadKind::StatefulSet),
        ];
        assert_eq!(
            verdict(&all, &[pod(None, true)], Duration::ZERO, T),
            Verdict::Succeeded
        );
        // Past the timeout, done is still done.
        assert_eq!(verdict(&all, &[], T * 2, T), Verdict::Succeeded);
        assert_eq!(verdict(&[], &[], Duration::ZERO, T), Verdict::Succeeded);
    }

    #[test]
    fn the_timeout_fails_the_first_consumer_still_short() {
        let short = WorkloadState {
            ready: 1,
            ..done(WorkloadKind::StatefulSet)
        };
        let w = [done(WorkloadKind::Deployment), short];
        let just_before = verdict(&w, &[], T - Duration::from_millis(1), T);
        assert_eq!(
            just_before,
            Verdict::InProgress {
                waiting_for: "StatefulSet worker: 1/2 updated replicas ready".into()
            }
        );
        let mut p = pod(Some("ContainerCreating"), false);
        p.workload = Some((WorkloadKind::StatefulSet, "worker".into()));
        let other = PodState {
            name: "other".into(),
            workload: Some((WorkloadKind::Deployment, "worker".into())),
            ..pod(None, false)
        };
        let f = failed(verdict(&w, &[other, p], T, T));
        assert_eq!(f.reason, FailureReason::NotReadyWithinTimeout);
        assert_eq!(f.reason.label(), "NotReadyWithinTimeout");
        assert_eq!(
            (f.kind, f.workload.as_str()),
            (WorkloadKind::StatefulSet, "worker")
        );
        assert_eq!(f.pod.as_deref(), Some("worker-abc"));
        assert_eq!(f.container.as_deref(), Some("worker"));
        assert_eq!(
            f.message,
            "1/2 updated replicas ready; the container waits: ContainerCreating"
        );
        // No pod of the new image at all: the workload alone is named.
        let f = failed(verdict(&w, &[pod(None, true)], T, T));
        assert_eq!((f.pod, f.container), (None, None));
        assert_eq!(f.message, "1/2 updated replicas ready");
        // A pod without an owner may be the one.
        let mut orphan = pod(None, false);
        orphan.workload = None;
        let f = failed(verdict(&w, &[orphan], T, T));
        assert_eq!(f.pod.as_deref(), Some("worker-abc"));
    }

    #[test]
    fn a_trigger_that_never_acts_fails_at_the_timeout() {
        let w = WorkloadState {
            template_has_new_image: false,
            ..done(WorkloadKind::Deployment)
        };
        let f = failed(verdict(&[w], &[], T, T));
        assert_eq!(f.reason, FailureReason::ImageNotSetWithinTimeout);
        assert_eq!(f.reason.label(), "ImageNotSetWithinTimeout");
        assert!(
            f.message.contains("image.openshift.io/triggers"),
            "{}",
            f.message
        );
    }

    #[test]
    fn failures_read_as_one_line() {
        let f = Failure {
            kind: WorkloadKind::StatefulSet,
            workload: "worker".into(),
            pod: Some("worker-0".into()),
            container: Some("w".into()),
            reason: FailureReason::CrashLoopBackOff,
            message: "back-off".into(),
        };
        assert_eq!(
            f.to_string(),
            "StatefulSet worker, pod worker-0, container w: CrashLoopBackOff (back-off)"
        );
        let bare = Failure {
            pod: None,
            container: None,
            message: String::new(),
            ..f
        };
        assert_eq!(bare.to_string(), "StatefulSet worker: CrashLoopBackOff");
        assert_eq!(WorkloadKind::Deployment.name(), "Deployment");
        assert_eq!(WorkloadKind::DaemonSet.name(), "DaemonSet");
    }
}
