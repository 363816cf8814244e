//! The alerts of `manifests/components/prometheus-rules`: the PrometheusRule's
//! `spec` is written out as a plain rules file and checked with Debian's
//! `promtool` (`check rules`, then the unit tests in its `tests/`); every
//! alert has a test where it fires and one where it stays quiet; every
//! metric and label the expressions use is one the daemon exports; and a
//! real Prometheus loads them and fires on pushed metrics.
//!
//! Needs `promtool` (Debian package `prometheus`; see
//! test-cluster/scripts/install-deps.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use import_scheduler::metrics::{ApiErrorKind, ImportResult, Metrics};
use serde_json::Value;

fn component() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/components/prometheus-rules")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PrometheusRule's `spec`: a Prometheus rules file (`groups: ...`).
fn rules_file() -> Value {
    let path = component().join("prometheusrule.yaml");
    let rule = yaml(&path);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    // The rules file the test cluster's Prometheus loads from it.
    let text = test_cluster::prometheus::rules_file(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{e:#}"));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// `(alert name, expression)` of every alerting rule.
fn alerts() -> Vec<(String, String)> {
    let spec = rules_file();
    let mut found = Vec::new();
    for group in spec["groups"].as_array().expect("spec.groups") {
        for rule in group["rules"].as_array().expect("group rules") {
            let name = rule["alert"].as_str().expect("only alerting rules");
            let expr = rule["expr"].as_str().expect("expr");
            found.push((name.to_string(), expr.to_string()));
        }
    }
    assert!(!found.is_empty(), "no alerts in the PrometheusRule");
    found
}

/// The unit test files, `tests/*.yaml`.
fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(component().join("tests"))
        .expect("tests/ of the prometheus-rules component")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool tests");
    files
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let promtool = test_cluster::prometheus::promtool().unwrap_or_else(|e| panic!("{e:#}"));
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

#[test]
fn promtool_checks_the_rules_and_every_unit_test_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rules_file()).unwrap(),
    )
    .unwrap();
    let checked = promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{checked}"
    );

    let mut names = Vec::new();
    for file in test_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert_ne!(
            name, "rules.yaml",
            "a test file must not be named rules.yaml"
        );
        std::fs::copy(&file, dir.path().join(&name)).unwrap();
        names.push(name);
    }
    let mut args = vec!["test", "rules"];
    args.extend(names.iter().map(String::as_str));
    let out = promtool(&args, dir.path());
    assert_eq!(
        out.matches("SUCCESS").count(),
        names.len(),
        "every file passes:\n{out}"
    );
}

/// The component as a real Prometheus loads it: a missed window pushed
/// for a new series (the first miss after a daemon start) fires
/// ImageImportWindowMissed, with the labels and text an operator gets.
#[tokio::test]
async fn a_real_prometheus_loads_the_rules_and_a_pushed_missed_window_fires() {
    let text = std::fs::read_to_string(component().join("prometheusrule.yaml")).unwrap();
    let rules = test_cluster::prometheus::rules_file(&text).unwrap();
    let prometheus = test_cluster::prometheus::Prometheus::start(&rules)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    prometheus
        .push(
            "daemon",
            "image_import_scheduler_missed_windows_total{namespace=\"team-prod\",env=\"prod\"} 1\n\
             image_import_scheduler_leader{namespace=\"team-prod\"} 1",
        )
        .await
        .unwrap();
    let alert = prometheus
        .wait_for_alert("ImageImportWindowMissed")
        .await
        .unwrap();
    assert_eq!(alert.labels["env"], "prod");
    assert_eq!(alert.labels["namespace"], "team-prod");
    assert_eq!(alert.labels["severity"], "warning");
    assert_eq!(alert.annotations["summary"], "prod missed an import window");
    prometheus.delete("daemon").await.unwrap();
    prometheus
        .wait_for_no_alert("ImageImportWindowMissed")
        .await
        .unwrap();
}

#[test]
fn every_alert_has_a_test_where_it_fires_and_one_where_it_stays_quiet() {
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in test_files() {
        let tests = yaml(&file);
        assert_eq!(
            tests["rule_files"],
            serde_json::json!(["rules.yaml"]),
            "{}: tests the component's rules (the file the test writes), nothing else",
            file.display()
        );
        for test in tests["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_string();
                match case["exp_alerts"].as_array() {
                    Some(expected) if !expected.is_empty() => fires.insert(name),
                    _ => quiet.insert(name),
                };
            }
        }
    }
    for (name, _) in alerts() {
        assert!(fires.contains(&name), "no test where {name} fires");
        assert!(quiet.contains(&name), "no test where {name} stays quiet");
    }
}

// ------------------------------------------------------------ metric names

/// Labels Prometheus adds when it scrapes (ServiceMonitor target labels).
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
];

/// Every family with at least one series, through the public API.
fn exported() -> Metrics {
    let m = Metrics::new();
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap();
    for result in ImportResult::ALL {
        m.record_import("prod", result, Duration::from_millis(10));
    }
    m.set_next_window("prod", Some((at, at)));
    m.set_window_open("prod", true);
    m.set_last_success("prod", "packit-worker", at);
    m.inc_foreign_import("prod", "packit-worker");
    m.inc_missed_window("prod");
    m.record_config_reload(true, at);
    m.record_config_reload(false, at);
    m.record_api_request("get", "configmaps", 200, Duration::from_millis(5));
    m.record_api_error("get", "configmaps", ApiErrorKind::Timeout);
    m.set_leader(true);
    m.set_paused("prod", false);
    m.set_held_tags("prod", 1);
    m.record_webhook("accepted");
    m.set_cluster_available("preprod", Some("unreachable"));
    m.record_notification("slack", "sent");
    for result in [
        "succeeded",
        "failed",
        "pinned_back",
        "rollback_succeeded",
        "rollback_failed",
    ] {
        m.record_rollout("prod", result, Duration::from_secs(30));
    }
    for gate in ["soak", "alerts", "approval"] {
        for result in ["pass", "hold"] {
            m.record_gate_verdict("prod", gate, result);
        }
        m.set_gated_tags("prod", gate, 1);
    }
    m.observe_gate_check("prod", Duration::from_millis(20));
    m
}

/// Label names and the values seen for each, of one series name.
type Labels = BTreeMap<String, BTreeSet<String>>;

/// Series names the exposition declares (`# TYPE` lines, with the suffixes
/// the type's samples get): `None` when it has no sample (labels unknown),
/// else the label names and values of its samples.
fn exposition(text: &str) -> BTreeMap<String, Option<Labels>> {
    let mut series: BTreeMap<String, Option<Labels>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            for suffix in suffixes {
                series.entry(format!("{name}{suffix}")).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap();
            let labels = series
                .entry(line[..end].to_string())
                .or_default()
                .get_or_insert_with(Labels::new);
            if line[end..].starts_with('{') {
                let close = line.find('}').unwrap();
                for pair in line[end + 1..close].split(',') {
                    let (k, v) = pair.split_once('=').unwrap();
                    labels
                        .entry(k.to_string())
                        .or_default()
                        .insert(v.trim_matches('"').to_string());
                }
            }
        }
    }
    series
}

/// A label matcher: `(label, op, value)`.
type Matcher = (String, String, String);

/// What an expression uses: metric selectors with their matchers, and the
/// labels of `by`/`on`/... clauses.
#[derive(Debug, Default, PartialEq)]
struct Uses {
    selectors: Vec<(String, Vec<Matcher>)>,
    grouping: BTreeSet<String>,
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];
const CLAUSES: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A small PromQL scanner: enough for these rules (no string literals
/// outside matchers, no `__name__` matchers).
fn uses(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            // A range or subquery: durations only.
            while chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (`1d`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(i);
            if CLAUSES.contains(&word.as_str()) {
                if chars.get(next) == Some(&'(') {
                    let close = next + chars[next..].iter().position(|&c| c == ')').unwrap();
                    let list: String = chars[next + 1..close].iter().collect();
                    uses.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&word.as_str()) || chars.get(next) == Some(&'(') {
                // An operator, aggregation or function.
            } else {
                let mut matchers = Vec::new();
                if chars.get(next) == Some(&'{') {
                    let close = next + chars[next..].iter().position(|&c| c == '}').unwrap();
                    let body: String = chars[next + 1..close].iter().collect();
                    for m in body.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                        let op_at = m.find(['=', '!']).unwrap();
                        let op_end = op_at + m[op_at..].find('"').unwrap();
                        matchers.push((
                            m[..op_at].trim().to_string(),
                            m[op_at..op_end].trim().to_string(),
                            m[op_end..].trim_matches('"').to_string(),
                        ));
                    }
                    i = close + 1;
                }
                uses.selectors.push((word, matchers));
            }
        } else {
            i += 1;
        }
    }
    uses
}

#[test]
fn the_scanner_finds_selectors_matchers_and_grouping_labels() {
    let found = uses(
        "sum by (namespace, env) (increase(a_total{result=\"failed\", env!=\"x\"}[30m:1m])) >= 3 \
         and on (env) b offset 1d or absent(c) unless time() - 2.5",
    );
    assert_eq!(
        found.selectors,
        [
            (
                "a_total".to_string(),
                vec![
                    ("result".to_string(), "=".to_string(), "failed".to_string()),
                    ("env".to_string(), "!=".to_string(), "x".to_string()),
                ]
            ),
            ("b".to_string(), vec![]),
            ("c".to_string(), vec![]),
        ]
    );
    assert_eq!(
        found.grouping,
        BTreeSet::from(["namespace".to_string(), "env".to_string()])
    );
}

#[test]
fn every_metric_and_label_the_alerts_use_is_one_the_daemon_exports() {
    let series = exposition(&exported().encode());
    assert!(
        series.contains_key("image_import_scheduler_imports_total"),
        "the exposition parser found nothing: {series:?}"
    );
    let mut problems = Vec::new();
    for (alert, expr) in alerts() {
        let used = uses(&expr);
        let mut labels: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
        // A metric whose labels are unknown (no sample above, or not
        // exported at all, a problem of its own) may bring the grouping
        // labels.
        let mut labels_unknown = false;
        for (metric, matchers) in &used.selectors {
            let known = match series.get(metric) {
                Some(Some(known)) => known,
                Some(None) => {
                    labels_unknown = true;
                    continue;
                }
                None => {
                    labels_unknown = true;
                    problems.push(format!(
                        "{alert}: {metric} is not a metric the daemon exports"
                    ));
                    continue;
                }
            };
            labels.extend(known.keys().map(String::as_str));
            for (label, op, value) in matchers {
                match known.get(label) {
                    None => problems.push(format!("{alert}: {metric} has no label {label}")),
                    Some(values) if op == "=" && !values.contains(value) => problems.push(format!(
                        "{alert}: {metric}{{{label}=\"{value}\"}} is never exported (values: {values:?})"
                    )),
                    Some(_) => {}
                }
            }
        }
        for label in &used.grouping {
            if !labels.contains(label.as_str()) && !labels_unknown {
                problems.push(format!(
                    "{alert}: groups by {label}, which none of its metrics has"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
