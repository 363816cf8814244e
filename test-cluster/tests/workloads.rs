//! Workloads on the test cluster with the real controllers: OpenShift's
//! image-trigger controller sets the image, kube-controller-manager rolls
//! Deployments and StatefulSets, kube-scheduler binds the pods, and the
//! stand-in node reports them running, crash-looping or failing to pull.

mod common;

use std::time::{Duration, Instant};

use common::{imports_path, isi, worker_stream};
use serde_json::{json, Value};
use test_cluster::{Failure, TestCluster};

/// How long the controllers may take for anything here (they act in
/// seconds; the margin is for a loaded machine).
const LIMIT: Duration = Duration::from_secs(180);

fn trigger(stream_tag: &str, container: &str) -> String {
    json!([{
        "from": {"kind": "ImageStreamTag", "name": stream_tag},
        "fieldPath": format!("spec.template.spec.containers[?(@.name==\"{container}\")].image"),
    }])
    .to_string()
}

/// A Deployment or StatefulSet `name` of `replicas` pods with one container
/// `worker`, its image set by the trigger on `worker:prod` when `triggered`.
fn workload(kind: &str, name: &str, replicas: u32, image: &str, triggered: bool) -> Value {
    let mut w = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "worker", "image": image}],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    });
    if triggered {
        w["metadata"]["annotations"] =
            json!({"image.openshift.io/triggers": trigger("worker:prod", "worker")});
    }
    if kind == "StatefulSet" {
        w["spec"]["serviceName"] = json!(name);
    }
    w
}

fn collection(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        other => panic!("no collection for {other}"),
    }
}

async fn create(c: &TestCluster, ns: &str, w: Value) {
    let kind = w["kind"].as_str().unwrap().to_string();
    c.admin_request(
        "POST",
        &format!("/apis/apps/v1/namespaces/{ns}/{}", collection(&kind)),
        Some(w),
    )
    .await
    .unwrap_or_else(|e| panic!("creating a {kind}: {e:#}"));
}

/// Polls `GET path` until `check` holds; panics with the last object after
/// [`LIMIT`].
async fn until(c: &TestCluster, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let v = c.admin_request("GET", path, None).await.unwrap();
        if check(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {LIMIT:?}; last seen {v:#}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn image_of(w: &Value) -> &str {
    w["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

/// Done as a rollout checker sees it: the new generation observed, every
/// replica updated and ready, no old replica left.
fn rolled_out(kind: &str, w: &Value) -> bool {
    let s = &w["status"];
    let want = w["spec"]["replicas"].as_u64().unwrap_or(1);
    let observed = s["observedGeneration"].as_i64() >= w["metadata"]["generation"].as_i64();
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    observed
        && n("updatedReplicas") == want
        && n("readyReplicas") == want
        && n("replicas") == want
        && match kind {
            "StatefulSet" => s["updateRevision"] == s["currentRevision"],
            _ => n("availableReplicas") == want,
        }
}

async fn pods(c: &TestCluster, ns: &str, app: &str) -> Vec<Value> {
    let list = c
        .admin_request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}"),
            None,
        )
        .await
        .unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn waiting_reason(pod: &Value) -> &str {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
}

/// Pushes a new image to `repo:prod` and imports it into `worker:prod`;
/// returns its `dockerImageReference` (`host/repo@digest`).
async fn import_new_image(c: &TestCluster, ns: &str, repo: &str) -> (String, String) {
    let digest = c.registry().push_image(repo, "prod").await.unwrap();
    let from = c.registry().image_ref(repo, "prod");
    let (code, body) = c
        .shim_request(
            Some(&c.admin_token()),
            "POST",
            &imports_path(ns),
            None,
            Some(isi("worker", true, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "the import failed: {body}");
    (
        digest.clone(),
        format!("{}/{repo}@{digest}", c.registry().host()),
    )
}

/// A triggered workload that rolled out to the first import, then to a newly
/// imported image through the trigger.
async fn rolls_to_a_newly_imported_image(kind: &str, prefix: &str) {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, first) = worker_stream(c, prefix).await;
    let path = format!("/apis/apps/v1/namespaces/{ns}/{}/worker", collection(kind));
    create(c, &ns, workload(kind, "worker", 2, "placeholder", true)).await;
    let w = until(c, &path, "the first rollout", |w| {
        image_of(w).ends_with(&first) && rolled_out(kind, w)
    })
    .await;
    assert_eq!(w["status"]["readyReplicas"], 2);

    let (_, new_ref) = import_new_image(c, &ns, &repo).await;
    until(c, &path, "the rollout to the new image", |w| {
        image_of(w) == new_ref && rolled_out(kind, w)
    })
    .await;
    let pods = pods(c, &ns, "worker").await;
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(running.len(), 2, "{pods:#?}");
    for p in running {
        assert_eq!(p["spec"]["containers"][0]["image"], json!(new_ref));
        assert_eq!(p["spec"]["nodeName"], json!(c.node_name()));
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    }
}

#[tokio::test]
async fn a_deployment_rolls_to_a_newly_imported_image_through_its_trigger() {
    rolls_to_a_newly_imported_image("Deployment", "wl-deploy").await;
}

#[tokio::test]
async fn a_statefulset_rolls_to_a_newly_imported_image_through_its_trigger() {
    rolls_to_a_newly_imported_image("StatefulSet", "wl-sts").await;
}

#[tokio::test]
async fn a_crash_looping_image_leaves_the_new_pods_in_crash_loop_back_off() {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, first) = worker_stream(c, "wl-crash").await;
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/worker");
    create(
        c,
        &ns,
        workload("Deployment", "worker", 1, "placeholder", true),
    )
    .await;
    until(c, &path, "the first rollout", |w| {
        image_of(w).ends_with(&first) && rolled_out("Deployment", w)
    })
    .await;

    // The digest is known only after the push; mark it before the import.
    let digest = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&digest, Failure::CrashLoop);
    let from = c.registry().image_ref(&repo, "prod");
    let (code, body) = c
        .shim_request(
            Some(&c.admin_token()),
            "POST",
            &imports_path(&ns),
            None,
            Some(isi("worker", true, &[(&from, "prod")])),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");

    let crashing = |pods: &[Value]| -> Option<(String, u64)> {
        pods.iter()
            .find(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|i| i.ends_with(&digest))
                    && waiting_reason(p) == "CrashLoopBackOff"
            })
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["status"]["containerStatuses"][0]["restartCount"]
                        .as_u64()
                        .unwrap(),
                )
            })
    };
    let deadline = Instant::now() + LIMIT;
    let (name, restarts) = loop {
        if let Some(found) = crashing(&pods(c, &ns, "worker").await) {
            break found;
        }
        assert!(Instant::now() < deadline, "no new pod in CrashLoopBackOff");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    until(
        c,
        &format!("/api/v1/namespaces/{ns}/pods/{name}"),
        "the restart count rising",
        |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .is_some_and(|n| n > restarts)
        },
    )
    .await;
    // The old pod keeps serving: never ready, the new one does not replace it.
    let d = c.admin_request("GET", &path, None).await.unwrap();
    assert_eq!(d["status"]["readyReplicas"], 1, "{d:#}");
    assert_eq!(d["status"]["updatedReplicas"], 1, "{d:#}");
    let old_running = pods(c, &ns, "worker")
        .await
        .iter()
        .any(|p| image_of_pod(p).ends_with(&first) && p["status"]["phase"] == "Running");
    assert!(old_running, "the pod of the previous image was replaced");
}

fn image_of_pod(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deployment_past_its_progress_deadline_reports_progress_deadline_exceeded() {
    let c = TestCluster::shared_with_workloads().await;
    let ns = c.create_namespace("wl-deadline").await.unwrap();
    let repo = format!("{ns}/worker");
    let digest = c.registry().push_image(&repo, "prod").await.unwrap();
    let image = format!("{}/{repo}@{digest}", c.registry().host());
    c.mark_image_bad(&image, Failure::CrashLoop);
    let mut d = workload("Deployment", "worker", 1, &image, false);
    d["spec"]["progressDeadlineSeconds"] = json!(3);
    create(c, &ns, d).await;
    let d = until(
        c,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/worker"),
        "the condition Progressing=False ProgressDeadlineExceeded",
        |d| {
            d["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cond| {
                    cond["type"] == "Progressing"
                        && cond["status"] == "False"
                        && cond["reason"] == "ProgressDeadlineExceeded"
                })
        },
    )
    .await;
    assert_ne!(d["status"]["readyReplicas"], 1, "{d:#}");
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_shows_image_pull_back_off() {
    let c = TestCluster::shared_with_workloads().await;
    let ns = c.create_namespace("wl-pull").await.unwrap();
    let image = format!("{}/{ns}/missing:v1", c.registry().host());
    c.mark_image_bad(&image, Failure::PullError);
    create(c, &ns, workload("Deployment", "worker", 1, &image, false)).await;
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    loop {
        let pods = pods(c, &ns, "worker").await;
        if let Some(p) = pods.first() {
            let reason = waiting_reason(p).to_string();
            if !seen.contains(&reason) {
                seen.push(reason.clone());
            }
            if reason == "ImagePullBackOff" {
                assert_eq!(p["status"]["phase"], "Pending", "{p:#}");
                assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no ImagePullBackOff; reasons seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        seen.iter().any(|r| r == "ErrImagePull"),
        "the failed pull itself was never reported: {seen:?}"
    );
}

#[tokio::test]
async fn a_daemonset_runs_one_ready_pod_on_the_node() {
    let c = TestCluster::shared_with_workloads().await;
    let ns = c.create_namespace("wl-ds").await.unwrap();
    let mut ds = workload("DaemonSet", "agent", 1, "registry.example/agent:v1", false);
    ds["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas")
        .unwrap();
    create(c, &ns, ds).await;
    until(
        c,
        &format!("/apis/apps/v1/namespaces/{ns}/daemonsets/agent"),
        "the DaemonSet's pod ready",
        |d| {
            d["status"]["desiredNumberScheduled"] == 1
                && d["status"]["numberReady"] == 1
                && d["status"]["updatedNumberScheduled"] == 1
        },
    )
    .await;
}

#[tokio::test]
async fn a_cluster_without_workloads_binds_no_pods() {
    let c = TestCluster::shared().await;
    assert!(!c.runs_workloads());
    let ns = c.create_namespace("wl-none").await.unwrap();
    c.admin_request(
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        Some(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "registry.example/c:v1"}]},
        })),
    )
    .await
    .unwrap();
    let nodes = c.admin_request("GET", "/api/v1/nodes", None).await.unwrap();
    assert_eq!(nodes["items"], json!([]), "a node exists: {nodes:#}");
    let p = c
        .admin_request("GET", &format!("/api/v1/namespaces/{ns}/pods/p"), None)
        .await
        .unwrap();
    assert!(p["spec"]["nodeName"].is_null(), "{p:#}");
}
