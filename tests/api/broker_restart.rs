//! Broker restart: the Kafka broker is SIGKILLed in the middle of a stream, while messages
//! are with the writers, and restarted once the service has noticed; every valid order is
//! stored exactly once.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn killing_and_restarting_the_broker_loses_nothing() {
    let env = TestEnv::exclusive("broker").await;
    let service = Service::start(&env, &[]);
    let mut stream = Stream::start(
        &env,
        StreamSpec {
            message_timeout_ms: Some(120_000),
            ..StreamSpec::new(15_000, 1_500)
        },
    );
    // The kill lands mid-stream: the service is storing it, and messages are in flight.
    assert!(
        wait_stored(&service, 2_000, Duration::from_secs(60)).await,
        "the stream was not being stored; log:\n{}",
        service.log_text()
    );
    let in_flight = wait_in_flight(&service).await;
    let committed_before: i64 = env.committed().values().sum();
    infra(&env, "kafka", "kill", "kafka");
    assert!(
        in_flight,
        "no message was with the writers when the broker was killed"
    );
    assert!(stream.producing(), "the stream had ended before the kill");
    // Restart once the service has seen the broker go.
    assert!(
        eventually(Duration::from_secs(30), || async {
            metric(&service, "orders_kafka_up").await == Some(0.0)
        })
        .await,
        "the service never reported the broker down; log:\n{}",
        service.log_text()
    );
    infra(&env, "kafka", "start", "kafka");

    stream.finish();
    assert!(
        wait_until_drained(&env, Duration::from_secs(180)).await,
        "not drained after the broker restart; log:\n{}",
        service.log_text()
    );
    let committed_after: i64 = env.committed().values().sum();
    assert!(
        committed_after > committed_before,
        "nothing was committed after the restart"
    );
    stream
        .assert_exactly_its_valid_orders_are_stored(&env)
        .await;
}
