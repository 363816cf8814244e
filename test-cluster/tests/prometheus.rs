//! The real Prometheus and Pushgateway of `test_cluster::prometheus`: a
//! pushed metric makes a rule fire, deleting it ends the alert, and both
//! processes are gone once the value is dropped.

use std::net::TcpStream;
use std::path::Path;

use test_cluster::prometheus::Prometheus;

const RULES: &str = r#"
groups:
  - name: test
    rules:
      - alert: GateHeld
        expr: gated_tags > 0
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.env }} holds {{ $value }} tags"
      - alert: Sentinel
        expr: sentinel > 0
"#;

/// Processes whose command line mentions `dir` (both children have it in
/// their arguments).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_pushed_metric_fires_a_rule_and_deleting_it_ends_the_alert() {
    let prometheus = Prometheus::start(RULES).await.unwrap();
    assert!(
        prometheus.alerts().await.unwrap().is_empty(),
        "nothing pushed, nothing fires"
    );

    prometheus
        .push("gates", "gated_tags{env=\"prod\",gate=\"alerts\"} 2")
        .await
        .unwrap();
    let alert = prometheus.wait_for_alert("GateHeld").await.unwrap();
    // honor_labels: the pushed labels stay as pushed.
    assert_eq!(alert.labels.get("env").map(String::as_str), Some("prod"));
    assert_eq!(alert.labels.get("gate").map(String::as_str), Some("alerts"));
    assert_eq!(alert.labels.get("job").map(String::as_str), Some("gates"));
    assert_eq!(
        alert.labels.get("severity").map(String::as_str),
        Some("warning")
    );
    assert_eq!(alert.annotations["summary"], "prod holds 2 tags");

    prometheus.delete("gates").await.unwrap();
    prometheus.wait_for_no_alert("GateHeld").await.unwrap();

    // A value the rule does not match stays quiet. The sentinel comes in the
    // same push, so the same scrape and the same evaluation of the group:
    // once its alert fires, GateHeld has been evaluated on gated_tags 0.
    prometheus
        .push(
            "gates",
            "gated_tags{env=\"prod\",gate=\"alerts\"} 0\nsentinel 1",
        )
        .await
        .unwrap();
    prometheus.wait_for_alert("Sentinel").await.unwrap();
    let active: Vec<String> = prometheus
        .alerts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    assert_eq!(active, ["Sentinel"], "gated_tags 0 must not fire");
}

#[tokio::test]
async fn both_processes_are_gone_after_drop() {
    let prometheus = Prometheus::start(RULES).await.unwrap();
    let dir = prometheus.dir().to_path_buf();
    let ports = [port(&prometheus.url()), port(&prometheus.pushgateway_url())];
    let running = processes_using(&dir);
    assert!(
        running
            .iter()
            .any(|p| p.contains("prometheus ") || p.contains("/prometheus "))
            && running.iter().any(|p| p.contains("prometheus-pushgateway")),
        "both should run while the value lives: {running:?}"
    );

    drop(prometheus);

    // Drop waits for both children; nothing of them may remain.
    let left = processes_using(&dir);
    assert!(left.is_empty(), "still running after drop: {left:?}");
    for port in ports {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still answers after drop"
        );
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[tokio::test]
async fn an_invalid_rules_file_fails_the_start_with_prometheus_own_error() {
    let err = Prometheus::start(
        "groups:\n  - name: bad\n    rules:\n      - alert: X\n        expr: 'rate(x[5m'\n",
    )
    .await
    .expect_err("Prometheus must not start with an invalid rule");
    let text = format!("{err:#}");
    assert!(text.contains("prometheus exited"), "{text}");
    assert!(text.contains("rules.yaml"), "names the rules file: {text}");
}
