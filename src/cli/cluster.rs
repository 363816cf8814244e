//! What the cluster-facing commands (`status`, `import`, `history`, `pin`,
//! `restore`) share: the common options, where the configuration comes from,
//! the client, looking up an environment and a stream, and turning API
//! failures into messages that say what to do.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde::Serialize;

use super::{Output, EXIT_FAILED, EXIT_USAGE};
use std::sync::Arc;

use crate::clusters::{ClusterError, Clusters, Connection};
use crate::config::{Config, ConfigErrors, Environment, Settings};
pub use crate::config_source::ConfigSource as Source;
use crate::config_source::{self, LoadError};
use crate::events::{image_stream_ref, EventType};
use crate::importer::{Discovery, ErrorKind, ImportError, Importer, Target, TargetSelector};
use crate::kubeclient::{self, ClientError};
use crate::reachability::ApiReachability;

/// `reportingInstance` of the Events the commands publish.
pub const EVENT_INSTANCE: &str = "import-scheduler-cli";

/// Options every cluster-facing command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Configuration file (the ConfigMap's config.yaml) instead of the ConfigMap in the cluster.
    #[arg(long, value_name = "FILE", conflicts_with = "configmap")]
    pub config: Option<PathBuf>,
    /// ConfigMap holding the configuration [default: image-import-scheduler in the
    /// kubeconfig context's namespace; the name can be changed with IMPORT_SCHEDULER_CONFIGMAP].
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub configmap: Option<String>,
    /// Kubeconfig to use [default: KUBECONFIG, ~/.kube/config, or the pod's service account].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of the daemon's cluster (configuration, status) [default: the
    /// current context]. An environment on another cluster is reached through its
    /// cluster.context, else through its kubeconfig Secret.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Output format: text for people, json (one document on stdout) for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// A failure of a cluster-facing command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage: a wrong name, a wrong option combination.
    #[error("{0}")]
    Usage(String),
    /// The environment is not in the configuration.
    #[error(
        "unknown environment {name:?} in {source_desc}; known environments: {}",
        list(known)
    )]
    UnknownEnvironment {
        name: String,
        source_desc: String,
        known: Vec<String>,
    },
    /// The stream is not one of the environment's.
    #[error("{0}")]
    UnknownStream(Box<UnknownStream>),
    /// The configuration is invalid.
    #[error("{source_desc}: {errors}")]
    InvalidConfig {
        source_desc: String,
        errors: ConfigErrors,
    },
    /// The configuration cannot be found or read.
    #[error("cannot read the configuration from {source_desc}: {message}")]
    ConfigUnavailable {
        source_desc: String,
        message: String,
        /// Whether the user named something that is not there (exit 2) rather
        /// than the cluster failing (exit 1).
        usage: bool,
    },
    /// No client could be built.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The account lacks a permission.
    #[error("your account cannot {verb} {resource} in namespace {namespace}; ask a cluster administrator for a Role granting {verb} on {resource} there (e.g. `oc adm policy add-role-to-user {role} <you> -n {namespace}`)")]
    Forbidden {
        verb: String,
        resource: String,
        namespace: String,
        role: &'static str,
    },
    /// The credentials were rejected.
    #[error("the cluster rejected your credentials: {detail}; log in again (`oc login`) or check the token of the kubeconfig's current user")]
    Unauthorized { detail: String },
    /// The API server could not be reached.
    #[error("cannot reach the cluster{}: {detail}; check the network or VPN and the kubeconfig's server address", server.as_deref().map(|s| format!(" at {s}")).unwrap_or_default())]
    Unreachable {
        server: Option<String>,
        detail: String,
    },
    /// Any other API failure.
    #[error("{0}")]
    Api(String),
    /// An image API call failed (the message says where and what to do).
    #[error("{0}")]
    Import(ImportError),
    /// The async runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// A stream name that is not one of an environment's tags.
#[derive(Debug)]
pub struct UnknownStream {
    pub env: String,
    pub namespace: String,
    pub tag: String,
    pub stream: String,
    /// The environment's streams with the tag.
    pub available: Vec<String>,
    /// Why the stream is not one of them, when that could be told.
    pub note: Option<String>,
}

impl fmt::Display for UnknownStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UnknownStream {
            env,
            namespace,
            tag,
            stream,
            available,
            note,
        } = self;
        write!(
            f,
            "environment {env} has no stream {stream:?} with tag {tag} in namespace {namespace}; streams of {env} with tag {tag}: {}",
            list(available)
        )?;
        if let Some(note) = note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::UnknownEnvironment { .. }
            | CliError::UnknownStream(_)
            | CliError::InvalidConfig { .. } => EXIT_USAGE,
            // A kubeconfig named on the command line that cannot be used.
            CliError::Client(
                ClientError::Kubeconfig { .. }
                | ClientError::NoContext { .. }
                | ClientError::NoKubeconfig { .. },
            ) => EXIT_USAGE,
            CliError::ConfigUnavailable { usage, .. } => {
                if *usage {
                    EXIT_USAGE
                } else {
                    EXIT_FAILED
                }
            }
            _ => EXIT_FAILED,
        }
    }

    /// Classifies a failed call (not to the image API) made to `verb` `resource` in `namespace`.
    pub fn from_kube(
        error: &kube::Error,
        verb: &str,
        resource: &str,
        namespace: &str,
        server: Option<&str>,
    ) -> CliError {
        match error {
            kube::Error::Api(status) if status.code == 403 => {
                CliError::forbidden(verb, resource, namespace)
            }
            kube::Error::Api(status) if status.code == 401 => CliError::Unauthorized {
                detail: format!(
                    "{verb} {resource} in namespace {namespace}: {}",
                    status.message
                ),
            },
            kube::Error::Api(status) => CliError::Api(format!(
                "cannot {verb} {resource} in namespace {namespace}: {}",
                if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                }
            )),
            kube::Error::Auth(_) => CliError::Unauthorized {
                detail: error_chain(error),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => CliError::Unreachable {
                server: server.map(str::to_owned),
                detail: format!(
                    "{verb} {resource} in namespace {namespace}: {}",
                    error_chain(error)
                ),
            },
            other => CliError::Api(format!(
                "cannot {verb} {resource} in namespace {namespace}: {}",
                error_chain(other)
            )),
        }
    }

    /// Classifies a failed image API call by its kind.
    pub fn from_import(error: ImportError, server: Option<&str>) -> CliError {
        match error.kind() {
            ErrorKind::Forbidden => match error.denied_call() {
                Some((operation, namespace)) => CliError::forbidden(
                    operation.verb(),
                    &format!("{}.image.openshift.io", operation.resource()),
                    namespace,
                ),
                None => CliError::Import(error),
            },
            ErrorKind::Unauthorized => CliError::Unauthorized {
                detail: error.to_string(),
            },
            ErrorKind::Unreachable | ErrorKind::Timeout => CliError::Unreachable {
                server: server.map(str::to_owned),
                detail: error.to_string(),
            },
            _ => CliError::Import(error),
        }
    }

    /// The account may not `verb` `resource` in `namespace`.
    pub fn forbidden(verb: &str, resource: &str, namespace: &str) -> CliError {
        CliError::Forbidden {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            role: role_for(verb),
        }
    }

    /// Prints the error for a person (and, with JSON output, as the one
    /// document on stdout) and returns the exit code.
    pub fn report(&self, output: Output) -> u8 {
        eprintln!("error: {self}");
        if output == Output::Json {
            print_json(&ErrorDocument {
                error: self.to_string(),
                exit_code: self.exit_code(),
            });
        }
        self.exit_code()
    }
}

impl CliError {
    /// Classifies a configuration that could not be loaded; `server` is the
    /// daemon's cluster.
    fn from_load(error: LoadError, server: Option<&str>) -> CliError {
        match error {
            LoadError::Invalid {
                source_desc,
                errors,
            } => CliError::InvalidConfig {
                source_desc,
                errors,
            },
            LoadError::Missing {
                source_desc,
                message,
            } => CliError::ConfigUnavailable {
                source_desc,
                message,
                usage: true,
            },
            LoadError::Api {
                namespace, error, ..
            } => CliError::from_kube(&error, "get", "configmaps", &namespace, server),
            LoadError::NoClient { source_desc } => CliError::ConfigUnavailable {
                source_desc,
                message: "no cluster connection".to_owned(),
                usage: false,
            },
        }
    }

    /// Classifies a failure to reach environment `env` on its cluster.
    fn from_cluster(error: ClusterError, env: &Environment, namespace: &str) -> CliError {
        let cluster = env.cluster_label();
        let hint = format!(
            "environment {} lives on cluster {cluster}; set its cluster.context to the context of your kubeconfig that reaches it",
            env.name
        );
        match error {
            ClusterError::Client(e) => CliError::Client(e),
            ClusterError::SecretUnreadable { error, name, .. } => {
                match CliError::from_kube(&error, "get", "secrets", namespace, None) {
                    CliError::Forbidden { .. } => CliError::Usage(format!(
                        "{hint} (your account cannot get Secret {namespace}/{name}, which holds the daemon's kubeconfig for it)"
                    )),
                    other => other,
                }
            }
            other => CliError::Usage(format!("{hint}: {other}")),
        }
    }
}

/// The role that carries a verb in a default OpenShift/Kubernetes installation.
fn role_for(verb: &str) -> &'static str {
    match verb {
        "get" | "list" | "watch" => "view",
        _ => "edit",
    }
}

/// An error and its sources on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDocument {
    error: String,
    exit_code: u8,
}

/// Prints `value` as the single JSON document on stdout.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        // Only maps with non-string keys fail, which these documents do not have.
        Err(e) => eprintln!("error: cannot serialise the result as JSON: {e}"),
    }
}

/// Runs one cluster command to its report: prints it as text or JSON, and
/// exits 1 when `failed` says the report records a failure, 0 otherwise.
/// Errors are reported with their own exit code.
pub fn run_report<R: Serialize>(
    output: Output,
    work: impl std::future::Future<Output = Result<R, CliError>>,
    render: impl FnOnce(&R) -> String,
    failed: impl FnOnce(&R) -> bool,
) -> u8 {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e.report(output),
    };
    match runtime.block_on(work) {
        Ok(report) => {
            match output {
                Output::Json => print_json(&report),
                Output::Text => print!("{}", render(&report)),
            }
            if failed(&report) {
                super::EXIT_FAILED
            } else {
                super::EXIT_OK
            }
        }
        Err(e) => e.report(output),
    }
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Parses `--configmap NAMESPACE/NAME`.
pub fn parse_configmap_arg(value: &str) -> Result<(String, String), CliError> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(CliError::Usage(format!(
            "--configmap {value:?}: expected NAMESPACE/NAME, e.g. --configmap packit-prod/image-import-scheduler"
        ))),
    }
}

/// Who is acting and where the cluster is, as far as the kubeconfig tells.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The current context's user (`oc login` names them `user/cluster`; the
    /// part before the `/` is kept).
    pub user: Option<String>,
    /// The current context's cluster server.
    pub server: Option<String>,
}

impl Identity {
    /// Reads `path`, else KUBECONFIG / ~/.kube/config; nothing when none is usable
    /// (in a pod the service account is used and its name is not known here).
    /// `context` picks a context other than the current one.
    pub fn from_kubeconfig(path: Option<&Path>, context: Option<&str>) -> Identity {
        let loaded = match path {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        };
        let Ok(kubeconfig) = loaded else {
            return Identity::default();
        };
        let Some(context) = context
            .or(kubeconfig.current_context.as_deref())
            .and_then(|name| kubeconfig.contexts.iter().find(|c| c.name == name))
            .and_then(|c| c.context.as_ref())
        else {
            return Identity::default();
        };
        let user = context
            .user
            .as_deref()
            .map(|u| u.split('/').next().unwrap_or(u).to_owned())
            .filter(|u| !u.is_empty());
        let server = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone());
        Identity { user, server }
    }

    /// The user's name for Events, or `unknown`.
    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or("unknown")
    }
}

/// A connected command: the daemon's cluster (configuration, status) and
/// the environment's cluster (its importer and Events), which may differ.
#[derive(Clone)]
pub struct Session {
    /// The daemon's cluster.
    pub client: Client,
    pub config: Config,
    pub source: Source,
    /// The importer of the environment named to [`Session::connect`] (else
    /// the daemon's cluster's); see [`Session::for_env`].
    pub importer: Arc<Importer>,
    /// Who acts, and the server of the environment's cluster.
    pub identity: Identity,
    /// Where the daemon keeps its status ConfigMap: the configuration
    /// ConfigMap's namespace, else IMPORT_SCHEDULER_NAMESPACE, else the
    /// kubeconfig context's namespace.
    pub daemon_namespace: String,
    /// Name of the daemon's status ConfigMap (IMPORT_SCHEDULER_STATUS_CONFIGMAP).
    pub status_configmap: String,
    /// What reaches the environment's namespace.
    connection: Connection,
    clusters: Arc<Clusters>,
    args: ClusterArgs,
}

impl Session {
    /// Builds the client, loads and validates the configuration, and reaches
    /// the cluster of `env` (when given), which must be an environment of the
    /// configuration; with a configuration file that is checked before
    /// connecting.
    pub async fn connect(args: &ClusterArgs, env: Option<&str>) -> Result<Session, CliError> {
        // Mistakes in the command line and a bad file are reported before
        // anything talks to the cluster.
        let file = match &args.config {
            Some(path) => {
                let source = Source::File(path.clone());
                let loaded = config_source::load(&source, None)
                    .await
                    .map_err(|e| match e {
                        LoadError::Missing {
                            source_desc,
                            message,
                        } => CliError::ConfigUnavailable {
                            source_desc,
                            message: format!("{message} given to --config"),
                            usage: true,
                        },
                        other => CliError::from_load(other, None),
                    })?;
                if let Some(name) = env.filter(|n| !loaded.config.environments.contains_key(*n)) {
                    return Err(CliError::UnknownEnvironment {
                        name: name.to_owned(),
                        source_desc: source.to_string(),
                        known: loaded.config.environments.keys().cloned().collect(),
                    });
                }
                Some((source, loaded))
            }
            None => None,
        };
        let named = match (&file, &args.configmap) {
            (None, Some(value)) => Some(parse_configmap_arg(value)?),
            _ => None,
        };
        let settings = Settings::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
        let kubeconfig = args.kubeconfig.as_deref();
        let identity = Identity::from_kubeconfig(kubeconfig, args.context.as_deref());
        let client = kubeclient::client_in_context(kubeconfig, args.context.as_deref()).await?;
        let (source, loaded) = match file {
            Some(f) => f,
            None => {
                let (namespace, name) = named.unwrap_or_else(|| {
                    (
                        client.default_namespace().to_owned(),
                        settings.configmap.clone(),
                    )
                });
                let source = Source::ConfigMap {
                    namespace,
                    name,
                    key: settings.config_key.clone(),
                };
                let loaded = config_source::load(&source, Some(&client))
                    .await
                    .map_err(|e| CliError::from_load(e, identity.server.as_deref()))?;
                (source, loaded)
            }
        };
        let daemon_namespace = match &source {
            Source::ConfigMap { namespace, .. } => namespace.clone(),
            Source::File(_) => settings
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
        };
        let clusters = Arc::new(
            Clusters::new(
                client.clone(),
                &daemon_namespace,
                None,
                Arc::new(ApiReachability::new(
                    crate::reachability::DEFAULT_UNREACHABLE_AFTER,
                )),
            )
            .with_contexts(args.kubeconfig.clone()),
        );
        let connection = Connection::new(
            crate::config::LOCAL_CLUSTER,
            client.clone(),
            &loaded.config.import,
        );
        let session = Session {
            importer: connection.importer.clone(),
            connection,
            config: loaded.config,
            identity,
            daemon_namespace,
            status_configmap: settings.status_configmap,
            source,
            client,
            clusters,
            args: args.clone(),
        };
        match env {
            Some(name) => {
                let env = session.environment(name)?.clone();
                session.for_env(&env).await
            }
            None => Ok(session),
        }
    }

    /// The same session, reaching `env` where it lives.
    pub async fn for_env(&self, env: &Environment) -> Result<Session, CliError> {
        if env.cluster_label() == self.connection.cluster {
            return Ok(self.clone());
        }
        let connection = self
            .clusters
            .connect(env, &self.config.import)
            .await
            .map_err(|e| CliError::from_cluster(e, env, &self.daemon_namespace))?;
        let context = match &env.cluster {
            Some(cluster) => cluster.context.as_deref(),
            None => self.args.context.as_deref(),
        };
        let identity = match (&env.cluster, context) {
            (Some(_), None) => Identity {
                server: None,
                ..self.identity.clone()
            },
            _ => Identity::from_kubeconfig(self.args.kubeconfig.as_deref(), context),
        };
        Ok(Session {
            importer: connection.importer.clone(),
            connection,
            identity,
            ..self.clone()
        })
    }

    /// The environment `name`, or an error listing the known ones.
    pub fn environment(&self, name: &str) -> Result<&Environment, CliError> {
        self.config
            .environments
            .get(name)
            .ok_or_else(|| CliError::UnknownEnvironment {
                name: name.to_owned(),
                source_desc: self.source.to_string(),
                known: self.config.environments.keys().cloned().collect(),
            })
    }

    /// The environment's tags (streams selected by the configuration that have the tag).
    pub async fn discover(&self, env: &Environment) -> Result<Discovery, CliError> {
        self.importer
            .discover(&TargetSelector::of(env))
            .await
            .map_err(|e| self.import_error(e))
    }

    /// The environment's target `stream`, or a usage error naming the streams that
    /// have the tag.
    pub async fn target(&self, env: &Environment, stream: &str) -> Result<Target, CliError> {
        let discovery = self.discover(env).await?;
        let mut picked = self
            .pick_targets(env, &discovery, &[stream.to_owned()])
            .await?;
        Ok(picked.remove(0))
    }

    /// The targets named in `wanted` (all when empty), in discovery order; a
    /// name that is not a target is a usage error listing the targets.
    pub async fn pick_targets(
        &self,
        env: &Environment,
        discovery: &Discovery,
        wanted: &[String],
    ) -> Result<Vec<Target>, CliError> {
        let known: BTreeSet<&str> = discovery
            .targets
            .iter()
            .map(|t| t.stream.as_str())
            .collect();
        if let Some(missing) = wanted.iter().find(|w| !known.contains(w.as_str())) {
            return Err(CliError::UnknownStream(Box::new(UnknownStream {
                env: env.name.clone(),
                namespace: env.namespace.clone(),
                tag: env.tag.clone(),
                stream: missing.clone(),
                available: known.iter().map(|s| (*s).to_owned()).collect(),
                note: self.why_not_a_target(env, discovery, missing).await,
            })));
        }
        Ok(discovery
            .targets
            .iter()
            .filter(|t| wanted.is_empty() || wanted.iter().any(|w| w == &t.stream))
            .cloned()
            .collect())
    }

    /// Why `stream` is not one of the environment's targets, when that can be told.
    async fn why_not_a_target(
        &self,
        env: &Environment,
        discovery: &Discovery,
        stream: &str,
    ) -> Option<String> {
        if let Some((_, why)) = discovery.skipped.iter().find(|(name, _)| name == stream) {
            return Some(format!("{stream}: {why}"));
        }
        match self.importer.stream(&env.namespace, stream).await {
            Ok(found) if found.spec_tag(&env.tag).is_none() => {
                let tags: Vec<String> = found.spec.tags.iter().map(|t| t.name.clone()).collect();
                Some(format!(
                    "imagestream {}/{stream} exists but has no tag {}; its tags: {}",
                    env.namespace,
                    env.tag,
                    list(&tags)
                ))
            }
            Ok(_) => Some(format!(
                "imagestream {}/{stream} has the tag, but the configuration of environment {} does not select it (imageStreams or labels)",
                env.namespace, env.name
            )),
            Err(e) if e.is_not_found() => Some(format!("there is no imagestream {stream} in namespace {}", env.namespace)),
            Err(_) => None,
        }
    }

    /// Classifies an importer error.
    pub fn import_error(&self, error: ImportError) -> CliError {
        CliError::from_import(error, self.identity.server.as_deref())
    }

    /// Publishes an Event about `namespace/stream` for a manual action. A
    /// failure is a warning: the action itself is done.
    pub async fn event(
        &self,
        target: &Target,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let sink = self.connection.events(EVENT_INSTANCE);
        let object = image_stream_ref(
            &target.namespace,
            &target.stream,
            Some(target.uid.clone()).filter(|u| !u.is_empty()),
        );
        if let Err(e) = sink.try_publish(&object, type_, reason, action, note).await {
            let detail = match CliError::from_kube(
                &e,
                "create",
                "events.events.k8s.io",
                &target.namespace,
                None,
            ) {
                CliError::Forbidden { .. } => format!(
                    "your account cannot create events.events.k8s.io in namespace {}",
                    target.namespace
                ),
                other => other.to_string(),
            };
            eprintln!(
                "warning: done, but no {reason} Event was recorded on imagestream {}/{}: {detail}",
                target.namespace, target.stream
            );
        }
    }

    /// Whether the account may `verb` `group`/`resource` in `namespace`
    /// (a SelfSubjectAccessReview); `None` when that cannot be told.
    pub async fn allowed(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
    ) -> Option<bool> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_owned()),
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.connection.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.ok()?;
        answer.status.map(|s| s.allowed)
    }
}

/// `3d ago`, `5h ago`, `2m ago`, `just now`.
pub fn ago(then: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    if secs < 0 {
        return "in the future".to_owned();
    }
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_argument_needs_namespace_and_name() {
        assert_eq!(
            parse_configmap_arg("packit-prod/image-import-scheduler").unwrap(),
            (
                "packit-prod".to_owned(),
                "image-import-scheduler".to_owned()
            )
        );
        for bad in ["image-import-scheduler", "/x", "ns/", "a/b/c"] {
            let e = parse_configmap_arg(bad).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_USAGE, "{bad}");
            assert!(e.to_string().contains("NAMESPACE/NAME"), "{e}");
        }
    }

    #[test]
    fn forbidden_names_verb_resource_namespace_and_what_to_ask_for() {
        let status = kube::core::Status::failure("imagestreamimports is forbidden", "Forbidden")
            .with_code(403);
        let e = CliError::from_kube(
            &kube::Error::Api(Box::new(status)),
            "create",
            "imagestreamimports.image.openshift.io",
            "packit-prod",
            None,
        );
        let text = e.to_string();
        assert!(
            text.starts_with("your account cannot create imagestreamimports.image.openshift.io in namespace packit-prod; ask"),
            "{text}"
        );
        assert!(text.contains("edit"), "{text}");
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn ages() {
        let now: chrono::DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let cases = [
            ("2026-11-23T12:00:00Z", "just now"),
            ("2026-11-23T11:58:00Z", "2m ago"),
            ("2026-11-23T07:00:00Z", "5h ago"),
            ("2026-11-20T11:00:00Z", "3d ago"),
            ("2026-11-24T12:00:00Z", "in the future"),
        ];
        for (then, want) in cases {
            assert_eq!(ago(then.parse().unwrap(), now), want, "{then}");
        }
    }
}
