//! HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and the push hook
//! `POST /hooks/import`.
//!
//! The hook accepts a Quay-style repository notification
//! (`{"docker_url": "quay.io/packit/packit-worker", "updated_tags": ["prod"], ...}`)
//! authenticated by a shared secret, either `Authorization: Bearer <secret>` or
//! `?secret=<secret>`, and hands a [`HookEvent`] to the scheduler.
//!
//! The hook sits behind a public Route, so anyone may call it. Requests with
//! the right secret and requests without it are rate-limited apart: those
//! without it per client address (the peer, or the `X-Forwarded-For` client
//! when the peer is a trusted proxy), those with it in one budget of their
//! own. A flood of guesses therefore throttles only its sender and never a
//! real push. The secret is compared in constant time.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use ipnet::IpNet;
use serde::Deserialize;
use tokio::{net::TcpListener, sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::hook_event::HookEvent;
use crate::metrics::Metrics;
use crate::reachability::ApiReachability;

/// Environment variable holding the push hook's shared secret. Unset or empty
/// disables the hook (404).
pub const HOOK_SECRET_ENV: &str = "IMPORT_SCHEDULER_HOOK_SECRET";

/// Environment variable listing the proxies (CIDRs, comma-separated) whose
/// `X-Forwarded-For` names the hook's client.
pub const TRUSTED_PROXIES_ENV: &str = "IMPORT_SCHEDULER_TRUSTED_PROXIES";

/// Largest accepted hook body. Quay notifications are well under 4 KiB.
const MAX_HOOK_BODY: usize = 64 * 1024;

/// Client addresses whose budget for requests without the secret is kept at
/// once; beyond it the longest-idle one is forgotten, so memory is bounded.
const MAX_TRACKED_CLIENTS: usize = 4096;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Settings of the push hook.
#[derive(Clone)]
pub struct HookSettings {
    /// Shared secret; `None` disables the hook.
    pub secret: Option<String>,
    /// Sustained requests per second with the right secret (all senders).
    pub rate_per_second: f64,
    /// Requests with the right secret allowed in a burst.
    pub burst: u32,
    /// Sustained requests per second without the right secret, per client.
    pub unauthenticated_rate_per_second: f64,
    /// Requests without the right secret allowed in a burst, per client.
    pub unauthenticated_burst: u32,
    /// Proxies (the Route's router) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl std::fmt::Debug for HookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSettings")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("rate_per_second", &self.rate_per_second)
            .field("burst", &self.burst)
            .field(
                "unauthenticated_rate_per_second",
                &self.unauthenticated_rate_per_second,
            )
            .field("unauthenticated_burst", &self.unauthenticated_burst)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            secret: None,
            rate_per_second: 10.0,
            burst: 20,
            unauthenticated_rate_per_second: 1.0,
            unauthenticated_burst: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Parses a comma-separated list of CIDRs or single addresses
/// (`10.128.0.0/14, 192.0.2.7`), as in [`TRUSTED_PROXIES_ENV`].
pub fn parse_trusted_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("`{item}` is not a CIDR or an address; write e.g. 10.128.0.0/14")
                })
        })
        .collect()
}

/// Liveness and readiness, shared between the scheduler and the endpoints.
#[derive(Clone)]
pub struct Health(Arc<HealthInner>);

struct HealthInner {
    stall_after: Duration,
    last_heartbeat: Mutex<Option<Instant>>,
    config_loaded: AtomicBool,
    api: Option<Arc<ApiReachability>>,
}

impl Health {
    /// `/healthz` fails once the scheduler loop has not called
    /// [`Health::heartbeat`] for `stall_after` (after its first heartbeat).
    /// `/readyz` also needs the API to be reachable as `api` sees it.
    pub fn new(stall_after: Duration, api: Option<Arc<ApiReachability>>) -> Self {
        Health(Arc::new(HealthInner {
            stall_after,
            last_heartbeat: Mutex::new(None),
            config_loaded: AtomicBool::new(false),
            api,
        }))
    }

    /// The scheduler loop is alive and turning.
    pub fn heartbeat(&self) {
        if let Ok(mut last) = self.0.last_heartbeat.lock() {
            *last = Some(Instant::now());
        }
    }

    /// A valid configuration is loaded (or not any more).
    pub fn set_config_loaded(&self, loaded: bool) {
        self.0.config_loaded.store(loaded, Ordering::Relaxed);
    }

    /// `Ok` while alive, else why not.
    pub fn liveness(&self) -> Result<(), String> {
        let last = self
            .0
            .last_heartbeat
            .lock()
            .map(|last| *last)
            .unwrap_or(None);
        match last {
            Some(at) if at.elapsed() > self.0.stall_after => Err(format!(
                "scheduler loop stalled: last heartbeat {}s ago, limit {}s",
                at.elapsed().as_secs(),
                self.0.stall_after.as_secs()
            )),
            _ => Ok(()),
        }
    }

    /// Trouble that does not make the pod unready: other clusters that
    /// environments live on, one line each.
    pub fn notes(&self) -> Vec<String> {
        self.0
            .api
            .as_ref()
            .map(|api| api.notes())
            .unwrap_or_default()
    }

    /// `Ok` when ready to serve, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.0.config_loaded.load(Ordering::Relaxed) {
            return Err("configuration not loaded yet".to_owned());
        }
        match &self.0.api {
            Some(api) => api.readiness(),
            None => Ok(()),
        }
    }
}

/// What the sender of a push should know beyond "accepted", one sentence per
/// environment (e.g. that it waits for its window).
pub type HookNotes = Arc<dyn Fn(&HookEvent) -> Vec<String> + Send + Sync>;

/// What the endpoints need.
#[derive(Clone)]
pub struct HttpState {
    metrics: Arc<Metrics>,
    health: Health,
    hook: Option<Arc<Hook>>,
    hook_notes: Option<HookNotes>,
}

struct Hook {
    secret: String,
    /// Requests with the right secret, all senders together.
    authenticated: TokenBucket,
    /// Requests without it, per client.
    unauthenticated: ClientBuckets,
    trusted_proxies: Vec<IpNet>,
    events: mpsc::Sender<HookEvent>,
}

impl HttpState {
    /// Endpoints without a push hook (`/hooks/import` answers 404).
    pub fn new(metrics: Arc<Metrics>, health: Health) -> Self {
        HttpState {
            metrics,
            health,
            hook: None,
            hook_notes: None,
        }
    }

    /// Adds `notes` to the answer of an accepted push.
    pub fn with_hook_notes(mut self, notes: HookNotes) -> Self {
        self.hook_notes = Some(notes);
        self
    }

    /// Enables the push hook if `settings` has a secret; events go to `events`.
    pub fn with_hook(mut self, settings: HookSettings, events: mpsc::Sender<HookEvent>) -> Self {
        self.hook = settings.secret.map(|secret| {
            Arc::new(Hook {
                secret,
                authenticated: TokenBucket::new(settings.rate_per_second, settings.burst),
                unauthenticated: ClientBuckets::new(
                    settings.unauthenticated_rate_per_second,
                    settings.unauthenticated_burst,
                    MAX_TRACKED_CLIENTS,
                ),
                trusted_proxies: settings.trusted_proxies,
                events,
            })
        });
        self
    }
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/hooks/import", post(import_hook))
        .with_state(state)
}

/// Why the HTTP server stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}; choose another --listen address or stop the process using it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Accepting connections failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves `router` on a bound listener until `shutdown` is cancelled, then
/// lets open requests finish.
pub async fn serve_listener(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /hooks/import");
    }
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
    .map_err(HttpError::Serve)
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(state): State<HttpState>) -> Response {
    match state.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let notes: String = state
        .health
        .notes()
        .iter()
        .map(|n| format!("{n}\n"))
        .collect();
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, format!("ready\n{notes}")).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{reason}\n{notes}"),
        )
            .into_response(),
    }
}

/// The fields of a Quay repository notification we use; others are ignored.
#[derive(Deserialize)]
struct QuayNotification {
    docker_url: Option<String>,
    updated_tags: Option<Vec<String>>,
}

async fn import_hook(State(state): State<HttpState>, request: Request) -> Response {
    // Without connection info (tests calling the router directly) every
    // request shares one unspecified address.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (status, result, body, retry_after) = handle_hook(&state, request, peer).await;
    state.metrics.record_webhook(result);
    let mut response = (status, format!("{body}\n")).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

type HookOutcome = (StatusCode, &'static str, String, Option<u64>);

async fn handle_hook(state: &HttpState, request: Request, peer: IpAddr) -> HookOutcome {
    let Some(hook) = &state.hook else {
        return (
            StatusCode::NOT_FOUND,
            "disabled",
            format!("push hook disabled: set {HOOK_SECRET_ENV} to enable it"),
            None,
        );
    };
    let (parts, body) = request.into_parts();
    let remote = client_address(peer, &parts.headers, &hook.trusted_proxies);
    if !authorised(&parts.headers, &parts.uri, &hook.secret) {
        // Guesses are throttled per client, apart from real pushes.
        if let Err(wait) = hook.unauthenticated.try_take(remote, Instant::now()) {
            let seconds = retry_after_seconds(wait);
            tracing::debug!(%remote, retry_after_seconds = seconds, "push hook requests without the secret throttled");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "unauthorized_rate_limited",
                format!("too many hook requests without the right secret from {remote}; retry after {seconds}s"),
                Some(seconds),
            );
        }
        tracing::warn!(%remote, "push hook request with a wrong or missing secret");
        return (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong or missing secret: send `Authorization: Bearer <secret>` or `?secret=<secret>`"
                .to_owned(),
            None,
        );
    }
    if let Err(wait) = hook.authenticated.try_take() {
        let seconds = retry_after_seconds(wait);
        tracing::warn!(%remote, retry_after_seconds = seconds, "push hook rate limit exceeded");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many hook requests; retry after {seconds}s"),
            Some(seconds),
        );
    }
    let event = match parse_notification(body).await {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(%remote, %reason, "malformed push hook body");
            return (StatusCode::BAD_REQUEST, "malformed", reason, None);
        }
    };
    let mut summary = format!(
        "{} tag(s) of {}",
        event.updated_tags.len(),
        event.docker_url
    );
    for note in state.hook_notes.iter().flat_map(|notes| notes(&event)) {
        summary.push_str("; ");
        summary.push_str(&note);
    }
    tracing::info!(%remote, docker_url = %event.docker_url, tags = ?event.updated_tags, "push hook accepted");
    match hook.events.try_send(event) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            "accepted",
            format!("accepted: {summary}"),
            None,
        ),
        Err(mpsc::error::TrySendError::Full(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "scheduler busy with earlier notifications; retry shortly".to_owned(),
            Some(1),
        ),
        Err(mpsc::error::TrySendError::Closed(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "scheduler is shutting down".to_owned(),
            None,
        ),
    }
}

fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The address a request is counted against: the peer, unless the peer is a
/// trusted proxy; then the nearest `X-Forwarded-For` hop that is not one
/// (hops are appended, so entries left of a trusted proxy's are the client's
/// claims and only the rightmost untrusted one can be believed). IPv6
/// clients count by /64, the block one host usually has.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if is_trusted(&peer) {
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !is_trusted(&ip) {
                break;
            }
        }
    }
    match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

fn authorised(headers: &HeaderMap, uri: &axum::http::Uri, secret: &str) -> bool {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let from_query = || {
        Query::<HashMap<String, String>>::try_from_uri(uri)
            .ok()
            .and_then(|Query(mut query)| query.remove("secret"))
    };
    match from_header.or_else(from_query) {
        Some(given) => constant_time_eq(given.as_bytes(), secret.as_bytes()),
        None => false,
    }
}

/// Compares without an early exit on the first differing byte, so response
/// time does not reveal how much of a guess was right (only its length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn parse_notification(body: Body) -> Result<HookEvent, String> {
    let bytes = axum::body::to_bytes(body, MAX_HOOK_BODY)
        .await
        .map_err(|error| format!("cannot read body (limit {MAX_HOOK_BODY} bytes): {error}"))?;
    let notification: QuayNotification = serde_json::from_slice(&bytes)
        .map_err(|error| format!("body is not a repository notification (JSON object): {error}"))?;
    let docker_url = notification
        .docker_url
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .ok_or("docker_url is missing or empty; expected e.g. \"quay.io/packit/packit-worker\"")?;
    if docker_url.contains(char::is_whitespace) {
        return Err(format!("docker_url {docker_url:?} contains whitespace"));
    }
    let updated_tags = notification
        .updated_tags
        .ok_or("updated_tags is missing; expected a list of tag names such as [\"prod\"]")?;
    if updated_tags.is_empty() {
        return Err("updated_tags is empty: nothing to import".to_owned());
    }
    if let Some(bad) = updated_tags
        .iter()
        .find(|tag| tag.is_empty() || tag.contains(char::is_whitespace))
    {
        return Err(format!("updated_tags contains an invalid tag name {bad:?}"));
    }
    Ok(HookEvent {
        docker_url,
        updated_tags,
    })
}

/// Token bucket state: `burst` requests at once, refilled at `rate` per second.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refilled(&self, rate: f64, burst: f64, now: Instant) -> f64 {
        (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate).min(burst)
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let tokens = self.refilled(rate, burst, now);
        self.last = now;
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            Ok(())
        } else {
            self.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

fn sane_rate(rate_per_second: f64) -> f64 {
    if rate_per_second.is_finite() && rate_per_second > 0.0 {
        rate_per_second
    } else {
        // A non-positive rate would never refill; fall back to one per minute.
        1.0 / 60.0
    }
}

/// One token bucket for everyone.
struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

impl TokenBucket {
    fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: sane_rate(rate_per_second),
            burst,
            state: Mutex::new(Bucket::full(burst, Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn try_take(&self) -> Result<(), Duration> {
        let Ok(mut state) = self.state.lock() else {
            return Ok(());
        };
        state.take(self.rate, self.burst, Instant::now())
    }
}

/// A token bucket per client address, at most `max_clients` of them.
struct ClientBuckets {
    rate: f64,
    burst: f64,
    max_clients: usize,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ClientBuckets {
    fn new(rate_per_second: f64, burst: u32, max_clients: usize) -> Self {
        ClientBuckets {
            rate: sane_rate(rate_per_second),
            burst: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `client`'s bucket, or says how long until one is available.
    fn try_take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut clients) = self.clients.lock() else {
            return Ok(());
        };
        if !clients.contains_key(&client) && clients.len() >= self.max_clients {
            // Buckets that refilled are the same as absent ones.
            clients.retain(|_, bucket| bucket.refilled(self.rate, self.burst, now) < self.burst);
            if clients.len() >= self.max_clients {
                if let Some(idle) = clients
                    .iter()
                    .min_by_key(|(_, bucket)| bucket.last)
                    .map(|(ip, _)| *ip)
                {
                    clients.remove(&idle);
                }
            }
        }
        clients
            .entry(client)
            .or_insert_with(|| Bucket::full(self.burst, now))
            .take(self.rate, self.burst, now)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    const SECRET: &str = "s3cret-value";
    const BODY: &str = r#"{"repository": "packit/packit-worker", "namespace": "packit", "name": "packit-worker",
        "docker_url": "quay.io/packit/packit-worker", "homepage": "https://quay.io/repository/packit/packit-worker",
        "updated_tags": ["prod", "stg"]}"#;

    struct Fixture {
        router: Router,
        events: mpsc::Receiver<HookEvent>,
        metrics: Arc<Metrics>,
        health: Health,
        api: Arc<ApiReachability>,
    }

    fn fixture(secret: Option<&str>, burst: u32, capacity: usize) -> Fixture {
        let metrics = Arc::new(Metrics::new());
        let api = Arc::new(ApiReachability::new(Duration::from_secs(30)));
        let health = Health::new(Duration::from_secs(60), Some(api.clone()));
        let (sender, events) = mpsc::channel(capacity);
        let settings = HookSettings {
            secret: secret.map(str::to_owned),
            rate_per_second: 1.0,
            burst,
            unauthenticated_rate_per_second: 1.0,
            unauthenticated_burst: burst,
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let state = HttpState::new(metrics.clone(), health.clone()).with_hook(settings, sender);
        Fixture {
            router: router(state),
            events,
            metrics,
            health,
            api,
        }
    }

    fn hook_request(uri: &str, authorization: Option<&str>, body: &str) -> Request {
        let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }

    async fn send(router: &Router, request: Request) -> (StatusCode, HeaderMap, String) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn accepted_hook_with_bearer_sends_the_event() {
        let mut fixture = fixture(Some(SECRET), 20, 8);
        let (status, _, body) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&format!("Bearer {SECRET}")), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let event = fixture.events.try_recv().unwrap();
        assert_eq!(
            event,
            HookEvent {
                docker_url: "quay.io/packit/packit-worker".into(),
                updated_tags: vec!["prod".into(), "stg".into()],
            }
        );
        assert!(fixture
            .metrics
            .encode()
            .contains(r#"image_import_scheduler_webhook_requests_total{result="accepted"} 1"#));
    }

    #[tokio::test]
    async fn secret_in_query_is_accepted() {
        let mut fixture = fixture(Some(SECRET), 20, 8);
        let (status, _, body) = send(
            &fixture.router,
            hook_request(&format!("/hooks/import?secret={SECRET}"), None, BODY),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(fixture.events.try_recv().is_ok());
    }

    #[tokio::test]
    async fn wrong_or_missing_secret_is_401_and_sends_nothing() {
        let mut fixture = fixture(Some(SECRET), 20, 8);
        for (uri, authorization) in [
            ("/hooks/import", None),
            ("/hooks/import", Some("Bearer s3cret-valuf")),
            ("/hooks/import", Some("Bearer s3cret-value-longer")),
            ("/hooks/import", Some(SECRET)),
            ("/hooks/import?secret=nope", None),
        ] {
            let (status, _, body) =
                send(&fixture.router, hook_request(uri, authorization, BODY)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{uri} {authorization:?}: {body}"
            );
        }
        assert!(fixture.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn hook_without_secret_is_404() {
        let fixture = fixture(None, 20, 8);
        let (status, _, body) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&format!("Bearer {SECRET}")), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains(HOOK_SECRET_ENV), "{body}");
    }

    #[tokio::test]
    async fn malformed_bodies_are_400_with_a_reason() {
        let fixture = fixture(Some(SECRET), 20, 8);
        let auth = format!("Bearer {SECRET}");
        for (body, reason) in [
            ("not json", "not a repository notification"),
            (r#"{"updated_tags": ["prod"]}"#, "docker_url"),
            (
                r#"{"docker_url": "quay.io/a/b"}"#,
                "updated_tags is missing",
            ),
            (
                r#"{"docker_url": "quay.io/a/b", "updated_tags": []}"#,
                "empty",
            ),
            (
                r#"{"docker_url": "quay.io/a/b", "updated_tags": [""]}"#,
                "invalid tag",
            ),
            (
                r#"{"docker_url": "quay.io/a/b", "updated_tags": "prod"}"#,
                "not a repository notification",
            ),
        ] {
            let (status, _, text) = send(
                &fixture.router,
                hook_request("/hooks/import", Some(&auth), body),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
            assert!(text.contains(reason), "{body}: {text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn flood_is_429_with_retry_after() {
        let fixture = fixture(Some(SECRET), 2, 8);
        let auth = format!("Bearer {SECRET}");
        for _ in 0..2 {
            let (status, _, _) = send(
                &fixture.router,
                hook_request("/hooks/import", Some(&auth), BODY),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let (status, headers, _) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&auth), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
        // One token back after a second at 1/s.
        tokio::time::advance(Duration::from_secs(1)).await;
        let (status, _, _) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&auth), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    fn from(mut request: Request, peer: &str, forwarded_for: Option<&str>) -> Request {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(value) = forwarded_for {
            request
                .headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        request
    }

    #[tokio::test(start_paused = true)]
    async fn guesses_are_throttled_per_client_and_never_block_the_secret() {
        let mut fixture = fixture(Some(SECRET), 2, 64);
        let auth = format!("Bearer {SECRET}");
        let guess = || hook_request("/hooks/import?secret=wrong", None, BODY);
        let mut codes = Vec::new();
        for _ in 0..300 {
            let (status, _, _) = send(&fixture.router, from(guess(), "192.0.2.1:4000", None)).await;
            codes.push(status);
        }
        assert_eq!(codes[..2], [StatusCode::UNAUTHORIZED; 2]);
        assert!(codes[2..]
            .iter()
            .all(|code| *code == StatusCode::TOO_MANY_REQUESTS));
        // The right secret from the same address is still served.
        let (status, _, body) = send(
            &fixture.router,
            from(
                hook_request("/hooks/import", Some(&auth), BODY),
                "192.0.2.1:4000",
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(fixture.events.try_recv().is_ok());
        // Another client's guesses have their own budget.
        let (status, _, _) = send(&fixture.router, from(guess(), "192.0.2.2:4000", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let metrics = fixture.metrics.encode();
        for line in [
            r#"image_import_scheduler_webhook_requests_total{result="unauthorized"} 3"#,
            r#"image_import_scheduler_webhook_requests_total{result="unauthorized_rate_limited"} 298"#,
            r#"image_import_scheduler_webhook_requests_total{result="accepted"} 1"#,
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let fixture = fixture(Some(SECRET), 1, 8);
        let guess = || hook_request("/hooks/import", None, BODY);
        // Through the trusted router (10.0.0.0/8): each forwarded client counts alone.
        for client in ["198.51.100.1", "198.51.100.2", "2001:db8::1"] {
            let (status, _, _) = send(
                &fixture.router,
                from(
                    guess(),
                    "10.1.2.3:5000",
                    Some(&format!("203.0.113.9, {client}")),
                ),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{client}");
        }
        let (status, _, _) = send(
            &fixture.router,
            from(guess(), "10.1.2.3:5000", Some("198.51.100.1")),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // The same /64 is one client.
        let (status, _, _) = send(
            &fixture.router,
            from(guess(), "10.1.2.3:5000", Some("2001:db8::2")),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // An untrusted peer cannot pick a fresh address per request.
        for (n, forwarded) in ["198.51.100.7", "198.51.100.8"].iter().enumerate() {
            let (status, _, _) = send(
                &fixture.router,
                from(guess(), "192.0.2.50:6000", Some(forwarded)),
            )
            .await;
            let expected = if n == 0 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            assert_eq!(status, expected, "{forwarded}");
        }
    }

    #[test]
    fn client_address_table() {
        let trusted: Vec<IpNet> = parse_trusted_proxies("10.0.0.0/8, 192.0.2.7").unwrap();
        let table: &[(&str, Option<&str>, &str)] = &[
            ("192.0.2.1", None, "192.0.2.1"),
            ("192.0.2.1", Some("198.51.100.1"), "192.0.2.1"),
            ("10.0.0.1", None, "10.0.0.1"),
            ("10.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            ("10.0.0.1", Some("1.1.1.1, 198.51.100.1"), "198.51.100.1"),
            ("10.0.0.1", Some("198.51.100.1, 192.0.2.7"), "198.51.100.1"),
            ("10.0.0.1", Some("198.51.100.1:443"), "198.51.100.1"),
            ("10.0.0.1", Some("garbage"), "10.0.0.1"),
            ("192.0.2.7", Some("10.9.9.9"), "10.9.9.9"),
            ("10.0.0.1", Some("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::"),
            ("::ffff:192.0.2.1", None, "192.0.2.1"),
        ];
        for (peer, forwarded, expected) in table {
            let mut headers = HeaderMap::new();
            if let Some(value) = forwarded {
                headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            let got = client_address(peer.parse().unwrap(), &headers, &trusted);
            assert_eq!(got.to_string(), *expected, "{peer} {forwarded:?}");
        }
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("router")
            .unwrap_err()
            .contains("`router`"));
        assert_eq!(parse_trusted_proxies(" ").unwrap(), Vec::<IpNet>::new());
    }

    #[test]
    fn client_buckets_stay_bounded() {
        let buckets = ClientBuckets::new(1.0, 1, 3);
        let now = Instant::now();
        for i in 0..10u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
            assert!(buckets.try_take(ip, now).is_ok());
            assert!(buckets.tracked() <= 3);
        }
        // The newest client is still tracked (and throttled).
        assert!(buckets
            .try_take(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), now)
            .is_err());
    }

    #[tokio::test]
    async fn full_queue_is_503() {
        let fixture = fixture(Some(SECRET), 20, 1);
        let auth = format!("Bearer {SECRET}");
        let (status, _, _) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&auth), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (status, headers, _) = send(
            &fixture.router,
            hook_request("/hooks/import", Some(&auth), BODY),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_openmetrics() {
        let fixture = fixture(None, 20, 8);
        fixture.metrics.set_leader(true);
        let (status, headers, body) = send(
            &fixture.router,
            Request::get("/metrics").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            OPENMETRICS_CONTENT_TYPE
        );
        assert!(
            body.lines()
                .any(|line| line == "image_import_scheduler_leader 1"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn readyz_follows_the_api_and_healthz_does_not() {
        let fixture = fixture(None, 20, 8);
        fixture.health.set_config_loaded(true);
        fixture.health.heartbeat();
        fixture.api.success();
        fixture
            .api
            .failure("update leases: connection reset by peer".into());
        tokio::time::advance(Duration::from_secs(31)).await;
        fixture.health.heartbeat();
        let ready = || Request::get("/readyz").body(Body::empty()).unwrap();
        let (status, _, body) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("Kubernetes API unreachable") && body.contains("update leases"),
            "{body}"
        );
        let (status, _, _) = send(
            &fixture.router,
            Request::get("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        fixture.api.success();
        let (status, _, _) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_needs_config_and_api() {
        let fixture = fixture(None, 20, 8);
        let ready = || Request::get("/readyz").body(Body::empty()).unwrap();
        let (status, _, body) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "configuration not loaded yet\n");
        fixture.health.set_config_loaded(true);
        let (status, _, body) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "Kubernetes API not reached yet\n");
        fixture.api.success();
        let (status, _, _) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_lists_other_clusters_in_trouble_and_stays_ready() {
        let fixture = fixture(None, 20, 8);
        fixture.health.set_config_loaded(true);
        fixture.api.success();
        fixture
            .api
            .cluster("stg-cluster/kubeconfig")
            .set_setup_error(Some("Secret ns/stg-cluster does not exist".into()));
        let ready = || Request::get("/readyz").body(Body::empty()).unwrap();
        let (status, _, body) = send(&fixture.router, ready()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "ready\ncluster stg-cluster/kubeconfig: Secret ns/stg-cluster does not exist; its environments retry with backoff, the others are unaffected\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn healthz_fails_when_the_loop_stalls() {
        let fixture = fixture(None, 20, 8);
        let health = || Request::get("/healthz").body(Body::empty()).unwrap();
        let (status, _, _) = send(&fixture.router, health()).await;
        assert_eq!(status, StatusCode::OK);
        fixture.health.heartbeat();
        tokio::time::advance(Duration::from_secs(30)).await;
        let (status, _, _) = send(&fixture.router, health()).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::advance(Duration::from_secs(31)).await;
        let (status, _, body) = send(&fixture.router, health()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("stalled"), "{body}");
    }

    #[tokio::test]
    async fn serve_stops_on_shutdown() {
        let fixture = fixture(None, 20, 8);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_listener(listener, fixture.router, shutdown.clone()));
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
