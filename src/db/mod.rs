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
    /// The database is down, unreachable, overloaded or the transaction hit a transient
    /// conflict: retry later, never dead-letter.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused this data (a constraint): retrying the same rows cannot help.
    #[error("database refused the data: {0}")]
    Rejected(String),
}

impl DbError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::ExclusionViolation
                | DatabaseErrorKind::RestrictViolation => DbError::Rejected(e.to_string()),
                _ if is_data_exception(info.message()) => DbError::Rejected(e.to_string()),
                _ => DbError::Unavailable(e.to_string()),
            },
            DieselError::SerializationError(_) | DieselError::QueryBuilderError(_) => {
                DbError::Rejected(e.to_string())
            }
            _ => DbError::Unavailable(e.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::bb8::RunError> for DbError {
    fn from(e: diesel_async::pooled_connection::bb8::RunError) -> Self {
        DbError::Unavailable(format!("no database connection: {e}"))
    }
}

/// PostgreSQL data exceptions (SQLSTATE class 22) that diesel reports as `Unknown`.
fn is_data_exception(message: &str) -> bool {
    const MARKERS: [&str; 5] = [
        "invalid byte sequence",
        "out of range",
        "value too long",
        "invalid input syntax",
        "null character not permitted",
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

/// Applies pending migrations on a blocking connection. Runs on a plain thread because the
/// migration harness blocks; returns the versions it applied.
pub fn run_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::Connection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    let url = database_url.to_string();
    std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .context("Failed to connect to PostgreSQL (DATABASE_URL) to run migrations")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("Failed to run migrations: {e}"))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the migration thread panicked"))?
}

/// Builds the read pool. Connections are created lazily, on the runtime that asks first:
/// build and use it from the main actix System only.
pub async fn read_pool(database_url: &str, size: u32) -> anyhow::Result<PgPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(std::time::Duration::from_secs(2))
        .build(manager)
        .await
        .context("Failed to build the PostgreSQL pool")
}
