//! The daemon (the real binary, as a child process) against the test
//! cluster, telling a local HTTP server standing in for the chat webhook
//! about its windows and configuration.
//!
//! The child runs on the real clock, so its windows come from a schedule
//! that opens one every minute.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use support::*;
use test_cluster::TestCluster;

const SEC: Duration = Duration::from_secs(1);
const SLACK_VAR: &str = "NOTIFY_TEST_SLACK_URL";

/// A local chat webhook that keeps each message's text, answering 200, or
/// accepting the request and never answering.
struct Webhook {
    url: String,
    texts: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    async fn start(hang: bool) -> Webhook {
        let texts = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(
                move |State(texts): State<Arc<Mutex<Vec<String>>>>, body: Bytes| async move {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let text = body["text"].as_str().unwrap_or_default().to_string();
                    texts.lock().unwrap().push(text);
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    StatusCode::OK.into_response()
                },
            )
            .with_state(texts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook {
            url: format!("http://{addr}/hooks/T000/B000/secret"),
            texts,
        }
    }

    /// Waits for a message whose text contains `needle`.
    async fn message_with(&self, needle: &str) -> String {
        eventually(100 * SEC, &format!("a message with {needle:?}"), || async {
            let texts = self.texts.lock().unwrap().clone();
            texts
                .into_iter()
                .find(|t| t.contains(needle))
                .ok_or_else(|| format!("messages so far: {:?}", self.texts.lock().unwrap()))
        })
        .await
    }
}

/// A window every minute, open 20 s.
fn config(ns: &str, events: &str) -> String {
    format!(
        "notifications:\n  slack:\n    urlFromEnv: {SLACK_VAR}\n    events: [{events}]\nenvironments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"* * * * *\"\n    timeZone: UTC\n    window: 20s\n    pollInterval: 1s\n"
    )
}

fn spawn(
    cluster: &TestCluster,
    dir: &tempfile::TempDir,
    cfg: &std::path::Path,
    ns: &str,
    hook: &Webhook,
) -> ChildDaemon {
    ChildDaemon::spawn_with(
        cluster,
        cfg,
        ns,
        "notify-a",
        dir.path().join("daemon.log"),
        &[
            (SLACK_VAR, hook.url.as_str()),
            ("IMPORT_SCHEDULER_SHUTDOWN_GRACE", "3s"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_sends_its_summary_and_the_missed_tags() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(
        cluster,
        "notify-window",
        "prod",
        &["packit-worker", "packit-service"],
    )
    .await;
    let service = cluster
        .registry()
        .push_image(&format!("{ns}/packit-service"), "prod")
        .await
        .unwrap();
    // The registry loses the worker's tag: every import of it fails.
    cluster
        .registry()
        .delete_tag(&format!("{ns}/packit-worker"), "prod")
        .await
        .unwrap();
    let hook = Webhook::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &config(&ns, "windowSummary, windowMissed"));
    let daemon = spawn(cluster, &dir, &cfg, &ns, &hook);

    let missed = hook.message_with("not imported:").await;
    assert!(missed.contains("prod"), "{missed}");
    assert!(missed.contains("packit-worker:prod"), "{missed}");
    assert!(
        missed.contains("NotFound") || missed.contains("not found"),
        "the registry's reason: {missed}"
    );
    assert!(missed.contains("next window:"), "{missed}");
    assert!(
        missed.contains("import-scheduler"),
        "the command to run: {missed}"
    );

    // The window imported the service's pushed image; its later polls found
    // the tag current, and the summary still tells the import.
    let summary = hook.message_with("closed:").await;
    let short = service.rsplit_once(':').unwrap().1[..12].to_string();
    assert!(
        summary.contains("packit-service:prod updated ")
            && summary.contains(&format!(" -> {short}")),
        "updated to the short digest {short}: {summary}"
    );
    assert!(!summary.contains(&service), "digests are short: {summary}");
    assert!(summary.contains("packit-worker:prod FAILED"), "{summary}");
    assert!(
        summary.contains("import-scheduler import --env prod --stream packit-worker"),
        "the command to run next: {summary}"
    );
    daemon.signal("TERM");
    let log = daemon.log.clone();
    let status = daemon.wait().await;
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_configuration_reload_is_told_through_the_receivers_in_force() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "notify-reload", "prod", &["packit-worker"]).await;
    let hook = Webhook::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &config(&ns, "configRejected"));
    let daemon = spawn(cluster, &dir, &cfg, &ns, &hook);
    daemon_ready(&daemon).await;

    std::fs::write(
        &cfg,
        config(&ns, "configRejected").replace("mode: windowed", "mode: sometimes"),
    )
    .unwrap();
    let rejected = hook.message_with("environments.prod.mode").await;
    assert!(rejected.contains("import-scheduler"), "{rejected}");

    // A receiver whose secret is unset makes a reload invalid too, and the
    // notifier in force tells it.
    std::fs::write(
        &cfg,
        config(&ns, "configRejected").replace(SLACK_VAR, "NOTIFY_TEST_UNSET"),
    )
    .unwrap();
    let unset = hook.message_with("NOTIFY_TEST_UNSET").await;
    assert!(unset.contains("notifications.slack.urlFromEnv"), "{unset}");
    assert!(!unset.contains(&hook.url), "no secret in the text: {unset}");
    daemon.signal("TERM");
    assert!(daemon.wait().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_the_windows_imports() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "notify-hang", "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let hook = Webhook::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &config(&ns, "windowSummary, windowMissed, configRejected"),
    );
    let daemon = spawn(cluster, &dir, &cfg, &ns, &hook);
    daemon_ready(&daemon).await;
    // Rejected reloads fill the receiver's queue while it hangs.
    for i in 0..5 {
        std::fs::write(
            &cfg,
            config(&ns, "configRejected").replace("mode: windowed", &format!("mode: bad{i}")),
        )
        .unwrap();
        tokio::time::sleep(3 * SEC).await;
    }
    std::fs::write(
        &cfg,
        config(&ns, "windowSummary, windowMissed, configRejected"),
    )
    .unwrap();
    assert!(
        !hook.texts.lock().unwrap().is_empty(),
        "the receiver got a notice and hangs on it"
    );

    // Windows keep opening and importing: a new image pushed now is
    // imported by the next window.
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();
    eventually(90 * SEC, "the import in the next window", || async {
        match newest(cluster, &ns, "packit-worker", "prod").await {
            (Some(d), _) if d == pushed => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    daemon.signal("TERM");
    assert!(
        daemon.wait().await.success(),
        "a hanging receiver costs at most the grace period at shutdown"
    );
}

/// Runs `import-scheduler ARGS --config CONFIG` against the test cluster,
/// with the daemon's status ConfigMap in `ns`; panics unless it succeeds.
async fn cli(cluster: &TestCluster, ns: &str, config: &std::path::Path, args: &[&str]) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .env_remove("KUBECONFIG")
        .env("HOME", std::env::temp_dir())
        .env("IMPORT_SCHEDULER_NAMESPACE", ns)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run import-scheduler");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A freeze in the configuration that ends, then one set with `freeze` that
/// outlives a restart and is lifted with `unfreeze`: each beginning and
/// each lifting is told once, the restart tells nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezes_are_told_once_when_they_begin_and_when_they_are_lifted() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "notify-freeze", "prod", &["packit-worker"]).await;
    let hook = Webhook::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = chrono::Utc::now();
    // No window for years: only freezes happen.
    let yaml = config(&ns, "freeze").replace("\"* * * * *\"", "\"0 3 29 2 *\"")
        + &format!(
            "    freeze:\n      - {{from: \"{}\", to: \"{}\", reason: release train}}\n",
            at(now - chrono::Duration::minutes(1)),
            at(now + chrono::Duration::seconds(20))
        );
    let cfg = config_file(&dir, &yaml);
    let daemon = spawn(cluster, &dir, &cfg, &ns, &hook);

    let configured = hook.message_with("reason: release train").await;
    assert!(
        configured.starts_with("[prod] frozen until"),
        "{configured}"
    );
    assert!(
        configured.contains("set in the configuration (`environments.prod.freeze`)"),
        "{configured}"
    );
    let lifted = hook.message_with("[prod] unfrozen").await;
    assert!(
        lifted.contains("import-scheduler status --env prod"),
        "{lifted}"
    );

    let until = at(chrono::Utc::now() + chrono::Duration::hours(2));
    cli(
        cluster,
        &ns,
        &cfg,
        &[
            "freeze",
            "--env",
            "prod",
            "--until",
            &until,
            "--reason",
            "db migration",
        ],
    )
    .await;
    let manual = hook.message_with("reason: db migration").await;
    assert!(manual.contains("\nby: "), "who froze it: {manual}");
    assert!(
        manual.contains("lift it: `import-scheduler unfreeze --env prod`"),
        "{manual}"
    );

    // A restart while frozen: the new process decides "frozen" again but
    // tells nothing it was already told.
    daemon.signal("TERM");
    let log = daemon.log.clone();
    assert!(daemon.wait().await.success());
    let decided_before = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches(r#""decision":"frozen""#)
        .count();
    let daemon = spawn(cluster, &dir, &cfg, &ns, &hook);
    eventually(
        60 * SEC,
        "the restarted daemon to decide frozen",
        || async {
            let n = daemon.logs().matches(r#""decision":"frozen""#).count();
            (n > decided_before)
                .then_some(())
                .ok_or_else(|| format!("{n} frozen decisions logged"))
        },
    )
    .await;
    cli(cluster, &ns, &cfg, &["unfreeze", "--env", "prod"]).await;
    eventually(60 * SEC, "the second unfrozen message", || async {
        let texts = hook.texts.lock().unwrap().clone();
        let n = texts
            .iter()
            .filter(|t| t.starts_with("[prod] unfrozen"))
            .count();
        (n == 2).then_some(()).ok_or_else(|| format!("{texts:?}"))
    })
    .await;
    let texts = hook.texts.lock().unwrap().clone();
    let frozen: Vec<&String> = texts
        .iter()
        .filter(|t| t.starts_with("[prod] frozen"))
        .collect();
    assert_eq!(frozen.len(), 2, "one notice per freeze: {texts:#?}");
    daemon.signal("TERM");
    assert!(daemon.wait().await.success());
}

async fn daemon_ready(daemon: &ChildDaemon) {
    eventually(30 * SEC, "the daemon to be ready", || async {
        match tokio::time::timeout(SEC, http_request(daemon.port, "GET", "/readyz", &[], "")).await
        {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
