//! The test cluster against its own promises: the front routes clients to
//! the real servers (kubectl, RBAC, discovery, watches) and injects faults,
//! in front of the API and of the registry. What OpenShift itself does is in
//! `conformance.rs`. One shared cluster; every test works in its own
//! namespace.

mod common;

use std::time::Duration;

use common::{history, imports_path, isi, kubectl, streams_path, worker_stream};
use futures::StreamExt;
use serde_json::{json, Value};
use test_cluster::{FaultKind, FaultRule, TagSeed, TestCluster};

#[tokio::test]
async fn kubectl_lists_and_describes_seeded_streams_through_the_front() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("kubectl").await.unwrap();
    for name in ["packit-service", "packit-worker"] {
        let repo = format!("{ns}/{name}");
        c.registry().push_image(&repo, "prod").await.unwrap();
        c.seed_stream(
            &ns,
            name,
            &[TagSeed::new("prod", c.registry().image_ref(&repo, "prod"))],
        )
        .await
        .unwrap();
    }
    let kc = c.kubeconfig_path();
    let Some((ok, out, err)) = kubectl(kc, &["get", "imagestreams", "-n", &ns]) else {
        return;
    };
    assert!(ok, "kubectl get imagestreams failed: {err}");
    assert!(
        out.contains("packit-service") && out.contains("packit-worker"),
        "{out}"
    );
    let (ok, out, err) = kubectl(kc, &["get", "is", "-n", &ns, "-o", "name"]).unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "imagestream.image.openshift.io/packit-service",
            "imagestream.image.openshift.io/packit-worker"
        ]
    );
    let (ok, out, err) = kubectl(kc, &["describe", "is", "packit-worker", "-n", &ns]).unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("sha256:"), "describe shows the history: {out}");
    let (ok, out, err) =
        kubectl(kc, &["api-resources", "--api-group", "image.openshift.io"]).unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("imagestreamimports") && out.contains("imagestreams"),
        "{out}"
    );
}

#[tokio::test]
async fn read_only_service_account_lists_but_cannot_import_or_patch() {
    let c = TestCluster::shared().await;
    let (ns, repo, _) = worker_stream(c, "rbac").await;
    c.admin_request(
        "POST",
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        Some(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "is-reader"},
            "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams"], "verbs": ["get", "list", "watch"]}],
        })),
    )
    .await
    .unwrap();
    c.admin_request(
        "POST",
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        Some(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "is-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        })),
    )
    .await
    .unwrap();
    let token = c.service_account_token(&ns, "reader").await.unwrap();

    let (code, list) = c
        .shim_request(Some(&token), "GET", &streams_path(&ns), None, None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    let from = c.registry().image_ref(&repo, "prod");
    let (code, denied) = c
        .shim_request(
            Some(&token),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", true, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{denied}");
    assert_eq!(denied["reason"], "Forbidden");
    assert!(denied["message"]
        .as_str()
        .unwrap()
        .contains(&format!("system:serviceaccount:{ns}:reader")));

    let (code, denied) = c
        .shim_request(
            Some(&token),
            "PATCH",
            &format!("{}/worker", streams_path(&ns)),
            Some("application/strategic-merge-patch+json"),
            Some(
                json!({"spec": {"tags": [{"name": "prod", "importPolicy": {"scheduled": true}}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(code, 403, "{denied}");

    // Anonymous callers are denied too.
    let (code, _) = c
        .shim_request(
            None,
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", true, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 403);

    let kc = tempfile::NamedTempFile::new().unwrap();
    c.write_kubeconfig(&token, kc.path()).unwrap();
    if let Some((ok, out, err)) = kubectl(kc.path(), &["get", "is", "-n", &ns, "-o", "name"]) {
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "imagestream.image.openshift.io/worker");
        let (ok, _, err) = kubectl(kc.path(), &["get", "configmaps", "-n", &ns]).unwrap();
        assert!(!ok && err.contains("forbidden"), "{err}");
    }
}

#[tokio::test]
async fn service_account_with_import_permission_imports() {
    let c = TestCluster::shared().await;
    let (ns, repo, _) = worker_stream(c, "importer").await;
    c.admin_request(
        "POST",
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        Some(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "importer"},
            "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreamimports"], "verbs": ["create"]}],
        })),
    )
    .await
    .unwrap();
    c.admin_request(
        "POST",
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        Some(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "importer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "importer"},
            "subjects": [{"kind": "ServiceAccount", "name": "importer", "namespace": ns}],
        })),
    )
    .await
    .unwrap();
    let token = c.service_account_token(&ns, "importer").await.unwrap();
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    let from = c.registry().image_ref(&repo, "prod");
    let (code, body) = c
        .shim_request(
            Some(&token),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", true, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        history(&c.stream(&ns, "worker").await.unwrap(), "prod")[0],
        new
    );
}

#[tokio::test]
async fn invalid_token_is_unauthorized() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("badtoken").await.unwrap();
    let (code, body) = c
        .shim_request(
            Some("not-a-token"),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", true, &[("127.0.0.1:1/x:y", "y")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["reason"], "Unauthorized");
    let (code, _) = c
        .shim_request(Some("not-a-token"), "GET", &streams_path(&ns), None, None)
        .await
        .unwrap();
    assert_eq!(
        code, 401,
        "forwarded requests are authenticated by kube-apiserver"
    );
}

#[tokio::test]
async fn discovery_lists_imagestreamimports() {
    let c = TestCluster::shared().await;
    let (code, list) = c
        .shim_request(
            Some(&c.admin_token()),
            "GET",
            "/apis/image.openshift.io/v1",
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{list}");
    let resources = list["resources"].as_array().unwrap();
    let isi = resources
        .iter()
        .find(|r| r["name"] == "imagestreamimports")
        .unwrap();
    assert_eq!(isi["verbs"], json!(["create"]));
    assert_eq!(isi["namespaced"], true);
    assert!(resources.iter().any(|r| r["name"] == "imagestreams"));
}

#[tokio::test]
async fn watches_stream_through_the_front() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("watch").await.unwrap();
    let resp = c
        .https_client()
        .unwrap()
        .get(format!(
            "{}{}?watch=true",
            c.server_url(),
            streams_path(&ns)
        ))
        .bearer_auth(c.admin_token())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    c.seed_stream(&ns, "watched", &[]).await.unwrap();
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        let chunk = body.next().await.expect("the watch ended early").unwrap();
        buf.extend_from_slice(&chunk);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap();
    let event: Value = serde_json::from_slice(line).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "watched");
}

#[tokio::test]
async fn fault_rules_fire_as_configured() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("faults").await.unwrap();
    let token = c.admin_token();
    let path = streams_path(&ns);

    let id = c.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/imagestreams"),
            FaultKind::Status {
                code: 500,
                retry_after_secs: None,
            },
        )
        .method("GET")
        .times(1),
    );
    let (code, body) = c
        .shim_request(Some(&token), "GET", &path, None, None)
        .await
        .unwrap();
    assert_eq!(code, 500);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "InternalError");
    let (code, _) = c
        .shim_request(Some(&token), "GET", &path, None, None)
        .await
        .unwrap();
    assert_eq!(code, 200, "times: 1 fires once");
    assert_eq!(c.faults().hits(id), 1);

    let id = c.faults().add(FaultRule::new(
        format!("/namespaces/{ns}/"),
        FaultKind::Status {
            code: 429,
            retry_after_secs: Some(7),
        },
    ));
    let resp = c
        .https_client()
        .unwrap()
        .get(format!("{}{path}", c.server_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["Retry-After"], "7");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["details"]["retryAfterSeconds"], 7);
    assert_eq!(body["reason"], "TooManyRequests");
    assert!(c.faults().remove(id));

    let id = c
        .faults()
        .add(FaultRule::new(format!("/namespaces/{ns}/"), FaultKind::Drop).times(1));
    let err = c
        .shim_request(Some(&token), "GET", &path, None, None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("through the front"), "{err:#}");
    assert_eq!(c.faults().hits(id), 1);

    let id = c
        .faults()
        .add(FaultRule::new(format!("/namespaces/{ns}/"), FaultKind::Hang).times(1));
    let err = c
        .https_client()
        .unwrap()
        .get(format!("{}{path}", c.server_url()))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(c.faults().hits(id), 1);

    let id = c.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/"),
            FaultKind::Latency(Duration::from_millis(50)),
        )
        .times(2),
    );
    let (code, _) = c
        .shim_request(Some(&token), "GET", &path, None, None)
        .await
        .unwrap();
    assert_eq!(code, 200, "latency delays but answers");
    assert_eq!(c.faults().hits(id), 1);
    assert!(c.faults().remove(id));

    // Probability 0 never fires.
    let id = c
        .faults()
        .add(FaultRule::new(format!("/namespaces/{ns}/"), FaultKind::Drop).probability(0.0));
    for _ in 0..5 {
        let (code, _) = c
            .shim_request(Some(&token), "GET", &path, None, None)
            .await
            .unwrap();
        assert_eq!(code, 200);
    }
    assert_eq!(c.faults().hits(id), 0);
    assert!(c.faults().remove(id));
}

#[tokio::test]
async fn registry_faults_become_per_image_failures() {
    let c = TestCluster::shared().await;
    let (ns, repo, _) = worker_stream(c, "regfault").await;
    let token = c.admin_token();
    let from = c.registry().image_ref(&repo, "prod");
    let id = c.faults().add(
        FaultRule::new(
            format!("/v2/{repo}/manifests/"),
            FaultKind::Status {
                code: 401,
                retry_after_secs: None,
            },
        )
        .times(1),
    );
    let (code, body) = c
        .shim_request(
            Some(&token),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", false, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["status"]["images"][0]["status"]["reason"],
        "Unauthorized"
    );
    assert_eq!(c.faults().hits(id), 1);
    let (_, body) = c
        .shim_request(
            Some(&token),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", false, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(body["status"]["images"][0]["status"]["status"], "Success");
}

#[tokio::test]
async fn admin_endpoint_adds_lists_and_clears_faults() {
    let c = TestCluster::shared().await;
    let ns = c.create_namespace("adminep").await.unwrap();
    let client = c.https_client().unwrap();
    let url = format!("{}/_testcluster/faults", c.server_url());
    let rule = json!({"method": "GET", "path_contains": format!("/namespaces/{ns}/"), "kind": {"status": {"code": 503}}, "times": 1});
    let resp = client.post(&url).json(&rule).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let ids: Value = resp.json().await.unwrap();
    let id = ids["ids"][0].as_u64().unwrap();
    let listed: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(listed["faults"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == id));
    let (code, _) = c
        .shim_request(
            Some(&c.admin_token()),
            "GET",
            &streams_path(&ns),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 503);
    let resp = client.delete(format!("{url}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(&url)
        .body("{\"kind\": \"explode\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "an invalid rule is refused");
}
