//! Calls to the cluster's API servers with the admin token, and Kubernetes
//! `Status` bodies. Paths under `/apis/image.openshift.io` go to
//! openshift-apiserver, everything else to kube-apiserver: the same split the
//! front makes for clients.

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The API servers as the admin sees them.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// kube-apiserver, `https://127.0.0.1:PORT`.
    pub base: String,
    /// openshift-apiserver, once it runs.
    pub image_base: Option<String>,
    pub admin_token: String,
    pub client: reqwest::Client,
}

/// The path prefix openshift-apiserver serves.
pub(crate) const IMAGE_API_PREFIX: &str = "/apis/image.openshift.io";

/// Whether `path` belongs to the image API group.
pub(crate) fn is_image_api(path: &str) -> bool {
    path == IMAGE_API_PREFIX || path.starts_with("/apis/image.openshift.io/")
}

/// An answer from kube-apiserver: HTTP status and JSON body (`Null` when the
/// body was not JSON).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The `message` of a Status body, or the whole body.
    pub fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

impl Upstream {
    /// The server that serves `path`.
    pub fn base_for(&self, path: &str) -> &str {
        match &self.image_base {
            Some(image) if is_image_api(path) => image,
            _ => &self.base,
        }
    }

    /// One admin request; transport errors are errors, HTTP errors are answers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{}", self.base_for(path), path))
            .bearer_auth(&self.admin_token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            let content_type = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            req = req
                .header("Content-Type", content_type)
                .body(serde_json::to_vec(b).context("cannot encode a request body")?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path} on {} failed", self.base_for(path)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {method} {path} failed"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// Like [`Upstream::call`] but any non-2xx answer is an error.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let a = self.call(method.clone(), path, body).await?;
        if !a.ok() {
            bail!(
                "{method} {path} on {} answered {}: {}",
                self.base_for(path),
                a.status,
                a.message()
            );
        }
        Ok(a.body)
    }
}

/// A Kubernetes `Status` body for a failed request.
pub(crate) fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

/// The Kubernetes reason for an HTTP error code.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
