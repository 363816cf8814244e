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
//!
//! By job: `discovery` finds the tags of an environment, `operations` reads,
//! previews, imports, pins and restores them, `transport` sends one call and
//! retries it, and `errors` says why a call failed, as an [`ErrorKind`]
//! callers match on.

mod discovery;
mod errors;
mod operations;
mod transport;

#[cfg(test)]
mod fake_server_tests;
#[cfg(test)]
mod fixtures;

use std::time::Duration;

pub use discovery::{discover_in, tag_key, Discovery, Target, TargetSelector};
pub use errors::{classify_image_failure, ErrorKind, ImageFailure, ImportError, Operation};
pub use operations::ImportOutcome;
pub use transport::RetryPolicy;

/// Result of the importer's operations.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// Runs image API calls against one cluster.
#[derive(Clone)]
pub struct Importer {
    client: kube::Client,
    options: ImporterOptions,
}

/// Timeouts and retries of an [`Importer`]. It runs one operation per call;
/// callers bound how many run at once (`import.concurrency`).
#[derive(Clone, Debug)]
pub struct ImporterOptions {
    /// Upper bound for one HTTP call, from sending to the last body byte.
    pub call_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl Default for ImporterOptions {
    fn default() -> Self {
        ImporterOptions {
            call_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl Importer {
    pub fn new(client: kube::Client, options: ImporterOptions) -> Self {
        Importer { client, options }
    }

    /// The client of this importer's cluster, for the reads of other
    /// policies there (the soak gate's rollout check).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{ms, secs};

    #[test]
    fn defaults() {
        let options = ImporterOptions::default();
        assert_eq!(options.call_timeout, secs(30));
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
