//! Watches the topics the service needs: the orders topic (missing → `/health` 503,
//! `topic: missing`) and the DLQ topic (missing → `dlq: missing`, degraded). A metadata
//! request every few seconds, on a blocking thread (librdkafka's call blocks), through the
//! consumer's own client, which never asks the broker to auto-create a topic.
//!
//! The same answer says how the orders topic is replicated: each partition's replicas and
//! those in sync. "A valid order that reached the topic ends up stored" assumes the topic
//! does not lose an acknowledged message: replication factor ≥ 3, `min.insync.replicas` ≥ 2,
//! unclean leader election off. `KAFKA_EXPECTED_REPLICATION` says what the operator runs
//! (1 for a single broker); [`TopicReplication::assess`] turns a shortfall into a `/health`
//! warning: fewer replicas than expected, fewer in sync (a broker down or behind), a
//! partition without a leader, and from 2 up the two topic settings, read with the admin
//! API (`DescribeConfigs`; a cluster that refuses it leaves them unchecked, and says so).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use serde::Serialize;

use super::OrdersConsumer;
use crate::config::KafkaConfig;
use crate::health::{DlqState, Health, TopicState};

/// Time between two probes.
const EVERY: Duration = Duration::from_secs(3);
/// Longest one metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The topic's configs are read at the first probe that finds it, then every this many probes.
const CONFIGS_EVERY: u64 = 10;

/// One partition's replication, from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub id: i32,
    /// -1: no leader.
    pub leader: i32,
    pub replicas: usize,
    pub in_sync: usize,
}

/// What a metadata request said of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Present {
        partitions: Vec<PartitionReplicas>,
    },
    Missing,
    /// Kafka did not answer.
    Unreachable,
}

/// The topic settings the guarantee assumes, as `DescribeConfigs` returned them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfigs {
    pub min_insync_replicas: Option<usize>,
    pub unclean_leader_election: Option<bool>,
}

/// The orders topic's replication against `KAFKA_EXPECTED_REPLICATION` (`/health`
/// `topic_replication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicReplication {
    /// `KAFKA_EXPECTED_REPLICATION`.
    pub expected: usize,
    /// Fewest replicas of any partition: the replication factor.
    pub replicas: usize,
    /// Fewest replicas in sync of any partition.
    pub in_sync: usize,
    /// Partitions with fewer replicas in sync than expected.
    pub under_replicated: Vec<i32>,
    /// Partitions without a leader (not consumed until one is elected).
    pub leaderless: Vec<i32>,
    /// The topic's `min.insync.replicas` (null: not read).
    pub min_insync_replicas: Option<usize>,
    /// The topic's `unclean.leader.election.enable` (null: not read).
    pub unclean_leader_election: Option<bool>,
    /// Every shortfall, in one sentence (null: none).
    pub warning: Option<String>,
}

impl TopicReplication {
    /// Measures `partitions` of `topic` against `expected`; `configs` when they could be read.
    pub fn assess(
        topic: &str,
        expected: usize,
        partitions: &[PartitionReplicas],
        configs: Option<TopicConfigs>,
    ) -> Self {
        let replicas = partitions.iter().map(|p| p.replicas).min().unwrap_or(0);
        let in_sync = partitions.iter().map(|p| p.in_sync).min().unwrap_or(0);
        let ids = |keep: &dyn Fn(&PartitionReplicas) -> bool| -> Vec<i32> {
            partitions
                .iter()
                .filter(|p| keep(p))
                .map(|p| p.id)
                .collect()
        };
        let under_replicated = ids(&|p| p.in_sync < expected.min(p.replicas.max(1)));
        let leaderless = ids(&|p| p.leader < 0);
        let configs = configs.unwrap_or(TopicConfigs {
            min_insync_replicas: None,
            unclean_leader_election: None,
        });
        let list = |ids: &[i32]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut short = Vec::new();
        if replicas < expected {
            short.push(format!(
                "has {replicas} replica(s) per partition, fewer than KAFKA_EXPECTED_REPLICATION={expected}: losing a broker can lose acknowledged orders"
            ));
        }
        if !under_replicated.is_empty() {
            short.push(format!(
                "partition(s) {} have {in_sync} replica(s) in sync (a broker down or behind)",
                list(&under_replicated)
            ));
        }
        if !leaderless.is_empty() {
            short.push(format!(
                "partition(s) {} have no leader: they are not consumed until one is elected",
                list(&leaderless)
            ));
        }
        if expected >= 2 {
            if let Some(min) = configs.min_insync_replicas.filter(|&m| m < 2) {
                short.push(format!(
                    "min.insync.replicas={min}: a producer's acks=all write is acknowledged by one broker alone, and lost with it (set 2)"
                ));
            }
            if configs.unclean_leader_election == Some(true) {
                short.push(
                    "unclean.leader.election.enable=true: a replica that is not in sync may become leader and drop acknowledged orders (set false)"
                        .into(),
                );
            }
        }
        Self {
            expected,
            replicas,
            in_sync,
            under_replicated,
            leaderless,
            min_insync_replicas: configs.min_insync_replicas,
            unclean_leader_election: configs.unclean_leader_election,
            warning: (!short.is_empty())
                .then(|| format!("the orders topic {topic} {}", short.join("; "))),
        }
    }
}

/// Asks the brokers about `topic` (blocking; run it on a blocking thread).
pub fn describe(consumer: &OrdersConsumer, topic: &str) -> Seen {
    match consumer.fetch_metadata(Some(topic), TIMEOUT) {
        Ok(metadata) => {
            let partitions: Vec<PartitionReplicas> = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none())
                .map(|t| {
                    t.partitions()
                        .iter()
                        .map(|p| PartitionReplicas {
                            id: p.id(),
                            leader: p.leader(),
                            replicas: p.replicas().len(),
                            in_sync: p.isr().len(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if partitions.is_empty() {
                Seen::Missing
            } else {
                Seen::Present { partitions }
            }
        }
        Err(_) => Seen::Unreachable,
    }
}

/// The topics' watcher: what it asks with, and what it saw last.
pub struct Probe {
    consumer: Arc<OrdersConsumer>,
    /// For the topic's configs; `None` if it could not be created (they stay unchecked).
    admin: Option<AdminClient<DefaultClientContext>>,
    topic: String,
    dlq_topic: Option<String>,
    expected_replication: usize,
    health: Arc<Health>,
    probes: u64,
    configs: Option<TopicConfigs>,
    /// Whether the failure to read the configs was logged (once).
    configs_failure_logged: bool,
}

impl Probe {
    pub fn new(consumer: Arc<OrdersConsumer>, config: &KafkaConfig, health: Arc<Health>) -> Self {
        // Only needed where the settings matter; a single broker has none to check.
        let admin = (config.expected_replication >= 2)
            .then(|| {
                let mut client = ClientConfig::new();
                client.set("bootstrap.servers", &config.brokers);
                config.client.apply(&mut client);
                client
                    .create::<AdminClient<DefaultClientContext>>()
                    .inspect_err(|e| {
                        log::warn!(
                            "cannot create a Kafka admin client ({e}): the orders topic's min.insync.replicas and unclean.leader.election.enable are not checked"
                        );
                    })
                    .ok()
            })
            .flatten();
        Self {
            consumer,
            admin,
            topic: config.topic.clone(),
            dlq_topic: config.dlq_topic.clone(),
            expected_replication: config.expected_replication,
            health,
            probes: 0,
            configs: None,
            configs_failure_logged: false,
        }
    }

    /// Probes once and records the result in `health`, logging changes (not every probe).
    pub async fn once(&mut self) {
        let (c, t, d) = (
            self.consumer.clone(),
            self.topic.clone(),
            self.dlq_topic.clone(),
        );
        let seen = tokio::task::spawn_blocking(move || {
            let orders = describe(&c, &t);
            let dlq = match (&d, &orders) {
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
        let health = self.health.clone();
        let topic = self.topic.clone();
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
                    log::info!(
                        "the orders topic {topic} has {} partitions",
                        partitions.len()
                    );
                }
                health.set_topic(TopicState::Present);
                self.check_replication(&partitions).await;
            }
        }
        let (Some(dlq_topic), Some(dlq)) = (self.dlq_topic.as_deref(), dlq) else {
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

    /// Assesses the orders topic's replication, reading its configs now and then; logs a
    /// warning that appears, changes or clears.
    async fn check_replication(&mut self, partitions: &[PartitionReplicas]) {
        if self.probes.is_multiple_of(CONFIGS_EVERY) || self.configs.is_none() {
            self.read_configs().await;
        }
        self.probes += 1;
        let assessed = TopicReplication::assess(
            &self.topic,
            self.expected_replication,
            partitions,
            self.configs,
        );
        let before = self.health.set_topic_replication(assessed.clone());
        let was = before.as_ref().and_then(|b| b.warning.as_ref());
        match (&assessed.warning, was) {
            (Some(now), was) if was != Some(now) => log::warn!("{now}"),
            (None, Some(_)) => log::info!(
                "the orders topic {} is replicated as expected again: {} replicas, {} in sync",
                self.topic,
                assessed.replicas,
                assessed.in_sync
            ),
            _ => {}
        }
    }

    async fn read_configs(&mut self) {
        let Some(admin) = &self.admin else {
            return;
        };
        let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let resource = ResourceSpecifier::Topic(&self.topic);
        let answer = admin.describe_configs([&resource], &options).await;
        let read = answer
            .map_err(|e| e.to_string())
            .and_then(|mut results| match results.pop() {
                Some(Ok(resource)) => Ok(TopicConfigs {
                    min_insync_replicas: resource
                        .get("min.insync.replicas")
                        .and_then(|e| e.value.as_deref()?.parse().ok()),
                    unclean_leader_election: resource
                        .get("unclean.leader.election.enable")
                        .and_then(|e| e.value.as_deref()?.parse().ok()),
                }),
                Some(Err(code)) => Err(code.to_string()),
                None => Err("no answer".into()),
            });
        match read {
            Ok(configs) => self.configs = Some(configs),
            Err(e) if !self.configs_failure_logged => {
                self.configs_failure_logged = true;
                log::warn!(
                    "cannot read the configs of the orders topic {} ({e}): its min.insync.replicas and unclean.leader.election.enable are not checked",
                    self.topic
                );
            }
            Err(_) => {}
        }
    }

    /// Probes every few seconds, for as long as the System runs.
    pub fn watch(mut self) {
        actix::spawn(async move {
            loop {
                tokio::time::sleep(EVERY).await;
                self.once().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(spec: &[(i32, usize, usize)]) -> Vec<PartitionReplicas> {
        spec.iter()
            .enumerate()
            .map(|(id, &(leader, replicas, in_sync))| PartitionReplicas {
                id: i32::try_from(id).expect("few"),
                leader,
                replicas,
                in_sync,
            })
            .collect()
    }

    const SAFE: Option<TopicConfigs> = Some(TopicConfigs {
        min_insync_replicas: Some(2),
        unclean_leader_election: Some(false),
    });

    #[test]
    fn a_topic_replicated_as_expected_has_no_warning() {
        let r = TopicReplication::assess("orders", 3, &partitions(&[(1, 3, 3), (2, 3, 3)]), SAFE);
        assert_eq!((r.replicas, r.in_sync, r.warning), (3, 3, None));
        let single = TopicReplication::assess("orders", 1, &partitions(&[(1, 1, 1)]), None);
        assert_eq!(single.warning, None, "one broker, as configured");
    }

    #[test]
    fn a_broker_down_leaves_partitions_under_replicated_and_says_which() {
        let r = TopicReplication::assess(
            "orders",
            3,
            &partitions(&[(1, 3, 3), (2, 3, 2), (-1, 3, 1)]),
            SAFE,
        );
        assert_eq!(r.under_replicated, [1, 2]);
        assert_eq!(r.leaderless, [2]);
        let w = r.warning.expect("warned");
        assert!(
            w.starts_with("the orders topic orders partition(s) 1, 2 have 1 replica(s) in sync"),
            "{w}"
        );
        assert!(w.contains("partition(s) 2 have no leader"), "{w}");
    }

    #[test]
    fn fewer_replicas_than_expected_is_a_warning() {
        let r = TopicReplication::assess("orders", 3, &partitions(&[(1, 1, 1)]), None);
        let w = r.warning.expect("warned");
        assert!(
            w.contains("1 replica(s) per partition, fewer than KAFKA_EXPECTED_REPLICATION=3"),
            "{w}"
        );
    }

    #[test]
    fn unsafe_topic_settings_are_warnings_from_two_replicas_up() {
        let lax = Some(TopicConfigs {
            min_insync_replicas: Some(1),
            unclean_leader_election: Some(true),
        });
        let r = TopicReplication::assess("orders", 3, &partitions(&[(1, 3, 3)]), lax);
        let w = r.warning.expect("warned");
        assert!(w.contains("min.insync.replicas=1"), "{w}");
        assert!(w.contains("unclean.leader.election.enable=true"), "{w}");
        let single = TopicReplication::assess("orders", 1, &partitions(&[(1, 1, 1)]), lax);
        assert_eq!(single.warning, None, "nothing to elect on one broker");
    }
}
