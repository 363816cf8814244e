//! What checking one tag came to: the one vocabulary of the importer's
//! result, the `result` label of `imports_total`, a tag's `lastOutcome` in
//! the status ConfigMap and the `outcome` of the CLI's reports.
//!
//! Pure: no I/O. The label strings are persisted and scraped, so they never
//! change; a new kind gets a new label.

use std::fmt;

/// The outcome kind of one tag's check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeKind {
    /// A new image was imported: the tag's history has a new newest item.
    Updated,
    /// The source resolves to the image the tag already points at; nothing written.
    Unchanged,
    /// The tag is pinned to a digest and was deliberately not imported.
    Held,
    /// The check or the import failed.
    Failed,
}

impl OutcomeKind {
    /// Every kind, in a stable order.
    pub const ALL: [OutcomeKind; 4] = [
        OutcomeKind::Updated,
        OutcomeKind::Unchanged,
        OutcomeKind::Held,
        OutcomeKind::Failed,
    ];

    /// The label: `updated`, `unchanged`, `held` or `failed`.
    pub const fn label(self) -> &'static str {
        match self {
            OutcomeKind::Updated => "updated",
            OutcomeKind::Unchanged => "unchanged",
            OutcomeKind::Held => "held",
            OutcomeKind::Failed => "failed",
        }
    }

    /// The kind of a label, `None` for a label this version does not know
    /// (one written by another version is kept, not misread).
    pub fn from_label(label: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|k| k.label() == label)
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels are persisted in status ConfigMaps and scraped as metric
    /// labels: a changed string would break deployed state and dashboards.
    #[test]
    fn labels_are_fixed_and_read_back() {
        let expected = [
            (OutcomeKind::Updated, "updated"),
            (OutcomeKind::Unchanged, "unchanged"),
            (OutcomeKind::Held, "held"),
            (OutcomeKind::Failed, "failed"),
        ];
        assert_eq!(OutcomeKind::ALL.len(), expected.len());
        for (kind, label) in expected {
            assert_eq!(kind.label(), label);
            assert_eq!(kind.to_string(), label);
            assert_eq!(OutcomeKind::from_label(label), Some(kind));
        }
        for unknown in ["", "Updated", "wouldUpdate", "skipped", "updated "] {
            assert_eq!(OutcomeKind::from_label(unknown), None, "{unknown:?}");
        }
    }
}
