//! Forwarding to kube-apiserver, streaming answers (watches) through.

use futures::TryStreamExt;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use super::{json_response, status_response, Body, BoxError, Context};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Sends the request to kube-apiserver as it came (method, path, query,
/// headers including Authorization, body).
async fn send(ctx: &Context, req: Request<Incoming>) -> Result<reqwest::Response, Response<Body>> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| status_response(400, &format!("cannot read the request body: {e}"), None))?
        .to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let url = format!("{}{}", ctx.upstream.base, path_and_query);
    let mut rb = ctx.upstream.client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != http::header::CONTENT_LENGTH {
            rb = rb.header(name, value);
        }
    }
    if !bytes.is_empty() {
        rb = rb.body(bytes);
    }
    rb.send().await.map_err(|e| {
        status_response(
            503,
            &format!(
                "the test cluster's shim cannot reach kube-apiserver at {}: {e}",
                ctx.upstream.base
            ),
            None,
        )
    })
}

/// Forwards one request and streams the answer back.
pub(super) async fn forward(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let resp = match send(ctx, req).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let mut builder = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if !hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    let stream = resp
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as BoxError);
    builder
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|e| status_response(502, &format!("cannot relay the answer: {e}"), None))
}

/// `GET /apis/image.openshift.io/v1`: the CRD's resource list plus
/// `imagestreamimports`, which only OpenShift's image API server serves.
pub(super) async fn discovery(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    // The rewrite needs plain JSON, whatever the client asked for.
    parts
        .headers
        .insert("Accept", http::HeaderValue::from_static("application/json"));
    parts.headers.insert(
        "Accept-Encoding",
        http::HeaderValue::from_static("identity"),
    );
    let resp = match send(ctx, Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return status_response(
                502,
                &format!("cannot read kube-apiserver's discovery answer: {e}"),
                None,
            )
        }
    };
    let mut list: Value = match serde_json::from_slice(&bytes) {
        Ok(v) if status == StatusCode::OK => v,
        _ => {
            let mut r = Response::new(super::full(bytes));
            *r.status_mut() = status;
            return r;
        }
    };
    if let Some(resources) = list.get_mut("resources").and_then(Value::as_array_mut) {
        if !resources
            .iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some("imagestreamimports"))
        {
            resources.push(json!({
                "name": "imagestreamimports",
                "singularName": "",
                "namespaced": true,
                "kind": "ImageStreamImport",
                "verbs": ["create"],
            }));
        }
    }
    json_response(200, &list)
}
