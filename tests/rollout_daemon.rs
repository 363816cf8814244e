//! The daemon binary follows the rollouts its imports cause, against the
//! test cluster with the real workload controllers (see tests/rollout.rs):
//! a good rollout is reported, a crash-looping image is pinned back under
//! `pinBack` and only reported under `report`, an image that cannot be
//! pulled fails, workloads without a trigger on the tag are ignored, and a
//! check in progress survives a restart of the daemon through the status
//! ConfigMap.

mod support;

use std::path::Path;
use std::time::Duration;

use import_scheduler::rbac::{policy_rules, ApiCall, Scope, DAEMON_API_CALLS, PIN_BACK_API_CALLS};
use import_scheduler::rollout::follow::{follow, FollowSpec};
use import_scheduler::rollout::verdict::{Verdict, WorkloadKind};
use serde_json::{json, Value};
use support::*;
use test_cluster::{workload_manifest, Failure, TagSeed, TestCluster};

/// Long enough for the controllers on a loaded machine; only a failure
/// waits for all of it.
const LONG: Duration = Duration::from_secs(240);

/// Creates workload `name` of `kind` (2 replicas, one container `worker`),
/// its image set by a trigger on `worker:prod` when `triggered`.
async fn create(
    c: &TestCluster,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
    image: &str,
    triggered: bool,
) {
    let w = workload_manifest(
        kind.name(),
        name,
        "worker",
        image,
        2,
        triggered.then_some("worker:prod"),
    );
    c.create_workload(ns, w)
        .await
        .unwrap_or_else(|e| panic!("creating a {}: {e:#}", kind.name()));
}

async fn image_of(c: &TestCluster, ns: &str, kind: WorkloadKind, name: &str) -> String {
    c.workload_image(ns, kind.name(), name).await.unwrap()
}

/// Waits until the consumers of `worker:prod` run `digest`, ready.
async fn rolled_out(c: &TestCluster, ns: &str, digest: &str) {
    let spec = FollowSpec {
        namespace: ns.to_owned(),
        stream: "worker".to_owned(),
        tag: "prod".to_owned(),
        new_digest: digest.to_owned(),
        timeout: LONG,
        already_elapsed: Duration::ZERO,
        poll_interval: Duration::from_millis(500),
    };
    let f = follow(&admin_client(c).await, &spec)
        .await
        .expect("following");
    assert_eq!(f.verdict, Verdict::Succeeded, "rollout of {digest} in {ns}");
}

/// A namespace with stream `worker` (tag `prod` imported from a fresh
/// push) and `kinds` consuming it, rolled out; returns the namespace, the
/// repository and the first digest.
async fn consumers(
    c: &TestCluster,
    prefix: &str,
    kinds: &[WorkloadKind],
) -> (String, String, String) {
    let ns = c.create_namespace(prefix).await.unwrap();
    let repo = format!("{ns}/worker");
    let first = c.registry().push_image(&repo, "prod").await.unwrap();
    c.seed_stream(
        &ns,
        "worker",
        &[TagSeed::new("prod", c.registry().image_ref(&repo, "prod"))],
    )
    .await
    .unwrap();
    for kind in kinds {
        create(c, &ns, *kind, "worker", "placeholder", true).await;
    }
    rolled_out(c, &ns, &first).await;
    (ns, repo, first)
}

/// Grants ServiceAccount `daemon` of `ns` the rules of `calls` in `scope`
/// as Role `name`.
async fn grant(c: &TestCluster, ns: &str, name: &str, calls: &[ApiCall], scope: Scope) {
    let rules = serde_json::to_value(policy_rules(calls, scope)).unwrap();
    create_role(c, ns, name, rules).await;
    bind_role(c, ns, name, name, "daemon").await;
}

/// Runs the daemon binary on an immediate environment for `ns` with
/// `verify.timeout` and `onFailedRollout`.
fn daemon(c: &TestCluster, dir: &Path, ns: &str, timeout: &str, on_failed: &str) -> ChildDaemon {
    daemon_as(c.kubeconfig_path(), dir, ns, timeout, on_failed)
}

fn daemon_as(
    kubeconfig: &Path,
    dir: &Path,
    ns: &str,
    timeout: &str,
    on_failed: &str,
) -> ChildDaemon {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: immediate\n    pollInterval: 1s\n    verify: {{timeout: {timeout}}}\n    onFailedRollout: {on_failed}\n"
        ),
    )
    .unwrap();
    ChildDaemon::spawn_as(
        kubeconfig,
        &config,
        ns,
        "daemon-a",
        dir.join("daemon.log"),
        &[],
    )
}

/// The notes of the Events with `reason` in `ns`, once there is one.
async fn notes(c: &TestCluster, ns: &str, reason: &str, d: &ChildDaemon) -> Vec<String> {
    eventually(LONG, &format!("a {reason} Event"), || async {
        let found: Vec<String> = events(c, ns, reason)
            .await
            .iter()
            .map(|e| e["note"].as_str().unwrap_or_default().to_owned())
            .collect();
        if found.is_empty() {
            Err(format!("none yet; log:\n{}", tail(&d.logs())))
        } else {
            Ok(found)
        }
    })
    .await
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The rollout record of `worker:prod` in the status ConfigMap (null
/// while there is none).
async fn rollout_record(c: &TestCluster, ns: &str) -> Value {
    let Ok(cm) = c
        .admin_request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
            None,
        )
        .await
    else {
        return Value::Null;
    };
    let state: Value = serde_json::from_str(cm["data"]["prod"].as_str().unwrap_or("{}")).unwrap();
    state["rollouts"]["worker:prod"].clone()
}

async fn spec_tag(c: &TestCluster, ns: &str) -> Value {
    let is = c
        .admin_request(
            "GET",
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/worker"),
            None,
        )
        .await
        .unwrap();
    is["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "prod")
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_rollout_is_reported_and_untriggered_workloads_are_ignored() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let kinds = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];
    let (ns, repo, _) = consumers(c, "rd-good", &kinds).await;
    // A crash-looping Deployment without trigger: never followed.
    let bad = format!(
        "{}/{ns}/other@sha256:{}",
        c.registry().host(),
        "0".repeat(64)
    );
    c.mark_image_bad(&bad, Failure::CrashLoop);
    create(c, &ns, WorkloadKind::Deployment, "untriggered", &bad, false).await;

    let dir = tempfile::tempdir().unwrap();
    let d = daemon(c, dir.path(), &ns, "2m", "pinBack");
    // Idle, the checks read nothing: a few polls, and no workload or pod
    // was listed.
    let workload_reads = |metrics: &str| -> Vec<f64> {
        ["deployments", "statefulsets", "daemonsets", "pods"]
            .iter()
            .map(|r| api_requests(metrics, Some("list"), r))
            .collect()
    };
    let idle = eventually(LONG, "a few idle polls", || async {
        let m = http_get(d.port, "/metrics").await;
        match metric_value(
            &m,
            "image_import_scheduler_imports_total{env=\"prod\",result=\"unchanged\"}",
        ) {
            Some(n) if n >= 3.0 => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        workload_reads(&idle),
        vec![0.0; 4],
        "idle reads no workload"
    );
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    let notes = notes(c, &ns, "RolloutSucceeded", &d).await;
    assert!(
        notes[0].contains(&new) && notes[0].contains("Deployment worker, StatefulSet worker"),
        "{notes:?}"
    );
    assert!(!notes[0].contains("untriggered"), "{notes:?}");
    for kind in kinds {
        assert!(image_of(c, &ns, kind, "worker").await.ends_with(&new));
    }
    let metrics = http_get(d.port, "/metrics").await;
    let reads = workload_reads(&metrics);
    // The figure docs/benchmarks.md quotes (deployments, statefulsets,
    // daemonsets, pods listed for one check of a Deployment and a StatefulSet).
    eprintln!("rollout check requests: list {reads:?}");
    assert!(
        reads[0] >= 2.0 && reads[1] >= 2.0 && reads[3] >= 1.0,
        "{reads:?}"
    );
    assert_eq!(
        reads[2], 1.0,
        "DaemonSets are listed once, to find consumers: {reads:?}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_rollouts_total{env=\"prod\",result=\"succeeded\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_rollout_duration_seconds_count{env=\"prod\"}"
        ),
        Some(1.0)
    );
    let record = rollout_record(c, &ns).await;
    assert_eq!(record["state"], "succeeded", "{record:#}");
    assert_eq!(record["digest"], new.as_str());
    assert!(events(c, &ns, "RolloutFailed").await.is_empty());
    assert!(d.logs().contains("\"decision\":\"rollout succeeded\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_image_is_pinned_back_and_the_workloads_return() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let kinds = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];
    let (ns, repo, first) = consumers(c, "rd-pinback", &kinds).await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(c, dir.path(), &ns, "20s", "pinBack");
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&new, Failure::CrashLoop);

    let pinned = notes(c, &ns, "PinnedBack", &d).await;
    assert!(
        pinned[0].contains(&first) && pinned[0].contains("CrashLoopBackOff"),
        "{pinned:?}"
    );
    let failed = events(c, &ns, "RolloutFailed").await;
    let note = failed[0]["note"].as_str().unwrap();
    assert!(
        note.contains("pod worker-")
            && note.contains("container worker")
            && note.contains("CrashLoopBackOff"),
        "{note}"
    );
    // Held on the previous image, with the daemon recorded as its author.
    let spec = spec_tag(c, &ns).await;
    assert!(
        spec["from"]["name"].as_str().unwrap().ends_with(&first),
        "{spec:#}"
    );
    assert!(
        spec["annotations"]["image-import-scheduler.packit.dev/pinned-back-from"]
            .as_str()
            .unwrap()
            .starts_with(&new),
        "{spec:#}"
    );
    // The triggers set the previous image again.
    for kind in kinds {
        eventually(LONG, "the previous image in the template", || async {
            let image = image_of(c, &ns, kind, "worker").await;
            if image.ends_with(&first) {
                Ok(())
            } else {
                Err(format!("{} runs {image}", kind.name()))
            }
        })
        .await;
    }
    // The StatefulSet keeps its pod of the failed image (Kubernetes does not
    // replace a never-ready pod): the rollback's failure says what to run,
    // and nothing is pinned again.
    let stuck = eventually(LONG, "the rollback's report", || async {
        events(c, &ns, "RolloutFailed")
            .await
            .iter()
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .find(|n| n.contains("rollback rollout"))
            .ok_or_else(|| tail(&d.logs()))
    })
    .await;
    let command = format!("oc delete pod worker-1 -n {ns}");
    assert!(stuck.contains(&command), "{stuck}");
    assert_eq!(events(c, &ns, "PinnedBack").await.len(), 1);
    let record = rollout_record(c, &ns).await;
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["pinBack"], true, "{record:#}");
    // What a person does: delete the pod; then everything runs the
    // previous image.
    c.admin_request(
        "DELETE",
        &format!("/api/v1/namespaces/{ns}/pods/worker-1"),
        None,
    )
    .await
    .unwrap();
    rolled_out(c, &ns, &first).await;
    let metrics = http_get(d.port, "/metrics").await;
    for result in ["pinned_back", "rollback_failed"] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!(
                    "image_import_scheduler_rollouts_total{{env=\"prod\",result=\"{result}\"}}"
                )
            ),
            Some(1.0),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_reports_an_image_that_cannot_be_pulled_and_pins_nothing() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _) = consumers(c, "rd-report", &[WorkloadKind::StatefulSet]).await;
    let before = spec_tag(c, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(c, dir.path(), &ns, "2m", "report");
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&new, Failure::PullError);

    let failed = notes(c, &ns, "RolloutFailed", &d).await;
    assert!(
        failed[0].contains("StatefulSet worker")
            && failed[0].contains("container worker")
            && (failed[0].contains("ErrImagePull") || failed[0].contains("ImagePullBackOff"))
            && failed[0].contains("onFailedRollout is report"),
        "{failed:?}"
    );
    assert!(events(c, &ns, "PinnedBack").await.is_empty());
    assert_eq!(spec_tag(c, &ns).await["from"], before["from"], "not pinned");
    let record = rollout_record(c, &ns).await;
    assert_eq!(record["state"], "failed", "{record:#}");
    assert_eq!(record["digest"], new.as_str());
    let metrics = http_get(d.port, "/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_rollouts_total{env=\"prod\",result=\"failed\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_resumes_the_check_from_the_status_configmap() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _) = consumers(c, "rd-restart", &[WorkloadKind::Deployment]).await;
    // Paused: the trigger sets the new image but nothing rolls out until
    // the test resumes it, so the check is surely in progress meanwhile.
    c.admin_request(
        "PATCH",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/worker"),
        Some(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(c, dir.path(), &ns, "5m", "report");
    let new = c.registry().push_image(&repo, "prod").await.unwrap();
    let started = eventually(
        LONG,
        "a check in progress in the status ConfigMap",
        || async {
            let r = rollout_record(c, &ns).await;
            if r["state"] == "checking" && r["digest"] == new.as_str() {
                Ok(r)
            } else {
                Err(format!("{r:#}\n{}", tail(&d.logs())))
            }
        },
    )
    .await;
    d.signal("KILL");
    let _ = d.wait().await;

    let d = daemon(c, dir.path(), &ns, "5m", "report");
    eventually(LONG, "the check resumed", || async {
        if d.logs().contains("\"decision\":\"rollout check resumed\"") {
            Ok(())
        } else {
            Err(tail(&d.logs()))
        }
    })
    .await;
    c.admin_request(
        "PATCH",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/worker"),
        Some(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    let notes = notes(c, &ns, "RolloutSucceeded", &d).await;
    assert!(notes[0].contains(&new), "{notes:?}");
    let record = rollout_record(c, &ns).await;
    assert_eq!(record["state"], "succeeded", "{record:#}");
    assert_eq!(
        record["startedAt"], started["startedAt"],
        "the resumed check counts from the first start"
    );
    let log = d.logs();
    assert_eq!(
        log.matches("\"decision\":\"rollout check started\"")
            .count(),
        1,
        "started once, by the first daemon"
    );
    assert_eq!(
        log.matches("\"decision\":\"rollout check resumed\"")
            .count(),
        1
    );
    assert_eq!(notes.len(), 1, "one verdict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_back_needs_the_pin_back_component_and_says_so() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, first) = consumers(c, "rd-forbid", &[WorkloadKind::Deployment]).await;
    // The daemon's Roles exactly as src/rbac.rs lists them, without pin-back.
    grant(
        c,
        &ns,
        "daemon-ns",
        DAEMON_API_CALLS,
        Scope::DaemonNamespace,
    )
    .await;
    grant(c, &ns, "managed", DAEMON_API_CALLS, Scope::ManagedNamespace).await;
    let token = c.service_account_token(&ns, "daemon").await.expect("token");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    c.write_kubeconfig(&token, &kubeconfig).unwrap();
    let d = daemon_as(&kubeconfig, dir.path(), &ns, "1m", "pinBack");
    let bad = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&bad, Failure::CrashLoop);

    let failed = notes(c, &ns, "RolloutFailed", &d).await;
    assert!(
        failed[0].contains(&format!("may not patch imagestreams in namespace {ns}"))
            && failed[0].contains("manifests/components/pin-back")
            && failed[0].contains("CrashLoopBackOff"),
        "{failed:?}"
    );
    assert!(events(c, &ns, "PinnedBack").await.is_empty());
    assert!(
        !spec_tag(c, &ns).await["from"]["name"]
            .as_str()
            .unwrap()
            .contains("@sha256:"),
        "not pinned"
    );

    // With the component's rules the next failed rollout is pinned back.
    grant(
        c,
        &ns,
        "pin-back",
        PIN_BACK_API_CALLS,
        Scope::ManagedNamespace,
    )
    .await;
    // The image API server caches authorization answers for a while: wait
    // until a no-op patch as the daemon passes there.
    eventually(LONG, "the image API to allow the pin-back Role", || async {
        match c
            .shim_request(
                Some(&token),
                "PATCH",
                &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/worker"),
                Some("application/merge-patch+json"),
                Some(json!({})),
            )
            .await
        {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{:?}", other.map(|(status, _)| status))),
        }
    })
    .await;
    let worse = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&worse, Failure::CrashLoop);
    let pinned = notes(c, &ns, "PinnedBack", &d).await;
    assert!(pinned[0].contains(&worse), "{pinned:?}");
    // Back to the image before the last import: the first bad one stays
    // the previous image; what is pinned is what the tag had before.
    let spec = spec_tag(c, &ns).await;
    assert!(
        spec["from"]["name"].as_str().unwrap().ends_with(&bad),
        "{spec:#} (first image {first})"
    );
}

/// The next 03:00 UTC after now: a daily window start far from the real clock.
fn next_three_am() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let today = now.date_naive().and_hms_opt(3, 0, 0).unwrap().and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_summary_lists_a_tag_rolled_back_in_the_window() {
    init_logs();
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, first) = consumers(c, "rd-window", &[WorkloadKind::Deployment]).await;
    // Pushed before the window opens: the window imports it.
    let bad = c.registry().push_image(&repo, "prod").await.unwrap();
    c.mark_image_bad(&bad, Failure::CrashLoop);
    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 30s\n    pollInterval: 1s\n    verify: {{timeout: 20s}}\n    onFailedRollout: pinBack\n"
        ),
    );
    let spec = import_scheduler::daemon::ConfigSource::File(cfg);
    let daemon = start_daemon(
        c,
        DaemonSpec::new(&ns, spec).with_clock_at(start, Duration::from_secs(3)),
    );
    let summary = eventually(LONG, "a WindowSummary Event", || async {
        events(c, &ns, "WindowSummary")
            .await
            .first()
            .map(|e| e["note"].as_str().unwrap_or_default().to_owned())
            .ok_or_else(|| "none yet".to_owned())
    })
    .await;
    let short = |d: &str| d.trim_start_matches("sha256:")[..12].to_owned();
    assert!(
        summary.starts_with("environment prod window ")
            && summary.contains(&format!(
                "worker: rolled back from {} to {}",
                short(&bad),
                short(&first)
            )),
        "{summary}"
    );
    assert_eq!(events(c, &ns, "WindowSummary").await.len(), 1);
    let event = &events(c, &ns, "WindowSummary").await[0];
    assert_eq!(event["regarding"]["kind"], "ConfigMap", "{event:#}");
    assert_eq!(event["regarding"]["name"], "image-import-scheduler-status");
    daemon.stop().await;
}
