//! Reporting rollout checks: one log line per decision, an Event on the
//! ImageStream, the metrics, the notices, and the check's record in the
//! status ConfigMap.

use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use super::{short, Reporter};
use crate::events::{self, image_stream_ref, EventType};
use crate::notify::{self, Notice};
use crate::rollout::check::{finished, result_label, CheckJob};
use crate::rollout::follow::Consumer;
use crate::rollout::record::RolloutRecord;

fn stream_ref(job: &CheckJob) -> k8s_openapi::api::core::v1::ObjectReference {
    image_stream_ref(&job.namespace, &job.stream, job.stream_uid.clone())
}

fn consumers_text(consumers: &[Consumer]) -> String {
    consumers
        .iter()
        .map(|c| format!("{} {}", c.kind.name(), c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Reporter {
    /// Keeps `record` as the tag's rollout in the status ConfigMap.
    pub async fn rollout_record(&self, job: &CheckJob, record: &RolloutRecord) {
        let (stream, tag) = (job.stream.clone(), job.tag.clone());
        let record = record.clone();
        if let Err(e) = self
            .state
            .update(&job.env, |s| {
                s.record_rollout(&stream, &tag, record.clone());
            })
            .await
        {
            warn!(env = %job.env, stream = %job.stream, error = %e, "cannot write the status ConfigMap; a rollout check in progress is not resumed after a restart");
        }
    }

    /// The rollout checks of `env` kept in the status ConfigMap, by stream.
    pub async fn rollouts(&self, env: &str) -> Vec<(String, String, RolloutRecord)> {
        let all = match self.state.load().await {
            Ok(all) => all,
            Err(e) => {
                warn!(env, error = %e, "cannot read the status ConfigMap; rollout checks of an earlier run are not resumed");
                return Vec::new();
            }
        };
        let Some(s) = all.get(env) else {
            return Vec::new();
        };
        s.rollouts
            .iter()
            .filter_map(|(key, r)| {
                let (stream, tag) = key.rsplit_once(':')?;
                Some((stream.to_owned(), tag.to_owned(), r.clone()))
            })
            .collect()
    }

    /// A check starts (or resumes after a restart).
    pub fn rollout_started(&self, job: &CheckJob, resumed: bool) {
        let r = &job.record;
        let decision = if resumed {
            "rollout check resumed"
        } else {
            "rollout check started"
        };
        info!(env = %job.env, stream = %job.stream, tag = %job.tag, decision, digest = %short(Some(&r.digest)), previous = %short(r.previous_digest.as_deref()), pin_back = r.pin_back, already_elapsed_s = r.elapsed(Utc::now()).as_secs(), verify_timeout_s = job.policy.verify_timeout.as_secs(), "following the workloads that consume the tag");
    }

    /// No workload has an image trigger on the tag: nothing to verify.
    pub async fn rollout_unconsumed(&self, job: &CheckJob, unreadable: &[String]) {
        info!(env = %job.env, stream = %job.stream, tag = %job.tag, decision = "rollout not checked", digest = %short(Some(&job.record.digest)), unreadable = ?unreadable, "no Deployment, StatefulSet or DaemonSet of the namespace has an image trigger on this tag");
        let note = "no workload has an image trigger on the tag".to_owned();
        let record = finished(job, true, Some(note), Utc::now());
        self.rollout_record(job, &record).await;
    }

    /// Every consumer runs the image, ready.
    pub async fn rollout_succeeded(&self, job: &CheckJob, consumers: &[Consumer], took: Duration) {
        self.metrics
            .record_rollout(&job.env, result_label(job, true), took);
        let names = consumers_text(consumers);
        let digest = &job.record.digest;
        let (decision, note) = if job.record.pin_back {
            (
                "rollback succeeded",
                format!(
                    "{}:{} rolled back to {digest}: {names} run it, ready [{}]; the tag stays pinned until `import-scheduler restore --env {} --stream {}`",
                    job.stream, job.tag, job.env, job.env, job.stream
                ),
            )
        } else {
            (
                "rollout succeeded",
                format!(
                    "{}:{} {digest} rolled out: {names} run it, ready [{}]",
                    job.stream, job.tag, job.env
                ),
            )
        };
        info!(env = %job.env, stream = %job.stream, tag = %job.tag, decision, digest = %short(Some(digest)), workloads = %names, duration_s = took.as_secs(), "the workloads run the image");
        self.events
            .publish(
                &stream_ref(job),
                EventType::Normal,
                events::reason::ROLLOUT_SUCCEEDED,
                events::action::VERIFY,
                note,
            )
            .await;
        let record = finished(job, true, None, Utc::now());
        self.rollout_record(job, &record).await;
    }

    /// The rollout failed and nothing (more) is done about it: `failure`
    /// names workload, pod, container and reason; `next` says what was done
    /// and what a person should do.
    pub async fn rollout_failed(&self, job: &CheckJob, failure: &str, next: &str, took: Duration) {
        self.metrics
            .record_rollout(&job.env, result_label(job, false), took);
        let digest = &job.record.digest;
        let decision = if job.record.pin_back {
            "rollback failed"
        } else {
            "rollout failed"
        };
        warn!(env = %job.env, stream = %job.stream, tag = %job.tag, decision, digest = %short(Some(digest)), reason = %failure, duration_s = took.as_secs(), "{next}");
        self.events
            .publish(
                &stream_ref(job),
                EventType::Warning,
                events::reason::ROLLOUT_FAILED,
                events::action::VERIFY,
                format!(
                    "{}:{} {}rollout of {digest} failed [{}]: {failure}; {next}",
                    job.stream,
                    job.tag,
                    if job.record.pin_back { "rollback " } else { "" },
                    job.env
                ),
            )
            .await;
        self.notify(Notice::RolloutFailed(notify::RolloutFailed {
            env: job.env.clone(),
            stream: job.stream.clone(),
            tag: job.tag.clone(),
            digest: digest.clone(),
            reason: failure.to_owned(),
            next: next.to_owned(),
        }));
        let record = finished(job, false, Some(format!("{failure}; {next}")), Utc::now());
        self.rollout_record(job, &record).await;
    }

    /// The tag was pinned back to `reference` after `failure`; its own
    /// rollout is checked next.
    pub async fn pinned_back(
        &self,
        job: &CheckJob,
        reference: &str,
        failure: &str,
        took: Duration,
    ) {
        self.metrics.record_rollout(&job.env, "pinned_back", took);
        let digest = &job.record.digest;
        let to = reference.rsplit_once('@').map_or(reference, |(_, d)| d);
        warn!(env = %job.env, stream = %job.stream, tag = %job.tag, decision = "pinned back", digest = %short(Some(digest)), to = %short(Some(to)), reason = %failure, "the rollout failed: the tag is pinned to the image it had before; it stays pinned until `import-scheduler restore`");
        self.events
            .publish(
                &stream_ref(job),
                EventType::Warning,
                events::reason::ROLLOUT_FAILED,
                events::action::VERIFY,
                format!(
                    "{}:{} rollout of {digest} failed [{}]: {failure}; pinning back",
                    job.stream, job.tag, job.env
                ),
            )
            .await;
        self.events
            .publish(
                &stream_ref(job),
                EventType::Warning,
                events::reason::PINNED_BACK,
                events::action::PIN,
                format!(
                    "{}:{} pinned back from {digest} to {reference} by the scheduler [{}]: {failure}; after a fix: `import-scheduler restore --env {} --stream {}`",
                    job.stream, job.tag, job.env, job.env, job.stream
                ),
            )
            .await;
        self.notify(Notice::RolledBack(notify::RolledBack {
            env: job.env.clone(),
            stream: job.stream.clone(),
            tag: job.tag.clone(),
            from: digest.clone(),
            to: to.to_owned(),
            reason: failure.to_owned(),
        }));
        let record = RolloutRecord {
            previous_digest: Some(digest.clone()),
            ..job.record.finished(
                crate::rollout::record::phase::PINNED_BACK,
                Some(failure.to_owned()),
                Utc::now(),
            )
        };
        let mut record = record;
        record.digest = to.to_owned();
        record.pin_back = true;
        self.rollout_record(job, &record).await;
    }
}
