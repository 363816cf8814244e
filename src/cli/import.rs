//! `import-scheduler import --env E [--stream S]... [--dry-run]`: import now,
//! whatever the schedule says (an operator's decision, recorded as an Event).

use serde::Serialize;

use super::cluster::{CliError, ClusterArgs, Session};
use crate::config::Environment;
use crate::events::{action, reason, EventType};
use crate::image_ref::short_digest;
use crate::importer::{ErrorKind, ImportOutcome, Target};
use crate::outcome::OutcomeKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment whose tags to import (as named in the configuration).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Only this stream (repeatable) [default: every stream of the environment].
    #[arg(long = "stream", value_name = "STREAM")]
    pub streams: Vec<String>,
    /// Show what an import would change (old -> new digest) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Import even while the environment is frozen (recorded in an Event and the log).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The outcome of a `--dry-run` tag whose source moved: an import would update it.
const WOULD_UPDATE: &str = "wouldUpdate";

/// What happened to one tag.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResult {
    pub stream: String,
    pub tag: String,
    pub source: String,
    /// An [`OutcomeKind`] label (`updated`, `unchanged`, `held`, `failed`);
    /// with `--dry-run` `wouldUpdate` instead of `updated`.
    pub outcome: &'static str,
    /// Digest before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Digest after (or, with `--dry-run`, what the source resolves to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The whole run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub environment: String,
    pub namespace: String,
    pub tag: String,
    pub dry_run: bool,
    pub results: Vec<TagResult>,
    pub failed: usize,
}

pub fn run(args: &Args) -> u8 {
    super::cluster::run_report(args.cluster.output, execute(args), render, |r| r.failed > 0)
}

async fn execute(args: &Args) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    if !args.dry_run {
        if let Some(reason) = super::freeze::frozen_now(&session, &env).await {
            if !args.force {
                return Err(CliError::Usage(format!(
                    "environment {} is frozen ({reason}); nothing imported. Wait for the freeze to end, lift it with `unfreeze --env {}` (if set with `freeze`), or import anyway with --force (recorded)",
                    env.name, env.name
                )));
            }
            super::freeze::record_forced_import(&session, &env.name, &reason).await;
        }
    }
    let discovery = session.discover(&env).await?;
    let targets = session
        .pick_targets(&env, &discovery, &args.streams)
        .await?;
    if args.streams.is_empty() && targets.is_empty() {
        return Err(CliError::Usage(format!(
            "environment {} has no stream with tag {} in namespace {}; nothing to import",
            env.name, env.tag, env.namespace
        )));
    }
    let mut results = Vec::with_capacity(targets.len());
    let mut may_import: Option<bool> = None;
    for t in &targets {
        let result = if t.held {
            held(t, &env.name)
        } else if args.dry_run {
            preview(&session, t).await
        } else {
            let outcome = session.importer.import(t).await;
            let mut result = imported(t, &outcome, &env.name);
            if let ImportOutcome::Failed {
                kind: ErrorKind::Forbidden,
                ..
            } = &outcome
            {
                // The API refused a call of the import (a registry's refusal is
                // `ErrorKind::Registry`): when the cluster confirms the account may
                // not create imports, say what to ask for. Otherwise the refused call
                // was another one (re-reading the stream), which the message names.
                if may_import.is_none() {
                    may_import = session
                        .allowed(
                            "create",
                            "image.openshift.io",
                            "imagestreamimports",
                            &t.namespace,
                        )
                        .await;
                }
                if may_import == Some(false) {
                    result.message = Some(
                        CliError::forbidden(
                            "create",
                            "imagestreamimports.image.openshift.io",
                            &t.namespace,
                        )
                        .to_string(),
                    );
                }
            }
            record(&session, &env, t, &outcome).await;
            result
        };
        results.push(result);
    }
    let failed = results
        .iter()
        .filter(|r| r.outcome == OutcomeKind::Failed.label())
        .count();
    Ok(Report {
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        tag: env.tag.clone(),
        dry_run: args.dry_run,
        results,
        failed,
    })
}

fn base(t: &Target, outcome: &'static str) -> TagResult {
    TagResult {
        stream: t.stream.clone(),
        tag: t.tag.clone(),
        source: t.source.clone(),
        outcome,
        from: t.current.clone(),
        to: None,
        reason: None,
        message: None,
    }
}

fn held(t: &Target, env: &str) -> TagResult {
    TagResult {
        message: Some(format!(
            "pinned to {}: not imported; to follow the source again run `import-scheduler restore --env {env} --stream {}` first",
            t.source, t.stream
        )),
        ..base(t, OutcomeKind::Held.label())
    }
}

async fn preview(session: &Session, t: &Target) -> TagResult {
    match session.importer.preview(t).await {
        Ok(digest) if t.current.as_deref() == Some(digest.as_str()) => TagResult {
            to: Some(digest),
            ..base(t, OutcomeKind::Unchanged.label())
        },
        Ok(digest) => TagResult {
            to: Some(digest),
            ..base(t, WOULD_UPDATE)
        },
        Err(e) => {
            let reason = e.reason().to_owned();
            TagResult {
                reason: Some(reason),
                message: Some(session.import_error(e).to_string()),
                ..base(t, OutcomeKind::Failed.label())
            }
        }
    }
}

fn imported(t: &Target, outcome: &ImportOutcome, env: &str) -> TagResult {
    match outcome {
        ImportOutcome::Unchanged { digest } => TagResult {
            to: Some(digest.clone()),
            ..base(t, OutcomeKind::Unchanged.label())
        },
        ImportOutcome::Updated { from, to } => TagResult {
            from: from.clone(),
            to: Some(to.clone()),
            ..base(t, OutcomeKind::Updated.label())
        },
        ImportOutcome::Held { reference } => TagResult {
            source: reference.clone(),
            ..held(t, env)
        },
        ImportOutcome::Failed {
            reason, message, ..
        } => TagResult {
            reason: Some(reason.clone()),
            message: Some(message.clone()),
            ..base(t, OutcomeKind::Failed.label())
        },
    }
}

/// The Event of a manual import, with who asked for it.
async fn record(session: &Session, env: &Environment, t: &Target, outcome: &ImportOutcome) {
    let user = session.identity.user_name();
    let (type_, note) = match outcome {
        ImportOutcome::Updated { from, to } => (
            EventType::Normal,
            format!(
                "manual import by {user} (environment {}): {}:{} {} -> {} from {}",
                env.name,
                t.stream,
                t.tag,
                from.as_deref().unwrap_or("(none)"),
                to,
                t.source
            ),
        ),
        ImportOutcome::Unchanged { digest } => (
            EventType::Normal,
            format!(
                "manual import by {user} (environment {}): {}:{} unchanged at {digest} from {}",
                env.name, t.stream, t.tag, t.source
            ),
        ),
        ImportOutcome::Failed { reason, message, .. } => (
            EventType::Warning,
            format!(
                "manual import by {user} (environment {}) of {}:{} from {} failed: {reason}: {message}",
                env.name, t.stream, t.tag, t.source
            ),
        ),
        ImportOutcome::Held { .. } => return,
    };
    session
        .event(t, type_, reason::MANUAL_IMPORT, action::IMPORT, note)
        .await;
}

/// The report for people: one line per tag, failures with their reason.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.dry_run {
        out.push_str(&format!(
            "dry run: environment {} ({}), tag {}; nothing is written\n",
            report.environment, report.namespace, report.tag
        ));
    }
    for r in &report.results {
        let name = format!("{}:{}", r.stream, r.tag);
        let old = r
            .from
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), short_digest);
        let new = r.to.as_deref().map(short_digest).unwrap_or_default();
        if r.outcome == WOULD_UPDATE {
            out.push_str(&format!("{name} {old} -> {new}\n"));
            continue;
        }
        match OutcomeKind::from_label(r.outcome) {
            Some(OutcomeKind::Updated) => {
                out.push_str(&format!("{name} {old} -> {new} (imported)\n"))
            }
            Some(OutcomeKind::Unchanged) => out.push_str(&format!("{name} unchanged ({new})\n")),
            Some(OutcomeKind::Held) => out.push_str(&format!(
                "{name} skipped: {}\n",
                r.message.as_deref().unwrap_or("pinned to a digest")
            )),
            _ => out.push_str(&format!(
                "{name} FAILED: {}: {}\n",
                r.reason.as_deref().unwrap_or("Unknown"),
                r.message.as_deref().unwrap_or("no message")
            )),
        }
    }
    if report.failed > 0 {
        out.push_str(&format!(
            "{} of {} import{} failed\n",
            report.failed,
            report.results.len(),
            if report.results.len() == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: &'static str, from: Option<&str>, to: Option<&str>) -> TagResult {
        TagResult {
            stream: "worker".into(),
            tag: "prod".into(),
            source: "quay.io/packit/worker:prod".into(),
            outcome,
            from: from.map(Into::into),
            to: to.map(Into::into),
            reason: (outcome == "failed").then(|| "NotFound".into()),
            message: (outcome == "failed").then(|| "no such tag".into()),
        }
    }

    #[test]
    fn text_names_each_tag_and_its_change() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let report = Report {
            environment: "prod".into(),
            namespace: "packit-prod".into(),
            tag: "prod".into(),
            dry_run: true,
            results: vec![
                result("wouldUpdate", Some(&a), Some(&b)),
                result("unchanged", Some(&a), Some(&a)),
                result("failed", Some(&a), None),
            ],
            failed: 1,
        };
        let text = render(&report);
        assert!(
            text.contains("worker:prod aaaaaaaaaaaa -> bbbbbbbbbbbb\n"),
            "{text}"
        );
        assert!(
            text.contains("worker:prod unchanged (aaaaaaaaaaaa)\n"),
            "{text}"
        );
        assert!(
            text.contains("worker:prod FAILED: NotFound: no such tag\n"),
            "{text}"
        );
        assert!(text.contains("1 of 3 imports failed"), "{text}");
    }

    /// Image API failures are told apart by kind: a registry's refusal says
    /// `Forbidden` too, but is no missing permission of the account.
    #[test]
    fn image_api_failures_map_by_kind() {
        use crate::cli::EXIT_FAILED;
        use crate::importer::{ImageFailure, ImportError, Operation};
        let t = || "packit-prod/packit-worker:prod".to_owned();
        let m = || "m".to_owned();
        let forbidden = CliError::from_import(
            ImportError::Forbidden {
                target: t(),
                operation: Operation::PatchStream,
                namespace: "packit-prod".into(),
                message: m(),
            },
            None,
        );
        assert!(
            matches!(&forbidden, CliError::Forbidden { verb, resource, namespace, .. }
                if verb == "patch" && resource == "imagestreams.image.openshift.io" && namespace == "packit-prod"),
            "{forbidden:?}"
        );
        let registry = CliError::from_import(
            ImportError::ImageFailed {
                target: t(),
                operation: Operation::Import,
                image: "quay.io/packit/packit-worker:prod".into(),
                reason: "Forbidden".into(),
                message: m(),
                kind: ImageFailure::AccessDenied,
            },
            None,
        );
        assert!(
            matches!(&registry, CliError::Import(e) if e.kind() == ErrorKind::Registry(ImageFailure::AccessDenied)),
            "{registry:?}"
        );
        assert!(registry.to_string().contains("pull secret"), "{registry}");
        let unauthorized = CliError::from_import(
            ImportError::Unauthorized {
                target: t(),
                operation: Operation::GetStream,
                message: m(),
            },
            None,
        );
        assert!(
            matches!(unauthorized, CliError::Unauthorized { .. }),
            "{unauthorized:?}"
        );
        for error in [
            ImportError::Connection {
                target: t(),
                operation: Operation::Import,
                message: m(),
            },
            ImportError::Timeout {
                target: t(),
                operation: Operation::Import,
                after: std::time::Duration::from_secs(30),
            },
        ] {
            let e = CliError::from_import(error, Some("https://api.example:6443"));
            assert!(
                matches!(&e, CliError::Unreachable { server: Some(s), .. } if s == "https://api.example:6443"),
                "{e:?}"
            );
        }
        let not_found = CliError::from_import(
            ImportError::NotFound {
                target: t(),
                operation: Operation::GetStream,
                message: m(),
                hint: m(),
            },
            None,
        );
        assert!(
            matches!(&not_found, CliError::Import(e) if e.is_not_found()),
            "{not_found:?}"
        );
        assert_eq!(not_found.exit_code(), EXIT_FAILED);
    }
}
