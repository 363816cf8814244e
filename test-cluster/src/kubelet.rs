//! A stand-in for what a node does, and only that. The test cluster runs no
//! containers: one Node object (kept Ready, with a renewed Lease) and a task
//! in the test-cluster process that watches the pods bound to that node and
//! writes the status a kubelet would write: `Running` and Ready, or - for
//! images a test marks as bad ([`crate::TestCluster::mark_image_bad`]) -
//! `CrashLoopBackOff` with a rising `restartCount`, or `ErrImagePull` /
//! `ImagePullBackOff`. It also completes graceful deletions as a kubelet
//! does once the containers stopped (StatefulSets wait for that).
//!
//! Everything above the node is real: kube-scheduler binds the pods,
//! kube-controller-manager's Deployment, ReplicaSet and StatefulSet
//! controllers read this status to count ready and available replicas.
//! Not simulated: probes, init containers (reported as done), resources,
//! volumes, pod IP routing, and image pulls (an image runs unless marked).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::upstream::Upstream;

/// The name of the one node.
pub(crate) const NODE: &str = "test-node";

/// How a marked image fails on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The container starts and exits at once, again and again:
    /// `CrashLoopBackOff`, `restartCount` rising, never Ready.
    CrashLoop,
    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`;
    /// the pod stays `Pending`.
    PullError,
}

/// Images tests marked as bad, shared by the cluster and the stand-in kubelet.
#[derive(Clone, Default)]
pub(crate) struct ImageMarks(Arc<Mutex<Vec<(String, Failure)>>>);

impl ImageMarks {
    /// Marks `reference` (replacing an earlier mark of the same reference).
    pub(crate) fn mark(&self, reference: &str, failure: Failure) {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks.retain(|(r, _)| r != reference);
        marks.push((reference.to_string(), failure));
    }

    /// Removes the mark of `reference`, if any.
    pub(crate) fn clear(&self, reference: &str) {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks.retain(|(r, _)| r != reference);
    }

    /// How a container with `image` fails, if a mark matches it.
    pub(crate) fn failure_for(&self, image: &str) -> Option<Failure> {
        let marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks
            .iter()
            .rev()
            .find(|(r, _)| mark_matches(r, image))
            .map(|(_, f)| *f)
    }
}

/// The digest of `host/repo@sha256:...`.
fn digest_of(reference: &str) -> Option<&str> {
    reference.split_once('@').map(|(_, d)| d)
}

/// `host/repo` of `host/repo:tag` or `host/repo@digest` (a `:` before the
/// last `/` is a port).
fn repository_of(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    match (no_digest.rfind(':'), no_digest.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &no_digest[..colon],
        (Some(colon), None) => &no_digest[..colon],
        _ => no_digest,
    }
}

/// Whether a mark names `image`: a bare digest (`sha256:...`) or any
/// reference with a digest matches every image with that digest; a
/// repository without tag matches every image of it; anything else matches
/// only the same reference.
pub(crate) fn mark_matches(mark: &str, image: &str) -> bool {
    if mark == image {
        return true;
    }
    if mark.starts_with("sha256:") {
        return digest_of(image) == Some(mark);
    }
    if let Some(d) = digest_of(mark) {
        return digest_of(image) == Some(d);
    }
    repository_of(mark) == mark && repository_of(image) == mark
}

/// What one container does on the node.
#[derive(Clone, Debug, PartialEq)]
enum Run {
    Running,
    CrashLoop { restarts: u32 },
    PullError { attempts: u32 },
}

#[derive(Clone, Debug)]
struct Container {
    name: String,
    image: String,
    run: Run,
}

/// A pod the node started.
#[derive(Clone, Debug)]
struct PodState {
    namespace: String,
    name: String,
    containers: Vec<Container>,
    ip: String,
    started: String,
    /// When the failing containers next change (a restart, a pull retry).
    next_step: Instant,
    /// Whether the current status is written.
    written: bool,
}

/// Seconds between restarts of a crash-looping container and between pull
/// retries: far below a kubelet's back-off (10 s doubling to 5 min) so tests
/// see the count rise quickly.
const STEP: Duration = Duration::from_secs(2);

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, since: &str) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// The `containerStatuses` entry of one container.
fn container_status(c: &Container, pod_uid_hint: &str, started: &str) -> Value {
    let id = format!("containerd://{pod_uid_hint}-{}", c.name);
    match &c.run {
        Run::Running => json!({
            "name": c.name,
            "image": c.image,
            "imageID": image_id(&c.image),
            "containerID": id,
            "ready": true,
            "started": true,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
            "lastState": {},
        }),
        Run::CrashLoop { restarts } => json!({
            "name": c.name,
            "image": c.image,
            "imageID": image_id(&c.image),
            "containerID": id,
            "ready": false,
            "started": false,
            "restartCount": restarts,
            "state": {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!("back-off 10s restarting failed container={} pod=", c.name),
            }},
            "lastState": {"terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": started,
                "finishedAt": now_rfc3339(),
                "containerID": id,
            }},
        }),
        Run::PullError { attempts } => {
            // A kubelet alternates: the failed pull, then the back-off.
            let (reason, message) = if attempts % 2 == 1 {
                (
                    "ErrImagePull",
                    format!("rpc error: code = NotFound desc = failed to pull and unpack image {:?}: not found", c.image),
                )
            } else {
                (
                    "ImagePullBackOff",
                    format!("Back-off pulling image {:?}", c.image),
                )
            };
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}},
                "lastState": {},
            })
        }
    }
}

/// What a container runtime reports as the image's ID.
fn image_id(image: &str) -> String {
    match digest_of(image) {
        Some(d) => format!("{}@{d}", repository_of(image)),
        None => image.to_string(),
    }
}

/// The pod `status` a kubelet would write for this state.
fn pod_status(p: &PodState) -> Value {
    let ready = p.containers.iter().all(|c| c.run == Run::Running);
    let pulled = p
        .containers
        .iter()
        .all(|c| !matches!(c.run, Run::PullError { .. }));
    let not_ready = (!ready).then_some("ContainersNotReady");
    let uid_hint = format!("{}-{}", p.namespace, p.name);
    json!({
        "phase": if pulled { "Running" } else { "Pending" },
        "conditions": [
            condition("Initialized", true, None, &p.started),
            condition("Ready", ready, not_ready, &p.started),
            condition("ContainersReady", ready, not_ready, &p.started),
            condition("PodScheduled", true, None, &p.started),
        ],
        "hostIP": "127.0.0.1",
        "podIP": p.ip,
        "podIPs": [{"ip": p.ip}],
        "startTime": p.started,
        "containerStatuses": p.containers.iter().map(|c| container_status(c, &uid_hint, &p.started)).collect::<Vec<_>>(),
    })
}

/// Advances the failing containers by one restart or pull retry.
fn step(p: &mut PodState) -> bool {
    let mut changed = false;
    for c in &mut p.containers {
        match &mut c.run {
            Run::Running => {}
            Run::CrashLoop { restarts } => {
                *restarts += 1;
                changed = true;
            }
            Run::PullError { attempts } => {
                *attempts += 1;
                changed = true;
            }
        }
    }
    changed
}

type Pods = Arc<Mutex<HashMap<String, PodState>>>;

/// The running stand-in: its tasks end when it is dropped.
pub(crate) struct Kubelet {
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Kubelet {
    /// Starts the heartbeat, the pod watch and the restart ticker on `handle`.
    pub(crate) fn spawn(
        handle: &tokio::runtime::Handle,
        up: Upstream,
        marks: ImageMarks,
    ) -> Kubelet {
        let pods: Pods = Arc::default();
        let tasks = vec![
            handle.spawn(heartbeat(up.clone())).abort_handle(),
            handle
                .spawn(watch_pods(up.clone(), marks, pods.clone()))
                .abort_handle(),
            handle.spawn(tick(up, pods)).abort_handle(),
        ];
        Kubelet { tasks }
    }

    pub(crate) fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn node_status(now: &str) -> Value {
    let cond = |kind: &str, ok: bool, reason: &str| {
        json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "reason": reason,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        })
    };
    let resources =
        json!({"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"});
    json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            cond("MemoryPressure", false, "KubeletHasSufficientMemory"),
            cond("DiskPressure", false, "KubeletHasNoDiskPressure"),
            cond("PIDPressure", false, "KubeletHasSufficientPID"),
            cond("Ready", true, "KubeletReady"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "test-cluster stand-in node",
            "containerRuntimeVersion": "containerd://stand-in",
            "kubeletVersion": format!("v{}", crate::cluster::KUBE_VERSION),
            "kubeProxyVersion": format!("v{}", crate::cluster::KUBE_VERSION),
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }})
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

fn micro_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Creates the Node (Ready, schedulable) and its Lease.
pub(crate) async fn register_node(up: &Upstream) -> anyhow::Result<()> {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }},
    });
    create(up, "/api/v1/nodes", &node).await?;
    // kube-apiserver's TaintNodesByCondition admission taints every new
    // node `not-ready` until the node lifecycle controller sees it Ready;
    // that controller does not run here, so the node clears it itself.
    up.expect(
        Method::PATCH,
        &format!("/api/v1/nodes/{NODE}"),
        Some(&json!({"spec": {"taints": null}})),
    )
    .await?;
    up.expect(
        Method::PATCH,
        &format!("/api/v1/nodes/{NODE}/status"),
        Some(&node_status(&now_rfc3339())),
    )
    .await?;
    create(
        up,
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-node-lease"}}),
    )
    .await?;
    create(
        up,
        LEASE,
        &json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": NODE, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": micro_now()},
        }),
    )
    .await
}

async fn create(up: &Upstream, path: &str, body: &Value) -> anyhow::Result<()> {
    let a = up.call(Method::POST, path, Some(body)).await?;
    if a.ok() || a.status == StatusCode::CONFLICT {
        return Ok(());
    }
    bail!("POST {path} answered {}: {}", a.status, a.message())
}

/// Renews the Lease every 10 s and the Ready condition every 40 s, as a
/// kubelet does, so nothing that watches node health takes the node away.
async fn heartbeat(up: Upstream) {
    let mut n: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        n += 1;
        let _ = up
            .call(
                Method::PATCH,
                &format!("{LEASE}/{NODE}"),
                Some(&json!({"spec": {"renewTime": micro_now()}})),
            )
            .await;
        if n % 4 == 0 {
            let _ = up
                .call(
                    Method::PATCH,
                    &format!("/api/v1/nodes/{NODE}/status"),
                    Some(&node_status(&now_rfc3339())),
                )
                .await;
        }
    }
}

fn pods_query() -> String {
    format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")
}

/// Lists, then watches, the pods bound to the node; relists when the watch
/// ends or fails.
async fn watch_pods(up: Upstream, marks: ImageMarks, pods: Pods) {
    let mut next_ip: u32 = 0;
    loop {
        if let Err(e) = list_and_watch(&up, &marks, &pods, &mut next_ip).await {
            tracing::debug!("stand-in kubelet: pod watch ended: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn list_and_watch(
    up: &Upstream,
    marks: &ImageMarks,
    pods: &Pods,
    next_ip: &mut u32,
) -> anyhow::Result<()> {
    let list = up.expect(Method::GET, &pods_query(), None).await?;
    for pod in list["items"].as_array().into_iter().flatten() {
        on_pod(up, marks, pods, next_ip, "ADDED", pod).await;
    }
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!(
        "{}{}&watch=1&resourceVersion={rv}&timeoutSeconds=240",
        up.base,
        pods_query()
    );
    let resp = up
        .client
        .get(url)
        .bearer_auth(&up.admin_token)
        .header("Accept", "application/json")
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the pod watch answered {}", resp.status());
    }
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let event: Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let kind = event["type"].as_str().unwrap_or_default();
            if kind == "ERROR" {
                bail!("the pod watch sent an error: {}", event["object"]);
            }
            on_pod(up, marks, pods, next_ip, kind, &event["object"]).await;
        }
    }
    Ok(())
}

/// One pod event: start a new pod, finish a deletion, forget a deleted pod.
async fn on_pod(
    up: &Upstream,
    marks: &ImageMarks,
    pods: &Pods,
    next_ip: &mut u32,
    kind: &str,
    pod: &Value,
) {
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if uid.is_empty() || kind == "BOOKMARK" {
        return;
    }
    if kind == "DELETED" {
        lock(pods).remove(&uid);
        return;
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        // The containers "stopped" at once: the kubelet's final delete.
        let _ = up
            .call(
                Method::DELETE,
                &format!("/api/v1/namespaces/{ns}/pods/{name}"),
                Some(&json!({
                    "apiVersion": "v1", "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                })),
            )
            .await;
        lock(pods).remove(&uid);
        return;
    }
    if lock(pods).contains_key(&uid) {
        return;
    }
    *next_ip += 1;
    let containers = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            let run = match marks.failure_for(&image) {
                None => Run::Running,
                Some(Failure::CrashLoop) => Run::CrashLoop { restarts: 1 },
                Some(Failure::PullError) => Run::PullError { attempts: 1 },
            };
            Container {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                image,
                run,
            }
        })
        .collect();
    let state = PodState {
        namespace: ns.to_string(),
        name: name.to_string(),
        containers,
        ip: format!("10.88.{}.{}", *next_ip / 250, *next_ip % 250 + 1),
        started: now_rfc3339(),
        next_step: Instant::now() + STEP,
        written: false,
    };
    lock(pods).insert(uid.clone(), state.clone());
    write_status(up, pods, &uid, &state).await;
}

fn lock(pods: &Pods) -> std::sync::MutexGuard<'_, HashMap<String, PodState>> {
    pods.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes a pod's status; a pod gone meanwhile is forgotten, any other
/// failure is retried by the ticker.
async fn write_status(up: &Upstream, pods: &Pods, uid: &str, state: &PodState) {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/status",
        state.namespace, state.name
    );
    let body = json!({"metadata": {"uid": uid}, "status": pod_status(state)});
    let answer = up.call(Method::PATCH, &path, Some(&body)).await;
    let mut pods = lock(pods);
    match answer {
        Ok(a) if a.ok() => {
            if let Some(p) = pods.get_mut(uid) {
                p.written = true;
            }
        }
        // Gone, or a new pod of the same name (a StatefulSet's): the uid
        // in the patch no longer matches.
        Ok(a)
            if matches!(
                a.status,
                StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            pods.remove(uid);
        }
        _ => {}
    }
}

/// Every half second: restarts crash-looping containers, retries pulls, and
/// rewrites statuses that failed to write.
async fn tick(up: Upstream, pods: Pods) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Instant::now();
        let due: Vec<(String, PodState)> = {
            let mut pods = lock(&pods);
            pods.iter_mut()
                .filter_map(|(uid, p)| {
                    if p.next_step <= now {
                        p.next_step = now + STEP;
                        if step(p) {
                            p.written = false;
                        }
                    }
                    (!p.written).then(|| (uid.clone(), p.clone()))
                })
                .collect()
        };
        for (uid, state) in due {
            write_status(&up, &pods, &uid, &state).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: &str = "127.0.0.1:5000/ns/worker@sha256:abc";

    #[test]
    fn marks_match_by_digest_repository_or_exact_reference() {
        assert!(mark_matches("sha256:abc", IMG));
        assert!(!mark_matches("sha256:abd", IMG));
        assert!(mark_matches("other.host/x/y@sha256:abc", IMG));
        assert!(mark_matches("127.0.0.1:5000/ns/worker", IMG));
        assert!(!mark_matches("127.0.0.1:5000/ns/work", IMG));
        assert!(mark_matches(
            "127.0.0.1:5000/ns/worker:prod",
            "127.0.0.1:5000/ns/worker:prod"
        ));
        assert!(!mark_matches("127.0.0.1:5000/ns/worker:prod", IMG));
        assert!(!mark_matches(
            "127.0.0.1:5000/ns/worker:prod",
            "127.0.0.1:5000/ns/worker:stg"
        ));
    }

    #[test]
    fn repository_of_keeps_the_registry_port() {
        assert_eq!(repository_of("127.0.0.1:5000/a/b:t"), "127.0.0.1:5000/a/b");
        assert_eq!(repository_of("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
        assert_eq!(repository_of("busybox:1"), "busybox");
        assert_eq!(repository_of("a/b@sha256:x"), "a/b");
    }

    #[test]
    fn the_newest_mark_of_an_image_wins_and_clear_removes_it() {
        let m = ImageMarks::default();
        m.mark("sha256:abc", Failure::PullError);
        m.mark(IMG, Failure::CrashLoop);
        assert_eq!(m.failure_for(IMG), Some(Failure::CrashLoop));
        m.clear(IMG);
        assert_eq!(m.failure_for(IMG), Some(Failure::PullError));
        m.clear("sha256:abc");
        assert_eq!(m.failure_for(IMG), None);
    }

    fn pod(run: Run) -> PodState {
        PodState {
            namespace: "ns".into(),
            name: "p".into(),
            containers: vec![Container {
                name: "worker".into(),
                image: IMG.into(),
                run,
            }],
            ip: "10.88.0.2".into(),
            started: "2026-01-01T00:00:00Z".into(),
            next_step: Instant::now(),
            written: false,
        }
    }

    fn ready(s: &Value) -> &Value {
        &s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
    }

    #[test]
    fn a_running_pod_is_ready() {
        let s = pod_status(&pod(Run::Running));
        assert_eq!(s["phase"], "Running");
        assert_eq!(*ready(&s), "True");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["startTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_crash_loop_restarts_and_is_never_ready() {
        let mut p = pod(Run::CrashLoop { restarts: 1 });
        assert!(step(&mut p));
        let s = pod_status(&p);
        assert_eq!(s["phase"], "Running");
        assert_eq!(*ready(&s), "False");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
    }

    #[test]
    fn a_pull_error_alternates_with_the_back_off_and_stays_pending() {
        let mut p = pod(Run::PullError { attempts: 1 });
        let s = pod_status(&p);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImagePull"
        );
        step(&mut p);
        let s = pod_status(&p);
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
        assert_eq!(*ready(&s), "False");
    }

    #[test]
    fn a_running_pod_does_not_step() {
        let mut p = pod(Run::Running);
        assert!(!step(&mut p));
    }
}
