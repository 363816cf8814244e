//! One test per OpenShift image-API behaviour the daemon relies on, against
//! the real openshift-apiserver and openshift-controller-manager. A source
//! drop that changes one of these fails here first, naming the assumption.

mod common;

use std::time::Duration;

use common::{
    eventually, history, history_items, imports_path, isi, oc, spec_tag, streams_path,
    worker_stream,
};
use serde_json::{json, Value};
use test_cluster::{FaultKind, FaultRule, TagSeed, TestCluster};

/// Long enough for the controllers on a loaded 2-core machine; they
/// normally act within 1-2 s.
const CONTROLLER: Duration = Duration::from_secs(60);

/// Posts an ImageStreamImport. Without a resourceVersion in the request, a
/// 409 means the import's own write lost a race with another writer (the
/// controller importing a tag just changed): it is tried again.
async fn post_import(c: &TestCluster, ns: &str, body: Value) -> (u16, Value) {
    let precondition = body["metadata"].get("resourceVersion").is_some();
    for _ in 0..60 {
        let (code, answer) = c
            .shim_request(
                Some(&c.admin_token()),
                "POST",
                &imports_path(ns),
                None,
                Some(body.clone()),
            )
            .await
            .unwrap();
        if code != 409 || precondition {
            return (code, answer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "POST {} kept conflicting without a precondition",
        imports_path(ns)
    );
}

/// Points `worker:prod` at `pin` with a strategic merge patch of that tag
/// alone (as the daemon's CLI pins); the stream as answered.
async fn pin_by_patch(c: &TestCluster, ns: &str, pin: &str) -> Value {
    let (code, body) = c
        .shim_request(
            Some(&c.admin_token()),
            "PATCH",
            &format!("{}/worker", streams_path(ns)),
            Some("application/strategic-merge-patch+json"),
            Some(json!({"spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": pin}}]}})),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn a_stale_resource_version_is_409_and_writes_nothing() {
    let c = TestCluster::shared().await;
    let (ns, repo, first) = worker_stream(c, "conf-rv").await;
    let before = c.stream(&ns, "worker").await.unwrap();
    c.registry().push_image(&repo, "prod").await.unwrap();
    let mut stale = isi(
        "worker",
        true,
        &[(&c.registry().image_ref(&repo, "prod"), "prod")],
    );
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, body) = post_import(c, &ns, stale).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reason"], "Conflict");
    let after = c.stream(&ns, "worker").await.unwrap();
    assert_eq!(history(&after, "prod"), [first]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    // The current resourceVersion is accepted.
    let mut current = isi(
        "worker",
        true,
        &[(&c.registry().image_ref(&repo, "prod"), "prod")],
    );
    current["metadata"]["resourceVersion"] = after["metadata"]["resourceVersion"].clone();
    let (code, body) = post_import(c, &ns, current).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn metadata_uid_is_ignored_even_when_wrong() {
    let c = TestCluster::shared().await;
    let (ns, repo, first) = worker_stream(c, "conf-uid").await;
    let second = c.registry().push_image(&repo, "prod").await.unwrap();
    let mut body = isi(
        "worker",
        true,
        &[(&c.registry().image_ref(&repo, "prod"), "prod")],
    );
    body["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let (code, answer) = post_import(c, &ns, body).await;
    assert_eq!(code, 201, "a wrong uid is no precondition: {answer}");
    assert_eq!(
        history(&c.stream(&ns, "worker").await.unwrap(), "prod"),
        [second, first]
    );
}

#[tokio::test]
async fn history_is_prepended_and_never_deduplicated() {
    let c = TestCluster::shared().await;
    let (ns, repo, a) = worker_stream(c, "conf-hist").await;
    let a_ref = format!("{}/{repo}@{a}", c.registry().host());
    let b = c.registry().push_image(&repo, "prod").await.unwrap();
    let moving = c.registry().image_ref(&repo, "prod");
    for from in [moving.as_str(), a_ref.as_str()] {
        let (code, body) = post_import(c, &ns, isi("worker", true, &[(from, "prod")])).await;
        assert_eq!(code, 201, "{body}");
    }
    let s = c.stream(&ns, "worker").await.unwrap();
    assert_eq!(
        history(&s, "prod"),
        [a.clone(), b, a],
        "A, B, A stays A, B, A"
    );
    let generations: Vec<i64> = history_items(&s, "prod")
        .iter()
        .map(|i| i["generation"].as_i64().unwrap())
        .collect();
    assert!(
        generations.windows(2).all(|w| w[0] > w[1]),
        "each new item has a newer generation: {generations:?}"
    );
}

#[tokio::test]
async fn a_successful_import_rewrites_the_spec_tags_from() {
    // Why the daemon must import with the resourceVersion it decided on: an
    // import built from a stale read silently undoes a pin.
    let c = TestCluster::shared().await;
    let (ns, repo, old) = worker_stream(c, "conf-from").await;
    c.registry().push_image(&repo, "prod").await.unwrap();
    let pin = format!("{}/{repo}@{old}", c.registry().host());
    pin_by_patch(c, &ns, &pin).await;
    let (code, body) = post_import(
        c,
        &ns,
        isi(
            "worker",
            true,
            &[(&c.registry().image_ref(&repo, "prod"), "prod")],
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let s = c.stream(&ns, "worker").await.unwrap();
    assert_eq!(
        spec_tag(&s, "prod")["from"]["name"],
        json!(c.registry().image_ref(&repo, "prod")),
        "the pin is gone: the import wrote its own from"
    );
}

#[tokio::test]
async fn manifest_lists_legacy_records_the_child_preserve_original_the_list() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("conf-list").await.unwrap();
    let repo = format!("{ns}/multi");
    let pushed = c.registry().push_index(&repo, "prod").await.unwrap();
    let amd64 = pushed.child("linux/amd64").unwrap().to_string();
    let from = c.registry().image_ref(&repo, "prod");
    c.seed_stream(&ns, "legacy", &[TagSeed::new("prod", &from)])
        .await
        .unwrap();
    let s = c.stream(&ns, "legacy").await.unwrap();
    assert_eq!(
        history(&s, "prod"),
        std::slice::from_ref(&amd64),
        "Legacy: the linux/amd64 child"
    );

    c.seed_stream(
        &ns,
        "preserve",
        &[TagSeed {
            import: false,
            ..TagSeed::new("prod", &from)
        }],
    )
    .await
    .unwrap();
    let mut body = isi("preserve", true, &[(&from, "prod")]);
    body["spec"]["images"][0]["importPolicy"] = json!({"importMode": "PreserveOriginal"});
    let (code, answer) = post_import(c, &ns, body).await;
    assert_eq!(code, 201, "{answer}");
    let s = eventually(
        c,
        &ns,
        "preserve",
        CONTROLLER,
        "PreserveOriginal recorded",
        |s| history(s, "prod").first() == Some(&pushed.index),
    )
    .await;
    assert_eq!(
        spec_tag(&s, "prod")["importPolicy"]["importMode"],
        "PreserveOriginal"
    );
}

#[tokio::test]
async fn failures_answer_201_with_the_reason_inside() {
    let c = TestCluster::shared().await;
    let (ns, repo, first) = worker_stream(c, "conf-fail").await;
    let reg = c.registry().host();

    // Unknown repository: distribution 2.8 answers MANIFEST_UNKNOWN.
    let unknown = format!("{reg}/{ns}/nope:latest");
    let (code, body) = post_import(c, &ns, isi("worker", true, &[(&unknown, "prod")])).await;
    assert_eq!(code, 201, "{body}");
    let st = &body["status"]["images"][0]["status"];
    assert_eq!(st["status"], "Failure", "{body}");
    assert_eq!(st["reason"], "NotFound", "{body}");
    assert_eq!(st["code"], 404, "{body}");
    let s = c.stream(&ns, "worker").await.unwrap();
    assert_eq!(
        history(&s, "prod"),
        std::slice::from_ref(&first),
        "history kept"
    );
    let cond = &s["status"]["tags"][0]["conditions"][0];
    assert_eq!(
        (cond["type"].as_str(), cond["status"].as_str()),
        (Some("ImportSuccess"), Some("False"))
    );
    assert_eq!(cond["reason"], "NotFound");

    // The registry refuses the credentials.
    c.faults().add(
        FaultRule::new(
            format!("/v2/{repo}/manifests/"),
            FaultKind::Status {
                code: 401,
                retry_after_secs: None,
            },
        )
        .times(1),
    );
    let moving = c.registry().image_ref(&repo, "prod");
    let (code, body) = post_import(c, &ns, isi("worker", false, &[(&moving, "prod")])).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["status"]["images"][0]["status"]["reason"], "Unauthorized",
        "{body}"
    );

    // An unreachable registry host: InternalError with the dial error.
    let (code, body) = post_import(
        c,
        &ns,
        isi("worker", false, &[("127.0.0.1:1/x/y:z", "prod")]),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let st = &body["status"]["images"][0]["status"];
    assert_eq!(st["reason"], "InternalError", "{body}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "{body}"
    );
}

#[tokio::test]
async fn the_controller_imports_a_changed_from_but_not_an_annotation_edit() {
    let c = TestCluster::shared().await;
    let (ns, repo, first) = worker_stream(c, "conf-ctrl").await;
    let path = format!("{}/worker", streams_path(&ns));
    let second = c.registry().push_image(&repo, "prod").await.unwrap();

    // Metadata only: nothing imported (the new push stays unseen).
    c.admin_request(
        "PATCH",
        &path,
        Some(json!({"metadata": {"annotations": {"example.com/touched": "yes"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        history(&c.stream(&ns, "worker").await.unwrap(), "prod"),
        std::slice::from_ref(&first)
    );

    // A new `from`: imported by openshift-controller-manager, no import posted.
    let other = format!("{ns}/other");
    let third = c.registry().push_image(&other, "prod").await.unwrap();
    let s = c.stream(&ns, "worker").await.unwrap();
    let mut tags = s["spec"]["tags"].clone();
    tags[0]["from"]["name"] = json!(c.registry().image_ref(&other, "prod"));
    c.admin_request("PATCH", &path, Some(json!({"spec": {"tags": tags}})))
        .await
        .unwrap();
    eventually(
        c,
        &ns,
        "worker",
        CONTROLLER,
        "the controller imports the new from",
        |s| history(s, "prod").first() == Some(&third),
    )
    .await;
    assert_ne!(second, third);

    // A new tag is imported too.
    let s = c.stream(&ns, "worker").await.unwrap();
    let mut tags = s["spec"]["tags"].as_array().unwrap().clone();
    tags.push(json!({"name": "stg", "from": {"kind": "DockerImage", "name": c.registry().image_ref(&repo, "prod")}}));
    c.admin_request("PATCH", &path, Some(json!({"spec": {"tags": tags}})))
        .await
        .unwrap();
    eventually(
        c,
        &ns,
        "worker",
        CONTROLLER,
        "the controller imports a new tag",
        |s| history(s, "stg").first() == Some(&second),
    )
    .await;
}

#[tokio::test]
async fn reference_tags_are_never_imported_and_have_an_item_without_an_image() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("conf-ref").await.unwrap();
    let repo = format!("{ns}/ref");
    c.registry().push_image(&repo, "prod").await.unwrap();
    c.admin_request(
        "POST",
        &streams_path(&ns),
        Some(json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "ref"},
            "spec": {"tags": [{"name": "prod", "reference": true,
                "from": {"kind": "DockerImage", "name": c.registry().image_ref(&repo, "prod")}}]},
        })),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = c.stream(&ns, "ref").await.unwrap();
    // Not imported: one history item naming the source itself, no image.
    let items = history_items(&s, "prod");
    assert_eq!(items.len(), 1, "{s:#}");
    assert_eq!(items[0]["image"], "", "{s:#}");
    assert_eq!(
        items[0]["dockerImageReference"],
        json!(c.registry().image_ref(&repo, "prod")),
        "{s:#}"
    );
    assert_eq!(spec_tag(&s, "prod")["reference"], true);
}

#[tokio::test]
async fn strategic_merge_patch_merges_spec_tags_by_name() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("conf-smp").await.unwrap();
    let repo = format!("{ns}/worker");
    let old = c.registry().push_image(&repo, "prod").await.unwrap();
    c.registry().push_image(&repo, "stg").await.unwrap();
    let tag = |name: &str| {
        let mut t = TagSeed::new(name, c.registry().image_ref(&repo, name));
        t.reference_policy = Some("Local".into());
        t
    };
    c.seed_stream(&ns, "worker", &[tag("prod"), tag("stg")])
        .await
        .unwrap();
    let pin = format!("{}/{repo}@{old}", c.registry().host());
    let body = pin_by_patch(c, &ns, &pin).await;
    let prod = spec_tag(&body, "prod");
    assert_eq!(prod["from"]["name"], json!(pin));
    assert_eq!(
        prod["referencePolicy"]["type"], "Local",
        "the rest of the tag is kept"
    );
    assert_eq!(
        spec_tag(&body, "stg")["from"]["name"],
        json!(c.registry().image_ref(&repo, "stg")),
        "other tags untouched"
    );
}

#[tokio::test]
async fn oc_tag_puts_the_whole_tag_and_oc_import_image_imports() {
    let c = TestCluster::shared().await;
    let (ns, repo, old) = worker_stream(c, "conf-oc").await;
    let path = format!("{}/worker", streams_path(&ns));
    let s = c.stream(&ns, "worker").await.unwrap();
    let mut tags = s["spec"]["tags"].clone();
    tags[0]["annotations"] = json!({"example.com/kept": "no"});
    tags[0]["importPolicy"] = json!({"scheduled": true});
    c.admin_request("PATCH", &path, Some(json!({"spec": {"tags": tags}})))
        .await
        .unwrap();
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    let pin = format!("{}/{repo}@{old}", c.registry().host());

    let (ok, out, err) = oc(
        c,
        &["tag", "--source=docker", &pin, &format!("{ns}/worker:prod")],
    );
    assert!(ok, "oc tag failed: {out}{err}");
    let s = c.stream(&ns, "worker").await.unwrap();
    let prod = spec_tag(&s, "prod");
    assert_eq!(prod["from"]["name"], json!(pin));
    assert!(
        prod["annotations"].as_object().is_none_or(|a| a.is_empty()),
        "oc tag replaces the whole tag: annotations dropped: {prod}"
    );
    assert_ne!(
        prod["importPolicy"]["scheduled"], true,
        "scheduled reset: {prod}"
    );

    let (ok, out, err) = oc(c, &["describe", "is", "worker", "-n", &ns]);
    assert!(ok, "{err}");
    assert!(out.contains(&old), "oc describe shows the history: {out}");

    // Back to the moving tag, then `oc import-image` brings in the new push.
    let moving = c.registry().image_ref(&repo, "prod");
    let (ok, out, err) = oc(
        c,
        &[
            "tag",
            "--source=docker",
            &moving,
            &format!("{ns}/worker:prod"),
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = oc(c, &["import-image", "worker:prod", "-n", &ns]);
    assert!(ok, "oc import-image failed: {out}{err}");
    let s = eventually(c, &ns, "worker", CONTROLLER, "the new push imported", |s| {
        history(s, "prod").first() == Some(&new)
    })
    .await;
    assert_eq!(spec_tag(&s, "prod")["from"]["name"], json!(moving));
}

#[tokio::test]
async fn the_image_trigger_controller_sets_the_workloads_image() {
    let c = TestCluster::shared().await;
    let (ns, repo, _) = worker_stream(c, "conf-trig").await;
    let trigger = json!([{
        "from": {"kind": "ImageStreamTag", "name": "worker:prod"},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"worker\")].image",
    }])
    .to_string();
    c.admin_request(
        "POST",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        Some(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "worker", "annotations": {"image.openshift.io/triggers": trigger}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "worker"}},
                "template": {
                    "metadata": {"labels": {"app": "worker"}},
                    "spec": {"containers": [{"name": "worker", "image": "placeholder"}]},
                },
            },
        })),
    )
    .await
    .unwrap();
    let image_of = || async {
        let d = c
            .admin_request(
                "GET",
                &format!("/apis/apps/v1/namespaces/{ns}/deployments/worker"),
                None,
            )
            .await
            .unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first_ref = history_items(&c.stream(&ns, "worker").await.unwrap(), "prod")[0]
        ["dockerImageReference"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + CONTROLLER;
    while image_of().await != first_ref {
        assert!(
            std::time::Instant::now() < deadline,
            "the trigger never set {first_ref}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let second = c.registry().push_image(&repo, "prod").await.unwrap();
    let (code, body) = post_import(
        c,
        &ns,
        isi(
            "worker",
            true,
            &[(&c.registry().image_ref(&repo, "prod"), "prod")],
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let want = format!("{}/{repo}@{second}", c.registry().host());
    let deadline = std::time::Instant::now() + CONTROLLER;
    while image_of().await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "the trigger never set {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
