//! Every metric the service exports, each declared once: field, kind, name and help text in
//! one line of the table below (the help text *is* its documentation; the metrics table of
//! docs/operations.md lists the same names, checked by `tests/api/read_api.rs`). Base units:
//! seconds, bytes.
//! Served at `/metrics` together with the HTTP metrics of actix-web-prom
//! (`orders_http_requests_total`, `orders_http_requests_duration_seconds`), from one
//! registry. `/stats` reads the same values.

use std::sync::LazyLock;

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// A metric kind the table can declare, with what it needs beyond name and help.
trait Declare: Sized + Clone + prometheus::core::Collector + 'static {
    type Extra;
    fn create(name: &str, help: &str, extra: Self::Extra) -> prometheus::Result<Self>;
}

impl Declare for IntCounter {
    type Extra = ();
    fn create(name: &str, help: &str, (): ()) -> prometheus::Result<Self> {
        IntCounter::new(name, help)
    }
}

impl Declare for IntGauge {
    type Extra = ();
    fn create(name: &str, help: &str, (): ()) -> prometheus::Result<Self> {
        IntGauge::new(name, help)
    }
}

/// Labels.
impl Declare for IntCounterVec {
    type Extra = &'static [&'static str];
    fn create(name: &str, help: &str, labels: Self::Extra) -> prometheus::Result<Self> {
        IntCounterVec::new(Opts::new(name, help), labels)
    }
}

/// Labels (none: a gauge that can be absent).
impl Declare for IntGaugeVec {
    type Extra = &'static [&'static str];
    fn create(name: &str, help: &str, labels: Self::Extra) -> prometheus::Result<Self> {
        IntGaugeVec::new(Opts::new(name, help), labels)
    }
}

/// Buckets.
impl Declare for Histogram {
    type Extra = &'static [f64];
    fn create(name: &str, help: &str, buckets: Self::Extra) -> prometheus::Result<Self> {
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
    }
}

// Metric definitions are constants registered once at start-up: a failure is a programming
// error caught by every test run, so `expect` is the right tool here.
fn register<M: Declare>(registry: &Registry, name: &str, help: &str, extra: M::Extra) -> M {
    let metric = M::create(name, help, extra).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

macro_rules! metrics {
    ($($field:ident: $kind:ident = ($name:literal, $help:literal, $extra:expr)),* $(,)?) => {
        /// The service's metrics. One global instance: [`METRICS`].
        pub struct Metrics {
            pub registry: Registry,
            $(#[doc = $help] pub $field: $kind,)*
        }

        impl Metrics {
            fn new() -> Self {
                let registry = Registry::new();
                Metrics {
                    $($field: register::<$kind>(&registry, $name, $help, $extra),)*
                    registry,
                }
            }
        }

        /// The name of every metric the service defines (actix-web-prom's HTTP metrics aside).
        pub const NAMES: &[&str] = &[$($name),*];
    };
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const BATCH: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
];
const PARTITION: &[&str] = &["partition"];
const REASON: &[&str] = &["reason"];

metrics! {
    messages_consumed: IntCounter = ("orders_messages_consumed_total", "Kafka messages received from the orders topic.", ()),
    orders_stored: IntCounter = ("orders_stored_total", "Orders newly stored in PostgreSQL.", ()),
    duplicates: IntCounter = ("orders_duplicates_total", "Messages whose order was already stored with the same content.", ()),
    validation_failures: IntCounterVec = ("orders_validation_failures_total", "Messages rejected by validation, by reason.", REASON),
    dead_letters: IntCounterVec = ("orders_dead_letters_total", "Messages kept in dead_letters, by reason.", REASON),
    dlq_published: IntCounter = ("orders_dlq_published_total", "Dead letters published to the DLQ topic.", ()),
    dlq_given_up: IntCounter = ("orders_dlq_given_up_total", "Dead letters not published to the DLQ topic (refused, timed out or topic missing); they stay in dead_letters.", ()),
    dlq_overflow: IntCounter = ("orders_dlq_overflow_total", "Dead letters not queued for a failing or missing DLQ topic because its backlog was full (DLQ_BACKLOG_MAX_BYTES); counted in orders_dlq_given_up_total too, kept in dead_letters.", ()),
    dlq_backlog_bytes: IntGauge = ("orders_dlq_backlog_bytes", "Memory held by dead letters waiting for a failing or missing DLQ topic, bounded by DLQ_BACKLOG_MAX_BYTES.", ()),
    dlq_up: IntGauge = ("orders_dlq_up", "1 while the DLQ topic exists and publishing to it works (or the DLQ is off).", ()),
    db_write_seconds: Histogram = ("orders_db_write_seconds", "Duration of one successful write transaction, in seconds.", SECONDS),
    db_batch_size: Histogram = ("orders_db_batch_size", "Messages per successful write transaction.", BATCH),
    db_retries: IntCounter = ("orders_db_retries_total", "Write attempts that failed (connection lost, refused, timed out) and were retried or split.", ()),
    writers_blocked: IntGauge = ("orders_writers_blocked", "Writers blocked on a message the database refuses together with its dead letter.", ()),
    in_flight: IntGauge = ("orders_in_flight", "Messages handed to writers and not yet durable.", ()),
    in_flight_bytes: IntGauge = ("orders_in_flight_bytes", "Memory held by the in-flight messages (raw, parsed, JSON), as counted against MAX_IN_FLIGHT_BYTES.", ()),
    consumer_paused: IntGauge = ("orders_consumer_paused", "1 while the reader has paused its partitions.", ()),
    consumer_lag: IntGaugeVec = ("orders_consumer_lag", "Messages behind the high watermark, per partition this instance owns (absent while unknown).", PARTITION),
    consumer_lag_total: IntGaugeVec = ("orders_consumer_lag_total", "Messages behind the high watermark over the partitions this instance owns (absent while unknown).", &[]),
    consumer_lag_seconds: IntGauge = ("orders_consumer_lag_seconds", "Age of the oldest message received and not yet durable, in seconds (0 when none is waiting).", ()),
    committed_offset: IntGaugeVec = ("orders_committed_offset", "Next offset to commit, per partition this instance owns.", PARTITION),
    topic_present: IntGauge = ("orders_topic_present", "1 when the last probe found the orders topic.", ()),
    cache_hits: IntCounter = ("orders_cache_hits_total", "Order lookups answered from the cache.", ()),
    cache_misses: IntCounter = ("orders_cache_misses_total", "Order lookups that went to the database.", ()),
    cache_evictions: IntCounter = ("orders_cache_evictions_total", "Entries evicted to stay under CACHE_MAX_BYTES.", ()),
    cache_db_reads: IntCounter = ("orders_cache_db_reads_total", "Database reads for cache misses; concurrent misses for one order share one read.", ()),
    cache_misses_shed: IntCounter = ("orders_cache_misses_shed_total", "Lookups answered 503 busy because MAX_MISSES_IN_FLIGHT ids were being read from the database already.", ()),
    cache_absent_hits: IntCounter = ("orders_cache_absent_hits_total", "Lookups of an id that was just found absent, answered 404 without a database read.", ()),
    cache_lookup_batches: IntCounter = ("orders_cache_lookup_batches_total", "Messages carrying order lookups from the HTTP workers to the CacheActor.", ()),
    cache_entries: IntGauge = ("orders_cache_entries", "Orders currently cached.", ()),
    cache_bytes: IntGauge = ("orders_cache_bytes", "Bytes the cache accounts for (keys plus JSON).", ()),
    warmup_orders: IntGauge = ("orders_warmup_orders", "Orders loaded into the cache at start-up.", ()),
    warmup_seconds: Gauge = ("orders_warmup_seconds", "Duration of the start-up warm-up, in seconds.", ()),
    db_up: IntGauge = ("orders_db_up", "1 when the last database probe succeeded.", ()),
    kafka_up: IntGauge = ("orders_kafka_up", "1 when librdkafka reports a broker up.", ()),
    admin_unauthorized: IntCounter = ("orders_admin_unauthorized_total", "Admin requests refused for a missing or wrong ADMIN_TOKEN.", ()),
    access_log_dropped: IntCounter = ("orders_access_log_dropped_total", "Access log lines dropped because the log's queue was full (its destination took less than the service wrote); requests never wait for the log.", ()),
    log_lines_suppressed: IntCounter = ("orders_log_lines_suppressed_total", "Per-message log lines left out by the log rate limit (every rejection is still counted and stored).", ()),
}

impl Declare for Gauge {
    type Extra = ();
    fn create(name: &str, help: &str, (): ()) -> prometheus::Result<Self> {
        Gauge::new(name, help)
    }
}

/// The process-wide metrics. Every rejection reason's series exists from the start (at 0),
/// so `rate()` sees the first one and dashboards show the series before anything fails.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics::new();
    for reason in crate::domain::RejectReason::ALL {
        metrics.dead_letters.with_label_values(&[reason.as_str()]);
        metrics
            .validation_failures
            .with_label_values(&[reason.as_str()]);
    }
    metrics
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches a metric registered in the registry outside the table (it would be exported
    /// but missing from `NAMES`, so from the docs check), and a declared name
    /// that the registry does not export under that name.
    #[test]
    fn the_registry_exports_exactly_the_declared_metrics() {
        // Vectors are exported once they have a series: give each one.
        for vec in [&METRICS.consumer_lag, &METRICS.committed_offset] {
            vec.with_label_values(&["0"]);
        }
        METRICS.consumer_lag_total.with_label_values(&[] as &[&str]);
        let exported: std::collections::BTreeSet<String> = METRICS
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let declared: std::collections::BTreeSet<String> =
            NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(exported, declared);
    }

    #[test]
    fn names_use_base_units() {
        for name in NAMES {
            assert!(
                !name.contains("milli") && !name.contains("_ms"),
                "{name}: use seconds"
            );
        }
    }
}
