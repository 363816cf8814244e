//! Where each environment lives and what reaches it: its cluster's client,
//! an importer built with the configuration's import settings, and an Event
//! sink on that cluster. The daemon and the command-line tools both get an
//! environment's [`Connection`] from here; they differ only in how another
//! cluster is reached:
//!
//! - the daemon ([`Clusters`]) reads the environment's `cluster.kubeconfigSecret`
//!   from its own namespace (GET only) and builds a client from the kubeconfig
//!   in it, recording that cluster's requests in its own reachability record;
//! - the commands ([`crate::cli::cluster`]) use the operator's kubeconfig, in
//!   the context `cluster.context` (or `--context`) names.
//!
//! The status ConfigMap, the Lease and the configuration always stay on the
//! daemon's cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::config::Kubeconfig;
use kube::{Api, Client};

use crate::config::{ClusterRef, Environment, ImportSettings, LOCAL_CLUSTER};
use crate::events::EventSink;
use crate::importer::{Importer, ImporterOptions};
use crate::kubeclient::{self, ClientError};
use crate::metrics::Metrics;
use crate::reachability::ApiReachability;

/// The importer's settings from the configuration's `import` section.
pub fn importer_options(import: &ImportSettings) -> ImporterOptions {
    ImporterOptions {
        call_timeout: import.timeout,
        ..ImporterOptions::default()
    }
}

/// What reaches one environment's namespace.
#[derive(Clone)]
pub struct Connection {
    /// The `cluster` label: `local`, or `<secret>/<key>`.
    pub cluster: String,
    pub client: Client,
    pub importer: Arc<Importer>,
    /// The kubeconfig it was built from, for another cluster reached
    /// through a Secret (to notice when the Secret changes).
    kubeconfig: Option<String>,
}

impl Connection {
    /// A connection through `client` with the configuration's import settings.
    pub fn new(cluster: &str, client: Client, import: &ImportSettings) -> Connection {
        Connection {
            cluster: cluster.to_owned(),
            importer: Arc::new(Importer::new(client.clone(), importer_options(import))),
            client,
            kubeconfig: None,
        }
    }

    /// Events about the environment's objects, on its cluster, reported as `instance`.
    pub fn events(&self, instance: &str) -> EventSink {
        EventSink::new(
            self.client.clone(),
            instance,
            self.client.default_namespace(),
        )
    }

    /// Whether this is the daemon's own cluster.
    pub fn is_local(&self) -> bool {
        self.cluster == LOCAL_CLUSTER
    }
}

/// Why another cluster cannot be reached: its kubeconfig Secret.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Secret {namespace}/{name} does not exist; create it in the daemon's namespace with a kubeconfig for the other cluster under key {key} (README: Environments on another cluster)")]
    SecretMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} has no key {key}; its keys: {known}; store the kubeconfig under {key} or fix cluster.kubeconfigSecret.key")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
        known: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {error}; the daemon needs `get` on secrets in its namespace (manifests/components/remote-environment)")]
    SecretUnreadable {
        namespace: String,
        name: String,
        error: kube::Error,
    },
    #[error("key {key} of Secret {namespace}/{name} is not a kubeconfig: {message}")]
    NotKubeconfig {
        namespace: String,
        name: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// The daemon's clusters: its own, and the ones environments name.
pub struct Clusters {
    local: Client,
    /// Where the kubeconfig Secrets are: the daemon's namespace.
    namespace: String,
    metrics: Option<Arc<Metrics>>,
    /// The daemon's own cluster's record; other clusters' hang off it.
    reachability: Arc<ApiReachability>,
    /// Clients of other clusters by Secret, with the kubeconfig each was built
    /// from: environments on one cluster share one client.
    remotes: Mutex<HashMap<ClusterRef, (String, Client)>>,
    /// For the commands: the operator's kubeconfig (`None` inside: the
    /// default one), whose contexts `cluster.context` names.
    contexts: Option<Option<PathBuf>>,
}

impl Clusters {
    pub fn new(
        local: Client,
        namespace: &str,
        metrics: Option<Arc<Metrics>>,
        reachability: Arc<ApiReachability>,
    ) -> Clusters {
        Clusters {
            local,
            namespace: namespace.to_owned(),
            metrics,
            reachability,
            remotes: Mutex::new(HashMap::new()),
            contexts: None,
        }
    }

    /// Reaches an environment whose `cluster.context` is set through that
    /// context of the operator's kubeconfig (`kubeconfig`, else the default
    /// one) rather than through its Secret: the commands' way.
    pub fn with_contexts(mut self, kubeconfig: Option<PathBuf>) -> Clusters {
        self.contexts = Some(kubeconfig);
        self
    }

    /// The daemon's own cluster.
    pub fn local(&self) -> &Client {
        &self.local
    }

    /// The reachability record of the cluster labelled `label`.
    pub fn health(&self, label: &str) -> Arc<ApiReachability> {
        if label == LOCAL_CLUSTER {
            self.reachability.clone()
        } else {
            self.reachability.cluster(label)
        }
    }

    /// What reaches `env`: the daemon's client, or one built from the
    /// environment's kubeconfig Secret (read now).
    pub async fn connect(
        &self,
        env: &Environment,
        import: &ImportSettings,
    ) -> Result<Connection, ClusterError> {
        let Some(cluster) = &env.cluster else {
            return Ok(Connection::new(LOCAL_CLUSTER, self.local.clone(), import));
        };
        let label = cluster.label();
        if let (Some(kubeconfig), Some(context)) = (&self.contexts, &cluster.context) {
            let client =
                kubeclient::client_in_context(kubeconfig.as_deref(), Some(context)).await?;
            return Ok(Connection::new(&label, client, import));
        }
        let text = self.read_kubeconfig(cluster).await?;
        let cached = self
            .remotes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(cluster)
            .filter(|(seen, _)| *seen == text)
            .map(|(_, client)| client.clone());
        let client = match cached {
            Some(client) => client,
            None => {
                let client = self.build(cluster, &text).await?;
                self.remotes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(cluster.clone(), (text.clone(), client.clone()));
                client
            }
        };
        let mut connection = Connection::new(&label, client, import);
        connection.kubeconfig = Some(text);
        Ok(connection)
    }

    /// Whether the kubeconfig Secret behind `connection` now holds another
    /// kubeconfig (read now, GET only).
    pub async fn changed(
        &self,
        cluster: &ClusterRef,
        connection: &Connection,
    ) -> Result<bool, ClusterError> {
        let text = self.read_kubeconfig(cluster).await?;
        Ok(connection.kubeconfig.as_deref() != Some(text.as_str()))
    }

    /// Forgets the clients of clusters no environment in `keep` names.
    pub fn retain<'a>(&self, keep: impl IntoIterator<Item = &'a Environment>) {
        let keep: Vec<&ClusterRef> = keep
            .into_iter()
            .filter_map(|e| e.cluster.as_ref())
            .collect();
        self.remotes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c, _| keep.contains(&c));
        self.reachability
            .retain_clusters(&keep.iter().map(|c| c.label()).collect());
    }

    async fn read_kubeconfig(&self, cluster: &ClusterRef) -> Result<String, ClusterError> {
        let secret = &cluster.kubeconfig_secret;
        let api: Api<Secret> = Api::namespaced(self.local.clone(), &self.namespace);
        let found =
            api.get_opt(&secret.name)
                .await
                .map_err(|error| ClusterError::SecretUnreadable {
                    namespace: self.namespace.clone(),
                    name: secret.name.clone(),
                    error,
                })?;
        let Some(found) = found else {
            return Err(ClusterError::SecretMissing {
                namespace: self.namespace.clone(),
                name: secret.name.clone(),
                key: secret.key.clone(),
            });
        };
        secret_text(&found, &secret.key).map_err(|known| ClusterError::KeyMissing {
            namespace: self.namespace.clone(),
            name: secret.name.clone(),
            key: secret.key.clone(),
            known,
        })
    }

    async fn build(&self, cluster: &ClusterRef, text: &str) -> Result<Client, ClusterError> {
        let secret = &cluster.kubeconfig_secret;
        let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| ClusterError::NotKubeconfig {
            namespace: self.namespace.clone(),
            name: secret.name.clone(),
            key: secret.key.clone(),
            message: e.to_string(),
        })?;
        let origin = format!(
            "Secret {}/{} key {}",
            self.namespace, secret.name, secret.key
        );
        Ok(kubeclient::client_from_kubeconfig(
            kubeconfig,
            &origin,
            self.metrics.clone(),
            self.reachability.cluster(&cluster.label()),
        )
        .await?)
    }
}

/// The text under `key` of a Secret (`data` or `stringData`), else its keys.
fn secret_text(secret: &Secret, key: &str) -> Result<String, String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Ok(String::from_utf8_lossy(&bytes.0).into_owned());
    }
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Ok(text.clone());
    }
    let mut keys: Vec<&str> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    Err(if keys.is_empty() {
        "(none)".to_owned()
    } else {
        keys.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn a_secret_key_is_read_from_data_or_string_data() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "kubeconfig".to_owned(),
                ByteString(b"apiVersion: v1".to_vec()),
            )])),
            string_data: Some(BTreeMap::from([("other".to_owned(), "x".to_owned())])),
            ..Secret::default()
        };
        assert_eq!(
            secret_text(&secret, "kubeconfig").unwrap(),
            "apiVersion: v1"
        );
        assert_eq!(secret_text(&secret, "other").unwrap(), "x");
        assert_eq!(
            secret_text(&secret, "config").unwrap_err(),
            "kubeconfig, other"
        );
        assert_eq!(
            secret_text(&Secret::default(), "config").unwrap_err(),
            "(none)"
        );
    }
}
