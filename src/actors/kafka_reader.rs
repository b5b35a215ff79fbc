//! KafkaReader: consumes the orders topic and hands each message to an OrderWriter; commits
//! a partition's offset only past messages the writers reported durable.
//!
//! Guarantee: at-least-once. An offset is stored (and so committed) only when every message
//! before it on its partition is in PostgreSQL or in `dead_letters` (see [`OffsetTracker`]).
//! Limit: after a crash or a rebalance, messages finished above the last commit are read
//! again; writers recognise them as duplicates, so the database still holds each order once.
//!
//! Back-pressure: at most `max_in_flight` messages (and `max_in_flight_bytes` of memory they
//! hold) are with the writers. At the bound, or while any writer cannot make progress, the
//! reader *pauses* its partitions but keeps polling, so it stays in the group and its
//! rebalance callbacks run (the decisions: [`Flow`]).
//!
//! [`Flow`]: crate::kafka::flow::Flow
//! [`OffsetTracker`]: crate::kafka::offsets::OffsetTracker

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::messages::{RawMessage, Write, WriterState, Written};
use crate::ingest::{Position, held_bytes};
use crate::kafka::flow::Flow;
use crate::kafka::offsets::Delivery;
use crate::kafka::{OrdersConsumer, ReaderState, lock};
use crate::metrics::METRICS;

/// How long one poll waits for a message before the reader looks around again. A message
/// ends the wait at once, so this only sets how often an idle reader wakes up (and polls
/// librdkafka, which must see a poll within `KAFKA_MAX_POLL_INTERVAL_MS`, at least 10 s).
/// 100 ms woke an idle service ten times a second for nothing.
const POLL: Duration = Duration::from_secs(1);
/// Longest the final synchronous commit may take at shutdown.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most messages taken from librdkafka's queue in one go.
const FETCH_BATCH: usize = 1_000;

/// Writers → reader at start-up: where to send messages.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetWriters(pub Vec<Recipient<Write>>);

/// Stop fetching, wait (at most `timeout`) for in-flight writes, commit synchronously.
#[derive(Message)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    pub timeout: Duration,
}

#[derive(Debug, Clone, MessageResponse)]
pub struct ShutdownReport {
    /// Messages still with the writers when the deadline passed (they will be re-read).
    pub abandoned: usize,
    /// Offsets committed per partition (next offset to read).
    pub committed: BTreeMap<i32, i64>,
}

/// Snapshot for `/stats`.
#[derive(Message)]
#[rtype(result = "ReaderStats")]
pub struct GetReaderStats;

#[derive(Debug, Clone, MessageResponse, serde::Serialize)]
pub struct ReaderStats {
    pub in_flight: usize,
    pub paused: bool,
    pub partitions: Vec<crate::kafka::PartitionPosition>,
}

pub struct KafkaReader {
    consumer: Arc<OrdersConsumer>,
    state: Arc<Mutex<ReaderState>>,
    writers: Vec<Recipient<Write>>,
    flow: Flow,
    in_flight_watch: watch::Sender<usize>,
    stopping: bool,
}

impl KafkaReader {
    pub fn new(
        consumer: Arc<OrdersConsumer>,
        state: Arc<Mutex<ReaderState>>,
        max_in_flight: usize,
        max_in_flight_bytes: usize,
    ) -> Self {
        Self {
            consumer,
            state,
            writers: Vec::new(),
            flow: Flow::new(max_in_flight, max_in_flight_bytes),
            in_flight_watch: watch::channel(0).0,
            stopping: false,
        }
    }

    fn fetch(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let consumer = self.consumer.clone();
        let state = self.state.clone();
        let budget = self.flow.budget(FETCH_BATCH);
        let poll = async move {
            let mut messages = Vec::new();
            match tokio::time::timeout(POLL, consumer.recv()).await {
                Err(_) => {}
                Ok(Err(e)) => log::warn!("kafka: receive failed: {e}"),
                // Rebalance callbacks run inside `recv`: the epoch read right after a message
                // arrived is the assignment it belongs to.
                Ok(Ok(first)) => {
                    messages.push((lock(&state).epoch, first.detach()));
                    // Take what is already queued without waiting.
                    while messages.len() < budget {
                        match consumer.recv().now_or_never() {
                            Some(Ok(m)) => messages.push((lock(&state).epoch, m.detach())),
                            Some(Err(e)) => {
                                log::warn!("kafka: receive failed: {e}");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            messages
        };
        ctx.spawn(poll.into_actor(self).map(|messages, act, ctx| {
            act.dispatch(messages);
            act.fetch(ctx);
        }));
    }

    fn dispatch(&mut self, messages: Vec<(u64, OwnedMessage)>) {
        if messages.is_empty() || self.stopping {
            // Not tracked, so never committed: read again after the restart. Safe because
            // no message is fetched after these.
            return;
        }
        METRICS.messages_consumed.inc_by(messages.len() as u64);
        let mut state = lock(&self.state);
        let epoch = state.epoch;
        for (received_in, m) in messages {
            if received_in != epoch {
                // Fetched before a rebalance: its partition was revoked (and, if it came back,
                // restarts from the committed offset), so it will be read again.
                continue;
            }
            let position = Position {
                partition: m.partition(),
                offset: m.offset(),
            };
            let timestamp_ms = m.timestamp().to_millis();
            if state
                .tracker
                .delivered_at(position.partition, position.offset, timestamp_ms)
                == Delivery::AlreadySeen
            {
                continue;
            }
            let key = m.key().map(<[u8]>::to_vec);
            let payload = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
            let held = held_bytes(payload.len());
            let writer =
                &self.writers[route(key.as_deref(), position.partition, self.writers.len())];
            writer.do_send(Write {
                epoch,
                message: RawMessage {
                    position,
                    key,
                    payload,
                    timestamp_ms,
                },
            });
            self.flow.sent(held);
        }
        drop(state);
        self.in_flight_changed();
    }

    fn in_flight_changed(&mut self) {
        METRICS.in_flight.set(self.flow.in_flight() as i64);
        METRICS.in_flight_bytes.set(self.flow.bytes() as i64);
        self.in_flight_watch.send_replace(self.flow.in_flight());
        self.apply_pause();
    }

    /// Pauses or resumes the assigned partitions to match what the reader needs.
    fn apply_pause(&mut self) {
        let want = self.flow.should_pause();
        if lock(&self.state).paused == want {
            return;
        }
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                log::warn!("kafka: cannot read the assignment to pause/resume: {e}");
                return;
            }
        };
        let result = if want {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if result.is_ok() {
            // New assignments follow this flag (see ReaderContext::post_rebalance).
            lock(&self.state).paused = want;
            METRICS.consumer_paused.set(i64::from(want));
        }
        match result {
            Ok(()) if self.flow.writers_stalled() => {
                log::warn!("ingest paused: a writer cannot make progress (see /health)")
            }
            Ok(()) if want => log::debug!(
                "ingest paused: {} messages in flight",
                self.flow.in_flight()
            ),
            Ok(()) => log::info!("ingest running"),
            Err(e) => log::warn!("kafka: pause/resume failed: {e}"),
        }
    }

    /// Stores the offsets that became committable (librdkafka commits them on its timer).
    fn store_committable(&mut self) {
        let committable = lock(&self.state).tracker.all_committable();
        if committable.is_empty() {
            return;
        }
        let tpl = self.offsets_list(&committable);
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its offsets were committed by the revoke callback.
            log::debug!("kafka: storing offsets failed: {e}");
        }
        for (partition, next) in committable {
            METRICS
                .committed_offset
                .with_label_values(&[&partition.to_string()])
                .set(next);
        }
    }

    fn offsets_list(&self, offsets: &BTreeMap<i32, i64>) -> TopicPartitionList {
        let topic = self.consumer.context().topic();
        let mut tpl = TopicPartitionList::new();
        for (&partition, &next) in offsets {
            let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(next));
        }
        tpl
    }

    /// The offsets for the final commit: everything finished, on partitions still ours.
    fn final_offsets(&mut self) -> BTreeMap<i32, i64> {
        self.store_committable();
        let assigned: HashSet<i32> = self
            .consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        let mut reported = lock(&self.state).tracker.reported();
        reported.retain(|p, _| assigned.contains(p));
        reported
    }
}

/// The writer for a message: by key (the order_uid), so one order always goes to the same
/// writer and its messages are written in order; by partition when there is no key.
pub fn route(key: Option<&[u8]>, partition: i32, writers: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    match key {
        Some(k) => k.hash(&mut hasher),
        None => partition.hash(&mut hasher),
    }
    (hasher.finish() % writers.max(1) as u64) as usize
}

impl Actor for KafkaReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Completions must never wait behind a full mailbox.
        ctx.set_mailbox_capacity(super::MAILBOX);
        // Lag in seconds: the age of the oldest message received and not yet durable.
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            let oldest = lock(&act.state).tracker.oldest_pending_timestamp();
            let now_ms = chrono::Utc::now().timestamp_millis();
            let age = oldest.map_or(0, |ts| (now_ms - ts).max(0) / 1000);
            METRICS.consumer_lag_seconds.set(age);
        });
    }
}

impl Handler<SetWriters> for KafkaReader {
    type Result = ();

    /// Fetching starts here: a message must never arrive before there is a writer for it.
    fn handle(&mut self, msg: SetWriters, ctx: &mut Context<Self>) {
        let first = self.writers.is_empty();
        self.writers = msg.0;
        if first && !self.writers.is_empty() {
            self.fetch(ctx);
        }
    }
}

impl Handler<Written> for KafkaReader {
    type Result = ();

    fn handle(&mut self, msg: Written, _: &mut Context<Self>) {
        self.flow.done(msg.positions.len(), msg.bytes);
        lock(&self.state).written(msg.epoch, &msg.positions);
        self.store_committable();
        self.in_flight_changed();
    }
}

impl Handler<WriterState> for KafkaReader {
    type Result = ();

    fn handle(&mut self, msg: WriterState, _: &mut Context<Self>) {
        self.flow
            .writer_stalled(msg.writer, msg.condition.is_some());
        self.apply_pause();
    }
}

impl Handler<GetReaderStats> for KafkaReader {
    type Result = ReaderStats;

    fn handle(&mut self, _: GetReaderStats, _: &mut Context<Self>) -> ReaderStats {
        let state = lock(&self.state);
        ReaderStats {
            in_flight: self.flow.in_flight(),
            paused: state.paused,
            partitions: state.positions.values().cloned().collect(),
        }
    }
}

impl Handler<Shutdown> for KafkaReader {
    type Result = ResponseActFuture<Self, ShutdownReport>;

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let mut idle = self.in_flight_watch.subscribe();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(msg.timeout, idle.wait_for(|n| *n == 0)).await;
            }
            .into_actor(self)
            .then(|(), act, _| {
                let committed = act.final_offsets();
                let tpl = act.offsets_list(&committed);
                let consumer = act.consumer.clone();
                // A synchronous commit blocks while the coordinator is unreachable: run it on
                // a blocking thread, bounded, so the actor's thread (and the cache) stay free.
                let commit = async move {
                    if tpl.count() == 0 {
                        return;
                    }
                    let blocking = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync));
                    match tokio::time::timeout(FINAL_COMMIT_TIMEOUT, blocking).await {
                        Ok(Ok(Ok(()))) => {}
                        Ok(Ok(Err(e))) => log::warn!("kafka: final commit failed: {e}"),
                        _ => log::warn!("kafka: final commit did not finish in {FINAL_COMMIT_TIMEOUT:?}"),
                    }
                };
                commit.into_actor(act).map(move |(), act, _| {
                    let abandoned = act.flow.in_flight();
                    if abandoned > 0 {
                        log::warn!(
                            "shutdown: {abandoned} messages still being written after the deadline; they will be read again",
                        );
                    }
                    ShutdownReport {
                        abandoned,
                        committed,
                    }
                })
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_order_uid_always_goes_to_the_same_writer() {
        let a = route(Some(b"order-1"), 0, 4);
        for partition in 0..6 {
            assert_eq!(route(Some(b"order-1"), partition, 4), a);
        }
    }

    #[test]
    fn keys_spread_over_the_writers() {
        let used: HashSet<usize> = (0..100)
            .map(|i| route(Some(format!("uid-{i}").as_bytes()), 0, 4))
            .collect();
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn keyless_messages_of_a_partition_share_a_writer_and_partitions_spread() {
        let writer_of: Vec<usize> = (0..12).map(|p| route(None, p, 4)).collect();
        let used: HashSet<usize> = writer_of.iter().copied().collect();
        assert!(
            used.len() > 1,
            "all partitions on one writer: {writer_of:?}"
        );
        assert!(writer_of.iter().all(|w| *w < 4));
        // Keyless messages are told apart by partition only: the same partition, the same
        // writer, so their order within the partition is kept.
        assert_eq!(route(None, 5, 4), writer_of[5]);
        assert_eq!(
            route(Some(b""), 5, 4),
            route(Some(b""), 0, 4),
            "a key, even empty, wins"
        );
    }
}
