//! Graceful stop: SIGTERM during a stream exits 0 within the deadline after committing
//! exactly what was written, so a restart re-delivers nothing that was already stored.

use std::time::{Duration, Instant};

use crate::helpers::*;
use diesel::sql_types::{BigInt, Integer};
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Highest {
    #[diesel(sql_type = Integer)]
    partition: i32,
    #[diesel(sql_type = BigInt)]
    offset: i64,
}

#[tokio::test]
async fn sigterm_drains_commits_exits_zero_and_a_restart_redelivers_nothing_stored() {
    let env = TestEnv::new("sigterm").await;
    let service = Service::start(&env, &[("SHUTDOWN_TIMEOUT_MS", "10000")]);
    let mut stream = Stream::start(
        &env,
        StreamSpec {
            invalid: 0.03,
            ..StreamSpec::new(12_000, 2_000)
        },
    );
    // SIGTERM while the stream is being stored.
    assert!(
        wait_stored(&service, 1_000, Duration::from_secs(60)).await,
        "the stream was not being stored; log:\n{}",
        service.log_text()
    );

    let log = service.log.clone();
    let asked = Instant::now();
    let status = service
        .terminate(Duration::from_secs(20))
        .expect("exited before the deadline");
    let took = asked.elapsed();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{log_text}");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert!(log_text.contains("shutdown complete"), "log:\n{log_text}");
    eprintln!("SIGTERM → exit 0 in {took:?}");

    // Everything written so far lies below the committed offsets: nothing stored is above.
    let committed = env.committed();
    let mut conn = env.db().await;
    let highest: Vec<Highest> = sql_query(
        "SELECT kafka_partition AS partition, max(kafka_offset) AS offset FROM \
         (SELECT kafka_partition, kafka_offset FROM orders UNION ALL \
          SELECT kafka_partition, kafka_offset FROM dead_letters) t GROUP BY kafka_partition",
    )
    .load(&mut conn)
    .await
    .expect("highest written offsets");
    assert!(
        !highest.is_empty(),
        "nothing was written before the SIGTERM"
    );
    for h in &highest {
        let next = committed.get(&h.partition).copied().unwrap_or(0);
        // Committed past every stored message; equal unless the tail held duplicates,
        // which leave no row of their own.
        assert!(
            h.offset < next,
            "partition {}: committed {next} but wrote up to {}: a restart would re-deliver it",
            h.partition,
            h.offset
        );
    }

    // The restart continues from there; duplicates it sees are only the emulator's own.
    let service = Service::start(&env, &[]);
    stream.finish();
    assert!(
        wait_until_drained(&env, Duration::from_secs(120)).await,
        "log:\n{}",
        service.log_text()
    );
    stream
        .assert_exactly_its_valid_orders_are_stored(&env)
        .await;
}
