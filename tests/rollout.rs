//! Rollout checks against the test cluster with the real workload
//! controllers: OpenShift's image-trigger controller rolls the consumers of
//! a tag after an import, kube-controller-manager rolls their pods, and the
//! stand-in node runs, crash-loops or fails to pull them. The checks read
//! the cluster with exactly the managed-namespace permissions of
//! `src/rbac.rs`.

mod support;

use std::path::Path;
use std::time::Duration;

use import_scheduler::importer::{ImportOutcome, Importer, ImporterOptions, TargetSelector};
use import_scheduler::rbac::{policy_rules, Scope, DAEMON_API_CALLS};
use import_scheduler::rollout::config::OnFailedRollout;
use import_scheduler::rollout::follow::{follow, FollowSpec, Followed};
use import_scheduler::rollout::pinback::{self, Action, FailedTag, PINNED_BACK_ANNOTATION};
use import_scheduler::rollout::verdict::{FailureReason, Verdict, WorkloadKind};
use serde_json::{json, Value};
use support::{bind_role, create_role};
use test_cluster::{workload_manifest, Failure, TagSeed, TestCluster};

/// Long enough for the controllers on a loaded machine; a rollout that
/// needs it all is a failure the test reports.
const ROLLOUT: Duration = Duration::from_secs(180);

async fn client_from(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// A client for the ServiceAccount `daemon` in `ns`, granted the daemon's
/// managed-namespace Role as `src/rbac.rs` lists it, and nothing else.
async fn daemon_client(c: &TestCluster, ns: &str) -> kube::Client {
    let rules =
        serde_json::to_value(policy_rules(DAEMON_API_CALLS, Scope::ManagedNamespace)).unwrap();
    create_role(c, ns, "daemon", rules).await;
    bind_role(c, ns, "daemon", "daemon", "daemon").await;
    let token = c.service_account_token(ns, "daemon").await.expect("token");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    c.write_kubeconfig(&token, &path).unwrap();
    client_from(&path).await
}

async fn admin_importer(c: &TestCluster) -> Importer {
    Importer::new(
        client_from(c.kubeconfig_path()).await,
        ImporterOptions::default(),
    )
}

/// A workload `name` of `kind` (2 replicas where the kind has them) with
/// one container `worker`, its image set by a trigger on `stream_tag` when
/// given.
fn workload(kind: WorkloadKind, name: &str, image: &str, stream_tag: Option<&str>) -> Value {
    workload_manifest(kind.name(), name, "worker", image, 2, stream_tag)
}

async fn create(c: &TestCluster, ns: &str, kind: WorkloadKind, w: Value) {
    c.create_workload(ns, w)
        .await
        .unwrap_or_else(|e| panic!("creating a {}: {e:#}", kind.name()));
}

async fn image_of(c: &TestCluster, ns: &str, kind: WorkloadKind, name: &str) -> String {
    c.workload_image(ns, kind.name(), name).await.unwrap()
}

/// A namespace with stream `worker`, tag `prod` imported from a fresh push;
/// returns the namespace, the repository and the digest.
async fn worker_stream(c: &TestCluster, prefix: &str) -> (String, String, String) {
    let ns = c.create_namespace(prefix).await.unwrap();
    let repo = format!("{ns}/worker");
    let digest = c.registry().push_image(&repo, "prod").await.unwrap();
    c.seed_stream(
        &ns,
        "worker",
        &[TagSeed::new("prod", c.registry().image_ref(&repo, "prod"))],
    )
    .await
    .unwrap();
    (ns, repo, digest)
}

fn spec(ns: &str, digest: &str, timeout: Duration) -> FollowSpec {
    FollowSpec {
        namespace: ns.to_owned(),
        stream: "worker".to_owned(),
        tag: "prod".to_owned(),
        new_digest: digest.to_owned(),
        timeout,
        already_elapsed: Duration::ZERO,
        poll_interval: Duration::from_millis(500),
    }
}

async fn followed(client: &kube::Client, ns: &str, digest: &str, timeout: Duration) -> Followed {
    follow(client, &spec(ns, digest, timeout))
        .await
        .expect("following the rollout")
}

/// Pushes a new image to `repo:prod` (marked bad first when `bad` says so)
/// and imports it as the daemon would; returns the import's outcome.
async fn import_new(
    c: &TestCluster,
    importer: &Importer,
    ns: &str,
    repo: &str,
    bad: Option<Failure>,
) -> (String, Option<String>) {
    let digest = c.registry().push_image(repo, "prod").await.unwrap();
    if let Some(f) = bad {
        c.mark_image_bad(&digest, f);
    }
    let selector = TargetSelector {
        environment: "prod".into(),
        namespace: ns.into(),
        tag: "prod".into(),
        ..TargetSelector::default()
    };
    let target = importer
        .discover(&selector)
        .await
        .unwrap()
        .targets
        .pop()
        .expect("a target");
    match importer.import(&target).await {
        ImportOutcome::Updated { from, to } => {
            assert_eq!(to, digest);
            (digest, from)
        }
        other => panic!("the import did not update the tag: {other:?}"),
    }
}

fn failure_of(f: &Followed) -> &import_scheduler::rollout::verdict::Failure {
    match &f.verdict {
        Verdict::Failed(failure) => failure,
        other => panic!("expected a failed rollout, got {other:?}"),
    }
}

/// Consumers of every kind, rolled out to the first image.
async fn rolled_out_consumers(
    c: &TestCluster,
    prefix: &str,
    kinds: &[WorkloadKind],
) -> (String, String, String, kube::Client) {
    let (ns, repo, first) = worker_stream(c, prefix).await;
    let client = daemon_client(c, &ns).await;
    for kind in kinds {
        create(
            c,
            &ns,
            *kind,
            workload(*kind, "worker", "placeholder", Some("worker:prod")),
        )
        .await;
    }
    let f = followed(&client, &ns, &first, ROLLOUT).await;
    assert_eq!(f.verdict, Verdict::Succeeded, "the first rollout");
    assert_eq!(f.consumers.len(), kinds.len(), "{:?}", f.consumers);
    (ns, repo, first, client)
}

#[tokio::test]
async fn a_good_rollout_of_a_deployment_and_a_statefulset_succeeds() {
    let c = TestCluster::shared_with_workloads().await;
    let kinds = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];
    let (ns, repo, _, client) = rolled_out_consumers(c, "ro-good", &kinds).await;
    let importer = admin_importer(c).await;
    let (new, _) = import_new(c, &importer, &ns, &repo, None).await;
    let f = followed(&client, &ns, &new, ROLLOUT).await;
    assert_eq!(f.verdict, Verdict::Succeeded);
    assert!(f.requests >= 4, "{}", f.requests);
    for kind in kinds {
        let image = image_of(c, &ns, kind, "worker").await;
        assert!(image.ends_with(&new), "{} runs {image}", kind.name());
    }
}

#[tokio::test]
async fn a_crash_looping_image_fails_naming_the_pod_container_and_reason() {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _, client) =
        rolled_out_consumers(c, "ro-crash", &[WorkloadKind::Deployment]).await;
    let importer = admin_importer(c).await;
    let (new, _) = import_new(c, &importer, &ns, &repo, Some(Failure::CrashLoop)).await;
    // Seen before the timeout: at the timeout the reason would be
    // NotReadyWithinTimeout.
    let f = followed(&client, &ns, &new, ROLLOUT).await;
    let failure = failure_of(&f);
    assert_eq!(failure.reason, FailureReason::CrashLoopBackOff, "{failure}");
    assert_eq!(
        (failure.kind, failure.workload.as_str()),
        (WorkloadKind::Deployment, "worker")
    );
    assert!(
        failure
            .pod
            .as_deref()
            .is_some_and(|p| p.starts_with("worker-")),
        "{failure}"
    );
    assert_eq!(failure.container.as_deref(), Some("worker"));
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails() {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _, client) =
        rolled_out_consumers(c, "ro-pull", &[WorkloadKind::StatefulSet]).await;
    let importer = admin_importer(c).await;
    let (new, _) = import_new(c, &importer, &ns, &repo, Some(Failure::PullError)).await;
    let f = followed(&client, &ns, &new, ROLLOUT).await;
    let failure = failure_of(&f);
    assert!(
        matches!(&failure.reason, FailureReason::ImagePull(r) if r == "ErrImagePull" || r == "ImagePullBackOff"),
        "{failure}"
    );
    assert_eq!(
        (failure.kind, failure.workload.as_str()),
        (WorkloadKind::StatefulSet, "worker")
    );
    assert_eq!(failure.container.as_deref(), Some("worker"));
}

#[tokio::test]
async fn a_rollout_short_of_ready_fails_at_the_timeout() {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _, client) =
        rolled_out_consumers(c, "ro-slow", &[WorkloadKind::Deployment]).await;
    let importer = admin_importer(c).await;
    let (new, _) = import_new(c, &importer, &ns, &repo, None).await;
    // A timeout already used up: whatever has not rolled out by the first
    // look fails as not ready, never as a crash or pull failure.
    let mut late = spec(&ns, &new, Duration::from_secs(5));
    late.already_elapsed = Duration::from_secs(5);
    let f = follow(&client, &late).await.unwrap();
    match &f.verdict {
        Verdict::Succeeded => {} // the controllers were faster than one request
        Verdict::Failed(failure) => assert!(
            matches!(
                failure.reason,
                FailureReason::NotReadyWithinTimeout | FailureReason::ImageNotSetWithinTimeout
            ),
            "{failure}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn workloads_without_a_trigger_on_the_tag_are_ignored() {
    let c = TestCluster::shared_with_workloads().await;
    let (ns, repo, _, client) =
        rolled_out_consumers(c, "ro-ignore", &[WorkloadKind::Deployment]).await;
    // A crash-looping workload without trigger, one triggered by another
    // tag, and a DaemonSet whose annotation is not JSON: none is followed.
    let bad = format!(
        "{}/{ns}/other@sha256:{}",
        c.registry().host(),
        "0".repeat(64)
    );
    c.mark_image_bad(&bad, Failure::CrashLoop);
    create(
        c,
        &ns,
        WorkloadKind::Deployment,
        workload(WorkloadKind::Deployment, "untriggered", &bad, None),
    )
    .await;
    create(
        c,
        &ns,
        WorkloadKind::StatefulSet,
        workload(
            WorkloadKind::StatefulSet,
            "other-tag",
            &bad,
            Some("worker:stg"),
        ),
    )
    .await;
    let mut broken = workload(WorkloadKind::DaemonSet, "broken", &bad, None);
    broken["metadata"]["annotations"] = json!({"image.openshift.io/triggers": "worker:prod"});
    create(c, &ns, WorkloadKind::DaemonSet, broken).await;

    let importer = admin_importer(c).await;
    let (new, _) = import_new(c, &importer, &ns, &repo, None).await;
    let f = followed(&client, &ns, &new, ROLLOUT).await;
    assert_eq!(f.verdict, Verdict::Succeeded);
    let names: Vec<(WorkloadKind, &str)> = f
        .consumers
        .iter()
        .map(|c| (c.kind, c.name.as_str()))
        .collect();
    assert_eq!(names, vec![(WorkloadKind::Deployment, "worker")]);
    assert_eq!(f.unreadable, vec!["DaemonSet broken".to_owned()]);
    assert_eq!(
        image_of(c, &ns, WorkloadKind::Deployment, "untriggered").await,
        bad
    );
}

#[tokio::test]
async fn pin_back_returns_the_workloads_to_the_previous_image() {
    let c = TestCluster::shared_with_workloads().await;
    let kinds = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];
    let (ns, repo, first, client) = rolled_out_consumers(c, "ro-pinback", &kinds).await;
    let importer = admin_importer(c).await;
    let (new, before) = import_new(c, &importer, &ns, &repo, Some(Failure::CrashLoop)).await;
    assert_eq!(before.as_deref(), Some(first.as_str()));
    let f = followed(&client, &ns, &new, ROLLOUT).await;
    let failure = failure_of(&f).clone();
    assert_eq!(failure.reason, FailureReason::CrashLoopBackOff);

    let stream = importer.stream(&ns, "worker").await.unwrap();
    let source = stream
        .spec_tag("prod")
        .and_then(|t| t.docker_source())
        .unwrap()
        .to_owned();
    let tag = FailedTag {
        namespace: ns.clone(),
        stream: "worker".into(),
        tag: "prod".into(),
        source: source.clone(),
        new_digest: new.clone(),
        history: stream.status_tag("prod").unwrap().items.clone(),
        before_digest: before,
        was_pin_back: false,
    };
    // `report` leaves the tag alone.
    assert!(matches!(
        pinback::on_failure(OnFailedRollout::Report, &tag),
        Action::Report { .. }
    ));
    let Action::PinBack {
        reference,
        pinned_from,
    } = pinback::on_failure(OnFailedRollout::PinBack, &tag)
    else {
        panic!("no pin-back decided");
    };
    assert!(reference.ends_with(&first), "{reference}");
    assert_eq!(pinned_from, source);
    let outcome = pinback::apply(&importer, &tag, &reference, &pinned_from, &failure)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            ImportOutcome::Updated { .. } | ImportOutcome::Unchanged { .. }
        ),
        "{outcome:?}"
    );

    // The triggers set the previous image again.
    let deadline = tokio::time::Instant::now() + ROLLOUT;
    for kind in kinds {
        while !image_of(c, &ns, kind, "worker").await.ends_with(&first) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not rolled back",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // A StatefulSet does not replace a pod of the failed revision that never
    // became ready (Kubernetes' "forced rollback": its pods must be
    // deleted); until then the check sees it short of updated replicas.
    // The Deployment rolls back meanwhile; the StatefulSet stays stuck.
    loop {
        let f = followed(&client, &ns, &first, Duration::from_secs(5)).await;
        let stuck = failure_of(&f);
        assert_eq!(
            stuck.reason,
            FailureReason::NotReadyWithinTimeout,
            "{stuck}"
        );
        if stuck.kind == WorkloadKind::StatefulSet {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Deployment did not roll back: {stuck}"
        );
    }
    let pods = c
        .admin_request("GET", &format!("/api/v1/namespaces/{ns}/pods"), None)
        .await
        .unwrap();
    for p in pods["items"].as_array().unwrap() {
        let name = p["metadata"]["name"].as_str().unwrap();
        let on_new = p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with(&new);
        if on_new && p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet" {
            c.admin_request(
                "DELETE",
                &format!("/api/v1/namespaces/{ns}/pods/{name}"),
                None,
            )
            .await
            .unwrap();
        }
    }
    // The workloads run the previous image again.
    let back = followed(&client, &ns, &first, ROLLOUT).await;
    assert_eq!(back.verdict, Verdict::Succeeded);
    for kind in kinds {
        let image = image_of(c, &ns, kind, "worker").await;
        assert!(image.ends_with(&first), "{} runs {image}", kind.name());
    }
    // Held, with the moving source and the failure recorded.
    let stream = importer.stream(&ns, "worker").await.unwrap();
    let spec = stream.spec_tag("prod").unwrap();
    assert_eq!(spec.docker_source(), Some(reference.as_str()));
    assert_eq!(
        spec.annotations
            .get(import_scheduler::cli::pin::PINNED_FROM_ANNOTATION),
        Some(&source)
    );
    let note = spec.annotations.get(PINNED_BACK_ANNOTATION).unwrap();
    assert!(
        note.starts_with(&new) && note.contains("CrashLoopBackOff"),
        "{note}"
    );

    // A failure of the rollback itself is only reported.
    let again = FailedTag {
        was_pin_back: true,
        source: reference,
        ..tag
    };
    assert!(matches!(
        pinback::on_failure(OnFailedRollout::PinBack, &again),
        Action::Report { .. }
    ));
}
