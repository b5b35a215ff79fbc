//! PostgreSQL: the pool, migrations, error classification and the queries.

mod connect;
pub mod dead_letters;
pub mod models;
pub mod queries;
mod redact;
pub mod replication;
pub mod retention;
pub mod schema;
mod tls;
mod unnest;

use anyhow::Context;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use thiserror::Error;

pub use connect::DbTarget;
pub use redact::redact;

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
/// The text is [`described`]: no row values.
impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            ) => DbError::Unavailable(described(&e)),
            DieselError::DatabaseError(..)
            | DieselError::SerializationError(_)
            | DieselError::QueryBuilderError(_) => DbError::Rejected(described(&e)),
            _ => DbError::Unavailable(described(&e)),
        }
    }
}

/// A database error as text for logs, `dead_letters.detail` and the DLQ header, without the
/// values of the row it is about: PostgreSQL's DETAIL ("Failing row contains (…)", "Key
/// (order_uid)=(…) already exists") and HINT are left out, and so is the message of a
/// constraint violation (it only repeats the constraint's and table's names, given here
/// from the error's fields). Other messages keep their words with every quoted part cut:
/// PostgreSQL quotes the values it puts in a message (`invalid input syntax for type
/// bigint: "…"`). A trigger's own `RAISE` message is the trigger author's text: values it
/// formats into the message unquoted would stay (docs/security.md says to raise with
/// `USING CONSTRAINT`/`DETAIL` instead).
pub fn described(e: &DieselError) -> String {
    match e {
        DieselError::DatabaseError(kind, info) => {
            let mut text = match condition(kind) {
                Some((sqlstate, name)) => format!("{name} (SQLSTATE {sqlstate})"),
                None => without_quoted_values(info.message()),
            };
            for (field, value) in [
                ("table", info.table_name()),
                ("column", info.column_name()),
                ("constraint", info.constraint_name()),
            ] {
                if let Some(value) = value {
                    text.push_str(&format!(", {field} {value}"));
                }
            }
            text
        }
        DieselError::RollbackErrorOnCommit {
            rollback_error,
            commit_error,
        } => format!(
            "the commit failed ({}) and so did the rollback ({})",
            described(commit_error),
            described(rollback_error)
        ),
        other => other.to_string(),
    }
}

/// The SQLSTATE and condition name of the error kinds diesel tells apart (it hides the
/// SQLSTATE of the others).
fn condition(kind: &DatabaseErrorKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        DatabaseErrorKind::UniqueViolation => ("23505", "unique_violation"),
        DatabaseErrorKind::ForeignKeyViolation => ("23503", "foreign_key_violation"),
        DatabaseErrorKind::NotNullViolation => ("23502", "not_null_violation"),
        DatabaseErrorKind::CheckViolation => ("23514", "check_violation"),
        DatabaseErrorKind::RestrictViolation => ("23001", "restrict_violation"),
        DatabaseErrorKind::ExclusionViolation => ("23P01", "exclusion_violation"),
        DatabaseErrorKind::SerializationFailure => ("40001", "serialization_failure"),
        DatabaseErrorKind::ReadOnlyTransaction => ("25006", "read_only_sql_transaction"),
        _ => return None,
    })
}

/// Longest message kept from an error diesel does not classify.
const MAX_MESSAGE: usize = 300;

/// `message` with every `"…"` and `'…'` part replaced by `"…"` (an unclosed quote cuts the
/// rest), at most [`MAX_MESSAGE`] bytes.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if out.len() >= MAX_MESSAGE {
            out.push('…');
            break;
        }
        if c == '"' || c == '\'' {
            out.push_str("\"…\"");
            // Skip to the closing quote (PostgreSQL doubles a quote inside an identifier:
            // the doubled one closes and reopens, which is cut the same way).
            if !chars.by_ref().any(|q| q == c) {
                break;
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server error as diesel-async hands it over.
    struct ServerError {
        message: &'static str,
        detail: Option<&'static str>,
        table: Option<&'static str>,
        column: Option<&'static str>,
        constraint: Option<&'static str>,
    }

    impl diesel::result::DatabaseErrorInformation for ServerError {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            self.detail
        }
        fn hint(&self) -> Option<&str> {
            Some("a hint quoting MARKER")
        }
        fn table_name(&self) -> Option<&str> {
            self.table
        }
        fn column_name(&self) -> Option<&str> {
            self.column
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn text(kind: DatabaseErrorKind, error: ServerError) -> String {
        match DbError::from(DieselError::DatabaseError(kind, Box::new(error))) {
            DbError::Rejected(text) | DbError::Unavailable(text) => text,
        }
    }

    #[test]
    fn a_refusal_names_sqlstate_table_column_and_constraint_but_no_row_value() {
        let check = text(
            DatabaseErrorKind::CheckViolation,
            ServerError {
                message: "new row for relation \"deliveries\" violates check constraint \"no_marker\"",
                detail: Some("Failing row contains (1, MARKER, +79990000000)."),
                table: Some("deliveries"),
                column: None,
                constraint: Some("no_marker"),
            },
        );
        assert_eq!(
            check,
            "check_violation (SQLSTATE 23514), table deliveries, constraint no_marker"
        );
        let unique = text(
            DatabaseErrorKind::UniqueViolation,
            ServerError {
                message: "duplicate key value violates unique constraint \"orders_uid\"",
                detail: Some("Key (order_uid)=(MARKER) already exists."),
                table: Some("orders"),
                column: None,
                constraint: Some("orders_uid"),
            },
        );
        assert!(!unique.contains("MARKER"), "{unique}");
        assert!(
            unique.contains("23505") && unique.contains("orders_uid"),
            "{unique}"
        );
        // Kinds diesel does not classify keep their words, not their quoted values.
        let data = text(
            DatabaseErrorKind::Unknown,
            ServerError {
                message: "invalid input syntax for type bigint: \"MARKER\"",
                detail: Some("MARKER"),
                table: None,
                column: Some("amount"),
                constraint: None,
            },
        );
        assert_eq!(
            data,
            "invalid input syntax for type bigint: \"…\", column amount"
        );
        let unclosed = text(
            DatabaseErrorKind::Unknown,
            ServerError {
                message: "refused 'MARKER and the rest",
                detail: None,
                table: None,
                column: None,
                constraint: None,
            },
        );
        assert_eq!(unclosed, "refused \"…\"");
        let permission = text(
            DatabaseErrorKind::Unknown,
            ServerError {
                message: "permission denied for table dead_letters",
                detail: None,
                table: None,
                column: None,
                constraint: None,
            },
        );
        assert_eq!(permission, "permission denied for table dead_letters");
    }

    #[test]
    fn the_runtime_role_gets_exactly_select_and_insert() {
        let sql = runtime_grants("orders_app");
        assert!(!sql.contains("DELETE") && !sql.contains("UPDATE"), "{sql}");
        assert!(
            sql.contains("REVOKE ALL ON TABLE dead_letters FROM \"orders_app\";\nGRANT SELECT, INSERT ON TABLE dead_letters"),
            "{sql}"
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

/// What the runtime role may do, table by table: read and insert, nothing else. With no
/// `UPDATE`, `DELETE` or `TRUNCATE`, "an order is never overwritten" is the database's rule,
/// not only the code's; deleting old dead letters is the owner's job (`orders-service
/// retention`). Set by every migration run (idempotent), for the role of `DATABASE_URL` when
/// migrations run as another role (`MIGRATION_DATABASE_URL`).
const RUNTIME_GRANTS: &[(&str, &str)] = &[
    ("orders", "SELECT, INSERT"),
    ("deliveries", "SELECT, INSERT"),
    ("payments", "SELECT, INSERT"),
    ("items", "SELECT, INSERT"),
    ("dead_letters", "SELECT, INSERT"),
    ("dead_letter_replays", "SELECT, INSERT"),
    ("__diesel_schema_migrations", "SELECT"),
];

/// A role name as an SQL identifier (double quotes doubled).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements that give `role` exactly the runtime rights (see [`RUNTIME_GRANTS`]):
/// whatever else it was granted on these tables is revoked first (a role that was given
/// `DELETE` on `dead_letters` for retention loses it). One batch, one transaction: the role
/// never stands without its rights in between.
fn runtime_grants(role: &str) -> String {
    let role = quote_ident(role);
    let mut sql = format!("GRANT USAGE ON SCHEMA public TO {role};\n");
    for (table, rights) in RUNTIME_GRANTS {
        sql.push_str(&format!(
            "REVOKE ALL ON TABLE {table} FROM {role};\nGRANT {rights} ON TABLE {table} TO {role};\n"
        ));
    }
    // `bigserial` ids: INSERT needs to draw from their sequences.
    sql.push_str(&format!(
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};\n"
    ));
    sql
}

/// Rights this connection's role holds on the service's tables beyond [`RUNTIME_GRANTS`]
/// (`UPDATE`, `DELETE`, `TRUNCATE`), as `table: privilege`, for tables it does not own. A
/// role that owns them (one role for everything) is not reported: it can do anything there.
pub async fn excess_rights(conn: &mut AsyncPgConnection) -> Result<Vec<String>, DbError> {
    use diesel::sql_types::{Array, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Right {
        #[diesel(sql_type = Text)]
        granted: String,
    }
    let tables: Vec<&str> = RUNTIME_GRANTS.iter().map(|(table, _)| *table).collect();
    let rights: Vec<Right> = diesel::sql_query(
        "SELECT t.name || ': ' || p.name AS granted \
         FROM unnest($1::text[]) AS t(name) \
         CROSS JOIN unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS p(name) \
         JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name) \
         WHERE NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') \
           AND pg_catalog.has_table_privilege(c.oid, p.name) \
         ORDER BY 1",
    )
    .bind::<Array<Text>, _>(tables)
    .load(conn)
    .await?;
    Ok(rights.into_iter().map(|r| r.granted).collect())
}

/// Applies pending migrations as the role of `owner`, under an advisory lock, then grants
/// `runtime_role` (when it is another role) what the service needs; returns the versions
/// applied. Blocking: call it from a blocking thread or `main`.
pub fn run_migrations(owner: &DbTarget, runtime_role: Option<&str>) -> anyhow::Result<Vec<String>> {
    use diesel::RunQueryDsl;
    use diesel::connection::SimpleConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    // The wrapper drives an async connection with `block_on`; a runtime with its own thread
    // keeps the connection's driver task (and tokio-postgres' connect timeout) running.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("migrations")
        .enable_all()
        .build()
        .context("Failed to start the migration runtime")?;
    let conn = runtime.block_on(owner.connect()).with_context(|| {
        format!(
            "Failed to connect to PostgreSQL to run migrations ({})",
            owner.shown()
        )
    })?;
    let _inside = runtime.enter();
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = conn.into();
    // Session-level: held across the migrations' own transactions, released on disconnect.
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .context("Failed to take the migration lock")?;
    let role = owner.user().unwrap_or("?").to_string();
    let applied: anyhow::Result<Vec<String>> = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| {
            anyhow::anyhow!(
                "Failed to run migrations as role {role}: {e} (migrations need the role that owns the schema: set MIGRATION_DATABASE_URL, or run `orders-service migrate` with it)"
            )
        });
    let granted = match runtime_role {
        Some(runtime) if applied.is_ok() && runtime != role => conn
            .batch_execute(&runtime_grants(runtime))
            .with_context(|| format!("Failed to grant the runtime role {runtime} its rights")),
        _ => Ok(()),
    };
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn);
    granted?;
    applied
}

/// The embedded migrations the database has not recorded as applied. Reads the table only
/// (diesel's own check creates it, which the runtime role may not do).
pub async fn pending_migrations(conn: &mut AsyncPgConnection) -> Result<Vec<String>, DbError> {
    use diesel::migration::MigrationSource;
    use diesel::pg::Pg;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = Text)]
        version: String,
    }
    let exists: Vec<Applied> = diesel::sql_query(
        "SELECT 'x' AS version FROM pg_catalog.pg_tables \
         WHERE schemaname = current_schema() AND tablename = '__diesel_schema_migrations'",
    )
    .load(conn)
    .await?;
    let applied: Vec<String> = if exists.is_empty() {
        Vec::new()
    } else {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .await?
            .into_iter()
            .map(|a| a.version)
            .collect()
    };
    let embedded = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|e| DbError::Rejected(format!("the embedded migrations are unreadable: {e}")))?;
    Ok(embedded
        .iter()
        .filter(|m| !applied.contains(&m.name().version().to_string()))
        .map(|m| m.name().to_string())
        .collect())
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
pub fn read_pool(target: &DbTarget, size: u32) -> PgPool {
    use diesel_async::pooled_connection::{ManagerConfig, PoolableConnection, RecyclingMethod};
    use futures::FutureExt;

    let mut config = ManagerConfig::default();
    // A connection is checked out on every miss: a `SELECT 1` first (the default) would
    // cost each miss another round trip. Its socket's state is enough: a connection the
    // server closed (a restart, an idle timeout) is already marked closed by its driver, so
    // the pool replaces it here instead of a request failing on it.
    config.recycling_method =
        RecyclingMethod::CustomFunction(Box::new(|conn: &mut AsyncPgConnection| {
            let closed = conn.is_broken();
            async move {
                match closed {
                    false => Ok(()),
                    true => Err(DieselError::DatabaseError(
                        DatabaseErrorKind::ClosedConnection,
                        Box::new("the pooled connection is closed".to_string()),
                    )),
                }
            }
            .boxed()
        }));
    let shown = target.shown().to_string();
    let target = target.clone();
    config.custom_setup = Box::new(move |_| {
        let target = target.clone();
        async move { target.connect().await }.boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(shown, config);
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(std::time::Duration::from_secs(2))
        .error_sink(Box::new(LogConnectErrors))
        .build_unchecked(manager)
}

/// bb8 reports a failed connection attempt only as "timed out" to the caller that waited;
/// the cause (refused, authentication, certificate) goes to this sink, which logs it.
#[derive(Debug, Clone, Copy)]
struct LogConnectErrors;

impl bb8::ErrorSink<PoolError> for LogConnectErrors {
    fn sink(&self, error: PoolError) {
        crate::logging::request_failure(log::Level::Warn, || {
            format!("database connection failed: {error}")
        });
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(*self)
    }
}
