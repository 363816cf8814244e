//! The daemon against the test cluster (real kube-apiserver,
//! openshift-apiserver and openshift-controller-manager, real registry): immediate and windowed modes, the push hook, retries,
//! missed windows, resume after restart, leader election, configuration hot
//! reload, graceful shutdown, the hook under a flood of guesses and readiness
//! while the API server is unreachable.
//!
//! Windows are made to open a few seconds after a test starts by running the
//! daemon on a clock shifted to just before a real window start.

mod support;

use std::time::Duration;

use chrono::{Timelike, Utc};
use import_scheduler::daemon::ConfigSource;
use support::*;
use test_cluster::{FaultKind, FaultRule, TestCluster};

const SEC: Duration = Duration::from_secs(1);

/// The next 03:00 UTC after now: a daily window start far from the real clock.
fn next_three_am() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(3, 0, 0).unwrap().and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

fn windowed_config(ns: &str, window: &str, extra: &str) -> String {
    format!(
        "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: {window}\n    pollInterval: 1s\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_push_is_imported_within_one_poll_interval() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(
        cluster,
        "stg-poll",
        "stg",
        &["packit-service", "packit-worker"],
    )
    .await;
    let (before, _) = newest(cluster, &ns, "packit-worker", "stg").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n"));
    let daemon = start_daemon(cluster, DaemonSpec::new(&ns, ConfigSource::File(cfg)));

    let pushed = cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "stg")
        .await
        .unwrap();
    assert_ne!(before.as_deref(), Some(pushed.as_str()));
    eventually(15 * SEC, "the push to be imported", || async {
        match newest(cluster, &ns, "packit-worker", "stg").await {
            (Some(d), 2) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The other stream's source did not move: its history is untouched.
    assert_eq!(newest(cluster, &ns, "packit-service", "stg").await.1, 1);

    // The Event and the counter follow the import's answer, which the
    // stream's history can show first.
    eventually(
        15 * SEC,
        "an ImportSucceeded Event on the stream",
        || async {
            let found = events(cluster, &ns, "ImportSucceeded").await;
            if found
                .iter()
                .any(|e| e["regarding"]["name"] == "packit-worker")
            {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_imports_total{env=\"stg\",result=\"updated\"} 1"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_hook_imports_without_waiting_for_the_poll() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "stg-hook", "stg", &["packit-worker"]).await;
    let dir = tempfile::tempdir().unwrap();
    // A poll interval far longer than the test: only the hook can import.
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1h\n"));
    let mut spec = DaemonSpec::new(&ns, ConfigSource::File(cfg));
    spec.hook_secret = Some("s3cret".into());
    let daemon = start_daemon(cluster, spec);
    eventually(20 * SEC, "the daemon to be ready", || async {
        match tokio::time::timeout(SEC, http_request(daemon.port, "GET", "/readyz", &[], "")).await
        {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Let the first poll (at start) pass before the push.
    tokio::time::sleep(2 * SEC).await;

    let repo = format!("{ns}/packit-worker");
    let pushed = cluster.registry().push_image(&repo, "stg").await.unwrap();
    let body = serde_json::json!({
        "repository": repo,
        "docker_url": format!("{}/{repo}", cluster.registry().host()),
        "updated_tags": ["stg"],
    })
    .to_string();
    let (code, _) = http_request(
        daemon.port,
        "POST",
        "/hooks/import",
        &[("Authorization", "Bearer wrong")],
        &body,
    )
    .await;
    assert_eq!(code, 401, "a wrong secret is refused");
    let (code, text) = http_request(
        daemon.port,
        "POST",
        "/hooks/import",
        &[
            ("Authorization", "Bearer s3cret"),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await;
    assert_eq!(code, 202, "{text}");
    eventually(10 * SEC, "the hook to import the push", || async {
        match newest(cluster, &ns, "packit-worker", "stg").await {
            (Some(d), 2) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_imports_only_inside_the_window() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "prod-window", "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();

    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "8s", ""));
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, 5 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    // Before the window: the push waits.
    import_scheduler::clock::sleep_until(
        clock.as_ref(),
        start - chrono::Duration::milliseconds(700),
    )
    .await;
    assert_eq!(
        newest(cluster, &ns, "packit-worker", "prod").await.1,
        1,
        "nothing is imported before the window opens"
    );

    // Inside: imported.
    eventually(8 * SEC, "the import inside the window", || async {
        match newest(cluster, &ns, "packit-worker", "prod").await {
            (Some(d), 2) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        clock.now() < start + chrono::Duration::seconds(8),
        "imported while the window was open"
    );

    // After the window: a new push waits for the next window.
    import_scheduler::clock::sleep_until(clock.as_ref(), start + chrono::Duration::seconds(8))
        .await;
    let later = cluster.registry().push_image(&repo, "prod").await.unwrap();
    import_scheduler::clock::sleep_until(clock.as_ref(), start + chrono::Duration::seconds(12))
        .await;
    let (digest, len) = newest(cluster, &ns, "packit-worker", "prod").await;
    assert_eq!(
        (digest.as_deref(), len),
        (Some(pushed.as_str()), 2),
        "no import after the window closed (pushed {later})"
    );

    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_window_open{env=\"prod\"} 0"),
        "{metrics}"
    );
    let next_start = (start + chrono::Duration::days(1)).timestamp();
    assert!(
        metrics.contains(&format!("image_import_scheduler_window_next_start_timestamp_seconds{{env=\"prod\"}} {next_start}.0")),
        "next window start is tomorrow's 03:00: {metrics}"
    );
    assert!(
        events(cluster, &ns, "WindowMissed").await.is_empty(),
        "every tag was imported: no missed window"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_inside_the_window_are_retried_until_success() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "prod-retry", "prod", &["packit-worker"]).await;
    let pushed = cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "prod")
        .await
        .unwrap();
    // More failures than one call's own retries absorb.
    let fault = cluster.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/imagestreamimports"),
            FaultKind::Status {
                code: 500,
                retry_after_secs: None,
            },
        )
        .method("POST")
        .times(6),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "2m", ""));
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(next_three_am(), SEC);
    let daemon = start_daemon(cluster, spec);

    eventually(45 * SEC, "the import to succeed after retries", || async {
        match newest(cluster, &ns, "packit-worker", "prod").await {
            (Some(d), 2) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        cluster.faults().hits(fault),
        6,
        "every injected failure was hit"
    );
    let failed = events(cluster, &ns, "ImportFailed").await;
    assert!(
        !failed.is_empty(),
        "the failure was reported as a Warning Event"
    );
    assert_eq!(failed[0]["type"], "Warning");
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_imports_total{env=\"prod\",result=\"failed\"}"),
        "{metrics}"
    );
    daemon.stop().await;
    cluster.faults().remove(fault);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_without_a_successful_import_is_reported_missed() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(
        cluster,
        "prod-missed",
        "prod",
        &["packit-worker", "packit-service"],
    )
    .await;
    cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "prod")
        .await
        .unwrap();
    // The registry loses the worker's tag: every import of it fails inside the window.
    cluster
        .registry()
        .delete_tag(&format!("{ns}/packit-worker"), "prod")
        .await
        .unwrap();
    let service = cluster
        .registry()
        .push_image(&format!("{ns}/packit-service"), "prod")
        .await
        .unwrap();

    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "5s", ""));
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, SEC);
    let daemon = start_daemon(cluster, spec);

    let missed = eventually(20 * SEC, "a WindowMissed Event", || async {
        let e = events(cluster, &ns, "WindowMissed").await;
        if e.is_empty() {
            Err("none yet".into())
        } else {
            Ok(e)
        }
    })
    .await;
    assert_eq!(
        missed.len(),
        1,
        "only the failing stream missed the window: {missed:?}"
    );
    assert_eq!(missed[0]["regarding"]["name"], "packit-worker");
    assert_eq!(missed[0]["type"], "Warning");
    let note = missed[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("NotFound") || note.contains("not found"),
        "the registry's reason is in the note: {note}"
    );
    // The other stream was unaffected.
    assert_eq!(
        newest(cluster, &ns, "packit-service", "prod")
            .await
            .0
            .as_deref(),
        Some(service.as_str())
    );
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_missed_windows_total{env=\"prod\"} 1"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_inside_the_window_resumes_it() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "prod-resume", "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let first = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "2m", ""));

    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg.clone())).with_clock_at(start, SEC);
    let offset_clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);
    eventually(15 * SEC, "the first import", || async {
        match newest(cluster, &ns, "packit-worker", "prod").await {
            (Some(d), 2) if d == first => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    daemon.stop().await;

    let status = cluster
        .admin_request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
            None,
        )
        .await
        .expect("the status ConfigMap exists");
    let state: serde_json::Value =
        serde_json::from_str(status["data"]["prod"].as_str().unwrap()).unwrap();
    assert_eq!(
        state["windowId"],
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(
        state["tags"]["packit-worker:prod"]["importedInWindow"],
        true
    );

    // Pushed while no daemon runs; the restarted daemon is still inside the window.
    let second = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let mut spec = DaemonSpec::new(&ns, ConfigSource::File(cfg));
    spec.clock = offset_clock.clone();
    spec.pod_name = "daemon-b".into();
    let daemon = start_daemon(cluster, spec);
    eventually(
        30 * SEC,
        "the restarted daemon to import inside the same window",
        || async {
            match newest(cluster, &ns, "packit-worker", "prod").await {
                (Some(d), 3) if d == second => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(offset_clock.now() < start + chrono::Duration::minutes(2));
    assert!(
        events(cluster, &ns, "WindowMissed").await.is_empty(),
        "a resumed window is not missed"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_only_the_leader_imports_and_the_other_takes_over() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "stg-leader", "stg", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n"));
    let mut a = DaemonSpec::new(&ns, ConfigSource::File(cfg.clone()));
    a.pod_name = "replica-a".into();
    let mut b = DaemonSpec::new(&ns, ConfigSource::File(cfg));
    b.pod_name = "replica-b".into();
    let da = start_daemon(cluster, a);
    let db = start_daemon(cluster, b);

    let holder =
        |lease: serde_json::Value| lease["spec"]["holderIdentity"].as_str().map(str::to_string);
    let leader = eventually(20 * SEC, "a leader", || async {
        let lease = cluster
            .admin_request(
                "GET",
                &format!(
                    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/image-import-scheduler"
                ),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        holder(lease)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "no holder".to_string())
    })
    .await;

    let pushed = cluster.registry().push_image(&repo, "stg").await.unwrap();
    eventually(15 * SEC, "the import", || async {
        match newest(cluster, &ns, "packit-worker", "stg").await {
            (Some(d), 2) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The Event follows the import (it is sent from its own future).
    let by: Vec<String> = eventually(10 * SEC, "the ImportSucceeded Event", || async {
        let by: Vec<String> = events(cluster, &ns, "ImportSucceeded")
            .await
            .iter()
            .map(|e| {
                e["reportingInstance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if by.is_empty() {
            Err("no Event yet".to_string())
        } else {
            Ok(by)
        }
    })
    .await;
    assert_eq!(
        by,
        vec![leader.clone()],
        "exactly one import, by the leader"
    );
    let (leading, standing) = if leader == "replica-a" {
        (da, db)
    } else {
        (db, da)
    };
    assert!(leading
        .metrics()
        .await
        .contains("image_import_scheduler_leader 1"));
    assert!(standing
        .metrics()
        .await
        .contains("image_import_scheduler_leader 0"));

    // The leader stops (and releases the lease): the other one takes over.
    leading.stop().await;
    let pushed = cluster.registry().push_image(&repo, "stg").await.unwrap();
    eventually(30 * SEC, "the other replica to import", || async {
        match newest(cluster, &ns, "packit-worker", "stg").await {
            (Some(d), 3) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(standing
        .metrics()
        .await
        .contains("image_import_scheduler_leader 1"));
    standing.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configmap_edit_keeps_the_previous_configuration() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "cfg-reload", "stg", &["packit-worker"]).await;
    let good = format!(
        "environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n"
    );
    let cm = |text: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "image-import-scheduler", "namespace": ns},
            "data": {"config.yaml": text},
        })
    };
    cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(cm(&good)),
        )
        .await
        .unwrap();
    let source = ConfigSource::ConfigMap {
        namespace: ns.clone(),
        name: "image-import-scheduler".into(),
        key: "config.yaml".into(),
    };
    let daemon = start_daemon(cluster, DaemonSpec::new(&ns, source));
    eventually(20 * SEC, "the daemon to be ready", || async {
        match tokio::time::timeout(SEC, http_request(daemon.port, "GET", "/readyz", &[], "")).await
        {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let bad = format!("environments:\n  stg:\n    namespace: {ns}\n    mode: sometimes\n");
    cluster
        .admin_request(
            "PUT",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler"),
            Some(cm(&bad)),
        )
        .await
        .unwrap();
    let invalid = eventually(15 * SEC, "a ConfigInvalid Event", || async {
        let e = events(cluster, &ns, "ConfigInvalid").await;
        e.into_iter().next().ok_or_else(|| "none yet".to_string())
    })
    .await;
    assert_eq!(invalid["type"], "Warning");
    assert_eq!(invalid["regarding"]["kind"], "ConfigMap");
    let note = invalid["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("environments.stg.mode"),
        "the Event names the field: {note}"
    );

    // The previous configuration (immediate, 1s) is still in force.
    let pushed = cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "stg")
        .await
        .unwrap();
    eventually(
        15 * SEC,
        "the import under the previous configuration",
        || async {
            match newest(cluster, &ns, "packit-worker", "stg").await {
                (Some(d), 2) if d == pushed => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_config_valid 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("image_import_scheduler_config_reloads_total{result=\"invalid\"} 1"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_import_lets_the_import_finish_and_exits_0() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "stg-sigterm", "stg", &["packit-worker"]).await;
    let pushed = cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "stg")
        .await
        .unwrap();
    // Every image API call of this namespace takes 3 s: the import is in flight long enough.
    let slow = cluster.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/imagestreamimports"),
            FaultKind::Latency(3 * SEC),
        )
        .method("POST"),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1h\n"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .env("IMPORT_SCHEDULER_NAMESPACE", &ns)
        .env(
            "IMPORT_SCHEDULER_LISTEN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("IMPORT_SCHEDULER_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Preview done, import request started.
    eventually(30 * SEC, "the import request to start", || async {
        match cluster.faults().hits(slow) {
            n if n >= 2 => Ok(()),
            n => Err(format!("{n} requests")),
        }
    })
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit 0 after SIGTERM; logs:\n{logs}"
    );
    assert_eq!(
        newest(cluster, &ns, "packit-worker", "stg").await,
        (Some(pushed), 2),
        "the import in flight completed; logs:\n{logs}"
    );
    assert!(logs.contains("SIGTERM"), "the signal is logged:\n{logs}");
    assert!(
        logs.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('{')),
        "JSON log lines only:\n{logs}"
    );
    cluster.faults().remove(slow);
}

/// An operator pins the tag while the daemon's check of it is in flight (its
/// preview takes 3 s). The daemon's import was decided on the stream as it
/// was before the pin; it must not undo the pin. OpenShift rewrites the spec
/// tag's `from` from every successful import, so an import of the moving tag
/// would silently point the tag back at it and import the new image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_made_while_the_daemon_checks_the_tag_stands() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "prod-pin-race", "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let (first, _) = newest(cluster, &ns, "packit-worker", "prod").await;
    let first = first.expect("the seeded image");
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();
    assert_ne!(first, pushed);
    // Only the first request of this namespace, the daemon's preview, is slow.
    let slow = cluster.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/imagestreamimports"),
            FaultKind::Latency(3 * SEC),
        )
        .method("POST")
        .times(1),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &format!("environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: immediate\n    pollInterval: 1h\n"));
    let daemon = start_daemon(cluster, DaemonSpec::new(&ns, ConfigSource::File(cfg)));
    eventually(30 * SEC, "the daemon's preview to start", || async {
        match cluster.faults().hits(slow) {
            0 => Err("no preview yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;

    // The preview is in flight: the daemon read the stream before the pin.
    let pinned = format!("{}/{repo}@{first}", cluster.registry().host());
    let importer =
        import_scheduler::importer::Importer::new(admin_client(cluster).await, Default::default());
    importer
        .pin(&ns, "packit-worker", "prod", &pinned)
        .await
        .expect("pin");

    // The daemon finishes its check of the tag, whatever the outcome.
    let metrics = eventually(20 * SEC, "the daemon's outcome for the tag", || async {
        let m = daemon.metrics().await;
        if m.contains("image_import_scheduler_imports_total{env=\"prod\"") {
            Ok(m)
        } else {
            Err("no outcome yet".to_string())
        }
    })
    .await;
    let is = cluster.stream(&ns, "packit-worker").await.unwrap();
    let from = is["spec"]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["name"] == "prod"))
        .map(|t| t["from"]["name"].clone());
    assert_eq!(
        from.and_then(|f| f.as_str().map(str::to_string)).as_deref(),
        Some(pinned.as_str()),
        "the pin stands: {is}"
    );
    assert_eq!(
        history_of(&is, "prod").0.as_deref(),
        Some(first.as_str()),
        "the newest image is the pinned one, not the push {pushed}: {is}"
    );
    assert!(
        metrics.contains("image_import_scheduler_imports_total{env=\"prod\",result=\"held\"} 1"),
        "the daemon saw the pin and held the tag: {metrics}"
    );
    eventually(20 * SEC, "the held tag in the held_tags gauge", || async {
        let m = daemon.metrics().await;
        if m.contains("image_import_scheduler_held_tags{env=\"prod\"} 1") {
            Ok(())
        } else {
            Err(m)
        }
    })
    .await;
    daemon.stop().await;
    cluster.faults().remove(slow);
}

/// Outside its window, a windowed environment's tag gets a new image that the
/// daemon did not import (here an `ImageStreamImport` posted by the admin,
/// as `oc import-image` does): reported as a Warning Event on the stream, in
/// the metrics and the log, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_by_someone_else_outside_the_window_is_reported() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(
        cluster,
        "prod-foreign",
        "prod",
        &["packit-worker", "packit-service"],
    )
    .await;
    let repo = format!("{ns}/packit-worker");
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "5m", ""));
    // An hour before the window: nothing is imported by the daemon.
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg))
        .with_clock_at(next_three_am(), Duration::from_secs(3600));
    let daemon = start_daemon(cluster, spec);
    // The first pass of the loop lists the streams, then publishes the next window.
    eventually(
        30 * SEC,
        "the daemon's first look at the streams",
        || async {
            let m = daemon.metrics().await;
            match metric_value(
                &m,
                "image_import_scheduler_window_next_start_timestamp_seconds{env=\"prod\"}",
            ) {
                Some(_) => Ok(()),
                None => Err(m),
            }
        },
    )
    .await;

    // An operator's manual import with the real client.
    let out = std::process::Command::new(cluster.oc_path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["import-image", "packit-worker:prod", "-n", &ns])
        .env("HOME", dir.path())
        .output()
        .expect("run oc");
    assert!(
        out.status.success(),
        "oc import-image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        newest(cluster, &ns, "packit-worker", "prod").await,
        (Some(pushed.clone()), 2)
    );

    let reported = eventually(30 * SEC, "an ImportedOutsideWindow Event", || async {
        let e = events(cluster, &ns, "ImportedOutsideWindow").await;
        if e.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(e)
        }
    })
    .await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0]["type"], "Warning");
    assert_eq!(reported[0]["regarding"]["name"], "packit-worker");
    assert!(
        reported[0]["regarding"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "kubectl describe finds it by uid: {reported:?}"
    );
    let note = reported[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains(&pushed), "{note}");
    let metrics = daemon.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_foreign_imports_total{env=\"prod\",stream=\"packit-worker\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_foreign_imports_total{env=\"prod\",stream=\"packit-service\"}"
        ),
        None,
        "the other stream did not change: {metrics}"
    );

    // A GitOps edit of the other stream's `from`: openshift-controller-manager
    // imports it at once, outside the window.
    let other = format!("{ns}/packit-service-next");
    let moved = cluster.registry().push_image(&other, "prod").await.unwrap();
    let is = cluster.stream(&ns, "packit-service").await.unwrap();
    let mut tags = is["spec"]["tags"].clone();
    tags[0]["from"]["name"] = serde_json::json!(cluster.registry().image_ref(&other, "prod"));
    cluster
        .admin_request(
            "PATCH",
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/packit-service"),
            Some(serde_json::json!({"spec": {"tags": tags}})),
        )
        .await
        .unwrap();
    let reported = eventually(
        30 * SEC,
        "an ImportedOutsideWindow Event for the controller's import",
        || async {
            let e: Vec<_> = events(cluster, &ns, "ImportedOutsideWindow")
                .await
                .into_iter()
                .filter(|e| e["regarding"]["name"] == "packit-service")
                .collect();
            if e.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(e)
            }
        },
    )
    .await;
    let note = reported[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains(&moved), "{note}");
    daemon.stop().await;
}

#[test]
fn an_invalid_configuration_at_start_exits_2_with_checks_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 2 * * 8\"\n").unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("IMPORT_SCHEDULER_LOG_FORMAT", "text")
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(check.status.code(), Some(2));
    let run_err = String::from_utf8_lossy(&run.stderr);
    let check_err = String::from_utf8_lossy(&check.stderr);
    let line = "environments.prod.schedule: day-of-week field: 8 is out of range";
    assert!(check_err.contains(line), "{check_err}");
    assert!(run_err.contains(line), "{run_err}");
}

/// The clock used above really puts 03:00 at the window start.
#[test]
fn next_three_am_is_a_window_start() {
    let t = next_three_am();
    assert_eq!((t.hour(), t.minute(), t.second()), (3, 0, 0));
}

/// Issue 15: guesses flooding the public hook from one address must not
/// keep a real push out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_does_not_block_a_real_push() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "stg-flood", "stg", &["packit-worker"]).await;
    let dir = tempfile::tempdir().unwrap();
    // Only the hook can import within the test.
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1h\n"));
    let mut spec = DaemonSpec::new(&ns, ConfigSource::File(cfg));
    spec.hook_secret = Some("s3cret".into());
    let daemon = start_daemon(cluster, spec);
    daemon.ready().await;
    // Let the first poll (at start) pass before the push.
    tokio::time::sleep(2 * SEC).await;

    let repo = format!("{ns}/packit-worker");
    let body = serde_json::json!({
        "repository": repo,
        "docker_url": format!("{}/{repo}", cluster.registry().host()),
        "updated_tags": ["stg"],
    })
    .to_string();
    let mut refused = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..300 {
        let (code, _) = http_request(
            daemon.port,
            "POST",
            "/hooks/import?secret=wrong",
            &[],
            &body,
        )
        .await;
        *refused.entry(code).or_default() += 1;
    }
    assert!(
        refused.keys().all(|code| [401, 429].contains(code)),
        "guesses are refused: {refused:?}"
    );
    assert!(
        refused.contains_key(&429),
        "guesses are throttled: {refused:?}"
    );

    // Real pushes from the same address keep being served.
    let mut pushed = String::new();
    for _ in 0..3 {
        pushed = cluster.registry().push_image(&repo, "stg").await.unwrap();
        let (code, text) = http_request(
            daemon.port,
            "POST",
            "/hooks/import",
            &[
                ("Authorization", "Bearer s3cret"),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .await;
        assert_eq!(
            code, 202,
            "a push with the right secret after the flood: {text}"
        );
    }
    eventually(15 * SEC, "the hook to import the push", || async {
        match newest(cluster, &ns, "packit-worker", "stg").await {
            (Some(d), _) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let metrics = daemon.metrics().await;
    for result in ["unauthorized", "unauthorized_rate_limited", "accepted"] {
        assert!(
            metrics.contains(&format!(
                "image_import_scheduler_webhook_requests_total{{result=\"{result}\"}}"
            )),
            "{result}: {metrics}"
        );
    }
    daemon.stop().await;
}

/// Issue 15: a push outside prod's window is accepted, and the answer says
/// it waits for the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_outside_the_window_says_when_it_is_imported() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "prod-hook", "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &windowed_config(&ns, "10m", ""));
    let mut spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, 3600 * SEC);
    spec.hook_secret = Some("s3cret".into());
    let daemon = start_daemon(cluster, spec);
    daemon.ready().await;

    cluster.registry().push_image(&repo, "prod").await.unwrap();
    let body = serde_json::json!({
        "docker_url": format!("{}/{repo}", cluster.registry().host()),
        "updated_tags": ["prod"],
    })
    .to_string();
    let (code, text) = http_request(
        daemon.port,
        "POST",
        "/hooks/import",
        &[("Authorization", "Bearer s3cret")],
        &body,
    )
    .await;
    assert_eq!(code, 202, "{text}");
    let opens = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        text.contains(&format!(
            "prod is windowed: imported when its next window opens at {opens}"
        )),
        "{text}"
    );
    assert_eq!(
        newest(cluster, &ns, "packit-worker", "prod").await.1,
        1,
        "nothing is imported before the window"
    );
    daemon.stop().await;
}

/// Issue 15: `/readyz` follows the API server: unready (saying why) while
/// every call of the daemon fails, ready again once they succeed; `/healthz`
/// stays ok, since a restart would not bring the API server back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_api_server() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "ready", "stg", &["packit-worker"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n"));
    let spec =
        DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_var("API_UNREACHABLE_AFTER", "3s");
    let daemon = start_daemon(cluster, spec);
    daemon.ready().await;

    // Every request of the daemon (Lease, streams, Events, state) is in its
    // namespace: dropping them is an unreachable API server for it.
    let outage = cluster.faults().add(FaultRule::new(
        format!("/namespaces/{ns}/"),
        FaultKind::Drop,
    ));
    let why = eventually(40 * SEC, "/readyz to report the outage", || async {
        match http_request(daemon.port, "GET", "/readyz", &[], "").await {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        why.contains("Kubernetes API unreachable"),
        "the body says why: {why}"
    );
    let (code, body) = http_request(daemon.port, "GET", "/healthz", &[], "").await;
    assert_eq!(
        (code, body.as_str()),
        (200, "ok\n"),
        "liveness is unaffected"
    );

    cluster.faults().remove(outage);
    eventually(40 * SEC, "/readyz to recover", || async {
        match http_request(daemon.port, "GET", "/readyz", &[], "").await {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    daemon.stop().await;
}
