//! Sending image API requests: one call under the call timeout, the error
//! of a failed call (status classification, `Retry-After`), and retries
//! with exponential backoff and full jitter.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{header::RETRY_AFTER, HeaderMap, StatusCode};
use tracing::debug;

use super::{ImportError, Importer, Operation, Result};

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

/// How an HTTP error status is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transience {
    /// Retry with backoff.
    Transient,
    /// Report at once.
    Permanent,
    /// Re-read the object, then retry.
    Conflict,
}

/// Classifies an HTTP status code of a failed call.
fn classify_status(code: u16) -> Transience {
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
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
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
fn backoff_delay(
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
    /// One HTTP call under the call timeout; the body of a 2xx response.
    pub(super) async fn send(
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

    pub(super) async fn send_json<T: serde::de::DeserializeOwned>(
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

    pub(super) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        backoff_delay(
            &self.options.retry,
            retry,
            retry_after,
            rand::random::<f64>(),
        )
    }

    pub(super) fn max_attempts(&self) -> u32 {
        self.options.retry.max_attempts.max(1)
    }

    /// Runs `call` (a request without precondition) until it succeeds,
    /// fails permanently, or runs out of attempts.
    pub(super) async fn with_retry<T, F, Fut>(&self, call: F) -> Result<T>
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
    pub(super) async fn with_retry_but_conflicts<T, F, Fut>(&self, call: F) -> Result<T>
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

    pub(super) fn build_error(
        target: &str,
        operation: Operation,
        e: kube::core::request::Error,
    ) -> ImportError {
        ImportError::InvalidArgument {
            target: target.to_owned(),
            message: format!("cannot build the request for {operation}: {e}; check the namespace, stream and tag names"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::fixtures::{ms, secs};
    use crate::importer::ErrorKind;

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

    /// The HTTP status of a failed call decides the error's kind.
    #[test]
    fn http_statuses_map_to_kinds() {
        let cases = [
            (400, ErrorKind::Invalid),
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Forbidden),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::ServerError),
            (409, ErrorKind::Conflict),
            (410, ErrorKind::ServerError),
            (422, ErrorKind::Invalid),
            (429, ErrorKind::ServerError),
            (500, ErrorKind::ServerError),
            (501, ErrorKind::ServerError),
            (503, ErrorKind::ServerError),
        ];
        for (code, kind) in cases {
            let error = http_error(
                Operation::Import,
                "packit-prod/packit-worker:prod",
                "packit-prod",
                StatusCode::from_u16(code).expect("valid status"),
                &HeaderMap::new(),
                b"",
            );
            assert_eq!(error.kind(), kind, "HTTP {code}");
            // A 404 is not told from a tag missing from a stream read fine.
            let code_kept = (code != 404).then_some(code);
            assert_eq!(error.status_code(), code_kept, "HTTP {code}");
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
}
