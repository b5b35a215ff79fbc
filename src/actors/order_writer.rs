//! OrderWriter: validates the messages the reader sends it, writes them to PostgreSQL in
//! batches (one transaction each), publishes dead letters to the DLQ topic, puts stored
//! orders in the cache, and only then tells the reader the messages are done.
//!
//! Guarantees and their limits:
//! - A message is reported done only after its transaction committed (and its DLQ record was
//!   acknowledged). A crash before that means the reader never commits it: it comes again.
//! - A transient database failure (connection lost, timeout, deadlock) is retried with capped
//!   exponential backoff, forever: nothing is dead-lettered because the database is down.
//! - A batch the database refuses (a constraint) is split and written order by order, so one
//!   bad row cannot lose or dead-letter the good orders of its batch; the refused order is
//!   dead-lettered with reason `storage`.
//! - Each writer runs on its own arbiter (thread) with its own connection: batches of one
//!   writer are written in order, writers run in parallel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::cache_actor::{CacheActor, Put, cached_json};
use super::kafka_reader::{DatabaseState, KafkaReader, Written};
use crate::db::{DbError, queries};
use crate::domain::{RejectReason, Rejection, parse_and_validate};
use crate::health::Health;
use crate::ingest::{Incoming, Outcome, Position};
use crate::kafka::dlq::DlqPublisher;
use crate::metrics::METRICS;

/// Longest a single write transaction may take before the connection is dropped (which
/// rolls it back) and the batch retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a connection attempt may take (a proxy can accept TCP for a dead database).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumed Kafka message, as the reader hands it over.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Reader → writer: store this message. `epoch` is the reader's assignment generation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write {
    pub epoch: u64,
    pub message: RawMessage,
}

/// Settings every writer shares.
#[derive(Clone)]
pub struct WriterSettings {
    pub database_url: String,
    pub topic: String,
    pub max_payload_bytes: usize,
    pub batch_max: usize,
    pub retry_max_backoff: Duration,
}

pub struct OrderWriter {
    id: usize,
    settings: WriterSettings,
    reader: Addr<KafkaReader>,
    cache: Addr<CacheActor>,
    dlq: Option<DlqPublisher>,
    health: Arc<Health>,
    /// `None` while a batch is being written (the future owns it) or after a failure.
    conn: Option<AsyncPgConnection>,
    /// Messages waiting for the batch in progress to finish: the next batch.
    queue: Vec<(u64, Incoming)>,
    busy: bool,
}

impl OrderWriter {
    pub fn new(
        id: usize,
        settings: WriterSettings,
        reader: Addr<KafkaReader>,
        cache: Addr<CacheActor>,
        dlq: Option<DlqPublisher>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            id,
            settings,
            reader,
            cache,
            dlq,
            health,
            conn: None,
            queue: Vec::new(),
            busy: false,
        }
    }

    /// Starts writing the queued messages as one batch, unless a batch is in progress (then
    /// they wait and form the next one: batches grow by themselves under load).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.queue.is_empty() {
            return;
        }
        self.busy = true;
        let take = self.queue.len().min(self.settings.batch_max);
        let batch: Vec<(u64, Incoming)> = self.queue.drain(..take).collect();
        let job = BatchJob {
            writer: self.id,
            settings: self.settings.clone(),
            reader: self.reader.clone(),
            dlq: self.dlq.clone(),
            health: self.health.clone(),
            conn: self.conn.take(),
        };
        ctx.spawn(
            job.run(batch)
                .into_actor(self)
                .map(|(conn, done), act, ctx| {
                    act.conn = conn;
                    act.busy = false;
                    act.finish(done);
                    act.flush(ctx);
                }),
        );
    }

    fn finish(&mut self, done: Vec<(u64, Incoming, Outcome)>) {
        let mut by_epoch: Vec<(u64, Vec<Position>, usize)> = Vec::new();
        for (epoch, incoming, outcome) in done {
            let bytes = incoming.payload.len();
            if outcome == Outcome::Stored
                && let Ok(valid) = incoming.verdict
            {
                self.cache.do_send(Put {
                    uid: valid.order.order_uid,
                    json: cached_json(valid.json),
                });
            }
            match by_epoch.last_mut() {
                Some((e, positions, total)) if *e == epoch => {
                    positions.push(incoming.position);
                    *total += bytes;
                }
                _ => by_epoch.push((epoch, vec![incoming.position], bytes)),
            }
        }
        for (epoch, positions, bytes) in by_epoch {
            self.reader.do_send(Written {
                epoch,
                positions,
                bytes,
            });
        }
    }
}

impl Actor for OrderWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The reader can outrun one writer; its own in-flight bound is the back-pressure.
        ctx.set_mailbox_capacity(super::MAILBOX);
    }
}

impl Handler<Write> for OrderWriter {
    type Result = ();

    fn handle(&mut self, msg: Write, ctx: &mut Context<Self>) {
        let RawMessage {
            position,
            key,
            payload,
        } = msg.message;
        let verdict = parse_and_validate(&payload, self.settings.max_payload_bytes);
        if let Err(rejection) = &verdict {
            METRICS
                .validation_failures
                .with_label_values(&[rejection.reason.as_str()])
                .inc();
            log::info!(
                target: "orders_service::ingest",
                "rejected message partition={} offset={} reason={} detail={}",
                position.partition, position.offset, rejection.reason, rejection.detail
            );
        }
        self.queue.push((
            msg.epoch,
            Incoming {
                position,
                key,
                payload,
                verdict,
            },
        ));
        self.flush(ctx);
    }
}

/// Capped exponential backoff: 100 ms, 200 ms, … up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100).min(max),
            max,
        }
    }

    /// The delay to wait now; the following one doubles, up to the cap.
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}

/// Everything one batch needs, moved into its future so the actor stays free.
struct BatchJob {
    writer: usize,
    settings: WriterSettings,
    reader: Addr<KafkaReader>,
    dlq: Option<DlqPublisher>,
    health: Arc<Health>,
    conn: Option<AsyncPgConnection>,
}

impl BatchJob {
    /// Writes the batch until it is durable; returns the connection for the next batch.
    async fn run(
        mut self,
        batch: Vec<(u64, Incoming)>,
    ) -> (Option<AsyncPgConnection>, Vec<(u64, Incoming, Outcome)>) {
        let (epochs, messages): (Vec<u64>, Vec<Incoming>) = batch.into_iter().unzip();
        let outcomes = match self.write(&messages).await {
            Ok(outcomes) => outcomes,
            // Refused as a whole: one order at a time, so the good ones are kept.
            Err(()) => {
                let mut outcomes = Vec::with_capacity(messages.len());
                for message in &messages {
                    let single = std::slice::from_ref(message);
                    match self.write(single).await {
                        Ok(mut o) => outcomes.push(o.remove(0)),
                        Err(()) => outcomes.push(self.refuse(message).await),
                    }
                }
                outcomes
            }
        };
        self.count(&outcomes);
        self.publish_dead_letters(&messages, &outcomes).await;
        let done = epochs
            .into_iter()
            .zip(messages)
            .zip(outcomes)
            .map(|((e, m), o)| (e, m, o))
            .collect();
        (self.conn, done)
    }

    /// One transaction for `messages`, retried while the failure is transient.
    /// `Err(())` means the database refused the data itself.
    async fn write(&mut self, messages: &[Incoming]) -> Result<Vec<Outcome>, ()> {
        let mut backoff = Backoff::new(self.settings.retry_max_backoff);
        let mut failing = false;
        let result = loop {
            let started = Instant::now();
            let attempt = self.attempt(messages).await;
            match attempt {
                Ok(outcomes) => {
                    METRICS
                        .db_write_seconds
                        .observe(started.elapsed().as_secs_f64());
                    METRICS.db_batch_size.observe(messages.len() as f64);
                    break Ok(outcomes);
                }
                Err(DbError::Rejected(reason)) => {
                    log::warn!(
                        "writer {}: the database refused a batch of {} ({}): retrying order by order",
                        self.writer,
                        messages.len(),
                        reason
                    );
                    break Err(());
                }
                Err(DbError::Unavailable(reason)) => {
                    METRICS.db_retries.inc();
                    if !failing {
                        failing = true;
                        self.set_failing(true);
                    }
                    let delay = backoff.step();
                    log::warn!(
                        "writer {}: database unavailable ({}); retrying {} messages in {:?}",
                        self.writer,
                        reason,
                        messages.len(),
                        delay
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        };
        if failing {
            self.set_failing(false);
        }
        result
    }

    async fn attempt(&mut self, messages: &[Incoming]) -> Result<Vec<Outcome>, DbError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let connect = AsyncPgConnection::establish(&self.settings.database_url);
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        return Err(DbError::Unavailable(format!("cannot connect: {e}")));
                    }
                    Err(_) => {
                        return Err(DbError::Unavailable(format!(
                            "connecting timed out after {CONNECT_TIMEOUT:?}"
                        )));
                    }
                }
            }
        };
        let written = tokio::time::timeout(
            WRITE_TIMEOUT,
            queries::write_batch(&mut conn, &self.settings.topic, messages),
        )
        .await;
        match written {
            Ok(Ok(outcomes)) => {
                self.conn = Some(conn);
                Ok(outcomes)
            }
            Ok(Err(e)) => {
                let e = DbError::from(e);
                // Keep the connection only when the database answered: after a transient
                // failure it is likely broken.
                if !e.is_transient() {
                    self.conn = Some(conn);
                }
                Err(e)
            }
            // Dropping the connection rolls back whatever the transaction had done.
            Err(_) => Err(DbError::Unavailable(format!(
                "write timed out after {WRITE_TIMEOUT:?}"
            ))),
        }
    }

    /// Dead-letters a message whose order the database refused on its own.
    async fn refuse(&mut self, message: &Incoming) -> Outcome {
        let rejection = Rejection::new(
            RejectReason::Storage,
            None,
            format!(
                "the database refused order {}",
                message.order_uid().unwrap_or("?")
            ),
        );
        let mut letter = message.clone();
        letter.verdict = Err(rejection.clone());
        match self.write(std::slice::from_ref(&letter)).await {
            Ok(_) => Outcome::DeadLettered(rejection),
            // Even the dead letter is refused: nothing sane is left to do but say so loudly
            // and move on; the payload is in the log.
            Err(()) => {
                log::error!(
                    "writer {}: could not store partition={} offset={} even as a dead letter; payload={}",
                    self.writer,
                    message.position.partition,
                    message.position.offset,
                    String::from_utf8_lossy(&message.payload)
                );
                Outcome::DeadLettered(rejection)
            }
        }
    }

    fn set_failing(&self, failing: bool) {
        self.health.writer_failing(failing);
        self.reader.do_send(DatabaseState {
            writer: self.writer,
            failing,
        });
    }

    fn count(&self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            match outcome {
                Outcome::Stored => METRICS.orders_stored.inc(),
                Outcome::Duplicate => METRICS.duplicates.inc(),
                Outcome::DeadLettered(r) => METRICS
                    .dead_letters
                    .with_label_values(&[r.reason.as_str()])
                    .inc(),
            }
        }
    }

    /// Publishes every dead letter of the batch (concurrently), retrying the failed ones
    /// until the broker acknowledges them all.
    async fn publish_dead_letters(&self, messages: &[Incoming], outcomes: &[Outcome]) {
        let Some(dlq) = &self.dlq else {
            return;
        };
        let mut pending: Vec<(&Incoming, &Rejection)> = messages
            .iter()
            .zip(outcomes)
            .filter_map(|(m, o)| match o {
                Outcome::DeadLettered(r) => Some((m, r)),
                _ => None,
            })
            .collect();
        let mut backoff = Backoff::new(self.settings.retry_max_backoff);
        while !pending.is_empty() {
            let results =
                futures::future::join_all(pending.iter().map(|(m, r)| dlq.publish(m, r))).await;
            let mut failed = Vec::new();
            for ((message, rejection), result) in pending.into_iter().zip(results) {
                match result {
                    Ok(()) => METRICS.dlq_published.inc(),
                    Err(e) if crate::kafka::dlq::is_permanent(&e) => {
                        METRICS.dlq_errors.inc();
                        log::error!(
                            "writer {}: the DLQ topic {} refuses dead letter partition={} offset={} ({}); it stays in dead_letters only",
                            self.writer,
                            dlq.topic(),
                            message.position.partition,
                            message.position.offset,
                            e
                        );
                    }
                    Err(e) => {
                        METRICS.dlq_errors.inc();
                        log::warn!(
                            "writer {}: publishing dead letter partition={} offset={} to {} failed: {}",
                            self.writer,
                            message.position.partition,
                            message.position.offset,
                            dlq.topic(),
                            e
                        );
                        failed.push((message, rejection));
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                tokio::time::sleep(backoff.step()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let steps: Vec<u128> = (0..5).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn backoff_never_exceeds_a_small_cap() {
        let mut b = Backoff::new(Duration::from_millis(10));
        assert_eq!(b.step(), Duration::from_millis(10));
    }
}
