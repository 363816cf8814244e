//! The gates of a windowed environment and their validation:
//!
//! ```yaml
//! gates:
//!   soak: {environment: stg, for: 24h}
//!   alerts:
//!     prometheusUrl: https://thanos-querier.openshift-monitoring.svc:9091
//!     match: 'namespace="packit-prod",severity=~"critical|warning"'
//!     bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
//!   approval: {required: true}
//! ```
//!
//! What each gate decides is in [`crate::gates`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::{Environment, FieldError, Mode, OnMissedWindow};
use crate::duration::parse_duration;
use crate::gates::matchers::{parse_matchers, Matcher};

/// The gates of one environment; all optional, all combinable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gates {
    pub soak: Option<SoakGate>,
    pub alerts: Option<AlertsGate>,
    /// `approval.required`.
    pub approval: bool,
}

impl Gates {
    /// Whether no gate is configured.
    pub fn is_empty(&self) -> bool {
        self.soak.is_none() && self.alerts.is_none() && !self.approval
    }
}

/// `soak`: the image ran in `environment` for at least `duration` first.
#[derive(Clone, Debug, PartialEq)]
pub struct SoakGate {
    pub environment: String,
    /// `for`.
    pub duration: Duration,
    /// The namespace and tag of `environment`, filled in by [`check`] so
    /// the environment's loop needs no other environment's configuration.
    pub namespace: String,
    pub tag: String,
}

/// `alerts`: nothing imports while a matching alert fires.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsGate {
    pub prometheus_url: String,
    /// `match`, parsed.
    pub matchers: Vec<Matcher>,
    pub bearer_token_file: Option<PathBuf>,
}

/// The keys of an environment this module reads.
pub const KEYS: &[&str] = &["gates"];
const GATE_KEYS: &[&str] = &["soak", "alerts", "approval"];
const SOAK_KEYS: &[&str] = &["environment", "for"];
const ALERTS_KEYS: &[&str] = &["prometheusUrl", "match", "bearerTokenFile"];
const APPROVAL_KEYS: &[&str] = &["required"];

fn error(path: String, message: impl Into<String>, hint: &str) -> FieldError {
    FieldError {
        path,
        message: message.into(),
        hint: Some(hint.to_owned()),
    }
}

/// The mapping at `path` with its unknown keys reported.
fn mapping<'v>(
    path: &str,
    value: &'v Value,
    known: &[&str],
    example: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'v serde_yaml_ng::Mapping> {
    let Value::Mapping(map) = value else {
        errors.push(error(path.to_owned(), "must be a mapping", example));
        return None;
    };
    for key in map.keys() {
        let name = key.as_str().unwrap_or("?");
        if !known.contains(&name) {
            errors.push(error(
                format!("{path}.{name}"),
                format!("unknown key `{name}`"),
                &format!("known keys: {}", known.join(", ")),
            ));
        }
    }
    Some(map)
}

fn text<'v>(
    path: String,
    value: Option<&'v Value>,
    hint: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'v str> {
    match value {
        None => {
            errors.push(error(path, "missing", hint));
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.as_str()),
        Some(Value::String(_)) => {
            errors.push(error(path, "empty", hint));
            None
        }
        Some(_) => {
            errors.push(error(path, "must be a string", hint));
            None
        }
    }
}

/// Reads `gates` of the environment at `path` (`environments.prod`).
pub fn parse(path: &str, value: &Value) -> Result<Gates, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut gates = Gates::default();
    let path = format!("{path}.gates");
    if let Some(map) = mapping(
        &path,
        value,
        GATE_KEYS,
        "write e.g. gates: {soak: {environment: stg, for: 24h}, approval: {required: true}}",
        &mut errors,
    ) {
        if let Some(v) = map.get("soak") {
            gates.soak = soak(&format!("{path}.soak"), v, &mut errors);
        }
        if let Some(v) = map.get("alerts") {
            gates.alerts = alerts(&format!("{path}.alerts"), v, &mut errors);
        }
        if let Some(v) = map.get("approval") {
            gates.approval = approval(&format!("{path}.approval"), v, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(gates)
    } else {
        Err(errors)
    }
}

fn soak(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<SoakGate> {
    let map = mapping(
        path,
        value,
        SOAK_KEYS,
        "write e.g. soak: {environment: stg, for: 24h}",
        errors,
    )?;
    let environment = text(
        format!("{path}.environment"),
        map.get("environment"),
        "name the environment the image must run in first, e.g. environment: stg",
        errors,
    );
    let for_hint = "write how long the image must have run there, e.g. for: 24h";
    let duration = text(format!("{path}.for"), map.get("for"), for_hint, errors).and_then(|t| {
        match parse_duration(t) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                errors.push(error(
                    format!("{path}.for"),
                    "must be longer than zero",
                    for_hint,
                ));
                None
            }
            Err(e) => {
                errors.push(error(format!("{path}.for"), e.to_string(), for_hint));
                None
            }
        }
    });
    Some(SoakGate {
        environment: environment?.to_owned(),
        duration: duration?,
        namespace: String::new(),
        tag: String::new(),
    })
}

fn alerts(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<AlertsGate> {
    let map = mapping(
        path,
        value,
        ALERTS_KEYS,
        "write e.g. alerts: {prometheusUrl: http://prometheus:9090, match: 'namespace=\"packit-prod\"'}",
        errors,
    )?;
    let url_hint = "write the base URL of Prometheus' HTTP API, e.g. https://thanos-querier.openshift-monitoring.svc:9091";
    let url = text(
        format!("{path}.prometheusUrl"),
        map.get("prometheusUrl"),
        url_hint,
        errors,
    )
    .and_then(|u| match url_problem(u) {
        None => Some(u.trim_end_matches('/').to_owned()),
        Some(p) => {
            errors.push(error(format!("{path}.prometheusUrl"), p, url_hint));
            None
        }
    });
    let match_hint = "write Prometheus label matchers, e.g. match: 'namespace=\"packit-prod\",severity=~\"critical|warning\"'";
    let matchers = text(
        format!("{path}.match"),
        map.get("match"),
        match_hint,
        errors,
    )
    .and_then(|m| {
        parse_matchers(m)
            .map_err(|e| errors.push(error(format!("{path}.match"), e, match_hint)))
            .ok()
    });
    let token = match map.get("bearerTokenFile") {
        None => Some(None),
        Some(v) => text(
            format!("{path}.bearerTokenFile"),
            Some(v),
            "write the path of a file holding the token, e.g. /var/run/secrets/kubernetes.io/serviceaccount/token, or remove the key",
            errors,
        )
        .map(|p| Some(PathBuf::from(p))),
    };
    Some(AlertsGate {
        prometheus_url: url?,
        matchers: matchers?,
        bearer_token_file: token?,
    })
}

/// What is wrong with `url` as `prometheusUrl`, if anything.
fn url_problem(url: &str) -> Option<String> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Some(format!("`{url}` is not a URL"));
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Some(format!("`{url}` is not an http or https URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some(format!("`{url}` has no host"));
    }
    if uri.query().is_some() {
        return Some(format!("`{url}` has a query; give the base URL only"));
    }
    None
}

fn approval(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> bool {
    let Some(map) = mapping(
        path,
        value,
        APPROVAL_KEYS,
        "write approval: {required: true}",
        errors,
    ) else {
        return false;
    };
    match map.get("required") {
        Some(Value::Bool(b)) => *b,
        None => {
            errors.push(error(
                format!("{path}.required"),
                "missing",
                "write approval: {required: true}, or remove `approval`",
            ));
            false
        }
        Some(_) => {
            errors.push(error(
                format!("{path}.required"),
                "expected true or false",
                "write approval: {required: true}",
            ));
            false
        }
    }
}

/// Checks that need the whole configuration: `soak.environment` names
/// another environment on the same cluster, and a gated environment does
/// not import outside its windows (`onMissedWindow: importNow`). Fills in
/// the soak environment's namespace and tag.
pub fn check(environments: &mut BTreeMap<String, Environment>) -> Vec<FieldError> {
    let errors = problems(environments);
    let places: BTreeMap<String, (String, String)> = environments
        .iter()
        .map(|(n, e)| (n.clone(), (e.namespace.clone(), e.tag.clone())))
        .collect();
    for env in environments.values_mut() {
        if let Some(soak) = env.gates.soak.as_mut() {
            if let Some((namespace, tag)) = places.get(&soak.environment) {
                soak.namespace = namespace.clone();
                soak.tag = tag.clone();
            }
        }
    }
    errors
}

fn problems(environments: &BTreeMap<String, Environment>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (name, env) in environments {
        let path = format!("environments.{name}.gates");
        if !env.gates.is_empty()
            && matches!(
                env.mode,
                Mode::Windowed {
                    on_missed_window: OnMissedWindow::ImportNow,
                    ..
                }
            )
        {
            errors.push(error(
                path.clone(),
                "gates cannot combine with `onMissedWindow: importNow`: its catch-up imports outside a window, where no gate is checked",
                "use onMissedWindow: skip (a window that closed gated waits for the next one), or remove `gates`",
            ));
        }
        let Some(soak) = &env.gates.soak else {
            continue;
        };
        let field = format!("{path}.soak.environment");
        let others: Vec<&str> = environments
            .keys()
            .map(String::as_str)
            .filter(|n| n != name)
            .collect();
        let hint = if others.is_empty() {
            "define the environment the image runs in first (e.g. stg), then name it here"
                .to_owned()
        } else {
            format!("name one of: {}", others.join(", "))
        };
        if soak.environment == *name {
            errors.push(error(field, "an environment cannot soak in itself", &hint));
            continue;
        }
        let Some(other) = environments.get(&soak.environment) else {
            errors.push(error(
                field,
                format!(
                    "`{}` is not an environment of this configuration",
                    soak.environment
                ),
                &hint,
            ));
            continue;
        };
        if other.cluster != env.cluster {
            errors.push(error(
                field,
                format!(
                    "`{}` lives on another cluster than `{name}`; the soak gate reads it with `{name}`'s access",
                    soak.environment
                ),
                "soak in an environment of the same cluster",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn config(prod_extra: &str) -> Result<super::super::Config, Vec<String>> {
        let text = format!(
            "environments:\n  stg:\n    namespace: packit-stg\n    mode: immediate\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n{prod_extra}"
        );
        super::super::parse(&text, now())
            .map(|l| l.config)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_documented_gates_are_read() {
        let c = config(
            "    gates:\n      soak: {environment: stg, for: 24h}\n      alerts:\n        prometheusUrl: http://prometheus-k8s.openshift-monitoring.svc:9091/\n        match: 'namespace=\"packit-prod\",severity=~\"critical|warning\"'\n        bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n      approval:\n        required: true\n",
        )
        .unwrap();
        let g = &c.environments["prod"].gates;
        assert_eq!(
            g.soak,
            Some(SoakGate {
                environment: "stg".into(),
                duration: Duration::from_secs(86400),
                namespace: "packit-stg".into(),
                tag: "stg".into(),
            })
        );
        let a = g.alerts.as_ref().unwrap();
        assert_eq!(
            a.prometheus_url,
            "http://prometheus-k8s.openshift-monitoring.svc:9091"
        );
        assert_eq!(a.matchers.len(), 2);
        assert_eq!(a.matchers[1].to_string(), "severity=~\"critical|warning\"");
        assert_eq!(
            a.bearer_token_file.as_deref(),
            Some(std::path::Path::new(
                "/var/run/secrets/kubernetes.io/serviceaccount/token"
            ))
        );
        assert!(g.approval);
        assert!(!g.is_empty());
        assert!(c.environments["stg"].gates.is_empty());
    }

    #[test]
    fn each_gate_alone_and_approval_not_required() {
        let c = config("    gates:\n      approval: {required: false}\n").unwrap();
        assert!(c.environments["prod"].gates.is_empty());
        let c =
            config("    gates: {alerts: {prometheusUrl: 'https://p:9091', match: 'a=\"b\"'}}\n")
                .unwrap();
        let g = &c.environments["prod"].gates;
        assert!(g.alerts.as_ref().unwrap().bearer_token_file.is_none());
        assert!(g.soak.is_none() && !g.approval && !g.is_empty());
        let c = config("    gates: {soak: {environment: stg, for: 1s}}\n").unwrap();
        assert!(!c.environments["prod"].gates.is_empty());
        let c = config("    gates: {approval: {required: true}}\n").unwrap();
        assert!(!c.environments["prod"].gates.is_empty());
        assert!(Gates::default().is_empty());
    }

    #[test]
    fn every_problem_names_its_field_and_what_to_write() {
        let cases: &[(&str, &[&str])] = &[
            ("    gates: yes\n", &["environments.prod.gates: must be a mapping (write e.g. gates:"]),
            ("    gates: {soke: {}}\n", &["environments.prod.gates.soke: unknown key `soke` (known keys: soak, alerts, approval)"]),
            ("    gates: {soak: {environment: stg}}\n", &["environments.prod.gates.soak.for: missing (write how long"]),
            ("    gates: {soak: {for: 1h}}\n", &["environments.prod.gates.soak.environment: missing (name the environment"]),
            ("    gates: {soak: {environment: stg, for: 0s}}\n", &["environments.prod.gates.soak.for: must be longer than zero"]),
            ("    gates: {soak: {environment: stg, for: a day}}\n", &["environments.prod.gates.soak.for: "]),
            ("    gates: {soak: {environment: stg, for: 5}}\n", &["environments.prod.gates.soak.for: must be a string"]),
            ("    gates: {soak: {environment: '', for: 1h}}\n", &["environments.prod.gates.soak.environment: empty"]),
            ("    gates: {soak: {environment: stg, for: 1h, x: 1}}\n", &["environments.prod.gates.soak.x: unknown key `x` (known keys: environment, for)"]),
            ("    gates: {soak: 24h}\n", &["environments.prod.gates.soak: must be a mapping"]),
            ("    gates: {soak: {environment: qa, for: 1h}}\n", &["environments.prod.gates.soak.environment: `qa` is not an environment of this configuration (name one of: stg)"]),
            ("    gates: {soak: {environment: prod, for: 1h}}\n", &["environments.prod.gates.soak.environment: an environment cannot soak in itself"]),
            ("    gates: {alerts: {match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: missing"]),
            ("    gates: {alerts: {prometheusUrl: 'ftp://p', match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: `ftp://p` is not an http or https URL"]),
            ("    gates: {alerts: {prometheusUrl: 'prometheus:9090', match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: `prometheus:9090` is not"]),
            ("    gates: {alerts: {prometheusUrl: 'http://p:9090/?x=1', match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: `http://p:9090/?x=1` has a query"]),
            ("    gates: {alerts: {prometheusUrl: 'http://a b', match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: `http://a b` is not a URL"]),
            ("    gates: {alerts: {prometheusUrl: 'http:///x', match: 'a=\"b\"'}}\n", &["environments.prod.gates.alerts.prometheusUrl: "]),
            ("    gates: {alerts: {prometheusUrl: 'http://p'}}\n", &["environments.prod.gates.alerts.match: missing (write Prometheus label matchers"]),
            ("    gates: {alerts: {prometheusUrl: 'http://p', match: 'severity=critical'}}\n", &["environments.prod.gates.alerts.match: the value of `severity` must be double-quoted"]),
            ("    gates: {alerts: {prometheusUrl: 'http://p', match: 'a=\"b\"', bearerTokenFile: 3}}\n", &["environments.prod.gates.alerts.bearerTokenFile: must be a string"]),
            ("    gates: {alerts: {prometheusUrl: 'http://p', match: 'a=\"b\"', token: x}}\n", &["environments.prod.gates.alerts.token: unknown key"]),
            ("    gates: {alerts: []}\n", &["environments.prod.gates.alerts: must be a mapping"]),
            ("    gates: {approval: {required: yes please}}\n", &["environments.prod.gates.approval.required: expected true or false"]),
            ("    gates: {approval: {}}\n", &["environments.prod.gates.approval.required: missing"]),
            ("    gates: {approval: true}\n", &["environments.prod.gates.approval: must be a mapping (write approval: {required: true})"]),
            ("    gates: {approval: {required: true, by: ops}}\n", &["environments.prod.gates.approval.by: unknown key"]),
            (
                "    onMissedWindow: importNow\n    gates: {approval: {required: true}}\n",
                &["environments.prod.gates: gates cannot combine with `onMissedWindow: importNow`"],
            ),
            (
                "    gates: {soak: {environment: stg}, approval: {required: 1}}\n",
                &["environments.prod.gates.soak.for: missing", "environments.prod.gates.approval.required: expected true or false"],
            ),
        ];
        for (extra, want) in cases {
            let errors = config(extra).unwrap_err();
            assert_eq!(errors.len(), want.len(), "{extra:?}: {errors:?}");
            for (e, w) in errors.iter().zip(want.iter()) {
                assert!(e.starts_with(w), "{extra:?}: {e} should start with {w}");
            }
        }
    }

    #[test]
    fn gates_on_an_immediate_environment_are_refused_with_why() {
        let text = "environments:\n  stg:\n    namespace: s\n    mode: immediate\n    gates: {approval: {required: true}}\n";
        let errors = super::super::parse(text, now()).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "environments.stg.gates");
        assert!(
            errors.0[0]
                .to_string()
                .contains("an immediate environment imports as soon as a source moves"),
            "{errors}"
        );
    }

    #[test]
    fn soak_needs_the_same_cluster() {
        let text = "environments:\n  stg:\n    namespace: packit-stg\n    mode: immediate\n    cluster: {kubeconfigSecret: {name: stg-cluster}}\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n    gates: {soak: {environment: stg, for: 1h}}\n";
        let errors = super::super::parse(text, now()).unwrap_err();
        let joined = errors.to_string();
        assert!(
            joined.contains("environments.prod.gates.soak.environment: `stg` lives on another cluster than `prod`"),
            "{joined}"
        );
    }

    #[test]
    fn an_environment_alone_is_told_to_define_one() {
        let text = "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n    gates: {soak: {environment: stg, for: 1h}}\n";
        let errors = super::super::parse(text, now()).unwrap_err().to_string();
        assert!(
            errors.contains("(define the environment the image runs in first"),
            "{errors}"
        );
    }
}
