//! `POST .../imagestreamimports`: resolve DockerImage references against the
//! registry; with `spec.import: true` write the stream the way OpenShift does
//! (spec tag policies, a history item only when the digest changed, an
//! `ImportSuccess` condition on failure), through kube-apiserver so
//! resourceVersion conflicts are the real server's.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::auth::{authorize, Access};
use super::{read_json, ApiError, Body, Context};
use crate::faults::FaultKind;
use crate::registry::{sha256_digest, MANIFEST_ACCEPT};

const WRITE_ATTEMPTS: usize = 5;

/// One image of an import.
#[derive(Clone, Debug)]
pub(crate) struct ImageRequest {
    /// The `DockerImage` reference.
    pub from: String,
    /// The tag to write (`to.name`); `None` only resolves.
    pub tag: Option<String>,
    pub import_policy: Value,
    pub reference_policy: Value,
}

/// What the registry said about one image.
#[derive(Clone, Debug)]
enum Resolved {
    Found {
        digest: String,
        media_type: String,
        docker_ref: String,
    },
    Failed {
        reason: &'static str,
        message: String,
        code: u16,
    },
}

/// `metadata.uid` / `metadata.resourceVersion` the stream must still have.
#[derive(Clone, Debug, Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl Preconditions {
    fn any(&self) -> bool {
        self.uid.is_some() || self.resource_version.is_some()
    }
}

pub(super) async fn handle(ctx: &Context, ns: &str, req: Request<Incoming>) -> Response<Body> {
    if let Err(answer) = authorize(
        ctx,
        req.headers(),
        Access {
            verb: "create",
            resource: "imagestreamimports",
            namespace: ns,
            name: None,
        },
    )
    .await
    {
        return answer;
    }
    let (_, isi) = match read_json(req).await {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let parsed = match parse(&isi) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !ctx.import_latency.is_zero() {
        tokio::time::sleep(ctx.import_latency).await;
    }
    match import_images(
        ctx,
        ns,
        &parsed.name,
        parsed.import,
        &parsed.images,
        &parsed.pre,
    )
    .await
    {
        Ok((images, stream)) => {
            let mut status = json!({ "images": images });
            if let Some(s) = stream {
                status["import"] = s;
            }
            let body = json!({
                "kind": "ImageStreamImport",
                "apiVersion": "image.openshift.io/v1",
                "metadata": {
                    "name": parsed.name,
                    "namespace": ns,
                    "creationTimestamp": now(),
                },
                "spec": isi.get("spec").cloned().unwrap_or(Value::Null),
                "status": status,
            });
            super::json_response(201, &body)
        }
        Err(e) => e.into_response(),
    }
}

struct Parsed {
    name: String,
    import: bool,
    images: Vec<ImageRequest>,
    pre: Preconditions,
}

fn invalid(name: &str, field: &str, message: &str) -> ApiError {
    ApiError::new(
        422,
        format!("ImageStreamImport.image.openshift.io \"{name}\" is invalid: {field}: {message}"),
        Some(
            json!({"name": name, "group": "image.openshift.io", "kind": "ImageStreamImport",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]}),
        ),
    )
}

fn parse(isi: &Value) -> Result<Parsed, ApiError> {
    let name = isi["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(invalid(
            "",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    let spec = &isi["spec"];
    let import = spec["import"].as_bool().unwrap_or(false);
    if !spec["repository"].is_null() {
        return Err(invalid(
            &name,
            "spec.repository",
            "Forbidden: the test cluster imports single images only; use spec.images",
        ));
    }
    let list = spec["images"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return Err(invalid(
            &name,
            "spec.images",
            "Required value: you must specify at least one image or a repository import",
        ));
    }
    let mut images = Vec::with_capacity(list.len());
    for (i, img) in list.iter().enumerate() {
        let kind = img["from"]["kind"].as_str().unwrap_or_default();
        if kind != "DockerImage" {
            return Err(invalid(
                &name,
                &format!("spec.images[{i}].from.kind"),
                &format!("Invalid value: \"{kind}\": only DockerImage is supported"),
            ));
        }
        let from = img["from"]["name"].as_str().unwrap_or_default();
        if from.is_empty() {
            return Err(invalid(
                &name,
                &format!("spec.images[{i}].from.name"),
                "Required value",
            ));
        }
        let tag = img["to"]["name"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        images.push(ImageRequest {
            from: from.to_string(),
            tag,
            import_policy: img["importPolicy"].clone(),
            reference_policy: img["referencePolicy"].clone(),
        });
    }
    let meta = &isi["metadata"];
    let pre = Preconditions {
        uid: meta["uid"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        resource_version: meta["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    Ok(Parsed {
        name,
        import,
        images,
        pre,
    })
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stream_path(ns: &str, name: &str) -> String {
    format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{name}")
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        format!("imagestreams.image.openshift.io \"{name}\" not found"),
        Some(json!({"name": name, "group": "image.openshift.io", "kind": "imagestreams"})),
    )
}

fn conflict(name: &str, why: &str) -> ApiError {
    ApiError::new(
        409,
        format!(
            "Operation cannot be fulfilled on imagestreams.image.openshift.io \"{name}\": {why}"
        ),
        Some(json!({"name": name, "group": "image.openshift.io", "kind": "imagestreams"})),
    )
}

/// The stream, `None` when it does not exist.
pub(super) async fn get_stream(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let a = ctx
        .upstream
        .call(Method::GET, &stream_path(ns, name), None)
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    match a.status {
        StatusCode::OK => Ok(Some(a.body)),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(ApiError::internal(format!(
            "reading imagestream {ns}/{name} answered {s}: {}",
            a.message()
        ))),
    }
}

fn check(stream: &Value, name: &str, pre: &Preconditions) -> Result<(), ApiError> {
    let meta = &stream["metadata"];
    if let Some(uid) = &pre.uid {
        let actual = meta["uid"].as_str().unwrap_or_default();
        if actual != uid {
            return Err(conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &pre.resource_version {
        let actual = meta["resourceVersion"].as_str().unwrap_or_default();
        if actual != rv {
            return Err(conflict(
                name,
                &format!("the object has been modified; please apply your changes to the latest version and try again (resourceVersion in precondition: {rv}, in object: {actual})"),
            ));
        }
    }
    Ok(())
}

/// Resolves every image; with `import` writes the stream. Returns the
/// per-image statuses and (for imports) the resulting stream.
pub(crate) async fn import_images(
    ctx: &Context,
    ns: &str,
    name: &str,
    import: bool,
    images: &[ImageRequest],
    pre: &Preconditions,
) -> Result<(Vec<Value>, Option<Value>), ApiError> {
    let mut stream = get_stream(ctx, ns, name).await?;
    match &stream {
        None if import || pre.any() => return Err(not_found(name)),
        Some(s) => check(s, name, pre)?,
        None => {}
    }
    let results = futures::future::join_all(images.iter().map(|img| resolve(ctx, &img.from))).await;
    let statuses: Vec<Value> = images
        .iter()
        .zip(&results)
        .map(|(img, res)| image_status(img, res))
        .collect();
    if !import {
        return Ok((statuses, None));
    }
    for _ in 0..WRITE_ATTEMPTS {
        let Some(current) = stream.take() else {
            return Err(not_found(name));
        };
        let (wanted, spec_changed, status_changed) = apply(&current, ns, name, images, &results);
        let mut written = current;
        if spec_changed {
            let a = ctx
                .upstream
                .call(Method::PUT, &stream_path(ns, name), Some(&wanted))
                .await
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            match a.status {
                s if s.is_success() => written = a.body,
                StatusCode::CONFLICT => {
                    stream = reread(ctx, ns, name, pre).await?;
                    continue;
                }
                s => {
                    return Err(ApiError::internal(format!(
                        "writing the spec of imagestream {ns}/{name} answered {s}: {}",
                        a.message()
                    )))
                }
            }
        }
        if status_changed {
            let mut body = written.clone();
            body["status"] = wanted["status"].clone();
            let a = ctx
                .upstream
                .call(
                    Method::PUT,
                    &format!("{}/status", stream_path(ns, name)),
                    Some(&body),
                )
                .await
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            match a.status {
                s if s.is_success() => written = a.body,
                StatusCode::CONFLICT => {
                    stream = reread(ctx, ns, name, pre).await?;
                    continue;
                }
                s => {
                    return Err(ApiError::internal(format!(
                        "writing the status of imagestream {ns}/{name} answered {s}: {}",
                        a.message()
                    )))
                }
            }
        }
        return Ok((statuses, Some(written)));
    }
    Err(conflict(
        name,
        &format!("the stream kept changing; gave up after {WRITE_ATTEMPTS} attempts"),
    ))
}

/// After a write conflict: the stream again, unless a precondition pinned the
/// version the caller saw.
async fn reread(
    ctx: &Context,
    ns: &str,
    name: &str,
    pre: &Preconditions,
) -> Result<Option<Value>, ApiError> {
    if pre.resource_version.is_some() {
        return Err(conflict(
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let s = get_stream(ctx, ns, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    check(&s, name, pre)?;
    Ok(Some(s))
}

fn image_status(img: &ImageRequest, res: &Resolved) -> Value {
    let mut v = match res {
        Resolved::Found {
            digest,
            media_type,
            docker_ref,
        } => json!({
            "status": {"metadata": {}, "status": "Success"},
            "image": {
                "metadata": {"name": digest},
                "dockerImageReference": docker_ref,
                "dockerImageManifestMediaType": media_type,
            },
        }),
        Resolved::Failed {
            reason,
            message,
            code,
        } => json!({
            "status": {"metadata": {}, "status": "Failure", "reason": reason, "message": message, "code": code},
        }),
    };
    if let Some(tag) = &img.tag {
        v["tag"] = json!(tag);
    }
    v
}

/// `v[key]` as an array, made one if absent, `null` or of another type.
fn array_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let slot = &mut v[key];
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("just made an array"),
    }
}

/// An import policy without `false`/empty members, so `{}` and
/// `{"scheduled": false}` compare equal.
fn normalized_policy(v: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, val) in m {
            let empty = val.is_null()
                || val == &Value::Bool(false)
                || val.as_str() == Some("")
                || val.as_object().is_some_and(Map::is_empty);
            if !empty {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    Value::Object(out)
}

fn reference_policy(v: &Value) -> Value {
    let t = v["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("Source");
    json!({ "type": t })
}

/// The stream after this import, and whether spec / status changed.
fn apply(
    stream: &Value,
    ns: &str,
    name: &str,
    images: &[ImageRequest],
    results: &[Resolved],
) -> (Value, bool, bool) {
    let mut s = stream.clone();
    let generation = s["metadata"]["generation"].as_i64().unwrap_or(1);
    let (mut spec_changed, mut status_changed) = (false, false);
    let created = now();
    for (img, res) in images.iter().zip(results) {
        let Some(tag) = &img.tag else { continue };
        let from = json!({"kind": "DockerImage", "name": img.from});
        let import_policy = normalized_policy(&img.import_policy);
        let ref_policy = reference_policy(&img.reference_policy);

        let spec_tags = array_at(&mut s["spec"], "tags");
        let tag_generation = match spec_tags
            .iter_mut()
            .find(|t| t["name"].as_str() == Some(tag))
        {
            Some(t) => {
                let same = t["from"]["kind"] == from["kind"]
                    && t["from"]["name"] == from["name"]
                    && normalized_policy(&t["importPolicy"]) == import_policy
                    && reference_policy(&t["referencePolicy"]) == ref_policy;
                if same {
                    t["generation"].as_i64().unwrap_or(generation)
                } else {
                    t["from"] = from;
                    t["importPolicy"] = import_policy;
                    t["referencePolicy"] = ref_policy;
                    t["generation"] = json!(generation + 1);
                    spec_changed = true;
                    generation + 1
                }
            }
            None => {
                spec_tags.push(json!({
                    "name": tag,
                    "annotations": null,
                    "from": from,
                    "generation": generation + 1,
                    "importPolicy": import_policy,
                    "referencePolicy": ref_policy,
                }));
                spec_changed = true;
                generation + 1
            }
        };

        if s["status"]["dockerImageRepository"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            if !s["status"].is_object() {
                s["status"] = json!({});
            }
            s["status"]["dockerImageRepository"] = json!(format!(
                "image-registry.openshift-image-registry.svc:5000/{ns}/{name}"
            ));
            status_changed = true;
        }
        let status_tags = array_at(&mut s["status"], "tags");
        let idx = match status_tags
            .iter()
            .position(|t| t["tag"].as_str() == Some(tag))
        {
            Some(i) => i,
            None => {
                status_tags.push(json!({"tag": tag, "items": null}));
                status_changed = true;
                status_tags.len() - 1
            }
        };
        let entry = &mut status_tags[idx];
        match res {
            Resolved::Found {
                digest, docker_ref, ..
            } => {
                let items = array_at(entry, "items");
                let newest_same = items.first().is_some_and(|i| {
                    i["image"].as_str() == Some(digest)
                        && i["dockerImageReference"].as_str() == Some(docker_ref)
                });
                if !newest_same {
                    // An image already in the history moves to the top.
                    items.retain(|i| i["image"].as_str() != Some(digest));
                    items.insert(
                        0,
                        json!({
                            "created": created,
                            "dockerImageReference": docker_ref,
                            "image": digest,
                            "generation": tag_generation,
                        }),
                    );
                    status_changed = true;
                }
                if let Some(conds) = entry.get_mut("conditions").and_then(Value::as_array_mut) {
                    let before = conds.len();
                    conds.retain(|c| c["type"].as_str() != Some("ImportSuccess"));
                    if conds.len() != before {
                        status_changed = true;
                    }
                }
            }
            Resolved::Failed {
                reason, message, ..
            } => {
                let conds = array_at(entry, "conditions");
                let existing = conds
                    .iter()
                    .position(|c| c["type"].as_str() == Some("ImportSuccess"));
                let wanted_same = existing.is_some_and(|i| {
                    let c = &conds[i];
                    c["status"].as_str() == Some("False")
                        && c["reason"].as_str() == Some(reason)
                        && c["message"].as_str() == Some(message)
                        && c["generation"].as_i64() == Some(tag_generation)
                });
                if !wanted_same {
                    let since = existing
                        .and_then(|i| {
                            (conds[i]["status"].as_str() == Some("False"))
                                .then(|| conds[i]["lastTransitionTime"].clone())
                        })
                        .filter(|t| t.is_string())
                        .unwrap_or_else(|| json!(created));
                    let cond = json!({
                        "type": "ImportSuccess",
                        "status": "False",
                        "lastTransitionTime": since,
                        "reason": reason,
                        "message": message,
                        "generation": tag_generation,
                    });
                    match existing {
                        Some(i) => conds[i] = cond,
                        None => conds.push(cond),
                    }
                    status_changed = true;
                }
            }
        }
    }
    (s, spec_changed, status_changed)
}

/// `host`, `repository`, `tag or digest` of a DockerImage reference.
fn parse_reference(reference: &str) -> Option<(String, String, String)> {
    let (name, target) = match reference.split_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t.to_string()),
            _ => (reference, "latest".to_string()),
        },
    };
    let (first, rest) = name.split_once('/')?;
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (host, repo) = if is_host {
        (first.to_string(), rest.to_string())
    } else {
        ("docker.io".to_string(), name.to_string())
    };
    if repo.is_empty() || target.is_empty() {
        return None;
    }
    Some((host, repo, target))
}

fn loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h == "127.0.0.1" || h == "localhost"
}

fn failed(code: u16, reference: &str, detail: &str) -> Resolved {
    match code {
        404 => Resolved::Failed {
            reason: "NotFound",
            message: format!("dockerimage.image.openshift.io \"{reference}\" not found"),
            code,
        },
        401 | 403 => Resolved::Failed {
            reason: "Unauthorized",
            message: format!("you may not have access to the container image \"{reference}\""),
            code: 401,
        },
        _ => Resolved::Failed {
            reason: "InternalError",
            message: format!("Internal error occurred: {reference}: {detail}"),
            code: 500,
        },
    }
}

/// Asks the registry which manifest `reference` names now.
async fn resolve(ctx: &Context, reference: &str) -> Resolved {
    let Some((host, repo, target)) = parse_reference(reference) else {
        return Resolved::Failed {
            reason: "Invalid",
            message: format!("\"{reference}\" is not a valid image reference"),
            code: 422,
        };
    };
    if !loopback(&host) {
        return failed(
            500,
            reference,
            &format!("registry {host} is unreachable: the test cluster reaches only registries on 127.0.0.1"),
        );
    }
    let path = format!("/v2/{repo}/manifests/{target}");
    let decision = ctx.faults.decide("GET", &path);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.action {
        Some(FaultKind::Status { code, .. }) => {
            return failed(
                code,
                reference,
                &format!("registry answered {code} (injected fault)"),
            )
        }
        Some(FaultKind::Hang) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return failed(504, reference, "registry did not answer (injected fault)");
        }
        Some(FaultKind::Drop) => {
            return failed(
                502,
                reference,
                "registry closed the connection (injected fault)",
            )
        }
        Some(FaultKind::Latency(_)) | None => {}
    }
    let resp = match ctx
        .registry_client
        .get(format!("http://{host}{path}"))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return failed(
                500,
                reference,
                &format!("cannot reach registry {host}: {e}"),
            )
        }
    };
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return failed(
            status.as_u16(),
            reference,
            &format!("registry answered {status}: {}", body.trim()),
        );
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let media_type = header("Content-Type").unwrap_or_default();
    let digest_header = header("Docker-Content-Digest");
    let digest = match digest_header {
        Some(d) => d,
        None => match resp.bytes().await {
            Ok(b) => sha256_digest(&b),
            Err(e) => return failed(500, reference, &format!("reading the manifest failed: {e}")),
        },
    };
    Resolved::Found {
        docker_ref: format!("{host}/{repo}@{digest}"),
        digest,
        media_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_host_repo_and_target() {
        let r = |s| parse_reference(s);
        assert_eq!(
            r("127.0.0.1:5000/packit/worker:prod"),
            Some((
                "127.0.0.1:5000".into(),
                "packit/worker".into(),
                "prod".into()
            ))
        );
        assert_eq!(
            r("127.0.0.1:5000/packit/worker@sha256:abc"),
            Some((
                "127.0.0.1:5000".into(),
                "packit/worker".into(),
                "sha256:abc".into()
            ))
        );
        assert_eq!(
            r("127.0.0.1:5000/packit/worker"),
            Some((
                "127.0.0.1:5000".into(),
                "packit/worker".into(),
                "latest".into()
            ))
        );
        assert_eq!(
            r("library/nginx:1"),
            Some(("docker.io".into(), "library/nginx".into(), "1".into()))
        );
        assert_eq!(r("nginx"), None);
        assert!(loopback("127.0.0.1:5000"));
        assert!(!loopback("quay.io"));
    }

    fn found(d: &str) -> Resolved {
        Resolved::Found {
            digest: d.into(),
            media_type: String::new(),
            docker_ref: format!("r/x@{d}"),
        }
    }

    fn req(policy: Value) -> ImageRequest {
        ImageRequest {
            from: "r/x:prod".into(),
            tag: Some("prod".into()),
            import_policy: policy,
            reference_policy: json!({"type": "Source"}),
        }
    }

    #[test]
    fn history_grows_only_on_a_new_digest() {
        let stream = json!({
            "metadata": {"name": "x", "generation": 2},
            "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": "r/x:prod"},
                "importPolicy": {"scheduled": false}, "referencePolicy": {"type": "Source"}, "generation": 2}]},
        });
        let (s1, spec1, st1) = apply(&stream, "ns", "x", &[req(json!({}))], &[found("sha256:a")]);
        assert!(!spec1, "the tag's own policies leave the spec alone");
        assert!(st1);
        assert_eq!(s1["status"]["tags"][0]["items"][0]["image"], "sha256:a");
        assert_eq!(s1["status"]["tags"][0]["items"][0]["generation"], 2);
        let (_, _, st2) = apply(&s1, "ns", "x", &[req(json!({}))], &[found("sha256:a")]);
        assert!(!st2, "same digest writes nothing");
        let (s3, _, st3) = apply(&s1, "ns", "x", &[req(json!({}))], &[found("sha256:b")]);
        assert!(st3);
        let images: Vec<&str> = s3["status"]["tags"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["image"].as_str().unwrap())
            .collect();
        assert_eq!(images, ["sha256:b", "sha256:a"]);
        let (s4, spec4, _) = apply(
            &s3,
            "ns",
            "x",
            &[req(json!({"scheduled": true}))],
            &[found("sha256:b")],
        );
        assert!(spec4, "a different import policy rewrites the spec tag");
        assert_eq!(s4["spec"]["tags"][0]["importPolicy"]["scheduled"], true);
        assert_eq!(s4["spec"]["tags"][0]["generation"], 3);
    }

    #[test]
    fn failure_sets_a_condition_and_success_clears_it() {
        let stream = json!({"metadata": {"name": "x", "generation": 1}, "spec": {"tags": null}, "status": null});
        let fail = failed(404, "r/x:prod", "");
        let (s1, spec1, st1) = apply(
            &stream,
            "ns",
            "x",
            &[req(json!({}))],
            std::slice::from_ref(&fail),
        );
        assert!(spec1 && st1);
        let cond = &s1["status"]["tags"][0]["conditions"][0];
        assert_eq!(cond["type"], "ImportSuccess");
        assert_eq!(cond["status"], "False");
        assert_eq!(cond["reason"], "NotFound");
        let (_, _, again) = apply(&s1, "ns", "x", &[req(json!({}))], &[fail]);
        assert!(!again, "the same failure writes nothing");
        let (s2, _, st2) = apply(&s1, "ns", "x", &[req(json!({}))], &[found("sha256:a")]);
        assert!(st2);
        assert_eq!(s2["status"]["tags"][0]["conditions"], json!([]));
    }
}
