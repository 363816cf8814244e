//! `scripts/sandbox.sh` tells its story and stops everything it started on
//! Ctrl-C, even when its output went to a pipe whose reader is gone
//! (`sandbox.sh 2>&1 | tee log`, then Ctrl-C: tee dies first). The story: a
//! bad prod image pushed with the command the sandbox prints is imported by
//! prod's window, its rollout fails, the daemon pins the tag back, the
//! Deployment returns to the previous image, and `status` says so. Then a
//! prod image pushed while the sandbox's alert fires (fired and stopped with
//! the curl commands the sandbox prints) is held by prod's window (`Gated`,
//! `status` shows it gated, the tag does not move) until the alert stops,
//! and imported after.
//!
//! Slow: the script builds the binaries and starts a whole test cluster with
//! the workload controllers and a Prometheus; prod's window opens every
//! three minutes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `(pid, process group, session, name)` of every process.
fn processes() -> Vec<(u32, u32, u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, tail) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_string();
            let fields: Vec<&str> = tail.split_whitespace().collect();
            // state ppid pgrp session ...
            Some((
                pid,
                fields.get(2)?.parse().ok()?,
                fields.get(3)?.parse().ok()?,
                name,
            ))
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

fn readyz(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn wait_for(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one of the commands the sandbox prints; its stdout and stderr.
fn run(program: &Path, args: &[&str], kubeconfig: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The image prod's `packit-worker` Deployment runs.
fn worker_image(kubeconfig: &Path) -> String {
    deployment_image("packit-worker", kubeconfig)
}

/// `jsonpath` of the `kind` object `name` in packit-prod.
fn prod_object(kind: &str, name: &str, jsonpath: &str, kubeconfig: &Path) -> String {
    run(
        Path::new("kubectl"),
        &[
            "get",
            kind,
            name,
            "-n",
            "packit-prod",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
        kubeconfig,
    )
    .trim()
    .to_string()
}

/// The messages of packit-prod's Events that `field_selector` selects.
fn prod_events(field_selector: &str, kubeconfig: &Path) -> String {
    run(
        Path::new("kubectl"),
        &[
            "get",
            "events",
            "-n",
            "packit-prod",
            "--field-selector",
            field_selector,
            "-o",
            "jsonpath={.items[*].message}",
        ],
        kubeconfig,
    )
}

/// The image prod's Deployment `name` runs.
fn deployment_image(name: &str, kubeconfig: &Path) -> String {
    prod_object(
        "deployment",
        name,
        "{.spec.template.spec.containers[0].image}",
        kubeconfig,
    )
}

/// The digest prod's ImageStream tag `stream:prod` points at.
fn prod_tag_digest(stream: &str, kubeconfig: &Path) -> String {
    prod_object(
        "imagestream",
        stream,
        "{.status.tags[?(@.tag==\"prod\")].items[0].image}",
        kubeconfig,
    )
}

/// Where the running sandbox keeps its cluster's state and kubeconfig, and
/// its binaries.
struct Sandbox {
    state: PathBuf,
    kubeconfig: PathBuf,
    bin: PathBuf,
}

impl Sandbox {
    fn find(sandbox_tmp: &Path) -> Sandbox {
        let dir = entries(sandbox_tmp)
            .into_iter()
            .find(|name| name.starts_with("import-scheduler-sandbox."))
            .map(|name| sandbox_tmp.join(name))
            .expect("the sandbox's directory");
        Sandbox {
            state: dir.join("cluster.json"),
            kubeconfig: dir.join("kubeconfig"),
            bin: std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("debug"),
        }
    }

    /// `import-scheduler status` of the sandbox's daemon.
    fn status(&self) -> String {
        run(
            &self.bin.join("import-scheduler"),
            &[
                "status",
                "--configmap",
                "packit-prod/image-import-scheduler",
            ],
            &self.kubeconfig,
        )
    }

    /// A URL of the cluster's state file (`prometheus`, `pushgateway`).
    fn state_url(&self, key: &str) -> String {
        let text = std::fs::read_to_string(&self.state).expect("the cluster's state file");
        let state: serde_json::Value = serde_json::from_str(&text).expect("the state is JSON");
        state[key]
            .as_str()
            .unwrap_or_else(|| panic!("the state file has no {key}: {text}"))
            .to_string()
    }

    /// The messages of prod's `Gated` Events on the ImageStream `stream`.
    fn gated_events(&self, stream: &str) -> String {
        prod_events(
            &format!("reason=Gated,involvedObject.name={stream}"),
            &self.kubeconfig,
        )
    }
}

/// Runs a shell command line the sandbox prints; its output.
fn shell(line: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", line])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sandbox's story of a bad prod image, with the commands it prints.
fn a_bad_prod_image_is_pinned_back(sandbox: &Sandbox, script: &mut Child) {
    let Sandbox {
        state,
        kubeconfig,
        bin,
    } = sandbox;
    let before = worker_image(kubeconfig);
    assert!(
        before.contains('@'),
        "the Deployment runs an image by digest: {before:?}"
    );

    let pushed = run(
        &bin.join("test-cluster"),
        &[
            "push",
            "--state",
            &state.to_string_lossy(),
            "--bad",
            "crash-loop",
            "packit/packit-worker:prod",
        ],
        kubeconfig,
    );
    let bad = pushed
        .lines()
        .find(|l| l.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest from the push: {pushed}"))
        .to_string();

    // The window opens within three minutes; the crash loop shows within
    // seconds of the import; the rollback is followed too.
    let status = || sandbox.status();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut ran_bad = false;
    let (image, text) = loop {
        if let Ok(Some(status)) = script.try_wait() {
            panic!("the sandbox exited ({status}) during the bad image's story");
        }
        let image = worker_image(kubeconfig);
        // Seen running it, or named by the PinnedBack Event (the rollback
        // can be quicker than one look).
        ran_bad |= image.ends_with(&bad)
            || prod_events("reason=PinnedBack", kubeconfig)
                .contains(&bad["sha256:".len().."sha256:".len() + 12]);
        let text = status();
        let told = text.contains("pinned back to") || text.contains("rollout (rollback) of");
        if (ran_bad && image == before && told) || Instant::now() >= deadline {
            break (image, text);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        ran_bad,
        "the bad image {bad} was never run nor pinned back from; status:\n{text}"
    );
    assert_eq!(
        image, before,
        "the Deployment returns to the previous image; status:\n{text}"
    );
    assert!(
        text.contains("pinned back to") || text.contains("rollout (rollback) of"),
        "status tells of the pin-back:\n{text}"
    );
}

/// The sandbox's story of a prod window held by a firing alert, with the
/// commands it prints: another stream than the bad image's, whose tag is
/// pinned back now.
fn a_firing_alert_holds_prod_until_it_stops(sandbox: &Sandbox, script: &mut Child) {
    const STREAM: &str = "packit-service";
    let kubeconfig = &sandbox.kubeconfig;
    let prometheus = sandbox.state_url("prometheus");
    let pushgateway = sandbox.state_url("pushgateway");
    let alerts = || shell(&format!("curl -s {prometheus}/api/v1/alerts"));

    shell(&format!(
        "printf 'packit_prod_degraded 1\\n' | curl -sf --data-binary @- {pushgateway}/metrics/job/sandbox"
    ));
    // Firing before the push, so no poll sees the new image without it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = alerts();
        if text.contains("PackitProdDegraded") && text.contains("\"state\":\"firing\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PackitProdDegraded does not fire: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let pushed = run(
        &sandbox.bin.join("test-cluster"),
        &[
            "push",
            "--state",
            &sandbox.state.to_string_lossy(),
            &format!("packit/{STREAM}:prod"),
        ],
        kubeconfig,
    );
    let new = pushed
        .lines()
        .find(|l| l.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest from the push: {pushed}"))
        .to_string();
    let short = &new["sha256:".len().."sha256:".len() + 12];

    // Held: a Gated Event naming the alert and `status` showing it gated
    // (both once the window opens, within three minutes); the tag stays.
    let deadline = Instant::now() + Duration::from_secs(400);
    let (mut event, mut gated) = (false, false);
    let mut text = String::new();
    while !(event && gated) {
        if let Ok(Some(status)) = script.try_wait() {
            panic!("the sandbox exited ({status}) during the alert's story");
        }
        assert!(
            Instant::now() < deadline,
            "{STREAM}:prod was not seen held by the alert (Event: {event}, status: {gated}); Events: {:?}; status:\n{text}",
            sandbox.gated_events(STREAM)
        );
        let events = sandbox.gated_events(STREAM);
        if !event && events.contains("PackitProdDegraded") && events.contains(short) {
            eprintln!("Gated: {events}");
            event = true;
        }
        text = sandbox.status();
        gated |= text.contains(&format!("gated:   {short} held in window"))
            && text.contains("PackitProdDegraded");
        let tag = prod_tag_digest(STREAM, kubeconfig);
        assert_ne!(
            tag, new,
            "{STREAM}:prod moved to the new image while the alert fires; status:\n{text}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        !deployment_image(STREAM, kubeconfig).ends_with(&new),
        "the {STREAM} Deployment runs the held image"
    );

    shell(&format!(
        "curl -sf -X DELETE {pushgateway}/metrics/job/sandbox"
    ));
    // Imported at the window's next poll, or the next window's.
    let deadline = Instant::now() + Duration::from_secs(400);
    loop {
        if let Ok(Some(status)) = script.try_wait() {
            panic!("the sandbox exited ({status}) during the alert's story");
        }
        let tag = prod_tag_digest(STREAM, kubeconfig);
        let image = deployment_image(STREAM, kubeconfig);
        if tag == new && image.ends_with(&new) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{STREAM}:prod did not import {new} after the alert stopped (tag {tag}, Deployment {image}); alerts: {}; status:\n{}",
            alerts(),
            sandbox.status()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn a_bad_prod_image_is_pinned_back_a_firing_alert_holds_prod_and_ctrl_c_with_the_output_reader_gone_stops_the_cluster(
) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    // The sandbox's own directory goes to TMPDIR, the cluster's to
    // TEST_CLUSTER_TMPDIR; both must be gone afterwards.
    let sandbox_tmp = tmp.path().join("tmp");
    let cluster_tmp = tmp.path().join("cluster");
    std::fs::create_dir(&sandbox_tmp).expect("a directory for the sandbox");
    std::fs::create_dir(&cluster_tmp).expect("a directory for the cluster");
    let sandbox_dirs = || -> Vec<String> {
        entries(&sandbox_tmp)
            .into_iter()
            .filter(|name| name.starts_with("import-scheduler-sandbox."))
            .chain(entries(&cluster_tmp))
            .collect()
    };
    let port = free_port();
    // The reader that goes first: it takes one byte and exits.
    let mut reader = Command::new("head")
        .args(["-c", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("head runs");
    let pipe: OwnedFd = reader.stdin.take().expect("head's stdin").into();
    let mut script = Command::new("bash")
        .arg("scripts/sandbox.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SANDBOX_PUSH_EVERY", "0")
        .env("TMPDIR", &sandbox_tmp)
        .env("TEST_CLUSTER_TMPDIR", &cluster_tmp)
        .env("IMPORT_SCHEDULER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(pipe.try_clone().expect("dup the pipe")))
        .stderr(Stdio::from(pipe))
        // Its own process group, like a pipeline started from a terminal.
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let group = script.id();

    // Up to the daemon answering: the first run builds the binaries.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(Some(status)) = script.try_wait() {
            panic!("the sandbox exited ({status}) before its daemon was ready on port {port}");
        }
        if readyz(port).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox's daemon did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        reader.try_wait().expect("head's status").is_some()
            || wait_for(&mut reader, Duration::from_secs(10)).is_some(),
        "the reader exited first"
    );
    let tmp_text = tmp.path().to_string_lossy().into_owned();
    let cluster = processes()
        .into_iter()
        .find(|(pid, _, _, name)| name == "test-cluster" && cmdline(*pid).contains(&tmp_text))
        .expect("the sandbox's test cluster runs");
    let cluster_session = cluster.2;

    let sandbox = Sandbox::find(&sandbox_tmp);
    let started = Instant::now();
    a_bad_prod_image_is_pinned_back(&sandbox, &mut script);
    eprintln!("the bad image's story took {:.0?}", started.elapsed());
    let started = Instant::now();
    a_firing_alert_holds_prod_until_it_stops(&sandbox, &mut script);
    eprintln!("the alert's story took {:.0?}", started.elapsed());

    // Ctrl-C: SIGINT to the script's process group.
    let sent = Command::new("kill")
        .args(["-INT", "--", &format!("-{group}")])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let exited = wait_for(&mut script, Duration::from_secs(120));

    // The cluster's processes stop shortly after it (they watch it).
    let deadline = Instant::now() + Duration::from_secs(60);
    let left = loop {
        let left: Vec<String> = processes()
            .into_iter()
            .filter(|(_, pgrp, session, _)| *pgrp == group || *session == cluster_session)
            .map(|(pid, _, _, name)| format!("{pid} {name}: {}", cmdline(pid)))
            .collect();
        if (left.is_empty() && sandbox_dirs().is_empty()) || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if !left.is_empty() {
        // Do not leave a cluster behind for the next run.
        let _ = Command::new("kill")
            .args(["-TERM", &cluster.0.to_string()])
            .status();
    }
    assert!(exited.is_some(), "the sandbox exits after Ctrl-C");
    assert!(
        left.is_empty(),
        "still running after the sandbox stopped: {left:#?}"
    );
    assert_eq!(
        sandbox_dirs(),
        Vec::<String>::new(),
        "the sandbox's and the cluster's temporary directories are removed"
    );
}
