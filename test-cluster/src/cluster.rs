//! The whole test cluster: etcd, kube-apiserver, openshift-apiserver,
//! openshift-controller-manager, the registry and the front.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::binaries::Binaries;
use crate::faults::Faults;
use crate::kubelet::{self, ImageMarks, Kubelet};
use crate::openshift::{self, ApiServerSetup, OpenShiftBinaries};
use crate::pki::{self, Pki};
use crate::process::{free_ports, Janitor, Supervised};
use crate::registry::{self, Registry};
use crate::shim::{self, Shim};
use crate::upstream::Upstream;
use crate::workloads::{self, WorkloadSetup, Workloads};

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
    /// Also run kube-controller-manager, kube-scheduler and a stand-in node,
    /// so Deployments, StatefulSets and DaemonSets get pods that run (see
    /// [`ClusterOptions::with_workloads`]).
    pub workloads: bool,
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
            workloads: false,
        }
    }

    /// Runs the real workload controllers (kube-controller-manager,
    /// kube-scheduler) and a stand-in node whose pods run, crash-loop or
    /// fail to pull as tests say ([`TestCluster::mark_image_bad`]). Off by
    /// default: clusters without workloads start faster.
    pub fn with_workloads(mut self) -> ClusterOptions {
        self.workloads = true;
        self
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
    /// Import once after creating the stream and wait for it, so
    /// `status.tags` has a first history item when `seed_stream` returns.
    /// Without it the tag is still imported, by openshift-controller-manager
    /// shortly after (as on OpenShift, a new tag is always imported).
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
    /// With [`ClusterOptions::with_workloads`]; stopped first.
    pub(crate) workloads: Option<Workloads>,
    pub(crate) marks: ImageMarks,
    controller_manager: Supervised,
    shim: Shim,
    openshift_apiserver: Supervised,
    apiserver: Supervised,
    etcd: Supervised,
    registry_process: Supervised,
    openshift: OpenShiftBinaries,
    start_time: Duration,
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
    Ok(serde_yaml_ng::to_string(&cfg)?)
}

/// Processes of one start attempt, until they belong to a `TestCluster`.
struct Started {
    apiserver: Supervised,
    etcd: Supervised,
    registry_process: Supervised,
    openshift_apiserver: Option<Supervised>,
    controller_manager: Option<Supervised>,
    kube_controller_manager: Option<Supervised>,
    scheduler: Option<Supervised>,
}

impl Started {
    fn all(&mut self) -> Vec<&mut Supervised> {
        let mut v = vec![
            &mut self.etcd,
            &mut self.apiserver,
            &mut self.registry_process,
        ];
        v.extend(self.openshift_apiserver.as_mut());
        v.extend(self.controller_manager.as_mut());
        v.extend(self.kube_controller_manager.as_mut());
        v.extend(self.scheduler.as_mut());
        v
    }

    fn first_exit(&mut self) -> Option<String> {
        self.all().into_iter().find_map(|p| p.exited())
    }

    fn port_race(&mut self) -> bool {
        self.all()
            .iter()
            .any(|p| p.log_tail(50).contains("address already in use"))
    }

    /// Fails with the first exit, if any process has exited.
    fn check(&mut self) -> Result<(), (anyhow::Error, bool)> {
        match self.first_exit() {
            Some(exit) => {
                let race = self.port_race();
                Err((
                    anyhow::anyhow!("the test cluster did not start: {exit}"),
                    race,
                ))
            }
            None => Ok(()),
        }
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
        let bins = Binaries::find(opts.workloads)?;
        let mut attempt = 1;
        let began = Instant::now();
        loop {
            match TestCluster::start_once(&bins, &opts) {
                Ok(mut c) => {
                    c.start_time = began.elapsed();
                    return Ok(c);
                }
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

        let ports = free_ports(6).map_err(fatal)?;
        let (etcd_client, etcd_peer, api_port, registry_port, oas_port, ocm_port) =
            (ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]);
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
        let registry_process =
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
            openshift_apiserver: None,
            controller_manager: None,
            kube_controller_manager: None,
            scheduler: None,
        };

        let apiserver_url = format!("https://127.0.0.1:{api_port}");
        let openshift_url = format!("https://127.0.0.1:{oas_port}");
        let faults = Faults::default();
        let marks = ImageMarks::default();
        let front_upstream = Upstream {
            base: apiserver_url.clone(),
            image_base: Some(openshift_url.clone()),
            admin_token: admin_token.clone(),
            client: pki::https_client(&ca_pem, true).map_err(fatal)?,
        };
        let ctx = shim::Context::new(
            front_upstream.clone(),
            format!("http://127.0.0.1:{registry_port}"),
            faults.clone(),
            marks.clone(),
            opts.api_latency.unwrap_or_default(),
            opts.import_latency.unwrap_or_default(),
        )
        .map_err(fatal)?;
        let tls = pki::server_config(&pki).map_err(fatal)?;
        let shim = Shim::start(ctx, tls).map_err(fatal)?;
        let registry = Registry::at(&shim.registry_addr.to_string(), &ca_pem);
        let server_url = format!("https://127.0.0.1:{}", shim.addr.port());

        // kube-apiserver's /readyz and the registry's /v2/ (through the front).
        let deadline = Instant::now() + READY_TIMEOUT;
        let wait = |started: &mut Started, what: &str, probe: &dyn Fn() -> anyhow::Result<bool>| loop {
            started.check()?;
            if probe().map_err(fatal)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                let race = started.port_race();
                let tails: Vec<String> = started.all().iter().map(|p| p.log_tail(15)).collect();
                return Err((
                    anyhow::anyhow!(
                        "{what} was not ready within {READY_TIMEOUT:?}; last log lines:\n{}",
                        tails.join("\n---\n")
                    ),
                    race,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let kube_only = Upstream {
            image_base: None,
            ..front_upstream.clone()
        };
        wait(&mut started, "kube-apiserver or the registry", &|| {
            let up = kube_only.clone();
            let reg = registry.clone();
            shim.run(async move {
                let api = matches!(
                    up.call(Method::GET, "/readyz", None).await,
                    Ok(a) if a.status == StatusCode::OK
                );
                api && reg.ready().await
            })
        })?;

        let up = kube_only.clone();
        let crds = bins.openshift.crds.clone();
        shim.run(async move { openshift::install_cluster_objects(&up, &crds, deadline).await })
            .map_err(fatal)?
            .map_err(fatal)?;

        // The controller talks to the front's listener without faults.
        let controllers_kubeconfig = root.join("controllers.kubeconfig");
        std::fs::write(
            &controllers_kubeconfig,
            kubeconfig_yaml(
                &format!("https://127.0.0.1:{}", shim.controllers_addr.port()),
                &ca_pem,
                &admin_token,
            )
            .map_err(fatal)?,
        )
        .context("cannot write the controllers' kubeconfig")
        .map_err(fatal)?;
        // The workload controllers start while the OpenShift servers do.
        let workload_ports = match &bins.workloads {
            Some(wb) => {
                let ports = free_ports(2).map_err(fatal)?;
                let setup = WorkloadSetup {
                    kubeconfig: &controllers_kubeconfig,
                    serving_cert: &pki.serving_cert,
                    serving_key: &pki.serving_key,
                    service_account_key: &pki.service_account_key,
                    root_ca: &pki.ca_cert,
                    controller_manager_port: ports[0],
                    scheduler_port: ports[1],
                    logs: &logs,
                };
                started.kube_controller_manager = Some(
                    workloads::start_controller_manager(&wb.controller_manager, &setup)
                        .map_err(fatal)?,
                );
                started.scheduler =
                    Some(workloads::start_scheduler(&wb.scheduler, &setup).map_err(fatal)?);
                let up = kube_only.clone();
                shim.run(async move { kubelet::register_node(&up).await })
                    .map_err(fatal)?
                    .context("registering the stand-in node")
                    .map_err(fatal)?;
                Some([ports[0], ports[1]])
            }
            None => None,
        };
        let kube_kubeconfig = root.join("kube-admin.kubeconfig");
        std::fs::write(
            &kube_kubeconfig,
            kubeconfig_yaml(&apiserver_url, &ca_pem, &admin_token).map_err(fatal)?,
        )
        .context("cannot write the kube-apiserver kubeconfig")
        .map_err(fatal)?;
        started.openshift_apiserver = Some(
            openshift::start_apiserver(
                &bins.openshift.apiserver,
                &ApiServerSetup {
                    dir: &root.join("openshift"),
                    port: oas_port,
                    etcd_url: &etcd_url,
                    serving_cert: &pki.serving_cert,
                    serving_key: &pki.serving_key,
                    kube_kubeconfig: &kube_kubeconfig,
                    ca_file: &pki.ca_cert,
                },
                &logs.join("openshift-apiserver.log"),
            )
            .map_err(fatal)?,
        );
        let oas_only = Upstream {
            base: openshift_url.clone(),
            ..front_upstream.clone()
        };
        wait(&mut started, "openshift-apiserver", &|| {
            let oas = oas_only.clone();
            let up = front_upstream.clone();
            shim.run(async move {
                let ready = matches!(
                    oas.call(Method::GET, "/readyz", None).await,
                    Ok(a) if a.status == StatusCode::OK
                );
                ready
                    && matches!(
                        up.call(Method::GET, "/apis/image.openshift.io/v1/namespaces/default/imagestreams", None).await,
                        Ok(a) if a.ok()
                    )
            })
        })?;

        let kubeconfig = root.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server_url, &ca_pem, &admin_token).map_err(fatal)?,
        )
        .context("cannot write the admin kubeconfig")
        .map_err(fatal)?;
        started.controller_manager = Some(
            openshift::start_controller_manager(
                &bins.openshift.controller_manager,
                &root.join("openshift"),
                &controllers_kubeconfig,
                ocm_port,
                &logs.join("openshift-controller-manager.log"),
            )
            .map_err(fatal)?,
        );
        wait(
            &mut started,
            "openshift-controller-manager (its Lease)",
            &|| {
                let up = kube_only.clone();
                shim.run(async move { openshift::controller_manager_leads(&up).await })
            },
        )?;
        if let Some(ports) = workload_ports {
            wait(
                &mut started,
                "kube-controller-manager and kube-scheduler (/healthz)",
                &|| {
                    let up = front_upstream.clone();
                    shim.run(async move { workloads::healthy(&up, ports).await })
                },
            )?;
        }

        let upstream = Upstream {
            client: pki::https_client(&ca_pem, false).map_err(fatal)?,
            ..front_upstream
        };
        let Started {
            apiserver,
            etcd,
            registry_process,
            openshift_apiserver,
            controller_manager,
            kube_controller_manager,
            scheduler,
        } = started;
        let (Some(openshift_apiserver), Some(controller_manager)) =
            (openshift_apiserver, controller_manager)
        else {
            return Err(fatal(anyhow::anyhow!(
                "the OpenShift servers were not started"
            )));
        };
        let workloads = match (kube_controller_manager, scheduler) {
            (Some(controller_manager), Some(scheduler)) => Some(Workloads {
                kubelet: Kubelet::spawn(shim.handle(), kube_only.clone(), marks.clone()),
                controller_manager,
                scheduler,
            }),
            _ => None,
        };
        Ok(TestCluster {
            workloads,
            marks,
            controller_manager,
            shim,
            openshift_apiserver,
            apiserver,
            etcd,
            registry_process,
            openshift: bins.openshift.clone(),
            start_time: Duration::ZERO,
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
                            "test-cluster: started in {:.1?}: front {}, kube-apiserver {}, openshift-apiserver {}, registry {}",
                            started.elapsed(),
                            c.server_url(),
                            c.apiserver_url(),
                            c.openshift_apiserver_url(),
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

    /// openshift-apiserver itself, for diagnostics.
    pub fn openshift_apiserver_url(&self) -> String {
        self.upstream.image_base.clone().unwrap_or_default()
    }

    /// The `oc` built with the servers (the operators' client).
    pub fn oc_path(&self) -> &Path {
        &self.openshift.oc
    }

    /// How long [`TestCluster::start`] took.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// Stops openshift-controller-manager (nothing is imported or triggered
    /// by OpenShift afterwards); for tests that need a quiet cluster.
    pub fn stop_controller_manager(&mut self) {
        self.controller_manager.stop();
    }

    /// The test CA (PEM) that signed every serving certificate (front,
    /// registry front, kube-apiserver, openshift-apiserver).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A bearer token of a user in `system:masters`.
    pub fn admin_token(&self) -> String {
        self.upstream.admin_token.clone()
    }

    /// An admin kubeconfig pointing at the front.
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

    /// Writes a kubeconfig for the front with another bearer token.
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
        let images: Vec<Value> = tags
            .iter()
            .filter(|t| t.import)
            .map(|t| {
                let mut image = json!({
                    "from": {"kind": "DockerImage", "name": t.from},
                    "to": {"name": t.name},
                    "importPolicy": {"scheduled": t.scheduled},
                });
                if let Some(rp) = &t.reference_policy {
                    image["referencePolicy"] = json!({"type": rp});
                }
                image
            })
            .collect();
        if images.is_empty() {
            return Ok(());
        }
        // openshift-controller-manager imports the new tags too; when it
        // writes the stream first, the import's own update conflicts (409,
        // even without a resourceVersion in the request): try again.
        let path = format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamimports");
        let body = json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStreamImport",
            "metadata": {"name": stream, "namespace": ns},
            "spec": {"import": true, "images": images},
        });
        let mut attempts = 0;
        let answer = loop {
            attempts += 1;
            let a = self.upstream.call(Method::POST, &path, Some(&body)).await?;
            if a.ok() {
                break a.body;
            }
            if a.status != StatusCode::CONFLICT || attempts >= 60 {
                bail!(
                    "importing the tags of {ns}/{stream} answered {}: {}",
                    a.status,
                    a.message()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let statuses = answer["status"]["images"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (img, st) in images.iter().zip(&statuses) {
            if st["status"]["status"].as_str() != Some("Success") {
                bail!(
                    "seeding {ns}/{stream}:{}: importing {} failed: {} {}",
                    img["to"]["name"].as_str().unwrap_or_default(),
                    img["from"]["name"].as_str().unwrap_or_default(),
                    st["status"]["reason"].as_str().unwrap_or_default(),
                    st["status"]["message"].as_str().unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// The ImageStream `ns/name` as stored (admin read, straight from
    /// openshift-apiserver, past the front's faults).
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

    /// An admin request straight to the API server of the path
    /// (openshift-apiserver for the image API, else kube-apiserver), past the
    /// front's faults. `PATCH` bodies are JSON merge patches. Non-2xx answers are
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

    /// One request through the front as the holder of `token` (anonymous when
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
            .with_context(|| format!("{method} {path} through the front {}", self.server_url))?;
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

    /// The front's fault rules (API and registry).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // The controllers first: they call the front.
        if let Some(w) = self.workloads.as_mut() {
            w.stop();
        }
        self.controller_manager.stop();
        self.shim.stop();
        self.openshift_apiserver.stop();
        self.apiserver.stop();
        self.etcd.stop();
        self.registry_process.stop();
    }
}
