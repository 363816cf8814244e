//! Why an image API operation failed: [`ImportError`], its [`ErrorKind`],
//! and what a per-image import failure means ([`ImageFailure`]).

use std::time::Duration;

use serde::Serialize;

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

    /// What kind of failure this is: what a caller matches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImportError::Timeout { .. } => ErrorKind::Timeout,
            ImportError::Connection { .. } => ErrorKind::Unreachable,
            ImportError::Unauthorized { .. } => ErrorKind::Unauthorized,
            ImportError::Forbidden { .. } => ErrorKind::Forbidden,
            ImportError::NotFound { .. } => ErrorKind::NotFound,
            ImportError::Conflict { .. } => ErrorKind::Conflict,
            ImportError::Invalid { .. } => ErrorKind::Invalid,
            ImportError::Server { .. } => ErrorKind::ServerError,
            ImportError::ImageFailed { kind, .. } => ErrorKind::Registry(*kind),
            ImportError::UnexpectedResponse { .. } => ErrorKind::UnexpectedResponse,
            ImportError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
        }
    }

    /// For a 403: the call the identity may not make and the namespace it
    /// was made in, to name the RBAC permission to grant.
    pub fn denied_call(&self) -> Option<(Operation, &str)> {
        match self {
            ImportError::Forbidden {
                operation,
                namespace,
                ..
            } => Some((*operation, namespace)),
            _ => None,
        }
    }

    /// True for a missing stream, tag or source image.
    pub fn is_not_found(&self) -> bool {
        self.kind().is_not_found()
    }
}

/// The kind of an [`ImportError`]: who must act and how. The API server's
/// refusals (`Unauthorized`, `Forbidden`) are the cluster identity's; a
/// registry's refusal of the source image is [`ImageFailure::AccessDenied`]
/// inside [`ErrorKind::Registry`], the namespace's pull secret's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The API server (or the registry behind it) did not answer within the call timeout.
    Timeout,
    /// The API server cannot be reached (connection, TLS).
    Unreachable,
    /// The API server rejected the credentials (401), or none could be obtained.
    Unauthorized,
    /// The identity lacks an RBAC permission on the image API (403).
    Forbidden,
    /// The namespace, stream or spec tag does not exist.
    NotFound,
    /// The stream changed since it was read (409).
    Conflict,
    /// The API server rejected the request as invalid (400, 422).
    Invalid,
    /// The API server failed or refused for another reason (5xx, 408, 429, ...).
    ServerError,
    /// The API server answered, but importing the source image failed.
    Registry(ImageFailure),
    /// The answer is not what `image.openshift.io/v1` answers.
    UnexpectedResponse,
    /// No request was sent: the arguments cannot make one (a pin to a
    /// moving tag, a tag that follows another stream, ...).
    InvalidArgument,
}

impl ErrorKind {
    /// True for a missing stream, tag or source image.
    pub fn is_not_found(self) -> bool {
        matches!(
            self,
            ErrorKind::NotFound | ErrorKind::Registry(ImageFailure::MissingImage)
        )
    }
}

/// What a per-image import failure (`status.images[].status`) means, read
/// from its reason and message as OpenShift reports them: the registry's
/// `MANIFEST_UNKNOWN` is `NotFound`, its `UNAUTHORIZED` is `Unauthorized`,
/// everything else (an unknown repository, `DENIED`, rate limits, dial
/// errors, 5xx) is `InternalError` with the registry's error in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Each error reports its own kind: the CLI's messages and exit codes
    /// and the pin's advice follow the kind, so a wrong mapping shows there.
    #[test]
    fn every_error_has_its_kind() {
        let t = || "packit-prod/packit-worker:prod".to_owned();
        let m = || "m".to_owned();
        let op = Operation::Import;
        let image = |kind| ImportError::ImageFailed {
            target: t(),
            operation: op,
            image: "quay.io/packit/packit-worker:prod".into(),
            // A registry's refusal carries the API's word for it.
            reason: "Forbidden".into(),
            message: m(),
            kind,
        };
        let cases = [
            (
                ImportError::Timeout {
                    target: t(),
                    operation: op,
                    after: Duration::from_secs(30),
                },
                ErrorKind::Timeout,
            ),
            (
                ImportError::Connection {
                    target: t(),
                    operation: op,
                    message: m(),
                },
                ErrorKind::Unreachable,
            ),
            (
                ImportError::Unauthorized {
                    target: t(),
                    operation: op,
                    message: m(),
                },
                ErrorKind::Unauthorized,
            ),
            (
                ImportError::Forbidden {
                    target: t(),
                    operation: op,
                    namespace: "packit-prod".into(),
                    message: m(),
                },
                ErrorKind::Forbidden,
            ),
            (
                ImportError::NotFound {
                    target: t(),
                    operation: op,
                    message: m(),
                    hint: m(),
                },
                ErrorKind::NotFound,
            ),
            (
                ImportError::Conflict {
                    target: t(),
                    operation: op,
                    message: m(),
                },
                ErrorKind::Conflict,
            ),
            (
                ImportError::Invalid {
                    target: t(),
                    operation: op,
                    code: 422,
                    reason: "Invalid".into(),
                    message: m(),
                },
                ErrorKind::Invalid,
            ),
            (
                ImportError::Server {
                    target: t(),
                    operation: op,
                    code: 503,
                    reason: "ServiceUnavailable".into(),
                    message: m(),
                    transient: true,
                    retry_after: None,
                },
                ErrorKind::ServerError,
            ),
            (
                image(ImageFailure::AccessDenied),
                ErrorKind::Registry(ImageFailure::AccessDenied),
            ),
            (
                image(ImageFailure::MissingImage),
                ErrorKind::Registry(ImageFailure::MissingImage),
            ),
            (
                ImportError::UnexpectedResponse {
                    target: t(),
                    operation: op,
                    message: m(),
                },
                ErrorKind::UnexpectedResponse,
            ),
            (
                ImportError::InvalidArgument {
                    target: t(),
                    message: m(),
                },
                ErrorKind::InvalidArgument,
            ),
        ];
        for (error, kind) in &cases {
            assert_eq!(error.kind(), *kind, "{error:?}");
            let not_found = matches!(
                kind,
                ErrorKind::NotFound | ErrorKind::Registry(ImageFailure::MissingImage)
            );
            assert_eq!(error.is_not_found(), not_found, "{error:?}");
            // Only the API's own 403 names a permission to grant.
            assert_eq!(
                error.denied_call().is_some(),
                *kind == ErrorKind::Forbidden,
                "{error:?}"
            );
        }
        let kinds: std::collections::HashSet<ErrorKind> = cases.iter().map(|(_, k)| *k).collect();
        assert_eq!(kinds.len(), cases.len(), "no two errors share a kind here");
        let forbidden = &cases[3].0;
        assert_eq!(
            forbidden.denied_call(),
            Some((Operation::Import, "packit-prod"))
        );
    }
}
