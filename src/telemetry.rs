//! Logging: one JSON object per line in the cluster, readable text on a terminal.
//!
//! Logs go to stderr, so commands that print results on stdout (`check`, `next`,
//! `status`) stay pipeable; the log format follows whether stderr is a terminal.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`,
    /// the event's fields flattened next to `message`, and the enclosing spans.
    Json,
    /// Human-readable text with ANSI colours.
    Text,
}

impl LogFormat {
    /// Text when a person is watching (stderr is a terminal), JSON otherwise.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter is not a valid `RUST_LOG`-style directive list.
    #[error("invalid log filter {filter:?}: {source}; use RUST_LOG syntax such as `info` or `import_scheduler=debug,kube=warn`")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was installed before.
    #[error("logging was already initialised in this process")]
    AlreadyInitialised,
}

/// Installs the global subscriber writing to stderr.
///
/// `filter` uses `RUST_LOG` syntax (`info`, `import_scheduler=debug,kube=warn`).
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let filter = parse_filter(filter)?;
    let result = match format {
        LogFormat::Json => json_subscriber(filter, std::io::stderr).try_init(),
        LogFormat::Text => text_subscriber(filter, std::io::stderr).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInitialised)
}

fn parse_filter(filter: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })
}

type JsonSubscriber<W> = tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    EnvFilter,
    W,
>;

fn json_subscriber<W>(filter: EnvFilter, writer: W) -> JsonSubscriber<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(writer)
        // A log line that cannot be written is lost, but the daemon goes on:
        // reporting it would panic on the same closed stderr.
        .log_internal_errors(false)
}

type TextSubscriber<W> = tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full>,
    EnvFilter,
    W,
>;

fn text_subscriber<W>(filter: EnvFilter, writer: W) -> TextSubscriber<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn json_lines_have_flattened_fields_target_spans_and_rfc3339_time() {
        let buffer = Buffer::default();
        let subscriber = json_subscriber(parse_filter("info").unwrap(), buffer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("window", env = "prod", window_id = "prod-1");
            let _entered = span.enter();
            tracing::info!(
                stream = "packit-worker",
                tag = "prod",
                outcome = "updated",
                "imported"
            );
            tracing::debug!("filtered out");
        });
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "one line per event, debug filtered: {text}");
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(value["message"], "imported");
        assert_eq!(value["stream"], "packit-worker");
        assert_eq!(value["outcome"], "updated");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], module_path!());
        assert_eq!(value["spans"][0]["env"], "prod");
        assert_eq!(value["spans"][0]["window_id"], "prod-1");
        let timestamp = value["timestamp"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
    }

    #[test]
    fn text_lines_are_not_json() {
        let buffer = Buffer::default();
        let subscriber = text_subscriber(parse_filter("info").unwrap(), buffer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(env = "stg", "paused");
        });
        let text = buffer.text();
        assert!(text.contains("WARN"), "{text}");
        assert!(text.contains("env=\"stg\""), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }

    #[test]
    fn bad_filter_is_reported_with_the_filter() {
        let error = parse_filter("info,=[").unwrap_err();
        assert!(error.to_string().contains("info,=["), "{error}");
    }

    #[test]
    fn format_deserialises_lowercase() {
        let format: LogFormat = serde_json::from_str("\"json\"").unwrap();
        assert_eq!(format, LogFormat::Json);
        let format: LogFormat = serde_json::from_str("\"text\"").unwrap();
        assert_eq!(format, LogFormat::Text);
        assert!(serde_json::from_str::<LogFormat>("\"Yaml\"").is_err());
    }
}
