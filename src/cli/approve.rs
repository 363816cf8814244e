//! `import-scheduler approve`: approve the digest a window would import
//! now, for an environment with `gates.approval.required`. The approval is
//! kept in the status ConfigMap with who gave it (as the API server knows
//! the caller) and when; the daemon reads it before each import in that
//! window. An approval names one window and one digest: when the source
//! moves on, the new digest needs a new approval.
//!
//! Writing approvals needs `patch` on the status ConfigMap, which the
//! read-only operator Role does not grant: the approver Role
//! (`manifests/components/approver-role`) does.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::cluster::{CliError, ClusterArgs, Session, EVENT_INSTANCE};
use super::freeze::caller;
use crate::config::{Environment, Mode};
use crate::env_windows::EnvWindows;
use crate::events::{config_map_ref, EventSink, EventType};
use crate::gates::approval::Approval;
use crate::image_ref::short_digest;
use crate::schedule::Window;
use crate::state::{StateError, StateStore};

/// Event reason: an approval was given.
pub const APPROVED: &str = "Approved";
/// Event reason: approvals were withdrawn.
pub const APPROVAL_REVOKED: &str = "ApprovalRevoked";
const ACTION: &str = "Approve";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment whose window is approved (as named in the configuration).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Only this stream (repeatable) [default: every stream of the environment].
    #[arg(long = "stream", value_name = "STREAM")]
    pub streams: Vec<String>,
    /// The window: NEXT (the one open now, else the next to open) or its id,
    /// the start as `status` and Events show it (2026-12-01T01:00:00Z).
    #[arg(long, value_name = "NEXT|ID", default_value = "NEXT")]
    pub window: String,
    /// List the approvals of the environment instead.
    #[arg(long, conflicts_with = "revoke")]
    pub list: bool,
    /// Withdraw the approvals of the window (and streams) instead.
    #[arg(long)]
    pub revoke: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `approved`, `revoked` or `list`.
    pub action: &'static str,
    pub environment: String,
    /// The window acted on (`None` for `--list`).
    pub window: Option<String>,
    /// The approvals now kept for the environment (windows not yet over).
    pub approvals: Vec<Approval>,
    /// What this command changed.
    pub changed: Vec<Approval>,
}

pub fn run(args: &Args) -> u8 {
    super::cluster::run_report(args.cluster.output, approve(args), render, |_| false)
}

fn store(session: &Session) -> StateStore {
    StateStore::new(
        session.client.clone(),
        &session.daemon_namespace,
        &session.status_configmap,
    )
}

/// A refused write names the Role that approving needs.
fn write_error(session: &Session, env: &str, error: StateError) -> CliError {
    match error {
        StateError::Api { source, .. } => match &source {
            kube::Error::Api(status) if status.code == 403 => CliError::Api(format!(
                "your account may not approve imports of {env}: it cannot patch configmap {} in namespace {}; approving needs the image-import-scheduler-approver Role there (manifests/components/approver-role), which reading does not give: ask a cluster administrator (`oc adm policy add-role-to-user image-import-scheduler-approver <you> --role-namespace {ns} -n {ns}`)",
                session.status_configmap,
                session.daemon_namespace,
                ns = session.daemon_namespace,
            )),
            _ => CliError::from_kube(
                &source,
                "patch",
                "configmaps",
                &session.daemon_namespace,
                session.identity.server.as_deref(),
            ),
        },
        other => CliError::Usage(other.to_string()),
    }
}

fn read_error(session: &Session, error: StateError) -> CliError {
    match error {
        StateError::Api { source, .. } => CliError::from_kube(
            &source,
            "get",
            "configmaps",
            &session.daemon_namespace,
            session.identity.server.as_deref(),
        ),
        other => CliError::Usage(other.to_string()),
    }
}

/// The window `--window` names.
pub fn pick_window(env: &Environment, wanted: &str, now: DateTime<Utc>) -> Result<Window, String> {
    let windows = EnvWindows::of(env).ok_or_else(|| {
        format!(
            "environment `{}` is in immediate mode and has no windows",
            env.name
        )
    })?;
    if wanted.eq_ignore_ascii_case("next") {
        return windows
            .current_or_next(now)
            .ok_or_else(|| format!("environment `{}` has no window ahead", env.name));
    }
    let start = DateTime::parse_from_rfc3339(wanted)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`{wanted}` is neither NEXT nor a window id (its start, e.g. 2026-12-01T01:00:00Z)"
            )
        })?;
    let found = windows
        .upcoming(start - chrono::Duration::seconds(1))
        .next()
        .filter(|w| w.start == start);
    match found {
        Some(w) if w.end <= now => Err(format!("window {wanted} is over")),
        Some(w) => Ok(w),
        None => Err(format!(
            "no window of environment `{}` starts at {wanted}; the next one: {}",
            env.name,
            windows
                .current_or_next(now)
                .map(|w| w.id())
                .unwrap_or_else(|| "none".into())
        )),
    }
}

/// Whether an approval's window may still open or is open at `now`.
fn live(env: &Environment, a: &Approval, now: DateTime<Utc>) -> bool {
    let Mode::Windowed { schedule, .. } = &env.mode else {
        return false;
    };
    DateTime::parse_from_rfc3339(&a.window).is_ok_and(|start| {
        let end = start.with_timezone(&Utc)
            + chrono::Duration::from_std(schedule.window()).unwrap_or_default();
        end > now
    })
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

async fn approve(args: &Args) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    let now = Utc::now();
    let store = store(&session);
    if args.list {
        let states = store.load().await.map_err(|e| read_error(&session, e))?;
        let approvals = states
            .get(&env.name)
            .map(|s| s.approvals.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|a| live(&env, a, now))
            .filter(|a| args.streams.is_empty() || args.streams.contains(&a.stream))
            .collect();
        return Ok(Report {
            action: "list",
            environment: env.name.clone(),
            window: None,
            approvals,
            changed: Vec::new(),
        });
    }
    if !env.gates.approval {
        return Err(CliError::Usage(format!(
            "--env: environment `{}` does not require approval (no `gates.approval.required: true`); nothing to approve",
            env.name
        )));
    }
    let window = pick_window(&env, &args.window, now)
        .map_err(|e| CliError::Usage(format!("--window: {e}")))?;
    let id = window.id();
    if args.revoke {
        let streams = args.streams.clone();
        let mine =
            |a: &Approval| a.window == id && (streams.is_empty() || streams.contains(&a.stream));
        let before = store.load().await.map_err(|e| read_error(&session, e))?;
        let changed: Vec<Approval> = before
            .get(&env.name)
            .map(|s| s.approvals.iter().filter(|a| mine(a)).cloned().collect())
            .unwrap_or_default();
        let written = store
            .update(&env.name, |s| {
                s.approvals.retain(|a| !mine(a) && live(&env, a, now));
            })
            .await
            .map_err(|e| write_error(&session, &env.name, e))?;
        let by = caller(&session).await;
        publish(
            &session,
            APPROVAL_REVOKED,
            format!(
                "{}: {} approval(s) of window {id} withdrawn by {by}",
                env.name,
                changed.len()
            ),
        )
        .await;
        return Ok(Report {
            action: "revoked",
            environment: env.name.clone(),
            window: Some(id),
            approvals: written.approvals,
            changed,
        });
    }
    let discovery = session.discover(&env).await?;
    let targets = session
        .pick_targets(&env, &discovery, &args.streams)
        .await?;
    if targets.is_empty() {
        return Err(CliError::Usage(format!(
            "environment {} has no stream with tag {} in namespace {}; nothing to approve",
            env.name, env.tag, env.namespace
        )));
    }
    let by = caller(&session).await;
    let mut changed = Vec::new();
    for t in &targets {
        // What the window would import now: the source's digest.
        let digest = session
            .importer
            .preview(t)
            .await
            .map_err(|e| session.import_error(e))?;
        changed.push(Approval {
            window: id.clone(),
            stream: t.stream.clone(),
            digest,
            by: by.clone(),
            at: now,
        });
    }
    let written = store
        .update(&env.name, |s| {
            s.approvals.retain(|a| {
                live(&env, a, now)
                    && !changed
                        .iter()
                        .any(|c| c.window == a.window && c.stream == a.stream)
            });
            s.approvals.extend(changed.iter().cloned());
        })
        .await
        .map_err(|e| write_error(&session, &env.name, e))?;
    let what: Vec<String> = changed
        .iter()
        .map(|a| format!("{}@{}", a.stream, short_digest(&a.digest)))
        .collect();
    publish(
        &session,
        APPROVED,
        format!(
            "{}: window {id} approved by {by} for {}",
            env.name,
            what.join(", ")
        ),
    )
    .await;
    Ok(Report {
        action: "approved",
        environment: env.name.clone(),
        window: Some(id),
        approvals: written.approvals,
        changed,
    })
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    match r.action {
        "approved" => out.push_str(&format!(
            "{}: window {} approved\n",
            r.environment,
            r.window.as_deref().unwrap_or_default()
        )),
        "revoked" => out.push_str(&format!(
            "{}: {} approval(s) of window {} withdrawn\n",
            r.environment,
            r.changed.len(),
            r.window.as_deref().unwrap_or_default()
        )),
        _ => out.push_str(&format!("{}: approvals\n", r.environment)),
    }
    if r.approvals.is_empty() {
        out.push_str("  no approvals\n");
    }
    for a in &r.approvals {
        out.push_str(&format!(
            "  window {}  {} {}  by {} at {}\n",
            a.window,
            a.stream,
            a.digest,
            a.by,
            a.at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnMissedWindow;
    use crate::test_fixtures::prod;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn next_or_an_id_names_a_window() {
        let env = prod(OnMissedWindow::Skip);
        // Tuesdays 01:00Z-02:00Z in November; 2026-11-24 is a Tuesday.
        let now = t("2026-11-23T12:00:00Z");
        assert_eq!(
            pick_window(&env, "NEXT", now).unwrap().id(),
            "2026-11-24T01:00:00Z"
        );
        assert_eq!(
            pick_window(&env, "next", now).unwrap().id(),
            "2026-11-24T01:00:00Z"
        );
        let inside = t("2026-11-24T01:30:00Z");
        assert_eq!(
            pick_window(&env, "NEXT", inside).unwrap().id(),
            "2026-11-24T01:00:00Z"
        );
        assert_eq!(
            pick_window(&env, "2026-12-01T01:00:00Z", now).unwrap().id(),
            "2026-12-01T01:00:00Z"
        );
        let e = pick_window(&env, "2026-12-01T02:00:00Z", now).unwrap_err();
        assert_eq!(
            e,
            "no window of environment `prod` starts at 2026-12-01T02:00:00Z; the next one: 2026-11-24T01:00:00Z"
        );
        assert!(pick_window(&env, "tuesday", now)
            .unwrap_err()
            .contains("neither NEXT nor a window id"));
        assert_eq!(
            pick_window(&env, "2026-11-17T01:00:00Z", now).unwrap_err(),
            "window 2026-11-17T01:00:00Z is over"
        );
        let stg = crate::test_fixtures::environment(Mode::Immediate);
        assert!(pick_window(&stg, "NEXT", now)
            .unwrap_err()
            .contains("immediate mode"));
    }

    #[test]
    fn approvals_live_until_their_window_ends() {
        let env = prod(OnMissedWindow::Skip);
        let a = Approval {
            window: "2026-11-24T01:00:00Z".into(),
            stream: "worker".into(),
            digest: "sha256:1".into(),
            by: "alice".into(),
            at: t("2026-11-23T12:00:00Z"),
        };
        assert!(live(&env, &a, t("2026-11-24T01:59:59Z")));
        assert!(!live(&env, &a, t("2026-11-24T02:00:00Z")));
        let bad = Approval {
            window: "soon".into(),
            ..a.clone()
        };
        assert!(!live(&env, &bad, t("2026-11-20T00:00:00Z")));
        let stg = crate::test_fixtures::environment(Mode::Immediate);
        assert!(!live(&stg, &a, t("2026-11-20T00:00:00Z")));
    }

    #[test]
    fn text_lists_what_is_approved() {
        let r = Report {
            action: "approved",
            environment: "prod".into(),
            window: Some("2026-11-24T01:00:00Z".into()),
            approvals: vec![Approval {
                window: "2026-11-24T01:00:00Z".into(),
                stream: "worker".into(),
                digest: "sha256:1".into(),
                by: "alice".into(),
                at: t("2026-11-23T12:00:00Z"),
            }],
            changed: vec![],
        };
        assert_eq!(
            render(&r),
            "prod: window 2026-11-24T01:00:00Z approved\n  window 2026-11-24T01:00:00Z  worker sha256:1  by alice at 2026-11-23T12:00:00Z\n"
        );
    }
}
