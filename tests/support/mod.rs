//! Helpers shared by the integration tests and the benchmarks (which include
//! this file from `benches/common`): a daemon run in-process or as a child
//! process against the test cluster, polling for outcomes with a deadline,
//! loopback HTTP, `/metrics` parsing and ImageStream history.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use import_scheduler::clock::{SharedClock, ShiftedClock};
use import_scheduler::config::Settings;
use import_scheduler::daemon::{self, ConfigSource};
use serde_json::Value;
use test_cluster::{TagSeed, TestCluster};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "import_scheduler=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`
/// with `what` and the last observation.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The newest history item's digest of `ns/stream:tag`, and the history length.
pub async fn newest(
    cluster: &TestCluster,
    ns: &str,
    stream: &str,
    tag: &str,
) -> (Option<String>, usize) {
    let is = cluster.stream(ns, stream).await.expect("read the stream");
    history_of(&is, tag)
}

/// The history items of `tag` in ImageStream `is` (JSON), newest first.
pub fn history_items<'a>(is: &'a Value, tag: &str) -> &'a [Value] {
    is["status"]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["tag"] == tag))
        .and_then(|t| t["items"].as_array())
        .map_or(&[], Vec::as_slice)
}

/// The newest history item's digest of `tag` in `is`, and the history length.
pub fn history_of(is: &Value, tag: &str) -> (Option<String>, usize) {
    let items = history_items(is, tag);
    (
        items
            .first()
            .and_then(|i| i["image"].as_str())
            .map(str::to_string),
        items.len(),
    )
}

/// Creates a namespace and `streams` streams whose `tag` follows
/// `<registry>/<ns>/<stream>:<tag>`, each with one image imported.
pub async fn seed(cluster: &TestCluster, prefix: &str, tag: &str, streams: &[&str]) -> String {
    let ns = cluster.create_namespace(prefix).await.expect("namespace");
    for s in streams {
        let repo = format!("{ns}/{s}");
        cluster
            .registry()
            .push_image(&repo, tag)
            .await
            .expect("push");
        cluster
            .seed_stream(
                &ns,
                s,
                &[TagSeed::new(tag, cluster.registry().image_ref(&repo, tag))],
            )
            .await
            .expect("seed stream");
    }
    ns
}

/// A kube client with the cluster's admin kubeconfig.
pub async fn admin_client(cluster: &TestCluster) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("client")
}

/// What one run of the command line did.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Asserts the exit code, showing both outputs when it is another.
    pub fn expect(self, code: i32, what: &str) -> CliRun {
        assert_eq!(
            self.code, code,
            "{what}: exit code {} (want {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 0.
    pub fn ok(self, what: &str) -> CliRun {
        self.expect(0, what)
    }

    /// Standard output as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the `import-scheduler` binary with `args` and the variables `vars`,
/// isolated from the caller's kubeconfig, home and `IMPORT_SCHEDULER_*`
/// settings.
pub async fn run_cli<S: AsRef<std::ffi::OsStr>>(args: &[S], vars: &[(&str, &str)]) -> CliRun {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"));
    command
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", std::env::temp_dir())
        .stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("IMPORT_SCHEDULER_") {
            command.env_remove(key);
        }
    }
    command.envs(vars.iter().copied());
    let out = command.output().await.expect("run import-scheduler");
    CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Creates Role `role` in `ns` with `rules` (a list of policy rules).
pub async fn create_role(cluster: &TestCluster, ns: &str, role: &str, rules: Value) {
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
            Some(serde_json::json!({"metadata": {"name": role}, "rules": rules})),
        )
        .await
        .unwrap_or_else(|e| panic!("creating Role {ns}/{role}: {e:#}"));
}

/// Binds Role `role` of `ns`, as RoleBinding `binding`, to ServiceAccount
/// `account` of `ns`.
pub async fn bind_role(cluster: &TestCluster, ns: &str, binding: &str, role: &str, account: &str) {
    cluster
        .admin_request(
            "POST",
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            Some(serde_json::json!({
                "metadata": {"name": binding},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("creating RoleBinding {ns}/{binding}: {e:#}"));
}

/// Kubernetes Events (events.k8s.io/v1) in `ns` with `reason`.
pub async fn events(cluster: &TestCluster, ns: &str, reason: &str) -> Vec<Value> {
    let list = cluster
        .admin_request(
            "GET",
            &format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
            None,
        )
        .await
        .expect("list events");
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// A daemon running in this process.
pub struct Daemon {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), daemon::DaemonError>>,
    pub port: u16,
}

pub struct DaemonSpec {
    /// Namespace of the daemon's ConfigMaps, Lease and Events.
    pub namespace: String,
    pub source: ConfigSource,
    pub clock: SharedClock,
    pub pod_name: String,
    pub hook_secret: Option<String>,
    pub lease_name: String,
    /// Further `IMPORT_SCHEDULER_*` settings.
    pub vars: Vec<(String, String)>,
}

impl DaemonSpec {
    pub fn new(namespace: &str, source: ConfigSource) -> Self {
        DaemonSpec {
            namespace: namespace.to_string(),
            source,
            clock: Arc::new(import_scheduler::clock::SystemClock),
            pod_name: "daemon-a".into(),
            hook_secret: None,
            lease_name: "image-import-scheduler".into(),
            vars: Vec::new(),
        }
    }

    /// Sets `IMPORT_SCHEDULER_<name>`.
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars
            .push((format!("IMPORT_SCHEDULER_{name}"), value.to_string()));
        self
    }

    /// A clock on which `at` is `lead` from now.
    pub fn with_clock_at(mut self, at: DateTime<Utc>, lead: Duration) -> Self {
        let offset = at - chrono::Duration::from_std(lead).unwrap() - Utc::now();
        self.clock = Arc::new(ShiftedClock { offset });
        self
    }
}

pub fn start_daemon(cluster: &TestCluster, spec: DaemonSpec) -> Daemon {
    let port = free_port();
    let mut vars = vec![
        (
            "IMPORT_SCHEDULER_NAMESPACE".to_string(),
            spec.namespace.clone(),
        ),
        (
            "IMPORT_SCHEDULER_LISTEN_ADDR".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "IMPORT_SCHEDULER_POD_NAME".to_string(),
            spec.pod_name.clone(),
        ),
        (
            "IMPORT_SCHEDULER_LEASE_NAME".to_string(),
            spec.lease_name.clone(),
        ),
        (
            "IMPORT_SCHEDULER_SHUTDOWN_GRACE".to_string(),
            "20s".to_string(),
        ),
    ];
    if let Some(s) = &spec.hook_secret {
        vars.push(("IMPORT_SCHEDULER_HOOK_SECRET".to_string(), s.clone()));
    }
    vars.extend(spec.vars.iter().cloned());
    let settings = Settings::from_vars(vars).expect("settings");
    let shutdown = CancellationToken::new();
    let opts = daemon::Options {
        settings,
        source: spec.source,
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
        clock: spec.clock,
    };
    let handle = tokio::spawn(daemon::run(opts, shutdown.clone()));
    Daemon {
        shutdown,
        handle,
        port,
    }
}

impl Daemon {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the daemon stops within 30s")
            .expect("the daemon task did not panic");
        r.expect("the daemon stops cleanly");
    }

    pub async fn metrics(&self) -> String {
        http_get(self.port, "/metrics").await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        eventually(
            Duration::from_secs(20),
            "the daemon to be ready",
            || async {
                match tokio::time::timeout(
                    Duration::from_secs(1),
                    http_request(self.port, "GET", "/readyz", &[], ""),
                )
                .await
                {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}

/// A minimal HTTP/1.1 GET on loopback (no client library needed for tests).
pub async fn http_get(port: u16, path: &str) -> String {
    http_request(port, "GET", path, &[], "").await.1
}

/// A minimal HTTP/1.1 request on loopback: (status, body). Status 0 when
/// nothing answered (not listening, reset, 30 s without an answer), with the
/// reason as the body.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        // Not listening yet: callers poll readiness.
        Err(e) => return (0, e.to_string()),
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut out = Vec::new();
    let exchange = async {
        s.write_all(req.as_bytes()).await?;
        s.read_to_end(&mut out).await
    };
    match tokio::time::timeout(Duration::from_secs(30), exchange).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return (0, format!("{method} {path}: {e}")),
        Err(_) => return (0, format!("{method} {path}: no answer within 30 s")),
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Writes a configuration file into a temporary directory kept alive by the caller.
pub fn config_file(dir: &tempfile::TempDir, yaml: &str) -> PathBuf {
    let p = dir.path().join("config.yaml");
    std::fs::write(&p, yaml).expect("write config");
    p
}

/// The value of one Prometheus sample, named as `/metrics` prints it (e.g.
/// `image_import_scheduler_missed_windows_total{env="prod"}`); `None` when
/// the sample is absent.
pub fn metric_value(metrics: &str, sample: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Requests the daemon's client counted in
/// `image_import_scheduler_api_requests_total` (in `/metrics` text) on
/// `resource`, for `verb` or every verb, summed over response codes.
pub fn api_requests(metrics: &str, verb: Option<&str>, resource: &str) -> f64 {
    metric_samples(metrics, "image_import_scheduler_api_requests_total")
        .iter()
        .filter(|(labels, _)| {
            let labels = labels.split(',');
            let has = |want: String| labels.clone().any(|l| l == want);
            has(format!("resource=\"{resource}\""))
                && verb.is_none_or(|verb| has(format!("verb=\"{verb}\"")))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Samples of metric `name` (exact family name, any labels): labels -> value.
pub fn metric_samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            match r.split_once('}') {
                Some((l, v)) => (l.to_string(), v),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            (String::new(), rest)
        } else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(labels, v);
        }
    }
    out
}

/// The sum of every sample of metric `name`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    // From +0.0: `Sum` starts at -0.0, which prints as "-0" when nothing matched.
    metric_samples(text, name)
        .values()
        .fold(0.0, |sum, v| sum + v)
}

/// How often an Event happened: its series count when it was repeated, else 1.
pub fn event_count(event: &Value) -> u64 {
    event["series"]["count"].as_u64().unwrap_or(1).max(1)
}

/// The daemon binary as a child process (the way it runs in a pod), with
/// its log lines in a file so a full pipe can never block it.
pub struct ChildDaemon {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl ChildDaemon {
    /// `import-scheduler run --config CONFIG` as pod `pod_name` in `namespace`,
    /// logging JSON to `log` (appended, so restarts share one file).
    pub fn spawn(
        cluster: &TestCluster,
        config: &std::path::Path,
        namespace: &str,
        pod_name: &str,
        log: PathBuf,
    ) -> ChildDaemon {
        Self::spawn_with(cluster, config, namespace, pod_name, log, &[])
    }

    /// Like [`ChildDaemon::spawn`], with more (or overriding) environment variables.
    pub fn spawn_with(
        cluster: &TestCluster,
        config: &std::path::Path,
        namespace: &str,
        pod_name: &str,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> ChildDaemon {
        Self::spawn_as(
            cluster.kubeconfig_path(),
            config,
            namespace,
            pod_name,
            log,
            env,
        )
    }

    /// Like [`ChildDaemon::spawn_with`], with the identity of `kubeconfig`.
    pub fn spawn_as(
        kubeconfig: &std::path::Path,
        config: &std::path::Path,
        namespace: &str,
        pod_name: &str,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> ChildDaemon {
        let port = free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the daemon log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_import-scheduler"))
            .args(["run", "--config"])
            .arg(config)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("IMPORT_SCHEDULER_NAMESPACE", namespace)
            .env("IMPORT_SCHEDULER_POD_NAME", pod_name)
            .env("IMPORT_SCHEDULER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("IMPORT_SCHEDULER_LOG_FORMAT", "json")
            .env("IMPORT_SCHEDULER_SHUTDOWN_GRACE", "20s")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start the daemon binary");
        ChildDaemon { child, port, log }
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {}", self.child.id());
    }

    /// Waits for the process to end (at most 40 s) and returns its status.
    pub async fn wait(mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the daemon did not exit within 40s; log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process (and earlier ones sharing the file) logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        // A failed assertion must not leave the process running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
