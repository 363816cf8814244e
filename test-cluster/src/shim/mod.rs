//! The front of the test cluster: one HTTPS address for clients, as an
//! OpenShift cluster has.
//!
//! - API requests go to openshift-apiserver (`/apis/image.openshift.io/...`)
//!   or kube-apiserver (everything else) as they came, credentials included;
//!   answers stream back, so watches work. `GET /apis` merges both servers'
//!   group lists.
//! - A second listener fronts the registry with HTTPS and the test CA, as Quay
//!   serves HTTPS.
//!
//! Fault rules apply to both before anything else. The front has no image
//! logic of its own: the real servers answer.

mod proxy;
mod registry_front;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::faults::{FaultKind, FaultRule, Faults};
use crate::kubelet::{Failure, ImageMarks};
use crate::upstream::{reason_for, status_body, Upstream};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a fault rule")
    }
}

impl std::error::Error for DropConnection {}

/// A hanging request gives up after this long (clients time out far sooner).
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// What the front's handlers share.
#[derive(Clone)]
pub(crate) struct Context {
    /// kube-apiserver and openshift-apiserver.
    pub upstream: Upstream,
    /// The registry behind the registry front, `http://127.0.0.1:PORT`.
    pub registry_backend: String,
    /// Plain-HTTP client for the registry backend.
    pub registry_client: reqwest::Client,
    pub faults: Faults,
    /// Images the stand-in kubelet fails (`/_testcluster/bad-images`).
    pub marks: ImageMarks,
    pub api_latency: Duration,
    pub import_latency: Duration,
}

impl Context {
    pub(crate) fn new(
        upstream: Upstream,
        registry_backend: String,
        faults: Faults,
        marks: ImageMarks,
        api_latency: Duration,
        import_latency: Duration,
    ) -> anyhow::Result<Context> {
        let registry_client = crate::pki::plain_http_builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the registry client")?;
        Ok(Context {
            upstream,
            registry_backend,
            registry_client,
            faults,
            marks,
            api_latency,
            import_latency,
        })
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("Content-Type", HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn status_response(code: u16, message: &str, details: Option<Value>) -> Response<Body> {
    json_response(code, &status_body(code, reason_for(code), message, details))
}

/// A running front: its own thread and tokio runtime, so it outlives the
/// runtime of whichever test started it.
pub(crate) struct Shim {
    /// The API front.
    pub addr: SocketAddr,
    /// The registry front.
    pub registry_addr: SocketAddr,
    /// The API front without fault rules, for openshift-controller-manager:
    /// fault rules stand for what the daemon sees, and the controller's own
    /// imports must not use them up.
    pub controllers_addr: SocketAddr,
    handle: tokio::runtime::Handle,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Which front a listener serves.
#[derive(Clone, Copy)]
enum Role {
    Api,
    /// The API front, never faulted.
    Controllers,
    Registry,
}

fn bind() -> anyhow::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot bind the front's port on 127.0.0.1")?;
    listener
        .set_nonblocking(true)
        .context("cannot make the front's socket non-blocking")?;
    let addr = listener
        .local_addr()
        .context("cannot read the front's port")?;
    Ok((listener, addr))
}

impl Shim {
    /// Binds two `127.0.0.1:0` ports (API and registry) and serves `ctx`
    /// with this TLS configuration.
    pub(crate) fn start(ctx: Context, tls: rustls::ServerConfig) -> anyhow::Result<Shim> {
        let (api, addr) = bind()?;
        let (registry, registry_addr) = bind()?;
        let (controllers, controllers_addr) = bind()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-cluster-shim")
            .enable_all()
            .build()
            .context("cannot build the front's tokio runtime")?;
        let handle = runtime.handle().clone();
        let (shutdown, rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let ctx = Arc::new(ctx);
        let thread = std::thread::Builder::new()
            .name("test-cluster-shim".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::join!(
                        serve(api, acceptor.clone(), ctx.clone(), Role::Api, rx.clone()),
                        serve(
                            controllers,
                            acceptor.clone(),
                            ctx.clone(),
                            Role::Controllers,
                            rx.clone()
                        ),
                        serve(registry, acceptor, ctx, Role::Registry, rx),
                    )
                });
                // Hanging requests and open watches end here.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("cannot start the front's thread")?;
        Ok(Shim {
            addr,
            registry_addr,
            controllers_addr,
            handle,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Runs `fut` on the front's runtime and waits for it; usable from sync
    /// code inside or outside any other tokio runtime.
    pub(crate) fn run<F>(&self, fut: F) -> anyhow::Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .context("the front's runtime stopped before the task finished")
    }

    /// The front's runtime, for tasks that live as long as the cluster.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Arc<Context>,
    role: Role,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the front cannot listen: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| {
                        let ctx = ctx.clone();
                        async move {
                            match role {
                                Role::Api => handle(ctx, req, true).await,
                                Role::Controllers => handle(ctx, req, false).await,
                                Role::Registry => registry_front::handle(ctx, req).await,
                            }
                        }
                    });
                    // No header read timeout: idle keep-alive connections
                    // stay open, so clients never race a server-side close.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(None)
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// What the fault rules say about one request: `Err` ends it here (with an
/// answer, or by dropping the connection).
pub(crate) async fn apply_faults(
    ctx: &Context,
    method: &str,
    path_and_query: &str,
    extra_latency: Duration,
    answer: impl FnOnce(u16, Option<u64>) -> Response<Body>,
) -> Result<(), Result<Response<Body>, DropConnection>> {
    let decision = ctx.faults.decide(method, path_and_query);
    let latency = decision.latency + extra_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match decision.action {
        Some(FaultKind::Status {
            code,
            retry_after_secs,
        }) => Err(Ok(answer(code, retry_after_secs))),
        Some(FaultKind::Hang) => {
            tokio::time::sleep(HANG_LIMIT).await;
            Err(Err(DropConnection))
        }
        Some(FaultKind::Drop) => Err(Err(DropConnection)),
        Some(FaultKind::Latency(_)) | None => Ok(()),
    }
}

/// One API request; `faulted`: whether fault rules and latencies apply.
async fn handle(
    ctx: Arc<Context>,
    req: Request<Incoming>,
    faulted: bool,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    if path.starts_with("/_testcluster/") {
        return Ok(admin(&ctx, req).await);
    }
    let method = req.method().clone();
    let mut latency = ctx.api_latency;
    // Stands for slow registries: what an import costs beyond the API call.
    if method == Method::POST && path.ends_with("/imagestreamimports") {
        latency += ctx.import_latency;
    }
    if faulted {
        if let Err(end) = apply_faults(
            &ctx,
            method.as_str(),
            &path_and_query,
            latency,
            fault_status,
        )
        .await
        {
            return end;
        }
    }
    if method == Method::GET && path.trim_end_matches('/') == "/apis" {
        return Ok(proxy::group_discovery(&ctx, req).await);
    }
    Ok(proxy::forward(&ctx, req).await)
}

fn fault_status(code: u16, retry_after_secs: Option<u64>) -> Response<Body> {
    let message = format!("fault injected by the test cluster: HTTP {code}");
    let mut details = None;
    if let Some(secs) = retry_after_secs {
        details = Some(json!({"retryAfterSeconds": secs}));
    }
    let mut resp = status_response(code, &message, details);
    if let Some(secs) = retry_after_secs {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("Retry-After", v);
        }
    }
    resp
}

/// `POST /_testcluster/bad-images` `{"reference": R, "failure": "crashLoop"
/// | "pullError"}`: what [`crate::TestCluster::mark_image_bad`] does, for
/// another process (`test-cluster push --bad`).
async fn mark_bad_image(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return status_response(
            405,
            "only POST is supported on /_testcluster/bad-images",
            None,
        );
    }
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(e) => return status_response(400, &format!("cannot read the request body: {e}"), None),
    };
    let failure = match body["failure"].as_str() {
        Some("crashLoop") => Failure::CrashLoop,
        Some("pullError") => Failure::PullError,
        _ => {
            return status_response(
                400,
                "`failure` must be \"crashLoop\" or \"pullError\"",
                None,
            )
        }
    };
    let Some(reference) = body["reference"].as_str().filter(|r| !r.is_empty()) else {
        return status_response(
            400,
            "`reference` (an image reference or digest) is missing",
            None,
        );
    };
    ctx.marks.mark(reference, failure);
    json_response(201, &json!({ "marked": reference }))
}

/// `/_testcluster/faults`: GET lists, POST adds one rule or a list of rules,
/// DELETE clears (or `/_testcluster/faults/ID` removes one).
async fn admin(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.trim_end_matches('/') == "/_testcluster/bad-images" {
        return mark_bad_image(ctx, req).await;
    }
    let rest = path.trim_start_matches("/_testcluster/faults");
    if !path.starts_with("/_testcluster/faults") {
        return status_response(
            404,
            &format!("no test-cluster endpoint {path}; use /_testcluster/faults or /_testcluster/bad-images"),
            None,
        );
    }
    match (method, rest.trim_matches('/')) {
        (Method::GET, "") => json_response(200, &json!({ "faults": ctx.faults.list() })),
        (Method::DELETE, "") => {
            ctx.faults.clear();
            json_response(200, &json!({ "cleared": true }))
        }
        (Method::DELETE, id) => match id.parse::<u64>() {
            Ok(id) if ctx.faults.remove(id) => json_response(200, &json!({ "removed": id })),
            _ => status_response(404, &format!("no fault rule with id {id:?}"), None),
        },
        (Method::POST, "") => {
            let bytes = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return status_response(
                        400,
                        &format!("cannot read the request body: {e}"),
                        None,
                    )
                }
            };
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => return status_response(400, &format!("the body is not JSON: {e}"), None),
            };
            let rules: Result<Vec<FaultRule>, _> = if value.is_array() {
                serde_json::from_value(value)
            } else {
                serde_json::from_value(value).map(|r| vec![r])
            };
            match rules {
                Ok(rules) => {
                    let ids: Vec<u64> = rules.into_iter().map(|r| ctx.faults.add(r)).collect();
                    json_response(201, &json!({ "ids": ids }))
                }
                Err(e) => status_response(
                    400,
                    &format!("not a fault rule ({e}); expected e.g. {{\"method\": \"POST\", \"path_contains\": \"/imagestreamimports\", \"kind\": {{\"status\": {{\"code\": 500}}}}, \"times\": 1}}"),
                    None,
                ),
            }
        }
        (m, _) => status_response(405, &format!("{m} is not supported on {path}"), None),
    }
}
