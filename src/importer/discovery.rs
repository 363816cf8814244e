//! Which tags an environment imports: the streams of a namespace matched
//! against the environment's selection ([`TargetSelector`]), each tag a
//! [`Target`] or skipped with the reason.

use serde::{Deserialize, Serialize};
use tracing::debug;

use kube::core::params::ListParams;
use kube::core::Request;
use kube::Resource;

use super::{Importer, Operation, Result};
use crate::config::Environment;
use crate::image_ref::ImageRef;
use crate::openshift::{
    null_as_default, ImageStream, TagImportPolicy, TagReference, TagReferencePolicy,
    KIND_DOCKER_IMAGE,
};

/// Which streams of a namespace an environment imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSelector {
    /// The environment's name: names its configuration in skip reasons.
    pub environment: String,
    pub namespace: String,
    /// The spec tag to import in each stream, e.g. `prod`.
    pub tag: String,
    /// Only these streams (in this order); `None` means every stream that has the tag.
    pub streams: Option<Vec<String>>,
    /// Only streams matching this label selector (`app=packit,tier!=db`).
    pub label_selector: Option<String>,
    /// Streams never managed, reported as skipped.
    pub exclude: Vec<String>,
    /// Prefixes of `from.name` a managed tag starts with; empty: any source.
    pub sources: Vec<String>,
}

impl TargetSelector {
    /// What discovery looks for in `env`: one place for the daemon and the CLI.
    pub fn of(env: &Environment) -> Self {
        TargetSelector {
            environment: env.name.clone(),
            namespace: env.namespace.clone(),
            tag: env.tag.clone(),
            streams: env.streams.names().map(<[String]>::to_vec),
            label_selector: env.streams.label_selector(),
            exclude: env.exclude.clone(),
            sources: env.sources.clone(),
        }
    }

    /// The configuration field `key` of this environment, for messages.
    fn field(&self, key: &str) -> String {
        match self.environment.as_str() {
            "" => format!("`{key}`"),
            env => format!("environments.{env}.{key}"),
        }
    }

    /// Why the tag following `source` is not managed, if `sources` leaves it out.
    ///
    /// A plain prefix test: the repository of a reference is a prefix of it,
    /// so a tag pinned to `repository@sha256:...` matches the prefix of its
    /// repository and stays held (prefixes hold no tag or digest, see
    /// `config`).
    fn source_mismatch(&self, tag: &str, source: &str) -> Option<String> {
        if self.sources.is_empty() || self.sources.iter().any(|p| source.starts_with(p.as_str())) {
            return None;
        }
        Some(format!(
            "spec tag {tag}: from.name {source} matches none of {} [{}]",
            self.field("sources"),
            self.sources.join(", ")
        ))
    }
}

/// One tag to import: where it comes from and what it points at now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// The tag's `from.name`, e.g. `quay.io/packit/packit-worker:prod`.
    pub source: String,
    /// The source is a digest reference: a deliberate pin, reported and never imported.
    pub held: bool,
    /// `importPolicy.scheduled`: OpenShift also re-imports this tag on its own.
    pub scheduled: bool,
    /// The newest history item's digest, `sha256:...`.
    pub current: Option<String>,
    /// The newest history item's `dockerImageReference`.
    pub current_reference: Option<String>,
    /// The stream's `metadata.uid`: names the stream in Events' `regarding`.
    /// Not a precondition (OpenShift ignores it on an `ImageStreamImport`).
    pub uid: String,
    /// The stream's `metadata.resourceVersion` when it was read: the import's
    /// precondition, so it never acts on a stream that changed since.
    pub resource_version: String,
    pub import_policy: Option<TagImportPolicy>,
    pub reference_policy: Option<TagReferencePolicy>,
}

impl Target {
    /// `namespace/stream:tag`.
    pub fn key(&self) -> String {
        tag_key(&self.namespace, &self.stream, &self.tag)
    }
}

/// What [`Importer::discover`] found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Discovery {
    /// The tags to import (held ones included, marked `held`).
    pub targets: Vec<Target>,
    /// Configured stream names that do not exist or have no spec tag of that name.
    pub missing: Vec<String>,
    /// Streams with the tag that cannot be imported, and why.
    pub skipped: Vec<(String, String)>,
}

/// `namespace/stream:tag`.
pub fn tag_key(namespace: &str, stream: &str, tag: &str) -> String {
    format!("{namespace}/{stream}:{tag}")
}

/// What the tag `tag` of `stream` means for an environment: a target, or why not.
pub(super) enum TagFit {
    Target(Box<Target>),
    Skipped(String),
}

pub(super) fn fit_tag(stream: &ImageStream, spec: &TagReference, sel: &TargetSelector) -> TagFit {
    let tag = spec.name.as_str();
    if sel.exclude.iter().any(|name| name == stream.name()) {
        return TagFit::Skipped(format!("excluded by {}", sel.field("exclude")));
    }
    let Some(from) = spec.from.as_ref() else {
        return TagFit::Skipped(format!(
            "spec tag {tag} has no from: nothing to import; set from to a DockerImage"
        ));
    };
    if from.kind != KIND_DOCKER_IMAGE {
        return TagFit::Skipped(format!(
            "spec tag {tag} follows {} {}, not a DockerImage: it changes when that follows, not by import",
            from.kind, from.name
        ));
    }
    if from.name.trim().is_empty() {
        return TagFit::Skipped(format!(
            "spec tag {tag} has an empty from.name; set it to the source image"
        ));
    }
    if let Some(why) = sel.source_mismatch(tag, &from.name) {
        return TagFit::Skipped(why);
    }
    if spec.reference == Some(true) {
        return TagFit::Skipped(format!(
            "spec tag {tag} has reference: true: it points at {} without importing it, and OpenShift never imports it; set reference to false to have it imported",
            from.name
        ));
    }
    let newest = stream.newest_item(tag);
    let namespace = match stream.namespace() {
        "" => sel.namespace.as_str(),
        ns => ns,
    };
    TagFit::Target(Box::new(Target {
        namespace: namespace.to_owned(),
        stream: stream.name().to_owned(),
        tag: tag.to_owned(),
        source: from.name.clone(),
        held: ImageRef::parse(&from.name).is_pinned(),
        scheduled: spec.is_scheduled(),
        current: newest.map(|i| i.image.clone()).filter(|d| !d.is_empty()),
        current_reference: newest
            .map(|i| i.docker_image_reference.clone())
            .filter(|r| !r.is_empty()),
        uid: stream.metadata.uid.clone().unwrap_or_default(),
        resource_version: stream.metadata.resource_version.clone().unwrap_or_default(),
        import_policy: spec.import_policy.clone(),
        reference_policy: spec.reference_policy.clone(),
    }))
}

/// The targets of `streams` for `sel.tag`: the configured names in their
/// order (missing ones reported), or every stream that has the tag, by name.
/// Streams left out by `exclude` or `sources` are reported as skipped.
pub fn discover_in(streams: &[ImageStream], sel: &TargetSelector) -> Discovery {
    let tag = sel.tag.as_str();
    let mut discovery = Discovery::default();
    let mut add = |stream: &ImageStream, spec: &TagReference| match fit_tag(stream, spec, sel) {
        TagFit::Target(target) => discovery.targets.push(*target),
        TagFit::Skipped(why) => discovery.skipped.push((stream.name().to_owned(), why)),
    };
    let mut missing = Vec::new();
    match sel.streams.as_deref() {
        Some(names) => {
            let mut seen = std::collections::HashSet::new();
            for name in names.iter().filter(|n| seen.insert(n.as_str())) {
                let found = streams.iter().find(|s| s.name() == name);
                match found.and_then(|s| s.spec_tag(tag).map(|spec| (s, spec))) {
                    Some((stream, spec)) => add(stream, spec),
                    None => missing.push(name.clone()),
                }
            }
        }
        None => {
            let mut sorted: Vec<&ImageStream> = streams.iter().collect();
            sorted.sort_by(|a, b| a.name().cmp(b.name()));
            for stream in sorted {
                if let Some(spec) = stream.spec_tag(tag) {
                    add(stream, spec);
                }
            }
        }
    }
    discovery.missing = missing;
    discovery
}

/// A list response; tolerant of `items: null`.
#[derive(Deserialize)]
struct StreamList {
    #[serde(default, deserialize_with = "null_as_default")]
    metadata: ListMetadata,
    #[serde(default, deserialize_with = "null_as_default")]
    items: Vec<ImageStream>,
}

#[derive(Default, Deserialize)]
struct ListMetadata {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

impl Importer {
    /// Every stream of the namespace, or those matching `label_selector`.
    pub async fn list_streams(
        &self,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<ImageStream>> {
        let request = Request::new(ImageStream::url_path(&(), Some(namespace)));
        let mut streams = Vec::new();
        let mut continue_token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(500);
            if let Some(selector) = label_selector {
                params = params.labels(selector);
            }
            params.continue_token = continue_token.clone();
            let page: StreamList = self
                .with_retry(|| async {
                    let http = request
                        .list(&params)
                        .map_err(|e| Self::build_error(namespace, Operation::ListStreams, e))?;
                    self.send_json(Operation::ListStreams, namespace, namespace, http)
                        .await
                })
                .await?;
            streams.extend(page.items);
            match page.metadata.continue_token.filter(|t| !t.is_empty()) {
                Some(token) => continue_token = Some(token),
                None => return Ok(streams),
            }
        }
    }

    /// The tags an environment imports: every stream in the namespace (or the
    /// configured names, or those matching the label selector) with a spec
    /// tag named `sel.tag` following a `DockerImage`. Digest sources are
    /// returned with `held: true`.
    pub async fn discover(&self, sel: &TargetSelector) -> Result<Discovery> {
        let streams = self
            .list_streams(&sel.namespace, sel.label_selector.as_deref())
            .await?;
        let discovery = discover_in(&streams, sel);
        debug!(
            namespace = sel.namespace,
            tag = sel.tag,
            targets = discovery.targets.len(),
            missing = discovery.missing.len(),
            skipped = discovery.skipped.len(),
            "discovered import targets"
        );
        Ok(discovery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::fixtures::{sel, stream};
    use crate::openshift::ObjectReference;
    use chrono::Utc;

    #[test]
    fn discovery_of_all_streams() {
        let streams = vec![
            stream("stream-with-history.json"),
            stream("stream-failed-import.json"),
            stream("stream-digest-pinned.json"),
        ];
        // stream-digest-pinned is also packit-worker; rename it to keep names unique.
        let mut streams = streams;
        streams[2].metadata.name = Some("packit-worker-pinned".into());
        let mut follower = stream("stream-nulls.json");
        follower.metadata.name = Some("packit-follower".into());
        follower.metadata.namespace = Some("packit-prod".into());
        // Its prod tag follows another stream's tag instead of a registry image.
        follower.spec.tags = vec![TagReference {
            name: "prod".into(),
            from: Some(ObjectReference {
                kind: "ImageStreamTag".into(),
                name: "packit-worker:prod".into(),
                ..ObjectReference::default()
            }),
            ..TagReference::default()
        }];
        streams.push(follower);
        // A reference tag points at its source without importing it.
        let mut reference = stream("stream-with-history.json");
        reference.metadata.name = Some("packit-reference".into());
        for tag in &mut reference.spec.tags {
            tag.reference = Some(true);
        }
        streams.push(reference);

        let found = discover_in(&streams, &sel("prod", None));
        let keys: Vec<String> = found.targets.iter().map(Target::key).collect();
        assert_eq!(
            keys,
            [
                "packit-prod/packit-service:prod",
                "packit-prod/packit-worker:prod",
                "packit-prod/packit-worker-pinned:prod",
            ]
        );
        let worker = &found.targets[1];
        assert_eq!(worker.source, "quay.io/packit/packit-worker:prod");
        assert!(!worker.held);
        assert!(!worker.scheduled);
        assert_eq!(
            worker.current.as_deref(),
            streams[0].newest_item("prod").map(|i| i.image.as_str())
        );
        assert!(worker.current_reference.is_some());
        assert_eq!(
            worker.current_reference.as_deref(),
            streams[0]
                .newest_item("prod")
                .map(|i| i.docker_image_reference.as_str())
        );
        assert_eq!(worker.uid, "6f5c2c7e-8d0b-4a8e-9f51-3f3c2d1e0a11");
        assert_eq!(worker.resource_version, "1842093611");
        assert_eq!(
            worker
                .import_policy
                .as_ref()
                .and_then(|p| p.import_mode.as_deref()),
            Some("Legacy")
        );
        assert!(found.targets[2].held);
        assert_eq!(found.skipped.len(), 2);
        assert_eq!(found.skipped[0].0, "packit-follower");
        assert!(found.skipped[0].1.contains("ImageStreamTag"));
        assert_eq!(found.skipped[1].0, "packit-reference");
        assert!(
            found.skipped[1].1.contains("reference: true"),
            "{}",
            found.skipped[1].1
        );
        assert!(found.missing.is_empty());

        let stg = discover_in(&streams, &sel("stg", None));
        assert!(stg.targets.iter().any(|t| t.scheduled));
    }

    #[test]
    fn discovery_of_configured_names_keeps_order_and_reports_missing() {
        let streams = vec![
            stream("stream-with-history.json"),
            stream("stream-failed-import.json"),
        ];
        let names: Vec<String> = [
            "packit-worker",
            "packit-gone",
            "packit-service",
            "packit-worker",
        ]
        .map(String::from)
        .to_vec();
        let found = discover_in(&streams, &sel("prod", Some(&names)));
        let streams_found: Vec<&str> = found.targets.iter().map(|t| t.stream.as_str()).collect();
        assert_eq!(streams_found, ["packit-worker", "packit-service"]);
        assert_eq!(found.missing, ["packit-gone"]);

        let found = discover_in(&streams, &sel("canary", Some(&names[..1])));
        assert!(found.targets.is_empty());
        assert_eq!(found.missing, ["packit-worker"]);
    }

    /// packit's namespace: its own streams (one pinned) next to unlabelled
    /// foreign ones, nginx from quay.io and a gateway from ghcr.io.
    fn mixed_namespace() -> Vec<ImageStream> {
        let mut pinned = stream("stream-digest-pinned.json");
        pinned.metadata.name = Some("packit-worker-pinned".into());
        let mut gateway = stream("stream-foreign-nginx.json");
        gateway.metadata.name = Some("aggregation-gateway".into());
        if let Some(from) = gateway.spec.tags[0].from.as_mut() {
            from.name = "ghcr.io/zapier/prom-aggregation-gateway:prod".into();
        }
        vec![
            stream("stream-with-history.json"),
            stream("stream-failed-import.json"),
            pinned,
            stream("stream-foreign-nginx.json"),
            gateway,
        ]
    }

    fn streams_of(found: &Discovery) -> Vec<&str> {
        found.targets.iter().map(|t| t.stream.as_str()).collect()
    }

    #[test]
    fn exclude_and_sources_leave_foreign_streams_out_with_the_reason() {
        let streams = mixed_namespace();
        let packit = vec!["quay.io/packit/".to_owned()];
        // (selector, streams managed, streams skipped with the reason)
        type Case<'a> = (TargetSelector, &'a [&'a str], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                sel("prod", None),
                &["aggregation-gateway", "nginx", "packit-service", "packit-worker", "packit-worker-pinned"],
                &[],
            ),
            (
                TargetSelector {
                    exclude: vec!["nginx".into(), "aggregation-gateway".into()],
                    ..sel("prod", None)
                },
                &["packit-service", "packit-worker", "packit-worker-pinned"],
                &[
                    ("aggregation-gateway", "excluded by environments.prod.exclude"),
                    ("nginx", "excluded by environments.prod.exclude"),
                ],
            ),
            (
                TargetSelector {
                    sources: packit.clone(),
                    ..sel("prod", None)
                },
                &["packit-service", "packit-worker", "packit-worker-pinned"],
                &[
                    ("aggregation-gateway", "spec tag prod: from.name ghcr.io/zapier/prom-aggregation-gateway:prod matches none of environments.prod.sources [quay.io/packit/]"),
                    ("nginx", "spec tag prod: from.name quay.io/nginx/nginx-unprivileged:prod matches none of environments.prod.sources [quay.io/packit/]"),
                ],
            ),
            (
                TargetSelector {
                    sources: vec!["quay.io/packit/".into(), "ghcr.io/".into()],
                    exclude: vec!["packit-service".into()],
                    ..sel("prod", None)
                },
                &["aggregation-gateway", "packit-worker", "packit-worker-pinned"],
                &[
                    ("nginx", "spec tag prod: from.name quay.io/nginx/nginx-unprivileged:prod matches none of environments.prod.sources [quay.io/packit/, ghcr.io/]"),
                    ("packit-service", "excluded by environments.prod.exclude"),
                ],
            ),
            (
                // Configured names: sources still apply to each of them.
                TargetSelector {
                    sources: packit.clone(),
                    ..sel("prod", Some(&["nginx".to_owned(), "packit-worker".to_owned()]))
                },
                &["packit-worker"],
                &[("nginx", "spec tag prod: from.name quay.io/nginx/nginx-unprivileged:prod matches none of environments.prod.sources [quay.io/packit/]")],
            ),
            (
                // Without an environment name the message names the key.
                TargetSelector {
                    environment: String::new(),
                    exclude: vec!["nginx".into()],
                    sources: vec!["quay.io/packit/packit-worker".into()],
                    ..sel("prod", None)
                },
                &["packit-worker", "packit-worker-pinned"],
                &[
                    ("aggregation-gateway", "spec tag prod: from.name ghcr.io/zapier/prom-aggregation-gateway:prod matches none of `sources` [quay.io/packit/packit-worker]"),
                    ("nginx", "excluded by `exclude`"),
                    ("packit-service", "spec tag prod: from.name quay.io/packit/packit-service:prod matches none of `sources` [quay.io/packit/packit-worker]"),
                ],
            ),
        ];
        for (selector, targets, skipped) in cases {
            let found = discover_in(&streams, selector);
            assert_eq!(streams_of(&found), *targets, "{selector:?}");
            let skipped: Vec<(String, String)> = skipped
                .iter()
                .map(|(s, why)| ((*s).to_owned(), (*why).to_owned()))
                .collect();
            assert_eq!(found.skipped, skipped, "{selector:?}");
            assert!(found.missing.is_empty(), "{selector:?}");
        }
    }

    #[test]
    fn a_pinned_tag_of_a_packit_repository_stays_held_under_sources() {
        let found = discover_in(
            &mixed_namespace(),
            &TargetSelector {
                sources: vec!["quay.io/packit/packit-worker".into()],
                ..sel("prod", None)
            },
        );
        let pinned = found
            .targets
            .iter()
            .find(|t| t.stream == "packit-worker-pinned")
            .unwrap_or_else(|| panic!("the pin is managed: {found:?}"));
        assert!(pinned.held);
        assert!(pinned
            .source
            .starts_with("quay.io/packit/packit-worker@sha256:"));
    }

    #[test]
    fn the_selector_of_an_environment_carries_exclude_and_sources() {
        let loaded = crate::config::parse(
            "environments:\n  prod:\n    namespace: packit-prod\n    mode: immediate\n    selector: {matchLabels: {app: packit}}\n    exclude: [nginx]\n    sources: [quay.io/packit/]\n",
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            TargetSelector::of(&loaded.config.environments["prod"]),
            TargetSelector {
                environment: "prod".into(),
                namespace: "packit-prod".into(),
                tag: "prod".into(),
                streams: None,
                label_selector: Some("app=packit".into()),
                exclude: vec!["nginx".into()],
                sources: vec!["quay.io/packit/".into()],
            }
        );
    }
}
