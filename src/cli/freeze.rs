//! `import-scheduler freeze` and `unfreeze`: freeze an environment without
//! editing the configuration. The freeze is kept in the status ConfigMap
//! with who set it (as the API server knows the caller) and when; the
//! daemon reads it at every decision. Each change is an Event (`Frozen`,
//! `Unfrozen`) on the status ConfigMap.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use serde::Serialize;

use super::cluster::{CliError, ClusterArgs, Session, EVENT_INSTANCE};
use crate::config::{Environment, Mode};
use crate::events::{config_map_ref, EventSink, EventType};
use crate::manual_freeze::{next_to_skip, parse_until, time_zone, with_manual, ManualFreeze};
use crate::state::{StateError, StateStore};

/// Event reason: an environment was frozen with `freeze`.
pub const FROZEN: &str = "Frozen";
/// Event reason: `unfreeze` lifted an environment's freezes.
pub const UNFROZEN: &str = "Unfrozen";
/// Event reason: `import --force` imported during a freeze.
pub const FORCED_DURING_FREEZE: &str = "ImportedDuringFreeze";
const ACTION: &str = "Freeze";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["until", "skip_next_window", "list"])))]
pub struct FreezeArgs {
    /// Environment to freeze (as named in the configuration).
    #[arg(long, value_name = "ENV", required_unless_present = "list")]
    pub env: Option<String>,
    /// Freeze from now until this time: 2026-12-01T09:00 (in the
    /// environment's time zone), an RFC 3339 instant, or a day (through its end).
    #[arg(long, value_name = "TIME", requires = "reason")]
    pub until: Option<String>,
    /// Freeze the next window that would open (or the one open now).
    #[arg(long, requires = "reason")]
    pub skip_next_window: bool,
    /// Why; shown by `status`, `next`, logs and Events.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// List the freezes set with this command (all environments, or --env).
    #[arg(long, conflicts_with_all = ["until", "skip_next_window", "reason"])]
    pub list: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, clap::Args)]
pub struct UnfreezeArgs {
    /// Environment whose freezes set with `freeze` are lifted (configured
    /// freezes stay).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The freezes of one environment after the command.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFreezes {
    pub environment: String,
    /// Freezes set with `freeze` that still freeze something.
    pub freezes: Vec<ManualFreeze>,
    /// The next window that really opens, with every freeze counted.
    pub next_window: Option<WindowView>,
}

#[derive(Debug, Serialize)]
pub struct WindowView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `frozen`, `unfrozen` or `list`.
    pub action: &'static str,
    pub environments: Vec<EnvFreezes>,
}

pub fn run_freeze(args: &FreezeArgs) -> u8 {
    super::cluster::run_report(args.cluster.output, freeze(args), render, |_| false)
}

pub fn run_unfreeze(args: &UnfreezeArgs) -> u8 {
    super::cluster::run_report(args.cluster.output, unfreeze(args), render, |_| false)
}

/// Who the API server says the caller is; the kubeconfig's user when the
/// server cannot say (SelfSubjectReview needs Kubernetes 1.28).
pub async fn caller(session: &Session) -> String {
    let api: Api<SelfSubjectReview> = Api::all(session.client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| session.identity.user_name().to_owned()),
        Err(_) => session.identity.user_name().to_owned(),
    }
}

fn store(session: &Session) -> StateStore {
    StateStore::new(
        session.client.clone(),
        &session.daemon_namespace,
        &session.status_configmap,
    )
}

fn state_error(session: &Session, error: StateError, verb: &str) -> CliError {
    match error {
        StateError::Api { source, .. } => CliError::from_kube(
            &source,
            verb,
            "configmaps",
            &session.daemon_namespace,
            session.identity.server.as_deref(),
        ),
        other => CliError::Usage(other.to_string()),
    }
}

fn view(env: &Environment, freezes: Vec<ManualFreeze>, now: DateTime<Utc>) -> EnvFreezes {
    let freezes: Vec<ManualFreeze> = freezes.into_iter().filter(|f| f.active(now)).collect();
    let frozen = with_manual(&std::sync::Arc::new(env.clone()), &freezes);
    EnvFreezes {
        environment: env.name.clone(),
        next_window: next_to_skip(&frozen, now).map(|w| WindowView {
            start: w.start,
            end: w.end,
        }),
        freezes,
    }
}

async fn publish(session: &Session, reason: &str, note: String) {
    let sink = EventSink::new(
        session.client.clone(),
        EVENT_INSTANCE,
        &session.daemon_namespace,
    );
    let object = config_map_ref(&session.daemon_namespace, &session.status_configmap, None);
    sink.publish(&object, EventType::Normal, reason, ACTION, note)
        .await;
}

async fn freeze(args: &FreezeArgs) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, args.env.as_deref()).await?;
    let now = Utc::now();
    let store = store(&session);
    if args.list {
        let states = store
            .load()
            .await
            .map_err(|e| state_error(&session, e, "get"))?;
        let envs: Vec<Environment> = match &args.env {
            Some(name) => vec![session.environment(name)?.clone()],
            None => session.config.environments.values().cloned().collect(),
        };
        let environments = envs
            .iter()
            .map(|env| {
                let manual = states
                    .get(&env.name)
                    .map(|s| s.freezes.clone())
                    .unwrap_or_default();
                view(env, manual, now)
            })
            .collect();
        return Ok(Report {
            action: "list",
            environments,
        });
    }
    let name = args.env.as_deref().unwrap_or_default();
    let env = session.environment(name)?.clone();
    if !matches!(env.mode, Mode::Windowed { .. }) {
        return Err(CliError::Usage(format!(
            "--env: environment `{name}` is in immediate mode and has no windows to freeze; set `paused: true` to stop its imports"
        )));
    }
    let reason = args.reason.clone().unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(CliError::Usage(
            "--reason: say why the environment is frozen, e.g. --reason \"release week\"".into(),
        ));
    }
    let states = store
        .load()
        .await
        .map_err(|e| state_error(&session, e, "get"))?;
    let existing: Vec<ManualFreeze> = states
        .get(name)
        .map(|s| s.freezes.clone())
        .unwrap_or_default();
    let (start, end, skipped) = if args.skip_next_window {
        let frozen = with_manual(&std::sync::Arc::new(env.clone()), &existing);
        let Some(w) = next_to_skip(&frozen, now) else {
            return Err(CliError::Usage(format!(
                "--skip-next-window: environment `{name}` has no window ahead to skip"
            )));
        };
        (w.start, w.end, Some(w.id()))
    } else {
        let text = args.until.as_deref().unwrap_or_default();
        let end = parse_until(text, time_zone(&env))
            .map_err(|e| CliError::Usage(format!("--until: {e}")))?;
        if end <= now {
            return Err(CliError::Usage(format!(
                "--until: {} is not in the future",
                end.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        (now, end, None)
    };
    let record = ManualFreeze {
        start,
        end,
        reason: reason.trim().to_owned(),
        by: caller(&session).await,
        at: now,
        skipped_window: skipped,
    };
    let written = store
        .update(name, |s| {
            s.freezes.retain(|f| f.active(now));
            s.freezes.push(record.clone());
        })
        .await
        .map_err(|e| state_error(&session, e, "update"))?;
    publish(
        &session,
        FROZEN,
        format!(
            "{name} frozen from {} until {} by {}: {}",
            start.to_rfc3339_opts(SecondsFormat::Secs, true),
            end.to_rfc3339_opts(SecondsFormat::Secs, true),
            record.by,
            record.reason
        ),
    )
    .await;
    Ok(Report {
        action: "frozen",
        environments: vec![view(&env, written.freezes, now)],
    })
}

async fn unfreeze(args: &UnfreezeArgs) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    let now = Utc::now();
    let by = caller(&session).await;
    let written = store(&session)
        .update(&env.name, |s| s.freezes.clear())
        .await
        .map_err(|e| state_error(&session, e, "update"))?;
    publish(&session, UNFROZEN, format!("{} unfrozen by {by}", env.name)).await;
    Ok(Report {
        action: "unfrozen",
        environments: vec![view(&env, written.freezes, now)],
    })
}

/// The freezes of an environment during which `import` is refused: the
/// configured ones and those set with `freeze`, at `now`.
pub async fn frozen_now(session: &Session, env: &Environment) -> Option<String> {
    let manual = store(session)
        .load()
        .await
        .ok()
        .and_then(|mut all| all.remove(&env.name))
        .map(|s| s.freezes)
        .unwrap_or_default();
    let frozen = with_manual(&std::sync::Arc::new(env.clone()), &manual);
    match &frozen.mode {
        Mode::Windowed { .. } => frozen.freeze.at(Utc::now()).map(|f| f.reason),
        Mode::Immediate => None,
    }
}

/// Records an import forced during a freeze (`import --force`).
pub async fn record_forced_import(session: &Session, env: &str, reason: &str) {
    let by = caller(session).await;
    tracing::warn!(env, by = %by, freeze = reason, "import forced during a freeze");
    publish(
        session,
        FORCED_DURING_FREEZE,
        format!("{env}: import forced by {by} during a freeze ({reason})"),
    )
    .await;
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    for e in &r.environments {
        let head = match r.action {
            "frozen" => "frozen",
            "unfrozen" => "unfrozen",
            _ => "freezes",
        };
        out.push_str(&format!("{}: {head}\n", e.environment));
        if e.freezes.is_empty() {
            out.push_str("  no freezes set with `freeze` (configured freezes still apply)\n");
        }
        for f in &e.freezes {
            out.push_str(&format!(
                "  {} - {}  {} (by {} at {}){}\n",
                f.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                f.end.to_rfc3339_opts(SecondsFormat::Secs, true),
                f.reason,
                f.by,
                f.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                f.skipped_window
                    .as_deref()
                    .map(|w| format!(", skips window {w}"))
                    .unwrap_or_default()
            ));
        }
        match &e.next_window {
            Some(w) => out.push_str(&format!(
                "  next window that opens: {} - {}\n",
                w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                w.end.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
            None => out.push_str("  no window ahead\n"),
        }
    }
    out
}
