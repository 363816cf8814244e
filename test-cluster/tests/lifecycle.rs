//! The processes a cluster starts die with the process that owns it, however
//! that process ends, and its temporary directory goes with them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes whose command line mentions `dir` (the cluster's temp dir is in
/// every child's arguments).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `test-cluster up`; returns it, its state file and the cluster dir.
fn up(state_dir: &Path) -> (Child, PathBuf, PathBuf) {
    let state = state_dir.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_test-cluster"))
        .args(["up", "--seed", "none", "--state"])
        .arg(&state)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the state file of test-cluster up",
        Duration::from_secs(180),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("test-cluster up exited early: {status}");
            }
            std::fs::read(&state)
                .is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok())
        },
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let dir = Path::new(v["kubeconfig"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let running = processes_using(&dir);
    for name in ["etcd", "kube-apiserver", "docker-registry"] {
        assert!(
            running.iter().any(|p| p.contains(name)),
            "{name} is not running: {running:#?}"
        );
    }
    (child, state, dir)
}

#[test]
fn sigkill_of_the_owner_leaves_no_process_and_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, _, dir) = up(tmp.path());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "the cluster's processes to exit",
        Duration::from_secs(30),
        || processes_using(&dir).is_empty(),
    );
    wait_for(
        "the cluster's directory to disappear",
        Duration::from_secs(30),
        || !dir.exists(),
    );
}

#[test]
fn sigterm_tears_down_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, state, dir) = up(tmp.path());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "test-cluster up exited with {exit}");
    assert!(
        processes_using(&dir).is_empty(),
        "{:#?}",
        processes_using(&dir)
    );
    assert!(
        !dir.exists(),
        "the cluster's directory is removed on shutdown"
    );
    assert!(!state.exists(), "the state file is removed on shutdown");
}
