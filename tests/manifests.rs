//! The deployment manifests, as `kubectl apply -k` would send them.
//!
//! Each kustomization under `manifests/` is rendered with `kubectl kustomize`
//! and every object is parsed into its k8s-openapi type. k8s-openapi ignores
//! fields it does not know, so each object is serialized back and compared
//! with what was rendered: a misspelt or misplaced field fails here instead
//! of being dropped silently by the API server.
//!
//! Then the overlays are checked for what the daemon needs to run and no
//! more: the Roles in every namespace grant exactly the calls listed in
//! `src/rbac.rs`, the security context is restricted, probes and the Service
//! use the named metrics port, the environment variables are ones the daemon
//! reads, and the configuration passes the daemon's own validation.
//!
//! Needs `kubectl` on PATH (or `KUBECTL=/path/to/kubectl`); it embeds kustomize.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use import_scheduler::config::{self, Settings, ENV_PREFIX};
use import_scheduler::rbac::{
    self, Permission, Scope, APPROVER_API_CALLS, DAEMON_API_CALLS, FREEZER_API_CALLS,
    OPERATOR_API_CALLS, PIN_BACK_API_CALLS,
};

const IMAGE: &str = "quay.io/packit/image-import-scheduler";
const CONTAINER: &str = "import-scheduler";
const METRICS_PORT: &str = "http-metrics";
const HOOK_PATH: &str = "/hooks/import";
const COMMON_LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
];

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

// ---------------------------------------------------------------- rendering

/// `kubectl kustomize DIR`, split into one JSON value per document.
fn render(dir: &Path) -> Result<Vec<Value>> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = match Command::new(&kubectl).arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{kubectl}` not found: these tests render manifests/ with `kubectl kustomize`; \
             install kubectl (1.27 or newer, it embeds kustomize v5) or set KUBECTL to its path"
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("running {kubectl} kustomize {}", dir.display()))
        }
    };
    if !output.status.success() {
        bail!(
            "`{kubectl} kustomize {}` failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text =
        String::from_utf8(output.stdout).context("kubectl kustomize printed non-UTF-8 output")?;
    split_documents(&text)
}

fn split_documents(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).with_context(|| format!("YAML document {i}"))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// One rendered object, typed.
// A dozen objects per test: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Object {
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    Service(Service),
    Secret(Secret),
}

/// `Kind namespace/name`, as people say it.
fn identity(value: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    format!(
        "{} {}/{}",
        text(&value["kind"]),
        value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("(no namespace)"),
        text(&value["metadata"]["name"])
    )
}

fn typed(value: &Value) -> Result<Object> {
    let id = identity(value);
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    Ok(match (api_version, value["kind"].as_str().unwrap_or_default()) {
        ("v1", "ServiceAccount") => Object::ServiceAccount(round_trip(value, &id)?),
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(round_trip(value, &id)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(round_trip(value, &id)?),
        ("v1", "ConfigMap") => Object::ConfigMap(round_trip(value, &id)?),
        ("apps/v1", "Deployment") => Object::Deployment(round_trip(value, &id)?),
        ("v1", "Service") => Object::Service(round_trip(value, &id)?),
        ("v1", "Secret") => Object::Secret(round_trip(value, &id)?),
        (api_version, kind) => bail!(
            "{id}: {api_version} {kind} is not a kind these manifests should contain \
             (cluster-wide objects are not allowed; optional CRD kinds belong in manifests/components)"
        ),
    })
}

/// Parses `value` as `T` and fails if any field did not survive the trip
/// back to JSON, i.e. k8s-openapi (and so the API server) does not know it.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value, id: &str) -> Result<T> {
    let mut input = value.clone();
    normalize_quantities(&mut input);
    let object: T = serde_json::from_value(input.clone())
        .with_context(|| format!("{id}: does not parse as its API type"))?;
    let back = serde_json::to_value(&object).with_context(|| format!("{id}: serializing"))?;
    let mut problems = Vec::new();
    compare("", &input, &back, &mut problems);
    if !problems.is_empty() {
        bail!(
            "{id}: fields the API type does not have (misspelt or misplaced?):\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(object)
}

/// YAML writes `cpu: 1` as a number; the API reads quantities from numbers
/// and strings alike, k8s-openapi only from strings.
fn normalize_quantities(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("requests" | "limits", Value::Object(quantities)) => {
                        for q in quantities.values_mut() {
                            if let Value::Number(n) = q {
                                *q = Value::String(n.to_string());
                            }
                        }
                    }
                    ("sizeLimit", Value::Number(n)) => *child = Value::String(n.to_string()),
                    _ => normalize_quantities(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_quantities),
        _ => {}
    }
}

fn compare(path: &str, input: &Value, back: &Value, problems: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    // An explicit null means absent to the API too.
                    None if value.is_null() => {}
                    None => problems.push(format!("{child}: unknown field")),
                    Some(other) => compare(&child, value, other, problems),
                }
            }
            for (key, value) in b {
                if !a.contains_key(key) && !value.is_null() {
                    problems.push(format!(
                        "{path}.{key}: appeared in the round trip as {value}"
                    ));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}[{i}]"), x, y, problems);
            }
        }
        (a, b) if a == b => {}
        (a, b) => problems.push(format!("{path}: {a} came back as {b}")),
    }
}

/// A rendered kustomization, every object typed.
struct Rendered {
    dir: String,
    values: Vec<Value>,
    objects: Vec<Object>,
}

fn rendered(relative: &str) -> Rendered {
    rendered_in(&manifests(), relative)
}

/// Like [`rendered`], from a copy of `manifests/` at `root`.
fn rendered_in(root: &Path, relative: &str) -> Rendered {
    let dir = root.join(relative);
    let values = render(&dir).unwrap_or_else(|e| panic!("{e:#}"));
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for value in &values {
        match typed(value) {
            Ok(o) => objects.push(o),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    assert!(
        errors.is_empty(),
        "manifests/{relative}:\n{}",
        errors.join("\n")
    );
    assert!(!objects.is_empty(), "manifests/{relative} renders nothing");
    Rendered {
        dir: format!("manifests/{relative}"),
        values,
        objects,
    }
}

impl Rendered {
    fn deployments(&self) -> Vec<&Deployment> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => Some(d),
                _ => None,
            })
            .collect()
    }
    fn roles(&self) -> impl Iterator<Item = &Role> {
        self.objects.iter().filter_map(|o| match o {
            Object::Role(r) => Some(r),
            _ => None,
        })
    }
    fn bindings(&self) -> impl Iterator<Item = &RoleBinding> {
        self.objects.iter().filter_map(|o| match o {
            Object::RoleBinding(r) => Some(r),
            _ => None,
        })
    }
    fn config_maps(&self) -> impl Iterator<Item = &ConfigMap> {
        self.objects.iter().filter_map(|o| match o {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        })
    }
    fn services(&self) -> impl Iterator<Item = &Service> {
        self.objects.iter().filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
    }
    fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.objects.iter().filter_map(|o| match o {
            Object::Secret(s) => Some(s),
            _ => None,
        })
    }
    fn service_accounts(&self) -> impl Iterator<Item = &ServiceAccount> {
        self.objects.iter().filter_map(|o| match o {
            Object::ServiceAccount(s) => Some(s),
            _ => None,
        })
    }
    /// (kind, namespace, name) of every object.
    fn identities(&self) -> BTreeSet<String> {
        self.values.iter().map(identity).collect()
    }
}

fn ns(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------- overlay checks

/// Everything an overlay must satisfy; returns what the daemon is
/// configured to manage, for the callers' own checks.
struct Daemon {
    namespace: String,
    managed: BTreeSet<String>,
    /// The overlay includes components/remote-environment.
    remote: bool,
}

fn check_overlay(r: &Rendered) -> Daemon {
    let mut errors = Vec::new();
    let deployments = r.deployments();
    assert_eq!(
        deployments.len(),
        1,
        "{}: expected exactly one Deployment",
        r.dir
    );
    let deployment = deployments[0];
    let namespace = ns(&deployment.metadata).to_owned();
    assert!(
        !namespace.is_empty(),
        "{}: the Deployment has no namespace; set `namespace:` in the overlay",
        r.dir
    );

    let spec = deployment.spec.as_ref().expect("Deployment without spec");
    if spec.replicas != Some(1) {
        errors.push(format!(
            "Deployment: replicas is {:?}; one pod schedules, leader election only covers rollouts",
            spec.replicas
        ));
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let pod = spec
        .template
        .spec
        .as_ref()
        .expect("Deployment without a pod spec");

    check_pod_security(pod, &mut errors);
    let settings = check_container(pod, &namespace, &mut errors);

    // The service account the pod runs as, in the daemon's namespace.
    let sa = pod.service_account_name.clone().unwrap_or_default();
    if sa.is_empty() || sa == "default" {
        errors.push("Deployment: set serviceAccountName to the daemon's own ServiceAccount".into());
    }
    if !r
        .service_accounts()
        .any(|s| name(&s.metadata) == sa && ns(&s.metadata) == namespace)
    {
        errors.push(format!("ServiceAccount {namespace}/{sa}, which the Deployment runs as, is not in the manifests"));
    }
    if pod.automount_service_account_token == Some(false) {
        errors.push(
            "Deployment: automountServiceAccountToken is false; the daemon needs its token".into(),
        );
    }

    // The configuration, under the name and key the daemon reads.
    let managed = settings
        .as_ref()
        .and_then(|settings| check_config(r, &namespace, settings, &mut errors));

    // With an environment on another cluster, the daemon reads that
    // cluster's kubeconfig from this Secret.
    let remote = r
        .secrets()
        .any(|s| name(&s.metadata) == rbac::KUBECONFIG_SECRET && ns(&s.metadata) == namespace);

    // Least privilege, per namespace (needs to know which namespaces are managed).
    if let (Some(settings), Some(managed)) = (&settings, &managed) {
        let daemon = Daemon {
            namespace: namespace.clone(),
            managed: managed.clone(),
            remote,
        };
        check_rbac(r, &daemon, &sa, settings, &mut errors);
    }

    check_service(r, &namespace, &template_labels, pod, &mut errors);

    for value in &r.values {
        let labels = &value["metadata"]["labels"];
        for key in COMMON_LABELS {
            if labels[key].as_str().is_none_or(str::is_empty) {
                errors.push(format!("{}: label {key} missing", identity(value)));
            }
        }
    }

    assert!(errors.is_empty(), "{}:\n  {}", r.dir, errors.join("\n  "));
    Daemon {
        namespace,
        managed: managed.unwrap_or_default(),
        remote,
    }
}

fn check_pod_security(pod: &PodSpec, errors: &mut Vec<String>) {
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        errors.push("pod: host namespaces are not allowed under the restricted policy".into());
    }
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    if pod_sc.run_as_user.is_some() {
        errors.push("pod securityContext.runAsUser is set; leave it out so OpenShift assigns a UID from the namespace's range".into());
    }
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let at = format!("container {}", c.name);
        let Some(sc) = &c.security_context else {
            errors.push(format!("{at}: no securityContext; add the restricted one (see manifests/base/deployment.yaml)"));
            continue;
        };
        if sc.run_as_non_root.or(pod_sc.run_as_non_root) != Some(true) {
            errors.push(format!("{at}: runAsNonRoot is not true"));
        }
        if sc.run_as_user.is_some() {
            errors.push(format!(
                "{at}: runAsUser is set; leave it out so OpenShift assigns a UID"
            ));
        }
        if sc.read_only_root_filesystem != Some(true) {
            errors.push(format!("{at}: readOnlyRootFilesystem is not true"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            errors.push(format!("{at}: allowPrivilegeEscalation is not false"));
        }
        if sc.privileged == Some(true) {
            errors.push(format!("{at}: privileged"));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if caps.drop.as_deref() != Some(&["ALL".to_owned()][..]) {
            errors.push(format!(
                "{at}: capabilities.drop must be [ALL], is {:?}",
                caps.drop
            ));
        }
        if caps.add.as_ref().is_some_and(|a| !a.is_empty()) {
            errors.push(format!(
                "{at}: capabilities.add {:?}; the daemon needs none",
                caps.add
            ));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .or(pod_sc.seccomp_profile.as_ref());
        if seccomp.map(|s| s.type_.as_str()) != Some("RuntimeDefault") {
            errors.push(format!("{at}: seccompProfile is not RuntimeDefault"));
        }
    }
}

/// Checks the daemon's container; returns the settings its environment
/// gives the daemon.
fn check_container(pod: &PodSpec, namespace: &str, errors: &mut Vec<String>) -> Option<Settings> {
    let Some(c) = pod.containers.iter().find(|c| c.name == CONTAINER) else {
        errors.push(format!("no container named {CONTAINER}"));
        return None;
    };
    let image = c.image.as_deref().unwrap_or_default();
    match image.strip_prefix(IMAGE) {
        Some(rest) if rest.starts_with("@sha256:") => {}
        Some(rest) if rest.starts_with(':') && rest != ":latest" && rest.len() > 1 => {}
        _ => errors.push(format!(
            "container image `{image}`: expected {IMAGE}:<version> (set by `images:` in the overlay; not `latest`)"
        )),
    }
    if c.args.as_deref() != Some(&["run".to_owned()][..]) {
        errors.push(format!("container args {:?}: expected [run]", c.args));
    }

    // Environment -> the daemon's settings. Every IMPORT_SCHEDULER_* variable
    // must change a setting: one that does not is misspelt.
    let mut vars = Vec::new();
    let mut sources = BTreeMap::new();
    for env in c.env.iter().flatten() {
        if !env.name.starts_with(ENV_PREFIX) {
            errors.push(format!(
                "env {}: not read by the daemon (only {ENV_PREFIX}* are)",
                env.name
            ));
            continue;
        }
        let value = match (&env.value, &env.value_from) {
            (Some(v), None) => v.clone(),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    sources.insert(env.name.clone(), format!("fieldRef {}", field.field_path));
                    match field.field_path.as_str() {
                        "metadata.namespace" => namespace.to_owned(),
                        "metadata.name" => "image-import-scheduler-5d9c7b-x2x4q".to_owned(),
                        other => {
                            errors.push(format!("env {}: unexpected fieldRef {other}", env.name));
                            continue;
                        }
                    }
                } else if let Some(secret) = &from.secret_key_ref {
                    sources.insert(env.name.clone(), format!("secret {}", secret.name));
                    if secret.optional != Some(true) {
                        errors.push(format!(
                            "env {}: Secret {} is not part of the manifests, so the reference must be optional: true \
                             (the pod would not start without it)",
                            env.name, secret.name
                        ));
                    }
                    "a-secret-value".to_owned()
                } else {
                    errors.push(format!(
                        "env {}: only value, fieldRef and secretKeyRef are expected",
                        env.name
                    ));
                    continue;
                }
            }
            _ => {
                errors.push(format!(
                    "env {}: needs exactly one of value and valueFrom",
                    env.name
                ));
                continue;
            }
        };
        vars.push((env.name.clone(), value));
    }
    let settings = match Settings::from_vars(vars.clone()) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("container env: the daemon would refuse it: {e}"));
            return None;
        }
    };
    for (var, _) in &vars {
        // Receivers' secrets are read by the name the configuration's
        // `notifications` gives, not as settings.
        if sources.get(var).map(String::as_str) == Some("secret image-import-scheduler-notify") {
            continue;
        }
        let without: Vec<_> = vars.iter().filter(|(n, _)| n != var).cloned().collect();
        if Settings::from_vars(without).ok().as_ref() == Some(&settings) {
            errors.push(format!(
                "env {var}: changes no setting (misspelt, or equal to the default)"
            ));
        }
    }
    for (var, source) in [
        ("IMPORT_SCHEDULER_NAMESPACE", "fieldRef metadata.namespace"),
        ("IMPORT_SCHEDULER_POD_NAME", "fieldRef metadata.name"),
        (
            import_scheduler::http::HOOK_SECRET_ENV,
            "secret image-import-scheduler-hook",
        ),
    ] {
        if sources.get(var).map(String::as_str) != Some(source) {
            errors.push(format!("env {var}: expected from {source}"));
        }
    }
    if settings.log_format != "json" {
        errors.push(format!(
            "env IMPORT_SCHEDULER_LOG_FORMAT: `{}`; in a cluster logs are JSON",
            settings.log_format
        ));
    }
    match (settings.grace(), pod.termination_grace_period_seconds) {
        (Ok(grace), Some(period)) if grace.as_secs() + 5 <= period.unsigned_abs() => {}
        (grace, period) => errors.push(format!(
            "shutdown grace {grace:?} must end at least 5s before terminationGracePeriodSeconds {period:?}, \
             or the kubelet kills in-flight imports"
        )),
    }

    // The HTTP port, probes on it by name.
    let listen_port = settings
        .listen_addr
        .parse::<std::net::SocketAddr>()
        .map(|a| i32::from(a.port()))
        .unwrap_or_default();
    let ports: Vec<_> = c.ports.iter().flatten().collect();
    match ports
        .iter()
        .find(|p| p.name.as_deref() == Some(METRICS_PORT))
    {
        Some(p) if p.container_port == listen_port => {}
        Some(p) => errors.push(format!(
            "port {METRICS_PORT} is {} but the daemon listens on {}",
            p.container_port, settings.listen_addr
        )),
        None => errors.push(format!(
            "container has no port named {METRICS_PORT} (the name ServiceMonitors select)"
        )),
    }
    check_probe(
        c,
        "livenessProbe",
        c.liveness_probe.as_ref(),
        "/healthz",
        errors,
    );
    check_probe(
        c,
        "readinessProbe",
        c.readiness_probe.as_ref(),
        "/readyz",
        errors,
    );

    check_resources(c, errors);
    Some(settings)
}

fn check_probe(
    c: &Container,
    field: &str,
    probe: Option<&k8s_openapi::api::core::v1::Probe>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(get) = probe.and_then(|p| p.http_get.as_ref()) else {
        errors.push(format!(
            "container {}: {field} must be an httpGet of {path}",
            c.name
        ));
        return;
    };
    if get.path.as_deref() != Some(path) {
        errors.push(format!(
            "container {}: {field} path {:?}, expected {path}",
            c.name, get.path
        ));
    }
    if get.port != IntOrString::String(METRICS_PORT.to_owned()) {
        errors.push(format!(
            "container {}: {field} port {:?}, expected the named port {METRICS_PORT}",
            c.name, get.port
        ));
    }
}

/// Bytes of a memory quantity in the forms these manifests use.
fn memory_bytes(q: &str) -> Option<u64> {
    let split = q.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(q.len());
    let (number, unit) = q.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn check_resources(c: &Container, errors: &mut Vec<String>) {
    let resources = c.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    for (what, map, key) in [
        ("requests", &requests, "cpu"),
        ("requests", &requests, "memory"),
        ("limits", &limits, "memory"),
    ] {
        if !map.contains_key(key) {
            errors.push(format!(
                "container {}: resources.{what}.{key} missing",
                c.name
            ));
        }
    }
    if let (Some(req), Some(lim)) = (requests.get("memory"), limits.get("memory")) {
        match (memory_bytes(&req.0), memory_bytes(&lim.0)) {
            (Some(r), Some(l)) if r <= l => {}
            (Some(_), Some(_)) => errors.push(format!(
                "container {}: memory request {} above limit {}",
                c.name, req.0, lim.0
            )),
            _ => errors.push(format!(
                "container {}: memory quantities {} / {} not understood",
                c.name, req.0, lim.0
            )),
        }
    }
}

/// The configuration ConfigMap; returns the namespaces it manages, or
/// None (reported) if it is missing or invalid.
fn check_config(
    r: &Rendered,
    namespace: &str,
    settings: &Settings,
    errors: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    let Some(cm) = r
        .config_maps()
        .find(|c| name(&c.metadata) == settings.configmap && ns(&c.metadata) == namespace)
    else {
        errors.push(format!(
            "ConfigMap {namespace}/{} missing (the daemon watches it by exactly this name; a hash suffix breaks that)",
            settings.configmap
        ));
        return None;
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(&settings.config_key)) else {
        errors.push(format!(
            "ConfigMap {namespace}/{}: no key {}",
            settings.configmap, settings.config_key
        ));
        return None;
    };
    match config::parse(text, Utc::now()) {
        Ok(loaded) => Some(
            loaded
                .config
                .environments
                .values()
                .map(|e| e.namespace.clone())
                .collect(),
        ),
        Err(e) => {
            errors.push(format!(
                "ConfigMap {namespace}/{} key {}: {e}",
                settings.configmap, settings.config_key
            ));
            None
        }
    }
}

/// The permissions the daemon needs in `namespace`, with the object names
/// its settings use.
fn expected(namespace: &str, daemon: &Daemon, settings: &Settings) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    if namespace == daemon.namespace {
        out.extend(rbac::required(DAEMON_API_CALLS, Scope::DaemonNamespace));
        if daemon.remote {
            out.extend(rbac::required(DAEMON_API_CALLS, Scope::RemoteEnvironment));
        }
    }
    if daemon.managed.contains(namespace) {
        out.extend(rbac::required(DAEMON_API_CALLS, Scope::ManagedNamespace));
    }
    out.into_iter()
        .map(|mut p| {
            p.name = p.name.map(|n| match (p.resource.as_str(), n.as_str()) {
                ("configmaps", rbac::CONFIG_CONFIGMAP) => settings.configmap.clone(),
                ("configmaps", rbac::STATUS_CONFIGMAP) => settings.status_configmap.clone(),
                ("leases", rbac::LEASE) => settings.lease_name.clone(),
                _ => n,
            });
            p
        })
        .collect()
}

/// What the call behind `p` is for, from `calls`.
fn why(calls: &[rbac::ApiCall], p: &Permission) -> &'static str {
    calls
        .iter()
        .find(|c| {
            c.group == p.group
                && c.resource == p.resource
                && c.verbs.contains(&p.verb.as_str())
                && match &p.name {
                    None => c.resource_names.is_empty(),
                    Some(n) => {
                        c.resource_names.is_empty() || c.resource_names.contains(&n.as_str())
                    }
                }
        })
        .map_or("no call listed", |c| c.why)
}

/// What `rules` grant beyond or short of `want`, one line per permission.
fn permission_errors(
    at: &str,
    calls: &[rbac::ApiCall],
    want: &BTreeSet<Permission>,
    rules: &[k8s_openapi::api::rbac::v1::PolicyRule],
) -> Vec<String> {
    match rbac::granted(rules) {
        Ok(have) => compare_permissions(at, calls, want, &have),
        Err(problems) => problems.iter().map(|p| format!("{at}: {p}")).collect(),
    }
}

fn compare_permissions(
    at: &str,
    calls: &[rbac::ApiCall],
    want: &BTreeSet<Permission>,
    have: &BTreeSet<Permission>,
) -> Vec<String> {
    let missing = want.difference(have).map(|p| {
        format!(
            "{at}: nothing allows {p} ({}); the call would get 403 Forbidden",
            why(calls, p)
        )
    });
    let extra = have.difference(want).map(|p| {
        format!(
            "{at}: allows {p}, which is never called (src/rbac.rs lists the calls); \
             remove the verb, or add the new call to src/rbac.rs"
        )
    });
    missing.chain(extra).collect()
}

fn check_rbac(
    r: &Rendered,
    daemon: &Daemon,
    sa: &str,
    settings: &Settings,
    errors: &mut Vec<String>,
) {
    let daemon_ns = daemon.namespace.as_str();
    let managed = &daemon.managed;
    let roles: BTreeMap<(String, String), &Role> = r
        .roles()
        .map(|role| {
            (
                (
                    ns(&role.metadata).to_owned(),
                    name(&role.metadata).to_owned(),
                ),
                role,
            )
        })
        .collect();
    let mut granted: BTreeMap<String, BTreeSet<Permission>> = BTreeMap::new();
    // Namespaces with a Role that cannot be read: comparing them would only
    // repeat that error as missing permissions.
    let mut unreadable = BTreeSet::new();
    let mut bound = BTreeSet::new();
    for b in r.bindings() {
        let at = format!("RoleBinding {}/{}", ns(&b.metadata), name(&b.metadata));
        let namespace = ns(&b.metadata).to_owned();
        for s in b.subjects.iter().flatten() {
            if s.kind != "ServiceAccount"
                || s.name != sa
                || s.namespace.as_deref() != Some(daemon_ns)
            {
                errors.push(format!(
                    "{at}: subject {} {}/{} is not the daemon's ServiceAccount {daemon_ns}/{sa}",
                    s.kind,
                    s.namespace.as_deref().unwrap_or("(no namespace)"),
                    s.name
                ));
            }
        }
        if b.subjects.as_ref().is_none_or(Vec::is_empty) {
            errors.push(format!("{at}: no subjects"));
        }
        if b.role_ref.kind != "Role" || b.role_ref.api_group != "rbac.authorization.k8s.io" {
            errors.push(format!(
                "{at}: refers to {} {}; grant through a Role defined here, nothing cluster-wide",
                b.role_ref.kind, b.role_ref.name
            ));
            continue;
        }
        let key = (namespace.clone(), b.role_ref.name.clone());
        let Some(role) = roles.get(&key) else {
            errors.push(format!(
                "{at}: Role {}/{} is not in the manifests",
                key.0, key.1
            ));
            continue;
        };
        bound.insert(key);
        match rbac::granted(role.rules.as_deref().unwrap_or_default()) {
            Ok(set) => granted.entry(namespace).or_default().extend(set),
            Err(problems) => {
                unreadable.insert(namespace);
                for p in problems {
                    errors.push(format!(
                        "Role {}/{}: {p}",
                        ns(&role.metadata),
                        name(&role.metadata)
                    ));
                }
            }
        }
    }
    for key in roles.keys() {
        if !bound.contains(key) {
            errors.push(format!(
                "Role {}/{}: bound to nothing; remove it or bind it",
                key.0, key.1
            ));
        }
    }
    let namespaces: BTreeSet<String> = granted
        .keys()
        .cloned()
        .chain(managed.iter().cloned())
        .chain([daemon_ns.to_owned()])
        .collect();
    for namespace in namespaces.difference(&unreadable) {
        let want = expected(namespace, daemon, settings);
        let have = granted.get(namespace).cloned().unwrap_or_default();
        errors.extend(compare_permissions(
            &format!("the daemon's Roles in namespace {namespace}"),
            DAEMON_API_CALLS,
            &want,
            &have,
        ));
    }
}

fn check_service(
    r: &Rendered,
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    pod: &PodSpec,
    errors: &mut Vec<String>,
) {
    let services: Vec<_> = r.services().collect();
    let [service] = services.as_slice() else {
        errors.push(format!("expected one Service, found {}", services.len()));
        return;
    };
    if ns(&service.metadata) != namespace {
        errors.push(format!(
            "Service is in {:?}, the daemon in {namespace}",
            ns(&service.metadata)
        ));
    }
    let spec = service.spec.clone().unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() || selector.iter().any(|(k, v)| pod_labels.get(k) != Some(v)) {
        errors.push(format!(
            "Service selector {selector:?} does not select the pod (labels {pod_labels:?})"
        ));
    }
    let container_port = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(METRICS_PORT))
        .map(|p| p.container_port);
    match spec.ports.iter().flatten().find(|p| p.name.as_deref() == Some(METRICS_PORT)) {
        Some(p) => match &p.target_port {
            Some(IntOrString::String(n)) if n == METRICS_PORT => {}
            Some(IntOrString::Int(n)) if Some(*n) == container_port => {}
            other => errors.push(format!("Service port {METRICS_PORT}: targetPort {other:?} is not the container's {METRICS_PORT}")),
        },
        None => errors.push(format!("Service has no port named {METRICS_PORT}")),
    }
}

// ---------------------------------------------------------------- tests

/// The prod environment is the weekly window the CronJob had.
fn assert_prod_is_the_weekly_window(r: &Rendered, namespace: &str) {
    let cm = r.config_maps().next().expect("no ConfigMap");
    let loaded = config::parse(&cm.data.as_ref().unwrap()["config.yaml"], Utc::now()).unwrap();
    let prod = loaded
        .config
        .environments
        .values()
        .find(|e| e.namespace == namespace)
        .unwrap_or_else(|| panic!("{}: no environment in {namespace}", r.dir));
    let schedule = prod.mode.schedule().expect("prod is not windowed");
    assert_eq!(schedule.expr().to_string(), "0 2 * * 2");
    assert_eq!(schedule.time_zone(), chrono_tz::Europe::Prague);
    assert_eq!(schedule.window(), std::time::Duration::from_secs(3600));
}

/// Every object of `r` is in `namespace`, and every RoleBinding binds an
/// account of `namespace`: nothing reaches outside it.
fn assert_confined_to(r: &Rendered, namespace: &str) {
    for value in &r.values {
        assert_eq!(
            value["metadata"]["namespace"].as_str(),
            Some(namespace),
            "{}: {} is outside {namespace}",
            r.dir,
            identity(value)
        );
    }
    for b in r.bindings() {
        for s in b.subjects.iter().flatten() {
            assert_eq!(s.namespace.as_deref(), Some(namespace), "{}: {b:?}", r.dir);
        }
    }
}

#[test]
fn prod_overlay_manages_only_its_own_namespace() {
    let r = rendered("overlays/prod");
    let daemon = check_overlay(&r);
    assert_eq!(daemon.namespace, "packit--prod");
    assert_eq!(daemon.managed, BTreeSet::from(["packit--prod".to_owned()]));
    assert!(!daemon.remote);
    assert_confined_to(&r, "packit--prod");
    assert_prod_is_the_weekly_window(&r, "packit--prod");
}

#[test]
fn stg_overlay_manages_only_its_own_namespace() {
    let r = rendered("overlays/stg");
    let daemon = check_overlay(&r);
    assert_eq!(daemon.namespace, "packit--stg");
    assert_eq!(daemon.managed, BTreeSet::from(["packit--stg".to_owned()]));
    assert_confined_to(&r, "packit--stg");
    let cm = r.config_maps().next().expect("no ConfigMap");
    let loaded = config::parse(&cm.data.as_ref().unwrap()["config.yaml"], Utc::now()).unwrap();
    let [stg] = loaded.config.environments.values().collect::<Vec<_>>()[..] else {
        panic!("one environment expected")
    };
    assert_eq!(stg.mode.name(), "immediate");
}

#[test]
fn single_cluster_overlay_runs_one_daemon_for_both_environments() {
    let r = rendered("overlays/single-cluster");
    let daemon = check_overlay(&r);
    assert_eq!(daemon.namespace, "packit--prod");
    assert_eq!(
        daemon.managed,
        BTreeSet::from(["packit--prod".to_owned(), "packit--stg".to_owned()])
    );
    assert_prod_is_the_weekly_window(&r, "packit--prod");
    let cm = r.config_maps().next().expect("no ConfigMap");
    let loaded = config::parse(&cm.data.as_ref().unwrap()["config.yaml"], Utc::now()).unwrap();
    let stg = loaded
        .config
        .environments
        .values()
        .find(|e| e.namespace == "packit--stg")
        .unwrap();
    assert_eq!(stg.mode.name(), "immediate");
}

#[test]
fn single_cluster_and_stg_overlays_can_be_applied_side_by_side() {
    // Trying a new version in stg runs the stg overlay next to the
    // single-cluster one. Same kind, namespace and name in both would make
    // one apply overwrite the other's object (e.g. a RoleBinding's subjects).
    let single = rendered("overlays/single-cluster").identities();
    let stg = rendered("overlays/stg").identities();
    let shared: Vec<_> = single.intersection(&stg).collect();
    assert!(shared.is_empty(), "objects in both overlays: {shared:?}");
}

/// A copy of `manifests/` to change before rendering, as a user would edit
/// the checkout.
fn manifests_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&manifests(), dir.path());
    dir
}

/// Uncomments `components` in an overlay of a copy, the way
/// manifests/README.md says to enable them.
fn enable_components(root: &Path, overlay: &str, components: &[&str]) {
    let path = root.join(overlay).join("kustomization.yaml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("# components:", "components:");
    let up = "../".repeat(overlay.split('/').count());
    for component in components {
        let line = format!("#   - {up}components/{component}");
        assert!(
            text.contains(&line),
            "{overlay}: the line for {component} is gone"
        );
        text = text.replace(&line, &format!("  - {up}components/{component}"));
    }
    std::fs::write(&path, text).unwrap();
}

fn enable_remote_environment(root: &Path, overlay: &str) {
    enable_components(root, overlay, &["remote-environment"]);
}

#[test]
fn remote_environment_component_lets_the_daemon_read_one_secret() {
    let root = manifests_copy();
    enable_remote_environment(root.path(), "overlays/prod");
    let r = rendered_in(root.path(), "overlays/prod");
    // check_overlay compares every Role with src/rbac.rs, including the
    // RemoteEnvironment entries in the daemon's namespace.
    let daemon = check_overlay(&r);
    assert!(daemon.remote, "the kubeconfig Secret was not rendered");
    assert_confined_to(&r, "packit--prod");
    let secret = r
        .secrets()
        .find(|s| name(&s.metadata) == rbac::KUBECONFIG_SECRET)
        .unwrap();
    // The token is patched in by hand; a manifest with data would
    // overwrite it on every apply.
    assert!(
        secret.data.is_none() && secret.string_data.is_none(),
        "the kubeconfig Secret must not carry data in the manifests"
    );
    let role = r
        .roles()
        .find(|role| name(&role.metadata) == "image-import-scheduler-kubeconfig")
        .expect("no Role for the kubeconfig Secret");
    let errors = permission_errors(
        "components/remote-environment/role.yaml",
        DAEMON_API_CALLS,
        &rbac::required(DAEMON_API_CALLS, Scope::RemoteEnvironment),
        role.rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The other cluster's side: `(namespace, ServiceAccount)` it creates, after
/// checking it grants that account exactly a managed namespace's calls.
fn check_remote_side(r: &Rendered) -> (String, String) {
    let accounts: Vec<_> = r.service_accounts().collect();
    let [sa] = accounts.as_slice() else {
        panic!("{}: one ServiceAccount expected", r.dir)
    };
    let (namespace, sa) = (ns(&sa.metadata).to_owned(), name(&sa.metadata).to_owned());
    assert_confined_to(r, &namespace);
    let mut errors = Vec::new();
    let mut have = BTreeSet::new();
    for b in r.bindings() {
        for s in b.subjects.iter().flatten() {
            if s.kind != "ServiceAccount" || s.name != sa {
                errors.push(format!(
                    "RoleBinding {}: binds {} {}",
                    name(&b.metadata),
                    s.kind,
                    s.name
                ));
            }
        }
        let role = r
            .roles()
            .find(|role| b.role_ref.kind == "Role" && name(&role.metadata) == b.role_ref.name)
            .unwrap_or_else(|| panic!("{}: Role {} missing", r.dir, b.role_ref.name));
        have.extend(rbac::granted(role.rules.as_deref().unwrap_or_default()).unwrap());
    }
    errors.extend(compare_permissions(
        &format!("{}: the daemon's account {namespace}/{sa}", r.dir),
        DAEMON_API_CALLS,
        &rbac::required(DAEMON_API_CALLS, Scope::ManagedNamespace),
        &have,
    ));
    let secrets: Vec<_> = r.secrets().collect();
    match secrets.as_slice() {
        [token] if token.type_.as_deref() == Some("kubernetes.io/service-account-token") => {
            let annotations = token.metadata.annotations.clone().unwrap_or_default();
            if annotations.get("kubernetes.io/service-account.name") != Some(&sa) {
                errors.push(format!("token Secret is not for {sa}: {annotations:?}"));
            }
        }
        other => errors.push(format!(
            "one ServiceAccount token Secret expected, found {other:?}"
        )),
    }
    for value in &r.values {
        let labels = &value["metadata"]["labels"];
        for key in COMMON_LABELS {
            if labels[key].as_str().is_none_or(str::is_empty) {
                errors.push(format!("{}: label {key} missing", identity(value)));
            }
        }
    }
    assert!(errors.is_empty(), "{}:\n  {}", r.dir, errors.join("\n  "));
    (namespace, sa)
}

#[test]
fn remote_side_grants_the_daemon_account_a_managed_namespace_only() {
    let r = rendered("components/remote-environment/remote");
    let (namespace, sa) = check_remote_side(&r);
    assert_eq!(namespace, "packit--stg");
    // Apart from the stg overlay's own daemon in the same namespace.
    let stg = rendered("overlays/stg").identities();
    let shared: Vec<_> = r.identities().intersection(&stg).cloned().collect();
    assert!(shared.is_empty(), "objects in both: {shared:?}");
    assert!(stg.iter().all(|id| !id.ends_with(&format!("/{sa}"))));
}

#[test]
fn namespace_names_change_in_one_place() {
    let root = manifests_copy();
    let names = root.path().join("namespaces/namespaces.yaml");
    let text = std::fs::read_to_string(&names).unwrap();
    let changed = text
        .replace("prod: packit--prod", "prod: team-prod")
        .replace("stg: packit--stg", "stg: team-stg");
    assert_ne!(
        text, changed,
        "namespaces.yaml no longer names packit--prod/stg"
    );
    std::fs::write(&names, changed).unwrap();
    enable_remote_environment(root.path(), "overlays/prod");

    for (overlay, daemon_ns, managed) in [
        ("overlays/prod", "team-prod", &["team-prod"][..]),
        ("overlays/stg", "team-stg", &["team-stg"][..]),
        (
            "overlays/single-cluster",
            "team-prod",
            &["team-prod", "team-stg"][..],
        ),
    ] {
        let r = rendered_in(root.path(), overlay);
        let daemon = check_overlay(&r);
        assert_eq!(daemon.namespace, daemon_ns, "{overlay}");
        let managed: BTreeSet<String> = managed.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(daemon.managed, managed, "{overlay}");
        let text = serde_json::to_string(&r.values).unwrap();
        assert!(
            !text.contains("packit-"),
            "{overlay} still names a packit namespace"
        );
    }
    let r = rendered_in(root.path(), "components/remote-environment/remote");
    assert_eq!(check_remote_side(&r).0, "team-stg");
    assert!(!serde_json::to_string(&r.values)
        .unwrap()
        .contains("packit-"));

    // Nothing else in manifests/ names a namespace.
    let mut stack = vec![manifests()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && !path.ends_with("namespaces/namespaces.yaml")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                let uses = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#') && l.contains("packit-"))
                    .filter(|l| !l.contains("\"packit--"))
                    .collect::<Vec<_>>();
                assert!(
                    uses.is_empty(),
                    "{}: names a namespace outside manifests/namespaces: {uses:?}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn base_renders_and_holds_the_daemon_namespace_role() {
    let r = rendered("base");
    for value in &r.values {
        assert!(
            value["metadata"]["namespace"].is_null(),
            "{}: the base sets no namespace",
            identity(value)
        );
    }
    let roles: Vec<_> = r.roles().collect();
    assert_eq!(roles.len(), 1);
    let errors = permission_errors(
        "manifests/base/role.yaml",
        DAEMON_API_CALLS,
        &rbac::required(DAEMON_API_CALLS, Scope::DaemonNamespace),
        roles[0].rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let cm = r.config_maps().next().expect("no ConfigMap in base");
    assert_eq!(name(&cm.metadata), rbac::CONFIG_CONFIGMAP);
    config::parse(
        &cm.data.as_ref().unwrap()[config::DEFAULT_CONFIG_KEY],
        Utc::now(),
    )
    .unwrap_or_else(|e| panic!("manifests/base/config.yaml: {e}"));
}

#[test]
fn operator_role_grants_what_the_command_line_needs() {
    let text =
        std::fs::read_to_string(manifests().join("components/operator-role/role.yaml")).unwrap();
    let values = split_documents(&text).unwrap();
    let [value] = values.as_slice() else {
        panic!("one Role expected")
    };
    let role: Role = round_trip(value, "operator Role").unwrap();
    let mut want = rbac::required(OPERATOR_API_CALLS, Scope::ManagedNamespace);
    want.extend(rbac::required(OPERATOR_API_CALLS, Scope::DaemonNamespace));
    let errors = permission_errors(
        "manifests/components/operator-role/role.yaml",
        OPERATOR_API_CALLS,
        &want,
        role.rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn pin_back_component_grants_exactly_the_pin_back_calls() {
    assert_eq!(rbac::PIN_BACK_COMPONENT, "manifests/components/pin-back");
    let text = std::fs::read_to_string(manifests().join("components/pin-back/role.yaml")).unwrap();
    let values = split_documents(&text).unwrap();
    let [value] = values.as_slice() else {
        panic!("one Role expected")
    };
    let role: Role = round_trip(value, "pin-back Role").unwrap();
    let want = rbac::required(PIN_BACK_API_CALLS, Scope::ManagedNamespace);
    let errors = permission_errors(
        "manifests/components/pin-back/role.yaml",
        PIN_BACK_API_CALLS,
        &want,
        role.rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // In an overlay: the Role in the managed namespace, bound to the
    // daemon's ServiceAccount; without the component no Role grants patch.
    let patches_streams = |values: &[Value]| -> Vec<String> {
        values
            .iter()
            .filter(|v| v["kind"] == "Role")
            .filter(|v| {
                v["rules"].as_array().into_iter().flatten().any(|r| {
                    r["resources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|x| x == "imagestreams")
                        && r["verbs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|x| x == "patch")
                })
            })
            .map(|v| {
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let plain = render(&manifests().join("overlays/stg")).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        patches_streams(&plain).is_empty(),
        "{:?}",
        patches_streams(&plain)
    );
    let root = manifests_copy();
    enable_components(root.path(), "overlays/stg", &["pin-back"]);
    let values = render(&root.path().join("overlays/stg")).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        patches_streams(&values),
        vec!["image-import-scheduler-pin-back".to_owned()]
    );
    let binding = values
        .iter()
        .find(|v| {
            v["kind"] == "RoleBinding" && v["metadata"]["name"] == "image-import-scheduler-pin-back"
        })
        .expect("the pin-back RoleBinding");
    let binding: RoleBinding = round_trip(binding, "pin-back RoleBinding").unwrap();
    assert_eq!(binding.role_ref.name, "image-import-scheduler-pin-back");
    assert_eq!(binding.metadata.namespace.as_deref(), Some("packit--stg"));
    let subject = &binding.subjects.as_deref().unwrap_or_default()[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(subject.name, "image-import-scheduler");
    assert_eq!(subject.namespace.as_deref(), Some("packit--stg"));
}

#[test]
fn freezer_role_grants_what_freezing_needs() {
    let text =
        std::fs::read_to_string(manifests().join("components/freezer-role/role.yaml")).unwrap();
    let values = split_documents(&text).unwrap();
    let [value] = values.as_slice() else {
        panic!("one Role expected")
    };
    let role: Role = round_trip(value, "freezer Role").unwrap();
    assert!(
        FREEZER_API_CALLS
            .iter()
            .all(|c| c.scope == Scope::DaemonNamespace),
        "freezing touches only the daemon's namespace"
    );
    let want = rbac::required(FREEZER_API_CALLS, Scope::DaemonNamespace);
    let errors = permission_errors(
        "manifests/components/freezer-role/role.yaml",
        FREEZER_API_CALLS,
        &want,
        role.rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn approver_role_grants_what_approving_needs_and_reading_does_not() {
    let text =
        std::fs::read_to_string(manifests().join("components/approver-role/role.yaml")).unwrap();
    let values = split_documents(&text).unwrap();
    let [value] = values.as_slice() else {
        panic!("one Role expected")
    };
    let role: Role = round_trip(value, "approver Role").unwrap();
    let want = rbac::required(APPROVER_API_CALLS, Scope::DaemonNamespace);
    let errors = permission_errors(
        "manifests/components/approver-role/role.yaml",
        APPROVER_API_CALLS,
        &want,
        role.rules.as_deref().unwrap_or_default(),
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let write = Permission {
        group: String::new(),
        resource: "configmaps".into(),
        verb: "patch".into(),
        name: Some(rbac::STATUS_CONFIGMAP.into()),
    };
    assert!(want.contains(&write));
    assert!(
        !rbac::required(OPERATOR_API_CALLS, Scope::DaemonNamespace).contains(&write),
        "reading must not give the right to approve"
    );
}

#[test]
fn components_compose_with_an_overlay() {
    let root = manifests_copy();
    enable_components(
        root.path(),
        "overlays/stg",
        &[
            "operator-role",
            "freezer-role",
            "approver-role",
            "service-monitor",
            "hook-route",
        ],
    );
    let values = render(&root.path().join("overlays/stg")).unwrap_or_else(|e| panic!("{e:#}"));
    for role in [
        "image-import-scheduler-operator",
        "image-import-scheduler-freezer",
        "image-import-scheduler-approver",
    ] {
        assert!(
            values
                .iter()
                .any(|v| v["kind"] == "Role" && v["metadata"]["name"] == role),
            "{role} rendered"
        );
    }

    let find = |kind: &str| -> &Value {
        values
            .iter()
            .find(|v| v["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered"))
    };
    let service: Service = round_trip(find("Service"), "Service").unwrap();
    let service_labels = service.metadata.labels.clone().unwrap_or_default();

    let monitor = find("ServiceMonitor");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("ServiceMonitor selector")
    {
        assert_eq!(
            service_labels.get(k).map(String::as_str),
            v.as_str(),
            "ServiceMonitor selects label {k}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], METRICS_PORT);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    let route = find("Route");
    assert_eq!(
        route["spec"]["to"]["name"].as_str(),
        service.metadata.name.as_deref()
    );
    assert_eq!(route["spec"]["port"]["targetPort"], METRICS_PORT);
    assert_eq!(
        route["spec"]["path"], HOOK_PATH,
        "the Route exposes only the push hook"
    );

    for value in &values {
        assert_eq!(
            value["metadata"]["namespace"],
            "packit--stg",
            "{}",
            identity(value)
        );
    }
}

#[test]
fn prometheus_rules_component_renders_with_each_overlay() {
    let source = std::fs::read_to_string(
        manifests().join("components/prometheus-rules/prometheusrule.yaml"),
    )
    .unwrap();
    let [source]: [Value; 1] = split_documents(&source).unwrap().try_into().unwrap();
    for (overlay, component_in, namespace) in [
        ("overlays/prod", "overlays/prod", "packit--prod"),
        ("overlays/stg", "overlays/stg", "packit--stg"),
        (
            "overlays/single-cluster",
            "overlays/single-cluster/daemon",
            "packit--prod",
        ),
    ] {
        let root = manifests_copy();
        enable_components(
            root.path(),
            component_in,
            &["service-monitor", "prometheus-rules"],
        );
        let values = render(&root.path().join(overlay)).unwrap_or_else(|e| panic!("{e:#}"));
        let rules: Vec<&Value> = values
            .iter()
            .filter(|v| v["kind"] == "PrometheusRule")
            .collect();
        let [rule] = rules.as_slice() else {
            panic!(
                "{overlay}: one PrometheusRule expected, got {}",
                rules.len()
            )
        };
        assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1", "{overlay}");
        assert_eq!(rule["metadata"]["namespace"], namespace, "{overlay}");
        // The daemon's labels, as on its other objects; the rules unchanged.
        assert_eq!(
            rule["metadata"]["labels"], source["metadata"]["labels"],
            "{overlay}"
        );
        assert_eq!(
            rule["spec"], source["spec"],
            "{overlay}: kustomize changed the rules"
        );
    }
}

// ---------------------------------------------------------------- Containerfile

/// The Containerfile's instructions per stage, continuation lines joined.
fn containerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Containerfile"))
        .unwrap();
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut line = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && line.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                line.push_str(part);
                line.push(' ');
                continue;
            }
            None => line.push_str(trimmed),
        }
        let full = std::mem::take(&mut line);
        let (instruction, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push((instruction, args.trim().to_owned()));
        }
    }
    stages
}

#[test]
fn containerfile_builds_a_non_root_labelled_image() {
    let stages = containerfile_stages();
    assert!(stages.len() >= 2, "multi-stage build expected");
    let last = stages.last().unwrap();
    let get = |stage: &[(String, String)], name: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
            .collect()
    };
    // Every image fully qualified: podman does not guess registries.
    for stage in &stages {
        let from = &get(stage, "FROM")[0];
        let image = from.split_whitespace().next().unwrap();
        assert!(
            image.split('/').next().unwrap().contains('.'),
            "FROM {image}: name the registry"
        );
    }

    let user = get(last, "USER");
    let uid: u32 = user
        .last()
        .expect("no USER in the runtime stage")
        .parse()
        .expect("USER must be numeric for runAsNonRoot");
    assert_ne!(uid, 0, "runtime image runs as root");

    assert_eq!(
        get(last, "ENTRYPOINT"),
        vec![r#"["/usr/local/bin/import-scheduler"]"#.to_owned()]
    );
    assert_eq!(get(last, "CMD"), vec![r#"["run"]"#.to_owned()]);
    assert!(
        get(last, "COPY")
            .iter()
            .any(|c| c.starts_with("--from=") && c.ends_with(" /usr/local/bin/import-scheduler")),
        "the runtime stage must copy the binary from the build stage"
    );

    // Labels, with their build arguments declared in the same stage (an ARG
    // before FROM or in another stage expands to nothing).
    let args: BTreeSet<String> = get(last, "ARG")
        .iter()
        .map(|a| a.split('=').next().unwrap().to_owned())
        .collect();
    let labels = get(last, "LABEL").join(" ");
    for (label, arg) in [
        ("org.opencontainers.image.version", Some("VERSION")),
        ("org.opencontainers.image.revision", Some("REVISION")),
        ("org.opencontainers.image.source", None),
        ("org.opencontainers.image.title", None),
    ] {
        let at = labels
            .find(&format!("{label}="))
            .unwrap_or_else(|| panic!("label {label} missing"));
        if let Some(arg) = arg {
            let value = labels[at..].split_whitespace().next().unwrap();
            assert!(
                value.contains(&format!("${{{arg}}}")),
                "{label} should come from ARG {arg}: {value}"
            );
            assert!(
                args.contains(arg),
                "ARG {arg} is not declared in the runtime stage"
            );
        }
    }

    // The builder builds the release binary the manifest names, from the lock file.
    let runs = stages[..stages.len() - 1]
        .iter()
        .flat_map(|s| get(s, "RUN"))
        .collect::<Vec<_>>()
        .join("\n");
    for part in ["cargo build --release --locked", "--bin import-scheduler"] {
        assert!(runs.contains(part), "build stage does not run `{part}`");
    }
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        ".dockerignore must keep target/ out of the build context"
    );
}

// ---------------------------------------------------------------- against a real API server

/// What `permissions` allow for one request: a grant without a name covers
/// every name, a named grant only that name.
fn allows(
    permissions: &BTreeSet<Permission>,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    permissions.iter().any(|p| {
        p.group == group
            && p.resource == resource
            && p.verb == verb
            && match (&p.name, name) {
                (None, _) => true,
                (Some(granted), Some(asked)) => granted == asked,
                (Some(_), None) => false,
            }
    })
}

async fn kubectl_apply(
    cluster: &test_cluster::TestCluster,
    dir: &Path,
    dry_run: bool,
) -> Result<String> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let mut command = tokio::process::Command::new(&kubectl);
    command
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .arg("apply")
        .arg("-k")
        .arg(dir);
    if dry_run {
        command.arg("--dry-run=server");
    }
    let output = command
        .output()
        .await
        .with_context(|| format!("running {kubectl}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "kubectl apply{} -k {} failed ({}):\n{stdout}{}",
            if dry_run { " --dry-run=server" } else { "" },
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Every overlay, the remote-environment component and its other side are
/// accepted by a real kube-apiserver (server-side dry run). Applied for
/// real, their Roles, evaluated by the server's RBAC authorizer, allow the
/// daemon's accounts exactly the calls of src/rbac.rs: every verb on every
/// resource the daemon or a person touches, for each object name, in the
/// daemon's namespace, the managed one and an unrelated one.
#[tokio::test]
async fn test_cluster_accepts_the_manifests_and_authorizes_exactly_the_daemon_calls() -> Result<()>
{
    let cluster = test_cluster::TestCluster::shared().await;
    for namespace in ["packit--prod", "packit--stg"] {
        cluster.ensure_namespace(namespace).await?;
    }
    let copy = manifests_copy();
    enable_remote_environment(copy.path(), "overlays/prod");
    let with_remote = copy.path().join("overlays/prod");
    let remote_side = manifests().join("components/remote-environment/remote");
    for (dir, object) in [
        (
            manifests().join("overlays/prod"),
            "deployment.apps/image-import-scheduler",
        ),
        (
            manifests().join("overlays/stg"),
            "deployment.apps/image-import-scheduler",
        ),
        (
            manifests().join("overlays/single-cluster"),
            "rolebinding.rbac.authorization.k8s.io/image-import-scheduler-imagestreams-from-prod",
        ),
        (
            with_remote.clone(),
            "secret/image-import-scheduler-kubeconfig",
        ),
        (
            remote_side.clone(),
            "secret/image-import-scheduler-remote-token",
        ),
    ] {
        let out = kubectl_apply(cluster, &dir, true).await?;
        assert!(out.contains(object), "{}: {out}", dir.display());
    }
    // One cluster standing for both sides: the daemon in prod with access
    // to stg (single-cluster) and a kubeconfig Secret (the component), and
    // the account the remote side creates in stg.
    for dir in [
        manifests().join("overlays/single-cluster"),
        with_remote,
        remote_side,
    ] {
        kubectl_apply(cluster, &dir, false).await?;
    }

    let settings = Settings::from_vars(Vec::new())?;
    let daemon = Daemon {
        namespace: "packit--prod".to_owned(),
        managed: BTreeSet::from(["packit--prod".to_owned(), "packit--stg".to_owned()]),
        remote: true,
    };
    // The account of the remote side: the daemon does not run where it
    // lives, so no namespace gets the daemon-namespace calls.
    let remote_account = Daemon {
        namespace: String::new(),
        managed: BTreeSet::from(["packit--stg".to_owned()]),
        remote: false,
    };
    let accounts = [
        ("packit--prod", "image-import-scheduler", &daemon),
        (
            "packit--stg",
            "image-import-scheduler-remote",
            &remote_account,
        ),
    ];

    let resources: BTreeSet<(&str, &str)> = DAEMON_API_CALLS
        .iter()
        .chain(OPERATOR_API_CALLS)
        .map(|c| (c.group, c.resource))
        .chain([("", "secrets"), ("", "pods")])
        .collect();
    let verbs = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    let names = [
        None,
        Some(settings.configmap.as_str()),
        Some(settings.status_configmap.as_str()),
        Some(rbac::KUBECONFIG_SECRET),
        Some("something-else"),
    ];
    let mut wrong = Vec::new();
    let mut checked = 0;
    for ((daemon_ns, account, daemon), namespace) in accounts
        .iter()
        .flat_map(|a| ["packit--prod", "packit--stg", "default"].map(|n| (a, n)))
    {
        let user = format!("system:serviceaccount:{daemon_ns}:{account}");
        let want = expected(namespace, daemon, &settings);
        for &(group, resource) in &resources {
            for verb in verbs {
                for name in names {
                    let mut attributes = serde_json::json!({
                        "namespace": namespace, "verb": verb, "group": group, "resource": resource,
                    });
                    if let Some(name) = name {
                        attributes["name"] = name.into();
                    }
                    let review = cluster
                        .admin_request(
                            "POST",
                            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                            Some(serde_json::json!({
                                "apiVersion": "authorization.k8s.io/v1",
                                "kind": "SubjectAccessReview",
                                "spec": {
                                    "user": user,
                                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{daemon_ns}"), "system:authenticated"],
                                    "resourceAttributes": attributes,
                                },
                            })),
                        )
                        .await?;
                    let allowed = review["status"]["allowed"].as_bool() == Some(true);
                    let should = allows(&want, group, resource, verb, name);
                    checked += 1;
                    if allowed != should {
                        wrong.push(format!(
                            "{user} in {namespace}: {verb} {group}/{resource} {}: the server says {}, src/rbac.rs says {}",
                            name.unwrap_or("(any name)"),
                            if allowed { "allowed" } else { "denied" },
                            if should { "allowed" } else { "denied" },
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} requests authorized differently:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The configuration watch stays name-restricted only because it sends a
    // field selector: check the server maps it to the resource name.
    let daemon_ns = &daemon.namespace;
    let token = cluster
        .service_account_token(daemon_ns, "image-import-scheduler")
        .await?;
    let base = format!("/api/v1/namespaces/{daemon_ns}/configmaps");
    let by_name = format!("fieldSelector=metadata.name%3D{}", settings.configmap);
    for (path, want) in [
        (format!("{base}?{by_name}"), 200),
        (format!("{base}?{by_name}&watch=true&timeoutSeconds=1"), 200),
        (format!("{base}/{}", settings.configmap), 200),
        (base.clone(), 403),
        (
            format!("{base}?fieldSelector=metadata.name%3Dsomething-else"),
            403,
        ),
    ] {
        let (status, body) = cluster
            .shim_request(Some(&token), "GET", &path, None, None)
            .await?;
        assert_eq!(status, want, "GET {path} as the daemon: {body}");
    }
    Ok(())
}

/// The operator and freezer Roles, applied to the test cluster and bound to
/// two people, as the server's RBAC authorizer evaluates them: the operator
/// may read and import but not freeze; the freezer (bound to both Roles)
/// may also write the status ConfigMap and record who froze. Every verb on
/// every resource a person touches, for each object name. Both may ask who
/// they are (SelfSubjectReview) without any Role.
#[tokio::test]
async fn test_cluster_authorizes_exactly_the_operator_and_freezer_calls() -> Result<()> {
    let cluster = test_cluster::TestCluster::shared().await;
    let ns = cluster.create_namespace("people-rbac").await?;
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    for component in ["operator-role", "freezer-role"] {
        let out = tokio::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path())
            .args(["apply", "-n", &ns, "-f"])
            .arg(
                manifests()
                    .join("components")
                    .join(component)
                    .join("role.yaml"),
            )
            .output()
            .await?;
        assert!(
            out.status.success(),
            "{component}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bindings = [
        ("operator-olga", &["image-import-scheduler-operator"][..]),
        (
            "freezer-fred",
            &[
                "image-import-scheduler-operator",
                "image-import-scheduler-freezer",
            ][..],
        ),
    ];
    for (user, roles) in bindings {
        for role in roles {
            cluster
                .admin_request(
                    "POST",
                    &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
                    Some(serde_json::json!({
                        "metadata": {"name": format!("{user}-{role}")},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
                    })),
                )
                .await?;
        }
    }
    // One namespace standing for the daemon's and a managed one: the
    // operator Role's rules are split by scope only in src/rbac.rs.
    let mut operator = rbac::required(OPERATOR_API_CALLS, Scope::ManagedNamespace);
    operator.extend(rbac::required(OPERATOR_API_CALLS, Scope::DaemonNamespace));
    let mut freezer = operator.clone();
    freezer.extend(rbac::required(FREEZER_API_CALLS, Scope::DaemonNamespace));
    let resources: BTreeSet<(&str, &str)> = OPERATOR_API_CALLS
        .iter()
        .chain(FREEZER_API_CALLS)
        .map(|c| (c.group, c.resource))
        .chain([("", "secrets")])
        .collect();
    let verbs = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let names = [
        None,
        Some(rbac::CONFIG_CONFIGMAP),
        Some(rbac::STATUS_CONFIGMAP),
        Some("something-else"),
    ];
    let review = |user: &str, attributes: serde_json::Value| {
        let body = serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:authenticated"],
                "resourceAttributes": attributes,
            },
        });
        async move {
            let r = cluster
                .admin_request(
                    "POST",
                    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                    Some(body),
                )
                .await?;
            anyhow::Ok(r["status"]["allowed"].as_bool() == Some(true))
        }
    };
    // SelfSubjectReview is served from Kubernetes 1.28 on; older servers
    // (and the command line then) fall back to the kubeconfig's user name.
    let authentication = cluster
        .admin_request("GET", "/apis/authentication.k8s.io/v1", None)
        .await?;
    let serves_self_review = authentication["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["name"] == "selfsubjectreviews");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (user, want) in [("operator-olga", &operator), ("freezer-fred", &freezer)] {
        if serves_self_review {
            let who = serde_json::json!({
                "verb": "create", "group": "authentication.k8s.io", "resource": "selfsubjectreviews",
            });
            assert!(
                review(user, who).await?,
                "{user} may ask the API server who they are"
            );
        }
        for &(group, resource) in &resources {
            for verb in verbs {
                for name in names {
                    let mut attributes = serde_json::json!({
                        "namespace": ns, "verb": verb, "group": group, "resource": resource,
                    });
                    if let Some(name) = name {
                        attributes["name"] = name.into();
                    }
                    let allowed = review(user, attributes).await?;
                    let should = allows(want, group, resource, verb, name);
                    checked += 1;
                    if allowed != should {
                        wrong.push(format!(
                            "{user}: {verb} {group}/{resource} {}: the server says {}, src/rbac.rs says {}",
                            name.unwrap_or("(any name)"),
                            if allowed { "allowed" } else { "denied" },
                            if should { "allowed" } else { "denied" },
                        ));
                    }
                }
            }
        }
    }
    assert!(
        allows(
            &freezer,
            "",
            "configmaps",
            "patch",
            Some(rbac::STATUS_CONFIGMAP)
        ) && !allows(
            &operator,
            "",
            "configmaps",
            "patch",
            Some(rbac::STATUS_CONFIGMAP)
        ),
        "only the freezer writes the status ConfigMap"
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} requests authorized differently:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    Ok(())
}
