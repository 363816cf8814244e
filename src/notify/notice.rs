//! What a notification says: one [`Notice`] per thing worth telling a
//! person, independent of where it is delivered.

use chrono::{DateTime, Utc};

/// Something that happened and that people should hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A window closed: each tag's outcome in it.
    WindowSummary(WindowSummary),
    /// A window closed with tags not imported (or passed while no replica ran).
    WindowMissed(WindowMissed),
    /// A tag's import kept failing after it was retried.
    ImportFailed(ImportFailed),
    /// A tag was pinned back to an earlier image.
    RolledBack(RolledBack),
    /// The workloads did not roll out a tag's new image (and it was not
    /// pinned back, or the rollback failed too).
    RolloutFailed(RolloutFailed),
    /// An environment was frozen: no window opens until it is lifted.
    Frozen(Frozen),
    /// A freeze was lifted.
    Unfrozen(Unfrozen),
    /// An edited configuration was rejected; the previous one stays in force.
    ConfigRejected(ConfigRejected),
}

pub use crate::config::notifications::Kind;

/// A closed window and what happened to each tag in it.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSummary {
    pub env: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub tags: Vec<TagOutcome>,
}

/// One tag's result in a window.
#[derive(Clone, Debug, PartialEq)]
pub struct TagOutcome {
    pub stream: String,
    pub tag: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A new image was imported; `from` is absent for a tag's first image.
    Updated { from: Option<String>, to: String },
    /// The tag already had its source's image.
    Unchanged { digest: String },
    /// Pinned to a digest, deliberately not imported.
    Held { digest: String },
    /// Could not be imported in the window.
    Failed { reason: String },
    /// Imported, but its rollout failed; the tag stays on the new image.
    RolloutFailed { digest: String, reason: String },
    /// Imported, its rollout failed, and the tag was pinned back to `to`.
    RolledBack {
        from: String,
        to: String,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct WindowMissed {
    pub env: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Why the window was missed as a whole (e.g. no replica was running),
    /// when it was not one tag's failure.
    pub reason: Option<String>,
    /// The tags that were not imported, with why.
    pub tags: Vec<TagFailure>,
    /// When the next window opens, if one does.
    pub next_window: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TagFailure {
    pub stream: String,
    pub tag: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImportFailed {
    pub env: String,
    pub stream: String,
    pub tag: String,
    /// The tag's `from.name`.
    pub source: String,
    pub reason: String,
    /// How many attempts failed so far.
    pub attempts: u32,
    /// When the next attempt is due, if another is planned.
    pub next_attempt: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RolledBack {
    pub env: String,
    pub stream: String,
    pub tag: String,
    /// The image the tag served before.
    pub from: String,
    /// The image it is pinned to now.
    pub to: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RolloutFailed {
    pub env: String,
    pub stream: String,
    pub tag: String,
    /// The image whose rollout failed.
    pub digest: String,
    /// The workload, pod, container and reason.
    pub reason: String,
    /// What was done and what a person should do next.
    pub next: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Frozen {
    pub env: String,
    /// Who froze it with `freeze` (as the API server saw them); `None`: the
    /// configuration's `freeze` did.
    pub by: Option<String>,
    /// When the freeze ends; `None` for "the next window only" or until lifted.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Unfrozen {
    pub env: String,
    pub by: Option<String>,
    pub next_window: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConfigRejected {
    /// Where the configuration came from, e.g. `ConfigMap packit--prod/image-import-scheduler`.
    pub origin: String,
    /// One line per problem, with its field path (`FieldError`'s display).
    pub errors: Vec<String>,
}

impl Notice {
    pub fn kind(&self) -> Kind {
        match self {
            Notice::WindowSummary(_) => Kind::WindowSummary,
            Notice::WindowMissed(_) => Kind::WindowMissed,
            Notice::ImportFailed(_) => Kind::ImportFailed,
            Notice::RolledBack(_) | Notice::RolloutFailed(_) => Kind::Rollback,
            Notice::Frozen(_) | Notice::Unfrozen(_) => Kind::Freeze,
            Notice::ConfigRejected(_) => Kind::ConfigRejected,
        }
    }

    /// The environment it is about; `None` for the whole daemon.
    pub fn env(&self) -> Option<&str> {
        match self {
            Notice::WindowSummary(n) => Some(&n.env),
            Notice::WindowMissed(n) => Some(&n.env),
            Notice::ImportFailed(n) => Some(&n.env),
            Notice::RolledBack(n) => Some(&n.env),
            Notice::RolloutFailed(n) => Some(&n.env),
            Notice::Frozen(n) => Some(&n.env),
            Notice::Unfrozen(n) => Some(&n.env),
            Notice::ConfigRejected(_) => None,
        }
    }

    /// The stream it is about, when it is about one.
    pub fn stream(&self) -> Option<&str> {
        match self {
            Notice::ImportFailed(n) => Some(&n.stream),
            Notice::RolledBack(n) => Some(&n.stream),
            Notice::RolloutFailed(n) => Some(&n.stream),
            Notice::WindowMissed(n) if n.tags.len() == 1 => Some(&n.tags[0].stream),
            _ => None,
        }
    }
}

pub use crate::image_ref::short_digest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_digests_are_twelve_hex_digits() {
        assert_eq!(
            short_digest("sha256:336531c6ed48426468d69239a0a190758777d345406955024edb32616a1ba28d"),
            "336531c6ed48"
        );
        assert_eq!(short_digest("336531c6ed484264"), "336531c6ed48");
        assert_eq!(short_digest("sha256:abc"), "abc");
        assert_eq!(
            short_digest("quay.io/packit/worker@sha256:336531c6ed4842"),
            "336531c6ed48"
        );
    }

    #[test]
    fn kind_names_round_trip_and_errors_are_the_tracker_kinds() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("windowsummary"), None);
        let errors: Vec<_> = Kind::ALL.into_iter().filter(|k| k.is_error()).collect();
        assert_eq!(
            errors,
            [
                Kind::WindowMissed,
                Kind::ImportFailed,
                Kind::Rollback,
                Kind::ConfigRejected
            ]
        );
    }
}
