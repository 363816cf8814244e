//! Cost of `Notifier::send` to the code that calls it (the window loop,
//! the importer): with no receiver, a receiver that answers at once, one
//! that accepts connections and never answers (queue with room, then full),
//! and one that refuses connections. Also a window start's worth of
//! notices (every tag of 60 failing, then the summary) timed as a whole.
//!
//! Receivers are local HTTP servers; the process logs JSON to a sink, as
//! the daemon logs, so the cost of the drop warning is included.
//!
//! `cargo bench --bench notify [-- --quick]`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use import_scheduler::config;
use import_scheduler::metrics::Metrics;
use import_scheduler::notify::{
    DeliveryOptions, ImportFailed, Notice, Notifier, Outcome, TagOutcome, WindowSummary,
};

const ENVIRONMENTS: &str = "environments:\n  prod:\n    namespace: packit-prod\n    mode: windowed\n    schedule: \"0 2 * * 2\"\nnotifications: {slack: {urlFromEnv: CHAT_URL}, sentry: {dsnFromEnv: SENTRY_DSN}}\n";
const WINDOW_TAGS: usize = 60;

#[derive(Clone, Copy)]
enum Receiver {
    None,
    Answers,
    Hangs,
    Refuses,
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sends = if quick { 5_000 } else { 50_000 };
    let windows = if quick { 50 } else { 300 };
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(sends, windows))
}

async fn run(sends: usize, windows: usize) -> anyhow::Result<()> {
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "receiver (slack and sentry)", "sends", "median", "p99", "max", "mean"
    );
    let cases: [(&str, Receiver, usize); 5] = [
        ("none configured", Receiver::None, 100),
        ("answers at once", Receiver::Answers, 100),
        ("hangs, queue has room", Receiver::Hangs, sends + 1),
        ("hangs, queue full (drops)", Receiver::Hangs, 100),
        ("refuses connections", Receiver::Refuses, 100),
    ];
    for (name, receiver, capacity) in cases {
        let notifier = notifier(receiver, capacity).await?;
        if capacity <= sends && !matches!(receiver, Receiver::None | Receiver::Answers) {
            // Fill the queues first: every measured send is a drop.
            for _ in 0..=capacity {
                notifier.send(import_failed());
            }
        }
        let mut times = Vec::with_capacity(sends);
        let mut notices: Vec<Notice> = (0..sends).map(|_| import_failed()).collect();
        while !notices.is_empty() {
            // Bursts of a window's size; a receiver that answers gets to
            // drain between them, as it would between windows.
            for notice in notices.drain(notices.len().saturating_sub(WINDOW_TAGS)..) {
                let start = Instant::now();
                notifier.send(black_box(notice));
                times.push(start.elapsed());
            }
            if matches!(receiver, Receiver::Answers) {
                notifier.flush(Duration::from_secs(30)).await;
            }
        }
        report(name, &mut times, &notifier);
    }

    println!();
    println!(
        "window start: {WINDOW_TAGS} tags failing (one importFailed each) and the summary, {windows} windows"
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "receiver", "median", "p99", "max"
    );
    for (name, receiver) in [
        ("none configured", Receiver::None),
        ("hangs (queue full)", Receiver::Hangs),
    ] {
        let notifier = notifier(receiver, 100).await?;
        let mut times = Vec::with_capacity(windows);
        for _ in 0..windows {
            let start = Instant::now();
            let mut tags = Vec::with_capacity(WINDOW_TAGS);
            for i in 0..WINDOW_TAGS {
                let stream = format!("stream-{i}");
                notifier.send(Notice::ImportFailed(ImportFailed {
                    stream: stream.clone(),
                    ..failed_fields()
                }));
                tags.push(TagOutcome {
                    stream,
                    tag: "prod".into(),
                    outcome: Outcome::Failed {
                        reason: "registry answered NotFound".into(),
                    },
                });
            }
            notifier.send(Notice::WindowSummary(WindowSummary {
                env: "prod".into(),
                window_start: Utc::now(),
                window_end: Utc::now(),
                tags,
            }));
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{:<34} {:>9} {:>9} {:>9}   (dropped {})",
            name,
            show(percentile(&times, 50.0)),
            show(percentile(&times, 99.0)),
            show(*times.last().unwrap()),
            notifier.stats().dropped
        );
    }
    Ok(())
}

fn failed_fields() -> ImportFailed {
    ImportFailed {
        env: "prod".into(),
        stream: "packit-worker".into(),
        tag: "prod".into(),
        source: "quay.io/packit/worker:prod".into(),
        reason: "Forbidden: pull secret rejected".into(),
        attempts: 2,
        next_attempt: None,
    }
}

fn import_failed() -> Notice {
    Notice::ImportFailed(failed_fields())
}

async fn notifier(receiver: Receiver, capacity: usize) -> anyhow::Result<Notifier> {
    let base = match receiver {
        Receiver::None => return Ok(Notifier::disabled()),
        Receiver::Answers => serve(false).await?,
        Receiver::Hangs => serve(true).await?,
        Receiver::Refuses => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            listener.local_addr()?.to_string()
        }
    };
    let config = config::parse(ENVIRONMENTS, Utc::now())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .config;
    let secrets = [
        ("CHAT_URL", format!("http://{base}/hooks/bench")),
        ("SENTRY_DSN", format!("http://key@{base}/1")),
    ];
    Notifier::from_config(
        &config,
        |var| {
            secrets
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.clone())
        },
        DeliveryOptions {
            queue_capacity: capacity,
            ..DeliveryOptions::default()
        },
        Some(Arc::new(Metrics::new())),
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// A local receiver; `hang`: accept every request and never answer.
async fn serve(hang: bool) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move || async move {
        if hang {
            std::future::pending::<()>().await;
        }
        StatusCode::OK
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i]
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} us", ns as f64 / 1000.0)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn report(name: &str, times: &mut [Duration], notifier: &Notifier) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let stats = notifier.stats();
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>9}   (sent {}, failed {}, dropped {})",
        name,
        times.len(),
        show(percentile(times, 50.0)),
        show(percentile(times, 99.0)),
        show(*times.last().unwrap()),
        show(mean),
        stats.sent,
        stats.failed,
        stats.dropped
    );
}
