//! Where the configuration comes from (a file, or a key of a ConfigMap on
//! the daemon's cluster) and reading it once. The daemon and the command-line
//! tools both load through here; the daemon then keeps watching the source
//! (`daemon.rs`), the commands do not.

use std::fmt;
use std::path::PathBuf;

use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::{Api, Client};

use crate::config::{self, ConfigErrors, Loaded};
use crate::events::config_map_ref;

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A local file (the daemon re-reads it when it changes).
    File(PathBuf),
    /// A key of a ConfigMap on the daemon's cluster.
    ConfigMap {
        namespace: String,
        name: String,
        key: String,
    },
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "configuration file {}", p.display()),
            ConfigSource::ConfigMap {
                namespace,
                name,
                key,
            } => write!(f, "ConfigMap {namespace}/{name} (key {key})"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is there but not a valid configuration.
    #[error("{source_desc}: {errors}")]
    Invalid {
        source_desc: String,
        errors: ConfigErrors,
    },
    /// Something named (a file, a ConfigMap, a key) is not there or not readable.
    #[error("cannot read the configuration from {source_desc}: {message}")]
    Missing {
        source_desc: String,
        message: String,
    },
    /// Reading the ConfigMap failed at the API.
    #[error("cannot read the configuration from {source_desc}: {error}")]
    Api {
        source_desc: String,
        namespace: String,
        error: kube::Error,
    },
    /// A ConfigMap source without a client.
    #[error("cannot read the configuration from {source_desc}: no cluster connection")]
    NoClient { source_desc: String },
}

/// The configuration text and, for a ConfigMap, a reference to it (for
/// Events about the configuration).
#[derive(Debug)]
pub struct Fetched {
    pub text: String,
    pub configmap: Option<ObjectReference>,
}

/// Reads the source once.
pub async fn fetch(source: &ConfigSource, client: Option<&Client>) -> Result<Fetched, LoadError> {
    let missing = |message: String| LoadError::Missing {
        source_desc: source.to_string(),
        message,
    };
    match source {
        ConfigSource::File(path) => std::fs::read_to_string(path)
            .map(|text| Fetched {
                text,
                configmap: None,
            })
            .map_err(|e| missing(format!("{e}; check the path"))),
        ConfigSource::ConfigMap {
            namespace,
            name,
            key,
        } => {
            let Some(client) = client else {
                return Err(LoadError::NoClient {
                    source_desc: source.to_string(),
                });
            };
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let cm = api.get_opt(name).await.map_err(|error| LoadError::Api {
                source_desc: source.to_string(),
                namespace: namespace.clone(),
                error,
            })?;
            let Some(cm) = cm else {
                return Err(missing(
                    "the ConfigMap does not exist; install the configuration (kubectl apply -k manifests/overlays/...), or name the installed one (--configmap NAMESPACE/NAME for the commands, IMPORT_SCHEDULER_CONFIGMAP for the daemon)"
                        .to_owned(),
                ));
            };
            Ok(Fetched {
                text: config_text(&cm, key).map_err(missing)?,
                configmap: Some(configmap_ref(&cm)),
            })
        }
    }
}

/// Parses and validates a text read from `source`.
pub fn parse(source: &ConfigSource, text: &str) -> Result<Loaded, LoadError> {
    config::parse(text, Utc::now()).map_err(|errors| LoadError::Invalid {
        source_desc: source.to_string(),
        errors,
    })
}

/// Reads and validates the configuration once.
pub async fn load(source: &ConfigSource, client: Option<&Client>) -> Result<Loaded, LoadError> {
    parse(source, &fetch(source, client).await?.text)
}

/// The configuration under `key` of a ConfigMap.
pub fn config_text(cm: &ConfigMap, key: &str) -> Result<String, String> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .ok_or_else(|| {
            format!("the ConfigMap has no key `{key}`; put the configuration under data.{key}")
        })
}

/// The reference Events about the configuration point at.
pub fn configmap_ref(cm: &ConfigMap) -> ObjectReference {
    config_map_ref(
        cm.metadata.namespace.as_deref().unwrap_or_default(),
        cm.metadata.name.as_deref().unwrap_or_default(),
        cm.metadata.uid.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_that_is_not_there_is_named() {
        let source = ConfigSource::File("/nonexistent/config.yaml".into());
        let e = load(&source, None).await.unwrap_err();
        assert!(matches!(e, LoadError::Missing { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(
                "cannot read the configuration from configuration file /nonexistent/config.yaml: "
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_configmap_needs_a_client_and_its_key() {
        let source = ConfigSource::ConfigMap {
            namespace: "ns".into(),
            name: "cm".into(),
            key: "config.yaml".into(),
        };
        let e = load(&source, None).await.unwrap_err();
        assert!(matches!(e, LoadError::NoClient { .. }), "{e:?}");
        assert_eq!(source.to_string(), "ConfigMap ns/cm (key config.yaml)");
        let cm = ConfigMap::default();
        assert_eq!(
            config_text(&cm, "config.yaml").unwrap_err(),
            "the ConfigMap has no key `config.yaml`; put the configuration under data.config.yaml"
        );
    }

    #[test]
    fn an_invalid_text_names_its_source() {
        let source = ConfigSource::File("c.yaml".into());
        let e = parse(&source, "environments: {}").unwrap_err();
        assert!(
            e.to_string().starts_with("configuration file c.yaml: "),
            "{e}"
        );
    }
}
