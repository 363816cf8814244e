//! The importer against an in-process fake API server (a tower service
//! behind a real `kube::Client`), on tokio's paused clock: request shapes,
//! retries and waiting are checked exactly, without a cluster.

use super::*;
use crate::openshift::{TagImportPolicy, TagReferencePolicy};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::client::Body;

const DIGEST: &str = "sha256:9c1f3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d423";

/// One recorded request: method, path, content type, body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    body: serde_json::Value,
}

type Answer = (u16, Vec<(&'static str, String)>, serde_json::Value);

/// A client whose server answers with `answer(n, request)` for the n-th
/// request (from 0), after `delay`, and records every request.
fn fake_client<F>(delay: Duration, answer: F) -> (kube::Client, Arc<Mutex<Vec<Seen>>>)
where
    F: Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let answer = Arc::new(answer);
    let seen2 = seen.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let (seen, answer) = (seen2.clone(), answer.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await?;
            let record = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            };
            let n = {
                let mut all = seen.lock().unwrap_or_else(|e| e.into_inner());
                all.push(record.clone());
                all.len() - 1
            };
            tokio::time::sleep(delay).await;
            let (status, headers, body) = answer(n, &record);
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response
                .body(Body::from(body.to_string().into_bytes()))
                .map_err(|e| Box::new(e) as tower::BoxError)
        }
    });
    (kube::Client::new(service, "default"), seen)
}

fn success(record: &Seen) -> Answer {
    let stream = record.body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (
        201,
        vec![],
        serde_json::json!({
            "kind": "ImageStreamImport", "apiVersion": "image.openshift.io/v1",
            "metadata": {"name": stream},
            "status": {"images": [{
                "status": {"metadata": {}, "status": "Success"},
                "image": {"metadata": {"name": DIGEST}, "dockerImageReference": format!("quay.io/packit/{stream}@{DIGEST}")}
            }]}
        }),
    )
}

fn status(code: u16, reason: &str) -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": format!("HTTP {code}"), "code": code})
}

fn target(stream: &str) -> Target {
    Target {
        namespace: "packit-prod".into(),
        stream: stream.into(),
        tag: "prod".into(),
        source: format!("quay.io/packit/{stream}:prod"),
        held: false,
        scheduled: false,
        current: None,
        current_reference: None,
        uid: format!("uid-{stream}"),
        resource_version: "1".into(),
        import_policy: Some(TagImportPolicy {
            import_mode: Some("PreserveOriginal".into()),
            insecure: Some(true),
            ..TagImportPolicy::default()
        }),
        reference_policy: Some(TagReferencePolicy {
            type_: Some("Local".into()),
            ..TagReferencePolicy::default()
        }),
    }
}

fn options(max_attempts: u32) -> ImporterOptions {
    ImporterOptions {
        call_timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn import_sends_the_tags_own_policies_and_resource_version() {
    let (client, seen) = fake_client(Duration::ZERO, |_, r| success(r));
    let importer = Importer::new(client, options(1));
    let outcome = importer.import(&target("packit-worker")).await;
    assert_eq!(
        outcome,
        ImportOutcome::Updated {
            from: None,
            to: DIGEST.into()
        }
    );
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreamimports"
    );
    assert_eq!(request.content_type, "application/json");
    assert_eq!(request.body["metadata"]["resourceVersion"], "1");
    assert!(
        request.body["metadata"].get("uid").is_none(),
        "no uid: OpenShift ignores it"
    );
    assert_eq!(request.body["spec"]["import"], true);
    assert_eq!(
        request.body["spec"]["images"][0],
        serde_json::json!({
            "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"},
            "to": {"name": "prod"},
            "importPolicy": {"importMode": "PreserveOriginal", "insecure": true},
            "referencePolicy": {"type": "Local"}
        })
    );
}
#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_and_capped() {
    for (asked, expected) in [("7", 7), ("3600", 30)] {
        let (client, seen) = fake_client(Duration::ZERO, move |n, r| match n {
            0 => (
                429,
                vec![("Retry-After", asked.to_owned())],
                status(429, "TooManyRequests"),
            ),
            _ => success(r),
        });
        let importer = Importer::new(client, options(4));
        let started = tokio::time::Instant::now();
        let outcome = importer.import(&target("packit-worker")).await;
        assert!(
            matches!(outcome, ImportOutcome::Updated { .. }),
            "{outcome:?}"
        );
        assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
        // The paused clock advances exactly by the waits.
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(expected),
            "Retry-After: {asked}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_use_up_the_attempts_then_fail() {
    let (client, seen) = fake_client(Duration::ZERO, |_, _| {
        (503, vec![], status(503, "ServiceUnavailable"))
    });
    let importer = Importer::new(client, options(4));
    let started = tokio::time::Instant::now();
    let outcome = importer.import(&target("packit-worker")).await;
    let ImportOutcome::Failed {
        reason, transient, ..
    } = &outcome
    else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert_eq!(reason, "ServiceUnavailable");
    assert!(transient);
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 4);
    // Full jitter: at most 0.5 + 1 + 2 seconds of backoff in all.
    assert!(
        started.elapsed() <= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_times_out_per_call() {
    let (client, seen) = fake_client(Duration::from_secs(3600), |_, r| success(r));
    let importer = Importer::new(
        client,
        ImporterOptions {
            call_timeout: Duration::from_secs(5),
            ..options(2)
        },
    );
    let outcome = importer.import(&target("packit-worker")).await;
    let ImportOutcome::Failed {
        reason,
        transient,
        message,
        kind,
    } = &outcome
    else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert_eq!(reason, "Timeout");
    assert_eq!(*kind, ErrorKind::Timeout);
    assert!(transient);
    assert!(
        message.contains("packit-prod/packit-worker:prod"),
        "{message}"
    );
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn pin_patches_only_the_tag_with_a_strategic_merge_patch() {
    let stream = serde_json::json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "packit-worker", "namespace": "packit-prod", "uid": "u", "resourceVersion": "7"},
        "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:prod"}}]}
    });
    let (client, seen) = fake_client(Duration::ZERO, move |_, _| (200, vec![], stream.clone()));
    let importer = Importer::new(client, options(1));
    let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
    importer
        .pin("packit-prod", "packit-worker", "prod", &reference)
        .await
        .expect("pin");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[1].method, "PATCH");
    assert_eq!(
        seen[1].path,
        "/apis/image.openshift.io/v1/namespaces/packit-prod/imagestreams/packit-worker"
    );
    assert_eq!(
        seen[1].content_type,
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        seen[1].body,
        serde_json::json!({
            "metadata": {"resourceVersion": "7"},
            "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": reference}}]}
        })
    );

    let error = importer
        .pin("packit-prod", "packit-worker", "canary", &reference)
        .await
        .expect_err("no such tag");
    assert!(error.is_not_found(), "{error}");
}

fn worker_stream(rv: &str, prod_from: Option<&str>) -> serde_json::Value {
    let mut tags = vec![
        serde_json::json!({"name": "stg", "from": {"kind": "DockerImage", "name": "quay.io/packit/packit-worker:stg"}}),
    ];
    if let Some(from) = prod_from {
        tags.push(
            serde_json::json!({"name": "prod", "from": {"kind": "DockerImage", "name": from}}),
        );
    }
    serde_json::json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "packit-worker", "namespace": "packit-prod", "uid": "u", "resourceVersion": rv},
        "spec": {"tags": tags}
    })
}

#[tokio::test(start_paused = true)]
async fn a_pin_conflict_reads_the_stream_again_and_patches_the_new_version() {
    let source = "quay.io/packit/packit-worker:prod";
    let (client, seen) = fake_client(Duration::ZERO, move |n, _| match n {
        0 => (200, vec![], worker_stream("7", Some(source))),
        1 => (409, vec![], status(409, "Conflict")),
        2 => (200, vec![], worker_stream("8", Some(source))),
        _ => (200, vec![], worker_stream("9", Some(source))),
    });
    let importer = Importer::new(client, options(4));
    let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
    importer
        .pin("packit-prod", "packit-worker", "prod", &reference)
        .await
        .expect("pin");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PATCH", "GET", "PATCH"]);
    assert_eq!(seen[1].body["metadata"]["resourceVersion"], "7");
    assert_eq!(seen[3].body["metadata"]["resourceVersion"], "8");
}

#[tokio::test(start_paused = true)]
async fn a_pin_conflict_with_the_tag_removed_meanwhile_is_not_found() {
    let (client, seen) = fake_client(Duration::ZERO, move |n, _| match n {
        0 => (
            200,
            vec![],
            worker_stream("7", Some("quay.io/packit/packit-worker:prod")),
        ),
        1 => (409, vec![], status(409, "Conflict")),
        _ => (200, vec![], worker_stream("8", None)),
    });
    let importer = Importer::new(client, options(4));
    let reference = format!("quay.io/packit/packit-worker@{DIGEST}");
    let error = importer
        .pin("packit-prod", "packit-worker", "prod", &reference)
        .await
        .expect_err("the tag is gone");
    assert!(error.is_not_found(), "{error}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "PATCH", "GET"],
        "no patch that would create the tag again"
    );
}

/// A preview carries no precondition: a 409 (whatever caused it) is
/// retried like any transient failure.
#[tokio::test(start_paused = true)]
async fn a_preview_conflict_is_retried() {
    let (client, seen) = fake_client(Duration::ZERO, |n, r| match n {
        0 => (409, vec![], status(409, "Conflict")),
        _ => success(r),
    });
    let importer = Importer::new(client, options(4));
    let digest = importer
        .preview(&target("packit-worker"))
        .await
        .expect("preview");
    assert_eq!(digest, DIGEST);
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
}

/// A patch carrying a resourceVersion is never resent unchanged after a
/// 409: each try reads the stream first.
#[tokio::test(start_paused = true)]
async fn patch_conflicts_are_bounded() {
    let (client, seen) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
        "GET" => (
            200,
            vec![],
            worker_stream("7", Some("quay.io/packit/packit-worker:prod")),
        ),
        _ => (409, vec![], status(409, "Conflict")),
    });
    let importer = Importer::new(client, options(3));
    let error = importer
        .annotate_tag("packit-prod", "packit-worker", "prod", "k", Some("v"))
        .await
        .expect_err("always conflicting");
    assert!(matches!(error, ImportError::Conflict { .. }), "{error}");
    let patches = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 3);
}

/// The import was decided on a stream read before an operator pinned the
/// tag: the server answers 409 to its resourceVersion, the stream is read
/// again, and the tag is held instead of imported.
#[tokio::test(start_paused = true)]
async fn an_import_conflicting_with_a_pin_is_held() {
    let pinned = format!("quay.io/packit/packit-worker@{DIGEST}");
    let stream = worker_stream("8", Some(&pinned));
    let (client, seen) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
        "POST" => (409, vec![], status(409, "Conflict")),
        _ => (200, vec![], stream.clone()),
    });
    let importer = Importer::new(client, options(4));
    let outcome = importer.import(&target("packit-worker")).await;
    assert_eq!(outcome, ImportOutcome::Held { reference: pinned });
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET"], "no second import");
}

#[tokio::test(start_paused = true)]
async fn an_import_whose_tag_was_removed_meanwhile_says_so() {
    let stream = worker_stream("8", None);
    let (client, _) = fake_client(Duration::ZERO, move |_, r| match r.method.as_str() {
        "POST" => (409, vec![], status(409, "Conflict")),
        _ => (200, vec![], stream.clone()),
    });
    let importer = Importer::new(client, options(4));
    let outcome = importer.import(&target("packit-worker")).await;
    let ImportOutcome::Failed {
        reason,
        message,
        transient,
        kind,
    } = &outcome
    else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert_eq!(reason, "NotFound");
    assert_eq!(*kind, ErrorKind::NotFound);
    assert!(!transient);
    assert!(
        message.contains("removed while its import was being decided"),
        "{message}"
    );
}

/// The API's 403 and a registry's refusal both carry the reason
/// `Forbidden`; the outcome's kind tells them apart.
#[tokio::test(start_paused = true)]
async fn an_api_refusal_and_a_registry_refusal_have_their_own_kinds() {
    let (client, _) = fake_client(Duration::ZERO, |_, _| {
        (403, vec![], status(403, "Forbidden"))
    });
    let outcome = Importer::new(client, options(1))
        .import(&target("packit-worker"))
        .await;
    assert!(
        matches!(
            &outcome,
            ImportOutcome::Failed { reason, kind: ErrorKind::Forbidden, transient: false, .. } if reason == "Forbidden"
        ),
        "{outcome:?}"
    );

    let (client, _) = fake_client(Duration::ZERO, |_, _| {
        (
            201,
            vec![],
            serde_json::json!({
                "kind": "ImageStreamImport", "apiVersion": "image.openshift.io/v1",
                "metadata": {"name": "packit-worker"},
                "status": {"images": [{"status": {
                    "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
                    "message": "you may not have access to the container image"
                }}]}
            }),
        )
    });
    let outcome = Importer::new(client, options(1))
        .import(&target("packit-worker"))
        .await;
    assert!(
        matches!(
            &outcome,
            ImportOutcome::Failed { reason, kind: ErrorKind::Registry(ImageFailure::AccessDenied), .. } if reason == "Forbidden"
        ),
        "{outcome:?}"
    );
}
