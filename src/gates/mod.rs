//! Gates: evidence a windowed environment waits for before a window
//! imports a tag, on top of the window itself.
//!
//! - [`soak`]: the image ran long enough in another environment, its
//!   rollout there succeeded;
//! - [`alerts`]: no matching Prometheus alert fires;
//! - [`approval`]: a person approved this digest for this window.
//!
//! Each gate's verdict is a pure function of what the daemon read
//! (history, rollout, alerts, approvals) and the clock; [`combine`] puts
//! them together: every gate is evaluated, every holding reason kept, in
//! the fixed order of [`Gate`]. The reading lives in the scheduler and in
//! [`alerts_client`].

pub mod alerts;
pub mod alerts_client;
pub mod approval;
pub mod matchers;
pub mod soak;

/// A gate, in the order verdicts are reported.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum Gate {
    Soak,
    Alerts,
    Approval,
}

impl Gate {
    /// Every gate, in report order.
    pub const ALL: [Gate; 3] = [Gate::Soak, Gate::Alerts, Gate::Approval];

    /// The `gate` label of metrics and the name in logs and Events.
    pub fn name(self) -> &'static str {
        match self {
            Gate::Soak => "soak",
            Gate::Alerts => "alerts",
            Gate::Approval => "approval",
        }
    }
}

/// One gate's verdict: `Err` holds, with the reason.
pub type Verdict = Result<(), String>;

/// A gate that holds a tag, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub gate: Gate,
    pub reason: String,
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.gate.name(), self.reason)
    }
}

/// A tag the gates held, as the status ConfigMap keeps it for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatedTag {
    /// The digest the window would have imported.
    pub digest: String,
    pub holds: Vec<Hold>,
    /// The window it was held in.
    pub window: String,
    /// Since when these gates hold it (a changing reason, such as how long
    /// the image has soaked, is not written at every check).
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Every holding gate among `verdicts`, in [`Gate`] order (one per gate:
/// the first verdict given for a gate counts). Empty: the tag may import.
pub fn combine(verdicts: impl IntoIterator<Item = (Gate, Verdict)>) -> Vec<Hold> {
    let mut seen = std::collections::BTreeMap::new();
    for (gate, verdict) in verdicts {
        seen.entry(gate).or_insert(verdict);
    }
    seen.into_iter()
        .filter_map(|(gate, v)| v.err().map(|reason| Hold { gate, reason }))
        .collect()
}

/// The holds as one line: `soak: ...; approval: ...`.
pub fn describe(holds: &[Hold]) -> String {
    holds
        .iter()
        .map(Hold::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_holding_gate_is_kept_in_gate_order() {
        let holds = combine([
            (Gate::Approval, Err("not approved".to_owned())),
            (Gate::Alerts, Ok(())),
            (Gate::Soak, Err("never ran in stg".to_owned())),
        ]);
        assert_eq!(
            holds,
            [
                Hold {
                    gate: Gate::Soak,
                    reason: "never ran in stg".into()
                },
                Hold {
                    gate: Gate::Approval,
                    reason: "not approved".into()
                },
            ]
        );
        assert_eq!(
            describe(&holds),
            "soak: never ran in stg; approval: not approved"
        );
        assert!(combine([(Gate::Soak, Ok(())), (Gate::Alerts, Ok(()))]).is_empty());
        assert!(combine([]).is_empty());
    }

    #[test]
    fn the_first_verdict_of_a_gate_counts() {
        let holds = combine([
            (Gate::Alerts, Err("first".to_owned())),
            (Gate::Alerts, Ok(())),
        ]);
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].reason, "first");
        assert!(combine([(Gate::Alerts, Ok(())), (Gate::Alerts, Err("x".into()))]).is_empty());
    }

    #[test]
    fn names_and_order() {
        let names: Vec<&str> = Gate::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(names, ["soak", "alerts", "approval"]);
        assert!(Gate::Soak < Gate::Alerts && Gate::Alerts < Gate::Approval);
    }
}
