//! The soak gate: the digest a window would import must be the current
//! image of another environment's tag for at least `for`, and its rollout
//! there must have succeeded.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Verdict;
use crate::duration::format_duration;
use crate::image_ref::short_digest;
use crate::openshift::TagEvent;

/// What the soak environment's consumers show for the candidate now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutSeen {
    /// No workload consumes the tag there: nothing contradicts the soak.
    NoConsumers,
    /// Every consumer runs the candidate, ready.
    Succeeded,
    /// Not (or not yet) rolled out; says what is missing.
    NotSucceeded(String),
    /// The workloads could not be read.
    Unreadable(String),
}

/// Whether history item `item` is the image `digest`: by its digest, or by
/// the digest of its pull spec (a manifest list's history item records the
/// list in one and may record a child in the other).
pub fn is_digest(item: &TagEvent, digest: &str) -> bool {
    item.image == digest
        || item
            .docker_image_reference
            .rsplit_once('@')
            .is_some_and(|(_, d)| d == digest)
}

/// The history part of the verdict. `history` is the soak environment's
/// tag history, newest first (its first item is the current image).
pub fn history_verdict(
    environment: &str,
    candidate: &str,
    history: &[TagEvent],
    required: Duration,
    now: DateTime<Utc>,
) -> Verdict {
    let short = short_digest(candidate);
    let Some(current) = history.first() else {
        return Err(format!(
            "{short} never ran in {environment}: its tag has no image yet"
        ));
    };
    if !is_digest(current, candidate) {
        let ran = history.iter().any(|item| is_digest(item, candidate));
        let now_runs = short_digest(if current.image.is_empty() {
            &current.docker_image_reference
        } else {
            &current.image
        });
        return Err(if ran {
            format!("{short} ran in {environment} but is no longer its image ({environment} now runs {now_runs})")
        } else {
            format!("{short} never ran in {environment} ({environment} runs {now_runs})")
        });
    }
    let Some(since) = current.created else {
        return Err(format!(
            "{short} is {environment}'s image, but its history item has no time: how long it ran is unknown"
        ));
    };
    let ran = (now - since).to_std().unwrap_or_default();
    if ran < required {
        return Err(format!(
            "{short} has run in {environment} for {} of the {} required (since {})",
            format_duration(ran),
            format_duration(required),
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(())
}

/// The rollout part of the verdict.
pub fn rollout_verdict(environment: &str, seen: &RolloutSeen) -> Verdict {
    match seen {
        RolloutSeen::NoConsumers | RolloutSeen::Succeeded => Ok(()),
        RolloutSeen::NotSucceeded(why) => Err(format!(
            "its rollout in {environment} has not succeeded: {why}"
        )),
        RolloutSeen::Unreadable(e) => Err(format!(
            "its rollout in {environment} cannot be read ({e}); holding until it can"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const DAY: Duration = Duration::from_secs(86400);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn item(digest: &str, created: Option<&str>) -> TagEvent {
        TagEvent {
            created: created.map(at),
            docker_image_reference: format!("registry/packit/worker@{digest}"),
            image: digest.to_owned(),
            ..TagEvent::default()
        }
    }

    fn verdict(history: &[TagEvent], now: &str) -> Verdict {
        history_verdict("stg", A, history, DAY, at(now))
    }

    #[test]
    fn passes_once_the_candidate_was_current_long_enough() {
        let h = [
            item(A, Some("2026-11-23T00:00:00Z")),
            item(B, Some("2026-11-20T00:00:00Z")),
        ];
        assert_eq!(verdict(&h, "2026-11-24T00:00:00Z"), Ok(()), "exactly `for`");
        assert_eq!(verdict(&h, "2026-11-25T00:00:00Z"), Ok(()));
        let e = verdict(&h, "2026-11-23T23:59:59Z").unwrap_err();
        assert_eq!(
            e,
            "aaaaaaaaaaaa has run in stg for 23h59m59s of the 1d required (since 2026-11-23T00:00:00Z)"
        );
    }

    #[test]
    fn never_ran_no_longer_runs_and_unknown_time_hold() {
        let now = "2026-11-30T00:00:00Z";
        assert_eq!(
            verdict(&[], now).unwrap_err(),
            "aaaaaaaaaaaa never ran in stg: its tag has no image yet"
        );
        assert_eq!(
            verdict(&[item(B, Some("2026-11-01T00:00:00Z"))], now).unwrap_err(),
            "aaaaaaaaaaaa never ran in stg (stg runs bbbbbbbbbbbb)"
        );
        let replaced = [
            item(B, Some("2026-11-29T00:00:00Z")),
            item(A, Some("2026-11-01T00:00:00Z")),
        ];
        assert_eq!(
            verdict(&replaced, now).unwrap_err(),
            "aaaaaaaaaaaa ran in stg but is no longer its image (stg now runs bbbbbbbbbbbb)"
        );
        assert!(verdict(&[item(A, None)], now)
            .unwrap_err()
            .contains("has no time"));
        let mut no_image = item(B, Some("2026-11-01T00:00:00Z"));
        no_image.image.clear();
        assert!(verdict(&[no_image], now)
            .unwrap_err()
            .ends_with("(stg runs bbbbbbbbbbbb)"));
    }

    #[test]
    fn a_candidate_from_the_future_has_not_run() {
        let h = [item(A, Some("2026-11-23T00:00:00Z"))];
        assert!(verdict(&h, "2026-11-22T00:00:00Z")
            .unwrap_err()
            .contains("for 0s of the 1d"));
    }

    #[test]
    fn the_pull_spec_digest_counts_too() {
        let mut list = item(B, Some("2026-11-01T00:00:00Z"));
        list.docker_image_reference = format!("registry/packit/worker@{A}");
        assert!(is_digest(&list, A));
        assert!(is_digest(&list, B));
        assert!(!is_digest(&item(B, None), A));
        let mut bare = item(B, None);
        bare.docker_image_reference = "registry/packit/worker:latest".into();
        assert!(!is_digest(&bare, A));
        assert_eq!(verdict(&[list], "2026-11-30T00:00:00Z"), Ok(()));
    }

    #[test]
    fn rollout_succeeded_or_nothing_to_contradict_passes() {
        assert_eq!(rollout_verdict("stg", &RolloutSeen::NoConsumers), Ok(()));
        assert_eq!(rollout_verdict("stg", &RolloutSeen::Succeeded), Ok(()));
        assert_eq!(
            rollout_verdict(
                "stg",
                &RolloutSeen::NotSucceeded("Deployment worker: 1 of 2 ready".into())
            ),
            Err("its rollout in stg has not succeeded: Deployment worker: 1 of 2 ready".into())
        );
        assert_eq!(
            rollout_verdict("stg", &RolloutSeen::Unreadable("403".into())),
            Err("its rollout in stg cannot be read (403); holding until it can".into())
        );
    }
}
