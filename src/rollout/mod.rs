//! Rollout checks: after an import changed a tag, whether the workloads
//! that consume it (through `image.openshift.io/triggers`) run the new
//! image, and what to do when they do not.
//!
//! - [`config`]: `verify.timeout` and `onFailedRollout` of an environment;
//! - [`triggers`]: which workloads consume `<stream>:<tag>` (pure);
//! - [`verdict`]: in progress, succeeded or failed, from observed state (pure);
//! - [`pinback`]: report or pin back after a failure (pure decision, and
//!   applying it through the importer's pin);
//! - [`workloads`]: the consumers and their states in one read of a
//!   namespace (pure);
//! - [`follow`]: reads the cluster until a verdict (get/list only);
//! - [`record`]: a check as kept in the status ConfigMap (pure);
//! - [`check`]: one check from import to verdict and what follows it;
//! - [`tracker`]: the checks running in this process, each its own task.

pub use crate::config::rollout as config;
pub mod check;
pub mod follow;
pub mod pinback;
pub mod record;
pub mod tracker;
pub mod triggers;
pub mod verdict;
pub mod workloads;
