//! Ingest against the real broker and database: round trip, dead letters for every kind of
//! invalid message, duplicates and conflicts.

use std::time::Duration;

use crate::helpers::*;
use diesel_async::SimpleAsyncConnection;
use orders_service::db::queries;
use serde_json::{Value, json};

async fn wait_for_order(service: &Service, uid: &str) -> Value {
    let path = format!("/order/{uid}");
    let found = eventually(Duration::from_secs(30), || async {
        get_json(service, &path).await.0 == 200
    })
    .await;
    assert!(
        found,
        "order {uid} never became visible; log:\n{}",
        service.log_text()
    );
    get_json(service, &path).await.1
}

#[tokio::test]
async fn model_json_round_trips_through_kafka_postgres_and_the_api() {
    let env = TestEnv::new("roundtrip").await;
    let service = Service::start(&env, &[]);
    let model = model();
    env.produce(&[(
        "b563feb7b2b84b6test",
        serde_json::to_vec(&model).expect("json"),
    )])
    .await;

    let served = wait_for_order(&service, "b563feb7b2b84b6test").await;
    assert_eq!(served, model, "the API must give model.json back unchanged");

    // The rows themselves, reassembled without the cache.
    let mut conn = env.db().await;
    let from_rows = queries::find_order(&mut conn, "b563feb7b2b84b6test")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(serde_json::to_value(&from_rows).expect("json"), model);
    for (table, n) in [
        ("orders", 1),
        ("deliveries", 1),
        ("payments", 1),
        ("items", 1),
    ] {
        assert_eq!(
            count(&mut conn, &format!("SELECT count(*) AS n FROM {table}")).await,
            n,
            "{table}"
        );
    }
    // Normalized with real types: the timestamp is a timestamptz, money is bigint.
    assert_eq!(
        count(
            &mut conn,
            "SELECT extract(epoch FROM date_created)::bigint AS n FROM orders"
        )
        .await,
        1_637_907_739
    );
}

fn variant(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = model();
    mutate(&mut v);
    serde_json::to_vec(&v).expect("json")
}

#[tokio::test]
async fn every_invalid_kind_is_dead_lettered_with_its_reason_and_committed() {
    let env = TestEnv::new("invalid").await;
    let service = Service::start(&env, &[]);
    let mut valid = model();
    valid["order_uid"] = json!("valid_neighbour");
    let huge = variant(|v| {
        v["order_uid"] = json!("too_big");
        v["padding"] = json!("x".repeat(70 * 1024));
    });
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("m1", b"{not json".to_vec(), "malformed"),
        ("m2", vec![0xff, 0xfe, 0x00, 0x7b], "malformed"),
        ("m3", b"[1, 2, 3]".to_vec(), "malformed"),
        ("too_big", huge, "too_large"),
        (
            "s1",
            variant(|v| {
                v.as_object_mut().expect("obj").remove("payment");
                v["order_uid"] = json!("s1");
            }),
            "schema",
        ),
        (
            "s2",
            variant(|v| {
                v["items"][0]["price"] = json!("453");
                v["order_uid"] = json!("s2");
            }),
            "schema",
        ),
        (
            "i1",
            variant(|v| {
                v["delivery"]["phone"] = json!("call me");
                v["order_uid"] = json!("i1");
            }),
            "invalid",
        ),
        (
            "i2",
            variant(|v| {
                v["payment"]["currency"] = json!("usd");
                v["order_uid"] = json!("i2");
            }),
            "invalid",
        ),
        (
            "i3",
            variant(|v| {
                v["items"] = json!([]);
                v["order_uid"] = json!("i3");
            }),
            "invalid",
        ),
        (
            "i4",
            variant(|v| {
                v["date_created"] = json!("yesterday");
                v["order_uid"] = json!("i4");
            }),
            "invalid",
        ),
        (
            "c1",
            variant(|v| {
                v["payment"]["amount"] = json!(1);
                v["order_uid"] = json!("c1");
            }),
            "inconsistent",
        ),
    ];
    let mut messages: Vec<(&str, Vec<u8>)> =
        cases.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    messages.push(("valid_neighbour", serde_json::to_vec(&valid).expect("json")));
    env.produce(&messages).await;

    let served = wait_for_order(&service, "valid_neighbour").await;
    assert_eq!(
        served, valid,
        "a valid order among invalid ones is stored unchanged"
    );

    let mut conn = env.db().await;
    let all_in = eventually(Duration::from_secs(30), || async {
        count(
            &mut env.db().await,
            "SELECT count(*) AS n FROM dead_letters",
        )
        .await
            == cases.len() as i64
    })
    .await;
    assert!(
        all_in,
        "expected {} dead letters; log:\n{}",
        cases.len(),
        service.log_text()
    );
    // Each message has its own letter, found by its key (a malformed payload has no
    // order_uid), with the reason it was made to fail with.
    let letters = dead_letters(&mut conn).await;
    for (key, _, reason) in &cases {
        let mine: Vec<&LetterRow> = letters
            .iter()
            .filter(|l| l.key.as_deref() == Some(*key))
            .collect();
        assert!(
            mine.len() == 1 && mine[0].reason == *reason,
            "dead letters for {key}: {mine:?}, expected one {reason}"
        );
    }
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        1
    );
    // Detail and field path are kept.
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_letters WHERE reason = 'invalid' AND field = 'delivery.phone'").await,
        1
    );

    // The DLQ topic got every one, with the reason and original position in headers.
    let dlq = env.read_dlq(cases.len());
    assert_eq!(dlq.len(), cases.len(), "DLQ messages");
    for (_, headers) in &dlq {
        assert!(
            headers.contains_key("reason") && headers.contains_key("source-offset"),
            "{headers:?}"
        );
    }
    // A too-large payload is cut to the payload limit on the DLQ topic, and says so.
    let too_large = dlq
        .iter()
        .find(|(_, h)| h["reason"] == "too_large")
        .expect("too_large on the DLQ");
    assert_eq!(
        too_large.1.get("truncated").map(String::as_str),
        Some("true")
    );
    let mut reasons: Vec<&str> = dlq.iter().map(|(_, h)| h["reason"].as_str()).collect();
    let mut expected: Vec<&str> = cases.iter().map(|(_, _, r)| *r).collect();
    reasons.sort_unstable();
    expected.sort_unstable();
    assert_eq!(reasons, expected);

    // Their offsets are committed: the group has consumed the whole topic.
    let end = env.end_offsets();
    let committed_all = eventually(Duration::from_secs(20), || async {
        let committed = env.committed();
        end.iter()
            .all(|(p, high)| *high == 0 || committed.get(p) == Some(high))
    })
    .await;
    assert!(
        committed_all,
        "committed {:?} vs end {:?}",
        env.committed(),
        end
    );

    let (status, stats) = get_json(&service, "/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        stats["since_start"]["rejected_by_reason"]["malformed"],
        json!(3)
    );
}

#[tokio::test]
async fn a_duplicate_is_counted_and_a_conflict_is_dead_lettered_without_overwriting() {
    let env = TestEnv::new("dupes").await;
    let service = Service::start(&env, &[]);
    let model = model();
    let original = serde_json::to_vec(&model).expect("json");
    // Same content, other formatting and an unknown field: still the same order.
    let mut same = model.clone();
    same["not_in_the_spec"] = json!(true);
    let same = serde_json::to_vec_pretty(&same).expect("json");
    // Same uid, other (valid, consistent) content.
    let changed = variant(|v| {
        v["payment"]["delivery_cost"] = json!(1600);
        v["payment"]["amount"] = json!(1917);
    });
    env.produce(&[("b563feb7b2b84b6test", original.clone())])
        .await;
    wait_for_order(&service, "b563feb7b2b84b6test").await;
    env.produce(&[
        ("b563feb7b2b84b6test", original),
        ("b563feb7b2b84b6test", same),
        ("b563feb7b2b84b6test", changed),
    ])
    .await;

    let mut conn = env.db().await;
    let conflicted = eventually(Duration::from_secs(30), || async {
        count(
            &mut env.db().await,
            "SELECT count(*) AS n FROM dead_letters WHERE reason = 'conflict'",
        )
        .await
            == 1
    })
    .await;
    assert!(
        conflicted,
        "no conflict dead letter; log:\n{}",
        service.log_text()
    );
    let counted = eventually(Duration::from_secs(10), || async {
        get_json(&service, "/stats").await.1["since_start"]["duplicates"] == json!(2)
    })
    .await;
    assert!(counted, "stats: {}", get_json(&service, "/stats").await.1);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM orders").await,
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_letters").await,
        1
    );
    // The stored order is the first one, in the cache and in the database.
    assert_eq!(
        get_json(&service, "/order/b563feb7b2b84b6test").await.1,
        model
    );
    let stored = queries::find_order(&mut conn, "b563feb7b2b84b6test")
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(serde_json::to_value(stored).expect("json"), model);
}

/// Ingestion does not wait for the cache warm-up. The warm-up is held by a lock on `items`
/// (its page reads need the table; a dead letter does not touch it). Meanwhile an invalid
/// message must be dead-lettered and committed, while `/health` still answers 503 with the
/// cache warming. A SIGTERM then stops ingestion in order (exit 0, "shutdown complete"). A
/// restart after the lock is released reports ready once warm and serves the stored orders
/// from the cache. Fails if Kafka starts only after the warm-up (the dead letter waits for the
/// lock), if readiness stops waiting for the warm-up, or if a stop during the warm-up skips
/// the ordered stop.
#[tokio::test]
async fn ingestion_runs_while_the_cache_warms_and_readiness_waits_for_it() {
    let env = TestEnv::new("warming").await;
    let uids: Vec<String> = (0..5).map(|i| format!("warming_{i}")).collect();
    let first = Service::start(&env, &[]);
    env.produce_orders(uids.clone()).await;
    let stored = eventually(Duration::from_secs(30), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == 5
    })
    .await;
    assert!(
        stored,
        "the orders were not stored; log:\n{}",
        first.log_text()
    );
    assert_eq!(
        first.terminate(Duration::from_secs(30)).map(|s| s.code()),
        Some(Some(0))
    );

    let mut lock = env.db().await;
    lock.batch_execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock items");
    let service = Service::spawn(&env, &[], Duration::from_secs(60)).expect("service listens");
    let bad = env.produce(&[("bad", b"{not json".to_vec())]).await;
    let (partition, offset) = bad[0];
    // The event: the writer stored the dead letter, and the reader committed past it.
    let ingested = eventually(Duration::from_secs(30), || async {
        count(
            &mut env.db().await,
            "SELECT count(*) AS n FROM dead_letters",
        )
        .await
            == 1
            && env.committed().get(&partition) == Some(&(offset + 1))
    })
    .await;
    assert!(
        ingested,
        "nothing was ingested while the cache warmed; log:\n{}",
        service.log_text()
    );
    let (status, health) = get_json(&service, "/health").await;
    assert_eq!(status, 503, "ready before the cache is warm: {health}");
    assert_eq!(health["cache"], "warming", "{health}");
    assert_eq!(health["phase"], "warming the cache", "{health}");

    let log = service.log.clone();
    assert_eq!(
        service.terminate(Duration::from_secs(30)).map(|s| s.code()),
        Some(Some(0)),
        "a SIGTERM while warming must stop cleanly"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("stopping while the cache warms") && text.contains("shutdown complete"),
        "no ordered stop during the warm-up; log:\n{text}"
    );
    lock.batch_execute("COMMIT").await.expect("unlock");

    let warm = Service::start(&env, &[]);
    let (status, health) = get_json(&warm, "/health").await;
    assert_eq!(
        (status, &health["cache"]),
        (200, &json!("warm")),
        "{health}"
    );
    for uid in &uids {
        let res = http()
            .get(warm.url(&format!("/order/{uid}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.headers()["x-cache"], "hit", "{uid} was not warmed");
    }
}
