//! The operator commands (`status`, `import`, `history`, `pin`, `restore`)
//! as a new user runs them: the built binary, a configuration file naming a
//! test namespace, and the test cluster (real kube-apiserver,
//! openshift-apiserver and openshift-controller-manager, real registry)
//! behind a kubeconfig; pins made by operators use the real `oc`.
//!
//! Every test works in its own namespace of the shared cluster. Results are
//! checked through the API, not only through what the commands print.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::{run_cli, CliRun};
use test_cluster::{TagSeed, TestCluster};

const PINNED_FROM: &str = "image-import-scheduler.packit.dev/pinned-from";

/// Runs the binary with `args`, isolated from the caller's kubeconfig and settings.
async fn cli(args: &[&str]) -> CliRun {
    run_cli(args, &[]).await
}

/// A test namespace with its configuration file and kubeconfig.
struct Fixture {
    cluster: &'static TestCluster,
    ns: String,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fixture {
    /// A namespace and a configuration with environment `prod` (windowed, its
    /// next window days away) importing tag `prod` of every stream there.
    async fn new(prefix: &str) -> Fixture {
        let cluster = TestCluster::shared().await;
        let ns = cluster.create_namespace(prefix).await.expect("namespace");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_yaml(&ns)).expect("write config");
        Fixture {
            cluster,
            ns,
            _dir: dir,
            config,
        }
    }

    fn repo(&self, stream: &str) -> String {
        format!("{}/{stream}", self.ns)
    }

    fn source(&self, stream: &str) -> String {
        self.cluster
            .registry()
            .image_ref(&self.repo(stream), "prod")
    }

    /// Pushes an image to `<ns>/<stream>:prod` and creates the stream
    /// following it, imported once; returns the digest.
    async fn seed(&self, stream: &str) -> String {
        let digest = self.push(stream).await;
        self.cluster
            .seed_stream(
                &self.ns,
                stream,
                &[TagSeed {
                    import: true,
                    ..TagSeed::new("prod", self.source(stream))
                }],
            )
            .await
            .expect("seed stream");
        digest
    }

    async fn push(&self, stream: &str) -> String {
        self.cluster
            .registry()
            .push_image(&self.repo(stream), "prod")
            .await
            .expect("push image")
    }

    /// Runs the binary with the admin kubeconfig and this fixture's configuration.
    async fn run(&self, args: &[&str]) -> CliRun {
        self.run_as(self.cluster.kubeconfig_path(), args).await
    }

    async fn run_as(&self, kubeconfig: &Path, args: &[&str]) -> CliRun {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config.to_str().expect("utf-8 path");
        let kubeconfig = kubeconfig.to_str().expect("utf-8 path");
        all.extend(["--config", config, "--kubeconfig", kubeconfig]);
        cli(&all).await
    }

    async fn stream(&self, stream: &str) -> Value {
        self.cluster
            .stream(&self.ns, stream)
            .await
            .expect("read stream")
    }

    /// The digests of the tag's history, newest first.
    async fn history(&self, stream: &str) -> Vec<String> {
        let is = self.stream(stream).await;
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

    /// The spec tag `prod` of `stream`.
    async fn spec_tag(&self, stream: &str) -> Value {
        let is = self.stream(stream).await;
        is["spec"]["tags"]
            .as_array()
            .and_then(|tags| tags.iter().find(|t| t["name"] == "prod"))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// `reason` and `note` of every Event in the namespace.
    async fn events(&self) -> Vec<(String, String)> {
        let list = self
            .cluster
            .admin_request(
                "GET",
                &format!("/apis/events.k8s.io/v1/namespaces/{}/events", self.ns),
                None,
            )
            .await
            .expect("list events");
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|e| {
                        (
                            e["reason"].as_str().unwrap_or_default().to_owned(),
                            e["note"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn config_yaml(ns: &str) -> String {
    format!(
        r#"environments:
  prod:
    namespace: {ns}
    tag: prod
    mode: windowed
    schedule: "0 2 29 2 *"
    timeZone: Europe/Prague
    window: 1h
"#
    )
}

fn short(digest: &str) -> &str {
    &digest["sha256:".len().."sha256:".len() + 12]
}

fn tag_json<'a>(status: &'a Value, stream: &str) -> &'a Value {
    status["environments"][0]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["stream"] == stream))
        .unwrap_or_else(|| panic!("no tag of stream {stream} in {status:#}"))
}

#[tokio::test]
async fn import_history_pin_and_restore_round_trip() {
    let f = Fixture::new("cli-flow").await;
    let first = f.seed("worker").await;
    let service = f.seed("service").await;
    let second = f.push("worker").await;
    assert_ne!(first, second);

    // status: the source moved on, nothing pinned, the daemon recorded nothing.
    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status")
        .json();
    let env = &status["environments"][0];
    assert_eq!(env["mode"], "windowed");
    assert_eq!(env["paused"], false);
    assert_eq!(env["window"]["state"], "next", "{env:#}");
    let worker = tag_json(&status, "worker");
    assert_eq!(worker["current"], first.as_str());
    assert_eq!(worker["sourceDigest"], second.as_str());
    assert_eq!(worker["sourceMoved"], true);
    assert_eq!(worker["held"], false);
    assert!(worker["importedAt"].is_string(), "{worker:#}");
    assert!(worker["lastOutcome"].is_null(), "{worker:#}");
    assert_eq!(tag_json(&status, "service")["sourceMoved"], false);
    let text = f.run(&["status"]).await.expect(0, "status text");
    assert!(
        text.stdout
            .contains(&format!("moved on to {}", short(&second))),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("none recorded"), "{}", text.stdout);
    assert!(text.stdout.contains("next window: "), "{}", text.stdout);

    // import --dry-run: shows old -> new, writes nothing.
    let dry = f
        .run(&["import", "--env", "prod", "--dry-run"])
        .await
        .expect(0, "import --dry-run");
    assert!(
        dry.stdout.contains(&format!(
            "worker:prod {} -> {}",
            short(&first),
            short(&second)
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("service:prod unchanged"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        f.history("worker").await,
        vec![first.clone()],
        "dry run wrote"
    );

    // import: rolls the new image in, outside any window.
    let imported = f
        .run(&["import", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "import");
    assert!(
        imported.stdout.contains(&format!("-> {}", short(&second))),
        "{}",
        imported.stdout
    );
    assert!(!imported.stdout.contains("service"), "{}", imported.stdout);
    assert_eq!(
        f.history("worker").await,
        vec![second.clone(), first.clone()]
    );
    assert_eq!(f.history("service").await, vec![service.clone()]);
    let events = f.events().await;
    assert!(
        events.iter().any(|(reason, note)| reason == "ManualImport"
            && note.contains("test-cluster-user")
            && note.contains(&second)),
        "{events:?}"
    );

    // history: both digests, newest first, the current one marked.
    let history = f
        .run(&[
            "history", "--env", "prod", "--stream", "worker", "--output", "json",
        ])
        .await
        .expect(0, "history")
        .json();
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{history:#}");
    assert_eq!(items[0]["digest"], second.as_str());
    assert_eq!(items[0]["current"], true);
    assert_eq!(items[1]["digest"], first.as_str());
    assert_eq!(items[1]["current"], false);
    let text = f
        .run(&["history", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "history text");
    let current_line = text
        .stdout
        .lines()
        .find(|l| l.starts_with('*'))
        .unwrap_or_else(|| panic!("no current line:\n{}", text.stdout));
    assert!(current_line.contains(&second), "{}", text.stdout);
    assert!(text.stdout.contains(&first), "{}", text.stdout);

    // pin --to-previous: the tag follows the first digest and records its source.
    let pinned = f
        .run(&[
            "pin",
            "--env",
            "prod",
            "--stream",
            "worker",
            "--to-previous",
        ])
        .await
        .expect(0, "pin --to-previous");
    assert!(
        pinned
            .stdout
            .contains(&format!("before: {}", short(&second))),
        "{}",
        pinned.stdout
    );
    assert!(
        pinned
            .stdout
            .contains(&format!("after:  {}", short(&first))),
        "{}",
        pinned.stdout
    );
    let spec = f.spec_tag("worker").await;
    let from = spec["from"]["name"].as_str().unwrap_or_default().to_owned();
    assert!(from.ends_with(&format!("@{first}")), "{spec:#}");
    assert_eq!(
        spec["annotations"][PINNED_FROM],
        f.source("worker").as_str(),
        "{spec:#}"
    );
    assert_eq!(f.history("worker").await.first(), Some(&first));

    // While pinned: status says so, and import leaves the tag alone.
    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status while pinned")
        .json();
    let worker = tag_json(&status, "worker");
    assert_eq!(worker["held"], true);
    assert_eq!(worker["pinnedReference"], from.as_str());
    assert_eq!(worker["restoresTo"], f.source("worker").as_str());
    let skipped = f
        .run(&["import", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "import of a pinned tag");
    assert!(skipped.stdout.contains("skipped"), "{}", skipped.stdout);
    assert!(skipped.stdout.contains("restore"), "{}", skipped.stdout);
    assert_eq!(f.history("worker").await.first(), Some(&first));

    // restore: back to the moving source, newest image imported again.
    let restored = f
        .run(&[
            "restore", "--env", "prod", "--stream", "worker", "--output", "json",
        ])
        .await
        .expect(0, "restore")
        .json();
    assert_eq!(restored["before"]["digest"], first.as_str());
    assert_eq!(restored["after"]["digest"], second.as_str());
    let spec = f.spec_tag("worker").await;
    assert_eq!(
        spec["from"]["name"],
        f.source("worker").as_str(),
        "{spec:#}"
    );
    assert!(
        spec["annotations"]
            .get(PINNED_FROM)
            .is_none_or(Value::is_null),
        "{spec:#}"
    );
    assert_eq!(f.history("worker").await.first(), Some(&second));

    let events = f.events().await;
    for reason in ["Pinned", "Restored"] {
        assert!(
            events
                .iter()
                .any(|(r, note)| r == reason && note.contains("test-cluster-user")),
            "no {reason} event: {events:?}"
        );
    }

    // Restoring a tag that is not pinned changes nothing.
    let again = f
        .run(&["restore", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "restore of an unpinned tag");
    assert!(again.stdout.contains("not pinned"), "{}", again.stdout);
}

#[tokio::test]
async fn pin_by_digest_generation_and_force() {
    let f = Fixture::new("cli-pin").await;
    let first = f.seed("worker").await;
    let second = f.push("worker").await;
    f.run(&["import", "--env", "prod"])
        .await
        .expect(0, "import");

    // A digest prefix from the history.
    f.run(&[
        "pin",
        "--env",
        "prod",
        "--stream",
        "worker",
        "--to",
        short(&first),
    ])
    .await
    .expect(0, "pin --to prefix");
    assert_eq!(f.history("worker").await.first(), Some(&first));

    // A generation from `history`.
    let history = f
        .run(&[
            "history", "--env", "prod", "--stream", "worker", "--output", "json",
        ])
        .await
        .expect(0, "history")
        .json();
    let generation = history["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["digest"] == second.as_str()))
        .map(|i| i["generation"].to_string())
        .expect("the second digest in the history");
    f.run(&[
        "pin",
        "--env",
        "prod",
        "--stream",
        "worker",
        "--to-generation",
        &generation,
    ])
    .await
    .expect(0, "pin --to-generation");
    assert_eq!(f.history("worker").await.first(), Some(&second));
    // The second pin keeps the moving source the first one recorded.
    assert_eq!(
        f.spec_tag("worker").await["annotations"][PINNED_FROM],
        f.source("worker").as_str()
    );

    // A digest the history does not know: refused, unless forced.
    let unknown = f
        .cluster
        .registry()
        .push_image(&f.repo("worker"), "candidate")
        .await
        .expect("push");
    let refused = f
        .run(&[
            "pin", "--env", "prod", "--stream", "worker", "--to", &unknown,
        ])
        .await
        .expect(2, "pin to an unknown digest");
    assert!(
        refused.stderr.contains("does not know digest"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&first) && refused.stderr.contains(&second),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        f.history("worker").await.first(),
        Some(&second),
        "a refused pin wrote"
    );

    f.run(&[
        "pin", "--env", "prod", "--stream", "worker", "--to", &unknown, "--force",
    ])
    .await
    .expect(0, "pin --force");
    assert_eq!(f.history("worker").await.first(), Some(&unknown));

    f.run(&["restore", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "restore");
    assert_eq!(
        f.spec_tag("worker").await["from"]["name"],
        f.source("worker").as_str()
    );
    assert_eq!(f.history("worker").await.first(), Some(&second));
}

#[tokio::test]
async fn wrong_names_are_usage_errors_that_list_what_exists() {
    let f = Fixture::new("cli-usage").await;
    f.seed("worker").await;
    // A stream without the environment's tag.
    f.cluster
        .seed_stream(
            &f.ns,
            "other",
            &[TagSeed {
                import: false,
                ..TagSeed::new("stg", f.source("other"))
            }],
        )
        .await
        .expect("seed other");

    let run = f
        .run(&["import", "--env", "staging"])
        .await
        .expect(2, "unknown env");
    assert!(
        run.stderr.contains("unknown environment \"staging\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("known environments: prod"),
        "{}",
        run.stderr
    );

    let run = f
        .run(&["import", "--env", "prod", "--stream", "nope"])
        .await
        .expect(2, "unknown stream");
    assert!(run.stderr.contains("\"nope\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("with tag prod: worker"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no imagestream nope"), "{}", run.stderr);

    let run = f
        .run(&["pin", "--env", "prod", "--stream", "other", "--to-previous"])
        .await
        .expect(2, "stream without the tag");
    assert!(
        run.stderr.contains("has no tag prod; its tags: stg"),
        "{}",
        run.stderr
    );

    let run = f
        .run(&[
            "history", "--env", "prod", "--stream", "nope", "--output", "json",
        ])
        .await
        .expect(2, "unknown stream, json");
    let doc = run.json();
    assert_eq!(doc["exitCode"], 2);
    assert!(
        doc["error"].as_str().unwrap_or_default().contains("nope"),
        "{doc:#}"
    );

    let run = f
        .run(&[
            "pin",
            "--env",
            "prod",
            "--stream",
            "worker",
            "--to-previous",
        ])
        .await
        .expect(2, "nothing before the only image");
    assert!(
        run.stderr.contains("no image before the current one"),
        "{}",
        run.stderr
    );

    let run = cli(&["status", "--config", "/nonexistent/config.yaml"])
        .await
        .expect(2, "missing file");
    assert!(
        run.stderr.contains("/nonexistent/config.yaml"),
        "{}",
        run.stderr
    );

    let kubeconfig = f.cluster.kubeconfig_path().to_str().expect("utf-8");
    let run = cli(&[
        "status",
        "--configmap",
        "no-slash",
        "--kubeconfig",
        kubeconfig,
    ])
    .await
    .expect(2, "bad --configmap");
    assert!(run.stderr.contains("NAMESPACE/NAME"), "{}", run.stderr);

    // clap's own usage errors share the exit code.
    cli(&["pin", "--env", "prod", "--stream", "worker"])
        .await
        .expect(2, "pin without a target image");
}

#[tokio::test]
async fn configuration_from_a_configmap() {
    let f = Fixture::new("cli-cm").await;
    let digest = f.seed("worker").await;
    // OpenShift would re-import this one every 15 minutes, defeating the window.
    f.push("scheduled").await;
    f.cluster
        .seed_stream(
            &f.ns,
            "scheduled",
            &[TagSeed {
                scheduled: true,
                ..TagSeed::new("prod", f.source("scheduled"))
            }],
        )
        .await
        .expect("seed a scheduled stream");
    let kubeconfig = f
        .cluster
        .kubeconfig_path()
        .to_str()
        .expect("utf-8")
        .to_owned();
    let configmap = format!("{}/image-import-scheduler", f.ns);

    let run = cli(&[
        "status",
        "--configmap",
        &configmap,
        "--kubeconfig",
        &kubeconfig,
    ])
    .await
    .expect(2, "no ConfigMap yet");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);

    f.cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", f.ns),
            Some(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "image-import-scheduler"},
                "data": {"config.yaml": config_yaml(&f.ns)},
            })),
        )
        .await
        .expect("create ConfigMap");
    let status = cli(&[
        "status",
        "--configmap",
        &configmap,
        "--kubeconfig",
        &kubeconfig,
        "--output",
        "json",
    ])
    .await
    .expect(0, "status from the ConfigMap")
    .json();
    let worker = tag_json(&status, "worker");
    assert_eq!(worker["current"], digest.as_str());
    assert!(worker["lastOutcome"].is_null(), "{worker:#}");
    assert!(
        tag_json(&status, "scheduled")["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("importPolicy.scheduled is true")),
        "{status:#}"
    );
    assert_eq!(
        worker["warnings"].as_array().map(Vec::len),
        Some(0),
        "{worker:#}"
    );

    // The daemon's state next to the configuration: its last outcome is shown.
    let state = json!({
        "windowId": "2026-11-24T01:00:00Z",
        "tags": {"worker:prod": {
            "lastOutcome": "failed",
            "at": "2026-11-24T01:10:00Z",
            "attempts": 3,
            "lastError": "NotFound: the source image is gone",
            "windowId": "2026-11-24T01:00:00Z",
        }},
    });
    f.cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", f.ns),
            Some(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "image-import-scheduler-status"},
                "data": {"prod": state.to_string()},
            })),
        )
        .await
        .expect("create the status ConfigMap");
    let text = cli(&[
        "status",
        "--configmap",
        &configmap,
        "--kubeconfig",
        &kubeconfig,
    ])
    .await
    .expect(0, "status with recorded outcomes");
    let daemon_line = text
        .stdout
        .lines()
        .find(|l| l.contains("daemon:  failed at 2026-11-24 01:10:00Z"))
        .unwrap_or_else(|| panic!("no recorded failure:\n{}", text.stdout));
    assert!(
        daemon_line.ends_with(
            "NotFound: the source image is gone, window 2026-11-24T01:00:00Z, 3 attempts"
        ),
        "{daemon_line}"
    );
    assert!(
        text.stdout
            .contains("warning: importPolicy.scheduled is true"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn a_failed_import_exits_1_with_its_reason() {
    let f = Fixture::new("cli-fail").await;
    f.seed("worker").await;
    let healthy = f.seed("service").await;
    f.cluster
        .registry()
        .delete_tag(&f.repo("worker"), "prod")
        .await
        .expect("delete the source tag");

    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status with a broken source")
        .json();
    let worker = tag_json(&status, "worker");
    assert!(worker["sourceMoved"].is_null(), "{worker:#}");
    assert!(
        worker["sourceError"]
            .as_str()
            .is_some_and(|e| e.contains("NotFound")),
        "{worker:#}"
    );

    let run = f
        .run(&["import", "--env", "prod"])
        .await
        .expect(1, "failed import");
    assert!(
        run.stdout.contains("worker:prod FAILED: NotFound"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("service:prod unchanged"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 of 2 imports failed"),
        "{}",
        run.stdout
    );
    assert_eq!(f.history("service").await, vec![healthy]);

    let doc = f
        .run(&["import", "--env", "prod", "--output", "json"])
        .await
        .expect(1, "failed import, json")
        .json();
    assert_eq!(doc["failed"], 1);
    let failed = doc["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["stream"] == "worker"))
        .expect("worker result");
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["reason"], "NotFound");
    let events = f.events().await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "ManualImport" && note.contains("failed")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_read_only_account_is_told_what_permission_it_lacks() {
    let f = Fixture::new("cli-rbac").await;
    f.seed("worker").await;
    f.push("worker").await;
    let before = f.history("worker").await;

    let token = f
        .cluster
        .service_account_token(&f.ns, "viewer")
        .await
        .expect("token");
    f.cluster
        .admin_request(
            "POST",
            &format!(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/roles",
                f.ns
            ),
            Some(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "imagestream-reader"},
                "rules": [{
                    "apiGroups": ["image.openshift.io"],
                    "resources": ["imagestreams"],
                    "verbs": ["get", "list", "watch"],
                }],
            })),
        )
        .await
        .expect("create Role");
    f.cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings", f.ns),
            Some(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "viewer-reads-imagestreams"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "imagestream-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": f.ns}],
            })),
        )
        .await
        .expect("create RoleBinding");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    f.cluster
        .write_kubeconfig(&token, &kubeconfig)
        .expect("kubeconfig");

    let wanted = format!(
        "your account cannot create imagestreamimports.image.openshift.io in namespace {}; ask",
        f.ns
    );
    let run = f
        .run_as(&kubeconfig, &["import", "--env", "prod"])
        .await
        .expect(1, "import without create on imagestreamimports");
    assert!(
        run.stdout.contains(&wanted),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(f.history("worker").await, before);

    // Reading works; what cannot be told is said, not fatal.
    let run = f
        .run_as(&kubeconfig, &["status", "--env", "prod"])
        .await
        .expect(0, "status with a read-only account");
    assert!(
        run.stdout.contains(&format!("unknown: {wanted}")),
        "{}",
        run.stdout
    );
    f.run_as(
        &kubeconfig,
        &["history", "--env", "prod", "--stream", "worker"],
    )
    .await
    .expect(0, "history with a read-only account");

    // Holding the current image needs patch on imagestreams.
    let run = f
        .run_as(
            &kubeconfig,
            &[
                "pin", "--env", "prod", "--stream", "worker", "--to", &before[0],
            ],
        )
        .await
        .expect(1, "pin without patch on imagestreams");
    assert!(
        run.stderr.contains(&format!(
            "your account cannot patch imagestreams.image.openshift.io in namespace {}; ask",
            f.ns
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        f.spec_tag("worker").await["from"]["name"],
        f.source("worker").as_str()
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_named() {
    let f = Fixture::new("cli-down").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let text = std::fs::read_to_string(f.cluster.kubeconfig_path()).expect("read kubeconfig");
    let server = f.cluster.server_url();
    let down = text.replace(&server, &format!("https://127.0.0.1:{port}"));
    assert_ne!(down, text, "the kubeconfig names {server}");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, down).expect("write kubeconfig");

    let run = f
        .run_as(&kubeconfig, &["import", "--env", "prod"])
        .await
        .expect(1, "import against a closed port");
    assert!(
        run.stderr.contains("cannot reach the cluster"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&port.to_string()), "{}", run.stderr);
}

/// A wrong `--env` is a usage error even when no cluster is reachable: the
/// configuration file is checked before connecting.
#[test]
fn an_unknown_environment_exits_2_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "environments:\n  prod:\n    namespace: p\n    mode: immediate\n",
    )
    .unwrap();
    for args in [
        vec!["import", "--env", "prdo"],
        vec!["history", "--env", "prdo", "--stream", "s"],
        vec!["status", "--env", "prdo"],
        vec!["pin", "--env", "prdo", "--stream", "s", "--to-previous"],
        vec!["restore", "--env", "prdo", "--stream", "s"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .env("KUBECONFIG", dir.path().join("missing"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("unknown environment \"prdo\"") && err.contains("prod"),
            "{args:?}: {err}"
        );
    }
}

impl Fixture {
    /// Every Event in the namespace, as the API has it.
    async fn event_objects(&self) -> Vec<Value> {
        let list = self
            .cluster
            .admin_request(
                "GET",
                &format!("/apis/events.k8s.io/v1/namespaces/{}/events", self.ns),
                None,
            )
            .await
            .expect("list events");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Pins the tag with the real `oc tag --source=docker REPO@DIGEST
    /// ns/stream:prod` (the whole spec tag replaced: our annotation gone,
    /// policies reset), then waits for openshift-controller-manager's import
    /// of the new `from`.
    async fn pin_like_oc_tag(&self, stream: &str, reference: &str) {
        let out = tokio::process::Command::new(self.cluster.oc_path())
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig_path())
            .args([
                "tag",
                "--source=docker",
                reference,
                &format!("{}/{stream}:prod", self.ns),
            ])
            .env("HOME", std::env::temp_dir())
            .output()
            .await
            .expect("run oc");
        assert!(
            out.status.success(),
            "oc tag: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest = reference.rsplit_once('@').map(|(_, d)| d.to_string());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.history(stream).await.first() != digest.as_ref() {
            assert!(
                std::time::Instant::now() < deadline,
                "openshift-controller-manager did not import the pin {reference}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes `digest` from `<ns>/<stream>` in the registry, as the image
    /// pruner (or a registry's retention) does with old images.
    async fn prune(&self, stream: &str, digest: &str) {
        let url = format!(
            "https://{}/v2/{}/manifests/{digest}",
            self.cluster.registry().host(),
            self.repo(stream)
        );
        let resp = self
            .cluster
            .https_client()
            .expect("client")
            .delete(&url)
            .send()
            .await
            .expect("delete the manifest");
        assert_eq!(resp.status().as_u16(), 202, "DELETE {url}");
    }
}

#[tokio::test]
async fn the_commands_events_name_the_streams_uid() {
    let f = Fixture::new("cli-uid").await;
    f.seed("worker").await;
    f.push("worker").await;
    f.run(&["import", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "import");
    f.run(&[
        "pin",
        "--env",
        "prod",
        "--stream",
        "worker",
        "--to-previous",
    ])
    .await
    .expect(0, "pin");
    f.run(&["restore", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "restore");

    // `kubectl describe is worker` selects Events by involvedObject.uid.
    let uid = f.stream("worker").await["metadata"]["uid"]
        .as_str()
        .expect("the stream's uid")
        .to_owned();
    let events = f.event_objects().await;
    for reason in ["ManualImport", "Pinned", "Restored"] {
        let event = events
            .iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} Event: {events:#?}"));
        assert_eq!(event["regarding"]["kind"], "ImageStream", "{event:#}");
        assert_eq!(event["regarding"]["name"], "worker", "{event:#}");
        assert_eq!(
            event["regarding"]["uid"],
            uid.as_str(),
            "{reason} Event without the stream's uid: {event:#}"
        );
    }
}

#[tokio::test]
async fn a_pin_to_a_pruned_image_is_reported_as_not_in_effect() {
    let f = Fixture::new("cli-pruned").await;
    let first = f.seed("worker").await;
    let second = f.push("worker").await;
    f.run(&["import", "--env", "prod"])
        .await
        .expect(0, "import");
    assert_eq!(
        f.history("worker").await,
        vec![second.clone(), first.clone()]
    );
    f.prune("worker", &first).await;

    let run = f
        .run(&[
            "pin",
            "--env",
            "prod",
            "--stream",
            "worker",
            "--to-previous",
        ])
        .await
        .expect(1, "pin to a pruned image");
    assert!(run.stdout.contains("PIN NOT IN EFFECT"), "{}", run.stdout);
    assert!(run.stdout.contains("no longer has"), "{}", run.stdout);
    assert!(run.stdout.contains(&first), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("still serves {second}")),
        "{}",
        run.stdout
    );
    assert_eq!(
        f.history("worker").await.first(),
        Some(&second),
        "workloads keep the image they had"
    );
    let events = f.event_objects().await;
    let pinned = events
        .iter()
        .find(|e| e["reason"] == "Pinned")
        .unwrap_or_else(|| panic!("no Pinned Event: {events:#?}"));
    assert_eq!(pinned["type"], "Warning", "{pinned:#}");
    assert!(
        pinned["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("PIN NOT IN EFFECT")),
        "{pinned:#}"
    );

    let json = f
        .run(&[
            "pin", "--env", "prod", "--stream", "worker", "--to", &first, "--output", "json",
        ])
        .await
        .expect(1, "pin to a pruned image, json")
        .json();
    assert_eq!(json["import"]["outcome"], "failed", "{json:#}");
    assert_eq!(json["import"]["reason"], "NotFound", "{json:#}");

    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status")
        .json();
    let worker = tag_json(&status, "worker");
    assert_eq!(worker["held"], true, "{worker:#}");
    assert_eq!(worker["pinInEffect"], false, "{worker:#}");
    assert!(
        worker["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("PIN NOT IN EFFECT")))),
        "{worker:#}"
    );

    f.run(&["restore", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "restore");
    assert_eq!(
        f.spec_tag("worker").await["from"]["name"],
        f.source("worker").as_str()
    );
}

/// A pin made with the real `oc tag --source=docker` is held; `restore`
/// brings the tag back.
#[tokio::test]
async fn a_pin_made_by_oc_tag_is_held_and_restored() {
    let f = Fixture::new("cli-octag").await;
    let first = f.seed("worker").await;
    let second = f.push("worker").await;
    f.run(&["import", "--env", "prod"])
        .await
        .expect(0, "import");
    let pinned = format!(
        "{}/{}@{first}",
        f.cluster.registry().host(),
        f.repo("worker")
    );
    f.pin_like_oc_tag("worker", &pinned).await;
    assert!(f.spec_tag("worker").await["annotations"]
        .get(PINNED_FROM)
        .is_none_or(Value::is_null));
    assert_eq!(f.history("worker").await.first(), Some(&first));

    // Held like any pin, and in effect.
    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status")
        .json();
    let worker = tag_json(&status, "worker");
    assert_eq!(worker["held"], true, "{worker:#}");
    assert_eq!(worker["pinInEffect"], true, "{worker:#}");
    assert_eq!(worker["restoresTo"], f.source("worker").as_str());
    let skipped = f
        .run(&["import", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "import of a tag pinned by oc tag");
    assert!(skipped.stdout.contains("skipped"), "{}", skipped.stdout);
    assert_eq!(f.history("worker").await.first(), Some(&first));
    // Already pinned there: nothing to do.
    let again = f
        .run(&["pin", "--env", "prod", "--stream", "worker", "--to", &first])
        .await
        .expect(0, "pin to the image it is pinned to");
    assert!(again.stdout.contains("already pinned"), "{}", again.stdout);

    // restore: no record of the source, the environment's tag exists.
    let restored = f
        .run(&["restore", "--env", "prod", "--stream", "worker"])
        .await
        .expect(0, "restore of an oc tag pin");
    assert!(restored.stdout.contains("no record"), "{}", restored.stdout);
    assert_eq!(
        f.spec_tag("worker").await["from"]["name"],
        f.source("worker").as_str()
    );
    assert_eq!(f.history("worker").await.first(), Some(&second));

    // restore --source: explicit; a digest there is refused before connecting.
    f.pin_like_oc_tag("worker", &pinned).await;
    let refused = f
        .run(&[
            "restore", "--env", "prod", "--stream", "worker", "--source", &pinned,
        ])
        .await
        .expect(2, "restore --source DIGEST");
    assert!(refused.stderr.contains("--source"), "{}", refused.stderr);
    f.run(&[
        "restore",
        "--env",
        "prod",
        "--stream",
        "worker",
        "--source",
        &f.source("worker"),
    ])
    .await
    .expect(0, "restore --source");
    assert_eq!(f.history("worker").await.first(), Some(&second));

    // A stream following another tag name, pinned by oc tag: the guess
    // (<repository>:prod) does not exist, so restore asks for --source.
    let repo = f.repo("tools");
    let tools = f
        .cluster
        .registry()
        .push_image(&repo, "stable")
        .await
        .expect("push");
    let stable = f.cluster.registry().image_ref(&repo, "stable");
    f.cluster
        .seed_stream(
            &f.ns,
            "tools",
            &[TagSeed {
                import: true,
                ..TagSeed::new("prod", stable.clone())
            }],
        )
        .await
        .expect("seed");
    f.pin_like_oc_tag(
        "tools",
        &format!("{}/{repo}@{tools}", f.cluster.registry().host()),
    )
    .await;
    let unknown = f
        .run(&["restore", "--env", "prod", "--stream", "tools"])
        .await
        .expect(2, "restore without a known source");
    assert!(
        unknown.stderr.contains("--source REPOSITORY:TAG")
            && unknown.stderr.contains(&format!("{repo}:prod")),
        "{}",
        unknown.stderr
    );
    assert!(
        f.spec_tag("tools").await["from"]["name"]
            .as_str()
            .is_some_and(|n| n.contains('@')),
        "a refused restore wrote"
    );
    f.run(&[
        "restore", "--env", "prod", "--stream", "tools", "--source", &stable,
    ])
    .await
    .expect(0, "restore --source");
    assert_eq!(f.spec_tag("tools").await["from"]["name"], stable.as_str());
}

/// Images pushed as an index (two platforms), as multi-arch builds push to
/// Quay: a Legacy tag records the linux/amd64 child, so the daemon compares
/// child with child (an unchanged source imports nothing new), and `pin --to`
/// takes the index digest Quay shows as well as the child in the history.
/// With `importMode: PreserveOriginal` the index itself is compared.
#[tokio::test]
async fn manifest_lists_are_compared_like_with_like_and_pinned_by_either_digest() {
    let f = Fixture::new("cli-index").await;
    let repo = f.repo("multi");
    let registry = f.cluster.registry();
    let first = registry
        .push_index(&repo, "prod")
        .await
        .expect("push index");
    f.cluster
        .seed_stream(&f.ns, "multi", &[TagSeed::new("prod", f.source("multi"))])
        .await
        .expect("seed");
    let first_child = first.child("linux/amd64").expect("amd64").to_string();
    assert_eq!(f.history("multi").await, std::slice::from_ref(&first_child));

    // Unchanged source: nothing new, however often it is checked.
    for _ in 0..2 {
        let run = f
            .run(&["import", "--env", "prod", "--stream", "multi"])
            .await
            .expect(0, "import of an unchanged index");
        assert!(
            run.stdout.contains("multi:prod unchanged"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(f.history("multi").await, std::slice::from_ref(&first_child));

    let second = registry
        .push_index(&repo, "prod")
        .await
        .expect("push index");
    let second_child = second.child("linux/amd64").expect("amd64").to_string();
    f.run(&["import", "--env", "prod", "--stream", "multi"])
        .await
        .expect(0, "import of a new index");
    assert_eq!(f.history("multi").await.first(), Some(&second_child));

    // Pin to the index digest Quay shows for the first push.
    let pin = f
        .run(&[
            "pin",
            "--env",
            "prod",
            "--stream",
            "multi",
            "--to",
            &first.index,
        ])
        .await
        .expect(0, "pin to an index digest");
    assert!(!pin.stdout.contains("NOT IN EFFECT"), "{}", pin.stdout);
    assert_eq!(f.history("multi").await.first(), Some(&first_child));
    let status = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status")
        .json();
    let multi = tag_json(&status, "multi");
    assert_eq!(multi["held"], true, "{multi:#}");
    assert_eq!(multi["pinInEffect"], true, "{multi:#}");
    let again = f
        .run(&[
            "pin",
            "--env",
            "prod",
            "--stream",
            "multi",
            "--to",
            &first.index,
        ])
        .await
        .expect(0, "pin to the index it is pinned to");
    assert!(again.stdout.contains("already pinned"), "{}", again.stdout);
    // The child of that index: the same image (pinned again by its own digest).
    f.run(&[
        "pin",
        "--env",
        "prod",
        "--stream",
        "multi",
        "--to",
        &first_child,
    ])
    .await
    .expect(0, "pin to the child digest");
    assert_eq!(f.history("multi").await.first(), Some(&first_child));
    f.run(&["restore", "--env", "prod", "--stream", "multi"])
        .await
        .expect(0, "restore");

    // PreserveOriginal: the index digest is what the history records.
    let is = f.stream("multi").await;
    let mut tags = is["spec"]["tags"].clone();
    tags[0]["importPolicy"]["importMode"] = json!("PreserveOriginal");
    f.cluster
        .admin_request(
            "PATCH",
            &format!(
                "/apis/image.openshift.io/v1/namespaces/{}/imagestreams/multi",
                f.ns
            ),
            Some(json!({"spec": {"tags": tags}})),
        )
        .await
        .expect("set PreserveOriginal");
    f.run(&["import", "--env", "prod", "--stream", "multi"])
        .await
        .expect(0, "import in PreserveOriginal mode");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while f.history("multi").await.first() != Some(&second.index) {
        assert!(
            std::time::Instant::now() < deadline,
            "the index is recorded: {:?}",
            f.history("multi").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let len = f.history("multi").await.len();
    let run = f
        .run(&["import", "--env", "prod", "--stream", "multi"])
        .await
        .expect(0, "import of an unchanged index, PreserveOriginal");
    assert!(
        run.stdout.contains("multi:prod unchanged"),
        "{}",
        run.stdout
    );
    assert_eq!(f.history("multi").await.len(), len, "nothing new");
}

/// Foreign images in the namespace (nginx, a gateway) are left out by
/// `sources` and `exclude`, and `status` says which and why.
#[tokio::test]
async fn status_names_streams_left_out_by_exclude_and_sources() {
    let f = Fixture::new("cli-sources").await;
    for stream in ["worker", "nginx", "gateway"] {
        f.seed(stream).await;
    }
    let prefix = f.source("worker");
    let prefix = prefix.trim_end_matches(":prod");
    std::fs::write(
        &f.config,
        format!(
            "{}    exclude: [gateway]\n    sources: [\"{prefix}\"]\n",
            config_yaml(&f.ns)
        ),
    )
    .expect("write config");

    let text = f
        .run(&["status", "--env", "prod"])
        .await
        .expect(0, "status");
    let reasons = [
        "gateway:prod: skipped: excluded by environments.prod.exclude".to_owned(),
        format!(
            "nginx:prod: skipped: spec tag prod: from.name {} matches none of environments.prod.sources [{prefix}]",
            f.source("nginx")
        ),
    ];
    for reason in &reasons {
        assert!(
            text.stdout.contains(reason.as_str()),
            "missing {reason:?} in:\n{}",
            text.stdout
        );
    }
    assert!(text.stdout.contains("worker"), "{}", text.stdout);

    let json = f
        .run(&["status", "--env", "prod", "--output", "json"])
        .await
        .expect(0, "status as JSON");
    let status: Value = serde_json::from_str(&json.stdout).expect("JSON");
    let env = &status["environments"][0];
    let tags: Vec<&str> = env["tags"]
        .as_array()
        .map(|tags| tags.iter().filter_map(|t| t["stream"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(tags, ["worker"], "{env:#}");
    let skipped: Vec<&str> = env["skipped"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["stream"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(skipped, ["gateway", "nginx"], "{env:#}");
}
