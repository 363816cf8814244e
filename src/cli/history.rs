//! `import-scheduler history --env E --stream S [--limit N]`: a tag's import
//! history, newest first (what `oc describe is` shows), with the digests
//! `pin` accepts.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cluster::{ago, CliError, ClusterArgs, Session};
use crate::openshift::TagEvent;
use crate::rollout::pinback::PINNED_BACK_ANNOTATION;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment (as named in the configuration); gives the namespace and tag.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// ImageStream whose tag to show.
    #[arg(long, value_name = "STREAM")]
    pub stream: String,
    /// Show at most this many items, newest first [default: all].
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// One history item.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub generation: i64,
    pub created: Option<DateTime<Utc>>,
    /// `sha256:...`
    pub digest: String,
    /// `registry/repository@sha256:...`
    pub reference: String,
    /// The tag points at this one (the newest item).
    pub current: bool,
    /// The daemon pinned the tag back from this image after its rollout
    /// failed: why (from the tag's pinned-back annotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_back_from: Option<String>,
}

/// A tag's history.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub environment: String,
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// The tag's `from.name`.
    pub source: String,
    /// The source is a digest: the tag is pinned.
    pub held: bool,
    /// Items in the history, before `--limit`.
    pub total: usize,
    pub items: Vec<Item>,
}

pub fn run(args: &Args) -> u8 {
    super::cluster::run_report(
        args.cluster.output,
        execute(args),
        |r| render(r, Utc::now()),
        |_| false,
    )
}

async fn execute(args: &Args) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    let target = session.target(&env, &args.stream).await?;
    let history = session
        .importer
        .history(&env.namespace, &target.stream, &env.tag)
        .await
        .map_err(|e| session.import_error(e))?;
    // The stream was just read; reading it again for the spec tag's
    // annotation keeps `history` the importer's single place for the items.
    let pinned_back = session
        .importer
        .stream(&env.namespace, &target.stream)
        .await
        .ok()
        .and_then(|s| {
            s.spec_tag(&env.tag)?
                .annotations
                .get(PINNED_BACK_ANNOTATION)
                .cloned()
        });
    let total = history.len();
    let mut items = items(&history, args.limit);
    mark_pinned_back(&mut items, pinned_back.as_deref());
    Ok(Report {
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        stream: target.stream.clone(),
        tag: env.tag.clone(),
        source: target.source.clone(),
        held: target.held,
        total,
        items,
    })
}

/// The items to show: newest first, the first one current.
pub fn items(history: &[TagEvent], limit: Option<usize>) -> Vec<Item> {
    history
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .enumerate()
        .map(|(i, e)| Item {
            generation: e.generation,
            created: e.created,
            digest: e.image.clone(),
            reference: e.docker_image_reference.clone(),
            current: i == 0,
            pinned_back_from: None,
        })
        .collect()
}

/// Marks the items of the image the daemon pinned back from, as the
/// annotation `<digest>: <failure>` names it.
pub fn mark_pinned_back(items: &mut [Item], annotation: Option<&str>) {
    let Some((digest, why)) = annotation.and_then(|a| a.split_once(": ")) else {
        return;
    };
    for item in items.iter_mut().filter(|i| i.digest == digest) {
        item.pinned_back_from = Some(why.to_owned());
    }
}

pub fn render(report: &Report, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{}/{}:{} (environment {}) follows {}{}\n",
        report.namespace,
        report.stream,
        report.tag,
        report.environment,
        report.source,
        if report.held {
            " (PINNED: imports leave it alone)"
        } else {
            ""
        }
    );
    if report.items.is_empty() {
        out.push_str("no history: the tag was never imported\n");
        return out;
    }
    let created: Vec<String> = report
        .items
        .iter()
        .map(|i| match i.created {
            Some(t) => format!("{} ({})", t.format("%Y-%m-%d %H:%M:%SZ"), ago(t, now)),
            None => "-".to_owned(),
        })
        .collect();
    let created_width = created
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("CREATED".len());
    let digest_width = report
        .items
        .iter()
        .map(|i| i.digest.len())
        .max()
        .unwrap_or(0)
        .max("DIGEST".len());
    out.push_str(&format!(
        "  {:>10}  {:created_width$}  {:digest_width$}  REFERENCE\n",
        "GENERATION", "CREATED", "DIGEST"
    ));
    for (item, created) in report.items.iter().zip(&created) {
        out.push_str(&format!(
            "{} {:>10}  {created:created_width$}  {:digest_width$}  {}\n",
            if item.current { "*" } else { " " },
            item.generation,
            item.digest,
            item.reference
        ));
        if let Some(why) = &item.pinned_back_from {
            out.push_str(&format!(
                "             ^ the scheduler pinned back from this image: {why}\n"
            ));
        }
    }
    if report.total > report.items.len() {
        out.push_str(&format!(
            "({} older item{} not shown; raise --limit)\n",
            report.total - report.items.len(),
            if report.total - report.items.len() == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(generation: i64, digest_char: char) -> TagEvent {
        let digest = format!("sha256:{}", digest_char.to_string().repeat(64));
        TagEvent {
            created: Some("2026-11-20T12:00:00Z".parse().unwrap()),
            docker_image_reference: format!("quay.io/packit/worker@{digest}"),
            image: digest,
            generation,
            ..TagEvent::default()
        }
    }

    #[test]
    fn a_repeated_image_is_shown_each_time_it_was_imported() {
        // OpenShift's history for importing A, B, A: nothing is merged.
        let history = vec![event(4, 'a'), event(3, 'b'), event(2, 'a')];
        let shown = items(&history, None);
        let digests: Vec<(i64, char, bool)> = shown
            .iter()
            .map(|i| {
                (
                    i.generation,
                    i.digest.chars().last().unwrap_or('?'),
                    i.current,
                )
            })
            .collect();
        assert_eq!(
            digests,
            vec![(4, 'a', true), (3, 'b', false), (2, 'a', false)]
        );
    }

    #[test]
    fn newest_first_with_the_current_one_marked_and_limited() {
        let history = vec![event(3, 'c'), event(2, 'b'), event(1, 'a')];
        let shown = items(&history, Some(2));
        assert_eq!(shown.len(), 2);
        assert!(shown[0].current && !shown[1].current);
        assert_eq!(shown[1].generation, 2);
        let report = Report {
            environment: "prod".into(),
            namespace: "packit-prod".into(),
            stream: "worker".into(),
            tag: "prod".into(),
            source: "quay.io/packit/worker:prod".into(),
            held: false,
            total: 3,
            items: shown,
        };
        let text = render(&report, "2026-11-23T12:00:00Z".parse().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[2].starts_with("*          3  2026-11-20 12:00:00Z (3d ago)"),
            "{text}"
        );
        assert!(
            lines[2].ends_with(&format!("quay.io/packit/worker@sha256:{}", "c".repeat(64))),
            "{text}"
        );
        assert!(lines[3].starts_with("           2"), "{text}");
        assert!(text.contains("1 older item not shown"), "{text}");
    }

    #[test]
    fn the_image_pinned_back_from_is_marked() {
        let history = vec![event(3, 'a'), event(2, 'b'), event(1, 'a')];
        let mut shown = items(&history, None);
        let b = format!("sha256:{}", "b".repeat(64));
        mark_pinned_back(
            &mut shown,
            Some(&format!("{b}: Deployment w: CrashLoopBackOff")),
        );
        let marked: Vec<Option<&str>> = shown
            .iter()
            .map(|i| i.pinned_back_from.as_deref())
            .collect();
        assert_eq!(
            marked,
            vec![None, Some("Deployment w: CrashLoopBackOff"), None]
        );
        mark_pinned_back(&mut shown, Some("not an annotation"));
        mark_pinned_back(&mut shown, None);
        let report = Report {
            environment: "prod".into(),
            namespace: "packit-prod".into(),
            stream: "worker".into(),
            tag: "prod".into(),
            source: "quay.io/packit/worker@sha256:a".into(),
            held: true,
            total: 3,
            items: shown,
        };
        let text = render(&report, "2026-11-23T12:00:00Z".parse().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[4].trim(),
            "^ the scheduler pinned back from this image: Deployment w: CrashLoopBackOff",
            "{text}"
        );
        assert!(lines[3].contains(&b), "{text}");
    }
}
