//! Checking an environment's gates before a window imports a tag: reads
//! what each gate needs (the soak environment's history and rollout,
//! Prometheus' alerts, the approvals in the status ConfigMap) and asks
//! [`crate::gates`] for the verdicts. One check per round reads the alerts
//! and the approvals once, whatever the number of tags.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::config::gates::{AlertsGate, SoakGate};
use crate::config::Environment;
use crate::gates::alerts_client::{AlertsClient, DEFAULT_TIMEOUT};
use crate::gates::approval::Approval;
use crate::gates::soak::{history_verdict, rollout_verdict, RolloutSeen};
use crate::gates::{alerts, approval, Gate, Verdict};
use crate::importer::{Importer, Target};
use crate::rollout::follow::{find_consumers, observe};
use crate::rollout::verdict::{verdict as rollout_state, Verdict as RolloutVerdict};
use crate::state::StateStore;

/// One client (and connection pool) for every environment's alerts gate.
fn alerts_client() -> &'static AlertsClient {
    static CLIENT: OnceLock<AlertsClient> = OnceLock::new();
    CLIENT.get_or_init(|| AlertsClient::new(DEFAULT_TIMEOUT))
}

/// The gates of one round of one environment inside window `window_id`.
pub struct RoundGates<'a> {
    env: &'a Environment,
    importer: &'a Importer,
    window_id: String,
    /// Where the approvals are kept (the status ConfigMap).
    approvals: &'a StateStore,
    alerts_verdict: OnceCell<Verdict>,
    approvals_read: OnceCell<Result<Vec<Approval>, String>>,
}

impl<'a> RoundGates<'a> {
    /// `None` when `env` has no gate.
    pub fn new(
        env: &'a Environment,
        importer: &'a Importer,
        window_id: String,
        approvals: &'a StateStore,
    ) -> Option<Self> {
        (!env.gates.is_empty()).then(|| RoundGates {
            env,
            importer,
            window_id,
            approvals,
            alerts_verdict: OnceCell::new(),
            approvals_read: OnceCell::new(),
        })
    }

    /// Every configured gate's verdict for importing `candidate` into `t`
    /// at `now`.
    pub async fn check(
        &self,
        t: &Target,
        candidate: &str,
        now: DateTime<Utc>,
    ) -> Vec<(Gate, Verdict)> {
        let gates = &self.env.gates;
        let mut out = Vec::new();
        if let Some(soak) = &gates.soak {
            out.push((Gate::Soak, self.soak(soak, t, candidate, now).await));
        }
        if let Some(a) = &gates.alerts {
            let v = self.alerts_verdict.get_or_init(|| ask_alerts(a)).await;
            out.push((Gate::Alerts, v.clone()));
        }
        if gates.approval {
            let read = self
                .approvals_read
                .get_or_init(|| read_approvals(self.approvals, &self.env.name))
                .await;
            out.push((
                Gate::Approval,
                approval::verdict(read, &self.env.name, &self.window_id, &t.stream, candidate),
            ));
        }
        out
    }

    async fn soak(
        &self,
        soak: &SoakGate,
        t: &Target,
        candidate: &str,
        now: DateTime<Utc>,
    ) -> Verdict {
        let history = match self
            .importer
            .history(&soak.namespace, &t.stream, &soak.tag)
            .await
        {
            Ok(h) => h,
            Err(e) if e.is_not_found() => {
                return Err(format!(
                    "it never ran in {}: {}/{}:{} does not exist",
                    soak.environment, soak.namespace, t.stream, soak.tag
                ))
            }
            Err(e) => {
                return Err(format!(
                    "the history of {} in {} cannot be read ({e}); holding until it can",
                    t.stream, soak.environment
                ))
            }
        };
        history_verdict(&soak.environment, candidate, &history, soak.duration, now)?;
        let seen = rollout_seen(self.importer.client(), soak, &t.stream, candidate).await;
        rollout_verdict(&soak.environment, &seen)
    }
}

/// How the soak environment's consumers of `stream` run `digest` now.
async fn rollout_seen(
    client: &kube::Client,
    soak: &SoakGate,
    stream: &str,
    digest: &str,
) -> RolloutSeen {
    let (consumers, _unreadable) =
        match find_consumers(client, &soak.namespace, stream, &soak.tag).await {
            Ok(found) => found,
            Err(e) => return RolloutSeen::Unreadable(e.to_string()),
        };
    if consumers.is_empty() {
        return RolloutSeen::NoConsumers;
    }
    match observe(client, &soak.namespace, &consumers, digest).await {
        // No timeout: how long it has taken is not this gate's question.
        Ok((states, pods, _)) => match rollout_state(&states, &pods, Duration::ZERO, Duration::MAX)
        {
            RolloutVerdict::Succeeded => RolloutSeen::Succeeded,
            RolloutVerdict::InProgress { waiting_for } => RolloutSeen::NotSucceeded(waiting_for),
            RolloutVerdict::Failed(f) => RolloutSeen::NotSucceeded(f.to_string()),
        },
        Err(e) => RolloutSeen::Unreadable(e.to_string()),
    }
}

/// The approvals of `env`, read afresh, or why they cannot be read.
async fn read_approvals(store: &StateStore, env: &str) -> Result<Vec<Approval>, String> {
    store
        .load()
        .await
        .map(|mut all| all.remove(env).map(|s| s.approvals).unwrap_or_default())
        .map_err(|e| e.to_string())
}

async fn ask_alerts(gate: &AlertsGate) -> Verdict {
    let answer = alerts_client()
        .alerts(&gate.prometheus_url, gate.bearer_token_file.as_deref())
        .await;
    alerts::verdict(&answer, &gate.matchers)
}
