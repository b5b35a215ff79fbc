//! The in-flight memory bound, measured: during a database that stops answering (its
//! `orders` table locked, so writes hang instead of failing), ~125 MB of large orders arrive;
//! the service's peak RSS above its idle RSS must stay within `MAX_IN_FLIGHT_BYTES` (which
//! counts what each message holds: raw, parsed, JSON) plus 32 MiB of slack (allocator,
//! librdkafka's buffers: its fetch queue is emptied when the partitions pause). Counting
//! payload bytes only (the bug this catches), the growth is about three times the bound and
//! this fails.
//! Prints the figures. Then the lock is released and every order is stored.

use std::time::{Duration, Instant};

use crate::helpers::*;
use diesel_async::SimpleAsyncConnection;

const MIB: u64 = 1 << 20;
const IN_FLIGHT_BYTES: u64 = 32 * MIB;
const SLACK: u64 = 32 * MIB;

/// A `/proc/PID/status` field in bytes (VmRSS: now, VmHWM: peak).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("field")
        * 1024
}

#[tokio::test]
async fn peak_memory_during_a_long_outage_stays_under_the_documented_ceiling() {
    let env = TestEnv::new("memory").await;
    let bound = IN_FLIGHT_BYTES.to_string();
    let service = Service::start(
        &env,
        &[
            ("MAX_IN_FLIGHT_BYTES", bound.as_str()),
            ("CACHE_MAX_BYTES", "0"),
            ("DB_WRITE_TIMEOUT_MS", "600000"),
        ],
    );
    let idle = proc_kib(service.pid(), "VmRSS:");

    let mut lock = env.db().await;
    lock.batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock orders");
    let count = 2_500;
    let payload_bytes = order_with_items("size-probe", 200).len();
    env.produce_each((0..count).map(|i| format!("big-{i}")), |uid| {
        order_with_items(uid, 200)
    })
    .await;

    // The event: the reader has hit its bound and paused.
    assert!(
        eventually(Duration::from_secs(60), || async {
            metric(&service, "orders_consumer_paused").await == Some(1.0)
        })
        .await,
        "the reader never paused; log:\n{}",
        service.log_text()
    );
    // Stay in the outage a while, sampling the peak.
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = proc_kib(service.pid(), "VmHWM:");
    let counted = metric(&service, "orders_in_flight_bytes")
        .await
        .unwrap_or(0.0) as u64;
    let ceiling = IN_FLIGHT_BYTES + SLACK;
    eprintln!(
        "memory: {count} orders of {payload_bytes} B ({} MiB) during the outage; idle RSS {} MiB, \
         peak RSS {} MiB, growth {} MiB; in flight counted {} MiB (bound {} MiB); ceiling \
         (bound + slack) {} MiB",
        count as u64 * payload_bytes as u64 / MIB,
        idle / MIB,
        peak / MIB,
        peak.saturating_sub(idle) / MIB,
        counted / MIB,
        IN_FLIGHT_BYTES / MIB,
        ceiling / MIB
    );
    assert!(
        peak.saturating_sub(idle) <= ceiling,
        "peak RSS grew by {} MiB, over the ceiling of {} MiB",
        peak.saturating_sub(idle) / MIB,
        ceiling / MIB
    );

    lock.batch_execute("COMMIT").await.expect("unlock");
    assert!(
        wait_until_drained(&env, Duration::from_secs(120)).await,
        "not drained after the outage; log:\n{}",
        service.log_text()
    );
    let stored =
        crate::helpers::count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await;
    assert_eq!(stored, count as i64, "every order stored after the outage");
}

/// The DLQ backlog's bound, measured: with the DLQ topic missing, 5,000 rejected messages of
/// 40 KB each (~200 MB) arrive. Dead letters waiting for the topic share one queue bounded by
/// `DLQ_BACKLOG_MAX_BYTES`; what does not fit is kept in the table only. Peak RSS above idle
/// must stay within `MAX_IN_FLIGHT_BYTES` + the backlog's bound + 64 MiB of slack. With a
/// task per batch holding its letters (the bug this catches) the growth was ~250 MiB. Every
/// message must still be in `dead_letters`. Prints idle, peak and growth.
#[tokio::test]
async fn dead_letters_waiting_for_a_missing_dlq_topic_hold_bounded_memory() {
    let env = TestEnv::with_topics(
        "dlqmemory",
        Topics {
            orders: true,
            dlq: false,
        },
    )
    .await;
    const BACKLOG_BYTES: u64 = 16 * MIB;
    const DLQ_SLACK: u64 = 64 * MIB;
    let in_flight = IN_FLIGHT_BYTES.to_string();
    let backlog = BACKLOG_BYTES.to_string();
    let service = Service::start(
        &env,
        &[
            ("MAX_IN_FLIGHT_BYTES", in_flight.as_str()),
            ("DLQ_BACKLOG_MAX_BYTES", backlog.as_str()),
            ("CACHE_MAX_BYTES", "0"),
        ],
    );
    let idle = proc_kib(service.pid(), "VmRSS:");
    let count = 5_000;
    let letter_bytes = 40_000;
    // Not JSON: each is rejected `malformed` at once, with its whole payload kept.
    env.produce_each((0..count).map(|i| format!("reject-{i}")), |key| {
        let mut payload = format!("{key}:").into_bytes();
        payload.resize(letter_bytes, b'x');
        payload
    })
    .await;
    assert!(
        wait_until_drained(&env, Duration::from_secs(300)).await,
        "not every message was committed; log:\n{}",
        service.log_text()
    );
    let peak = proc_kib(service.pid(), "VmHWM:");
    let overflow = metric(&service, "orders_dlq_overflow_total")
        .await
        .unwrap_or(0.0);
    let given_up = metric(&service, "orders_dlq_given_up_total")
        .await
        .unwrap_or(0.0);
    let ceiling = IN_FLIGHT_BYTES + BACKLOG_BYTES + DLQ_SLACK;
    eprintln!(
        "dlq memory: {count} rejected messages of {letter_bytes} B ({} MiB), DLQ topic missing; \
         idle RSS {} MiB, peak RSS {} MiB, growth {} MiB; ceiling (in-flight bound {} MiB + \
         backlog bound {} MiB + slack {} MiB) {} MiB; given up {given_up}, of which not queued \
         (backlog full) {overflow}",
        count as u64 * letter_bytes as u64 / MIB,
        idle / MIB,
        peak / MIB,
        peak.saturating_sub(idle) / MIB,
        IN_FLIGHT_BYTES / MIB,
        BACKLOG_BYTES / MIB,
        DLQ_SLACK / MIB,
        ceiling / MIB
    );
    let letters = crate::helpers::count(
        &mut env.db().await,
        "SELECT count(*) AS n FROM dead_letters WHERE reason = 'malformed'",
    )
    .await;
    assert_eq!(
        letters, count as i64,
        "every rejected message is in the table"
    );
    assert!(
        peak.saturating_sub(idle) <= ceiling,
        "peak RSS grew by {} MiB, over the ceiling of {} MiB",
        peak.saturating_sub(idle) / MIB,
        ceiling / MIB
    );
}
