//! Validation of the configuration's YAML tree: every problem with its field
//! path and what to write instead, not serde's first error.

use super::*;

pub(super) struct Validator {
    pub(super) errors: Vec<FieldError>,
    pub(super) warnings: Vec<FieldError>,
    pub(super) now: DateTime<Utc>,
}

pub(super) const TOP_KEYS: &[&str] = &["environments", "import", "notifications"];
pub(super) const IMPORT_KEYS: &[&str] = &["timeout", "concurrency"];
pub(super) const ENV_KEYS: &[&str] = &[
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
    "cluster",
    "notifications",
    "verify",
    "onFailedRollout",
    "freeze",
    "gates",
];
pub(super) const WINDOWED_ONLY: &[&str] =
    &["schedule", "timeZone", "window", "onMissedWindow", "freeze"];

impl Validator {
    pub(super) fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>, hint: Option<&str>) {
        self.warnings.push(FieldError {
            path: path.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    /// The mapping at `path`, with unknown keys reported.
    pub(super) fn mapping<'v>(
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

    pub(super) fn string(&mut self, path: &str, value: &Value) -> Option<String> {
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

    pub(super) fn boolean(&mut self, path: &str, value: &Value) -> Option<bool> {
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

    pub(super) fn duration(&mut self, path: &str, value: &Value) -> Option<Duration> {
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

    pub(super) fn config(&mut self, root: &Value) -> Option<Config> {
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
        self.errors.extend(super::gates::check(&mut environments));
        let notifications = self.notifications("notifications", top.get("notifications").copied());
        Some(Config {
            environments,
            import: import?,
            notifications: notifications?,
        })
    }

    pub(super) fn notifications(
        &mut self,
        path: &str,
        value: Option<&Value>,
    ) -> Option<notifications::Notifications> {
        match value {
            None => Some(Default::default()),
            Some(v) => notifications::parse(path, v, &mut self.errors),
        }
    }

    pub(super) fn import_settings(&mut self, value: &Value) -> Option<ImportSettings> {
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

    pub(super) fn environment(&mut self, name: &str, value: &Value) -> Option<Environment> {
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

        let rollout = super::rollout::parse_policy(
            &path,
            map.get("verify").copied(),
            map.get("onFailedRollout").copied(),
        )
        .map_err(|errors| self.errors.extend(errors))
        .ok();
        let streams = self.stream_selection(&path, &map);
        let exclude = self.exclude(&path, &map, streams.as_ref());
        let sources = self.sources(&path, &map);
        let cluster = match map.get("cluster") {
            None => Some(None),
            Some(v) => self.cluster(&field("cluster"), v).map(Some),
        };
        let notifications =
            self.notifications(&field("notifications"), map.get("notifications").copied());

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

        let gates = match (&mode, map.get("gates")) {
            (_, None) => Some(super::gates::Gates::default()),
            (Some(Mode::Immediate), Some(_)) => {
                self.error(
                    &field("gates"),
                    "gates only apply to `mode: windowed`: an immediate environment imports as soon as a source moves, with no window to hold",
                    Some("remove `gates`, or set `mode: windowed` with a schedule"),
                );
                None
            }
            (_, Some(v)) => super::gates::parse(&path, v)
                .map_err(|errors| self.errors.extend(errors))
                .ok(),
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
            rollout: rollout?,
            freeze: freeze?,
            gates: gates?,
            cluster: cluster?,
            notifications: notifications?,
        })
    }

    pub(super) fn windowed(&mut self, path: &str, map: &BTreeMap<String, &Value>) -> Option<Mode> {
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

    pub(super) fn stream_selection(
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
    pub(super) fn exclude(
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
    pub(super) fn sources(
        &mut self,
        path: &str,
        map: &BTreeMap<String, &Value>,
    ) -> Option<Vec<String>> {
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
    pub(super) fn stream_names(
        &mut self,
        p: &str,
        v: &Value,
        empty_hint: &str,
    ) -> Option<Vec<String>> {
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

    pub(super) fn check_duplicates(&mut self, envs: &BTreeMap<String, Environment>) {
        let mut seen: BTreeMap<(Option<&ClusterRef>, &str, &str), &str> = BTreeMap::new();
        for (name, env) in envs {
            let place = (
                env.cluster.as_ref(),
                env.namespace.as_str(),
                env.tag.as_str(),
            );
            if let Some(first) = seen.insert(place, name) {
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
pub(super) fn source_prefix_problem(prefix: &str) -> Option<String> {
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

pub(super) fn join(path: &str, key: &str) -> String {
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

pub(super) fn kind(v: &Value) -> &'static str {
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

pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}

/// The known key closest to a misspelt one, if any is close.
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

pub(super) fn is_tag_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(super) fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(super) fn is_label_key(s: &str) -> bool {
    let name = s.rsplit('/').next().unwrap_or(s);
    !name.is_empty() && is_label_value(name) && s.len() <= 317
}
