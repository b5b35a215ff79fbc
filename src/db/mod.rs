//! PostgreSQL: the pool, migrations, error classification and the queries.

pub mod models;
pub mod queries;
pub mod schema;

use anyhow::Context;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use thiserror::Error;

pub type PgPool = Pool<AsyncPgConnection>;

/// The SQL under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A database failure, sorted by what the caller should do next.
#[derive(Debug, Error)]
pub enum DbError {
    /// No answer: the database is down or unreachable, the connection was lost, or it only
    /// accepts reads (a failover in progress). Retry later, never dead-letter.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error for this statement: a constraint, a trigger, a
    /// data exception, a deadlock. It may be the data; see `ingest::durable` for what the
    /// writers do with it.
    #[error("database refused the statement: {0}")]
    Rejected(String),
}

/// Sorted by whether the database answered, not by the error's text (which a server with
/// another `lc_messages` translates): an error with a SQLSTATE came from the server; diesel
/// reports a lost or unusable connection as `UnableToSendCommand`/`ClosedConnection`.
impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            ) => DbError::Unavailable(e.to_string()),
            DieselError::DatabaseError(_, info) => {
                let mut text = info.message().to_string();
                if let Some(detail) = info.details() {
                    text.push_str(": ");
                    text.push_str(detail);
                }
                DbError::Rejected(text)
            }
            DieselError::SerializationError(_) | DieselError::QueryBuilderError(_) => {
                DbError::Rejected(e.to_string())
            }
            _ => DbError::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/orders?sslmode=require"),
            "postgres://app:***@db:5432/orders?sslmode=require"
        );
        assert_eq!(redact("postgres://db/orders"), "postgres://db/orders");
    }

    #[test]
    fn a_connect_timeout_is_added_once() {
        assert_eq!(
            with_connect_timeout("postgres://db/o", 10),
            "postgres://db/o?connect_timeout=10"
        );
        assert_eq!(
            with_connect_timeout("postgres://db/o?sslmode=require", 5),
            "postgres://db/o?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://db/o?connect_timeout=3", 5),
            "postgres://db/o?connect_timeout=3"
        );
    }

    #[test]
    fn errors_are_sorted_by_whether_the_database_answered() {
        let answered = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("poison row".to_string()),
        );
        assert!(matches!(DbError::from(answered), DbError::Rejected(_)));
        let lost = DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_string()),
        );
        assert!(matches!(DbError::from(lost), DbError::Unavailable(_)));
        let closed = DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("closed".to_string()),
        );
        assert!(matches!(DbError::from(closed), DbError::Unavailable(_)));
    }
}

impl From<diesel_async::pooled_connection::bb8::RunError> for DbError {
    fn from(e: diesel_async::pooled_connection::bb8::RunError) -> Self {
        DbError::Unavailable(format!("no database connection: {e}"))
    }
}

/// Key of the advisory lock held while migrations run, so instances starting together
/// migrate one after the other (the second finds nothing left to do).
const MIGRATION_LOCK: i64 = 0x6f72_6465_7273; // "orders"

/// Adds `connect_timeout` (seconds) to a database URL that has none, so no connection
/// attempt of the pool or the writers can hang on a host that swallows packets.
pub fn with_connect_timeout(url: &str, seconds: u64) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={seconds}")
}

/// A database URL with its password replaced by `***`, for logs and error messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Applies pending migrations on a blocking connection, under an advisory lock; returns the
/// versions it applied. Blocking: call it from a blocking thread.
pub fn run_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::{Connection, RunQueryDsl};
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(database_url)
        .context("Failed to connect to PostgreSQL (DATABASE_URL) to run migrations")?;
    // Session-level: held across the migrations' own transactions, released on disconnect.
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .context("Failed to take the migration lock")?;
    let applied: anyhow::Result<Vec<String>> = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| anyhow::anyhow!("Failed to run migrations: {e}"));
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn);
    applied
}

/// The migrations not applied yet (for `RUN_MIGRATIONS=false`). Blocking.
pub fn pending_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::Connection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(database_url)
        .context("Failed to connect to PostgreSQL (DATABASE_URL)")?;
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("Failed to read the applied migrations: {e}"))?;
    Ok(pending.iter().map(|m| m.name().to_string()).collect())
}

/// The server's durability settings, as this connection sees them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Durability {
    pub fsync: String,
    /// The default for sessions of this database and role; writers set it `on` themselves.
    pub synchronous_commit: String,
}

pub async fn durability(conn: &mut AsyncPgConnection) -> Result<Durability, DbError> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        fsync: String,
        #[diesel(sql_type = Text)]
        synchronous_commit: String,
    }
    let row: Row = diesel::sql_query(
        "SELECT current_setting('fsync') AS fsync, \
         current_setting('synchronous_commit') AS synchronous_commit",
    )
    .get_result(conn)
    .await?;
    Ok(Durability {
        fsync: row.fsync,
        synchronous_commit: row.synchronous_commit,
    })
}

/// Builds the read pool without connecting: connections are created lazily, on the runtime
/// that asks first (build and use it from the main actix System only), so a database that
/// is down at start-up is waited for, not fatal.
pub fn read_pool(database_url: &str, size: u32) -> PgPool {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(std::time::Duration::from_secs(2))
        .build_unchecked(manager)
}
