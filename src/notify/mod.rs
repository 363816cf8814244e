//! Notifications where the team reads them: a Slack-compatible chat webhook
//! and Sentry.
//!
//! Callers hold a [`Notifier`] (cheap to clone) and call [`Notifier::send`]
//! with a [`Notice`]. `send` only puts the notice in each interested
//! receiver's bounded queue and returns: a worker task per receiver does the
//! HTTP, with a timeout per attempt and retries with backoff. A full queue
//! drops the notice; drops and failed deliveries are counted in
//! `image_import_scheduler_notifications_total{receiver,result}`. Secrets (the
//! webhook URL, the DSN) come from environment variables named in the
//! configuration and are never logged: only a receiver's scheme and host are.

mod delivery;
pub mod notice;
pub mod render;
pub mod sentry;
pub mod slack;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

pub use self::delivery::{endpoint, Delivery, DeliveryOptions, Target};
/// The HTTP client of notifications, shared with the alerts gate: one TLS stack.
pub(crate) use self::delivery::{http_client, HttpClient};
use self::delivery::{Counts, Shared};
pub use self::notice::{
    ConfigRejected, Frozen, ImportFailed, Kind, Notice, Outcome, RolledBack, RolloutFailed,
    TagFailure, TagOutcome, Unfrozen, WindowMissed, WindowSummary,
};
pub use crate::config::notifications::Notifications;
use crate::config::{Config, FieldError};
use crate::metrics::Metrics;

/// Sends notices to the configured receivers without ever waiting for them.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<Queue>,
    /// Receivers of notices about no environment, and of environments
    /// without their own.
    global: Vec<Route>,
    envs: BTreeMap<String, Vec<Route>>,
    shared: Arc<Shared>,
}

struct Queue {
    target: Target,
    secret_env: String,
    tx: mpsc::Sender<Arc<Notice>>,
    /// Set at a drop that was logged; the worker clears it when it finishes
    /// a delivery. A receiver that hangs costs one log line per delivery
    /// timeout, not one per notice (the metric counts every drop).
    dropping: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Route {
    queue: usize,
    kinds: BTreeSet<Kind>,
}

/// What happened to the notices sent so far, over every receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl Notifier {
    /// A notifier with no receivers: `send` does nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                queues: Vec::new(),
                global: Vec::new(),
                envs: BTreeMap::new(),
                shared: Arc::new(Shared {
                    counts: Counts::default(),
                    metrics: None,
                    pending: Default::default(),
                    idle: Notify::new(),
                }),
            }),
        }
    }

    /// Builds the receivers a configuration names, reading each secret with
    /// `lookup` (the process environment in the daemon), and starts one
    /// worker task per distinct receiver. Must run inside a Tokio runtime.
    ///
    /// Errors name the field and the variable (never its value): a variable
    /// that is unset or empty, a URL or DSN that does not parse.
    pub fn from_config(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
        options: DeliveryOptions,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Notifier, Vec<FieldError>> {
        let mut builder = Builder {
            lookup: &lookup,
            receivers: Vec::new(),
            by_secret: BTreeMap::new(),
            errors: Vec::new(),
        };
        let global = builder.routes("notifications", &config.notifications);
        let mut envs = BTreeMap::new();
        for (name, env) in &config.environments {
            let path = format!("environments.{name}.notifications");
            let mut routes = builder.routes(&path, &env.notifications);
            // Receivers the environment does not replace come from the top level.
            if env.notifications.slack.is_none() {
                routes.extend(global.iter().filter(|r| builder.is(r, "slack")).cloned());
            }
            if env.notifications.sentry.is_none() {
                routes.extend(global.iter().filter(|r| builder.is(r, "sentry")).cloned());
            }
            envs.insert(name.clone(), routes);
        }
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        let shared = Arc::new(Shared {
            counts: Counts::default(),
            metrics,
            pending: Default::default(),
            idle: Notify::new(),
        });
        let client = (!builder.receivers.is_empty()).then(delivery::http_client);
        let mut queues = Vec::new();
        for (target, secret_env) in builder.receivers {
            let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
            let dropping = Arc::new(AtomicBool::new(false));
            tokio::spawn(delivery::worker(
                target.clone(),
                rx,
                client.clone().expect("built when there are receivers"),
                options.clone(),
                shared.clone(),
                dropping.clone(),
            ));
            queues.push(Queue {
                target,
                secret_env,
                tx,
                dropping,
            });
        }
        Ok(Notifier {
            inner: Arc::new(Inner {
                queues,
                global,
                envs,
                shared,
            }),
        })
    }

    /// Queues `notice` for every receiver that wants it and returns at once.
    /// A receiver whose queue is full loses it (counted as dropped).
    pub fn send(&self, notice: Notice) {
        let inner = &*self.inner;
        let routes = notice
            .env()
            .and_then(|env| inner.envs.get(env))
            .unwrap_or(&inner.global);
        let kind = notice.kind();
        let mut wanted = routes.iter().filter(|r| r.kinds.contains(&kind)).peekable();
        if wanted.peek().is_none() {
            return;
        }
        let notice = Arc::new(notice);
        for route in wanted {
            let queue = &inner.queues[route.queue];
            inner.shared.pending.fetch_add(1, Ordering::AcqRel);
            if queue.tx.try_send(notice.clone()).is_err() {
                inner.shared.pending.fetch_sub(1, Ordering::AcqRel);
                inner.shared.record(queue.target.name(), Delivery::Dropped);
                if !queue.dropping.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        receiver = queue.target.name(),
                        endpoint = %endpoint_of(&queue.target),
                        kind = kind.name(),
                        env = notice.env().unwrap_or(""),
                        "notification dropped: the receiver is not keeping up; \
                         further drops are only counted until it delivers again"
                    );
                }
            }
        }
    }

    /// Waits until every queued notice is delivered or given up, at most
    /// `within`; true if all were. For shutdown and tests.
    pub async fn flush(&self, within: Duration) -> bool {
        let shared = &self.inner.shared;
        tokio::time::timeout(within, async {
            loop {
                let idle = shared.idle.notified();
                if shared.pending.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }

    pub fn stats(&self) -> Stats {
        let counts = &self.inner.shared.counts;
        Stats {
            sent: counts.sent.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
            dropped: counts.dropped.load(Ordering::Relaxed),
        }
    }

    /// True when no receiver is configured.
    pub fn is_disabled(&self) -> bool {
        self.inner.queues.is_empty()
    }
}

fn endpoint_of(target: &Target) -> String {
    match target {
        Target::Slack(hook) => endpoint(&hook.url),
        Target::Sentry(dsn) => endpoint(&dsn.url),
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let receivers: Vec<String> = self
            .inner
            .queues
            .iter()
            .map(|q| {
                format!(
                    "{} from ${} at {}",
                    q.target.name(),
                    q.secret_env,
                    endpoint_of(&q.target)
                )
            })
            .collect();
        f.debug_struct("Notifier")
            .field("receivers", &receivers)
            .finish_non_exhaustive()
    }
}

struct Builder<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    receivers: Vec<(Target, String)>,
    /// One worker per receiver kind and variable, however many
    /// environments name it.
    by_secret: BTreeMap<(&'static str, String), usize>,
    errors: Vec<FieldError>,
}

impl Builder<'_> {
    fn is(&self, route: &Route, name: &str) -> bool {
        self.receivers[route.queue].0.name() == name
    }

    fn routes(&mut self, path: &str, notifications: &Notifications) -> Vec<Route> {
        let mut routes = Vec::new();
        let receivers = [
            ("slack", "urlFromEnv", &notifications.slack),
            ("sentry", "dsnFromEnv", &notifications.sentry),
        ];
        for (name, key, receiver) in receivers {
            let Some(receiver) = receiver else { continue };
            let field = format!("{path}.{name}.{key}");
            if let Some(queue) = self.queue(name, &receiver.secret_env, &field) {
                routes.push(Route {
                    queue,
                    kinds: receiver.events.clone(),
                });
            }
        }
        routes
    }

    fn queue(&mut self, name: &'static str, var: &str, field: &str) -> Option<usize> {
        if let Some(&index) = self.by_secret.get(&(name, var.to_string())) {
            return Some(index);
        }
        let value = (self.lookup)(var).filter(|v| !v.trim().is_empty());
        let Some(value) = value else {
            self.errors.push(FieldError {
                path: field.to_string(),
                message: format!("environment variable ${var} is not set or empty"),
                hint: Some(format!(
                    "set it in the Deployment from a Secret: env: [{{name: {var}, valueFrom: {{secretKeyRef: {{name: ..., key: ...}}}}}}]"
                )),
            });
            return None;
        };
        let target = match name {
            "slack" => slack::SlackWebhook::new(&value, var).map(Target::Slack),
            _ => sentry::SentryDsn::new(&value, var).map(Target::Sentry),
        };
        match target {
            Ok(target) => {
                self.receivers.push((target, var.to_string()));
                let index = self.receivers.len() - 1;
                self.by_secret.insert((name, var.to_string()), index);
                Some(index)
            }
            Err(message) => {
                self.errors.push(FieldError {
                    path: field.to_string(),
                    message,
                    hint: None,
                });
                None
            }
        }
    }
}
