//! Every Kubernetes API call `import-scheduler run` makes, as data.
//!
//! This list is the single source of truth for the daemon's permissions: the
//! Roles in `manifests/` must grant exactly these verbs, and
//! `tests/manifests.rs` renders the manifests and fails when a Role grants
//! less (the daemon would get 403) or more (least privilege is broken).
//!
//! # Adding an API call
//!
//! Code that starts calling a new resource or verb must, in the same change:
//!
//! 1. add (or extend) an entry in [`DAEMON_API_CALLS`], with the scope it is
//!    called in and a `why` that a reviewer of the Role can judge;
//! 2. add the verb to the matching Role: `manifests/base/role.yaml` for
//!    [`Scope::DaemonNamespace`], `manifests/managed-namespace/role.yaml` for
//!    [`Scope::ManagedNamespace`], `manifests/components/remote-environment/role.yaml`
//!    for [`Scope::RemoteEnvironment`];
//! 3. run `cargo test --test manifests`, which fails until 1 and 2 agree.
//!
//! Calls made through the command line by people (`pin`, `restore`,
//! `import`, `status`, `history`, `freeze`, `unfreeze`) are not listed: they
//! run with the operator's own account, see [`OPERATOR_API_CALLS`],
//! [`FREEZER_API_CALLS`] and `manifests/README.md`.
//!
//! # Resource names
//!
//! Where Kubernetes can restrict a verb to named objects, the entry names
//! them, so the daemon cannot touch the namespace's other ConfigMaps or
//! Leases. Two limits of RBAC shape the entries:
//!
//! - `create` is authorized before the object has a name, so a rule with
//!   `resourceNames` never allows it; creating the status ConfigMap and the
//!   Lease therefore needs an unrestricted `create` (it still cannot read or
//!   change any other object).
//! - `list` and `watch` match `resourceNames` only when the request carries
//!   the field selector `metadata.name=<name>`; the daemon's ConfigMap watch
//!   sends it, so the watch of the configuration can stay name-restricted.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::rbac::v1::PolicyRule;

/// Where a call is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The namespace the daemon runs in: its configuration, state, Lease and
    /// the Events about them.
    DaemonNamespace,
    /// Every namespace named by an environment (`environments.*.namespace`),
    /// where the ImageStreams live. In `manifests/overlays/prod` the daemon's
    /// own namespace is also a managed one and gets both sets.
    ManagedNamespace,
    /// The daemon's own namespace, only when an environment lives on another
    /// cluster (`environments.*.cluster.kubeconfigSecret`): the Secret with
    /// that cluster's kubeconfig. `manifests/components/remote-environment`
    /// grants it. On the other cluster the daemon's account there gets the
    /// [`Scope::ManagedNamespace`] entries, nothing more.
    RemoteEnvironment,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::DaemonNamespace => "daemon namespace",
            Scope::ManagedNamespace => "managed namespace",
            Scope::RemoteEnvironment => "daemon namespace, for a remote environment",
        }
    }
}

/// One kind of request the daemon sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// Plural resource, with `/subresource` if one is addressed.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// The objects the verbs are limited to; empty means any object.
    pub resource_names: &'static [&'static str],
    pub scope: Scope,
    /// What the daemon does with it.
    pub why: &'static str,
}

/// Default name of the configuration ConfigMap (`IMPORT_SCHEDULER_CONFIGMAP`).
pub const CONFIG_CONFIGMAP: &str = "image-import-scheduler";
/// Default name of the status ConfigMap (`IMPORT_SCHEDULER_STATUS_CONFIGMAP`).
pub const STATUS_CONFIGMAP: &str = "image-import-scheduler-status";
/// Default name of the leader-election Lease (`IMPORT_SCHEDULER_LEASE_NAME`).
pub const LEASE: &str = "image-import-scheduler";

/// Name of the Secret holding a remote environment's kubeconfig in
/// `manifests/components/remote-environment`, and its key.
pub const KUBECONFIG_SECRET: &str = "image-import-scheduler-kubeconfig";
pub const KUBECONFIG_SECRET_KEY: &str = "kubeconfig";

/// Every API call of `import-scheduler run`. The manifests use the default
/// object names above; renaming one through its environment variable also
/// needs the Role's `resourceNames` changed.
pub const DAEMON_API_CALLS: &[ApiCall] = &[
    // Managed namespaces: the ImageStreams.
    ApiCall {
        group: "image.openshift.io",
        resource: "imagestreams",
        verbs: &["get", "list"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "discover the streams that carry the environment's tag (list, by label selector if \
              configured) and read a tag's spec and import history before importing it, and a \
              stream's uid for an Event that lacks it, e.g. a missed window after a restart (get)",
    },
    ApiCall {
        group: "image.openshift.io",
        resource: "imagestreamimports",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "preview a tag's source digest (spec.import false) and import it (spec.import true); \
              this can write ImageStreams, so it is the daemon's only write access to images",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "Events on ImageStreams for every import and failure: events.k8s.io/v1 Events are created, \
              and a repeat within minutes patches the first one's series count; core/v1 events are never used",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: &["list"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "rollout checks: find the Deployments whose image trigger names an imported tag and \
              follow their rollout (generation, replicas, ProgressDeadlineExceeded)",
    },
    ApiCall {
        group: "apps",
        resource: "statefulsets",
        verbs: &["list"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "rollout checks: find the StatefulSets whose image trigger names an imported tag and \
              follow their rollout (revisions, ready replicas)",
    },
    ApiCall {
        group: "apps",
        resource: "daemonsets",
        verbs: &["list"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "rollout checks: find the DaemonSets whose image trigger names an imported tag and \
              follow their rollout",
    },
    ApiCall {
        group: "",
        resource: "pods",
        verbs: &["list"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "rollout checks: the pods of the new image, to name the pod, container and reason \
              (CrashLoopBackOff, ImagePullBackOff) of a failed rollout",
    },
    // The daemon's own namespace.
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get", "list", "watch"],
        resource_names: &[CONFIG_CONFIGMAP],
        scope: Scope::DaemonNamespace,
        why: "read and watch the configuration ConfigMap (watch by field selector metadata.name) for hot reload",
    },
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get", "patch"],
        resource_names: &[STATUS_CONFIGMAP],
        scope: Scope::DaemonNamespace,
        why: "read the window state at start-up and write it by merge patch carrying the \
              resourceVersion read (optimistic concurrency)",
    },
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "create the status ConfigMap on first start; RBAC cannot restrict create by name",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "update"],
        resource_names: &[LEASE],
        scope: Scope::DaemonNamespace,
        why: "leader election: read the Lease, then renew, take over or release it by update \
              carrying the resourceVersion read",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "leader election: create the Lease on first start; RBAC cannot restrict create by name",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "Events on the configuration ConfigMap (invalid edit kept out, reload applied)",
    },
    // The daemon's own namespace, with an environment on another cluster.
    ApiCall {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        resource_names: &[KUBECONFIG_SECRET],
        scope: Scope::RemoteEnvironment,
        why: "read the kubeconfig for an environment on another cluster, and read it again to \
              notice a new token; only get on that one Secret, no list or watch",
    },
];

/// What `onFailedRollout: pinBack` adds to [`DAEMON_API_CALLS`] in a managed
/// namespace. Opt-in: `manifests/components/pin-back` grants it; without it
/// the daemon cannot change a stream except by importing, and a failed
/// rollout under `pinBack` is reported with what to apply.
pub const PIN_BACK_API_CALLS: &[ApiCall] = &[ApiCall {
    group: "image.openshift.io",
    resource: "imagestreams",
    verbs: &["patch"],
    resource_names: &[],
    scope: Scope::ManagedNamespace,
    why: "onFailedRollout: pinBack pins a tag whose rollout failed to the image it had before \
          (a patch of its spec.tags[].from and annotations, the same pin as `pin`)",
}];

/// Kustomize component granting [`PIN_BACK_API_CALLS`].
pub const PIN_BACK_COMPONENT: &str = "manifests/components/pin-back";

/// What a person's account needs for the command line. Not granted to the
/// daemon; `manifests/components/operator-role` provides it as a Role.
pub const OPERATOR_API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "image.openshift.io",
        resource: "imagestreams",
        verbs: &["get", "list", "patch"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "status and history read streams; pin and restore patch a tag's spec.tags[].from",
    },
    ApiCall {
        group: "image.openshift.io",
        resource: "imagestreamimports",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "`import` imports a tag now, outside any window",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
        scope: Scope::ManagedNamespace,
        why: "import, pin and restore record a ManualImport, Pinned or Restored Event on the ImageStream",
    },
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get"],
        resource_names: &[CONFIG_CONFIGMAP, STATUS_CONFIGMAP],
        scope: Scope::DaemonNamespace,
        why: "status and history read the configuration and the daemon's window state",
    },
];

/// What an account needs beyond [`OPERATOR_API_CALLS`] to freeze: `freeze`,
/// `unfreeze` and `import --force` change the daemon's own state and record
/// who did it, in the daemon's namespace. Kept apart from the operator's
/// rights so reading and importing can be granted without the power to stop
/// or override a team's windows; `manifests/components/freezer-role`
/// provides it as a Role.
///
/// Who the caller is comes from a SelfSubjectReview (`create
/// authentication.k8s.io/selfsubjectreviews`, cluster-scoped): Kubernetes
/// grants it to every authenticated user through the default
/// `system:basic-user` ClusterRole, so no Role lists it.
pub const FREEZER_API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get", "patch"],
        resource_names: &[STATUS_CONFIGMAP],
        scope: Scope::DaemonNamespace,
        why: "freeze and unfreeze read the freezes kept in the status ConfigMap and write them by \
              merge patch carrying the resourceVersion read; freeze --list reads them",
    },
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "freeze before the daemon ever ran creates the status ConfigMap; RBAC cannot \
              restrict create by name",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "the Frozen, Unfrozen and ImportedDuringFreeze Events on the status ConfigMap, \
              naming who froze, unfroze or forced an import",
    },
];

/// What approving needs on top of [`OPERATOR_API_CALLS`] (`approve`,
/// `approve --revoke`), in the daemon's namespace: the approver Role of
/// `manifests/components/approver-role`. Writing the status ConfigMap is
/// the right that reading (the operator Role's `get`) does not give.
pub const APPROVER_API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get", "patch"],
        resource_names: &[STATUS_CONFIGMAP],
        scope: Scope::DaemonNamespace,
        why: "approve and approve --revoke read the approvals and write them into the daemon's status ConfigMap",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
        scope: Scope::DaemonNamespace,
        why: "an Approved or ApprovalRevoked Event on the status ConfigMap records who approved what",
    },
];

/// One verb on one resource, for one named object or any (`name: None`):
/// the unit two sets of rules are compared in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub name: Option<String>,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " named {name}")?;
        }
        Ok(())
    }
}

/// A Role rule that cannot be compared with the list, or that RBAC would
/// never match the way it reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule {index}: `*` in {field} grants everything, including calls the daemon never makes; list the exact {field}")]
    Wildcard { index: usize, field: &'static str },
    #[error("rule {index}: {field} is empty, so the rule grants nothing; remove the rule or fill in {field}")]
    Empty { index: usize, field: &'static str },
    #[error("rule {index}: nonResourceURLs only take effect in a ClusterRole; remove them")]
    NonResourceUrls { index: usize },
    #[error("rule {index}: `create` with resourceNames never matches (a create request has no name yet); put create in a rule without resourceNames")]
    CreateWithNames { index: usize },
}

/// The permissions `calls` need in `scope`.
pub fn required(calls: &[ApiCall], scope: Scope) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for call in calls.iter().filter(|c| c.scope == scope) {
        for verb in call.verbs {
            let names: Vec<Option<String>> = if call.resource_names.is_empty() {
                vec![None]
            } else {
                call.resource_names
                    .iter()
                    .map(|n| Some((*n).to_owned()))
                    .collect()
            };
            for name in names {
                out.insert(Permission {
                    group: call.group.to_owned(),
                    resource: call.resource.to_owned(),
                    verb: (*verb).to_owned(),
                    name,
                });
            }
        }
    }
    out
}

/// The permissions a Role's rules grant, expanded into single
/// (group, resource, verb, name) grants. Wildcards, empty lists and rules
/// RBAC would never match are errors, every one reported.
pub fn granted(rules: &[PolicyRule]) -> Result<BTreeSet<Permission>, Vec<RuleError>> {
    let mut out = BTreeSet::new();
    let mut errors = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names = rule.resource_names.as_deref().unwrap_or_default();
        let mut bad = false;
        for (field, values) in [
            ("apiGroups", groups),
            ("resources", resources),
            ("verbs", rule.verbs.as_slice()),
            ("resourceNames", names),
        ] {
            if values.iter().any(|v| v.contains('*')) {
                errors.push(RuleError::Wildcard { index, field });
                bad = true;
            }
        }
        for (field, values) in [
            ("apiGroups", groups),
            ("resources", resources),
            ("verbs", rule.verbs.as_slice()),
        ] {
            if values.is_empty() {
                errors.push(RuleError::Empty { index, field });
                bad = true;
            }
        }
        if rule
            .non_resource_urls
            .as_deref()
            .is_some_and(|u| !u.is_empty())
        {
            errors.push(RuleError::NonResourceUrls { index });
            bad = true;
        }
        if !names.is_empty() && rule.verbs.iter().any(|v| v == "create") {
            errors.push(RuleError::CreateWithNames { index });
            bad = true;
        }
        if bad {
            continue;
        }
        let names: Vec<Option<&String>> = if names.is_empty() {
            vec![None]
        } else {
            names.iter().map(Some).collect()
        };
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    for name in &names {
                        out.insert(Permission {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: name.cloned(),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Role rules granting exactly `calls` in `scope`, one rule per entry; what
/// the manifests' Roles are written from.
pub fn policy_rules(calls: &[ApiCall], scope: Scope) -> Vec<PolicyRule> {
    calls
        .iter()
        .filter(|c| c.scope == scope)
        .map(|c| PolicyRule {
            api_groups: Some(vec![c.group.to_owned()]),
            resources: Some(vec![c.resource.to_owned()]),
            verbs: c.verbs.iter().map(|v| (*v).to_owned()).collect(),
            resource_names: if c.resource_names.is_empty() {
                None
            } else {
                Some(c.resource_names.iter().map(|n| (*n).to_owned()).collect())
            },
            non_resource_urls: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN_VERBS: &[&str] = &[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            resource_names: (!names.is_empty()).then(|| strings(names)),
            non_resource_urls: None,
        }
    }

    #[test]
    fn every_call_is_well_formed() {
        for call in DAEMON_API_CALLS
            .iter()
            .chain(OPERATOR_API_CALLS)
            .chain(PIN_BACK_API_CALLS)
        {
            assert!(!call.verbs.is_empty(), "{call:?}");
            assert!(!call.why.trim().is_empty(), "{call:?}");
            for verb in call.verbs {
                assert!(
                    KNOWN_VERBS.contains(verb),
                    "unknown verb {verb} in {call:?}"
                );
            }
            assert!(
                call.resource_names.is_empty() || !call.verbs.contains(&"create"),
                "create cannot be restricted by name: {call:?}"
            );
        }
    }

    #[test]
    fn names_match_the_settings_defaults() {
        let settings = crate::config::Settings::from_vars(Vec::new()).unwrap();
        assert_eq!(settings.configmap, CONFIG_CONFIGMAP);
        assert_eq!(settings.status_configmap, STATUS_CONFIGMAP);
        assert_eq!(settings.lease_name, LEASE);
    }

    #[test]
    fn generated_rules_grant_exactly_the_calls() {
        for scope in [
            Scope::DaemonNamespace,
            Scope::ManagedNamespace,
            Scope::RemoteEnvironment,
        ] {
            let rules = policy_rules(DAEMON_API_CALLS, scope);
            assert_eq!(
                granted(&rules).unwrap(),
                required(DAEMON_API_CALLS, scope),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn the_daemon_never_patches_streams_without_the_pin_back_component() {
        // Pinning is for people; the daemon changes streams only by
        // importing, unless pin-back is granted on purpose.
        let managed = required(DAEMON_API_CALLS, Scope::ManagedNamespace);
        assert!(managed
            .iter()
            .all(|p| p.resource != "imagestreams" || p.verb != "patch"));
        let pin_back = required(PIN_BACK_API_CALLS, Scope::ManagedNamespace);
        assert_eq!(
            pin_back
                .into_iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            vec!["patch image.openshift.io/imagestreams".to_owned()]
        );
        assert!(required(OPERATOR_API_CALLS, Scope::ManagedNamespace)
            .iter()
            .any(|p| p.resource == "imagestreams" && p.verb == "patch"));
    }

    #[test]
    fn names_expand_per_object() {
        let set = granted(&[rule(&[""], &["configmaps"], &["get"], &["a", "b"])]).unwrap();
        let names: Vec<_> = set.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, vec![Some("a".to_owned()), Some("b".to_owned())]);
        assert_eq!(
            set.iter().next().unwrap().to_string(),
            "get core/configmaps named a"
        );
    }

    #[test]
    fn bad_rules_are_all_reported() {
        let rules = [
            rule(&["*"], &["configmaps"], &["get"], &[]),
            rule(&[""], &["configmaps"], &["*"], &[]),
            rule(&[""], &[], &["get"], &[]),
            rule(&[""], &["configmaps"], &["create", "get"], &["x"]),
            rule(&[""], &["configmaps"], &["get"], &[]),
        ];
        let errors = granted(&rules).unwrap_err();
        assert_eq!(
            errors,
            vec![
                RuleError::Wildcard {
                    index: 0,
                    field: "apiGroups"
                },
                RuleError::Wildcard {
                    index: 1,
                    field: "verbs"
                },
                RuleError::Empty {
                    index: 2,
                    field: "resources"
                },
                RuleError::CreateWithNames { index: 3 },
            ]
        );
        assert!(errors[0].to_string().contains("list the exact apiGroups"));
    }
}
