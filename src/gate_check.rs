//! Checking an environment's gates before a window imports a tag: reads
//! what each gate needs (the soak environment's streams and workloads,
//! Prometheus' alerts, the approvals in the status ConfigMap) and asks
//! [`crate::gates`] for the verdicts. Each of those is read once per round,
//! at the round's first check, whatever the number of tags, and the gates
//! of one check are read together: a check adds one round trip to the
//! round's first import and none to the others.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use tracing::debug;

use crate::config::gates::{AlertsGate, SoakGate};
use crate::config::Environment;
use crate::gates::alerts_client::{AlertsClient, DEFAULT_TIMEOUT};
use crate::gates::soak::{history_verdict, rollout_verdict, RolloutSeen};
use crate::gates::{alerts, approval, Gate, Verdict};
use crate::importer::{Importer, Target};
use crate::openshift::ImageStream;
use crate::rollout::follow::{read_workloads, Workloads};
use crate::rollout::verdict::{verdict as rollout_state, Verdict as RolloutVerdict};
use crate::state::{EnvState, StateStore};

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
    soak_read: OnceCell<SoakRead>,
    alerts_verdict: OnceCell<Verdict>,
    /// The environment's state in the status ConfigMap at the round's
    /// first check: its approvals, and which tags it records as gated.
    saved: OnceCell<Result<EnvState, String>>,
}

/// The soak environment as one round reads it.
struct SoakRead {
    /// Its streams (`Err`: why they cannot be read, `None` when its
    /// namespace does not exist).
    streams: Result<Option<Vec<ImageStream>>, String>,
    workloads: Result<Workloads, String>,
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
            soak_read: OnceCell::new(),
            alerts_verdict: OnceCell::new(),
            saved: OnceCell::new(),
        })
    }

    /// The environment's state as the round read it.
    async fn saved(&self) -> &Result<EnvState, String> {
        self.saved
            .get_or_init(|| read_saved(self.approvals, &self.env.name))
            .await
    }

    /// Whether the status ConfigMap may record `stream` as held by gates
    /// (as the round read it; `true` when it could not be read), so that a
    /// pass needs to clear it there.
    pub async fn recorded_as_gated(&self, stream: &str) -> bool {
        match self.saved().await {
            Ok(state) => state.gated.contains_key(stream),
            Err(_) => true,
        }
    }

    /// The id of the window the round is in.
    pub fn window_id(&self) -> &str {
        &self.window_id
    }

    /// Every configured gate's verdict for importing `candidate` into `t`
    /// at `now`, in the order soak, alerts, approval.
    pub async fn check(
        &self,
        t: &Target,
        candidate: &str,
        now: DateTime<Utc>,
    ) -> Vec<(Gate, Verdict)> {
        let gates = &self.env.gates;
        let soak = async {
            match &gates.soak {
                Some(soak) => Some((Gate::Soak, self.soak(soak, t, candidate, now).await)),
                None => None,
            }
        };
        let alerts = async {
            match &gates.alerts {
                Some(a) => {
                    let v = self.alerts_verdict.get_or_init(|| ask_alerts(a)).await;
                    Some((Gate::Alerts, v.clone()))
                }
                None => None,
            }
        };
        let approval = async {
            if !gates.approval {
                return None;
            }
            let approvals = match self.saved().await {
                Ok(state) => Ok(state.approvals.clone()),
                Err(e) => Err(e.clone()),
            };
            Some((
                Gate::Approval,
                approval::verdict(
                    &approvals,
                    &self.env.name,
                    &self.window_id,
                    &t.stream,
                    candidate,
                ),
            ))
        };
        let (soak, alerts, approval) = tokio::join!(soak, alerts, approval);
        [soak, alerts, approval].into_iter().flatten().collect()
    }

    async fn soak(
        &self,
        soak: &SoakGate,
        t: &Target,
        candidate: &str,
        now: DateTime<Utc>,
    ) -> Verdict {
        let read = self
            .soak_read
            .get_or_init(|| read_soak(self.importer, soak))
            .await;
        let never = || {
            format!(
                "it never ran in {}: {}/{}:{} does not exist",
                soak.environment, soak.namespace, t.stream, soak.tag
            )
        };
        let streams = match &read.streams {
            Ok(Some(streams)) => streams,
            Ok(None) => return Err(never()),
            Err(e) => {
                return Err(format!(
                    "the history of {} in {} cannot be read ({e}); holding until it can",
                    t.stream, soak.environment
                ))
            }
        };
        let Some(stream) = streams
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(t.stream.as_str()))
        else {
            return Err(never());
        };
        let history = match (stream.status_tag(&soak.tag), stream.spec_tag(&soak.tag)) {
            (Some(status), _) => status.items.as_slice(),
            (None, Some(_)) => &[],
            (None, None) => return Err(never()),
        };
        history_verdict(&soak.environment, candidate, history, soak.duration, now)?;
        let seen = rollout_seen(&read.workloads, soak, &t.stream, candidate);
        rollout_verdict(&soak.environment, &seen)
    }
}

/// The soak environment's streams and workloads, read together.
async fn read_soak(importer: &Importer, soak: &SoakGate) -> SoakRead {
    let started = std::time::Instant::now();
    let (streams, workloads) = tokio::join!(
        importer.list_streams(&soak.namespace, None),
        read_workloads(importer.client(), &soak.namespace)
    );
    debug!(environment = %soak.environment, took_ms = started.elapsed().as_millis(), "soak gate: streams and workloads read");
    SoakRead {
        streams: match streams {
            Ok(streams) => Ok(Some(streams)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        workloads: workloads.map_err(|e| e.to_string()),
    }
}

/// How the soak environment's consumers of `stream` run `digest`, from
/// the round's read of its workloads.
fn rollout_seen(
    workloads: &Result<Workloads, String>,
    soak: &SoakGate,
    stream: &str,
    digest: &str,
) -> RolloutSeen {
    let workloads = match workloads {
        Ok(w) => w,
        Err(e) => return RolloutSeen::Unreadable(e.clone()),
    };
    let (consumers, _unreadable) = workloads.consumers(&soak.namespace, stream, &soak.tag);
    if consumers.is_empty() {
        return RolloutSeen::NoConsumers;
    }
    let (states, pods) = workloads.states(&consumers, digest);
    // No timeout: how long it has taken is not this gate's question.
    match rollout_state(&states, &pods, Duration::ZERO, Duration::MAX) {
        RolloutVerdict::Succeeded => RolloutSeen::Succeeded,
        RolloutVerdict::InProgress { waiting_for } => RolloutSeen::NotSucceeded(waiting_for),
        RolloutVerdict::Failed(f) => RolloutSeen::NotSucceeded(f.to_string()),
    }
}

/// The state of `env` in the status ConfigMap now, without waiting for
/// the daemon's own writes to it, or why it cannot be read.
async fn read_saved(store: &StateStore, env: &str) -> Result<EnvState, String> {
    let started = std::time::Instant::now();
    let read = store
        .read_now()
        .await
        .map(|mut all| all.remove(env).unwrap_or_default())
        .map_err(|e| e.to_string());
    debug!(
        env,
        took_ms = started.elapsed().as_millis(),
        "status ConfigMap read for the gates"
    );
    read
}

async fn ask_alerts(gate: &AlertsGate) -> Verdict {
    let started = std::time::Instant::now();
    let answer = alerts_client()
        .alerts(&gate.prometheus_url, gate.bearer_token_file.as_deref())
        .await;
    debug!(
        took_ms = started.elapsed().as_millis(),
        "alerts gate: Prometheus asked"
    );
    alerts::verdict(&answer, &gate.matchers)
}
