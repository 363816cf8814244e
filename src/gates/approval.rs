//! The approval gate: a tag imports only once a person approved the digest
//! it would import, for this window. An approval names one window and one
//! digest: a source that moves after it needs a new one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::image_ref::short_digest;

/// One approval, kept in the status ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The window's id (its start, RFC 3339).
    pub window: String,
    pub stream: String,
    /// The digest approved, `sha256:...`.
    pub digest: String,
    /// Who approved, as the API server knows the caller.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The verdict for `stream` importing `candidate` in `window` (`Err` in
/// `approvals`: why they could not be read).
pub fn verdict(
    approvals: &Result<Vec<Approval>, String>,
    env: &str,
    window: &str,
    stream: &str,
    candidate: &str,
) -> Verdict {
    let approvals = approvals
        .as_ref()
        .map_err(|e| format!("approvals cannot be read ({e}); holding until they can"))?;
    let mine = || {
        approvals
            .iter()
            .filter(|a| a.window == window && a.stream == stream)
    };
    if mine().any(|a| a.digest == candidate) {
        return Ok(());
    }
    let how = format!("import-scheduler approve --env {env} --stream {stream} --window {window}");
    Err(match mine().next_back() {
        Some(old) => format!(
            "approved by {} for {}, but the source now resolves to {}: approve again (`{how}`)",
            old.by,
            short_digest(&old.digest),
            short_digest(candidate)
        ),
        None => format!(
            "{} is not approved for window {window} (`{how}`)",
            short_digest(candidate)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "2026-12-01T01:00:00Z";
    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbb";

    fn approval(window: &str, stream: &str, digest: &str, by: &str) -> Approval {
        Approval {
            window: window.into(),
            stream: stream.into(),
            digest: digest.into(),
            by: by.into(),
            at: "2026-11-30T12:00:00Z".parse().unwrap(),
        }
    }

    fn check(approvals: Vec<Approval>, candidate: &str) -> Verdict {
        verdict(&Ok(approvals), "prod", W, "worker", candidate)
    }

    #[test]
    fn the_approved_digest_for_this_window_and_stream_passes() {
        assert_eq!(check(vec![approval(W, "worker", A, "alice")], A), Ok(()));
        assert_eq!(
            check(
                vec![
                    approval(W, "worker", B, "bob"),
                    approval(W, "worker", A, "alice")
                ],
                A
            ),
            Ok(())
        );
    }

    #[test]
    fn other_windows_streams_and_no_approval_hold() {
        let how =
            "`import-scheduler approve --env prod --stream worker --window 2026-12-01T01:00:00Z`";
        let none = format!("aaaaaaaaaaaa is not approved for window {W} ({how})");
        assert_eq!(check(vec![], A), Err(none.clone()));
        assert_eq!(
            check(
                vec![approval("2026-11-24T01:00:00Z", "worker", A, "alice")],
                A
            ),
            Err(none.clone())
        );
        assert_eq!(
            check(vec![approval(W, "service", A, "alice")], A),
            Err(none)
        );
    }

    #[test]
    fn a_moved_source_needs_a_new_approval() {
        let e = check(
            vec![
                approval(W, "worker", B, "bob"),
                approval(W, "worker", A, "alice"),
            ],
            "sha256:cccccccccccccccccccc",
        )
        .unwrap_err();
        assert!(
            e.starts_with("approved by alice for aaaaaaaaaaaa, but the source now resolves to cccccccccccc: approve again"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_approvals_hold() {
        assert_eq!(
            verdict(&Err("403".into()), "prod", W, "worker", A),
            Err("approvals cannot be read (403); holding until they can".into())
        );
    }
}
