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

use std::sync::Mutex;
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
}

impl ApiReachability {
    /// Unreachable after every call failed for `bound`.
    pub fn new(bound: Duration) -> Self {
        ApiReachability {
            contact: Mutex::new(Contact::default()),
            bound,
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
}
