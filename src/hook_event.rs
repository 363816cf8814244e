//! A push notification from a registry, and which tags it moves.

use crate::image_ref::ImageRef;

/// A push notification: these tags of this image were updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    /// Repository without tag, e.g. `quay.io/packit/packit-worker`.
    pub docker_url: String,
    /// Tags pushed, e.g. `["prod"]`; empty means every tag.
    pub updated_tags: Vec<String>,
}

impl HookEvent {
    /// Whether this push moves the tag that a target following `source`
    /// imports. The repository matches whole path segments from the end, so
    /// `packit/worker` matches `quay.io/packit/worker` but `it/worker` does not.
    pub fn moves(&self, source: &str) -> bool {
        let source = ImageRef::parse(source);
        let (repo, tag) = (source.repository(), source.tag_or_latest());
        let want = self.docker_url.trim_end_matches('/');
        let tag_ok = self.updated_tags.is_empty() || self.updated_tags.iter().any(|t| t == tag);
        tag_ok && (repo == want || repo.ends_with(&format!("/{want}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, tags: &[&str]) -> HookEvent {
        HookEvent {
            docker_url: url.into(),
            updated_tags: tags.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn hooks_match_repository_and_tag() {
        let src = "quay.io/packit/packit-worker:prod";
        assert!(hook("quay.io/packit/packit-worker", &["prod"]).moves(src));
        assert!(hook("quay.io/packit/packit-worker/", &["prod"]).moves(src));
        assert!(hook("packit/packit-worker", &["prod", "stg"]).moves(src));
        assert!(
            hook("quay.io/packit/packit-worker", &[]).moves(src),
            "no tags named: every tag"
        );
        assert!(!hook("quay.io/packit/packit-worker", &["stg"]).moves(src));
        assert!(!hook("quay.io/packit/packit-service", &["prod"]).moves(src));
        assert!(
            !hook("it/packit-worker", &["prod"]).moves(src),
            "path segments, not substrings"
        );
        assert!(
            hook("quay.io/packit/packit-worker", &["latest"]).moves("quay.io/packit/packit-worker"),
            "no tag in the source: latest"
        );
        assert!(
            hook("127.0.0.1:5000/packit/worker", &["stg"])
                .moves("127.0.0.1:5000/packit/worker:stg"),
            "a registry port is not a tag"
        );
    }
}
