//! The daemon against the test cluster skips a frozen window: one frozen in
//! the configuration, and one frozen with `freeze` (a record in the status
//! ConfigMap, read at every decision).
//!
//! The window is made to open a few seconds after a test starts by running
//! the daemon on a clock shifted to just before a real window start.

mod support;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use import_scheduler::daemon::ConfigSource;
use serde_json::json;
use support::*;
use test_cluster::TestCluster;

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

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Runs the daemon across today's 8-second window, frozen as `freeze`
/// (configuration text) or `stored` (the status ConfigMap) say, and checks
/// that nothing was imported and the next window reported is tomorrow's.
async fn frozen_window_is_skipped(prefix: &str, freeze: &str, stored: Option<serde_json::Value>) {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, prefix, "prod", &["packit-worker"]).await;
    let repo = format!("{ns}/packit-worker");
    let pushed = cluster.registry().push_image(&repo, "prod").await.unwrap();
    let start = next_three_am();
    if let Some(state) = &stored {
        cluster
            .admin_request(
                "POST",
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(json!({
                    "metadata": {"name": "image-import-scheduler-status", "namespace": ns},
                    "data": {"prod": state.to_string()},
                })),
            )
            .await
            .expect("create the status ConfigMap");
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: 8s\n    pollInterval: 1s\n{}",
        freeze.replace("START", &rfc3339(start))
            .replace("END", &rfc3339(start + chrono::Duration::seconds(30)))
    );
    let cfg = config_file(&dir, &yaml);
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, 3 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    import_scheduler::clock::sleep_until(clock.as_ref(), start + chrono::Duration::seconds(10))
        .await;
    let (digest, len) = newest(cluster, &ns, "packit-worker", "prod").await;
    assert_eq!(
        len, 1,
        "nothing imported in a frozen window (pushed {pushed}, newest {digest:?})"
    );
    let metrics = daemon.metrics().await;
    let next_start = (start + chrono::Duration::days(1)).timestamp();
    assert!(
        metrics.contains(&format!("image_import_scheduler_window_next_start_timestamp_seconds{{env=\"prod\"}} {next_start}.0")),
        "the next window that opens is tomorrow's: {metrics}"
    );
    assert!(
        metrics.contains("image_import_scheduler_window_open{env=\"prod\"} 0"),
        "{metrics}"
    );
    assert!(
        events(cluster, &ns, "WindowMissed").await.is_empty(),
        "a frozen window is not missed"
    );
    daemon.stop().await;
    if stored.is_some() {
        let cm = cluster
            .admin_request(
                "GET",
                &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
                None,
            )
            .await
            .unwrap();
        let state: serde_json::Value =
            serde_json::from_str(cm["data"]["prod"].as_str().unwrap()).unwrap();
        assert_eq!(
            state["freezes"][0]["reason"], "ops freeze",
            "the daemon's writes keep the freeze: {state:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_frozen_in_the_configuration_does_not_open() {
    frozen_window_is_skipped(
        "freeze-config",
        "    freeze:\n      - {from: \"START\", to: \"END\", reason: release}\n",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_frozen_with_the_freeze_command_does_not_open() {
    let start = next_three_am();
    frozen_window_is_skipped(
        "freeze-state",
        "",
        Some(json!({
            "freezes": [{
                "start": rfc3339(start - chrono::Duration::minutes(1)),
                "end": rfc3339(start + chrono::Duration::seconds(30)),
                "reason": "ops freeze",
                "by": "alice",
                "at": rfc3339(start - chrono::Duration::minutes(1)),
            }]
        })),
    )
    .await;
}
