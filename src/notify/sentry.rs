//! Sentry: events built with the official SDK's protocol types and sent as
//! an envelope to the project's ingestion endpoint named by the DSN.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use sentry::protocol::{Event, Level};
use sentry::types::Dsn;
use sentry::Envelope;

use super::{notice::Notice, render};

const CLIENT: &str = concat!("image-import-scheduler/", env!("CARGO_PKG_VERSION"));

/// A parsed DSN. Its public key authenticates (Sentry calls it public, but
/// it lets anyone file events), so `Debug` shows the host only.
#[derive(Clone)]
pub struct SentryDsn {
    pub(super) dsn: Dsn,
    pub(super) url: http::Uri,
}

impl SentryDsn {
    /// Checks a DSN read from `var`; the error never repeats it.
    pub fn new(dsn: &str, var: &str) -> Result<SentryDsn, String> {
        let dsn = Dsn::from_str(dsn.trim()).map_err(|e| {
            format!(
                "${var} does not hold a valid Sentry DSN ({e}); expected https://KEY@HOST/PROJECT"
            )
        })?;
        let url = dsn
            .envelope_api_url()
            .as_str()
            .parse()
            .map_err(|_| format!("${var} does not hold a valid Sentry DSN"))?;
        Ok(SentryDsn { dsn, url })
    }

    /// The `X-Sentry-Auth` header value.
    pub fn auth_header(&self) -> String {
        self.dsn.to_auth(Some(CLIENT)).to_string()
    }

    /// The envelope (one event) for one notice.
    pub fn envelope(notice: &Notice) -> Vec<u8> {
        let envelope: Envelope = event(notice).into();
        let mut body = Vec::new();
        envelope
            .to_writer(&mut body)
            .expect("writing an envelope to memory cannot fail");
        body
    }
}

impl fmt::Debug for SentryDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SentryDsn({}/<redacted>)",
            super::delivery::endpoint(&self.url)
        )
    }
}

/// The Sentry event: the readable text as message, the environment as
/// Sentry's environment, and tags to filter by. Issues group by kind,
/// environment and stream, not by the text (which carries digests).
pub fn event(notice: &Notice) -> Event<'static> {
    let kind = notice.kind();
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("kind".to_string(), kind.name().to_string());
    if let Some(env) = notice.env() {
        tags.insert("env".to_string(), env.to_string());
    }
    if let Some(stream) = notice.stream() {
        tags.insert("stream".to_string(), stream.to_string());
    }
    let fingerprint = [Some(kind.name()), notice.env(), notice.stream()]
        .into_iter()
        .flatten()
        .map(|s| Cow::Owned(s.to_string()))
        .collect::<Vec<_>>();
    Event {
        level: match notice {
            Notice::WindowMissed(_) => Level::Warning,
            _ if kind.is_error() => Level::Error,
            _ => Level::Info,
        },
        message: Some(render::text(notice)),
        logger: Some("import-scheduler".into()),
        environment: notice.env().map(|e| Cow::Owned(e.to_string())),
        release: Some(Cow::Borrowed(CLIENT)),
        tags,
        fingerprint: Cow::Owned(fingerprint),
        ..Event::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::ImportFailed;

    #[test]
    fn the_dsn_gives_the_envelope_url_and_auth_and_debug_hides_the_key() {
        let dsn = SentryDsn::new("http://k3y@127.0.0.1:9000/42", "DSN").unwrap();
        assert_eq!(
            dsn.url.to_string(),
            "http://127.0.0.1:9000/api/42/envelope/"
        );
        assert!(dsn
            .auth_header()
            .starts_with("Sentry sentry_key=k3y, sentry_version=7"));
        assert_eq!(
            format!("{dsn:?}"),
            "SentryDsn(http://127.0.0.1:9000/<redacted>)"
        );
        let error = SentryDsn::new("k3y@nowhere", "DSN").unwrap_err();
        assert!(
            error.starts_with("$DSN does not hold a valid Sentry DSN"),
            "{error}"
        );
        assert!(!error.contains("k3y"), "{error}");
    }

    #[test]
    fn events_carry_environment_tags_and_a_stable_fingerprint() {
        let notice = Notice::ImportFailed(ImportFailed {
            env: "stg".into(),
            stream: "packit-worker".into(),
            tag: "stg".into(),
            source: "quay.io/packit/worker:stg".into(),
            reason: "Forbidden".into(),
            attempts: 3,
            next_attempt: None,
        });
        let event = event(&notice);
        assert_eq!(event.level, Level::Error);
        assert_eq!(event.environment.as_deref(), Some("stg"));
        assert_eq!(event.tags["kind"], "importFailed");
        assert_eq!(event.tags["env"], "stg");
        assert_eq!(event.tags["stream"], "packit-worker");
        assert_eq!(event.fingerprint.len(), 3);
        assert!(event
            .message
            .unwrap()
            .starts_with("[stg] packit-worker:stg import failed 3 times"));
        let body = String::from_utf8(SentryDsn::envelope(&notice)).unwrap();
        let mut lines = body.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        let item: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(item["type"], "event");
        let payload: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            header["event_id"].as_str().unwrap().replace('-', ""),
            payload["event_id"].as_str().unwrap().replace('-', "")
        );
        assert_eq!(payload["tags"]["stream"], "packit-worker");
        assert_eq!(payload["environment"], "stg");
    }
}
