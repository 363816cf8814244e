//! Slack-compatible incoming webhooks: a POST of `{"text": ...}`, which
//! Slack, Mattermost and the Matrix hookshot bridge all accept.

use std::fmt;

use super::{notice::Notice, render};

/// A webhook URL. The whole URL is the credential (whoever has it can post),
/// so only its scheme and host ever appear in a log or a `Debug`.
#[derive(Clone)]
pub struct SlackWebhook {
    pub(super) url: http::Uri,
}

impl SlackWebhook {
    /// Checks a webhook URL read from `var`; the error never repeats it.
    pub fn new(url: &str, var: &str) -> Result<SlackWebhook, String> {
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|_| format!("${var} does not hold a valid URL"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("https" | "http"), Some(_)) => Ok(SlackWebhook { url: uri }),
            _ => Err(format!(
                "${var} must hold an http(s) URL with a host, like the incoming webhook URL Slack or Mattermost shows"
            )),
        }
    }

    /// The JSON body for one notice.
    pub fn payload(notice: &Notice) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "text": render::text(notice) }))
            .expect("a JSON object of one string serializes")
    }
}

impl fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SlackWebhook({}/<redacted>)",
            super::delivery::endpoint(&self.url)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::notice::Unfrozen;

    #[test]
    fn the_url_is_checked_without_being_repeated_and_debug_hides_it() {
        let hook =
            SlackWebhook::new("https://hooks.slack.test/services/T0/B0/s3cr3t", "SLACK").unwrap();
        let debug = format!("{hook:?}");
        assert_eq!(debug, "SlackWebhook(https://hooks.slack.test/<redacted>)");
        for bad in [
            "hooks.slack.test/s3cr3t",
            "ftp://h/s3cr3t",
            "not a url s3cr3t",
            "",
        ] {
            let error = SlackWebhook::new(bad, "SLACK").unwrap_err();
            assert!(error.contains("$SLACK"), "{error}");
            assert!(!error.contains("s3cr3t"), "{error}");
        }
    }

    #[test]
    fn payload_is_one_text_field() {
        let notice = Notice::Unfrozen(Unfrozen {
            env: "prod".into(),
            by: None,
            next_window: None,
        });
        let body: serde_json::Value =
            serde_json::from_slice(&SlackWebhook::payload(&notice)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"text": "[prod] unfrozen\ndetails: `import-scheduler status --env prod`"})
        );
    }
}
