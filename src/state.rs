//! State that survives restarts and failovers: what each environment did in
//! which window, kept in a status ConfigMap owned by the daemon.
//!
//! Layout: one data key per environment, holding [`EnvState`] as JSON
//! (camelCase). Unknown fields are ignored and missing ones take defaults, so
//! older and newer versions of the daemon read each other's state.
//!
//! A value that cannot be parsed never takes the other environments down: it
//! is logged, treated as empty, and on the next write of that environment the
//! raw text is kept under `<env>.corrupt` for a person to inspect (and delete).
//!
//! Writes are read-modify-write with the ConfigMap's `resourceVersion` as a
//! precondition; a 409 Conflict re-reads and re-applies the change.
//!
//! Nothing is written when nothing changed: the store remembers what it last
//! read or wrote for each environment, and an update that changes only
//! timestamps (`updatedAt`, a tag's `at` when its outcome repeats) makes no
//! request at all until that copy is [`CHECKED_REFRESH`] old. So an idle
//! immediate-mode environment polled every minute costs no status requests
//! between refreshes, and a repeated outcome's `at` ("last checked") is at
//! most [`CHECKED_REFRESH`] behind; the metric
//! `last_success_timestamp_seconds` has the exact time.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    Api, Client,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::outcome::OutcomeKind;

/// Suffix of the key that keeps an environment's unreadable value.
pub const CORRUPT_SUFFIX: &str = ".corrupt";

/// Window summaries kept per environment.
pub const HISTORY_LIMIT: usize = 20;

const MAX_ATTEMPTS: u32 = 16;

/// How stale the stored timestamps of an otherwise unchanged state may get
/// before it is written anyway: at most two requests (read and patch) per
/// environment per half hour while idle, and `status` never shows a last
/// check more than half an hour old while the daemon runs.
pub const CHECKED_REFRESH: Duration = Duration::from_secs(30 * 60);

/// Outcome values used in [`TagState::last_outcome`] and counted in
/// [`WindowSummary`]: the labels of [`OutcomeKind`]. Stored as strings so
/// unknown values from other versions survive.
pub mod outcome {
    use crate::outcome::OutcomeKind;

    /// A new image was imported.
    pub const UPDATED: &str = OutcomeKind::Updated.label();
    /// The import found the image already there.
    pub const UNCHANGED: &str = OutcomeKind::Unchanged.label();
    /// The import failed (see `lastError`).
    pub const FAILED: &str = OutcomeKind::Failed.label();
    /// The tag is pinned to a digest and was not imported.
    pub const HELD: &str = OutcomeKind::Held.label();
}

/// What one environment did, persisted as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvState {
    /// The window being worked on or last worked on (windowed mode).
    pub window_id: Option<String>,
    /// Its start.
    pub window_start: Option<DateTime<Utc>>,
    /// Its end.
    pub window_end: Option<DateTime<Utc>>,
    /// Per target tag, keyed `stream:tag` (see [`tag_key`]).
    pub tags: BTreeMap<String, TagState>,
    /// The last window that closed with a tag not imported.
    pub last_missed_window: Option<String>,
    /// Summaries of earlier windows, oldest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<WindowSummary>,
    /// When this state was last written.
    pub updated_at: Option<DateTime<Utc>>,
    /// Freezes set with the `freeze` command, on top of the configured ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<crate::manual_freeze::ManualFreeze>,
    /// The freeze the receivers were last told about (`None`: none, or
    /// its lifting was told), so a restart does not tell it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_announced: Option<crate::freeze_in_force::FreezeInForce>,
    /// Approvals given with the `approve` command (the approval gate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::gates::approval::Approval>,
    /// Per stream, the gates that held its import at the last check in a
    /// window; a stream that imported or passed is absent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gated: BTreeMap<String, crate::gates::GatedTag>,
    /// Per tag (`stream:tag`), the last rollout check after an import
    /// changed it. Kept apart from [`EnvState::tags`] so a check's record
    /// never stands for an import outcome that was not written (a restart
    /// between the two writes).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rollouts: BTreeMap<String, crate::rollout::record::RolloutRecord>,
}

/// The last thing that happened to one tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TagState {
    /// One of [`outcome`]'s values (others from newer versions are kept).
    pub last_outcome: String,
    /// Digest the tag pointed to before the import.
    pub digest_before: Option<String>,
    /// Digest after the import.
    pub digest_after: Option<String>,
    /// When the outcome happened.
    pub at: DateTime<Utc>,
    /// Attempts in the current window (or since the last success).
    pub attempts: u32,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Whether the tag was imported (updated or unchanged) in the current window.
    pub imported_in_window: bool,
    /// The window of this outcome; `None` in immediate mode.
    pub window_id: Option<String>,
}

impl TagState {
    /// The kind of [`TagState::last_outcome`]; `None` for a value this
    /// version does not know.
    pub fn outcome_kind(&self) -> Option<OutcomeKind> {
        OutcomeKind::from_label(&self.last_outcome)
    }
}

/// Counts of one finished window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WindowSummary {
    /// The window.
    pub window_id: String,
    /// Its start.
    pub start: Option<DateTime<Utc>>,
    /// Its end.
    pub end: Option<DateTime<Utc>>,
    /// Tags whose last outcome in the window was `updated`.
    pub updated: u32,
    /// ... `unchanged`.
    pub unchanged: u32,
    /// ... `failed`.
    pub failed: u32,
    /// ... `held`.
    pub held: u32,
    /// Whether the window was reported as missed.
    pub missed: bool,
}

/// The key of a tag in [`EnvState::tags`].
pub fn tag_key(stream: &str, tag: &str) -> String {
    format!("{stream}:{tag}")
}

impl EnvState {
    /// Parses a stored value.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether `other` differs from this state only in when things were
    /// last checked or written (`updatedAt`, the tags' `at`).
    pub fn same_apart_from_times(&self, other: &EnvState) -> bool {
        fn without_times(state: &EnvState) -> EnvState {
            let mut state = state.clone();
            state.updated_at = None;
            for tag in state.tags.values_mut() {
                tag.at = DateTime::default();
            }
            state
        }
        without_times(self) == without_times(other)
    }

    /// Whether `next` (this state after a change) needs writing at `now`:
    /// something besides timestamps changed, or this copy is older than
    /// [`CHECKED_REFRESH`] (or has no `updatedAt`).
    pub fn needs_write(&self, next: &EnvState, now: DateTime<Utc>) -> bool {
        let fresh = self.updated_at.is_some_and(|at| {
            now.signed_duration_since(at)
                .to_std()
                .is_ok_and(|age| age < CHECKED_REFRESH)
        });
        !fresh || !self.same_apart_from_times(next)
    }

    /// The state of `stream:tag`, created empty if absent.
    pub fn tag_mut(&mut self, stream: &str, tag: &str) -> &mut TagState {
        self.tags.entry(tag_key(stream, tag)).or_default()
    }

    /// Keeps the tag's latest rollout check. It leaves [`EnvState::tags`]
    /// alone: a check's record written before the import's outcome must not
    /// make an outcome-less tag entry (read as an unknown outcome after a
    /// restart between the two writes).
    pub fn record_rollout(
        &mut self,
        stream: &str,
        tag: &str,
        record: crate::rollout::record::RolloutRecord,
    ) {
        self.rollouts.insert(tag_key(stream, tag), record);
    }

    /// Counts of the current window, from the tags whose last outcome
    /// happened in it.
    pub fn summary(&self) -> Option<WindowSummary> {
        let window_id = self.window_id.clone()?;
        let mut summary = WindowSummary {
            window_id,
            start: self.window_start,
            end: self.window_end,
            missed: self.last_missed_window == self.window_id,
            ..WindowSummary::default()
        };
        for tag in self
            .tags
            .values()
            .filter(|tag| tag.window_id == self.window_id)
        {
            match tag.outcome_kind() {
                Some(OutcomeKind::Updated) => summary.updated += 1,
                Some(OutcomeKind::Unchanged) => summary.unchanged += 1,
                Some(OutcomeKind::Failed) => summary.failed += 1,
                Some(OutcomeKind::Held) => summary.held += 1,
                None => {}
            }
        }
        Some(summary)
    }

    /// Enters window `window_id`. The same window again (restart, failover)
    /// changes nothing and returns `false`: the window resumes. A new window
    /// archives the previous one's summary and clears per-window tag flags.
    pub fn begin_window(
        &mut self,
        window_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        if self.window_id.as_deref() == Some(window_id) {
            return false;
        }
        if let Some(summary) = self.summary() {
            self.history
                .retain(|old| old.window_id != summary.window_id);
            self.history.push(summary);
            let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
            self.history.drain(..excess);
        }
        self.window_id = Some(window_id.to_owned());
        self.window_start = Some(start);
        self.window_end = Some(end);
        for tag in self.tags.values_mut() {
            tag.imported_in_window = false;
            tag.attempts = 0;
        }
        true
    }
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The API refused or failed.
    #[error("cannot {action} status ConfigMap {namespace}/{name}: {source}; check that the service account may get, create and patch configmaps there")]
    Api {
        /// read, create or update.
        action: &'static str,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Other writers kept winning.
    #[error("status ConfigMap {namespace}/{name} changed concurrently {attempts} times in a row while updating environment {env}; another process is writing it constantly, check for a second daemon without leader election")]
    Contended {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Its name.
        name: String,
        /// The environment being updated.
        env: String,
        /// How often it was tried.
        attempts: u32,
    },
    /// The environment name cannot be a ConfigMap key.
    #[error("environment name {0:?} cannot be a status key: use letters, digits, '-', '_' and '.', at most 253 characters, not ending in \".corrupt\"")]
    InvalidEnv(String),
    /// Serialising the state failed (not expected for these types).
    #[error("cannot serialise state of environment {env}: {source}")]
    Serialize {
        /// The environment.
        env: String,
        /// The serialiser's error.
        source: serde_json::Error,
    },
}

/// Reads and writes the status ConfigMap.
#[derive(Clone)]
pub struct StateStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    /// Each environment's state as last read or written. Held across an
    /// update, so this process's writes happen one at a time and the copy is
    /// always the latest it knows.
    known: Arc<Mutex<BTreeMap<String, EnvState>>>,
}

fn valid_key(env: &str) -> bool {
    !env.is_empty()
        && env.len() + CORRUPT_SUFFIX.len() <= 253
        && !env.ends_with(CORRUPT_SUFFIX)
        && env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "image-import-scheduler".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "status".to_owned(),
        ),
    ])
}

/// Parses one environment's value; a corrupt one is logged and read as empty.
fn parse_env(
    namespace: &str,
    name: &str,
    env: &str,
    raw: &str,
) -> Result<EnvState, serde_json::Error> {
    EnvState::from_json(raw).inspect_err(|error| {
        tracing::warn!(
            env,
            configmap = %format!("{namespace}/{name}"),
            %error,
            "unreadable state for environment; treating it as empty (raw value kept under key {env}{CORRUPT_SUFFIX} on next write)"
        );
    })
}

impl StateStore {
    /// A store for ConfigMap `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        StateStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            known: Arc::default(),
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> StateError {
        StateError::Api {
            action,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// The status ConfigMap's namespace and name.
    pub fn object(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }

    /// Every environment's state; a missing ConfigMap is no state at all.
    /// What this store remembers is replaced by what was read (another
    /// process may have written since, e.g. before a failover).
    pub async fn load(&self) -> Result<BTreeMap<String, EnvState>, StateError> {
        let mut known = self.known.lock().await;
        known.clear();
        let states = self.read().await?;
        for (env, state) in &states {
            if let Some(state) = state {
                known.insert(env.clone(), state.clone());
            }
        }
        Ok(states
            .into_iter()
            .map(|(env, state)| (env, state.unwrap_or_default()))
            .collect())
    }

    /// Every environment's state as the ConfigMap holds it now, read without
    /// waiting for this store's writes (what it remembers is left alone).
    /// An environment whose state cannot be parsed is empty.
    pub async fn read_now(&self) -> Result<BTreeMap<String, EnvState>, StateError> {
        Ok(self
            .read()
            .await?
            .into_iter()
            .map(|(env, state)| (env, state.unwrap_or_default()))
            .collect())
    }

    /// One read of the ConfigMap: each environment's state, `None` when it
    /// cannot be parsed (not remembered: the next update reads it and keeps
    /// the raw text).
    async fn read(&self) -> Result<BTreeMap<String, Option<EnvState>>, StateError> {
        let Some(config_map) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| self.api_error("read", source))?
        else {
            return Ok(BTreeMap::new());
        };
        Ok(config_map
            .data
            .unwrap_or_default()
            .into_iter()
            .filter(|(env, _)| !env.ends_with(CORRUPT_SUFFIX))
            .map(|(env, raw)| {
                let state = parse_env(&self.namespace, &self.name, &env, &raw).ok();
                (env, state)
            })
            .collect())
    }

    /// Applies `f` to environment `env`'s state and stores the result, with
    /// optimistic concurrency: on a conflict the ConfigMap is read again and
    /// `f` applied again, so `f` must only depend on its argument. Makes no
    /// request if `f` changes nothing but timestamps and the remembered copy
    /// is younger than [`CHECKED_REFRESH`]; returns that copy then.
    pub async fn update(
        &self,
        env: &str,
        f: impl Fn(&mut EnvState),
    ) -> Result<EnvState, StateError> {
        if !valid_key(env) {
            return Err(StateError::InvalidEnv(env.to_owned()));
        }
        let mut known = self.known.lock().await;
        if let Some(previous) = known.get(env) {
            let mut next = previous.clone();
            f(&mut next);
            if !previous.needs_write(&next, Utc::now()) {
                return Ok(previous.clone());
            }
        }
        let state = self.write(env, f).await?;
        known.insert(env.to_owned(), state.clone());
        Ok(state)
    }

    /// Read, apply `f`, patch; again on a conflict. Skips the patch if the
    /// state read needs no write.
    async fn write(&self, env: &str, f: impl Fn(&mut EnvState)) -> Result<EnvState, StateError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let current = self
                .api
                .get_opt(&self.name)
                .await
                .map_err(|source| self.api_error("read", source))?;
            let raw = current
                .as_ref()
                .and_then(|cm| cm.data.as_ref())
                .and_then(|data| data.get(env));
            let (mut state, corrupt) = match raw {
                None => (EnvState::default(), None),
                Some(raw) => match parse_env(&self.namespace, &self.name, env, raw) {
                    Ok(state) => (state, None),
                    Err(_) => (EnvState::default(), Some(raw.clone())),
                },
            };
            let now = Utc::now();
            let read = (corrupt.is_none() && raw.is_some()).then(|| state.clone());
            f(&mut state);
            if let Some(read) = read {
                if !read.needs_write(&state, now) {
                    return Ok(read);
                }
            }
            state.updated_at = Some(now);
            let value = serde_json::to_string(&state).map_err(|source| StateError::Serialize {
                env: env.to_owned(),
                source,
            })?;
            let mut data = BTreeMap::from([(env.to_owned(), value)]);
            if let Some(corrupt) = corrupt {
                data.insert(format!("{env}{CORRUPT_SUFFIX}"), corrupt);
            }
            let written = match current {
                None => self.create(data).await,
                Some(current) => self.patch(current.metadata.resource_version, data).await,
            };
            match written {
                Ok(()) => return Ok(state),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::debug!(
                        env,
                        attempt,
                        "status ConfigMap changed concurrently; retrying"
                    );
                }
                Err(source) => return Err(self.api_error("update", source)),
            }
        }
        Err(StateError::Contended {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            env: env.to_owned(),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn create(&self, data: BTreeMap<String, String>) -> Result<(), kube::Error> {
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        self.api
            .create(&PostParams::default(), &config_map)
            .await
            .map(drop)
    }

    async fn patch(
        &self,
        resource_version: Option<String>,
        data: BTreeMap<String, String>,
    ) -> Result<(), kube::Error> {
        // A resourceVersion in a patch is a precondition: 409 if it moved on.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": resource_version, "labels": labels() },
            "data": data,
        });
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    Duration::from_millis(rand::rng().random_range(base / 2..=base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_rollout_record_makes_no_tag_entry_and_survives_a_round_trip() {
        use crate::rollout::record::RolloutRecord;
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 29, 19).unwrap();
        let mut s = EnvState::default();
        s.record_rollout("s0", "prod", RolloutRecord::checking("sha256:aa", None, at));
        assert!(s.tags.is_empty(), "{:?}", s.tags);
        let back: EnvState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.rollouts.get("s0:prod"), s.rollouts.get("s0:prod"));
        assert!(back.rollouts.contains_key("s0:prod"));
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, hour, 0, 0).unwrap()
    }

    #[test]
    fn reads_old_and_new_versions() {
        // Missing fields take defaults, unknown ones are ignored.
        let state = EnvState::from_json(
            r#"{"windowId":"prod-1","tags":{"w:prod":{"lastOutcome":"updated","futureField":1}},"somethingNew":true}"#,
        )
        .unwrap();
        assert_eq!(state.window_id.as_deref(), Some("prod-1"));
        let tag = &state.tags["w:prod"];
        assert_eq!(tag.last_outcome, "updated");
        assert_eq!(tag.attempts, 0);
        assert!(state.history.is_empty());
        assert_eq!(EnvState::from_json("{}").unwrap(), EnvState::default());
        assert!(EnvState::from_json("not json").is_err());
    }

    /// `lastOutcome` holds the outcome kind's label, as deployed state has
    /// it; a value of another version is kept and counted as none.
    #[test]
    fn outcomes_are_stored_as_their_labels() {
        for (kind, label) in [
            (OutcomeKind::Updated, "updated"),
            (OutcomeKind::Unchanged, "unchanged"),
            (OutcomeKind::Held, "held"),
            (OutcomeKind::Failed, "failed"),
        ] {
            let tag = TagState {
                last_outcome: kind.label().into(),
                ..TagState::default()
            };
            assert_eq!(serde_json::to_value(&tag).unwrap()["lastOutcome"], label);
            assert_eq!(tag.outcome_kind(), Some(kind));
        }
        let other = EnvState::from_json(
            r#"{"windowId":"w1","tags":{"w:prod":{"lastOutcome":"deferred","windowId":"w1"}}}"#,
        )
        .unwrap();
        assert_eq!(other.tags["w:prod"].outcome_kind(), None);
        assert_eq!(
            serde_json::to_value(&other).unwrap()["tags"]["w:prod"]["lastOutcome"],
            "deferred"
        );
        let summary = other.summary().unwrap();
        assert_eq!(
            (
                summary.updated,
                summary.unchanged,
                summary.failed,
                summary.held
            ),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn round_trips_in_camel_case() {
        let mut state = EnvState::default();
        state.begin_window("prod-1", at(1), at(2));
        let tag = state.tag_mut("packit-worker", "prod");
        tag.last_outcome = outcome::UPDATED.into();
        tag.digest_after = Some("sha256:aa".into());
        tag.imported_in_window = true;
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains("\"windowId\":\"prod-1\""), "{text}");
        assert!(text.contains("\"packit-worker:prod\""), "{text}");
        assert!(text.contains("\"importedInWindow\":true"), "{text}");
        assert_eq!(EnvState::from_json(&text).unwrap(), state);
    }

    #[test]
    fn same_window_resumes_new_window_archives() {
        let mut state = EnvState::default();
        assert!(state.begin_window("w1", at(1), at(2)));
        for (stream, outcome) in [
            ("a", outcome::UPDATED),
            ("b", outcome::FAILED),
            ("c", outcome::HELD),
        ] {
            let tag = state.tag_mut(stream, "prod");
            tag.last_outcome = outcome.into();
            tag.window_id = Some("w1".into());
            tag.attempts = 3;
            tag.imported_in_window = outcome == outcome::UPDATED;
        }
        state.last_missed_window = Some("w1".into());
        assert!(
            !state.begin_window("w1", at(1), at(2)),
            "same window resumes"
        );
        assert!(state.tags["a:prod"].imported_in_window);

        assert!(state.begin_window("w2", at(3), at(4)));
        assert_eq!(
            state.history,
            vec![WindowSummary {
                window_id: "w1".into(),
                start: Some(at(1)),
                end: Some(at(2)),
                updated: 1,
                unchanged: 0,
                failed: 1,
                held: 1,
                missed: true,
            }]
        );
        assert!(state
            .tags
            .values()
            .all(|tag| !tag.imported_in_window && tag.attempts == 0));
        assert_eq!(
            state.summary().unwrap().updated,
            0,
            "old outcomes do not count in w2"
        );
    }

    #[test]
    fn history_is_bounded() {
        let mut state = EnvState::default();
        for i in 0..(HISTORY_LIMIT + 5) {
            state.begin_window(&format!("w{i}"), at(1), at(2));
        }
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.history[0].window_id, "w4");
        assert_eq!(
            state.history.last().unwrap().window_id,
            format!("w{}", HISTORY_LIMIT + 3)
        );
    }

    #[test]
    fn only_timestamps_changed_is_written_after_the_refresh_bound() {
        let mut stored = EnvState::default();
        stored.tag_mut("w", "stg").last_outcome = outcome::UNCHANGED.into();
        stored.tag_mut("w", "stg").at = at(1);
        stored.updated_at = Some(at(1));
        let mut checked = stored.clone();
        checked.tag_mut("w", "stg").at = at(2);
        checked.updated_at = Some(at(2));
        assert!(stored.same_apart_from_times(&checked));

        let refresh = chrono::TimeDelta::from_std(CHECKED_REFRESH).unwrap();
        let second = chrono::TimeDelta::seconds(1);
        assert!(!stored.needs_write(&checked, at(1)));
        assert!(!stored.needs_write(&checked, at(1) + refresh - second));
        assert!(stored.needs_write(&checked, at(1) + refresh));
        // A copy without updatedAt (an older version wrote it) is stale.
        let undated = EnvState {
            updated_at: None,
            ..stored.clone()
        };
        assert!(undated.needs_write(&checked, at(1)));

        // Any other field is a change, written at once.
        let mut failed = checked.clone();
        failed.tag_mut("w", "stg").last_outcome = outcome::FAILED.into();
        assert!(!stored.same_apart_from_times(&failed));
        assert!(stored.needs_write(&failed, at(1)));
        let mut missed = stored.clone();
        missed.last_missed_window = Some("w1".into());
        assert!(stored.needs_write(&missed, at(1)));
        let mut new_tag = stored.clone();
        new_tag.tag_mut("x", "stg");
        assert!(stored.needs_write(&new_tag, at(1)));
    }

    #[test]
    fn environment_keys_are_validated() {
        assert!(valid_key("prod"));
        assert!(valid_key("stg-2.eu_west"));
        assert!(!valid_key(""));
        assert!(!valid_key("prod/x"));
        assert!(!valid_key("prod.corrupt"));
        assert!(!valid_key(&"a".repeat(250)));
    }
}
