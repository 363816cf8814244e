//! Image references as OpenShift and registries write them:
//! `[registry[:port]/]repository[:tag][@sha256:<hex>]`.
//!
//! One type answers every question the scheduler and the CLI ask of a
//! reference (its repository, its tag, whether it is pinned to a digest) and
//! one function writes a digest short for people, so the rules (a `:` before
//! the last `/` is a registry port, no tag means `latest`, only a full
//! `sha256` digest pins) live in one place.

use std::fmt;

/// The `latest` tag a reference without a tag stands for.
pub const DEFAULT_TAG: &str = "latest";

/// Hex digits of a digest shown to people.
const SHORT_DIGEST_LEN: usize = 12;

/// A parsed image reference, borrowing the text it was parsed from.
///
/// Parsing never fails: whatever is not a tag or a digest is the repository,
/// as OpenShift treats a `from.name` it has not validated yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    text: &'a str,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    /// Splits `text` into repository, tag and digest.
    pub fn parse(text: &'a str) -> ImageRef<'a> {
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a
        // registry port.
        let (repository, tag) = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => {
                (&name[..colon], Some(&name[colon + 1..]))
            }
            _ => (name, None),
        };
        ImageRef {
            text,
            repository,
            tag,
            digest,
        }
    }

    /// The repository without tag or digest, e.g. `quay.io/packit/worker`.
    pub fn repository(&self) -> &'a str {
        self.repository
    }

    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// The tag a registry serves for this reference: `latest` when none is
    /// written.
    pub fn tag_or_latest(&self) -> &'a str {
        self.tag.unwrap_or(DEFAULT_TAG)
    }

    /// Whatever follows the `@`, valid digest or not.
    pub fn digest(&self) -> Option<&'a str> {
        self.digest
    }

    /// The `sha256:<64 lowercase hex>` digest the reference is pinned to:
    /// `repository@sha256:...` with a non-empty repository without spaces.
    /// A tag whose source is such a reference is a deliberate hold:
    /// importing it can only re-import the same digest.
    pub fn pinned_digest(&self) -> Option<&'a str> {
        let (repository, digest) = self.text.rsplit_once('@')?;
        if repository.is_empty() || repository.contains(char::is_whitespace) {
            return None;
        }
        let hex = digest.strip_prefix("sha256:")?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then_some(digest)
    }

    /// Whether the reference is pinned to a digest (see [`Self::pinned_digest`]).
    pub fn is_pinned(&self) -> bool {
        self.pinned_digest().is_some()
    }

    /// The same repository at another tag, e.g. to follow `:prod` again.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository)
    }
}

/// The reference as it was written.
impl fmt::Display for ImageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// `sha256:0123456789ab...` -> `0123456789ab` (12 hex digits), for people;
/// a reference by digest (`quay.io/packit/worker@sha256:...`) gives its digest's.
pub fn short_digest(digest: &str) -> String {
    let digest = digest.rsplit_once('@').map_or(digest, |(_, d)| d);
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(SHORT_DIGEST_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:9c1f3bfc269594ef649228e9a74bab00f042efc91d5acc6fbee31a382e80d423";

    #[test]
    fn references_split_into_repository_tag_and_digest() {
        let pinned = format!("localhost:5000/packit/worker@{DIGEST}");
        let tagged_and_pinned = format!("quay.io/packit/worker:prod@{DIGEST}");
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            (
                "quay.io/packit/worker:prod",
                "quay.io/packit/worker",
                Some("prod"),
                None,
            ),
            ("quay.io/packit/worker", "quay.io/packit/worker", None, None),
            (
                "127.0.0.1:5000/packit/worker:stg",
                "127.0.0.1:5000/packit/worker",
                Some("stg"),
                None,
            ),
            (
                "127.0.0.1:5000/packit/worker",
                "127.0.0.1:5000/packit/worker",
                None,
                None,
            ),
            (&pinned, "localhost:5000/packit/worker", None, Some(DIGEST)),
            (
                &tagged_and_pinned,
                "quay.io/packit/worker",
                Some("prod"),
                Some(DIGEST),
            ),
            ("worker", "worker", None, None),
            ("worker:", "worker", Some(""), None),
            ("", "", None, None),
        ];
        for (text, repository, tag, digest) in cases {
            let r = ImageRef::parse(text);
            assert_eq!(r.repository(), *repository, "{text}");
            assert_eq!(r.tag(), *tag, "{text}");
            assert_eq!(r.digest(), *digest, "{text}");
            assert_eq!(r.to_string(), *text, "written back as given");
        }
    }

    #[test]
    fn no_tag_means_latest() {
        assert_eq!(
            ImageRef::parse("quay.io/packit/worker").tag_or_latest(),
            "latest"
        );
        assert_eq!(
            ImageRef::parse(&format!("quay.io/packit/worker@{DIGEST}")).tag_or_latest(),
            "latest"
        );
        assert_eq!(
            ImageRef::parse("quay.io/packit/worker:stg").tag_or_latest(),
            "stg"
        );
    }

    #[test]
    fn only_a_full_sha256_digest_pins() {
        let hex = &DIGEST["sha256:".len()..];
        let cases: &[(&str, bool)] = &[
            (&format!("quay.io/packit/packit-worker@{DIGEST}"), true),
            (&format!("localhost:5000/packit/worker@{DIGEST}"), true),
            (&format!("worker@{DIGEST}"), true),
            ("quay.io/packit/packit-worker:prod", false),
            ("quay.io/packit/packit-worker", false),
            ("localhost:5000/packit/worker:prod", false),
            (&format!("@{DIGEST}"), false),
            (&format!("quay io/worker@{DIGEST}"), false),
            (
                &format!("quay.io/packit/worker@sha256:{}", &hex[..63]),
                false,
            ),
            (&format!("quay.io/packit/worker@sha256:{hex}0"), false),
            (
                &format!("quay.io/packit/worker@sha256:{}", hex.to_uppercase()),
                false,
            ),
            (
                &format!("quay.io/packit/worker@sha256:{}g", &hex[..63]),
                false,
            ),
            (&format!("quay.io/packit/worker@sha512:{hex}"), false),
            (&format!("quay.io/packit/worker@{hex}"), false),
            (&format!("quay.io/packit/worker:prod@{DIGEST}"), true),
            ("", false),
        ];
        for (text, pinned) in cases {
            let r = ImageRef::parse(text);
            assert_eq!(r.is_pinned(), *pinned, "{text}");
            assert_eq!(r.pinned_digest(), pinned.then_some(DIGEST), "{text}");
        }
    }

    #[test]
    fn another_tag_of_the_same_repository() {
        let pinned = format!("localhost:5000/packit/worker@{DIGEST}");
        assert_eq!(
            ImageRef::parse(&pinned).with_tag("prod"),
            "localhost:5000/packit/worker:prod"
        );
    }

    #[test]
    fn digests_are_shortened_to_twelve_hex_digits() {
        assert_eq!(short_digest(DIGEST), "9c1f3bfc2695");
        assert_eq!(short_digest("9c1f3bfc269594ef"), "9c1f3bfc2695");
        assert_eq!(short_digest("sha256:abc"), "abc");
        assert_eq!(short_digest(""), "");
    }
}
