//! Events against the test cluster: every Event about an ImageStream names
//! the stream's uid, because `kubectl describe is NAME` selects Events by
//! `involvedObject.uid` and never shows one without it.

mod support;

use import_scheduler::events::{action, image_stream_ref, reason, EventSink, EventType};
use serde_json::Value;
use support::{admin_client as client, events};
use test_cluster::{TagSeed, TestCluster};

/// A missed window reported at start-up knows only the stream's name (from
/// the state of an earlier run): the sink reads the uid.
#[tokio::test]
async fn an_event_without_the_uid_at_hand_gets_the_streams_uid() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.create_namespace("events-uid").await.expect("ns");
    let repo = format!("{ns}/worker");
    cluster
        .registry()
        .push_image(&repo, "prod")
        .await
        .expect("push");
    cluster
        .seed_stream(
            &ns,
            "worker",
            &[TagSeed::new(
                "prod",
                cluster.registry().image_ref(&repo, "prod"),
            )],
        )
        .await
        .expect("seed");
    let uid = cluster.stream(&ns, "worker").await.expect("stream")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();

    let sink = EventSink::new(client(cluster).await, "test", &ns);
    for (i, object) in [
        image_stream_ref(&ns, "worker", None),
        image_stream_ref(&ns, "worker", Some(String::new())),
    ]
    .into_iter()
    .enumerate()
    {
        sink.try_publish(
            &object,
            EventType::Warning,
            reason::WINDOW_MISSED,
            action::SCHEDULE,
            format!("worker:prod was not imported in window {i}"),
        )
        .await
        .expect("publish");
    }
    let missed = events(cluster, &ns, reason::WINDOW_MISSED).await;
    assert_eq!(missed.len(), 2, "{missed:#?}");
    for event in &missed {
        assert_eq!(event["regarding"]["uid"], uid.as_str(), "{event:#}");
        assert_eq!(event["regarding"]["kind"], "ImageStream", "{event:#}");
    }

    // A stream that does not exist (deleted meanwhile): the Event still goes
    // out, without a uid, for `oc get events`.
    sink.try_publish(
        &image_stream_ref(&ns, "gone", None),
        EventType::Warning,
        reason::WINDOW_MISSED,
        action::SCHEDULE,
        "gone:prod was not imported".into(),
    )
    .await
    .expect("publish about a missing stream");
    let gone: Vec<Value> = events(cluster, &ns, reason::WINDOW_MISSED)
        .await
        .into_iter()
        .filter(|e| e["regarding"]["name"] == "gone")
        .collect();
    assert_eq!(gone.len(), 1, "{gone:#?}");
    assert!(gone[0]["regarding"]["uid"].is_null(), "{:#}", gone[0]);
}
