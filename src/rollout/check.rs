//! One rollout check, from an import that changed a tag to a verdict and
//! what follows it: the I/O around [`super::follow`] (reading the cluster),
//! [`super::pinback`] (the pure decision and the pin) and the reporter.
//!
//! A check runs as its own task (see [`super::tracker`]), never inside an
//! environment's round: a rollout takes minutes, a round seconds. Its
//! progress is kept in the status ConfigMap before it follows anything, so
//! a daemon that stops in the middle leaves a record the next leader
//! resumes with the time already spent counted against `verify.timeout`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tracing::debug;

use super::config::RolloutPolicy;
use super::follow::{follow, FollowSpec, DEFAULT_POLL_INTERVAL};
use super::pinback::{self, Action, FailedTag};
use super::record::{phase, RolloutRecord};
use super::verdict::{Failure, Verdict, WorkloadKind};
use crate::clock::SharedClock;
use crate::importer::Importer;
use crate::rbac::PIN_BACK_COMPONENT;
use crate::report::Reporter;

/// The tag a check is about, and where the check stands.
#[derive(Clone, Debug)]
pub struct CheckJob {
    pub env: String,
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// The ImageStream's uid, for its Events (read again when empty).
    pub stream_uid: Option<String>,
    pub policy: RolloutPolicy,
    /// What is kept in the status ConfigMap.
    pub record: RolloutRecord,
}

/// Called with the verdict of an import's rollout and when it was reached.
pub type OnVerdict = Arc<dyn Fn(Ended, DateTime<Utc>) + Send + Sync>;

/// What a check needs of the daemon.
#[derive(Clone)]
pub struct CheckContext {
    pub importer: Arc<Importer>,
    pub reporter: Reporter,
    pub clock: SharedClock,
    /// Time between two looks at the workloads.
    pub poll_interval: Duration,
    /// Told the verdict of the import's rollout as soon as it is known
    /// (before the check of a pin-back's own rollout), for the window summary.
    pub on_verdict: Option<OnVerdict>,
}

impl CheckContext {
    pub fn new(importer: Arc<Importer>, reporter: Reporter, clock: SharedClock) -> Self {
        CheckContext {
            importer,
            reporter,
            clock,
            poll_interval: DEFAULT_POLL_INTERVAL,
            on_verdict: None,
        }
    }
}

/// How the rollout an import caused ended, for the window summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Succeeded,
    /// Failed and only reported: why.
    Failed(String),
    /// Failed and pinned back to `to`.
    PinnedBack {
        to: String,
        reason: String,
    },
}

/// The result label of `rollouts_total` for a verdict of `job`.
pub fn result_label(job: &CheckJob, ok: bool) -> &'static str {
    match (job.record.pin_back, ok) {
        (false, true) => "succeeded",
        (false, false) => "failed",
        (true, true) => "rollback_succeeded",
        (true, false) => "rollback_failed",
    }
}

/// What a person reads after a failure that was not pinned back: why not,
/// and what to do.
pub fn next_after_report(job: &CheckJob, why: &str) -> String {
    if why.is_empty() {
        format!(
            "onFailedRollout is report: {}:{} stays on the new image; fix the image, or return to the previous one with `import-scheduler pin --env {} --stream {} --to-previous`",
            job.stream, job.tag, job.env, job.stream
        )
    } else {
        format!("not pinned back: {why}")
    }
}

/// The report after a pin-back the daemon was not allowed to make.
pub fn pin_back_forbidden(job: &CheckJob) -> String {
    format!(
        "onFailedRollout is pinBack, but the daemon may not patch imagestreams in namespace {}: add the component {PIN_BACK_COMPONENT} to that namespace's overlay (components: [../../components/pin-back]) and apply it; until then {}:{} stays on the new image (pin it by hand: `import-scheduler pin --env {} --stream {} --to-previous`)",
        job.namespace, job.stream, job.tag, job.env, job.stream
    )
}

/// The commands that free a StatefulSet stuck on pods of the failed image:
/// after a rollback, a StatefulSet does not replace a pod that never became
/// ready (Kubernetes' forced rollback); it must be deleted by a person.
pub fn stuck_pod_commands(namespace: &str, pods: &[String]) -> String {
    pods.iter()
        .map(|p| format!("`oc delete pod {p} -n {namespace}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of the pods of StatefulSet `name` that still run image `digest`.
async fn pods_on(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    digest: &str,
) -> kube::Result<Vec<String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(pods
        .items
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "StatefulSet" && o.name == name)
        })
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers.iter().any(|c| {
                    c.image
                        .as_deref()
                        .is_some_and(|i| i.rsplit_once('@').is_some_and(|(_, d)| d == digest))
                })
            })
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect())
}

/// Runs `job` until a verdict and what follows it (a pin-back and the
/// check of its own rollout). Returns how it ended.
pub async fn run(ctx: &CheckContext, mut job: CheckJob) -> Option<Ended> {
    // A resumed check of a pin-back's own rollout has no import verdict to tell.
    let mut ended = None;
    let tells = !job.record.pin_back;
    let verdict = |e: Ended, ended: &Option<Ended>| -> Option<Ended> {
        if ended.is_none() && tells {
            if let Some(tell) = &ctx.on_verdict {
                tell(e.clone(), ctx.clock.now());
            }
        }
        ended.clone().or(Some(e))
    };
    loop {
        ctx.reporter.rollout_record(&job, &job.record).await;
        let now = ctx.clock.now();
        let spec = FollowSpec {
            namespace: job.namespace.clone(),
            stream: job.stream.clone(),
            tag: job.tag.clone(),
            new_digest: job.record.digest.clone(),
            timeout: job.policy.verify_timeout,
            already_elapsed: job.record.elapsed(now),
            poll_interval: ctx.poll_interval,
        };
        let followed = follow(ctx.importer.client(), &spec).await;
        let took = job.record.elapsed(ctx.clock.now());
        let followed = match followed {
            Ok(f) => f,
            Err(e) => {
                let why = format!(
                    "cannot read the workloads of namespace {}: {e}",
                    job.namespace
                );
                ctx.reporter
                    .rollout_failed(&job, &why, "the rollout was not verified", took)
                    .await;
                return verdict(Ended::Failed(why), &ended);
            }
        };
        debug!(env = %job.env, stream = %job.stream, requests = followed.requests, "rollout check finished");
        if followed.consumers.is_empty() {
            ctx.reporter
                .rollout_unconsumed(&job, &followed.unreadable)
                .await;
            return verdict(Ended::Succeeded, &ended);
        }
        let failure = match followed.verdict {
            Verdict::Failed(f) => f,
            // follow() returns a verdict only.
            Verdict::Succeeded | Verdict::InProgress { .. } => {
                ctx.reporter
                    .rollout_succeeded(&job, &followed.consumers, took)
                    .await;
                return verdict(Ended::Succeeded, &ended);
            }
        };
        if job.record.pin_back {
            rollback_failed(ctx, &job, &failure, took).await;
            return ended;
        }
        match after_failure(ctx, &job, &failure, took).await {
            Some(back) => {
                ended = verdict(
                    Ended::PinnedBack {
                        to: back.record.digest.clone(),
                        reason: failure.to_string(),
                    },
                    &ended,
                );
                job = back;
            }
            None => return verdict(Ended::Failed(failure.to_string()), &ended),
        }
    }
}

/// The rollout back to the previous image failed too: reported, never
/// pinned again. A StatefulSet stuck on pods of the failed image gets the
/// command that frees it.
async fn rollback_failed(ctx: &CheckContext, job: &CheckJob, failure: &Failure, took: Duration) {
    let mut next = "the rollout back to the previous image failed too; nothing more is pinned, a person has to look".to_owned();
    if failure.kind == WorkloadKind::StatefulSet {
        let bad = job.record.previous_digest.as_deref().unwrap_or_default();
        match pods_on(
            ctx.importer.client(),
            &job.namespace,
            &failure.workload,
            bad,
        )
        .await
        {
            Ok(pods) if !pods.is_empty() => {
                next = format!(
                    "StatefulSet {} stays on pods of the failed image, which a StatefulSet does not replace by itself; run {} and it recreates them on the previous image",
                    failure.workload,
                    stuck_pod_commands(&job.namespace, &pods)
                );
            }
            Ok(_) => {}
            Err(e) => debug!(env = %job.env, error = %e, "cannot list the pods of the StatefulSet"),
        }
    }
    ctx.reporter
        .rollout_failed(job, &failure.to_string(), &next, took)
        .await;
}

/// After a failed rollout: the decision of `onFailedRollout` and, for a
/// pin-back, the pin. Returns the check of the pin-back's own rollout.
async fn after_failure(
    ctx: &CheckContext,
    job: &CheckJob,
    failure: &Failure,
    took: Duration,
) -> Option<CheckJob> {
    let reason = failure.to_string();
    let stream = match ctx.importer.stream(&job.namespace, &job.stream).await {
        Ok(s) => s,
        Err(e) => {
            let next = format!("cannot read the stream to decide what to do: {e}");
            ctx.reporter.rollout_failed(job, &reason, &next, took).await;
            return None;
        }
    };
    let tag = FailedTag {
        namespace: job.namespace.clone(),
        stream: job.stream.clone(),
        tag: job.tag.clone(),
        source: stream
            .spec_tag(&job.tag)
            .and_then(|t| t.docker_source())
            .unwrap_or_default()
            .to_owned(),
        new_digest: job.record.digest.clone(),
        history: stream
            .status_tag(&job.tag)
            .map(|t| t.items.clone())
            .unwrap_or_default(),
        before_digest: job.record.previous_digest.clone(),
        was_pin_back: job.record.pin_back,
    };
    let (reference, pinned_from) = match pinback::on_failure(job.policy.on_failed, &tag) {
        Action::Report { why } => {
            ctx.reporter
                .rollout_failed(job, &reason, &next_after_report(job, &why), took)
                .await;
            return None;
        }
        Action::PinBack {
            reference,
            pinned_from,
        } => (reference, pinned_from),
    };
    if let Err(e) = pinback::apply(&ctx.importer, &tag, &reference, &pinned_from, failure).await {
        let next = if e.status_code() == Some(403) {
            pin_back_forbidden(job)
        } else {
            format!(
                "pinning back failed: {e}; {}:{} stays on the new image",
                job.stream, job.tag
            )
        };
        ctx.reporter.rollout_failed(job, &reason, &next, took).await;
        return None;
    }
    let before = tag.before_digest.clone().unwrap_or_default();
    ctx.reporter
        .pinned_back(job, &reference, &reason, took)
        .await;
    Some(CheckJob {
        record: RolloutRecord {
            pin_back: true,
            reason: Some(reason),
            ..RolloutRecord::checking(&before, Some(&job.record.digest), ctx.clock.now())
        },
        ..job.clone()
    })
}

/// The record of `job` after its verdict.
pub fn finished(
    job: &CheckJob,
    ok: bool,
    reason: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> RolloutRecord {
    let state = match (ok, job.record.pin_back) {
        (true, true) => phase::PINNED_BACK,
        (true, false) => phase::SUCCEEDED,
        (false, _) => phase::FAILED,
    };
    // A pin-back keeps the failure that caused it as its reason.
    let reason = if ok && job.record.pin_back {
        job.record.reason.clone()
    } else {
        reason
    };
    job.record.finished(state, reason, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::config::OnFailedRollout;

    fn job(pin_back: bool) -> CheckJob {
        CheckJob {
            env: "prod".into(),
            namespace: "packit-prod".into(),
            stream: "worker".into(),
            tag: "prod".into(),
            stream_uid: None,
            policy: RolloutPolicy {
                verify_timeout: Duration::from_secs(60),
                on_failed: OnFailedRollout::PinBack,
            },
            record: RolloutRecord {
                pin_back,
                reason: pin_back.then(|| "CrashLoopBackOff".to_owned()),
                ..RolloutRecord::checking(
                    "sha256:new",
                    Some("sha256:old"),
                    chrono::DateTime::default(),
                )
            },
        }
    }

    #[test]
    fn results_tell_a_rollback_apart() {
        assert_eq!(result_label(&job(false), true), "succeeded");
        assert_eq!(result_label(&job(false), false), "failed");
        assert_eq!(result_label(&job(true), true), "rollback_succeeded");
        assert_eq!(result_label(&job(true), false), "rollback_failed");
    }

    #[test]
    fn a_finished_pin_back_keeps_the_failure_that_caused_it() {
        let at = chrono::DateTime::default();
        let back = finished(&job(true), true, Some("ignored".into()), at);
        assert_eq!(back.state, phase::PINNED_BACK);
        assert_eq!(back.reason.as_deref(), Some("CrashLoopBackOff"));
        let failed = finished(&job(true), false, Some("stuck".into()), at);
        assert_eq!(failed.state, phase::FAILED);
        assert_eq!(failed.reason.as_deref(), Some("stuck"));
        let ok = finished(&job(false), true, None, at);
        assert_eq!(ok.state, phase::SUCCEEDED);
    }

    #[test]
    fn reports_say_what_to_do() {
        let j = job(false);
        assert!(next_after_report(&j, "")
            .contains("`import-scheduler pin --env prod --stream worker --to-previous`"));
        assert_eq!(
            next_after_report(&j, "the tag had no image before this import"),
            "not pinned back: the tag had no image before this import"
        );
        let forbidden = pin_back_forbidden(&j);
        assert!(
            forbidden.contains("may not patch imagestreams in namespace packit-prod")
                && forbidden.contains("manifests/components/pin-back"),
            "{forbidden}"
        );
        assert_eq!(
            stuck_pod_commands("ns", &["w-0".into(), "w-1".into()]),
            "`oc delete pod w-0 -n ns`, `oc delete pod w-1 -n ns`"
        );
    }
}
