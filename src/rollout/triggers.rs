//! Which workloads consume a tag: those whose `image.openshift.io/triggers`
//! annotation names `<stream>:<tag>`. OpenShift's image-trigger controller
//! sets the container image of such a workload whenever the tag's newest
//! image changes, so these are the workloads an import rolls.

use serde::Deserialize;

/// The annotation OpenShift's image-trigger controller reads.
pub const TRIGGERS_ANNOTATION: &str = "image.openshift.io/triggers";

#[derive(Debug, Deserialize)]
struct Trigger {
    from: TriggerFrom,
    #[serde(rename = "fieldPath", default)]
    field_path: String,
    #[serde(default)]
    paused: bool,
}

#[derive(Debug, Deserialize)]
struct TriggerFrom {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// A trigger of one workload on the tag: which container it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagTrigger {
    /// The container named in `fieldPath` (`containers[?(@.name=="x")]`),
    /// `None` when the path names it another way (by index).
    pub container: Option<String>,
    /// `paused: true`: the controller does not act on it.
    pub paused: bool,
}

/// Why an annotation could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {TRIGGERS_ANNOTATION} is not a JSON list of triggers: {0}")]
pub struct TriggerError(pub String);

/// The triggers in `annotation` (the annotation's value) that name
/// `stream:tag` in `namespace` (a trigger without `from.namespace` means the
/// workload's own namespace). Triggers on other tags are left out; an
/// annotation that is not the JSON OpenShift reads is an error (OpenShift
/// ignores such a workload too, so the caller reports and skips it).
pub fn triggers_on(
    annotation: &str,
    workload_namespace: &str,
    stream: &str,
    tag: &str,
) -> Result<Vec<TagTrigger>, TriggerError> {
    let all: Vec<Trigger> =
        serde_json::from_str(annotation).map_err(|e| TriggerError(e.to_string()))?;
    let want = format!("{stream}:{tag}");
    Ok(all
        .into_iter()
        .filter(|t| t.from.kind == "ImageStreamTag" && t.from.name == want)
        .filter(|t| {
            t.from
                .namespace
                .as_deref()
                .is_none_or(|ns| ns.is_empty() || ns == workload_namespace)
        })
        .map(|t| TagTrigger {
            container: container_of(&t.field_path),
            paused: t.paused,
        })
        .collect())
}

/// The container name in a field path like
/// `spec.template.spec.containers[?(@.name=="worker")].image`.
pub fn container_of(field_path: &str) -> Option<String> {
    let start = field_path.find("@.name==")? + "@.name==".len();
    let rest = &field_path[start..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &rest[1..];
    let end = body.find(quote)?;
    Some(body[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(container: Option<&str>, paused: bool) -> TagTrigger {
        TagTrigger {
            container: container.map(str::to_owned),
            paused,
        }
    }

    #[test]
    fn triggers_on_the_tag_are_found() {
        let a = r#"[
            {"from": {"kind": "ImageStreamTag", "name": "worker:prod"},
             "fieldPath": "spec.template.spec.containers[?(@.name==\"worker\")].image"},
            {"from": {"kind": "ImageStreamTag", "name": "worker:stg"},
             "fieldPath": "spec.template.spec.containers[?(@.name==\"x\")].image"},
            {"from": {"kind": "ImageStreamTag", "name": "worker:prod", "namespace": "ns"},
             "fieldPath": "spec.template.spec.containers[?(@.name=='sidecar')].image", "paused": true},
            {"from": {"kind": "ImageStreamTag", "name": "worker:prod", "namespace": "other"},
             "fieldPath": "spec.template.spec.containers[?(@.name==\"y\")].image"},
            {"from": {"kind": "ImageStreamImage", "name": "worker:prod"},
             "fieldPath": "spec.template.spec.containers[?(@.name==\"z\")].image"},
            {"from": {"kind": "ImageStreamTag", "name": "worker:prod", "namespace": ""},
             "fieldPath": "spec.template.spec.containers[0].image"}
        ]"#;
        assert_eq!(
            triggers_on(a, "ns", "worker", "prod").unwrap(),
            vec![
                t(Some("worker"), false),
                t(Some("sidecar"), true),
                t(None, false)
            ]
        );
        assert_eq!(
            triggers_on(a, "ns", "worker", "stg").unwrap(),
            vec![t(Some("x"), false)]
        );
        assert_eq!(triggers_on(a, "ns", "work", "prod").unwrap(), vec![]);
        assert_eq!(triggers_on("[]", "ns", "worker", "prod").unwrap(), vec![]);
    }

    #[test]
    fn an_annotation_that_is_not_a_trigger_list_is_an_error() {
        for bad in ["", "{}", "[{\"fieldPath\": \"x\"}]", "not json"] {
            let e = triggers_on(bad, "ns", "worker", "prod").unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("annotation image.openshift.io/triggers"),
                "{e}"
            );
        }
    }

    #[test]
    fn container_names_come_from_the_field_path() {
        for (path, want) in [
            (
                r#"spec.template.spec.containers[?(@.name=="worker")].image"#,
                Some("worker"),
            ),
            (
                "spec.template.spec.containers[?(@.name=='w')].image",
                Some("w"),
            ),
            ("spec.template.spec.containers[0].image", None),
            (
                "spec.template.spec.containers[?(@.name==worker)].image",
                None,
            ),
            (
                r#"spec.template.spec.containers[?(@.name=="worker)].image"#,
                None,
            ),
            ("@.name==", None),
        ] {
            assert_eq!(container_of(path).as_deref(), want, "{path}");
        }
    }
}
