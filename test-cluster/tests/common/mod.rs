//! Helpers shared by the test cluster's own tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_cluster::{TagSeed, TestCluster};

pub fn streams_path(ns: &str) -> String {
    format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams")
}

pub fn imports_path(ns: &str) -> String {
    format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamimports")
}

/// An ImageStreamImport of `(from, tag)` pairs into `stream`.
pub fn isi(stream: &str, import: bool, images: &[(&str, &str)]) -> Value {
    let images: Vec<Value> = images
        .iter()
        .map(|(from, tag)| {
            json!({
                "from": {"kind": "DockerImage", "name": from},
                "to": {"name": tag},
                "importPolicy": {},
                "referencePolicy": {"type": "Source"},
            })
        })
        .collect();
    json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStreamImport",
        "metadata": {"name": stream},
        "spec": {"import": import, "images": images},
    })
}

/// The images of a tag's history, newest first.
pub fn history(stream: &Value, tag: &str) -> Vec<String> {
    history_items(stream, tag)
        .iter()
        .filter_map(|i| i["image"].as_str().map(str::to_string))
        .collect()
}

/// The history items of a tag, newest first.
pub fn history_items(stream: &Value, tag: &str) -> Vec<Value> {
    stream["status"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["tag"] == tag)
        .flat_map(|t| t["items"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The spec tag `tag` of a stream.
pub fn spec_tag(stream: &Value, tag: &str) -> Value {
    stream["spec"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == tag)
        .cloned()
        .unwrap_or(Value::Null)
}

/// A namespace with stream `worker`, tag `prod` imported from a fresh push.
pub async fn worker_stream(c: &TestCluster, prefix: &str) -> (String, String, String) {
    let ns = c.create_namespace(prefix).await.unwrap();
    let repo = format!("{ns}/worker");
    let digest = c.registry().push_image(&repo, "prod").await.unwrap();
    c.seed_stream(
        &ns,
        "worker",
        &[TagSeed::new("prod", c.registry().image_ref(&repo, "prod"))],
    )
    .await
    .unwrap();
    (ns, repo, digest)
}

/// Polls `check` on stream `ns/name` until it holds (then returns the
/// stream) or `limit` passes (then panics with the last stream and `what`).
pub async fn eventually(
    c: &TestCluster,
    ns: &str,
    name: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = c.stream(ns, name).await.unwrap();
        if check(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {limit:?}; the stream is {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a client (`kubectl`, `oc`) with a kubeconfig and a private cache
/// directory: `(success, stdout, stderr)`, or `None` after a loud message
/// when the program is not installed.
pub fn client(program: &Path, kubeconfig: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    let cache = tempfile::tempdir().unwrap();
    let out = match Command::new(program)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(args)
        .env("HOME", cache.path())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "!!!!! {} is not installed: SKIPPING this part of the test !!!!!",
                program.display()
            );
            return None;
        }
        Err(e) => panic!("cannot run {}: {e}", program.display()),
    };
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `kubectl` (see [`client`]).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    client(Path::new("kubectl"), kubeconfig, args)
}

/// The real `oc` built with the cluster; never skipped.
pub fn oc(c: &TestCluster, args: &[&str]) -> (bool, String, String) {
    client(c.oc_path(), c.kubeconfig_path(), args).expect("oc is built with the cluster")
}
