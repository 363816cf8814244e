//! Notifications delivered to real local receivers: an HTTP server in the
//! test stands in for the chat webhook and for Sentry's ingestion endpoint.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use import_scheduler::config;
use import_scheduler::metrics::Metrics;
use import_scheduler::notify::{
    render, ConfigRejected, DeliveryOptions, Frozen, ImportFailed, Notice, Notifier, Outcome,
    Stats, TagFailure, TagOutcome, WindowMissed, WindowSummary,
};
use tokio::sync::Notify;

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// A 429 asking to wait this many seconds.
    RetryAfter(u64),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    /// Answer once the script is used up.
    then: Mutex<Option<Answer>>,
    arrived: Notify,
}

/// A local HTTP receiver.
struct Receiver {
    addr: std::net::SocketAddr,
    log: Arc<Log>,
}

impl Receiver {
    async fn start(script: &[Answer], then: Answer) -> Receiver {
        let log = Arc::new(Log::default());
        *log.script.lock().unwrap() = script.iter().copied().collect();
        *log.then.lock().unwrap() = Some(then);
        let app = axum::Router::new().fallback(handle).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.log.requests.lock().unwrap().clone()
    }

    /// Waits for the n-th request (bounded, so a broken sender fails the
    /// test instead of hanging it).
    async fn wait_for(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let arrived = self.log.arrived.notified();
                if self.log.requests.lock().unwrap().len() >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("request {n} never arrived"));
    }
}

async fn handle(
    State(log): State<Arc<Log>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.requests.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers,
        body,
    });
    log.arrived.notify_waiters();
    let answer = log
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or(*log.then.lock().unwrap())
        .unwrap();
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Answer::Hang => std::future::pending().await,
    }
}

/// A port nothing listens on: connections are refused.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn parse_config(yaml: &str) -> config::Config {
    config::parse(yaml, Utc::now()).unwrap().config
}

const ENVIRONMENTS: &str = r#"
environments:
  prod:
    namespace: packit-prod
    mode: windowed
    schedule: "0 2 * * 2"
  stg:
    namespace: packit-stg
    mode: immediate
"#;

fn fast() -> DeliveryOptions {
    DeliveryOptions {
        queue_capacity: 16,
        timeout: Duration::from_secs(20),
        attempts: 4,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

fn notifier(
    yaml: &str,
    secrets: &[(&str, String)],
    options: DeliveryOptions,
    metrics: Option<Arc<Metrics>>,
) -> Notifier {
    let config = parse_config(&format!("{ENVIRONMENTS}{yaml}"));
    let secrets: Vec<(String, String)> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Notifier::from_config(
        &config,
        move |var| {
            secrets
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
        },
        options,
        metrics,
    )
    .unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const OLD: &str = "sha256:233da6868f76eae8593711754387acbd4f03ed36c33265a6d8dc88ea52cc113c";
const NEW: &str = "sha256:336531c6ed48426468d69239a0a190758777d345406955024edb32616a1ba28d";

fn summary(env: &str) -> Notice {
    Notice::WindowSummary(WindowSummary {
        env: env.into(),
        window_start: t("2026-11-24T01:00:00Z"),
        window_end: t("2026-11-24T02:00:00Z"),
        tags: vec![
            TagOutcome {
                stream: "packit-worker".into(),
                tag: env.into(),
                outcome: Outcome::Updated {
                    from: Some(OLD.into()),
                    to: NEW.into(),
                },
            },
            TagOutcome {
                stream: "packit-service".into(),
                tag: env.into(),
                outcome: Outcome::Failed {
                    reason: "registry answered NotFound for quay.io/packit/service:prod".into(),
                },
            },
        ],
    })
}

fn import_failed(env: &str) -> Notice {
    Notice::ImportFailed(ImportFailed {
        env: env.into(),
        stream: "packit-worker".into(),
        tag: env.into(),
        source: format!("quay.io/packit/worker:{env}"),
        reason: "Forbidden: pull secret rejected".into(),
        attempts: 2,
        next_attempt: None,
    })
}

fn missed(env: &str) -> Notice {
    Notice::WindowMissed(WindowMissed {
        env: env.into(),
        window_start: t("2026-11-24T01:00:00Z"),
        window_end: t("2026-11-24T02:00:00Z"),
        reason: None,
        tags: vec![TagFailure {
            stream: "packit-service".into(),
            tag: env.into(),
            reason: "timeout".into(),
        }],
        next_window: Some(t("2026-12-01T01:00:00Z")),
    })
}

fn text_of(request: &Received) -> String {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["text"].as_str().unwrap().to_string()
}

/// The event of a one-event envelope.
fn event_of(request: &Received) -> serde_json::Value {
    let text = std::str::from_utf8(&request.body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let item: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(item["type"], "event");
    serde_json::from_str(lines[2]).unwrap()
}

async fn flushed(notifier: &Notifier) -> Stats {
    assert!(
        notifier.flush(Duration::from_secs(60)).await,
        "deliveries never finished"
    );
    notifier.stats()
}

#[tokio::test]
async fn the_chat_webhook_gets_the_text_of_each_notice() {
    let chat = Receiver::start(&[], Answer::Status(200)).await;
    let notifier = notifier(
        "notifications: {slack: {urlFromEnv: CHAT_URL}}",
        &[("CHAT_URL", chat.url("/hooks/T000/B000/s3cr3t"))],
        fast(),
        None,
    );
    notifier.send(summary("prod"));
    notifier.send(Notice::Frozen(Frozen {
        env: "prod".into(),
        by: Some("system:serviceaccount:packit--prod:alice".into()),
        until: Some(t("2026-12-01T09:00:00Z")),
        reason: "release week".into(),
    }));
    assert_eq!(
        flushed(&notifier).await,
        Stats {
            sent: 2,
            failed: 0,
            dropped: 0
        }
    );

    let requests = chat.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/hooks/T000/B000/s3cr3t");
    assert_eq!(requests[0].headers["content-type"], "application/json");
    assert_eq!(
        text_of(&requests[0]),
        "[prod] window 2026-11-24 01:00Z - 02:00Z closed: 1 updated, 1 failed (2 tags)\n\
         • packit-worker:prod updated 233da6868f76 -> 336531c6ed48\n\
         • packit-service:prod FAILED: registry answered NotFound for quay.io/packit/service:prod \
         (retry: `import-scheduler import --env prod --stream packit-service`)"
    );
    assert_eq!(
        text_of(&requests[1]),
        "[prod] frozen until 2026-12-01 09:00Z\n\
         reason: release week\n\
         by: system:serviceaccount:packit--prod:alice\n\
         lift it: `import-scheduler unfreeze --env prod`"
    );
}

#[tokio::test]
async fn sentry_gets_errors_as_events_with_environment_and_stream() {
    let sentry = Receiver::start(&[], Answer::Status(200)).await;
    let dsn = format!("http://publickey@{}/1", sentry.addr);
    let notifier = notifier(
        "notifications: {sentry: {dsnFromEnv: SENTRY_DSN}}",
        &[("SENTRY_DSN", dsn)],
        fast(),
        None,
    );
    // Not an error: not for Sentry by default.
    notifier.send(summary("prod"));
    notifier.send(import_failed("stg"));
    notifier.send(Notice::ConfigRejected(ConfigRejected {
        origin: "ConfigMap packit--prod/image-import-scheduler".into(),
        errors: vec!["environments.prod.mode: missing".into()],
    }));
    assert_eq!(
        flushed(&notifier).await,
        Stats {
            sent: 2,
            failed: 0,
            dropped: 0
        }
    );

    let requests = sentry.requests();
    assert_eq!(requests.len(), 2);
    let request = &requests[0];
    assert_eq!(request.path, "/api/1/envelope/");
    assert_eq!(
        request.headers["content-type"],
        "application/x-sentry-envelope"
    );
    let auth = request.headers["x-sentry-auth"].to_str().unwrap();
    assert!(
        auth.starts_with("Sentry sentry_key=publickey, sentry_version=7"),
        "{auth}"
    );
    let event = event_of(request);
    // The SDK leaves out the level when it is Sentry's default, error.
    assert_eq!(event["level"].as_str().unwrap_or("error"), "error");
    assert_eq!(event["environment"], "stg");
    assert_eq!(event["tags"]["env"], "stg");
    assert_eq!(event["tags"]["stream"], "packit-worker");
    assert_eq!(event["tags"]["kind"], "importFailed");
    assert_eq!(event["message"], render::text(&import_failed("stg")));
    assert_eq!(
        event["fingerprint"],
        serde_json::json!(["importFailed", "stg", "packit-worker"])
    );

    let rejected = event_of(&requests[1]);
    assert_eq!(rejected["tags"]["kind"], "configRejected");
    assert!(rejected.get("environment").is_none(), "{rejected}");
}

#[tokio::test]
async fn an_environment_with_its_own_receiver_uses_it_and_the_others_the_top_level_one() {
    let team = Receiver::start(&[], Answer::Status(200)).await;
    let prod_channel = Receiver::start(&[], Answer::Status(200)).await;
    let yaml = format!(
        "{}\nnotifications: {{slack: {{urlFromEnv: TEAM_URL, events: [windowMissed, importFailed, configRejected]}}}}\n",
        ENVIRONMENTS.replace(
            "    schedule: \"0 2 * * 2\"\n",
            "    schedule: \"0 2 * * 2\"\n    notifications: {slack: {urlFromEnv: PROD_URL, events: [windowSummary, windowMissed]}}\n"
        )
    );
    let config = parse_config(&yaml);
    let secrets = [
        ("TEAM_URL", team.url("/team")),
        ("PROD_URL", prod_channel.url("/prod")),
    ];
    let notifier = Notifier::from_config(
        &config,
        |var| {
            secrets
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.clone())
        },
        fast(),
        None,
    )
    .unwrap();
    notifier.send(summary("prod")); // prod channel
    notifier.send(import_failed("prod")); // prod did not ask for it: nowhere
    notifier.send(missed("prod")); // prod channel
    notifier.send(summary("stg")); // the team did not ask for summaries
    notifier.send(import_failed("stg")); // team
    notifier.send(Notice::ConfigRejected(ConfigRejected {
        origin: "file".into(),
        errors: vec!["x: y".into()],
    })); // team
    assert_eq!(
        flushed(&notifier).await,
        Stats {
            sent: 4,
            failed: 0,
            dropped: 0
        }
    );
    let titles = |r: &Receiver| {
        r.requests()
            .iter()
            .map(|r| text_of(r).lines().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        titles(&prod_channel),
        [
            "[prod] window 2026-11-24 01:00Z - 02:00Z closed: 1 updated, 1 failed (2 tags)",
            "[prod] window 2026-11-24 01:00Z - 02:00Z missed"
        ]
    );
    assert_eq!(
        titles(&team),
        [
            "[stg] packit-worker:stg import failed 2 times",
            "configuration rejected: 1 error"
        ]
    );
}

#[tokio::test]
async fn deliveries_are_retried_after_500_and_429_and_not_after_400() {
    let chat = Receiver::start(
        &[
            Answer::Status(500),
            Answer::RetryAfter(0),
            Answer::Status(200),
            Answer::Status(400),
        ],
        Answer::Status(200),
    )
    .await;
    let sentry = Receiver::start(
        &[Answer::Status(503), Answer::RetryAfter(0)],
        Answer::Status(200),
    )
    .await;
    let metrics = Arc::new(Metrics::new());
    let notifier = notifier(
        "notifications: {slack: {urlFromEnv: CHAT_URL}, sentry: {dsnFromEnv: DSN}}",
        &[
            ("CHAT_URL", chat.url("/hook")),
            ("DSN", format!("http://key@{}/7", sentry.addr)),
        ],
        fast(),
        Some(metrics.clone()),
    );
    notifier.send(import_failed("stg"));
    notifier.send(Notice::Frozen(Frozen {
        env: "stg".into(),
        by: None,
        until: None,
        reason: "x".into(),
    }));
    // Chat: 500, 429, 200 for the first; 400 for the second (no retry).
    // Sentry: 503, 429, 200 for the first; the freeze is not for Sentry.
    assert_eq!(
        flushed(&notifier).await,
        Stats {
            sent: 2,
            failed: 1,
            dropped: 0
        }
    );
    assert_eq!(chat.requests().len(), 4);
    let bodies: Vec<_> = chat.requests().iter().map(|r| r.body.clone()).collect();
    assert!(bodies[0] == bodies[1] && bodies[1] == bodies[2]);
    assert_ne!(bodies[2], bodies[3]);
    // Retries of a Sentry event carry the same event id.
    let events: Vec<_> = sentry.requests().iter().map(event_of).collect();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["event_id"] == events[0]["event_id"]));

    let text = metrics.encode();
    for line in [
        "image_import_scheduler_notifications_total{receiver=\"slack\",result=\"sent\"} 1",
        "image_import_scheduler_notifications_total{receiver=\"slack\",result=\"failed\"} 1",
        "image_import_scheduler_notifications_total{receiver=\"sentry\",result=\"sent\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn a_hanging_receiver_blocks_no_sender_and_a_full_queue_drops_and_counts() {
    logs();
    let chat = Receiver::start(&[], Answer::Hang).await;
    let metrics = Arc::new(Metrics::new());
    let options = DeliveryOptions {
        queue_capacity: 2,
        // Longer than the test: the worker stays stuck on its first notice.
        timeout: Duration::from_secs(3600),
        attempts: 1,
        ..fast()
    };
    let notifier = notifier(
        "notifications: {slack: {urlFromEnv: CHAT_URL}}",
        &[("CHAT_URL", chat.url("/hook"))],
        options,
        Some(metrics.clone()),
    );
    notifier.send(summary("prod"));
    chat.wait_for(1).await;
    // The worker is waiting for an answer that never comes. Every further
    // send returns at once on this very task: two wait in the queue, the
    // rest are dropped.
    for _ in 0..10 {
        notifier.clone().send(import_failed("prod"));
    }
    assert_eq!(
        notifier.stats(),
        Stats {
            sent: 0,
            failed: 0,
            dropped: 8
        }
    );
    assert!(!notifier.flush(Duration::from_millis(200)).await);
    assert_eq!(chat.requests().len(), 1);
    let text = metrics.encode();
    let line =
        "image_import_scheduler_notifications_total{receiver=\"slack\",result=\"dropped\"} 8";
    assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    // Eight drops, one log line: a stuck receiver does not flood the log.
    let logs = logs();
    let endpoint = format!("endpoint=http://{}", chat.addr);
    let drops = logs
        .lines()
        .filter(|l| l.contains("notification dropped") && l.contains(&endpoint))
        .count();
    assert_eq!(drops, 1, "{logs}");
}

/// Every log line of this test binary so far. One process-wide subscriber
/// (not one per test): tracing caches per call site whether anyone listens,
/// and per-thread subscribers in parallel tests can miss events that way.
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        buffer
    });
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn receivers_down_for_a_whole_window_cost_nothing_and_the_secrets_stay_out_of_logs() {
    logs();
    let refused = closed_port().await;
    // Chat: nothing listens. Sentry: a proxy in front answers 503 throughout.
    let sentry = Receiver::start(&[], Answer::Status(503)).await;
    let metrics = Arc::new(Metrics::new());
    let notifier = notifier(
        "notifications: {slack: {urlFromEnv: CHAT_URL}, sentry: {dsnFromEnv: DSN}}",
        &[
            (
                "CHAT_URL",
                format!("http://127.0.0.1:{refused}/services/T0/B0/chat-s3cr3t"),
            ),
            ("DSN", format!("http://sentry-k3y@{}/1", sentry.addr)),
        ],
        DeliveryOptions {
            attempts: 3,
            ..fast()
        },
        Some(metrics.clone()),
    );
    // What one window produces: failures while it is open, the miss and the
    // summary when it closes.
    let window = [import_failed("prod"), missed("prod"), summary("prod")];
    for notice in window {
        notifier.send(notice);
    }
    // chat: 3 notices; sentry: the 2 errors.
    assert_eq!(
        flushed(&notifier).await,
        Stats {
            sent: 0,
            failed: 5,
            dropped: 0
        }
    );
    assert_eq!(sentry.requests().len(), 2 * 3);

    let text = metrics.encode();
    for line in [
        "image_import_scheduler_notifications_total{receiver=\"slack\",result=\"failed\"} 3",
        "image_import_scheduler_notifications_total{receiver=\"sentry\",result=\"failed\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    let logs = logs();
    let failures = |endpoint: &str, error: &str| {
        logs.lines()
            .filter(|l| l.contains("notification not delivered"))
            .filter(|l| l.contains(&format!("endpoint={endpoint} ")) && l.contains(error))
            .count()
    };
    let chat_endpoint = format!("http://127.0.0.1:{refused}");
    assert_eq!(failures(&chat_endpoint, "Connection refused"), 3, "{logs}");
    let sentry_endpoint = format!("http://{}", sentry.addr);
    assert_eq!(failures(&sentry_endpoint, "503"), 2, "{logs}");
    // The log of every test in this binary so far: no URL path, no key.
    for secret in ["s3cr3t", "/services/", "/hooks/", "k3y", "publickey"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
    let debug = format!("{notifier:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("k3y"),
        "{debug}"
    );
}

#[test]
fn a_missing_or_invalid_secret_names_the_field_and_variable_but_not_the_value() {
    let config = parse_config(&format!(
        "{ENVIRONMENTS}notifications: {{slack: {{urlFromEnv: CHAT_URL}}, sentry: {{dsnFromEnv: DSN}}}}\n"
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let errors = Notifier::from_config(
        &config,
        |var| (var == "DSN").then(|| "not-a-dsn-s3cr3t".to_string()),
        fast(),
        None,
    )
    .unwrap_err();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("notifications.slack.urlFromEnv: environment variable $CHAT_URL is not set or empty (set it in the Deployment from a Secret"), "{errors:?}");
    assert!(
        errors[1]
            .starts_with("notifications.sentry.dsnFromEnv: $DSN does not hold a valid Sentry DSN"),
        "{errors:?}"
    );
    assert!(!errors.iter().any(|e| e.contains("s3cr3t")), "{errors:?}");

    let plain = parse_config(ENVIRONMENTS);
    let notifier = Notifier::from_config(&plain, |_| None, fast(), None).unwrap();
    assert!(notifier.is_disabled());
    notifier.send(summary("prod"));
    assert_eq!(notifier.stats(), Stats::default());
}

#[test]
fn check_reports_notification_errors_with_their_paths() {
    let yaml = format!(
        "{}notifications: {{slack: {{urlFromEnv: 'https://hooks.slack.com/x'}}}}\n",
        ENVIRONMENTS.replace(
            "    mode: immediate\n",
            "    mode: immediate\n    notifications: {sentry: {dsnFromEnv: DSN, events: [freeze]}}\n"
        )
    );
    let errors = config::parse(&yaml, Utc::now()).unwrap_err();
    let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("notifications.slack.urlFromEnv: `https://hooks.slack.com/x` is not an environment variable name")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.starts_with(
            "environments.stg.notifications.sentry.events[0]: `freeze` is not an error"
        )),
        "{errors:?}"
    );
}
