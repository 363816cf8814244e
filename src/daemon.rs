//! `import-scheduler run`: the long-running process.
//!
//! It loads the configuration (a ConfigMap watched through the API, or a file
//! for local runs), serves metrics, health and the push hook, takes part in
//! leader election, and runs one loop per environment while it leads. A bad
//! configuration edit keeps the last good one running; SIGTERM stops new work,
//! lets imports in flight finish within the grace period, releases the lease
//! and exits 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::SharedClock;
use crate::clusters::Clusters;
use crate::config::{self, Config, ConfigErrors, Environment, Settings};
pub use crate::config_source::ConfigSource;
use crate::config_source::{self, config_text, configmap_ref, LoadError};
use crate::events::{action, reason, EventSink, EventType};
use crate::hook_event::HookEvent;
use crate::http::{self, Health, HookNotes, HookSettings, HttpState};
use crate::leader::{self, LeaderOptions};
use crate::metrics::Metrics;
use crate::notify::{ConfigRejected, DeliveryOptions, Notice, Notifier};
use crate::reachability::ApiReachability;
use crate::report::Reporter;
use crate::scheduler::Runtime;
use crate::state::StateStore;
use crate::supervisor::{self, supervise};

/// Everything `run` needs, resolved by the CLI.
pub struct Options {
    pub settings: Settings,
    pub source: ConfigSource,
    pub kubeconfig: Option<PathBuf>,
    pub clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{source_desc}: {errors}")]
    InvalidConfig {
        source_desc: String,
        errors: ConfigErrors,
    },
    #[error("cannot read the configuration from {source_desc}: {message}")]
    ConfigUnavailable {
        source_desc: String,
        message: String,
    },
    #[error("cannot connect to the cluster: {0}")]
    Client(#[from] crate::kubeclient::ClientError),
    #[error("{0}")]
    Settings(#[from] config::SettingsError),
    #[error("{0}")]
    Http(#[from] http::HttpError),
}

impl From<LoadError> for DaemonError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid {
                source_desc,
                errors,
            } => DaemonError::InvalidConfig {
                source_desc,
                errors,
            },
            LoadError::Missing {
                source_desc,
                message,
            } => DaemonError::ConfigUnavailable {
                source_desc,
                message,
            },
            LoadError::Api {
                source_desc, error, ..
            } => DaemonError::ConfigUnavailable {
                source_desc,
                message: error.to_string(),
            },
            LoadError::NoClient { source_desc } => DaemonError::ConfigUnavailable {
                source_desc,
                message: "no cluster connection".into(),
            },
        }
    }
}

impl DaemonError {
    /// Bad input (configuration, settings) exits 2 like `check`; the rest 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::InvalidConfig { .. } | DaemonError::Settings(_) => 2,
            _ => 1,
        }
    }
}

/// Runs until SIGTERM/SIGINT (or `shutdown` firing).
pub async fn run(opts: Options, shutdown: CancellationToken) -> Result<(), DaemonError> {
    let settings = opts.settings;
    let grace = settings.grace()?;
    let namespace = settings.namespace();
    let metrics = Arc::new(Metrics::new());
    // A file is validated before connecting, so a bad one fails fast with exit 2.
    if let ConfigSource::File(_) = &opts.source {
        config_source::load(&opts.source, None).await?;
    }
    let reachability = Arc::new(ApiReachability::new(settings.api_unreachable_after()?));
    let client = crate::kubeclient::client_reporting(
        opts.kubeconfig.as_deref(),
        Some(metrics.clone()),
        reachability.clone(),
    )
    .await?;
    let fetched = config_source::fetch(&opts.source, Some(&client)).await?;
    let loaded = config_source::parse(&opts.source, &fetched.text)?;
    let (config, warnings) = (loaded.config, loaded.warnings);
    for w in &warnings {
        warn!(field = %w.path, "configuration warning: {w}");
    }
    // Receivers whose secret is missing make the configuration invalid:
    // nobody would hear about the windows it schedules.
    let notifier =
        build_notifier(&config, &metrics).map_err(|errors| DaemonError::InvalidConfig {
            source_desc: opts.source.to_string(),
            errors,
        })?;
    metrics.record_config_reload(true, Utc::now());
    info!(source = %opts.source, environments = config.environments.len(), "configuration loaded");

    // Liveness is the loop turning; readiness also follows the API server.
    let health = Health::new(Duration::from_secs(120), Some(reachability.clone()));
    health.set_config_loaded(true);
    // Configuration updates, validated; the last good one stays in force.
    let (config_tx, mut config_rx) = watch::channel(Arc::new(config));
    let (hook_tx, mut hook_rx) = mpsc::channel::<HookEvent>(256);
    let hook_settings = HookSettings {
        secret: settings
            .hook_secret
            .clone()
            .filter(|s| !s.trim().is_empty()),
        trusted_proxies: settings.trusted_proxies()?,
        ..HookSettings::default()
    };
    let hook_notes: HookNotes = {
        let config = config_tx.subscribe();
        let clock = opts.clock.clone();
        Arc::new(move |event: &HookEvent| {
            crate::decide::hook_notes(&config.borrow(), &event.updated_tags, clock.now())
        })
    };
    let router = http::router(
        HttpState::new(metrics.clone(), health.clone())
            .with_hook(hook_settings, hook_tx)
            .with_hook_notes(hook_notes),
    );
    let addr: SocketAddr =
        settings
            .listen_addr
            .parse()
            .map_err(|_| config::SettingsError::Invalid {
                field: "LISTEN_ADDR".into(),
                message: format!("`{}` is not an address", settings.listen_addr),
            })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| http::HttpError::Bind { addr, source })?;
    let http_stop = CancellationToken::new();
    let http_task = tokio::spawn(http::serve_listener(listener, router, http_stop.clone()));

    // One identity for the Lease and the Events' reportingInstance.
    let identity = settings
        .pod_name
        .clone()
        .unwrap_or_else(leader::default_identity);
    let leader_stop = CancellationToken::new();
    let events = EventSink::new(client.clone(), &identity, &namespace);
    let reporter = Reporter::new(
        metrics.clone(),
        events.clone(),
        StateStore::new(client.clone(), &namespace, &settings.status_configmap),
    );
    reporter.set_notifier(notifier);
    // Outlives the environment loops: a loop restarted by a configuration
    // change finds the checks still running and does not start them twice.
    let rollouts = crate::rollout::tracker::Rollouts::default();

    let clusters = Arc::new(Clusters::new(
        client.clone(),
        &namespace,
        Some(metrics.clone()),
        reachability,
    ));

    let config_task = tokio::spawn(watch_config(
        opts.source.clone(),
        client.clone(),
        config_tx,
        metrics.clone(),
        events.clone(),
        reporter.clone(),
        shutdown.clone(),
    ));

    let (mut leading_rx, leader_task) = leader::spawn(
        client.clone(),
        &namespace,
        &settings.lease_name,
        &identity,
        LeaderOptions {
            metrics: Some(metrics.clone()),
            ..LeaderOptions::default()
        },
        // Its own token: the lease is released only after imports in flight
        // finished, so a standby cannot start importing beside them.
        leader_stop.clone(),
    );

    let (hooks, _) = broadcast::channel::<HookEvent>(256);
    let clock = opts.clock.clone();
    let mut envs = Envs::default();
    let mut term = CancellationToken::new();
    let mut leading = false;
    let mut running_import: Option<config::ImportSettings> = None;
    info!(identity = %identity, namespace = %namespace, "started; waiting for leadership");

    loop {
        health.heartbeat();
        let now_leading = *leading_rx.borrow_and_update();
        if now_leading != leading {
            leading = now_leading;
            metrics.set_leader(leading);
            if leading {
                info!(identity = %identity, decision = "leading", "this replica imports now");
                term = CancellationToken::new();
            } else {
                warn!(identity = %identity, decision = "standing by", "leadership lost or not held: no new import starts");
                term.cancel();
                envs.stop_all(grace).await;
            }
        }
        if leading {
            let config = config_rx.borrow_and_update().clone();
            // Running loops keep the importer they started with: restart
            // them when its settings change.
            if running_import.as_ref().is_some_and(|i| *i != config.import) {
                info!(
                    decision = "import settings changed",
                    "restarting the environment loops with the new import settings"
                );
                envs.stop_all(grace).await;
            }
            running_import = Some(config.import.clone());
            clusters.retain(config.environments.values());
            let shared = supervisor::Shared {
                clusters: clusters.clone(),
                import: config.import.clone(),
                runtime: Runtime {
                    importer: Arc::new(crate::importer::Importer::new(
                        client.clone(),
                        crate::clusters::importer_options(&config.import),
                    )),
                    reporter: reporter.clone(),
                    clock: clock.clone(),
                    stop: term.child_token(),
                    hooks: hooks.clone(),
                    concurrency: config.import.concurrency,
                    rollouts: rollouts.clone(),
                },
                metrics: metrics.clone(),
                events: events.clone(),
                config_ref: fetched.configmap.clone(),
                identity: identity.clone(),
            };
            envs.sync(&config, &shared, &metrics, grace).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = leading_rx.changed() => {
                if changed.is_err() {
                    // The elector ended: without it nobody may import.
                    leading_rx = watch::channel(false).1;
                }
            }
            changed = config_rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(event) = hook_rx.recv() => {
                if leading {
                    let _ = hooks.send(event);
                } else {
                    info!(repository = %event.docker_url, decision = "push hook ignored", "not the leader; the leader's poll picks the push up");
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }

    info!(grace = ?grace, decision = "shutting down", "no new import starts; waiting for imports in flight");
    term.cancel();
    envs.stop_all(grace).await;
    metrics.set_leader(false);
    leader_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), leader_task).await;
    config_task.abort();
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    if !reporter.notifier().flush(grace).await {
        warn!(grace = ?grace, "notifications still queued after the shutdown grace period; dropping them");
    }
    info!("stopped");
    Ok(())
}

/// The running environment loops, by name.
#[derive(Default)]
struct Envs {
    running: BTreeMap<String, EnvTask>,
}

struct EnvTask {
    env: watch::Sender<Arc<Environment>>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Envs {
    /// Starts loops for new environments, hands changed ones their new
    /// configuration, and stops removed ones.
    async fn sync(
        &mut self,
        config: &Config,
        shared: &supervisor::Shared,
        metrics: &Metrics,
        grace: Duration,
    ) {
        let removed: Vec<String> = self
            .running
            .keys()
            .filter(|k| !config.environments.contains_key(*k))
            .cloned()
            .collect();
        for name in removed {
            if let Some(task) = self.running.remove(&name) {
                info!(env = %name, decision = "environment removed", "stopping its loop");
                task.stop.cancel();
                let _ = tokio::time::timeout(grace, task.handle).await;
                metrics.forget_environment(&name);
            }
        }
        for (name, env) in &config.environments {
            let env = Arc::new(env.clone());
            match self.running.get(name) {
                Some(task) if !task.handle.is_finished() => {
                    task.env.send_if_modified(|cur| {
                        if **cur == *env {
                            false
                        } else {
                            *cur = env.clone();
                            true
                        }
                    });
                }
                _ => {
                    let stop = shared.runtime.stop.child_token();
                    let (tx, rx) = watch::channel(env);
                    let handle = tokio::spawn(supervise(rx, shared.clone(), stop.clone()));
                    self.running.insert(
                        name.clone(),
                        EnvTask {
                            env: tx,
                            stop,
                            handle,
                        },
                    );
                }
            }
        }
    }

    /// Stops every loop: no new import starts; imports in flight get `grace`.
    async fn stop_all(&mut self, grace: Duration) {
        for task in self.running.values() {
            task.stop.cancel();
        }
        // A grace of centuries means "wait", not an overflow.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(grace)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        for (name, task) in std::mem::take(&mut self.running) {
            if tokio::time::timeout_at(deadline, task.handle)
                .await
                .is_err()
            {
                error!(env = %name, "imports still running after the shutdown grace period; abandoning them");
            }
        }
    }
}

/// The notifier a configuration names, its secrets read from the process
/// environment.
fn build_notifier(config: &Config, metrics: &Arc<Metrics>) -> Result<Notifier, ConfigErrors> {
    Notifier::from_config(
        config,
        |v| std::env::var(v).ok(),
        DeliveryOptions::default(),
        Some(metrics.clone()),
    )
    .map_err(ConfigErrors)
}

/// The problems of a rejected configuration, one line each, without the
/// summary line.
fn error_lines(message: &str) -> Vec<String> {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("invalid configuration:"))
        .map(String::from)
        .collect()
}

/// Reads and validates the configuration once.
pub async fn load(
    source: &ConfigSource,
    client: Option<&Client>,
) -> Result<(Config, Vec<config::FieldError>), DaemonError> {
    let loaded = config_source::load(source, client).await?;
    Ok((loaded.config, loaded.warnings))
}

/// Applies configuration changes as they come; an invalid one is reported
/// and the last good one stays in force.
async fn watch_config(
    source: ConfigSource,
    client: Client,
    tx: watch::Sender<Arc<Config>>,
    metrics: Arc<Metrics>,
    events: EventSink,
    reporter: Reporter,
    shutdown: CancellationToken,
) {
    let apply = |text: Result<String, String>, cm: Option<&ConfigMap>| {
        let now = Utc::now();
        let result = text
            .and_then(|t| config::parse(&t, now).map_err(|e| e.to_string()))
            .and_then(|loaded| {
                // An unchanged configuration keeps its notifier (and its queues).
                if **tx.borrow() == loaded.config {
                    return Ok((loaded, None));
                }
                let notifier =
                    build_notifier(&loaded.config, &metrics).map_err(|e| e.to_string())?;
                Ok((loaded, Some(notifier)))
            });
        match result {
            Ok((loaded, notifier)) => {
                metrics.record_config_reload(true, now);
                let changed = notifier.is_some();
                if let Some(notifier) = notifier {
                    reporter.set_notifier(notifier);
                    tx.send_replace(Arc::new(loaded.config.clone()));
                }
                if changed {
                    info!(source = %source, decision = "configuration reloaded", environments = loaded.config.environments.len(), "new configuration in force");
                    if let Some(cm) = cm {
                        let events = events.clone();
                        let cm = cm.clone();
                        tokio::spawn(async move {
                            events
                                .publish(
                                    &configmap_ref(&cm),
                                    EventType::Normal,
                                    reason::CONFIG_RELOADED,
                                    action::RELOAD,
                                    "configuration applied".into(),
                                )
                                .await
                        });
                    }
                }
                for w in &loaded.warnings {
                    warn!(field = %w.path, "configuration warning: {w}");
                }
            }
            Err(message) => {
                metrics.record_config_reload(false, now);
                error!(source = %source, decision = "configuration rejected", error = %message, "invalid configuration; the previous configuration stays in force");
                // Told through the receivers of the configuration in force.
                reporter.notify(Notice::ConfigRejected(ConfigRejected {
                    origin: match cm {
                        Some(cm) => format!(
                            "ConfigMap {}/{}",
                            cm.metadata.namespace.as_deref().unwrap_or_default(),
                            cm.metadata.name.as_deref().unwrap_or_default()
                        ),
                        None => source.to_string(),
                    },
                    errors: error_lines(&message),
                }));
                if let Some(cm) = cm {
                    let events = events.clone();
                    let cm = cm.clone();
                    let note = format!(
                        "configuration rejected, the previous one stays in force: {message}"
                    );
                    tokio::spawn(async move {
                        events
                            .publish(
                                &configmap_ref(&cm),
                                EventType::Warning,
                                reason::CONFIG_INVALID,
                                action::RELOAD,
                                note,
                            )
                            .await
                    });
                }
            }
        }
    };

    match source.clone() {
        ConfigSource::File(path) => {
            let mut last = std::fs::read_to_string(&path).ok();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                let now = std::fs::read_to_string(&path);
                let text = now.as_ref().ok().cloned();
                if text != last {
                    last = text;
                    apply(
                        now.map_err(|e| format!("cannot read {}: {e}", path.display())),
                        None,
                    );
                }
            }
        }
        ConfigSource::ConfigMap {
            namespace,
            name,
            key,
        } => {
            let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut stream = std::pin::pin!(watcher::watcher(api, cfg).default_backoff());
            let mut last: Option<String> = None;
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = stream.next() => next,
                };
                match next {
                    None => return,
                    Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => {
                        let text = config_text(&cm, &key);
                        let key_now = text.as_ref().ok().cloned();
                        if key_now.is_some() && key_now == last {
                            continue;
                        }
                        last = key_now;
                        apply(text, Some(&cm));
                    }
                    Some(Ok(watcher::Event::Delete(_))) => {
                        warn!(configmap = %name, namespace = %namespace, decision = "configuration deleted", "the ConfigMap was deleted; the last configuration stays in force");
                        last = None;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!(configmap = %name, error = %e, "watching the configuration failed; retrying");
                    }
                }
            }
        }
    }
}
