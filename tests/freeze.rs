//! Freezes seen from the command line: `next` lists the windows that open
//! and marks the frozen ones it passes.

use std::process::Command;

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
