//! Authorization of the requests the shim serves itself: the caller's bearer
//! token is resolved with a TokenReview, then a SubjectAccessReview asks
//! kube-apiserver's RBAC whether that user may do it.

use http::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::{status_response, Body, Context};

/// The resource a request acts on.
pub(super) struct Access<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: Option<&'a str>,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("Authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// `Ok` when RBAC allows it; otherwise the 401/403/500 answer to send.
pub(super) async fn authorize(
    ctx: &Context,
    headers: &HeaderMap,
    access: Access<'_>,
) -> Result<(), http::Response<Body>> {
    let user = match bearer(headers) {
        None => json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]}),
        Some(token) => {
            let review = json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            });
            let answer = ctx
                .upstream
                .call(
                    Method::POST,
                    "/apis/authentication.k8s.io/v1/tokenreviews",
                    Some(&review),
                )
                .await
                .map_err(|e| status_response(500, &format!("TokenReview failed: {e:#}"), None))?;
            if !answer.ok() {
                return Err(status_response(
                    500,
                    &format!(
                        "TokenReview answered {}: {}",
                        answer.status,
                        answer.message()
                    ),
                    None,
                ));
            }
            let status = &answer.body["status"];
            if status["authenticated"].as_bool() != Some(true) {
                return Err(status_response(401, "Unauthorized", None));
            }
            status["user"].clone()
        }
    };
    let username = user["username"].as_str().unwrap_or_default().to_string();
    let mut spec = json!({
        "user": username,
        "groups": user.get("groups").cloned().unwrap_or(Value::Null),
        "resourceAttributes": {
            "namespace": access.namespace,
            "verb": access.verb,
            "group": "image.openshift.io",
            "resource": access.resource,
        },
    });
    if let Some(uid) = user.get("uid").filter(|v| v.is_string()) {
        spec["uid"] = uid.clone();
    }
    if let Some(extra) = user.get("extra").filter(|v| v.is_object()) {
        spec["extra"] = extra.clone();
    }
    if let Some(name) = access.name {
        spec["resourceAttributes"]["name"] = json!(name);
    }
    let sar = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    });
    let answer = ctx
        .upstream
        .call(
            Method::POST,
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(&sar),
        )
        .await
        .map_err(|e| status_response(500, &format!("SubjectAccessReview failed: {e:#}"), None))?;
    if !answer.ok() {
        return Err(status_response(
            500,
            &format!(
                "SubjectAccessReview answered {}: {}",
                answer.status,
                answer.message()
            ),
            None,
        ));
    }
    if answer.body["status"]["allowed"].as_bool() == Some(true) {
        return Ok(());
    }
    let target = match access.name {
        Some(n) => format!("{}.image.openshift.io \"{n}\"", access.resource),
        None => format!("{}.image.openshift.io", access.resource),
    };
    let message = format!(
        "{target} is forbidden: User \"{username}\" cannot {} resource \"{}\" in API group \"image.openshift.io\" in the namespace \"{}\"",
        access.verb, access.resource, access.namespace
    );
    let mut details = json!({"group": "image.openshift.io", "kind": access.resource});
    if let Some(n) = access.name {
        details["name"] = json!(n);
    }
    Err(status_response(403, &message, Some(details)))
}
