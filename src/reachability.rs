//! Whether the Kubernetes API answers, as the daemon's own calls see it.
//!
//! The client's layer ([`crate::kubeclient::MetricsLayer`]) records the
//! outcome of every request (the Lease renewals included); `/readyz` asks
//! [`ApiReachability::readiness`]. The verdict is a plain function of what
//! was recorded and the time ([`judge`]):
//!
//! - An answer other than 5xx counts as reached (a 403 or 404 is the server
//!   answering); 5xx, timeouts and connection errors count as failed.
//! - Unreachable means every call failed for at least the bound; one success
//!   makes it reachable again, so readiness recovers by itself.
//! - The bound ([`DEFAULT_UNREACHABLE_AFTER`], setting
//!   `IMPORT_SCHEDULER_API_UNREACHABLE_AFTER`) rides out a blip such as an
//!   API server restart without taking the pod out of its Service.
//!
//! Liveness does not look here: restarting the pod does not bring the API
//! server back.
//!
//! Each other cluster an environment lives on has its own record
//! ([`ApiReachability::cluster`]). Its trouble does not make the pod unready
//! (the daemon's own cluster and the other environments are fine); `/readyz`
//! lists it ([`ApiReachability::notes`]) and the environment's supervisor
//! reports it ([`verdict`]). A cluster also counts as in trouble when its last
//! answer refused the daemon's credentials or permissions (401, 403), or when
//! its client could not be set up at all (the kubeconfig Secret).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long every call must have failed before the API counts as unreachable.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(30);

/// What the client has seen of the API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contact {
    /// When a request last got an answer.
    pub last_success: Option<Instant>,
    /// When requests started failing, if the last one failed.
    pub failing_since: Option<Instant>,
    /// What the last failure was.
    pub last_error: Option<String>,
    /// The last answer that refused the credentials or permissions (401,
    /// 403), until a request succeeds.
    pub denied: Option<String>,
    /// Why no client could be set up (another cluster's kubeconfig Secret).
    pub setup_error: Option<String>,
}

/// What is wrong with another cluster, as its environment reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing known to be wrong.
    Fine,
    /// No client: the kubeconfig Secret is missing, unreadable or unusable.
    Setup(String),
    /// Every request failed for the bound.
    Unreachable(String),
    /// The cluster answers but refuses the daemon's credentials or permissions.
    Denied(String),
}

impl Verdict {
    /// The `reason` label and the sentence, `None` when fine.
    pub fn problem(&self) -> Option<(&'static str, &str)> {
        match self {
            Verdict::Fine => None,
            Verdict::Setup(why) => Some(("setup", why)),
            Verdict::Unreachable(why) => Some(("unreachable", why)),
            Verdict::Denied(why) => Some(("denied", why)),
        }
    }
}

/// What is wrong with a cluster at `now`. Unlike [`judge`], a cluster not
/// reached yet is fine: nothing has failed.
pub fn verdict(contact: &Contact, now: Instant, bound: Duration) -> Verdict {
    if let Some(e) = &contact.setup_error {
        return Verdict::Setup(e.clone());
    }
    if contact.failing_since.is_some() {
        if let Err(why) = judge(contact, now, bound) {
            return Verdict::Unreachable(why);
        }
    }
    match &contact.denied {
        Some(d) => Verdict::Denied(format!(
            "the cluster refuses the daemon's credentials or permissions: {d}"
        )),
        None => Verdict::Fine,
    }
}

/// `Ok` when the API counts as reachable at `now`, else why not.
pub fn judge(contact: &Contact, now: Instant, bound: Duration) -> Result<(), String> {
    let error = contact
        .last_error
        .as_deref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    match (contact.last_success, contact.failing_since) {
        (_, Some(since)) if now.saturating_duration_since(since) >= bound => Err(format!(
            "Kubernetes API unreachable: every request failed for {}s (limit {}s){error}",
            now.saturating_duration_since(since).as_secs(),
            bound.as_secs()
        )),
        (None, _) => Err(format!("Kubernetes API not reached yet{error}")),
        _ => Ok(()),
    }
}

/// The outcomes recorded by the client, shared with the endpoints.
#[derive(Debug)]
pub struct ApiReachability {
    contact: Mutex<Contact>,
    bound: Duration,
    /// Other clusters, by their `cluster` label.
    clusters: Mutex<BTreeMap<String, Arc<ApiReachability>>>,
}

impl ApiReachability {
    /// Unreachable after every call failed for `bound`.
    pub fn new(bound: Duration) -> Self {
        ApiReachability {
            contact: Mutex::new(Contact::default()),
            bound,
            clusters: Mutex::new(BTreeMap::new()),
        }
    }

    /// A request got an answer.
    pub fn success(&self) {
        if let Ok(mut contact) = self.contact.lock() {
            contact.last_success = Some(Instant::now());
            contact.failing_since = None;
            contact.last_error = None;
        }
    }

    /// A request got an answer with HTTP `status`; `what` says which
    /// request (verb, resource). 5xx counts as a failure.
    pub fn answered(&self, status: u16, what: impl FnOnce() -> String) {
        if status >= 500 {
            self.failure(format!("{}: HTTP {status}", what()));
            return;
        }
        self.success();
        if let Ok(mut contact) = self.contact.lock() {
            match status {
                401 | 403 => contact.denied = Some(format!("{}: HTTP {status}", what())),
                200..=299 => contact.denied = None,
                _ => {}
            }
        }
    }

    /// Why no client for this cluster could be set up, or `None` once one was.
    pub fn set_setup_error(&self, error: Option<String>) {
        if let Ok(mut contact) = self.contact.lock() {
            contact.setup_error = error;
        }
    }

    /// What is wrong with this cluster now.
    pub fn verdict(&self) -> Verdict {
        let contact = self.contact.lock().map(|c| c.clone()).unwrap_or_default();
        verdict(&contact, Instant::now(), self.bound)
    }

    /// The record of another cluster, by its `cluster` label (created on first use).
    pub fn cluster(&self, label: &str) -> Arc<ApiReachability> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters
            .entry(label.to_owned())
            .or_insert_with(|| Arc::new(ApiReachability::new(self.bound)))
            .clone()
    }

    /// Forgets the other clusters not in `keep` (no environment uses them now).
    pub fn retain_clusters(&self, keep: &std::collections::BTreeSet<String>) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters.retain(|label, _| keep.contains(label));
    }

    /// One line per other cluster in trouble, for `/readyz`.
    pub fn notes(&self) -> Vec<String> {
        let clusters = self.clusters.lock().map(|c| c.clone()).unwrap_or_default();
        clusters
            .iter()
            .filter_map(|(label, r)| {
                let verdict = r.verdict();
                let (_, why) = verdict.problem()?;
                Some(format!(
                    "cluster {label}: {why}; its environments retry with backoff, the others are unaffected"
                ))
            })
            .collect()
    }

    /// A request failed; `what` says how (verb, resource, error).
    pub fn failure(&self, what: String) {
        if let Ok(mut contact) = self.contact.lock() {
            contact.failing_since.get_or_insert_with(Instant::now);
            contact.last_error = Some(what);
        }
    }

    /// `Ok` while the API counts as reachable, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let contact = self.contact.lock().map(|c| c.clone()).unwrap_or_default();
        judge(&contact, Instant::now(), self.bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn verdicts() {
        let t0 = Instant::now();
        let bound = 30 * S;
        let contact = |success: Option<u64>, failing: Option<u64>, error: Option<&str>| Contact {
            last_success: success.map(|s| t0 + Duration::from_secs(s)),
            failing_since: failing.map(|s| t0 + Duration::from_secs(s)),
            last_error: error.map(str::to_owned),
            ..Contact::default()
        };
        let table: &[(Contact, u64, Result<(), &str>)] = &[
            (contact(None, None, None), 0, Err("Kubernetes API not reached yet")),
            (
                contact(None, Some(0), Some("get leases: connection refused")),
                5,
                Err("Kubernetes API not reached yet; last error: get leases: connection refused"),
            ),
            (
                contact(None, Some(0), Some("x")),
                30,
                Err("Kubernetes API unreachable: every request failed for 30s (limit 30s); last error: x"),
            ),
            (contact(Some(0), None, None), 3600, Ok(())),
            (contact(Some(0), Some(1), Some("x")), 30, Ok(())),
            (
                contact(Some(0), Some(1), Some("x")),
                31,
                Err("Kubernetes API unreachable: every request failed for 30s (limit 30s); last error: x"),
            ),
        ];
        for (contact, at, expected) in table {
            let got = judge(contact, t0 + Duration::from_secs(*at), bound);
            assert_eq!(got, expected.map_err(str::to_owned), "{contact:?} at {at}s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn follows_outcomes_and_recovers() {
        let api = ApiReachability::new(10 * S);
        assert!(api.readiness().is_err());
        api.success();
        assert_eq!(api.readiness(), Ok(()));
        api.failure("update leases: connection reset".into());
        tokio::time::advance(9 * S).await;
        api.failure("list imagestreams: connection reset".into());
        assert_eq!(api.readiness(), Ok(()), "a blip shorter than the bound");
        tokio::time::advance(S).await;
        let why = api.readiness().unwrap_err();
        assert!(
            why.contains("unreachable") && why.contains("list imagestreams"),
            "{why}"
        );
        api.success();
        assert_eq!(api.readiness(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn another_cluster_in_trouble_is_a_note_not_unreadiness() {
        let local = ApiReachability::new(10 * S);
        local.success();
        let remote = local.cluster("stg-cluster/kubeconfig");
        assert!(Arc::ptr_eq(
            &remote,
            &local.cluster("stg-cluster/kubeconfig")
        ));
        assert_eq!(remote.verdict(), Verdict::Fine, "not reached yet is fine");
        assert!(local.notes().is_empty());

        remote.answered(403, || "list imagestreams".into());
        let Verdict::Denied(why) = remote.verdict() else {
            panic!("{:?}", remote.verdict())
        };
        assert!(why.contains("list imagestreams: HTTP 403"), "{why}");
        remote.answered(404, || "get imagestreams".into());
        assert!(
            matches!(remote.verdict(), Verdict::Denied(_)),
            "a 404 says nothing of permissions"
        );
        remote.answered(200, || "list imagestreams".into());
        assert_eq!(remote.verdict(), Verdict::Fine);

        remote.failure("list imagestreams: connection refused".into());
        tokio::time::advance(9 * S).await;
        assert_eq!(
            remote.verdict(),
            Verdict::Fine,
            "a blip shorter than the bound"
        );
        tokio::time::advance(S).await;
        assert!(matches!(remote.verdict(), Verdict::Unreachable(_)));
        assert_eq!(
            local.readiness(),
            Ok(()),
            "the daemon's own cluster is fine"
        );
        let notes = local.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("cluster stg-cluster/kubeconfig: Kubernetes API unreachable")
                && notes[0].contains("connection refused"),
            "{notes:?}"
        );
        remote.answered(503, || "list imagestreams".into());
        assert!(
            matches!(remote.verdict(), Verdict::Unreachable(_)),
            "5xx is a failure"
        );

        remote.set_setup_error(Some("Secret ns/stg-cluster not found".into()));
        assert_eq!(
            remote.verdict(),
            Verdict::Setup("Secret ns/stg-cluster not found".into())
        );
        assert_eq!(remote.verdict().problem().map(|p| p.0), Some("setup"));
        remote.set_setup_error(None);
        remote.success();
        assert!(local.notes().is_empty());
        local.retain_clusters(&Default::default());
        assert!(!Arc::ptr_eq(
            &remote,
            &local.cluster("stg-cluster/kubeconfig")
        ));
    }
}
