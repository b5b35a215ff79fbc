//! The dead-letter topic: every rejected message is published with its reason and original
//! position in headers, after its `dead_letters` row is committed.
//!
//! The `dead_letters` row is the record of truth; the topic copy is for downstream consumers.
//! So the topic never holds ingestion back: while it works, a batch waits for its dead letters'
//! acknowledgements (bounded by `message.timeout.ms`) before its offsets are committed; once a
//! publish failed or the topic is missing, dead letters are sent without waiting and what
//! fails is counted as given up (`orders_dlq_given_up_total`) and shown in `/health` (`dlq`).
//! The first acknowledged publish clears that state.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::ClientProperties;
use crate::domain::Rejection;
use crate::health::{DlqState, Health};
use crate::ingest::Incoming;
use crate::metrics::METRICS;

/// Longest one publish may wait for the broker's acknowledgement (librdkafka retries inside).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes dead letters. Cheap to clone (the producer is shared).
#[derive(Clone)]
pub struct DlqPublisher {
    /// Replaced after a fatal producer error (an idempotent producer cannot go on after one).
    producer: Arc<RwLock<FutureProducer>>,
    config: ClientConfig,
    topic: String,
    source_topic: String,
    /// Payloads longer than this are cut (header `truncated`): a `too_large` message must not
    /// be too large for the DLQ too. The full payload is in `dead_letters`.
    max_payload_bytes: usize,
    health: Arc<Health>,
}

impl DlqPublisher {
    pub fn new(
        brokers: &str,
        client: &ClientProperties,
        topic: &str,
        source_topic: &str,
        max_payload_bytes: usize,
        health: Arc<Health>,
    ) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            );
        client.apply(&mut config);
        let producer: FutureProducer = config.create()?;
        Ok(Self {
            producer: Arc::new(RwLock::new(producer)),
            config,
            topic: topic.to_string(),
            source_topic: source_topic.to_string(),
            max_payload_bytes,
            health,
        })
    }

    /// Publishes the dead letters of a batch: waits for them while the topic works, sends
    /// them without waiting while it does not. Never fails: what cannot be published is
    /// counted, logged and stays in `dead_letters`.
    pub async fn publish_all(&self, letters: Vec<(Incoming, Rejection)>) {
        if letters.is_empty() {
            return;
        }
        if self.health.dlq() == DlqState::Ok {
            let sends = letters.iter().map(|(m, r)| self.publish(m, r));
            let results = futures::future::join_all(sends).await;
            for ((message, _), result) in letters.iter().zip(results) {
                self.record(message, result);
            }
        } else {
            let this = self.clone();
            actix::spawn(async move {
                for (message, rejection) in &letters {
                    let result = this.publish(message, rejection).await;
                    this.record(message, result);
                }
            });
        }
    }

    fn record(&self, message: &Incoming, result: Result<(), KafkaError>) {
        match result {
            Ok(()) => {
                METRICS.dlq_published.inc();
                self.health.set_dlq(DlqState::Ok);
            }
            Err(e) => {
                METRICS.dlq_given_up.inc();
                if self.health.dlq() == DlqState::Ok {
                    log::error!(
                        "publishing to the DLQ topic {} (KAFKA_DLQ_TOPIC) failed: {e}; dead letters stay in the dead_letters table and are sent without waiting until it works again",
                        self.topic
                    );
                } else {
                    log::debug!(
                        "dead letter partition={} offset={} not published to {}: {e}",
                        message.position.partition,
                        message.position.offset,
                        self.topic
                    );
                }
                if self.health.dlq() != DlqState::Missing {
                    self.health.set_dlq(DlqState::Failing);
                }
                self.recreate_after_fatal_error();
            }
        }
    }

    /// An idempotent producer that hit a fatal error refuses everything from then on.
    fn recreate_after_fatal_error(&self) {
        let fatal = self
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .client()
            .fatal_error();
        let Some((code, reason)) = fatal else {
            return;
        };
        log::error!("the DLQ producer hit a fatal error ({code:?}: {reason}); creating a new one");
        match self.config.create::<FutureProducer>() {
            Ok(producer) => *self.producer.write().unwrap_or_else(|p| p.into_inner()) = producer,
            Err(e) => log::error!("could not create a new DLQ producer: {e}"),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one dead letter and waits for the broker's acknowledgement.
    async fn publish(&self, message: &Incoming, rejection: &Rejection) -> Result<(), KafkaError> {
        let partition = message.position.partition.to_string();
        let original_bytes = message.payload.len().to_string();
        let cut = message.payload.len().min(self.max_payload_bytes);
        let offset = message.position.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(rejection.reason.as_str()),
            })
            .insert(Header {
                key: "detail",
                value: Some(rejection.detail.as_str()),
            })
            .insert(Header {
                key: "source-topic",
                value: Some(self.source_topic.as_str()),
            })
            .insert(Header {
                key: "source-partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "source-offset",
                value: Some(offset.as_str()),
            });
        if cut < message.payload.len() {
            headers = headers
                .insert(Header {
                    key: "truncated",
                    value: Some("true"),
                })
                .insert(Header {
                    key: "original-bytes",
                    value: Some(original_bytes.as_str()),
                });
        }
        if let Some(field) = &rejection.field {
            headers = headers.insert(Header {
                key: "field",
                value: Some(field.as_str()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(&message.payload[..cut])
            .headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        let producer = self
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        producer
            .send(record, Duration::from_secs(1))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}
