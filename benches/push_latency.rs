//! Push-to-import latency in immediate mode, against the test cluster adding
//! 50 ms to every API call and 200 ms to every import:
//!
//! - polling, per poll interval (5s, 30s): ten streams; one push to each, at
//!   instants spread at random over one poll interval (push i at
//!   `(i + U(0,1)) * interval / 10`), so the samples cover every phase of
//!   the poll cycle. Latency: the push's completion (the registry answered
//!   the manifest PUT) to the importer's debug log line for the import
//!   (written when the import API call answered).
//! - the push hook: push, then `POST /hooks/import`, then read the stream
//!   every 20 ms until its history shows the pushed image. Latency: the
//!   push's completion to the first read that shows it.
//!
//! `cargo bench --bench push_latency [-- --quick]` (quick: 5s polling only,
//! 5 hook samples).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use common::*;
use test_cluster::TestCluster;

const POLL_STREAMS: usize = 10;
const HOOK_STREAMS: usize = 6;
const HOOK_SECRET: &str = "bench-hook-secret";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = start_cluster()?;
    let rt = runtime()?;
    rt.block_on(run(&cluster, args.quick))
}

async fn run(cluster: &TestCluster, quick: bool) -> anyhow::Result<()> {
    let intervals: &[u64] = if quick { &[5] } else { &[5, 30] };
    let hook_samples = if quick { 5 } else { 20 };
    let mut rows = Vec::new();
    for &interval in intervals {
        let s = polling(cluster, Duration::from_secs(interval)).await?;
        result(&[
            ("bench", "push_latency".into()),
            ("trigger", format!("poll-{interval}s")),
            ("samples", s.n.to_string()),
            ("mean_s", format!("{:.3}", s.mean)),
            ("p50_s", format!("{:.3}", s.p50)),
            ("p95_s", format!("{:.3}", s.p95)),
            ("min_s", format!("{:.3}", s.min)),
            ("max_s", format!("{:.3}", s.max)),
        ]);
        rows.push((format!("polling, pollInterval {interval}s"), s));
    }
    let s = hook(cluster, hook_samples).await?;
    result(&[
        ("bench", "push_latency".into()),
        ("trigger", "push-hook".into()),
        ("samples", s.n.to_string()),
        ("mean_s", format!("{:.3}", s.mean)),
        ("p50_s", format!("{:.3}", s.p50)),
        ("p95_s", format!("{:.3}", s.p95)),
        ("min_s", format!("{:.3}", s.min)),
        ("max_s", format!("{:.3}", s.max)),
    ]);
    rows.push(("push hook".to_string(), s));

    println!();
    println!("Push-to-import latency, immediate mode, API +{API_LATENCY:?}/call, imports by the real openshift-apiserver (+{IMPORT_LATENCY:?})");
    println!();
    println!("| trigger | samples | mean | p50 | p95 | min | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (what, s) in &rows {
        println!(
            "| {what} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            s.n, s.mean, s.p50, s.p95, s.min, s.max
        );
    }
    println!(
        "| OpenShift scheduled import (not measured) | - | 450 s | 450 s | 855 s | 0 s | 900 s |"
    );
    Ok(())
}

/// Starts an immediate-mode daemon on `ns` and waits until its first round
/// checked all `streams` tags.
async fn immediate_daemon(
    cluster: &TestCluster,
    name: &str,
    ns: &str,
    streams: usize,
    poll: &str,
    hook_secret: Option<&str>,
) -> anyhow::Result<(Daemon, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "environments:\n  stg:\n    namespace: {ns}\n    tag: stg\n    mode: immediate\n    pollInterval: {poll}\n"
        ),
    )?;
    let mut daemon = Daemon::spawn(
        cluster,
        &DaemonSpec {
            name,
            namespace: ns,
            config: ConfigFrom::File(config),
            hook_secret,
            log: LOG_IMPORTS,
        },
    )?;
    daemon.wait_ready(Duration::from_secs(30)).await?;
    let d = &daemon;
    wait_for(
        "the first poll round",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async move {
            let m = d.metrics().await?;
            let checked = metric_sum(&m, "image_import_scheduler_imports_total");
            Ok((checked >= streams as f64).then_some(()))
        },
    )
    .await?;
    Ok((daemon, dir))
}

async fn polling(cluster: &TestCluster, interval: Duration) -> anyhow::Result<Summary> {
    let names = stream_names(POLL_STREAMS);
    let ns = cluster
        .create_namespace(&format!("poll{}", interval.as_secs()))
        .await?;
    seed_streams(cluster, &ns, "stg", &names).await?;
    let name = format!("poll-{}s", interval.as_secs());
    let poll = format!("{}s", interval.as_secs());
    let (daemon, _dir) = immediate_daemon(cluster, &name, &ns, POLL_STREAMS, &poll, None).await?;

    // One push per stream at a random phase of the poll cycle.
    let t0 = Utc::now() + chrono::TimeDelta::milliseconds(500);
    let slot = interval / POLL_STREAMS as u32;
    let mut pushed: BTreeMap<String, (String, chrono::DateTime<Utc>)> = BTreeMap::new();
    for (i, stream) in names.iter().enumerate() {
        let offset = slot * i as u32 + slot.mul_f64(rand::random::<f64>());
        sleep_until(t0 + offset).await;
        let digest = cluster
            .registry()
            .push_image(&format!("{ns}/{stream}"), "stg")
            .await?;
        pushed.insert(stream.clone(), (digest, Utc::now()));
    }
    let d = &daemon;
    let ns_ref = ns.as_str();
    let updates = wait_for(
        "every push to be imported",
        interval * 3 + Duration::from_secs(30),
        Duration::from_millis(100),
        || async move {
            let u = d.updates(ns_ref);
            Ok((u.len() >= POLL_STREAMS).then_some(u))
        },
    )
    .await?;
    let mut samples = Vec::new();
    for (stream, (digest, at)) in &pushed {
        let line = updates
            .iter()
            .find(|l| l.str("stream") == stream)
            .with_context(|| format!("no import line for {stream}"))?;
        if !line.str("to").starts_with(digest.as_str()) {
            bail!(
                "{ns}/{stream}: imported {} but {digest} was pushed",
                line.str("to")
            );
        }
        samples.push(seconds_between(*at, line.at));
    }
    let history = newest_all(cluster, &ns, "stg").await?;
    for (stream, (digest, _)) in &pushed {
        if history.get(stream).map(|(image, _)| image) != Some(digest) {
            bail!("{ns}/{stream}:stg history does not show {digest}");
        }
    }
    eprintln!("[poll {interval:?}] latencies (s): {samples:.2?}");
    daemon.stop()?;
    Ok(summarize(&samples))
}

async fn hook(cluster: &TestCluster, n: usize) -> anyhow::Result<Summary> {
    let names = stream_names(HOOK_STREAMS);
    let ns = cluster.create_namespace("hook").await?;
    seed_streams(cluster, &ns, "stg", &names).await?;
    let (daemon, _dir) =
        immediate_daemon(cluster, "hook", &ns, HOOK_STREAMS, "1h", Some(HOOK_SECRET)).await?;
    let auth = format!("Bearer {HOOK_SECRET}");
    let mut samples = Vec::new();
    for i in 0..n {
        let stream = &names[i % names.len()];
        let repo = format!("{ns}/{stream}");
        let digest = cluster.registry().push_image(&repo, "stg").await?;
        let pushed = Instant::now();
        let body = serde_json::json!({
            "docker_url": format!("{}/{repo}", cluster.registry().host()),
            "updated_tags": ["stg"],
        })
        .to_string();
        let (code, text) = http(
            daemon.port,
            "POST",
            "/hooks/import",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .await?;
        if code != 202 {
            bail!("the hook answered {code}: {text}");
        }
        let (ns_ref, stream_ref, want) = (ns.as_str(), stream.as_str(), digest.as_str());
        wait_for(
            "the hook's import in the stream's history",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async move {
                let newest = newest_image(cluster, ns_ref, stream_ref, "stg").await?;
                Ok((newest.as_deref() == Some(want)).then_some(()))
            },
        )
        .await?;
        samples.push(pushed.elapsed().as_secs_f64());
        // Let the round's reporting (Event, status ConfigMap) finish, as
        // between two real pushes.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("[hook] latencies (s): {samples:.3?}");
    daemon.stop()?;
    Ok(summarize(&samples))
}
