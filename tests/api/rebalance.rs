//! Two instances in one consumer group: a second one joins mid-stream (partitions move), then
//! the first one leaves (SIGTERM). Every valid order is stored exactly once.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn instances_joining_and_leaving_the_group_lose_and_duplicate_nothing() {
    let env = TestEnv::new("rebalance").await;
    let first = Service::start(&env, &[]);
    let mut stream = Stream::start(
        &env,
        StreamSpec {
            invalid: 0.03,
            duplicates: 0.02,
            ..StreamSpec::new(15_000, 1_500)
        },
    );
    // The second instance joins while the first is storing the stream.
    assert!(
        wait_stored(&first, 1_000, Duration::from_secs(60)).await,
        "the first instance was not storing the stream; log:\n{}",
        first.log_text()
    );
    let second = Service::start(&env, &[]);
    // Once the first instance has given partitions away, it exports series only for the
    // partitions it still owns (revoked ones are removed, not left at their last value).
    let owned_by_first = || async {
        let (_, stats) = get_json(&first, "/stats").await;
        stats["consumer"]["partitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["partition"].as_i64())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(30), || async {
            let n = owned_by_first().await.len();
            n > 0 && n < 6
        })
        .await,
        "the first instance never gave partitions away"
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // statistics come every second
    let owned = owned_by_first().await;
    let text = http()
        .get(first.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for line in text.lines().filter(|l| {
        l.starts_with("orders_consumer_lag{") || l.starts_with("orders_committed_offset{")
    }) {
        let partition: i64 = line
            .split("partition=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|p| p.parse().ok())
            .expect("partition label");
        assert!(
            owned.contains(&partition),
            "series for partition {partition}, owned {owned:?}: {line}"
        );
    }
    let status = first
        .terminate(Duration::from_secs(20))
        .expect("first instance exits");
    assert!(status.success(), "first instance exit status {status}");

    stream.finish();
    assert!(
        wait_until_drained(&env, Duration::from_secs(120)).await,
        "not drained after the rebalances; log:\n{}",
        second.log_text()
    );
    stream
        .assert_exactly_its_valid_orders_are_stored(&env)
        .await;
    let log = second.log_text();
    assert!(
        log.contains("partitions assigned"),
        "the second instance never got partitions:\n{log}"
    );
}

/// Commit on revoke, tested for itself: with the periodic commit slowed to a minute, the only
/// commit that can happen when a second instance joins is the one on revoke. The stream is
/// drained by rows (not by committed offsets), then the second instance joins: right after
/// the rebalance the committed offsets are the end of every partition, and the new owner
/// receives nothing again.
#[tokio::test]
async fn offsets_are_committed_on_revoke_so_the_next_owner_re_reads_nothing() {
    let env = TestEnv::new("revoke_commit").await;
    let slow_commit = [("KAFKA_COMMIT_INTERVAL_MS", "60000")];
    let first = Service::start(&env, &slow_commit);
    let sent = env
        .produce_orders((0..600).map(|i| format!("revoke-{i}")))
        .await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == 600
        })
        .await,
        "not stored; log:\n{}",
        first.log_text()
    );
    let second = Service::start(&env, &slow_commit);
    assert!(
        eventually(Duration::from_secs(30), || async {
            second.log_text().contains("partitions assigned")
        })
        .await,
        "the second instance never got partitions"
    );
    let end: std::collections::BTreeMap<i32, i64> = env
        .end_offsets()
        .into_iter()
        .filter(|(_, high)| *high > 0)
        .collect();
    // Well inside the 60 s periodic commit: only the revoke can have committed these.
    let committed_on_revoke =
        eventually(Duration::from_secs(10), || async { env.committed() == end }).await;
    assert!(
        committed_on_revoke,
        "committed {:?} vs end {end:?} after the rebalance ({} messages)",
        env.committed(),
        sent.len()
    );
    // Give the new owner time to fetch whatever it would (it polls every 100 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let consumed = metric(&second, "orders_messages_consumed_total").await;
    assert_eq!(consumed, Some(0.0), "the new owner re-read messages");
}

/// Static membership (`KAFKA_INSTANCE_ID`): an instance killed and started again takes its
/// partitions back at once instead of waiting for its old session to time out (30 s here;
/// with dynamic membership the restarted instance consumes nothing until then).
#[tokio::test]
async fn a_static_member_killed_and_restarted_consumes_again_at_once() {
    let env = TestEnv::new("static_member").await;
    let settings = [
        ("KAFKA_INSTANCE_ID", "orders-test-1"),
        ("KAFKA_SESSION_TIMEOUT_MS", "30000"),
    ];
    let first = Service::start(&env, &settings);
    env.produce_orders((0..20).map(|i| format!("static-{i}")))
        .await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    first.kill();

    let restarted = std::time::Instant::now();
    let second = Service::start(&env, &settings);
    env.produce_orders((0..20).map(|i| format!("static-after-{i}")))
        .await;
    let resumed = eventually(Duration::from_secs(10), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == 40
    })
    .await;
    let took = restarted.elapsed();
    assert!(
        resumed,
        "not consumed within 10 s of the restart (the old session lasts 30 s); log:\n{}",
        second.log_text()
    );
    eprintln!("static member: consuming again {took:?} after the restart");
}
