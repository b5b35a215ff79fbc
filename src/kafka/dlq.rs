//! The dead-letter topic: every rejected message is published with its reason and original
//! position in headers, after its `dead_letters` row is committed.
//!
//! The `dead_letters` row is the record of truth; the topic copy is for downstream consumers.
//! So the topic never holds ingestion back, and never holds memory beyond a bound:
//! - While the topic works, a batch waits for its dead letters' acknowledgements (bounded by
//!   `message.timeout.ms`) before its offsets are committed. Those letters belong to messages
//!   still in flight, so `MAX_IN_FLIGHT_BYTES` bounds them.
//! - Once a publish failed or the topic is missing, a batch hands its dead letters to one
//!   [`Backlog`] bounded in bytes (`DLQ_BACKLOG_MAX_BYTES`) and goes on. One task publishes
//!   from it; what does not fit is never published (the table keeps it), counted in
//!   `orders_dlq_overflow_total` and `orders_dlq_given_up_total`. A letter holds its bytes
//!   from the moment it is queued until librdkafka has answered for it, so the copies inside
//!   librdkafka's own queue are inside the bound too.
//! - What fails is counted as given up and shown in `/health` (`dlq`); the first
//!   acknowledged publish clears that state.
//!
//! Limit: the topic copy is at-least-once and best effort while the topic fails; a letter
//! given up is not retried (replay the table, or read it, to recover the topic's copy).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use tokio::sync::Notify;

use crate::config::ClientProperties;
use crate::domain::Rejection;
use crate::health::{DlqState, Health};
use crate::ingest::Incoming;
use crate::metrics::METRICS;

/// Longest one publish may wait for the broker's acknowledgement (librdkafka retries inside).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a letter costs beyond its payload, key and texts (headers, record, bookkeeping).
const LETTER_OVERHEAD: usize = 512;

/// A dead letter as the topic receives it: the payload already cut to `MAX_PAYLOAD_BYTES`,
/// so a queued letter never holds more than the record it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    original_bytes: usize,
    reason: &'static str,
    detail: String,
    field: Option<String>,
    partition: i32,
    offset: i64,
}

impl Letter {
    /// Copies what the record needs out of a rejected message (at most `max_payload_bytes`
    /// of its payload).
    pub fn new(message: &Incoming, rejection: &Rejection, max_payload_bytes: usize) -> Self {
        let cut = message.payload.len().min(max_payload_bytes);
        Self {
            key: message.key.clone(),
            payload: message.payload[..cut].to_vec(),
            original_bytes: message.payload.len(),
            reason: rejection.reason.as_str(),
            detail: rejection.detail.clone(),
            field: rejection.field.clone(),
            partition: message.position.partition,
            offset: message.position.offset,
        }
    }

    /// The memory this letter is counted for while it waits.
    pub fn bytes(&self) -> usize {
        self.payload.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.detail.len()
            + self.field.as_ref().map_or(0, String::len)
            + LETTER_OVERHEAD
    }
}

/// Dead letters waiting for a failing or missing topic, bounded in bytes. A letter counts
/// from [`Backlog::offer`] until [`Backlog::done`] (its publish answered), not only while it
/// sits in the queue.
#[derive(Debug)]
pub struct Backlog {
    queued: VecDeque<Letter>,
    /// Bytes of the queued letters and of those being published.
    bytes: usize,
    max_bytes: usize,
    /// Set by the first letter refused for room, cleared by the next one queued: one warning
    /// per episode instead of one per letter.
    overflowing: bool,
}

/// What became of an offered letter.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// No room: the letter stays in the table only. `first` starts an overflow episode.
    Dropped {
        first: bool,
    },
}

impl Backlog {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            queued: VecDeque::new(),
            bytes: 0,
            max_bytes,
            overflowing: false,
        }
    }

    pub fn offer(&mut self, letter: Letter) -> Offered {
        let size = letter.bytes();
        if self.bytes + size > self.max_bytes {
            let first = !self.overflowing;
            self.overflowing = true;
            return Offered::Dropped { first };
        }
        self.overflowing = false;
        self.bytes += size;
        self.queued.push_back(letter);
        Offered::Queued
    }

    /// The oldest queued letter; its bytes stay counted until [`Backlog::done`].
    pub fn take(&mut self) -> Option<Letter> {
        self.queued.pop_front()
    }

    /// A taken letter's publish has answered: its memory is free.
    pub fn done(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Publishes dead letters. Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct DlqPublisher {
    /// Made on the first dead letter: an idle producer is not free (its polling thread wakes
    /// ten times a second and librdkafka's own threads keep timers), and most services never
    /// see a dead letter. Replaced after a fatal producer error (an idempotent producer
    /// cannot go on after one).
    producer: Arc<RwLock<Option<FutureProducer>>>,
    config: ClientConfig,
    topic: String,
    source_topic: String,
    /// Payloads longer than this are cut (header `truncated`): a `too_large` message must not
    /// be too large for the DLQ too. The full payload is in `dead_letters`.
    max_payload_bytes: usize,
    backlog: Arc<Mutex<Backlog>>,
    /// Wakes the backlog's publishing task.
    queued: Arc<Notify>,
    health: Arc<Health>,
}

/// Most backlog letters handed to librdkafka at once (their bytes are counted either way).
const BACKLOG_CONCURRENCY: usize = 256;

impl DlqPublisher {
    /// Creates the producer and starts the task that publishes the backlog (on the calling
    /// actix System).
    pub fn new(
        brokers: &str,
        client: &ClientProperties,
        topic: &str,
        source_topic: &str,
        max_payload_bytes: usize,
        backlog_max_bytes: usize,
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
        // A bad setting fails the start-up, not the first dead letter: librdkafka checks the
        // configuration when a client is made (this one is dropped at once; connecting waits
        // for the first letter).
        drop(config.create::<BaseProducer>()?);
        let this = Self {
            producer: Arc::new(RwLock::new(None)),
            config,
            topic: topic.to_string(),
            source_topic: source_topic.to_string(),
            max_payload_bytes,
            backlog: Arc::new(Mutex::new(Backlog::new(backlog_max_bytes))),
            queued: Arc::new(Notify::new()),
            health,
        };
        actix::spawn(this.clone().publish_backlog());
        Ok(this)
    }

    /// Publishes the dead letters of a batch: waits for them while the topic works, queues
    /// them in the backlog while it does not. Never fails: what cannot be published is
    /// counted, logged and stays in `dead_letters`.
    pub async fn publish_all(&self, letters: &[(&Incoming, &Rejection)]) {
        if letters.is_empty() {
            return;
        }
        let letters = letters
            .iter()
            .map(|(m, r)| Letter::new(m, r, self.max_payload_bytes));
        if self.health.dlq() == DlqState::Ok {
            let letters: Vec<Letter> = letters.collect();
            let results = futures::future::join_all(letters.iter().map(|l| self.publish(l))).await;
            for (letter, result) in letters.iter().zip(results) {
                self.record(letter, result);
            }
            return;
        }
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        for letter in letters {
            let position = (letter.partition, letter.offset);
            match backlog.offer(letter) {
                Offered::Queued => {}
                Offered::Dropped { first } => {
                    METRICS.dlq_overflow.inc();
                    METRICS.dlq_given_up.inc();
                    if first {
                        log::warn!(
                            "the DLQ backlog is full (DLQ_BACKLOG_MAX_BYTES={}) while {} fails: dead letters are kept in the dead_letters table only until it works again",
                            backlog.max_bytes,
                            self.topic
                        );
                    } else {
                        log::debug!(
                            "dead letter partition={} offset={} not queued for {}: the backlog is full",
                            position.0,
                            position.1,
                            self.topic
                        );
                    }
                }
            }
        }
        METRICS.dlq_backlog_bytes.set(backlog.bytes() as i64);
        drop(backlog);
        self.queued.notify_one();
    }

    /// The backlog's one publishing task: takes letters as they are queued, at most
    /// [`BACKLOG_CONCURRENCY`] with librdkafka at once, and frees each one's bytes when
    /// librdkafka answers for it.
    async fn publish_backlog(self) {
        let mut sending = FuturesUnordered::new();
        loop {
            while sending.len() < BACKLOG_CONCURRENCY {
                let next = self
                    .backlog
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let Some(letter) = next else { break };
                let this = self.clone();
                sending.push(async move {
                    let result = this.publish(&letter).await;
                    (letter, result)
                });
            }
            if sending.is_empty() {
                self.queued.notified().await;
                continue;
            }
            tokio::select! {
                Some((letter, result)) = sending.next() => {
                    self.record(&letter, result);
                    let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
                    backlog.done(letter.bytes());
                    METRICS.dlq_backlog_bytes.set(backlog.bytes() as i64);
                }
                () = self.queued.notified(), if sending.len() < BACKLOG_CONCURRENCY => {}
            }
        }
    }

    fn record(&self, letter: &Letter, result: Result<(), KafkaError>) {
        match result {
            Ok(()) => {
                METRICS.dlq_published.inc();
                self.health.set_dlq(DlqState::Ok);
            }
            Err(e) => {
                METRICS.dlq_given_up.inc();
                if self.health.dlq() == DlqState::Ok {
                    log::error!(
                        "publishing to the DLQ topic {} (KAFKA_DLQ_TOPIC) failed: {e}; dead letters stay in the dead_letters table and wait in a bounded backlog (DLQ_BACKLOG_MAX_BYTES) until it works again",
                        self.topic
                    );
                } else {
                    log::debug!(
                        "dead letter partition={} offset={} not published to {}: {e}",
                        letter.partition,
                        letter.offset,
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
            .as_ref()
            .and_then(|producer| producer.client().fatal_error());
        let Some((code, reason)) = fatal else {
            return;
        };
        log::error!("the DLQ producer hit a fatal error ({code:?}: {reason}); creating a new one");
        match self.config.create::<FutureProducer>() {
            Ok(producer) => {
                *self.producer.write().unwrap_or_else(|p| p.into_inner()) = Some(producer);
            }
            Err(e) => log::error!("could not create a new DLQ producer: {e}"),
        }
    }

    /// The producer, made now if this is the first dead letter (a cheap clone otherwise).
    fn producer(&self) -> Result<FutureProducer, KafkaError> {
        if let Some(producer) = self
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(producer.clone());
        }
        let mut slot = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if let Some(producer) = slot.as_ref() {
            return Ok(producer.clone());
        }
        log::debug!(
            "the first dead letter: connecting the producer of {}",
            self.topic
        );
        let producer: FutureProducer = self.config.create()?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one dead letter and waits for the broker's acknowledgement.
    async fn publish(&self, letter: &Letter) -> Result<(), KafkaError> {
        let partition = letter.partition.to_string();
        let original_bytes = letter.original_bytes.to_string();
        let offset = letter.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(letter.reason),
            })
            .insert(Header {
                key: "detail",
                value: Some(letter.detail.as_str()),
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
        if letter.payload.len() < letter.original_bytes {
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
        if let Some(field) = &letter.field {
            headers = headers.insert(Header {
                key: "field",
                value: Some(field.as_str()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(letter.payload.as_slice())
            .headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        self.producer()?
            .send(record, Duration::from_secs(1))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectReason;
    use crate::ingest::Position;

    fn rejected(payload_bytes: usize) -> (Incoming, Rejection) {
        let rejection = Rejection::new(RejectReason::Malformed, None, "not JSON");
        let message = Incoming {
            position: Position {
                partition: 1,
                offset: 7,
            },
            key: Some(b"k".to_vec()),
            payload: vec![b'x'; payload_bytes],
            verdict: Err(rejection.clone()),
        };
        (message, rejection)
    }

    #[test]
    fn a_letter_holds_at_most_the_payload_the_topic_receives() {
        let (message, rejection) = rejected(100_000);
        let letter = Letter::new(&message, &rejection, 1_000);
        assert_eq!(letter.payload.len(), 1_000);
        assert_eq!(letter.original_bytes, 100_000);
        assert!(
            letter.bytes() < 1_000 + 2 * LETTER_OVERHEAD,
            "{}",
            letter.bytes()
        );
    }

    #[test]
    fn the_backlog_refuses_what_does_not_fit_and_warns_once_per_episode() {
        let (message, rejection) = rejected(1_000);
        let letter = Letter::new(&message, &rejection, 64 * 1024);
        let size = letter.bytes();
        let mut backlog = Backlog::new(size * 2);
        assert_eq!(backlog.offer(letter.clone()), Offered::Queued);
        assert_eq!(backlog.offer(letter.clone()), Offered::Queued);
        assert_eq!(
            backlog.offer(letter.clone()),
            Offered::Dropped { first: true }
        );
        assert_eq!(
            backlog.offer(letter.clone()),
            Offered::Dropped { first: false }
        );
        assert_eq!(backlog.bytes(), size * 2);
    }

    #[test]
    fn a_taken_letter_keeps_its_bytes_until_its_publish_answers() {
        let (message, rejection) = rejected(1_000);
        let letter = Letter::new(&message, &rejection, 64 * 1024);
        let size = letter.bytes();
        let mut backlog = Backlog::new(size);
        assert_eq!(backlog.offer(letter.clone()), Offered::Queued);
        let taken = backlog.take().expect("queued");
        // Being published is not free memory: the next letter still does not fit.
        assert_eq!(
            backlog.offer(letter.clone()),
            Offered::Dropped { first: true }
        );
        backlog.done(taken.bytes());
        assert_eq!(backlog.bytes(), 0);
        assert_eq!(backlog.offer(letter), Offered::Queued);
        assert!(backlog.take().is_some() && backlog.take().is_none());
    }

    #[test]
    fn a_zero_bound_keeps_dead_letters_in_the_table_only() {
        let (message, rejection) = rejected(10);
        let letter = Letter::new(&message, &rejection, 64 * 1024);
        let mut backlog = Backlog::new(0);
        assert_eq!(backlog.offer(letter), Offered::Dropped { first: true });
    }
}
