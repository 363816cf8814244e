//! The importer against the test cluster over real HTTP: the real
//! openshift-apiserver and kube-apiserver behind the front, and a real
//! registry.
//!
//! Every test works in its own namespace; fault rules match that namespace
//! only, because the cluster (and its fault registry) is shared by all tests
//! of this binary.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use import_scheduler::image_ref::ImageRef;
use import_scheduler::importer::{
    ErrorKind, ImageFailure, ImportError, ImportOutcome, Importer, ImporterOptions, RetryPolicy,
    Target, TargetSelector,
};
use import_scheduler::openshift::{
    ImageImportSpec, ImageStream, ImageStreamImport, LocalObjectReference, ObjectReference,
    TagReference,
};
use serde_json::json;
use test_cluster::{FaultKind, FaultRule, TagSeed, TestCluster};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "import_scheduler=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Short backoffs so retried tests stay quick; generous call timeout.
fn options() -> ImporterOptions {
    ImporterOptions {
        call_timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        },
    }
}

async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    // The importer retries by itself; the client's retry layer would hide
    // (and multiply) the server's 429/503 answers.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

async fn importer_from(kubeconfig: &Path, options: ImporterOptions) -> anyhow::Result<Importer> {
    Ok(Importer::new(client_from(kubeconfig).await?, options))
}

async fn admin_importer(cluster: &TestCluster, options: ImporterOptions) -> Importer {
    importer_from(cluster.kubeconfig_path(), options)
        .await
        .expect("an importer from the admin kubeconfig")
}

async fn token_importer(
    cluster: &TestCluster,
    token: &str,
    options: ImporterOptions,
) -> anyhow::Result<Importer> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(token, &path)?;
    importer_from(&path, options).await
}

/// A namespace with one stream per name, each with tag `prod` following
/// `<registry>/<ns>/<stream>:prod`, imported once. Returns the namespace and
/// the pushed digests.
async fn seed(cluster: &TestCluster, prefix: &str, streams: &[&str]) -> (String, Vec<String>) {
    let ns = cluster.create_namespace(prefix).await.expect("namespace");
    let mut digests = Vec::new();
    for stream in streams {
        let repo = format!("{ns}/{stream}");
        digests.push(
            cluster
                .registry()
                .push_image(&repo, "prod")
                .await
                .expect("push"),
        );
        cluster
            .seed_stream(
                &ns,
                stream,
                &[TagSeed::new(
                    "prod",
                    cluster.registry().image_ref(&repo, "prod"),
                )],
            )
            .await
            .expect("seed stream");
    }
    (ns, digests)
}

fn selector(ns: &str) -> TargetSelector {
    TargetSelector {
        environment: "prod".to_owned(),
        namespace: ns.to_owned(),
        tag: "prod".to_owned(),
        ..TargetSelector::default()
    }
}

async fn target(importer: &Importer, ns: &str, stream: &str) -> Target {
    let found = importer.discover(&selector(ns)).await.expect("discover");
    found
        .targets
        .into_iter()
        .find(|t| t.stream == stream)
        .unwrap_or_else(|| panic!("no target {ns}/{stream}:prod"))
}

fn imports_path(ns: &str) -> String {
    format!("/namespaces/{ns}/imagestreamimports")
}

fn assert_failed(
    outcome: &ImportOutcome,
    want_reason: &str,
    want_kind: ErrorKind,
    want_transient: bool,
) -> String {
    match outcome {
        ImportOutcome::Failed {
            reason,
            message,
            transient,
            kind,
        } => {
            assert_eq!(reason, want_reason, "{message}");
            assert_eq!(*kind, want_kind, "{message}");
            assert_eq!(*transient, want_transient, "{message}");
            message.clone()
        }
        other => panic!("expected a {want_reason} failure, got {other:?}"),
    }
}

/// Polls `check` every 200 ms until it returns `Ok`, or panics after `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn unchanged_then_updated_after_a_push() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, digests) = seed(cluster, "imp-update", &["worker"]).await;
    let first = digests[0].clone();
    let importer = admin_importer(cluster, options()).await;

    let t = target(&importer, &ns, "worker").await;
    assert_eq!(t.current.as_deref(), Some(first.as_str()));
    assert!(!t.held);
    assert_eq!(t.key(), format!("{ns}/worker:prod"));
    assert_eq!(
        importer.import(&t).await,
        ImportOutcome::Unchanged {
            digest: first.clone()
        }
    );

    let second = cluster
        .registry()
        .push_image(&format!("{ns}/worker"), "prod")
        .await
        .expect("push");
    assert_ne!(first, second);
    assert_eq!(importer.preview(&t).await.expect("preview"), second);
    // A preview writes nothing.
    assert_eq!(
        importer
            .history(&ns, "worker", "prod")
            .await
            .expect("history")
            .len(),
        1
    );

    assert_eq!(
        importer.import(&t).await,
        ImportOutcome::Updated {
            from: Some(first.clone()),
            to: second.clone()
        }
    );
    let history = importer
        .history(&ns, "worker", "prod")
        .await
        .expect("history");
    let digests: Vec<&str> = history.iter().map(|i| i.image.as_str()).collect();
    assert_eq!(digests, [second.as_str(), first.as_str()]);
    assert!(history[0].docker_image_reference.ends_with(&second));

    // Level-driven: importing again changes nothing.
    let t = target(&importer, &ns, "worker").await;
    assert_eq!(t.current.as_deref(), Some(second.as_str()));
    assert_eq!(
        importer.import(&t).await,
        ImportOutcome::Unchanged { digest: second }
    );
    assert_eq!(
        importer
            .history(&ns, "worker", "prod")
            .await
            .expect("history")
            .len(),
        2
    );
}

#[tokio::test]
async fn a_digest_pinned_tag_is_held_and_never_imported() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = cluster
        .create_namespace("imp-held")
        .await
        .expect("namespace");
    let repo = format!("{ns}/service");
    let pinned_digest = cluster
        .registry()
        .push_image(&repo, "prod")
        .await
        .expect("push");
    let pinned = format!("{}/{repo}@{pinned_digest}", cluster.registry().host());
    cluster
        .seed_stream(&ns, "service", &[TagSeed::new("prod", pinned.clone())])
        .await
        .expect("seed");
    // The moving tag moves on; the pinned tag must not follow.
    cluster
        .registry()
        .push_image(&repo, "prod")
        .await
        .expect("push");
    let importer = admin_importer(cluster, options()).await;
    // Any import request in this namespace would fail loudly.
    let trap = cluster.faults().add(
        FaultRule::new(
            imports_path(&ns),
            FaultKind::Status {
                code: 500,
                retry_after_secs: None,
            },
        )
        .method("POST"),
    );

    let t = target(&importer, &ns, "service").await;
    assert!(t.held);
    assert!(ImageRef::parse(&t.source).is_pinned());
    assert_eq!(
        importer.import(&t).await,
        ImportOutcome::Held {
            reference: pinned.clone()
        }
    );
    assert_eq!(importer.preview(&t).await.expect("preview"), pinned_digest);
    assert_eq!(cluster.faults().hits(trap), 0, "a held tag reached the API");
    cluster.faults().remove(trap);
    let history = importer
        .history(&ns, "service", "prod")
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].image, pinned_digest);
}

#[tokio::test]
async fn discovery_selects_streams_and_reports_missing_and_skipped() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-discover", &["alpha", "beta"]).await;
    let host = cluster.registry().host();
    // A stream with only a stg tag, one whose prod follows another stream's
    // tag, and a labelled one.
    cluster
        .registry()
        .push_image(&format!("{ns}/gamma"), "stg")
        .await
        .expect("push");
    cluster
        .seed_stream(
            &ns,
            "gamma",
            &[TagSeed::new(
                "stg",
                cluster.registry().image_ref(&format!("{ns}/gamma"), "stg"),
            )],
        )
        .await
        .expect("seed gamma");
    let streams = format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams");
    cluster
        .admin_request(
            "POST",
            &streams,
            Some(json!({
                "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": "follower"},
                "spec": {"tags": [{"name": "prod", "from": {"kind": "ImageStreamTag", "name": "alpha:prod"}}]}
            })),
        )
        .await
        .expect("create follower");
    cluster
        .admin_request(
            "POST",
            &streams,
            Some(json!({
                "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": "labelled", "labels": {"team": "packit"}},
                "spec": {"tags": [{"name": "prod", "from": {"kind": "DockerImage", "name": format!("{host}/{ns}/labelled:prod")}, "importPolicy": {"scheduled": true}}]}
            })),
        )
        .await
        .expect("create labelled");
    // A reference tag: OpenShift records the source as a history item with no
    // image and never imports it.
    cluster
        .registry()
        .push_image(&format!("{ns}/referenced"), "prod")
        .await
        .expect("push");
    cluster
        .admin_request(
            "POST",
            &streams,
            Some(json!({
                "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": "referenced"},
                "spec": {"tags": [{"name": "prod", "reference": true, "from": {"kind": "DockerImage", "name": format!("{host}/{ns}/referenced:prod")}}]}
            })),
        )
        .await
        .expect("create referenced");
    let importer = admin_importer(cluster, options()).await;

    let all = importer.discover(&selector(&ns)).await.expect("discover");
    let names: Vec<&str> = all.targets.iter().map(|t| t.stream.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "labelled"]);
    assert!(all.missing.is_empty());
    assert_eq!(all.skipped.len(), 2, "{:?}", all.skipped);
    assert_eq!(all.skipped[0].0, "follower");
    assert!(all.skipped[0].1.contains("ImageStreamTag"));
    assert_eq!(all.skipped[1].0, "referenced");
    assert!(
        all.skipped[1].1.contains("reference: true"),
        "{:?}",
        all.skipped
    );
    let labelled = &all.targets[2];
    assert!(labelled.scheduled);
    assert_eq!(labelled.current, None);
    assert!(!labelled.uid.is_empty() && !labelled.resource_version.is_empty());

    let configured = importer
        .discover(&TargetSelector {
            streams: Some(vec![
                "beta".into(),
                "nonexistent".into(),
                "gamma".into(),
                "alpha".into(),
            ]),
            ..selector(&ns)
        })
        .await
        .expect("discover configured");
    let names: Vec<&str> = configured
        .targets
        .iter()
        .map(|t| t.stream.as_str())
        .collect();
    assert_eq!(names, ["beta", "alpha"]);
    assert_eq!(configured.missing, ["nonexistent", "gamma"]);

    let by_label = importer
        .discover(&TargetSelector {
            label_selector: Some("team=packit".into()),
            ..selector(&ns)
        })
        .await
        .expect("discover by label");
    let names: Vec<&str> = by_label.targets.iter().map(|t| t.stream.as_str()).collect();
    assert_eq!(names, ["labelled"]);

    let empty = importer
        .discover(&selector("imp-no-such-namespace"))
        .await
        .expect("listing an empty namespace");
    assert!(empty.targets.is_empty());
}

/// packit's namespaces also hold foreign images with the environment's tag:
/// `sources` keeps them out of management and says why.
#[tokio::test]
async fn discovery_by_source_prefix_skips_a_foreign_stream_with_the_reason() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = cluster
        .create_namespace("imp-sources")
        .await
        .expect("namespace");
    let registry = cluster.registry();
    for (stream, repo) in [
        ("packit-worker", format!("{ns}/packit/worker")),
        ("nginx", format!("{ns}/nginx/nginx")),
    ] {
        registry.push_image(&repo, "prod").await.expect("push");
        cluster
            .seed_stream(
                &ns,
                stream,
                &[TagSeed::new("prod", registry.image_ref(&repo, "prod"))],
            )
            .await
            .expect("seed stream");
    }
    let packit = format!("{}/{ns}/packit/", registry.host());
    let importer = admin_importer(cluster, options()).await;

    let everything = importer.discover(&selector(&ns)).await.expect("discover");
    let names: Vec<&str> = everything
        .targets
        .iter()
        .map(|t| t.stream.as_str())
        .collect();
    assert_eq!(
        names,
        ["nginx", "packit-worker"],
        "without sources every stream with the tag is managed"
    );

    let found = importer
        .discover(&TargetSelector {
            sources: vec![packit.clone()],
            ..selector(&ns)
        })
        .await
        .expect("discover by sources");
    let names: Vec<&str> = found.targets.iter().map(|t| t.stream.as_str()).collect();
    assert_eq!(names, ["packit-worker"]);
    assert_eq!(
        found.targets[0].source,
        registry.image_ref(&format!("{ns}/packit/worker"), "prod")
    );
    assert_eq!(
        found.skipped,
        [(
            "nginx".to_owned(),
            format!(
                "spec tag prod: from.name {} matches none of environments.prod.sources [{packit}]",
                registry.image_ref(&format!("{ns}/nginx/nginx"), "prod")
            )
        )]
    );
    assert!(found.missing.is_empty());
}

#[tokio::test]
async fn a_missing_registry_tag_fails_that_tag_while_others_import() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, digests) = seed(cluster, "imp-notfound", &["one", "two", "three"]).await;
    let moved = cluster
        .registry()
        .push_image(&format!("{ns}/one"), "prod")
        .await
        .expect("push");
    cluster
        .registry()
        .delete_tag(&format!("{ns}/two"), "prod")
        .await
        .expect("delete tag");
    let importer = admin_importer(cluster, options()).await;
    let mut targets = importer
        .discover(&selector(&ns))
        .await
        .expect("discover")
        .targets;
    targets.reverse();
    let mut results = Vec::new();
    for t in targets {
        let outcome = importer.import(&t).await;
        results.push((t, outcome));
    }
    let streams: Vec<&str> = results.iter().map(|(t, _)| t.stream.as_str()).collect();
    assert_eq!(streams, ["two", "three", "one"]);

    let message = assert_failed(
        &results[0].1,
        "NotFound",
        ErrorKind::Registry(ImageFailure::MissingImage),
        false,
    );
    assert!(message.contains(&format!("{ns}/two:prod")), "{message}");
    assert!(
        message.contains("push it, or fix the tag's from.name"),
        "{message}"
    );
    assert_eq!(
        results[1].1,
        ImportOutcome::Unchanged {
            digest: digests[2].clone()
        }
    );
    assert_eq!(
        results[2].1,
        ImportOutcome::Updated {
            from: Some(digests[0].clone()),
            to: moved
        }
    );

    // The failed tag keeps its history and records the failure.
    let two = importer.stream(&ns, "two").await.expect("stream two");
    assert_eq!(
        two.newest_item("prod").map(|i| i.image.as_str()),
        Some(digests[1].as_str())
    );
    let failure = two
        .status_tag("prod")
        .and_then(|s| s.import_failure())
        .expect("an ImportSuccess=False condition");
    assert_eq!(failure.reason.as_deref(), Some("NotFound"));

    let preview = importer
        .preview(&results[0].0)
        .await
        .expect_err("preview of a missing tag");
    assert!(preview.is_not_found(), "{preview}");
}

#[tokio::test]
async fn a_bad_token_gets_401_and_no_retries() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-401", &["worker"]).await;
    let admin = admin_importer(cluster, options()).await;
    let t = target(&admin, &ns, "worker").await;

    let importer = token_importer(cluster, "not-a-valid-token", options())
        .await
        .expect("importer");
    let message = assert_failed(
        &importer.import(&t).await,
        "Unauthorized",
        ErrorKind::Unauthorized,
        false,
    );
    assert!(message.contains("renew the token"), "{message}");
    let error = importer
        .discover(&selector(&ns))
        .await
        .expect_err("discovery with a bad token");
    assert!(matches!(error, ImportError::Unauthorized { .. }), "{error}");
    assert_eq!(error.status_code(), Some(401));
}

#[tokio::test]
async fn a_read_only_service_account_gets_403_on_import_and_pin() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, digests) = seed(cluster, "imp-403", &["worker"]).await;
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            Some(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "imagestream-reader"},
                "rules": [{"apiGroups": ["image.openshift.io"], "resources": ["imagestreams"], "verbs": ["get", "list", "watch"]}]
            })),
        )
        .await
        .expect("role");
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            Some(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "imagestream-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
            })),
        )
        .await
        .expect("role binding");
    let token = cluster
        .service_account_token(&ns, "reader")
        .await
        .expect("token");
    let reader = token_importer(cluster, &token, options())
        .await
        .expect("importer");

    // RBAC reaches the authorizer's cache shortly after the binding exists.
    let t = eventually(
        Duration::from_secs(20),
        "the Role to allow listing",
        || async {
            match reader.discover(&selector(&ns)).await {
                Ok(d) => d.targets.into_iter().next().ok_or("no target".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    let message = assert_failed(
        &reader.import(&t).await,
        "Forbidden",
        ErrorKind::Forbidden,
        false,
    );
    assert!(
        message.contains(&format!(
            "grant `create` on `imagestreamimports` (group image.openshift.io) in namespace {ns}"
        )),
        "{message}"
    );
    assert!(message.contains("system:serviceaccount"), "{message}");
    let preview = reader.preview(&t).await.expect_err("preview needs create");
    assert!(
        matches!(preview, ImportError::Forbidden { .. }),
        "{preview}"
    );

    let pinned = format!("{}/{ns}/worker@{}", cluster.registry().host(), digests[0]);
    let error = reader
        .pin(&ns, "worker", "prod", &pinned)
        .await
        .expect_err("pin needs patch");
    assert_eq!(error.status_code(), Some(403), "{error}");
    assert!(
        error
            .to_string()
            .contains("grant `patch` on `imagestreams`"),
        "{error}"
    );

    let history = reader
        .history(&ns, "worker", "prod")
        .await
        .expect("reading is allowed");
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn a_conflict_rereads_the_stream_and_retries() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-409", &["worker", "service"]).await;
    let importer = admin_importer(cluster, options()).await;

    // An injected 409 on the first import request.
    let t = target(&importer, &ns, "worker").await;
    let fault = cluster.faults().add(
        FaultRule::new(
            imports_path(&ns),
            FaultKind::Status {
                code: 409,
                retry_after_secs: None,
            },
        )
        .method("POST")
        .times(1),
    );
    let outcome = importer.import(&t).await;
    assert_eq!(cluster.faults().hits(fault), 1);
    cluster.faults().remove(fault);
    assert!(
        matches!(outcome, ImportOutcome::Unchanged { .. }),
        "{outcome:?}"
    );

    // A real one: the stream was deleted and created again after discovery,
    // so the resourceVersion precondition fails.
    let stale = target(&importer, &ns, "service").await;
    cluster
        .admin_request(
            "DELETE",
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/service"),
            None,
        )
        .await
        .expect("delete");
    let repo = format!("{ns}/service");
    let recreated = cluster
        .registry()
        .push_image(&repo, "prod")
        .await
        .expect("push");
    cluster
        .seed_stream(
            &ns,
            "service",
            &[TagSeed {
                import: false,
                ..TagSeed::new("prod", cluster.registry().image_ref(&repo, "prod"))
            }],
        )
        .await
        .expect("recreate");

    let no_retry = admin_importer(
        cluster,
        ImporterOptions {
            retry: RetryPolicy {
                max_attempts: 1,
                ..options().retry
            },
            ..options()
        },
    )
    .await;
    let message = assert_failed(
        &no_retry.import(&stale).await,
        "Conflict",
        ErrorKind::Conflict,
        true,
    );
    // openshift-apiserver's own words for a stale resourceVersion.
    assert!(
        message.contains("the image stream was updated from"),
        "{message}"
    );

    // The retried import decides on the new stream: its first image (which
    // openshift-controller-manager may have imported first, as it imports
    // every new tag).
    let outcome = importer.import(&stale).await;
    assert!(
        outcome
            == ImportOutcome::Updated {
                from: None,
                to: recreated.clone()
            }
            || outcome
                == ImportOutcome::Unchanged {
                    digest: recreated.clone()
                },
        "{outcome:?}"
    );
    let history = importer
        .history(&ns, "service", "prod")
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].image, recreated);
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-hang", &["worker"]).await;
    let importer = admin_importer(
        cluster,
        ImporterOptions {
            call_timeout: Duration::from_millis(700),
            retry: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        },
    )
    .await;
    let t = target(&importer, &ns, "worker").await;
    let hang = cluster
        .faults()
        .add(FaultRule::new(imports_path(&ns), FaultKind::Hang).method("POST"));
    let message = assert_failed(
        &importer.import(&t).await,
        "Timeout",
        ErrorKind::Timeout,
        true,
    );
    assert!(message.contains(&t.key()), "{message}");
    assert_eq!(
        cluster.faults().hits(hang),
        2,
        "each attempt should have been sent"
    );
    let error = importer.preview(&t).await.expect_err("preview hangs too");
    assert!(matches!(error, ImportError::Timeout { .. }), "{error}");
    cluster.faults().remove(hang);

    // The same importer works once the server answers again.
    assert!(matches!(
        importer.import(&t).await,
        ImportOutcome::Unchanged { .. }
    ));
}

#[tokio::test]
async fn server_errors_throttling_and_dropped_connections_are_retried() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, digests) = seed(cluster, "imp-5xx", &["worker"]).await;
    let importer = admin_importer(cluster, options()).await;
    let t = target(&importer, &ns, "worker").await;
    let unchanged = ImportOutcome::Unchanged {
        digest: digests[0].clone(),
    };

    let failing = cluster.faults().add(
        FaultRule::new(
            imports_path(&ns),
            FaultKind::Status {
                code: 503,
                retry_after_secs: None,
            },
        )
        .method("POST")
        .times(2),
    );
    assert_eq!(importer.import(&t).await, unchanged);
    assert_eq!(cluster.faults().hits(failing), 2);
    cluster.faults().remove(failing);

    let throttled = cluster.faults().add(
        FaultRule::new(
            imports_path(&ns),
            FaultKind::Status {
                code: 429,
                retry_after_secs: Some(1),
            },
        )
        .method("POST")
        .times(1),
    );
    assert_eq!(importer.import(&t).await, unchanged);
    assert_eq!(cluster.faults().hits(throttled), 1);
    cluster.faults().remove(throttled);

    let dropped = cluster.faults().add(
        FaultRule::new(format!("/namespaces/{ns}/imagestreams"), FaultKind::Drop)
            .method("GET")
            .times(1),
    );
    let found = importer.discover(&selector(&ns)).await.expect("discover");
    assert_eq!(found.targets.len(), 1);
    assert_eq!(cluster.faults().hits(dropped), 1);
    cluster.faults().remove(dropped);

    // The registry failing behind the image API: a per-image InternalError.
    let registry = cluster.faults().add(
        FaultRule::new(
            format!("/v2/{ns}/worker/manifests/"),
            FaultKind::Status {
                code: 500,
                retry_after_secs: None,
            },
        )
        .times(1),
    );
    assert_eq!(importer.import(&t).await, unchanged);
    assert_eq!(cluster.faults().hits(registry), 1);
    cluster.faults().remove(registry);

    // Without retries the same faults are reported as transient failures.
    let once = admin_importer(
        cluster,
        ImporterOptions {
            retry: RetryPolicy {
                max_attempts: 1,
                ..options().retry
            },
            ..options()
        },
    )
    .await;
    let failing = cluster.faults().add(
        FaultRule::new(
            imports_path(&ns),
            FaultKind::Status {
                code: 500,
                retry_after_secs: None,
            },
        )
        .method("POST")
        .times(1),
    );
    assert_failed(
        &once.import(&t).await,
        "InternalError",
        ErrorKind::ServerError,
        true,
    );
    cluster.faults().remove(failing);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-perm", &["worker"]).await;
    let importer = admin_importer(cluster, options()).await;
    let t = target(&importer, &ns, "worker").await;
    for (code, reason, kind) in [
        (404, "NotFound", ErrorKind::NotFound),
        (422, "Invalid", ErrorKind::Invalid),
        (403, "Forbidden", ErrorKind::Forbidden),
    ] {
        let fault = cluster.faults().add(
            FaultRule::new(
                imports_path(&ns),
                FaultKind::Status {
                    code,
                    retry_after_secs: None,
                },
            )
            .method("POST"),
        );
        assert_failed(&importer.import(&t).await, reason, kind, false);
        assert_eq!(cluster.faults().hits(fault), 1, "HTTP {code} was retried");
        cluster.faults().remove(fault);
    }
    // The registry refusing access is permanent too.
    let fault = cluster.faults().add(FaultRule::new(
        format!("/v2/{ns}/worker/manifests/"),
        FaultKind::Status {
            code: 401,
            retry_after_secs: None,
        },
    ));
    let message = assert_failed(
        &importer.import(&t).await,
        "Unauthorized",
        ErrorKind::Registry(ImageFailure::AccessDenied),
        false,
    );
    assert!(message.contains("pull secret"), "{message}");
    assert_eq!(cluster.faults().hits(fault), 1);
    cluster.faults().remove(fault);
}

#[tokio::test]
async fn pin_then_restore_round_trip() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = cluster
        .create_namespace("imp-pin")
        .await
        .expect("namespace");
    let repo = format!("{ns}/worker");
    let registry = cluster.registry();
    let first = registry.push_image(&repo, "prod").await.expect("push");
    registry.push_image(&repo, "stg").await.expect("push stg");
    let source = registry.image_ref(&repo, "prod");
    cluster
        .seed_stream(
            &ns,
            "worker",
            &[
                TagSeed::new("prod", source.clone()),
                TagSeed {
                    scheduled: true,
                    ..TagSeed::new("stg", registry.image_ref(&repo, "stg"))
                },
            ],
        )
        .await
        .expect("seed");
    let importer = admin_importer(cluster, options()).await;
    let second = registry.push_image(&repo, "prod").await.expect("push");
    let t = target(&importer, &ns, "worker").await;
    assert_eq!(
        importer.import(&t).await,
        ImportOutcome::Updated {
            from: Some(first.clone()),
            to: second.clone()
        }
    );
    let before = importer.stream(&ns, "worker").await.expect("stream");

    // Roll back: pin prod to the first digest.
    let pinned = format!("{}/{repo}@{first}", registry.host());
    let after_pin = importer
        .pin(&ns, "worker", "prod", &pinned)
        .await
        .expect("pin");
    let prod = after_pin.spec_tag("prod").expect("prod");
    assert_eq!(prod.docker_source(), Some(pinned.as_str()));
    let was = before.spec_tag("prod").expect("prod before");
    assert_eq!(prod.reference_policy, was.reference_policy);
    assert_eq!(after_pin.spec_tag("stg"), before.spec_tag("stg"));
    assert_eq!(after_pin.spec.tags.len(), 2);

    let held = target(&importer, &ns, "worker").await;
    assert!(held.held);
    assert_eq!(
        importer.import(&held).await,
        ImportOutcome::Held {
            reference: pinned.clone()
        }
    );

    // Restore the moving tag; imports follow it again.
    let restored = importer
        .restore(&ns, "worker", "prod", &source)
        .await
        .expect("restore");
    assert_eq!(
        restored.spec_tag("prod").and_then(|t| t.docker_source()),
        Some(source.as_str())
    );
    assert_eq!(restored.spec_tag("stg"), before.spec_tag("stg"));
    let again = target(&importer, &ns, "worker").await;
    assert!(!again.held);
    assert_eq!(
        importer.import(&again).await,
        ImportOutcome::Unchanged { digest: second }
    );

    // Wrong arguments change nothing.
    let error = importer
        .pin(&ns, "worker", "prod", &source)
        .await
        .expect_err("a tag is not a digest");
    assert!(
        matches!(error, ImportError::InvalidArgument { .. }),
        "{error}"
    );
    let error = importer
        .restore(&ns, "worker", "prod", &pinned)
        .await
        .expect_err("restore to a digest");
    assert!(
        matches!(error, ImportError::InvalidArgument { .. }),
        "{error}"
    );
    let error = importer
        .pin(&ns, "worker", "canary", &pinned)
        .await
        .expect_err("no such tag");
    assert!(error.is_not_found(), "{error}");
    let error = importer
        .pin(&ns, "nonexistent", "prod", &pinned)
        .await
        .expect_err("no such stream");
    assert!(error.is_not_found(), "{error}");
    // Compared without generations: openshift-controller-manager's import
    // after the restore bumps them.
    let without_generations = |tags: &[TagReference]| {
        tags.iter()
            .map(|t| TagReference {
                generation: None,
                ..t.clone()
            })
            .collect::<Vec<_>>()
    };
    let unchanged = importer.stream(&ns, "worker").await.expect("stream");
    assert_eq!(
        without_generations(&unchanged.spec.tags),
        without_generations(&restored.spec.tags)
    );
}

#[tokio::test]
async fn history_of_missing_streams_and_tags_is_not_found() -> anyhow::Result<()> {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, _) = seed(cluster, "imp-history", &["worker"]).await;
    let importer = admin_importer(cluster, options()).await;
    let error = importer
        .history(&ns, "nonexistent", "prod")
        .await
        .err()
        .context("history of a missing stream")?;
    assert!(error.is_not_found(), "{error}");
    assert!(error.to_string().starts_with(&format!("{ns}/nonexistent")));
    let error = importer
        .history(&ns, "worker", "canary")
        .await
        .err()
        .context("history of a missing tag")?;
    assert!(error.is_not_found(), "{error}");
    assert!(error.to_string().contains(&format!("{ns}/worker:canary")));
    Ok(())
}

#[tokio::test]
async fn the_types_work_with_kube_api() -> anyhow::Result<()> {
    init_logs();
    let cluster = TestCluster::shared().await;
    let (ns, digests) = seed(cluster, "imp-api", &["worker"]).await;
    let client = client_from(cluster.kubeconfig_path()).await?;

    let streams: kube::Api<ImageStream> = kube::Api::namespaced(client.clone(), &ns);
    let listed = streams.list(&Default::default()).await?;
    assert_eq!(listed.items.len(), 1);
    let worker = streams.get("worker").await?;
    assert_eq!(worker.name(), "worker");
    assert_eq!(worker.kind, "ImageStream");
    assert_eq!(
        worker.newest_item("prod").map(|i| i.image.as_str()),
        Some(digests[0].as_str())
    );
    // What the server stored reads back the same through the raw API.
    let raw = cluster.stream(&ns, "worker").await?;
    let typed: ImageStream = serde_json::from_value(raw)?;
    assert_eq!(typed.spec, worker.spec);
    assert_eq!(typed.status, worker.status);

    let imports: kube::Api<ImageStreamImport> = kube::Api::namespaced(client, &ns);
    let request = ImageStreamImport::new(
        &ns,
        "worker",
        false,
        ImageImportSpec {
            from: ObjectReference::docker_image(
                cluster
                    .registry()
                    .image_ref(&format!("{ns}/worker"), "prod"),
            ),
            to: Some(LocalObjectReference {
                name: "prod".into(),
            }),
            ..ImageImportSpec::default()
        },
    );
    let answer = imports.create(&Default::default(), &request).await?;
    let image = answer
        .status
        .as_ref()
        .and_then(|s| s.images.first())
        .context("status.images")?;
    assert!(image.succeeded(), "{image:?}");
    assert_eq!(image.digest(), Some(digests[0].as_str()));
    Ok(())
}
