//! A real Prometheus with a Pushgateway, for tests of alert rules and of
//! anything that asks Prometheus which alerts fire.
//!
//! Both are Debian's (`prometheus`, `prometheus-pushgateway`), each started
//! on a free loopback port in its own temporary directory. Prometheus
//! scrapes the Pushgateway every second with `honor_labels: true` (pushed
//! labels such as `env` stay as pushed) and evaluates the caller's rules
//! every second, so a test makes an alert fire by pushing the metric its
//! rule watches and stops it by deleting the push. Both processes are
//! children of this one and die with the value (or with this process).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use test_cluster::prometheus::Prometheus;
//! let rules = r#"
//! groups:
//!   - name: demo
//!     rules:
//!       - alert: Broken
//!         expr: broken > 0
//! "#;
//! let prometheus = Prometheus::start(rules).await?;
//! prometheus.push("demo", "broken 1\n").await?;
//! prometheus.wait_for_alert("Broken").await?;
//! prometheus.delete("demo").await?;
//! prometheus.wait_for_no_alert("Broken").await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::process::{free_ports, which, Janitor, Supervised};

/// How long the helpers wait for Prometheus to start, or for an alert to
/// appear or go: a guard against hanging on a loaded machine, not a
/// measure of speed (both usually take a few seconds).
const DEADLINE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(250);

/// Scrape and rule evaluation interval: short, so a push shows as an alert
/// within seconds.
const INTERVAL: &str = "1s";

/// One active alert from `/api/v1/alerts`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Alert {
    /// Its labels, `alertname` included.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its annotations, templates expanded.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `pending` (waiting for its rule's `for`) or `firing`.
    pub state: String,
    /// The value of the rule's expression, as Prometheus prints it.
    #[serde(default)]
    pub value: String,
}

impl Alert {
    /// The `alertname` label.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// A running Prometheus and Pushgateway; both stop when it is dropped.
pub struct Prometheus {
    // Field order is drop order: Prometheus first, then the Pushgateway it
    // scrapes, then the janitor, then the directory.
    prometheus: Supervised,
    pushgateway: Supervised,
    prometheus_port: u16,
    pushgateway_port: u16,
    _janitor: Janitor,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url())
            .field("pushgateway", &self.pushgateway_url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// The binaries of Debian's `prometheus` and `prometheus-pushgateway`.
struct Binaries {
    prometheus: PathBuf,
    pushgateway: PathBuf,
}

const INSTALL_HINT: &str =
    "install Debian's packages: `sudo apt-get install --no-install-recommends \
prometheus prometheus-pushgateway` (or run test-cluster/scripts/install-deps.sh, which also keeps \
their services from starting)";

/// `name` from `$PATH`. Missing: with `CI=true` the install script runs
/// first (a fresh CI machine installs what the tests need); elsewhere a
/// clear error says what to install.
fn binary(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = which(name) {
        return Ok(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh");
        eprintln!(
            "test-cluster: {name} is missing and CI=true; running {}",
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !status.success() {
            bail!(
                "{} failed ({status}); see its output above",
                script.display()
            );
        }
        if let Some(path) = which(name) {
            return Ok(path);
        }
    }
    bail!("`{name}` (Debian package {package}) is not installed; {INSTALL_HINT}")
}

/// Debian's `promtool` (package `prometheus`), for `promtool check rules`
/// and `promtool test rules`.
pub fn promtool() -> anyhow::Result<PathBuf> {
    binary("promtool", "prometheus")
}

/// The rules file in `yaml`: the `spec` of a `PrometheusRule` (as in
/// manifests/components/prometheus-rules), or `yaml` itself when it is a
/// plain rules file already.
pub fn rules_file(yaml: &str) -> anyhow::Result<String> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).context("the rules are not YAML")?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("PrometheusRule") {
        return Ok(yaml.to_string());
    }
    let spec = value
        .get("spec")
        .context("the PrometheusRule has no spec")?;
    serde_yaml_ng::to_string(spec).context("cannot write the PrometheusRule's spec as YAML")
}

impl Binaries {
    fn find() -> anyhow::Result<Binaries> {
        Ok(Binaries {
            prometheus: binary("prometheus", "prometheus")?,
            pushgateway: binary("prometheus-pushgateway", "prometheus-pushgateway")?,
        })
    }
}

fn config(pushgateway_port: u16) -> String {
    format!(
        r#"global:
  scrape_interval: {INTERVAL}
  scrape_timeout: {INTERVAL}
  evaluation_interval: {INTERVAL}
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{pushgateway_port}"]
"#
    )
}

impl Prometheus {
    /// Starts a Pushgateway and a Prometheus scraping it, with `rules` (the
    /// text of a Prometheus rules file, `groups:` ...) as its only rules
    /// file, and waits until both are ready. Fails with the log of the one
    /// that did not start (an invalid rules file, for one).
    pub async fn start(rules: &str) -> anyhow::Result<Prometheus> {
        let binaries = Binaries::find()?;
        // A free port can be taken by another process before the child
        // binds it; try again with new ports.
        let mut last = None;
        for _ in 0..3 {
            match Prometheus::try_start(&binaries, rules).await {
                Ok(p) => return Ok(p),
                Err(e) if format!("{e:#}").contains("address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    async fn try_start(binaries: &Binaries, rules: &str) -> anyhow::Result<Prometheus> {
        let dir = tempfile::Builder::new()
            .prefix("test-prometheus-")
            .tempdir()
            .context("cannot create a temporary directory for Prometheus")?;
        let janitor = Janitor::spawn(dir.path())?;
        let ports = free_ports(2)?;
        let (prometheus_port, pushgateway_port) = (ports[0], ports[1]);

        let rules_path = dir.path().join("rules.yaml");
        std::fs::write(&rules_path, rules)
            .with_context(|| format!("cannot write {}", rules_path.display()))?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config(pushgateway_port))
            .with_context(|| format!("cannot write {}", config_path.display()))?;

        let pushgateway = Supervised::spawn(
            "pushgateway",
            &binaries.pushgateway,
            &[
                format!("--web.listen-address=127.0.0.1:{pushgateway_port}"),
                // Debian's default is a file under /var/lib; pushes live in
                // memory here (nothing is written before a clean shutdown).
                format!(
                    "--persistence.file={}",
                    dir.path().join("pushgateway.data").display()
                ),
                "--log.level=warn".to_string(),
            ],
            &dir.path().join("pushgateway.log"),
        )?;
        let prometheus = Supervised::spawn(
            "prometheus",
            &binaries.prometheus,
            &[
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
                "--log.level=warn".to_string(),
            ],
            &dir.path().join("prometheus.log"),
        )?;
        let client = crate::pki::plain_http_builder()
            .timeout(Duration::from_secs(10))
            // No idle connections: callers may poll from several runtimes.
            .pool_max_idle_per_host(0)
            .build()
            .context("cannot build an HTTP client")?;
        let mut started = Prometheus {
            prometheus,
            pushgateway,
            prometheus_port,
            pushgateway_port,
            _janitor: janitor,
            dir,
            client,
        };
        started.wait_ready().await?;
        Ok(started)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let urls = [
            format!("{}/-/ready", self.pushgateway_url()),
            format!("{}/-/ready", self.url()),
        ];
        loop {
            for child in [&mut self.pushgateway, &mut self.prometheus] {
                if let Some(exited) = child.exited() {
                    bail!("{exited}");
                }
            }
            let mut ready = true;
            for url in &urls {
                let ok =
                    matches!(self.client.get(url).send().await, Ok(r) if r.status().is_success());
                ready &= ok;
            }
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Prometheus or the Pushgateway was not ready after {DEADLINE:?}; \
                     Prometheus log:\n{}\nPushgateway log:\n{}",
                    self.prometheus.log_tail(30),
                    self.pushgateway.log_tail(30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `http://127.0.0.1:PORT` of Prometheus (its HTTP API is under
    /// `/api/v1/`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.prometheus_port)
    }

    /// `http://127.0.0.1:PORT` of the Pushgateway.
    pub fn pushgateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.pushgateway_port)
    }

    /// The temporary directory both run in (configuration, rules, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn job_url(&self, job: &str) -> anyhow::Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.pushgateway_url()).context("Pushgateway URL")?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("the Pushgateway URL cannot have a path"))?
            .extend(["metrics", "job", job]);
        Ok(url)
    }

    /// Replaces every metric pushed under `job` with `text` (the Prometheus
    /// text format, e.g. `"broken{env=\"prod\"} 1\n"`). The next scrape, at
    /// most a second later, gives the metrics to Prometheus.
    pub async fn push(&self, job: &str, text: &str) -> anyhow::Result<()> {
        let mut body = text.to_string();
        if !body.ends_with('\n') {
            // The text format needs a final newline.
            body.push('\n');
        }
        let response = self
            .client
            .put(self.job_url(job)?)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body)
            .send()
            .await
            .with_context(|| format!("pushing job {job} to the Pushgateway failed"))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the Pushgateway refused the push of job {job} ({status}): {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Deletes every metric pushed under `job`; the next scrape marks them
    /// stale, so rules over them stop matching.
    pub async fn delete(&self, job: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .delete(self.job_url(job)?)
            .send()
            .await
            .with_context(|| format!("deleting job {job} from the Pushgateway failed"))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the Pushgateway refused to delete job {job} ({status}): {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The active (pending or firing) alerts, from `/api/v1/alerts`.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        #[derive(Deserialize)]
        struct Answer {
            status: String,
            data: Option<Data>,
            error: Option<String>,
        }
        #[derive(Deserialize)]
        struct Data {
            alerts: Vec<Alert>,
        }
        let url = format!("{}/api/v1/alerts", self.url());
        let answer: Answer = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} failed"))?
            .json()
            .await
            .with_context(|| {
                format!("GET {url} answered something other than the alerts API's JSON")
            })?;
        match (answer.status.as_str(), answer.data) {
            ("success", Some(data)) => Ok(data.alerts),
            (status, _) => bail!(
                "GET {url} answered status {status}: {}",
                answer.error.unwrap_or_default()
            ),
        }
    }

    /// Waits until an alert named `name` fires and returns it (the first one
    /// if several with that name fire).
    pub async fn wait_for_alert(&self, name: &str) -> anyhow::Result<Alert> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let last = self.alerts().await;
            if let Some(alert) = last
                .iter()
                .flatten()
                .find(|a| a.name() == name && a.state == "firing")
            {
                return Ok(alert.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "alert {name} did not fire within {DEADLINE:?}; active alerts: {last:?}; \
                     Prometheus log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no alert named `name` is active (neither pending nor firing).
    pub async fn wait_for_no_alert(&self, name: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let alerts = self.alerts().await?;
            let active: Vec<&Alert> = alerts.iter().filter(|a| a.name() == name).collect();
            if active.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("alert {name} was still active after {DEADLINE:?}: {active:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn log_tail(&self) -> String {
        self.prometheus.log_tail(30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 0\n";

    #[test]
    fn rules_file_takes_a_prometheus_rule_spec_and_keeps_a_plain_file() {
        let rule = format!(
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: r\nspec:\n{}",
            PLAIN.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let from_rule: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&rules_file(&rule).unwrap()).unwrap();
        let plain: serde_yaml_ng::Value = serde_yaml_ng::from_str(PLAIN).unwrap();
        assert_eq!(from_rule, plain);
        assert_eq!(rules_file(PLAIN).unwrap(), PLAIN);
    }

    #[test]
    fn a_missing_binary_says_what_to_install() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            // CI installs instead of failing; nothing to see here.
            return;
        }
        let err = binary("prometheus-not-installed", "prometheus").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("`prometheus-not-installed` (Debian package prometheus)"),
            "{text}"
        );
        assert!(text.contains("apt-get install"), "{text}");
        assert!(text.contains("install-deps.sh"), "{text}");
    }

    #[test]
    fn rules_file_rejects_a_prometheus_rule_without_spec_and_non_yaml() {
        let err = rules_file("kind: PrometheusRule\nmetadata: {name: r}\n").unwrap_err();
        assert!(format!("{err:#}").contains("no spec"), "{err:#}");
        let err = rules_file("groups: [").unwrap_err();
        assert!(format!("{err:#}").contains("not YAML"), "{err:#}");
    }
}
