//! `import-scheduler status [--env E]`: per environment its mode and window,
//! and per tag what it points at, whether the source moved on, whether it is
//! pinned, and what the daemon last did with it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::check::describe_window;
use super::cluster::{ago, CliError, ClusterArgs, Session};
use super::pin::{restore_source, serves, PINNED_FROM_ANNOTATION};
use crate::config::{Environment, Mode};
use crate::duration::format_duration;
use crate::env_windows::EnvWindows;
use crate::freeze_in_force::{in_force, FreezeInForce, FreezeSource};
use crate::image_ref::{short_digest, ImageRef};
use crate::importer::{ErrorKind, Target};
use crate::outcome::OutcomeKind;
use crate::state::{tag_key, EnvState, StateError, StateStore, TagState};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this environment [default: every environment of the configuration].
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The schedule of a windowed environment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub expr: String,
    pub time_zone: String,
    pub window: String,
    pub on_missed_window: &'static str,
}

/// The window open now, or the next one.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    /// `open` or `next`.
    pub state: &'static str,
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Local time and UTC, for people.
    pub description: String,
}

/// One stream's tag.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagStatus {
    pub stream: String,
    pub tag: String,
    /// The tag's `from.name`.
    pub source: String,
    /// The newest history item's digest.
    pub current: Option<String>,
    /// When that item was created (imported).
    pub imported_at: Option<DateTime<Utc>>,
    /// What the source resolves to now (for a pinned tag: the moving source it was pinned from).
    pub source_digest: Option<String>,
    /// `Some(true)` when the source resolves to another image than `current`;
    /// `None` when that could not be told (see `sourceError`).
    pub source_moved: Option<bool>,
    pub source_error: Option<String>,
    /// Pinned to a digest: imports leave it alone.
    pub held: bool,
    /// The digest reference it is pinned to.
    pub pinned_reference: Option<String>,
    /// For a pinned tag: whether its newest history item is the pinned image
    /// (false: the pin's import failed, e.g. the image was pruned);
    /// `None` when that could not be told.
    pub pin_in_effect: Option<bool>,
    /// The moving source a `restore` goes back to.
    pub restores_to: Option<String>,
    /// `importPolicy.scheduled`: OpenShift also re-imports it every 15 minutes.
    pub scheduled: bool,
    pub warnings: Vec<String>,
    /// The daemon's last recorded outcome; `None`: none recorded.
    pub last_outcome: Option<TagState>,
    /// The gates that held the tag at the daemon's last check in a window;
    /// `None`: none held it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gated: Option<crate::gates::GatedTag>,
    /// The last rollout check after an import changed the tag; `None`:
    /// none recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::record::RolloutRecord>,
}

/// One environment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvStatus {
    pub name: String,
    pub namespace: String,
    pub tag: String,
    pub mode: &'static str,
    pub paused: bool,
    pub schedule: Option<ScheduleView>,
    pub window: Option<WindowView>,
    /// The freeze in force now (configured or set with `freeze`); `null`
    /// when none is.
    pub frozen: Option<FreezeInForce>,
    pub tags: Vec<TagStatus>,
    /// Streams the configuration names that do not exist or lack the tag.
    pub missing: Vec<String>,
    /// Streams with the tag that cannot be imported, and why.
    pub skipped: Vec<Skipped>,
    /// Why the environment's streams could not be read.
    pub error: Option<String>,
    /// Why the daemon's recorded outcomes could not be read.
    pub last_outcomes_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub stream: String,
    pub reason: String,
}

/// The whole status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub now: DateTime<Utc>,
    /// Where the configuration came from.
    pub configuration: String,
    /// Where the daemon's outcomes were read from.
    pub status_config_map: String,
    pub environments: Vec<EnvStatus>,
}

pub fn run(args: &Args) -> u8 {
    super::cluster::run_report(args.cluster.output, execute(args), render, |r| {
        r.environments.iter().any(|e| e.error.is_some())
    })
}

async fn execute(args: &Args) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, args.env.as_deref()).await?;
    let envs: Vec<Environment> = match &args.env {
        Some(name) => vec![session.environment(name)?.clone()],
        None => session.config.environments.values().cloned().collect(),
    };
    let now = Utc::now();
    let status_namespace = session.daemon_namespace.clone();
    let status_name = session.status_configmap.clone();
    let states = StateStore::new(session.client.clone(), &status_namespace, &status_name)
        .load()
        .await
        .map_err(|e| state_error(&session, e, &status_namespace));
    let mut environments = Vec::with_capacity(envs.len());
    for env in &envs {
        // Freezes set with `freeze` count like the configured ones.
        let manual = states
            .as_ref()
            .ok()
            .and_then(|all| all.get(&env.name))
            .map(|s| s.freezes.as_slice())
            .unwrap_or_default();
        let frozen = in_force(env, manual, now);
        let env = &crate::manual_freeze::with_manual(&std::sync::Arc::new(env.clone()), manual);
        let mut status = env_status(&session, env, now, &states).await;
        status.frozen = frozen;
        environments.push(status);
    }
    Ok(Report {
        now,
        configuration: session.source.to_string(),
        status_config_map: format!("{status_namespace}/{status_name}"),
        environments,
    })
}

fn state_error(session: &Session, error: StateError, namespace: &str) -> String {
    match error {
        StateError::Api { source, .. } => CliError::from_kube(
            &source,
            "get",
            "configmaps",
            namespace,
            session.identity.server.as_deref(),
        )
        .to_string(),
        other => other.to_string(),
    }
}

async fn env_status(
    session: &Session,
    env: &Environment,
    now: DateTime<Utc>,
    states: &Result<BTreeMap<String, EnvState>, String>,
) -> EnvStatus {
    let (schedule, window) = match &env.mode {
        Mode::Immediate => (None, None),
        Mode::Windowed {
            schedule,
            on_missed_window,
        } => {
            let window = EnvWindows::frozen(schedule, &env.freeze)
                .current_or_next(now)
                .map(|w| WindowView {
                    state: if w.contains(now) { "open" } else { "next" },
                    id: w.id(),
                    start: w.start,
                    end: w.end,
                    description: describe_window(&w, schedule.time_zone()),
                });
            (
                Some(ScheduleView {
                    expr: schedule.expr().to_string(),
                    time_zone: schedule.time_zone().to_string(),
                    window: format_duration(schedule.window()),
                    on_missed_window: on_missed_window.name(),
                }),
                window,
            )
        }
    };
    let mut status = EnvStatus {
        name: env.name.clone(),
        namespace: env.namespace.clone(),
        tag: env.tag.clone(),
        mode: env.mode.name(),
        paused: env.paused,
        schedule,
        window,
        frozen: None,
        tags: Vec::new(),
        missing: Vec::new(),
        skipped: Vec::new(),
        error: None,
        last_outcomes_error: states.as_ref().err().cloned(),
    };
    // The environment may live on another cluster than the configuration.
    let session = match session.for_env(env).await {
        Ok(s) => s,
        Err(e) => {
            status.error = Some(e.to_string());
            return status;
        }
    };
    let session = &session;
    let discovery = match session.discover(env).await {
        Ok(d) => d,
        Err(e) => {
            status.error = Some(e.to_string());
            return status;
        }
    };
    status.missing = discovery.missing.clone();
    status.skipped = discovery
        .skipped
        .iter()
        .map(|(stream, reason)| Skipped {
            stream: stream.clone(),
            reason: reason.clone(),
        })
        .collect();
    let recorded = states.as_ref().ok().and_then(|s| s.get(&env.name));
    let windowed = matches!(env.mode, Mode::Windowed { .. });
    status.tags = futures::stream::iter(&discovery.targets)
        .map(|t| tag_status(session, env, t, windowed, recorded))
        .buffered(session.config.import.concurrency.max(1))
        .collect()
        .await;
    status
}

async fn tag_status(
    session: &Session,
    env: &Environment,
    t: &Target,
    windowed: bool,
    recorded: Option<&EnvState>,
) -> TagStatus {
    let mut warnings = Vec::new();
    let stream = session.importer.stream(&t.namespace, &t.stream).await;
    let pin_in_effect = match (&stream, t.held) {
        (Ok(s), true) => pin_in_effect(session, t, s, &mut warnings).await,
        _ => None,
    };
    let (imported_at, pinned_from) = match &stream {
        Ok(s) => (
            s.newest_item(&t.tag).and_then(|i| i.created),
            s.spec_tag(&t.tag)
                .and_then(|spec| spec.annotations.get(PINNED_FROM_ANNOTATION))
                .cloned(),
        ),
        Err(e) => {
            warnings.push(format!("cannot read the stream's history: {e}"));
            (None, None)
        }
    };
    // For a pinned tag, the interesting source is the one `restore` returns to.
    let restores_to = t
        .held
        .then(|| restore_source(&t.source, pinned_from.as_deref(), &env.tag));
    let previewed = match &restores_to {
        Some(moving) => Target {
            source: moving.clone(),
            held: false,
            ..t.clone()
        },
        None => t.clone(),
    };
    let (source_digest, source_moved, source_error) =
        match session.importer.preview(&previewed).await {
            Ok(digest) => {
                let moved = t.current.as_deref() != Some(digest.as_str());
                (Some(digest), Some(moved), None)
            }
            Err(e) => (None, None, Some(session.import_error(e).to_string())),
        };
    if windowed && t.scheduled {
        warnings.push(format!(
            "importPolicy.scheduled is true: OpenShift re-imports {}:{} every 15 minutes, outside the windows of environment {}; set it to false",
            t.stream, t.tag, env.name
        ));
    }
    TagStatus {
        stream: t.stream.clone(),
        tag: t.tag.clone(),
        source: t.source.clone(),
        current: t.current.clone(),
        imported_at,
        source_digest,
        source_moved,
        source_error,
        held: t.held,
        pinned_reference: t.held.then(|| t.source.clone()),
        pin_in_effect,
        restores_to,
        scheduled: t.scheduled,
        warnings,
        last_outcome: recorded
            .and_then(|s| s.tags.get(&tag_key(&t.stream, &t.tag)))
            .cloned(),
        gated: recorded.and_then(|s| s.gated.get(&t.stream)).cloned(),
        rollout: recorded
            .and_then(|s| s.rollouts.get(&tag_key(&t.stream, &t.tag)))
            .cloned(),
    }
}

/// Whether a pinned tag serves its pinned image. The newest item's `image`
/// or `dockerImageReference` digest settles it; a manifest list's digest
/// (pinned as Quay shows it) is asked of the server, which resolves it to the
/// child the history records with `importMode: Legacy`.
async fn pin_in_effect(
    session: &Session,
    t: &Target,
    stream: &crate::openshift::ImageStream,
    warnings: &mut Vec<String>,
) -> Option<bool> {
    let pinned = ImageRef::parse(&t.source).pinned_digest()?;
    let newest = stream.newest_item(&t.tag);
    let effect = match newest {
        Some(item) if serves(pinned, item) => true,
        Some(item) => {
            let probe = Target {
                held: false,
                ..t.clone()
            };
            match session.importer.preview(&probe).await {
                Ok(resolved) => resolved == item.image,
                Err(e) if matches!(e.kind(), ErrorKind::Registry(_)) => {
                    warnings.push(format!(
                        "pinned to {}, which the registry cannot serve: {}",
                        t.source,
                        session.import_error(e)
                    ));
                    false
                }
                // Not the registry's answer (e.g. a read-only account may not
                // preview): whether the pin is in effect cannot be told.
                Err(e) => {
                    warnings.push(format!(
                        "cannot tell whether the pin to {} is in effect: {}",
                        t.source,
                        session.import_error(e)
                    ));
                    return None;
                }
            }
        }
        None => false,
    };
    if !effect {
        let failure = stream
            .status_tag(&t.tag)
            .and_then(|s| s.import_failure())
            .map(|c| {
                format!(
                    " (last import: {}: {})",
                    c.reason.as_deref().unwrap_or("Unknown"),
                    c.message.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        warnings.push(format!(
            "PIN NOT IN EFFECT: pinned to {} but the tag still serves {}{failure}; pin another history item or restore",
            t.source,
            newest.map_or("nothing", |i| i.image.as_str())
        ));
    }
    Some(effect)
}

pub fn render(report: &Report) -> String {
    let now = report.now;
    let mut out = String::new();
    for env in &report.environments {
        out.push_str(&format!(
            "{}: {} in namespace {}, tag {}, {}\n",
            env.name,
            env.mode,
            env.namespace,
            env.tag,
            if env.paused {
                "PAUSED (the daemon imports nothing)"
            } else {
                "active"
            }
        ));
        if let Some(s) = &env.schedule {
            out.push_str(&format!(
                "  schedule \"{}\" in {}, window {}, on a missed window: {}\n",
                s.expr, s.time_zone, s.window, s.on_missed_window
            ));
            match &env.window {
                Some(w) if w.state == "open" => {
                    out.push_str(&format!("  window open now: {}\n", w.description))
                }
                Some(w) => out.push_str(&format!("  next window: {}\n", w.description)),
                None => out.push_str("  no window in the search horizon\n"),
            }
        }
        if let Some(f) = &env.frozen {
            render_frozen(&mut out, &env.name, f);
        }
        if let Some(error) = &env.error {
            out.push_str(&format!("  error: {error}\n\n"));
            continue;
        }
        if env.tags.is_empty() {
            out.push_str(&format!("  no stream has tag {}\n", env.tag));
        }
        for t in &env.tags {
            render_tag(&mut out, env, t, now);
        }
        for m in &env.missing {
            out.push_str(&format!(
                "  {m}:{}: configured but missing (no such stream or no tag {})\n",
                env.tag, env.tag
            ));
        }
        for s in &env.skipped {
            out.push_str(&format!(
                "  {}:{}: skipped: {}\n",
                s.stream, env.tag, s.reason
            ));
        }
        if let Some(e) = &env.last_outcomes_error {
            out.push_str(&format!("  daemon's outcomes unknown: {e}\n"));
        }
        out.push('\n');
    }
    out
}

fn render_frozen(out: &mut String, env: &str, f: &FreezeInForce) {
    let source = match (f.source, &f.by) {
        (FreezeSource::Manual, Some(by)) => {
            format!("set by {by} with `freeze`; `import-scheduler unfreeze --env {env}` lifts it")
        }
        (FreezeSource::Manual, None) => "set with `freeze`".to_owned(),
        (FreezeSource::Configuration, _) => format!("configured in environments.{env}.freeze"),
    };
    out.push_str(&format!(
        "  FROZEN until {}: {} ({source})\n",
        f.until.format("%Y-%m-%d %H:%M:%SZ"),
        f.reason
    ));
}

fn render_tag(out: &mut String, env: &EnvStatus, t: &TagStatus, now: DateTime<Utc>) {
    out.push_str(&format!("  {}:{}\n", t.stream, t.tag));
    let current = match (&t.current, t.imported_at) {
        (Some(d), Some(at)) => format!(
            "{}, imported {} ({})",
            short_digest(d),
            at.format("%Y-%m-%d %H:%M:%SZ"),
            ago(at, now)
        ),
        (Some(d), None) => short_digest(d),
        (None, _) => "never imported".to_owned(),
    };
    out.push_str(&format!("    current: {current}\n"));
    let followed = t.restores_to.as_deref().unwrap_or(&t.source);
    let moved = match (t.source_moved, &t.source_digest, &t.source_error) {
        (Some(true), Some(d), _) if t.held => {
            format!("at {}, not the pinned image", short_digest(d))
        }
        (Some(true), Some(d), _) => format!("moved on to {} (not imported yet)", short_digest(d)),
        (Some(false), _, _) => "up to date".to_owned(),
        (_, _, Some(e)) => format!("unknown: {e}"),
        _ => "unknown".to_owned(),
    };
    out.push_str(&format!("    source:  {followed}: {moved}\n"));
    if t.held {
        out.push_str(&format!(
            "    held:    yes, pinned to {}; `import-scheduler restore --env {} --stream {}` follows {followed} again\n",
            t.pinned_reference.as_deref().unwrap_or(&t.source),
            env.name,
            t.stream
        ));
    } else {
        out.push_str("    held:    no\n");
    }
    if let Some(g) = &t.gated {
        out.push_str(&format!(
            "    gated:   {} held in window {} since {}\n",
            short_digest(&g.digest),
            g.window,
            g.since.format("%Y-%m-%d %H:%M:%SZ")
        ));
        for h in &g.holds {
            out.push_str(&format!("      {}: {}\n", h.gate.name(), h.reason));
        }
    }
    for w in &t.warnings {
        out.push_str(&format!("    warning: {w}\n"));
    }
    out.push_str(&format!(
        "    daemon:  {}\n",
        describe_outcome(t.last_outcome.as_ref(), now)
    ));
    if let Some(r) = &t.rollout {
        out.push_str(&format!("    rollout: {}\n", r.describe()));
    }
}

/// The daemon's last outcome for people.
fn describe_outcome(state: Option<&TagState>, now: DateTime<Utc>) -> String {
    let Some(s) = state else {
        return "none recorded".to_owned();
    };
    let when = format!("{} ({})", s.at.format("%Y-%m-%d %H:%M:%SZ"), ago(s.at, now));
    let digest = |d: &Option<String>| {
        d.as_deref()
            .map_or_else(|| "(none)".to_owned(), short_digest)
    };
    let mut text = match s.outcome_kind() {
        Some(OutcomeKind::Updated) => format!(
            "updated {} -> {} at {when}",
            digest(&s.digest_before),
            digest(&s.digest_after)
        ),
        Some(OutcomeKind::Failed) => format!(
            "failed at {when}: {}",
            s.last_error.as_deref().unwrap_or("no message")
        ),
        _ => format!("{} at {when}", s.last_outcome),
    };
    if let Some(w) = &s.window_id {
        text.push_str(&format!(", window {w}"));
    }
    if s.attempts > 1 {
        text.push_str(&format!(", {} attempts", s.attempts));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(held: bool, moved: Option<bool>) -> TagStatus {
        TagStatus {
            stream: "worker".into(),
            tag: "prod".into(),
            source: if held {
                format!("registry.test/packit/worker@sha256:{}", "a".repeat(64))
            } else {
                "registry.test/packit/worker:prod".into()
            },
            current: Some(format!("sha256:{}", "a".repeat(64))),
            imported_at: Some("2026-11-20T12:00:00Z".parse().unwrap()),
            source_digest: moved
                .map(|m| format!("sha256:{}", if m { "b" } else { "a" }.repeat(64))),
            source_moved: moved,
            source_error: moved
                .is_none()
                .then(|| "your account cannot create imagestreamimports".into()),
            held,
            pinned_reference: None,
            pin_in_effect: held.then_some(true),
            restores_to: held.then(|| "registry.test/packit/worker:prod".into()),
            scheduled: false,
            warnings: Vec::new(),
            last_outcome: None,
            gated: None,
            rollout: None,
        }
    }

    fn env(tags: Vec<TagStatus>) -> EnvStatus {
        EnvStatus {
            name: "prod".into(),
            namespace: "packit-prod".into(),
            tag: "prod".into(),
            mode: "immediate",
            paused: false,
            schedule: None,
            window: None,
            frozen: None,
            tags,
            missing: vec!["gone".into()],
            skipped: Vec::new(),
            error: None,
            last_outcomes_error: None,
        }
    }

    #[test]
    fn text_tells_moved_held_unknown_and_none_recorded() {
        let report = Report {
            now: "2026-11-23T12:00:00Z".parse().unwrap(),
            configuration: "file c.yaml".into(),
            status_config_map: "ns/image-import-scheduler-status".into(),
            environments: vec![env(vec![
                tag(false, Some(true)),
                tag(true, Some(false)),
                tag(false, None),
            ])],
        };
        let text = render(&report);
        assert!(
            text.contains("current: aaaaaaaaaaaa, imported 2026-11-20 12:00:00Z (3d ago)"),
            "{text}"
        );
        assert!(
            text.contains("source:  registry.test/packit/worker:prod: moved on to bbbbbbbbbbbb"),
            "{text}"
        );
        assert!(
            text.contains("held:    yes, pinned to registry.test/packit/worker@sha256:aaaa"),
            "{text}"
        );
        assert!(
            text.contains("unknown: your account cannot create imagestreamimports"),
            "{text}"
        );
        assert!(text.contains("daemon:  none recorded"), "{text}");
        assert!(text.contains("gone:prod: configured but missing"), "{text}");
    }

    #[test]
    fn each_tags_last_rollout_is_shown_in_text_and_json() {
        use crate::rollout::record::{phase, RolloutRecord};
        let at = "2026-11-23T10:00:00Z".parse().unwrap();
        let record = RolloutRecord::checking(&format!("sha256:{}", "a".repeat(64)), None, at)
            .finished(
                phase::FAILED,
                Some("Deployment worker: CrashLoopBackOff".into()),
                at,
            );
        let mut t = tag(false, Some(false));
        t.last_outcome = Some(TagState {
            last_outcome: "updated".into(),
            at,
            ..TagState::default()
        });
        t.rollout = Some(record);
        let report = Report {
            now: "2026-11-23T12:00:00Z".parse().unwrap(),
            configuration: "file c.yaml".into(),
            status_config_map: "ns/image-import-scheduler-status".into(),
            environments: vec![env(vec![t, tag(false, Some(false))])],
        };
        let text = render(&report);
        assert!(
            text.contains("    rollout: rollout of aaaaaaaaaaaa failed at 2026-11-23 10:00:00Z: Deployment worker: CrashLoopBackOff\n"),
            "{text}"
        );
        assert_eq!(text.matches("rollout:").count(), 1, "{text}");
        let json = serde_json::to_value(&report).unwrap();
        let rollout = &json["environments"][0]["tags"][0]["rollout"];
        assert_eq!(rollout["state"], "failed", "{json:#}");
        assert_eq!(rollout["reason"], "Deployment worker: CrashLoopBackOff");
    }

    #[test]
    fn a_freeze_in_force_is_shown_with_its_source_and_null_without() {
        let mut frozen = env(Vec::new());
        frozen.frozen = Some(FreezeInForce {
            reason: "release week".into(),
            since: "2026-11-23T08:00:00Z".parse().unwrap(),
            until: "2026-11-24T09:00:00Z".parse().unwrap(),
            source: FreezeSource::Manual,
            by: Some("alice".into()),
        });
        let mut configured = env(Vec::new());
        configured.name = "stg".into();
        configured.frozen = Some(FreezeInForce {
            source: FreezeSource::Configuration,
            by: None,
            ..frozen.frozen.clone().unwrap()
        });
        let report = Report {
            now: "2026-11-23T12:00:00Z".parse().unwrap(),
            configuration: "file c.yaml".into(),
            status_config_map: "ns/image-import-scheduler-status".into(),
            environments: vec![frozen, configured, env(Vec::new())],
        };
        let text = render(&report);
        assert!(
            text.contains("  FROZEN until 2026-11-24 09:00:00Z: release week (set by alice with `freeze`; `import-scheduler unfreeze --env prod` lifts it)\n"),
            "{text}"
        );
        assert!(
            text.contains("  FROZEN until 2026-11-24 09:00:00Z: release week (configured in environments.stg.freeze)\n"),
            "{text}"
        );
        assert_eq!(text.matches("FROZEN").count(), 2, "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["environments"][0]["frozen"],
            serde_json::json!({
                "reason": "release week",
                "since": "2026-11-23T08:00:00Z",
                "until": "2026-11-24T09:00:00Z",
                "source": "manual",
                "by": "alice",
            })
        );
        assert_eq!(json["environments"][1]["frozen"]["source"], "configuration");
        assert!(json["environments"][2]["frozen"].is_null(), "{json:#}");
    }

    #[test]
    fn outcomes_read_for_people() {
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let state = TagState {
            last_outcome: "failed".into(),
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
            attempts: 3,
            last_error: Some("NotFound: no such tag".into()),
            window_id: Some("2026-11-23T09:00:00Z".into()),
            ..TagState::default()
        };
        assert_eq!(
            describe_outcome(Some(&state), now),
            "failed at 2026-11-23 10:00:00Z (2h ago): NotFound: no such tag, window 2026-11-23T09:00:00Z, 3 attempts"
        );
        assert_eq!(describe_outcome(None, now), "none recorded");
    }

    #[test]
    fn text_tells_which_gate_holds_the_tag() {
        use crate::gates::{Gate, GatedTag, Hold};
        let mut t = tag(false, Some(true));
        t.gated = Some(GatedTag {
            digest: format!("sha256:{}", "b".repeat(64)),
            holds: vec![
                Hold {
                    gate: Gate::Soak,
                    reason: "never ran in stg".into(),
                },
                Hold {
                    gate: Gate::Approval,
                    reason: "not approved".into(),
                },
            ],
            window: "2026-11-24T01:00:00Z".into(),
            since: "2026-11-24T01:00:05Z".parse().unwrap(),
        });
        let mut out = String::new();
        render_tag(
            &mut out,
            &env(vec![]),
            &t,
            "2026-11-24T01:10:00Z".parse().unwrap(),
        );
        assert!(
            out.contains("    gated:   bbbbbbbbbbbb held in window 2026-11-24T01:00:00Z since 2026-11-24 01:00:05Z\n      soak: never ran in stg\n      approval: not approved\n"),
            "{out}"
        );
    }
}
