//! Forwarding to the API server that serves a path, streaming answers
//! (watches) through, and the merged group list.

use futures::TryStreamExt;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;

use super::{json_response, status_response, Body, BoxError, Context};
use crate::upstream::IMAGE_API_PREFIX;

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

/// The request as it came (method, path, query, headers including
/// Authorization, body), addressed to `base`; a body that cannot be read is a
/// ready 400 answer.
pub(super) async fn as_it_came(
    client: &reqwest::Client,
    base: &str,
    req: Request<Incoming>,
) -> Result<reqwest::RequestBuilder, Response<Body>> {
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
    let mut rb = client.request(parts.method.clone(), format!("{base}{path_and_query}"));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != http::header::CONTENT_LENGTH {
            rb = rb.header(name, value);
        }
    }
    if !bytes.is_empty() {
        rb = rb.body(bytes);
    }
    Ok(rb)
}

/// Sends the request as it came to `base`.
async fn send(
    client: &reqwest::Client,
    base: &str,
    req: Request<Incoming>,
) -> Result<reqwest::Response, Response<Body>> {
    as_it_came(client, base, req)
        .await?
        .send()
        .await
        .map_err(|e| {
            status_response(
                503,
                &format!("the test cluster's front cannot reach {base}: {e}"),
                None,
            )
        })
}

/// Streams an answer back as it arrives.
pub(super) fn relay(resp: reqwest::Response) -> Response<Body> {
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

/// Forwards one request to the server of its path and streams the answer.
pub(super) async fn forward(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let base = ctx.upstream.base_for(req.uri().path()).to_string();
    match send(&ctx.upstream.client, &base, req).await {
        Ok(r) => relay(r),
        Err(answer) => answer,
    }
}

/// `GET /apis`: kube-apiserver's group list plus openshift-apiserver's
/// `image.openshift.io`, so clients discover both behind one address. Both
/// are asked for plain JSON whatever the client asked for.
pub(super) async fn group_discovery(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let ask = |url: String| {
        let mut rb = ctx
            .upstream
            .client
            .get(&url)
            .header("Accept", "application/json");
        if let Some(auth) = parts.headers.get(http::header::AUTHORIZATION) {
            rb = rb.header(http::header::AUTHORIZATION, auth);
        }
        async move {
            let resp = rb.send().await.map_err(|e| {
                status_response(503, &format!("the front cannot reach {url}: {e}"), None)
            })?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| {
                status_response(502, &format!("cannot read the answer of {url}: {e}"), None)
            })?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if status == StatusCode::OK => Ok(v),
                _ => {
                    let mut r = Response::new(super::full(bytes));
                    *r.status_mut() = status;
                    Err(r)
                }
            }
        }
    };
    let mut kube = match ask(format!("{}/apis", ctx.upstream.base)).await {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    if let Some(image_base) = &ctx.upstream.image_base {
        // openshift-apiserver's own `/apis` lists no group (it expects to be
        // aggregated); its group document is the entry kube-apiserver would
        // have listed.
        let mut group = match ask(format!("{image_base}{IMAGE_API_PREFIX}")).await {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        if let Some(g) = group.as_object_mut() {
            g.remove("kind");
            g.remove("apiVersion");
        }
        if let Some(groups) = kube["groups"].as_array_mut() {
            groups.retain(|g| g["name"] != group["name"]);
            groups.push(group);
        }
    }
    json_response(200, &kube)
}
