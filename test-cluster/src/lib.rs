//! A test cluster built the way envtest tests controllers: a real
//! kube-apiserver + etcd for everything Kubernetes, `ImageStream` as a
//! CustomResourceDefinition, an HTTPS shim in front that does what
//! OpenShift's image API server does and a CRD cannot (imports, strategic
//! merge patch, discovery of `imagestreamimports`), and a real Docker
//! distribution registry.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = test_cluster::TestCluster::shared().await;
//! let ns = cluster.create_namespace("demo").await?;
//! let digest = cluster.registry().push_image("packit/worker", "prod").await?;
//! # let _ = (ns, digest);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod cluster;
mod faults;
mod pki;
mod process;
mod registry;
pub mod sandbox;
mod shim;
mod upstream;

pub use cluster::{ClusterOptions, TagSeed, TestCluster};
pub use faults::{FaultKind, FaultRule, Faults};
pub use registry::Registry;
