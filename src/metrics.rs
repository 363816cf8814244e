//! Prometheus metrics, served as OpenMetrics text on `/metrics`.
//!
//! Every family is prefixed `image_import_scheduler_`. Callers use the plain
//! methods on [`Metrics`]; label sets stay private so names cannot drift.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Registry, Unit},
};

/// Outcome of one tag's import, the `result` label of `imports_total`:
/// the pure core's outcome kind, whose label is the value.
pub use crate::outcome::OutcomeKind as ImportResult;

/// Kind of a failed Kubernetes API call, the `kind` label of `api_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// Connecting or reading the response took too long.
    Timeout,
    /// The connection (TCP or TLS) could not be established.
    Connect,
    /// The server answered with an error status.
    Status,
    /// Any other transport failure (connection reset, protocol error).
    Transport,
}

impl ApiErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorKind::Timeout => "timeout",
            ApiErrorKind::Connect => "connect",
            ApiErrorKind::Status => "status",
            ApiErrorKind::Transport => "transport",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvLabels {
    env: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvResultLabels {
    env: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvStreamLabels {
    env: String,
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvGateLabels {
    env: String,
    gate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvGateResultLabels {
    env: String,
    gate: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCodeLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    verb: String,
    resource: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterReasonLabels {
    cluster: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverResultLabels {
    receiver: String,
    result: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn import_histogram() -> Histogram {
    // 50 ms .. about 100 s: a preview is fast, a slow registry takes tens of seconds.
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

fn rollout_histogram() -> Histogram {
    // 1 s .. about 2 h: a rollout takes seconds to minutes, `verify.timeout` up to a day.
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

fn api_histogram() -> Histogram {
    // 5 ms .. about 10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// All metrics of the process. Share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    imports: Family<EnvResultLabels, Counter>,
    import_duration: Family<EnvLabels, Histogram, fn() -> Histogram>,
    window_next_start: Family<EnvLabels, FloatGauge>,
    window_next_end: Family<EnvLabels, FloatGauge>,
    window_open: Family<EnvLabels, Gauge>,
    last_success: Family<EnvStreamLabels, FloatGauge>,
    missed_windows: Family<EnvLabels, Counter>,
    foreign_imports: Family<EnvStreamLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    config_valid: Gauge,
    config_last_reload: FloatGauge,
    api_requests: Family<ApiCodeLabels, Counter>,
    api_request_duration: Family<ApiLabels, Histogram, fn() -> Histogram>,
    api_errors: Family<ApiErrorLabels, Counter>,
    leader: Gauge,
    environment_paused: Family<EnvLabels, Gauge>,
    held_tags: Family<EnvLabels, Gauge>,
    webhook_requests: Family<ResultLabels, Counter>,
    cluster_available: Family<ClusterLabels, Gauge>,
    cluster_problems: Family<ClusterReasonLabels, Counter>,
    notifications: Family<ReceiverResultLabels, Counter>,
    rollouts: Family<EnvResultLabels, Counter>,
    rollout_duration: Family<EnvLabels, Histogram, fn() -> Histogram>,
    gate_verdicts: Family<EnvGateResultLabels, Counter>,
    gated_tags: Family<EnvGateLabels, Gauge>,
    gate_check_duration: Family<EnvLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn env(env: &str) -> EnvLabels {
    EnvLabels {
        env: env.to_owned(),
    }
}

fn timestamp(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("image_import_scheduler");
        let metrics = Metrics {
            imports: Family::default(),
            import_duration: Family::new_with_constructor(import_histogram as fn() -> Histogram),
            window_next_start: Family::default(),
            window_next_end: Family::default(),
            window_open: Family::default(),
            last_success: Family::default(),
            missed_windows: Family::default(),
            foreign_imports: Family::default(),
            config_reloads: Family::default(),
            config_valid: Gauge::default(),
            config_last_reload: FloatGauge::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(api_histogram as fn() -> Histogram),
            api_errors: Family::default(),
            leader: Gauge::default(),
            environment_paused: Family::default(),
            held_tags: Family::default(),
            webhook_requests: Family::default(),
            cluster_available: Family::default(),
            cluster_problems: Family::default(),
            notifications: Family::default(),
            rollouts: Family::default(),
            rollout_duration: Family::new_with_constructor(rollout_histogram as fn() -> Histogram),
            gate_verdicts: Family::default(),
            gated_tags: Family::default(),
            gate_check_duration: Family::new_with_constructor(api_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        registry.register(
            "imports",
            "Tag imports by environment and result (updated, unchanged, failed, held)",
            metrics.imports.clone(),
        );
        registry.register_with_unit(
            "import_duration",
            "Duration of one tag import, from request to the API's answer",
            Unit::Seconds,
            metrics.import_duration.clone(),
        );
        registry.register(
            "window_next_start_timestamp_seconds",
            "Start of the current or next import window (Unix time); absent for immediate environments",
            metrics.window_next_start.clone(),
        );
        registry.register(
            "window_next_end_timestamp_seconds",
            "End of the current or next import window (Unix time); absent for immediate environments",
            metrics.window_next_end.clone(),
        );
        registry.register(
            "window_open",
            "1 while the environment's import window is open (always 1 for immediate environments)",
            metrics.window_open.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Last successful import (updated or unchanged) per environment and stream (Unix time)",
            metrics.last_success.clone(),
        );
        registry.register(
            "missed_windows",
            "Windows that closed with at least one tag not imported",
            metrics.missed_windows.clone(),
        );
        registry.register(
            "foreign_imports",
            "New images in a windowed environment's tag history that this daemon did not import, seen outside the window (OpenShift's controller after a change of from, scheduled import, oc import-image)",
            metrics.foreign_imports.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration loads by result (valid, invalid)",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "config_valid",
            "1 if the last configuration load was valid; 0 means an older configuration is still in force",
            metrics.config_valid.clone(),
        );
        registry.register(
            "config_last_reload_timestamp_seconds",
            "When a valid configuration was last applied (Unix time)",
            metrics.config_last_reload.clone(),
        );
        registry.register(
            "api_requests",
            "Kubernetes API requests by verb, resource and response code",
            metrics.api_requests.clone(),
        );
        registry.register_with_unit(
            "api_request_duration",
            "Kubernetes API latency until response headers, by verb and resource",
            Unit::Seconds,
            metrics.api_request_duration.clone(),
        );
        registry.register(
            "api_errors",
            "Kubernetes API requests that failed, by kind (timeout, connect, status, transport)",
            metrics.api_errors.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the leader lease and may import",
            metrics.leader.clone(),
        );
        registry.register(
            "environment_paused",
            "1 while the environment is paused by configuration",
            metrics.environment_paused.clone(),
        );
        registry.register(
            "held_tags",
            "Tags pinned to a digest and therefore not imported",
            metrics.held_tags.clone(),
        );
        registry.register(
            "webhook_requests",
            "Push hook requests by result (accepted, unauthorized, disabled, malformed, rate_limited, busy)",
            metrics.webhook_requests.clone(),
        );
        registry.register(
            "cluster_available",
            "Whether another cluster an environment lives on can be used (1) or is unreachable, refuses the daemon, or has no usable kubeconfig Secret (0), by cluster (<secret>/<key>)",
            metrics.cluster_available.clone(),
        );
        registry.register(
            "cluster_problems",
            "Times a cluster became unusable, by cluster and reason (setup, unreachable, denied)",
            metrics.cluster_problems.clone(),
        );
        registry.register(
            "notifications",
            "Notifications by receiver (slack, sentry) and result (sent, failed after retries, dropped because the receiver's queue was full)",
            metrics.notifications.clone(),
        );
        registry.register(
            "rollouts",
            "Rollout checks after an import by environment and result (succeeded, failed, pinned_back, rollback_failed)",
            metrics.rollouts.clone(),
        );
        registry.register_with_unit(
            "rollout_duration",
            "From the start of a rollout check to its verdict",
            Unit::Seconds,
            metrics.rollout_duration.clone(),
        );
        registry.register(
            "gate_verdicts",
            "Gate checks before an import in a window, by environment, gate (soak, alerts, approval) and result (pass, hold)",
            metrics.gate_verdicts.clone(),
        );
        registry.register(
            "gated_tags",
            "Tags a gate held at the last check in a window, by environment and gate",
            metrics.gated_tags.clone(),
        );
        registry.register_with_unit(
            "gate_check_duration",
            "Time one tag's gate check added before its import in a window (Prometheus, approvals and the soak environment read)",
            Unit::Seconds,
            metrics.gate_check_duration.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts one tag import; `duration` is observed unless the tag was held
    /// (held tags are not imported, so they have no duration).
    pub fn record_import(&self, env_name: &str, result: ImportResult, duration: Duration) {
        self.imports
            .get_or_create(&EnvResultLabels {
                env: env_name.to_owned(),
                result: result.label().to_owned(),
            })
            .inc();
        if result != ImportResult::Held {
            self.import_duration
                .get_or_create(&env(env_name))
                .observe(duration.as_secs_f64());
        }
    }

    /// Publishes the current or next window; `None` removes the series
    /// (immediate environments, or no future window).
    pub fn set_next_window(&self, env_name: &str, window: Option<(DateTime<Utc>, DateTime<Utc>)>) {
        let labels = env(env_name);
        match window {
            Some((start, end)) => {
                self.window_next_start
                    .get_or_create(&labels)
                    .set(timestamp(start));
                self.window_next_end
                    .get_or_create(&labels)
                    .set(timestamp(end));
            }
            None => {
                self.window_next_start.remove(&labels);
                self.window_next_end.remove(&labels);
            }
        }
    }

    /// Whether imports may start now in this environment.
    pub fn set_window_open(&self, env_name: &str, open: bool) {
        self.window_open
            .get_or_create(&env(env_name))
            .set(i64::from(open));
    }

    /// Marks a successful import of `stream` at `at`.
    pub fn set_last_success(&self, env_name: &str, stream: &str, at: DateTime<Utc>) {
        self.last_success
            .get_or_create(&EnvStreamLabels {
                env: env_name.to_owned(),
                stream: stream.to_owned(),
            })
            .set(timestamp(at));
    }

    /// Counts a new image of `stream` that someone else imported outside the window.
    pub fn inc_foreign_import(&self, env_name: &str, stream: &str) {
        self.foreign_imports
            .get_or_create(&EnvStreamLabels {
                env: env_name.to_owned(),
                stream: stream.to_owned(),
            })
            .inc();
    }

    /// Counts a window that closed with a tag not imported.
    pub fn inc_missed_window(&self, env_name: &str) {
        self.missed_windows.get_or_create(&env(env_name)).inc();
    }

    /// Records a configuration load. A valid one also sets the last-reload time.
    pub fn record_config_reload(&self, valid: bool, at: DateTime<Utc>) {
        let result = if valid { "valid" } else { "invalid" };
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.config_valid.set(i64::from(valid));
        if valid {
            self.config_last_reload.set(timestamp(at));
        }
    }

    /// Counts one API request that got a response, with its latency to headers.
    pub fn record_api_request(&self, verb: &str, resource: &str, code: u16, latency: Duration) {
        self.api_requests
            .get_or_create(&ApiCodeLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                code: code.to_string(),
            })
            .inc();
        self.api_request_duration
            .get_or_create(&ApiLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Counts one failed API request.
    pub fn record_api_error(&self, verb: &str, resource: &str, kind: ApiErrorKind) {
        self.api_errors
            .get_or_create(&ApiErrorLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    /// Whether this process currently leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether the environment is paused.
    pub fn set_paused(&self, env_name: &str, paused: bool) {
        self.environment_paused
            .get_or_create(&env(env_name))
            .set(i64::from(paused));
    }

    /// How many tags of the environment are pinned and held.
    pub fn set_held_tags(&self, env_name: &str, count: usize) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.held_tags.get_or_create(&env(env_name)).set(count);
    }

    /// Counts one push hook request by result.
    pub fn record_webhook(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Whether `cluster` can be used now; `problem` (a reason label) counts
    /// a change to unusable.
    pub fn set_cluster_available(&self, cluster: &str, problem: Option<&str>) {
        let labels = ClusterLabels {
            cluster: cluster.to_owned(),
        };
        self.cluster_available
            .get_or_create(&labels)
            .set(i64::from(problem.is_none()));
        if let Some(reason) = problem {
            self.cluster_problems
                .get_or_create(&ClusterReasonLabels {
                    cluster: cluster.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Drops the gauge of a cluster no environment lives on any more.
    pub fn forget_cluster(&self, cluster: &str) {
        self.cluster_available.remove(&ClusterLabels {
            cluster: cluster.to_owned(),
        });
    }

    /// Counts one notification by receiver and result.
    pub fn record_notification(&self, receiver: &str, result: &str) {
        self.notifications
            .get_or_create(&ReceiverResultLabels {
                receiver: receiver.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one rollout verdict (`result`: succeeded, failed, pinned_back,
    /// rollback_failed) and observes how long the check took.
    pub fn record_rollout(&self, env_name: &str, result: &str, duration: Duration) {
        self.rollouts
            .get_or_create(&EnvResultLabels {
                env: env_name.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.rollout_duration
            .get_or_create(&env(env_name))
            .observe(duration.as_secs_f64());
    }

    /// Counts one gate's verdict (`result`: pass or hold).
    pub fn record_gate_verdict(&self, env_name: &str, gate: &str, result: &str) {
        self.gate_verdicts
            .get_or_create(&EnvGateResultLabels {
                env: env_name.to_owned(),
                gate: gate.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Observes how long one tag's gate check took.
    pub fn observe_gate_check(&self, env_name: &str, took: Duration) {
        self.gate_check_duration
            .get_or_create(&env(env_name))
            .observe(took.as_secs_f64());
    }

    /// How many tags of the environment `gate` held at the last check.
    pub fn set_gated_tags(&self, env_name: &str, gate: &str, count: usize) {
        self.gated_tags
            .get_or_create(&EnvGateLabels {
                env: env_name.to_owned(),
                gate: gate.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Drops the per-environment gauges of an environment that left the
    /// configuration, so dashboards do not show stale windows. Counters stay.
    pub fn forget_environment(&self, env_name: &str) {
        let labels = env(env_name);
        self.window_next_start.remove(&labels);
        self.window_next_end.remove(&labels);
        self.window_open.remove(&labels);
        self.environment_paused.remove(&labels);
        self.held_tags.remove(&labels);
        for gate in crate::gates::Gate::ALL {
            self.gated_tags.remove(&EnvGateLabels {
                env: env_name.to_owned(),
                gate: gate.name().to_owned(),
            });
        }
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            // Writing to a String cannot fail; keep what was written.
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn line_value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }

    #[test]
    fn rollouts_are_counted_by_env_and_result_and_timed() {
        let metrics = Metrics::new();
        metrics.record_rollout("prod", "succeeded", Duration::from_secs(3));
        metrics.record_rollout("prod", "pinned_back", Duration::from_secs(40));
        metrics.record_rollout("prod", "succeeded", Duration::from_secs(5));
        let text = metrics.encode();
        assert_eq!(
            line_value(
                &text,
                "image_import_scheduler_rollouts_total{env=\"prod\",result=\"succeeded\"}"
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                "image_import_scheduler_rollouts_total{env=\"prod\",result=\"pinned_back\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                "image_import_scheduler_rollout_duration_seconds_count{env=\"prod\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            line_value(
                &text,
                "image_import_scheduler_rollout_duration_seconds_sum{env=\"prod\"}"
            ),
            Some(48.0)
        );
    }

    #[test]
    fn imports_are_counted_by_env_and_result_and_timed() {
        let metrics = Metrics::new();
        metrics.record_import("prod", ImportResult::Updated, Duration::from_millis(300));
        metrics.record_import("prod", ImportResult::Updated, Duration::from_millis(700));
        metrics.record_import("prod", ImportResult::Held, Duration::ZERO);
        metrics.record_import("stg", ImportResult::Failed, Duration::from_secs(2));
        let text = metrics.encode();
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_imports_total{env="prod",result="updated"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_imports_total{env="prod",result="held"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_imports_total{env="stg",result="failed"}"#
            ),
            Some(1.0)
        );
        // Held tags are counted but not timed.
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_import_duration_seconds_count{env="prod"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_import_duration_seconds_sum{env="prod"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_import_duration_seconds_bucket{le="0.4",env="prod"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains("# UNIT image_import_scheduler_import_duration_seconds seconds"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn next_window_is_published_and_removed() {
        let metrics = Metrics::new();
        let start = Utc.with_ymd_and_hms(2025, 3, 4, 1, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2025, 3, 4, 2, 0, 0).unwrap();
        metrics.set_next_window("prod", Some((start, end)));
        metrics.set_window_open("prod", true);
        let text = metrics.encode();
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_window_next_start_timestamp_seconds{env="prod"}"#
            ),
            Some(start.timestamp() as f64),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_window_next_end_timestamp_seconds{env="prod"}"#
            ),
            Some(end.timestamp() as f64)
        );
        assert_eq!(
            line_value(&text, r#"image_import_scheduler_window_open{env="prod"}"#),
            Some(1.0)
        );

        metrics.set_next_window("prod", None);
        metrics.set_window_open("prod", false);
        let text = metrics.encode();
        assert!(
            !text.contains(r#"window_next_start_timestamp_seconds{env="prod"}"#),
            "{text}"
        );
        assert_eq!(
            line_value(&text, r#"image_import_scheduler_window_open{env="prod"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn config_reloads_track_validity_and_last_valid_time() {
        let metrics = Metrics::new();
        let first = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let second = Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap();
        metrics.record_config_reload(true, first);
        metrics.record_config_reload(false, second);
        let text = metrics.encode();
        assert_eq!(
            line_value(&text, "image_import_scheduler_config_valid"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                "image_import_scheduler_config_last_reload_timestamp_seconds"
            ),
            Some(first.timestamp() as f64)
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_config_reloads_total{result="valid"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_config_reloads_total{result="invalid"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn api_requests_errors_and_the_rest() {
        let metrics = Metrics::new();
        metrics.record_api_request("get", "configmaps", 200, Duration::from_millis(20));
        metrics.record_api_request("get", "configmaps", 404, Duration::from_millis(10));
        metrics.record_api_error("create", "imagestreamimports", ApiErrorKind::Timeout);
        metrics.set_leader(true);
        metrics.set_paused("stg", true);
        metrics.set_held_tags("prod", 3);
        metrics.inc_missed_window("prod");
        metrics.inc_foreign_import("prod", "packit-worker");
        metrics.inc_foreign_import("prod", "packit-worker");
        metrics.record_webhook("unauthorized");
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 1).unwrap();
        metrics.set_last_success("prod", "packit-worker", at);
        let text = metrics.encode();
        let expect = [
            (
                r#"image_import_scheduler_api_requests_total{verb="get",resource="configmaps",code="200"}"#,
                1.0,
            ),
            (
                r#"image_import_scheduler_api_requests_total{verb="get",resource="configmaps",code="404"}"#,
                1.0,
            ),
            (
                r#"image_import_scheduler_api_request_duration_seconds_count{verb="get",resource="configmaps"}"#,
                2.0,
            ),
            (
                r#"image_import_scheduler_api_errors_total{verb="create",resource="imagestreamimports",kind="timeout"}"#,
                1.0,
            ),
            ("image_import_scheduler_leader", 1.0),
            (
                r#"image_import_scheduler_environment_paused{env="stg"}"#,
                1.0,
            ),
            (r#"image_import_scheduler_held_tags{env="prod"}"#, 3.0),
            (
                r#"image_import_scheduler_missed_windows_total{env="prod"}"#,
                1.0,
            ),
            (
                r#"image_import_scheduler_foreign_imports_total{env="prod",stream="packit-worker"}"#,
                2.0,
            ),
            (
                r#"image_import_scheduler_webhook_requests_total{result="unauthorized"}"#,
                1.0,
            ),
            (
                r#"image_import_scheduler_last_success_timestamp_seconds{env="prod",stream="packit-worker"}"#,
                at.timestamp() as f64,
            ),
        ];
        for (series, value) in expect {
            assert_eq!(
                line_value(&text, series),
                Some(value),
                "{series} in\n{text}"
            );
        }
    }

    #[test]
    fn forgetting_an_environment_drops_its_gauges_but_keeps_counters() {
        let metrics = Metrics::new();
        metrics.set_paused("old", true);
        metrics.set_window_open("old", true);
        metrics.record_import("old", ImportResult::Updated, Duration::from_secs(1));
        metrics.forget_environment("old");
        let text = metrics.encode();
        assert!(!text.contains(r#"environment_paused{env="old"}"#), "{text}");
        assert!(!text.contains(r#"window_open{env="old"}"#), "{text}");
        assert_eq!(
            line_value(
                &text,
                r#"image_import_scheduler_imports_total{env="old",result="updated"}"#
            ),
            Some(1.0)
        );
    }
}
