//! The `cluster` of an environment: where its namespace lives when that is
//! not the daemon's own cluster, and the validation of that field.

use serde_yaml_ng::Value;

use super::validate::{is_dns_subdomain, join, Validator};
use super::Environment;

/// Where an environment's namespace lives when it is not the daemon's own
/// cluster (`cluster`). The status ConfigMap, the Lease and the
/// configuration always stay on the daemon's cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterRef {
    /// The Secret, in the daemon's namespace, whose key holds a kubeconfig
    /// for the other cluster (`kubeconfigSecret`).
    pub kubeconfig_secret: SecretKeyRef,
    /// The context of the operator's kubeconfig that reaches the cluster,
    /// for the command-line tools (`context`).
    pub context: Option<String>,
}

/// One key of one Secret in the daemon's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// The key of `kubeconfigSecret` when none is given.
pub const DEFAULT_KUBECONFIG_KEY: &str = "kubeconfig";

impl ClusterRef {
    /// The cluster's name in metrics, logs and Events: `<secret>/<key>`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.kubeconfig_secret.name, self.kubeconfig_secret.key
        )
    }
}

/// The `cluster` label of the daemon's own cluster.
pub const LOCAL_CLUSTER: &str = "local";

impl Environment {
    /// The `cluster` label of where the environment lives.
    pub fn cluster_label(&self) -> String {
        self.cluster
            .as_ref()
            .map_or_else(|| LOCAL_CLUSTER.to_owned(), ClusterRef::label)
    }
}

const CLUSTER_KEYS: &[&str] = &["kubeconfigSecret", "context"];
const SECRET_REF_KEYS: &[&str] = &["name", "key"];

impl Validator {
    /// `cluster: {kubeconfigSecret: {name, key}, context}`.
    pub(super) fn cluster(&mut self, path: &str, value: &Value) -> Option<ClusterRef> {
        let map = self.mapping(path, value, CLUSTER_KEYS)?;
        let errors_before = self.errors.len();
        let secret_path = join(path, "kubeconfigSecret");
        let secret = match map.get("kubeconfigSecret") {
            None => {
                self.error(
                    &secret_path,
                    "missing: the daemon reaches another cluster through a kubeconfig stored in a Secret",
                    Some("write kubeconfigSecret: {name: packit-stg-cluster, key: kubeconfig}, a Secret in the daemon's namespace; remove `cluster` for the daemon's own cluster"),
                );
                None
            }
            Some(v) => self.secret_key_ref(&secret_path, v),
        };
        let context = match map.get("context") {
            None => None,
            Some(v) => {
                let p = join(path, "context");
                match self.string(&p, v) {
                    Some(c) if !c.trim().is_empty() && !c.contains(char::is_whitespace) => Some(c),
                    Some(c) => {
                        self.error(
                            &p,
                            format!("`{c}` is not a kubeconfig context name"),
                            Some("name the context of your kubeconfig that reaches this cluster (`oc config get-contexts`), or remove the key"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(ClusterRef {
            kubeconfig_secret: secret?,
            context,
        })
    }

    fn secret_key_ref(&mut self, path: &str, value: &Value) -> Option<SecretKeyRef> {
        let map = self.mapping(path, value, SECRET_REF_KEYS)?;
        let name_path = join(path, "name");
        let name = match map.get("name") {
            None => {
                self.error(
                    &name_path,
                    "missing",
                    Some("name the Secret in the daemon's namespace that holds the kubeconfig"),
                );
                None
            }
            Some(v) => self.string(&name_path, v).and_then(|n| {
                if is_dns_subdomain(&n) {
                    Some(n)
                } else {
                    self.error(
                        &name_path,
                        format!("`{n}` is not a valid Secret name"),
                        Some("use lowercase letters, digits, '-' and '.', at most 253 characters"),
                    );
                    None
                }
            }),
        };
        let key_path = join(path, "key");
        let key = match map.get("key") {
            None => Some(DEFAULT_KUBECONFIG_KEY.to_owned()),
            Some(v) => self.string(&key_path, v).and_then(|k| {
                if is_data_key(&k) {
                    Some(k)
                } else {
                    self.error(
                        &key_path,
                        format!("`{k}` is not a valid Secret key"),
                        Some("use letters, digits, '-', '_' and '.', at most 253 characters, e.g. kubeconfig"),
                    );
                    None
                }
            }),
        };
        Some(SecretKeyRef {
            name: name?,
            key: key?,
        })
    }
}

/// A key of a Secret's or ConfigMap's data.
fn is_data_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use chrono::{DateTime, Utc};

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn with_cluster(cluster: &str) -> String {
        format!("environments:\n  stg:\n    namespace: packit-stg\n    mode: immediate\n    cluster: {cluster}\n")
    }

    fn errors(yaml: &str) -> Vec<String> {
        match parse(yaml, now()) {
            Ok(l) => panic!("expected errors, got {:?}", l.config),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn an_environment_names_its_cluster_by_a_kubeconfig_secret() {
        let loaded = parse(
            &with_cluster(
                "{kubeconfigSecret: {name: stg-cluster.kubeconfig, key: config}, context: preprod}",
            ),
            now(),
        )
        .unwrap();
        let stg = &loaded.config.environments["stg"];
        let cluster = stg.cluster.as_ref().unwrap();
        assert_eq!(
            cluster.kubeconfig_secret,
            SecretKeyRef {
                name: "stg-cluster.kubeconfig".into(),
                key: "config".into()
            }
        );
        assert_eq!(cluster.context.as_deref(), Some("preprod"));
        assert_eq!(stg.cluster_label(), "stg-cluster.kubeconfig/config");
    }

    #[test]
    fn the_key_defaults_and_without_cluster_the_environment_is_local() {
        let loaded = parse(&with_cluster("{kubeconfigSecret: {name: stg}}"), now()).unwrap();
        let cluster = loaded.config.environments["stg"].cluster.clone().unwrap();
        assert_eq!(cluster.kubeconfig_secret.key, DEFAULT_KUBECONFIG_KEY);
        assert_eq!(cluster.context, None);
        let local = parse(
            "environments:\n  stg:\n    namespace: packit-stg\n    mode: immediate\n",
            now(),
        )
        .unwrap();
        let stg = &local.config.environments["stg"];
        assert_eq!(stg.cluster, None);
        assert_eq!(stg.cluster_label(), LOCAL_CLUSTER);
    }

    #[test]
    fn bad_cluster_fields_are_named() {
        let cases: &[(&str, &str)] = &[
            ("{}", "environments.stg.cluster.kubeconfigSecret: missing"),
            ("{context: preprod}", "environments.stg.cluster.kubeconfigSecret: missing"),
            ("remote", "environments.stg.cluster: expected a mapping"),
            ("{kubeconfigSecret: {key: k}}", "environments.stg.cluster.kubeconfigSecret.name: missing"),
            ("{kubeconfigSecret: {name: Bad_Name}}", "environments.stg.cluster.kubeconfigSecret.name: `Bad_Name` is not a valid Secret name"),
            ("{kubeconfigSecret: {name: s, key: \"a/b\"}}", "environments.stg.cluster.kubeconfigSecret.key: `a/b` is not a valid Secret key"),
            ("{kubeconfigSecret: {name: s, key: \"..\"}}", "environments.stg.cluster.kubeconfigSecret.key: `..` is not a valid Secret key"),
            ("{kubeconfigSecret: {name: s, key: \"\"}}", "environments.stg.cluster.kubeconfigSecret.key: `` is not a valid Secret key"),
            ("{kubeconfigSecret: {name: s}, context: \"\"}", "environments.stg.cluster.context: `` is not a kubeconfig context name"),
            ("{kubeconfigSecret: {name: s}, context: \"a b\"}", "environments.stg.cluster.context: `a b` is not a kubeconfig context name"),
            ("{kubeconfigSecret: {name: s}, contex: a}", "environments.stg.cluster.contex: unknown key `contex`"),
            ("{kubeconfigSecret: {name: s, namespace: x}}", "environments.stg.cluster.kubeconfigSecret.namespace: unknown key"),
            ("{kubeconfigSecret: s}", "environments.stg.cluster.kubeconfigSecret: expected a mapping"),
        ];
        for (cluster, want) in cases {
            let errs = errors(&with_cluster(cluster));
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{cluster}: want {want}, got {errs:?}"
            );
        }
    }

    #[test]
    fn valid_names_and_keys() {
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(is_dns_subdomain(&"a".repeat(63)));
        assert!(!is_dns_subdomain(""));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(&format!(
            "{}.{}",
            "a".repeat(63),
            "b".repeat(190)
        )));
        assert!(is_dns_subdomain(&format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        )));
        assert!(is_data_key("kube_config.yaml-1"));
        assert!(is_data_key(&"k".repeat(253)));
        assert!(!is_data_key(&"k".repeat(254)));
        assert!(!is_data_key("."));
        assert!(!is_data_key("a b"));
    }

    #[test]
    fn one_namespace_and_tag_may_be_imported_once_per_cluster() {
        let twice = |second: &str| {
            format!("environments:\n  a:\n    namespace: packit\n    tag: prod\n    mode: immediate\n  b:\n    namespace: packit\n    tag: prod\n    mode: immediate\n{second}")
        };
        assert!(parse(
            &twice("    cluster: {kubeconfigSecret: {name: other}}\n"),
            now()
        )
        .is_ok());
        let errs = errors(&twice(""));
        assert!(
            errs.iter()
                .any(|e| e.contains("as environment `a` already does")),
            "{errs:?}"
        );
    }
}
