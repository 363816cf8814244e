//! Strategic merge patch of `imagestreams`, which a CRD cannot take: lists
//! with a merge key (`spec.tags` by `name`, `status.tags` by `tag`,
//! `conditions` by `type`) merge element by element; other lists are
//! replaced, maps merge, `null` deletes. The result is written with an update
//! carrying the resourceVersion that was read, retried on conflict.
//!
//! Like OpenShift's image stream controller, a spec tag whose `from` changed
//! (a pin to a digest, a restore to the source tag) is imported right away,
//! before the answer.

use http::{Request, Response};
use hyper::body::Incoming;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::auth::{authorize, Access};
use super::imports::{get_stream, import_images, ImageRequest, Preconditions};
use super::{json_response, read_json, ApiError, Body, Context};

const WRITE_ATTEMPTS: usize = 5;

pub(super) async fn handle(
    ctx: &Context,
    ns: &str,
    name: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    if let Err(answer) = authorize(
        ctx,
        req.headers(),
        Access {
            verb: "patch",
            resource: "imagestreams",
            namespace: ns,
            name: Some(name),
        },
    )
    .await
    {
        return answer;
    }
    let (parts, patch) = match read_json(req).await {
        Ok(v) => v,
        Err(answer) => return answer,
    };
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    match patch_stream(ctx, ns, name, &patch, &query).await {
        Ok(v) => json_response(200, &v),
        Err(e) => e.into_response(),
    }
}

async fn patch_stream(
    ctx: &Context,
    ns: &str,
    name: &str,
    patch: &Value,
    query: &str,
) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::new(
            400,
            "a strategic merge patch must be a JSON object",
            None,
        ));
    }
    let pinned_version = patch["metadata"]["resourceVersion"].as_str().is_some();
    let path = format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{name}");
    let dry_run = query.contains("dryRun");
    for _ in 0..WRITE_ATTEMPTS {
        let original = get_stream(ctx, ns, name).await?.ok_or_else(|| {
            ApiError::new(
                404,
                format!("imagestreams.image.openshift.io \"{name}\" not found"),
                Some(json!({"name": name, "group": "image.openshift.io", "kind": "imagestreams"})),
            )
        })?;
        let mut merged = merge(&original, patch, &[]).map_err(|e| {
            ApiError::new(
                400,
                format!("cannot apply the strategic merge patch to imagestream {ns}/{name}: {e}"),
                None,
            )
        })?;
        let changed_tags = bump_changed_tags(&original, &mut merged);
        if merged == original {
            return Ok(original);
        }
        let a = ctx
            .upstream
            .call(Method::PUT, &format!("{path}{query}"), Some(&merged))
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        match a.status {
            s if s.is_success() => {
                if !dry_run {
                    import_changed(ctx, ns, name, &a.body, &changed_tags).await;
                }
                return Ok(a.body);
            }
            StatusCode::CONFLICT if !pinned_version => continue,
            s => {
                return Err(ApiError {
                    code: s.as_u16(),
                    body: a.body,
                })
            }
        }
    }
    Err(ApiError::new(
        409,
        format!("Operation cannot be fulfilled on imagestreams.image.openshift.io \"{name}\": the stream kept changing; gave up after {WRITE_ATTEMPTS} attempts"),
        None,
    ))
}

/// Sets `generation` of every spec tag the patch changed (OpenShift does so
/// on update) and returns their names.
fn bump_changed_tags(original: &Value, merged: &mut Value) -> Vec<String> {
    let next = original["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
    let old_tags = original["spec"]["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut changed = Vec::new();
    if let Some(tags) = merged["spec"]["tags"].as_array_mut() {
        for t in tags.iter_mut() {
            let name = t["name"].as_str().unwrap_or_default().to_string();
            let old = old_tags.iter().find(|o| o["name"].as_str() == Some(&name));
            if old != Some(t) {
                t["generation"] = json!(next);
                changed.push(name);
            }
        }
    }
    changed
}

/// Imports the changed tags, as the image stream controller would; failures
/// end up as the tag's ImportSuccess condition.
async fn import_changed(ctx: &Context, ns: &str, name: &str, stream: &Value, tags: &[String]) {
    let images: Vec<ImageRequest> = stream["spec"]["tags"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            t["from"]["kind"].as_str() == Some("DockerImage")
                && tags.iter().any(|n| t["name"].as_str() == Some(n))
        })
        .map(|t| ImageRequest {
            from: t["from"]["name"].as_str().unwrap_or_default().to_string(),
            tag: t["name"].as_str().map(str::to_string),
            import_policy: t["importPolicy"].clone(),
            reference_policy: t["referencePolicy"].clone(),
        })
        .collect();
    if images.is_empty() {
        return;
    }
    if let Err(e) = import_images(ctx, ns, name, true, &images, &Preconditions::default()).await {
        tracing::warn!("importing the changed tags of {ns}/{name} failed: {e}");
    }
}

/// The merge key of the list at `path`, if it merges element by element.
fn merge_key(path: &[&str]) -> Option<&'static str> {
    match path {
        ["spec", "tags"] => Some("name"),
        ["status", "tags"] => Some("tag"),
        [.., "conditions"] => Some("type"),
        ["metadata", "ownerReferences"] => Some("uid"),
        _ => None,
    }
}

/// Applies a strategic merge patch to `original`.
pub(crate) fn merge(original: &Value, patch: &Value, path: &[&str]) -> Result<Value, String> {
    let Some(patch_map) = patch.as_object() else {
        return Ok(patch.clone());
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut m = patch_map.clone();
        m.remove("$patch");
        return Ok(Value::Object(m));
    }
    let mut out = original.as_object().cloned().unwrap_or_else(Map::new);
    for (key, pv) in patch_map {
        if key.starts_with('$') {
            // $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...:
            // ordering and pruning hints this merge does not need.
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(key.as_str());
        let ov = out.get(key).cloned().unwrap_or(Value::Null);
        let merged = match (pv, merge_key(&child_path)) {
            (Value::Array(items), Some(k)) => merge_list(&ov, items, k, &child_path)?,
            (Value::Object(_), _) if ov.is_object() => merge(&ov, pv, &child_path)?,
            (Value::Object(_), _) => merge(&Value::Null, pv, &child_path)?,
            _ => pv.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Ok(Value::Object(out))
}

fn merge_list(
    original: &Value,
    patch: &[Value],
    key: &str,
    path: &[&str],
) -> Result<Value, String> {
    let mut out = original.as_array().cloned().unwrap_or_default();
    for item in patch {
        let Some(k) = item.get(key).filter(|v| !v.is_null()) else {
            return Err(format!(
                "an element of {} has no merge key {key:?}",
                path.join(".")
            ));
        };
        let pos = out.iter().position(|o| o.get(key) == Some(k));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (pos, directive) {
            (Some(i), Some("delete")) => {
                out.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => out[i] = merge(&out[i], item, path)?,
            (None, _) => out.push(merge(&Value::Null, item, path)?),
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Value {
        json!({
            "metadata": {"name": "w", "generation": 3, "labels": {"a": "1"}},
            "spec": {"tags": [
                {"name": "stg", "from": {"kind": "DockerImage", "name": "r/w:stg"}, "importPolicy": {"scheduled": true}, "generation": 2},
                {"name": "prod", "from": {"kind": "DockerImage", "name": "r/w:prod"}, "generation": 3},
            ]},
        })
    }

    #[test]
    fn tags_merge_by_name() {
        let patch = json!({"spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": "r/w@sha256:1"}}]}});
        let mut merged = merge(&stream(), &patch, &[]).unwrap();
        let tags = merged["spec"]["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0]["from"]["name"], "r/w:stg");
        assert_eq!(tags[0]["importPolicy"]["scheduled"], true);
        assert_eq!(tags[1]["from"]["name"], "r/w@sha256:1");
        assert_eq!(tags[1]["generation"], 3, "untouched fields stay");
        let changed = bump_changed_tags(&stream(), &mut merged);
        assert_eq!(changed, ["prod"]);
        assert_eq!(merged["spec"]["tags"][1]["generation"], 4);
        assert_eq!(merged["spec"]["tags"][0]["generation"], 2);
    }

    #[test]
    fn new_tags_append_null_deletes_and_delete_directive_removes() {
        let patch = json!({
            "metadata": {"labels": {"a": null, "b": "2"}},
            "spec": {"tags": [{"name": "dev", "from": {"kind": "DockerImage", "name": "r/w:dev"}},
                               {"name": "stg", "$patch": "delete"}]},
        });
        let merged = merge(&stream(), &patch, &[]).unwrap();
        assert_eq!(merged["metadata"]["labels"], json!({"b": "2"}));
        let names: Vec<&str> = merged["spec"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["prod", "dev"]);
    }

    #[test]
    fn element_without_merge_key_is_rejected() {
        let patch = json!({"spec": {"tags": [{"from": {"kind": "DockerImage", "name": "x"}}]}});
        assert!(merge(&stream(), &patch, &[])
            .unwrap_err()
            .contains("spec.tags"));
    }
}
