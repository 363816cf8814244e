//! Kubernetes Events (`events.k8s.io/v1`): imports and failures on the
//! ImageStream, configuration problems on the ConfigMap, so
//! `kubectl get events` and `kubectl describe` tell the story.
//!
//! Publishing never fails the caller: errors are logged and counted as API
//! errors by the client's metrics layer.
//!
//! Every Event about an ImageStream carries the stream's uid in
//! `regarding` (core/v1 `involvedObject`): `kubectl describe is NAME` selects
//! Events by `involvedObject.uid`, so one without it never shows there. A
//! caller that does not have the uid at hand (a missed window reported from
//! the state of an earlier run) gets it read from the stream before the Event
//! is created.
//!
//! An identical event (same object, type, reason, action and note) published
//! again within [`SERIES_WINDOW`] updates the first one's series count instead
//! of creating a new object, as kube-runtime's recorder does. Unlike that
//! recorder, the note is part of the identity, so a new digest in
//! `ImportSucceeded` always shows up as a new event rather than as a repeat
//! of the previous note.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    api::{Patch, PatchParams, PostParams},
    Api, Client,
};

/// Repeats within this time are folded into a series.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Name under which events are reported (`reportingController`).
pub const REPORTING_CONTROLLER: &str = "image-import-scheduler";

/// Event reasons. There is deliberately none for an unchanged import: it
/// happens on every poll in immediate mode and would drown the others; the
/// log line and `imports_total{result="unchanged"}` record it.
pub mod reason {
    /// A tag was imported and now points to a new image.
    pub const IMPORT_SUCCEEDED: &str = "ImportSucceeded";
    /// An import failed (with the registry's or API's reason).
    pub const IMPORT_FAILED: &str = "ImportFailed";
    /// A tag pinned to a digest was not imported (once per window).
    pub const TAG_HELD: &str = "TagHeld";
    /// A window closed with a tag not imported.
    pub const WINDOW_MISSED: &str = "WindowMissed";
    /// `importPolicy.scheduled: true` makes OpenShift import outside the window.
    pub const SCHEDULED_IMPORT_DEFEATS_WINDOW: &str = "ScheduledImportDefeatsWindow";
    /// A windowed environment's tag got a new image outside its windows
    /// that the daemon did not import (controller, scheduled import, `oc import-image`).
    pub const IMPORTED_OUTSIDE_WINDOW: &str = "ImportedOutsideWindow";
    /// A configuration edit was rejected; the previous one stays in force.
    pub const CONFIG_INVALID: &str = "ConfigInvalid";
    /// The cluster an environment lives on cannot be used (unreachable,
    /// refusing the daemon, no usable kubeconfig Secret); on the configuration.
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    /// That cluster can be used again.
    pub const CLUSTER_AVAILABLE: &str = "ClusterAvailable";
    /// A configuration edit was applied.
    pub const CONFIG_RELOADED: &str = "ConfigReloaded";
    /// An import was requested by a person (`import` command).
    pub const MANUAL_IMPORT: &str = "ManualImport";
    /// A tag was pinned to a digest (`pin` command).
    pub const PINNED: &str = "Pinned";
    /// A pinned tag was returned to following its source (`restore` command).
    pub const RESTORED: &str = "Restored";
    /// Every workload consuming a tag runs its new image, ready.
    pub const ROLLOUT_SUCCEEDED: &str = "RolloutSucceeded";
    /// A rollout after an import failed (pod, container and reason named).
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    /// The daemon pinned a tag back to its image before a failed rollout.
    pub const PINNED_BACK: &str = "PinnedBack";
    /// A window closed: each tag's outcome in it (on the status ConfigMap).
    pub const WINDOW_SUMMARY: &str = "WindowSummary";
    /// A gate holds a tag's import in a window (once per change of the
    /// holding gates or of the digest).
    pub const GATED: &str = "Gated";
}

/// Event actions (what the daemon did).
pub mod action {
    /// Importing an ImageStream tag.
    pub const IMPORT: &str = "Import";
    /// Deciding about a window.
    pub const SCHEDULE: &str = "Schedule";
    /// Loading configuration.
    pub const RELOAD: &str = "Reload";
    /// Pinning or restoring a tag.
    pub const PIN: &str = "Pin";
    /// Following the rollout an import caused.
    pub const VERIFY: &str = "Verify";
}

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something worth knowing.
    Normal,
    /// Something a person should look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Reference to an `image.openshift.io/v1` ImageStream. An empty `uid`
/// counts as none (the sink then reads it from the stream).
pub fn image_stream_ref(namespace: &str, name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("image.openshift.io/v1".to_owned()),
        kind: Some("ImageStream".to_owned()),
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        uid: uid.filter(|u| !u.trim().is_empty()),
        ..ObjectReference::default()
    }
}

/// How long reading a stream's uid for an Event may take.
const UID_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `namespace/name` of an ImageStream reference whose uid is missing:
/// the stream to read before publishing.
fn stream_missing_uid(object: &ObjectReference) -> Option<(&str, &str)> {
    let is_stream = object.kind.as_deref() == Some("ImageStream")
        && object
            .api_version
            .as_deref()
            .is_some_and(|v| v.starts_with("image.openshift.io/"));
    let has_uid = object.uid.as_deref().is_some_and(|u| !u.trim().is_empty());
    match (is_stream, has_uid, &object.namespace, &object.name) {
        (true, false, Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => {
            Some((ns.as_str(), name.as_str()))
        }
        _ => None,
    }
}

/// Reference to a ConfigMap.
pub fn config_map_ref(namespace: &str, name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("ConfigMap".to_owned()),
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        uid,
        ..ObjectReference::default()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

struct Sent {
    name: String,
    namespace: String,
    count: i32,
    last: SystemTime,
}

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    client: Client,
    instance: String,
    default_namespace: String,
    recent: Arc<Mutex<HashMap<Key, Sent>>>,
    fallback: Option<Arc<Fallback>>,
}

/// Where the Events of a sink on another cluster go when that cluster
/// cannot be reached: the daemon's own cluster, on the configuration.
struct Fallback {
    sink: EventSink,
    object: ObjectReference,
    cluster: String,
}

// Limits of events.k8s.io/v1 validation.
const MAX_NOTE_BYTES: usize = 1024;
const MAX_SHORT: usize = 128;

fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Whether `error` means the cluster was not reached (rather than answering).
fn unreachable(error: &kube::Error) -> bool {
    !matches!(error, kube::Error::Api(_))
}

fn event_name(object_name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    // Object names are at most 253 characters; keep room for the suffix.
    let prefix: String = object_name.chars().take(200).collect();
    format!("{prefix}.{nanos:x}")
}

impl EventSink {
    /// `instance` names this process (`reportingInstance`, e.g. the pod name);
    /// events about cluster-scoped objects go to `default_namespace`.
    pub fn new(client: Client, instance: &str, default_namespace: &str) -> Self {
        EventSink {
            client,
            instance: truncate(instance, MAX_SHORT),
            default_namespace: default_namespace.to_owned(),
            recent: Arc::default(),
            fallback: None,
        }
    }

    /// A sink on another cluster (`cluster`) whose Events, when that cluster
    /// cannot be reached, are published by `local` on `object` instead (the
    /// configuration ConfigMap), naming the object and the cluster: so that
    /// a window missed because the cluster went away is still told where
    /// people look.
    pub fn with_fallback(
        mut self,
        local: EventSink,
        object: ObjectReference,
        cluster: &str,
    ) -> Self {
        self.fallback = Some(Arc::new(Fallback {
            sink: local,
            object,
            cluster: cluster.to_owned(),
        }));
        self
    }

    fn recent(&self) -> MutexGuard<'_, HashMap<Key, Sent>> {
        // The map is only a cache; a panic elsewhere leaves it usable.
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes an event about `object`. Failures are logged, never returned.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let fallback_note = self.fallback.as_ref().map(|f| {
            format!(
                "{} {}/{} on cluster {}: {note}",
                object.kind.as_deref().unwrap_or("object"),
                object.namespace.as_deref().unwrap_or(""),
                object.name.as_deref().unwrap_or(""),
                f.cluster
            )
        });
        if let Err(error) = self.try_publish(object, type_, reason, action, note).await {
            if let (Some(f), Some(note), true) =
                (&self.fallback, fallback_note, unreachable(&error))
            {
                tracing::warn!(%error, reason, cluster = %f.cluster, "cannot reach the cluster for an Event; publishing it on the configuration instead");
                Box::pin(f.sink.publish(&f.object, type_, reason, action, note)).await;
                return;
            }
            tracing::warn!(
                %error,
                reason,
                object = %format!(
                    "{}/{}",
                    object.namespace.as_deref().unwrap_or(""),
                    object.name.as_deref().unwrap_or("")
                ),
                "cannot publish Kubernetes Event; check that the service account may create and patch events.k8s.io events"
            );
        }
    }

    /// The uid of ImageStream `namespace/name`; `None` when the stream does
    /// not exist.
    pub async fn stream_uid(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, kube::Error> {
        let api: Api<crate::openshift::ImageStream> =
            Api::namespaced(self.client.clone(), namespace);
        let read = tokio::time::timeout(UID_LOOKUP_TIMEOUT, api.get_opt(name))
            .await
            .map_err(|_| {
                kube::Error::Service(
                    format!(
                        "reading imagestream {namespace}/{name} for its uid timed out after {}s",
                        UID_LOOKUP_TIMEOUT.as_secs()
                    )
                    .into(),
                )
            })??;
        Ok(read.and_then(|s| s.metadata.uid).filter(|u| !u.is_empty()))
    }

    /// `object` with the stream's uid filled in when it is an ImageStream
    /// reference without one. When the uid cannot be read the Event still
    /// goes out (`oc get events` shows it), with a warning.
    async fn with_uid(&self, object: &ObjectReference) -> ObjectReference {
        let Some((namespace, name)) = stream_missing_uid(object) else {
            return object.clone();
        };
        let mut object = object.clone();
        match self.stream_uid(namespace, name).await {
            Ok(uid) => object.uid = uid,
            Err(error) => tracing::warn!(
                %error,
                stream = %format!("{namespace}/{name}"),
                "cannot read the ImageStream's uid; its Event will not show in `kubectl describe is`; check that the account may get imagestreams"
            ),
        }
        object
    }

    /// Like [`EventSink::publish`], returning the API error.
    pub async fn try_publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let note = truncate(&note, MAX_NOTE_BYTES);
        let key = Key {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            type_,
            reason: truncate(reason, MAX_SHORT),
            action: truncate(action, MAX_SHORT),
            note,
        };
        let now = SystemTime::now();
        let time = MicroTime(Timestamp::now());
        // The lock is not held across API calls, so events for many streams go
        // out in parallel; two identical events racing may both be created.
        let repeat = {
            let mut recent = self.recent();
            recent.retain(|_, sent| {
                now.duration_since(sent.last).unwrap_or_default() < SERIES_WINDOW
            });
            recent.get_mut(&key).map(|sent| {
                sent.count += 1;
                sent.last = now;
                (sent.name.clone(), sent.namespace.clone(), sent.count)
            })
        };

        if let Some((name, namespace, count)) = repeat {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: time.clone() },
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted or expired meanwhile: create it anew.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.recent().remove(&key);
                }
                Err(error) => return Err(error),
            }
        }

        // Only a new Event needs the uid; a repeat patches the first one.
        let object = &self.with_uid(object).await;
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| self.default_namespace.clone());
        let name = event_name(object.name.as_deref().unwrap_or(REPORTING_CONTROLLER));
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(time),
            type_: Some(type_.as_str().to_owned()),
            reason: Some(key.reason.clone()),
            action: Some(key.action.clone()),
            note: Some(key.note.clone()),
            regarding: Some(object.clone()),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        self.recent().insert(
            key,
            Sent {
                name,
                namespace,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(700);
        let cut = truncate(&long, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn event_names_are_valid_object_names() {
        let name = event_name(&"x".repeat(300));
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.starts_with("xxx"));
        assert_ne!(event_name("a"), "a.");
    }

    #[test]
    fn an_image_stream_reference_without_uid_is_looked_up() {
        // (reference, the stream whose uid is read first)
        let cases = [
            (
                image_stream_ref("packit-prod", "worker", None),
                Some(("packit-prod", "worker")),
            ),
            (
                image_stream_ref("packit-prod", "worker", Some(String::new())),
                Some(("packit-prod", "worker")),
            ),
            (
                image_stream_ref("packit-prod", "worker", Some("u-1".into())),
                None,
            ),
            (
                config_map_ref("packit-prod", "import-scheduler", None),
                None,
            ),
        ];
        for (object, want) in cases {
            assert_eq!(stream_missing_uid(&object), want, "{object:?}");
        }
    }

    #[test]
    fn references_name_the_kind() {
        let stream = image_stream_ref("packit-prod", "packit-worker", None);
        assert_eq!(stream.api_version.as_deref(), Some("image.openshift.io/v1"));
        assert_eq!(stream.kind.as_deref(), Some("ImageStream"));
        let config = config_map_ref("packit-prod", "import-scheduler", Some("u".into()));
        assert_eq!(config.kind.as_deref(), Some("ConfigMap"));
        assert_eq!(config.uid.as_deref(), Some("u"));
    }
}
