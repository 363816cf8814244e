//! The real Kubernetes workload controllers, on request
//! ([`crate::ClusterOptions::with_workloads`]): kube-controller-manager
//! (Deployments, ReplicaSets, StatefulSets, DaemonSets, the garbage collector
//! and service account tokens) and kube-scheduler (binds pods to the one
//! node), built by `scripts/install-deps.sh` from the same Debian source
//! package as kube-apiserver. What a node does is simulated by
//! [`crate::kubelet`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cluster::{ClusterOptions, TestCluster};
use crate::kubelet::{Failure, Kubelet};
use crate::process::Supervised;
use crate::upstream::Upstream;

/// The processes and the stand-in node of a cluster with workloads.
pub(crate) struct Workloads {
    pub kubelet: Kubelet,
    pub controller_manager: Supervised,
    pub scheduler: Supervised,
}

impl Workloads {
    /// The node first: it writes what the controllers read.
    pub(crate) fn stop(&mut self) {
        self.kubelet.stop();
        self.controller_manager.stop();
        self.scheduler.stop();
    }
}

static SHARED: tokio::sync::OnceCell<Result<TestCluster, String>> =
    tokio::sync::OnceCell::const_new();

impl TestCluster {
    /// Like [`TestCluster::shared`], for a second cluster of this test
    /// process that also runs the workload controllers
    /// ([`ClusterOptions::with_workloads`]).
    pub async fn shared_with_workloads() -> &'static TestCluster {
        let result = SHARED
            .get_or_init(|| async {
                let r = tokio::task::spawn_blocking(|| {
                    TestCluster::start(ClusterOptions::from_env().with_workloads())
                })
                .await;
                match r {
                    Ok(Ok(c)) => {
                        eprintln!(
                            "test-cluster: with workloads, started in {:.1?}: front {}",
                            c.start_time(),
                            c.server_url()
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
            Err(e) => panic!("the shared test cluster with workloads did not start: {e}"),
        }
    }

    /// Whether kube-controller-manager, kube-scheduler and the stand-in node
    /// run.
    pub fn runs_workloads(&self) -> bool {
        self.workloads.is_some()
    }

    /// The name of the stand-in node pods are bound to.
    pub fn node_name(&self) -> &'static str {
        crate::kubelet::NODE
    }

    /// From now on, containers whose image matches `reference` fail on the
    /// node as `failure` says. `reference` is a digest (`sha256:...`, matches
    /// every image with it), a reference with a digest (matched by digest), a
    /// repository without tag (every image of it), or an exact image
    /// reference. Pods already started keep their state.
    pub fn mark_image_bad(&self, reference: &str, failure: Failure) {
        self.marks.mark(reference, failure);
    }

    /// Removes the mark [`TestCluster::mark_image_bad`] set for `reference`.
    pub fn clear_image_mark(&self, reference: &str) {
        self.marks.clear(reference);
    }

    /// Creates `manifest` (see [`workload_manifest`]) in `ns`.
    pub async fn create_workload(&self, ns: &str, manifest: Value) -> anyhow::Result<()> {
        let kind = manifest["kind"].as_str().unwrap_or_default().to_owned();
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.admin_request(
            "POST",
            &format!(
                "/apis/apps/v1/namespaces/{ns}/{}",
                workload_collection(&kind)?
            ),
            Some(manifest),
        )
        .await
        .with_context(|| format!("creating {kind} {ns}/{name}"))?;
        Ok(())
    }

    /// The image of the first container of workload `kind`/`name` in `ns`
    /// (empty when it has none).
    pub async fn workload_image(&self, ns: &str, kind: &str, name: &str) -> anyhow::Result<String> {
        let w = self
            .admin_request(
                "GET",
                &format!(
                    "/apis/apps/v1/namespaces/{ns}/{}/{name}",
                    workload_collection(kind)?
                ),
                None,
            )
            .await
            .with_context(|| format!("reading {kind} {ns}/{name}"))?;
        Ok(w["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

/// A workload for the controllers: `kind` (`Deployment`, `StatefulSet` or
/// `DaemonSet`) `name`, one container `container` running `image`,
/// `replicas` where the kind has them (a StatefulSet also names its
/// service), and, with `stream_tag` (`stream:tag`), an
/// `image.openshift.io/triggers` entry that sets that container's image
/// from the tag, as on OpenShift.
pub fn workload_manifest(
    kind: &str,
    name: &str,
    container: &str,
    image: &str,
    replicas: usize,
    stream_tag: Option<&str>,
) -> Value {
    let mut w = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}]},
            },
        },
    });
    if kind != "DaemonSet" {
        w["spec"]["replicas"] = json!(replicas);
    }
    if kind == "StatefulSet" {
        w["spec"]["serviceName"] = json!(name);
    }
    if let Some(stream_tag) = stream_tag {
        let trigger = json!([{
            "from": {"kind": "ImageStreamTag", "name": stream_tag},
            "fieldPath": format!("spec.template.spec.containers[?(@.name==\"{container}\")].image"),
        }]);
        w["metadata"]["annotations"] = json!({"image.openshift.io/triggers": trigger.to_string()});
    }
    w
}

/// The `apps/v1` collection of a workload kind.
fn workload_collection(kind: &str) -> anyhow::Result<&'static str> {
    Ok(match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        other => {
            anyhow::bail!("{other:?} is not a workload kind (Deployment, StatefulSet, DaemonSet)")
        }
    })
}

/// The Kubernetes binaries of the workload controllers.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadBinaries {
    pub controller_manager: PathBuf,
    pub scheduler: PathBuf,
}

impl WorkloadBinaries {
    /// Both binaries in the cache `dir` (as `<command>-v<version>`), if built.
    pub(crate) fn locate(dir: &Path, version: &str) -> Option<WorkloadBinaries> {
        let bin = |name: &str| {
            let p = dir.join(format!("{name}-v{version}"));
            p.is_file().then_some(p)
        };
        Some(WorkloadBinaries {
            controller_manager: bin("kube-controller-manager")?,
            scheduler: bin("kube-scheduler")?,
        })
    }
}

/// The controllers kube-controller-manager runs: what drives workloads to
/// their pods, nothing that needs a cloud, real nodes (node lifecycle, IPAM)
/// or certificates.
pub(crate) const CONTROLLERS: &str =
    "deployment,replicaset,statefulset,daemonset,garbagecollector,serviceaccount-token";

/// Files and ports both processes are started with.
pub(crate) struct WorkloadSetup<'a> {
    /// Admin kubeconfig for the front's listener without faults (the one
    /// openshift-controller-manager uses): fault rules stand for what the
    /// daemon sees, not what the controllers see.
    pub kubeconfig: &'a Path,
    pub serving_cert: &'a Path,
    pub serving_key: &'a Path,
    /// Signs the tokens of the service account token controller (the key
    /// kube-apiserver verifies with).
    pub service_account_key: &'a Path,
    /// The CA put into each service account token Secret.
    pub root_ca: &'a Path,
    pub controller_manager_port: u16,
    pub scheduler_port: u16,
    pub logs: &'a Path,
}

/// Starts kube-controller-manager (no leader election: one instance, and
/// its controllers start at once).
pub(crate) fn start_controller_manager(
    bin: &Path,
    s: &WorkloadSetup<'_>,
) -> anyhow::Result<Supervised> {
    let p = |path: &Path| path.display().to_string();
    let args: Vec<String> = vec![
        format!("--kubeconfig={}", p(s.kubeconfig)),
        format!("--controllers={CONTROLLERS}"),
        "--leader-elect=false".into(),
        "--use-service-account-credentials=false".into(),
        format!(
            "--service-account-private-key-file={}",
            p(s.service_account_key)
        ),
        format!("--root-ca-file={}", p(s.root_ca)),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", s.controller_manager_port),
        "--port=0".into(),
        format!("--tls-cert-file={}", p(s.serving_cert)),
        format!("--tls-private-key-file={}", p(s.serving_key)),
        // Tests create and roll many workloads at once.
        "--kube-api-qps=100".into(),
        "--kube-api-burst=200".into(),
        "--profiling=false".into(),
        "--v=0".into(),
    ];
    Supervised::spawn(
        "kube-controller-manager",
        bin,
        &args,
        &s.logs.join("kube-controller-manager.log"),
    )
}

/// Starts kube-scheduler (no leader election).
pub(crate) fn start_scheduler(bin: &Path, s: &WorkloadSetup<'_>) -> anyhow::Result<Supervised> {
    let p = |path: &Path| path.display().to_string();
    let args: Vec<String> = vec![
        format!("--kubeconfig={}", p(s.kubeconfig)),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", s.scheduler_port),
        "--port=0".into(),
        format!("--tls-cert-file={}", p(s.serving_cert)),
        format!("--tls-private-key-file={}", p(s.serving_key)),
        "--kube-api-qps=100".into(),
        "--kube-api-burst=200".into(),
        "--profiling=false".into(),
        "--v=0".into(),
    ];
    Supervised::spawn(
        "kube-scheduler",
        bin,
        &args,
        &s.logs.join("kube-scheduler.log"),
    )
}

/// Whether both serve `/healthz` (their controllers and informers run).
pub(crate) async fn healthy(up: &Upstream, ports: [u16; 2]) -> bool {
    for port in ports {
        let url = format!("https://127.0.0.1:{port}/healthz");
        let ok = up
            .client
            .request(Method::GET, &url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if !ok {
            return false;
        }
    }
    true
}
