//! The rollout-check settings of one environment and their validation:
//!
//! ```yaml
//! verify: {timeout: 10m}        # how long a rollout may take; default 10m
//! onFailedRollout: report       # report (default) | pinBack
//! ```

use std::time::Duration;

use serde_yaml_ng::Value;

use super::FieldError;
use crate::duration::{format_duration, parse_duration};

/// `verify.timeout` when not set.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(600);
/// Shortest `verify.timeout`: a rollout is seen through polls seconds apart.
pub const MIN_VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `verify.timeout`: a check that spans days is no check.
pub const MAX_VERIFY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What happens after a rollout failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailedRollout {
    /// Log, Event and metric; the tag stays on the new image.
    #[default]
    Report,
    /// Also pin the tag back to the image it had before the import.
    PinBack,
}

impl OnFailedRollout {
    pub fn name(self) -> &'static str {
        match self {
            OnFailedRollout::Report => "report",
            OnFailedRollout::PinBack => "pinBack",
        }
    }
}

/// An environment's rollout checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolloutPolicy {
    /// `verify.timeout`.
    pub verify_timeout: Duration,
    /// `onFailedRollout`.
    pub on_failed: OnFailedRollout,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
            on_failed: OnFailedRollout::Report,
        }
    }
}

/// The keys of an environment this module reads.
pub const KEYS: &[&str] = &["verify", "onFailedRollout"];
const VERIFY_KEYS: &[&str] = &["timeout"];

fn error(path: String, message: String, hint: &str) -> FieldError {
    FieldError {
        path,
        message,
        hint: Some(hint.to_owned()),
    }
}

/// Reads `verify` and `onFailedRollout` of the environment at `path`
/// (`environments.prod`); every problem is returned, each with its field.
pub fn parse_policy(
    path: &str,
    verify: Option<&Value>,
    on_failed: Option<&Value>,
) -> Result<RolloutPolicy, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut policy = RolloutPolicy::default();
    match verify {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for key in map.keys() {
                let name = key.as_str().unwrap_or_default();
                if !VERIFY_KEYS.contains(&name) {
                    errors.push(error(
                        format!("{path}.verify.{name}"),
                        format!("unknown key `{name}`"),
                        "known keys: timeout",
                    ));
                }
            }
            if let Some(v) = map.get("timeout") {
                match timeout(&format!("{path}.verify.timeout"), v) {
                    Ok(d) => policy.verify_timeout = d,
                    Err(e) => errors.push(e),
                }
            }
        }
        Some(_) => errors.push(error(
            format!("{path}.verify"),
            "must be a mapping".to_owned(),
            "write e.g. verify: {timeout: 10m}",
        )),
    }
    match on_failed {
        None => {}
        Some(v) => match v.as_str() {
            Some("report") => policy.on_failed = OnFailedRollout::Report,
            Some("pinBack") => policy.on_failed = OnFailedRollout::PinBack,
            other => errors.push(error(
                format!("{path}.onFailedRollout"),
                match other {
                    Some(s) => format!("unknown value `{s}`"),
                    None => "must be a string".to_owned(),
                },
                "expected `report` (log, Event, metric) or `pinBack` (also pin the tag to the image it had before the import)",
            )),
        },
    }
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

fn timeout(path: &str, value: &Value) -> Result<Duration, FieldError> {
    let hint = "write a duration between 5s and 24h, e.g. 10m";
    let Some(text) = value.as_str() else {
        return Err(error(
            path.to_owned(),
            "must be a duration string".to_owned(),
            hint,
        ));
    };
    let d = parse_duration(text).map_err(|e| error(path.to_owned(), e.to_string(), hint))?;
    if d < MIN_VERIFY_TIMEOUT || d > MAX_VERIFY_TIMEOUT {
        return Err(error(
            path.to_owned(),
            format!(
                "{} is outside {} to {}",
                format_duration(d),
                format_duration(MIN_VERIFY_TIMEOUT),
                format_duration(MAX_VERIFY_TIMEOUT)
            ),
            hint,
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    fn parse(verify: Option<&str>, on_failed: Option<&str>) -> Result<RolloutPolicy, Vec<String>> {
        let v = verify.map(yaml);
        let o = on_failed.map(yaml);
        parse_policy("environments.prod", v.as_ref(), o.as_ref())
            .map_err(|es| es.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_report_after_ten_minutes() {
        assert_eq!(parse(None, None), Ok(RolloutPolicy::default()));
        assert_eq!(parse(Some("~"), None), Ok(RolloutPolicy::default()));
        assert_eq!(parse(Some("{}"), None), Ok(RolloutPolicy::default()));
        assert_eq!(
            RolloutPolicy::default().verify_timeout,
            Duration::from_secs(600)
        );
        assert_eq!(RolloutPolicy::default().on_failed, OnFailedRollout::Report);
        assert_eq!(OnFailedRollout::default(), OnFailedRollout::Report);
    }

    #[test]
    fn valid_settings_are_read() {
        for (verify, on_failed, timeout, action) in [
            ("{timeout: 5m}", "pinBack", 300, OnFailedRollout::PinBack),
            ("{timeout: 5s}", "report", 5, OnFailedRollout::Report),
            ("{timeout: 24h}", "report", 86400, OnFailedRollout::Report),
        ] {
            assert_eq!(
                parse(Some(verify), Some(on_failed)),
                Ok(RolloutPolicy {
                    verify_timeout: Duration::from_secs(timeout),
                    on_failed: action
                })
            );
        }
        assert_eq!(OnFailedRollout::PinBack.name(), "pinBack");
        assert_eq!(OnFailedRollout::Report.name(), "report");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let cases: &[(Option<&str>, Option<&str>, &[&str])] = &[
            (Some("{timeout: 4s}"), None, &["environments.prod.verify.timeout: 4s is outside 5s to 1d (write a duration between 5s and 24h, e.g. 10m)"]),
            (Some("{timeout: 25h}"), None, &["environments.prod.verify.timeout: 1d1h is outside 5s to 1d"]),
            (Some("{timeout: 10}"), None, &["environments.prod.verify.timeout: must be a duration string"]),
            (Some("{timeout: soon}"), None, &["environments.prod.verify.timeout: "]),
            (Some("{timout: 1m}"), None, &["environments.prod.verify.timout: unknown key `timout` (known keys: timeout)"]),
            (Some("10m"), None, &["environments.prod.verify: must be a mapping"]),
            (None, Some("rollback"), &["environments.prod.onFailedRollout: unknown value `rollback` (expected `report`"]),
            (None, Some("[pinBack]"), &["environments.prod.onFailedRollout: must be a string"]),
            (Some("{timeout: 1s, x: 1}"), Some("no"), &[
                "environments.prod.verify.x: unknown key",
                "environments.prod.verify.timeout: 1s is outside",
                "environments.prod.onFailedRollout: unknown value `no`",
            ]),
        ];
        for (verify, on_failed, want) in cases {
            let errors = parse(*verify, *on_failed).unwrap_err();
            assert_eq!(errors.len(), want.len(), "{errors:?}");
            for (e, w) in errors.iter().zip(want.iter()) {
                assert!(e.starts_with(w), "{e} should start with {w}");
            }
        }
    }

    #[test]
    fn an_environment_carries_its_policy_and_its_errors() {
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        let text = "environments:\n  stg:\n    namespace: s\n    mode: immediate\n    verify: {timeout: 2m}\n    onFailedRollout: pinBack\n  prod:\n    namespace: p\n    mode: immediate\n";
        let loaded = crate::config::parse(text, now).unwrap();
        assert_eq!(
            loaded.config.environments["stg"].rollout,
            RolloutPolicy {
                verify_timeout: Duration::from_secs(120),
                on_failed: OnFailedRollout::PinBack
            }
        );
        assert_eq!(
            loaded.config.environments["prod"].rollout,
            RolloutPolicy::default()
        );
        let bad = text.replace("pinBack", "undo");
        let errors = crate::config::parse(&bad, now).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "environments.stg.onFailedRollout");
    }
}
