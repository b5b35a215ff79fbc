//! Broker restart: the Kafka broker is SIGKILLed in the middle of a stream and restarted.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn killing_and_restarting_the_broker_loses_nothing() {
    let env = TestEnv::exclusive("broker").await;
    let service = Service::start(&env, &[]);
    let uids = env.path("uids.tsv");
    let producer = spawn_emulator(
        &env,
        &[
            "--count",
            "15000",
            "--rate",
            "1500",
            "--invalid-ratio",
            "0.02",
            "--message-timeout-ms",
            "120000",
            "--uids-out",
            uids.to_str().expect("path"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    infra(&env, "kafka", "kill", "kafka");
    tokio::time::sleep(Duration::from_secs(3)).await;
    infra(&env, "kafka", "start", "kafka");

    finish_emulator(producer);
    assert!(
        wait_until_drained(&env, Duration::from_secs(180)).await,
        "not drained after the broker restart; log:\n{}",
        service.log_text()
    );
    assert_exactly_the_valid_orders_are_stored(&env, &uids).await;
}
