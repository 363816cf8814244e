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
    /// When no window opens (`freeze`; windowed mode only).
    pub freeze: crate::freeze::Freezes,
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

/// One validation problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `environments.prod.schedule`.
    pub path: String,
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
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

struct Validator {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
    now: DateTime<Utc>,
}

const TOP_KEYS: &[&str] = &["environments", "import"];
const IMPORT_KEYS: &[&str] = &["timeout", "concurrency"];
const ENV_KEYS: &[&str] = &[
    "namespace",
    "tag",
    "mode",
    "pollInterval",
    "schedule",
    "timeZone",
    "window",
    "onMissedWindow",
    "paused",
    "imageStreams",
    "selector",
    "exclude",
    "sources",
    "freeze",
];
const WINDOWED_ONLY: &[&str] = &["schedule", "timeZone", "window", "onMissedWindow", "freeze"];

impl Validator {
    fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    fn warn(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.warnings.push(FieldError {
            path: path.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    /// The mapping at `path`, with unknown keys reported.
    fn mapping<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        known: &[&str],
    ) -> Option<BTreeMap<String, &'v Value>> {
        let Value::Mapping(map) = value else {
            self.error(
                path,
                format!("expected a mapping, found {}", kind(value)),
                None,
            );
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                self.error(
                    path,
                    format!("keys must be strings, found {}", kind(k)),
                    None,
                );
                continue;
            };
            if !known.is_empty() && !known.contains(&key) {
                let hint = match closest(key, known) {
                    Some(c) => format!("did you mean `{c}`? known keys: {}", known.join(", ")),
                    None => format!("known keys: {}", known.join(", ")),
                };
                self.error(
                    &join(path, key),
                    format!("unknown key `{key}`"),
                    Some(&hint),
                );
                continue;
            }
            out.insert(key.to_string(), v);
        }
        Some(out)
    }

    fn string(&mut self, path: &str, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.error(
                    path,
                    format!("expected a string, found {}", kind(other)),
                    None,
                );
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(
                    path,
                    format!("expected true or false, found {}", kind(other)),
                    None,
                );
                None
            }
        }
    }

    fn duration(&mut self, path: &str, value: &Value) -> Option<Duration> {
        let text = self.string(path, value)?;
        match parse_duration(&text) {
            Ok(d) if d.is_zero() => {
                self.error(
                    path,
                    "must be longer than zero",
                    Some("write e.g. 30s, 15m, 1h, 1h30m or 2d"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(path, e.to_string(), None);
                None
            }
        }
    }

    fn config(&mut self, root: &Value) -> Option<Config> {
        if root.is_null() {
            self.error(
                "(document)",
                "configuration is empty",
                Some("define at least one environment under `environments`"),
            );
            return None;
        }
        let top = self.mapping("(document)", root, TOP_KEYS)?;
        let import = match top.get("import") {
            Some(v) => self.import_settings(v),
            None => Some(ImportSettings::default()),
        };
        let mut environments = BTreeMap::new();
        match top.get("environments") {
            None => self.error(
                "environments",
                "missing",
                Some("define at least one environment, e.g. `environments: {prod: {namespace: packit-prod, mode: windowed, schedule: \"0 2 * * 2\"}}`"),
            ),
            Some(v) => {
                if let Some(envs) = self.mapping("environments", v, &[]) {
                    if envs.is_empty() {
                        self.error("environments", "no environment defined", Some("define at least one environment"));
                    }
                    for (name, v) in envs {
                        if let Some(env) = self.environment(&name, v) {
                            environments.insert(name, env);
                        }
                    }
                }
            }
        }
        self.check_duplicates(&environments);
        Some(Config {
            environments,
            import: import?,
        })
    }

    fn import_settings(&mut self, value: &Value) -> Option<ImportSettings> {
        let map = self.mapping("import", value, IMPORT_KEYS)?;
        let mut settings = ImportSettings::default();
        if let Some(v) = map.get("timeout") {
            settings.timeout = self.duration("import.timeout", v)?;
        }
        if let Some(v) = map.get("concurrency") {
            match v.as_u64() {
                Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => settings.concurrency = n as usize,
                _ => {
                    self.error(
                        "import.concurrency",
                        format!(
                            "must be a whole number from 1 to {MAX_CONCURRENCY}, found {}",
                            show(v)
                        ),
                        None,
                    );
                    return None;
                }
            }
        }
        Some(settings)
    }

    fn environment(&mut self, name: &str, value: &Value) -> Option<Environment> {
        let path = join("environments", name);
        let errors_before = self.errors.len();
        if !is_dns_label(name) {
            self.error(
                &path,
                format!("environment name `{name}` is not valid"),
                Some("use lowercase letters, digits and '-', at most 63 characters, e.g. prod"),
            );
        }
        let map = self.mapping(&path, value, ENV_KEYS)?;
        let field = |k: &str| format!("{path}.{k}");

        let namespace = match map.get("namespace") {
            None => {
                self.error(
                    &field("namespace"),
                    "missing",
                    Some("set the namespace whose ImageStreams this environment imports, e.g. packit-prod"),
                );
                None
            }
            Some(v) => self.string(&field("namespace"), v).and_then(|ns| {
                if is_dns_label(&ns) {
                    Some(ns)
                } else {
                    self.error(
                        &field("namespace"),
                        format!("`{ns}` is not a valid namespace name"),
                        Some("use lowercase letters, digits and '-', at most 63 characters"),
                    );
                    None
                }
            }),
        };

        let tag = match map.get("tag") {
            None => Some(name.to_string()),
            Some(v) => self.string(&field("tag"), v).and_then(|t| {
                if is_tag_name(&t) {
                    Some(t)
                } else {
                    self.error(
                        &field("tag"),
                        format!("`{t}` is not a valid ImageStream tag name"),
                        Some("use letters, digits, '_', '.' and '-', starting with a letter, digit or '_', at most 128 characters"),
                    );
                    None
                }
            }),
        };

        let mode_name = match map.get("mode") {
            None => {
                self.error(
                    &field("mode"),
                    "missing",
                    Some("set `mode: immediate` (import as soon as the source changes) or `mode: windowed` (only inside scheduled windows)"),
                );
                None
            }
            Some(v) => self
                .string(&field("mode"), v)
                .and_then(|m| match m.as_str() {
                    "immediate" | "windowed" => Some(m),
                    other => {
                        self.error(
                            &field("mode"),
                            format!("unknown mode `{other}`"),
                            Some("expected `immediate` or `windowed`"),
                        );
                        None
                    }
                }),
        };

        let poll_interval = match map.get("pollInterval") {
            None => Some(DEFAULT_POLL_INTERVAL),
            Some(v) => self.duration(&field("pollInterval"), v).and_then(|d| {
                if d < MIN_POLL_INTERVAL {
                    self.error(&field("pollInterval"), "must be at least 1s", None);
                    None
                } else {
                    Some(d)
                }
            }),
        };

        let paused = match map.get("paused") {
            None => Some(false),
            Some(v) => self.boolean(&field("paused"), v),
        };

        let streams = self.stream_selection(&path, &map);
        let exclude = self.exclude(&path, &map, streams.as_ref());
        let sources = self.sources(&path, &map);

        let mode = match mode_name.as_deref() {
            Some("immediate") => {
                for key in WINDOWED_ONLY {
                    if map.contains_key(*key) {
                        self.error(
                            &field(key),
                            format!("`{key}` only applies to `mode: windowed`"),
                            Some("remove it, or set `mode: windowed`"),
                        );
                    }
                }
                Some(Mode::Immediate)
            }
            Some("windowed") => self.windowed(&path, &map),
            _ => None,
        };

        if let (Some(Mode::Windowed { schedule, .. }), Some(poll)) = (&mode, poll_interval) {
            if poll >= schedule.window() {
                self.warn(
                    &field("pollInterval"),
                    format!(
                        "{} is not shorter than the window ({}): a push inside the window may wait for the next window",
                        format_duration(poll),
                        format_duration(schedule.window())
                    ),
                    Some("use a pollInterval well below the window length"),
                );
            }
        }

        let freeze = match (&mode, map.get("freeze")) {
            (Some(Mode::Windowed { schedule, .. }), Some(v)) => {
                match crate::freeze::parse(&field("freeze"), v, schedule.time_zone(), self.now) {
                    Ok(f) => Some(f),
                    Err(errors) => {
                        self.errors.extend(errors);
                        None
                    }
                }
            }
            _ => Some(crate::freeze::Freezes::default()),
        };

        if self.errors.len() > errors_before {
            return None;
        }
        Some(Environment {
            name: name.to_string(),
            namespace: namespace?,
            tag: tag?,
            mode: mode?,
            poll_interval: poll_interval?,
            streams: streams?,
            exclude: exclude?,
            sources: sources?,
            paused: paused?,
            freeze: freeze?,
        })
    }

    fn windowed(&mut self, path: &str, map: &BTreeMap<String, &Value>) -> Option<Mode> {
        let field = |k: &str| format!("{path}.{k}");
        let expr = match map.get("schedule") {
            None => {
                self.error(
                    &field("schedule"),
                    "missing: a windowed environment needs a schedule",
                    Some("set a CronJob-style expression for when windows open, e.g. schedule: \"0 2 * * 2\" (Tuesday 02:00)"),
                );
                None
            }
            Some(v) => self
                .string(&field("schedule"), v)
                .and_then(|s| match CronExpr::parse(&s) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        self.error(&field("schedule"), e.to_string(), None);
                        None
                    }
                }),
        };
        let tz = match map.get("timeZone") {
            None => Some(chrono_tz::UTC),
            Some(v) => self
                .string(&field("timeZone"), v)
                .and_then(|s| match parse_time_zone(&s) {
                    Ok(tz) => Some(tz),
                    Err(e) => {
                        self.error(&field("timeZone"), e.to_string(), None);
                        None
                    }
                }),
        };
        let window = match map.get("window") {
            None => Some(Duration::from_secs(3600)),
            Some(v) => self.duration(&field("window"), v),
        };
        let on_missed_window = match map.get("onMissedWindow") {
            None => Some(OnMissedWindow::Skip),
            Some(v) => self
                .string(&field("onMissedWindow"), v)
                .and_then(|s| match s.as_str() {
                    "skip" => Some(OnMissedWindow::Skip),
                    "importNow" => Some(OnMissedWindow::ImportNow),
                    other => {
                        self.error(
                            &field("onMissedWindow"),
                            format!("unknown value `{other}`"),
                            Some("expected `skip` (wait for the next window) or `importNow`"),
                        );
                        None
                    }
                }),
        };
        let (expr, tz, window, on_missed_window) = (expr?, tz?, window?, on_missed_window?);
        let schedule = match Schedule::new(expr, tz, window) {
            Ok(s) => s,
            Err(e) => {
                self.error(&field("window"), e.to_string(), None);
                return None;
            }
        };
        let Some(first) = schedule.next_start_after(self.now) else {
            self.error(
                &field("schedule"),
                format!(
                    "`{}` never opens a window (no matching day in the next years)",
                    schedule.expr()
                ),
                Some("check day-of-month against month, e.g. February has no 30th"),
            );
            return None;
        };
        let window =
            chrono::Duration::from_std(schedule.window()).unwrap_or(chrono::TimeDelta::MAX);
        // A year covers both DST transitions; a rare schedule (a leap day)
        // needs the span of two windows to show two starts at all.
        let horizon = chrono::Duration::days(OVERLAP_HORIZON_DAYS)
            .max(window.checked_mul(2).unwrap_or(chrono::TimeDelta::MAX))
            .min(chrono::Duration::days(
                crate::schedule::SEARCH_HORIZON_DAYS as i64,
            ));
        if let Some(gap) = schedule.min_gap(first, horizon) {
            if window > gap {
                let gap_std = gap.to_std().unwrap_or_default();
                self.error(
                    &field("window"),
                    format!(
                        "window {} is longer than the shortest gap between two window starts ({}): windows would overlap",
                        format_duration(schedule.window()),
                        format_duration(gap_std)
                    ),
                    Some(&format!("use a window of at most {}, or a schedule that fires less often", format_duration(gap_std))),
                );
                return None;
            }
        }
        Some(Mode::Windowed {
            schedule,
            on_missed_window,
        })
    }

    fn stream_selection(
        &mut self,
        path: &str,
        map: &BTreeMap<String, &Value>,
    ) -> Option<StreamSelection> {
        let names = map.get("imageStreams");
        let selector = map.get("selector");
        if names.is_some() && selector.is_some() {
            self.error(
                &format!("{path}.selector"),
                "`imageStreams` and `selector` cannot both be set",
                Some("list the streams by name, or select them by label, not both"),
            );
            return None;
        }
        if let Some(v) = names {
            let p = format!("{path}.imageStreams");
            return self
                .stream_names(&p, v, "remove the key to manage every stream with the tag")
                .map(StreamSelection::Names);
        }
        if let Some(v) = selector {
            let p = format!("{path}.selector");
            let sel = self.mapping(&p, v, &["matchLabels"])?;
            let Some(labels) = sel.get("matchLabels") else {
                self.error(
                    &p,
                    "missing `matchLabels`",
                    Some("write selector: {matchLabels: {app: packit}}"),
                );
                return None;
            };
            let lp = format!("{p}.matchLabels");
            let labels = self.mapping(&lp, labels, &[])?;
            if labels.is_empty() {
                self.error(
                    &lp,
                    "empty",
                    Some("give at least one label, or remove `selector`"),
                );
                return None;
            }
            let mut out = BTreeMap::new();
            for (k, v) in labels {
                let kp = join(&lp, &k);
                if let Some(s) = self.string(&kp, v) {
                    if !is_label_value(&s) || !is_label_key(&k) {
                        self.error(
                            &kp,
                            format!("`{k}={s}` is not a valid label"),
                            Some("label keys and values use letters, digits, '-', '_' and '.'"),
                        );
                        continue;
                    }
                    out.insert(k, s);
                }
            }
            return Some(StreamSelection::Labels(out));
        }
        Some(StreamSelection::All)
    }

    /// `exclude`: stream names never managed; none of them may also be
    /// listed in `imageStreams`, which would both select and exclude it.
    fn exclude(
        &mut self,
        path: &str,
        map: &BTreeMap<String, &Value>,
        streams: Option<&StreamSelection>,
    ) -> Option<Vec<String>> {
        let Some(v) = map.get("exclude") else {
            return Some(Vec::new());
        };
        let p = format!("{path}.exclude");
        let names = self.stream_names(&p, v, "remove the key to exclude nothing")?;
        let listed = streams.and_then(StreamSelection::names).unwrap_or_default();
        let mut ok = true;
        for (i, name) in names.iter().enumerate() {
            if listed.contains(name) {
                self.error(
                    &format!("{p}[{i}]"),
                    format!("`{name}` is also listed in `imageStreams`"),
                    Some(&format!("remove `{name}` from `imageStreams` to stop managing it, or from `exclude` to manage it")),
                );
                ok = false;
            }
        }
        ok.then_some(names)
    }

    /// `sources`: prefixes of the source repository (`quay.io/packit/`).
    /// A prefix holds no tag or digest: a pinned tag (`repo@sha256:...`)
    /// must still match the prefix of its repository.
    fn sources(&mut self, path: &str, map: &BTreeMap<String, &Value>) -> Option<Vec<String>> {
        let Some(v) = map.get("sources") else {
            return Some(Vec::new());
        };
        let p = format!("{path}.sources");
        const HINT: &str =
            "write a registry and repository prefix, e.g. sources: [quay.io/packit/]";
        let Value::Sequence(items) = v else {
            self.error(
                &p,
                format!(
                    "expected a list of image repository prefixes, found {}",
                    kind(v)
                ),
                Some(HINT),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                &p,
                "empty list",
                Some("list at least one prefix, e.g. [quay.io/packit/], or remove the key to accept every source"),
            );
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            let Some(prefix) = self.string(&ip, item) else {
                ok = false;
                continue;
            };
            let problem = source_prefix_problem(&prefix);
            if let Some(problem) = problem {
                self.error(&ip, problem, Some(HINT));
                ok = false;
            } else if out.contains(&prefix) {
                self.error(&ip, format!("`{prefix}` is listed twice"), None);
                ok = false;
            } else {
                out.push(prefix);
            }
        }
        ok.then_some(out)
    }

    /// A non-empty list of distinct, valid ImageStream names at `p`.
    fn stream_names(&mut self, p: &str, v: &Value, empty_hint: &str) -> Option<Vec<String>> {
        let Value::Sequence(items) = v else {
            self.error(
                p,
                format!("expected a list of ImageStream names, found {}", kind(v)),
                Some("write the names as a list, e.g. [nginx]"),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                p,
                "empty list",
                Some(&format!("list at least one ImageStream, or {empty_hint}")),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match self.string(&ip, item) {
                Some(name) if is_dns_subdomain(&name) => {
                    if out.contains(&name) {
                        self.error(&ip, format!("`{name}` is listed twice"), None);
                        ok = false;
                    } else {
                        out.push(name);
                    }
                }
                Some(name) => {
                    self.error(
                        &ip,
                        format!("`{name}` is not a valid ImageStream name"),
                        Some("use lowercase letters, digits, '-' and '.'"),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn check_duplicates(&mut self, envs: &BTreeMap<String, Environment>) {
        let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (name, env) in envs {
            if let Some(first) = seen.insert((&env.namespace, &env.tag), name) {
                self.errors.push(FieldError {
                    path: join("environments", name),
                    message: format!(
                        "imports tag `{}` in namespace `{}`, as environment `{first}` already does",
                        env.tag, env.namespace
                    ),
                    hint: Some("two environments must not import the same namespace and tag; change `namespace` or `tag`, or remove one".into()),
                });
            }
        }
    }
}

/// What is wrong with `prefix` as an entry of `sources`, if anything.
fn source_prefix_problem(prefix: &str) -> Option<String> {
    if prefix.trim().is_empty() {
        return Some("empty prefix: it would match every source".into());
    }
    if prefix.contains(char::is_whitespace) {
        return Some(format!("`{prefix}` contains whitespace"));
    }
    if prefix.contains('@') {
        return Some(format!(
            "`{prefix}` names a digest; a prefix names a registry and repository only"
        ));
    }
    // A ':' after the last '/' starts a tag; one before it is a registry port.
    if let Some((_, last)) = prefix.rsplit_once('/') {
        if last.contains(':') {
            return Some(format!(
                "`{prefix}` names a tag; a prefix names a registry and repository only, so that a tag pinned to a digest still matches"
            ));
        }
    }
    None
}

fn join(path: &str, key: &str) -> String {
    // Keys that are not plain names are quoted, so the path stays readable.
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    let key = if plain {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path == "(document)" {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}

/// The known key closest to a misspelt one, if any is close.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_tag_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_label_key(s: &str) -> bool {
    let name = s.rsplit('/').next().unwrap_or(s);
    !name.is_empty() && is_label_value(name) && s.len() <= 317
}

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
