//! Leader election, the status ConfigMap and Events against the test cluster
//! (real kube-apiserver behind the test cluster's front).

mod support;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use import_scheduler::{
    events::{image_stream_ref, EventSink, EventType},
    kubeclient,
    leader::{LeaderElector, LeaderOptions},
    metrics::Metrics,
    state::{tag_key, StateStore, CORRUPT_SUFFIX},
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::ConfigMap, events::v1::Event};
use kube::{
    api::{ListParams, PostParams},
    Api, Client,
};
use test_cluster::{FaultKind, FaultRule, TestCluster};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use support::{api_requests, eventually};

async fn shim_client(cluster: &TestCluster, metrics: Option<Arc<Metrics>>) -> Client {
    kubeclient::client(Some(cluster.kubeconfig_path()), metrics)
        .await
        .expect("client for the test cluster")
}

/// A client that talks to kube-apiserver directly, past the front, so the
/// front's faults leave it alone.
async fn direct_client(cluster: &TestCluster, dir: &tempfile::TempDir) -> Client {
    let path: PathBuf = dir.path().join("direct.kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: direct\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: direct\n  context:\n    cluster: direct\n    user: admin\ncurrent-context: direct\n",
        cluster.apiserver_url(),
        cluster.ca_path().display(),
        cluster.admin_token()
    );
    std::fs::write(&path, yaml).unwrap();
    kubeclient::client(Some(&path), None)
        .await
        .expect("direct client")
}

fn fast() -> LeaderOptions {
    LeaderOptions {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        renew_period: Duration::from_millis(500),
        retry_period: Duration::from_millis(200),
        metrics: None,
    }
}

async fn holder(client: &Client, ns: &str, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

async fn wait_leading(rx: &mut watch::Receiver<bool>, limit: Duration, who: &str) {
    tokio::time::timeout(limit, rx.wait_for(|leading| *leading))
        .await
        .unwrap_or_else(|_| panic!("{who} did not become leader within {limit:?}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_exactly_one_leads() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("leader-two").await.unwrap();
    let client = shim_client(cluster, None).await;
    let shutdown = CancellationToken::new();
    let (mut a, _ta) =
        LeaderElector::new(client.clone(), &ns, "lease", "a", fast()).spawn(shutdown.clone());
    let (mut b, _tb) =
        LeaderElector::new(client.clone(), &ns, "lease", "b", fast()).spawn(shutdown.clone());

    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            _ = a.wait_for(|l| *l) => {},
            _ = b.wait_for(|l| *l) => {},
        }
    })
    .await
    .expect("someone leads within 20s");

    // Over several lease durations, never both, and the Lease names the leader.
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut samples = 0;
    while tokio::time::Instant::now() < until {
        let (la, lb) = (*a.borrow(), *b.borrow());
        assert!(!(la && lb), "both electors lead at once");
        if la != lb {
            let expected = if la { "a" } else { "b" };
            let current = holder(&client, &ns, "lease").await;
            // Re-check: the watch may have flipped while we read the Lease.
            if *a.borrow() == la && *b.borrow() == lb {
                assert_eq!(current.as_deref(), Some(expected));
                samples += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        samples > 10,
        "leadership was stable long enough to be checked ({samples} samples)"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_leader_is_replaced_after_expiry() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("leader-crash").await.unwrap();
    let client = shim_client(cluster, None).await;
    let shutdown = CancellationToken::new();
    let (mut a, task_a) =
        LeaderElector::new(client.clone(), &ns, "lease", "a", fast()).spawn(shutdown.clone());
    wait_leading(&mut a, Duration::from_secs(20), "a").await;
    let (mut b, _tb) =
        LeaderElector::new(client.clone(), &ns, "lease", "b", fast()).spawn(shutdown.clone());

    // A crash: no release, no further renewals.
    task_a.abort();
    let _ = task_a.await;
    assert_eq!(holder(&client, &ns, "lease").await.as_deref(), Some("a"));

    wait_leading(&mut b, Duration::from_secs(30), "b").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let spec = leases.get("lease").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_hands_over_without_waiting_for_expiry() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("leader-release").await.unwrap();
    let client = shim_client(cluster, None).await;
    // A lease far longer than the wait below: only a release lets b in.
    let slow = LeaderOptions {
        lease_duration: Duration::from_secs(120),
        renew_deadline: Duration::from_secs(10),
        renew_period: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        metrics: None,
    };
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let (mut a, task_a) =
        LeaderElector::new(client.clone(), &ns, "lease", "a", slow.clone()).spawn(stop_a.clone());
    wait_leading(&mut a, Duration::from_secs(20), "a").await;
    let (mut b, _tb) =
        LeaderElector::new(client.clone(), &ns, "lease", "b", slow).spawn(stop_b.clone());
    // b has seen a's lease and is waiting.
    eventually(
        Duration::from_secs(10),
        "b to observe the lease",
        || async {
            if *b.borrow() {
                Err("b leads while a holds the lease".into())
            } else {
                Ok(())
            }
        },
    )
    .await;

    stop_a.cancel();
    task_a.await.unwrap();
    assert!(!*a.borrow(), "a no longer leads after shutdown");
    assert_eq!(
        holder(&client, &ns, "lease").await,
        None,
        "a cleared the holder"
    );

    wait_leading(&mut b, Duration::from_secs(20), "b").await;
    assert_eq!(holder(&client, &ns, "lease").await.as_deref(), Some("b"));
    stop_b.cancel();
}

/// The leader's API calls hang (a network partition between it and the API
/// server); it must give up leadership before the standby may take the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_steps_down_before_the_standby_takes_over() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("leader-partition").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let through_shim = shim_client(cluster, None).await;
    let direct = direct_client(cluster, &dir).await;
    let metrics = Arc::new(Metrics::new());
    let options_a = LeaderOptions {
        metrics: Some(metrics.clone()),
        ..fast()
    };
    let shutdown = CancellationToken::new();
    let (mut a, _ta) =
        LeaderElector::new(through_shim, &ns, "lease", "a", options_a).spawn(shutdown.clone());
    wait_leading(&mut a, Duration::from_secs(20), "a").await;
    assert!(metrics
        .encode()
        .lines()
        .any(|l| l == "image_import_scheduler_leader 1"));
    let (mut b, _tb) =
        LeaderElector::new(direct.clone(), &ns, "lease", "b", fast()).spawn(shutdown.clone());

    let fault = cluster.faults().add(FaultRule::new(
        format!("/namespaces/{ns}/leases/lease"),
        FaultKind::Hang,
    ));
    wait_leading(&mut b, Duration::from_secs(30), "b").await;
    // At the instant b leads, a must already have stepped down.
    assert!(!*a.borrow(), "a still believed it led when b took over");
    assert!(metrics
        .encode()
        .lines()
        .any(|l| l == "image_import_scheduler_leader 0"));
    assert!(cluster.faults().hits(fault) > 0);
    cluster.faults().remove(fault);
    assert_eq!(holder(&direct, &ns, "lease").await.as_deref(), Some("b"));
    shutdown.cancel();
}

fn requests(metrics: &Metrics, verb: &str, resource: &str) -> u64 {
    api_requests(&metrics.encode(), Some(verb), resource) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_renews_without_reading_the_lease_first() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("leader-renew").await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let client = shim_client(cluster, Some(metrics.clone())).await;
    let shutdown = CancellationToken::new();
    let (mut a, _) =
        LeaderElector::new(client.clone(), &ns, "lease", "a", fast()).spawn(shutdown.clone());
    wait_leading(&mut a, Duration::from_secs(20), "a").await;
    let reads_to_lead = requests(&metrics, "get", "leases");
    // Renewals every 500 ms: wait for several.
    eventually(Duration::from_secs(20), "five renewals", || {
        let renewals = requests(&metrics, "update", "leases");
        async move {
            (renewals >= 5)
                .then_some(())
                .ok_or(format!("{renewals} renewals"))
        }
    })
    .await;
    assert!(*a.borrow(), "a lost leadership while renewing");
    assert_eq!(
        requests(&metrics, "get", "leases"),
        reads_to_lead,
        "a renewal read the Lease although nobody else wrote it"
    );

    // Someone else writes the Lease (here: a label): the next renewal gets
    // 409, reads it, sees itself as holder and renews.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let mut lease = leases.get("lease").await.unwrap();
    lease
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("touched".into(), "yes".into());
    leases
        .replace("lease", &PostParams::default(), &lease)
        .await
        .unwrap();
    let reads = requests(&metrics, "get", "leases");
    eventually(
        Duration::from_secs(20),
        "a renewal after the outside write",
        || {
            let now = requests(&metrics, "get", "leases");
            async move {
                (now > reads)
                    .then_some(())
                    .ok_or("no read since the outside write".to_owned())
            }
        },
    )
    .await;
    let renewed = requests(&metrics, "update", "leases");
    eventually(Duration::from_secs(20), "renewals go on", || {
        let now = requests(&metrics, "update", "leases");
        async move {
            (now >= renewed + 2)
                .then_some(())
                .ok_or(format!("{now} renewals"))
        }
    })
    .await;
    assert!(*a.borrow(), "a lost leadership after an outside write");
    assert_eq!(holder(&client, &ns, "lease").await.as_deref(), Some("a"));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_update_that_changes_only_times_makes_no_request() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("state-idle").await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let client = shim_client(cluster, Some(metrics.clone())).await;
    let store = StateStore::new(client.clone(), &ns, "status");
    let checked = |at: &str| {
        let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
        move |state: &mut import_scheduler::state::EnvState| {
            let tag = state.tag_mut("packit-worker", "stg");
            tag.last_outcome = "unchanged".into();
            tag.digest_after = Some("sha256:aa".into());
            tag.at = at;
        }
    };
    let first = store
        .update("stg", checked("2026-12-01T03:00:00Z"))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let version = api.get("status").await.unwrap().metadata.resource_version;
    let count = |text: &str| api_requests(text, None, "configmaps");
    let before = count(&metrics.encode());

    // The same outcome a minute later: nothing to write, nothing read.
    let again = store
        .update("stg", checked("2026-12-01T03:01:00Z"))
        .await
        .unwrap();
    assert_eq!(again, first, "the stored copy is returned");
    assert_eq!(
        count(&metrics.encode()),
        before,
        "an unchanged state made requests"
    );

    // Another process (or this one after a restart) reads but does not patch.
    let other = StateStore::new(client.clone(), &ns, "status");
    other
        .update("stg", checked("2026-12-01T03:02:00Z"))
        .await
        .unwrap();
    assert_eq!(
        api.get("status").await.unwrap().metadata.resource_version,
        version,
        "an unchanged state was written"
    );

    // A changed outcome is written at once.
    let failed = store
        .update("stg", |state| {
            let tag = state.tag_mut("packit-worker", "stg");
            tag.last_outcome = "failed".into();
            tag.last_error = Some("Unauthorized: pull secret".into());
        })
        .await
        .unwrap();
    assert_ne!(
        api.get("status").await.unwrap().metadata.resource_version,
        version
    );
    assert_eq!(other.load().await.unwrap()["stg"], failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_missing_configmap_is_empty_then_created_with_labels() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("state-new").await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let client = shim_client(cluster, Some(metrics.clone())).await;
    let store = StateStore::new(client.clone(), &ns, "status");
    assert!(store.load().await.unwrap().is_empty());

    let written = store
        .update("prod", |state| {
            state.window_id = Some("prod-2025-03-04T01:00Z".into());
            state.tag_mut("packit-worker", "prod").digest_after = Some("sha256:bb".into());
        })
        .await
        .unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.get("prod"), Some(&written));

    let cm: ConfigMap = Api::namespaced(client, &ns).get("status").await.unwrap();
    let labels = cm.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "image-import-scheduler");
    assert_eq!(labels["app.kubernetes.io/component"], "status");

    // The client's metrics layer saw both 404s: load, then the read in update.
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l == r#"image_import_scheduler_api_requests_total{verb="get",resource="configmaps",code="404"} 2"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_concurrent_updates_all_land() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("state-race").await.unwrap();
    let client = shim_client(cluster, None).await;
    let store = StateStore::new(client.clone(), &ns, "status");
    store.update("prod", |_| {}).await.unwrap();
    // Every patch conflicts at least a few times, besides the natural races.
    let fault = cluster.faults().add(
        FaultRule::new(
            format!("/namespaces/{ns}/configmaps/status"),
            FaultKind::Status {
                code: 409,
                retry_after_secs: None,
            },
        )
        .method("PATCH")
        .times(4),
    );

    let per_task = 8;
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|stream| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    store
                        .update("prod", |state| {
                            state.tag_mut(stream, "prod").attempts += 1;
                            state.tag_mut("shared", "prod").attempts += 1;
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cluster.faults().hits(fault), 4);
    cluster.faults().remove(fault);

    let state = &store.load().await.unwrap()["prod"];
    assert_eq!(state.tags[&tag_key("a", "prod")].attempts, per_task);
    assert_eq!(state.tags[&tag_key("b", "prod")].attempts, per_task);
    assert_eq!(
        state.tags[&tag_key("shared", "prod")].attempts,
        2 * per_task
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_corrupt_environment_keeps_the_others() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("state-corrupt").await.unwrap();
    let client = shim_client(cluster, None).await;
    let store = StateStore::new(client.clone(), &ns, "status");
    store
        .update("prod", |state| state.last_missed_window = Some("w1".into()))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut cm = api.get("status").await.unwrap();
    let garbage = "{\"windowId\": 42, truncated";
    cm.data
        .get_or_insert_with(BTreeMap::new)
        .insert("stg".into(), garbage.into());
    api.replace("status", &PostParams::default(), &cm)
        .await
        .unwrap();

    let loaded = store.load().await.unwrap();
    assert_eq!(loaded["prod"].last_missed_window.as_deref(), Some("w1"));
    assert_eq!(loaded["stg"], Default::default());

    let stg = store
        .update("stg", |state| state.window_id = Some("w9".into()))
        .await
        .unwrap();
    assert_eq!(stg.window_id.as_deref(), Some("w9"));
    let data = api.get("status").await.unwrap().data.unwrap();
    assert_eq!(
        data[&format!("stg{CORRUPT_SUFFIX}")],
        garbage,
        "raw value kept"
    );
    let loaded = store.load().await.unwrap();
    assert_eq!(
        loaded.len(),
        2,
        "the .corrupt key is not an environment: {loaded:?}"
    );
    assert_eq!(loaded["stg"].window_id.as_deref(), Some("w9"));
    assert_eq!(loaded["prod"].last_missed_window.as_deref(), Some("w1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_and_repeats_become_a_series() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("events").await.unwrap();
    let client = shim_client(cluster, None).await;
    let sink = EventSink::new(client.clone(), "pod-1", &ns);
    let stream = image_stream_ref(&ns, "packit-worker", None);
    let note = "prod: sha256:aa -> sha256:bb".to_owned();
    for _ in 0..2 {
        sink.try_publish(
            &stream,
            EventType::Normal,
            "ImportSucceeded",
            "Import",
            note.clone(),
        )
        .await
        .unwrap();
    }
    sink.try_publish(
        &stream,
        EventType::Warning,
        "ImportFailed",
        "Import",
        "prod: manifest unknown".into(),
    )
    .await
    .unwrap();

    // Same reason, new note (the next digest): a new event, not a repeat.
    let next = "prod: sha256:bb -> sha256:cc".to_owned();
    sink.try_publish(
        &stream,
        EventType::Normal,
        "ImportSucceeded",
        "Import",
        next.clone(),
    )
    .await
    .unwrap();

    let events: Api<Event> = Api::namespaced(client, &ns);
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        list.len(),
        3,
        "only the repeat joined an earlier event: {list:?}"
    );
    assert!(
        list.iter()
            .any(|e| e.note.as_deref() == Some(next.as_str())),
        "the new note is listed: {list:?}"
    );
    let succeeded = list
        .iter()
        .find(|e| e.note.as_deref() == Some(note.as_str()))
        .expect("ImportSucceeded listed");
    assert_eq!(succeeded.reason.as_deref(), Some("ImportSucceeded"));
    assert_eq!(succeeded.note.as_deref(), Some(note.as_str()));
    assert_eq!(succeeded.type_.as_deref(), Some("Normal"));
    assert_eq!(succeeded.series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        succeeded.reporting_controller.as_deref(),
        Some("image-import-scheduler")
    );
    assert_eq!(succeeded.reporting_instance.as_deref(), Some("pod-1"));
    let regarding = succeeded.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("ImageStream"));
    assert_eq!(regarding.name.as_deref(), Some("packit-worker"));
    let failed = list
        .iter()
        .find(|e| e.reason.as_deref() == Some("ImportFailed"))
        .expect("ImportFailed listed");
    assert_eq!(failed.type_.as_deref(), Some("Warning"));

    // Publishing never fails the caller, even when the API refuses.
    let bad = image_stream_ref("no-such-namespace-for-events", "x", None);
    sink.publish(
        &bad,
        EventType::Normal,
        "ImportSucceeded",
        "Import",
        "n".into(),
    )
    .await;
}
