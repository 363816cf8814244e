//! A rollout check as kept in the status ConfigMap (per environment, per
//! tag, in [`crate::state::TagState::rollout`]), so a restarted daemon or a
//! new leader resumes a check in progress instead of losing it, and
//! `status` shows each tag's last rollout.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Values of [`RolloutRecord::state`]. Stored as strings so a value from
/// another version survives a write by this one.
pub mod phase {
    /// The check runs (or ran when the daemon stopped: it is resumed).
    pub const CHECKING: &str = "checking";
    /// Every consumer runs the new image, ready.
    pub const SUCCEEDED: &str = "succeeded";
    /// The rollout failed and was only reported (or the rollback failed).
    pub const FAILED: &str = "failed";
    /// The rollout failed and the tag was pinned back to the image before.
    pub const PINNED_BACK: &str = "pinnedBack";
}

/// One tag's last rollout check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutRecord {
    /// The image being rolled out (`sha256:...`).
    pub digest: String,
    /// The image the tag had before (for a pin-back: the image it replaced).
    pub previous_digest: Option<String>,
    /// When the check started; `verify.timeout` counts from here, also
    /// across restarts.
    pub started_at: DateTime<Utc>,
    /// One of [`phase`]'s values.
    pub state: String,
    /// Why it failed or was pinned back; for a success, a note (e.g. that
    /// no workload consumes the tag).
    pub reason: Option<String>,
    /// This check follows the daemon's own pin-back: its failure is only
    /// reported, never pinned back again.
    pub pin_back: bool,
    /// When the verdict was reached.
    pub finished_at: Option<DateTime<Utc>>,
}

impl RolloutRecord {
    /// A check of `digest` starting at `at`.
    pub fn checking(digest: &str, previous: Option<&str>, at: DateTime<Utc>) -> Self {
        RolloutRecord {
            digest: digest.to_owned(),
            previous_digest: previous.map(str::to_owned),
            started_at: at,
            state: phase::CHECKING.to_owned(),
            ..RolloutRecord::default()
        }
    }

    /// Whether the check has no verdict yet.
    pub fn in_progress(&self) -> bool {
        self.state == phase::CHECKING
    }

    /// How long the check has run at `now` (zero if `now` is before its
    /// start, e.g. a clock that moved back).
    pub fn elapsed(&self, now: DateTime<Utc>) -> Duration {
        (now - self.started_at).to_std().unwrap_or_default()
    }

    /// The record with its verdict `state` and `reason`, reached at `at`.
    pub fn finished(&self, state: &str, reason: Option<String>, at: DateTime<Utc>) -> Self {
        RolloutRecord {
            state: state.to_owned(),
            reason,
            finished_at: Some(at),
            ..self.clone()
        }
    }

    /// One line for people: `checking sha256:… since …`, `pinned back from …`.
    pub fn describe(&self) -> String {
        let digest = crate::image_ref::short_digest(&self.digest);
        let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
        let reason = self
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let back = if self.pin_back { " (rollback)" } else { "" };
        match self.state.as_str() {
            phase::CHECKING => format!(
                "checking rollout{back} of {digest} since {}",
                when(self.started_at)
            ),
            phase::PINNED_BACK => {
                let from = self
                    .previous_digest
                    .as_deref()
                    .map(crate::image_ref::short_digest)
                    .unwrap_or_default();
                format!("pinned back to {digest} from {from}{reason}")
            }
            state => format!(
                "rollout{back} of {digest} {state}{}{reason}",
                self.finished_at
                    .map(|t| format!(" at {}", when(t)))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Which of `records` (stream name, record) to resume after a restart:
/// those still checking, except the streams in `running` (already followed
/// by this process, so never started twice).
pub fn to_resume<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a RolloutRecord)>,
    running: &[String],
) -> Vec<(String, RolloutRecord)> {
    records
        .into_iter()
        .filter(|(stream, r)| r.in_progress() && !running.iter().any(|s| s == stream))
        .map(|(stream, r)| (stream.to_owned(), r.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn elapsed_counts_from_the_start_and_never_goes_negative() {
        let r = RolloutRecord::checking(NEW, Some(OLD), t("2026-12-01T10:00:00Z"));
        assert!(r.in_progress());
        assert_eq!(
            r.elapsed(t("2026-12-01T10:01:30Z")),
            Duration::from_secs(90)
        );
        assert_eq!(r.elapsed(t("2026-12-01T09:00:00Z")), Duration::ZERO);
        let done = r.finished(phase::SUCCEEDED, None, t("2026-12-01T10:02:00Z"));
        assert!(!done.in_progress());
        assert_eq!(done.started_at, r.started_at);
        assert_eq!(done.finished_at, Some(t("2026-12-01T10:02:00Z")));
    }

    #[test]
    fn only_checks_in_progress_and_not_running_are_resumed() {
        let at = t("2026-12-01T10:00:00Z");
        let checking = RolloutRecord::checking(NEW, Some(OLD), at);
        let done = checking.finished(phase::FAILED, Some("x".into()), at);
        let records = [("a", &checking), ("b", &done), ("c", &checking)];
        let resumed = to_resume(records, &["c".to_owned()]);
        assert_eq!(resumed, vec![("a".to_owned(), checking.clone())]);
    }

    #[test]
    fn descriptions_name_the_state_and_the_reason() {
        let at = t("2026-12-01T10:00:00Z");
        let r = RolloutRecord::checking(NEW, Some(OLD), at);
        assert_eq!(
            r.describe(),
            "checking rollout of 222222222222 since 2026-12-01 10:00:00Z"
        );
        assert_eq!(
            r.finished(phase::FAILED, Some("Deployment w: CrashLoopBackOff".into()), at)
                .describe(),
            "rollout of 222222222222 failed at 2026-12-01 10:00:00Z: Deployment w: CrashLoopBackOff"
        );
        let back = RolloutRecord {
            pin_back: true,
            ..RolloutRecord::checking(OLD, Some(NEW), at)
        };
        assert_eq!(
            back.finished(phase::PINNED_BACK, Some("bad".into()), at)
                .describe(),
            "pinned back to 111111111111 from 222222222222: bad"
        );
        assert!(back
            .describe()
            .starts_with("checking rollout (rollback) of 111111111111"));
    }

    #[test]
    fn records_read_with_missing_fields_and_keep_unknown_states() {
        let r: RolloutRecord =
            serde_json::from_str(r#"{"digest": "sha256:1", "state": "paused"}"#).unwrap();
        assert_eq!(r.state, "paused");
        assert!(!r.in_progress());
        let text = serde_json::to_string(&RolloutRecord::checking(
            NEW,
            None,
            t("2026-12-01T10:00:00Z"),
        ))
        .unwrap();
        assert!(
            text.contains("\"startedAt\":\"2026-12-01T10:00:00Z\""),
            "{text}"
        );
        assert!(text.contains("\"previousDigest\":null"), "{text}");
    }
}
