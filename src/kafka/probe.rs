//! Watches the topics the service needs: the orders topic (missing → `/health` 503,
//! `topic: missing`) and the DLQ topic (missing → `dlq: missing`, degraded). A metadata
//! request every few seconds, on a blocking thread (librdkafka's call blocks), through the
//! consumer's own client, which never asks the broker to auto-create a topic.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use super::OrdersConsumer;
use crate::health::{DlqState, Health, TopicState};

/// Time between two probes.
const EVERY: Duration = Duration::from_secs(3);
/// Longest one metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a metadata request said of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Present {
        partitions: usize,
    },
    Missing,
    /// Kafka did not answer.
    Unreachable,
}

/// Asks the brokers about `topic` (blocking; run it on a blocking thread).
pub fn describe(consumer: &OrdersConsumer, topic: &str) -> Seen {
    match consumer.fetch_metadata(Some(topic), TIMEOUT) {
        Ok(metadata) => {
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if partitions == 0 {
                Seen::Missing
            } else {
                Seen::Present { partitions }
            }
        }
        Err(_) => Seen::Unreachable,
    }
}

/// Probes once and records the result in `health`, logging changes (not every probe).
pub async fn probe_once(
    consumer: &Arc<OrdersConsumer>,
    topic: &str,
    dlq_topic: Option<&str>,
    health: &Health,
) {
    let (c, t, d) = (
        consumer.clone(),
        topic.to_string(),
        dlq_topic.map(str::to_string),
    );
    let seen = tokio::task::spawn_blocking(move || {
        let orders = describe(&c, &t);
        let dlq = match (&d, orders) {
            (_, Seen::Unreachable) => None,
            (Some(d), _) => Some(describe(&c, d)),
            (None, _) => None,
        };
        (orders, dlq)
    })
    .await;
    let Ok((orders, dlq)) = seen else {
        return;
    };
    // A metadata answer is the surest sign that Kafka is up (statistics follow every second).
    health.set_kafka_up(orders != Seen::Unreachable);
    match orders {
        Seen::Unreachable => {
            if health.topic() == TopicState::Unknown {
                log::warn!(
                    "kafka is not reachable yet (KAFKA_BROKERS); ingestion starts when it is"
                );
            }
            return;
        }
        Seen::Missing => {
            if health.topic() != TopicState::Missing {
                log::error!(
                    "the orders topic {topic} (KAFKA_TOPIC) does not exist: nothing can be consumed; /health reports topic: missing until it is created"
                );
            }
            health.set_topic(TopicState::Missing);
        }
        Seen::Present { partitions } => {
            if health.topic() != TopicState::Present {
                log::info!("the orders topic {topic} has {partitions} partitions");
            }
            health.set_topic(TopicState::Present);
        }
    }
    let (Some(dlq_topic), Some(dlq)) = (dlq_topic, dlq) else {
        return;
    };
    match dlq {
        Seen::Missing => {
            if health.dlq() != DlqState::Missing {
                log::error!(
                    "the DLQ topic {dlq_topic} (KAFKA_DLQ_TOPIC) does not exist: running degraded, dead letters are kept in the dead_letters table only; create the topic or set KAFKA_DLQ_TOPIC= to turn the DLQ off"
                );
            }
            health.set_dlq(DlqState::Missing);
        }
        Seen::Present { .. } if health.dlq() == DlqState::Missing => {
            log::info!("the DLQ topic {dlq_topic} exists now: publishing dead letters again");
            health.set_dlq(DlqState::Ok);
        }
        _ => {}
    }
}

/// Probes now and then every few seconds, for as long as the System runs.
pub fn watch(
    consumer: Arc<OrdersConsumer>,
    topic: String,
    dlq_topic: Option<String>,
    health: Arc<Health>,
) {
    actix::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            probe_once(&consumer, &topic, dlq_topic.as_deref(), &health).await;
        }
    });
}
