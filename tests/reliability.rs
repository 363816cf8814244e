//! The reliability suite: the daemon against a misbehaving API server and
//! registry, a failover in the middle of a window, and processes killed at
//! random points. Every test checks what a user would notice: the image
//! streams' histories, Events, metrics and the status ConfigMap.
//!
//! Windows open a few seconds after a test starts: in-process daemons run on
//! a clock shifted to just before 03:00 UTC; the daemon binary (which cannot
//! shift its clock) gets a daily schedule whose window opened this minute.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use import_scheduler::clock::sleep_until;
use import_scheduler::daemon::ConfigSource;
use import_scheduler::state::EnvState;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;
use support::*;
use test_cluster::{FaultKind, FaultRule, TagSeed, TestCluster};

const SEC: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- helpers

/// The next 03:00 UTC after now: a daily window start far from the real clock.
fn next_three_am() -> DateTime<Utc> {
    let now = Utc::now();
    let today = now
        .date_naive()
        .and_hms_opt(3, 0, 0)
        .expect("03:00 exists")
        .and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

/// One windowed environment opening daily at 03:00 UTC.
fn windowed(env: &str, ns: &str, window: &str) -> String {
    format!(
        "  {env}:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 3 * * *\"\n    timeZone: UTC\n    window: {window}\n    pollInterval: 1s\n"
    )
}

fn status_500() -> FaultKind {
    FaultKind::Status {
        code: 500,
        retry_after_secs: None,
    }
}

/// Every POST to the image API of `ns` (previews and imports share the path).
fn imports_of(ns: &str, kind: FaultKind) -> FaultRule {
    FaultRule::new(format!("/namespaces/{ns}/imagestreamimports"), kind).method("POST")
}

/// Pushes a new image for every stream; returns stream -> digest.
async fn push_all(
    cluster: &TestCluster,
    ns: &str,
    streams: &[&str],
    tag: &str,
) -> BTreeMap<String, String> {
    let mut pushed = BTreeMap::new();
    for s in streams {
        let d = cluster
            .registry()
            .push_image(&format!("{ns}/{s}"), tag)
            .await
            .expect("push");
        pushed.insert(s.to_string(), d);
    }
    pushed
}

/// Every history item's digest of `ns/stream:tag`, newest first.
async fn history(cluster: &TestCluster, ns: &str, stream: &str, tag: &str) -> Vec<String> {
    let is = cluster.stream(ns, stream).await.expect("read the stream");
    is["status"]["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["tag"] == tag))
        .and_then(|t| t["items"].as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every stream's newest history item is the digest given for it.
async fn all_imported(
    cluster: &TestCluster,
    ns: &str,
    tag: &str,
    want: &BTreeMap<String, String>,
    timeout: Duration,
) {
    eventually(timeout, &format!("every tag of {ns} imported"), || async {
        let mut behind = Vec::new();
        for (stream, digest) in want {
            let (newest, _) = newest(cluster, ns, stream, tag).await;
            if newest.as_deref() != Some(digest.as_str()) {
                behind.push(format!("{stream} at {newest:?}, want {digest}"));
            }
        }
        if behind.is_empty() {
            Ok(())
        } else {
            Err(behind.join("; "))
        }
    })
    .await;
}

/// Events with `reason` regarding `stream`, and their notes.
async fn notes(cluster: &TestCluster, ns: &str, reason: &str, stream: &str) -> Vec<String> {
    events(cluster, ns, reason)
        .await
        .iter()
        .filter(|e| e["regarding"]["name"] == stream)
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// How often each `(stream, digest)` was reported imported (ImportSucceeded
/// Events, repeats included), and by which replicas.
async fn imports_reported(
    cluster: &TestCluster,
    ns: &str,
) -> BTreeMap<(String, String), (u64, BTreeSet<String>)> {
    let mut counts: BTreeMap<(String, String), (u64, BTreeSet<String>)> = BTreeMap::new();
    for e in events(cluster, ns, "ImportSucceeded").await {
        let stream = e["regarding"]["name"].as_str().unwrap_or_default();
        let note = e["note"].as_str().unwrap_or_default();
        // "<stream>:<tag> imported <digest> (was ...) [...]"
        let digest = note
            .split_once(" imported ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_default();
        let entry = counts
            .entry((stream.to_string(), digest.to_string()))
            .or_default();
        entry.0 += event_count(&e);
        entry
            .1
            .insert(e["reportingInstance"].as_str().unwrap_or_default().into());
    }
    counts
}

/// The status ConfigMap's data, if it exists.
async fn status_data(cluster: &TestCluster, ns: &str) -> Option<BTreeMap<String, String>> {
    let cm = cluster
        .admin_request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
            None,
        )
        .await
        .ok()?;
    serde_json::from_value(cm["data"].clone()).ok()
}

/// One environment's value in the status ConfigMap, as JSON.
async fn env_status(cluster: &TestCluster, ns: &str, env: &str) -> Option<Value> {
    let data = status_data(cluster, ns).await?;
    serde_json::from_str(data.get(env)?).ok()
}

fn is_digest(v: &Value) -> bool {
    v.as_str().is_some_and(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

fn is_time_or_null(v: &Value) -> bool {
    v.is_null()
        || v.as_str()
            .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok())
}

/// Checks one environment's status value against the documented shape
/// (`state::EnvState`, camelCase JSON).
fn check_shape(env: &str, raw: &str) -> Result<Value, String> {
    EnvState::from_json(raw).map_err(|e| format!("{env}: not an EnvState: {e}: {raw}"))?;
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("{env}: {e}"))?;
    let bad = |what: &str| Err(format!("{env}: {what}: {raw}"));
    if !(v["windowId"].is_null() || v["windowId"].is_string()) {
        return bad("windowId is neither null nor a string");
    }
    for key in ["windowStart", "windowEnd", "updatedAt"] {
        if !is_time_or_null(&v[key]) {
            return bad(&format!("{key} is not an RFC 3339 time"));
        }
    }
    if !v["history"].is_array() {
        return bad("history is not a list");
    }
    let Some(tags) = v["tags"].as_object() else {
        return bad("tags is not a mapping");
    };
    for (key, tag) in tags {
        if !key.contains(':') {
            return bad(&format!("tag key {key} is not stream:tag"));
        }
        let outcome = tag["lastOutcome"].as_str().unwrap_or_default();
        if !["updated", "unchanged", "failed", "held"].contains(&outcome) {
            return bad(&format!("{key}: unknown lastOutcome {outcome:?}"));
        }
        if !is_time_or_null(&tag["at"]) || tag["at"].is_null() {
            return bad(&format!("{key}: `at` is not a time"));
        }
        for d in ["digestBefore", "digestAfter"] {
            if !(tag[d].is_null() || is_digest(&tag[d])) {
                return bad(&format!("{key}: {d} is not a digest"));
            }
        }
        if !tag["importedInWindow"].is_boolean() || !tag["attempts"].is_u64() {
            return bad(&format!(
                "{key}: importedInWindow/attempts of the wrong type"
            ));
        }
    }
    Ok(v)
}

// ------------------------------------------------------------- API faults

/// 500s, 429 with Retry-After, hanging requests, dropped connections,
/// conflicts on first tries and a failing listing, each in its own
/// environment of one daemon: it stays healthy, retries inside the window,
/// imports every tag before the window closes, and reports the failures it
/// retried through without reporting a missed window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_inside_a_window_are_retried_until_every_tag_is_imported() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let streams = ["packit-service", "packit-worker"];
    let envs = ["e500", "e429", "hang", "drop", "conflict", "listing"];
    let prefixes: Vec<String> = envs.iter().map(|env| format!("rel-api-{env}")).collect();
    let namespaces: Vec<String> =
        futures::future::join_all(prefixes.iter().map(|p| seed(cluster, p, "prod", &streams)))
            .await;
    let mut pushed = BTreeMap::new();
    for ns in &namespaces {
        pushed.insert(ns.clone(), push_all(cluster, ns, &streams, "prod").await);
    }
    let ns_of = |env: &str| namespaces[envs.iter().position(|e| *e == env).expect("env")].clone();

    // Four failures per stream: every attempt of each tag's first call fails,
    // so the scheduler's own retry is what brings the tag in.
    let per_call = 4 * streams.len() as u32;
    let faults = cluster.faults();
    let rules = [
        (
            "e500",
            faults.add(imports_of(&ns_of("e500"), status_500()).times(per_call)),
            Some("HTTP 500"),
        ),
        (
            "e429",
            faults.add(
                imports_of(
                    &ns_of("e429"),
                    FaultKind::Status {
                        code: 429,
                        retry_after_secs: Some(1),
                    },
                )
                .times(per_call),
            ),
            Some("HTTP 429"),
        ),
        (
            "hang",
            faults.add(imports_of(&ns_of("hang"), FaultKind::Hang).times(per_call)),
            Some("timed out"),
        ),
        (
            "drop",
            faults.add(imports_of(&ns_of("drop"), FaultKind::Drop).times(per_call)),
            Some("cannot reach the API server"),
        ),
        // One conflict per stream: each is absorbed by the call's own retry.
        (
            "conflict",
            faults.add(
                imports_of(
                    &ns_of("conflict"),
                    FaultKind::Status {
                        code: 409,
                        retry_after_secs: None,
                    },
                )
                .times(streams.len() as u32),
            ),
            None,
        ),
        (
            "listing",
            faults.add(
                FaultRule::new(
                    format!("/namespaces/{}/imagestreams?", ns_of("listing")),
                    status_500(),
                )
                .method("GET")
                .times(4),
            ),
            None,
        ),
    ];

    let daemon_ns = cluster.create_namespace("rel-api").await.unwrap();
    let mut text = "import:\n  timeout: 2s\nenvironments:\n".to_string();
    for env in envs {
        text.push_str(&windowed(env, &ns_of(env), "25s"));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &text);
    let start = next_three_am();
    let end = start + chrono::Duration::seconds(25);
    let spec = DaemonSpec::new(&daemon_ns, ConfigSource::File(cfg)).with_clock_at(start, 3 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    // While requests hang, the daemon still answers its probes.
    let hang = rules[2].1;
    eventually(20 * SEC, "a hanging image API request", || async {
        match faults.hits(hang) {
            0 => Err("none yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let (code, body) = tokio::time::timeout(
        2 * SEC,
        http_request(daemon.port, "GET", "/healthz", &[], ""),
    )
    .await
    .expect("/healthz answers while image API calls hang");
    assert_eq!(code, 200, "{body}");

    for ns in &namespaces {
        all_imported(cluster, ns, "prod", &pushed[ns], 30 * SEC).await;
    }
    assert!(
        clock.now() < end,
        "every tag was imported inside the window"
    );

    // A tag is written to the API before the daemon counts its import.
    let updated = |metrics: &str, env: &str| {
        metric_value(
            metrics,
            &format!("image_import_scheduler_imports_total{{env=\"{env}\",result=\"updated\"}}"),
        )
    };
    let metrics = eventually(10 * SEC, "every import counted", || async {
        let metrics = daemon.metrics().await;
        if rules
            .iter()
            .all(|(env, _, _)| updated(&metrics, env) >= Some(streams.len() as f64))
        {
            Ok(metrics)
        } else {
            Err(metrics)
        }
    })
    .await;
    for (env, rule, failure) in &rules {
        let ns = ns_of(env);
        let active = faults
            .list()
            .into_iter()
            .find(|f| f.id == *rule)
            .expect("the rule is active");
        assert_eq!(
            Some(active.hits),
            active.rule.times,
            "{env}: every injected fault was hit"
        );
        assert_eq!(
            metric_value(
                &metrics,
                &format!(
                    "image_import_scheduler_imports_total{{env=\"{env}\",result=\"updated\"}}"
                )
            ),
            Some(streams.len() as f64),
            "{env}: one import per stream: {metrics}"
        );
        for stream in streams {
            let failed = notes(cluster, &ns, "ImportFailed", stream).await;
            match failure {
                // Events are sent from their own futures, after the outcome.
                Some(reason) => {
                    eventually(
                        10 * SEC,
                        &format!("{env}/{stream}: an ImportFailed Event with `{reason}`"),
                        || async {
                            let failed = notes(cluster, &ns, "ImportFailed", stream).await;
                            if failed.iter().any(|n| n.contains(reason)) {
                                Ok(())
                            } else {
                                Err(format!("{failed:?}"))
                            }
                        },
                    )
                    .await
                }
                None => assert!(
                    failed.is_empty(),
                    "{env}/{stream}: a failure retried within one call is not reported: {failed:?}"
                ),
            }
        }
    }

    // Every tag came in: the closing window is not missed.
    sleep_until(clock.as_ref(), end + chrono::Duration::seconds(2)).await;
    let metrics = daemon.metrics().await;
    for env in envs {
        let ns = ns_of(env);
        assert!(
            events(cluster, &ns, "WindowMissed").await.is_empty(),
            "{env}: no missed window"
        );
        assert_eq!(
            metric_value(
                &metrics,
                &format!("image_import_scheduler_missed_windows_total{{env=\"{env}\"}}")
            )
            .unwrap_or(0.0),
            0.0,
            "{env}: {metrics}"
        );
    }
    daemon.stop().await;
    for (_, rule, _) in rules {
        faults.remove(rule);
    }
}

/// Faults that last the whole window: the daemon gives up when the window
/// closes and says so per tag (WindowMissed with the reason, the metric, the
/// status ConfigMap); a push after the window is not imported even once the
/// API works again; and the daemon stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_for_the_whole_window_are_reported_missed_and_nothing_is_imported_after_it() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let streams = ["packit-service", "packit-worker"];
    let ns_500 = seed(cluster, "rel-down-500", "prod", &streams).await;
    let ns_hang = seed(cluster, "rel-down-hang", "prod", &streams).await;
    let mut seeded = BTreeMap::new();
    for ns in [&ns_500, &ns_hang] {
        for s in streams {
            seeded.insert((ns.clone(), s), newest(cluster, ns, s, "prod").await.0);
        }
        push_all(cluster, ns, &streams, "prod").await;
    }
    let faults = cluster.faults();
    let down = [
        faults.add(imports_of(&ns_500, status_500())),
        faults.add(imports_of(&ns_hang, FaultKind::Hang)),
    ];

    let text = format!(
        "import:\n  timeout: 2s\nenvironments:\n{}{}",
        windowed("down500", &ns_500, "8s"),
        windowed("downhang", &ns_hang, "8s")
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &text);
    let start = next_three_am();
    let end = start + chrono::Duration::seconds(8);
    let spec = DaemonSpec::new(&ns_500, ConfigSource::File(cfg)).with_clock_at(start, 2 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    for (env, ns, reason) in [
        ("down500", &ns_500, "HTTP 500"),
        ("downhang", &ns_hang, "timed out"),
    ] {
        let missed = eventually(
            35 * SEC,
            &format!("{env}: WindowMissed per tag"),
            || async {
                let e = events(cluster, ns, "WindowMissed").await;
                if e.len() >= streams.len() {
                    Ok(e)
                } else {
                    Err(format!("{e:?}"))
                }
            },
        )
        .await;
        assert!(clock.now() >= end, "reported only once the window closed");
        let by_stream: BTreeSet<&str> = missed
            .iter()
            .filter_map(|e| e["regarding"]["name"].as_str())
            .collect();
        assert_eq!(
            by_stream,
            streams.iter().copied().collect(),
            "{env}: one WindowMissed per tag: {missed:?}"
        );
        for e in &missed {
            assert_eq!(e["type"], "Warning");
            let note = e["note"].as_str().unwrap_or_default();
            assert!(
                note.contains(reason),
                "{env}: the note gives the reason `{reason}`: {note}"
            );
        }
        // The status records the missed window right after the Events.
        let window_id = start.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let state = eventually(
            5 * SEC,
            &format!("{env}: the missed window in the status"),
            || async {
                let state = env_status(cluster, &ns_500, env)
                    .await
                    .ok_or_else(|| "no status".to_string())?;
                if state["lastMissedWindow"] == window_id.as_str() {
                    Ok(state)
                } else {
                    Err(state.to_string())
                }
            },
        )
        .await;
        for s in streams {
            let tag = &state["tags"][format!("{s}:prod")];
            assert_eq!(tag["lastOutcome"], "failed", "{env}/{s}: {state}");
            assert!(
                tag["lastError"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(reason),
                "{env}/{s}: {state}"
            );
        }
    }
    let metrics = daemon.metrics().await;
    for env in ["down500", "downhang"] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!("image_import_scheduler_missed_windows_total{{env=\"{env}\"}}")
            ),
            Some(1.0),
            "{metrics}"
        );
    }

    // The API works again, but the window is closed: nothing is imported.
    for rule in down {
        faults.remove(rule);
    }
    let after = clock.now();
    for ns in [&ns_500, &ns_hang] {
        push_all(cluster, ns, &streams, "prod").await;
    }
    // Several poll intervals of a loop that must stay idle.
    sleep_until(clock.as_ref(), after + chrono::Duration::seconds(4)).await;
    for ((ns, s), before) in &seeded {
        assert_eq!(
            &newest(cluster, ns, s, "prod").await,
            &(before.clone(), 1),
            "{ns}/{s}: nothing imported outside the window"
        );
    }
    assert!(
        daemon
            .metrics()
            .await
            .contains("image_import_scheduler_window_open{env=\"down500\"} 0"),
        "the window is reported closed"
    );
    daemon.stop().await;
}

// -------------------------------------------------------- leader failover

/// Two replicas, a 30 s window, five streams. The leader is stopped while
/// its first imports are in flight; a stream is pushed during the
/// handover and two more after it. Every push is imported exactly once (one
/// history item and one ImportSucceeded Event per pushed digest, whichever
/// replica imported it), none is missed, and the window is not reported
/// missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_mid_window_imports_every_push_exactly_once() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let streams = ["s0", "s1", "s2", "s3", "s4"];
    let ns = seed(cluster, "rel-failover", "prod", &streams).await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in streams {
        let seeded = newest(cluster, &ns, s, "prod").await.0.expect("seeded");
        expected.insert(s.to_string(), vec![seeded]);
    }
    // Pushed before the window: s0..s3. s4 is pushed during the handover.
    let before = push_all(cluster, &ns, &streams[..4], "prod").await;
    for (s, d) in &before {
        expected.get_mut(s).expect("stream").insert(0, d.clone());
    }
    // The leader's first round is slow (5 previews, 4 imports), so the
    // failover happens while its imports are in flight.
    let slow = cluster
        .faults()
        .add(imports_of(&ns, FaultKind::Latency(4 * SEC)).times(9));

    let text = format!(
        "import:\n  concurrency: 8\nenvironments:\n{}",
        windowed("prod", &ns, "30s")
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &text);
    let start = next_three_am();
    let end = start + chrono::Duration::seconds(30);
    let mut a = DaemonSpec::new(&ns, ConfigSource::File(cfg.clone())).with_clock_at(start, 4 * SEC);
    a.pod_name = "replica-a".into();
    let clock = a.clock.clone();
    let mut b = DaemonSpec::new(&ns, ConfigSource::File(cfg));
    b.pod_name = "replica-b".into();
    b.clock = clock.clone();

    let da = start_daemon(cluster, a);
    eventually(10 * SEC, "replica-a to lead", || async {
        match metric_value(&da.metrics().await, "image_import_scheduler_leader") {
            Some(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let db = start_daemon(cluster, b);

    eventually(20 * SEC, "the leader's imports in flight", || async {
        match cluster.faults().hits(slow) {
            n if n >= 9 => Ok(()),
            n => Err(format!("{n} slow requests")),
        }
    })
    .await;
    assert!(clock.now() > start && clock.now() < end);
    // The leader stops mid-window; a push arrives during the handover.
    da.shutdown.cancel();
    let d4 = cluster
        .registry()
        .push_image(&format!("{ns}/s4"), "prod")
        .await
        .unwrap();
    expected.get_mut("s4").expect("s4").insert(0, d4);
    tokio::time::timeout(30 * SEC, da.handle)
        .await
        .expect("replica-a stops within 30s")
        .expect("replica-a did not panic")
        .expect("replica-a stops cleanly");

    let newest_expected = |expected: &BTreeMap<String, Vec<String>>| {
        expected
            .iter()
            .map(|(s, h)| (s.clone(), h[0].clone()))
            .collect::<BTreeMap<_, _>>()
    };
    all_imported(cluster, &ns, "prod", &newest_expected(&expected), 25 * SEC).await;
    // Pushes after the failover, inside the window: the new leader imports them.
    let after = push_all(cluster, &ns, &streams[..2], "prod").await;
    for (s, d) in &after {
        expected.get_mut(s).expect("stream").insert(0, d.clone());
    }
    all_imported(cluster, &ns, "prod", &newest_expected(&expected), 15 * SEC).await;
    assert!(clock.now() < end, "imported inside the window");
    assert_eq!(
        metric_value(&db.metrics().await, "image_import_scheduler_leader"),
        Some(1.0),
        "replica-b leads"
    );

    sleep_until(clock.as_ref(), end + chrono::Duration::seconds(2)).await;
    for s in streams {
        assert_eq!(
            history(cluster, &ns, s, "prod").await,
            expected[s],
            "{s}: one history item per push, none missing"
        );
    }
    let reported = imports_reported(cluster, &ns).await;
    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    for (s, h) in &expected {
        // The seeded image was imported by the test cluster, not the daemon.
        for d in &h[..h.len() - 1] {
            want.insert((s.clone(), d.clone()));
        }
    }
    assert_eq!(
        reported.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "an ImportSucceeded Event for every push and nothing else: {reported:?}"
    );
    for (key, (count, by)) in &reported {
        assert_eq!(*count, 1, "{key:?} imported {count} times, by {by:?}");
    }
    assert_eq!(
        reported[&("s4".to_string(), expected["s4"][0].clone())].1,
        BTreeSet::from(["replica-b".to_string()]),
        "the push during the handover was imported by the new leader"
    );
    assert!(
        events(cluster, &ns, "WindowMissed").await.is_empty(),
        "a window handed over is not missed"
    );
    db.stop().await;
    cluster.faults().remove(slow);
}

// --------------------------------------------------------- registry faults

/// Tags whose source is missing (tag, repository emptied, repository never
/// pushed), refused (401) or unreachable (nothing listens on the port) fail
/// each with the registry's reason in their Events and status; the other
/// tags of the environment are imported normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_faults_are_reported_per_tag_and_other_tags_are_imported() {
    init_logs();
    let cluster = TestCluster::shared().await;
    let registry = cluster.registry();
    let ns = seed(
        cluster,
        "rel-registry",
        "prod",
        &["ok-a", "ok-b", "emptied", "refused"],
    )
    .await;
    let repo = |s: &str| format!("{ns}/{s}");
    // The repository exists, the tag does not.
    registry
        .push_image(&repo("missing-tag"), "other")
        .await
        .unwrap();
    // Nothing listens on this port.
    let unreachable = format!("127.0.0.1:{}/{}:prod", free_port(), repo("unreachable"));
    for (stream, from) in [
        (
            "missing-tag",
            registry.image_ref(&repo("missing-tag"), "prod"),
        ),
        (
            "never-pushed",
            registry.image_ref(&repo("never-pushed"), "prod"),
        ),
        ("unreachable", unreachable),
    ] {
        let mut tag = TagSeed::new("prod", from);
        tag.import = false;
        cluster.seed_stream(&ns, stream, &[tag]).await.unwrap();
    }
    // Its only manifest deleted: an empty repository.
    registry.delete_tag(&repo("emptied"), "prod").await.unwrap();
    let ok = push_all(cluster, &ns, &["ok-a", "ok-b"], "prod").await;
    registry.push_image(&repo("refused"), "prod").await.unwrap();
    let refused = cluster.faults().add(
        FaultRule::new(
            format!("/v2/{}/manifests/", repo("refused")),
            FaultKind::Status {
                code: 401,
                retry_after_secs: None,
            },
        )
        .method("GET"),
    );
    let failing = [
        ("missing-tag", "NotFound"),
        ("emptied", "NotFound"),
        ("never-pushed", "NotFound"),
        ("refused", "Unauthorized"),
        // openshift-apiserver's dial error.
        ("unreachable", "connection refused"),
    ];
    let mut before = BTreeMap::new();
    for (s, _) in failing {
        before.insert(s, newest(cluster, &ns, s, "prod").await);
    }

    let text = format!("environments:\n{}", windowed("prod", &ns, "10s"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&dir, &text);
    let start = next_three_am();
    let spec = DaemonSpec::new(&ns, ConfigSource::File(cfg)).with_clock_at(start, 2 * SEC);
    let clock = spec.clock.clone();
    let daemon = start_daemon(cluster, spec);

    all_imported(cluster, &ns, "prod", &ok, 15 * SEC).await;
    assert!(clock.now() < start + chrono::Duration::seconds(10));
    let missed = eventually(25 * SEC, "WindowMissed for every failing tag", || async {
        let e = events(cluster, &ns, "WindowMissed").await;
        if e.len() >= failing.len() {
            Ok(e)
        } else {
            Err(format!("{} so far: {e:?}", e.len()))
        }
    })
    .await;
    assert_eq!(
        missed.len(),
        failing.len(),
        "one WindowMissed per failing tag and none for the others: {missed:?}"
    );
    let state = env_status(cluster, &ns, "prod").await.expect("status");
    for (stream, reason) in failing {
        let note = missed
            .iter()
            .find(|e| e["regarding"]["name"] == stream)
            .and_then(|e| e["note"].as_str())
            .unwrap_or_else(|| panic!("no WindowMissed for {stream}: {missed:?}"));
        assert!(
            note.contains(reason),
            "{stream}: the WindowMissed note gives the registry's reason `{reason}`: {note}"
        );
        let failed = notes(cluster, &ns, "ImportFailed", stream).await;
        assert!(
            !failed.is_empty() && failed.iter().all(|n| n.contains(reason)),
            "{stream}: ImportFailed Events with `{reason}`: {failed:?}"
        );
        let tag = &state["tags"][format!("{stream}:prod")];
        assert_eq!(tag["lastOutcome"], "failed", "{stream}: {state}");
        assert!(
            tag["lastError"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{stream}: {state}"
        );
        assert_eq!(
            newest(cluster, &ns, stream, "prod").await,
            before[stream],
            "{stream}: untouched"
        );
    }
    for s in ok.keys() {
        assert!(
            notes(cluster, &ns, "ImportFailed", s).await.is_empty(),
            "{s} was unaffected"
        );
        assert_eq!(state["tags"][format!("{s}:prod")]["importedInWindow"], true);
    }
    assert_eq!(
        metric_value(
            &daemon.metrics().await,
            "image_import_scheduler_missed_windows_total{env=\"prod\"}"
        ),
        Some(1.0)
    );
    daemon.stop().await;
    cluster.faults().remove(refused);
}

// ------------------------------------------------------- SIGTERM, SIGKILL

/// A daily cron expression whose window opened this minute, and its ID.
fn open_window_schedule() -> (String, String) {
    let now = Utc::now();
    let start = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a whole minute");
    (
        format!("{} {} * * *", now.minute(), now.hour()),
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// Checks the status ConfigMap after a process ended: every key is an
/// environment's state of the documented shape, in the current window, and
/// nothing it records contradicts the image streams. With `complete`, every
/// import that reached a stream is also recorded.
async fn check_status(
    cluster: &TestCluster,
    ns: &str,
    window_id: &str,
    newest_pushed: &BTreeMap<String, String>,
    complete: bool,
) -> Result<(), String> {
    let data = status_data(cluster, ns)
        .await
        .ok_or_else(|| "no status ConfigMap".to_string())?;
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    if keys != ["prod"] {
        return Err(format!("unexpected keys {keys:?}"));
    }
    let state = check_shape("prod", &data["prod"])?;
    if state["windowId"] != window_id {
        return Err(format!("windowId is not {window_id}: {state}"));
    }
    let start = state["windowStart"]
        .as_str()
        .and_then(|t| t.parse::<DateTime<Utc>>().ok());
    if start != window_id.parse().ok() {
        return Err(format!(
            "windowStart is not the start of {window_id}: {state}"
        ));
    }
    let archived = state["history"]
        .as_array()
        .is_some_and(|h| h.iter().any(|w| w["windowId"] == window_id));
    if archived {
        return Err(format!(
            "the open window {window_id} is archived as finished: {state}"
        ));
    }
    for (stream, pushed) in newest_pushed {
        let history = history(cluster, ns, stream, "prod").await;
        let tag = &state["tags"][format!("{stream}:prod")];
        if tag.is_null() {
            if complete && history.first() == Some(pushed) {
                return Err(format!(
                    "{stream}: imported {pushed} but not recorded: {state}"
                ));
            }
            continue;
        }
        let after = tag["digestAfter"].as_str().unwrap_or_default();
        let ok = matches!(tag["lastOutcome"].as_str(), Some("updated" | "unchanged"));
        if ok && !history.iter().any(|d| d == after) {
            return Err(format!(
                "{stream}: recorded {} to {after}, which is not in its history {history:?}",
                tag["lastOutcome"]
            ));
        }
        if tag["importedInWindow"] == true && (tag["windowId"] != window_id || !ok) {
            return Err(format!(
                "{stream}: importedInWindow without an import in it: {tag}"
            ));
        }
        if complete && history.first() == Some(pushed) && !(ok && after == pushed) {
            return Err(format!(
                "{stream}: imported {pushed} but the status says {tag}"
            ));
        }
    }
    Ok(())
}

/// Three rounds: new images for every stream, the daemon binary started,
/// `signal` sent at a random point (seeded) while it imports, the status
/// checked, the daemon restarted to finish the window.
async fn killed_at_random_points(signal: &str, seed_value: u64) {
    init_logs();
    let cluster = TestCluster::shared().await;
    let streams = ["s0", "s1", "s2", "s3"];
    let ns = seed(
        cluster,
        &format!("rel-{}", signal.to_ascii_lowercase()),
        "prod",
        &streams,
    )
    .await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in streams {
        let seeded = newest(cluster, &ns, s, "prod").await.0.expect("seeded");
        expected.insert(s.to_string(), vec![seeded]);
    }
    // Each image API call takes 700 ms and two tags go at a time: a round
    // lasts about three seconds, and the signal lands somewhere in it.
    let slow = cluster.faults().add(imports_of(
        &ns,
        FaultKind::Latency(Duration::from_millis(700)),
    ));
    let (schedule, window_id) = open_window_schedule();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(
        &dir,
        &format!(
            "import:\n  concurrency: 2\nenvironments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"{schedule}\"\n    window: 20m\n    pollInterval: 1s\n"
        ),
    );
    let log = dir.path().join("daemon.log");
    let mut rng = StdRng::seed_from_u64(seed_value);

    for round in 0..3 {
        let pushed = push_all(cluster, &ns, &streams, "prod").await;
        for (s, d) in &pushed {
            expected.get_mut(s).expect("stream").insert(0, d.clone());
        }
        let hits = cluster.faults().hits(slow);
        let daemon = ChildDaemon::spawn(cluster, &cfg, &ns, "scheduler-0", log.clone());
        eventually(20 * SEC, "the first image API call", || async {
            match cluster.faults().hits(slow) {
                n if n > hits => Ok(()),
                _ => Err(format!("none yet; log:\n{}", daemon.logs())),
            }
        })
        .await;
        let delay = Duration::from_millis(rng.random_range(0..3000));
        tokio::time::sleep(delay).await;
        daemon.signal(signal);
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        let status = daemon.wait().await;
        match signal {
            "TERM" => assert_eq!(
                status.code(),
                Some(0),
                "round {round}: exit 0 after SIGTERM at +{delay:?}; log:\n{}",
                logs()
            ),
            _ => assert_eq!(status.signal(), Some(9), "round {round}: {status:?}"),
        }
        if let Err(e) = check_status(cluster, &ns, &window_id, &pushed, signal == "TERM").await {
            panic!(
                "round {round}: after SIG{signal} at +{delay:?} the status ConfigMap is inconsistent: {e}\nlog:\n{}",
                logs()
            );
        }

        // Restarted inside the same window: the remaining imports complete.
        let daemon = ChildDaemon::spawn(cluster, &cfg, &ns, "scheduler-0", log.clone());
        all_imported(cluster, &ns, "prod", &pushed, 30 * SEC).await;
        eventually(10 * SEC, "the status to record every import", || async {
            check_status(cluster, &ns, &window_id, &pushed, true).await?;
            let state = env_status(cluster, &ns, "prod")
                .await
                .ok_or_else(|| "no status".to_string())?;
            for s in streams {
                let tag = &state["tags"][format!("{s}:prod")];
                if tag["digestAfter"] != pushed[s].as_str() || tag["importedInWindow"] != true {
                    return Err(format!("{s}: {tag}"));
                }
            }
            Ok(())
        })
        .await;
        daemon.signal("TERM");
        assert_eq!(daemon.wait().await.code(), Some(0), "log:\n{}", logs());
    }

    for s in streams {
        assert_eq!(
            history(cluster, &ns, s, "prod").await,
            expected[s],
            "{s}: every push imported once, none missed"
        );
    }
    for (key, (count, by)) in imports_reported(cluster, &ns).await {
        // A SIGKILL can come between an import and its Event; never twice.
        if signal == "TERM" {
            assert_eq!(count, 1, "{key:?} reported {count} times by {by:?}");
        } else {
            assert!(count <= 1, "{key:?} reported {count} times by {by:?}");
        }
    }
    if signal == "TERM" {
        let reported = imports_reported(cluster, &ns).await.len();
        assert_eq!(reported, 3 * streams.len(), "every import reported once");
        assert!(events(cluster, &ns, "ImportFailed").await.is_empty());
    }
    assert!(
        events(cluster, &ns, "WindowMissed").await.is_empty(),
        "the window resumed after every restart"
    );
    cluster.faults().remove(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_random_points_leaves_a_consistent_status_and_the_window_resumes() {
    killed_at_random_points("TERM", 0x5167_7e40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_leaves_a_consistent_status_and_the_window_resumes() {
    killed_at_random_points("KILL", 0x5167_c111).await;
}
