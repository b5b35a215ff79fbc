//! The build order, as a story:
//!
//! 1. [`Application::build`] binds the public and admin listeners and serves at once, so `/health` answers
//!    (503, with the phase) during everything that follows; nothing here touches the
//!    database or Kafka.
//! 2. [`Application::run_until_stopped`] then starts ingestion: waits for the database
//!    (capped backoff, logging what it waits for), migrates under an advisory lock (or waits
//!    for a separate `migrate` step with `RUN_MIGRATIONS=false`); then warms the cache while
//!    it checks the topics and starts the reader and writers (ingestion does not wait for the
//!    cache). It prints `orders-service ready` once both are done.
//! 3. A SIGTERM at any point is honoured: before ingestion starts the process stops at once
//!    (exit 0); once it runs, even while the cache still warms,
//!    [`crate::shutdown::ordered_stop`] drains and commits. A failed warm-up stops ingestion
//!    the same way before the process exits with the error.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;

use crate::actors::db_reader::{DbReader, ReaderSettings};
use crate::actors::kafka_reader::{KafkaReader, SetWriters};
use crate::actors::order_writer::{OrderWriter, WriterPeers, WriterSettings};
use crate::cache::{self, CacheActor, CacheHandle, HostedCache};
use crate::config::Config;
use crate::db::{self, PgPool};
use crate::health::{DlqState, Health};
use crate::http::{self, AppState};
use crate::ingest::durable::{Backoff, WritePolicy};
use crate::kafka::dlq::DlqPublisher;
use crate::kafka::{self, ReaderState, probe};
use crate::metrics::METRICS;
use crate::shutdown::{Ingest, ordered_stop};

/// Longest wait between two attempts to reach the database at start-up.
const STARTUP_MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct Application {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    /// The public server, then the admin server.
    servers: Vec<Server>,
    config: Config,
    pool: PgPool,
    /// `READ_DATABASE_URL`'s pool, for the warm-up (the DbReader holds a clone).
    read_pool: Option<PgPool>,
    health: Arc<Health>,
    cache: Addr<CacheActor>,
    reader_slot: Arc<OnceLock<Addr<KafkaReader>>>,
}

impl Application {
    /// Binds the HTTP listener and starts serving (probes answer "starting" until ingestion
    /// runs). Must run inside an actix System.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let health = Arc::new(Health::new());
        // Sets `orders_dlq_up` too, which would read 0 until the first publish otherwise.
        health.set_dlq(if config.kafka.dlq_topic.is_none() {
            DlqState::Off
        } else {
            DlqState::Ok
        });
        let pool = db::read_pool(&config.database, config.db_pool_size);
        let read_pool = config.read_database.as_ref().map(|target| {
            log::info!(
                "misses, lists and the warm-up read from READ_DATABASE_URL={} (a miss it does not find is asked of DATABASE_URL)",
                target.shown()
            );
            db::read_pool(target, config.db_pool_size)
        });
        let reader_settings = ReaderSettings {
            max_payload_bytes: config.ingest.max_payload_bytes,
        };
        let db_reader = DbReader::new(
            pool.clone(),
            read_pool.clone(),
            health.clone(),
            reader_settings,
        )
        .start();
        // Started by the first HTTP worker, on its thread (see `cache::actor`).
        let (cache, hosted_cache) = HostedCache::new(CacheActor::new(
            config.cache_max_bytes,
            config.cache_compression,
            config.max_misses_in_flight,
            db_reader.clone().recipient(),
        ));
        let cache_handle = CacheHandle::new(
            cache::Peers {
                cache: cache.clone(),
                loader: db_reader.clone().recipient(),
                health: health.clone(),
            },
            hosted_cache,
            config.cache_compression,
        );
        let reader_slot = Arc::new(OnceLock::new());

        let bind = |name: &str, addr: std::net::SocketAddr| {
            TcpListener::bind(addr).with_context(|| format!("Failed to bind {name}={addr}"))
        };
        let public = bind("HTTP_ADDR", config.http_addr)?;
        let admin = bind("ADMIN_ADDR", config.admin_addr)?;
        let addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let workers = match config.http_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let (idle_poll, why) = http::idle_poll::resolve(
            config.http_idle_poll,
            http::idle_poll::Machine::this_one(),
            workers,
        );
        log::info!("idle polling of the public HTTP workers: {why}");
        let state = actix_web::web::Data::new(AppState {
            cache: cache_handle,
            db: db_reader,
            reader: reader_slot.clone(),
            health: health.clone(),
            access_log: config.access_log,
        });
        let metrics = http::http_metrics()?;
        let options = http::PublicOptions {
            workers,
            idle_poll,
            order_list: config.public_order_list,
        };
        let server = http::public_server(public, state.clone(), metrics.clone(), options)?;
        let admin = http::admin_server(admin, state, metrics, config.admin_token.clone())?;
        if config.public_order_list {
            log::warn!(
                "PUBLIC_ORDER_LIST=true: GET /orders on the public listener ({addr}) lists order ids and customer ids, and each id opens its order (name, phone, address, e-mail) to anyone who reaches it; for a demo only"
            );
        }
        Ok(Self {
            addr,
            admin_addr,
            servers: vec![server, admin],
            config,
            pool,
            read_pool,
            health,
            cache,
            reader_slot,
        })
    }

    /// The public listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Starts ingestion, serves until `shutdown` completes, then stops in order.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handles: Vec<ServerHandle> = self.servers.iter().map(Server::handle).collect();
        let mut server =
            futures::future::select_all(self.servers.into_iter().map(actix_web::rt::spawn));
        tokio::pin!(shutdown);
        let stop_servers = async || {
            log::info!("stopped during start-up ({})", self.health.report().phase);
            for handle in &handles {
                handle.stop(true).await;
            }
        };

        tokio::select! {
            prepared = prepare_database(&self.config, &self.pool, &self.health) => prepared?,
            () = &mut shutdown => {
                stop_servers().await;
                return Ok(());
            }
            (result, _, _) = &mut server => {
                return Err(server_ended(result));
            }
        }

        // The warm-up and ingestion start side by side: a restarted instance takes its
        // partitions back and stores orders while the cache fills, so the pause in ingestion
        // does not grow with the cache (a full 512 MiB cache takes seconds to warm). The
        // service reports ready once both are done; until then misses are read from the
        // database as usual.
        let warm = warm_cache(
            &self.config,
            (&self.pool, self.read_pool.as_ref()),
            &self.health,
            &self.cache,
        );
        let started = start_ingest(&self.config, &self.health, &self.cache, &self.reader_slot);
        tokio::pin!(warm, started);
        let (mut ingest, mut warmed) = (None, false);
        while ingest.is_none() || !warmed {
            tokio::select! {
                started = &mut started, if ingest.is_none() => {
                    ingest = Some(started?);
                    if !warmed {
                        self.health.set_phase("warming the cache");
                    }
                }
                warm = &mut warm, if !warmed => match warm {
                    Ok(()) => warmed = true,
                    Err(e) => {
                        // Ingestion may already run: drain and commit what it holds first.
                        if let Some(ingest) = ingest.take()
                            && let Err(stop) =
                                ordered_stop(ingest, &handles, self.config.shutdown_timeout).await
                        {
                            log::error!("stopping after the failed warm-up: {stop:#}");
                        }
                        return Err(e);
                    }
                },
                () = &mut shutdown => {
                    return match ingest.take() {
                        Some(ingest) => {
                            log::info!("stopping while the cache warms");
                            ordered_stop(ingest, &handles, self.config.shutdown_timeout).await
                        }
                        None => {
                            stop_servers().await;
                            Ok(())
                        }
                    };
                }
                (result, _, _) = &mut server => {
                    return Err(server_ended(result));
                }
            }
        }
        let ingest = ingest.expect("the loop ends once ingestion has started");
        self.health.set_phase("running");
        // The second line on stdout: scripts and tests wait for it.
        println!("orders-service ready");
        tokio::select! {
            () = shutdown => {}
            (result, _, _) = server => {
                return Err(server_ended(result));
            }
        }
        ordered_stop(ingest, &handles, self.config.shutdown_timeout).await
    }
}

/// Why the process stops when an HTTP server task ended: a server only ends on its own
/// through a failure (a stop is always ours, after the shutdown signal).
fn server_ended(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match result {
        Err(e) => anyhow::Error::new(e).context("an HTTP server task failed"),
        Ok(Err(e)) => anyhow::Error::new(e),
        Ok(Ok(())) => anyhow::anyhow!("an HTTP server stopped on its own"),
    }
}

/// The database answers and its schema is current: what the warm-up and ingestion need.
async fn prepare_database(
    config: &Config,
    pool: &PgPool,
    health: &Arc<Health>,
) -> anyhow::Result<()> {
    health.set_phase("waiting for the database");
    wait_for_database(&config.database, health).await;
    health.set_db_up(true);

    if config.run_migrations {
        health.set_phase("migrating");
        migrate(config, pool).await?;
    } else {
        health.set_phase("waiting for migrations");
        wait_for_migrations(pool).await;
    }
    warn_about_excess_rights(config, pool).await;
    Ok(())
}

/// Least privilege, checked: says so when the runtime role may update or delete (e.g. a
/// role that was granted DELETE on dead_letters for retention), and how to take it back.
async fn warn_about_excess_rights(config: &Config, pool: &PgPool) {
    let extra = match pool.get().await {
        Ok(mut conn) => db::excess_rights(&mut conn).await,
        Err(e) => Err(db::DbError::from(e)),
    };
    match extra {
        Ok(extra) if extra.is_empty() => {}
        Ok(extra) => log::warn!(
            "the runtime role {} may do more than SELECT and INSERT ({}): run `orders-service migrate` with MIGRATION_DATABASE_URL set to the owner role, which revokes it",
            config.database.user().unwrap_or("?"),
            extra.join(", ")
        ),
        Err(e) => log::warn!("cannot check the runtime role's rights: {e}"),
    }
}

/// Loads the newest stored orders into the cache (see [`crate::cache::warm_up`]), from
/// the read standby while it answers, else from the primary.
async fn warm_cache(
    config: &Config,
    (pool, read_pool): (&PgPool, Option<&PgPool>),
    health: &Health,
    cache: &Addr<CacheActor>,
) -> anyhow::Result<()> {
    use crate::health::Reads;

    let started = Instant::now();
    let standby = match (&config.read_database, read_pool) {
        (Some(target), Some(read_pool)) if health.reads() == Reads::Standby => {
            Some((target, read_pool))
        }
        _ => None,
    };
    let warmed = if config.cache_max_bytes == 0 {
        0 // The cache is off: nothing to read.
    } else if let Some((target, read_pool)) = standby {
        // A page that arrives twice (read again from the primary) replaces its entries.
        match cache::warm_up(target, config.cache_compression, read_pool, cache).await {
            Ok(warmed) => warmed,
            Err(e) => {
                log::warn!(
                    "the cache warm-up from READ_DATABASE_URL failed ({e:#}): warming from DATABASE_URL"
                );
                cache::warm_up(&config.database, config.cache_compression, pool, cache).await?
            }
        }
    } else {
        cache::warm_up(&config.database, config.cache_compression, pool, cache).await?
    };
    let elapsed = started.elapsed();
    METRICS.warmup_orders.set(warmed as i64);
    METRICS.warmup_seconds.set(elapsed.as_secs_f64());
    health.set_cache_warm();
    log::info!(
        "cache warmed with {warmed} orders in {} ms (CACHE_COMPRESSION={})",
        elapsed.as_millis(),
        config.cache_compression.as_str()
    );
    Ok(())
}

/// Kafka → reader → writers: ingestion, once the database is ready.
async fn start_ingest(
    config: &Config,
    health: &Arc<Health>,
    cache: &Addr<CacheActor>,
    reader_slot: &OnceLock<Addr<KafkaReader>>,
) -> anyhow::Result<Ingest> {
    health.set_phase("connecting to kafka");
    let state = Arc::new(Mutex::new(ReaderState::default()));
    let consumer = kafka::consumer(&config.kafka, state.clone(), health.clone())
        .context("Failed to create the Kafka consumer (KAFKA_BROKERS)")?;
    // Know the topics' state before reporting ready; the probe keeps watching them.
    let dlq_topic = config.kafka.dlq_topic.clone();
    let mut topics = probe::Probe::new(consumer.clone(), &config.kafka, health.clone());
    topics.once().await;
    topics.watch();
    let reader = KafkaReader::new(
        consumer.clone(),
        state,
        config.ingest.max_in_flight,
        config.ingest.max_in_flight_bytes,
    )
    .start();
    let _ = reader_slot.set(reader.clone());
    let dlq = match &dlq_topic {
        Some(topic) => Some(
            DlqPublisher::new(
                &config.kafka.brokers,
                &config.kafka.client,
                topic,
                &config.kafka.topic,
                config.ingest.max_payload_bytes,
                config.kafka.dlq_backlog_max_bytes,
                health.clone(),
            )
            .context("Failed to create the DLQ producer (KAFKA_DLQ_TOPIC)")?,
        ),
        None => None,
    };
    let settings = WriterSettings {
        database: config.database.clone(),
        topic: config.kafka.topic.clone(),
        max_payload_bytes: config.ingest.max_payload_bytes,
        batch_max: config.ingest.batch_max,
        policy: WritePolicy {
            max_backoff: config.ingest.retry_max_backoff,
            ..WritePolicy::default()
        },
        write_timeout: config.ingest.write_timeout,
        cache_compression: config.cache_compression,
    };
    let peers = WriterPeers {
        written: reader.clone().recipient(),
        state: reader.clone().recipient(),
        cache: cache.clone().recipient(),
        dlq,
        health: health.clone(),
    };
    let mut arbiters = Vec::new();
    let mut writers = Vec::new();
    for id in 0..config.ingest.writers {
        let arbiter = Arbiter::new();
        let (settings, peers) = (settings.clone(), peers.clone());
        let writer = OrderWriter::start_in_arbiter(&arbiter.handle(), move |_| {
            OrderWriter::new(id, settings, peers)
        });
        writers.push(writer.recipient());
        arbiters.push(arbiter);
    }
    // The reader starts fetching once it knows its writers.
    reader.do_send(SetWriters(writers));
    Ok(Ingest {
        reader,
        consumer,
        writer_arbiters: arbiters,
        static_member: config.kafka.instance_id.is_some(),
    })
}

/// Waits until the database answers, logging what it waits for and why it failed (refused,
/// authentication, certificate), with capped backoff, then its durability settings and
/// replication. Connects directly, not through the pool, whose errors only say "timed out".
async fn wait_for_database(target: &db::DbTarget, health: &Health) {
    let mut backoff = Backoff::new(STARTUP_MAX_BACKOFF);
    let mut attempts = 0u32;
    loop {
        let answer = match target.connect().await {
            Ok(mut conn) => match db::durability(&mut conn).await {
                Ok(d) => Ok((d, db::replication::replication(&mut conn).await)),
                Err(e) => Err(e),
            },
            Err(e) => Err(db::DbError::Unavailable(format!("cannot connect: {e}"))),
        };
        match answer {
            Ok((d, replication)) => {
                if attempts > 0 {
                    log::info!("the database answers after {attempts} failed attempts");
                }
                if d.fsync != "on" {
                    log::warn!(
                        "the database runs with fsync={}: a committed order can be lost in a machine crash; turn fsync on",
                        d.fsync
                    );
                }
                log::info!(
                    "database durability: fsync={}, synchronous_commit={} (default; every write transaction sets it on)",
                    d.fsync,
                    d.synchronous_commit
                );
                match replication {
                    Ok(replication) => {
                        let line = replication.change_since(None).map(|(level, line)| {
                            log::log!(level, "{line}");
                        });
                        debug_assert!(line.is_some(), "a first check is always logged");
                        health.set_replication(replication);
                    }
                    Err(e) => log::warn!("cannot read the database's replication: {e}"),
                }
                return;
            }
            Err(e) => {
                attempts += 1;
                let delay = backoff.step();
                log::warn!(
                    "waiting for the database (DATABASE_URL={}): {e}; next attempt in {delay:?}",
                    target.shown()
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Applies pending migrations, as the owner role when `MIGRATION_DATABASE_URL` is set. With
/// nothing pending it does not connect as the owner at all: an instance that only has the
/// runtime role starts fine once a `migrate` step has run.
async fn migrate(config: &Config, pool: &PgPool) -> anyhow::Result<()> {
    let pending = {
        let mut conn = pool.get().await.map_err(db::DbError::from)?;
        db::pending_migrations(&mut conn)
            .await
            .context("Failed to read the applied migrations")?
    };
    if pending.is_empty() {
        return Ok(());
    }
    let owner = config
        .migration_database
        .clone()
        .unwrap_or_else(|| config.database.clone());
    let runtime_role = config.database.user().map(str::to_string);
    let applied =
        tokio::task::spawn_blocking(move || db::run_migrations(&owner, runtime_role.as_deref()))
            .await
            .context("the migration thread failed")??;
    if !applied.is_empty() {
        log::info!("applied migrations: {}", applied.join(", "));
    }
    Ok(())
}

/// With `RUN_MIGRATIONS=false`: waits until a separate step has applied every migration.
async fn wait_for_migrations(pool: &PgPool) {
    let mut backoff = Backoff::new(STARTUP_MAX_BACKOFF);
    loop {
        let pending = match pool.get().await {
            Ok(mut conn) => db::pending_migrations(&mut conn).await,
            Err(e) => Err(db::DbError::from(e)),
        };
        let delay = backoff.step();
        match pending {
            Ok(p) if p.is_empty() => return,
            Ok(p) => log::warn!(
                "RUN_MIGRATIONS=false and {} migration(s) are not applied yet ({}): run `orders-service migrate`; checking again in {delay:?}",
                p.len(),
                p.join(", ")
            ),
            Err(e) => log::warn!("cannot read the applied migrations ({e}); retrying in {delay:?}"),
        }
        tokio::time::sleep(delay).await;
    }
}
