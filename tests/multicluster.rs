//! Environments on their own clusters, with two test clusters in one test:
//! the daemon's own (the shared one, where the configuration, the status
//! ConfigMap, the Lease and the kubeconfig Secret live) and another one,
//! reached through a ServiceAccount token limited to the environment's
//! namespace. One daemon drives an environment on each; stopping the other
//! cluster mid-window leaves the first environment's imports going and gets
//! the second one's window reported missed with the reason. The commands
//! reach an environment on the other cluster through a kubeconfig context.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Timelike, Utc};
use import_scheduler::daemon::ConfigSource;
use import_scheduler::rbac::{policy_rules, Scope, DAEMON_API_CALLS};
use serde_json::{json, Value};
use support::*;
use test_cluster::{ClusterOptions, TagSeed, TestCluster};

const SEC: Duration = Duration::from_secs(1);
const SECRET: &str = "other-cluster";
const CLUSTER_LABEL: &str = "other-cluster/kubeconfig";

/// A second cluster, for this test alone.
async fn start_other_cluster() -> TestCluster {
    tokio::task::spawn_blocking(|| TestCluster::start(ClusterOptions::from_env()))
        .await
        .expect("the start did not panic")
        .expect("the other cluster starts")
}

/// A kubeconfig for ServiceAccount `image-import-scheduler` of `ns` on
/// `cluster`, allowed exactly what the daemon does in a managed namespace.
async fn limited_kubeconfig(cluster: &TestCluster, ns: &str) -> String {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "image-import-scheduler"},
        "rules": serde_json::to_value(policy_rules(DAEMON_API_CALLS, Scope::ManagedNamespace)).unwrap(),
    });
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            Some(role),
        )
        .await
        .expect("create the Role");
    let token = cluster
        .service_account_token(ns, "image-import-scheduler")
        .await
        .expect("a ServiceAccount token");
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            Some(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "image-import-scheduler"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "image-import-scheduler"},
                "subjects": [{"kind": "ServiceAccount", "name": "image-import-scheduler", "namespace": ns}],
            })),
        )
        .await
        .expect("bind the Role");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&token, &path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

async fn create(cluster: &TestCluster, ns: &str, resource: &str, object: Value) {
    cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/{resource}"),
            Some(object),
        )
        .await
        .unwrap_or_else(|e| panic!("create {resource} in {ns}: {e}"));
}

async fn create_config(cluster: &TestCluster, ns: &str, yaml: &str) {
    create(
        cluster,
        ns,
        "configmaps",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "image-import-scheduler"},
            "data": {"config.yaml": yaml},
        }),
    )
    .await;
}

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

fn windowed(name: &str, ns: &str, window: &str, cluster: &str) -> String {
    format!(
        "  {name}:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: {window}\n    pollInterval: 1s\n{cluster}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_drives_two_clusters_and_a_stopped_one_misses_its_window_alone() {
    init_logs();
    let home = TestCluster::shared().await;
    let other = start_other_cluster().await;
    let home_ns = seed(home, "mc-home", "prod", &["worker"]).await;
    let away_ns = seed(&other, "mc-away", "prod", &["worker", "service"]).await;

    // Inside the window: a new home image, a new service image on the other
    // cluster, and a worker there whose registry lost the tag, so it is
    // still not imported when that cluster stops.
    let home_new = home
        .registry()
        .push_image(&format!("{home_ns}/worker"), "prod")
        .await
        .unwrap();
    let away_service = other
        .registry()
        .push_image(&format!("{away_ns}/service"), "prod")
        .await
        .unwrap();
    other
        .registry()
        .delete_tag(&format!("{away_ns}/worker"), "prod")
        .await
        .unwrap();

    let kubeconfig = limited_kubeconfig(&other, &away_ns).await;
    create(
        home,
        &home_ns,
        "secrets",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {"kubeconfig": kubeconfig},
        }),
    )
    .await;
    let config = format!(
        "environments:\n{}{}",
        windowed("home", &home_ns, "40s", ""),
        windowed(
            "away",
            &away_ns,
            "40s",
            &format!("    cluster: {{kubeconfigSecret: {{name: {SECRET}}}}}\n")
        )
    );
    create_config(home, &home_ns, &config).await;

    let start = next_three_am();
    assert_eq!(start.hour(), 3);
    let spec = DaemonSpec::new(
        &home_ns,
        ConfigSource::ConfigMap {
            namespace: home_ns.clone(),
            name: "image-import-scheduler".into(),
            key: "config.yaml".into(),
        },
    )
    .with_clock_at(start, 2 * SEC);
    let daemon = start_daemon(home, spec);

    // Both environments import inside the window, each on its own cluster.
    eventually(30 * SEC, "both clusters' new images imported", || async {
        let h = newest(home, &home_ns, "worker", "prod").await.0;
        let a = newest(&other, &away_ns, "service", "prod").await.0;
        if h.as_deref() == Some(home_new.as_str()) && a.as_deref() == Some(away_service.as_str()) {
            Ok(())
        } else {
            Err(format!("home {h:?}, away {a:?}"))
        }
    })
    .await;
    // The other environment's Events are on its own cluster.
    eventually(
        20 * SEC,
        "an ImportSucceeded Event on the other cluster",
        || async {
            let imported = events(&other, &away_ns, "ImportSucceeded").await;
            if imported.iter().any(|e| e["regarding"]["name"] == "service") {
                Ok(())
            } else {
                Err(format!("{imported:?}"))
            }
        },
    )
    .await;
    assert!(
        events(home, &away_ns, "ImportSucceeded").await.is_empty(),
        "nothing about the other environment on the daemon's cluster"
    );

    // The other cluster stops in the middle of the window.
    drop(other);

    // The home environment goes on importing.
    let home_newer = home
        .registry()
        .push_image(&format!("{home_ns}/worker"), "prod")
        .await
        .unwrap();
    eventually(
        20 * SEC,
        "the home environment's import after the stop",
        || async {
            match newest(home, &home_ns, "worker", "prod").await.0 {
                Some(d) if d == home_newer => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // The stopped cluster is reported: metric, readiness detail (still
    // ready), an Event on the configuration.
    eventually(
        60 * SEC,
        "the other cluster reported unavailable",
        || async {
            let m = daemon.metrics().await;
            let line = format!(
                "image_import_scheduler_cluster_available{{cluster=\"{CLUSTER_LABEL}\"}} 0"
            );
            if m.contains(&line) {
                Ok(())
            } else {
                Err(m
                    .lines()
                    .filter(|l| l.contains("cluster_"))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        },
    )
    .await;
    let (code, body) = http_request(daemon.port, "GET", "/readyz", &[], "").await;
    assert_eq!(code, 200, "the daemon's own cluster is fine: {body}");
    assert!(
        body.contains(&format!(
            "cluster {CLUSTER_LABEL}: Kubernetes API unreachable"
        )),
        "{body}"
    );
    let unavailable = events(home, &home_ns, "ClusterUnavailable").await;
    assert!(
        unavailable
            .iter()
            .any(|e| e["regarding"]["kind"] == "ConfigMap"
                && e["note"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("environment away")),
        "{unavailable:?}"
    );

    // When the window closes, the other environment's window is missed,
    // with the reason, told on the daemon's cluster since its own is gone.
    let missed = eventually(60 * SEC, "the away window reported missed", || async {
        let e = events(home, &home_ns, "WindowMissed").await;
        if e.is_empty() {
            Err("none yet".into())
        } else {
            Ok(e)
        }
    })
    .await;
    let note = missed[0]["note"].as_str().unwrap_or_default().to_owned();
    assert_eq!(missed[0]["regarding"]["kind"], "ConfigMap", "{missed:?}");
    assert!(
        note.starts_with(&format!("ImageStream {away_ns}/worker on cluster {CLUSTER_LABEL}: worker:prod was not imported in window")),
        "{note}"
    );
    assert!(note.contains("could not be listed"), "the reason: {note}");
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("image_import_scheduler_missed_windows_total{env=\"away\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("image_import_scheduler_missed_windows_total{env=\"home\"} 1"),
        "the home window was not missed: {metrics}"
    );
    assert!(
        events(home, &home_ns, "WindowMissed")
            .await
            .iter()
            .all(|e| e["regarding"]["kind"] == "ConfigMap"),
        "home's streams missed nothing"
    );
    daemon.stop().await;
}

/// Runs the binary with `kubeconfig`, isolated from the caller's settings.
async fn cli(kubeconfig: &Path, args: &[&str]) -> CliRun {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--kubeconfig"), kubeconfig.as_os_str()]);
    run_cli(&all, &[]).await
}

/// An operator's kubeconfig holding both clusters: contexts `home` (current)
/// and `other`, both as admin.
fn operator_kubeconfig(dir: &Path, home: &TestCluster, other: &TestCluster) -> PathBuf {
    let entry = |name: &str, c: &TestCluster| {
        (
            json!({"name": name, "cluster": {"server": c.server_url(), "certificate-authority": c.ca_path()}}),
            json!({"name": name, "user": {"token": c.admin_token()}}),
            json!({"name": name, "context": {"cluster": name, "user": name}}),
        )
    };
    let (hc, hu, hx) = entry("home", home);
    let (oc, ou, ox) = entry("other", other);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [hc, oc],
        "users": [hu, ou],
        "contexts": [hx, ox],
        "current-context": "home",
    });
    let path = dir.join("kubeconfig");
    // JSON is YAML.
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn history(is: &Value) -> Vec<String> {
    is["status"]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["tag"] == "prod"))
        .and_then(|t| t["items"].as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["image"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_reach_an_environment_on_the_other_cluster() {
    init_logs();
    let home = TestCluster::shared().await;
    let other = start_other_cluster().await;
    let home_ns = home.create_namespace("mc-cli").await.unwrap();
    let away_ns = other.create_namespace("mc-cli-away").await.unwrap();
    let repo = format!("{away_ns}/worker");
    let source = other.registry().image_ref(&repo, "prod");
    let first = other.registry().push_image(&repo, "prod").await.unwrap();
    other
        .seed_stream(
            &away_ns,
            "worker",
            &[TagSeed {
                import: true,
                ..TagSeed::new("prod", source.clone())
            }],
        )
        .await
        .unwrap();
    let second = other.registry().push_image(&repo, "prod").await.unwrap();

    // The daemon's configuration on the home cluster; the environment lives
    // on the other one, reached by the operator through context `other`.
    let config = format!(
        "environments:\n{}",
        windowed(
            "away",
            &away_ns,
            "1h",
            &format!("    cluster: {{kubeconfigSecret: {{name: {SECRET}}}, context: other}}\n")
        )
    );
    create_config(home, &home_ns, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = operator_kubeconfig(dir.path(), home, &other);
    let cm = format!("{home_ns}/image-import-scheduler");
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--configmap".to_owned(), cm.clone()]);
        let kubeconfig = kubeconfig.clone();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            cli(&kubeconfig, &refs).await
        }
    };

    let status = run(&["status", "--env", "away", "--output", "json"])
        .await
        .expect(0, "status")
        .json();
    let tag = &status["environments"][0]["tags"][0];
    assert_eq!(tag["stream"], "worker", "{status:#}");
    assert_eq!(tag["current"], first.as_str(), "{status:#}");
    assert_eq!(tag["sourceDigest"], second.as_str(), "{status:#}");
    assert_eq!(tag["sourceMoved"], true, "{status:#}");

    run(&["import", "--env", "away", "--stream", "worker"])
        .await
        .expect(0, "import");
    let is = other.stream(&away_ns, "worker").await.unwrap();
    assert_eq!(history(&is), vec![second.clone(), first.clone()]);
    let manual = events(&other, &away_ns, "ManualImport").await;
    assert_eq!(
        manual.len(),
        1,
        "the Event is on the other cluster: {manual:?}"
    );

    let items = run(&[
        "history", "--env", "away", "--stream", "worker", "--output", "json",
    ])
    .await
    .expect(0, "history")
    .json();
    assert_eq!(items["items"][0]["digest"], second.as_str(), "{items:#}");
    assert_eq!(items["items"][1]["digest"], first.as_str(), "{items:#}");

    run(&[
        "pin",
        "--env",
        "away",
        "--stream",
        "worker",
        "--to-previous",
    ])
    .await
    .expect(0, "pin");
    let is = other.stream(&away_ns, "worker").await.unwrap();
    let from = is["spec"]["tags"][0]["from"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(from.ends_with(&format!("@{first}")), "{is:#}");

    let restored = run(&[
        "restore", "--env", "away", "--stream", "worker", "--output", "json",
    ])
    .await
    .expect(0, "restore")
    .json();
    assert_eq!(restored["after"]["digest"], second.as_str(), "{restored:#}");
    let is = other.stream(&away_ns, "worker").await.unwrap();
    assert_eq!(
        is["spec"]["tags"][0]["from"]["name"],
        source.as_str(),
        "{is:#}"
    );

    // --context picks the cluster like kubectl's: a configuration file whose
    // environment has no cluster is read on the context's cluster.
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        format!("environments:\n{}", windowed("away", &away_ns, "1h", "")),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let status = cli(
        &kubeconfig,
        &[
            "status",
            "--env",
            "away",
            "--config",
            file,
            "--context",
            "other",
            "--output",
            "json",
        ],
    )
    .await
    .expect(0, "status --context other")
    .json();
    assert_eq!(
        status["environments"][0]["tags"][0]["current"],
        second.as_str(),
        "{status:#}"
    );
    let wrong = cli(
        &kubeconfig,
        &[
            "status",
            "--env",
            "away",
            "--config",
            file,
            "--context",
            "elsewhere",
        ],
    )
    .await
    .expect(2, "an unknown context");
    assert!(
        wrong.stderr.contains("no context `elsewhere`") && wrong.stderr.contains("home, other"),
        "{}",
        wrong.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_kubeconfig_secret_holds_up_only_its_environment_until_it_is_created() {
    init_logs();
    let home = TestCluster::shared().await;
    let home_ns = seed(home, "mc-secret", "stg", &["worker"]).await;
    // The "other" cluster is the same one, reached through the Secret.
    let away_ns = seed(home, "mc-secret-away", "stg", &["worker"]).await;
    let immediate = |name: &str, ns: &str, cluster: &str| {
        format!("  {name}:\n    namespace: {ns}\n    tag: stg\n    mode: immediate\n    pollInterval: 1s\n{cluster}")
    };
    let config = format!(
        "environments:\n{}{}",
        immediate("home", &home_ns, ""),
        immediate(
            "away",
            &away_ns,
            "    cluster: {kubeconfigSecret: {name: late-cluster}}\n"
        )
    );
    create_config(home, &home_ns, &config).await;
    let spec = DaemonSpec::new(
        &home_ns,
        ConfigSource::ConfigMap {
            namespace: home_ns.clone(),
            name: "image-import-scheduler".into(),
            key: "config.yaml".into(),
        },
    );
    let daemon = start_daemon(home, spec);

    let pushed = home
        .registry()
        .push_image(&format!("{home_ns}/worker"), "stg")
        .await
        .unwrap();
    eventually(20 * SEC, "the home environment imports", || async {
        match newest(home, &home_ns, "worker", "stg").await.0 {
            Some(d) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let label = "late-cluster/kubeconfig";
    eventually(20 * SEC, "the missing Secret reported", || async {
        let m = daemon.metrics().await;
        let unavailable = m.contains(&format!(
            "image_import_scheduler_cluster_available{{cluster=\"{label}\"}} 0"
        ));
        let counted = m.contains(&format!(
            "image_import_scheduler_cluster_problems_total{{cluster=\"{label}\",reason=\"setup\"}} 1"
        ));
        let e = events(home, &home_ns, "ClusterUnavailable").await;
        let told = e.iter().any(|e| {
            e["note"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("Secret {home_ns}/late-cluster does not exist"))
        });
        if unavailable && counted && told {
            Ok(())
        } else {
            Err(format!("metric {unavailable}, counted {counted}, events {e:?}"))
        }
    })
    .await;
    let (code, body) = http_request(daemon.port, "GET", "/readyz", &[], "").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!(
            "cluster {label}: Secret {home_ns}/late-cluster does not exist"
        )),
        "{body}"
    );

    // Once the Secret exists, the environment connects at its next try and imports.
    let kubeconfig = limited_kubeconfig(home, &away_ns).await;
    create(
        home,
        &home_ns,
        "secrets",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "late-cluster"},
            "stringData": {"kubeconfig": kubeconfig},
        }),
    )
    .await;
    let away_pushed = home
        .registry()
        .push_image(&format!("{away_ns}/worker"), "stg")
        .await
        .unwrap();
    eventually(60 * SEC, "the away environment imports", || async {
        match newest(home, &away_ns, "worker", "stg").await.0 {
            Some(d) if d == away_pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually(20 * SEC, "the recovery reported", || async {
        let m = daemon.metrics().await;
        let e = events(home, &home_ns, "ClusterAvailable").await;
        if m.contains(&format!(
            "image_import_scheduler_cluster_available{{cluster=\"{label}\"}} 1"
        )) && !e.is_empty()
        {
            Ok(())
        } else {
            Err(format!("{e:?}"))
        }
    })
    .await;
    daemon.stop().await;
}
