//! What the importer does to a tag: read its stream and history, preview
//! what its source resolves to, import it, pin or restore its source and
//! annotate it; every write carries the resourceVersion it was decided on.

use std::time::Instant;

use kube::core::params::{Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::Resource;
use serde::Serialize;
use tracing::{debug, info};

use super::discovery::{fit_tag, TagFit};
use super::errors::classify_image_failure;
use super::{tag_key, ErrorKind, ImportError, Importer, Operation, Result, Target, TargetSelector};
use crate::image_ref::ImageRef;
use crate::openshift::{
    ImageImportSpec, ImageStream, ImageStreamImport, LocalObjectReference, ObjectReference,
    TagEvent, TagReference, KIND_DOCKER_IMAGE,
};
use crate::outcome::OutcomeKind;

/// The outcome of importing one tag.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum ImportOutcome {
    /// The source resolves to the digest the tag already points at; nothing written.
    Unchanged { digest: String },
    /// A new history item was written.
    Updated { from: Option<String>, to: String },
    /// The tag is pinned to a digest; not imported.
    Held { reference: String },
    /// The import failed; `transient` failures may succeed on a later try.
    /// `reason` is the Kubernetes reason (`NotFound`, `Forbidden`, ...) for
    /// messages; callers that act on the failure match `kind`.
    Failed {
        reason: String,
        message: String,
        transient: bool,
        /// What kind of failure; not serialized (the JSON keeps `reason`).
        #[serde(skip)]
        kind: ErrorKind,
    },
}

impl ImportOutcome {
    /// The outcome of an operation that failed with `error`.
    pub fn failed(error: &ImportError) -> ImportOutcome {
        ImportOutcome::Failed {
            reason: error.reason().to_owned(),
            message: error.to_string(),
            transient: error.is_transient(),
            kind: error.kind(),
        }
    }

    /// Its kind, the one vocabulary of metrics, state and the CLI.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            ImportOutcome::Unchanged { .. } => OutcomeKind::Unchanged,
            ImportOutcome::Updated { .. } => OutcomeKind::Updated,
            ImportOutcome::Held { .. } => OutcomeKind::Held,
            ImportOutcome::Failed { .. } => OutcomeKind::Failed,
        }
    }

    /// Its kind's label: `unchanged`, `updated`, `held` or `failed`.
    pub fn name(&self) -> &'static str {
        self.kind().label()
    }
}

/// The outcome of a successful import of `t`, given what the server resolved.
fn outcome_of(t: &Target, digest: &str) -> ImportOutcome {
    if t.current.as_deref() == Some(digest) {
        ImportOutcome::Unchanged {
            digest: digest.to_owned(),
        }
    } else {
        ImportOutcome::Updated {
            from: t.current.clone(),
            to: digest.to_owned(),
        }
    }
}

fn import_request(t: &Target, import: bool) -> ImageStreamImport {
    let mut request = ImageStreamImport::new(
        &t.namespace,
        &t.stream,
        import,
        ImageImportSpec {
            from: ObjectReference::docker_image(t.source.clone()),
            to: Some(LocalObjectReference {
                name: t.tag.clone(),
            }),
            import_policy: t.import_policy.clone(),
            reference_policy: t.reference_policy.clone(),
            ..ImageImportSpec::default()
        },
    );
    // A preview writes nothing: it needs no precondition, and one would make
    // it fail for a change that does not matter to it.
    if import && !t.resource_version.is_empty() {
        request.metadata.resource_version = Some(t.resource_version.clone());
    }
    request
}

/// A strategic merge patch of spec tag `tag` with the fields of `change`
/// (an object), and `resource_version` as precondition when known.
fn tag_patch(
    tag: &str,
    change: serde_json::Value,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut fields = match change {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    fields.insert("name".to_owned(), serde_json::Value::from(tag));
    let mut patch = serde_json::json!({"spec": {"tags": [fields]}});
    if let Some(rv) = resource_version.filter(|rv| !rv.is_empty()) {
        patch["metadata"] = serde_json::json!({"resourceVersion": rv});
    }
    patch
}

impl Importer {
    /// The stream `namespace/name`.
    pub async fn stream(&self, namespace: &str, name: &str) -> Result<ImageStream> {
        let target = format!("{namespace}/{name}");
        let request = Request::new(ImageStream::url_path(&(), Some(namespace)));
        self.with_retry(|| async {
            let http = request
                .get(name, &Default::default())
                .map_err(|e| Self::build_error(&target, Operation::GetStream, e))?;
            self.send_json(Operation::GetStream, &target, namespace, http)
                .await
        })
        .await
    }

    /// The import history of `namespace/stream:tag`, newest first (empty when
    /// the tag was never imported).
    pub async fn history(&self, namespace: &str, stream: &str, tag: &str) -> Result<Vec<TagEvent>> {
        let found = self.stream(namespace, stream).await?;
        if let Some(status) = found.status_tag(tag) {
            return Ok(status.items.clone());
        }
        if found.spec_tag(tag).is_some() {
            return Ok(Vec::new());
        }
        Err(missing_tag(namespace, stream, tag, Operation::GetStream))
    }

    /// What the target's source resolves to now (`sha256:...`), without
    /// writing anything. A held target resolves to its pinned digest.
    pub async fn preview(&self, t: &Target) -> Result<String> {
        if t.held {
            if let Some(digest) = ImageRef::parse(&t.source).pinned_digest() {
                return Ok(digest.to_owned());
            }
        }
        let key = t.key();
        let request = import_request(t, false);
        let body = serde_json::to_vec(&request).map_err(|e| ImportError::InvalidArgument {
            target: key.clone(),
            message: format!("cannot encode the ImageStreamImport: {e}"),
        })?;
        let url = Request::new(ImageStreamImport::url_path(&(), Some(&t.namespace)));
        self.with_retry(|| async {
            let http = url
                .create(&PostParams::default(), body.clone())
                .map_err(|e| Self::build_error(&key, Operation::Preview, e))?;
            let response: ImageStreamImport = self
                .send_json(Operation::Preview, &key, &t.namespace, http)
                .await?;
            resolved_digest(&response, t, &key, Operation::Preview)
        })
        .await
    }

    /// Imports one target and says what happened. Never calls the API for
    /// held targets. Transient failures are retried; a 409 (the stream was
    /// replaced or changed) re-reads the stream before the next try.
    pub async fn import(&self, t: &Target) -> ImportOutcome {
        let started = Instant::now();
        let (outcome, attempts) = if t.held {
            (
                ImportOutcome::Held {
                    reference: t.source.clone(),
                },
                0,
            )
        } else {
            self.import_with_retries(t).await
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let (from, to) = match &outcome {
            ImportOutcome::Unchanged { digest } => (Some(digest.as_str()), Some(digest.as_str())),
            ImportOutcome::Updated { from, to } => (from.as_deref(), Some(to.as_str())),
            _ => (t.current.as_deref(), None),
        };
        match &outcome {
            ImportOutcome::Failed {
                reason,
                message,
                transient,
                ..
            } => debug!(
                namespace = t.namespace,
                stream = t.stream,
                tag = t.tag,
                source = t.source,
                from = from.unwrap_or("-"),
                outcome = outcome.name(),
                reason,
                transient,
                attempts,
                duration_ms,
                "import failed: {message}"
            ),
            _ => debug!(
                namespace = t.namespace,
                stream = t.stream,
                tag = t.tag,
                source = t.source,
                from = from.unwrap_or("-"),
                to = to.unwrap_or("-"),
                outcome = outcome.name(),
                attempts,
                duration_ms,
                "import"
            ),
        }
        outcome
    }

    async fn import_with_retries(&self, t: &Target) -> (ImportOutcome, u32) {
        let mut target = t.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.import_once(&target).await {
                Ok(outcome) => return (outcome, attempt),
                Err(error) => error,
            };
            if !error.is_transient() || attempt >= self.max_attempts() {
                return (ImportOutcome::failed(&error), attempt);
            }
            if matches!(error, ImportError::Conflict { .. }) {
                debug!(
                    target = target.key(),
                    attempt, "import conflicted; re-reading the stream"
                );
                match self.refreshed(&target).await {
                    Ok(fresh) if fresh.held => {
                        return (
                            ImportOutcome::Held {
                                reference: fresh.source,
                            },
                            attempt,
                        )
                    }
                    Ok(fresh) => {
                        target = fresh;
                        continue;
                    }
                    Err(refresh_error) => return (ImportOutcome::failed(&refresh_error), attempt),
                }
            }
            let delay = self.delay(attempt - 1, error.retry_after());
            debug!(target = target.key(), attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying import");
            tokio::time::sleep(delay).await;
        }
    }

    /// The target re-read from the cluster, after the stream changed between
    /// the read the import was decided on and the import. A stream deleted
    /// and created again is simply read anew (new uid and resourceVersion).
    async fn refreshed(&self, t: &Target) -> Result<Target> {
        let stream = match self.stream(&t.namespace, &t.stream).await {
            Err(ImportError::NotFound {
                target,
                operation,
                message,
                ..
            }) => {
                return Err(ImportError::NotFound {
                    target,
                    operation,
                    message,
                    hint: "the stream was deleted while its import was being decided; nothing was imported".to_owned(),
                })
            }
            other => other?,
        };
        let spec = stream
            .spec_tag(&t.tag)
            .ok_or_else(|| ImportError::NotFound {
                target: t.key(),
                operation: Operation::Import,
                message: format!(
                    "imagestream {}/{} has no spec tag {} any more",
                    t.namespace, t.stream, t.tag
                ),
                hint:
                    "the tag was removed while its import was being decided; nothing was imported"
                        .to_owned(),
            })?;
        // The stream was selected at discovery; only whether its tag can
        // still be imported is checked again.
        let sel = TargetSelector {
            namespace: t.namespace.clone(),
            ..TargetSelector::default()
        };
        match fit_tag(&stream, spec, &sel) {
            TagFit::Target(fresh) => Ok(*fresh),
            TagFit::Skipped(why) => Err(ImportError::InvalidArgument {
                target: t.key(),
                message: format!(
                    "the stream changed while its import was being decided, nothing was imported: {why}"
                ),
            }),
        }
    }

    async fn import_once(&self, t: &Target) -> Result<ImportOutcome> {
        let key = t.key();
        let body = serde_json::to_vec(&import_request(t, true)).map_err(|e| {
            ImportError::InvalidArgument {
                target: key.clone(),
                message: format!("cannot encode the ImageStreamImport: {e}"),
            }
        })?;
        let http = Request::new(ImageStreamImport::url_path(&(), Some(&t.namespace)))
            .create(&PostParams::default(), body)
            .map_err(|e| Self::build_error(&key, Operation::Import, e))?;
        let response: ImageStreamImport = self
            .send_json(Operation::Import, &key, &t.namespace, http)
            .await?;
        let digest = resolved_digest(&response, t, &key, Operation::Import)?;
        Ok(outcome_of(t, &digest))
    }
    /// Points `namespace/stream:tag` at `reference` (`repo@sha256:...`): a
    /// hold that imports leave alone until [`Importer::restore`].
    pub async fn pin(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
        reference: &str,
    ) -> Result<ImageStream> {
        if !ImageRef::parse(reference).is_pinned() {
            return Err(ImportError::InvalidArgument {
                target: tag_key(namespace, stream, tag),
                message: format!("cannot pin to {reference:?}: not a digest reference; give repository@sha256:<64 hex digits>, e.g. a dockerImageReference from the tag's history"),
            });
        }
        self.set_source(namespace, stream, tag, reference).await
    }

    /// Points `namespace/stream:tag` back at a moving source (`repo:tag`).
    pub async fn restore(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
        source: &str,
    ) -> Result<ImageStream> {
        if source.trim().is_empty() || ImageRef::parse(source).digest().is_some() {
            return Err(ImportError::InvalidArgument {
                target: tag_key(namespace, stream, tag),
                message: format!("cannot restore to {source:?}: give the moving source tag, repository:tag (e.g. quay.io/packit/packit-worker:prod), not a digest"),
            });
        }
        self.set_source(namespace, stream, tag, source).await
    }

    /// Sets (`Some`) or removes (`None`) annotation `key` of the spec tag
    /// `namespace/stream:tag`, leaving its source and the other tags alone.
    /// `pin` keeps the moving source it replaced here so `restore` can return to it.
    pub async fn annotate_tag(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<ImageStream> {
        let change = serde_json::json!({"annotations": {key: value}});
        let (_, updated) = self
            .patch_tag(namespace, stream, tag, change, |_| Ok(()))
            .await?;
        Ok(updated)
    }

    /// Strategic merge patch of one spec tag's `from`; the other tags are untouched.
    async fn set_source(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
        name: &str,
    ) -> Result<ImageStream> {
        let key = tag_key(namespace, stream, tag);
        let change = serde_json::json!({"from": {"kind": KIND_DOCKER_IMAGE, "name": name}});
        let only_docker_images = |spec: &TagReference| {
            match spec
            .from
            .as_ref()
            .filter(|f| f.kind != KIND_DOCKER_IMAGE)
        {
            Some(from) => Err(ImportError::InvalidArgument {
                target: key.clone(),
                message: format!(
                    "the tag follows {} {}, not a DockerImage; only DockerImage tags are pinned and restored",
                    from.kind, from.name
                ),
            }),
            None => Ok(()),
        }
        };
        let (before, updated) = self
            .patch_tag(namespace, stream, tag, change, only_docker_images)
            .await?;
        info!(
            namespace,
            stream,
            tag,
            from = before.from.as_ref().map(|f| f.name.as_str()).unwrap_or("-"),
            to = name,
            "changed tag source"
        );
        Ok(updated)
    }

    /// Merges `change` into the spec tag `tag` with a strategic merge patch
    /// carrying the resourceVersion of the stream read just before, after
    /// `check` accepted the tag as read. A 409 (the stream changed in
    /// between) reads it again and checks again, at most `max_attempts`
    /// times. Returns the tag as it was and the stream as written.
    async fn patch_tag(
        &self,
        namespace: &str,
        stream: &str,
        tag: &str,
        change: serde_json::Value,
        check: impl Fn(&TagReference) -> Result<()>,
    ) -> Result<(TagReference, ImageStream)> {
        let key = tag_key(namespace, stream, tag);
        let request = Request::new(ImageStream::url_path(&(), Some(namespace)));
        let mut attempt = 1;
        loop {
            let current = self.stream(namespace, stream).await?;
            // A strategic merge patch of an absent tag would create it: check first.
            let spec = current
                .spec_tag(tag)
                .ok_or_else(|| missing_tag(namespace, stream, tag, Operation::PatchStream))?;
            check(spec)?;
            let patch = Patch::Strategic(tag_patch(
                tag,
                change.clone(),
                current.metadata.resource_version.as_deref(),
            ));
            let written = self
                .with_retry_but_conflicts(|| async {
                    let http = request
                        .patch(stream, &PatchParams::default(), &patch)
                        .map_err(|e| Self::build_error(&key, Operation::PatchStream, e))?;
                    self.send_json(Operation::PatchStream, &key, namespace, http)
                        .await
                })
                .await;
            match written {
                Ok(updated) => return Ok((spec.clone(), updated)),
                Err(ImportError::Conflict { .. }) if attempt < self.max_attempts() => {
                    debug!(
                        target = key,
                        attempt, "the stream changed since it was read; reading it again"
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn missing_tag(namespace: &str, stream: &str, tag: &str, operation: Operation) -> ImportError {
    ImportError::NotFound {
        target: tag_key(namespace, stream, tag),
        operation,
        message: format!("imagestream {namespace}/{stream} has no spec tag {tag}"),
        hint: "check the tag name (`oc describe is` lists the tags)".to_owned(),
    }
}

/// The digest the server resolved for the single image of `response`, or
/// the per-image failure.
fn resolved_digest(
    response: &ImageStreamImport,
    t: &Target,
    key: &str,
    operation: Operation,
) -> Result<String> {
    let image = response
        .status
        .as_ref()
        .and_then(|s| s.images.first())
        .ok_or_else(|| ImportError::UnexpectedResponse {
            target: key.to_owned(),
            operation,
            message: "the ImageStreamImport response has no status.images".to_owned(),
        })?;
    if !image.succeeded() {
        let reason = image
            .status
            .reason
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "Unknown".to_owned());
        let message = image
            .status
            .message
            .clone()
            .unwrap_or_else(|| "no message".to_owned());
        return Err(ImportError::ImageFailed {
            target: key.to_owned(),
            operation,
            image: t.source.clone(),
            kind: classify_image_failure(&reason, image.status.code, &message, &t.source),
            message,
            reason,
        });
    }
    image
        .digest()
        .map(str::to_owned)
        .ok_or_else(|| ImportError::UnexpectedResponse {
            target: key.to_owned(),
            operation,
            message: "the image was imported but the response names no digest".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::fixtures::{fixture, sel, stream};
    use crate::importer::{discover_in, ImageFailure};
    use crate::openshift::TagImportPolicy;

    fn target() -> Target {
        match discover_in(&[stream("stream-with-history.json")], &sel("prod", None))
            .targets
            .pop()
        {
            Some(t) => t,
            None => panic!("fixture has a prod target"),
        }
    }

    #[test]
    fn import_request_carries_policies_and_resource_version() {
        let t = target();
        assert!(!t.uid.is_empty() && !t.resource_version.is_empty());
        let request = serde_json::to_value(import_request(&t, true)).expect("json");
        // The resourceVersion of the read the import was decided on; no uid:
        // OpenShift ignores it, so it would only look like a precondition.
        assert_eq!(
            request,
            serde_json::json!({
                "apiVersion": "image.openshift.io/v1",
                "kind": "ImageStreamImport",
                "metadata": {"name": "packit-worker", "namespace": "packit-prod", "resourceVersion": "1842093611"},
                "spec": {"import": true, "images": [{
                    "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"},
                    "to": {"name": "prod"},
                    "importPolicy": {"importMode": "Legacy"},
                    "referencePolicy": {"type": "Source"}
                }]}
            })
        );
        let preview = serde_json::to_value(import_request(&t, false)).expect("json");
        assert_eq!(preview["spec"]["import"], false);
        assert!(preview["metadata"].get("uid").is_none());
        assert!(
            preview["metadata"].get("resourceVersion").is_none(),
            "a preview writes nothing and needs no precondition"
        );
        let unread = Target {
            resource_version: String::new(),
            ..t
        };
        let request = serde_json::to_value(import_request(&unread, true)).expect("json");
        assert!(request["metadata"].get("resourceVersion").is_none());
    }

    /// A manifest list resolves to its child (Legacy) or to the list itself
    /// (PreserveOriginal), and the history records the same. The preview
    /// sends the tag's own importPolicy, so its digest is comparable with
    /// the newest history item ("did the source move") in either mode.
    #[test]
    fn the_preview_resolves_in_the_tags_own_import_mode() {
        for mode in [Some("Legacy"), Some("PreserveOriginal"), None] {
            let t = Target {
                import_policy: mode.map(|m| TagImportPolicy {
                    import_mode: Some(m.to_owned()),
                    ..TagImportPolicy::default()
                }),
                ..target()
            };
            for import in [false, true] {
                let request = serde_json::to_value(import_request(&t, import)).expect("json");
                let image = &request["spec"]["images"][0];
                match mode {
                    Some(m) => {
                        assert_eq!(image["importPolicy"]["importMode"], m, "import {import}")
                    }
                    // No mode on the tag: none sent, the cluster's default applies to both.
                    None => assert!(image.get("importPolicy").is_none(), "import {import}"),
                }
                assert_eq!(image["from"]["name"], t.source);
                assert_eq!(image["to"]["name"], t.tag);
                assert_eq!(image["referencePolicy"]["type"], "Source");
            }
        }
    }

    #[test]
    fn responses_map_to_outcomes() {
        let t = target();
        let key = t.key();
        let success: ImageStreamImport =
            serde_json::from_str(&fixture("import-success.json")).expect("fixture");
        let digest = resolved_digest(&success, &t, &key, Operation::Import).expect("digest");
        // The fixture's stream already has this digest as its newest item.
        assert_eq!(
            outcome_of(&t, &digest),
            ImportOutcome::Unchanged {
                digest: digest.clone()
            }
        );
        let older = Target {
            current: Some("sha256:0000".into()),
            ..t.clone()
        };
        assert_eq!(
            outcome_of(&older, &digest),
            ImportOutcome::Updated {
                from: Some("sha256:0000".into()),
                to: digest.clone()
            }
        );
        let fresh = Target {
            current: None,
            ..t.clone()
        };
        assert_eq!(
            outcome_of(&fresh, &digest),
            ImportOutcome::Updated {
                from: None,
                to: digest
            }
        );

        let failure: ImageStreamImport =
            serde_json::from_str(&fixture("import-failure.json")).expect("fixture");
        let error = resolved_digest(&failure, &t, &key, Operation::Import).expect_err("failure");
        assert!(error.is_not_found());
        assert!(!error.is_transient());
        let outcome = ImportOutcome::failed(&error);
        let ImportOutcome::Failed {
            reason,
            message,
            transient,
            kind,
        } = outcome
        else {
            panic!("expected Failed, got {outcome:?}");
        };
        assert_eq!(reason, "NotFound");
        assert_eq!(kind, ErrorKind::Registry(ImageFailure::MissingImage));
        assert!(!transient);
        assert!(message.starts_with(&key), "{message}");
        assert!(
            message.contains("push it, or fix the tag's from.name"),
            "{message}"
        );

        let empty = ImageStreamImport::default();
        assert!(matches!(
            resolved_digest(&empty, &t, &key, Operation::Import),
            Err(ImportError::UnexpectedResponse { .. })
        ));
    }

    #[test]
    fn outcome_serializes_with_tag() {
        let outcome = ImportOutcome::Updated {
            from: None,
            to: "sha256:abc".into(),
        };
        assert_eq!(
            serde_json::to_value(&outcome).expect("json"),
            serde_json::json!({"outcome": "updated", "from": null, "to": "sha256:abc"})
        );
        // The kind is for callers; the JSON (the CLI's pin report) stays as it was.
        let failed = ImportOutcome::Failed {
            reason: "NotFound".into(),
            message: "m".into(),
            transient: false,
            kind: ErrorKind::NotFound,
        };
        assert_eq!(
            serde_json::to_string(&failed).expect("json"),
            r#"{"outcome":"failed","reason":"NotFound","message":"m","transient":false}"#
        );
        let held = ImportOutcome::Held {
            reference: "r".into(),
        };
        let unchanged = ImportOutcome::Unchanged { digest: "d".into() };
        // The serialized `outcome` is the outcome kind's label.
        for outcome in [outcome, failed, held, unchanged] {
            assert_eq!(
                serde_json::to_value(&outcome).expect("json")["outcome"],
                outcome.kind().label(),
                "{outcome:?}"
            );
            assert_eq!(outcome.name(), outcome.kind().label());
        }
    }

    /// A failed outcome keeps the kind of the error it came from.
    #[test]
    fn a_failed_outcome_keeps_the_errors_kind() {
        let registry = ImportError::ImageFailed {
            target: "packit-prod/w:prod".into(),
            operation: Operation::Import,
            image: "quay.io/packit/w:prod".into(),
            reason: "Forbidden".into(),
            message: "denied".into(),
            kind: crate::importer::ImageFailure::AccessDenied,
        };
        let api = ImportError::Forbidden {
            target: "packit-prod/w:prod".into(),
            operation: Operation::Import,
            namespace: "packit-prod".into(),
            message: "forbidden".into(),
        };
        for error in [registry, api] {
            let ImportOutcome::Failed { reason, kind, .. } = ImportOutcome::failed(&error) else {
                panic!("a failure");
            };
            // Both say `Forbidden`; only the kind tells them apart.
            assert_eq!(reason, "Forbidden");
            assert_eq!(kind, error.kind());
        }
        assert_eq!(
            ImportOutcome::failed(&ImportError::InvalidArgument {
                target: "t".into(),
                message: "m".into()
            })
            .kind(),
            OutcomeKind::Failed
        );
    }

    #[test]
    fn tag_patches_touch_one_tag_of_the_stream_as_read() {
        let from = serde_json::json!({"from": {"kind": "DockerImage", "name": "quay.io/packit/w@sha256:ab"}});
        assert_eq!(
            tag_patch("prod", from.clone(), Some("42")),
            serde_json::json!({
                "metadata": {"resourceVersion": "42"},
                "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": "quay.io/packit/w@sha256:ab"}}]}
            })
        );
        assert_eq!(
            tag_patch("prod", from.clone(), Some("")),
            tag_patch("prod", from, None),
            "no resourceVersion known: no precondition"
        );
        assert_eq!(
            tag_patch(
                "prod",
                serde_json::json!({"annotations": {"k": null}}),
                None
            ),
            serde_json::json!({"spec": {"tags": [{"name": "prod", "annotations": {"k": null}}]}})
        );
    }
}
