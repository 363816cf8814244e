//! Where the test cluster's binaries are: the Kubernetes ones built by
//! `scripts/install-deps.sh` into a cache outside the clone, etcd and the
//! registry from Debian, the OpenShift ones from `scripts/build-openshift.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::cluster::KUBE_VERSION;
use crate::openshift::OpenShiftBinaries;
use crate::process::which;
use crate::workloads::WorkloadBinaries;

/// The binaries one cluster runs.
pub(crate) struct Binaries {
    pub apiserver: PathBuf,
    pub etcd: PathBuf,
    pub registry: PathBuf,
    pub openshift: OpenShiftBinaries,
    /// When the cluster runs workloads.
    pub workloads: Option<WorkloadBinaries>,
}

/// What [`Binaries::locate`] finds: kube-apiserver, etcd, docker-registry
/// and (when asked for) the workload controllers.
type Located = (PathBuf, PathBuf, PathBuf, Option<WorkloadBinaries>);

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
    fn locate(workloads: bool) -> Option<Located> {
        let apiserver = std::env::var_os("TEST_CLUSTER_KUBE_APISERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join(format!("kube-apiserver-v{KUBE_VERSION}")));
        let workload_bins = if workloads {
            Some(WorkloadBinaries::locate(&cache_dir(), KUBE_VERSION)?)
        } else {
            None
        };
        Some((
            apiserver.is_file().then_some(apiserver)?,
            which("etcd")?,
            which("docker-registry")?,
            workload_bins,
        ))
    }

    fn with_openshift((apiserver, etcd, registry, workloads): Located) -> anyhow::Result<Binaries> {
        Ok(Binaries {
            apiserver,
            etcd,
            registry,
            openshift: OpenShiftBinaries::find()?,
            workloads,
        })
    }

    /// The binaries; runs the install script (which serializes concurrent
    /// runs) when one is missing, unless `TEST_CLUSTER_NO_INSTALL` is set.
    pub(crate) fn find(workloads: bool) -> anyhow::Result<Binaries> {
        if let Some(b) = Binaries::locate(workloads) {
            return Binaries::with_openshift(b);
        }
        let script = install_script();
        if std::env::var_os("TEST_CLUSTER_NO_INSTALL").is_some() {
            bail!(
                "kube-apiserver v{KUBE_VERSION} (in {}), etcd or docker-registry is missing{}; run {}",
                cache_dir().display(),
                if workloads { " (or kube-controller-manager, kube-scheduler)" } else { "" },
                script.display()
            );
        }
        eprintln!(
            "test-cluster: kube-apiserver, etcd or docker-registry is missing{}; running {} \
             (builds the Kubernetes binaries once per machine, about 13 minutes)",
            if workloads {
                " (or kube-controller-manager, kube-scheduler)"
            } else {
                ""
            },
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
        let found = Binaries::locate(workloads).with_context(|| {
            format!(
                "{} ran but kube-apiserver v{KUBE_VERSION}, etcd or docker-registry is still missing{}",
                script.display(),
                if workloads { " (or kube-controller-manager, kube-scheduler)" } else { "" },
            )
        })?;
        Binaries::with_openshift(found)
    }
}
