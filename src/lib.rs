//! orders-service: Kafka → validated orders → PostgreSQL, an in-memory cache, a JSON API and
//! a web page.
//!
//! ```text
//!  Kafka "orders" ──poll──▶ KafkaReader ──Write (by key)──▶ OrderWriter ×N ──tx──▶ PostgreSQL
//!        ▲                     │  ▲                            │    │
//!        └──store offsets──────┘  └──────────Written───────────┘    ├──dead letters──▶ "orders.dlq"
//!           (contiguous done                                        └──Put──▶ CacheActor
//!            prefix per partition)                                             ▲   │ miss
//!  browser / curl ──▶ actix-web handlers ──Get──────────────────────────────────┘   ▼
//!                                      └──RecentOrders/DeadLetterPage──▶ DbReader ──▶ PostgreSQL
//! ```
//!
//! # Layout
//! - [`config`]: every setting declared once (`settings.rs`: variable, flag, default, range,
//!   help), read from env/.env; errors name the variable; secrets never in `Debug` or
//!   `--help`; the Kafka connection shared with the emulator and `KAFKA_OPTION_*`.
//! - [`startup`]: the build order: HTTP first (so `/health` answers), then wait for the
//!   database → migrations under an advisory lock → then the cache warm-up and the Kafka
//!   reader + writers side by side.
//! - [`shutdown`]: the ordered, bounded stop.
//! - [`domain`]: the order model and `parse_and_validate` (pure, heavily unit-tested).
//! - [`ingest`]: what becomes of each message of a batch (stored, duplicate, dead letter),
//!   [`ingest::durable`], the retry / split / dead-letter / block policy over a `BatchStore`,
//!   and [`ingest::store`], a batch's transaction over the SQL primitives of [`db`].
//! - [`db`]: `DATABASE_URL` → connections (libpq's hosts, time limits and TLS over rustls),
//!   migrations and the runtime role's grants, schema, row models, queries (dead letters:
//!   pages, replay selection), retention (`orders-service retention`); errors sorted by
//!   whether the database answered, described without row values; passwords redacted.
//! - [`kafka`]: consumer configuration and context, the `OffsetTracker`, the flow control
//!   (pause decisions), the topic probe, the DLQ publisher.
//! - [`actors`]: KafkaReader, OrderWriter, DbReader (its `mod.rs` is the map).
//! - [`cache`]: the CacheActor and everything about the cache: its messages, the miss policy,
//!   the workers' client, the entry format (JSON, or zstd), the warm-up.
//! - [`http`]: the public listener (page, orders, probes) and the admin listener (bearer token,
//!   metrics, stats, dead letters, replay, the operator's page); request ids and the access
//!   log; every error a JSON body.
//! - [`replay`]: dead letters through the current validation and write path, outcomes recorded.
//! - [`logging`]: `LOG_FORMAT` (text, json), the log budgets, and the log's own writer thread
//!   (lines leave the request path through a bounded queue).
//! - [`health`]: component states shared by actors and `/health`.
//! - [`metrics`]: every Prometheus metric, declared once with its help text.

pub mod actors;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod health;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod replay;
pub mod shutdown;
pub mod startup;
