//! Every metric the service exports, in one place, each with the line that documents it.
//! Served at `/metrics` together with the HTTP metrics of actix-web-prom (`orders_http_requests_total`, `orders_http_requests_duration_seconds`),
//! from one registry. `/stats` reads the same values.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The service's metrics. One global instance: [`METRICS`].
pub struct Metrics {
    pub registry: Registry,
    /// Kafka messages received from the topic (before validation).
    pub messages_consumed: IntCounter,
    /// Orders newly stored in PostgreSQL.
    pub orders_stored: IntCounter,
    /// Messages whose order was already stored with the same content.
    pub duplicates: IntCounter,
    /// Messages rejected by validation, by reason (malformed, too_large, schema, invalid,
    /// inconsistent).
    pub validation_failures: IntCounterVec,
    /// Messages kept in `dead_letters`, by reason (validation reasons plus conflict, storage).
    pub dead_letters: IntCounterVec,
    /// Dead letters published to the DLQ topic.
    pub dlq_published: IntCounter,
    /// Failed attempts to publish to the DLQ topic (retried).
    pub dlq_errors: IntCounter,
    /// Time of one write transaction (a batch of orders and dead letters), in seconds.
    pub db_write_seconds: Histogram,
    /// Messages per write transaction.
    pub db_batch_size: Histogram,
    /// Write transactions that failed transiently and were retried.
    pub db_retries: IntCounter,
    /// Messages handed to writers and not yet acknowledged.
    pub in_flight: IntGauge,
    /// 1 while the reader has paused its partitions (back-pressure or database down).
    pub consumer_paused: IntGauge,
    /// Consumer lag per partition, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// Next offset to commit per partition, as stored by the reader.
    pub committed_offset: IntGaugeVec,
    /// Order lookups answered from the cache.
    pub cache_hits: IntCounter,
    /// Order lookups that went to the database.
    pub cache_misses: IntCounter,
    /// Entries evicted from the cache to stay under CACHE_MAX_BYTES.
    pub cache_evictions: IntCounter,
    /// `Get` messages from the HTTP workers; hits plus misses divided by this is the
    /// average number of lookups per message.
    pub cache_lookup_batches: IntCounter,
    /// Orders currently cached.
    pub cache_entries: IntGauge,
    /// Bytes the cache currently accounts for (keys plus JSON).
    pub cache_bytes: IntGauge,
    /// Orders loaded into the cache by the start-up warm-up.
    pub warmup_orders: IntGauge,
    /// Duration of the start-up warm-up, in milliseconds.
    pub warmup_millis: IntGauge,
    /// 1 when the last database probe succeeded.
    pub db_up: IntGauge,
    /// 1 when librdkafka reports at least one broker up.
    pub kafka_up: IntGauge,
}

// Metric definitions are constants registered once at start-up: a failure is a programming
// error caught by the first test that touches METRICS.
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        Metrics {
            messages_consumed: counter(
                &r,
                "orders_messages_consumed_total",
                "Kafka messages received from the orders topic.",
            ),
            orders_stored: counter(
                &r,
                "orders_stored_total",
                "Orders newly stored in PostgreSQL.",
            ),
            duplicates: counter(
                &r,
                "orders_duplicates_total",
                "Messages whose order was already stored with the same content.",
            ),
            validation_failures: counter_vec(
                &r,
                "orders_validation_failures_total",
                "Messages rejected by validation, by reason.",
                "reason",
            ),
            dead_letters: counter_vec(
                &r,
                "orders_dead_letters_total",
                "Messages kept in dead_letters, by reason.",
                "reason",
            ),
            dlq_published: counter(
                &r,
                "orders_dlq_published_total",
                "Dead letters published to the DLQ topic.",
            ),
            dlq_errors: counter(
                &r,
                "orders_dlq_errors_total",
                "Failed attempts to publish to the DLQ topic (retried).",
            ),
            db_write_seconds: histogram(
                &r,
                "orders_db_write_seconds",
                "Duration of one write transaction, in seconds.",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            db_batch_size: histogram(
                &r,
                "orders_db_batch_size",
                "Messages per write transaction.",
                vec![
                    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                ],
            ),
            db_retries: counter(
                &r,
                "orders_db_retries_total",
                "Write transactions that failed transiently and were retried.",
            ),
            in_flight: gauge(
                &r,
                "orders_in_flight",
                "Messages handed to writers and not yet acknowledged.",
            ),
            consumer_paused: gauge(
                &r,
                "orders_consumer_paused",
                "1 while the reader has paused its partitions.",
            ),
            consumer_lag: gauge_vec(
                &r,
                "orders_consumer_lag",
                "Consumer lag per partition (librdkafka statistics).",
                "partition",
            ),
            committed_offset: gauge_vec(
                &r,
                "orders_committed_offset",
                "Next offset to commit per partition.",
                "partition",
            ),
            cache_hits: counter(
                &r,
                "orders_cache_hits_total",
                "Order lookups answered from the cache.",
            ),
            cache_misses: counter(
                &r,
                "orders_cache_misses_total",
                "Order lookups that went to the database.",
            ),
            cache_evictions: counter(
                &r,
                "orders_cache_evictions_total",
                "Entries evicted to stay under CACHE_MAX_BYTES.",
            ),
            cache_lookup_batches: counter(
                &r,
                "orders_cache_lookup_batches_total",
                "Messages carrying order lookups from the HTTP workers to the CacheActor.",
            ),
            cache_entries: gauge(&r, "orders_cache_entries", "Orders currently cached."),
            cache_bytes: gauge(
                &r,
                "orders_cache_bytes",
                "Bytes the cache accounts for (keys plus JSON).",
            ),
            warmup_orders: gauge(
                &r,
                "orders_warmup_orders",
                "Orders loaded into the cache at start-up.",
            ),
            warmup_millis: gauge(
                &r,
                "orders_warmup_milliseconds",
                "Duration of the start-up warm-up, in milliseconds.",
            ),
            db_up: gauge(
                &r,
                "orders_db_up",
                "1 when the last database probe succeeded.",
            ),
            kafka_up: gauge(
                &r,
                "orders_kafka_up",
                "1 when librdkafka reports a broker up.",
            ),
            registry: r,
        }
    }
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
