//! The alerts gate's client against a real local HTTP server standing in
//! for Prometheus' `/api/v1/alerts`: answers, HTTP and API errors, a server
//! that never answers, one that is not there, and the bearer token read
//! from its file at every check. (Against real Prometheus: see the
//! test cluster's Prometheus harness.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use import_scheduler::gates::alerts::verdict;
use import_scheduler::gates::alerts_client::AlertsClient;
use import_scheduler::gates::matchers::parse_matchers;

#[derive(Clone, Copy)]
enum Answer {
    Json(u16, &'static str),
    Hang,
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<(String, Option<String>)>>,
    script: Mutex<VecDeque<Answer>>,
}

async fn handle(State(log): State<Arc<Log>>, uri: Uri, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    log.seen.lock().unwrap().push((uri.path().to_owned(), auth));
    let answer = log.script.lock().unwrap().pop_front();
    match answer {
        Some(Answer::Json(code, body)) => (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Some(Answer::Hang) => std::future::pending().await,
        None => StatusCode::GONE.into_response(),
    }
}

async fn prometheus(script: &[Answer]) -> (String, Arc<Log>) {
    let log = Arc::new(Log::default());
    *log.script.lock().unwrap() = script.iter().copied().collect();
    let app = axum::Router::new().fallback(handle).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/prometheus/"), log)
}

const FIRING: &str = r#"{"status":"success","data":{"alerts":[
  {"labels":{"alertname":"WorkerDown","namespace":"packit-prod","severity":"critical"},"state":"firing","activeAt":"2026-11-30T10:00:00Z","value":"1e+00"},
  {"labels":{"alertname":"Slow","namespace":"packit-prod","severity":"warning"},"state":"pending","value":"1e+00"},
  {"labels":{"alertname":"StgDown","namespace":"packit-stg","severity":"critical"},"state":"firing","value":"1e+00"}
]}}"#;

#[tokio::test]
async fn alerts_are_read_with_the_token_of_the_moment() {
    let (url, log) = prometheus(&[
        Answer::Json(200, FIRING),
        Answer::Json(200, r#"{"status":"success","data":{"alerts":[]}}"#),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let client = AlertsClient::new(Duration::from_secs(10));
    let matchers =
        parse_matchers(r#"namespace="packit-prod",severity=~"critical|warning""#).unwrap();

    let answer = client.alerts(&url, Some(&token)).await;
    assert_eq!(answer.as_ref().map(Vec::len), Ok(3), "{answer:?}");
    assert_eq!(
        verdict(&answer, &matchers),
        Err("firing: WorkerDown".to_owned()),
        "only firing alerts that match hold"
    );
    // A rotated token is used at the next check.
    std::fs::write(&token, "second").unwrap();
    let answer = client.alerts(&url, Some(&token)).await;
    assert_eq!(verdict(&answer, &matchers), Ok(()));
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                "/prometheus/api/v1/alerts".to_owned(),
                Some("Bearer first".to_owned())
            ),
            (
                "/prometheus/api/v1/alerts".to_owned(),
                Some("Bearer second".to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn errors_say_why_there_is_no_answer() {
    let (url, log) = prometheus(&[
        Answer::Json(503, "service unavailable"),
        Answer::Json(
            200,
            r#"{"status":"error","errorType":"internal","error":"rule manager down"}"#,
        ),
        Answer::Json(200, "not json"),
        Answer::Hang,
    ])
    .await;
    let client = AlertsClient::new(Duration::from_millis(500));
    let alerts_url = format!("{}api/v1/alerts", url);
    let e = client.alerts(&url, None).await.unwrap_err();
    assert_eq!(
        e,
        format!("{alerts_url} answered HTTP 503: service unavailable")
    );
    let e = client.alerts(&url, None).await.unwrap_err();
    assert_eq!(
        e,
        format!("{alerts_url} answered error: internal: rule manager down")
    );
    let e = client.alerts(&url, None).await.unwrap_err();
    assert_eq!(
        e,
        format!("{alerts_url} answered with no alerts API document: not json")
    );
    let e = client.alerts(&url, None).await.unwrap_err();
    assert_eq!(e, format!("{alerts_url}: no answer within 500ms"));
    assert!(
        log.seen
            .lock()
            .unwrap()
            .iter()
            .all(|(_, auth)| auth.is_none()),
        "no token file, no Authorization header"
    );
    let held = verdict(&Err(e), &[]).unwrap_err();
    assert!(
        held.starts_with("Prometheus cannot be asked for alerts ("),
        "{held}"
    );

    let missing = tempfile::tempdir().unwrap().path().join("token");
    let e = client.alerts(&url, Some(&missing)).await.unwrap_err();
    assert!(e.starts_with("cannot read the bearer token file "), "{e}");
    assert_eq!(
        log.seen.lock().unwrap().len(),
        4,
        "nothing sent without the token"
    );
}

#[tokio::test]
async fn a_prometheus_that_is_not_there_is_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = AlertsClient::new(Duration::from_secs(10));
    let e = client
        .alerts(&format!("http://127.0.0.1:{port}"), None)
        .await
        .unwrap_err();
    assert!(
        e.starts_with(&format!(
            "http://127.0.0.1:{port}/api/v1/alerts: client error (Connect)"
        )),
        "{e}"
    );
    assert!(e.to_lowercase().contains("connection refused"), "{e}");
}
