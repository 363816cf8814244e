//! image-import-scheduler: decides when container images reach an OpenShift
//! environment, by importing ImageStream tags immediately (stg) or only inside
//! a cron-defined window (prod).
//!
//! Data flows one way: configuration and the clock go into the schedule, the
//! schedule decides, the importer acts, and state, Events, metrics and logs
//! report what happened.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod clusters;
pub mod config;
pub mod config_source;
pub mod daemon;
pub mod decide;
pub mod duration;
pub mod env_windows;
pub mod events;
pub mod field_error;
pub mod freeze;
pub mod freeze_in_force;
pub mod gate_check;
pub mod gates;
pub mod hook_event;
pub mod http;
pub mod image_ref;
pub mod importer;
pub mod kubeclient;
pub mod leader;
pub mod loop_steps;
pub mod manual_freeze;
pub mod metrics;
pub mod notify;
pub mod openshift;
pub mod outcome;
pub mod rbac;
pub mod reachability;
pub mod report;
pub mod rollout;
pub mod schedule;
pub mod scheduler;
pub mod shutdown;
pub mod state;
pub mod supervisor;
pub mod telemetry;
#[cfg(test)]
mod test_fixtures;
pub mod trigger;
