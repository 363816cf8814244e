//! The `notifications` block of the configuration, at the top level (every
//! environment, and the daemon's own notices) and per environment:
//!
//! ```yaml
//! notifications:
//!   slack:                      # any Slack-compatible incoming webhook
//!     urlFromEnv: IMPORT_SCHEDULER_SLACK_URL
//!     events: [windowSummary, windowMissed, importFailed, rollback, freeze, configRejected]
//!   sentry:
//!     dsnFromEnv: IMPORT_SCHEDULER_SENTRY_DSN
//!     events: [windowMissed, importFailed, rollback, configRejected]
//! ```
//!
//! The configuration names environment variables, never the secrets: the
//! ConfigMap is readable by more people than the Secret. An environment's
//! `slack` or `sentry` replaces the top-level one for that environment.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::FieldError;

/// The kinds of notice, as operators name them under `events:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    WindowSummary,
    WindowMissed,
    ImportFailed,
    Rollback,
    Freeze,
    ConfigRejected,
}

impl Kind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Kind; 6] = [
        Kind::WindowSummary,
        Kind::WindowMissed,
        Kind::ImportFailed,
        Kind::Rollback,
        Kind::Freeze,
        Kind::ConfigRejected,
    ];

    /// The name used in the configuration and as the `kind` tag in Sentry.
    pub fn name(self) -> &'static str {
        match self {
            Kind::WindowSummary => "windowSummary",
            Kind::WindowMissed => "windowMissed",
            Kind::ImportFailed => "importFailed",
            Kind::Rollback => "rollback",
            Kind::Freeze => "freeze",
            Kind::ConfigRejected => "configRejected",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Errors are what an error tracker is for; summaries and freezes are
    /// news for the team's channel only.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Kind::WindowMissed | Kind::ImportFailed | Kind::Rollback | Kind::ConfigRejected
        )
    }
}

/// Receivers and what each receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notifications {
    pub slack: Option<Receiver>,
    pub sentry: Option<Receiver>,
}

/// One receiver: the environment variable with its secret (URL or DSN) and
/// the kinds of notice it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub secret_env: String,
    pub events: BTreeSet<Kind>,
}

impl Notifications {
    /// What an environment uses: its own receivers, else the top-level ones.
    pub fn overlay(global: &Notifications, env: &Notifications) -> Notifications {
        Notifications {
            slack: env.slack.clone().or_else(|| global.slack.clone()),
            sentry: env.sentry.clone().or_else(|| global.sentry.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slack.is_none() && self.sentry.is_none()
    }
}

const KEYS: &[&str] = &["slack", "sentry"];
const SLACK_KEYS: &[&str] = &["urlFromEnv", "events"];
const SENTRY_KEYS: &[&str] = &["dsnFromEnv", "events"];

/// Validates a `notifications` block at `path`, adding every problem to `errors`.
pub fn parse(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<Notifications> {
    let before = errors.len();
    let map = mapping(path, value, KEYS, errors)?;
    let slack = map.get("slack").and_then(|v| {
        receiver(
            &format!("{path}.slack"),
            v,
            ("urlFromEnv", SLACK_KEYS),
            Kind::ALL.into_iter().collect(),
            false,
            errors,
        )
    });
    let sentry = map.get("sentry").and_then(|v| {
        receiver(
            &format!("{path}.sentry"),
            v,
            ("dsnFromEnv", SENTRY_KEYS),
            Kind::ALL.into_iter().filter(|k| k.is_error()).collect(),
            true,
            errors,
        )
    });
    (errors.len() == before).then_some(Notifications { slack, sentry })
}

fn receiver(
    path: &str,
    value: &Value,
    (secret_key, known): (&str, &[&str]),
    default_events: BTreeSet<Kind>,
    errors_only: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Receiver> {
    let map = mapping(path, value, known, errors)?;
    let field = format!("{path}.{secret_key}");
    let secret_env = match map.get(secret_key) {
        None => {
            errors.push(error(
                &field,
                "missing",
                Some(format!(
                    "name the environment variable that holds it, filled from a Secret, e.g. `{secret_key}: {}`",
                    if errors_only { "IMPORT_SCHEDULER_SENTRY_DSN" } else { "IMPORT_SCHEDULER_SLACK_URL" }
                )),
            ));
            None
        }
        Some(Value::String(name)) if is_env_name(name) => Some(name.clone()),
        Some(Value::String(name)) => {
            errors.push(error(
                &field,
                format!("`{name}` is not an environment variable name"),
                Some("use letters, digits and '_', not starting with a digit; the value itself belongs in a Secret, not here".into()),
            ));
            None
        }
        Some(other) => {
            errors.push(error(
                &field,
                format!(
                    "expected the name of an environment variable, found {}",
                    kind(other)
                ),
                None,
            ));
            None
        }
    };
    let events = match map.get("events") {
        None => Some(default_events),
        Some(v) => events(&format!("{path}.events"), v, errors_only, errors),
    };
    Some(Receiver {
        secret_env: secret_env?,
        events: events?,
    })
}

fn events(
    path: &str,
    value: &Value,
    errors_only: bool,
    errors: &mut Vec<FieldError>,
) -> Option<BTreeSet<Kind>> {
    let names = || {
        Kind::ALL
            .into_iter()
            .filter(|k| !errors_only || k.is_error())
            .map(Kind::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Value::Sequence(items) = value else {
        errors.push(error(
            path,
            format!("expected a list, found {}", kind(value)),
            Some(format!("e.g. [{}]", names())),
        ));
        return None;
    };
    let before = errors.len();
    let mut out = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match item.as_str().map(|s| (s, Kind::from_name(s))) {
            Some((_, Some(k))) if errors_only && !k.is_error() => errors.push(error(
                &at,
                format!(
                    "`{}` is not an error; Sentry receives errors only",
                    k.name()
                ),
                Some(format!("expected one of: {}", names())),
            )),
            Some((_, Some(k))) => {
                out.insert(k);
            }
            Some((s, None)) => errors.push(error(
                &at,
                format!("unknown event `{s}`"),
                Some(format!("expected one of: {}", names())),
            )),
            None => errors.push(error(
                &at,
                format!("expected an event name, found {}", kind(item)),
                Some(format!("expected one of: {}", names())),
            )),
        }
    }
    (errors.len() == before).then_some(out)
}

fn mapping<'v>(
    path: &str,
    value: &'v Value,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, &'v Value>> {
    let Value::Mapping(map) = value else {
        errors.push(error(
            path,
            format!("expected a mapping, found {}", kind(value)),
            Some(format!("keys: {}", known.join(", "))),
        ));
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        match k.as_str() {
            Some(key) if known.contains(&key) => {
                out.insert(key.to_string(), v);
            }
            Some(key) => errors.push(error(
                &format!("{path}.{key}"),
                format!("unknown key `{key}`"),
                Some(format!("known keys: {}", known.join(", "))),
            )),
            None => errors.push(error(
                path,
                format!("keys must be strings, found {}", kind(k)),
                None,
            )),
        }
    }
    // Unknown keys are reported and the known ones still checked, so one
    // run shows every problem.
    Some(out)
}

fn error(path: &str, message: impl Into<String>, hint: Option<String>) -> FieldError {
    FieldError {
        path: path.to_string(),
        message: message.into(),
        hint,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A POSIX-style variable name, as Kubernetes' `env[].name` takes it.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 253
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> Result<Notifications, Vec<String>> {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        match parse("notifications", &value, &mut errors) {
            Some(n) if errors.is_empty() => Ok(n),
            _ => Err(errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn receivers_default_to_every_kind_for_chat_and_errors_for_sentry() {
        let n = run("{slack: {urlFromEnv: SLACK_URL}, sentry: {dsnFromEnv: SENTRY_DSN}}").unwrap();
        let slack = n.slack.unwrap();
        assert_eq!(slack.secret_env, "SLACK_URL");
        assert_eq!(slack.events, Kind::ALL.into_iter().collect());
        let sentry = n.sentry.unwrap();
        assert_eq!(sentry.secret_env, "SENTRY_DSN");
        assert_eq!(
            sentry.events,
            [
                Kind::WindowMissed,
                Kind::ImportFailed,
                Kind::Rollback,
                Kind::ConfigRejected
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(run("{}").unwrap(), Notifications::default());
    }

    #[test]
    fn events_choose_the_kinds_and_an_empty_list_turns_a_receiver_off() {
        let n = run("{slack: {urlFromEnv: S, events: [freeze, windowSummary]}, sentry: {dsnFromEnv: D, events: []}}")
            .unwrap();
        assert_eq!(
            n.slack.unwrap().events,
            [Kind::WindowSummary, Kind::Freeze].into_iter().collect()
        );
        assert!(n.sentry.unwrap().events.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errors = run(
            "{slak: {}, slack: {url: https://hooks.example/x, urlFromEnv: S}, sentry: {dsnFromEnv: 'https://k@sentry.example/1', events: [windowSummary]}}",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "notifications.slak: unknown key `slak` (known keys: slack, sentry)",
                "notifications.slack.url: unknown key `url` (known keys: urlFromEnv, events)",
                "notifications.sentry.dsnFromEnv: `https://k@sentry.example/1` is not an environment variable name (use letters, digits and '_', not starting with a digit; the value itself belongs in a Secret, not here)",
                "notifications.sentry.events[0]: `windowSummary` is not an error; Sentry receives errors only (expected one of: windowMissed, importFailed, rollback, configRejected)",
            ]
        );
        let errors = run("{slack: {events: [windowsummary, 3]}}").unwrap_err();
        assert_eq!(
            errors,
            [
                "notifications.slack.urlFromEnv: missing (name the environment variable that holds it, filled from a Secret, e.g. `urlFromEnv: IMPORT_SCHEDULER_SLACK_URL`)",
                "notifications.slack.events[0]: unknown event `windowsummary` (expected one of: windowSummary, windowMissed, importFailed, rollback, freeze, configRejected)",
                "notifications.slack.events[1]: expected an event name, found a number (expected one of: windowSummary, windowMissed, importFailed, rollback, freeze, configRejected)",
            ]
        );
        assert_eq!(
            run("[]").unwrap_err(),
            ["notifications: expected a mapping, found a list (keys: slack, sentry)"]
        );
        assert_eq!(
            run("{slack: {urlFromEnv: 5}, sentry: {dsnFromEnv: D, events: freeze}}").unwrap_err(),
            [
                "notifications.slack.urlFromEnv: expected the name of an environment variable, found a number",
                "notifications.sentry.events: expected a list, found a string (e.g. [windowMissed, importFailed, rollback, configRejected])",
            ]
        );
    }

    #[test]
    fn an_environment_replaces_top_level_receivers_one_by_one() {
        let global = run("{slack: {urlFromEnv: TEAM}, sentry: {dsnFromEnv: DSN}}").unwrap();
        let prod = run("{slack: {urlFromEnv: PROD_CHANNEL, events: [windowSummary]}}").unwrap();
        let merged = Notifications::overlay(&global, &prod);
        assert_eq!(merged.slack.unwrap().secret_env, "PROD_CHANNEL");
        assert_eq!(merged.sentry.unwrap().secret_env, "DSN");
        assert_eq!(
            Notifications::overlay(&global, &Notifications::default()),
            global
        );
        assert!(Notifications::default().is_empty());
        assert!(!global.is_empty());
        assert!(!prod.is_empty(), "a chat receiver alone is a receiver");
    }

    #[test]
    fn environment_variable_names() {
        for ok in ["A", "_X", "SLACK_URL_2", "lower_ok"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "2X", "A-B", "A B", "https://x", "A.B"] {
            assert!(!is_env_name(bad), "{bad}");
        }
        assert!(!is_env_name(&"A".repeat(254)));
        assert!(is_env_name(&"A".repeat(253)));
    }
}
