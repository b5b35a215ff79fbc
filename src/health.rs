//! Component states shared by the actors (writers, reader, probes) and read by `/health`.
//!
//! Every component that can stop progress has a state here, a metric, and a line in the
//! README's "When something is misconfigured". `/health` is 503 while any of them keeps the
//! service from serving or ingesting (database, Kafka, orders topic, cache warm-up, a writer
//! that cannot write); a failing DLQ topic only degrades it (200, `"status": "degraded"`),
//! because dead letters stay in the `dead_letters` table and ingestion goes on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::metrics::METRICS;

/// The state of the DLQ topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqState {
    /// `KAFKA_DLQ_TOPIC` is empty: dead letters go to the table only.
    Off,
    /// Publishing works (or has not failed yet).
    Ok,
    /// The broker says the topic does not exist.
    Missing,
    /// The last publish failed (refused, timed out, unauthorised).
    Failing,
}

impl DlqState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => DlqState::Off,
            1 => DlqState::Ok,
            2 => DlqState::Missing,
            _ => DlqState::Failing,
        }
    }
}

/// Whether the orders topic exists, as the last metadata probe saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicState {
    /// Not probed yet (Kafka not reached so far).
    Unknown,
    Present,
    Missing,
}

#[derive(Debug)]
pub struct Health {
    started: Instant,
    db_up: AtomicBool,
    kafka_up: AtomicBool,
    topic: AtomicU8,
    dlq: AtomicU8,
    cache_warm: AtomicBool,
    /// The CacheActor stopped (the HTTP worker hosting it ended): lookups read the database.
    cache_gone: AtomicBool,
    /// Writers that cannot reach the database.
    writers_unavailable: AtomicUsize,
    /// Writers blocked on a message the database refuses, dead letter included.
    writers_blocked: AtomicUsize,
    /// What start-up is doing until the service runs (e.g. "waiting for the database").
    phase: Mutex<&'static str>,
}

/// What `/health` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ok`, `degraded` (serving and ingesting, but the DLQ topic failing or the cache gone)
    /// or `unavailable`.
    pub status: &'static str,
    pub phase: &'static str,
    pub database: &'static str,
    pub kafka: &'static str,
    pub topic: TopicState,
    pub dlq: DlqState,
    pub cache: &'static str,
    /// `running`, `retrying` (the database does not answer) or `blocked` (it refuses a
    /// message and its dead letter).
    pub ingest: &'static str,
    pub uptime_seconds: u64,
}

impl HealthReport {
    /// 200 for `ok` and `degraded`, 503 otherwise.
    pub fn serving(&self) -> bool {
        self.status != "unavailable"
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            db_up: AtomicBool::new(false),
            kafka_up: AtomicBool::new(false),
            topic: AtomicU8::new(TopicState::Unknown as u8),
            dlq: AtomicU8::new(DlqState::Ok as u8),
            cache_warm: AtomicBool::new(false),
            cache_gone: AtomicBool::new(false),
            writers_unavailable: AtomicUsize::new(0),
            writers_blocked: AtomicUsize::new(0),
            phase: Mutex::new("starting"),
        }
    }

    pub fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    pub fn set_db_up(&self, up: bool) {
        self.db_up.store(up, Ordering::Relaxed);
        METRICS.db_up.set(i64::from(up));
    }

    pub fn set_kafka_up(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
        METRICS.kafka_up.set(i64::from(up));
    }

    pub fn set_topic(&self, state: TopicState) {
        self.topic.store(state as u8, Ordering::Relaxed);
        METRICS
            .topic_present
            .set(i64::from(state == TopicState::Present));
    }

    pub fn topic(&self) -> TopicState {
        match self.topic.load(Ordering::Relaxed) {
            1 => TopicState::Present,
            2 => TopicState::Missing,
            _ => TopicState::Unknown,
        }
    }

    pub fn set_dlq(&self, state: DlqState) {
        self.dlq.store(state as u8, Ordering::Relaxed);
        METRICS
            .dlq_up
            .set(i64::from(matches!(state, DlqState::Ok | DlqState::Off)));
    }

    pub fn dlq(&self) -> DlqState {
        DlqState::from_u8(self.dlq.load(Ordering::Relaxed))
    }

    pub fn set_cache_warm(&self) {
        self.cache_warm.store(true, Ordering::Relaxed);
    }

    /// The CacheActor is gone; true the first time (so that it is logged once).
    pub fn set_cache_gone(&self) -> bool {
        !self.cache_gone.swap(true, Ordering::Relaxed)
    }

    /// A writer's condition changed from `from` to `to` (`None`: making progress).
    pub fn writer_condition(
        &self,
        from: Option<&crate::ingest::durable::Condition>,
        to: Option<&crate::ingest::durable::Condition>,
    ) {
        use crate::ingest::durable::Condition;
        let counter = |c: &Condition| match c {
            Condition::Unavailable => &self.writers_unavailable,
            Condition::Blocked => &self.writers_blocked,
        };
        if let Some(c) = from {
            counter(c).fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(c) = to {
            counter(c).fetch_add(1, Ordering::Relaxed);
        }
        METRICS
            .writers_blocked
            .set(self.writers_blocked.load(Ordering::Relaxed) as i64);
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn report(&self) -> HealthReport {
        let db = self.db_up.load(Ordering::Relaxed);
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let topic = self.topic();
        let warm = self.cache_warm.load(Ordering::Relaxed);
        let gone = self.cache_gone.load(Ordering::Relaxed);
        let unavailable = self.writers_unavailable.load(Ordering::Relaxed) > 0;
        let blocked = self.writers_blocked.load(Ordering::Relaxed) > 0;
        let dlq = self.dlq();
        let phase = *self.phase.lock().unwrap_or_else(|p| p.into_inner());
        let ready = db && kafka && topic == TopicState::Present && warm && !unavailable && !blocked;
        let status = match (ready, dlq) {
            (false, _) => "unavailable",
            (true, DlqState::Missing | DlqState::Failing) => "degraded",
            (true, _) if gone => "degraded",
            (true, _) => "ok",
        };
        HealthReport {
            status,
            phase,
            database: if db && !unavailable { "up" } else { "down" },
            kafka: if kafka { "up" } else { "down" },
            topic,
            dlq,
            cache: match (gone, warm) {
                (true, _) => "gone",
                (false, true) => "warm",
                (false, false) => "warming",
            },
            ingest: if blocked {
                "blocked"
            } else if unavailable {
                "retrying"
            } else {
                "running"
            },
            uptime_seconds: self.uptime_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::durable::Condition;

    fn ready() -> Health {
        let h = Health::new();
        h.set_db_up(true);
        h.set_kafka_up(true);
        h.set_topic(TopicState::Present);
        h.set_cache_warm();
        h
    }

    #[test]
    fn everything_up_is_ok() {
        assert_eq!(ready().report().status, "ok");
    }

    #[test]
    fn a_missing_orders_topic_makes_the_service_unavailable() {
        let h = ready();
        h.set_topic(TopicState::Missing);
        let r = h.report();
        assert_eq!((r.status, r.topic), ("unavailable", TopicState::Missing));
        assert!(!r.serving());
    }

    #[test]
    fn a_failing_dlq_only_degrades_the_service() {
        let h = ready();
        h.set_dlq(DlqState::Missing);
        let r = h.report();
        assert_eq!(r.status, "degraded");
        assert!(r.serving());
    }

    #[test]
    fn a_gone_cache_degrades_the_service_and_is_named() {
        let h = ready();
        assert!(h.set_cache_gone(), "the first report");
        assert!(!h.set_cache_gone(), "reported once");
        let r = h.report();
        assert_eq!((r.status, r.cache), ("degraded", "gone"));
        assert!(r.serving(), "lookups still answer from the database");
    }

    #[test]
    fn a_blocked_writer_is_reported_without_calling_the_database_down() {
        let h = ready();
        h.writer_condition(None, Some(&Condition::Blocked));
        let r = h.report();
        assert_eq!(
            (r.status, r.database, r.ingest),
            ("unavailable", "up", "blocked")
        );
        h.writer_condition(Some(&Condition::Blocked), None);
        assert_eq!(h.report().status, "ok");
    }

    #[test]
    fn an_unreachable_database_for_a_writer_is_reported_as_down() {
        let h = ready();
        h.writer_condition(None, Some(&Condition::Unavailable));
        let r = h.report();
        assert_eq!((r.database, r.ingest), ("down", "retrying"));
    }
}
