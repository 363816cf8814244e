//! Reporting the gates: the verdict counter and the gauge of gated tags, a
//! log line per decision, a `Gated` Event when what holds a tag changes,
//! and the gated tags in the status ConfigMap for `status`.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{debug, info};

use super::{stream_ref, Reporter};
use crate::config::Environment;
use crate::events::{self, EventType};
use crate::gates::{describe, Gate, GatedTag, Verdict};
use crate::image_ref::short_digest;
use crate::importer::Target;
use crate::state::StateStore;

impl Reporter {
    /// The status ConfigMap, where the gates read approvals.
    pub fn state_store(&self) -> &StateStore {
        &self.state
    }

    /// Reports one tag's check as soon as it is made, before the import it
    /// may allow: counts every gate's verdict, observes how long the check
    /// took and, when every gate passes, logs the decision to import
    /// `digest` in `window`.
    pub fn gates_checked(
        &self,
        env: &Environment,
        t: &Target,
        window: &str,
        digest: &str,
        verdicts: &[(Gate, Verdict)],
        took: Duration,
    ) {
        self.metrics.observe_gate_check(&env.name, took);
        for (gate, verdict) in verdicts {
            let result = if verdict.is_ok() { "pass" } else { "hold" };
            self.metrics
                .record_gate_verdict(&env.name, gate.name(), result);
        }
        if verdicts.iter().all(|(_, v)| v.is_ok()) {
            info!(env = %env.name, window = %window, stream = %t.stream, tag = %t.tag, decision = "gates pass", digest = %digest, "every gate passes: importing");
        }
    }

    /// The gates hold `t` at `gated.digest`. `changed`: not held the same
    /// way (same gates, same digest) at the previous check of this window,
    /// so the Event is sent and the state written.
    pub async fn gated(&self, env: &Environment, t: &Target, gated: &GatedTag, changed: bool) {
        let reasons = describe(&gated.holds);
        let gates: Vec<&str> = gated.holds.iter().map(|h| h.gate.name()).collect();
        if !changed {
            debug!(env = %env.name, window = %gated.window, stream = %t.stream, tag = %t.tag, decision = "gated", gates = ?gates, reason = %reasons, "still held by gates; checking again at the next poll");
            return;
        }
        info!(env = %env.name, window = %gated.window, stream = %t.stream, tag = %t.tag, decision = "gated", digest = %gated.digest, gates = ?gates, reason = %reasons, "not imported now: held by gates; checking again at the next poll while the window is open");
        self.events
            .publish(
                &stream_ref(t),
                EventType::Warning,
                events::reason::GATED,
                events::action::SCHEDULE,
                format!(
                    "{}:{} is not imported in window {} of {}: {} would import {}, held by {reasons}",
                    t.stream,
                    t.tag,
                    gated.window,
                    env.name,
                    env.name,
                    short_digest(&gated.digest)
                ),
            )
            .await;
        let (stream, record) = (t.stream.clone(), gated.clone());
        self.update(&env.name, |s| {
            s.gated.insert(stream.clone(), record.clone());
        })
        .await;
    }

    /// The gates no longer hold `t`: they passed, or the tag is current.
    pub async fn gates_passed(&self, env: &Environment, t: &Target) {
        let stream = t.stream.clone();
        self.update(&env.name, |s| {
            s.gated.remove(&stream);
        })
        .await;
    }

    /// Tags each gate held at the last check of `env`.
    pub fn gated_tags(&self, env: &Environment, gated: &BTreeMap<String, GatedTag>) {
        if env.gates.is_empty() {
            return;
        }
        for gate in Gate::ALL {
            let count = gated
                .values()
                .filter(|g| g.holds.iter().any(|h| h.gate == gate))
                .count();
            self.metrics.set_gated_tags(&env.name, gate.name(), count);
        }
    }
}
