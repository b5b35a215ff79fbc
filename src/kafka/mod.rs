//! Kafka plumbing: consumer configuration, the consumer context (rebalance, statistics,
//! errors), the offset tracker and the DLQ publisher.

pub mod dlq;
pub mod flow;
pub mod offsets;
pub mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::health::Health;
use crate::metrics::METRICS;
use offsets::OffsetTracker;

pub type OrdersConsumer = StreamConsumer<ReaderContext>;

/// Position and lag of one partition, from librdkafka statistics (for `/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionPosition {
    pub partition: i32,
    /// Next offset the consumer will hand to the application (null: not known yet).
    pub position: Option<i64>,
    /// Last committed offset in the group (null: nothing committed yet).
    pub committed: Option<i64>,
    pub high_watermark: Option<i64>,
    /// Messages behind the high watermark (null: not known yet).
    pub lag: Option<i64>,
}

/// State shared by the reader actor and the rebalance callbacks, which librdkafka runs inside
/// `recv()` on the reader's own thread. A std `Mutex`, held only for short non-async
/// sections, never across an await.
#[derive(Debug, Default)]
pub struct ReaderState {
    pub tracker: OffsetTracker,
    /// Assignment generation: completions from an older one are ignored.
    pub epoch: u64,
    /// Whether the reader wants its partitions paused (applied to new assignments too).
    pub paused: bool,
    pub positions: BTreeMap<i32, PartitionPosition>,
}

impl ReaderState {
    /// Partitions are taken away: a new epoch (completions of messages fetched before it are
    /// ignored) and the partitions are forgotten. Returns, per partition, the next offset to
    /// read after its finished prefix, to be stored before it is released.
    pub fn revoke(&mut self, partitions: &[i32]) -> Vec<(i32, i64)> {
        self.epoch += 1;
        partitions
            .iter()
            .filter_map(|&p| {
                self.positions.remove(&p);
                self.tracker.forget(p).map(|next| (p, next))
            })
            .collect()
    }

    /// Partitions are given: a new epoch, the partitions start afresh (from wherever Kafka
    /// resumes them). Returns whether they must start paused (the reader's current wish).
    pub fn assign(&mut self, partitions: &[i32]) -> bool {
        self.epoch += 1;
        for &p in partitions {
            self.tracker.forget(p);
        }
        self.paused
    }

    /// Messages of `epoch` are durable: counted only if no rebalance happened since they were
    /// fetched (otherwise their partition restarts from its committed offset).
    pub fn written(&mut self, epoch: u64, positions: &[crate::ingest::Position]) {
        if self.epoch != epoch {
            return;
        }
        for p in positions {
            self.tracker.done(p.partition, p.offset);
        }
    }
}

pub struct ReaderContext {
    topic: String,
    state: Arc<Mutex<ReaderState>>,
    health: Arc<Health>,
}

impl ReaderContext {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn state(&self) -> MutexGuard<'_, ReaderState> {
        lock(&self.state)
    }
}

/// Locks the shared state; a poisoned lock (a panic elsewhere) still holds valid data.
pub fn lock(state: &Mutex<ReaderState>) -> MutexGuard<'_, ReaderState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for ReaderContext {
    fn stats(&self, statistics: Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.health.set_kafka_up(up);
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut state = self.state();
        state.positions.clear();
        // Only partitions this member owns, and only known lags: an unknown lag is absent,
        // never 0 ("caught up").
        let mut total: Option<i64> = None;
        for p in topic.partitions.values().filter(|p| p.partition >= 0) {
            let label = p.partition.to_string();
            let lag = known(p.consumer_lag).filter(|_| p.desired);
            match lag {
                Some(lag) => {
                    METRICS.consumer_lag.with_label_values(&[&label]).set(lag);
                    *total.get_or_insert(0) += lag;
                }
                None => {
                    let _ = METRICS.consumer_lag.remove_label_values(&[&label]);
                }
            }
            if !p.desired {
                let _ = METRICS.committed_offset.remove_label_values(&[&label]);
                continue;
            }
            state.positions.insert(
                p.partition,
                PartitionPosition {
                    partition: p.partition,
                    position: known(p.app_offset),
                    committed: known(p.committed_offset),
                    high_watermark: known(p.hi_offset),
                    lag: known(p.consumer_lag),
                },
            );
        }
        match total {
            Some(total) => METRICS
                .consumer_lag_total
                .with_label_values(&[] as &[&str])
                .set(total),
            None => {
                let _ = METRICS
                    .consumer_lag_total
                    .remove_label_values(&[] as &[&str]);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_kafka_up(false);
        }
        log::warn!("kafka: {error}: {reason}");
    }
}

impl ConsumerContext for ReaderContext {
    /// Before partitions are taken away: store the offsets of what is done on them (librdkafka
    /// commits stored offsets when it unassigns, before the group moves on) and forget them.
    /// Their messages still being written finish later under an old epoch and are ignored;
    /// whoever gets the partition next reads them again (duplicates, by design). Non-blocking:
    /// this runs on the reader's thread, inside `recv`.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions: Vec<i32> = revoked
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        for p in &partitions {
            // Its series belong to the next owner now.
            let label = p.to_string();
            let _ = METRICS.consumer_lag.remove_label_values(&[&label]);
            let _ = METRICS.committed_offset.remove_label_values(&[&label]);
        }
        let mut commit = TopicPartitionList::new();
        for (partition, next) in self.state().revoke(&partitions) {
            let _ = commit.add_partition_offset(&self.topic, partition, Offset::Offset(next));
        }
        if commit.count() > 0
            && let Err(e) = consumer.store_offsets(&commit)
        {
            log::warn!(
                "storing offsets of revoked partitions failed ({e}); they will be read again"
            );
        }
        log::info!("partitions revoked: {}", describe(revoked));
    }

    /// New partitions: a fresh epoch; paused or running as the reader currently wants.
    /// librdkafka keeps a partition's pause flag across assignments, so both directions are
    /// applied explicitly (resuming a running partition is a no-op).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let partitions: Vec<i32> = assigned
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                let paused = self.state().assign(&partitions);
                let applied = if paused {
                    consumer.pause(assigned)
                } else {
                    consumer.resume(assigned)
                };
                if let Err(e) = applied {
                    log::warn!("could not apply pause={paused} to newly assigned partitions: {e}");
                }
                log::info!("partitions assigned: {}", describe(assigned));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result
            && !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
        {
            log::warn!("offset commit failed: {e} ({offsets:?})");
        }
    }
}

/// librdkafka reports unknown offsets as negative sentinels (-1001 "invalid", -1).
fn known(offset: i64) -> Option<i64> {
    (offset >= 0).then_some(offset)
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the consumer and subscribes it.
///
/// At-least-once: offsets are *stored* by the reader only for finished messages
/// (`enable.auto.offset.store=false`); librdkafka commits stored offsets every `KAFKA_COMMIT_INTERVAL_MS`, on
/// revoke and on close; the reader also commits synchronously at shutdown.
pub fn consumer(
    config: &KafkaConfig,
    state: Arc<Mutex<ReaderState>>,
    health: Arc<Health>,
) -> KafkaResult<Arc<OrdersConsumer>> {
    let context = ReaderContext {
        topic: config.topic.clone(),
        state,
        health,
    };
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            config.auto_commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "max.poll.interval.ms",
            config.max_poll_interval_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 5).to_string(),
        )
        .set("statistics.interval.ms", "1000")
        .set("queued.max.messages.kbytes", "65536")
        // A fetch returns once 64 KiB are there or 100 ms have passed, instead of at the
        // first byte: under a steady stream the broker answers tens of fetches a second
        // instead of hundreds (docs/benchmarks.md, Recovery: its CPU from a restart to
        // readiness fell to about half), at the cost of up to 100 ms more latency when the
        // stream is thin.
        // `KAFKA_OPTION_FETCH_MIN_BYTES=1` restores the first-byte answer.
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "100")
        .set("partition.assignment.strategy", "roundrobin");
    if let Some(id) = &config.instance_id {
        client.set("group.instance.id", id);
    }
    config.client.apply(&mut client);
    let consumer: OrdersConsumer = client.create_with_context(context)?;
    consumer.subscribe(&[&config.topic])?;
    Ok(Arc::new(consumer))
}

/// Unsubscribes and keeps polling briefly so the revoke runs and the group learns at once
/// that this member left (instead of waiting for its session to time out).
pub async fn leave_group(consumer: &OrdersConsumer) {
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut unassigned_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let empty = consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true);
        // The LeaveGroup request goes out after the unassign (and its commit) completes:
        // keep polling a little longer so it is sent before the process exits.
        match unassigned_at {
            None if empty => unassigned_at = Some(Instant::now()),
            Some(at) if at.elapsed() > Duration::from_millis(500) => break,
            _ => {}
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Position;
    use offsets::Delivery;

    fn at(partition: i32, offset: i64) -> Position {
        Position { partition, offset }
    }

    #[test]
    fn completions_fetched_before_a_rebalance_are_ignored() {
        let mut s = ReaderState::default();
        s.assign(&[0]);
        let before = s.epoch;
        s.tracker.delivered(0, 0);
        s.revoke(&[0]);
        s.assign(&[0]);
        s.tracker.delivered(0, 0);
        s.written(before, &[at(0, 0)]);
        assert_eq!(s.tracker.committable(0), None, "an old epoch's completion");
        s.written(s.epoch, &[at(0, 0)]);
        assert_eq!(s.tracker.committable(0), Some(1));
    }

    #[test]
    fn a_revoke_hands_back_each_partition_s_finished_prefix_and_forgets_it() {
        let mut s = ReaderState::default();
        s.assign(&[0, 1, 2]);
        for o in 0..3 {
            s.tracker.delivered(0, o);
            s.tracker.delivered(1, o);
        }
        s.written(s.epoch, &[at(0, 0), at(0, 1), at(1, 1)]);
        let mut stored = s.revoke(&[0, 1, 2]);
        stored.sort_unstable();
        assert_eq!(
            stored,
            vec![(0, 2)],
            "partition 1 waits for offset 0; 2 has nothing"
        );
        assert_eq!(s.tracker.pending(0), 0);
        assert_eq!(s.tracker.delivered(0, 1), Delivery::Track, "re-read afresh");
    }

    #[test]
    fn new_partitions_start_paused_while_the_reader_is_paused() {
        let mut s = ReaderState::default();
        assert!(!s.assign(&[0]));
        s.paused = true;
        assert!(s.assign(&[1]));
    }
}
