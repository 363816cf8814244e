//! The HTTPS image-API shim in front of kube-apiserver.
//!
//! It forwards every request (with the caller's credentials) except what
//! OpenShift's image API server does itself: `imagestreamimports`, strategic
//! merge patches of `imagestreams`, and `imagestreamimports` in the group's
//! discovery. Fault rules apply before anything else.

mod auth;
mod imports;
mod patch;
mod proxy;

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
use crate::upstream::{reason_for, status_body, Upstream};

pub(crate) use imports::{import_images, ImageRequest, Preconditions};

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

/// What the shim's handlers share. Also used outside the shim (seeding), with
/// clients that keep no idle connections.
#[derive(Clone)]
pub(crate) struct Context {
    pub upstream: Upstream,
    /// Plain-HTTP client for the registry.
    pub registry_client: reqwest::Client,
    pub faults: Faults,
    pub api_latency: Duration,
    pub import_latency: Duration,
}

impl Context {
    pub(crate) fn new(
        upstream: Upstream,
        faults: Faults,
        api_latency: Duration,
        import_latency: Duration,
        pooled: bool,
    ) -> anyhow::Result<Context> {
        let mut b = crate::pki::plain_http_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        if !pooled {
            b = b.pool_max_idle_per_host(0);
        }
        Ok(Context {
            upstream,
            registry_client: b.build().context("cannot build the registry client")?,
            faults,
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

/// A running shim: its own thread and tokio runtime, so it outlives the
/// runtime of whichever test started it.
pub(crate) struct Shim {
    pub addr: SocketAddr,
    handle: tokio::runtime::Handle,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shim {
    /// Binds `127.0.0.1:0` and serves `ctx` with this TLS configuration.
    pub(crate) fn start(ctx: Context, tls: rustls::ServerConfig) -> anyhow::Result<Shim> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("cannot bind the shim's port on 127.0.0.1")?;
        listener
            .set_nonblocking(true)
            .context("cannot make the shim's socket non-blocking")?;
        let addr = listener
            .local_addr()
            .context("cannot read the shim's port")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-cluster-shim")
            .enable_all()
            .build()
            .context("cannot build the shim's tokio runtime")?;
        let handle = runtime.handle().clone();
        let (shutdown, rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let ctx = Arc::new(ctx);
        let thread = std::thread::Builder::new()
            .name("test-cluster-shim".into())
            .spawn(move || {
                runtime.block_on(serve(listener, acceptor, ctx, rx));
                // Hanging requests and open watches end here.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("cannot start the shim's thread")?;
        Ok(Shim {
            addr,
            handle,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Runs `fut` on the shim's runtime and waits for it; usable from sync
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
            .context("the shim's runtime stopped before the task finished")
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
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the shim cannot listen: {e}");
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
                        async move { handle(ctx, req).await }
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

/// Path segments of `/apis/image.openshift.io/v1/...`, if it is one.
fn image_api_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix("/apis/image.openshift.io/v1")?;
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

async fn handle(
    ctx: Arc<Context>,
    req: Request<Incoming>,
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
    let decision = ctx.faults.decide(method.as_str(), &path_and_query);
    let latency = decision.latency + ctx.api_latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match decision.action {
        Some(FaultKind::Status {
            code,
            retry_after_secs,
        }) => return Ok(fault_status(code, retry_after_secs)),
        Some(FaultKind::Hang) => {
            tokio::time::sleep(HANG_LIMIT).await;
            return Err(DropConnection);
        }
        Some(FaultKind::Drop) => return Err(DropConnection),
        Some(FaultKind::Latency(_)) | None => {}
    }

    if let Some(seg) = image_api_segments(&path) {
        match (&method, seg.as_slice()) {
            (&Method::POST, ["namespaces", ns, "imagestreamimports"]) => {
                let ns = ns.to_string();
                return Ok(imports::handle(&ctx, &ns, req).await);
            }
            (&Method::PATCH, ["namespaces", ns, "imagestreams", name])
                if is_strategic_merge(&req) =>
            {
                let (ns, name) = (ns.to_string(), name.to_string());
                return Ok(patch::handle(&ctx, &ns, &name, req).await);
            }
            (&Method::GET, []) => return Ok(proxy::discovery(&ctx, req).await),
            _ => {}
        }
    }
    Ok(proxy::forward(&ctx, req).await)
}

fn is_strategic_merge(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/strategic-merge-patch+json"))
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

/// `/_testcluster/faults`: GET lists, POST adds one rule or a list of rules,
/// DELETE clears (or `/_testcluster/faults/ID` removes one).
async fn admin(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let rest = path.trim_start_matches("/_testcluster/faults");
    if !path.starts_with("/_testcluster/faults") {
        return status_response(
            404,
            &format!("no test-cluster endpoint {path}; use /_testcluster/faults"),
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

/// Reads a request body as JSON; the error is a ready 400 answer.
pub(crate) async fn read_json(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, Value), Response<Body>> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| status_response(400, &format!("cannot read the request body: {e}"), None))?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        status_response(
            400,
            &format!("the request body is not valid JSON: {e}"),
            None,
        )
    })?;
    Ok((parts, value))
}

/// A Kubernetes error answer: HTTP code and `Status` body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl ApiError {
    pub(crate) fn new(code: u16, message: impl AsRef<str>, details: Option<Value>) -> ApiError {
        ApiError {
            code,
            body: status_body(code, reason_for(code), message.as_ref(), details),
        }
    }

    pub(crate) fn internal(message: impl AsRef<str>) -> ApiError {
        ApiError::new(500, message, None)
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        json_response(self.code, &self.body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.body["message"].as_str().unwrap_or_default();
        write!(f, "HTTP {}: {message}", self.code)
    }
}

impl std::error::Error for ApiError {}
