//! The dead-letter topic: every rejected message is published with its reason and original
//! position in headers, after its `dead_letters` row is committed and before its offset is.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::domain::Rejection;
use crate::ingest::Incoming;

/// Publishes dead letters. Cheap to clone (the producer is shared).
#[derive(Clone)]
pub struct DlqPublisher {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    /// Payloads longer than this are cut (header `truncated`): a `too_large` message must not
    /// be too large for the DLQ too. The full payload is in `dead_letters`.
    max_payload_bytes: usize,
}

impl DlqPublisher {
    pub fn new(
        brokers: &str,
        topic: &str,
        source_topic: &str,
        max_payload_bytes: usize,
    ) -> Result<Self, KafkaError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            source_topic: source_topic.to_string(),
            max_payload_bytes,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one dead letter and waits for the broker's acknowledgement.
    pub async fn publish(
        &self,
        message: &Incoming,
        rejection: &Rejection,
    ) -> Result<(), KafkaError> {
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
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// Errors that no retry can fix (the message or the topic itself is refused). The dead letter
/// is durable in the `dead_letters` table already, so the writer gives up on the topic copy
/// rather than stalling ingestion forever.
pub fn is_permanent(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::InvalidMessage
                | Code::MessageBatchTooLarge
                | Code::TopicAuthorizationFailed
                | Code::InvalidTopic
                | Code::InvalidRecord
        )
    )
}
