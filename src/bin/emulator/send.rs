//! Producing to Kafka: the producer, its client callbacks and the tracking of deliveries.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::channel::oneshot::Canceled;
use futures::stream::FuturesUnordered;
use orders_service::config::{self, ClientProperties, KafkaConnection};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer as KafkaProducer, FutureRecord, Producer};

use crate::message::Outgoing;
use crate::progress::Progress;

/// Delivery futures kept in flight before waiting for the oldest ones.
const MAX_IN_FLIGHT: usize = 10_000;

/// librdkafka's client callbacks: log lines go to `log` as usual, but each kind of client-wide
/// error is reported once (an unreachable broker would otherwise flood the terminal).
#[derive(Default)]
pub(crate) struct KafkaContext {
    errors_seen: Mutex<HashSet<String>>,
}

impl ClientContext for KafkaContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = format!("{:?}", error.rdkafka_error_code());
        let first = self
            .errors_seen
            .lock()
            .map(|mut seen| seen.insert(kind))
            .unwrap_or(true);
        if first {
            log::warn!("kafka: {error}: {reason}");
        } else {
            log::debug!("kafka: {error}: {reason}");
        }
    }
}

pub(crate) type FutureProducer = KafkaProducer<KafkaContext>;

/// A producer with the service's Kafka connection settings (`KAFKA_BROKERS`,
/// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CA_LOCATION`) and the
/// `KAFKA_OPTION_*` passthrough of the environment.
pub(crate) fn producer(
    connection: &KafkaConnection,
    message_timeout_ms: u64,
) -> Result<FutureProducer> {
    let vars: Vec<(String, String)> = config::env_vars().collect();
    let security = ClientProperties::new(
        connection,
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &connection.kafka_brokers)
        .set("client.id", "orders-emulator")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", message_timeout_ms.to_string());
    security.apply(&mut config);
    config
        .create_with_context(KafkaContext::default())
        .context("cannot create the Kafka producer")
}

pub(crate) async fn check_reachable(producer: &FutureProducer, brokers: &str) -> Result<()> {
    let probe = producer.clone();
    tokio::task::spawn_blocking(move || {
        probe
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|_| ())
    })
    .await
    .context("metadata probe failed")?
    .with_context(|| format!("cannot reach Kafka at {brokers} (is the broker running?)"))
}

/// Delivery outcomes as the broker reports them.
pub(crate) struct Deliveries {
    pub(crate) in_flight: FuturesUnordered<DeliveryFuture>,
    pub(crate) acknowledged: u64,
    pub(crate) failed: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) progress: Progress,
}

impl Deliveries {
    pub(crate) fn new(progress: Progress) -> Self {
        Self {
            in_flight: FuturesUnordered::new(),
            acknowledged: 0,
            failed: 0,
            first_error: None,
            progress,
        }
    }

    pub(crate) fn settle(&mut self, outcome: Result<OwnedDeliveryResult, Canceled>) {
        match outcome {
            Ok(Ok(_)) => self.acknowledged += 1,
            Ok(Err((error, _message))) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| error.to_string());
            }
            Err(Canceled) => {
                self.failed += 1;
                self.first_error
                    .get_or_insert_with(|| "the producer dropped the message".to_string());
            }
        }
        self.progress.update(self.acknowledged + self.failed);
    }

    /// Waits for one delivery; false when none is in flight.
    pub(crate) async fn settle_one(&mut self) -> bool {
        match self.in_flight.next().await {
            Some(outcome) => {
                self.settle(outcome);
                true
            }
            None => false,
        }
    }

    /// Enqueues one message, waiting for deliveries while too many are in flight or the
    /// producer queue is full.
    pub(crate) async fn send(
        &mut self,
        producer: &FutureProducer,
        topic: &str,
        msg: &Outgoing,
    ) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.settle_one().await;
        }
        let mut record = FutureRecord::to(topic).key(&msg.key).payload(&msg.payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if !self.settle_one().await {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((error, _)) => {
                    return Err(error).with_context(|| {
                        format!(
                            "cannot enqueue message {} ({} bytes)",
                            msg.key,
                            msg.payload.len()
                        )
                    });
                }
            }
        }
    }
}
