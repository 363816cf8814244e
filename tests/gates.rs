//! The gates against the test cluster: the daemon (in this process, on a
//! clock shifted to just before a real window start) checks them before
//! each import in the window, and the `approve` command records approvals
//! as the Kubernetes identity it runs as, refused by the real authorizer to
//! an account without the approver Role.
//!
//! The alerts gate's client is tested against a local HTTP server in
//! `tests/gates_alerts_client.rs`.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use import_scheduler::daemon::ConfigSource;
use serde_json::{json, Value};
use support::*;
use test_cluster::{TagSeed, TestCluster};

const SEC: Duration = Duration::from_secs(1);

/// The next 03:00 UTC after now: a daily window start far from the real clock.
fn next_three_am() -> DateTime<Utc> {
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(3, 0, 0).unwrap().and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Runs the command line as the account of `kubeconfig`, with the daemon's
/// namespace `ns`.
async fn cli(kubeconfig: &Path, ns: &str, args: &[&str]) -> CliRun {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--kubeconfig"), kubeconfig.as_os_str()]);
    run_cli(&all, &[("IMPORT_SCHEDULER_NAMESPACE", ns)]).await
}

/// Creates the Role of `manifests/components/<component>/role.yaml` in `ns`.
async fn create_role(cluster: &TestCluster, ns: &str, component: &str) {
    let path = format!(
        "{}/manifests/components/{component}/role.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let role: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            Some(role),
        )
        .await
        .expect("create Role");
}

/// A kubeconfig for ServiceAccount `name` in `ns`, bound to `roles`.
async fn account(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
    roles: &[&str],
    dir: &Path,
) -> std::path::PathBuf {
    let token = cluster
        .service_account_token(ns, name)
        .await
        .expect("token");
    for role in roles {
        bind_role(cluster, ns, &format!("{name}-{role}"), role, name).await;
    }
    let path = dir.join(format!("{name}.kubeconfig"));
    cluster.write_kubeconfig(&token, &path).expect("kubeconfig");
    path
}

/// Events in `ns` with `reason` about stream `stream`: (note, count).
async fn notes(cluster: &TestCluster, ns: &str, reason: &str, stream: &str) -> Vec<(String, u64)> {
    events(cluster, ns, reason)
        .await
        .iter()
        .filter(|e| e["regarding"]["name"] == stream)
        .map(|e| {
            (
                e["note"].as_str().unwrap_or_default().to_owned(),
                event_count(e),
            )
        })
        .collect()
}

/// Waits for the first Events in `ns` with `reason` about `stream`.
async fn first_notes(
    cluster: &TestCluster,
    ns: &str,
    reason: &str,
    stream: &str,
) -> Vec<(String, u64)> {
    eventually(
        Duration::from_secs(40),
        &format!("a {reason} Event about {stream}"),
        || async {
            let found = notes(cluster, ns, reason, stream).await;
            if found.is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(found)
            }
        },
    )
    .await
}

/// Waits until `ns/stream:prod`'s newest image is `digest`.
async fn imported(cluster: &TestCluster, ns: &str, stream: &str, digest: &str) {
    eventually(
        Duration::from_secs(40),
        &format!("{stream}:prod imports {digest}"),
        || async {
            match newest(cluster, ns, stream, "prod").await {
                (Some(d), _) if d == digest => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_is_refused_without_the_role_holds_a_moved_source_and_releases() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "gates-approve", "prod", &["worker"]).await;
    let repo = format!("{ns}/worker");
    let start = next_three_am();
    let id = rfc3339(start);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 40s\n    pollInterval: 1s\n    gates:\n      approval: {{required: true}}\n"
        ),
    );
    let cfg = cfg.to_str().unwrap().to_owned();
    // The daemon's status ConfigMap, where approvals are kept.
    cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(json!({"metadata": {"name": "image-import-scheduler-status"}, "data": {}})),
        )
        .await
        .expect("status ConfigMap");
    create_role(cluster, &ns, "operator-role").await;
    create_role(cluster, &ns, "approver-role").await;
    let reader = account(
        cluster,
        &ns,
        "reader",
        &["image-import-scheduler-operator"],
        dir.path(),
    )
    .await;
    let approver = account(
        cluster,
        &ns,
        "approver",
        &[
            "image-import-scheduler-operator",
            "image-import-scheduler-approver",
        ],
        dir.path(),
    )
    .await;

    let first = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let approve = [
        "approve", "--env", "prod", "--window", &id, "--config", &cfg, "--output", "json",
    ];

    // `next` tells that the next window would be held now, and why.
    let next = [
        "next", "--config", &cfg, "--env", "prod", "--gates", "--count", "1",
    ];
    let told = cli(&reader, &ns, &[&next[..], &["--output", "json"]].concat()).await;
    assert_eq!(told.code, 0, "{}\n{}", told.stdout, told.stderr);
    let windows: Value = serde_json::from_str(&told.stdout).unwrap();
    assert_eq!(windows[0]["gated"][0]["stream"], "worker", "{windows:#}");
    assert_eq!(windows[0]["gated"][0]["digest"], first.as_str());
    assert_eq!(windows[0]["gated"][0]["holds"][0]["gate"], "approval");
    assert!(
        windows[0]["gated"][0]["holds"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("is not approved for window {id}")),
        "{windows:#}"
    );

    // Reading is not approving: the real authorizer refuses the write.
    let refused = cli(&reader, &ns, &approve).await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("your account may not approve imports of prod: it cannot patch configmap image-import-scheduler-status"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("image-import-scheduler-approver"),
        "{}",
        refused.stderr
    );

    let given = cli(&approver, &ns, &approve).await;
    assert_eq!(given.code, 0, "{}\n{}", given.stdout, given.stderr);
    let doc: Value = serde_json::from_str(&given.stdout).unwrap();
    assert_eq!(doc["changed"][0]["digest"], first.as_str(), "{doc:#}");
    assert_eq!(doc["changed"][0]["window"], id.as_str());
    // The caller as the API server names it (SelfSubjectReview); this test
    // cluster's API server predates it, so the kubeconfig's user stands in,
    // as for `freeze`. Either way no name is typed on the command line.
    let by = doc["changed"][0]["by"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!by.is_empty(), "{doc:#}");
    let listed = cli(
        &reader,
        &ns,
        &[
            "approve", "--env", "prod", "--list", "--config", &cfg, "--output", "json",
        ],
    )
    .await;
    assert_eq!(
        listed.code, 0,
        "reading approvals needs no approver right: {}",
        listed.stderr
    );
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed["approvals"][0]["digest"], first.as_str());

    let told = cli(&reader, &ns, &next).await;
    assert!(
        told.stdout.contains("    gates: none would hold it now"),
        "{}\n{}",
        told.stdout,
        told.stderr
    );

    // The source moves after the approval: the window holds the new digest.
    let moved = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let spec =
        DaemonSpec::new(&ns, ConfigSource::File(cfg.clone().into())).with_clock_at(start, 3 * SEC);
    let daemon = start_daemon(cluster, spec);
    let held = first_notes(cluster, &ns, "Gated", "worker").await;
    assert!(
        held[0]
            .0
            .contains(&format!("approval: approved by {by} for "))
            && held[0].0.contains("but the source now resolves to"),
        "{held:?}"
    );
    let (newest_now, len) = newest(cluster, &ns, "worker", "prod").await;
    assert_eq!(
        len, 1,
        "nothing imported while held (newest {newest_now:?})"
    );
    let metrics = daemon.metrics().await;
    assert!(
        metric_value(&metrics, "image_import_scheduler_gate_verdicts_total{env=\"prod\",gate=\"approval\",result=\"hold\"}").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_gated_tags{env=\"prod\",gate=\"approval\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // Approving the digest it would import now releases it at the next poll.
    let again = cli(&approver, &ns, &approve).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let doc: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(doc["changed"][0]["digest"], moved.as_str());
    imported(cluster, &ns, "worker", &moved).await;
    let gated = notes(cluster, &ns, "Gated", "worker").await;
    assert_eq!(
        gated.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "one Gated Event for one change, not one per poll: {gated:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_holds_what_never_ran_or_ran_too_short_in_stg_and_passes_the_rest() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let reg = cluster.registry();
    let stg = cluster.create_namespace("gates-soak-stg").await.unwrap();
    let prod = cluster.create_namespace("gates-soak-prod").await.unwrap();
    let long = cluster.create_namespace("gates-soak-long").await.unwrap();
    let all = cluster.create_namespace("gates-all").await.unwrap();
    // Both environments follow `main`; `fresh` in stg follows another tag,
    // so what prod would import never ran there.
    let worker = format!("{prod}/worker");
    let fresh = format!("{prod}/fresh");
    reg.push_image(&worker, "main").await.unwrap();
    reg.push_image(&fresh, "main").await.unwrap();
    reg.push_image(&fresh, "old").await.unwrap();
    let seed = |ns: String, stream: &'static str, tag: &'static str, from: String| async move {
        cluster
            .seed_stream(&ns, stream, &[TagSeed::new(tag, from)])
            .await
            .expect("seed stream");
    };
    seed(stg.clone(), "worker", "stg", reg.image_ref(&worker, "main")).await;
    seed(stg.clone(), "fresh", "stg", reg.image_ref(&fresh, "old")).await;
    seed(
        prod.clone(),
        "worker",
        "prod",
        reg.image_ref(&worker, "main"),
    )
    .await;
    seed(prod.clone(), "fresh", "prod", reg.image_ref(&fresh, "main")).await;
    seed(
        long.clone(),
        "worker",
        "prod",
        reg.image_ref(&worker, "main"),
    )
    .await;
    seed(
        all.clone(),
        "worker",
        "prod",
        reg.image_ref(&worker, "main"),
    )
    .await;
    let pushed = reg.push_image(&worker, "main").await.unwrap();
    let pushed_fresh = reg.push_image(&fresh, "main").await.unwrap();

    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = next_three_am();
    let windowed = |ns: &str, soak_for: &str| {
        format!("    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 10s\n    pollInterval: 1s\n    gates:\n      soak: {{environment: stg, for: {soak_for}}}\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "environments:\n  stg:\n    namespace: {stg}\n    tag: stg\n    mode: immediate\n    pollInterval: 1s\n  prod:\n{}  prod-long:\n{}  prod-all:\n{}      alerts: {{prometheusUrl: 'http://127.0.0.1:{down}', match: 'namespace=\"{all}\"'}}\n      approval: {{required: true}}\n",
            windowed(&prod, "1s"),
            // Longer than the clock's shift: never enough in this test.
            windowed(&long, "2d"),
            // Every gate at once, with a Prometheus that is not there.
            windowed(&all, "2d"),
        ),
    );
    let spec = DaemonSpec::new(&prod, ConfigSource::File(cfg)).with_clock_at(start, 4 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    // stg imports at once; prod's window imports what soaked there.
    imported(cluster, &prod, "worker", &pushed).await;
    assert_eq!(
        newest(cluster, &stg, "worker", "stg").await.0,
        Some(pushed.clone())
    );

    import_scheduler::clock::sleep_until(clock.as_ref(), start + chrono::Duration::seconds(12))
        .await;
    let metrics = daemon.metrics().await;
    assert_eq!(
        newest(cluster, &prod, "fresh", "prod").await.1,
        1,
        "never ran in stg: not imported ({pushed_fresh})"
    );
    assert_eq!(
        newest(cluster, &long, "worker", "prod").await.1,
        1,
        "ran too short in stg"
    );
    for (name, value) in [
        ("image_import_scheduler_gate_verdicts_total{env=\"prod\",gate=\"soak\",result=\"pass\"}", 1.0),
        ("image_import_scheduler_gate_verdicts_total{env=\"prod\",gate=\"soak\",result=\"hold\"}", 1.0),
        ("image_import_scheduler_gate_verdicts_total{env=\"prod-long\",gate=\"soak\",result=\"hold\"}", 1.0),
    ] {
        assert!(metric_value(&metrics, name).unwrap_or(0.0) >= value, "{name}: {metrics}");
    }
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_gated_tags{env=\"prod-long\",gate=\"soak\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // Each window closed gated for what was held: missed, with the reason.
    let never = first_notes(cluster, &prod, "WindowMissed", "fresh").await;
    assert_eq!(never.len(), 1, "{never:?}");
    assert!(
        never[0]
            .0
            .contains("held by gates until the window closed: soak: ")
            && never[0].0.contains("never ran in stg (stg runs "),
        "{never:?}"
    );
    let short = first_notes(cluster, &long, "WindowMissed", "worker").await;
    assert_eq!(short.len(), 1, "{short:?}");
    assert!(
        short[0]
            .0
            .contains("held by gates until the window closed: soak: ")
            && short[0].0.contains("has run in stg for ")
            && short[0].0.contains("of the 2d required"),
        "{short:?}"
    );
    assert!(notes(cluster, &prod, "WindowMissed", "worker")
        .await
        .is_empty());
    // All three gates hold, each with its reason, in a fixed order; the
    // Prometheus that is not there holds too and is named.
    let every = first_notes(cluster, &all, "WindowMissed", "worker").await;
    let note = &every[0].0;
    let at = |needle: &str| {
        note.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {note}"))
    };
    assert!(
        at("soak: ") < at("; alerts: Prometheus cannot be asked for alerts (http://127.0.0.1:")
            && at("; alerts: ") < at("; approval: "),
        "{note}"
    );
    assert!(note.contains("is not approved for window"), "{note}");
    assert_eq!(newest(cluster, &all, "worker", "prod").await.1, 1);
    let gated = notes(cluster, &all, "Gated", "worker").await;
    assert_eq!(
        gated.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "one Gated Event while the same gates hold: {gated:?}"
    );
    assert_eq!(
        metric_value(
            &daemon.metrics().await,
            "image_import_scheduler_missed_windows_total{env=\"prod-long\"}"
        ),
        Some(1.0)
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_holds_an_image_whose_rollout_in_stg_fails() {
    init_logs();
    let cluster = TestCluster::shared_with_workloads().await;
    let reg = cluster.registry();
    let stg = cluster.create_namespace("gates-roll-stg").await.unwrap();
    let prod = cluster.create_namespace("gates-roll-prod").await.unwrap();
    let worker = format!("{prod}/worker");
    reg.push_image(&worker, "main").await.unwrap();
    for (ns, tag) in [(&stg, "stg"), (&prod, "prod")] {
        cluster
            .seed_stream(
                ns,
                "worker",
                &[TagSeed::new(tag, reg.image_ref(&worker, "main"))],
            )
            .await
            .expect("seed stream");
    }
    // stg's Deployment runs what its tag points at (OpenShift's trigger).
    let current = newest(cluster, &stg, "worker", "stg").await.0.unwrap();
    let trigger = json!([{
        "from": {"kind": "ImageStreamTag", "name": "worker:stg"},
        "fieldPath": "spec.template.spec.containers[?(@.name==\"worker\")].image",
    }])
    .to_string();
    cluster
        .admin_request(
            "POST",
            &format!("/apis/apps/v1/namespaces/{stg}/deployments"),
            Some(json!({
                "metadata": {"name": "worker", "annotations": {"image.openshift.io/triggers": trigger}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "worker"}},
                    "template": {
                        "metadata": {"labels": {"app": "worker"}},
                        "spec": {"containers": [{"name": "worker", "image": format!("{}/{worker}@{current}", reg.host())}]},
                    },
                },
            })),
        )
        .await
        .expect("Deployment");
    let bad = reg.push_image(&worker, "main").await.unwrap();
    cluster.mark_image_bad(&bad, test_cluster::Failure::CrashLoop);

    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "environments:\n  stg:\n    namespace: {stg}\n    tag: stg\n    mode: immediate\n    pollInterval: 1s\n  prod:\n    namespace: {prod}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 30s\n    pollInterval: 1s\n    gates:\n      soak: {{environment: stg, for: 1s}}\n"
        ),
    );
    let spec = DaemonSpec::new(&prod, ConfigSource::File(cfg)).with_clock_at(start, 30 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);
    // Before prod's window opens, stg has imported the image and its
    // Deployment is rolling it out (and crash-looping).
    eventually(
        Duration::from_secs(25),
        "stg rolls the new image",
        || async {
            let d = cluster
                .admin_request(
                    "GET",
                    &format!("/apis/apps/v1/namespaces/{stg}/deployments/worker"),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if image.ends_with(&bad) {
                Ok(())
            } else {
                Err(image)
            }
        },
    )
    .await;
    assert!(
        clock.now() < start,
        "the window opened before stg rolled out; a slow machine"
    );

    let held = first_notes(cluster, &prod, "Gated", "worker").await;
    assert!(
        held[0]
            .0
            .contains("soak: its rollout in stg has not succeeded: "),
        "{held:?}"
    );
    assert_eq!(
        newest(cluster, &prod, "worker", "prod").await.1,
        1,
        "not imported"
    );
    daemon.stop().await;
}

/// Rules for the alerts gate's test: one alert per pushed metric, labelled
/// with the namespace the metric names.
const GATE_RULES: &str = "groups:
- name: gate-test
  rules:
  - alert: WorkerDegraded
    expr: worker_degraded > 0
    labels: {severity: critical}
  - alert: DiskAlmostFull
    expr: disk_almost_full > 0
    labels: {severity: info}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_hold_while_a_matching_alert_fires_and_release_when_it_stops() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let prometheus = test_cluster::prometheus::Prometheus::start(GATE_RULES)
        .await
        .expect("Prometheus and the Pushgateway start");
    let ns = seed(cluster, "gates-alerts", "prod", &["worker"]).await;
    let other = format!("{ns}-other");
    // Firing before the window opens: one alert of this namespace at a
    // matching severity, one of this namespace at another severity and one
    // of another namespace; only the first holds.
    prometheus
        .push(
            "holding",
            &format!("worker_degraded{{namespace=\"{ns}\"}} 1\n"),
        )
        .await
        .expect("push the metric");
    prometheus
        .push(
            "not-matching",
            &format!(
                "worker_degraded{{namespace=\"{other}\"}} 1\ndisk_almost_full{{namespace=\"{ns}\"}} 1\n"
            ),
        )
        .await
        .expect("push the metrics");
    for name in ["WorkerDegraded", "DiskAlmostFull"] {
        prometheus.wait_for_alert(name).await.expect("alert fires");
    }
    let firing: Vec<_> = prometheus.alerts().await.unwrap();
    assert_eq!(
        firing.iter().filter(|a| a.state == "firing").count(),
        3,
        "{firing:?}"
    );

    let repo = format!("{ns}/worker");
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let start = next_three_am();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 60s\n    pollInterval: 1s\n    gates:\n      alerts:\n        prometheusUrl: {}\n        match: 'namespace=\"{ns}\",severity=~\"critical|warning\"'\n",
            prometheus.url()
        ),
    );
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, 3 * SEC);
    let daemon = start_daemon(cluster, spec);

    let held = first_notes(cluster, &ns, "Gated", "worker").await;
    let note = &held[0].0;
    assert!(note.contains("alerts: "), "{note}");
    assert!(note.contains("WorkerDegraded"), "{note}");
    assert!(
        !note.contains("DiskAlmostFull"),
        "only matching alerts are named: {note}"
    );
    // Held for several polls: nothing imported, the gate counted as holding.
    tokio::time::sleep(3 * SEC).await;
    let (newest_now, len) = newest(cluster, &ns, "worker", "prod").await;
    assert_eq!(
        len, 1,
        "nothing imported while the alert fires (newest {newest_now:?})"
    );
    let metrics = daemon.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "image_import_scheduler_gate_verdicts_total{env=\"prod\",gate=\"alerts\",result=\"hold\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "checked at every poll: {metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "image_import_scheduler_gated_tags{env=\"prod\",gate=\"alerts\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // The matching alert stops, the others go on firing: the next check in
    // the window imports.
    prometheus
        .delete("holding")
        .await
        .expect("delete the metric");
    eventually(
        Duration::from_secs(30),
        "only the alerts that do not match fire",
        || async {
            let firing: Vec<_> = prometheus.alerts().await.map_err(|e| e.to_string())?;
            let left = firing
                .iter()
                .filter(|a| a.labels.get("namespace") == Some(&ns) && a.name() == "WorkerDegraded")
                .count();
            if left == 0 && firing.len() == 2 {
                Ok(())
            } else {
                Err(format!("{firing:?}"))
            }
        },
    )
    .await;
    imported(cluster, &ns, "worker", &pushed).await;
    let metrics = daemon.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "image_import_scheduler_gate_verdicts_total{env=\"prod\",gate=\"alerts\",result=\"pass\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
    let gated = notes(cluster, &ns, "Gated", "worker").await;
    assert_eq!(
        gated.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "one Gated Event while the same alert holds: {gated:?}"
    );
    assert!(notes(cluster, &ns, "WindowMissed", "worker")
        .await
        .is_empty());
    daemon.stop().await;
}
