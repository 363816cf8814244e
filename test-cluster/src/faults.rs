//! Fault injection for the shim: latency, error answers, hanging requests and
//! dropped connections, per method and path.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a matching request suffers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FaultKindWire", into = "FaultKindWire")]
pub enum FaultKind {
    /// Delay before the request is handled; other rules still apply.
    Latency(Duration),
    /// Answer with a Kubernetes `Status` of this HTTP code instead of handling
    /// the request. `retry_after_secs` sets `Retry-After` and
    /// `details.retryAfterSeconds`.
    Status {
        code: u16,
        retry_after_secs: Option<u64>,
    },
    /// Never answer (until the client gives up or the cluster stops).
    Hang,
    /// Close the connection without an answer.
    Drop,
}

/// The JSON form of [`FaultKind`] on the admin endpoint:
/// `{"latency_ms": 200}`, `{"status": {"code": 429, "retry_after_secs": 2}}`,
/// `"hang"`, `"drop"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultKindWire {
    LatencyMs(u64),
    Status {
        code: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    Hang,
    Drop,
}

impl From<FaultKindWire> for FaultKind {
    fn from(w: FaultKindWire) -> Self {
        match w {
            FaultKindWire::LatencyMs(ms) => FaultKind::Latency(Duration::from_millis(ms)),
            FaultKindWire::Status {
                code,
                retry_after_secs,
            } => FaultKind::Status {
                code,
                retry_after_secs,
            },
            FaultKindWire::Hang => FaultKind::Hang,
            FaultKindWire::Drop => FaultKind::Drop,
        }
    }
}

impl From<FaultKind> for FaultKindWire {
    fn from(k: FaultKind) -> Self {
        match k {
            FaultKind::Latency(d) => {
                FaultKindWire::LatencyMs(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            FaultKind::Status {
                code,
                retry_after_secs,
            } => FaultKindWire::Status {
                code,
                retry_after_secs,
            },
            FaultKind::Hang => FaultKindWire::Hang,
            FaultKind::Drop => FaultKindWire::Drop,
        }
    }
}

fn one() -> f64 {
    1.0
}

/// A fault for requests whose method matches (any when `None`) and whose
/// path-and-query contains `path_contains`, firing with `probability`
/// (0.0..=1.0) at most `times` times (unlimited when `None`).
///
/// Rules also apply to the registry lookups the shim makes during imports
/// (method `GET`, path `/v2/<repo>/manifests/<reference>`): a `Status` of 401
/// there gives the image an `Unauthorized` failure, 404 `NotFound`, others
/// `InternalError`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: String,
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub probability: f64,
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule for every method, always firing, without a limit.
    pub fn new(path_contains: impl Into<String>, kind: FaultKind) -> FaultRule {
        FaultRule {
            method: None,
            path_contains: path_contains.into(),
            kind,
            probability: 1.0,
            times: None,
        }
    }

    /// Only requests with this HTTP method (case-insensitive).
    pub fn method(mut self, method: impl Into<String>) -> FaultRule {
        self.method = Some(method.into());
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Fire with this probability (0.0..=1.0).
    pub fn probability(mut self, p: f64) -> FaultRule {
        self.probability = p;
        self
    }

    fn matches(&self, method: &str, path_and_query: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path_and_query.contains(&self.path_contains)
    }
}

/// One active rule as the admin endpoint lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActiveFault {
    pub id: u64,
    pub hits: u32,
    #[serde(flatten)]
    pub rule: FaultRule,
}

#[derive(Default)]
struct FaultState {
    next_id: u64,
    rules: Vec<ActiveFault>,
}

/// The fault rules of one cluster; shared by the test and the shim.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

/// What the shim does to one request.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FaultDecision {
    pub latency: Duration,
    pub action: Option<FaultKind>,
}

impl Faults {
    fn state(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule; returns its id (for [`Faults::remove`] and [`Faults::hits`]).
    pub fn add(&self, rule: FaultRule) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
        s.rules.push(ActiveFault { id, hits: 0, rule });
        id
    }

    /// Removes one rule; false when there was none with this id.
    pub fn remove(&self, id: u64) -> bool {
        let mut s = self.state();
        let before = s.rules.len();
        s.rules.retain(|r| r.id != id);
        s.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state().rules.clear();
    }

    /// How often the rule fired so far (0 for an unknown id).
    pub fn hits(&self, id: u64) -> u32 {
        self.state()
            .rules
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.hits)
    }

    /// The active rules, oldest first.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.state().rules.clone()
    }

    /// Latency rules add up; the first terminal rule (status, hang, drop) that
    /// fires decides the answer.
    pub(crate) fn decide(&self, method: &str, path_and_query: &str) -> FaultDecision {
        let mut s = self.state();
        let mut decision = FaultDecision::default();
        let mut rng = rand::rng();
        for active in s.rules.iter_mut() {
            let terminal = !matches!(active.rule.kind, FaultKind::Latency(_));
            if terminal && decision.action.is_some() {
                continue;
            }
            if !active.rule.matches(method, path_and_query) {
                continue;
            }
            if active.rule.times.is_some_and(|t| active.hits >= t) {
                continue;
            }
            let p = active.rule.probability;
            if p < 1.0 && rng.random::<f64>() >= p {
                continue;
            }
            active.hits += 1;
            match &active.rule.kind {
                FaultKind::Latency(d) => decision.latency += *d,
                other => decision.action = Some(other.clone()),
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_limits_hits_and_method_filters() {
        let f = Faults::default();
        let id = f.add(
            FaultRule::new(
                "/imagestreamimports",
                FaultKind::Status {
                    code: 500,
                    retry_after_secs: None,
                },
            )
            .method("post")
            .times(2),
        );
        let path = "/apis/image.openshift.io/v1/namespaces/a/imagestreamimports";
        assert_eq!(f.decide("GET", path).action, None);
        assert!(f.decide("POST", path).action.is_some());
        assert!(f.decide("POST", path).action.is_some());
        assert_eq!(f.decide("POST", path).action, None);
        assert_eq!(f.hits(id), 2);
    }

    #[test]
    fn latencies_add_up_and_first_terminal_wins() {
        let f = Faults::default();
        f.add(FaultRule::new(
            "",
            FaultKind::Latency(Duration::from_millis(10)),
        ));
        f.add(FaultRule::new("/api", FaultKind::Drop));
        f.add(FaultRule::new("/api", FaultKind::Hang));
        f.add(FaultRule::new(
            "/api",
            FaultKind::Latency(Duration::from_millis(5)),
        ));
        let d = f.decide("GET", "/api/v1/namespaces");
        assert_eq!(d.latency, Duration::from_millis(15));
        assert_eq!(d.action, Some(FaultKind::Drop));
        f.clear();
        assert_eq!(f.decide("GET", "/api").action, None);
    }

    #[test]
    fn zero_probability_never_fires() {
        let f = Faults::default();
        let id = f.add(FaultRule::new("", FaultKind::Drop).probability(0.0));
        for _ in 0..100 {
            assert_eq!(f.decide("GET", "/x").action, None);
        }
        assert_eq!(f.hits(id), 0);
    }

    #[test]
    fn wire_format_round_trips() {
        let json = r#"[
            {"path_contains": "/x", "kind": {"latency_ms": 250}},
            {"method": "POST", "path_contains": "/y", "kind": {"status": {"code": 429, "retry_after_secs": 2}}, "times": 1},
            {"path_contains": "", "kind": "hang", "probability": 0.5},
            {"path_contains": "", "kind": "drop"}
        ]"#;
        let rules: Vec<FaultRule> = serde_json::from_str(json).unwrap();
        assert_eq!(
            rules[0].kind,
            FaultKind::Latency(Duration::from_millis(250))
        );
        assert_eq!(rules[0].probability, 1.0);
        assert_eq!(
            rules[1].kind,
            FaultKind::Status {
                code: 429,
                retry_after_secs: Some(2)
            }
        );
        assert_eq!(rules[1].times, Some(1));
        assert_eq!(rules[2].kind, FaultKind::Hang);
        assert_eq!(rules[3].kind, FaultKind::Drop);
        let back: Vec<FaultRule> =
            serde_json::from_str(&serde_json::to_string(&rules).unwrap()).unwrap();
        assert_eq!(back, rules);
    }
}
