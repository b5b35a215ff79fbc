//! Typed configuration from the environment (and `.env`, loaded by `main`), validated once.
//! Each setting is declared once, in [`settings`] (variable, flag, default, accepted values,
//! help: `orders-service --help`); [`Config::new`] checks what involves several of them. A
//! bad value stops start-up with an error naming the variable and what it accepts. Every
//! variable, with its default, is in the README's configuration table (a test compares
//! them) and in `.env`.

mod client_properties;
pub mod parse;
mod settings;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use client_properties::{ClientProperties, KafkaConnection};
pub use parse::{Secret, setting_error};
pub use settings::Settings;

use crate::db::DbTarget;
use crate::http::idle_poll::IdlePollSetting;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not set (example: {example})")]
    Missing {
        name: &'static str,
        example: &'static str,
    },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    /// A `KAFKA_OPTION_*` passthrough that cannot be taken.
    #[error("{name} is refused: {reason}")]
    Passthrough { name: String, reason: String },
    /// Anything else clap refuses (an unknown flag, say), in clap's words.
    #[error("{0}")]
    Arguments(String),
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the runtime role (reads and inserts only, see the README's Security).
    pub database: DbTarget,
    /// `MIGRATION_DATABASE_URL`: the role that owns the schema and runs migrations; `None`
    /// migrates as the runtime role (which works where that role owns the schema).
    pub migration_database: Option<DbTarget>,
    /// `READ_DATABASE_URL`: a standby (or several hosts) for misses, lists and the warm-up;
    /// `None` reads from `DATABASE_URL`. See `actors::db_reader` for the fallbacks.
    pub read_database: Option<DbTarget>,
    /// Connections in the read pool (cache misses, lists, health, /stats, replay; the warm-up
    /// has two connections of its own).
    pub db_pool_size: u32,
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
    pub http_addr: SocketAddr,
    /// The admin listener: `/metrics`, `/stats`, `/dead-letters`, `/orders`, the operator's
    /// page. Off loopback it needs `admin_token`.
    pub admin_addr: SocketAddr,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    pub admin_token: Option<AdminToken>,
    /// `PUBLIC_ORDER_LIST`: `GET /orders` on the public listener too, for a demo (every
    /// listed id opens its order there).
    pub public_order_list: bool,
    /// actix-web worker threads (0 = one per CPU).
    pub http_workers: usize,
    /// `HTTP_IDLE_POLL_US`: how long a public worker keeps polling after an answer, or
    /// `auto`; see `http::idle_poll`.
    pub http_idle_poll: IdlePollSetting,
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
    /// `KAFKA_EXPECTED_REPLICATION`: the replication factor the orders topic should have;
    /// `/health` warns when it has fewer replicas or fewer in sync (see `kafka::probe`).
    pub expected_replication: usize,
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
    /// Memory those messages hold, counted as 3 × payload + 512 bytes each: the bound that
    /// matters for large orders.
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
    /// Turns parsed settings into the configuration, checking what involves several of
    /// them; `vars` (the environment) gives the `KAFKA_OPTION_*` passthrough.
    pub fn new<'a>(
        settings: Settings,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let s = settings;
        let connect_timeout = Duration::from_millis(s.db_connect_timeout_ms);
        let database = match Secret::non_empty(s.database_url) {
            Some(url) => database_target("DATABASE_URL", url.expose(), connect_timeout)?,
            None => {
                return Err(ConfigError::Missing {
                    name: "DATABASE_URL",
                    example: "postgres://orders_app:orders_app@127.0.0.1:54329/orders",
                });
            }
        };
        let migration_database = Secret::non_empty(s.migration_database_url)
            .map(|url| database_target("MIGRATION_DATABASE_URL", url.expose(), connect_timeout))
            .transpose()?;
        let read_database = Secret::non_empty(s.read_database_url)
            .map(|url| database_target("READ_DATABASE_URL", url.expose(), connect_timeout))
            .transpose()?;
        let admin_token = Secret::non_empty(s.admin_token)
            .map(|token| admin_token(token.expose()))
            .transpose()?;
        let instance_id = s
            .kafka_instance_id
            .filter(|id| !id.is_empty())
            .map(|id| instance_id(&id))
            .transpose()?;
        let client = ClientProperties::new(&s.kafka, vars)?;
        let config = Config {
            database,
            migration_database,
            read_database,
            db_pool_size: s.db_pool_size,
            kafka: KafkaConfig {
                brokers: s.kafka.kafka_brokers,
                topic: s.kafka_topic,
                group_id: s.kafka_group_id,
                dlq_topic: Some(s.kafka_dlq_topic).filter(|t| !t.is_empty()),
                session_timeout_ms: s.kafka_session_timeout_ms,
                max_poll_interval_ms: s.kafka_max_poll_interval_ms,
                auto_commit_interval_ms: s.kafka_commit_interval_ms,
                dlq_backlog_max_bytes: s.dlq_backlog_max_bytes,
                instance_id,
                expected_replication: s.kafka_expected_replication,
                client,
            },
            ingest: IngestConfig {
                max_payload_bytes: s.max_payload_bytes,
                max_in_flight: s.max_in_flight,
                max_in_flight_bytes: s.max_in_flight_bytes,
                writers: s.writers,
                batch_max: s.writer_batch_max,
                retry_max_backoff: Duration::from_millis(s.db_retry_max_backoff_ms),
                write_timeout: Duration::from_millis(s.db_write_timeout_ms),
                connect_timeout,
            },
            http_addr: s.http_addr,
            admin_addr: s.admin_addr,
            admin_token,
            public_order_list: s.public_order_list,
            http_workers: s.http_workers,
            http_idle_poll: s.http_idle_poll_us,
            cache_max_bytes: s.cache_max_bytes,
            max_misses_in_flight: s.max_misses_in_flight,
            // No cache: nothing would keep what the writers compressed for it.
            cache_compression: if s.cache_max_bytes == 0 {
                crate::cache::CacheCompression::Off
            } else {
                s.cache_compression
            },
            shutdown_timeout: Duration::from_millis(s.shutdown_timeout_ms),
            run_migrations: s.run_migrations,
            dead_letter_retention_days: s.dead_letter_retention_days,
            log_format: s.log_format,
            access_log: s.access_log,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads from any set of variables alone, as if they were the whole environment, so
    /// tests need not touch the process environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let settings: Settings = parse::from_vars(&vars)?;
        Self::new(settings, vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The checks across settings.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.shutdown_timeout.as_millis() >= u128::from(self.kafka.max_poll_interval_ms) {
            return Err(ConfigError::Invalid {
                name: "SHUTDOWN_TIMEOUT_MS".into(),
                value: self.shutdown_timeout.as_millis().to_string(),
                reason: format!(
                    "must be shorter than KAFKA_MAX_POLL_INTERVAL_MS ({}): the group would evict this member while it drains",
                    self.kafka.max_poll_interval_ms
                ),
            });
        }
        if self.kafka.dlq_topic.as_deref() == Some(self.kafka.topic.as_str()) {
            return Err(ConfigError::Invalid {
                name: "KAFKA_DLQ_TOPIC".into(),
                value: self.kafka.topic.clone(),
                reason: "must differ from KAFKA_TOPIC (dead letters would be consumed again)"
                    .into(),
            });
        }
        if self.admin_addr == self.http_addr && self.http_addr.port() != 0 {
            return Err(ConfigError::Invalid {
                name: "ADMIN_ADDR".into(),
                value: self.admin_addr.to_string(),
                reason:
                    "must differ from HTTP_ADDR: the admin endpoints have a listener of their own"
                        .into(),
            });
        }
        // Like Redis's protected mode, without an opt-out: dead letters are personal data.
        if self.admin_token.is_none() && !self.admin_addr.ip().to_canonical().is_loopback() {
            return Err(ConfigError::Invalid {
                name: "ADMIN_ADDR".into(),
                value: self.admin_addr.to_string(),
                reason: "is reachable from other hosts and ADMIN_TOKEN is not set: anyone who reaches it would read and replay dead letters (personal data); set ADMIN_TOKEN (16+ characters, e.g. `openssl rand -hex 32`) or bind ADMIN_ADDR to loopback (127.0.0.1:9081)"
                    .into(),
            });
        }
        Ok(())
    }
}

/// A token long enough not to be guessed and not the placeholder of an example; errors
/// never show it.
fn admin_token(token: &str) -> Result<AdminToken, ConfigError> {
    let refuse = |reason: String| ConfigError::Invalid {
        name: "ADMIN_TOKEN".into(),
        value: "***".into(),
        reason,
    };
    if token.len() < MIN_TOKEN_LEN {
        return Err(refuse(format!(
            "must be at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
        )));
    }
    let lower = token.to_ascii_lowercase();
    if PLACEHOLDER_MARKS.iter().any(|mark| lower.contains(mark)) {
        return Err(refuse(
            "is the placeholder of an example: generate one (e.g. `openssl rand -hex 32`)".into(),
        ));
    }
    Ok(AdminToken::new(token))
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
            name: "KAFKA_INSTANCE_ID".into(),
            value: id.to_string(),
            reason: "must be at most 249 characters of A-Z, a-z, 0-9, '.', '_' or '-'".into(),
        })
    }
}

/// A database URL, parsed (TLS options included) and given the connect timeout; errors name
/// the variable and never show the password.
fn database_target(
    name: &str,
    url: &str,
    connect_timeout: Duration,
) -> Result<DbTarget, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: name.into(),
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

/// Variables read besides the settings: name, default, help. `--help` lists them after the
/// settings, and the README's table has a row for each.
pub const OTHER_VARIABLES: [(&str, Option<&str>, &str); 2] = [
    (
        "KAFKA_OPTION_<NAME>",
        None,
        "any other librdkafka property, dots as underscores (KAFKA_OPTION_FETCH_MIN_BYTES=1 → \
         fetch.min.bytes); those the guarantees rest on, or that have a setting, are refused",
    ),
    ("RUST_LOG", Some("info"), "log filter, env_logger's syntax"),
];

/// The help of [`OTHER_VARIABLES`].
pub fn other_variables_help() -> String {
    let mut help = String::from("Also read from the environment:\n");
    for (name, default, what) in OTHER_VARIABLES {
        let default = default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        help.push_str(&format!("  {name}\n          {what}{default}\n"));
    }
    help
}

/// The process environment, without the variables that are not UTF-8: where the
/// `KAFKA_OPTION_*` passthrough is found.
pub fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
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
        assert_eq!(c.http_addr.to_string(), "0.0.0.0:8081");
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
    fn idle_polling_is_auto_unless_set_in_microseconds_and_bounded() {
        let auto = load(&[DB]).expect("valid").http_idle_poll;
        assert_eq!(auto, IdlePollSetting::Auto);
        let on = load(&[DB, ("HTTP_IDLE_POLL_US", "200")]).expect("valid");
        assert_eq!(
            on.http_idle_poll,
            IdlePollSetting::Window(Duration::from_micros(200))
        );
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
        assert_eq!(c.admin_addr.to_string(), "127.0.0.1:9081");
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

    /// Every declared setting: (variable, default, help).
    fn declared() -> Vec<(String, Option<String>, String)> {
        use clap::Args;
        let command = Settings::augment_args(clap::Command::new("orders-service"));
        let mut all: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let default: Vec<_> = arg
                    .get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy().into_owned())
                    .collect();
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                Some((env, (!default.is_empty()).then(|| default.join(",")), help))
            })
            .collect();
        all.extend(OTHER_VARIABLES.iter().map(|(name, default, help)| {
            (
                name.to_string(),
                default.map(str::to_string),
                help.to_string(),
            )
        }));
        all
    }

    /// The rows of the README's configuration table: (variable, default, accepted values).
    /// A default cell in parentheses or a dash means none; a remark after the value, in
    /// parentheses, is not part of it.
    fn readme_rows(readme: &str) -> Vec<(String, Option<String>, String)> {
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Configuration"))
            .expect("the README has a Configuration section");
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let default = cells[1].replace('`', "");
            let default = default.trim();
            let default = (!(default.starts_with('(') || default == "—" || default == "-"))
                .then(|| default.split(" (").next().unwrap_or(default).to_string());
            for name in cells[0].split('`').skip(1).step_by(2) {
                rows.push((name.to_string(), default.clone(), cells[2].to_string()));
            }
        }
        rows
    }

    /// Catches a setting added, removed, renamed or given another default without the
    /// README's table following (or a row left for a setting that is gone).
    #[test]
    fn the_readme_table_lists_every_setting_with_its_default_and_nothing_else() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let rows = readme_rows(&readme);
        let declared = declared();
        for (name, default, _) in &declared {
            let row = rows.iter().find(|(n, _, _)| n == name);
            let Some((_, documented, _)) = row else {
                panic!("{name} is not in the README's configuration table");
            };
            assert_eq!(documented, default, "{name}: README default vs --help");
        }
        for (name, _, _) in &rows {
            assert!(
                declared.iter().any(|(n, _, _)| n == name),
                "{name} is in the README's table but not in --help"
            );
        }
    }

    /// The range a setting's help states, e.g. `(1–256)` or `(0–2^64−1)`.
    fn stated_range(help: &str) -> Option<(u128, u128)> {
        let number = |text: &str| -> Option<u128> {
            let (text, less) = text.strip_suffix("−1").map_or((text, 0), |t| (t, 1));
            match text.strip_prefix("2^") {
                Some(power) => Some((1u128 << power.parse::<u32>().ok()?) - less),
                None => text.parse().ok(),
            }
        };
        let (_, tail) = help.rsplit_once('(')?;
        let (low, high) = tail.strip_suffix(')')?.split_once('–')?;
        Some((number(low)?, number(high)?))
    }

    /// Catches a range in `--help` (and so in the README) that is not the one enforced:
    /// both ends are taken, one step beyond either is refused naming the variable and the
    /// range; and the README's table states the same range.
    #[test]
    fn each_stated_range_is_the_enforced_one_and_the_readmes() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let rows = readme_rows(&readme);
        let mut checked = 0;
        for (name, _, help) in declared() {
            let Some((low, high)) = stated_range(&help) else {
                continue;
            };
            checked += 1;
            let stated = help.rsplit_once('(').map(|(_, t)| t.trim_end_matches(')'));
            let stated = stated.unwrap_or_default();
            let accepted = &rows.iter().find(|(n, _, _)| *n == name).expect(&name).2;
            assert!(
                accepted.contains(stated),
                "{name}: the README accepts {accepted:?}, --help says {stated}"
            );
            // Both ends, each with the other settings at values that allow it.
            let with = |value: u128| {
                let value = value.to_string();
                let mut vars = vec![DB, (name.as_str(), value.as_str())];
                match name.as_str() {
                    "SHUTDOWN_TIMEOUT_MS" => vars.push(("KAFKA_MAX_POLL_INTERVAL_MS", "86400000")),
                    "KAFKA_MAX_POLL_INTERVAL_MS" => vars.push(("SHUTDOWN_TIMEOUT_MS", "100")),
                    _ => {}
                }
                load(&vars)
            };
            for end in [low, high] {
                assert!(with(end).is_ok(), "{name}={end}: {:?}", with(end).err());
            }
            let range = format!("must be between {low} and {high}");
            for beyond in [low.checked_sub(1), high.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let err = with(beyond)
                    .expect_err(&format!("{name}={beyond}"))
                    .to_string();
                assert!(err.starts_with(&format!("{name}=")), "{err}");
                if beyond <= u128::from(u64::MAX) {
                    assert!(err.contains(&range), "{err}");
                }
            }
        }
        assert!(checked >= 19, "only {checked} ranges found in the help");
    }

    /// Catches a secret's value printed by `--help` (`[env: ADMIN_TOKEN=…]`) or by `Debug`.
    #[test]
    fn secret_settings_hide_their_values_in_help_and_debug() {
        use clap::Args;
        let command = Settings::augment_args(clap::Command::new("orders-service"));
        let mut secrets = 0;
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
                continue;
            };
            if ["PASSWORD", "TOKEN", "DATABASE_URL"]
                .iter()
                .any(|mark| env.contains(mark))
            {
                secrets += 1;
                assert!(
                    arg.is_hide_env_values_set(),
                    "{env} shows its value in --help"
                );
            }
        }
        assert!(
            secrets >= 4,
            "DATABASE_URL, MIGRATION_DATABASE_URL, ADMIN_TOKEN, KAFKA_SASL_PASSWORD: {secrets}"
        );
        let vars: Vec<(String, String)> = [
            ("DATABASE_URL", "postgres://app:db-s3cret@localhost/db"),
            (
                "MIGRATION_DATABASE_URL",
                "postgres://own:own-s3cret@localhost/db",
            ),
            ("ADMIN_TOKEN", "token-s3cret-0123456789"),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "PLAIN"),
            ("KAFKA_SASL_PASSWORD", "sasl-s3cret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings: Settings = parse::from_vars(&vars).expect("valid");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    /// Catches an empty variable (`.env` lists every one, some empty) refused, or taken as
    /// something else than unset: numbers and switches take their default, optional
    /// settings stay off, a required text setting is refused.
    #[test]
    fn an_empty_variable_means_unset() {
        let c = load(&[
            DB,
            ("WRITERS", ""),
            ("CACHE_MAX_BYTES", " "),
            ("RUN_MIGRATIONS", ""),
            ("ADMIN_TOKEN", ""),
            ("MIGRATION_DATABASE_URL", ""),
            ("KAFKA_INSTANCE_ID", ""),
            ("KAFKA_SECURITY_PROTOCOL", ""),
            ("KAFKA_SASL_PASSWORD", ""),
            ("KAFKA_SSL_CA_LOCATION", ""),
        ])
        .expect("valid");
        assert_eq!(c.ingest.writers, 2);
        assert_eq!(c.cache_max_bytes, 512 << 20);
        assert!(c.run_migrations);
        assert!(c.admin_token.is_none() && c.migration_database.is_none());
        assert_eq!(c.kafka.instance_id, None);
        assert_eq!(c.kafka.client, ClientProperties::default());
        let err = load(&[DB, ("KAFKA_TOPIC", " ")]).expect_err("empty topic");
        assert!(err.to_string().starts_with("KAFKA_TOPIC="), "{err}");
        let err = load(&[("DATABASE_URL", "")]).expect_err("empty URL");
        assert!(
            err.to_string().starts_with("DATABASE_URL is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_listen_address_names_http_addr() {
        let err = load(&[DB, ("HTTP_ADDR", "localhost")]).expect_err("invalid");
        assert!(err.to_string().contains("HTTP_ADDR"), "{err}");
    }

    #[test]
    fn a_read_database_is_optional_and_a_bad_one_is_named_without_its_password() {
        let c = load(&[DB]).expect("valid");
        assert!(c.read_database.is_none());
        assert!(
            load(&[DB, ("READ_DATABASE_URL", " ")])
                .expect("valid")
                .read_database
                .is_none(),
            "empty: read from DATABASE_URL"
        );
        let c = load(&[
            DB,
            (
                "READ_DATABASE_URL",
                "postgres://app:pw@standby1,standby2/db",
            ),
        ])
        .expect("valid");
        assert_eq!(
            c.read_database.expect("set").shown(),
            "postgres://app:***@standby1,standby2/db"
        );
        for bad in [
            "mysql://app:s3cret@standby/db",
            "postgres://app:s3cret@standby/db?sslmode=sometimes",
        ] {
            let err = load(&[DB, ("READ_DATABASE_URL", bad)])
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with("READ_DATABASE_URL="), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn the_expected_replication_is_one_unless_set_and_bounded() {
        assert_eq!(load(&[DB]).expect("valid").kafka.expected_replication, 1);
        let c = load(&[DB, ("KAFKA_EXPECTED_REPLICATION", "3")]).expect("valid");
        assert_eq!(c.kafka.expected_replication, 3);
        for bad in ["0", "17", "three"] {
            let err = load(&[DB, ("KAFKA_EXPECTED_REPLICATION", bad)]).expect_err(bad);
            assert!(
                err.to_string().starts_with("KAFKA_EXPECTED_REPLICATION="),
                "{err}"
            );
        }
    }
}
