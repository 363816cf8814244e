//! Getting one notice to one receiver: a worker per receiver drains its
//! bounded queue, and each delivery has a timeout per attempt and retries
//! with backoff. Nothing here runs on the caller's task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, Notify};

use super::notice::Notice;
use super::sentry::SentryDsn;
use super::slack::SlackWebhook;
use crate::metrics::Metrics;

/// Tuning of delivery; the defaults suit a chat webhook and sentry.io.
#[derive(Clone, Debug)]
pub struct DeliveryOptions {
    /// Notices waiting per receiver; more are dropped (and counted).
    pub queue_capacity: usize,
    /// Limit of one HTTP attempt, connection included.
    pub timeout: Duration,
    /// Attempts per notice, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles per attempt.
    pub backoff: Duration,
    /// Longest wait between attempts, also for a receiver's `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            queue_capacity: 100,
            timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Where a receiver's notices go.
#[derive(Clone, Debug)]
pub enum Target {
    Slack(SlackWebhook),
    Sentry(SentryDsn),
}

impl Target {
    /// The `receiver` label of the metric and the log field.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Slack(_) => "slack",
            Target::Sentry(_) => "sentry",
        }
    }

    fn url(&self) -> &http::Uri {
        match self {
            Target::Slack(hook) => &hook.url,
            Target::Sentry(dsn) => &dsn.url,
        }
    }

    fn request(&self, body: &Bytes) -> Request<Full<Bytes>> {
        let builder = Request::post(self.url().clone());
        let builder = match self {
            Target::Slack(_) => builder.header(header::CONTENT_TYPE, "application/json"),
            Target::Sentry(dsn) => builder
                .header(header::CONTENT_TYPE, "application/x-sentry-envelope")
                .header("X-Sentry-Auth", dsn.auth_header()),
        };
        builder
            .body(Full::new(body.clone()))
            .expect("a POST to a parsed URI with static headers is a valid request")
    }

    fn body(&self, notice: &Notice) -> Bytes {
        match self {
            Target::Slack(_) => SlackWebhook::payload(notice).into(),
            // Built once per notice: retries carry the same event id, so
            // Sentry drops a duplicate if an answer was lost.
            Target::Sentry(_) => SentryDsn::envelope(notice).into(),
        }
    }
}

/// `scheme://host[:port]` of a URL: what may be logged of a secret URL.
pub fn endpoint(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("?");
    match (url.host(), url.port_u16()) {
        (Some(host), Some(port)) => format!("{scheme}://{host}:{port}"),
        (Some(host), None) => format!("{scheme}://{host}"),
        _ => format!("{scheme}://?"),
    }
}

/// Counts of what happened to notices, for tests and benchmarks; the
/// metric `notifications_total` carries the same per receiver.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// Outcome of one delivery, the `result` label of `notifications_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Failed,
    Dropped,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Failed => "failed",
            Delivery::Dropped => "dropped",
        }
    }
}

/// Shared by the handle that enqueues and the worker that delivers.
pub(super) struct Shared {
    pub counts: Counts,
    pub metrics: Option<Arc<Metrics>>,
    /// Notices accepted and not yet finished (delivered or given up).
    pub pending: AtomicUsize,
    pub idle: Notify,
}

impl Shared {
    pub fn record(&self, receiver: &str, delivery: Delivery) {
        let counter = match delivery {
            Delivery::Sent => &self.counts.sent,
            Delivery::Failed => &self.counts.failed,
            Delivery::Dropped => &self.counts.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.record_notification(receiver, delivery.as_str());
        }
    }
}

pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One client for every receiver: rustls with ring and the system's CA
/// certificates, like the Kubernetes client.
pub(crate) fn http_client() -> HttpClient {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "no CA certificates found: notifications to https receivers will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Drains one receiver's queue until every handle is gone.
pub(super) async fn worker(
    target: Target,
    mut queue: mpsc::Receiver<Arc<Notice>>,
    client: HttpClient,
    options: DeliveryOptions,
    shared: Arc<Shared>,
    dropping: Arc<AtomicBool>,
) {
    while let Some(notice) = queue.recv().await {
        let result = deliver(&client, &target, &notice, &options).await;
        let kind = notice.kind().name();
        let env = notice.env().unwrap_or("");
        match result {
            Ok(attempts) => {
                tracing::debug!(receiver = target.name(), endpoint = %endpoint(target.url()), kind, env, attempts, "notification delivered");
                shared.record(target.name(), Delivery::Sent);
            }
            Err(failure) => {
                tracing::warn!(receiver = target.name(), endpoint = %endpoint(target.url()), kind, env, attempts = failure.attempts, error = %failure.error, "notification not delivered");
                shared.record(target.name(), Delivery::Failed);
            }
        }
        dropping.store(false, Ordering::Release);
        shared.pending.fetch_sub(1, Ordering::AcqRel);
        shared.idle.notify_waiters();
    }
}

struct Failure {
    attempts: u32,
    error: String,
}

enum Attempt {
    Done,
    /// Worth another attempt, after at least this long if the receiver said.
    Retry(String, Option<Duration>),
    /// Another attempt would get the same answer (bad URL, bad key).
    GiveUp(String),
}

async fn deliver(
    client: &HttpClient,
    target: &Target,
    notice: &Notice,
    options: &DeliveryOptions,
) -> Result<u32, Failure> {
    let body = target.body(notice);
    let attempts = options.attempts.max(1);
    let mut wait = options.backoff;
    for attempt in 1..=attempts {
        let (error, retry_after) = match once(client, target, &body, options.timeout).await {
            Attempt::Done => return Ok(attempt),
            Attempt::GiveUp(error) => {
                return Err(Failure {
                    attempts: attempt,
                    error,
                })
            }
            Attempt::Retry(error, retry_after) => (error, retry_after),
        };
        if attempt == attempts {
            return Err(Failure { attempts, error });
        }
        let pause = retry_after.unwrap_or(wait).min(options.max_backoff);
        tracing::debug!(receiver = target.name(), attempt, error = %error, retry_in_ms = pause.as_millis() as u64, "notification attempt failed");
        tokio::time::sleep(pause).await;
        wait = (wait * 2).min(options.max_backoff);
    }
    unreachable!("the last attempt returns")
}

async fn once(client: &HttpClient, target: &Target, body: &Bytes, timeout: Duration) -> Attempt {
    let response = match tokio::time::timeout(timeout, client.request(target.request(body))).await {
        Err(_) => {
            return Attempt::Retry(
                format!(
                    "no answer within {}",
                    crate::duration::format_duration(timeout)
                ),
                None,
            )
        }
        Ok(Err(error)) => return Attempt::Retry(error_chain(&error), None),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Done;
    }
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = format!("the receiver answered {status}");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Attempt::Retry(error, retry_after)
    } else {
        Attempt::GiveUp(error)
    }
}

/// An error and its causes on one line. hyper's errors name the failure
/// (connect, refused, TLS), never the URL, so a secret URL cannot leak here.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_scheme_host_and_port_only() {
        let cases = [
            (
                "https://hooks.slack.test/services/T/B/secret",
                "https://hooks.slack.test",
            ),
            (
                "http://127.0.0.1:8080/hooks/secret?x=1",
                "http://127.0.0.1:8080",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(endpoint(&url.parse().unwrap()), expected);
        }
    }
}
