//! Asking Prometheus for its alerts: `GET {prometheusUrl}/api/v1/alerts`,
//! through the same HTTP and TLS stack as notifications (hyper, rustls with
//! ring, the system's CA certificates). The bearer token is read from its
//! file at every check, so a rotated service account token is picked up.
//! Which alerts hold is decided in [`super::alerts`].

use std::path::Path;
use std::time::Duration;

use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use serde::Deserialize;

use super::alerts::Alert;
use crate::notify::{http_client, HttpClient};

/// Longest answer read: a Prometheus with thousands of alerts stays below.
const MAX_BODY: usize = 16 << 20;
/// Default limit of one check, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for Prometheus' alerts API.
#[derive(Clone)]
pub struct AlertsClient {
    http: HttpClient,
    timeout: Duration,
}

impl std::fmt::Debug for AlertsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    alerts: Vec<Alert>,
}

/// `{base}/api/v1/alerts`, keeping a path prefix of `base` (a Prometheus
/// behind a proxy under `/prometheus`).
pub fn alerts_url(base: &str) -> Result<Uri, String> {
    let url = format!("{}/api/v1/alerts", base.trim_end_matches('/'));
    url.parse::<Uri>()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))
}

impl AlertsClient {
    pub fn new(timeout: Duration) -> Self {
        AlertsClient {
            http: http_client(),
            timeout,
        }
    }

    /// The alerts of the Prometheus at `base`; `Err` says why there is no
    /// answer (unreachable, timeout, an HTTP or API error, an unreadable
    /// token file), for the gate's reason.
    pub async fn alerts(
        &self,
        base: &str,
        token_file: Option<&Path>,
    ) -> Result<Vec<Alert>, String> {
        let uri = alerts_url(base)?;
        let mut request = Request::get(uri.clone()).header(header::ACCEPT, "application/json");
        if let Some(path) = token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                format!("cannot read the bearer token file {}: {e}", path.display())
            })?;
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("cannot build the request to {uri}: {e}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| format!("{uri}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{uri}: reading the answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{uri}: no answer within {:?}", self.timeout))??;
        parse_answer(&uri, status, &body)
    }
}

/// An error with its causes (hyper's own message is only "client error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The alerts in an answer, or what was wrong with it.
fn parse_answer(uri: &Uri, status: StatusCode, body: &[u8]) -> Result<Vec<Alert>, String> {
    let excerpt = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        text.chars().take(200).collect::<String>()
    };
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if !status.is_success() {
        let detail = answer
            .as_ref()
            .and_then(|a| a.error.clone())
            .unwrap_or_else(excerpt);
        return Err(format!("{uri} answered HTTP {}: {detail}", status.as_u16()));
    }
    let Some(answer) = answer else {
        return Err(format!(
            "{uri} answered with no alerts API document: {}",
            excerpt()
        ));
    };
    if answer.status != "success" {
        return Err(format!(
            "{uri} answered {}: {}: {}",
            answer.status,
            answer.error_type.unwrap_or_default(),
            answer.error.unwrap_or_default()
        ));
    }
    Ok(answer.data.map(|d| d.alerts).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri() -> Uri {
        alerts_url("http://prometheus:9090/").unwrap()
    }

    #[test]
    fn the_url_keeps_a_path_prefix() {
        assert_eq!(uri().to_string(), "http://prometheus:9090/api/v1/alerts");
        assert_eq!(
            alerts_url("https://thanos:9091/prometheus")
                .unwrap()
                .to_string(),
            "https://thanos:9091/prometheus/api/v1/alerts"
        );
        assert!(alerts_url("http://bad host").is_err());
    }

    #[test]
    fn answers_are_read_or_explained() {
        let ok = br#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"X"},"state":"firing","value":"1"}]}}"#;
        let alerts = parse_answer(&uri(), StatusCode::OK, ok).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].state, "firing");
        assert_eq!(alerts[0].labels["alertname"], "X");
        assert_eq!(
            parse_answer(&uri(), StatusCode::OK, br#"{"status":"success"}"#).unwrap(),
            vec![]
        );
        let e = parse_answer(
            &uri(),
            StatusCode::OK,
            br#"{"status":"error","errorType":"bad_data","error":"nope"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "http://prometheus:9090/api/v1/alerts answered error: bad_data: nope"
        );
        let e = parse_answer(&uri(), StatusCode::SERVICE_UNAVAILABLE, b"down\n").unwrap_err();
        assert_eq!(
            e,
            "http://prometheus:9090/api/v1/alerts answered HTTP 503: down"
        );
        let e = parse_answer(
            &uri(),
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"status":"error","error":"query timed out"}"#,
        )
        .unwrap_err();
        assert!(e.ends_with("HTTP 422: query timed out"), "{e}");
        let e = parse_answer(&uri(), StatusCode::OK, b"<html>login</html>").unwrap_err();
        assert!(
            e.ends_with("no alerts API document: <html>login</html>"),
            "{e}"
        );
    }
}
