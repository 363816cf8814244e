//! Idle cost of the daemon: resident memory, CPU time and API requests over
//! 10 minutes with two environments of 6 streams each (stg immediate with
//! pollInterval 1m, prod windowed with its window not open), configured
//! from a ConfigMap as in a cluster; and the size of the binary.
//!
//! Memory is VmRSS/VmHWM from `/proc/PID/status`, CPU is utime + stime from
//! `/proc/PID/stat` (the daemon's own time, so other load on the machine
//! hardly changes it), API requests are the daemon's own
//! `image_import_scheduler_api_requests_total`. The measurement starts after
//! the start-up and the first poll round, reported separately.
//!
//! Then failover with the daemon's default Lease timings: a standby
//! replica is started beside the leader and the leader is killed (SIGKILL,
//! no release) or stopped (SIGTERM, which releases the Lease); the time is
//! from the signal to the standby's `leader` gauge turning 1.
//!
//! With `--workloads` the cluster also runs the workload controllers and
//! stg holds 10 Deployments of 5 pods each whose image triggers name its
//! tags, so the idle figures include rollout checks being on (they must add
//! no request and no resident memory while nothing is imported); then one
//! new image is pushed and the requests from the push to the rollout's
//! verdict are counted (failover is not measured then).
//!
//! `cargo bench --bench idle [-- --quick] [--workloads]` (quick: 1 minute,
//! one crash).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{Timelike, Utc};
use common::*;
use test_cluster::{workload_manifest, ClusterOptions, TestCluster};

const STREAMS: usize = 6;
/// With `--workloads`: Deployments in stg, each with this many pods.
const WORKLOADS: usize = 10;
const REPLICAS: usize = 5;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let duration = if args.quick {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(600)
    };
    let cluster = if args.workloads {
        start_cluster_with(ClusterOptions::default().with_workloads())?
    } else {
        start_cluster()?
    };
    let rt = runtime()?;
    rt.block_on(run(&cluster, duration, args.quick, args.workloads))
}

async fn run(
    cluster: &TestCluster,
    duration: Duration,
    quick: bool,
    workloads: bool,
) -> anyhow::Result<()> {
    let binary = daemon_binary();
    let size = std::fs::metadata(&binary)
        .with_context(|| format!("cannot stat {}", binary.display()))?
        .len();
    result(&[
        ("bench", "idle".into()),
        ("binary", binary.display().to_string()),
        ("binary_bytes", size.to_string()),
        ("binary_mib", format!("{:.2}", size as f64 / 1048576.0)),
    ]);

    let names = stream_names(STREAMS);
    let stg = cluster.create_namespace("idle-stg").await?;
    let prod = cluster.create_namespace("idle-prod").await?;
    let home = cluster.create_namespace("idle-scheduler").await?;
    seed_streams(cluster, &stg, "stg", &names).await?;
    seed_streams(cluster, &prod, "prod", &names).await?;
    if workloads {
        create_workloads(cluster, &stg, &names).await?;
    }
    // A daily window 6 hours away: closed for the whole measurement.
    let hour = (Utc::now() + chrono::TimeDelta::hours(6)).hour();
    let config = format!(
        "environments:\n  stg:\n    namespace: {stg}\n    tag: stg\n    mode: immediate\n    pollInterval: 1m\n  \
         prod:\n    namespace: {prod}\n    tag: prod\n    mode: windowed\n    schedule: \"0 {hour} * * *\"\n    timeZone: UTC\n    window: 1h\n"
    );
    put_config_map(
        cluster,
        &home,
        "image-import-scheduler",
        "config.yaml",
        &config,
    )
    .await?;

    let spawned = Instant::now();
    let mut daemon = Daemon::spawn(
        cluster,
        &DaemonSpec {
            name: "idle",
            namespace: &home,
            config: ConfigFrom::ConfigMap,
            hook_secret: None,
            log: LOG_PRODUCTION,
        },
    )?;
    daemon.wait_ready(Duration::from_secs(30)).await?;
    let d = &daemon;
    wait_for(
        "the first stg round",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async move {
            let m = d.metrics().await?;
            let checked = metric_sum(&m, "image_import_scheduler_imports_total");
            Ok((checked >= STREAMS as f64).then_some(()))
        },
    )
    .await?;
    let startup = spawned.elapsed();
    // Let the first round's reporting (Events, status ConfigMap) finish
    // before the measurement starts; its CPU time counts as start-up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let startup_cpu = daemon.cpu()?;
    let startup_mem = daemon.memory()?;
    let m0 = daemon.metrics().await?;
    let open = metric_samples(&m0, "image_import_scheduler_window_open");
    if open.values().any(|&v| v != 0.0) {
        bail!("a window is open ({open:?}); the idle measurement needs it closed");
    }
    let req0 = metric_samples(&m0, "image_import_scheduler_api_requests_total");
    let cpu0 = startup_cpu;
    eprintln!(
        "[idle] ready and first round done {startup:.1?} after the start; measuring for {duration:?} from 10 s later"
    );

    let begin = Instant::now();
    let mut rss = Vec::new();
    while begin.elapsed() < duration {
        let left = duration.saturating_sub(begin.elapsed());
        tokio::time::sleep(SAMPLE_EVERY.min(left)).await;
        if let Some(status) = daemon.exited() {
            bail!("the daemon exited with {status} while idle");
        }
        rss.push(mib(daemon.memory()?.rss_kib));
    }
    let measured = begin.elapsed();
    let cpu1 = daemon.cpu()?;
    let mem1 = daemon.memory()?;
    let m1 = daemon.metrics().await?;
    let req1 = metric_samples(&m1, "image_import_scheduler_api_requests_total");
    let rollout = if workloads {
        Some(one_rollout(cluster, &daemon, &stg, &names[0]).await?)
    } else {
        None
    };
    // Failover does not depend on workloads: measured without them only.
    let failovers = if workloads {
        daemon.stop()?;
        Vec::new()
    } else {
        let crashes = if quick { 1 } else { 2 };
        failover(cluster, &home, daemon, crashes).await?
    };

    let per_kind = requests_between(&req0, &req1);
    let total: f64 = per_kind.values().sum();
    let per_hour = total * 3600.0 / measured.as_secs_f64();
    let cpu = cpu1.saturating_sub(cpu0);
    let rss_s = summarize(&rss);
    let cpu_share = cpu.as_secs_f64() / measured.as_secs_f64();

    result(&[
        ("bench", "idle".into()),
        ("measured_s", format!("{:.0}", measured.as_secs_f64())),
        ("startup_s", format!("{:.2}", startup.as_secs_f64())),
        ("startup_cpu_s", format!("{:.2}", startup_cpu.as_secs_f64())),
        (
            "startup_rss_mib",
            format!("{:.1}", mib(startup_mem.rss_kib)),
        ),
        ("rss_mib_mean", format!("{:.1}", rss_s.mean)),
        ("rss_mib_max", format!("{:.1}", rss_s.max)),
        ("hwm_mib", format!("{:.1}", mib(mem1.hwm_kib))),
        ("cpu_s", format!("{:.2}", cpu.as_secs_f64())),
        ("cpu_millicores", format!("{:.2}", cpu_share * 1000.0)),
        ("api_requests", format!("{total}")),
        ("api_requests_per_hour", format!("{per_hour:.0}")),
    ]);

    println!();
    println!(
        "Idle daemon, {:.0} s measured after start-up (ready and first round done in {:.1} s; {:.2} s CPU), 2 environments x {STREAMS} streams",
        measured.as_secs_f64(),
        startup.as_secs_f64(),
        startup_cpu.as_secs_f64()
    );
    println!();
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!(
        "| binary size (release, stripped) | {:.2} MiB ({size} bytes) |",
        size as f64 / 1048576.0
    );
    println!(
        "| resident memory (VmRSS) mean / max | {:.1} / {:.1} MiB |",
        rss_s.mean, rss_s.max
    );
    println!(
        "| peak resident memory (VmHWM, incl. start-up) | {:.1} MiB |",
        mib(mem1.hwm_kib)
    );
    println!(
        "| CPU time (utime+stime) over {:.0} s | {:.2} s ({:.2} millicores) |",
        measured.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu_share * 1000.0
    );
    println!(
        "| API requests over {:.0} s | {total} |",
        measured.as_secs_f64()
    );
    println!("| API requests per hour (extrapolated) | {per_hour:.0} |");
    println!();
    println!(
        "| verb, resource | requests in {:.0} s | per hour |",
        measured.as_secs_f64()
    );
    println!("| --- | ---: | ---: |");
    for (kind, n) in &per_kind {
        println!(
            "| {kind} | {n} | {:.0} |",
            n * 3600.0 / measured.as_secs_f64()
        );
    }
    println!();
    if let Some((took, per_kind)) = &rollout {
        println!(
            "One rollout ({} of {WORKLOADS} Deployments consume the tag), push to verdict in {:.1} s",
            WORKLOADS.div_ceil(STREAMS),
            took.as_secs_f64()
        );
        println!();
        println!("| verb, resource | requests |");
        println!("| --- | ---: |");
        for (kind, n) in per_kind {
            println!("| {kind} | {n} |");
        }
        println!();
    }
    if failovers.is_empty() {
        return Ok(());
    }
    println!("Failover (signal to the standby leading), default Lease timings");
    println!();
    println!("| leader ended by | sample | failover |");
    println!("| --- | ---: | ---: |");
    for (how, i, took) in &failovers {
        println!("| {how} | {i} | {:.1} s |", took.as_secs_f64());
    }
    Ok(())
}

/// Ends `leader` `crashes` times by SIGKILL and once by SIGTERM, each time
/// with a fresh standby replica that has been standing by for 10 s, and
/// times the handover.
async fn failover(
    cluster: &TestCluster,
    home: &str,
    mut leader: Daemon,
    crashes: usize,
) -> anyhow::Result<Vec<(&'static str, usize, Duration)>> {
    let mut took = Vec::new();
    for round in 1..=crashes + 1 {
        let name = format!("idle-standby-{round}");
        let mut standby = Daemon::spawn_in(
            cluster,
            &DaemonSpec {
                name: &name,
                namespace: home,
                config: ConfigFrom::ConfigMap,
                hook_secret: None,
                log: LOG_PRODUCTION,
            },
            "idle",
        )?;
        standby.wait_ready(Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        if !leader.leads().await? || standby.leads().await? {
            bail!(
                "before failover {round}: {} should lead, {name} stand by",
                leader.name
            );
        }
        let how = if round <= crashes {
            "SIGKILL"
        } else {
            "SIGTERM"
        };
        let signalled = Instant::now();
        let stopping = if round <= crashes {
            leader.crash()?;
            None
        } else {
            leader.terminate();
            Some(leader)
        };
        let s = &standby;
        wait_for(
            "the standby to lead",
            Duration::from_secs(300),
            Duration::from_millis(100),
            || async move { Ok(s.leads().await?.then_some(())) },
        )
        .await?;
        let elapsed = signalled.elapsed();
        eprintln!("[idle] failover {round} ({how}): {elapsed:.1?}");
        result(&[
            ("bench", "idle".into()),
            ("failover", how.into()),
            ("sample", round.to_string()),
            ("failover_s", format!("{:.2}", elapsed.as_secs_f64())),
        ]);
        took.push((how, round, elapsed));
        if let Some(old) = stopping {
            old.stop()?;
        }
        leader = standby;
    }
    leader.stop()?;
    Ok(took)
}

/// API requests by verb and resource (codes summed) between two samples of
/// `image_import_scheduler_api_requests_total`.
fn requests_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let mut per_kind: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, v) in after {
        let was = before.get(labels).copied().unwrap_or(0.0);
        if v - was > 0.0 {
            let key = labels
                .split(',')
                .filter(|l| !l.starts_with("code="))
                .collect::<Vec<_>>()
                .join(",");
            *per_kind.entry(key).or_default() += v - was;
        }
    }
    per_kind
}

/// Creates [`WORKLOADS`] Deployments of [`REPLICAS`] pods in `ns`, the
/// i-th triggered by `names[i % len]:stg`, and waits until every pod is
/// ready.
async fn create_workloads(cluster: &TestCluster, ns: &str, names: &[String]) -> anyhow::Result<()> {
    for i in 0..WORKLOADS {
        let stream = &names[i % names.len()];
        let image = newest_image(cluster, ns, stream, "stg")
            .await?
            .context("a seeded stream has no image")?;
        let is = cluster.stream(ns, stream).await?;
        let reference = history_items(&is, "stg")
            .first()
            .and_then(|item| item["dockerImageReference"].as_str())
            .map(str::to_string)
            .unwrap_or(image);
        let name = format!("app-{i:02}");
        let deployment = workload_manifest(
            "Deployment",
            &name,
            "app",
            &reference,
            REPLICAS,
            Some(&format!("{stream}:stg")),
        );
        cluster.create_workload(ns, deployment).await?;
    }
    let want = WORKLOADS * REPLICAS;
    wait_for(
        "every pod of the workloads ready",
        Duration::from_secs(300),
        Duration::from_secs(1),
        || async move {
            let pods = cluster
                .admin_request("GET", &format!("/api/v1/namespaces/{ns}/pods"), None)
                .await?;
            let ready = pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|pod| {
                    pod["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .count();
            Ok((ready >= want).then_some(()))
        },
    )
    .await?;
    eprintln!("[idle] {WORKLOADS} Deployments in {ns}, {want} pods ready");
    Ok(())
}

/// Pushes a new image of `ns/stream:stg` and counts the daemon's API
/// requests from the push to the rollout's verdict (`rollouts_total`).
async fn one_rollout(
    cluster: &TestCluster,
    daemon: &Daemon,
    ns: &str,
    stream: &str,
) -> anyhow::Result<(Duration, BTreeMap<String, f64>)> {
    let m0 = daemon.metrics().await?;
    let req0 = metric_samples(&m0, "image_import_scheduler_api_requests_total");
    let verdicts0 = metric_sum(&m0, "image_import_scheduler_rollouts_total");
    let pushed = Instant::now();
    push_all(cluster, ns, "stg", &[stream.to_string()]).await?;
    let verdict = wait_for(
        "the rollout's verdict",
        Duration::from_secs(900),
        Duration::from_millis(200),
        || async move {
            let m = daemon.metrics().await?;
            let verdicts = metric_samples(&m, "image_import_scheduler_rollouts_total");
            let total: f64 = verdicts.values().sum();
            Ok((total > verdicts0).then_some(verdicts))
        },
    )
    .await?;
    let took = pushed.elapsed();
    if !verdict.keys().any(|l| l.contains("result=\"succeeded\"")) {
        bail!("the rollout did not succeed: {verdict:?}");
    }
    let m1 = daemon.metrics().await?;
    let req1 = metric_samples(&m1, "image_import_scheduler_api_requests_total");
    let per_kind = requests_between(&req0, &req1);
    for (kind, n) in &per_kind {
        result(&[
            ("bench", "idle".into()),
            ("rollout", kind.clone()),
            ("requests", format!("{n}")),
        ]);
    }
    result(&[
        ("bench", "idle".into()),
        ("rollout_s", format!("{:.1}", took.as_secs_f64())),
    ]);
    Ok((took, per_kind))
}
