//! Freezes seen from the command line: `next` lists the windows that open
//! and marks the frozen ones it passes; `freeze`, `unfreeze` and
//! `freeze --list` against the test cluster keep their record in the status
//! ConfigMap and publish Events; `import` refuses to run in a freeze
//! unless forced.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{run_cli, CliRun};
use test_cluster::{TagSeed, TestCluster};

const BIN: &str = env!("CARGO_BIN_EXE_import-scheduler");

const CONFIG: &str = r#"
environments:
  prod:
    namespace: packit-prod
    mode: windowed
    schedule: "0 2 * * 2"
    timeZone: Europe/Prague
    window: 1h
    freeze:
      - {from: 2026-12-21, to: 2027-01-04, reason: holidays}
      - {from: "2027-01-12T02:30:00+01:00", to: "2027-01-12T03:30:00+01:00", reason: migration}
"#;

fn next(output: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    let out = Command::new(BIN)
        .args(["next", "--config"])
        .arg(&path)
        .args([
            "--env",
            "prod",
            "--after",
            "2026-12-16T00:00:00Z",
            "--count",
            "3",
            "--output",
            output,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn next_lists_frozen_windows_marked_and_counts_only_open_ones() {
    let json: serde_json::Value = serde_json::from_str(&next("json")).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"start": "2026-12-22T02:00:00+01:00", "end": "2026-12-22T03:00:00+01:00", "frozen": "holidays"},
            {"start": "2026-12-29T02:00:00+01:00", "end": "2026-12-29T03:00:00+01:00", "frozen": "holidays"},
            {"start": "2027-01-05T02:00:00+01:00", "end": "2027-01-05T03:00:00+01:00"},
            {"start": "2027-01-12T02:00:00+01:00", "end": "2027-01-12T02:30:00+01:00"},
            {"start": "2027-01-12T02:30:00+01:00", "end": "2027-01-12T03:00:00+01:00", "frozen": "migration"},
            {"start": "2027-01-19T02:00:00+01:00", "end": "2027-01-19T03:00:00+01:00"},
        ])
    );
    let text = next("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[1].contains("2026-12-22") && lines[1].ends_with("frozen (holidays)"),
        "{text}"
    );
    assert!(
        lines[3].contains("2027-01-05") && !lines[3].contains("frozen"),
        "{text}"
    );
    assert!(lines[5].ends_with("frozen (migration)"), "{text}");
}

/// Runs the binary against the test cluster with the daemon's state in `ns`.
async fn cli(cluster: &TestCluster, ns: &str, config: &std::path::Path, args: &[&str]) -> CliRun {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
        std::ffi::OsStr::new("--kubeconfig"),
        cluster.kubeconfig_path().as_os_str(),
    ]);
    run_cli(&all, &[("IMPORT_SCHEDULER_NAMESPACE", ns)]).await
}

async fn events(cluster: &TestCluster, ns: &str) -> Vec<(String, String)> {
    let list = cluster
        .admin_request(
            "GET",
            &format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
            None,
        )
        .await
        .expect("list events");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn stored_freezes(cluster: &TestCluster, ns: &str) -> Value {
    let cm = cluster
        .admin_request(
            "GET",
            &format!("/api/v1/namespaces/{ns}/configmaps/image-import-scheduler-status"),
            None,
        )
        .await
        .expect("read the status ConfigMap");
    let raw = cm["data"]["prod"].as_str().expect("state of prod");
    let state: Value = serde_json::from_str(raw).unwrap();
    state["freezes"].clone()
}

#[tokio::test]
async fn freeze_list_import_and_unfreeze_against_the_cluster() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("freeze").await.expect("namespace");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "environments:\n  prod:\n    namespace: {ns}\n    tag: prod\n    mode: windowed\n    schedule: \"0 2 29 2 *\"\n    timeZone: Europe/Prague\n    window: 1h\n"
        ),
    )
    .unwrap();
    let repo = format!("{ns}/worker");
    cluster
        .registry()
        .push_image(&repo, "prod")
        .await
        .expect("push");
    cluster
        .seed_stream(
            &ns,
            "worker",
            &[TagSeed {
                import: true,
                ..TagSeed::new("prod", cluster.registry().image_ref(&repo, "prod"))
            }],
        )
        .await
        .expect("seed stream");

    let until = (chrono::Utc::now() + chrono::Duration::hours(2))
        .with_timezone(&chrono_tz::Europe::Prague)
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let until = until.as_str();
    let frozen = cli(
        cluster,
        &ns,
        &config,
        &[
            "freeze",
            "--env",
            "prod",
            "--until",
            until,
            "--reason",
            "release week",
            "--output",
            "json",
        ],
    )
    .await
    .ok("freeze --until")
    .json();
    assert_eq!(frozen["action"], "frozen", "{frozen:#}");
    let record = &frozen["environments"][0]["freezes"][0];
    assert_eq!(record["reason"], "release week", "{frozen:#}");
    let by = record["by"].as_str().unwrap_or_default().to_owned();
    assert!(
        !by.is_empty() && by != "unknown",
        "the API server names the caller: {frozen:#}"
    );
    assert_eq!(
        stored_freezes(cluster, &ns).await[0]["reason"],
        "release week"
    );

    let skipped = cli(
        cluster,
        &ns,
        &config,
        &[
            "freeze",
            "--env",
            "prod",
            "--skip-next-window",
            "--reason",
            "away",
            "--output",
            "json",
        ],
    )
    .await
    .ok("freeze --skip-next-window")
    .json();
    let freezes = skipped["environments"][0]["freezes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(freezes.len(), 2, "{skipped:#}");
    assert_eq!(
        freezes[1]["skippedWindow"], "2028-02-29T01:00:00Z",
        "{skipped:#}"
    );
    assert_eq!(
        skipped["environments"][0]["nextWindow"]["start"], "2032-02-29T01:00:00Z",
        "the skipped window is not the next one: {skipped:#}"
    );

    let list = cli(
        cluster,
        &ns,
        &config,
        &["freeze", "--list", "--output", "json"],
    )
    .await
    .ok("freeze --list")
    .json();
    assert_eq!(
        list["environments"][0]["freezes"].as_array().unwrap().len(),
        2,
        "{list:#}"
    );
    let text = cli(cluster, &ns, &config, &["freeze", "--list"])
        .await
        .ok("freeze --list text");
    assert!(
        text.stdout.contains("release week")
            && text.stdout.contains("skips window 2028-02-29T01:00:00Z"),
        "{}",
        text.stdout
    );

    let status = cli(
        cluster,
        &ns,
        &config,
        &["status", "--env", "prod", "--output", "json"],
    )
    .await
    .ok("status")
    .json();
    assert_eq!(
        status["environments"][0]["window"]["start"], "2032-02-29T01:00:00Z",
        "status shows the next window that opens: {status:#}"
    );
    let frozen = &status["environments"][0]["frozen"];
    assert_eq!(frozen["reason"], "release week", "{status:#}");
    assert_eq!(frozen["source"], "manual", "{status:#}");
    assert_eq!(frozen["by"], by.as_str(), "{status:#}");
    let status_text = cli(cluster, &ns, &config, &["status", "--env", "prod"])
        .await
        .ok("status text");
    assert!(
        status_text.stdout.contains("FROZEN until "),
        "{}",
        status_text.stdout
    );
    assert!(
        status_text
            .stdout
            .contains(&format!(": release week (set by {by} with `freeze`")),
        "{}",
        status_text.stdout
    );

    let refused = cli(cluster, &ns, &config, &["import", "--env", "prod"]).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("frozen (release week)") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    cli(
        cluster,
        &ns,
        &config,
        &["import", "--env", "prod", "--force", "--output", "json"],
    )
    .await
    .ok("import --force");

    let unfrozen = cli(
        cluster,
        &ns,
        &config,
        &["unfreeze", "--env", "prod", "--output", "json"],
    )
    .await
    .ok("unfreeze")
    .json();
    assert_eq!(
        unfrozen["environments"][0]["freezes"],
        serde_json::json!([]),
        "{unfrozen:#}"
    );
    assert_eq!(
        unfrozen["environments"][0]["nextWindow"]["start"], "2028-02-29T01:00:00Z",
        "{unfrozen:#}"
    );
    assert!(
        stored_freezes(cluster, &ns).await.is_null(),
        "no freezes left in the state"
    );
    let status = cli(
        cluster,
        &ns,
        &config,
        &["status", "--env", "prod", "--output", "json"],
    )
    .await
    .ok("status after unfreeze")
    .json();
    assert!(
        status["environments"][0]["frozen"].is_null(),
        "not frozen any more: {status:#}"
    );
    cli(
        cluster,
        &ns,
        &config,
        &["import", "--env", "prod", "--output", "json"],
    )
    .await
    .ok("import after unfreeze");

    let events = events(cluster, &ns).await;
    for (reason, needle) in [
        ("Frozen", "release week"),
        ("Frozen", "away"),
        ("ImportedDuringFreeze", "release week"),
        ("Unfrozen", "prod unfrozen by"),
    ] {
        assert!(
            events
                .iter()
                .any(|(r, n)| r == reason && n.contains(needle) && n.contains(&by)),
            "no {reason} Event with {needle:?} by {by}: {events:?}"
        );
    }

    let bad = cli(
        cluster,
        &ns,
        &config,
        &[
            "freeze",
            "--env",
            "prod",
            "--until",
            "yesterday-ish",
            "--reason",
            "x",
        ],
    )
    .await;
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--until:"), "{}", bad.stderr);
    let no_reason = cli(
        cluster,
        &ns,
        &config,
        &["freeze", "--env", "prod", "--until", until],
    )
    .await;
    assert_ne!(no_reason.code, 0);
    assert!(
        no_reason.stderr.contains("--reason"),
        "{}",
        no_reason.stderr
    );
}
