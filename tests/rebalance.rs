//! Two instances in one consumer group: a second one joins mid-stream (partitions move), then
//! the first one leaves (SIGTERM). Every valid order is stored exactly once.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn instances_joining_and_leaving_the_group_lose_and_duplicate_nothing() {
    let env = TestEnv::new("rebalance").await;
    let uids = env.path("uids.tsv");
    let first = Service::start(&env, &[]);
    let producer = spawn_emulator(
        &env,
        &[
            "--count",
            "15000",
            "--rate",
            "1500",
            "--invalid-ratio",
            "0.03",
            "--duplicate-ratio",
            "0.02",
            "--uids-out",
            uids.to_str().expect("path"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = Service::start(&env, &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = first
        .terminate(Duration::from_secs(20))
        .expect("first instance exits");
    assert!(status.success(), "first instance exit status {status}");

    finish_emulator(producer);
    assert!(
        wait_until_drained(&env, Duration::from_secs(120)).await,
        "not drained after the rebalances; log:\n{}",
        second.log_text()
    );
    assert_exactly_the_valid_orders_are_stored(&env, &uids).await;
    let log = second.log_text();
    assert!(
        log.contains("partitions assigned"),
        "the second instance never got partitions:\n{log}"
    );
}
