//! What the cluster benchmarks share: the test cluster with the latencies
//! of a real one, the daemon binary run as a child process (JSON logs parsed
//! as they arrive, `/proc` and `/metrics` read while it runs), seeding and
//! pushing, and summaries of measured samples.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use test_cluster::{ClusterOptions, TagSeed, TestCluster};

/// The integration tests' helpers, one copy for tests and benchmarks.
#[path = "../../tests/support/mod.rs"]
mod support;
// Each benchmark uses some of them.
#[allow(unused_imports)]
pub use support::{free_port, history_items, history_of, http_request, metric_samples, metric_sum};

/// Latency the test cluster adds to every API request.
pub const API_LATENCY: Duration = Duration::from_millis(50);
/// Latency the front adds to every ImageStreamImport on top of
/// openshift-apiserver's own import: none, the real importer's registry round
/// trips (over HTTPS to the test registry) are the import's cost.
pub const IMPORT_LATENCY: Duration = Duration::ZERO;

/// The daemon binary under test: `IMPORT_SCHEDULER_BIN` if set (scripts/bench.sh
/// sets it to the output of `cargo build --release --bin import-scheduler`,
/// the binary that ships), else the one `cargo bench` built along with the
/// benchmarks (the same code, with the dev-dependencies' crate features).
pub fn daemon_binary() -> PathBuf {
    std::env::var_os("IMPORT_SCHEDULER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_import-scheduler")))
}

/// Command-line options of a bench target. `cargo bench` passes `--bench`.
pub struct Args {
    /// Smaller sizes and shorter runs, for trying the benchmark out.
    pub quick: bool,
    /// window_start: the window after a freeze, with notification receivers
    /// that never answer and without any.
    pub notify: bool,
    /// Run the cluster with workloads (real controllers) for benchmarks
    /// that measure rollout checks.
    pub workloads: bool,
    /// window_start: the window with every gate configured and passing,
    /// and without gates.
    pub gates: bool,
}

impl Args {
    pub fn parse() -> Args {
        let mut quick = false;
        let mut notify = false;
        let mut workloads = false;
        let mut gates = false;
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => quick = true,
                "--notify" => notify = true,
                "--workloads" => workloads = true,
                "--gates" => gates = true,
                "--bench" => {}
                other => {
                    eprintln!("ignoring argument {other:?} (known: --quick, --notify, --workloads, --gates)")
                }
            }
        }
        Args {
            quick,
            notify,
            workloads,
            gates,
        }
    }
}

/// Where the daemons' raw logs go: `BENCH_LOG_DIR`, else `target/bench-logs`.
pub fn log_dir() -> PathBuf {
    std::env::var_os("BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-logs"))
}

/// A test cluster adding [`API_LATENCY`] to every request (the real
/// openshift-apiserver imports).
pub fn start_cluster() -> anyhow::Result<TestCluster> {
    start_cluster_with(ClusterOptions::default())
}

/// [`start_cluster`] with other options (e.g. workloads) besides the latencies.
pub fn start_cluster_with(opts: ClusterOptions) -> anyhow::Result<TestCluster> {
    let started = Instant::now();
    let cluster = TestCluster::start(ClusterOptions {
        api_latency: Some(API_LATENCY),
        import_latency: Some(IMPORT_LATENCY),
        ..opts
    })?;
    eprintln!(
        "test cluster up in {:.1?} (API latency {API_LATENCY:?}, import latency {IMPORT_LATENCY:?})",
        started.elapsed()
    );
    Ok(cluster)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot build a tokio runtime")
}

/// `svc-000`, `svc-001`, ...
pub fn stream_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("svc-{i:03}")).collect()
}

/// Creates one stream per name in `ns` whose `tag` follows
/// `<registry>/<ns>/<name>:<tag>`, with one image pushed and imported.
pub async fn seed_streams(
    cluster: &TestCluster,
    ns: &str,
    tag: &str,
    names: &[String],
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(names)
        .map(|name| async move {
            let repo = format!("{ns}/{name}");
            cluster.registry().push_image(&repo, tag).await?;
            cluster
                .seed_stream(
                    ns,
                    name,
                    &[TagSeed::new(tag, cluster.registry().image_ref(&repo, tag))],
                )
                .await
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Pushes a new image to every `<ns>/<name>:<tag>`; the new digests by name.
pub async fn push_all(
    cluster: &TestCluster,
    ns: &str,
    tag: &str,
    names: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let results: Vec<anyhow::Result<(String, String)>> = futures::stream::iter(names)
        .map(|name| async move {
            let digest = cluster
                .registry()
                .push_image(&format!("{ns}/{name}"), tag)
                .await?;
            Ok((name.clone(), digest))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Newest history item of `tag` in every stream of `ns`: (image, created).
pub async fn newest_all(
    cluster: &TestCluster,
    ns: &str,
    tag: &str,
) -> anyhow::Result<BTreeMap<String, (String, DateTime<Utc>)>> {
    let list = cluster
        .admin_request(
            "GET",
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
            None,
        )
        .await?;
    let mut out = BTreeMap::new();
    for is in list["items"].as_array().into_iter().flatten() {
        let Some(name) = is["metadata"]["name"].as_str() else {
            continue;
        };
        let newest = history_items(is, tag).first();
        if let Some(item) = newest {
            let image = item["image"].as_str().unwrap_or_default().to_string();
            let created = item["created"]
                .as_str()
                .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                .map(|c| c.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            out.insert(name.to_string(), (image, created));
        }
    }
    Ok(out)
}

/// The newest image of `ns/stream:tag`.
pub async fn newest_image(
    cluster: &TestCluster,
    ns: &str,
    stream: &str,
    tag: &str,
) -> anyhow::Result<Option<String>> {
    let is = cluster.stream(ns, stream).await?;
    Ok(history_of(&is, tag).0)
}

/// Creates (or replaces) ConfigMap `ns/name` with `data`.
pub async fn put_config_map(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
    key: &str,
    text: &str,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {key: text},
    });
    cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(body),
        )
        .await
        .with_context(|| format!("creating ConfigMap {ns}/{name}"))?;
    Ok(())
}

/// One parsed JSON log line of the daemon.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub json: Value,
}

impl LogLine {
    pub fn str(&self, field: &str) -> &str {
        self.json[field].as_str().unwrap_or_default()
    }
}

/// Where the daemon reads its configuration.
pub enum ConfigFrom {
    File(PathBuf),
    /// The ConfigMap `image-import-scheduler` in the daemon's namespace.
    ConfigMap,
}

pub struct DaemonSpec<'a> {
    /// A name for logs, the Lease, the pod name and the status ConfigMap.
    pub name: &'a str,
    /// The daemon's own namespace (Lease, status ConfigMap, Events).
    pub namespace: &'a str,
    pub config: ConfigFrom,
    pub hook_secret: Option<&'a str>,
    /// `IMPORT_SCHEDULER_LOG`: [`LOG_PRODUCTION`] or [`LOG_IMPORTS`].
    pub log: &'a str,
}

/// The daemon's default log filter, as deployed.
pub const LOG_PRODUCTION: &str = "info";
/// Also the importer's debug line per import, written when the import API
/// call answers, with the namespace and the full digests (the info line an
/// operator sees names the environment and short digests).
pub const LOG_IMPORTS: &str =
    "info,import_scheduler::importer=debug,import_scheduler::gate_check=debug";

/// The daemon binary running as a child process.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub name: String,
    lines: Arc<Mutex<Vec<LogLine>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn spawn(cluster: &TestCluster, spec: &DaemonSpec) -> anyhow::Result<Daemon> {
        Self::spawn_in(cluster, spec, spec.name)
    }

    /// Like [`Daemon::spawn`], but the Lease and the status ConfigMap are
    /// `group`'s: daemons of one group are replicas that elect one leader.
    pub fn spawn_in(
        cluster: &TestCluster,
        spec: &DaemonSpec,
        group: &str,
    ) -> anyhow::Result<Daemon> {
        let port = free_port();
        let binary = daemon_binary();
        let mut cmd = Command::new(&binary);
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path());
        if let ConfigFrom::File(path) = &spec.config {
            cmd.arg("--config").arg(path);
        }
        cmd.env("IMPORT_SCHEDULER_NAMESPACE", spec.namespace)
            .env("IMPORT_SCHEDULER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("IMPORT_SCHEDULER_LOG_FORMAT", "json")
            .env("IMPORT_SCHEDULER_LOG", spec.log)
            .env("IMPORT_SCHEDULER_POD_NAME", spec.name)
            .env("IMPORT_SCHEDULER_LEASE_NAME", format!("lease-{group}"))
            .env(
                "IMPORT_SCHEDULER_STATUS_CONFIGMAP",
                format!("status-{group}"),
            )
            .env_remove("IMPORT_SCHEDULER_HOOK_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(secret) = spec.hook_secret {
            cmd.env("IMPORT_SCHEDULER_HOOK_SECRET", secret);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("the daemon's stderr")?;
        let dir = log_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log_path = dir.join(format!("{}.log", spec.name));
        let mut raw = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(raw, "{line}");
                let Ok(json) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let at = json["timestamp"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                if let Some(at) = at {
                    if let Ok(mut v) = sink.lock() {
                        v.push(LogLine { at, json });
                    }
                }
            }
        });
        Ok(Daemon {
            child,
            pid,
            port,
            name: spec.name.to_string(),
            lines,
            reader: Some(reader),
        })
    }

    /// Log lines so far that satisfy `keep`.
    pub fn lines(&self, keep: impl Fn(&LogLine) -> bool) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|v| v.iter().filter(|l| keep(l)).cloned().collect())
            .unwrap_or_default()
    }

    /// Completed imports that brought a new image into a stream of `ns`:
    /// the importer's per-import line, written when the API answered (needs
    /// [`LOG_IMPORTS`]).
    pub fn updates(&self, ns: &str) -> Vec<LogLine> {
        self.lines(|l| {
            l.str("message") == "import"
                && l.str("namespace") == ns
                && l.str("outcome") == "updated"
        })
    }

    /// The per-import lines an operator sees (`imported a new image`, one per
    /// updated tag of environment `env`).
    pub fn reported(&self, env: &str) -> Vec<LogLine> {
        self.lines(|l| {
            l.str("env") == env
                && l.str("outcome") == "updated"
                && l.str("target") == "import_scheduler::report"
        })
    }

    /// Failed imports in `ns` (the importer's line, after its own retries).
    pub fn failures(&self, ns: &str) -> Vec<LogLine> {
        self.lines(|l| {
            l.str("namespace") == ns
                && l.str("outcome") == "failed"
                && l.str("message").starts_with("import failed:")
        })
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "daemon {} exited with {status} before it was ready; log in {}",
                    self.name,
                    log_dir().join(format!("{}.log", self.name)).display()
                );
            }
            if let Ok((200, _)) = http(self.port, "GET", "/readyz", &[], "").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("daemon {} not ready after {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        match http(self.port, "GET", "/metrics", &[], "").await? {
            (200, body) => Ok(body),
            (code, body) => bail!("/metrics answered {code}: {body}"),
        }
    }

    /// Resident memory now and at its peak, in KiB.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        proc_memory(self.pid)
    }

    /// User + system CPU time used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        proc_cpu(self.pid)
    }

    /// SIGKILL, as a crash or a lost node would end it (no Lease release).
    pub fn crash(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM without waiting (see [`Daemon::stop`]).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
    }

    /// Whether its `leader` gauge says it leads.
    pub async fn leads(&self) -> anyhow::Result<bool> {
        let m = self.metrics().await?;
        Ok(metric_sum(&m, "image_import_scheduler_leader") >= 1.0)
    }

    /// SIGTERM, then waits up to 40 s for the exit.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("daemon {} did not stop within 40 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak resident), KiB.
    pub hwm_kib: u64,
}

pub fn proc_memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Ok(Memory {
        rss_kib: field("VmRSS:").with_context(|| format!("no VmRSS in {path}"))?,
        hwm_kib: field("VmHWM:").with_context(|| format!("no VmHWM in {path}"))?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of `pid` from `/proc/PID/stat`.
pub fn proc_cpu(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may contain spaces) start at
    // field 3 (state); utime and stime are fields 14 and 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("unexpected {path}: {text}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected {path}: {text}"))
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// [`http_request`], with "nothing answered" as an error.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    match http_request(port, method, path, headers, body).await {
        (0, why) => bail!("{why}"),
        answer => Ok(answer),
    }
}

/// Polls `check` every `every` until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Sleeps until the wall clock reads `at`.
pub async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(d) = (at - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

pub fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// Mean, percentiles (nearest rank) and extremes of a sample.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

pub fn summarize(samples: &[f64]) -> Summary {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |p: f64| -> f64 {
        if n == 0 {
            return f64::NAN;
        }
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        v[i]
    };
    Summary {
        n,
        mean: if n == 0 {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / n as f64
        },
        min: v.first().copied().unwrap_or(f64::NAN),
        p50: rank(0.5),
        p95: rank(0.95),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints a result line that `scripts/bench.sh` collects (`RESULT key=value ...`).
pub fn result(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
}
