//! HTTPS in front of the registry (Docker distribution serves plain HTTP
//! here; Quay serves HTTPS), with the same fault rules as the API front. A
//! status fault answers what a registry answers: the distribution error body
//! with the code a registry sends for that status, so openshift-apiserver
//! reports it the way it reports a real registry's failure.

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use super::proxy::{as_it_came, relay};
use super::{apply_faults, json_response, Body, Context, DropConnection};

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
    let rb = match as_it_came(&ctx.registry_client, &ctx.registry_backend, req).await {
        Ok(rb) => rb,
        Err(answer) => return Ok(answer),
    };
    Ok(match rb.send().await {
        Ok(resp) => relay(resp),
        Err(e) => json_response(
            502,
            &json!({"errors": [{"code": "UNKNOWN", "message": format!("the registry behind the test cluster's front is unreachable: {e}")}]}),
        ),
    })
}
