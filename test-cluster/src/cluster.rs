//! The whole test cluster: etcd, kube-apiserver, the registry and the shim.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use crate::faults::Faults;
use crate::registry::Registry;

/// How to start a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Added to every request the shim answers.
    pub api_latency: Option<Duration>,
    /// Added to every `imagestreamimports` request (registry round trips).
    pub import_latency: Option<Duration>,
}

/// One spec tag for [`TestCluster::seed_stream`].
#[derive(Clone, Debug, Default)]
pub struct TagSeed {
    pub name: String,
    /// A `DockerImage` reference, e.g. `Registry::image_ref`.
    pub from: String,
    /// `importPolicy.scheduled`.
    pub scheduled: bool,
    /// Import once after creating the stream, so `status.tags` has a first
    /// history item.
    pub import: bool,
    /// `referencePolicy.type` (`Source` | `Local`); absent when `None`.
    pub reference_policy: Option<String>,
}

/// A running cluster. Dropping it stops every process it started.
pub struct TestCluster {
    registry: Registry,
    faults: Faults,
    kubeconfig: PathBuf,
}

impl TestCluster {
    /// Starts etcd, kube-apiserver, the registry and the shim.
    pub fn start(opts: ClusterOptions) -> anyhow::Result<TestCluster> {
        let _ = opts;
        bail!("not implemented yet")
    }

    /// The cluster of this test process, started on first use.
    pub async fn shared() -> &'static TestCluster {
        unimplemented!()
    }

    /// `https://127.0.0.1:PORT` of the shim: what clients use.
    pub fn server_url(&self) -> String {
        String::new()
    }

    /// kube-apiserver itself, for diagnostics.
    pub fn apiserver_url(&self) -> String {
        String::new()
    }

    /// The test CA (PEM) that signed the shim's and kube-apiserver's certificates.
    pub fn ca_pem(&self) -> String {
        String::new()
    }

    /// A bearer token of a `system:masters` user.
    pub fn admin_token(&self) -> String {
        String::new()
    }

    /// An admin kubeconfig pointing at the shim.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig for the shim with another bearer token.
    pub fn write_kubeconfig(&self, token: &str, path: &Path) -> anyhow::Result<()> {
        let _ = (token, path);
        bail!("not implemented yet")
    }

    /// Creates a namespace `prefix-<random>`; returns its name.
    pub async fn create_namespace(&self, prefix: &str) -> anyhow::Result<String> {
        let _ = prefix;
        bail!("not implemented yet")
    }

    /// Creates a stream with these spec tags; imports the tags with `import`.
    pub async fn seed_stream(&self, ns: &str, stream: &str, tags: &[TagSeed]) -> anyhow::Result<()> {
        let _ = (ns, stream, tags);
        bail!("not implemented yet")
    }

    /// A token of ServiceAccount `ns/name` (created if missing).
    pub async fn service_account_token(&self, ns: &str, name: &str) -> anyhow::Result<String> {
        let _ = (ns, name);
        bail!("not implemented yet")
    }

    /// An admin request straight to kube-apiserver; non-2xx answers are errors.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let _ = (method, path, body);
        bail!("not implemented yet")
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The shim's fault rules.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}
