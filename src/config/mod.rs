//! Typed configuration from the environment (and `.env`, loaded by `main`), validated once.
//! A bad value stops start-up with an error naming the variable. Every variable, with its
//! default, is listed in the README's configuration table and in `.env`.

mod client_properties;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use client_properties::ClientProperties;

use crate::db::DbTarget;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not set (example: {example})")]
    Missing {
        name: &'static str,
        example: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// A `KAFKA_OPTION_*` passthrough that cannot be taken.
    #[error("{name} is refused: {reason}")]
    Passthrough { name: String, reason: String },
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the runtime role (reads and inserts only, see the README's Security).
    pub database: DbTarget,
    /// `MIGRATION_DATABASE_URL`: the role that owns the schema and runs migrations; `None`
    /// migrates as the runtime role (which works where that role owns the schema).
    pub migration_database: Option<DbTarget>,
    /// Connections in the read pool (cache misses, listings, warm-up, health).
    pub db_pool_size: u32,
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
    pub http_addr: String,
    /// The admin listener: `/metrics`, `/stats`, `/dead-letters`, `/orders`, the operator's
    /// page. Off loopback it needs `admin_token`.
    pub admin_addr: String,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    pub admin_token: Option<AdminToken>,
    /// `PUBLIC_ORDER_LIST`: `GET /orders` on the public listener too, for a demo (every
    /// listed id opens its order there).
    pub public_order_list: bool,
    /// actix-web worker threads (0 = one per CPU).
    pub http_workers: usize,
    /// `HTTP_IDLE_POLL_US`: how long a public worker keeps polling after an answer (zero:
    /// it sleeps at once); see `http::idle_poll`.
    pub http_idle_poll: Duration,
    pub cache_max_bytes: u64,
    /// `MAX_MISSES_IN_FLIGHT`: most order ids read from the database at once for cache
    /// misses; a miss beyond it is answered 503 `busy` at once.
    pub max_misses_in_flight: usize,
    /// `CACHE_COMPRESSION`: orders kept as JSON (`off`) or zstd-compressed.
    pub cache_compression: crate::cache::CacheCompression,
    /// Longest the ordered stop may take before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// Apply pending migrations at start-up (under an advisory lock); `false` waits for a
    /// separate `orders-service migrate` step to have applied them.
    pub run_migrations: bool,
    /// `orders-service retention` deletes dead letters older than this many days; 0 keeps
    /// everything. The service itself never deletes.
    pub dead_letter_retention_days: u32,
    /// `LOG_FORMAT`: `main` installs the logger with it once the configuration is read.
    pub log_format: crate::logging::LogFormat,
    /// `ACCESS_LOG`: one line per HTTP request.
    pub access_log: bool,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    /// `None` turns the DLQ topic off (dead letters still go to the table).
    pub dlq_topic: Option<String>,
    pub session_timeout_ms: u32,
    /// librdkafka's `max.poll.interval.ms`: the ordered stop must fit inside it.
    pub max_poll_interval_ms: u32,
    /// How often librdkafka commits the stored offsets (also on revoke and at shutdown).
    pub auto_commit_interval_ms: u32,
    /// `DLQ_BACKLOG_MAX_BYTES`: memory for dead letters waiting for a failing or missing DLQ
    /// topic; what does not fit is kept in the table only.
    pub dlq_backlog_max_bytes: usize,
    /// `KAFKA_INSTANCE_ID`: static group membership (`group.instance.id`). A restarted
    /// instance with the same id takes its partitions back at once, without a rebalance.
    pub instance_id: Option<String>,
    /// Security and passthrough properties for every Kafka client.
    pub client: ClientProperties,
}

/// The admin bearer token, kept only as its SHA-256 digest; `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `presented` is the token. Their digests are compared, in constant time: how
    /// long it takes depends neither on where they differ nor on the token's length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        constant_time_eq::constant_time_eq_32(&self.0, &presented)
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Shortest `ADMIN_TOKEN` accepted: guessing must not be an option.
const MIN_TOKEN_LEN: usize = 16;

/// What the placeholder tokens of examples contain (compared case-insensitively): a token
/// that every reader of the example knows guards nothing.
const PLACEHOLDER_MARKS: [&str; 3] = ["change-me", "changeme", "change_me"];

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub max_payload_bytes: usize,
    /// Messages handed to writers and not yet acknowledged: the back-pressure bound.
    pub max_in_flight: usize,
    /// Payload bytes of those messages: the bound that matters for large orders.
    pub max_in_flight_bytes: usize,
    pub writers: usize,
    /// Most orders one writer puts in one transaction.
    pub batch_max: usize,
    pub retry_max_backoff: Duration,
    /// Longest one write transaction may take; a batch that times out is written in halves.
    pub write_timeout: Duration,
    /// Longest a database connection attempt may take.
    pub connect_timeout: Duration,
}

impl Config {
    /// Reads the process environment (variables that are not UTF-8 are ignored).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(env_vars())
    }

    /// Reads from any set of variables, so tests need not touch the process environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let all: HashMap<String, String> = vars.into_iter().collect();
        let get = |name: &str| all.get(name).cloned();
        let vars = Vars(&get);
        let connect_timeout =
            Duration::from_millis(vars.number("DB_CONNECT_TIMEOUT_MS", 10_000, 1_000..=600_000)?);
        let database = database_target(
            "DATABASE_URL",
            &vars.required(
                "DATABASE_URL",
                "postgres://orders_app:orders_app@127.0.0.1:54329/orders",
            )?,
            connect_timeout,
        )?;
        let migration_database = match vars.raw("MIGRATION_DATABASE_URL") {
            Some(url) if !url.trim().is_empty() => Some(database_target(
                "MIGRATION_DATABASE_URL",
                url.trim(),
                connect_timeout,
            )?),
            _ => None,
        };
        let admin_token = match vars.raw("ADMIN_TOKEN") {
            Some(token) if !token.trim().is_empty() => {
                if token.trim().len() < MIN_TOKEN_LEN {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_TOKEN",
                        value: "***".into(),
                        reason: format!(
                            "must be at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
                        ),
                    });
                }
                let lower = token.to_ascii_lowercase();
                if PLACEHOLDER_MARKS.iter().any(|mark| lower.contains(mark)) {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_TOKEN",
                        value: "***".into(),
                        reason: "is the placeholder of an example: generate one (e.g. `openssl rand -hex 32`)"
                            .into(),
                    });
                }
                Some(AdminToken::new(token.trim()))
            }
            _ => None,
        };
        let client =
            ClientProperties::from_vars(all.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let dlq = vars.text("KAFKA_DLQ_TOPIC", "orders.dlq");
        let mut config = Config {
            database,
            migration_database,
            db_pool_size: vars.number("DB_POOL_SIZE", 8, 1..=256)?,
            kafka: KafkaConfig {
                brokers: vars.non_empty("KAFKA_BROKERS", "127.0.0.1:19092")?,
                topic: vars.non_empty("KAFKA_TOPIC", "orders")?,
                group_id: vars.non_empty("KAFKA_GROUP_ID", "orders-service")?,
                dlq_topic: (!dlq.trim().is_empty()).then(|| dlq.trim().to_string()),
                session_timeout_ms: vars.number(
                    "KAFKA_SESSION_TIMEOUT_MS",
                    10_000,
                    6_000..=300_000,
                )?,
                max_poll_interval_ms: vars.number(
                    "KAFKA_MAX_POLL_INTERVAL_MS",
                    300_000,
                    10_000..=86_400_000,
                )?,
                auto_commit_interval_ms: vars.number(
                    "KAFKA_COMMIT_INTERVAL_MS",
                    1_000,
                    100..=600_000,
                )?,
                client,
                dlq_backlog_max_bytes: vars.number(
                    "DLQ_BACKLOG_MAX_BYTES",
                    16 << 20,
                    0..=1 << 30,
                )?,
                instance_id: match vars.raw("KAFKA_INSTANCE_ID") {
                    Some(id) if !id.trim().is_empty() => Some(instance_id(id.trim())?),
                    _ => None,
                },
            },
            ingest: IngestConfig {
                max_payload_bytes: vars.number("MAX_PAYLOAD_BYTES", 64 * 1024, 1024..=16 << 20)?,
                max_in_flight: vars.number("MAX_IN_FLIGHT", 20_000, 1..=1_000_000)?,
                max_in_flight_bytes: vars.number(
                    "MAX_IN_FLIGHT_BYTES",
                    256 << 20,
                    64 * 1024..=1 << 40,
                )?,
                writers: vars.number("WRITERS", 2, 1..=64)?,
                batch_max: vars.number("WRITER_BATCH_MAX", 1_000, 1..=10_000)?,
                retry_max_backoff: Duration::from_millis(vars.number(
                    "DB_RETRY_MAX_BACKOFF_MS",
                    2_000,
                    10..=600_000,
                )?),
                write_timeout: Duration::from_millis(vars.number(
                    "DB_WRITE_TIMEOUT_MS",
                    30_000,
                    100..=3_600_000,
                )?),
                connect_timeout,
            },
            http_addr: vars.non_empty("HTTP_ADDR", "0.0.0.0:8081")?,
            admin_addr: vars.non_empty("ADMIN_ADDR", "127.0.0.1:9081")?,
            admin_token,
            public_order_list: vars.flag("PUBLIC_ORDER_LIST", false)?,
            http_workers: vars.number("HTTP_WORKERS", 0, 0..=256)?,
            http_idle_poll: Duration::from_micros(vars.number(
                "HTTP_IDLE_POLL_US",
                0,
                0..=100_000,
            )?),
            cache_max_bytes: vars.number("CACHE_MAX_BYTES", 512 << 20, 0..=u64::MAX)?,
            max_misses_in_flight: vars.number("MAX_MISSES_IN_FLIGHT", 64, 1..=100_000)?,
            cache_compression: vars.one_of(
                "CACHE_COMPRESSION",
                "off",
                crate::cache::CacheCompression::parse,
                "must be off or zstd",
            )?,
            shutdown_timeout: Duration::from_millis(vars.number(
                "SHUTDOWN_TIMEOUT_MS",
                15_000,
                100..=600_000,
            )?),
            run_migrations: vars.flag("RUN_MIGRATIONS", true)?,
            dead_letter_retention_days: vars.number(
                "DEAD_LETTER_RETENTION_DAYS",
                30,
                0..=36_500,
            )?,
            log_format: vars.one_of(
                "LOG_FORMAT",
                "text",
                crate::logging::LogFormat::parse,
                "must be text or json",
            )?,
            access_log: vars.flag("ACCESS_LOG", true)?,
        };
        if config.shutdown_timeout.as_millis() >= u128::from(config.kafka.max_poll_interval_ms) {
            return Err(ConfigError::Invalid {
                name: "SHUTDOWN_TIMEOUT_MS",
                value: config.shutdown_timeout.as_millis().to_string(),
                reason: format!(
                    "must be shorter than KAFKA_MAX_POLL_INTERVAL_MS ({}): the group would evict this member while it drains",
                    config.kafka.max_poll_interval_ms
                ),
            });
        }
        if config.kafka.dlq_topic.as_deref() == Some(config.kafka.topic.as_str()) {
            return Err(ConfigError::Invalid {
                name: "KAFKA_DLQ_TOPIC",
                value: config.kafka.topic,
                reason: "must differ from KAFKA_TOPIC (dead letters would be consumed again)"
                    .into(),
            });
        }
        for (name, addr, example) in [
            ("HTTP_ADDR", &config.http_addr, "0.0.0.0:8081"),
            ("ADMIN_ADDR", &config.admin_addr, "127.0.0.1:9081"),
        ] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    name,
                    value: addr.clone(),
                    reason: format!("must be host:port with a numeric IP, e.g. {example}"),
                });
            }
        }
        if config.admin_addr == config.http_addr && !config.http_addr.ends_with(":0") {
            return Err(ConfigError::Invalid {
                name: "ADMIN_ADDR",
                value: config.admin_addr,
                reason:
                    "must differ from HTTP_ADDR: the admin endpoints have a listener of their own"
                        .into(),
            });
        }
        // Like Redis's protected mode, without an opt-out: dead letters are personal data.
        let admin_ip = config
            .admin_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip());
        if config.admin_token.is_none() && admin_ip.is_ok_and(|ip| !ip.to_canonical().is_loopback())
        {
            return Err(ConfigError::Invalid {
                name: "ADMIN_ADDR",
                value: config.admin_addr,
                reason: "is reachable from other hosts and ADMIN_TOKEN is not set: anyone who reaches it would read and replay dead letters (personal data); set ADMIN_TOKEN (16+ characters, e.g. `openssl rand -hex 32`) or bind ADMIN_ADDR to loopback (127.0.0.1:9081)"
                    .into(),
            });
        }
        if config.cache_max_bytes == 0 {
            // No cache: nothing would keep what the writers compressed for it.
            config.cache_compression = crate::cache::CacheCompression::Off;
        }
        Ok(config)
    }
}

/// A static member id: what Kafka accepts (at most 249 of `A-Z a-z 0-9 . _ -`); unique per
/// instance of the group, stable across its restarts (e.g. the pod or host name).
fn instance_id(id: &str) -> Result<String, ConfigError> {
    let valid = id.len() <= 249
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(id.to_string())
    } else {
        Err(ConfigError::Invalid {
            name: "KAFKA_INSTANCE_ID",
            value: id.to_string(),
            reason: "must be at most 249 characters of A-Z, a-z, 0-9, '.', '_' or '-'".into(),
        })
    }
}

/// A database URL, parsed (TLS options included) and given the connect timeout; errors name
/// the variable and never show the password.
fn database_target(
    name: &'static str,
    url: &str,
    connect_timeout: Duration,
) -> Result<DbTarget, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name,
        value: crate::db::redact(url),
        reason,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "must start with postgres:// or postgresql://".into(),
        ));
    }
    DbTarget::parse(url)
        .map(|t| t.with_connect_timeout(connect_timeout))
        .map_err(invalid)
}

/// The process environment, without the variables that are not UTF-8.
fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn required(&self, name: &'static str, example: &'static str) -> Result<String, ConfigError> {
        match self.raw(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(ConfigError::Missing { name, example }),
        }
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    fn non_empty(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.text(name, default);
        if value.trim().is_empty() {
            return Err(ConfigError::Invalid {
                name,
                value,
                reason: "must not be empty".into(),
            });
        }
        Ok(value.trim().to_string())
    }

    /// A setting with a few named values (`parse` knows them; `expected` says which).
    fn one_of<T>(
        &self,
        name: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = self.text(name, default);
        parse(&value).ok_or_else(|| ConfigError::Invalid {
            name,
            value,
            reason: expected.into(),
        })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.raw(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                value,
                reason: "must be true or false".into(),
            }),
        }
    }

    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(value) = self.raw(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        let parsed: T = value.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            value: value.clone(),
            reason: "must be a whole number".into(),
        })?;
        if !range.contains(&parsed) {
            return Err(ConfigError::Invalid {
                name,
                value,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            });
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:p@localhost/db");

    #[test]
    fn uses_documented_defaults() {
        let c = load(&[DB]).expect("valid");
        assert_eq!(c.kafka.topic, "orders");
        assert_eq!(c.kafka.group_id, "orders-service");
        assert_eq!(c.kafka.dlq_topic.as_deref(), Some("orders.dlq"));
        assert_eq!(c.http_addr, "0.0.0.0:8081");
        assert_eq!(c.ingest.max_payload_bytes, 65536);
        assert_eq!(c.cache_compression, crate::cache::CacheCompression::Off);
    }

    #[test]
    fn cache_compression_is_off_or_zstd_and_a_bad_value_names_it() {
        let c = load(&[DB, ("CACHE_COMPRESSION", "zstd")]).expect("valid");
        assert_eq!(c.cache_compression, crate::cache::CacheCompression::Zstd);
        let off = load(&[DB, ("CACHE_COMPRESSION", "zstd"), ("CACHE_MAX_BYTES", "0")]);
        assert_eq!(
            off.expect("valid").cache_compression,
            crate::cache::CacheCompression::Off,
            "nothing to compress for without a cache"
        );
        let err = load(&[DB, ("CACHE_COMPRESSION", "gzip")]).expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("CACHE_COMPRESSION=\"gzip\" is invalid: must be off or zstd"),
            "{err}"
        );
    }

    #[test]
    fn requires_database_url() {
        let err = load(&[]).expect_err("missing");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn an_empty_dlq_topic_turns_the_dlq_off() {
        let c = load(&[DB, ("KAFKA_DLQ_TOPIC", "")]).expect("valid");
        assert_eq!(c.kafka.dlq_topic, None);
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = load(&[DB, ("CACHE_MAX_BYTES", "lots")]).expect_err("invalid");
        assert!(err.to_string().starts_with("CACHE_MAX_BYTES="), "{err}");
        let err = load(&[DB, ("WRITERS", "0")]).expect_err("out of range");
        assert!(err.to_string().contains("WRITERS"), "{err}");
    }

    #[test]
    fn idle_polling_is_off_unless_set_in_microseconds_and_bounded() {
        assert_eq!(load(&[DB]).expect("valid").http_idle_poll, Duration::ZERO);
        let on = load(&[DB, ("HTTP_IDLE_POLL_US", "200")]).expect("valid");
        assert_eq!(on.http_idle_poll, Duration::from_micros(200));
        // More than 0.1 s of polling after each answer is a mistake, not a setting.
        let err = load(&[DB, ("HTTP_IDLE_POLL_US", "1000000")]).expect_err("too long");
        assert!(err.to_string().starts_with("HTTP_IDLE_POLL_US="), "{err}");
    }

    #[test]
    fn the_dlq_topic_must_differ_from_the_orders_topic() {
        let err = load(&[DB, ("KAFKA_DLQ_TOPIC", "orders")]).expect_err("loop");
        assert!(err.to_string().contains("KAFKA_DLQ_TOPIC"), "{err}");
    }

    #[test]
    fn run_migrations_is_on_unless_turned_off_and_a_bad_value_names_it() {
        assert!(load(&[DB]).expect("valid").run_migrations);
        assert!(
            !load(&[DB, ("RUN_MIGRATIONS", "false")])
                .expect("valid")
                .run_migrations
        );
        let err = load(&[DB, ("RUN_MIGRATIONS", "maybe")]).expect_err("invalid");
        assert!(err.to_string().starts_with("RUN_MIGRATIONS="), "{err}");
    }

    #[test]
    fn the_shutdown_timeout_must_fit_in_the_poll_interval() {
        let err = load(&[
            DB,
            ("SHUTDOWN_TIMEOUT_MS", "60000"),
            ("KAFKA_MAX_POLL_INTERVAL_MS", "30000"),
        ])
        .expect_err("too long");
        assert!(err.to_string().contains("SHUTDOWN_TIMEOUT_MS"), "{err}");
        assert!(
            err.to_string().contains("KAFKA_MAX_POLL_INTERVAL_MS"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_never_in_errors_or_debug_output() {
        let c = load(&[
            ("DATABASE_URL", "postgres://app:db-s3cret@localhost/db"),
            ("ADMIN_TOKEN", "token-s3cret-0123456789"),
        ])
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("db-s3cret"), "{shown}");
        assert!(!shown.contains("token-s3cret"), "{shown}");
        let err = load(&[("DATABASE_URL", "mysql://app:db-s3cret@localhost/db")])
            .expect_err("bad scheme");
        assert!(!err.to_string().contains("db-s3cret"), "{err}");
        let err = load(&[DB, ("ADMIN_TOKEN", "short-s3cret")]).expect_err("short token");
        assert!(err.to_string().starts_with("ADMIN_TOKEN="), "{err}");
        assert!(!err.to_string().contains("short-s3cret"), "{err}");
    }

    #[test]
    fn the_admin_token_is_compared_whole() {
        let c = load(&[DB, ("ADMIN_TOKEN", "0123456789abcdef")]).expect("valid");
        let token = c.admin_token.expect("set");
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcde"));
        assert!(!token.matches(b"0123456789abcdefg"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn the_admin_token_is_kept_and_compared_as_its_digest() {
        let c = load(&[DB, ("ADMIN_TOKEN", "0123456789abcdef")]).expect("valid");
        let token = c.admin_token.expect("set");
        // Equal-length digests: the comparison cannot stop early on a shorter guess.
        assert_eq!(
            token.0,
            <[u8; 32]>::from(Sha256::digest(b"0123456789abcdef"))
        );
    }

    #[test]
    fn an_admin_listener_off_loopback_without_a_token_is_refused_naming_both_settings() {
        for addr in ["0.0.0.0:9081", "[::]:9081", "192.168.1.10:9081"] {
            let err = load(&[DB, ("ADMIN_ADDR", addr)])
                .expect_err(addr)
                .to_string();
            assert!(err.starts_with("ADMIN_ADDR="), "{err}");
            assert!(err.contains("ADMIN_TOKEN is not set"), "{err}");
            let with_token = load(&[
                DB,
                ("ADMIN_ADDR", addr),
                ("ADMIN_TOKEN", "0123456789abcdef"),
            ]);
            assert!(with_token.is_ok(), "{addr} with a token");
        }
        for addr in [
            "127.0.0.1:9081",
            "127.0.0.2:0",
            "[::1]:9081",
            "[::ffff:127.0.0.1]:9081",
        ] {
            assert!(
                load(&[DB, ("ADMIN_ADDR", addr)]).is_ok(),
                "{addr} is loopback"
            );
        }
    }

    #[test]
    fn a_placeholder_admin_token_is_refused_without_showing_it() {
        for token in [
            "orders-admin-token-change-me",
            "CHANGEME-0123456789abcdef",
            "please_Change_Me_0123456789",
        ] {
            let err = load(&[DB, ("ADMIN_TOKEN", token)])
                .expect_err(token)
                .to_string();
            assert!(err.starts_with("ADMIN_TOKEN="), "{err}");
            assert!(err.contains("placeholder"), "{err}");
            assert!(!err.contains(token), "{err}");
        }
    }

    #[test]
    fn the_public_order_list_is_off_unless_turned_on_and_a_bad_value_names_it() {
        assert!(!load(&[DB]).expect("valid").public_order_list);
        let on = load(&[DB, ("PUBLIC_ORDER_LIST", "true")]).expect("valid");
        assert!(on.public_order_list);
        let err = load(&[DB, ("PUBLIC_ORDER_LIST", "public")]).expect_err("invalid");
        assert!(err.to_string().starts_with("PUBLIC_ORDER_LIST="), "{err}");
    }

    #[test]
    fn the_admin_listener_is_separate_and_loopback_by_default() {
        let c = load(&[DB]).expect("valid");
        assert_eq!(c.admin_addr, "127.0.0.1:9081");
        let err = load(&[
            DB,
            ("HTTP_ADDR", "0.0.0.0:8081"),
            ("ADMIN_ADDR", "0.0.0.0:8081"),
        ])
        .expect_err("same listener");
        assert!(err.to_string().starts_with("ADMIN_ADDR="), "{err}");
    }

    #[test]
    fn a_static_member_id_is_checked() {
        let c = load(&[DB, ("KAFKA_INSTANCE_ID", "orders-1")]).expect("valid");
        assert_eq!(c.kafka.instance_id.as_deref(), Some("orders-1"));
        assert_eq!(load(&[DB]).expect("valid").kafka.instance_id, None);
        let err = load(&[DB, ("KAFKA_INSTANCE_ID", "a b")]).expect_err("space");
        assert!(err.to_string().starts_with("KAFKA_INSTANCE_ID="), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_http_addr() {
        let err = load(&[DB, ("HTTP_ADDR", "localhost")]).expect_err("invalid");
        assert!(err.to_string().contains("HTTP_ADDR"), "{err}");
    }
}
