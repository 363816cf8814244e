//! Window-start latency: from the instant a window opens to every tag
//! imported, for 6, 60 and 600 streams, against the test cluster adding
//! 50 ms to every API call and 200 ms to every import.
//!
//! The daemon binary runs with a real schedule (`M H * * *` in UTC, the next
//! minute boundary at least 10 s away, window 10m), started 10 s before the
//! window opens; "all imported" is the last import's completion, from the
//! importer's debug log line per import (written when the import API call
//! answers), checked against the streams' history. The baseline is `scripts/cronjob-baseline.sh`: what one
//! run of the replaced CronJob did (a new process importing the streams one by
//! one with kubectl), timed from its start to its exit.
//!
//! `cargo bench --bench window_start [-- --quick]` (quick: 6 and 60 streams).
//!
//! `cargo bench --bench window_start -- --notify`: what a dead notification
//! receiver costs a window start. 60 streams, the window opening the instant
//! a configured freeze ends (the daemon tells the freeze when it starts and
//! its end at the window's start), alternately with no receiver configured
//! and with a chat webhook and Sentry that accept connections and never
//! answer. Same latencies as above.
//!
//! `cargo bench --bench window_start -- --gates`: what checking the gates
//! adds to a window's imports (`window_start/gates.rs`).

mod common;
#[path = "window_start/gates.rs"]
mod gates;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, DurationRound, Timelike, Utc};
use common::*;
use test_cluster::TestCluster;

/// How long before the window start the daemon is started.
const LEAD: Duration = Duration::from_secs(10);
/// The former default (4) set explicitly, then the default.
const CONCURRENCIES: [Option<usize>; 2] = [Some(4), None];
/// `import.concurrency` when the configuration does not set it.
const DEFAULT_CONCURRENCY: usize = 16;

struct DaemonRun {
    streams: usize,
    concurrency: usize,
    /// Window start to the "window opened" log line.
    opened_s: f64,
    first_s: f64,
    all_s: f64,
    /// Window start to the last `imported a new image` line (and Event).
    reported_s: f64,
    /// From the streams' history (`created`, whole seconds).
    history_all_s: f64,
    peak_rss_kib: u64,
    cpu: Duration,
    api_requests: f64,
    failures: usize,
    /// The daemon's `/metrics` text once every tag was imported.
    metrics: String,
}

struct BaselineRun {
    streams: usize,
    all_s: f64,
    history_all_s: f64,
    imported: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes: &[usize] = if args.quick { &[6, 60] } else { &[6, 60, 600] };
    let cluster = start_cluster()?;
    let rt = runtime()?;
    let rounds = if args.quick { 1 } else { 3 };
    if args.notify {
        return rt.block_on(notify_runs(&cluster, rounds));
    }
    if args.gates {
        return rt.block_on(gates::runs(&cluster, rounds));
    }
    rt.block_on(run(&cluster, sizes))
}

/// Environment variables the daemon reads the hanging receivers from.
const CHAT_VAR: &str = "BENCH_NOTIFY_CHAT_URL";
const SENTRY_VAR: &str = "BENCH_NOTIFY_SENTRY_DSN";
const NOTIFY_STREAMS: usize = 60;

/// Window starts after a freeze, `rounds` times without and with receivers
/// that never answer, alternating so both see the same machine.
async fn notify_runs(cluster: &TestCluster, rounds: usize) -> anyhow::Result<()> {
    let hung = Arc::new(AtomicUsize::new(0));
    let addr = hanging_receiver(hung.clone()).await?;
    // The child daemons inherit them; only the configuration with
    // receivers names them.
    std::env::set_var(CHAT_VAR, format!("http://{addr}/hooks/T000/B000/bench"));
    std::env::set_var(SENTRY_VAR, format!("http://key@{addr}/1"));
    let names = stream_names(NOTIFY_STREAMS);
    let ns = cluster.create_namespace("wsnotify").await?;
    seed_streams(cluster, &ns, "prod", &names).await?;
    let mut rows = Vec::new();
    for round in 0..rounds {
        for receivers in alternating(round) {
            let before = hung.load(Ordering::SeqCst);
            let r = daemon_window(cluster, &ns, &names, None, Some(receivers)).await?;
            let requests = hung.load(Ordering::SeqCst) - before;
            result(&[
                ("bench", "window_start_notify".into()),
                ("round", round.to_string()),
                (
                    "receivers",
                    if receivers { "hanging" } else { "none" }.into(),
                ),
                ("opened_s", format!("{:.3}", r.opened_s)),
                ("first_s", format!("{:.3}", r.first_s)),
                ("all_s", format!("{:.3}", r.all_s)),
                ("receiver_requests", requests.to_string()),
                ("failed_imports", r.failures.to_string()),
            ]);
            rows.push((receivers, requests, r));
        }
    }
    println!();
    println!("Window start after a freeze, {NOTIFY_STREAMS} streams, API +{API_LATENCY:?}/call, default concurrency");
    println!();
    println!("| receivers | window opened after | first import | last import | requests the receivers got (never answered) | failed imports |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (receivers, requests, r) in &rows {
        println!(
            "| {} | {:.3} s | {:.2} s | {:.2} s | {} | {} |",
            if *receivers {
                "chat + Sentry, never answer"
            } else {
                "none configured"
            },
            r.opened_s,
            r.first_s,
            r.all_s,
            requests,
            r.failures
        );
    }
    Ok(())
}

/// Both cases of a comparison, the first one first in even rounds: later
/// runs find longer histories, so neither case always gets the shorter.
fn alternating(round: usize) -> [bool; 2] {
    if round % 2 == 0 {
        [false, true]
    } else {
        [true, false]
    }
}

/// A receiver that counts requests and never answers them.
async fn hanging_receiver(count: Arc<AtomicUsize>) -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn run(cluster: &TestCluster, sizes: &[usize]) -> anyhow::Result<()> {
    let mut daemon_runs = Vec::new();
    let mut baseline_runs = Vec::new();
    let mut kubectl_rss = Vec::new();
    for &n in sizes {
        let names = stream_names(n);
        let ns = cluster.create_namespace(&format!("ws{n}")).await?;
        let t = Instant::now();
        seed_streams(cluster, &ns, "prod", &names).await?;
        eprintln!("[{n} streams] seeded {ns} in {:.1?}", t.elapsed());

        for concurrency in CONCURRENCIES {
            let r = daemon_window(cluster, &ns, &names, concurrency, None).await?;
            result(&[
                ("bench", "window_start".into()),
                ("runner", "daemon".into()),
                ("streams", n.to_string()),
                ("concurrency", r.concurrency.to_string()),
                ("all_s", format!("{:.3}", r.all_s)),
                ("first_s", format!("{:.3}", r.first_s)),
                ("reported_s", format!("{:.3}", r.reported_s)),
                ("opened_s", format!("{:.3}", r.opened_s)),
                ("history_all_s", format!("{:.0}", r.history_all_s)),
                ("peak_rss_mib", format!("{:.1}", mib(r.peak_rss_kib))),
                ("cpu_s", format!("{:.2}", r.cpu.as_secs_f64())),
                ("api_requests", format!("{}", r.api_requests)),
                ("failed_imports", r.failures.to_string()),
            ]);
            daemon_runs.push(r);
        }

        let b = baseline(cluster, &ns, &names, None).await?;
        result(&[
            ("bench", "window_start".into()),
            ("runner", "cronjob-baseline".into()),
            ("streams", n.to_string()),
            ("all_s", format!("{:.3}", b.all_s)),
            ("history_all_s", format!("{:.0}", b.history_all_s)),
            ("imported", b.imported.to_string()),
        ]);
        baseline_runs.push(b);

        if n == sizes[0] {
            // Peak memory of each kubectl process of a baseline run, in a
            // separate run so that /usr/bin/time does not add to the timing.
            let log = tempfile::NamedTempFile::new()?;
            baseline(cluster, &ns, &names, Some(log.path())).await?;
            kubectl_rss = std::fs::read_to_string(log.path())?
                .lines()
                .filter_map(|l| l.trim().parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .collect();
            let s = summarize(&kubectl_rss);
            result(&[
                ("bench", "window_start".into()),
                ("runner", "cronjob-baseline".into()),
                ("kubectl_processes", s.n.to_string()),
                ("kubectl_peak_rss_mib_mean", format!("{:.1}", s.mean)),
                ("kubectl_peak_rss_mib_max", format!("{:.1}", s.max)),
            ]);
        }
    }

    println!();
    println!("Window-start latency (window start -> every tag imported), API +{API_LATENCY:?}/call, imports by the real openshift-apiserver (+{IMPORT_LATENCY:?})");
    println!();
    println!("| streams | daemon c=4 (former default) | daemon c={DEFAULT_CONCURRENCY} (default) | CronJob baseline | baseline / daemon c=4 | baseline / daemon c={DEFAULT_CONCURRENCY} |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for b in &baseline_runs {
        let d = |c: usize| {
            daemon_runs
                .iter()
                .find(|r| r.streams == b.streams && r.concurrency == c)
        };
        let (Some(before), Some(now)) = (d(4), d(DEFAULT_CONCURRENCY)) else {
            continue;
        };
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.1}x | {:.1}x |",
            b.streams,
            before.all_s,
            now.all_s,
            b.all_s,
            b.all_s / before.all_s,
            b.all_s / now.all_s
        );
    }
    println!();
    println!("| streams | concurrency | window opened after | first import | last import | history (1 s) | last import logged | daemon peak RSS | daemon CPU | API requests |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &daemon_runs {
        println!(
            "| {} | {} | {:.3} s | {:.2} s | {:.2} s | {:.0} s | {:.2} s | {:.1} MiB | {:.2} s | {} |",
            r.streams,
            r.concurrency,
            r.opened_s,
            r.first_s,
            r.all_s,
            r.history_all_s,
            r.reported_s,
            mib(r.peak_rss_kib),
            r.cpu.as_secs_f64(),
            r.api_requests
        );
    }
    if !kubectl_rss.is_empty() {
        let s = summarize(&kubectl_rss);
        println!();
        println!(
            "CronJob baseline: peak RSS per kubectl process {:.1} MiB mean, {:.1} MiB max ({} processes)",
            s.mean, s.max, s.n
        );
    }
    Ok(())
}

/// The next minute boundary at least `LEAD` + 2 s from now.
fn next_window_start() -> DateTime<Utc> {
    let earliest = Utc::now() + LEAD + Duration::from_secs(2);
    let floor = earliest
        .duration_trunc(chrono::TimeDelta::minutes(1))
        .unwrap_or(earliest);
    if floor >= earliest {
        floor
    } else {
        floor + chrono::TimeDelta::minutes(1)
    }
}

/// One window start; with `after_freeze`, the window opens as a configured
/// freeze ends, with (`Some(true)`) or without notification receivers.
async fn daemon_window(
    cluster: &TestCluster,
    ns: &str,
    names: &[String],
    concurrency: Option<usize>,
    after_freeze: Option<bool>,
) -> anyhow::Result<DaemonRun> {
    let (pushed, start) = new_window(cluster, ns, names).await?;
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let setup = Setup {
        concurrency,
        preamble: match after_freeze {
            Some(true) => format!(
                "notifications:\n  slack: {{urlFromEnv: {CHAT_VAR}}}\n  sentry: {{dsnFromEnv: {SENTRY_VAR}}}\n"
            ),
            _ => String::new(),
        },
        prod: match after_freeze {
            Some(_) => format!(
                "    freeze:\n      - {{from: \"{}\", to: \"{}\", reason: bench}}\n",
                at(start - chrono::TimeDelta::hours(1)),
                at(start)
            ),
            None => String::new(),
        },
        others: String::new(),
    };
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), ns, start, &setup)?;
    measure_window(cluster, ns, &pushed, start, config, concurrency, 0).await
}

/// What a window start's configuration has besides prod's window.
struct Setup {
    concurrency: Option<usize>,
    /// Top-level YAML before `environments:` (notification receivers).
    preamble: String,
    /// More of prod's environment (a freeze, gates), indented 4 spaces.
    prod: String,
    /// Other environments, indented 2 spaces.
    others: String,
}

/// Pushes a new image to every stream; the digests by stream and the next
/// window start.
async fn new_window(
    cluster: &TestCluster,
    ns: &str,
    names: &[String],
) -> anyhow::Result<(std::collections::BTreeMap<String, String>, DateTime<Utc>)> {
    let pushed = push_all(cluster, ns, "prod", names).await?;
    Ok((pushed, next_window_start()))
}

/// Writes the configuration: prod windowed from `start` for 10 minutes,
/// polling every 5 minutes (so the window's first round does the work).
fn write_config(
    dir: &Path,
    ns: &str,
    start: DateTime<Utc>,
    setup: &Setup,
) -> anyhow::Result<std::path::PathBuf> {
    let config = dir.join("config.yaml");
    let import = match setup.concurrency {
        Some(c) => format!("import:\n  concurrency: {c}\n"),
        None => String::new(),
    };
    std::fs::write(
        &config,
        format!(
            "{}environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    \
             schedule: \"{} {} * * *\"\n    timeZone: UTC\n    window: 10m\n    pollInterval: 5m\n{}{}{import}",
            setup.preamble,
            start.minute(),
            start.hour(),
            setup.prod,
            setup.others,
        ),
    )?;
    Ok(config)
}

/// Starts the daemon `LEAD` before `start` and measures until every tag of
/// `pushed` is imported and reported.
async fn measure_window(
    cluster: &TestCluster,
    ns: &str,
    pushed: &std::collections::BTreeMap<String, String>,
    start: DateTime<Utc>,
    config: std::path::PathBuf,
    concurrency: Option<usize>,
    gate_checks: usize,
) -> anyhow::Result<DaemonRun> {
    let n = pushed.len();
    let c = concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    sleep_until(start - LEAD).await;
    let name = format!("ws-{n}-c{c}");
    let mut daemon = Daemon::spawn(
        cluster,
        &DaemonSpec {
            name: &name,
            namespace: ns,
            config: ConfigFrom::File(config),
            hook_secret: None,
            log: LOG_IMPORTS,
        },
    )?;
    eprintln!("[{n} streams, concurrency {c}] daemon started; window opens at {start}");
    daemon.wait_ready(LEAD).await?;

    let deadline = start + chrono::TimeDelta::minutes(10);
    loop {
        let done = daemon
            .updates(ns)
            .iter()
            .map(|l| l.str("stream").to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if done >= n && daemon.reported("prod").len() >= n {
            break;
        }
        if let Some(status) = daemon.exited() {
            bail!("daemon {name} exited with {status} after {done} of {n} imports");
        }
        if Utc::now() > deadline {
            bail!("daemon {name}: only {done} of {n} tags imported by the window's end");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Gate checks are counted as they are made; the last ones may still be
    // on their way to the registry when the imports they allowed are done.
    loop {
        let metrics = daemon.metrics().await?;
        let counted = metric_sum(
            &metrics,
            "image_import_scheduler_gate_check_duration_seconds_count",
        );
        if counted >= gate_checks as f64 {
            break;
        }
        if Utc::now() > deadline {
            bail!(
                "daemon {name}: {counted} of {gate_checks} gate checks counted by the window's end"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let memory = daemon.memory()?;
    let cpu = daemon.cpu()?;
    let metrics = daemon.metrics().await?;
    let updates = daemon.updates(ns);
    let opened = daemon
        .lines(|l| l.str("decision") == "window opened")
        .first()
        .map(|l| l.at)
        .context("no `window opened` log line")?;
    let first = updates.iter().map(|l| l.at).min().context("no imports")?;
    let last = updates.iter().map(|l| l.at).max().context("no imports")?;
    let reported = daemon
        .reported("prod")
        .iter()
        .map(|l| l.at)
        .max()
        .context("no `imported a new image` lines")?;
    let failures = daemon.failures(ns).len();

    let history = newest_all(cluster, ns, "prod").await?;
    let mut history_last = start;
    for (stream, digest) in pushed {
        match history.get(stream) {
            Some((image, created)) if image == digest => history_last = history_last.max(*created),
            other => bail!("{ns}/{stream}:prod is {other:?}, expected {digest}"),
        }
    }
    let status = daemon.stop()?;
    if !status.success() {
        bail!("daemon {name} exited with {status} after SIGTERM");
    }
    Ok(DaemonRun {
        streams: n,
        concurrency: c,
        opened_s: seconds_between(start, opened),
        first_s: seconds_between(start, first),
        all_s: seconds_between(start, last),
        reported_s: seconds_between(start, reported),
        history_all_s: seconds_between(start, history_last),
        peak_rss_kib: memory.hwm_kib,
        cpu,
        api_requests: metric_sum(&metrics, "image_import_scheduler_api_requests_total"),
        failures,
        metrics,
    })
}

/// One run of the CronJob baseline over `names`; with `rss_log`, each
/// kubectl's peak memory is appended there.
async fn baseline(
    cluster: &TestCluster,
    ns: &str,
    names: &[String],
    rss_log: Option<&Path>,
) -> anyhow::Result<BaselineRun> {
    let pushed = push_all(cluster, ns, "prod", names).await?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cronjob-baseline.sh");
    let mut cmd = Command::new(&script);
    cmd.arg("--kubeconfig").arg(cluster.kubeconfig_path());
    if let Some(log) = rss_log {
        cmd.arg("--rss-log").arg(log);
    }
    cmd.args([ns, "prod", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started_at = Utc::now();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", script.display()))?;
    {
        let mut stdin = child.stdin.take().context("the script's stdin")?;
        stdin.write_all(names.join("\n").as_bytes())?;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default().to_string();
    eprintln!("[{} streams] {summary}", names.len());
    if !out.status.success() {
        bail!("{} exited with {}: {stdout}", script.display(), out.status);
    }
    let history = newest_all(cluster, ns, "prod").await?;
    let mut imported = 0;
    let mut history_last = started_at;
    for (stream, digest) in &pushed {
        if let Some((image, created)) = history.get(stream) {
            if image == digest {
                imported += 1;
                history_last = history_last.max(*created);
            }
        }
    }
    if imported != names.len() {
        bail!(
            "the baseline imported {imported} of {} tags: {summary}",
            names.len()
        );
    }
    Ok(BaselineRun {
        streams: names.len(),
        all_s: elapsed.as_secs_f64(),
        history_all_s: seconds_between(started_at, history_last),
        imported,
    })
}
