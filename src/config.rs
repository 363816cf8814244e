//! Configuration: the ConfigMap's `config.yaml` (also readable from a file)
//! and the process-level settings that come from environment variables.
//!
//! Validation walks the YAML tree itself instead of stopping at serde's first
//! error, so one run reports every problem, each with its field path
//! (`environments.prod.schedule`) and what to write instead.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_yaml_ng::Value;

mod cluster;
pub use crate::field_error::FieldError;
pub mod gates;
pub mod notifications;
pub mod rollout;
mod settings;
mod validate;

pub use cluster::{ClusterRef, SecretKeyRef, DEFAULT_KUBECONFIG_KEY, LOCAL_CLUSTER};
pub use settings::{Settings, SettingsError, ENV_PREFIX};
use validate::Validator;

use crate::duration::{format_duration, parse_duration};
use crate::schedule::{parse_time_zone, CronExpr, Schedule};

/// Key of the configuration inside the ConfigMap.
pub const DEFAULT_CONFIG_KEY: &str = "config.yaml";
/// How far ahead validation looks for overlapping windows: a year covers both
/// daylight-saving transitions of every zone.
const OVERLAP_HORIZON_DAYS: i64 = 366;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_IMPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// 16 imports at once: a 60-stream window finishes more than 10 times sooner
/// than the CronJob it replaces (about 5 times at 4). That is 16 requests in
/// flight, far below an API server's default of 200 mutating ones, and at
/// most 16 manifest reads at once for a registry, once per window
/// (docs/benchmarks.md).
const DEFAULT_CONCURRENCY: usize = 16;
const MAX_CONCURRENCY: u64 = 64;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Environments by name, in name order.
    pub environments: BTreeMap<String, Environment>,
    /// Settings for every call to the image API.
    pub import: ImportSettings,
    /// Receivers of every environment's notices and of the daemon's own.
    pub notifications: notifications::Notifications,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImportSettings {
    /// Client-side timeout of one image API call.
    pub timeout: Duration,
    /// How many streams are imported at once.
    pub concurrency: usize,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_IMPORT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// One environment: a namespace whose ImageStream tags are imported on one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Environment {
    pub name: String,
    pub namespace: String,
    /// The ImageStream tag to import in every selected stream.
    pub tag: String,
    pub mode: Mode,
    /// How often sources are checked (in windowed mode: while a window is open).
    pub poll_interval: Duration,
    pub streams: StreamSelection,
    /// Streams never managed, whatever `streams` selects (`exclude`).
    pub exclude: Vec<String>,
    /// Prefixes of `from.name` a managed tag must start with (`sources`);
    /// empty means any source.
    pub sources: Vec<String>,
    pub paused: bool,
    /// The cluster the namespace lives on; `None`: the daemon's own.
    pub cluster: Option<ClusterRef>,
    /// Receivers that replace the top-level ones for this environment.
    pub notifications: notifications::Notifications,
    /// Rollout checks after an import (`verify`, `onFailedRollout`).
    pub rollout: rollout::RolloutPolicy,
    /// When no window opens (`freeze`; windowed mode only).
    pub freeze: crate::freeze::Freezes,
    /// What a window waits for before it imports a tag (`gates`; windowed
    /// mode only).
    pub gates: gates::Gates,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Import as soon as the source tag changes.
    Immediate,
    /// Import only inside the windows of `schedule`.
    Windowed {
        schedule: Schedule,
        on_missed_window: OnMissedWindow,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Immediate => "immediate",
            Mode::Windowed { .. } => "windowed",
        }
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        match self {
            Mode::Immediate => None,
            Mode::Windowed { schedule, .. } => Some(schedule),
        }
    }
}

/// What happens after a window in which some tag could not be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMissedWindow {
    /// Report it and wait for the next window.
    Skip,
    /// Report it and import at once, outside the window.
    ImportNow,
}

impl OnMissedWindow {
    pub fn name(self) -> &'static str {
        match self {
            OnMissedWindow::Skip => "skip",
            OnMissedWindow::ImportNow => "importNow",
        }
    }
}

/// Which ImageStreams of the namespace an environment manages.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamSelection {
    /// Every stream that has the environment's tag.
    All,
    /// Only these streams.
    Names(Vec<String>),
    /// Streams whose labels match all of these.
    Labels(BTreeMap<String, String>),
}

impl StreamSelection {
    /// The label selector in the API's query syntax (`a=b,c=d`), if any.
    pub fn label_selector(&self) -> Option<String> {
        match self {
            StreamSelection::Labels(labels) => Some(
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    }

    pub fn names(&self) -> Option<&[String]> {
        match self {
            StreamSelection::Names(names) => Some(names),
            _ => None,
        }
    }
}

/// Every problem found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid configuration: {n} error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// A valid configuration and the things worth saying about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// Legal but probably unintended settings.
    pub warnings: Vec<FieldError>,
}

/// Parses and validates a configuration. `now` anchors the checks that look
/// at concrete windows (overlap, a schedule that never fires).
pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Loaded, ConfigErrors> {
    if let Some(problem) = too_large(text) {
        return Err(ConfigErrors(vec![FieldError {
            path: "(document)".into(),
            message: problem,
            hint: Some("a configuration is a few environments; check that the right file or ConfigMap key was given".into()),
        }]));
    }
    let value: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            return Err(ConfigErrors(vec![FieldError {
                path: "(document)".into(),
                message: format!("not valid YAML{at}: {e}"),
                hint: Some("check indentation and quoting; the expected shape is in README.md under Configuration".into()),
            }]));
        }
    };
    let mut v = Validator {
        errors: Vec::new(),
        warnings: Vec::new(),
        now,
    };
    let config = v.config(&value);
    if v.errors.is_empty() {
        if let Some(config) = config {
            return Ok(Loaded {
                config,
                warnings: v.warnings,
            });
        }
    }
    if v.errors.is_empty() {
        v.error("(document)", "configuration is empty", None);
    }
    Err(ConfigErrors(v.errors))
}

/// Largest configuration accepted: a ConfigMap holds at most 1 MiB anyway.
const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Deepest `[`/`{` nesting accepted; the schema needs three levels. The YAML
/// parser's time grows steeply with nesting, so this is checked first.
const MAX_FLOW_DEPTH: usize = 64;

/// Why a text is too large to parse, if it is.
fn too_large(text: &str) -> Option<String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Some(format!(
            "the configuration is {} bytes; at most {MAX_CONFIG_BYTES} are accepted",
            text.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            (None, '\n') => {}
            _ => {}
        }
    }
    (deepest > MAX_FLOW_DEPTH).then(|| {
        format!("brackets are nested {deepest} deep; at most {MAX_FLOW_DEPTH} levels are accepted")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn errors(yaml: &str) -> Vec<String> {
        match parse(yaml, now()) {
            Ok(l) => panic!("expected errors, got {:?}", l.config),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const GOOD: &str = r#"
environments:
  stg:
    namespace: packit-stg
    mode: immediate
    pollInterval: 1m
  prod:
    namespace: packit-prod
    tag: prod
    mode: windowed
    schedule: "0 2 * * 2"
    timeZone: Europe/Prague
    window: 1h
    paused: false
    imageStreams: [packit-service, packit-worker]
"#;

    #[test]
    fn parses_the_documented_shape() {
        let loaded = parse(GOOD, now()).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        let stg = &c.environments["stg"];
        assert_eq!(stg.tag, "stg", "tag defaults to the environment's name");
        assert_eq!(stg.mode, Mode::Immediate);
        assert_eq!(stg.streams, StreamSelection::All);
        let prod = &c.environments["prod"];
        let Mode::Windowed {
            schedule,
            on_missed_window,
        } = &prod.mode
        else {
            panic!("prod is windowed")
        };
        assert_eq!(*on_missed_window, OnMissedWindow::Skip);
        assert_eq!(schedule.time_zone(), chrono_tz::Europe::Prague);
        assert_eq!(schedule.window(), Duration::from_secs(3600));
        assert_eq!(
            prod.streams,
            StreamSelection::Names(vec!["packit-service".into(), "packit-worker".into()])
        );
        assert_eq!(c.import, ImportSettings::default());
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let errs = errors(
            r#"
environments:
  prod:
    mode: windowd
    scheduel: "0 2 * * 2"
  stg:
    namespace: packit-stg
    mode: immediate
    schedule: "* * * * *"
    window: 2h
    pollInterval: 0s
extra: 1
"#,
        );
        let joined = errs.join("\n");
        for needle in [
            "extra: unknown key",
            "environments.prod.scheduel: unknown key `scheduel` (did you mean `schedule`?",
            "environments.prod.namespace: missing",
            "environments.prod.mode: unknown mode `windowd`",
            "environments.stg.schedule: `schedule` only applies to `mode: windowed`",
            "environments.stg.window: `window` only applies to `mode: windowed`",
            "environments.stg.pollInterval: must be longer than zero",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
    }

    #[test]
    fn freezes_are_read_in_the_environment_time_zone() {
        let l = parse(
            "environments:\n  prod:\n    namespace: p\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n    timeZone: Europe/Prague\n    freeze:\n      - {from: 2026-12-21, to: 2027-01-04, reason: holidays}\n",
            now(),
        )
        .unwrap();
        assert_eq!(
            l.config.environments["prod"].freeze.rules(),
            [crate::freeze::FreezeRule::Period {
                start: "2026-12-20T23:00:00Z".parse().unwrap(),
                end: "2027-01-04T23:00:00Z".parse().unwrap(),
                reason: "holidays".into()
            }]
        );
        let errs = errors("environments:\n  prod:\n    namespace: p\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n    freeze:\n      - {from: 2026-12-21, reason: holidays}\n  stg:\n    namespace: s\n    mode: immediate\n    freeze: []\n");
        let joined = errs.join("\n");
        for needle in [
            "environments.prod.freeze[0].to: missing",
            "environments.stg.freeze: `freeze` only applies to `mode: windowed`",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
    }

    #[test]
    fn rollout_settings_are_acted_on_without_a_warning() {
        let l = parse(
            "environments:\n  stg:\n    namespace: s\n    mode: immediate\n    verify: {timeout: 1m}\n    onFailedRollout: pinBack\n",
            now(),
        )
        .unwrap();
        let warnings: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn table_of_single_errors() {
        let base = |extra: &str| {
            format!(
                "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n{extra}"
            )
        };
        let cases: &[(&str, &str)] = &[
            ("", "environments.prod.schedule: missing"),
            ("    schedule: \"0 2 * * 2\"\n    timeZone: Mars/Olympus\n", "environments.prod.timeZone:"),
            ("    schedule: \"0 2 * * 2\"\n    window: -1h\n", "environments.prod.window:"),
            ("    schedule: \"0 2 * * 2\"\n    window: 8d\n", "environments.prod.window: window 8d is longer than the shortest gap"),
            ("    schedule: \"*/10 * * * *\"\n    window: 11m\n", "windows would overlap"),
            ("    schedule: \"0 2 * * *\"\n    timeZone: Europe/Prague\n    window: 24h\n", "windows would overlap"),
            ("    schedule: \"0 0 30 2 *\"\n", "never opens a window"),
            ("    schedule: \"0 0 29 2 *\"\n    window: 2000d\n", "windows would overlap"),
            ("    schedule: \"0 2 * * 8\"\n", "environments.prod.schedule:"),
            ("    schedule: \"0 0 2 * * 2\"\n", "environments.prod.schedule:"),
            ("    schedule: \"0 2 * * 2\"\n    onMissedWindow: retry\n", "environments.prod.onMissedWindow: unknown value `retry`"),
            ("    schedule: \"0 2 * * 2\"\n    paused: yes please\n", "environments.prod.paused: expected true or false"),
            ("    schedule: \"0 2 * * 2\"\n    pollInterval: 0s\n", "environments.prod.pollInterval: must be longer than zero"),
            ("    schedule: \"0 2 * * 2\"\n    imageStreams: [a]\n    selector: {matchLabels: {a: b}}\n", "cannot both be set"),
            ("    schedule: \"0 2 * * 2\"\n    imageStreams: []\n", "environments.prod.imageStreams: empty list"),
            ("    schedule: \"0 2 * * 2\"\n    selector: {matchLabels: {}}\n", "environments.prod.selector.matchLabels: empty"),
            ("    schedule: \"0 2 * * 2\"\n    tag: \"-bad\"\n", "environments.prod.tag:"),
        ];
        for (extra, needle) in cases {
            let joined = errors(&base(extra)).join("\n");
            assert!(
                joined.contains(needle),
                "for {extra:?}: missing {needle:?} in:\n{joined}"
            );
        }
    }

    #[test]
    fn exclude_and_sources_combine_with_either_selection() {
        let cases: &[(&str, StreamSelection, &[&str], &[&str])] = &[
            ("", StreamSelection::All, &[], &[]),
            (
                "    exclude: [nginx, pushgateway]\n    sources: [quay.io/packit/, \"localhost:5000/packit/\"]\n",
                StreamSelection::All,
                &["nginx", "pushgateway"],
                &["quay.io/packit/", "localhost:5000/packit/"],
            ),
            (
                "    imageStreams: [packit-worker]\n    exclude: [nginx]\n",
                StreamSelection::Names(vec!["packit-worker".into()]),
                &["nginx"],
                &[],
            ),
            (
                "    selector: {matchLabels: {app: packit}}\n    sources: [quay.io/packit]\n",
                StreamSelection::Labels(BTreeMap::from([("app".into(), "packit".into())])),
                &[],
                &["quay.io/packit"],
            ),
        ];
        for (extra, streams, exclude, sources) in cases {
            let yaml = format!(
                "environments:\n  prod:\n    namespace: packit-prod\n    mode: immediate\n{extra}"
            );
            let loaded = parse(&yaml, now()).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
            let env = &loaded.config.environments["prod"];
            assert_eq!(&env.streams, streams, "{extra:?}");
            assert_eq!(env.exclude, *exclude, "{extra:?}");
            assert_eq!(env.sources, *sources, "{extra:?}");
        }
    }

    #[test]
    fn table_of_exclude_and_sources_errors() {
        let base = |extra: &str| {
            format!(
                "environments:\n  prod:\n    namespace: packit-prod\n    mode: immediate\n{extra}"
            )
        };
        let cases: &[(&str, &[&str])] = &[
            ("    exclude: []\n", &["environments.prod.exclude: empty list (list at least one ImageStream, or remove the key"]),
            ("    exclude: nginx\n", &["environments.prod.exclude: expected a list of ImageStream names, found a string (write the names as a list, e.g. [nginx])"]),
            ("    exclude: [Nginx]\n", &["environments.prod.exclude[0]: `Nginx` is not a valid ImageStream name"]),
            ("    exclude: [nginx, nginx]\n", &["environments.prod.exclude[1]: `nginx` is listed twice"]),
            (
                "    imageStreams: [packit-worker, nginx]\n    exclude: [pushgateway, nginx]\n",
                &["environments.prod.exclude[1]: `nginx` is also listed in `imageStreams` (remove `nginx` from `imageStreams`"],
            ),
            ("    sources: []\n", &["environments.prod.sources: empty list (list at least one prefix, e.g. [quay.io/packit/]"]),
            ("    sources: quay.io/packit/\n", &["environments.prod.sources: expected a list of image repository prefixes, found a string (write a registry and repository prefix, e.g. sources: [quay.io/packit/])"]),
            ("    sources: [\"\"]\n", &["environments.prod.sources[0]: empty prefix: it would match every source"]),
            ("    sources: [\"  \"]\n", &["environments.prod.sources[0]: empty prefix"]),
            ("    sources: [\"quay.io/ packit/\"]\n", &["environments.prod.sources[0]: `quay.io/ packit/` contains whitespace"]),
            ("    sources: [\"quay.io/packit/worker@sha256:0\"]\n", &["environments.prod.sources[0]: `quay.io/packit/worker@sha256:0` names a digest"]),
            ("    sources: [\"quay.io/packit/worker:prod\"]\n", &["environments.prod.sources[0]: `quay.io/packit/worker:prod` names a tag"]),
            ("    sources: [quay.io/packit/, quay.io/packit/]\n", &["environments.prod.sources[1]: `quay.io/packit/` is listed twice"]),
            ("    sources: [[quay.io]]\n", &["environments.prod.sources[0]:"]),
            ("    exclude: [nginx]\n    sources: []\n", &["environments.prod.sources: empty list"]),
            ("    excludes: [nginx]\n", &["environments.prod.excludes: unknown key `excludes` (did you mean `exclude`?"]),
            ("    source: [quay.io/packit/]\n", &["environments.prod.source: unknown key `source` (did you mean `sources`?"]),
        ];
        for (extra, needles) in cases {
            let errs = errors(&base(extra));
            assert_eq!(errs.len(), needles.len(), "for {extra:?}: {errs:?}");
            for (err, needle) in errs.iter().zip(needles.iter()) {
                assert!(
                    err.starts_with(needle),
                    "for {extra:?}: {err:?} does not start with {needle:?}"
                );
            }
        }
    }

    #[test]
    fn rejects_two_environments_on_one_namespace_and_tag() {
        let errs = errors(
            "environments:\n  a:\n    namespace: ns\n    tag: prod\n    mode: immediate\n  b:\n    namespace: ns\n    tag: prod\n    mode: immediate\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with(
            "environments.b: imports tag `prod` in namespace `ns`, as environment `a` already does"
        ));
    }

    #[test]
    fn rejects_huge_and_deeply_nested_documents_before_parsing() {
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        assert!(errors(&deep)[0].contains("nested 65 deep"));
        let fine = format!("x: '{}'\nenvironments: {{}}", "[".repeat(100));
        assert!(
            !errors(&fine)[0].contains("nested"),
            "brackets inside quotes do not count"
        );
        let huge = format!("# {}", "x".repeat(MAX_CONFIG_BYTES));
        assert!(errors(&huge)[0].contains("at most 1048576"));
    }

    #[test]
    fn rejects_empty_and_malformed_documents() {
        assert!(errors("")[0].contains("configuration is empty"));
        assert!(errors("environments: [1, 2]")[0].starts_with("environments: expected a mapping"));
        assert!(errors("environments: {}")[0].contains("no environment defined"));
        assert!(errors("environments:\n  prod: {namespace: x\n")[0].contains("not valid YAML"));
    }

    #[test]
    fn warns_when_poll_interval_is_not_shorter_than_the_window() {
        let loaded = parse(
            "environments:\n  prod:\n    namespace: p\n    mode: windowed\n    schedule: \"0 2 * * 2\"\n    window: 1m\n    pollInterval: 5m\n",
            now(),
        )
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(loaded.warnings[0].path, "environments.prod.pollInterval");
    }

    #[test]
    fn settings_defaults_and_errors() {
        let s = Settings::from_vars(Vec::new()).unwrap();
        assert_eq!(s.configmap, "image-import-scheduler");
        assert_eq!(s.listen_addr, "0.0.0.0:8080");
        assert_eq!(s.grace().unwrap(), Duration::from_secs(30));
        let bad = Settings::from_vars(vec![("IMPORT_SCHEDULER_LOG_FORMAT".into(), "xml".into())]);
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("IMPORT_SCHEDULER_LOG_FORMAT"));
        let bad = Settings::from_vars(vec![(
            "IMPORT_SCHEDULER_SHUTDOWN_GRACE".into(),
            "soon".into(),
        )]);
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("IMPORT_SCHEDULER_SHUTDOWN_GRACE"));
    }

    #[test]
    fn readiness_bound_and_trusted_proxies_are_read_and_checked() {
        let s = Settings::from_vars(Vec::new()).unwrap();
        assert_eq!(s.api_unreachable_after().unwrap(), Duration::from_secs(30));
        assert!(s.trusted_proxies().unwrap().is_empty());
        let s = Settings::from_vars(vec![
            (
                "IMPORT_SCHEDULER_API_UNREACHABLE_AFTER".into(),
                "45s".into(),
            ),
            (
                "IMPORT_SCHEDULER_TRUSTED_PROXIES".into(),
                "10.128.0.0/14, 192.168.1.7".into(),
            ),
        ])
        .unwrap();
        assert_eq!(s.api_unreachable_after().unwrap(), Duration::from_secs(45));
        let proxies: Vec<String> = s
            .trusted_proxies()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.128.0.0/14", "192.168.1.7/32"]);
        for (var, value) in [
            ("IMPORT_SCHEDULER_API_UNREACHABLE_AFTER", "never"),
            ("IMPORT_SCHEDULER_TRUSTED_PROXIES", "the router"),
        ] {
            let bad = Settings::from_vars(vec![(var.into(), value.into())]);
            let message = bad.unwrap_err().to_string();
            assert!(message.contains(var), "{message}");
        }
    }
}
