//! A test cluster of real parts: kube-apiserver + etcd, the real
//! openshift-apiserver (the image API) and openshift-controller-manager (the
//! image-import and image-trigger controllers) built from source, a real
//! Docker distribution registry, and an HTTPS front that routes requests to
//! the right server and injects faults. The front has no image logic.
//! On request ([`ClusterOptions::with_workloads`]) also the real
//! kube-controller-manager and kube-scheduler, and a stand-in node that only
//! sets pod status (no containers run).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = test_cluster::TestCluster::shared().await;
//! let ns = cluster.create_namespace("demo").await?;
//! let digest = cluster.registry().push_image("packit/worker", "prod").await?;
//! # let _ = (ns, digest);
//! # Ok(()) }
//! ```
//!
//! [`prometheus::Prometheus`] runs a real Prometheus and Pushgateway for
//! alert tests, apart from any cluster.
#![forbid(unsafe_code)]

mod binaries;
mod cluster;
mod faults;
mod kubelet;
mod openshift;
mod pki;
mod process;
pub mod prometheus;
mod registry;
pub mod sandbox;
mod shim;
mod upstream;
mod workloads;

pub use cluster::{ClusterOptions, TagSeed, TestCluster};
pub use faults::{FaultKind, FaultRule, Faults};
pub use kubelet::Failure;
pub use openshift::oc_binary;
pub use registry::{PushedIndex, Registry};
pub use workloads::workload_manifest;
