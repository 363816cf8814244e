//! `import-scheduler pin` and `import-scheduler restore`: hold a tag at a
//! digest from its history (the rollback StatefulSets need), and point it
//! back at its moving source.
//!
//! A pin records the source it replaced in the tag's annotation
//! [`PINNED_FROM_ANNOTATION`], so `restore` returns to exactly that source;
//! without the annotation (a tag pinned by hand) it returns to
//! `<repository>:<environment's tag>`.

use serde::Serialize;

use super::cluster::{short_digest, CliError, ClusterArgs, Session};
use super::Output;
use crate::config::Environment;
use crate::events::{action, reason, EventType};
use crate::importer::{ImportOutcome, Target};
use crate::openshift::{
    digest_of_reference, is_digest_reference, repository_of_reference, ImageStream, TagEvent,
};

/// Annotation of a spec tag holding the moving source a pin replaced.
pub const PINNED_FROM_ANNOTATION: &str = "image-import-scheduler.packit.dev/pinned-from";

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target_image")
        .required(true)
        .args(["to", "to_previous", "to_generation"])
))]
pub struct PinArgs {
    /// Environment (as named in the configuration); gives the namespace and tag.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// ImageStream whose tag to pin.
    #[arg(long, value_name = "STREAM")]
    pub stream: String,
    /// The digest to pin to: sha256:<64 hex>, or a unique prefix of at least
    /// 12 hex digits of a digest in the tag's history.
    #[arg(long, value_name = "DIGEST")]
    pub to: Option<String>,
    /// The image before the current one in the tag's history.
    #[arg(long)]
    pub to_previous: bool,
    /// The image of this history generation (see `import-scheduler history`).
    #[arg(long, value_name = "N")]
    pub to_generation: Option<i64>,
    /// Pin a full digest even though the tag's history does not know it.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Environment (as named in the configuration); gives the namespace and tag.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// ImageStream whose tag to restore.
    #[arg(long, value_name = "STREAM")]
    pub stream: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Which history item `pin` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Digest(String),
    Previous,
    Generation(i64),
}

/// What the history resolved a [`Choice`] to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:...`
    pub digest: String,
    /// The reference to pin to, `repository@sha256:...`.
    pub reference: String,
    /// The history item's generation; `None` for a forced digest.
    pub generation: Option<i64>,
}

/// Why a [`Choice`] does not name an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0:?} is not a digest; give sha256:<64 hex digits> or at least 12 hex digits of one (see `import-scheduler history`)")]
    NotADigest(String),
    #[error("the tag has no history yet, so there is nothing to pin to; import it first, or pin a full digest with --to sha256:... --force")]
    NoHistory,
    #[error("the history has no image before the current one; it knows: {known}")]
    NoPrevious { known: String },
    #[error("the history has no generation {generation}; it knows: {known}")]
    UnknownGeneration { generation: i64, known: String },
    #[error("the history does not know digest {digest}; it knows: {known}; pass a digest from it, or --force with a full digest to pin anyway")]
    UnknownDigest { digest: String, known: String },
    #[error("--force needs the full digest (sha256:<64 hex digits>), not the prefix {0}")]
    ForceNeedsFullDigest(String),
    #[error("generation {generation} names several images of the history: {matches}; pin one of them with --to DIGEST")]
    AmbiguousGeneration { generation: i64, matches: String },
    #[error("{prefix} matches several digests of the history: {matches}; give more digits")]
    Ambiguous { prefix: String, matches: String },
}

/// Normalises `sha256:<hex>` / `<hex>` to lower case `sha256:<hex>`.
fn normalise_digest(input: &str) -> Result<String, ResolveError> {
    let lower = input.trim().to_ascii_lowercase();
    let hex = lower.strip_prefix("sha256:").unwrap_or(&lower);
    if hex.len() < 12 || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ResolveError::NotADigest(input.to_owned()));
    }
    Ok(format!("sha256:{hex}"))
}

/// `generation 3 sha256:... (current), generation 2 sha256:...`
fn known(history: &[TagEvent]) -> String {
    if history.is_empty() {
        return "(nothing)".to_owned();
    }
    history
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "generation {} {}{}",
                e.generation,
                e.image,
                if i == 0 { " (current)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reference to pin for a history item: its `dockerImageReference` when
/// that is a digest reference, else `repository@digest`.
fn reference_of(item: &TagEvent, repository: &str) -> String {
    if is_digest_reference(&item.docker_image_reference) {
        item.docker_image_reference.clone()
    } else {
        format!("{repository}@{}", item.image)
    }
}

/// Finds the image `choice` names in `history` (newest first; the first item
/// is the current one). `repository` builds the reference of a forced digest.
pub fn resolve(
    history: &[TagEvent],
    choice: &Choice,
    force: bool,
    repository: &str,
) -> Result<Resolved, ResolveError> {
    let found = |item: &TagEvent| Resolved {
        digest: item.image.clone(),
        reference: reference_of(item, repository),
        generation: Some(item.generation),
    };
    match choice {
        Choice::Previous => {
            let current = history.first().ok_or(ResolveError::NoHistory)?;
            history
                .iter()
                .skip(1)
                .find(|e| e.image != current.image && !e.image.is_empty())
                .map(found)
                .ok_or_else(|| ResolveError::NoPrevious {
                    known: known(history),
                })
        }
        Choice::Generation(generation) => {
            if history.is_empty() {
                return Err(ResolveError::NoHistory);
            }
            // Imports that do not change the spec share a generation.
            let mut matches: Vec<&TagEvent> = Vec::new();
            for e in history.iter().filter(|e| e.generation == *generation) {
                if !matches.iter().any(|m| m.image == e.image) {
                    matches.push(e);
                }
            }
            match matches.as_slice() {
                [one] => Ok(found(one)),
                [] => Err(ResolveError::UnknownGeneration {
                    generation: *generation,
                    known: known(history),
                }),
                many => Err(ResolveError::AmbiguousGeneration {
                    generation: *generation,
                    matches: many
                        .iter()
                        .map(|m| m.image.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
        Choice::Digest(input) => {
            let digest = normalise_digest(input)?;
            let mut matches: Vec<&TagEvent> = Vec::new();
            for e in history.iter().filter(|e| e.image.starts_with(&digest)) {
                if !matches.iter().any(|m| m.image == e.image) {
                    matches.push(e);
                }
            }
            match matches.as_slice() {
                [one] => Ok(found(one)),
                [] if force => {
                    if digest.len() != "sha256:".len() + 64 {
                        return Err(ResolveError::ForceNeedsFullDigest(digest));
                    }
                    Ok(Resolved {
                        reference: format!("{repository}@{digest}"),
                        digest,
                        generation: None,
                    })
                }
                [] if history.is_empty() => Err(ResolveError::NoHistory),
                [] => Err(ResolveError::UnknownDigest {
                    digest,
                    known: known(history),
                }),
                many => Err(ResolveError::Ambiguous {
                    prefix: digest,
                    matches: many
                        .iter()
                        .map(|m| m.image.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
    }
}

/// Where a restore goes: the recorded source, else `<repository>:<tag>`.
pub fn restore_source(pinned: &str, annotation: Option<&str>, env_tag: &str) -> String {
    match annotation.map(str::trim) {
        Some(a) if !a.is_empty() && !a.contains('@') => a.to_owned(),
        _ => format!("{}:{env_tag}", repository_of_reference(pinned)),
    }
}

/// One side of the change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagView {
    /// The tag's `from.name`.
    pub source: String,
    /// The newest history item's digest.
    pub digest: Option<String>,
}

/// What `pin` or `restore` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `pin` or `restore`.
    pub action: &'static str,
    pub environment: String,
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// Whether the tag's source was changed (false: it already was as asked).
    pub changed: bool,
    pub before: TagView,
    pub after: TagView,
    /// The moving source a pin replaced (kept for `restore`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_from: Option<String>,
    /// The generation of the history item pinned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The import of the new source that followed the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportOutcome>,
    /// Notes for the operator (e.g. the import failed: what to do).
    pub notes: Vec<String>,
}

impl Report {
    fn failed(&self) -> bool {
        matches!(self.import, Some(ImportOutcome::Failed { .. }))
    }
}

pub fn run_pin(args: &PinArgs) -> u8 {
    run(args.cluster.output, pin(args))
}

pub fn run_restore(args: &RestoreArgs) -> u8 {
    run(args.cluster.output, restore(args))
}

fn run(output: Output, work: impl std::future::Future<Output = Result<Report, CliError>>) -> u8 {
    super::cluster::run_report(output, work, render, Report::failed)
}

fn newest_digest(stream: &ImageStream, tag: &str) -> Option<String> {
    stream
        .newest_item(tag)
        .map(|i| i.image.clone())
        .filter(|d| !d.is_empty())
}

fn annotation(stream: &ImageStream, tag: &str) -> Option<String> {
    stream
        .spec_tag(tag)
        .and_then(|t| t.annotations.get(PINNED_FROM_ANNOTATION))
        .cloned()
}

async fn pin(args: &PinArgs) -> Result<Report, CliError> {
    let choice = match (&args.to, args.to_previous, args.to_generation) {
        (Some(d), false, None) => Choice::Digest(d.clone()),
        (None, true, None) => Choice::Previous,
        (None, false, Some(g)) => Choice::Generation(g),
        _ => {
            return Err(CliError::Usage(
                "give exactly one of --to DIGEST, --to-previous, --to-generation N".to_owned(),
            ))
        }
    };
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    let target = session.target(&env, &args.stream).await?;
    let stream = session
        .importer
        .stream(&env.namespace, &target.stream)
        .await
        .map_err(|e| session.import_error(e))?;
    let history: Vec<TagEvent> = stream
        .status_tag(&env.tag)
        .map(|s| s.items.clone())
        .unwrap_or_default();
    let recorded = annotation(&stream, &env.tag);
    // The moving source to return to: the one being replaced, or the one a
    // previous pin recorded.
    let moving = if target.held {
        recorded.clone()
    } else {
        Some(target.source.clone())
    };
    let repository =
        repository_of_reference(moving.as_deref().unwrap_or(&target.source)).to_owned();
    let resolved = resolve(&history, &choice, args.force, &repository).map_err(|e| {
        CliError::Usage(format!(
            "cannot pin {}/{}:{}: {e}",
            env.namespace, target.stream, env.tag
        ))
    })?;
    let before = TagView {
        source: target.source.clone(),
        digest: target.current.clone(),
    };
    let mut report = Report {
        action: "pin",
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        stream: target.stream.clone(),
        tag: env.tag.clone(),
        changed: false,
        after: before.clone(),
        before,
        pinned_from: moving.clone(),
        generation: resolved.generation,
        import: None,
        notes: Vec::new(),
    };
    if target.held && digest_of_reference(&target.source) == Some(resolved.digest.as_str()) {
        report.notes.push(format!(
            "already pinned to {}; nothing changed",
            target.source
        ));
        return Ok(report);
    }
    if !target.held {
        session
            .importer
            .annotate_tag(
                &env.namespace,
                &target.stream,
                &env.tag,
                PINNED_FROM_ANNOTATION,
                Some(&target.source),
            )
            .await
            .map_err(|e| session.import_error(e))?;
    } else if moving.is_none() {
        report.notes.push(format!(
            "the tag was pinned without a record of its moving source; `restore` will return it to {}",
            restore_source(&target.source, None, &env.tag)
        ));
    }
    let updated = session
        .importer
        .pin(
            &env.namespace,
            &target.stream,
            &env.tag,
            &resolved.reference,
        )
        .await
        .map_err(|e| session.import_error(e))?;
    report.changed = true;
    finish(
        &session,
        &env,
        &target,
        &updated,
        &resolved.reference,
        &mut report,
    )
    .await;
    let user = session.identity.user_name();
    let note = format!(
        "pinned by {user} (environment {}): {}:{} now {} (was {} from {}); undo with `import-scheduler restore --env {} --stream {}`",
        env.name,
        target.stream,
        env.tag,
        resolved.reference,
        report.before.digest.as_deref().unwrap_or("(none)"),
        report.before.source,
        env.name,
        target.stream
    );
    session
        .event(
            &target,
            EventType::Normal,
            reason::PINNED,
            action::PIN,
            note,
        )
        .await;
    Ok(report)
}

async fn restore(args: &RestoreArgs) -> Result<Report, CliError> {
    let session = Session::connect(&args.cluster, Some(args.env.as_str())).await?;
    let env = session.environment(&args.env)?.clone();
    let target = session.target(&env, &args.stream).await?;
    let before = TagView {
        source: target.source.clone(),
        digest: target.current.clone(),
    };
    let mut report = Report {
        action: "restore",
        environment: env.name.clone(),
        namespace: env.namespace.clone(),
        stream: target.stream.clone(),
        tag: env.tag.clone(),
        changed: false,
        after: before.clone(),
        before,
        pinned_from: None,
        generation: None,
        import: None,
        notes: Vec::new(),
    };
    if !target.held {
        report.notes.push(format!(
            "not pinned: the tag already follows {}; nothing changed",
            target.source
        ));
        return Ok(report);
    }
    let stream = session
        .importer
        .stream(&env.namespace, &target.stream)
        .await
        .map_err(|e| session.import_error(e))?;
    let recorded = annotation(&stream, &env.tag);
    let source = restore_source(&target.source, recorded.as_deref(), &env.tag);
    report.pinned_from = recorded.clone();
    if recorded.is_none() {
        report.notes.push(format!(
            "no record of the source the pin replaced; returned to {source} (the repository with the environment's tag)"
        ));
    }
    let mut updated = session
        .importer
        .restore(&env.namespace, &target.stream, &env.tag, &source)
        .await
        .map_err(|e| session.import_error(e))?;
    report.changed = true;
    if recorded.is_some() {
        match session
            .importer
            .annotate_tag(
                &env.namespace,
                &target.stream,
                &env.tag,
                PINNED_FROM_ANNOTATION,
                None,
            )
            .await
        {
            Ok(s) => updated = s,
            Err(e) => report.notes.push(format!(
                "restored, but the annotation {PINNED_FROM_ANNOTATION} could not be removed: {e}"
            )),
        }
    }
    finish(&session, &env, &target, &updated, &source, &mut report).await;
    let user = session.identity.user_name();
    let note = format!(
        "restored by {user} (environment {}): {}:{} follows {} again (was pinned to {}); now {}",
        env.name,
        target.stream,
        env.tag,
        source,
        target.source,
        report.after.digest.as_deref().unwrap_or("(not imported)")
    );
    session
        .event(
            &target,
            EventType::Normal,
            reason::RESTORED,
            action::PIN,
            note,
        )
        .await;
    Ok(report)
}

/// After the tag's source changed: import it once so the history's newest
/// item is the new source's image (OpenShift usually did that already on the
/// spec change; then this is a no-op), and read the result back.
async fn finish(
    session: &Session,
    env: &Environment,
    old: &Target,
    updated: &ImageStream,
    source: &str,
    report: &mut Report,
) {
    // A pinned tag is never imported by the scheduler; this one import is
    // the operator's explicit request, so the target is not marked held.
    let fresh = Target {
        source: source.to_owned(),
        held: false,
        current: newest_digest(updated, &env.tag),
        current_reference: updated
            .newest_item(&env.tag)
            .map(|i| i.docker_image_reference.clone())
            .filter(|r| !r.is_empty()),
        uid: updated
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| old.uid.clone()),
        resource_version: updated
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| old.resource_version.clone()),
        ..old.clone()
    };
    let outcome = session.importer.import(&fresh).await;
    if let ImportOutcome::Failed {
        reason, message, ..
    } = &outcome
    {
        report.notes.push(format!(
            "the tag now follows {source}, but importing it failed ({reason}: {message}); workloads still run {}; run `import-scheduler import --env {} --stream {}` once the cause is fixed",
            report.before.digest.as_deref().map_or_else(|| "the previous image".to_owned(), short_digest),
            env.name,
            old.stream
        ));
    }
    report.import = Some(outcome);
    let after_digest = match session.importer.stream(&env.namespace, &old.stream).await {
        Ok(s) => newest_digest(&s, &env.tag),
        Err(e) => {
            report.notes.push(format!("cannot read the tag back: {e}"));
            newest_digest(updated, &env.tag)
        }
    };
    report.after = TagView {
        source: source.to_owned(),
        digest: after_digest,
    };
}

pub fn render(report: &Report) -> String {
    let name = format!("{}/{}:{}", report.namespace, report.stream, report.tag);
    let digest = |d: &Option<String>| {
        d.as_deref()
            .map_or_else(|| "(none)".to_owned(), short_digest)
    };
    let mut out = String::new();
    if report.changed {
        out.push_str(&format!(
            "{} {name}\n  before: {} from {}\n  after:  {} from {}\n",
            if report.action == "pin" {
                "pinned"
            } else {
                "restored"
            },
            digest(&report.before.digest),
            report.before.source,
            digest(&report.after.digest),
            report.after.source
        ));
        if report.action == "pin" {
            if let Some(from) = &report.pinned_from {
                out.push_str(&format!("  imports leave the tag alone until `import-scheduler restore --env {} --stream {}` (back to {from})\n", report.environment, report.stream));
            }
        }
    } else {
        out.push_str(&format!(
            "{name}: unchanged ({} from {})\n",
            digest(&report.before.digest),
            report.before.source
        ));
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn item(generation: i64, c: char) -> TagEvent {
        TagEvent {
            created: None,
            docker_image_reference: format!("registry.test/packit/worker@{}", digest(c)),
            image: digest(c),
            generation,
            ..TagEvent::default()
        }
    }

    const REPO: &str = "registry.test/packit/worker";

    #[test]
    fn resolves_previous_generation_and_digests() {
        let history = vec![item(4, 'c'), item(3, 'c'), item(2, 'b'), item(1, 'a')];
        // (choice, --force, the image and generation it resolves to, or the error's text)
        type Want = Result<(char, Option<i64>), &'static str>;
        let cases: Vec<(Choice, bool, Want)> = vec![
            // The item after the current one with another image.
            (Choice::Previous, false, Ok(('b', Some(2)))),
            (Choice::Generation(1), false, Ok(('a', Some(1)))),
            (Choice::Generation(9), false, Err("no generation 9")),
            (Choice::Digest(digest('a')), false, Ok(('a', Some(1)))),
            (
                Choice::Digest("BBBBBBBBBBBB".into()),
                false,
                Ok(('b', Some(2))),
            ),
            (
                Choice::Digest(format!("sha256:{}", "b".repeat(12))),
                false,
                Ok(('b', Some(2))),
            ),
            (
                Choice::Digest(digest('d')),
                false,
                Err("does not know digest"),
            ),
            (Choice::Digest(digest('d')), true, Ok(('d', None))),
            (
                Choice::Digest("dddddddddddd".into()),
                true,
                Err("needs the full digest"),
            ),
            (Choice::Digest("abc".into()), false, Err("is not a digest")),
            (
                Choice::Digest("zzzzzzzzzzzz".into()),
                false,
                Err("is not a digest"),
            ),
        ];
        for (choice, force, want) in cases {
            let got = resolve(&history, &choice, force, REPO);
            match (want, got) {
                (Ok((c, generation)), Ok(r)) => {
                    assert_eq!(r.digest, digest(c), "{choice:?}");
                    assert_eq!(r.reference, format!("{REPO}@{}", digest(c)), "{choice:?}");
                    assert_eq!(r.generation, generation, "{choice:?}");
                }
                (Err(text), Err(e)) => assert!(e.to_string().contains(text), "{choice:?}: {e}"),
                (want, got) => panic!("{choice:?} force={force}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn unknown_digest_lists_what_the_history_knows() {
        let history = vec![item(2, 'b'), item(1, 'a')];
        let e = resolve(&history, &Choice::Digest(digest('f')), false, REPO).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("generation 2 {} (current)", digest('b'))),
            "{text}"
        );
        assert!(
            text.contains(&format!("generation 1 {}", digest('a'))),
            "{text}"
        );
        assert!(text.contains("--force"), "{text}");
    }

    #[test]
    fn previous_needs_an_older_image() {
        assert_eq!(
            resolve(&[], &Choice::Previous, false, REPO),
            Err(ResolveError::NoHistory)
        );
        let e = resolve(
            &[item(2, 'a'), item(1, 'a')],
            &Choice::Previous,
            false,
            REPO,
        )
        .unwrap_err();
        assert!(matches!(e, ResolveError::NoPrevious { .. }), "{e}");
    }

    #[test]
    fn a_generation_shared_by_several_images_is_refused() {
        let history = vec![item(2, 'c'), item(1, 'b'), item(1, 'a')];
        let e = resolve(&history, &Choice::Generation(1), false, REPO).unwrap_err();
        assert!(matches!(e, ResolveError::AmbiguousGeneration { .. }), "{e}");
        assert!(
            e.to_string().contains(&digest('a')) && e.to_string().contains(&digest('b')),
            "{e}"
        );
    }

    #[test]
    fn ambiguous_prefixes_are_refused() {
        let mut a = item(2, 'a');
        let mut b = item(1, 'a');
        a.image = format!("sha256:{}{}", "a".repeat(12), "1".repeat(52));
        b.image = format!("sha256:{}{}", "a".repeat(12), "2".repeat(52));
        let e = resolve(&[a, b], &Choice::Digest("a".repeat(12)), false, REPO).unwrap_err();
        assert!(matches!(e, ResolveError::Ambiguous { .. }), "{e}");
    }

    #[test]
    fn a_history_reference_that_is_not_a_digest_reference_is_rebuilt() {
        let mut i = item(1, 'a');
        i.docker_image_reference = "registry.test/packit/worker:prod".into();
        let r = resolve(&[item(2, 'b'), i], &Choice::Previous, false, REPO).unwrap();
        assert_eq!(r.reference, format!("{REPO}@{}", digest('a')));
    }

    #[test]
    fn restore_goes_to_the_recorded_source_else_the_environment_tag() {
        let pinned = format!("127.0.0.1:5000/packit/worker@{}", digest('a'));
        assert_eq!(
            restore_source(&pinned, Some("127.0.0.1:5000/packit/worker:stable"), "prod"),
            "127.0.0.1:5000/packit/worker:stable"
        );
        assert_eq!(
            restore_source(&pinned, None, "prod"),
            "127.0.0.1:5000/packit/worker:prod"
        );
        assert_eq!(
            restore_source(&pinned, Some(&pinned), "prod"),
            "127.0.0.1:5000/packit/worker:prod",
            "a digest is no moving source"
        );
    }
}
