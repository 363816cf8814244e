//! `cargo bench --bench window_start -- --gates`: what the gates cost a
//! window's imports. 60 streams in prod and the same 60 in stg (an
//! immediate environment following the same registry tags), the window
//! opening alternately with no gate and with all three: soak (`for: 1s` in
//! stg, no consumer there), alerts (a real Prometheus with an alert firing
//! that does not match) and approval (every digest approved for the window
//! by `import-scheduler approve` before the daemon starts). All gates pass;
//! what is measured is what checking them adds: the time each tag's check
//! took (`image_import_scheduler_gate_check_duration_seconds`), and the
//! first and last import after the window start against the ungated run.

use anyhow::{bail, Context};
use serde_json::json;
use test_cluster::prometheus::Prometheus;
use test_cluster::{TagSeed, TestCluster};

use super::{alternating, measure_window, new_window, write_config, Setup, DEFAULT_CONCURRENCY};
use crate::common::*;

const STREAMS: usize = 60;

/// An alert that fires during the whole benchmark in a namespace the gate
/// does not match: Prometheus answers with it, the matchers reject it.
const RULES: &str = "groups:
- name: bench
  rules:
  - alert: ElsewhereDegraded
    expr: elsewhere_degraded > 0
    labels: {severity: critical}
";

/// One window start with and without gates; `rounds` times, alternating.
pub async fn runs(cluster: &TestCluster, rounds: usize) -> anyhow::Result<()> {
    let prometheus = Prometheus::start(RULES).await?;
    prometheus
        .push("bench", "elsewhere_degraded{namespace=\"elsewhere\"} 1\n")
        .await?;
    prometheus.wait_for_alert("ElsewhereDegraded").await?;

    let names = stream_names(STREAMS);
    let prod = cluster.create_namespace("wsgates").await?;
    let stg = cluster.create_namespace("wsgates-stg").await?;
    seed_streams(cluster, &prod, "prod", &names).await?;
    // stg's `stg` tag follows prod's registry tag: stg imports every image
    // before prod's window may.
    for name in &names {
        let from = cluster
            .registry()
            .image_ref(&format!("{prod}/{name}"), "prod");
        cluster
            .seed_stream(&stg, name, &[TagSeed::new("stg", from)])
            .await?;
    }
    let others = format!(
        "  stg:\n    namespace: {stg}\n    tag: stg\n    mode: immediate\n    pollInterval: 2s\n"
    );
    let gates = format!(
        "    gates:\n      soak: {{environment: stg, for: 1s}}\n      alerts:\n        prometheusUrl: {}\n        match: 'namespace=\"{prod}\",severity=~\"critical|warning\"'\n      approval: {{required: true}}\n",
        prometheus.url()
    );

    let mut rows = Vec::new();
    for round in 0..rounds {
        for gated in alternating(round) {
            let (pushed, start) = new_window(cluster, &prod, &names).await?;
            let dir = tempfile::tempdir()?;
            let setup = Setup {
                concurrency: None,
                preamble: String::new(),
                prod: if gated { gates.clone() } else { String::new() },
                others: others.clone(),
            };
            let config = write_config(dir.path(), &prod, start, &setup)?;
            if gated {
                approve(cluster, &prod, &config, start).await?;
            }
            let r = measure_window(
                cluster,
                &prod,
                &pushed,
                start,
                config,
                None,
                if gated { STREAMS } else { 0 },
            )
            .await?;
            let metrics = &r.metrics;
            let checks = metric_sum(
                metrics,
                "image_import_scheduler_gate_check_duration_seconds_count",
            );
            let took = metric_sum(
                metrics,
                "image_import_scheduler_gate_check_duration_seconds_sum",
            );
            let slowest = slowest_bucket(metrics);
            let holds = metric_samples(metrics, "image_import_scheduler_gate_verdicts_total")
                .iter()
                .filter(|(labels, _)| labels.contains("result=\"hold\""))
                .map(|(_, n)| n)
                .sum::<f64>();
            if gated && (checks < STREAMS as f64 || holds > 0.0) {
                bail!(
                    "expected {STREAMS} passing gate checks, got {checks} checks and {holds} holds"
                );
            }
            result(&[
                ("bench", "window_start_gates".into()),
                ("round", round.to_string()),
                ("gates", if gated { "all" } else { "none" }.into()),
                ("first_s", format!("{:.3}", r.first_s)),
                ("all_s", format!("{:.3}", r.all_s)),
                ("gate_checks", format!("{checks:.0}")),
                (
                    "gate_check_mean_ms",
                    format!("{:.1}", mean_ms(took, checks)),
                ),
                ("gate_check_max_le_ms", slowest.clone()),
                ("api_requests", format!("{}", r.api_requests)),
                ("failed_imports", r.failures.to_string()),
            ]);
            rows.push((gated, checks, took, slowest, r));
        }
    }
    println!();
    println!("Window start, {STREAMS} streams, API +{API_LATENCY:?}/call, concurrency {DEFAULT_CONCURRENCY}");
    println!();
    println!("| gates | first import | last import | gate checks | mean check | slowest check | API requests | failed imports |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (gated, checks, took, slowest, r) in &rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {} | {} |",
            if *gated {
                "soak + alerts + approval"
            } else {
                "none"
            },
            r.first_s,
            r.all_s,
            checks,
            if *gated {
                format!("{:.1} ms", mean_ms(*took, *checks))
            } else {
                "-".into()
            },
            if *gated {
                format!("<= {slowest} ms")
            } else {
                "-".into()
            },
            r.api_requests,
            r.failures
        );
    }
    Ok(())
}

fn mean_ms(sum_s: f64, count: f64) -> f64 {
    if count > 0.0 {
        sum_s * 1000.0 / count
    } else {
        0.0
    }
}

/// The upper bound (ms) of the smallest histogram bucket holding every
/// gate check: the slowest check took at most that long.
fn slowest_bucket(metrics: &str) -> String {
    let buckets = metric_samples(
        metrics,
        "image_import_scheduler_gate_check_duration_seconds_bucket",
    );
    let total = metric_sum(
        metrics,
        "image_import_scheduler_gate_check_duration_seconds_count",
    );
    let mut bounds: Vec<(f64, f64)> = buckets
        .iter()
        .filter_map(|(labels, n)| {
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            Some((le.parse::<f64>().ok()?, *n))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    match bounds.iter().find(|(_, n)| *n >= total && total > 0.0) {
        Some((le, _)) if le.is_finite() => format!("{:.0}", le * 1000.0),
        Some(_) => "+Inf".into(),
        None => "-".into(),
    }
}

/// Approves every digest prod would import now for the window at `start`,
/// as the cluster's administrator, with the command operators use.
async fn approve(
    cluster: &TestCluster,
    ns: &str,
    config: &std::path::Path,
    start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let status = format!("status-ws-{STREAMS}-c{DEFAULT_CONCURRENCY}");
    let created = cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(json!({"metadata": {"name": status}, "data": {}})),
        )
        .await;
    if let Err(e) = created {
        if !format!("{e:#}").contains("409") && !format!("{e:#}").contains("AlreadyExists") {
            return Err(e).context("create the status ConfigMap");
        }
    }
    let window = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = tokio::process::Command::new(daemon_binary())
        .args(["approve", "--env", "prod", "--window", &window, "--config"])
        .arg(config)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .env("IMPORT_SCHEDULER_NAMESPACE", ns)
        .env("IMPORT_SCHEDULER_STATUS_CONFIGMAP", &status)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "approve failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
