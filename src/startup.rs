//! Build order: migrations → read pool → CacheActor → warm-up → DbReader → reader + writers →
//! HTTP. Then `run_until_stopped` runs the ordered stop when the shutdown future fires.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::Server;
use actix_web::web::Bytes;
use anyhow::Context;
use rdkafka::consumer::Consumer;

use crate::actors::cache_actor::{CacheActor, Warm, cached_json};
use crate::actors::db_reader::DbReader;
use crate::actors::kafka_reader::{KafkaReader, SetWriters, Shutdown};
use crate::actors::order_writer::{OrderWriter, WriterSettings};
use crate::config::Config;
use crate::db::{self, PgPool, queries};
use crate::health::Health;
use crate::http::{self, AppState};
use crate::kafka::dlq::DlqPublisher;
use crate::kafka::{self, OrdersConsumer, ReaderState};
use crate::metrics::METRICS;

/// Orders per warm-up page.
const WARM_PAGE: i64 = 2_000;

pub struct Application {
    addr: SocketAddr,
    server: Server,
    reader: Addr<KafkaReader>,
    consumer: Arc<OrdersConsumer>,
    shutdown_timeout: Duration,
    /// Kept so the writers' threads live as long as the application.
    _writer_arbiters: Vec<Arbiter>,
}

impl Application {
    /// Builds everything and binds the HTTP listener; ingestion starts at once.
    /// Must run inside an actix System.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let applied = db::run_migrations(&config.database_url)?;
        if !applied.is_empty() {
            log::info!("applied migrations: {}", applied.join(", "));
        }
        let pool = db::read_pool(&config.database_url, config.db_pool_size).await?;
        let health = Arc::new(Health::new());
        health.set_db_up(true);

        let cache = CacheActor::new(config.cache_max_bytes, pool.clone()).start();
        let started = Instant::now();
        let warmed = warm_up(&pool, &cache).await?;
        let millis = started.elapsed().as_millis();
        METRICS.warmup_orders.set(warmed as i64);
        METRICS.warmup_millis.set(millis as i64);
        health.set_cache_warm();
        log::info!("cache warmed with {warmed} orders in {millis} ms");

        let db_reader = DbReader::new(pool.clone(), health.clone()).start();

        let state = Arc::new(Mutex::new(ReaderState::default()));
        let consumer = kafka::consumer(&config.kafka, state.clone(), health.clone())
            .context("Failed to create the Kafka consumer (KAFKA_BROKERS)")?;
        // Know Kafka's state before reporting ready; statistics take over from here.
        health.set_kafka_up(probe_kafka(&consumer, &config.kafka.topic).await);
        let reader = KafkaReader::new(
            consumer.clone(),
            state,
            config.ingest.max_in_flight,
            config.ingest.max_in_flight_bytes,
        )
        .start();
        let dlq = match &config.kafka.dlq_topic {
            Some(topic) => Some(
                DlqPublisher::new(
                    &config.kafka.brokers,
                    topic,
                    &config.kafka.topic,
                    config.ingest.max_payload_bytes,
                )
                .context("Failed to create the DLQ producer (KAFKA_DLQ_TOPIC)")?,
            ),
            None => None,
        };
        let settings = WriterSettings {
            database_url: config.database_url.clone(),
            topic: config.kafka.topic.clone(),
            max_payload_bytes: config.ingest.max_payload_bytes,
            batch_max: config.ingest.batch_max,
            retry_max_backoff: config.ingest.retry_max_backoff,
        };
        let mut arbiters = Vec::new();
        let mut writers = Vec::new();
        for id in 0..config.ingest.writers {
            let arbiter = Arbiter::new();
            let (settings, reader, cache, dlq, health) = (
                settings.clone(),
                reader.clone(),
                cache.clone(),
                dlq.clone(),
                health.clone(),
            );
            writers.push(OrderWriter::start_in_arbiter(
                &arbiter.handle(),
                move |_| OrderWriter::new(id, settings, reader, cache, dlq, health),
            ));
            arbiters.push(arbiter);
        }
        // The reader starts fetching once it knows its writers.
        reader.do_send(SetWriters(writers));

        let listener = TcpListener::bind(&config.http_addr)
            .with_context(|| format!("Failed to bind HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;
        let workers = match config.http_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let server = http::server(
            listener,
            AppState {
                cache,
                db: db_reader,
                reader: reader.clone(),
                health,
            },
            workers,
        )?;
        Ok(Self {
            addr,
            server,
            reader,
            consumer,
            shutdown_timeout: config.shutdown_timeout,
            _writer_arbiters: arbiters,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops in order, every wait bounded:
    /// stop fetching → let in-flight writes finish (up to SHUTDOWN_TIMEOUT_MS) → commit
    /// synchronously → leave the group → stop the HTTP server gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        tokio::select! {
            () = shutdown => {}
            result = server => {
                result.context("the HTTP server task failed")??;
                anyhow::bail!("the HTTP server stopped on its own");
            }
        }
        log::info!(
            "shutting down: draining in-flight writes (up to {:?})",
            self.shutdown_timeout
        );
        let report = self
            .reader
            .send(Shutdown {
                timeout: self.shutdown_timeout,
            })
            .await
            .context("the Kafka reader is gone")?;
        log::info!(
            "shutdown: committed {:?}; {} messages left to be read again",
            report.committed,
            report.abandoned
        );
        leave_group(&self.consumer).await;
        handle.stop(true).await;
        log::info!("shutdown complete");
        Ok(())
    }
}

/// Asks the brokers for the topic's metadata (a blocking librdkafka call, so on a thread).
async fn probe_kafka(consumer: &Arc<OrdersConsumer>, topic: &str) -> bool {
    let (consumer, topic) = (consumer.clone(), topic.to_string());
    let probe = tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .map(|m| {
                let partitions = m.topics().first().map_or(0, |t| t.partitions().len());
                if partitions == 0 {
                    log::warn!("topic {topic} does not exist yet: waiting for it to be created");
                }
            })
    });
    match probe.await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            log::warn!("kafka is not reachable yet ({e}); ingestion starts when it is");
            false
        }
        Err(_) => false,
    }
}

/// Unsubscribes and keeps polling briefly so the revoke runs and the group learns at once
/// that this member left (instead of waiting for its session to time out).
async fn leave_group(consumer: &OrdersConsumer) {
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

/// Loads the newest orders into the cache, page by page (id ranges, newest first), until the
/// cache is full or every order is in. The next page is fetched while the current one is
/// serialized and handed to the cache, so PostgreSQL and this thread work in parallel.
/// Returns how many orders were cached.
pub async fn warm_up(pool: &PgPool, cache: &Addr<CacheActor>) -> anyhow::Result<usize> {
    let bounds = {
        let mut conn = pool
            .get()
            .await
            .context("Failed to get a database connection for the cache warm-up")?;
        queries::order_id_bounds(&mut conn)
            .await
            .context("Failed to read the order id range for the cache warm-up")?
    };
    let Some((lowest, highest)) = bounds else {
        return Ok(0);
    };
    let fetch = |hi: i64| {
        let pool = pool.clone();
        actix::spawn(async move {
            let mut conn = pool.get().await.map_err(crate::db::DbError::from)?;
            queries::orders_in_id_range(&mut conn, hi - WARM_PAGE, hi)
                .await
                .map_err(crate::db::DbError::from)
        })
    };
    let mut total = 0;
    let mut hi = highest;
    let mut pending = Some(fetch(hi));
    while let Some(page) = pending.take() {
        let orders = page
            .await
            .context("the warm-up task failed")?
            .context("Failed to read orders for the cache warm-up")?;
        hi -= WARM_PAGE;
        let more = hi >= lowest;
        if more {
            pending = Some(fetch(hi));
        }
        let page: Vec<(String, Bytes)> = orders
            .into_iter()
            .map(|o| {
                let json = cached_json(serde_json::to_vec(&o).unwrap_or_default());
                (o.order_uid, json)
            })
            .collect();
        let progress = cache
            .send(Warm { orders: page })
            .await
            .context("the cache actor is gone")?;
        total += progress.accepted;
        if progress.full {
            break;
        }
    }
    Ok(total)
}
