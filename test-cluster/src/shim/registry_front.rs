//! HTTPS in front of the registry (Docker distribution serves plain HTTP
//! here; Quay serves HTTPS), with the same fault rules as the API front. A
//! status fault answers what a registry answers: the distribution error body
//! with the code a registry sends for that status, so openshift-apiserver
//! reports it the way it reports a real registry's failure.

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::proxy::{hop_by_hop, relay};
use super::{apply_faults, json_response, status_response, Body, Context, DropConnection};
use http_body_util::BodyExt;

/// The distribution error code a registry sends with this HTTP status.
pub(crate) fn registry_error_code(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "MANIFEST_UNKNOWN",
        429 => "TOOMANYREQUESTS",
        _ => "UNKNOWN",
    }
}

fn registry_fault(status: u16, retry_after_secs: Option<u64>) -> Response<Body> {
    let code = registry_error_code(status);
    let mut resp = json_response(
        status,
        &json!({"errors": [{
            "code": code,
            "message": format!("fault injected by the test cluster: HTTP {status}"),
            "detail": null,
        }]}),
    );
    if let Some(secs) = retry_after_secs {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("Retry-After", v);
        }
    }
    resp
}

pub(super) async fn handle(
    ctx: std::sync::Arc<Context>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    if let Err(end) = apply_faults(
        &ctx,
        &method,
        &path_and_query,
        std::time::Duration::ZERO,
        registry_fault,
    )
    .await
    {
        return end;
    }
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(status_response(
                400,
                &format!("cannot read the request body: {e}"),
                None,
            ))
        }
    };
    let mut rb = ctx.registry_client.request(
        parts.method.clone(),
        format!("{}{path_and_query}", ctx.registry_backend),
    );
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != http::header::CONTENT_LENGTH {
            rb = rb.header(name, value);
        }
    }
    if !bytes.is_empty() {
        rb = rb.body(bytes);
    }
    Ok(match rb.send().await {
        Ok(resp) => relay(resp),
        Err(e) => {
            let mut r = json_response(
                502,
                &json!({"errors": [{"code": "UNKNOWN", "message": format!("the registry behind the test cluster's front is unreachable: {e}")}]}),
            );
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    })
}
