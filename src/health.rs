//! Component states shared by the actors (writers, reader, probes) and read by `/health`.
//!
//! Every component that can stop progress has a state here, a metric, and a line in the
//! README's "When something is misconfigured". `/health` is 503 while any of them keeps the
//! service from serving or ingesting (database, Kafka, orders topic, cache warm-up, a writer
//! that cannot write); a failing DLQ topic only degrades it (200, `"status": "degraded"`),
//! because dead letters stay in the `dead_letters` table and ingestion goes on; so does a
//! read standby that fails (reads go to the primary meanwhile).
//!
//! Beside the states, what the guarantee rests on beyond this process, re-checked while it
//! runs: the database's replication (`durability`, `replication`), the standby reads come
//! from (`reads`) and the orders topic's replication (`topic_replication`). What falls short
//! of what the operator asked for is a line in `warnings` (and in the log when it appears),
//! never a 503: the service still stores every order, it is the reach of "stored" that is
//! less than expected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::db::replication::{ReadServer, Replication};
use crate::kafka::probe::TopicReplication;
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

/// Where misses, lists and the warm-up read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reads {
    /// No `READ_DATABASE_URL`: the primary (`DATABASE_URL`).
    #[serde(rename = "primary")]
    Primary,
    /// The server of `READ_DATABASE_URL`.
    #[serde(rename = "standby")]
    Standby,
    /// `READ_DATABASE_URL` does not answer: the primary until it does again.
    #[serde(rename = "primary (standby down)")]
    StandbyDown,
}

impl Reads {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Reads::Primary,
            1 => Reads::Standby,
            _ => Reads::StandbyDown,
        }
    }
}

/// What the reads' side reports (`/health` `reads`).
#[derive(Debug, Clone, Serialize)]
pub struct ReadsReport {
    pub from: Reads,
    /// The read server as the last check saw it (null without `READ_DATABASE_URL`, or
    /// before it first answered).
    pub server: Option<ReadServer>,
    /// Misses the standby did not have (yet), found on the primary, since start.
    pub found_on_primary: u64,
    /// Reads the standby failed or did not answer in time, answered by the primary, since start.
    pub standby_failures: u64,
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
    reads: AtomicU8,
    read_server: Mutex<Option<ReadServer>>,
    found_on_primary: AtomicU64,
    standby_failures: AtomicU64,
    replication: Mutex<Option<Replication>>,
    topic_replication: Mutex<Option<TopicReplication>>,
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
    /// How far a stored order's durability reaches: `local` (the primary's disk), `sync
    /// standby` (and a synchronous standby's), `sync standby missing` (one is configured,
    /// none connected: commits wait), `unknown` (not checked yet).
    pub durability: &'static str,
    /// The primary's replication as the last check saw it (see `db::replication`).
    pub replication: Option<Replication>,
    pub reads: ReadsReport,
    /// The orders topic's replication as the last probe saw it (see `kafka::probe`).
    pub topic_replication: Option<TopicReplication>,
    /// What falls short of the guarantee's assumptions, one sentence each.
    pub warnings: Vec<String>,
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
            reads: AtomicU8::new(Reads::Primary as u8),
            read_server: Mutex::new(None),
            found_on_primary: AtomicU64::new(0),
            standby_failures: AtomicU64::new(0),
            replication: Mutex::new(None),
            topic_replication: Mutex::new(None),
        }
    }

    pub fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    pub fn set_db_up(&self, up: bool) {
        self.db_up.store(up, Ordering::Relaxed);
        METRICS.db_up.set(i64::from(up));
    }

    pub fn db_up(&self) -> bool {
        self.db_up.load(Ordering::Relaxed)
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

    pub fn set_reads(&self, reads: Reads) {
        self.reads.store(reads as u8, Ordering::Relaxed);
    }

    pub fn reads(&self) -> Reads {
        Reads::from_u8(self.reads.load(Ordering::Relaxed))
    }

    pub fn set_read_server(&self, server: Option<ReadServer>) {
        *locked(&self.read_server) = server;
    }

    /// A miss the standby did not have was found on the primary.
    pub fn found_on_primary(&self) {
        self.found_on_primary.fetch_add(1, Ordering::Relaxed);
    }

    /// A read the standby failed was answered by the primary.
    pub fn standby_failed(&self) {
        self.standby_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a replication check; returns the previous one (to log what changed).
    pub fn set_replication(&self, replication: Replication) -> Option<Replication> {
        locked(&self.replication).replace(replication)
    }

    /// Records a topic probe; returns the previous one (to log what changed).
    pub fn set_topic_replication(&self, topic: TopicReplication) -> Option<TopicReplication> {
        locked(&self.topic_replication).replace(topic)
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
        let reads = self.reads();
        let ready = db && kafka && topic == TopicState::Present && warm && !unavailable && !blocked;
        let status = match (ready, dlq) {
            (false, _) => "unavailable",
            (true, DlqState::Missing | DlqState::Failing) => "degraded",
            (true, _) if gone || reads == Reads::StandbyDown => "degraded",
            (true, _) => "ok",
        };
        let replication = locked(&self.replication).clone();
        let read_server = locked(&self.read_server).clone();
        let topic_replication = locked(&self.topic_replication).clone();
        let warnings = warnings(
            replication.as_ref(),
            reads,
            read_server.as_ref(),
            topic_replication.as_ref(),
        );
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
            durability: replication
                .as_ref()
                .map_or("unknown", |r| r.durability.as_str()),
            replication,
            reads: ReadsReport {
                from: reads,
                server: read_server,
                found_on_primary: self.found_on_primary.load(Ordering::Relaxed),
                standby_failures: self.standby_failures.load(Ordering::Relaxed),
            },
            topic_replication,
            warnings,
            uptime_seconds: self.uptime_seconds(),
        }
    }
}

/// A std `Mutex` held for a clone or a swap, never across an await; poisoned, its data is
/// still whole.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `warnings` of a report.
fn warnings(
    replication: Option<&Replication>,
    reads: Reads,
    read_server: Option<&ReadServer>,
    topic: Option<&TopicReplication>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(w) = replication.and_then(|r| r.warning.as_ref()) {
        out.push(w.clone());
    }
    if reads == Reads::StandbyDown {
        out.push(
            "the read standby (READ_DATABASE_URL) does not answer: misses, lists and the warm-up read from the primary until it does".into(),
        );
    }
    if let Some(server) = read_server.filter(|s| s.replay_paused && reads == Reads::Standby) {
        out.push(format!(
            "the read standby {} has its replay paused: lists show its state of when it paused (misses it lacks are still read from the primary)",
            server.server
        ));
    }
    if let Some(w) = topic.and_then(|t| t.warning.as_ref()) {
        out.push(w.clone());
    }
    out
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
    fn a_read_standby_down_degrades_the_service_and_says_where_reads_go() {
        let h = ready();
        h.set_reads(Reads::Standby);
        assert_eq!(h.report().status, "ok");
        h.set_reads(Reads::StandbyDown);
        let r = h.report();
        assert_eq!((r.status, r.reads.from), ("degraded", Reads::StandbyDown));
        assert!(r.serving(), "reads go to the primary");
        assert!(
            r.warnings[0].contains("READ_DATABASE_URL"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn a_replication_warning_is_listed_without_changing_the_status() {
        let h = ready();
        assert_eq!(h.report().durability, "unknown");
        let local = Replication::classify(
            "p:1".into(),
            String::new(),
            vec![crate::db::replication::SenderRow {
                name: "pg3".into(),
                state: None,
                sync_state: None,
            }],
        );
        assert_eq!(h.set_replication(local.clone()), None);
        let r = h.report();
        assert_eq!((r.status, r.durability), ("ok", "local"));
        assert_eq!(r.warnings, [local.warning.expect("warned")]);
    }

    #[test]
    fn an_unreachable_database_for_a_writer_is_reported_as_down() {
        let h = ready();
        h.writer_condition(None, Some(&Condition::Unavailable));
        let r = h.report();
        assert_eq!((r.database, r.ingest), ("down", "retrying"));
    }
}
