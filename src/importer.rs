//! The importer: the only code of the daemon and the CLI that talks to the
//! OpenShift image API.
//!
//! It discovers the tags an environment imports, previews what a source
//! resolves to, imports (one `ImageStreamImport` per tag, with the tag's own
//! policies), and pins or restores a tag with a strategic merge patch.
//!
//! Every write carries the `metadata.resourceVersion` of the stream read it
//! was decided on. OpenShift answers 409 Conflict when the stream changed
//! since, and a successful import rewrites the spec tag's `from`,
//! `importPolicy` and `referencePolicy` from the request: an import built
//! from a stale read would silently undo a pin or a GitOps edit made in
//! between. On 409 the stream is read again and the decision made again
//! (a tag pinned meanwhile is held, not imported). `metadata.uid` is no
//! precondition: the real API server wipes it from a create request.
//!
//! Every call runs under [`ImporterOptions::call_timeout`]. Transient
//! failures (5xx, 408, 429, timeouts, connection errors, 409 conflicts and
//! per-image `InternalError`s) are retried with exponential backoff and full
//! jitter, honouring `Retry-After`; permanent ones (401, 403, 404, 400, 422,
//! per-image `NotFound`/`Unauthorized`) are reported at once.
//!
//! Requests go through [`kube::Client::send`] rather than `kube::Api`, because
//! `kube::Error::Api` drops the response headers and the `Retry-After` header
//! decides how long to wait. The client's own retry layer
//! (`kube::Config::default_retry`) should be off for clients passed here, or
//! 429/503/504 are retried by both.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::{header::RETRY_AFTER, HeaderMap, StatusCode};
use kube::core::params::{ListParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::Resource;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::config::Environment;
use crate::openshift::{
    digest_of_reference, is_digest_reference, null_as_default, ImageImportSpec, ImageStream,
    ImageStreamImport, LocalObjectReference, ObjectReference, TagEvent, TagImportPolicy,
    TagReference, TagReferencePolicy, KIND_DOCKER_IMAGE,
};

/// Result of the importer's operations.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// Runs image API calls against one cluster.
#[derive(Clone)]
pub struct Importer {
    client: kube::Client,
    options: ImporterOptions,
}

/// Timeouts, concurrency and retries of an [`Importer`].
#[derive(Clone, Debug)]
pub struct ImporterOptions {
    /// Upper bound for one HTTP call, from sending to the last body byte.
    pub call_timeout: Duration,
    /// How many streams [`Importer::import_all`] imports at the same time.
    pub concurrency: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl Default for ImporterOptions {
    fn default() -> Self {
        ImporterOptions {
            call_timeout: Duration::from_secs(30),
            concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// Exponential backoff with full jitter between attempts of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts including the first; `0` counts as `1`.
    pub max_attempts: u32,
    /// Upper bound of the first delay.
    pub initial_backoff: Duration,
    /// Upper bound of any delay, including one a server asks for.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

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
    Failed {
        reason: String,
        message: String,
        transient: bool,
    },
}

impl ImportOutcome {
    /// A short name: `unchanged`, `updated`, `held` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            ImportOutcome::Unchanged { .. } => "unchanged",
            ImportOutcome::Updated { .. } => "updated",
            ImportOutcome::Held { .. } => "held",
            ImportOutcome::Failed { .. } => "failed",
        }
    }
}

/// An image API call, for messages and permission hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ListStreams,
    GetStream,
    Preview,
    Import,
    PatchStream,
}

impl Operation {
    /// The RBAC verb the call needs.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::ListStreams => "list",
            Operation::GetStream => "get",
            Operation::Preview | Operation::Import => "create",
            Operation::PatchStream => "patch",
        }
    }

    /// The RBAC resource (in `image.openshift.io`) the call needs.
    pub fn resource(self) -> &'static str {
        match self {
            Operation::Preview | Operation::Import => "imagestreamimports",
            _ => "imagestreams",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Operation::ListStreams => "listing imagestreams",
            Operation::GetStream => "reading the imagestream",
            Operation::Preview => "previewing the import",
            Operation::Import => "importing",
            Operation::PatchStream => "patching the imagestream",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an image API operation failed. `target` is `namespace/stream:tag`
/// (or `namespace/stream`, or `namespace` for listings).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{target}: {operation} timed out after {after:?}: the API server (or the registry behind it) did not answer in time; retry later, or raise the call timeout if this persists")]
    Timeout {
        target: String,
        operation: Operation,
        after: Duration,
    },
    #[error("{target}: {operation}: cannot reach the API server: {message}; check the cluster address, the network and the kubeconfig's TLS settings")]
    Connection {
        target: String,
        operation: Operation,
        message: String,
    },
    #[error("{target}: {operation}: the API server rejected the credentials (401 Unauthorized): {message}; renew the token in the kubeconfig or the ServiceAccount token")]
    Unauthorized {
        target: String,
        operation: Operation,
        message: String,
    },
    #[error("{target}: {operation}: forbidden (403): {message}; grant `{verb}` on `{resource}` (group image.openshift.io) in namespace {namespace} to this identity", verb = .operation.verb(), resource = .operation.resource())]
    Forbidden {
        target: String,
        operation: Operation,
        namespace: String,
        message: String,
    },
    #[error("{target}: {operation}: not found: {message}; {hint}")]
    NotFound {
        target: String,
        operation: Operation,
        message: String,
        hint: String,
    },
    #[error("{target}: {operation}: conflict with a concurrent change (409): {message}; re-read the stream and retry")]
    Conflict {
        target: String,
        operation: Operation,
        message: String,
    },
    #[error("{target}: {operation}: rejected as invalid (HTTP {code} {reason}): {message}; fix the stream's spec tag or the request")]
    Invalid {
        target: String,
        operation: Operation,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{target}: {operation}: HTTP {code} {reason}: {message}; {}", if *.transient { "the server is overloaded or failing: retried with backoff, check the API server if it persists" } else { "the server cannot do this request: check the API server version and the image API" })]
    Server {
        target: String,
        operation: Operation,
        code: u16,
        reason: String,
        message: String,
        transient: bool,
        retry_after: Option<Duration>,
    },
    #[error("{target}: {operation} {image} failed: {reason}: {message}; {hint}", hint = .kind.hint(.image))]
    ImageFailed {
        target: String,
        operation: Operation,
        image: String,
        reason: String,
        message: String,
        kind: ImageFailure,
    },
    #[error("{target}: {operation}: unexpected response: {message}; check that the cluster serves image.openshift.io/v1")]
    UnexpectedResponse {
        target: String,
        operation: Operation,
        message: String,
    },
    #[error("{target}: {message}")]
    InvalidArgument { target: String, message: String },
}

impl ImportError {
    /// Where it happened: `namespace/stream:tag`, `namespace/stream` or `namespace`.
    pub fn target(&self) -> &str {
        match self {
            ImportError::Timeout { target, .. }
            | ImportError::Connection { target, .. }
            | ImportError::Unauthorized { target, .. }
            | ImportError::Forbidden { target, .. }
            | ImportError::NotFound { target, .. }
            | ImportError::Conflict { target, .. }
            | ImportError::Invalid { target, .. }
            | ImportError::Server { target, .. }
            | ImportError::ImageFailed { target, .. }
            | ImportError::UnexpectedResponse { target, .. }
            | ImportError::InvalidArgument { target, .. } => target,
        }
    }

    /// A machine-readable reason in Kubernetes' vocabulary where one exists
    /// (`NotFound`, `Forbidden`, `InternalError`, ...).
    pub fn reason(&self) -> &str {
        match self {
            ImportError::Timeout { .. } => "Timeout",
            ImportError::Connection { .. } => "ConnectionError",
            ImportError::Unauthorized { .. } => "Unauthorized",
            ImportError::Forbidden { .. } => "Forbidden",
            ImportError::NotFound { .. } => "NotFound",
            ImportError::Conflict { .. } => "Conflict",
            ImportError::Invalid { reason, .. }
            | ImportError::Server { reason, .. }
            | ImportError::ImageFailed { reason, .. } => reason,
            ImportError::UnexpectedResponse { .. } => "UnexpectedResponse",
            ImportError::InvalidArgument { .. } => "InvalidArgument",
        }
    }

    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ImportError::Timeout { .. }
            | ImportError::Connection { .. }
            | ImportError::Conflict { .. } => true,
            ImportError::Server { transient, .. } => *transient,
            ImportError::ImageFailed { kind, .. } => kind.is_transient(),
            _ => false,
        }
    }

    /// How long the server asked to wait before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ImportError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the API server answered, when it answered with an error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ImportError::Unauthorized { .. } => Some(401),
            ImportError::Forbidden { .. } => Some(403),
            ImportError::Conflict { .. } => Some(409),
            ImportError::Invalid { code, .. } | ImportError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a missing stream, tag or source image.
    pub fn is_not_found(&self) -> bool {
        match self {
            ImportError::NotFound { .. } => true,
            ImportError::ImageFailed { kind, .. } => *kind == ImageFailure::MissingImage,
            _ => false,
        }
    }
}

/// What a per-image import failure (`status.images[].status`) means, read
/// from its reason and message as OpenShift reports them: the registry's
/// `MANIFEST_UNKNOWN` is `NotFound`, its `UNAUTHORIZED` is `Unauthorized`,
/// everything else (an unknown repository, `DENIED`, rate limits, dial
/// errors, 5xx) is `InternalError` with the registry's error in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageFailure {
    /// The repository or tag does not exist: the operator pushes it or fixes `from.name`.
    MissingImage,
    /// The registry refused the credentials: the operator fixes the pull secret.
    AccessDenied,
    /// The reference is not valid: the operator fixes `from.name`.
    InvalidReference,
    /// The registry asks to slow down.
    RateLimited,
    /// The registry host cannot be reached (DNS, refused, timeout).
    Unreachable,
    /// Any other failure of the registry or the import (5xx, unknown).
    RegistryError,
}

impl ImageFailure {
    /// True when trying again later may succeed without anyone fixing anything.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ImageFailure::RateLimited | ImageFailure::Unreachable | ImageFailure::RegistryError
        )
    }

    /// What to do about it, naming the source `image`.
    pub fn hint(self, image: &str) -> String {
        match self {
            ImageFailure::MissingImage => format!("{image} does not exist in its registry (unknown repository or tag): push it, or fix the tag's from.name"),
            ImageFailure::AccessDenied => format!("the registry refused access to {image}: check the pull secret for its registry in this namespace (and that the service account can use it)"),
            ImageFailure::InvalidReference => format!("{image} is not a valid image reference: fix the tag's from.name"),
            ImageFailure::RateLimited => "the registry is rate limiting pulls: retried with backoff; authenticate with a pull secret to raise the limit if it persists".to_owned(),
            ImageFailure::Unreachable => "the registry cannot be reached from the cluster: retried with backoff; check its host name, the network and egress rules if it persists".to_owned(),
            ImageFailure::RegistryError => "the registry or the image import failed: retried with backoff, check the registry if it persists".to_owned(),
        }
    }
}

/// Classifies a per-image import failure by its `reason`, HTTP `code` and
/// `message`. `source` (the requested reference) is removed from the message
/// first, so a repository named e.g. `denied-app` does not look like a
/// registry's `DENIED`.
pub fn classify_image_failure(
    reason: &str,
    code: Option<i32>,
    message: &str,
    source: &str,
) -> ImageFailure {
    let text = if source.is_empty() {
        message.to_ascii_lowercase()
    } else {
        message.replace(source, "").to_ascii_lowercase()
    };
    let says = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    match reason {
        "NotFound" => return ImageFailure::MissingImage,
        "Unauthorized" | "Forbidden" => return ImageFailure::AccessDenied,
        "Invalid" | "BadRequest" => return ImageFailure::InvalidReference,
        "TooManyRequests" => return ImageFailure::RateLimited,
        _ => {}
    }
    // Registry error codes appear as `NAME_UNKNOWN` or, formatted by the
    // distribution client, `name unknown`.
    if says(&["toomanyrequests", "too many requests", "rate limit"]) {
        ImageFailure::RateLimited
    } else if says(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "connection reset",
        "network is unreachable",
        "no route to host",
        "tls handshake timeout",
        "server misbehaving",
    ]) {
        ImageFailure::Unreachable
    } else if says(&[
        "name_unknown",
        "name unknown",
        "manifest_unknown",
        "manifest unknown",
    ]) {
        ImageFailure::MissingImage
    } else if says(&[
        "denied",
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "incorrect username or password",
    ]) {
        ImageFailure::AccessDenied
    } else {
        // A reason this code does not know: go by the HTTP code, and retry
        // with backoff when in doubt.
        match code {
            Some(404) => ImageFailure::MissingImage,
            Some(401 | 403) => ImageFailure::AccessDenied,
            Some(400 | 422) => ImageFailure::InvalidReference,
            _ => ImageFailure::RegistryError,
        }
    }
}

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

/// How an HTTP error status is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transience {
    /// Retry with backoff.
    Transient,
    /// Report at once.
    Permanent,
    /// Re-read the object, then retry.
    Conflict,
}

/// Classifies an HTTP status code of a failed call.
pub fn classify_status(code: u16) -> Transience {
    match code {
        409 => Transience::Conflict,
        408 | 429 => Transience::Transient,
        501 | 505 => Transience::Permanent,
        500..=599 => Transience::Transient,
        _ => Transience::Permanent,
    }
}

/// Parses a `Retry-After` header value: delay seconds or an HTTP date.
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate; the delay is capped later anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The delay before retry number `retry` (0 for the first retry).
///
/// A server-requested delay wins, capped at `max_backoff`; otherwise full
/// jitter: `jitter` (uniform in `[0, 1)`) times
/// `min(max_backoff, initial_backoff * 2^retry)`.
pub fn backoff_delay(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    if let Some(after) = retry_after {
        return after.min(policy.max_backoff);
    }
    let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
    let ceiling = policy
        .initial_backoff
        .checked_mul(factor)
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

/// `namespace/stream:tag`.
pub fn tag_key(namespace: &str, stream: &str, tag: &str) -> String {
    format!("{namespace}/{stream}:{tag}")
}

/// What the tag `tag` of `stream` means for an environment: a target, or why not.
enum TagFit {
    Target(Box<Target>),
    Skipped(String),
}

fn fit_tag(stream: &ImageStream, spec: &TagReference, sel: &TargetSelector) -> TagFit {
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
        held: is_digest_reference(&from.name),
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

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Builds the error for a non-2xx response.
fn http_error(
    operation: Operation,
    target: &str,
    namespace: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ImportError {
    let parsed: Option<kube::core::Status> = serde_json::from_slice(body).ok();
    let code = status.as_u16();
    let reason = parsed
        .as_ref()
        .map(|s| s.reason.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Unknown")
                .replace(' ', "")
        });
    let message = parsed
        .as_ref()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("HTTP {code} with an empty body")
            } else {
                text.chars().take(300).collect()
            }
        });
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()))
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|s| s.details.as_ref())
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s)))
        });
    let target = target.to_owned();
    match code {
        401 => ImportError::Unauthorized {
            target,
            operation,
            message,
        },
        403 => ImportError::Forbidden {
            target,
            operation,
            namespace: namespace.to_owned(),
            message,
        },
        404 => ImportError::NotFound {
            target,
            operation,
            message,
            hint: match operation {
                Operation::ListStreams => format!(
                    "check that namespace {namespace} exists and the cluster serves image.openshift.io/v1 imagestreams"
                ),
                _ => "the stream does not exist (deleted or renamed): check its name and run discovery again".to_owned(),
            },
        },
        409 => ImportError::Conflict {
            target,
            operation,
            message,
        },
        400 | 422 => ImportError::Invalid {
            target,
            operation,
            code,
            reason,
            message,
        },
        _ => ImportError::Server {
            target,
            operation,
            code,
            reason,
            message,
            transient: classify_status(code) == Transience::Transient,
            retry_after,
        },
    }
}

fn transport_error(operation: Operation, target: &str, error: kube::Error) -> ImportError {
    match error {
        kube::Error::Auth(e) => ImportError::Unauthorized {
            target: target.to_owned(),
            operation,
            message: format!("cannot obtain credentials: {e}"),
        },
        other => ImportError::Connection {
            target: target.to_owned(),
            operation,
            message: other.to_string(),
        },
    }
}

impl Importer {
    pub fn new(client: kube::Client, options: ImporterOptions) -> Self {
        Importer { client, options }
    }

    pub fn options(&self) -> &ImporterOptions {
        &self.options
    }

    /// One HTTP call under the call timeout; the body of a 2xx response.
    async fn send(
        &self,
        operation: Operation,
        target: &str,
        namespace: &str,
        request: http::Request<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let started = Instant::now();
        let call = async {
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await?;
            let (parts, body) = response.into_parts();
            let body = body.collect_bytes().await?;
            Ok::<_, kube::Error>((parts, body))
        };
        let result = tokio::time::timeout(self.options.call_timeout, call).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Err(_) => {
                debug!(%operation, target, %method, path, elapsed_ms, result = "timeout", "image API call");
                Err(ImportError::Timeout {
                    target: target.to_owned(),
                    operation,
                    after: self.options.call_timeout,
                })
            }
            Ok(Err(error)) => {
                debug!(%operation, target, %method, path, elapsed_ms, result = "transport error", error = %error, "image API call");
                Err(transport_error(operation, target, error))
            }
            Ok(Ok((parts, body))) => {
                let status = parts.status.as_u16();
                debug!(%operation, target, %method, path, elapsed_ms, status, "image API call");
                if parts.status.is_success() {
                    Ok(body.to_vec())
                } else {
                    Err(http_error(
                        operation,
                        target,
                        namespace,
                        parts.status,
                        &parts.headers,
                        &body,
                    ))
                }
            }
        }
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        target: &str,
        namespace: &str,
        request: http::Request<Vec<u8>>,
    ) -> Result<T> {
        let body = self.send(operation, target, namespace, request).await?;
        serde_json::from_slice(&body).map_err(|e| ImportError::UnexpectedResponse {
            target: target.to_owned(),
            operation,
            message: format!("cannot decode the response body: {e}"),
        })
    }

    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        backoff_delay(
            &self.options.retry,
            retry,
            retry_after,
            rand::random::<f64>(),
        )
    }

    fn max_attempts(&self) -> u32 {
        self.options.retry.max_attempts.max(1)
    }

    /// Runs `call` (a request without precondition) until it succeeds,
    /// fails permanently, or runs out of attempts.
    async fn with_retry<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying(true, call).await
    }

    /// Like [`Importer::with_retry`] for a request carrying a
    /// resourceVersion: a 409 Conflict is returned at once, because sending
    /// the same request again cannot succeed; the caller reads the object
    /// again instead.
    async fn with_retry_but_conflicts<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying(false, call).await
    }

    async fn retrying<T, F, Fut>(&self, conflicts: bool, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error)
                    if error.is_transient()
                        && (conflicts || !matches!(error, ImportError::Conflict { .. }))
                        && attempt < self.max_attempts() =>
                {
                    let delay = self.delay(attempt - 1, error.retry_after());
                    debug!(target = error.target(), attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying image API call");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn build_error(
        target: &str,
        operation: Operation,
        e: kube::core::request::Error,
    ) -> ImportError {
        ImportError::InvalidArgument {
            target: target.to_owned(),
            message: format!("cannot build the request for {operation}: {e}; check the namespace, stream and tag names"),
        }
    }

    /// Every stream of the namespace, or those matching `label_selector`.
    async fn list_streams(
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
            if let Some(digest) = digest_of_reference(&t.source) {
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
                return (failed(&error), attempt);
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
                    Err(refresh_error) => return (failed(&refresh_error), attempt),
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

    /// Imports every target, at most `options.concurrency` at a time; the
    /// results are in the order of `targets`.
    pub async fn import_all(&self, targets: &[Target]) -> Vec<(Target, ImportOutcome)> {
        futures::stream::iter(targets)
            .map(|t| async move { (t.clone(), self.import(t).await) })
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await
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
        if !is_digest_reference(reference) {
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
        if source.trim().is_empty() || is_digest_reference(source) || source.contains('@') {
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

fn failed(error: &ImportError) -> ImportOutcome {
    ImportOutcome::Failed {
        reason: error.reason().to_owned(),
        message: error.to_string(),
        transient: error.is_transient(),
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

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/openshift/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read fixture {path}: {e}"))
    }

    fn stream(name: &str) -> ImageStream {
        serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    #[test]
    fn classify_status_table() {
        let cases = [
            (400, Transience::Permanent),
            (401, Transience::Permanent),
            (403, Transience::Permanent),
            (404, Transience::Permanent),
            (408, Transience::Transient),
            (409, Transience::Conflict),
            (410, Transience::Permanent),
            (422, Transience::Permanent),
            (429, Transience::Transient),
            (500, Transience::Transient),
            (501, Transience::Permanent),
            (502, Transience::Transient),
            (503, Transience::Transient),
            (504, Transience::Transient),
        ];
        for (code, expected) in cases {
            assert_eq!(classify_status(code), expected, "HTTP {code}");
        }
    }

    /// Per-image failures as OpenShift reports them (reason, code, message),
    /// from `importer.go`'s `formatRepositoryError` and measured answers.
    #[test]
    fn image_failure_table() {
        use ImageFailure::*;
        let src = "127.0.0.1:5000/ns/app:tag";
        let cases: &[(&str, Option<i32>, &str, ImageFailure)] = &[
            // Distribution 2.8 sends MANIFEST_UNKNOWN for an unknown repository
            // too: the real server says NotFound.
            ("NotFound", Some(404), r#"dockerimage.image.openshift.io "127.0.0.1:5000/ns/app:tag" not found"#, MissingImage),
            ("NotFound", Some(404), "", MissingImage),
            ("NotFound", None, "not found", MissingImage),
            ("Unauthorized", Some(401), "you may not have access to the container image \"127.0.0.1:5000/ns/app:tag\"", AccessDenied),
            ("Forbidden", None, "forbidden", AccessDenied),
            ("Invalid", Some(422), "invalid reference format", InvalidReference),
            ("BadRequest", None, "", InvalidReference),
            // Everything else is InternalError with the registry's error.
            ("InternalError", Some(500), r#"Internal error occurred: 127.0.0.1:5000/ns/app:tag: Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused"#, Unreachable),
            ("InternalError", Some(500), r#"Internal error occurred: registry.example:5000/ns/app:tag: Get "https://registry.example/v2/": dial tcp: lookup registry.example on 10.0.0.10:53: no such host"#, Unreachable),
            ("InternalError", Some(500), r#"Internal error occurred: 127.0.0.1:5000/ns/app:tag: Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: i/o timeout"#, Unreachable),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: NAME_UNKNOWN: repository name not known to registry", MissingImage),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: name unknown: repository name not known to registry", MissingImage),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: MANIFEST_UNKNOWN: manifest unknown", MissingImage),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: DENIED: requested access to the resource is denied", AccessDenied),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: denied: requested access to the resource is denied", AccessDenied),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: UNAUTHORIZED: authentication required", AccessDenied),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: unauthorized: access to the requested resource is not authorized", AccessDenied),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: TOOMANYREQUESTS: You have reached your pull rate limit", RateLimited),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: toomanyrequests: Rate exceeded", RateLimited),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: received unexpected HTTP status: 503 Service Unavailable", RegistryError),
            ("InternalError", Some(500), "Internal error occurred: 127.0.0.1:5000/ns/app:tag: unknown: 502 Bad Gateway", RegistryError),
            ("InternalError", None, "", RegistryError),
            ("TooManyRequests", Some(429), "", RateLimited),
            ("ServiceUnavailable", None, "", RegistryError),
            ("Timeout", None, "", RegistryError),
            // Reasons this code does not know: the HTTP code decides.
            ("SomethingNew", Some(503), "", RegistryError),
            ("SomethingNew", Some(404), "", MissingImage),
            ("SomethingNew", Some(403), "", AccessDenied),
            ("SomethingNew", Some(422), "", InvalidReference),
            ("SomethingNew", None, "", RegistryError),
            ("", Some(-1), "", RegistryError),
        ];
        for (reason, code, message, expected) in cases {
            assert_eq!(
                classify_image_failure(reason, *code, message, src),
                *expected,
                "{reason} {code:?} {message}"
            );
        }
        // The requested reference is not read as the registry's answer.
        let denied_repo = "127.0.0.1:5000/ns/denied-app:unauthorized";
        assert_eq!(
            classify_image_failure(
                "InternalError",
                Some(500),
                &format!("Internal error occurred: {denied_repo}: Get \"https://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused"),
                denied_repo
            ),
            Unreachable
        );
        assert_eq!(
            classify_image_failure(
                "InternalError",
                Some(500),
                &format!("Internal error occurred: {denied_repo}: unknown: 500"),
                denied_repo
            ),
            RegistryError
        );
    }

    #[test]
    fn image_failures_are_transient_unless_the_operator_must_act() {
        use ImageFailure::*;
        let cases = [
            (MissingImage, false, "push it, or fix the tag's from.name"),
            (AccessDenied, false, "check the pull secret"),
            (InvalidReference, false, "fix the tag's from.name"),
            (RateLimited, true, "rate limiting"),
            (Unreachable, true, "cannot be reached"),
            (RegistryError, true, "retried with backoff"),
        ];
        for (kind, transient, hint) in cases {
            assert_eq!(kind.is_transient(), transient, "{kind:?}");
            let text = kind.hint("quay.io/packit/w:prod");
            assert!(text.contains(hint), "{kind:?}: {text}");
            if !transient {
                assert!(
                    text.contains("quay.io/packit/w:prod"),
                    "{kind:?} names the source: {text}"
                );
            }
        }
    }

    #[test]
    fn retry_after_table() {
        let now = DateTime::parse_from_rfc3339("2024-05-21T02:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let cases: [(&str, Option<Duration>); 9] = [
            ("0", Some(secs(0))),
            ("7", Some(secs(7))),
            (" 120 ", Some(secs(120))),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("Tue, 21 May 2024 02:00:30 GMT", Some(secs(30))),
            ("Tue, 21 May 2024 01:59:00 GMT", Some(secs(0))),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn backoff_table() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: ms(500),
            max_backoff: secs(30),
        };
        let cases = [
            // (retry, retry_after, jitter, expected)
            (0, None, 0.0, ms(0)),
            (0, None, 0.5, ms(250)),
            (0, None, 1.0, ms(500)),
            (1, None, 1.0, ms(1000)),
            (3, None, 0.5, ms(2000)),
            (6, None, 1.0, secs(30)),
            (40, None, 1.0, secs(30)),
            (u32::MAX, None, 0.5, secs(15)),
            (0, Some(secs(7)), 0.0, secs(7)),
            (5, Some(secs(7)), 0.9, secs(7)),
            (0, Some(secs(3600)), 0.5, secs(30)),
            (0, None, 2.0, ms(500)),
            (0, None, -1.0, ms(0)),
        ];
        for (retry, retry_after, jitter, expected) in cases {
            assert_eq!(
                backoff_delay(&policy, retry, retry_after, jitter),
                expected,
                "retry {retry}, retry_after {retry_after:?}, jitter {jitter}"
            );
        }
    }

    #[test]
    fn http_errors_are_classified_with_hints() {
        let status = |code: u16| StatusCode::from_u16(code).expect("valid status");
        let body = |code: u16, reason: &str, message: &str| {
            serde_json::to_vec(&serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code
            }))
            .expect("json")
        };
        let none = HeaderMap::new();
        let key = "packit-prod/packit-worker:prod";

        let forbidden = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(403),
            &none,
            &body(403, "Forbidden", "imagestreamimports.image.openshift.io is forbidden: User \"system:serviceaccount:packit-prod:reader\" cannot create resource \"imagestreamimports\""),
        );
        assert!(matches!(forbidden, ImportError::Forbidden { .. }));
        assert!(!forbidden.is_transient());
        let text = forbidden.to_string();
        assert!(text.starts_with(key), "{text}");
        assert!(
            text.contains("grant `create` on `imagestreamimports` (group image.openshift.io) in namespace packit-prod"),
            "{text}"
        );
        assert!(
            text.contains("system:serviceaccount:packit-prod:reader"),
            "{text}"
        );

        let unauthorized = http_error(
            Operation::GetStream,
            key,
            "packit-prod",
            status(401),
            &none,
            b"",
        );
        assert_eq!(unauthorized.reason(), "Unauthorized");
        assert!(unauthorized.to_string().contains("renew the token"));

        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().expect("header"));
        let throttled = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(429),
            &headers,
            &body(429, "TooManyRequests", "slow down"),
        );
        assert!(throttled.is_transient());
        assert_eq!(throttled.retry_after(), Some(secs(3)));
        assert_eq!(throttled.reason(), "TooManyRequests");

        let with_details = serde_json::to_vec(&serde_json::json!({
            "kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
            "message": "too many requests", "details": {"retryAfterSeconds": 2}
        }))
        .expect("json");
        let throttled = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(429),
            &none,
            &with_details,
        );
        assert_eq!(throttled.retry_after(), Some(secs(2)));

        let unavailable = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(503),
            &none,
            b"upstream connect error",
        );
        assert!(unavailable.is_transient());
        assert_eq!(unavailable.reason(), "ServiceUnavailable");
        assert!(unavailable.to_string().contains("upstream connect error"));

        let conflict = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(409),
            &none,
            &body(409, "Conflict", "Operation cannot be fulfilled on imagestreams.image.openshift.io \"packit-worker\": the image stream was updated from \"41\" to \"42\""),
        );
        assert!(matches!(conflict, ImportError::Conflict { .. }));
        assert!(conflict.is_transient());

        let invalid = http_error(
            Operation::Import,
            key,
            "packit-prod",
            status(422),
            &none,
            &body(422, "Invalid", "spec.images[0].from.name: Required value"),
        );
        assert!(matches!(invalid, ImportError::Invalid { .. }));
        assert!(!invalid.is_transient());

        let not_found = http_error(
            Operation::ListStreams,
            "packit-nope",
            "packit-nope",
            status(404),
            &none,
            &body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
        assert!(not_found.is_not_found());
        assert!(not_found
            .to_string()
            .contains("namespace packit-nope exists"));
    }

    fn sel(tag: &str, names: Option<&[String]>) -> TargetSelector {
        TargetSelector {
            environment: "prod".into(),
            namespace: "packit-prod".into(),
            tag: tag.into(),
            streams: names.map(<[String]>::to_vec),
            ..TargetSelector::default()
        }
    }

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
        let outcome = failed(&error);
        let ImportOutcome::Failed {
            reason,
            message,
            transient,
        } = outcome
        else {
            panic!("expected Failed, got {outcome:?}");
        };
        assert_eq!(reason, "NotFound");
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
        let failed = ImportOutcome::Failed {
            reason: "NotFound".into(),
            message: "m".into(),
            transient: false,
        };
        assert_eq!(
            serde_json::to_value(&failed).expect("json")["outcome"],
            "failed"
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

    #[test]
    fn defaults() {
        let options = ImporterOptions::default();
        assert_eq!(options.call_timeout, secs(30));
        assert_eq!(options.concurrency, 4);
        assert_eq!(
            options.retry,
            RetryPolicy {
                max_attempts: 4,
                initial_backoff: ms(500),
                max_backoff: secs(30)
            }
        );
    }
}

/// The importer against an in-process fake API server (a tower service
/// behind a real `kube::Client`), on tokio's paused clock: request shapes,
/// concurrency and waiting are checked exactly, without a cluster.
#[cfg(test)]
mod fake_server_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use kube::client::Body;

    const DIGEST: &str = "sha256:9c1f3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d423";

    /// One recorded request: method, path, content type, body.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        content_type: String,
        body: serde_json::Value,
    }

    type Answer = (u16, Vec<(&'static str, String)>, serde_json::Value);

    /// A client whose server answers with `answer(n, request)` for the n-th
    /// request (from 0), after `delay`, and records every request.
    fn fake_client<F>(
        delay: Duration,
        answer: F,
    ) -> (kube::Client, Arc<Mutex<Vec<Seen>>>, Arc<AtomicUsize>)
    where
        F: Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
    {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(answer);
        let (seen2, max2) = (seen.clone(), max_in_flight.clone());
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let (seen, in_flight, max, answer) = (
                seen2.clone(),
                in_flight.clone(),
                max2.clone(),
                answer.clone(),
            );
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await?;
                let record = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
                };
                let n = {
                    let mut all = seen.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(record.clone());
                    all.len() - 1
                };
                tokio::time::sleep(delay).await;
                let (status, headers, body) = answer(n, &record);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let mut response = http::Response::builder().status(status);
                for (name, value) in headers {
                    response = response.header(name, value);
                }
                response
                    .body(Body::from(body.to_string().into_bytes()))
                    .map_err(|e| Box::new(e) as tower::BoxError)
            }
        });
        (kube::Client::new(service, "default"), seen, max_in_flight)
    }

    fn success(record: &Seen) -> Answer {
        let stream = record.body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (
            201,
            vec![],
            serde_json::json!({
                "kind": "ImageStreamImport", "apiVersion": "image.openshift.io/v1",
                "metadata": {"name": stream},
                "status": {"images": [{
                    "status": {"metadata": {}, "status": "Success"},
                    "image": {"metadata": {"name": DIGEST}, "dockerImageReference": format!("quay.io/packit/{stream}@{DIGEST}")}
                }]}
            }),
        )
    }

    fn status(code: u16, reason: &str) -> serde_json::Value {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": format!("HTTP {code}"), "code": code})
    }

    fn target(stream: &str) -> Target {
        Target {
            namespace: "packit-prod".into(),
            stream: stream.into(),
            tag: "prod".into(),
            source: format!("quay.io/packit/{stream}:prod"),
            held: false,
            scheduled: false,
            current: None,
            current_reference: None,
            uid: format!("uid-{stream}"),
            resource_version: "1".into(),
            import_policy: Some(TagImportPolicy {
                import_mode: Some("PreserveOriginal".into()),
                insecure: Some(true),
                ..TagImportPolicy::default()
            }),
            reference_policy: Some(TagReferencePolicy {
                type_: Some("Local".into()),
                ..TagReferencePolicy::default()
            }),
        }
    }

    fn options(max_attempts: u32) -> ImporterOptions {
        ImporterOptions {
            call_timeout: Duration::from_secs(30),
            concurrency: 3,
            retry: RetryPolicy {
                max_attempts,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(30),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn import_sends_the_tags_own_policies_and_resource_version() {
        let (client, seen, _) = fake_client(Duration::ZERO, |_, r| success(r));
        let importer = Importer::new(client, options(1));
        let outcome = importer.import(&target("packit-worker")).await;
        assert_eq!(
            outcome,
            ImportOutcome::Updated {
                from: None,
                to: DIGEST.into()
            }
        );
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path,
            "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreamimports"
        );
        assert_eq!(request.content_type, "application/json");
        assert_eq!(request.body["metadata"]["resourceVersion"], "1");
        assert!(
            request.body["metadata"].get("uid").is_none(),
            "no uid: OpenShift ignores it"
        );
        assert_eq!(request.body["spec"]["import"], true);
        assert_eq!(
            request.body["spec"]["images"][0],
            serde_json::json!({
                "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"},
                "to": {"name": "prod"},
                "importPolicy": {"importMode": "PreserveOriginal", "insecure": true},
                "referencePolicy": {"type": "Local"}
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn import_all_is_bounded_and_keeps_input_order() {
        let (client, seen, max_in_flight) =
            fake_client(Duration::from_millis(100), |_, r| success(r));
        let importer = Importer::new(client, options(1));
        let targets: Vec<Target> = ["f", "b", "e", "a", "d", "c", "h", "g"]
            .iter()
            .map(|s| target(s))
            .collect();
        let results = importer.import_all(&targets).await;
        assert_eq!(
            results
                .iter()
                .map(|(t, _)| t.stream.as_str())
                .collect::<Vec<_>>(),
            ["f", "b", "e", "a", "d", "c", "h", "g"]
        );
        assert!(results
            .iter()
            .all(|(_, o)| matches!(o, ImportOutcome::Updated { .. })));
        assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 8);
        assert_eq!(max_in_flight.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_for_and_capped() {
        for (asked, expected) in [("7", 7), ("3600", 30)] {
            let (client, seen, _) = fake_client(Duration::ZERO, move |n, r| match n {
                0 => (
                    429,
                    vec![("Retry-After", asked.to_owned())],
                    status(429, "TooManyRequests"),
                ),
                _ => success(r),
            });
            let importer = Importer::new(client, options(4));
            let started = tokio::time::Instant::now();
            let outcome = importer.import(&target("packit-worker")).await;
            assert!(
                matches!(outcome, ImportOutcome::Updated { .. }),
                "{outcome:?}"
            );
            assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
            // The paused clock advances exactly by the waits.
            assert_eq!(
                started.elapsed(),
                Duration::from_secs(expected),
                "Retry-After: {asked}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_use_up_the_attempts_then_fail() {
        let (client, seen, _) = fake_client(Duration::ZERO, |_, _| {
            (503, vec![], status(503, "ServiceUnavailable"))
        });
        let importer = Importer::new(client, options(4));
        let started = tokio::time::Instant::now();
        let outcome = importer.import(&target("packit-worker")).await;
        let ImportOutcome::Failed {
            reason, transient, ..
        } = &outcome
        else {
            panic!("expected a failure, got {outcome:?}");
        };
        assert_eq!(reason, "ServiceUnavailable");
        assert!(transient);
        assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 4);
        // Full jitter: at most 0.5 + 1 + 2 seconds of backoff in all.
        assert!(
            started.elapsed() <= Duration::from_millis(3500),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_server_times_out_per_call() {
        let (client, seen, _) = fake_client(Duration::from_secs(3600), |_, r| success(r));
        let importer = Importer::new(
            client,
            ImporterOptions {
                call_timeout: Duration::from_secs(5),
                ..options(2)
            },
        );
        let outcome = importer.import(&target("packit-worker")).await;
        let ImportOutcome::Failed {
            reason,
            transient,
            message,
        } = &outcome
        else {
            panic!("expected a failure, got {outcome:?}");
        };
        assert_eq!(reason, "Timeout");
        assert!(transient);
        assert!(
            message.contains("packit-prod/packit-worker:prod"),
            "{message}"
        );
        assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pin_patches_only_the_tag_with_a_strategic_merge_patch() {
        let stream = serde_json::json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "packit-worker", "namespace": "packit-prod", "uid": "u", "resourceVersion": "7"},
            "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"}}]}
        });
        let (client, seen, _) =
            fake_client(Duration::ZERO, move |_, _| (200, vec![], stream.clone()));
        let importer = Importer::new(client, options(1));
        let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
        importer
            .pin("packit-prod", "packit-worker", "prod", &reference)
            .await
            .expect("pin");
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[1].method, "PATCH");
        assert_eq!(
            seen[1].path,
            "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreams/packit-worker"
        );
        assert_eq!(
            seen[1].content_type,
            "application/strategic-merge-patch+json"
        );
        assert_eq!(
            seen[1].body,
            serde_json::json!({
                "metadata": {"resourceVersion": "7"},
                "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": reference}}]}
            })
        );

        let error = importer
            .pin("packit-prod", "packit-worker", "canary", &reference)
            .await
            .expect_err("no such tag");
        assert!(error.is_not_found(), "{error}");
    }

    fn worker_stream(rv: &str, prod_from: Option<&str>) -> serde_json::Value {
        let mut tags = vec![
            serde_json::json!({"name": "stg", "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:stg"}}),
        ];
        if let Some(from) = prod_from {
            tags.push(
                serde_json::json!({"name": "prod", "from": {"kind": "DockerImage", "name": from}}),
            );
        }
        serde_json::json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "packit-worker", "namespace": "packit-prod", "uid": "u", "resourceVersion": rv},
            "spec": {"tags": tags}
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_pin_conflict_reads_the_stream_again_and_patches_the_new_version() {
        let source = "quay.io/packit/packit-worker:prod";
        let (client, seen, _) = fake_client(Duration::ZERO, move |n, _| match n {
            0 => (200, vec![], worker_stream("7", Some(source))),
            1 => (409, vec![], status(409, "Conflict")),
            2 => (200, vec![], worker_stream("8", Some(source))),
            _ => (200, vec![], worker_stream("9", Some(source))),
        });
        let importer = Importer::new(client, options(4));
        let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
        importer
            .pin("packit-prod", "packit-worker", "prod", &reference)
            .await
            .expect("pin");
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["GET", "PATCH", "GET", "PATCH"]);
        assert_eq!(seen[1].body["metadata"]["resourceVersion"], "7");
        assert_eq!(seen[3].body["metadata"]["resourceVersion"], "8");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pin_conflict_with_the_tag_removed_meanwhile_is_not_found() {
        let (client, seen, _) = fake_client(Duration::ZERO, move |n, _| match n {
            0 => (
                200,
                vec![],
                worker_stream("7", Some("quay.io/packit/packit-worker:prod")),
            ),
            1 => (409, vec![], status(409, "Conflict")),
            _ => (200, vec![], worker_stream("8", None)),
        });
        let importer = Importer::new(client, options(4));
        let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
        let error = importer
            .pin("packit-prod", "packit-worker", "prod", &reference)
            .await
            .expect_err("the tag is gone");
        assert!(error.is_not_found(), "{error}");
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            ["GET", "PATCH", "GET"],
            "no patch that would create the tag again"
        );
    }

    /// A preview carries no precondition: a 409 (whatever caused it) is
    /// retried like any transient failure.
    #[tokio::test(start_paused = true)]
    async fn a_preview_conflict_is_retried() {
        let (client, seen, _) = fake_client(Duration::ZERO, |n, r| match n {
            0 => (409, vec![], status(409, "Conflict")),
            _ => success(r),
        });
        let importer = Importer::new(client, options(4));
        let digest = importer
            .preview(&target("packit-worker"))
            .await
            .expect("preview");
        assert_eq!(digest, DIGEST);
        assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
    }

    /// A patch carrying a resourceVersion is never resent unchanged after a
    /// 409: each try reads the stream first.
    #[tokio::test(start_paused = true)]
    async fn patch_conflicts_are_bounded() {
        let (client, seen, _) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
            "GET" => (
                200,
                vec![],
                worker_stream("7", Some("quay.io/packit/packit-worker:prod")),
            ),
            _ => (409, vec![], status(409, "Conflict")),
        });
        let importer = Importer::new(client, options(3));
        let error = importer
            .annotate_tag("packit-prod", "packit-worker", "prod", "k", Some("v"))
            .await
            .expect_err("always conflicting");
        assert!(matches!(error, ImportError::Conflict { .. }), "{error}");
        let patches = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.method == "PATCH")
            .count();
        assert_eq!(patches, 3);
    }

    /// The import was decided on a stream read before an operator pinned the
    /// tag: the server answers 409 to its resourceVersion, the stream is read
    /// again, and the tag is held instead of imported.
    #[tokio::test(start_paused = true)]
    async fn an_import_conflicting_with_a_pin_is_held() {
        let pinned = format!("quay.io/packit/packit-worker@{DIGEST}");
        let stream = worker_stream("8", Some(&pinned));
        let (client, seen, _) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
            "POST" => (409, vec![], status(409, "Conflict")),
            _ => (200, vec![], stream.clone()),
        });
        let importer = Importer::new(client, options(4));
        let outcome = importer.import(&target("packit-worker")).await;
        assert_eq!(outcome, ImportOutcome::Held { reference: pinned });
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["POST", "GET"], "no second import");
    }

    #[tokio::test(start_paused = true)]
    async fn an_import_whose_tag_was_removed_meanwhile_says_so() {
        let stream = worker_stream("8", None);
        let (client, _, _) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
            "POST" => (409, vec![], status(409, "Conflict")),
            _ => (200, vec![], stream.clone()),
        });
        let importer = Importer::new(client, options(4));
        let outcome = importer.import(&target("packit-worker")).await;
        let ImportOutcome::Failed {
            reason,
            message,
            transient,
        } = &outcome
        else {
            panic!("expected a failure, got {outcome:?}");
        };
        assert_eq!(reason, "NotFound");
        assert!(!transient);
        assert!(
            message.contains("removed while its import was being decided"),
            "{message}"
        );
    }
}
