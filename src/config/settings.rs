//! Every setting of the service, declared once: its variable, flag, default, accepted values
//! and help. `orders-service --help` prints them; the README's configuration table is
//! checked against them (`config::tests`). A setting's field is its variable's name in
//! lower case (errors name the variable from it). Checks across settings are in
//! [`super::Config::new`].
//!
//! To add one: a field here (`#[arg(long, env, …)]` with a default and a value parser from
//! [`super::parse`]), its typed field in [`super::Config`], and a row in the README's table.

use std::net::SocketAddr;

use clap::ArgAction;

use super::client_properties::KafkaConnection;
use super::parse::{Secret, checked, non_empty, number, secret, socket_addr, switch, text};
use crate::cache::CacheCompression;
use crate::http::idle_poll::IdlePollSetting;
use crate::logging::LogFormat;

const DATABASE: &str = "Database";
const KAFKA: &str = "Kafka";
const INGEST: &str = "Ingest";
const HTTP: &str = "HTTP";
const CACHE: &str = "Cache";
const OPERATION: &str = "Operation";

#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URL of the runtime role (required): postgres:// or postgresql://, libpq's
    /// TLS and multi-host options
    #[arg(long, env, hide_env_values = true, value_parser = secret(), help_heading = DATABASE)]
    pub database_url: Option<Secret>,

    /// PostgreSQL URL of the role that owns the schema (migrations, retention); empty:
    /// DATABASE_URL's role
    #[arg(long, env, hide_env_values = true, value_parser = secret(), help_heading = DATABASE)]
    pub migration_database_url: Option<Secret>,

    /// Apply pending migrations at start-up; false waits for `orders-service migrate`
    /// (true|false)
    #[arg(long, env, default_value_t = true, action = ArgAction::Set, value_parser = switch(),
          help_heading = DATABASE)]
    pub run_migrations: bool,

    /// PostgreSQL URL of a standby (or several hosts) for cache misses, lists and the
    /// warm-up; a miss it lacks is asked of the primary; empty: DATABASE_URL
    #[arg(long, env, hide_env_values = true, value_parser = secret(), help_heading = DATABASE)]
    pub read_database_url: Option<Secret>,

    /// Connections in the read pool (1–256)
    #[arg(long, env, default_value_t = 8, value_parser = number(1..=256u32),
          help_heading = DATABASE)]
    pub db_pool_size: u32,

    /// Longest start-up of one database connection, in ms (1000–600000)
    #[arg(long, env, default_value_t = 10_000, value_parser = number(1_000..=600_000u64),
          help_heading = DATABASE)]
    pub db_connect_timeout_ms: u64,

    /// Longest write transaction, in ms; a slower batch is written in halves (100–3600000)
    #[arg(long, env, default_value_t = 30_000, value_parser = number(100..=3_600_000u64),
          help_heading = DATABASE)]
    pub db_write_timeout_ms: u64,

    /// Cap of the backoff while the database fails, in ms (10–600000)
    #[arg(long, env, default_value_t = 2_000, value_parser = number(10..=600_000u64),
          help_heading = DATABASE)]
    pub db_retry_max_backoff_ms: u64,

    #[command(flatten)]
    pub kafka: KafkaConnection,

    /// Topic consumed (non-empty)
    #[arg(long, env, default_value = "orders", value_parser = non_empty(), help_heading = KAFKA)]
    pub kafka_topic: String,

    /// Consumer group (non-empty)
    #[arg(long, env, default_value = "orders-service", value_parser = non_empty(),
          help_heading = KAFKA)]
    pub kafka_group_id: String,

    /// Dead-letter topic, not KAFKA_TOPIC; empty turns it off (the table still keeps them)
    #[arg(long, env, default_value = "orders.dlq", value_parser = text(), help_heading = KAFKA)]
    pub kafka_dlq_topic: String,

    /// Group session timeout, in ms (6000–300000)
    #[arg(long, env, default_value_t = 10_000, value_parser = number(6_000..=300_000u32),
          help_heading = KAFKA)]
    pub kafka_session_timeout_ms: u32,

    /// librdkafka's max.poll.interval.ms, above SHUTDOWN_TIMEOUT_MS (10000–86400000)
    #[arg(long, env, default_value_t = 300_000,
          value_parser = number(10_000..=86_400_000u32), help_heading = KAFKA)]
    pub kafka_max_poll_interval_ms: u32,

    /// How often stored offsets are committed, in ms (100–600000)
    #[arg(long, env, default_value_t = 1_000, value_parser = number(100..=600_000u32),
          help_heading = KAFKA)]
    pub kafka_commit_interval_ms: u32,

    /// Static group membership (group.instance.id): at most 249 of A-Z a-z 0-9 . _ -,
    /// unique per instance; empty: dynamic membership
    #[arg(long, env, value_parser = text(), help_heading = KAFKA)]
    pub kafka_instance_id: Option<String>,

    /// The replication factor the orders topic should have; /health warns when it has fewer
    /// replicas or fewer in sync (1–16)
    #[arg(long, env, default_value_t = 1, value_parser = number(1..=16usize),
          help_heading = KAFKA)]
    pub kafka_expected_replication: usize,

    /// Memory for dead letters waiting for a failing or missing DLQ topic, in bytes
    /// (0–1073741824)
    #[arg(long, env, default_value_t = 16 << 20, value_parser = number(0..=1usize << 30),
          help_heading = KAFKA)]
    pub dlq_backlog_max_bytes: usize,

    /// Largest message payload; larger ones are dead-lettered, in bytes (1024–16777216)
    #[arg(long, env, default_value_t = 64 * 1024, value_parser = number(1024..=16usize << 20),
          help_heading = INGEST)]
    pub max_payload_bytes: usize,

    /// Messages with the writers, not yet durable: the back-pressure bound (1–1000000)
    #[arg(long, env, default_value_t = 20_000, value_parser = number(1..=1_000_000usize),
          help_heading = INGEST)]
    pub max_in_flight: usize,

    /// Memory those messages hold, in bytes (65536–2^40)
    #[arg(long, env, default_value_t = 256 << 20, value_parser = number(65_536..=1usize << 40),
          help_heading = INGEST)]
    pub max_in_flight_bytes: usize,

    /// OrderWriter actors, one connection each (1–64)
    #[arg(long, env, default_value_t = 2, value_parser = number(1..=64usize),
          help_heading = INGEST)]
    pub writers: usize,

    /// Most messages in one write transaction (1–10000)
    #[arg(long, env, default_value_t = 1_000, value_parser = number(1..=10_000usize),
          help_heading = INGEST)]
    pub writer_batch_max: usize,

    /// Public listener, numeric IP:port (port 0: any free port)
    #[arg(long, env, default_value = "0.0.0.0:8081", value_parser = socket_addr(),
          help_heading = HTTP)]
    pub http_addr: SocketAddr,

    /// Admin listener, numeric IP:port, not HTTP_ADDR; off loopback only with ADMIN_TOKEN
    #[arg(long, env, default_value = "127.0.0.1:9081", value_parser = socket_addr(),
          help_heading = HTTP)]
    pub admin_addr: SocketAddr,

    /// Bearer token every admin request needs: 16+ characters, not a placeholder
    #[arg(long, env, hide_env_values = true, value_parser = secret(), help_heading = HTTP)]
    pub admin_token: Option<Secret>,

    /// Also serve GET /orders on the public listener, for a demo (true|false)
    #[arg(long, env, default_value_t = false, action = ArgAction::Set, value_parser = switch(),
          help_heading = HTTP)]
    pub public_order_list: bool,

    /// Public listener threads; 0: one per CPU (0–256)
    #[arg(long, env, default_value_t = 0, value_parser = number(0..=256usize),
          help_heading = HTTP)]
    pub http_workers: usize,

    /// How long a public worker keeps polling after an answer while requests come closer
    /// than that, in µs (0–100000; 0: off); auto: 200 unless the process has a CPU quota
    /// or fewer cores than HTTP workers
    #[arg(long, env, default_value = "auto", value_parser = checked(IdlePollSetting::parse),
          help_heading = HTTP)]
    pub http_idle_poll_us: IdlePollSetting,

    /// Cache budget, in bytes; 0 turns the cache off (0–2^64−1)
    #[arg(long, env, default_value_t = 512 << 20, value_parser = number(0..=u64::MAX),
          help_heading = CACHE)]
    pub cache_max_bytes: u64,

    /// Most order ids read from the database at once for misses; beyond: 503 busy
    /// (1–100000)
    #[arg(long, env, default_value_t = 64, value_parser = number(1..=100_000usize),
          help_heading = CACHE)]
    pub max_misses_in_flight: usize,

    /// Cached orders as JSON or zstd-compressed (off|zstd)
    #[arg(long, env, default_value = "off", help_heading = CACHE,
          value_parser = checked(|v| CacheCompression::parse(v).ok_or_else(|| "must be off or zstd".into())))]
    pub cache_compression: CacheCompression,

    /// Longest wait for in-flight writes at SIGTERM/SIGINT, in ms (100–600000)
    #[arg(long, env, default_value_t = 15_000, value_parser = number(100..=600_000u64),
          help_heading = OPERATION)]
    pub shutdown_timeout_ms: u64,

    /// `orders-service retention` deletes dead letters older than this; 0 keeps all
    /// (0–36500)
    #[arg(long, env, default_value_t = 30, value_parser = number(0..=36_500u32),
          help_heading = OPERATION)]
    pub dead_letter_retention_days: u32,

    /// Log lines as text or one JSON object each (text|json)
    #[arg(long, env, default_value = "text", help_heading = OPERATION,
          value_parser = checked(|v| LogFormat::parse(v).ok_or_else(|| "must be text or json".into())))]
    pub log_format: LogFormat,

    /// One log line per HTTP request (true|false)
    #[arg(long, env, default_value_t = true, action = ArgAction::Set, value_parser = switch(),
          help_heading = OPERATION)]
    pub access_log: bool,
}
