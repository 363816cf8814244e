//! Typed OpenShift image objects (`image.openshift.io/v1`): `ImageStream` and
//! `ImageStreamImport`, usable with `kube::Api`.
//!
//! No maintained crate carries these types, so they are written by hand from
//! the OpenShift API reference. Deserialization is tolerant: every field the
//! server may leave out or send as an explicit `null` has a default, and the
//! fields this project does not model are kept in an `extra` map so that
//! reading and writing an object loses nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::image_ref::ImageRef;
use chrono::{DateTime, Utc};
use kube::core::{NamespaceResourceScope, ObjectMeta};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// API group of the OpenShift image API.
pub const GROUP: &str = "image.openshift.io";
/// API version of the OpenShift image API.
pub const VERSION: &str = "v1";
/// `apiVersion` of every object in this module.
pub const API_VERSION: &str = "image.openshift.io/v1";

/// `from.kind` of a tag that follows an external registry image.
pub const KIND_DOCKER_IMAGE: &str = "DockerImage";
/// `type` of the condition OpenShift sets on a tag whose last import failed.
pub const CONDITION_IMPORT_SUCCESS: &str = "ImportSuccess";

/// Deserializes an absent or `null` value as `T::default()`.
///
/// OpenShift sends `"items": null`, `"annotations": null` and
/// `"conditions": null` where it means "none".
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn image_stream_kind() -> String {
    "ImageStream".to_owned()
}

fn image_stream_import_kind() -> String {
    "ImageStreamImport".to_owned()
}

fn api_version() -> String {
    API_VERSION.to_owned()
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

// ---------------------------------------------------------------------------
// ImageStream
// ---------------------------------------------------------------------------

/// An OpenShift `ImageStream`: named tags, each following a source, and the
/// import history per tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStream {
    /// `image.openshift.io/v1`; empty on objects nested in a response.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// `ImageStream`; empty on objects nested in a response.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ImageStreamSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImageStreamStatus>,
    /// Fields this type does not model, kept for a lossless round trip.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ImageStream.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_image_repository: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<TagReference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `spec.tags`: a tag name and the source it follows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagReference {
    #[serde(default)]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<TagImportPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_policy: Option<TagReferencePolicy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TagReference {
    /// The source image reference when the tag follows an external image
    /// (`from.kind: DockerImage`).
    pub fn docker_source(&self) -> Option<&str> {
        self.from
            .as_ref()
            .filter(|from| from.kind == KIND_DOCKER_IMAGE)
            .map(|from| from.name.as_str())
    }

    /// `importPolicy.scheduled`: OpenShift re-imports the tag on its own.
    pub fn is_scheduled(&self) -> bool {
        self.import_policy
            .as_ref()
            .and_then(|policy| policy.scheduled)
            .unwrap_or(false)
    }
}

/// A reference to another object; for tags, `kind` is `DockerImage`,
/// `ImageStreamTag` or `ImageStreamImage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ObjectReference {
    /// A `DockerImage` reference to `name` (`registry/repo:tag` or `registry/repo@sha256:...`).
    pub fn docker_image(name: impl Into<String>) -> Self {
        ObjectReference {
            kind: KIND_DOCKER_IMAGE.to_owned(),
            name: name.into(),
            ..ObjectReference::default()
        }
    }
}

/// `importPolicy` of a tag. Absent fields stay absent, so sending a policy
/// back to the server reproduces exactly what was read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagImportPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<bool>,
    /// `Legacy` or `PreserveOriginal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_mode: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `referencePolicy` of a tag: `type` is `Source` or `Local`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagReferencePolicy {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ImageStream.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamStatus {
    #[serde(default, deserialize_with = "null_as_default")]
    pub docker_image_repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_docker_image_repository: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<NamedTagEventList>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `status.tags`: the import history of a tag, newest first,
/// and the conditions of its last import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedTagEventList {
    #[serde(default)]
    pub tag: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub items: Vec<TagEvent>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<TagEventCondition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NamedTagEventList {
    /// The `ImportSuccess` condition when the last import of this tag failed.
    pub fn import_failure(&self) -> Option<&TagEventCondition> {
        self.conditions
            .iter()
            .find(|c| c.type_ == CONDITION_IMPORT_SUCCESS && c.status == "False")
    }
}

/// One import history item of a tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// `registry/repo@sha256:...`
    #[serde(default, deserialize_with = "null_as_default")]
    pub docker_image_reference: String,
    /// The image digest, `sha256:...`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub generation: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A condition of a tag, e.g. `ImportSuccess` = `False` after a failed import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagEventCondition {
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub type_: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub generation: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageStream {
    /// An empty stream named `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        ImageStream {
            api_version: api_version(),
            kind: image_stream_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            ..ImageStream::default()
        }
    }

    /// `metadata.name`, or `""` when the server sent none.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, or `""` when the server sent none.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The spec tag named `name`.
    pub fn spec_tag(&self, name: &str) -> Option<&TagReference> {
        self.spec.tags.iter().find(|t| t.name == name)
    }

    /// The status (history and conditions) of the tag named `name`.
    pub fn status_tag(&self, name: &str) -> Option<&NamedTagEventList> {
        self.status.as_ref()?.tags.iter().find(|t| t.tag == name)
    }

    /// The newest history item of tag `name`: what the tag points at now.
    pub fn newest_item(&self, name: &str) -> Option<&TagEvent> {
        self.status_tag(name)?.items.first()
    }
}

impl kube::Resource for ImageStream {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("ImageStream")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(API_VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("imagestreams")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

// ---------------------------------------------------------------------------
// ImageStreamImport
// ---------------------------------------------------------------------------

/// An OpenShift `ImageStreamImport`: a create-only request to resolve (and,
/// with `spec.import: true`, import) images into the stream named
/// `metadata.name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImport {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ImageStreamImportSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImageStreamImportStatus>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ImageStreamImport.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImportSpec {
    /// `true`: import and write the stream; `false`: only resolve the sources.
    #[serde(default, deserialize_with = "null_as_default")]
    pub import: bool,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub images: Vec<ImageImportSpec>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One image to import: source, destination tag and the tag's policies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportSpec {
    #[serde(default, deserialize_with = "null_as_default")]
    pub from: ObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<TagImportPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_policy: Option<TagReferencePolicy>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_manifest: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reference by name within the same namespace (here: the destination tag).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    #[serde(default)]
    pub name: String,
}

/// `ImageStreamImport.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamImportStatus {
    /// The stream as written by the import (absent for `import: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<Box<ImageStream>>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub images: Vec<ImageImportStatus>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The result for one requested image. The HTTP status of the whole request
/// is 201 even when this says `Failure`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageImportStatus {
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: ImportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageImportStatus {
    /// True when the server resolved (and, for an import, imported) the image.
    pub fn succeeded(&self) -> bool {
        self.status.status.as_deref() == Some("Success")
    }

    /// The resolved digest: `image.metadata.name`, or the digest part of
    /// `image.dockerImageReference`.
    pub fn digest(&self) -> Option<&str> {
        let image = self.image.as_ref()?;
        image
            .metadata
            .name
            .as_deref()
            .filter(|name| name.starts_with("sha256:"))
            .or_else(|| {
                image
                    .docker_image_reference
                    .as_deref()
                    .and_then(|r| ImageRef::parse(r).pinned_digest())
            })
    }
}

/// The `metav1.Status` of one image import.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportStatus {
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `NotFound`, `Unauthorized`, `Forbidden`, `InternalError`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The parts of an OpenShift `Image` this project reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// `metadata.name` is the digest, `sha256:...`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_image_reference: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageStreamImport {
    /// A request for the stream `stream` in `namespace` with one image.
    pub fn new(namespace: &str, stream: &str, import: bool, image: ImageImportSpec) -> Self {
        ImageStreamImport {
            api_version: api_version(),
            kind: image_stream_import_kind(),
            metadata: ObjectMeta {
                name: Some(stream.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec: ImageStreamImportSpec {
                import,
                images: vec![image],
                extra: Map::new(),
            },
            status: None,
            extra: Map::new(),
        }
    }
}

impl kube::Resource for ImageStreamImport {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("ImageStreamImport")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(API_VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("imagestreamimports")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/openshift/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read fixture {path}: {e}"))
    }

    fn json(name: &str) -> Value {
        serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
    }

    /// Removes `null` members recursively: the types write an absent field
    /// where the server sent `null`, which means the same.
    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
            other => other,
        }
    }

    fn assert_lossless<T>(name: &str)
    where
        T: serde::de::DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
    {
        let original = json(name);
        let typed: T = serde_json::from_value(original.clone())
            .unwrap_or_else(|e| panic!("deserialize {name}: {e}"));
        let written = serde_json::to_value(&typed).expect("serialize");
        assert_eq!(
            without_nulls(written.clone()),
            without_nulls(original),
            "{name}"
        );
        let again: T = serde_json::from_value(written).expect("deserialize again");
        assert_eq!(again, typed, "{name}: second round trip differs");
    }

    #[test]
    fn fixtures_round_trip_without_loss() {
        assert_lossless::<ImageStream>("stream-with-history.json");
        assert_lossless::<ImageStream>("stream-failed-import.json");
        assert_lossless::<ImageStream>("stream-digest-pinned.json");
        assert_lossless::<ImageStream>("stream-nulls.json");
        assert_lossless::<ImageStreamImport>("import-failure.json");
        assert_lossless::<ImageStreamImport>("import-success.json");
        assert_lossless::<ImageStreamImport>("import-preview.json");
    }

    #[test]
    fn stream_with_history_reads_tags_and_newest_item() {
        let stream: ImageStream = serde_json::from_str(&fixture("stream-with-history.json"))
            .expect("stream-with-history.json");
        assert_eq!(stream.name(), "packit-worker");
        assert_eq!(stream.namespace(), "packit-prod");
        let prod = stream.spec_tag("prod").expect("prod spec tag");
        assert_eq!(
            prod.docker_source(),
            Some("quay.io/packit/packit-worker:prod")
        );
        assert!(!prod.is_scheduled());
        assert_eq!(
            prod.import_policy
                .as_ref()
                .and_then(|p| p.import_mode.as_deref()),
            Some("Legacy")
        );
        assert_eq!(
            prod.reference_policy
                .as_ref()
                .and_then(|p| p.type_.as_deref()),
            Some("Source")
        );
        let stg = stream.spec_tag("stg").expect("stg spec tag");
        assert!(stg.is_scheduled());
        let history = &stream.status_tag("prod").expect("prod status").items;
        assert_eq!(history.len(), 3);
        let newest = stream.newest_item("prod").expect("newest prod item");
        assert_eq!(newest, &history[0]);
        assert!(newest.image.starts_with("sha256:9c1f"));
        assert!(newest.docker_image_reference.ends_with(&newest.image));
        assert!(history[0].created > history[1].created);
        assert!(stream.spec_tag("missing").is_none());
        assert!(stream.newest_item("missing").is_none());
        // Unmodelled fields survive in `extra`.
        assert!(stream.spec.extra.contains_key("lookupPolicy"));
        assert!(stream.metadata.managed_fields.is_some());
    }

    #[test]
    fn failed_import_condition_is_found() {
        let stream: ImageStream = serde_json::from_str(&fixture("stream-failed-import.json"))
            .expect("stream-failed-import.json");
        let prod = stream.status_tag("prod").expect("prod status");
        let failure = prod.import_failure().expect("ImportSuccess=False");
        assert_eq!(failure.reason.as_deref(), Some("NotFound"));
        assert!(failure
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("not found"));
        assert!(failure.last_transition_time.is_some());
        assert_eq!(failure.generation, 7);
        // The history from before the failure is still there.
        assert!(stream.newest_item("prod").is_some());
        let stg = stream.status_tag("stg").expect("stg status");
        assert!(stg.import_failure().is_none());
    }

    #[test]
    fn digest_pinned_tag_is_recognised() {
        let stream: ImageStream = serde_json::from_str(&fixture("stream-digest-pinned.json"))
            .expect("stream-digest-pinned.json");
        let prod = stream.spec_tag("prod").expect("prod spec tag");
        let source = prod.docker_source().expect("DockerImage source");
        assert!(ImageRef::parse(source).is_pinned(), "{source}");
        let stg = stream.spec_tag("stg").expect("stg spec tag");
        assert!(!ImageRef::parse(stg.docker_source().unwrap_or_default()).is_pinned());
    }

    #[test]
    fn nulls_read_as_empty() {
        let stream: ImageStream =
            serde_json::from_str(&fixture("stream-nulls.json")).expect("stream-nulls.json");
        let prod = stream.spec_tag("prod").expect("prod spec tag");
        assert!(prod.annotations.is_empty());
        let status = stream.status_tag("prod").expect("prod status");
        assert!(status.items.is_empty());
        assert!(status.conditions.is_empty());
        assert!(stream.newest_item("prod").is_none());
        let dashboard = stream.spec_tag("latest").expect("latest spec tag");
        assert!(dashboard.from.is_none());
        assert!(dashboard.docker_source().is_none());
    }

    #[test]
    fn import_responses_expose_per_image_status() {
        let failure: ImageStreamImport =
            serde_json::from_str(&fixture("import-failure.json")).expect("import-failure.json");
        let status = failure.status.as_ref().expect("status");
        let image = &status.images[0];
        assert!(!image.succeeded());
        assert_eq!(image.status.reason.as_deref(), Some("NotFound"));
        assert_eq!(image.status.code, Some(404));
        assert!(image.digest().is_none());

        let success: ImageStreamImport =
            serde_json::from_str(&fixture("import-success.json")).expect("import-success.json");
        let status = success.status.as_ref().expect("status");
        let image = &status.images[0];
        assert!(image.succeeded());
        let digest = image.digest().expect("digest");
        let written = status.import.as_ref().expect("status.import");
        assert_eq!(
            written.newest_item("prod").map(|i| i.image.as_str()),
            Some(digest)
        );
        assert!(image
            .image
            .as_ref()
            .is_some_and(|i| i.extra.contains_key("dockerImageMetadata")));
    }

    #[test]
    fn minimal_and_empty_objects_deserialize() {
        let cases = [
            "{}",
            r#"{"metadata":null,"spec":null,"status":null}"#,
            r#"{"spec":{"tags":null},"status":{"dockerImageRepository":null,"tags":null}}"#,
            r#"{"spec":{"tags":[{"name":"prod","from":null,"importPolicy":null,"referencePolicy":null}]}}"#,
            r#"{"status":{"tags":[{"tag":"prod","items":[{"created":null,"image":null,"dockerImageReference":null,"generation":null}]}]}}"#,
        ];
        for case in cases {
            let parsed: Result<ImageStream, _> = serde_json::from_str(case);
            assert!(parsed.is_ok(), "{case}: {parsed:?}");
        }
        let import: Result<ImageStreamImport, _> = serde_json::from_str(
            r#"{"spec":{"import":null,"images":null},"status":{"import":null,"images":[{"status":null,"image":null}]}}"#,
        );
        assert!(import.is_ok(), "{import:?}");
    }

    #[test]
    fn resource_paths() {
        assert_eq!(
            ImageStream::url_path(&(), Some("packit-prod")),
            "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreams"
        );
        assert_eq!(
            ImageStreamImport::url_path(&(), Some("packit-prod")),
            "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreamimports"
        );
        assert_eq!(ImageStream::kind(&()), "ImageStream");
        assert_eq!(ImageStreamImport::api_version(&()), API_VERSION);
    }

    #[test]
    fn constructed_import_serializes_like_oc_import_image() {
        let request = ImageStreamImport::new(
            "packit-prod",
            "packit-worker",
            true,
            ImageImportSpec {
                from: ObjectReference::docker_image("quay.io/packit/packit-worker:prod"),
                to: Some(LocalObjectReference {
                    name: "prod".into(),
                }),
                import_policy: Some(TagImportPolicy {
                    import_mode: Some("Legacy".into()),
                    ..TagImportPolicy::default()
                }),
                reference_policy: Some(TagReferencePolicy {
                    type_: Some("Source".into()),
                    extra: Map::new(),
                }),
                ..ImageImportSpec::default()
            },
        );
        let expected = serde_json::json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStreamImport",
            "metadata": {"name": "packit-worker", "namespace": "packit-prod"},
            "spec": {"import": true, "images": [{
                "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"},
                "to": {"name": "prod"},
                "importPolicy": {"importMode": "Legacy"},
                "referencePolicy": {"type": "Source"}
            }]}
        });
        assert_eq!(serde_json::to_value(&request).expect("serialize"), expected);
    }
}
