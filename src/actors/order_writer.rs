//! OrderWriter: validates the messages the reader sends it, makes them durable in PostgreSQL
//! in batches (one transaction each), publishes dead letters to the DLQ topic, puts stored
//! orders in the cache, and only then tells the reader the messages are done.
//!
//! The rules for failures (retry, split, dead-letter, block) are in
//! [`crate::ingest::durable`], the transaction in [`crate::ingest::store`]; this actor is the
//! plumbing around them:
//! - A message is reported done only after its transaction committed. A crash before that
//!   means the reader never commits it: it comes again.
//! - While the database does not answer, or refuses a message *and* its dead letter, the
//!   writer tells the reader (which pauses its partitions) and `/health`, and keeps retrying.
//! - Each writer runs on its own arbiter (thread) with its own connection: batches of one
//!   writer are written in order, writers run in parallel.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{RawMessage, Write, WriterState, Written};
use crate::cache::{CacheCompression, Put};
use crate::db::DbTarget;
use crate::domain::parse_and_validate;
use crate::health::Health;
use crate::ingest::durable::{Condition, WritePolicy, write_durably};
use crate::ingest::store::PgStore;
use crate::ingest::{Incoming, Outcome, Position, held_bytes};
use crate::kafka::dlq::DlqPublisher;
use crate::metrics::METRICS;

/// Settings every writer shares.
#[derive(Clone)]
pub struct WriterSettings {
    pub database: DbTarget,
    pub topic: String,
    pub max_payload_bytes: usize,
    pub batch_max: usize,
    pub policy: WritePolicy,
    /// Longest one write transaction may take before the connection is dropped (which rolls
    /// it back) and the batch is written in halves.
    pub write_timeout: Duration,
    /// The form stored orders are sent to the cache in (packed here, off the cache's thread).
    pub cache_compression: CacheCompression,
}

/// Where a writer sends what it learns.
#[derive(Clone)]
pub struct WriterPeers {
    pub written: Recipient<Written>,
    pub state: Recipient<WriterState>,
    pub cache: Recipient<Put>,
    pub dlq: Option<DlqPublisher>,
    pub health: Arc<Health>,
}

pub struct OrderWriter {
    id: usize,
    settings: WriterSettings,
    peers: WriterPeers,
    /// `None` while a batch is being written (the future owns it).
    store: Option<PgStore>,
    /// Messages waiting for the batch in progress to finish: the next batch.
    queue: Vec<(u64, Incoming)>,
}

impl OrderWriter {
    pub fn new(id: usize, settings: WriterSettings, peers: WriterPeers) -> Self {
        let store = PgStore::new(
            settings.database.clone(),
            settings.topic.clone(),
            settings.write_timeout,
        );
        Self {
            id,
            settings,
            peers,
            store: Some(store),
            queue: Vec::new(),
        }
    }

    /// Starts writing the queued messages as one batch, unless a batch is in progress (then
    /// they wait and form the next one: batches grow by themselves under load).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.queue.is_empty() {
            return;
        }
        let Some(mut store) = self.store.take() else {
            return;
        };
        let take = self.queue.len().min(self.settings.batch_max);
        let (epochs, messages): (Vec<u64>, Vec<Incoming>) = self.queue.drain(..take).unzip();
        let (writer, policy, peers) = (self.id, self.settings.policy.clone(), self.peers.clone());
        let job = async move {
            let mut condition: Option<Condition> = None;
            // A writer's store loses nothing (`Lost = Infallible`): this cannot fail.
            let Ok(outcomes) = write_durably(&mut store, &messages, &policy, &mut |c| {
                if let Some(c) = &c {
                    log::warn!(writer = writer; "writer {writer}: cannot make progress ({c:?})");
                } else {
                    log::info!(writer = writer; "writer {writer}: making progress again");
                }
                peers
                    .health
                    .writer_condition(condition.as_ref(), c.as_ref());
                condition = c.clone();
                peers.state.do_send(WriterState {
                    writer,
                    condition: c,
                });
            })
            .await;
            count(&outcomes);
            if let Some(dlq) = &peers.dlq {
                let letters: Vec<_> = messages
                    .iter()
                    .zip(&outcomes)
                    .filter_map(|(m, o)| match o {
                        Outcome::DeadLettered(r) => Some((m, r)),
                        _ => None,
                    })
                    .collect();
                dlq.publish_all(&letters).await;
            }
            (store, epochs, messages, outcomes)
        };
        ctx.spawn(
            job.into_actor(self)
                .map(|(store, epochs, messages, outcomes), act, ctx| {
                    act.store = Some(store);
                    act.finish(epochs, messages, outcomes);
                    act.flush(ctx);
                }),
        );
    }

    fn finish(&mut self, epochs: Vec<u64>, messages: Vec<Incoming>, outcomes: Vec<Outcome>) {
        let mut by_epoch: Vec<(u64, Vec<Position>, usize)> = Vec::new();
        for ((epoch, incoming), outcome) in epochs.into_iter().zip(messages).zip(outcomes) {
            let bytes = held_bytes(incoming.payload.len());
            if outcome == Outcome::Stored
                && let Ok(valid) = incoming.verdict
            {
                self.peers.cache.do_send(Put {
                    uid: valid.order.order_uid.into_string(),
                    json: self.settings.cache_compression.pack(&valid.json),
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
            self.peers.written.do_send(Written {
                epoch,
                positions,
                bytes,
            });
        }
    }
}

fn count(outcomes: &[Outcome]) {
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
            ..
        } = msg.message;
        let verdict = parse_and_validate(&payload, self.settings.max_payload_bytes);
        if let Err(rejection) = &verdict {
            METRICS
                .validation_failures
                .with_label_values(&[rejection.reason.as_str()])
                .inc();
            // Rate-limited and cut: the detail can quote the message, which is personal data.
            crate::logging::rejection(
                position.partition,
                position.offset,
                rejection.reason.as_str(),
                &rejection.detail,
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
