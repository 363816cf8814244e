//! `import-scheduler pin` and `import-scheduler restore`: hold a tag at a
//! digest from its history (the rollback StatefulSets need), and point it
//! back at its moving source.
//!
//! A pin records the source it replaced in the tag's annotation
//! [`PINNED_FROM_ANNOTATION`], so `restore` returns to exactly that source.
//! A tag pinned another way (`oc tag --source=docker REPO@sha256:...` replaces
//! the whole spec tag, annotations included) is held all the same, because a
//! hold is only "`from.name` is a digest reference"; `restore` then takes
//! `--source`, else `<repository>:<environment's tag>` once the registry
//! confirms that tag exists.
//!
//! The history is never assumed to be de-duplicated: OpenShift prepends each
//! import, so importing A, B, A gives `[A, B, A]`. "Previous" is the newest
//! item whose image differs from the current one, and a generation naming
//! two different images is refused.
//!
//! Manifest lists: with `importMode: Legacy` the history records the child
//! image (linux/amd64) while Quay shows the list's digest. `--to` takes
//! either; a digest the history does not know is resolved by the server
//! (a preview import) and accepted when it lands on a history item.

use serde::Serialize;

use super::cluster::{CliError, ClusterArgs, Session};
use super::Output;
use crate::config::Environment;
use crate::events::{action, reason, EventType};
use crate::image_ref::{short_digest, ImageRef};
use crate::importer::{classify_image_failure, ErrorKind, ImageFailure, ImportOutcome, Target};
use crate::openshift::{ImageStream, TagEvent};

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
    /// 12 hex digits of a digest in the tag's history. A manifest list's
    /// digest (as Quay shows it) is accepted in full when it resolves to an
    /// image of the history.
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
    /// The moving source to follow again, REPOSITORY:TAG (e.g.
    /// quay.io/packit/packit-worker:prod) [default: the source the pin
    /// recorded; for a tag pinned another way, e.g. by `oc tag`, the pinned
    /// repository with the environment's tag, when the registry has it].
    #[arg(long, value_name = "REPOSITORY:TAG")]
    pub source: Option<String>,
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
    /// The history item's image the pin lands on: `digest` itself, or for a
    /// manifest list's digest the child the history records; `None` for a
    /// forced digest.
    pub image: Option<String>,
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
    #[error("the history does not know digest {digest}; it knows: {known}; pass a digest from it (a manifest list's digest, as Quay shows it, is accepted in full when the registry resolves it to one of these), or --force with a full digest to pin anyway")]
    UnknownDigest { digest: String, known: String },
    #[error("--force needs the full digest (sha256:<64 hex digits>), not the prefix {0}")]
    ForceNeedsFullDigest(String),
    #[error("generation {generation} names several different images of the history: {matches}; pin one of them with --to DIGEST")]
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

/// `generation 3 sha256:... (current), generation 2 sha256:...`; an image
/// that appears several times is listed each time.
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

/// The digests a history item answers to: its `image`, and the digest of its
/// `dockerImageReference` when that differs.
fn item_digests(item: &TagEvent) -> impl Iterator<Item = &str> {
    let reference = ImageRef::parse(&item.docker_image_reference)
        .pinned_digest()
        .filter(|d| *d != item.image.as_str());
    std::iter::once(item.image.as_str())
        .chain(reference)
        .filter(|d| !d.is_empty())
}

/// The reference to pin for a history item: its `dockerImageReference` when
/// that is a digest reference, else `repository@digest`.
fn reference_of(item: &TagEvent, repository: &str) -> String {
    if ImageRef::parse(&item.docker_image_reference).is_pinned() {
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
        image: Some(item.image.clone()),
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
            for e in history
                .iter()
                .filter(|e| item_digests(e).any(|d| d.starts_with(&digest)))
            {
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
                        image: None,
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

/// A full digest (`sha256:` and 64 hex digits) the history does not know,
/// which the server resolved to `resolved` (e.g. a manifest list's digest
/// resolving to its child with `importMode: Legacy`): the history item it
/// lands on, pinned by the digest the operator gave.
pub fn resolve_through(
    history: &[TagEvent],
    requested: &str,
    resolved: &str,
    repository: &str,
) -> Option<Resolved> {
    let item = history.iter().find(|e| e.image == resolved)?;
    Some(Resolved {
        digest: requested.to_owned(),
        reference: format!("{repository}@{requested}"),
        generation: Some(item.generation),
        image: Some(item.image.clone()),
    })
}

/// Whether a history item is the image of the pin `pinned_digest`: the
/// item's `image` or the digest in its `dockerImageReference` is the pinned
/// digest.
pub fn serves(pinned_digest: &str, item: &TagEvent) -> bool {
    item_digests(item).any(|d| d == pinned_digest)
}

/// Whether the tag is already pinned as asked and the pin is in effect:
/// held at the digest asked for (or at a manifest list whose child is the
/// image asked for) with the newest history item being that image. A pin
/// whose import failed (the image was pruned) is not "already pinned".
pub fn already_pinned(source: &str, newest: Option<&TagEvent>, resolved: &Resolved) -> bool {
    let (Some(pinned), Some(item)) = (ImageRef::parse(source).pinned_digest(), newest) else {
        return false;
    };
    let is_asked = resolved.image.as_deref() == Some(item.image.as_str());
    if pinned == resolved.digest {
        serves(pinned, item) || is_asked
    } else {
        serves(pinned, item) && is_asked
    }
}

/// Where a restore goes when nothing is given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTo {
    /// The moving source the pin recorded.
    Recorded(String),
    /// No record (a pin made by `oc tag` drops our annotation): the pinned
    /// repository with the environment's tag, to be confirmed by the registry.
    Guessed(String),
}

impl RestoreTo {
    pub fn source(&self) -> &str {
        match self {
            RestoreTo::Recorded(s) | RestoreTo::Guessed(s) => s,
        }
    }
}

/// Where a restore goes: the recorded source, else `<repository>:<tag>`.
pub fn restore_to(pinned: &str, annotation: Option<&str>, env_tag: &str) -> RestoreTo {
    match annotation.map(str::trim) {
        Some(a) if !a.is_empty() && !a.contains('@') => RestoreTo::Recorded(a.to_owned()),
        _ => RestoreTo::Guessed(ImageRef::parse(pinned).with_tag(env_tag)),
    }
}

/// Where a restore goes: the recorded source, else `<repository>:<tag>`.
pub fn restore_source(pinned: &str, annotation: Option<&str>, env_tag: &str) -> String {
    restore_to(pinned, annotation, env_tag).source().to_owned()
}

/// Checks a `--source` given to `restore`: a moving reference, not a digest.
pub fn check_source(source: &str) -> Result<String, String> {
    let trimmed = source.trim();
    if trimmed.is_empty() {
        return Err(
            "--source is empty; give REPOSITORY:TAG, e.g. quay.io/packit/packit-worker:prod"
                .to_owned(),
        );
    }
    if trimmed.contains('@') || trimmed.contains(char::is_whitespace) {
        return Err(format!(
            "--source {source:?} is not a moving source; give REPOSITORY:TAG (e.g. quay.io/packit/packit-worker:prod), not a digest reference"
        ));
    }
    Ok(trimmed.to_owned())
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
    /// The tag's failed-import condition after the change (reason, message).
    #[serde(skip)]
    pub after_condition: Option<(String, String)>,
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
    let repository = ImageRef::parse(moving.as_deref().unwrap_or(&target.source))
        .repository()
        .to_owned();
    let resolved = match resolve(&history, &choice, args.force, &repository) {
        Ok(r) => r,
        // A full digest the history does not know may be a manifest list
        // whose child the history records: ask the server what it resolves to.
        Err(ResolveError::UnknownDigest { digest, known })
            if digest.len() == "sha256:".len() + 64 =>
        {
            resolve_by_server(&session, &target, &history, &digest, &repository)
                .await
                .ok_or(ResolveError::UnknownDigest { digest, known })
                .map_err(|e| pin_usage(&env, &target, e))?
        }
        Err(e) => return Err(pin_usage(&env, &target, e)),
    };
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
        after_condition: None,
    };
    if target.held && already_pinned(&target.source, history.first(), &resolved) {
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
            "the tag was pinned without a record of its moving source (e.g. by `oc tag`); `restore` will return it to {} if the registry has that tag, else give it --source REPOSITORY:TAG",
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
    settle_pin(&session, &env, &target, &resolved, &mut report).await;
    check_pin_took(&env, &target, &history, &resolved, &mut report);
    let user = session.identity.user_name();
    let mut note = format!(
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
    // A pin that did not take is a warning, and says so first.
    let type_ = match &report.import {
        Some(ImportOutcome::Failed {
            reason, message, ..
        }) => {
            note = format!("PIN NOT IN EFFECT ({reason}: {message}); {note}");
            EventType::Warning
        }
        _ => EventType::Normal,
    };
    session
        .event(&target, type_, reason::PINNED, action::PIN, note)
        .await;
    Ok(report)
}

/// A guessed moving source is used only when the registry has it: a wrong
/// guess would leave the tag following nothing.
async fn confirm_guess(
    session: &Session,
    env: &Environment,
    target: &Target,
    guess: &str,
) -> Result<(), CliError> {
    let probe = Target {
        source: guess.to_owned(),
        held: false,
        ..target.clone()
    };
    match session.importer.preview(&probe).await {
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::Usage(format!(
            "cannot restore {}/{}:{}: it is pinned to {} with no record of the source it replaced (a pin made with `oc tag` drops annotations), and {guess} (the pinned repository with the environment's tag) cannot be imported: {e}; pass the moving source with --source REPOSITORY:TAG",
            env.namespace, target.stream, env.tag, target.source
        ))),
    }
}

fn pin_usage(env: &Environment, target: &Target, e: ResolveError) -> CliError {
    CliError::Usage(format!(
        "cannot pin {}/{}:{}: {e}",
        env.namespace, target.stream, env.tag
    ))
}

/// What the server resolves `repository@digest` to, when that is an image
/// of the history (a manifest list's digest and its child in the history).
async fn resolve_by_server(
    session: &Session,
    target: &Target,
    history: &[TagEvent],
    digest: &str,
    repository: &str,
) -> Option<Resolved> {
    let probe = Target {
        source: format!("{repository}@{digest}"),
        held: false,
        ..target.clone()
    };
    let resolved = session.importer.preview(&probe).await.ok()?;
    resolve_through(history, digest, &resolved, repository)
}

/// Where a pin stands in the stream as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// The newest history item is the pinned image.
    Landed,
    /// The import of the pinned spec failed: the tag's `ImportSuccess`
    /// condition for this spec generation (reason, message).
    Failed(String, String),
    /// Neither yet: OpenShift's controller imports a changed tag
    /// asynchronously.
    Pending,
}

/// Where the pin `resolved` of `tag` stands in `stream`. A failure
/// condition older than the spec tag's generation (from before the pin)
/// does not count.
pub fn pin_state(stream: &ImageStream, tag: &str, resolved: &Resolved) -> PinState {
    if let Some(item) = stream.newest_item(tag) {
        if serves(&resolved.digest, item) || resolved.image.as_deref() == Some(item.image.as_str())
        {
            return PinState::Landed;
        }
    }
    let spec_generation = stream.spec_tag(tag).and_then(|t| t.generation);
    let failure = stream
        .status_tag(tag)
        .and_then(|t| t.import_failure())
        .filter(|c| match spec_generation {
            Some(g) if c.generation > 0 => c.generation >= g,
            _ => true,
        });
    match failure {
        Some(c) => PinState::Failed(
            c.reason.clone().unwrap_or_else(|| "Unknown".to_owned()),
            c.message.clone().unwrap_or_default(),
        ),
        None => PinState::Pending,
    }
}

/// How long `pin` waits for OpenShift's controller to import the pinned tag.
const PIN_SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// After a pin whose own import did not fail: reads the stream until the pin
/// landed or failed (OpenShift's controller imports a changed tag on its
/// own, asynchronously, and our import may have stood back for it), and
/// records what the tag serves and the failure, if any.
async fn settle_pin(
    session: &Session,
    env: &Environment,
    target: &Target,
    resolved: &Resolved,
    report: &mut Report,
) {
    if matches!(report.import, Some(ImportOutcome::Failed { .. })) {
        return;
    }
    let deadline = tokio::time::Instant::now() + PIN_SETTLE_TIMEOUT;
    loop {
        let stream = match session
            .importer
            .stream(&env.namespace, &target.stream)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                report.notes.push(format!("cannot read the tag back: {e}"));
                return;
            }
        };
        let state = pin_state(&stream, &env.tag, resolved);
        report.after.digest = newest_digest(&stream, &env.tag);
        match state {
            PinState::Landed => {
                report.after_condition = None;
                return;
            }
            PinState::Failed(reason, message) => {
                report.after_condition = Some((reason, message));
                return;
            }
            PinState::Pending if tokio::time::Instant::now() >= deadline => {
                report.after_condition = None;
                return;
            }
            PinState::Pending => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}

/// After a pin: did the tag land on the pinned image? When the pin's import
/// failed (above all NotFound: the image pruner deleted an old image the
/// history still names), say so plainly; the tag still serves what it did.
fn check_pin_took(
    env: &Environment,
    target: &Target,
    history: &[TagEvent],
    resolved: &Resolved,
    report: &mut Report,
) {
    let landed = match (&report.after.digest, &resolved.image) {
        (Some(after), Some(image)) => after == image || *after == resolved.digest,
        (Some(after), None) => *after == resolved.digest,
        (None, _) => false,
    };
    if landed {
        return;
    }
    let (kind, reason, message) = match &report.import {
        Some(ImportOutcome::Failed {
            reason,
            message,
            kind,
            ..
        }) => (*kind, reason.clone(), message.clone()),
        _ => match &report.after_condition {
            // The tag's failed-import condition: a per-image failure in
            // OpenShift's vocabulary.
            Some((reason, message)) => (
                ErrorKind::Registry(classify_image_failure(
                    reason,
                    None,
                    message,
                    &resolved.reference,
                )),
                reason.clone(),
                message.clone(),
            ),
            // Our import said it succeeded, yet the history does not show it.
            None => (
                ErrorKind::UnexpectedResponse,
                "NotImported".to_owned(),
                format!(
                    "the tag's history does not show the pinned image {}s after the pin",
                    PIN_SETTLE_TIMEOUT.as_secs()
                ),
            ),
        },
    };
    let serving = report
        .after
        .digest
        .clone()
        .or_else(|| report.before.digest.clone())
        .unwrap_or_else(|| "(nothing)".to_owned());
    let note = pin_failed_note(
        &env.name,
        &target.stream,
        history,
        resolved,
        &serving,
        &PinFailure {
            kind,
            reason: &reason,
            message: &message,
        },
    );
    // Replace the generic "importing failed" note: this one says what to do.
    report
        .notes
        .retain(|n| !n.starts_with("the tag now follows"));
    report.notes.push(note);
    report.import = Some(ImportOutcome::Failed {
        reason,
        message,
        transient: false,
        kind,
    });
}

/// Why a pin's import failed: the kind decides the advice, the reason and
/// message are shown.
#[derive(Clone, Copy, Debug)]
pub struct PinFailure<'a> {
    pub kind: ErrorKind,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The operator's message for a pin whose import failed: what failed, what
/// the tag still serves (`serving`), and the other images of the history.
pub fn pin_failed_note(
    env_name: &str,
    stream: &str,
    history: &[TagEvent],
    resolved: &Resolved,
    serving: &str,
    failure: &PinFailure,
) -> String {
    let PinFailure {
        kind,
        reason,
        message,
    } = *failure;
    let gone = kind == ErrorKind::Registry(ImageFailure::MissingImage);
    let mut others: Vec<String> = Vec::new();
    for item in history {
        let text = format!("generation {} {}", item.generation, item.image);
        if item.image != resolved.digest
            && Some(&item.image) != resolved.image.as_ref()
            && !item.image.is_empty()
            && !others.iter().any(|o| o.ends_with(&item.image))
        {
            others.push(text);
        }
    }
    let what = if gone {
        format!(
            "the registry no longer has {} (old images are deleted by the image pruner or by hand), so the pin's import failed ({reason}: {message})",
            resolved.reference
        )
    } else {
        format!(
            "the pin's import of {} failed ({reason}: {message})",
            resolved.reference
        )
    };
    format!(
        "PIN NOT IN EFFECT: {what}. The tag is pinned to that digest but still serves {serving}; imports leave it alone. Pin another history item ({}) with `import-scheduler pin --env {} --stream {} --to DIGEST`, or `import-scheduler restore --env {} --stream {}` to follow the moving source again",
        if others.is_empty() {
            "see `import-scheduler history`".to_owned()
        } else {
            others.join(", ")
        },
        env_name,
        stream,
        env_name,
        stream
    )
}

async fn restore(args: &RestoreArgs) -> Result<Report, CliError> {
    // A wrong --source is reported before anything talks to the cluster.
    let given = args
        .source
        .as_deref()
        .map(check_source)
        .transpose()
        .map_err(CliError::Usage)?;
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
        after_condition: None,
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
    report.pinned_from = recorded.clone();
    let source = match &given {
        Some(source) => source.clone(),
        None => match restore_to(&target.source, recorded.as_deref(), &env.tag) {
            RestoreTo::Recorded(source) => source,
            RestoreTo::Guessed(guess) => {
                confirm_guess(&session, &env, &target, &guess).await?;
                report.notes.push(format!(
                    "no record of the source the pin replaced (a pin made with `oc tag` drops annotations); returned to {guess}, the pinned repository with the environment's tag; pass --source REPOSITORY:TAG to follow another. `oc tag` also resets the tag's importPolicy (scheduled, insecure, importMode) and referencePolicy: re-apply them from Git if they differed"
                ));
                guess
            }
        },
    };
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
        Ok(s) => {
            report.after_condition =
                s.status_tag(&env.tag)
                    .and_then(|t| t.import_failure())
                    .map(|c| {
                        (
                            c.reason.clone().unwrap_or_else(|| "Unknown".to_owned()),
                            c.message.clone().unwrap_or_default(),
                        )
                    });
            newest_digest(&s, &env.tag)
        }
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
    fn histories_that_repeat_an_image_are_read_as_they_are() {
        // OpenShift prepends every import: A, B, A gives [A, B, A].
        let history = vec![item(4, 'a'), item(3, 'b'), item(2, 'a'), item(1, 'c')];
        let previous = resolve(&history, &Choice::Previous, false, REPO).unwrap();
        assert_eq!(previous.digest, digest('b'), "the newest other image");
        assert_eq!(previous.generation, Some(3));
        // The current image repeated right behind itself is not "previous".
        let history = vec![item(5, 'a'), item(4, 'a'), item(3, 'b'), item(2, 'a')];
        let previous = resolve(&history, &Choice::Previous, false, REPO).unwrap();
        assert_eq!(previous.digest, digest('b'));
        // A digest that appears twice is one image, not an ambiguity.
        let history = vec![item(4, 'a'), item(3, 'b'), item(2, 'a')];
        let a = resolve(&history, &Choice::Digest(digest('a')), false, REPO).unwrap();
        assert_eq!((a.digest, a.generation), (digest('a'), Some(4)));
        let old_a = resolve(&history, &Choice::Generation(2), false, REPO).unwrap();
        assert_eq!(old_a.digest, digest('a'));
        // Every item is listed, repeats included, when a choice fails.
        let e = resolve(&history, &Choice::Generation(7), false, REPO).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("generation 4 {} (current)", digest('a')))
                && text.contains(&format!("generation 2 {}", digest('a'))),
            "{text}"
        );
        // Only one image in the whole history, however often: no previous.
        let e = resolve(
            &[item(3, 'a'), item(2, 'a'), item(1, 'a')],
            &Choice::Previous,
            false,
            REPO,
        )
        .unwrap_err();
        assert!(matches!(e, ResolveError::NoPrevious { .. }), "{e}");
    }

    #[test]
    fn a_generation_naming_two_images_lists_both() {
        let history = vec![item(2, 'c'), item(1, 'b'), item(1, 'a')];
        let e = resolve(&history, &Choice::Generation(1), false, REPO).unwrap_err();
        assert!(matches!(e, ResolveError::AmbiguousGeneration { .. }), "{e}");
        assert!(
            e.to_string().contains(&digest('a')) && e.to_string().contains(&digest('b')),
            "{e}"
        );
        // Old clusters omit generations (0), and imports that do not change
        // the spec can share one.
        let history = vec![item(0, 'a'), item(0, 'b'), item(0, 'a')];
        let e = resolve(&history, &Choice::Generation(0), false, REPO).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&digest('a')) && text.contains(&digest('b')),
            "{text}"
        );
        assert!(text.contains("--to DIGEST"), "{text}");
        // The same image twice under one generation is not ambiguous.
        let history = vec![item(3, 'b'), item(2, 'a'), item(2, 'a')];
        let r = resolve(&history, &Choice::Generation(2), false, REPO).unwrap();
        assert_eq!(r.digest, digest('a'));
    }

    /// A Legacy import of a manifest list: the history has the child's
    /// digest, Quay shows the list's.
    fn child_item(generation: i64, child: char) -> TagEvent {
        item(generation, child)
    }

    #[test]
    fn a_manifest_list_digest_pins_the_child_it_resolves_to() {
        let history = vec![child_item(3, 'c'), child_item(2, 'b')];
        let list = digest('1');
        // The history does not know the list digest...
        let e = resolve(&history, &Choice::Digest(list.clone()), false, REPO).unwrap_err();
        assert!(matches!(e, ResolveError::UnknownDigest { .. }), "{e}");
        // ...the server resolves it to child b, which it does know.
        let r = resolve_through(&history, &list, &digest('b'), REPO).unwrap();
        assert_eq!(r.reference, format!("{REPO}@{list}"), "pinned as given");
        assert_eq!(r.digest, list);
        assert_eq!(r.image, Some(digest('b')));
        assert_eq!(r.generation, Some(2));
        // A list whose child the history never had is not accepted this way.
        assert_eq!(resolve_through(&history, &list, &digest('f'), REPO), None);
    }

    #[test]
    fn a_digest_in_the_reference_but_not_in_image_is_found() {
        // dockerImageReference and image can name different digests.
        let mut i = item(2, 'b');
        i.docker_image_reference = format!("{REPO}@{}", digest('9'));
        let history = vec![item(3, 'c'), i];
        let r = resolve(&history, &Choice::Digest(digest('9')), false, REPO).unwrap();
        assert_eq!(r.image, Some(digest('b')));
        assert_eq!(r.generation, Some(2));
    }

    #[test]
    fn already_pinned_holds_for_the_list_and_its_child() {
        let list = digest('1');
        let child = item(2, 'b');
        let by_list = format!("{REPO}@{list}");
        let by_child = format!("{REPO}@{}", digest('b'));
        let to_child = resolve(
            std::slice::from_ref(&child),
            &Choice::Digest(digest('b')),
            false,
            REPO,
        )
        .unwrap();
        let to_list =
            resolve_through(std::slice::from_ref(&child), &list, &digest('b'), REPO).unwrap();
        // (the tag's from.name, the newest item, the pin asked for, already pinned)
        let mut listed = child.clone();
        listed.docker_image_reference = by_list.clone();
        let cases = [
            (&by_child, Some(&child), &to_child, true),
            (&by_list, Some(&child), &to_list, true),
            // Pinned by the list and the history's reference names the list.
            (&by_list, Some(&listed), &to_child, true),
            // Pinned by the list, history shows the child only: the digests
            // differ, so the pin is made again (harmless) rather than guessed.
            (&by_list, Some(&child), &to_child, false),
            // Pinned to b, but the tag still serves c (the pin's import failed).
            (&by_child, Some(&item(3, 'c')), &to_child, false),
            (&by_child, None, &to_child, false),
            (&by_child, Some(&item(3, 'c')), &to_list, false),
            (&format!("{REPO}:prod"), Some(&child), &to_child, false),
        ];
        for (source, newest, resolved, want) in cases {
            assert_eq!(
                already_pinned(source, newest, resolved),
                want,
                "{source} newest {:?} asked {}",
                newest.map(|n| &n.image),
                resolved.reference
            );
        }
    }

    #[test]
    fn a_pin_to_a_pruned_image_says_so_and_what_else_to_pin() {
        let history = vec![item(3, 'c'), item(2, 'b'), item(1, 'a')];
        let to_a = resolve(&history, &Choice::Generation(1), false, REPO).unwrap();
        let note = pin_failed_note(
            "prod",
            "worker",
            &history,
            &to_a,
            &digest('c'),
            &PinFailure {
                kind: ErrorKind::Registry(ImageFailure::MissingImage),
                reason: "NotFound",
                message: "manifest unknown",
            },
        );
        assert!(note.starts_with("PIN NOT IN EFFECT"), "{note}");
        assert!(note.contains("no longer has"), "{note}");
        assert!(note.contains(&to_a.reference), "{note}");
        assert!(
            note.contains(&format!("still serves {}", digest('c'))),
            "{note}"
        );
        assert!(
            note.contains(&format!("generation 2 {}", digest('b')))
                && note.contains(&format!("generation 3 {}", digest('c'))),
            "{note}"
        );
        assert!(
            !note.contains(&format!("generation 1 {}", digest('a'))),
            "{note}"
        );
        assert!(
            note.contains("import-scheduler restore --env prod --stream worker"),
            "{note}"
        );
        let other = pin_failed_note(
            "prod",
            "worker",
            &history,
            &to_a,
            &digest('c'),
            &PinFailure {
                kind: ErrorKind::Registry(ImageFailure::Unreachable),
                reason: "InternalError",
                message: "dial tcp: connection refused",
            },
        );
        assert!(!other.contains("no longer has"), "{other}");
        assert!(other.contains("connection refused"), "{other}");
    }

    #[test]
    fn a_pin_landed_failed_or_pending() {
        let history = vec![item(3, 'c'), item(2, 'b')];
        let to_b = resolve(&history, &Choice::Digest(digest('b')), false, REPO).unwrap();
        let stream = |items: Vec<TagEvent>, condition: Option<i64>, spec: Option<i64>| {
            let mut s: ImageStream = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "worker", "namespace": "p"},
                "spec": {"tags": [{"name": "prod", "generation": spec,
                    "from": {"kind": "DockerImage", "name": to_b.reference}}]},
                "status": {"tags": [{"tag": "prod"}]},
            }))
            .unwrap();
            let status = &mut s.status.as_mut().unwrap().tags[0];
            status.items = items;
            if let Some(generation) = condition {
                status.conditions = vec![crate::openshift::TagEventCondition {
                    type_: "ImportSuccess".into(),
                    status: "False".into(),
                    reason: Some("NotFound".into()),
                    message: Some("manifest unknown".into()),
                    generation,
                    ..Default::default()
                }];
            }
            s
        };
        let cases = [
            (
                stream(vec![item(4, 'b'), item(3, 'c')], None, Some(4)),
                PinState::Landed,
            ),
            (
                stream(history.clone(), Some(4), Some(4)),
                PinState::Failed("NotFound".into(), "manifest unknown".into()),
            ),
            // A failure from before the pin (older generation) is not the pin's.
            (stream(history.clone(), Some(2), Some(4)), PinState::Pending),
            (stream(history.clone(), None, Some(4)), PinState::Pending),
            // Old clusters without generations: any failure counts.
            (
                stream(history.clone(), Some(0), None),
                PinState::Failed("NotFound".into(), "manifest unknown".into()),
            ),
        ];
        for (i, (s, want)) in cases.into_iter().enumerate() {
            assert_eq!(pin_state(&s, "prod", &to_b), want, "case {i}");
        }
    }

    #[test]
    fn a_pin_by_oc_tag_restores_to_the_recorded_given_or_guessed_source() {
        let pinned = format!("127.0.0.1:5000/packit/worker@{}", digest('a'));
        assert_eq!(
            restore_to(&pinned, Some("quay.io/packit/worker:stable"), "prod"),
            RestoreTo::Recorded("quay.io/packit/worker:stable".into())
        );
        // `oc tag` dropped every annotation.
        assert_eq!(
            restore_to(&pinned, None, "prod"),
            RestoreTo::Guessed("127.0.0.1:5000/packit/worker:prod".into())
        );
        assert_eq!(
            check_source(" quay.io/packit/worker:stable "),
            Ok("quay.io/packit/worker:stable".into())
        );
        for bad in ["", "  ", &pinned, "quay.io/packit/worker :prod"] {
            let e = check_source(bad).unwrap_err();
            assert!(
                e.contains("--source") && e.contains("REPOSITORY:TAG"),
                "{e}"
            );
        }
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
