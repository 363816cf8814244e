//! What to do after a rollout failed (`onFailedRollout`), and doing it.
//!
//! [`on_failure`] is the pure decision: report only, or pin the tag to the
//! image it had before the import, so the workloads roll back through their
//! triggers. It never loops: when the failed rollout was itself a pin-back,
//! or the tag is held by someone's pin meanwhile, it only reports.
//! [`apply`] performs a pin-back with the importer's pin operation, the same
//! one `import-scheduler pin` uses, and records the daemon as its author.

use crate::cli::pin::PINNED_FROM_ANNOTATION;
use crate::image_ref::ImageRef;
use crate::importer::{
    discover_in, ImportOutcome, Importer, Result as ImportResult, TargetSelector,
};
use crate::openshift::TagEvent;

use super::config::OnFailedRollout;
use super::verdict::Failure;

/// Annotation of a spec tag the daemon pinned back: the image it pinned
/// back from and why (`<digest>: <failure>`), so `status` and `history` can
/// say so and a person knows what to fix before `restore`.
pub const PINNED_BACK_ANNOTATION: &str = "image-import-scheduler.packit.dev/pinned-back-from";

/// The tag whose rollout failed, as the daemon knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedTag {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    /// The tag's `from.name` now.
    pub source: String,
    /// The image the import brought (`sha256:...`).
    pub new_digest: String,
    /// The tag's history, newest first.
    pub history: Vec<TagEvent>,
    /// The image the tag had before the import (`ImportOutcome::Updated.from`).
    pub before_digest: Option<String>,
    /// The rollout that failed was the daemon's own pin-back.
    pub was_pin_back: bool,
}

/// What to do about a failed rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Report it; `why` says why nothing else is done (empty under `report`).
    Report { why: String },
    /// Pin `stream:tag` to `reference` (`repo@sha256:...`), recording
    /// `pinned_from` (the moving source) for `restore`.
    PinBack {
        reference: String,
        pinned_from: String,
    },
}

/// The reference of the history item with image `digest`: its
/// `dockerImageReference` when that is a digest reference, else
/// `repository@digest` with the repository of the newest digest reference.
pub fn reference_in_history(history: &[TagEvent], digest: &str) -> Option<String> {
    let item = history.iter().find(|e| e.image == digest)?;
    if ImageRef::parse(&item.docker_image_reference).is_pinned() {
        return Some(item.docker_image_reference.clone());
    }
    let repository = history
        .iter()
        .find_map(|e| e.docker_image_reference.split_once('@').map(|(r, _)| r))?;
    Some(format!("{repository}@{digest}"))
}

/// The decision after a failed rollout of `tag` under `policy`.
pub fn on_failure(policy: OnFailedRollout, tag: &FailedTag) -> Action {
    if policy == OnFailedRollout::Report {
        return Action::Report { why: String::new() };
    }
    if tag.was_pin_back {
        return Action::Report {
            why: "the rollout back to the previous image failed too; nothing more is pinned, a person has to look".to_owned(),
        };
    }
    if ImageRef::parse(&tag.source).is_pinned() {
        return Action::Report {
            why: format!("the tag is already pinned to {}; left alone", tag.source),
        };
    }
    let Some(before) = tag.before_digest.as_deref() else {
        return Action::Report {
            why: "the tag had no image before this import; nothing to pin back to".to_owned(),
        };
    };
    if before == tag.new_digest {
        return Action::Report {
            why: "the image before the import is the new image itself; nothing to pin back to"
                .to_owned(),
        };
    }
    match reference_in_history(&tag.history, before) {
        Some(reference) => Action::PinBack {
            reference,
            pinned_from: tag.source.clone(),
        },
        None => Action::Report {
            why: format!(
                "the previous image {before} is not in the tag's history; nothing to pin back to"
            ),
        },
    }
}

/// Performs `Action::PinBack` on the tag: records the moving source
/// `pinned_from` (as `pin` does, so `restore` returns to it) and the
/// failure, pins the tag to `reference`, and imports the pinned image at
/// once so the triggers roll the workloads back without waiting for
/// OpenShift's controller. Returns the import's outcome.
///
/// The daemon needs `patch` on `imagestreams` for this (the pin is a
/// strategic merge patch of the tag), which `report` does not.
pub async fn apply(
    importer: &Importer,
    tag: &FailedTag,
    reference: &str,
    pinned_from: &str,
    failure: &Failure,
) -> ImportResult<ImportOutcome> {
    let (namespace, stream, name) = (
        tag.namespace.as_str(),
        tag.stream.as_str(),
        tag.tag.as_str(),
    );
    importer
        .annotate_tag(
            namespace,
            stream,
            name,
            PINNED_FROM_ANNOTATION,
            Some(pinned_from),
        )
        .await?;
    importer
        .annotate_tag(
            namespace,
            stream,
            name,
            PINNED_BACK_ANNOTATION,
            Some(&format!("{}: {failure}", tag.new_digest)),
        )
        .await?;
    let mut stream_now = importer.pin(namespace, stream, name, reference).await?;
    let selector = TargetSelector {
        environment: String::new(),
        namespace: namespace.to_owned(),
        tag: name.to_owned(),
        streams: Some(vec![stream.to_owned()]),
        label_selector: None,
        exclude: Vec::new(),
        sources: Vec::new(),
    };
    let pinned = ImageRef::parse(reference)
        .pinned_digest()
        .unwrap_or_default();
    // OpenShift's controller imports a changed `from` by itself too; when it
    // is first, our import conflicts and finds the tag held: read it again.
    let mut outcome = ImportOutcome::Held {
        reference: reference.to_owned(),
    };
    for _ in 0..3 {
        if let Some(item) = stream_now.newest_item(name) {
            if item.image == pinned
                || ImageRef::parse(&item.docker_image_reference).pinned_digest() == Some(pinned)
            {
                return Ok(ImportOutcome::Unchanged {
                    digest: item.image.clone(),
                });
            }
        }
        let Some(mut target) = discover_in(&[stream_now], &selector).targets.pop() else {
            return Ok(outcome);
        };
        // A pinned tag is never imported by the scheduler; this one import
        // makes the pin take effect now.
        target.held = false;
        outcome = importer.import(&target).await;
        if !matches!(outcome, ImportOutcome::Held { .. }) {
            return Ok(outcome);
        }
        stream_now = importer.stream(namespace, stream).await?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn item(image: &str, reference: &str) -> TagEvent {
        TagEvent {
            image: image.into(),
            docker_image_reference: reference.into(),
            ..TagEvent::default()
        }
    }

    fn failed() -> FailedTag {
        FailedTag {
            namespace: "packit-prod".into(),
            stream: "worker".into(),
            tag: "prod".into(),
            source: "quay.io/packit/worker:prod".into(),
            new_digest: NEW.into(),
            history: vec![
                item(NEW, &format!("quay.io/packit/worker@{NEW}")),
                item(OLD, &format!("quay.io/packit/worker@{OLD}")),
            ],
            before_digest: Some(OLD.into()),
            was_pin_back: false,
        }
    }

    fn why(action: Action) -> String {
        match action {
            Action::Report { why } => why,
            other => panic!("expected a report, got {other:?}"),
        }
    }

    #[test]
    fn pin_back_pins_the_image_before_the_import() {
        assert_eq!(
            on_failure(OnFailedRollout::PinBack, &failed()),
            Action::PinBack {
                reference: format!("quay.io/packit/worker@{OLD}"),
                pinned_from: "quay.io/packit/worker:prod".into(),
            }
        );
    }

    #[test]
    fn report_only_reports() {
        assert_eq!(why(on_failure(OnFailedRollout::Report, &failed())), "");
    }

    #[test]
    fn pin_back_never_loops_and_needs_somewhere_to_go() {
        let cases: Vec<(FailedTag, &str)> = vec![
            (
                FailedTag {
                    was_pin_back: true,
                    ..failed()
                },
                "the rollout back to the previous image failed too",
            ),
            (
                FailedTag {
                    source: format!("quay.io/packit/worker@{OLD}"),
                    ..failed()
                },
                "the tag is already pinned to quay.io/packit/worker@sha256:1111",
            ),
            (
                FailedTag {
                    before_digest: None,
                    ..failed()
                },
                "the tag had no image before this import",
            ),
            (
                FailedTag {
                    before_digest: Some(NEW.into()),
                    ..failed()
                },
                "the image before the import is the new image itself",
            ),
            (
                FailedTag {
                    history: vec![failed().history[0].clone()],
                    ..failed()
                },
                "the previous image sha256:1111",
            ),
        ];
        for (tag, want) in cases {
            let why = why(on_failure(OnFailedRollout::PinBack, &tag));
            assert!(why.starts_with(want), "{why}");
        }
    }

    #[test]
    fn references_come_from_the_history() {
        let by_tag = vec![
            item(NEW, "quay.io/packit/worker:prod"),
            item(OLD, "quay.io/packit/worker:prod"),
            item("sha256:3", "mirror.io/packit/worker@sha256:3"),
        ];
        assert_eq!(
            reference_in_history(&by_tag, OLD).as_deref(),
            Some(format!("mirror.io/packit/worker@{OLD}").as_str()),
            "a tag reference is turned into a digest reference"
        );
        assert_eq!(
            reference_in_history(&by_tag, "sha256:3").as_deref(),
            Some("mirror.io/packit/worker@sha256:3")
        );
        assert_eq!(reference_in_history(&by_tag, "sha256:4"), None);
        assert_eq!(
            reference_in_history(&[item(OLD, "quay.io/w:prod")], OLD),
            None
        );
    }
}
