//! The whole test cluster: etcd, kube-apiserver, the registry and the shim.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::faults::Faults;
use crate::pki::{self, Pki};
use crate::process::{free_ports, which, Janitor, Supervised};
use crate::registry::{self, Registry};
use crate::shim::{self, ImageRequest, Shim};
use crate::upstream::Upstream;

/// The kube-apiserver version the install script builds.
pub const KUBE_VERSION: &str = "1.20.2";

/// How long the processes may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const START_ATTEMPTS: usize = 3;

/// How to start a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Added to every request the shim answers.
    pub api_latency: Option<Duration>,
    /// Added to every `imagestreamimports` request (the registry round trips
    /// of a real import).
    pub import_latency: Option<Duration>,
}

impl ClusterOptions {
    /// Options from `TEST_CLUSTER_API_LATENCY_MS` and
    /// `TEST_CLUSTER_IMPORT_LATENCY_MS` (unset: none).
    pub fn from_env() -> ClusterOptions {
        let ms = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        ClusterOptions {
            api_latency: ms("TEST_CLUSTER_API_LATENCY_MS"),
            import_latency: ms("TEST_CLUSTER_IMPORT_LATENCY_MS"),
        }
    }
}

/// One spec tag for [`TestCluster::seed_stream`].
#[derive(Clone, Debug, Default)]
pub struct TagSeed {
    pub name: String,
    /// A `DockerImage` reference, e.g. from [`Registry::image_ref`].
    pub from: String,
    /// `importPolicy.scheduled`.
    pub scheduled: bool,
    /// Import once after creating the stream, so `status.tags` has a first
    /// history item.
    pub import: bool,
    /// `referencePolicy.type` (`Source` | `Local`); absent when `None`.
    pub reference_policy: Option<String>,
}

impl TagSeed {
    /// A tag `name` from `from`, imported once, not scheduled.
    pub fn new(name: impl Into<String>, from: impl Into<String>) -> TagSeed {
        TagSeed {
            name: name.into(),
            from: from.into(),
            scheduled: false,
            import: true,
            reference_policy: Some("Source".to_string()),
        }
    }
}

/// A running cluster. Dropping it stops every process it started and removes
/// its temporary directory; if the process ends without dropping it (a
/// static, SIGKILL), watchdogs do the same.
pub struct TestCluster {
    shim: Shim,
    apiserver: Supervised,
    etcd: Supervised,
    registry_process: Supervised,
    registry: Registry,
    faults: Faults,
    opts: ClusterOptions,
    upstream: Upstream,
    server_url: String,
    ca_pem: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    // After `dir`: removes the directory when destructors never run.
    _janitor: Janitor,
}

struct Binaries {
    apiserver: PathBuf,
    etcd: PathBuf,
    registry: PathBuf,
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KUBE_APISERVER_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("image-import-scheduler")
}

fn install_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh")
}

impl Binaries {
    fn locate() -> Option<Binaries> {
        let apiserver = std::env::var_os("TEST_CLUSTER_KUBE_APISERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join(format!("kube-apiserver-v{KUBE_VERSION}")));
        Some(Binaries {
            apiserver: apiserver.is_file().then_some(apiserver)?,
            etcd: which("etcd")?,
            registry: which("docker-registry")?,
        })
    }

    /// The binaries; runs the install script (which serializes concurrent
    /// runs) when one is missing, unless `TEST_CLUSTER_NO_INSTALL` is set.
    fn find() -> anyhow::Result<Binaries> {
        if let Some(b) = Binaries::locate() {
            return Ok(b);
        }
        let script = install_script();
        if std::env::var_os("TEST_CLUSTER_NO_INSTALL").is_some() {
            bail!(
                "kube-apiserver v{KUBE_VERSION} (in {}), etcd or docker-registry is missing; run {}",
                cache_dir().display(),
                script.display()
            );
        }
        eprintln!(
            "test-cluster: kube-apiserver, etcd or docker-registry is missing; running {} \
             (builds kube-apiserver once per machine, about 5 minutes)",
            script.display()
        );
        // The script serializes concurrent runs itself.
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
        Binaries::locate().with_context(|| {
            format!(
                "{} ran but kube-apiserver v{KUBE_VERSION}, etcd or docker-registry is still missing",
                script.display()
            )
        })
    }
}

/// Where temporary directories go: memory when possible (etcd fsyncs).
fn temp_root() -> PathBuf {
    if let Some(d) = std::env::var_os("TEST_CLUSTER_TMPDIR") {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly())
        && tempfile::tempdir_in(shm).is_ok()
    {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

fn random_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn random_token() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let cfg = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test-cluster", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "test-cluster-user", "user": {"token": token}}],
        "contexts": [{"name": "test-cluster", "context": {"cluster": "test-cluster", "user": "test-cluster-user"}}],
        "current-context": "test-cluster",
        "preferences": {},
    });
    Ok(serde_yaml::to_string(&cfg)?)
}

fn crd() -> Value {
    let open =
        json!({"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "imagestreams.image.openshift.io"},
        "spec": {
            "group": "image.openshift.io",
            "scope": "Namespaced",
            "names": {
                "plural": "imagestreams",
                "singular": "imagestream",
                "kind": "ImageStream",
                "listKind": "ImageStreamList",
                "shortNames": ["is"],
                "categories": ["all"],
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"spec": open, "status": open},
                }},
                "additionalPrinterColumns": [
                    {"name": "Image Repository", "type": "string", "jsonPath": ".status.dockerImageRepository"},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags[*].name"},
                    {"name": "Updated", "type": "date", "jsonPath": ".status.tags[0].items[0].created"},
                ],
            }],
        },
    })
}

/// Processes of one start attempt, until they belong to a `TestCluster`.
struct Started {
    apiserver: Supervised,
    etcd: Supervised,
    registry_process: Supervised,
}

impl Started {
    fn first_exit(&mut self) -> Option<String> {
        self.etcd
            .exited()
            .or_else(|| self.apiserver.exited())
            .or_else(|| self.registry_process.exited())
    }

    fn port_race(&self) -> bool {
        [&self.etcd, &self.apiserver, &self.registry_process]
            .iter()
            .any(|p| p.log_tail(50).contains("address already in use"))
    }
}

static SHARED: tokio::sync::OnceCell<Result<TestCluster, String>> =
    tokio::sync::OnceCell::const_new();

impl TestCluster {
    /// Starts etcd, kube-apiserver and the registry on free 127.0.0.1 ports
    /// and the shim on its own thread and tokio runtime; waits until they
    /// are ready and the ImageStream CRD is established. Blocks; usable from
    /// sync code and from inside a tokio runtime alike.
    pub fn start(opts: ClusterOptions) -> anyhow::Result<TestCluster> {
        let bins = Binaries::find()?;
        let mut attempt = 1;
        loop {
            match TestCluster::start_once(&bins, &opts) {
                Ok(c) => return Ok(c),
                Err((e, port_race)) if port_race && attempt < START_ATTEMPTS => {
                    eprintln!("test-cluster: a port was taken during start ({e:#}); retrying");
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn start_once(
        bins: &Binaries,
        opts: &ClusterOptions,
    ) -> Result<TestCluster, (anyhow::Error, bool)> {
        let fatal = |e: anyhow::Error| (e, false);
        let dir = tempfile::Builder::new()
            .prefix("test-cluster-")
            .tempdir_in(temp_root())
            .context("cannot create the cluster's temporary directory")
            .map_err(fatal)?;
        let janitor = Janitor::spawn(dir.path()).map_err(fatal)?;
        let root = dir.path();
        let pki = Pki::create(&root.join("pki")).map_err(fatal)?;
        let ca_pem = std::fs::read_to_string(&pki.ca_cert)
            .context("cannot read the test CA")
            .map_err(fatal)?;
        let admin_token = random_token();
        let tokens = root.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{admin_token},admin,admin,\"system:masters\"\n"),
        )
        .context("cannot write the token file")
        .map_err(fatal)?;

        let ports = free_ports(4).map_err(fatal)?;
        let (etcd_client, etcd_peer, api_port, registry_port) =
            (ports[0], ports[1], ports[2], ports[3]);
        let logs = root.join("logs");
        std::fs::create_dir_all(&logs)
            .context("cannot create the log directory")
            .map_err(fatal)?;

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_args: Vec<String> = [
            "--name",
            "default",
            "--data-dir",
            &root.join("etcd").display().to_string(),
            "--listen-client-urls",
            &etcd_url,
            "--advertise-client-urls",
            &etcd_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("default={peer_url}"),
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let etcd = Supervised::spawn("etcd", &bins.etcd, &etcd_args, &logs.join("etcd.log"))
            .map_err(fatal)?;
        let (registry, registry_process) =
            registry::start(&bins.registry, &root.join("registry"), registry_port)
                .map_err(fatal)?;

        let issuer = "https://kubernetes.default.svc.cluster.local";
        let p = |path: &Path| path.display().to_string();
        let api_args: Vec<String> = [
            "--etcd-servers",
            &etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &api_port.to_string(),
            "--insecure-port",
            "0",
            "--advertise-address",
            "127.0.0.1",
            "--endpoint-reconciler-type",
            "none",
            "--cert-dir",
            &p(&root.join("apiserver-certs")),
            "--tls-cert-file",
            &p(&pki.serving_cert),
            "--tls-private-key-file",
            &p(&pki.serving_key),
            "--client-ca-file",
            &p(&pki.ca_cert),
            "--token-auth-file",
            &p(&tokens),
            "--authorization-mode",
            "RBAC",
            "--service-account-issuer",
            issuer,
            "--api-audiences",
            issuer,
            "--service-account-key-file",
            &p(&pki.service_account_key),
            "--service-account-signing-key-file",
            &p(&pki.service_account_key),
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--disable-admission-plugins",
            "ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let apiserver = Supervised::spawn(
            "kube-apiserver",
            &bins.apiserver,
            &api_args,
            &logs.join("kube-apiserver.log"),
        )
        .map_err(fatal)?;
        let mut started = Started {
            apiserver,
            etcd,
            registry_process,
        };

        let apiserver_url = format!("https://127.0.0.1:{api_port}");
        let faults = Faults::default();
        let shim_upstream = Upstream {
            base: apiserver_url.clone(),
            admin_token: admin_token.clone(),
            client: pki::https_client(&ca_pem, true).map_err(fatal)?,
        };
        let ctx = shim::Context::new(
            shim_upstream.clone(),
            faults.clone(),
            opts.api_latency.unwrap_or_default(),
            opts.import_latency.unwrap_or_default(),
            true,
        )
        .map_err(fatal)?;
        let tls = pki::server_config(&pki).map_err(fatal)?;
        let shim = Shim::start(ctx, tls).map_err(fatal)?;

        // Ready: kube-apiserver's /readyz and the registry's /v2/.
        let deadline = Instant::now() + READY_TIMEOUT;
        let registry_probe = Registry::at(&registry.host());
        loop {
            if let Some(exit) = started.first_exit() {
                let race = started.port_race();
                return Err((
                    anyhow::anyhow!("the test cluster did not start: {exit}"),
                    race,
                ));
            }
            let up = shim_upstream.clone();
            let reg = registry_probe.clone();
            let ready = shim
                .run(async move {
                    let api = matches!(
                        up.call(Method::GET, "/readyz", None).await,
                        Ok(a) if a.status == StatusCode::OK
                    );
                    api && reg.ready().await
                })
                .map_err(fatal)?;
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let race = started.port_race();
                return Err((
                    anyhow::anyhow!(
                        "kube-apiserver or the registry was not ready within {READY_TIMEOUT:?}; \
                         kube-apiserver log:\n{}\netcd log:\n{}\nregistry log:\n{}",
                        started.apiserver.log_tail(30),
                        started.etcd.log_tail(10),
                        started.registry_process.log_tail(10)
                    ),
                    race,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        let up = shim_upstream.clone();
        shim.run(async move { install_crd(&up, deadline).await })
            .map_err(fatal)?
            .map_err(fatal)?;

        let server_url = format!("https://127.0.0.1:{}", shim.addr.port());
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server_url, &ca_pem, &admin_token).map_err(fatal)?,
        )
        .context("cannot write the admin kubeconfig")
        .map_err(fatal)?;

        let upstream = Upstream {
            base: apiserver_url,
            admin_token,
            client: pki::https_client(&ca_pem, false).map_err(fatal)?,
        };
        let Started {
            apiserver,
            etcd,
            registry_process,
        } = started;
        Ok(TestCluster {
            shim,
            apiserver,
            etcd,
            registry_process,
            registry,
            faults,
            opts: opts.clone(),
            upstream,
            server_url,
            ca_pem,
            kubeconfig,
            dir,
            _janitor: janitor,
        })
    }

    /// The cluster of this test process, started on first use with
    /// [`ClusterOptions::from_env`]. Tests share it and isolate by namespace.
    /// Panics when it cannot start (the message says why).
    pub async fn shared() -> &'static TestCluster {
        let result = SHARED
            .get_or_init(|| async {
                let started = std::time::Instant::now();
                let r = tokio::task::spawn_blocking(|| TestCluster::start(ClusterOptions::from_env()))
                    .await;
                match r {
                    Ok(Ok(c)) => {
                        eprintln!(
                            "test-cluster: started in {:.1?}: shim {}, kube-apiserver {}, registry {}",
                            started.elapsed(),
                            c.server_url(),
                            c.apiserver_url(),
                            c.registry().host()
                        );
                        Ok(c)
                    }
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(e) => Err(format!("the start task failed: {e}")),
                }
            })
            .await;
        match result {
            Ok(c) => c,
            Err(e) => panic!("the shared test cluster did not start: {e}"),
        }
    }

    /// `https://127.0.0.1:PORT` of the shim: what clients use.
    pub fn server_url(&self) -> String {
        self.server_url.clone()
    }

    /// kube-apiserver itself, for diagnostics.
    pub fn apiserver_url(&self) -> String {
        self.upstream.base.clone()
    }

    /// The test CA (PEM) that signed the shim's and kube-apiserver's
    /// serving certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A bearer token of a user in `system:masters`.
    pub fn admin_token(&self) -> String {
        self.upstream.admin_token.clone()
    }

    /// An admin kubeconfig pointing at the shim.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The options the cluster started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// The cluster's temporary directory (logs in `logs/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA certificate file (for `curl --cacert`).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("pki/ca.crt")
    }

    /// Writes a kubeconfig for the shim with another bearer token.
    pub fn write_kubeconfig(&self, token: &str, path: &Path) -> anyhow::Result<()> {
        std::fs::write(
            path,
            kubeconfig_yaml(&self.server_url, &self.ca_pem, token)?,
        )
        .with_context(|| format!("cannot write a kubeconfig to {}", path.display()))
    }

    /// Creates a namespace `prefix-<random>`; returns its name.
    pub async fn create_namespace(&self, prefix: &str) -> anyhow::Result<String> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 50
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !prefix.starts_with('-');
        if !valid {
            bail!("namespace prefix {prefix:?} is not a DNS label start (a-z, 0-9, '-', up to 50 characters)");
        }
        loop {
            let name = format!("{prefix}-{}", random_suffix(6));
            let a = self
                .upstream
                .call(
                    Method::POST,
                    "/api/v1/namespaces",
                    Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
                )
                .await?;
            match a.status {
                s if s.is_success() => return Ok(name),
                StatusCode::CONFLICT => continue,
                s => bail!("creating namespace {name} answered {s}: {}", a.message()),
            }
        }
    }

    /// Creates namespace `name` unless it exists.
    pub async fn ensure_namespace(&self, name: &str) -> anyhow::Result<()> {
        let a = self
            .upstream
            .call(
                Method::POST,
                "/api/v1/namespaces",
                Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
            )
            .await?;
        if a.ok() || a.status == StatusCode::CONFLICT {
            return Ok(());
        }
        bail!(
            "creating namespace {name} answered {}: {}",
            a.status,
            a.message()
        )
    }

    /// Creates ImageStream `ns/stream` with these spec tags, then imports the
    /// tags marked `import` (as OpenShift does on creation), so their
    /// `status.tags` has a first history item. A failed import is an error.
    pub async fn seed_stream(
        &self,
        ns: &str,
        stream: &str,
        tags: &[TagSeed],
    ) -> anyhow::Result<()> {
        let spec_tags: Vec<Value> = tags
            .iter()
            .map(|t| {
                let mut tag = json!({
                    "name": t.name,
                    "annotations": null,
                    "from": {"kind": "DockerImage", "name": t.from},
                    "generation": 1,
                    "importPolicy": {},
                });
                if t.scheduled {
                    tag["importPolicy"]["scheduled"] = json!(true);
                }
                if let Some(rp) = &t.reference_policy {
                    tag["referencePolicy"] = json!({"type": rp});
                }
                tag
            })
            .collect();
        let body = json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStream",
            "metadata": {"name": stream, "namespace": ns},
            "spec": {"lookupPolicy": {"local": false}, "tags": spec_tags},
        });
        self.upstream
            .expect(
                Method::POST,
                &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
                Some(&body),
            )
            .await
            .with_context(|| format!("creating imagestream {ns}/{stream}"))?;
        let images: Vec<ImageRequest> = tags
            .iter()
            .filter(|t| t.import)
            .map(|t| ImageRequest {
                from: t.from.clone(),
                tag: Some(t.name.clone()),
                import_policy: if t.scheduled {
                    json!({"scheduled": true})
                } else {
                    json!({})
                },
                reference_policy: t
                    .reference_policy
                    .as_ref()
                    .map_or(Value::Null, |rp| json!({"type": rp})),
            })
            .collect();
        if images.is_empty() {
            return Ok(());
        }
        let ctx = self.context()?;
        let (statuses, _) = shim::import_images(
            &ctx,
            ns,
            stream,
            true,
            &images,
            &shim::Preconditions::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("importing the tags of {ns}/{stream}: {e}"))?;
        for (img, st) in images.iter().zip(&statuses) {
            if st["status"]["status"].as_str() != Some("Success") {
                bail!(
                    "seeding {ns}/{stream}:{}: importing {} failed: {} {}",
                    img.tag.as_deref().unwrap_or_default(),
                    img.from,
                    st["status"]["reason"].as_str().unwrap_or_default(),
                    st["status"]["message"].as_str().unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// The ImageStream `ns/name` as stored (admin read, straight from
    /// kube-apiserver).
    pub async fn stream(&self, ns: &str, name: &str) -> anyhow::Result<Value> {
        self.admin_request(
            "GET",
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{name}"),
            None,
        )
        .await
    }

    /// A token of ServiceAccount `ns/name` (created if missing), from a
    /// TokenRequest; valid for a day.
    pub async fn service_account_token(&self, ns: &str, name: &str) -> anyhow::Result<String> {
        let a = self
            .upstream
            .call(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                Some(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})),
            )
            .await?;
        if !a.ok() && a.status != StatusCode::CONFLICT {
            bail!(
                "creating ServiceAccount {ns}/{name} answered {}: {}",
                a.status,
                a.message()
            );
        }
        let tr = self
            .upstream
            .expect(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"),
                Some(&json!({
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 86400},
                })),
            )
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {ns}/{name}"))?;
        tr["status"]["token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the TokenRequest for {ns}/{name} returned no token: {tr}"))
    }

    /// An admin request straight to kube-apiserver (Roles, RoleBindings,
    /// ...). `PATCH` bodies are JSON merge patches. Non-2xx answers are
    /// errors carrying the Status message.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("{method:?} is not an HTTP method"))?;
        self.upstream.expect(m, path, body.as_ref()).await
    }

    /// An HTTPS client that trusts the test CA and keeps no idle
    /// connections (safe to share across `#[tokio::test]` runtimes).
    pub fn https_client(&self) -> anyhow::Result<reqwest::Client> {
        pki::https_client(&self.ca_pem, false)
    }

    /// One request through the shim as the holder of `token` (anonymous when
    /// `None`). `content_type` defaults to `application/json`. Returns the HTTP
    /// status and the JSON body (`null` when the body is not JSON).
    pub async fn shim_request(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("{method:?} is not an HTTP method"))?;
        let mut req = self
            .https_client()?
            .request(m, format!("{}{path}", self.server_url))
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(60));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", content_type.unwrap_or("application/json"))
                .body(serde_json::to_vec(&b)?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path} through the shim {}", self.server_url))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The shim's fault rules.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The shim's logic for the caller's runtime (clients without idle
    /// connections).
    fn context(&self) -> anyhow::Result<shim::Context> {
        shim::Context::new(
            self.upstream.clone(),
            self.faults.clone(),
            Duration::ZERO,
            Duration::ZERO,
            false,
        )
    }
}

async fn install_crd(up: &Upstream, deadline: Instant) -> anyhow::Result<()> {
    let a = up
        .call(
            Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(&crd()),
        )
        .await?;
    if !a.ok() && a.status != StatusCode::CONFLICT {
        bail!(
            "installing the ImageStream CRD answered {}: {}",
            a.status,
            a.message()
        );
    }
    // Established, and the resource actually served.
    loop {
        let crd = up
            .call(
                Method::GET,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/imagestreams.image.openshift.io",
                None,
            )
            .await?;
        let established = crd.body["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            });
        if established {
            let list = up
                .call(
                    Method::GET,
                    "/apis/image.openshift.io/v1/namespaces/default/imagestreams",
                    None,
                )
                .await?;
            if list.ok() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the ImageStream CRD was not established in time: {}",
                crd.body["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shim.stop();
        self.apiserver.stop();
        self.etcd.stop();
        self.registry_process.stop();
    }
}
