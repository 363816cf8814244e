//! Process-level settings, from `IMPORT_SCHEDULER_*` environment variables.

use super::*;

/// Process-level settings, from `IMPORT_SCHEDULER_*` environment variables.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Settings {
    /// Namespace the daemon runs in (its ConfigMaps, Lease and Events live there).
    /// Default: the pod's namespace from the service account mount, else `default`.
    pub namespace: Option<String>,
    /// Name of the ConfigMap holding the configuration.
    #[serde(default = "default_configmap")]
    pub configmap: String,
    /// Key of the configuration inside that ConfigMap.
    #[serde(default = "default_config_key")]
    pub config_key: String,
    /// Name of the ConfigMap the daemon keeps its state in.
    #[serde(default = "default_status_configmap")]
    pub status_configmap: String,
    /// Name of the Lease used for leader election.
    #[serde(default = "default_lease")]
    pub lease_name: String,
    /// Address of the HTTP server (metrics, health, push hook).
    #[serde(default = "default_listen")]
    pub listen_addr: String,
    /// `json`, `text`, or `auto` (text on a terminal, else JSON).
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Log filter, `RUST_LOG` syntax.
    #[serde(default = "default_log")]
    pub log: String,
    /// Shared secret of the push hook; the hook is off without it.
    pub hook_secret: Option<String>,
    /// How long in-flight imports may take to finish after SIGTERM.
    #[serde(default = "default_grace")]
    pub shutdown_grace: String,
    /// This replica's identity for leader election (default: the pod name).
    pub pod_name: Option<String>,
    /// Proxies (CIDRs or addresses, comma-separated) whose `X-Forwarded-For`
    /// names the push hook's client; unset: the peer address counts.
    pub trusted_proxies: Option<String>,
    /// How long every API request must have failed before `/readyz` reports
    /// the API server unreachable.
    #[serde(default = "default_api_unreachable_after")]
    pub api_unreachable_after: String,
}

/// Prefix of every process-level environment variable.
pub const ENV_PREFIX: &str = "IMPORT_SCHEDULER_";

fn default_configmap() -> String {
    "image-import-scheduler".into()
}
fn default_config_key() -> String {
    DEFAULT_CONFIG_KEY.into()
}
fn default_status_configmap() -> String {
    "image-import-scheduler-status".into()
}
fn default_lease() -> String {
    "image-import-scheduler".into()
}
fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_log_format() -> String {
    "auto".into()
}
fn default_log() -> String {
    "info".into()
}
fn default_grace() -> String {
    "30s".into()
}
fn default_api_unreachable_after() -> String {
    crate::duration::format_duration(crate::reachability::DEFAULT_UNREACHABLE_AFTER)
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {ENV_PREFIX}{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("environment variables {ENV_PREFIX}*: {0}")]
    Envy(#[from] envy::Error),
}

impl Settings {
    /// Reads the settings from `IMPORT_SCHEDULER_*` variables.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let settings: Settings = envy::prefixed(ENV_PREFIX).from_iter(vars)?;
        settings.grace()?;
        settings.api_unreachable_after()?;
        settings.trusted_proxies()?;
        if !matches!(settings.log_format.as_str(), "auto" | "json" | "text") {
            return Err(SettingsError::Invalid {
                field: "LOG_FORMAT".into(),
                message: format!(
                    "unknown format `{}`; expected auto, json or text",
                    settings.log_format
                ),
            });
        }
        if settings
            .listen_addr
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(SettingsError::Invalid {
                field: "LISTEN_ADDR".into(),
                message: format!(
                    "`{}` is not an address; write e.g. 0.0.0.0:8080",
                    settings.listen_addr
                ),
            });
        }
        Ok(settings)
    }

    pub fn grace(&self) -> Result<Duration, SettingsError> {
        parse_duration(&self.shutdown_grace).map_err(|e| SettingsError::Invalid {
            field: "SHUTDOWN_GRACE".into(),
            message: e.to_string(),
        })
    }

    /// How long every API request must fail before the API counts as unreachable.
    pub fn api_unreachable_after(&self) -> Result<Duration, SettingsError> {
        parse_duration(&self.api_unreachable_after).map_err(|e| SettingsError::Invalid {
            field: "API_UNREACHABLE_AFTER".into(),
            message: e.to_string(),
        })
    }

    /// The push hook's trusted proxies.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        crate::http::parse_trusted_proxies(self.trusted_proxies.as_deref().unwrap_or_default())
            .map_err(|message| SettingsError::Invalid {
                field: "TRUSTED_PROXIES".into(),
                message,
            })
    }

    /// The daemon's namespace: the setting, else the pod's own, else `default`.
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into())
        })
    }
}
