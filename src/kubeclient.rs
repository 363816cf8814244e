//! The Kubernetes client: configuration, timeouts, and a tower layer that
//! counts and times every API request in [`Metrics`].

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{Method, Request, Response, StatusCode, Uri};
use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use tower::{BoxError, Layer, Service};

use crate::metrics::{ApiErrorKind, Metrics};
use crate::reachability::ApiReachability;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file given on the command line is unusable.
    #[error("cannot use kubeconfig {path}: {source}; check that the file exists and names a current context with a cluster and user")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        source: KubeconfigError,
    },
    /// Neither KUBECONFIG / ~/.kube/config nor the in-cluster service account worked.
    #[error("no Kubernetes configuration found: {0}; run inside a pod with a service account, set KUBECONFIG, or pass --kubeconfig")]
    Infer(#[from] InferConfigError),
    /// The context asked for (`--context`, an environment's `cluster.context`)
    /// is not in the kubeconfig.
    #[error("the kubeconfig{} has no context `{context}`; its contexts: {known}; pass --context with one of them, or fix the environment's cluster.context", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    NoContext {
        /// The file, when one was named.
        path: Option<PathBuf>,
        context: String,
        /// The contexts it has, comma-separated.
        known: String,
    },
    /// A context was asked for but no kubeconfig could be read.
    #[error("context `{context}` was asked for, but no kubeconfig could be read: {source}; set KUBECONFIG or pass --kubeconfig")]
    NoKubeconfig {
        context: String,
        source: KubeconfigError,
    },
    /// A kubeconfig held in a Secret is unusable.
    #[error("the kubeconfig in {origin} is unusable: {source}; store a kubeconfig with a current context, its cluster (server, certificate authority) and user (token)")]
    Embedded {
        /// Where it was read from (`Secret ns/name key k`).
        origin: String,
        source: KubeconfigError,
    },
    /// The configuration is there but the HTTP client cannot be built from it (TLS material, proxy).
    #[error("cannot build the Kubernetes client: {0}; check the certificates and proxy settings of the kubeconfig")]
    Build(#[from] kube::Error),
}

/// Timeouts of the client.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Establishing TCP and TLS.
    pub connect_timeout: Duration,
    /// From sending a request to its response headers, for every request but
    /// watches (which stay open by design and are bounded by the server's
    /// `timeoutSeconds`). Includes the client's own retries of 429/503/504.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            // An ImageStreamImport waits for the registry, so leave it room.
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A client from `kubeconfig`, or inferred (KUBECONFIG, ~/.kube/config, then
/// the in-cluster service account), with default [`ClientOptions`].
pub async fn client(
    kubeconfig: Option<&Path>,
    metrics: Option<Arc<Metrics>>,
) -> Result<kube::Client, ClientError> {
    client_with(kubeconfig, metrics, ClientOptions::default()).await
}

/// Like [`client`], also recording every request's outcome in `reachability`
/// (the daemon's readiness).
pub async fn client_reporting(
    kubeconfig: Option<&Path>,
    metrics: Option<Arc<Metrics>>,
    reachability: Arc<ApiReachability>,
) -> Result<kube::Client, ClientError> {
    build(
        kubeconfig,
        MetricsLayer::new(metrics, ClientOptions::default().request_timeout)
            .with_reachability(reachability),
        ClientOptions::default(),
    )
    .await
}

/// Like [`client`] with explicit timeouts.
pub async fn client_with(
    kubeconfig: Option<&Path>,
    metrics: Option<Arc<Metrics>>,
    options: ClientOptions,
) -> Result<kube::Client, ClientError> {
    build(
        kubeconfig,
        MetricsLayer::new(metrics, options.request_timeout),
        options,
    )
    .await
}

/// A client for `context` of `kubeconfig` (else KUBECONFIG / ~/.kube/config),
/// as `kubectl --context` picks one; without a context, like [`client`].
pub async fn client_in_context(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, ClientError> {
    let Some(context) = context else {
        return client(kubeconfig, None).await;
    };
    let loaded = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
            path: path.to_owned(),
            source,
        })?,
        None => Kubeconfig::read().map_err(|source| ClientError::NoKubeconfig {
            context: context.to_owned(),
            source,
        })?,
    };
    if !loaded.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = loaded.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(ClientError::NoContext {
            path: kubeconfig.map(Path::to_owned),
            context: context.to_owned(),
            known: if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            },
        });
    }
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(loaded, &options)
        .await
        .map_err(|source| ClientError::Kubeconfig {
            path: kubeconfig.map(Path::to_owned).unwrap_or_default(),
            source,
        })?;
    finish(
        config,
        MetricsLayer::new(None, ClientOptions::default().request_timeout),
        ClientOptions::default(),
    )
}

/// A client from a kubeconfig held in memory (a Secret's), recording its
/// requests in `metrics` and `reachability` like the daemon's own client.
pub async fn client_from_kubeconfig(
    kubeconfig: Kubeconfig,
    origin: &str,
    metrics: Option<Arc<Metrics>>,
    reachability: Arc<ApiReachability>,
) -> Result<kube::Client, ClientError> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Embedded {
            origin: origin.to_owned(),
            source,
        })?;
    finish(
        config,
        MetricsLayer::new(metrics, ClientOptions::default().request_timeout)
            .with_reachability(reachability),
        ClientOptions::default(),
    )
}

async fn build(
    kubeconfig: Option<&Path>,
    layer: MetricsLayer,
    options: ClientOptions,
) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let loaded = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
                path: path.to_owned(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(loaded, &KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.to_owned(),
                    source,
                })?
        }
        None => kube::Config::infer().await?,
    };
    finish(config, layer, options)
}

fn finish(
    mut config: kube::Config,
    layer: MetricsLayer,
    options: ClientOptions,
) -> Result<kube::Client, ClientError> {
    config.connect_timeout = Some(options.connect_timeout);
    // No socket read timeout: it would cut idle watches. Hanging requests are
    // bounded per request by the layer below instead.
    config.read_timeout = None;
    // kube's own retry layer would retry 429/503/504 up to 15 times under
    // the importer's retry policy; the importer decides retries itself.
    config.default_retry = false;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// Tower layer that records each request's verb, resource, code, latency to
/// response headers and transport errors, and bounds non-watch requests by
/// a timeout.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
    reachability: Option<Arc<ApiReachability>>,
    request_timeout: Duration,
}

impl MetricsLayer {
    /// A layer recording into `metrics` (if any) with the given request timeout.
    pub fn new(metrics: Option<Arc<Metrics>>, request_timeout: Duration) -> Self {
        MetricsLayer {
            metrics,
            reachability: None,
            request_timeout,
        }
    }

    /// Also records whether each request reached the API server.
    pub fn with_reachability(mut self, reachability: Arc<ApiReachability>) -> Self {
        self.reachability = Some(reachability);
        self
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            reachability: self.reachability.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

/// The service built by [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
    reachability: Option<Arc<ApiReachability>>,
    request_timeout: Duration,
}

/// A request got no response headers within the request timeout.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {resource}: no response from the Kubernetes API within {after:?}; the API server may be overloaded or unreachable")]
pub struct RequestTimeout {
    /// Kubernetes verb of the request.
    pub verb: &'static str,
    /// Resource of the request.
    pub resource: String,
    /// The timeout that elapsed.
    pub after: Duration,
}

impl<S, B, RB> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
    S::Future: Send + 'static,
    RB: 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let target = classify(request.method(), request.uri());
        let metrics = self.metrics.clone();
        let reachability = self.reachability.clone();
        let timeout = (target.verb != "watch").then_some(self.request_timeout);
        let response = self.inner.call(request);
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let result = match timeout {
                Some(after) => match tokio::time::timeout(after, response).await {
                    Ok(result) => result,
                    Err(_) => Err(Box::new(RequestTimeout {
                        verb: target.verb,
                        resource: target.resource.clone(),
                        after,
                    }) as BoxError),
                },
                None => response.await,
            };
            if let Some(reachability) = reachability {
                match &result {
                    Ok(response) => reachability.answered(response.status().as_u16(), || {
                        format!("{} {}", target.verb, target.resource)
                    }),
                    Err(error) => reachability
                        .failure(format!("{} {}: {error}", target.verb, target.resource)),
                }
            }
            if let Some(metrics) = metrics {
                match &result {
                    Ok(response) => {
                        let status = response.status();
                        metrics.record_api_request(
                            target.verb,
                            &target.resource,
                            status.as_u16(),
                            started.elapsed(),
                        );
                        if is_error_status(status) {
                            metrics.record_api_error(
                                target.verb,
                                &target.resource,
                                ApiErrorKind::Status,
                            );
                        }
                    }
                    Err(error) => {
                        metrics.record_api_error(
                            target.verb,
                            &target.resource,
                            classify_error(error.as_ref()),
                        );
                    }
                }
            }
            result
        })
    }
}

/// Codes counted as API errors. 404, 409 and 410 are ordinary answers of
/// get-or-create, optimistic concurrency and watch restarts; they are still
/// visible by code in `api_requests_total`.
fn is_error_status(status: StatusCode) -> bool {
    (status.is_client_error() || status.is_server_error())
        && !matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::GONE
        )
}

/// Sorts a transport error into timeout, connect or other.
pub fn classify_error(error: &(dyn std::error::Error + 'static)) -> ApiErrorKind {
    let mut connect = false;
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<RequestTimeout>() || error.is::<tokio::time::error::Elapsed>() {
            return ApiErrorKind::Timeout;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ApiErrorKind::Timeout;
            }
        }
        if let Some(hyper) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= hyper.is_connect();
        }
        current = error.source();
    }
    if connect {
        ApiErrorKind::Connect
    } else {
        ApiErrorKind::Transport
    }
}

/// The Kubernetes verb and resource of a request, as used in metric labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// get, list, watch, create, update, patch, delete, deletecollection, or
    /// the lower-case HTTP method for anything else.
    pub verb: &'static str,
    /// The plural resource (`configmaps`), with `/subresource` when addressed
    /// (`imagestreams/status`); `discovery` for API discovery paths, `version`
    /// for `/version`, `other` for anything else.
    pub resource: String,
}

/// Derives verb and resource from method, path and the `watch` query parameter.
pub fn classify(method: &Method, uri: &Uri) -> RequestTarget {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let watch_query = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch=True"))
    });
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        ["version", ..] => return other(method, "version"),
        ["api"] | ["apis"] | ["apis", _] => return other(method, "discovery"),
        _ => return other(method, "other"),
    };
    // Deprecated watch paths: /api/v1/watch/namespaces/x/configmaps
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (resource, name, subresource) = match rest {
        [] => return other(method, "discovery"),
        ["namespaces", _namespace, resource, rest @ ..] => (*resource, rest.first(), rest.get(1)),
        [resource, rest @ ..] => (*resource, rest.first(), rest.get(1)),
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    let collection = name.is_none();
    let verb = match *method {
        Method::GET if watch_query || legacy_watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => method_verb(method),
    };
    RequestTarget { verb, resource }
}

fn other(method: &Method, resource: &str) -> RequestTarget {
    RequestTarget {
        verb: method_verb(method),
        resource: resource.to_owned(),
    }
}

fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_resources_from_paths() {
        let table: &[(&str, &str, &str, &str)] = &[
            (
                "GET",
                "/api/v1/namespaces/x/configmaps/y",
                "get",
                "configmaps",
            ),
            (
                "GET",
                "/api/v1/namespaces/x/configmaps",
                "list",
                "configmaps",
            ),
            (
                "GET",
                "/api/v1/namespaces/x/configmaps?watch=true&resourceVersion=5",
                "watch",
                "configmaps",
            ),
            (
                "GET",
                "/api/v1/namespaces/x/configmaps?fieldSelector=metadata.name%3Dy&watch=1",
                "watch",
                "configmaps",
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/x/configmaps",
                "watch",
                "configmaps",
            ),
            (
                "PUT",
                "/api/v1/namespaces/x/configmaps/y",
                "update",
                "configmaps",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/x/configmaps/y",
                "patch",
                "configmaps",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/x/configmaps/y",
                "delete",
                "configmaps",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/x/configmaps",
                "deletecollection",
                "configmaps",
            ),
            (
                "POST",
                "/apis/image.openshift.io/v1/namespaces/p/imagestreamimports",
                "create",
                "imagestreamimports",
            ),
            (
                "GET",
                "/apis/image.openshift.io/v1/namespaces/p/imagestreams/w",
                "get",
                "imagestreams",
            ),
            (
                "PUT",
                "/apis/image.openshift.io/v1/namespaces/p/imagestreams/w/status",
                "update",
                "imagestreams/status",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/p/leases/l",
                "update",
                "leases",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/p/events",
                "create",
                "events",
            ),
            ("GET", "/api/v1/namespaces", "list", "namespaces"),
            ("GET", "/api/v1/namespaces/p", "get", "namespaces"),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "create",
                "selfsubjectaccessreviews",
            ),
            ("GET", "/version", "get", "version"),
            ("GET", "/apis", "get", "discovery"),
            ("GET", "/apis/image.openshift.io/v1", "get", "discovery"),
            ("GET", "/api/v1", "get", "discovery"),
            ("GET", "/healthz", "get", "other"),
        ];
        for (method, uri, verb, resource) in table {
            let method: Method = method.parse().unwrap();
            let uri: Uri = uri.parse().unwrap();
            let target = classify(&method, &uri);
            assert_eq!(
                target,
                RequestTarget {
                    verb,
                    resource: resource.to_string()
                },
                "{method} {uri}"
            );
        }
    }

    #[test]
    fn error_statuses_exclude_protocol_answers() {
        assert!(is_error_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_error_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_error_status(StatusCode::FORBIDDEN));
        assert!(!is_error_status(StatusCode::NOT_FOUND));
        assert!(!is_error_status(StatusCode::CONFLICT));
        assert!(!is_error_status(StatusCode::OK));
    }

    #[test]
    fn errors_are_classified_through_their_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] std::io::Error);

        let timed_out = Wrapper(std::io::Error::new(std::io::ErrorKind::TimedOut, "read"));
        assert_eq!(classify_error(&timed_out), ApiErrorKind::Timeout);
        let reset = Wrapper(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify_error(&reset), ApiErrorKind::Transport);
        let timeout = RequestTimeout {
            verb: "get",
            resource: "configmaps".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(classify_error(&timeout), ApiErrorKind::Timeout);
    }

    /// The layer must count responses by code and time out hanging requests.
    #[tokio::test(start_paused = true)]
    async fn layer_records_responses_and_times_out_hanging_requests() {
        use tower::ServiceExt;

        let metrics = Arc::new(Metrics::new());
        let layer = MetricsLayer::new(Some(metrics.clone()), Duration::from_secs(5));
        let answering = layer.layer(tower::service_fn(|request: Request<()>| async move {
            let status = if request.uri().path().ends_with("/missing") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
        }));
        let request = |path: &str| Request::get(path).body(()).unwrap();
        answering
            .clone()
            .oneshot(request("/api/v1/namespaces/x/configmaps/missing"))
            .await
            .unwrap();
        answering
            .oneshot(request("/api/v1/namespaces/x/configmaps/y"))
            .await
            .unwrap();

        let hanging = layer.layer(tower::service_fn(|_request: Request<()>| async move {
            std::future::pending::<Result<Response<()>, BoxError>>().await
        }));
        let error = hanging
            .oneshot(request(
                "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
            ))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("get leases"), "{error}");

        let text = metrics.encode();
        for series in [
            r#"image_import_scheduler_api_requests_total{verb="get",resource="configmaps",code="404"} 1"#,
            r#"image_import_scheduler_api_requests_total{verb="get",resource="configmaps",code="503"} 1"#,
            r#"image_import_scheduler_api_errors_total{verb="get",resource="configmaps",kind="status"} 1"#,
            r#"image_import_scheduler_api_errors_total{verb="get",resource="leases",kind="timeout"} 1"#,
        ] {
            assert!(
                text.lines().any(|line| line == series),
                "{series} missing in\n{text}"
            );
        }
    }
}
