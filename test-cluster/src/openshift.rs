//! The real OpenShift parts of the test cluster: openshift-apiserver (the
//! image API, with its own storage in the cluster's etcd) and
//! openshift-controller-manager (the image-import and image-trigger
//! controllers), built from source by `scripts/build-openshift.sh`, and the
//! cluster objects they need in kube-apiserver.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::process::Supervised;
use crate::upstream::Upstream;

/// The built binaries and the CRDs openshift-apiserver reads.
#[derive(Clone, Debug)]
pub(crate) struct OpenShiftBinaries {
    pub apiserver: PathBuf,
    pub controller_manager: PathBuf,
    /// The operators' client, for tests.
    pub oc: PathBuf,
    pub crds: PathBuf,
}

fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-openshift.sh")
}

static BINARIES: OnceLock<Result<OpenShiftBinaries, String>> = OnceLock::new();

impl OpenShiftBinaries {
    /// The binaries, built once per machine by the build script (cached
    /// outside the clone; a cached run takes well under a second). With
    /// `TEST_CLUSTER_NO_INSTALL` the script only checks and never builds.
    pub(crate) fn find() -> anyhow::Result<OpenShiftBinaries> {
        BINARIES
            .get_or_init(|| Self::run_script().map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn run_script() -> anyhow::Result<OpenShiftBinaries> {
        let script = build_script();
        let mut cmd = Command::new("bash");
        cmd.arg(&script);
        if std::env::var_os("TEST_CLUSTER_NO_INSTALL").is_some() {
            cmd.arg("--check");
        }
        // The script logs to stderr, which the caller sees; stdout is ours.
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}); its message is above",
                script.display(),
                out.status
            );
        }
        let vars: HashMap<String, PathBuf> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .with_context(|| format!("{} printed no {k}=...", script.display()))
        };
        Ok(OpenShiftBinaries {
            apiserver: get("OPENSHIFT_APISERVER")?,
            controller_manager: get("OPENSHIFT_CONTROLLER_MANAGER")?,
            oc: get("OC")?,
            crds: get("OPENSHIFT_CRDS")?,
        })
    }
}

/// The path of the built `oc`, building it (and the servers) once per
/// machine if needed.
pub fn oc_binary() -> anyhow::Result<PathBuf> {
    Ok(OpenShiftBinaries::find()?.oc)
}

/// Installs the openshift/api CRDs openshift-apiserver reads, the cluster's
/// `Image` configuration and the namespaces the controllers act in.
pub(crate) async fn install_cluster_objects(
    up: &Upstream,
    crds: &Path,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crds)
        .with_context(|| format!("cannot read the CRD directory {}", crds.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let crd: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a YAML object", file.display()))?;
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        create(
            up,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .await
        .with_context(|| format!("installing the CRD in {}", file.display()))?;
        names.push(name);
    }
    for name in &names {
        wait_established(up, name, deadline).await?;
    }
    create(
        up,
        "/apis/config.openshift.io/v1/images",
        &json!({"apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"}, "spec": {}}),
    )
    .await
    .context("creating the cluster's Image configuration (every ImageStreamImport reads it)")?;
    for ns in [
        "openshift-infra",
        "openshift-controller-manager",
        "openshift",
    ] {
        create(
            up,
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    }
    Ok(())
}

/// POST, where "already exists" is fine.
async fn create(up: &Upstream, path: &str, body: &Value) -> anyhow::Result<()> {
    let a = up.call(Method::POST, path, Some(body)).await?;
    if a.ok() || a.status == StatusCode::CONFLICT {
        return Ok(());
    }
    bail!("POST {path} answered {}: {}", a.status, a.message())
}

async fn wait_established(up: &Upstream, name: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let crd = up
            .call(
                Method::GET,
                &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
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
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the CRD {name} was not established in time: {}",
                crd.body["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Files and addresses openshift-apiserver is started with.
pub(crate) struct ApiServerSetup<'a> {
    pub dir: &'a Path,
    pub port: u16,
    pub etcd_url: &'a str,
    pub serving_cert: &'a Path,
    pub serving_key: &'a Path,
    /// Admin kubeconfig straight to kube-apiserver.
    pub kube_kubeconfig: &'a Path,
    /// Trusted by its image importer: the registry serves HTTPS with the test CA.
    pub ca_file: &'a Path,
}

/// Writes openshift-apiserver's configuration and starts it.
pub(crate) fn start_apiserver(
    bin: &Path,
    s: &ApiServerSetup<'_>,
    log: &Path,
) -> anyhow::Result<Supervised> {
    std::fs::create_dir_all(s.dir).with_context(|| format!("cannot create {}", s.dir.display()))?;
    let config = json!({
        "apiVersion": "openshiftcontrolplane.config.openshift.io/v1",
        "kind": "OpenShiftAPIServerConfig",
        "servingInfo": {
            "bindAddress": format!("127.0.0.1:{}", s.port),
            "bindNetwork": "tcp4",
            "certFile": s.serving_cert,
            "keyFile": s.serving_key,
        },
        "storageConfig": {"urls": [s.etcd_url], "storagePrefix": "openshift.io"},
        "kubeClientConfig": {"kubeConfig": s.kube_kubeconfig},
        "admission": {"disabledPlugins": [
            // kube-apiserver 1.20 has no admission policy APIs: every write
            // would wait for them and fail.
            "ValidatingAdmissionPolicy",
            "MutatingAdmissionPolicy",
            "route.openshift.io/RequiredRouteAnnotations",
        ]},
        "imagePolicyConfig": {"imageStreamImportMode": "Legacy"},
        "apiServers": {"perGroupOptions": [
            {"name": "apps.openshift.io", "disabledVersions": ["v1"]},
            {"name": "build.openshift.io", "disabledVersions": ["v1"]},
        ]},
        // etcd speaks plain HTTP here.
        "apiServerArguments": {"etcd-cafile": [""], "etcd-certfile": [""], "etcd-keyfile": [""]},
    });
    let path = s.dir.join("openshift-apiserver.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let k = s.kube_kubeconfig.display().to_string();
    let args = vec![
        "start".to_string(),
        format!("--config={}", path.display()),
        format!("--authentication-kubeconfig={k}"),
        format!("--authorization-kubeconfig={k}"),
        "--authentication-skip-lookup=true".to_string(),
        "--v=0".to_string(),
    ];
    Supervised::spawn_with_env(
        "openshift-apiserver",
        bin,
        &args,
        &[("SSL_CERT_FILE", s.ca_file.display().to_string())],
        log,
    )
}

/// The leader-election Lease of openshift-controller-manager.
pub(crate) const CONTROLLER_LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/openshift-controller-manager/leases/openshift-controller-manager-lock";

/// Writes openshift-controller-manager's configuration and starts it against
/// the front (it needs the kube and image APIs on one host).
pub(crate) fn start_controller_manager(
    bin: &Path,
    dir: &Path,
    front_kubeconfig: &Path,
    port: u16,
    log: &Path,
) -> anyhow::Result<Supervised> {
    let config = json!({
        "apiVersion": "openshiftcontrolplane.config.openshift.io/v1",
        "kind": "OpenShiftControllerManagerConfig",
        "leaderElection": {
            "namespace": "openshift-controller-manager",
            "name": "openshift-controller-manager-lock",
        },
        "controllers": [
            "openshift.io/image-import",
            "openshift.io/image-trigger",
            "-openshift.io/serviceaccount-pull-secrets-rollback",
        ],
        // OpenShift's 15 minutes would keep tests of scheduled tags waiting.
        "imageImport": {
            "scheduledImageImportMinimumIntervalSeconds": 30,
            "maxScheduledImageImportsPerMinute": 60,
        },
    });
    let path = dir.join("openshift-controller-manager.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let args = vec![
        "start".to_string(),
        format!("--config={}", path.display()),
        format!("--kubeconfig={}", front_kubeconfig.display()),
        "--namespace=openshift-controller-manager".to_string(),
        format!("--listen=127.0.0.1:{port}"),
        "--v=0".to_string(),
    ];
    Supervised::spawn_with_env(
        "openshift-controller-manager",
        bin,
        &args,
        // kube-apiserver 1.20 cannot stream watch lists.
        &[("KUBE_FEATURE_WatchListClient", "false".to_string())],
        log,
    )
}

/// Whether openshift-controller-manager holds its Lease (it leads at once on
/// a fresh cluster and only then starts its controllers).
pub(crate) async fn controller_manager_leads(up: &Upstream) -> bool {
    match up.call(Method::GET, CONTROLLER_LEASE, None).await {
        Ok(a) if a.ok() => a.body["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        _ => false,
    }
}
