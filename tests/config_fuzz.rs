//! Configuration fuzzing.
//!
//! Pure: random documents built from the schema's keys (right and wrong
//! types), random cron expressions, durations and time zones, and random
//! bytes never panic `config::parse`; every rejection names a field and says
//! what is wrong; every accepted configuration can be run by the daemon's
//! decisions without panicking.
//!
//! Against the test cluster: a ConfigMap flipping between valid and invalid
//! every second leaves the last valid configuration in force (and says so in
//! metrics and Events), and extreme but valid values do not panic the
//! daemon.

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use import_scheduler::config::{self, Config, ConfigErrors, Loaded, Mode};
use import_scheduler::daemon::ConfigSource;
use import_scheduler::decide::{decide, passed_windows, wake_at, Decision};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_yaml_ng::{Mapping, Value};
use support::*;
use test_cluster::TestCluster;

const SEC: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- inputs

/// 2000-01-01 to 2100-01-01.
fn instant() -> BoxedStrategy<DateTime<Utc>> {
    (946_684_800i64..4_102_444_800i64)
        .prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range"))
        .boxed()
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn mapping(entries: Vec<(&str, Value)>) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (string(k), v)).collect())
}

// Valid values: most documents built from them parse, so the accepted path
// (schedule checks, the daemon's decisions) sees many configurations.

fn valid_duration() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (1u64..=90, prop::sample::select(vec!["s", "m", "h"]))
            .prop_map(|(n, u)| format!("{n}{u}")),
        2 => (1u64..=3, 0u64..=59).prop_map(|(h, m)| format!("{h}h{m}m")),
        1 => (1u64..=400).prop_map(|d| format!("{d}d")),
        // The largest values that still parse.
        1 => prop::sample::select(vec!["99999999999d", "0h99999999999m", "106751991167d", "18446744073709551615s"])
            .prop_map(String::from),
    ]
    .boxed()
}

fn cron_part(min: u32, max: u32) -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just("*".to_string()),
        3 => (min..=max).prop_map(|v| v.to_string()),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (1..=max.max(1)).prop_map(|s| format!("*/{s}")),
        1 => (min..=max, 1..=max.max(1)).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => prop::collection::btree_set(min..=max, 1..4).prop_map(|set| {
            set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }),
    ]
    .boxed()
}

fn valid_cron() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (
            cron_part(0, 59),
            cron_part(0, 23),
            cron_part(1, 31),
            cron_part(1, 12),
            cron_part(0, 7),
        )
            .prop_map(|(m, h, dom, mon, dow)| format!("{m} {h} {dom} {mon} {dow}")),
        1 => prop::sample::select(vec![
            "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually", "@midnight",
            "0 0 29 2 *", "0 2 * * 2", "30 2 * * *", "0 2 * * MON-FRI", "0 0 1 JAN *",
            "0 0 31 * *", "59 23 31 12 *",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Prague",
    "America/New_York",
    "America/Santiago",
    "Pacific/Apia",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Africa/Casablanca",
    "Etc/GMT+12",
    "Etc/GMT-14",
];

fn valid_environment() -> BoxedStrategy<Value> {
    let poll = prop::option::weighted(0.7, valid_duration());
    let paused = prop::option::weighted(0.2, any::<bool>());
    let streams = prop_oneof![
        4 => Just(None),
        1 => prop::collection::btree_set("[a-z][a-z0-9-]{0,10}[a-z0-9]", 1..3)
            .prop_map(|s| Some(("imageStreams", Value::Sequence(s.into_iter().map(string).collect())))),
        1 => ("[a-z]{1,8}", "[a-z0-9]{1,8}").prop_map(|(k, v)| {
            Some(("selector", mapping(vec![("matchLabels", mapping(vec![(k.as_str(), string(v))]))])))
        }),
    ];
    let windowed = (
        valid_cron(),
        prop::option::weighted(0.7, prop::sample::select(ZONES)),
        prop::option::weighted(0.8, valid_duration()),
        prop::option::weighted(0.3, prop::sample::select(vec!["skip", "importNow"])),
    );
    (
        prop::sample::select(vec!["packit-prod", "packit-stg", "ns"]),
        prop::option::weighted(0.5, "[a-z0-9_][a-z0-9_.-]{0,10}"),
        prop::option::weighted(0.6, windowed),
        poll,
        paused,
        streams,
    )
        .prop_map(|(ns, tag, windowed, poll, paused, streams)| {
            let mut env = vec![("namespace", string(ns))];
            if let Some(t) = tag {
                env.push(("tag", string(t)));
            }
            match windowed {
                Some((cron, tz, window, missed)) => {
                    env.push(("mode", string("windowed")));
                    env.push(("schedule", string(cron)));
                    if let Some(tz) = tz {
                        env.push(("timeZone", string(tz)));
                    }
                    if let Some(w) = window {
                        env.push(("window", string(w)));
                    }
                    if let Some(m) = missed {
                        env.push(("onMissedWindow", string(m)));
                    }
                }
                None => env.push(("mode", string("immediate"))),
            }
            if let Some(p) = poll {
                env.push(("pollInterval", string(p)));
            }
            if let Some(p) = paused {
                env.push(("paused", Value::Bool(p)));
            }
            if let Some((k, v)) = streams {
                env.push((k, v));
            }
            mapping(env)
        })
        .boxed()
}

// Invalid or odd values, for the keys they belong to and anywhere else.

fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0u64..100).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => (-5i64..0).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn duration_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => valid_duration(),
        2 => prop::sample::select(vec![
            "0s", "0m", "-1s", "1.5h", "", "h", "5", "1y", "1w", "30m1h", "1h1h", " 1h ",
            "1ms", "1d12h30m15s", "1 h", "106751991168d",
        ])
        .prop_map(String::from),
        2 => (
            number_text(),
            prop::sample::select(vec!["s", "m", "h", "d", "ms", "w", "", "S", "µs"])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        1 => (number_text(), number_text()).prop_map(|(h, m)| format!("{h}h{m}m")),
    ]
    .boxed()
}

fn cron_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0u32..=70).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["99", "4294967296", "-1", "007"]).prop_map(String::from),
        1 => prop::sample::select(vec![
            "MON", "sun", "Jan", "DEC", "FRI", "xyz", "L", "W", "?", "#", "5L", "1#2",
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

fn cron_atom() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just("*".to_string()),
        3 => cron_value(),
        2 => (cron_value(), cron_value()).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => (cron_value(), cron_value()).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (cron_value(), cron_value(), cron_value()).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
        2 => cron_value().prop_map(|s| format!("*/{s}")),
    ]
    .boxed()
}

fn cron_field() -> BoxedStrategy<String> {
    prop::collection::vec(cron_atom(), 1..4)
        .prop_map(|atoms| atoms.join(","))
        .boxed()
}

/// Cron expressions: valid ones, five fields of odd atoms, the wrong field
/// count, macros and prefixes the daemon rejects, and free text.
fn cron_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => valid_cron(),
        3 => prop::collection::vec(cron_field(), 5).prop_map(|f| f.join(" ")),
        1 => prop::collection::vec(cron_field(), 0..8).prop_map(|f| f.join("  ")),
        1 => prop::sample::select(vec![
            "@every 1h", "@reboot", "@never", "TZ=Europe/Prague 0 2 * * *",
            "CRON_TZ=UTC 0 2 * * *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * * * *",
            "0 0 1 1 * *", "0 0 1 1", "0 0 ? * MON", "0 0 L * *",
        ])
        .prop_map(String::from),
        1 => "[ -~]{0,30}",
    ]
    .boxed()
}

fn time_zone_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(ZONES).prop_map(String::from),
        2 => prop::sample::select(vec![
            "europe/prague", "Local", "Mars/Olympus_Mons", "", "+02:00", "Europe/Prague ",
            "CET", "US/Pacific-New",
        ])
        .prop_map(String::from),
        1 => "[A-Za-z_/+-]{0,20}",
    ]
    .boxed()
}

const TOP_KEYS: &[&str] = &["environments", "import"];
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
];
const WORDS: &[&str] = &[
    "immediate",
    "windowed",
    "sometimes",
    "Windowed",
    "skip",
    "importNow",
    "prod",
    "stg",
    "packit-prod",
    "Packit_Prod",
    "-prod",
    "prod-",
    "matchLabels",
    "app",
    "app=packit",
    "true",
    "yes",
    "~",
    "",
    " ",
];

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        ".{0,20}".prop_map(string),
        duration_text().prop_map(string),
        cron_text().prop_map(string),
        time_zone_text().prop_map(string),
        prop::sample::select(WORDS).prop_map(string),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::sample::select([TOP_KEYS, ENV_KEYS, WORDS].concat()).prop_map(string),
        2 => "[a-zA-Z]{0,12}".prop_map(string),
        1 => any::<i64>().prop_map(|n| Value::Number(n.into())),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
    .boxed()
}

/// Any YAML value, nested a few levels deep.
fn any_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
                prop::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Value::Mapping(kv.into_iter().collect::<Mapping>())),
            ]
        })
        .boxed()
}

/// A value for an environment key: one of its own kind, or anything.
fn env_key_value(name: &'static str) -> BoxedStrategy<Value> {
    let own: BoxedStrategy<Value> = match name {
        "pollInterval" | "window" => duration_text().prop_map(string).boxed(),
        "schedule" => cron_text().prop_map(string).boxed(),
        "timeZone" => time_zone_text().prop_map(string).boxed(),
        "paused" => any::<bool>().prop_map(Value::Bool).boxed(),
        "imageStreams" => prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["packit-worker", "a.b", "Bad_Name", "", "-x"])
                    .prop_map(string),
                scalar(),
            ],
            0..4,
        )
        .prop_map(Value::Sequence)
        .boxed(),
        "selector" => prop::collection::vec((key(), scalar()), 0..3)
            .prop_map(|labels| {
                mapping(vec![(
                    "matchLabels",
                    Value::Mapping(labels.into_iter().collect()),
                )])
            })
            .boxed(),
        _ => prop::sample::select(WORDS).prop_map(string).boxed(),
    };
    prop_oneof![4 => own, 1 => any_value()].boxed()
}

/// A valid environment with one to three edits: a key set to another value
/// (often of the wrong kind), a key removed, or an unknown key added.
fn environment() -> BoxedStrategy<Value> {
    let edit = prop_oneof![
        4 => prop::sample::select(ENV_KEYS)
            .prop_flat_map(|k| env_key_value(k).prop_map(move |v| (Some(string(k)), Some(v)))),
        1 => prop::sample::select(ENV_KEYS).prop_map(|k| (Some(string(k)), None)),
        1 => (key(), any_value()).prop_map(|(k, v)| (Some(k), Some(v))),
    ];
    (valid_environment(), prop::collection::vec(edit, 0..3))
        .prop_map(|(env, edits)| {
            let Value::Mapping(mut env) = env else {
                unreachable!("valid_environment builds a mapping")
            };
            for (k, v) in edits {
                match (k, v) {
                    (Some(k), Some(v)) => {
                        env.insert(k, v);
                    }
                    (Some(k), None) => {
                        env.remove(&k);
                    }
                    _ => {}
                }
            }
            Value::Mapping(env)
        })
        .boxed()
}

/// A whole document: environments (valid, edited and anything), import
/// settings, and sometimes an unknown key or a non-mapping root.
fn document() -> BoxedStrategy<Value> {
    let env_name = prop_oneof![
        8 => prop::sample::select(vec!["prod", "stg", "stg-2"]).prop_map(string),
        1 => prop::sample::select(vec!["Prod", "-x", "", " ", "a-very-long-name-that-is-longer-than-sixty-three-characters-for-sure"]).prop_map(string),
        1 => key(),
    ];
    let env = prop_oneof![
        4 => valid_environment(),
        4 => environment(),
        1 => any_value(),
    ];
    let environments = prop_oneof![
        8 => prop::collection::vec((env_name, env), 0..4)
            .prop_map(|envs| Value::Mapping(envs.into_iter().collect())),
        1 => any_value(),
    ];
    let import = (
        prop::option::weighted(0.5, duration_text()),
        prop::option::weighted(
            0.5,
            prop_oneof![
                4 => (0i64..=70).prop_map(|n| Value::Number(n.into())),
                1 => scalar(),
            ],
        ),
    )
        .prop_map(|(timeout, concurrency)| {
            let mut m = Vec::new();
            if let Some(t) = timeout {
                m.push(("timeout", string(t)));
            }
            if let Some(c) = concurrency {
                m.push(("concurrency", c));
            }
            mapping(m)
        });
    let root = (
        environments,
        prop::option::weighted(0.3, prop_oneof![4 => import, 1 => any_value()]),
        prop::option::weighted(0.05, (key(), any_value())),
    )
        .prop_map(|(envs, import, extra)| {
            let mut m = Mapping::new();
            m.insert(string("environments"), envs);
            if let Some(i) = import {
                m.insert(string("import"), i);
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Mapping(m)
        });
    prop_oneof![30 => root, 1 => any_value()].boxed()
}

/// A windowed environment whose schedule parts are random and everything
/// else is valid: the schedule checks and the daemon's decisions see many
/// real (and odd) schedules.
fn windowed_yaml() -> BoxedStrategy<String> {
    (
        prop_oneof![3 => valid_cron(), 1 => cron_text()],
        prop_oneof![3 => prop::sample::select(ZONES).prop_map(String::from), 1 => time_zone_text()],
        prop_oneof![3 => valid_duration(), 1 => duration_text()],
        prop_oneof![3 => valid_duration(), 1 => duration_text()],
        prop::sample::select(vec!["skip", "importNow"]),
    )
        .prop_map(|(cron, tz, window, poll, missed)| {
            let q = |s: &str| serde_json::to_string(s).expect("a JSON string is YAML");
            format!(
                "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: {}\n    timeZone: {}\n    window: {}\n    pollInterval: {}\n    onMissedWindow: {missed}\n",
                q(&cron),
                q(&tz),
                q(&window),
                q(&poll)
            )
        })
    .boxed()
}

// ---------------------------------------------------------------- checks

/// The parser's contract: a configuration, or a non-empty list of errors
/// each naming a field and saying what is wrong.
fn check_result(
    text: &str,
    result: Result<Loaded, ConfigErrors>,
) -> Result<Option<Config>, TestCaseError> {
    match result {
        Ok(loaded) => {
            for w in &loaded.warnings {
                prop_assert!(
                    !w.path.trim().is_empty() && !w.message.trim().is_empty(),
                    "warning without path or message: {w:?}\ninput:\n{text}"
                );
            }
            prop_assert!(
                !loaded.config.environments.is_empty(),
                "accepted without environments:\n{text}"
            );
            Ok(Some(loaded.config))
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "rejected without saying why:\n{text}");
            for e in &errors.0 {
                prop_assert!(
                    !e.path.trim().is_empty(),
                    "error without a field path: {e:?}\ninput:\n{text}"
                );
                prop_assert!(
                    !e.message.trim().is_empty(),
                    "error without a message: {e:?}\ninput:\n{text}"
                );
            }
            // What `check` and the Events print.
            prop_assert!(errors.to_string().contains(&errors.0[0].path));
            Ok(None)
        }
    }
}

/// Runs the daemon's pure decisions on an accepted configuration around
/// `now`, and checks they are consistent with the schedule.
fn run_decisions(config: &Config, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    prop_assert!(config.import.concurrency >= 1);
    prop_assert!(!config.import.timeout.is_zero());
    for env in config.environments.values() {
        prop_assert!(env.poll_interval >= SEC, "{env:?}");
        for t in [now, now + TimeDelta::minutes(59), now + TimeDelta::days(3)] {
            for catch_up in [false, true] {
                let d = decide(env, t, catch_up);
                let wake = wake_at(&d, t, t + TimeDelta::seconds(1), None);
                prop_assert!(wake >= t, "wakes before now: {d:?} at {t}");
                match (&d, &env.mode) {
                    (Decision::InWindow(w), _) => {
                        prop_assert!(w.contains(t), "{w:?} does not contain {t}");
                        prop_assert!(wake <= w.end);
                    }
                    (Decision::Wait { next: Some(w) }, _) => {
                        prop_assert!(w.start > t, "next window {w:?} not after {t}")
                    }
                    (Decision::Follow, Mode::Immediate) | (Decision::Paused, _) => {}
                    (Decision::Wait { next: None }, Mode::Windowed { .. })
                    | (Decision::CatchUp, Mode::Windowed { .. }) => {}
                    (other, mode) => prop_assert!(false, "{other:?} for {mode:?}"),
                }
            }
            if let Mode::Windowed { schedule, .. } = &env.mode {
                let windows: Vec<_> = schedule.windows(t).take(3).collect();
                for pair in windows.windows(2) {
                    prop_assert!(pair[0].end <= pair[1].start, "overlap: {pair:?}");
                }
                let passed = passed_windows(schedule, t - TimeDelta::days(30), t);
                prop_assert!(passed.iter().all(|w| w.end <= t));
            }
        }
    }
    Ok(())
}

/// 512 cases per property from a fixed seed, so CI runs are repeatable;
/// `PROPTEST_RNG_SEED=<n>` (or `PROPTEST_CASES`) explores further.
fn fuzz_config() -> ProptestConfig {
    let mut config = ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_some() {
        config.cases = ProptestConfig::default().cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x1b5e_ed00_c0f1_6000);
    }
    config
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn documents_from_the_schema_never_panic_the_parser(doc in document(), now in instant()) {
        let text = serde_yaml_ng::to_string(&doc).expect("a generated value serialises");
        if let Some(config) = check_result(&text, config::parse(&text, now))? {
            run_decisions(&config, now)?;
        }
    }

    #[test]
    fn random_schedules_never_panic_the_parser_or_the_decisions(text in windowed_yaml(), now in instant()) {
        if let Some(config) = check_result(&text, config::parse(&text, now))? {
            run_decisions(&config, now)?;
        }
    }

    #[test]
    fn random_text_never_panics_the_parser(text in "(?s)[ -~\t\n\u{80}-\u{10ffff}]{0,300}", now in instant()) {
        check_result(&text, config::parse(&text, now))?;
    }

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_result(&text, config::parse(&text, Utc::now()))?;
    }

    #[test]
    fn yaml_punctuation_never_panics_the_parser(
        text in "[ \n:\\-\\[\\]{},#&*!|>'\"%@`?a-z0-9]{0,200}",
        now in instant(),
    ) {
        check_result(&text, config::parse(&text, now))?;
    }
}

/// Nesting far beyond any configuration: rejected with a message, not a
/// stack overflow (which would abort the whole process).
#[test]
fn deeply_nested_documents_are_rejected() {
    for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "")] {
        let text = if close.is_empty() {
            let depth = 1_000;
            (0..depth)
                .map(|i| format!("{}{open}", " ".repeat(i * 2)))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            let depth = 2_000;
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        };
        match config::parse(&text, Utc::now()) {
            Ok(l) => panic!("accepted a nested document: {:?}", l.config),
            Err(e) => assert!(!e.0.is_empty() && !e.0[0].path.is_empty(), "{e:?}"),
        }
    }
}

/// Cases the fuzzing found, kept as plain tests so they run whatever the seed.
#[test]
fn an_unknown_blank_key_is_reported_with_a_field_path() {
    for text in ["'': 1\nenvironments: {}\n", "' ': null\n"] {
        let errors = config::parse(text, Utc::now()).expect_err("rejected");
        for e in &errors.0 {
            assert!(
                !e.path.trim().is_empty(),
                "error without a field path for {text:?}: {e:?}"
            );
        }
    }
}

#[test]
fn windows_longer_than_the_gap_of_a_rare_schedule_are_rejected() {
    // 29 February: the gap between window starts is four years, beyond the
    // one-year horizon the overlap check looks at.
    let now = "2026-01-01T00:00:00Z".parse().expect("a timestamp");
    let text = "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 0 29 2 *\"\n    window: 2000d\n";
    match config::parse(text, now) {
        Ok(loaded) => {
            let env = &loaded.config.environments["prod"];
            let Mode::Windowed { schedule, .. } = &env.mode else {
                unreachable!("windowed")
            };
            let w: Vec<_> = schedule.windows(now).take(2).collect();
            panic!("accepted overlapping windows {w:?}");
        }
        Err(errors) => assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == "environments.prod.window"),
            "{errors}"
        ),
    }
}

/// A syntax error points at the line and column to fix, whichever YAML
/// parser reads the document.
#[test]
fn malformed_yaml_is_reported_with_its_line_and_column() {
    for (text, at) in [
        // The flow mapping opened on line 3 is never closed: the parser stops
        // at the first token that cannot continue it.
        (
            "environments:\n  prod:\n    {namespace: packit-prod\n    tag: prod\n",
            "line 4, column 8",
        ),
        // A tab cannot indent YAML.
        (
            "environments:\n  prod:\n\tnamespace: packit-prod\n",
            "line 3, column 1",
        ),
        // A second `:` in a plain value, at the column of that `:`.
        (
            "environments:\n  prod:\n    namespace: a: b\n",
            "line 3, column 17",
        ),
    ] {
        let errors = config::parse(text, Utc::now()).expect_err("malformed YAML accepted");
        let [e] = errors.0.as_slice() else {
            panic!("one error expected for {text:?}: {errors}")
        };
        assert_eq!(e.path, "(document)", "{e:?}");
        assert!(
            e.message.starts_with(&format!("not valid YAML at {at}:")),
            "{text:?}: expected the error at {at}, got: {}",
            e.message
        );
    }
}
// ---------------------------------------------------- against the cluster

fn configmap(ns: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "image-import-scheduler", "namespace": ns},
        "data": data,
    })
}

async fn put_config(cluster: &TestCluster, ns: &str, data: serde_json::Value) {
    cluster
        .admin_request(
            "PUT",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler"),
            Some(configmap(ns, data)),
        )
        .await
        .expect("update the configuration ConfigMap");
}

async fn imported(cluster: &TestCluster, ns: &str, stream: &str, digest: &str) {
    eventually(
        15 * SEC,
        &format!("{stream} to be imported at {digest}"),
        || async {
            match newest(cluster, ns, stream, "stg").await {
                (Some(d), _) if d == digest => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// Every second the ConfigMap changes: invalid, valid, invalid, ... The
/// schedule in force is always the last valid one, the daemon keeps
/// running, and `config_valid` and ConfigInvalid Events say what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_flipping_between_valid_and_invalid_keeps_the_last_valid_schedule() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "cfg-flip", "stg", &["stream-a", "stream-b"]).await;
    let valid = |streams: &str, extra: &str| {
        serde_json::json!({"config.yaml": format!(
            "environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n    imageStreams: [{streams}]\n{extra}"
        )})
    };
    // Each invalid edit, and the field its Event must name.
    let invalid = [
        (
            serde_json::json!({"config.yaml": format!("environments:\n  stg:\n    namespace: {ns}\n    mode: sometimes\n")}),
            "environments.stg.mode",
        ),
        (
            serde_json::json!({"config.yaml": "environments: [unclosed\n"}),
            "not valid YAML",
        ),
        (
            serde_json::json!({"other.yaml": "environments: {}\n"}),
            "config.yaml",
        ),
        (
            serde_json::json!({"config.yaml": format!("environments:\n  stg:\n    namespace: {ns}\n    mode: windowed\n    schedule: \"61 * * * *\"\n")}),
            "environments.stg.schedule",
        ),
    ];
    cluster
        .admin_request(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(configmap(&ns, valid("stream-a", ""))),
        )
        .await
        .expect("create the configuration ConfigMap");
    let source = ConfigSource::ConfigMap {
        namespace: ns.clone(),
        name: "image-import-scheduler".into(),
        key: "config.yaml".into(),
    };
    let daemon = start_daemon(cluster, DaemonSpec::new(&ns, source));
    eventually(20 * SEC, "the daemon to be ready", || async {
        match tokio::time::timeout(SEC, http_request(daemon.port, "GET", "/readyz", &[], "")).await
        {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // invalid, valid(a), invalid, valid(a), invalid, valid(b), invalid: the
    // last valid edit selects stream-b only.
    enum Edit {
        Invalid(usize),
        OnlyA,
        OnlyB,
    }
    let flips = [
        Edit::Invalid(0),
        Edit::OnlyA,
        Edit::Invalid(1),
        Edit::OnlyA,
        Edit::Invalid(2),
        Edit::OnlyB,
        Edit::Invalid(3),
    ];
    let repo_a = format!("{ns}/stream-a");
    let repo_b = format!("{ns}/stream-b");
    let mut pushed_a = None;
    for (i, flip) in flips.iter().enumerate() {
        match flip {
            Edit::Invalid(n) => put_config(cluster, &ns, invalid[*n].0.clone()).await,
            Edit::OnlyA => put_config(cluster, &ns, valid("stream-a", "")).await,
            Edit::OnlyB => put_config(cluster, &ns, valid("stream-b", "")).await,
        }
        if i == 0 {
            // Pushed while an invalid edit is the ConfigMap's content.
            pushed_a = Some(cluster.registry().push_image(&repo_a, "stg").await.unwrap());
        }
        tokio::time::sleep(SEC).await;
        assert!(!daemon.handle.is_finished(), "the daemon stopped");
    }
    let pushed_a = pushed_a.expect("pushed during the flipping");
    imported(cluster, &ns, "stream-a", &pushed_a).await;

    // The ConfigMap is invalid now; the last valid configuration (stream-b
    // only) is in force: a push to b is imported, one to a is not.
    let a2 = cluster.registry().push_image(&repo_a, "stg").await.unwrap();
    let b1 = cluster.registry().push_image(&repo_b, "stg").await.unwrap();
    imported(cluster, &ns, "stream-b", &b1).await;
    // Two more polls of stream-b's environment: stream-a would have been seen.
    tokio::time::sleep(2 * SEC).await;
    assert_ne!(
        newest(cluster, &ns, "stream-a", "stg").await.0.as_deref(),
        Some(a2.as_str()),
        "stream-a is not selected by the last valid configuration"
    );

    let metrics = eventually(10 * SEC, "four invalid reloads counted", || async {
        let m = daemon.metrics().await;
        match metric_value(
            &m,
            "image_import_scheduler_config_reloads_total{result=\"invalid\"}",
        ) {
            Some(n) if n == invalid.len() as f64 => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        metric_value(&metrics, "image_import_scheduler_config_valid"),
        Some(0.0),
        "the ConfigMap's content is invalid: {metrics}"
    );
    let notes = eventually(
        10 * SEC,
        "a ConfigInvalid Event per invalid edit",
        || async {
            let e = events(cluster, &ns, "ConfigInvalid").await;
            let total: u64 = e.iter().map(event_count).sum();
            if total == invalid.len() as u64 {
                Ok(e.iter()
                    .map(|e| e["note"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>())
            } else {
                Err(format!("{total}: {e:?}"))
            }
        },
    )
    .await;
    for (_, field) in &invalid {
        assert!(
            notes.iter().any(|n| n.contains(field)),
            "an Event names `{field}`: {notes:?}"
        );
    }
    assert_eq!(
        http_request(daemon.port, "GET", "/healthz", &[], "")
            .await
            .0,
        200,
        "the daemon stays healthy"
    );

    // A valid edit that changes behaviour takes effect.
    put_config(cluster, &ns, valid("stream-b", "    paused: true\n")).await;
    eventually(10 * SEC, "the environment to be paused", || async {
        let m = daemon.metrics().await;
        match (
            metric_value(&m, "image_import_scheduler_environment_paused{env=\"stg\"}"),
            metric_value(&m, "image_import_scheduler_config_valid"),
        ) {
            (Some(p), Some(v)) if p == 1.0 && v == 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let b2 = cluster.registry().push_image(&repo_b, "stg").await.unwrap();
    tokio::time::sleep(3 * SEC).await;
    assert_eq!(
        newest(cluster, &ns, "stream-b", "stg").await.0.as_deref(),
        Some(b1.as_str()),
        "nothing is imported while paused"
    );
    // The push was importable: unpausing imports it.
    put_config(cluster, &ns, valid("stream-b", "")).await;
    imported(cluster, &ns, "stream-b", &b2).await;
    daemon.stop().await;
}

/// The next minute of the real clock, as a daily cron expression: a
/// window that opened at most a minute ago and stays open for its length.
fn open_window_schedule() -> String {
    let now = Utc::now();
    format!("{} {} * * *", now.minute(), now.hour())
}

/// Durations the parser accepts at the edge of what fits: the daemon runs
/// them without panicking (a panic would abort the release build, whose
/// profile is `panic = "abort"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_valid_durations_do_not_panic_the_daemon() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "cfg-extreme", "stg", &["packit-worker"]).await;
    let prod_repo = format!("{ns}/packit-service");
    cluster
        .registry()
        .push_image(&prod_repo, "prod")
        .await
        .unwrap();
    cluster
        .seed_stream(
            &ns,
            "packit-service",
            &[test_cluster::TagSeed::new(
                "prod",
                cluster.registry().image_ref(&prod_repo, "prod"),
            )],
        )
        .await
        .unwrap();
    let stg = cluster
        .registry()
        .push_image(&format!("{ns}/packit-worker"), "stg")
        .await
        .unwrap();
    let prod = cluster
        .registry()
        .push_image(&prod_repo, "prod")
        .await
        .unwrap();
    let huge = "99999999999d";
    let text = format!(
        "environments:\n  stg:\n    namespace: {ns}\n    tag: stg\n    mode: immediate\n    pollInterval: {huge}\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"{}\"\n    window: 30m\n    pollInterval: {huge}\nimport:\n  timeout: {huge}\n",
        open_window_schedule()
    );
    config::parse(&text, Utc::now()).expect("the configuration is valid");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &text);
    let daemon = ChildDaemon::spawn(cluster, &cfg, &ns, "extreme-0", dir.path().join("log"));

    for (stream, tag, digest) in [
        ("packit-worker", "stg", &stg),
        ("packit-service", "prod", &prod),
    ] {
        eventually(20 * SEC, &format!("{stream}:{tag} imported"), || async {
            match newest(cluster, &ns, stream, tag).await {
                (Some(d), _) if &d == digest => Ok(()),
                other => Err(format!("{other:?}; log:\n{}", daemon.logs())),
            }
        })
        .await;
    }
    // The loops go on to plan their next poll.
    eventually(
        10 * SEC,
        "the status ConfigMap of both environments",
        || async {
            let cm = cluster
                .admin_request(
                    "GET",
                    &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            if cm["data"]["stg"].is_string() && cm["data"]["prod"].is_string() {
                Ok(())
            } else {
                Err(cm.to_string())
            }
        },
    )
    .await;
    tokio::time::sleep(2 * SEC).await;
    let logs = daemon.logs();
    assert!(
        !logs.contains("panicked"),
        "the daemon panicked on a valid configuration:\n{logs}"
    );
    daemon.signal("TERM");
    let log_path = daemon.log.clone();
    let status = daemon.wait().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after SIGTERM; log:\n{}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    );
}

/// A shutdown grace period at the edge of what the setting accepts: the
/// daemon either refuses it at start (exit 2, naming the variable) or shuts
/// down on SIGTERM with exit 0, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extreme_shutdown_grace_does_not_panic_on_sigterm() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let ns = seed(cluster, "cfg-grace", "stg", &["packit-worker"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!("environments:\n  stg:\n    namespace: {ns}\n    mode: immediate\n    pollInterval: 1s\n"),
    );
    let mut daemon = ChildDaemon::spawn_with(
        cluster,
        &cfg,
        &ns,
        "grace-0",
        dir.path().join("log"),
        &[("IMPORT_SCHEDULER_SHUTDOWN_GRACE", "18446744073709551615s")],
    );
    let port = daemon.port;
    let refused = eventually(
        20 * SEC,
        "the daemon to be ready or to refuse the setting",
        || {
            let exited = daemon.child.try_wait().expect("wait for the daemon");
            async move {
                if let Some(status) = exited {
                    return Ok(Some(status));
                }
                match tokio::time::timeout(SEC, http_request(port, "GET", "/readyz", &[], "")).await
                {
                    Ok((200, _)) => Ok(None),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let logs = daemon.logs();
    match refused {
        Some(status) => {
            assert_eq!(status.code(), Some(2), "refused as bad input:\n{logs}");
            assert!(logs.contains("SHUTDOWN_GRACE"), "{logs}");
        }
        None => {
            daemon.signal("TERM");
            let log_path = daemon.log.clone();
            let status = daemon.wait().await;
            let logs = std::fs::read_to_string(log_path).unwrap_or_default();
            assert!(!logs.contains("panicked"), "panicked on SIGTERM:\n{logs}");
            assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM:\n{logs}");
        }
    }
}
