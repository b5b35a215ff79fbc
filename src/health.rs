//! Component states shared by the actors (writers, reader, probes) and read by `/health`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::metrics::METRICS;

#[derive(Debug)]
pub struct Health {
    started: Instant,
    db_up: AtomicBool,
    kafka_up: AtomicBool,
    cache_warm: AtomicBool,
    /// Writers currently retrying a transient database failure.
    writers_failing: AtomicUsize,
}

/// What `/health` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: &'static str,
    pub database: &'static str,
    pub kafka: &'static str,
    pub cache: &'static str,
    pub ingest: &'static str,
    pub uptime_seconds: u64,
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
            cache_warm: AtomicBool::new(false),
            writers_failing: AtomicUsize::new(0),
        }
    }

    pub fn set_db_up(&self, up: bool) {
        self.db_up.store(up, Ordering::Relaxed);
        METRICS.db_up.set(i64::from(up));
    }

    pub fn set_kafka_up(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
        METRICS.kafka_up.set(i64::from(up));
    }

    pub fn set_cache_warm(&self) {
        self.cache_warm.store(true, Ordering::Relaxed);
    }

    pub fn writer_failing(&self, failing: bool) {
        if failing {
            self.writers_failing.fetch_add(1, Ordering::Relaxed);
        } else {
            self.writers_failing.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Ready = the database and Kafka answer, the cache is warm and no writer is failing.
    pub fn report(&self) -> HealthReport {
        let db = self.db_up.load(Ordering::Relaxed);
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let warm = self.cache_warm.load(Ordering::Relaxed);
        let failing = self.writers_failing.load(Ordering::Relaxed) > 0;
        let ok = db && kafka && warm && !failing;
        HealthReport {
            status: if ok { "ok" } else { "unavailable" },
            database: if db && !failing { "up" } else { "down" },
            kafka: if kafka { "up" } else { "down" },
            cache: if warm { "warm" } else { "warming" },
            ingest: if failing { "retrying" } else { "running" },
            uptime_seconds: self.uptime_seconds(),
        }
    }
}
