//! Crash test: the service is SIGKILLed at random moments while orders stream in; at the end
//! the database holds exactly the valid orders produced, each once, with exact item counts.
//! The kill timing is seeded (`CRASH_SEED` replays a run; the seed is printed), and so is the
//! stream (`STREAM_SEED`); an instance is killed only once it has partitions and is writing,
//! only while the stream is produced, and right after each kill the invariant "every offset
//! below the committed one is durable" is checked.

use std::time::{Duration, Instant};

use crate::helpers::*;
use rand::{Rng, SeedableRng};

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let env = TestEnv::new("crash").await;
    // Slow enough that the stream outlasts the kills: each restart waits for the dead
    // member's 6 s session before it gets partitions back, and a backlog drains in about a
    // second once it has them, so at a faster rate the later kills would find nothing left to
    // write and the test would no longer test what it claims (checked below).
    let mut stream = Stream::start(
        &env,
        StreamSpec {
            invalid: 0.05,
            duplicates: 0.02,
            conflicts: 0.005,
            ..StreamSpec::new(30_000, 600)
        },
    );

    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed: {seed} (CRASH_SEED={seed} replays the kill timing)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut kills, mut kills_while_writing) = (0, 0);
    // Kill while the stream is produced, at most 8 times.
    while kills < 8 && stream.producing() {
        let service = Service::start(&env, &[]);
        // Only once this instance has partitions and has written something.
        let writing = wait_stored(&service, 1, Duration::from_secs(10)).await;
        let alive = Duration::from_millis(rng.random_range(100..1500));
        tokio::time::sleep(alive).await;
        // Then at the first moment messages are with the writers (within a second).
        let in_flight = writing && wait_in_flight(&service).await;
        service.kill();
        kills += 1;
        if in_flight {
            kills_while_writing += 1;
        }
        assert_committed_offsets_are_durable(&env).await;
    }
    eprintln!("{kills_while_writing} of {kills} kills landed while writes were in flight");
    assert!(
        kills >= 5,
        "the stream ended after {kills} kills: too few to test anything (seed {seed}; slow \
         the stream down)"
    );
    assert!(
        kills_while_writing * 2 > kills,
        "most kills must land while writes are in flight: {kills_while_writing} of {kills} (seed {seed})"
    );
    let summary = stream.finish();
    eprintln!("emulator: {summary}; service killed {kills} times");

    let service = Service::start(&env, &[]);
    let drained = wait_until_drained(&env, Duration::from_secs(180)).await;
    assert!(
        drained,
        "the topic was not fully committed; log:\n{}",
        service.log_text()
    );
    stream
        .assert_exactly_its_valid_orders_are_stored(&env)
        .await;

    // Every rejected message is kept exactly once, with the reason the emulator intended.
    let expected_rejects = read_rejects(&stream.rejects);
    let mut conn = env.db().await;
    let letters = dead_letters(&mut conn).await;
    assert_eq!(
        letters.len(),
        expected_rejects.len(),
        "dead letters vs rejected messages produced"
    );
    for reason in [
        "malformed",
        "too_large",
        "schema",
        "invalid",
        "inconsistent",
        "conflict",
    ] {
        let want = expected_rejects.iter().filter(|(_, r)| r == reason).count();
        let got = letters.iter().filter(|l| l.reason == reason).count();
        assert_eq!(got, want, "dead letters with reason {reason}");
    }
}

/// The invariant, checkable at any moment: every message below its partition's committed
/// offset is durable — stored (`orders` keeps each order's Kafka position), a dead letter
/// (`dead_letters` keeps its position), or a re-delivery of an order stored from another
/// position (its key is a stored order_uid).
async fn assert_committed_offsets_are_durable(env: &TestEnv) {
    use std::collections::HashSet;

    use diesel::sql_types::{BigInt, Integer};
    use diesel::{QueryableByName, sql_query};
    use diesel_async::RunQueryDsl;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    #[derive(QueryableByName)]
    struct Pos {
        #[diesel(sql_type = Integer)]
        p: i32,
        #[diesel(sql_type = BigInt)]
        o: i64,
    }
    let committed = env.committed();
    let mut conn = env.db().await;
    let durable: HashSet<(i32, i64)> = sql_query(
        "SELECT kafka_partition AS p, kafka_offset AS o FROM orders \
         UNION ALL SELECT kafka_partition, kafka_offset FROM dead_letters",
    )
    .load::<Pos>(&mut conn)
    .await
    .expect("positions")
    .into_iter()
    .map(|r| (r.p, r.o))
    .collect();
    let stored: HashSet<String> = stored_orders(&mut conn)
        .await
        .into_iter()
        .map(|r| r.order_uid)
        .collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .set("group.id", format!("{}_invariant", env.group))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for partition in committed.keys() {
        tpl.add_partition_offset(&env.topic, *partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let wanted: i64 = committed.values().sum();
    let (mut seen, mut checked) = (0i64, 0i64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < wanted && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let below = committed
            .get(&m.partition())
            .is_some_and(|c| m.offset() < *c);
        if !below {
            continue;
        }
        seen += 1;
        let position = (m.partition(), m.offset());
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let redelivery = key.is_some_and(|k| stored.contains(&k));
        assert!(
            durable.contains(&position) || redelivery,
            "offset {position:?} is below the committed offset {committed:?} but durable nowhere"
        );
        checked += 1;
    }
    assert_eq!(
        seen, wanted,
        "read every message below the committed offsets"
    );
    eprintln!("invariant holds for {checked} committed messages");
}
