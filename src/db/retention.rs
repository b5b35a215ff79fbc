//! Retention: dead letters received more than `DEAD_LETTER_RETENTION_DAYS` ago are deleted
//! by `orders-service retention`, run as the role that owns the tables. The service itself
//! never deletes (its runtime role may only SELECT and INSERT), so a compromised or buggy
//! instance cannot erase the record of what it refused.
//!
//! The deletion goes oldest first in batches of at most [`BATCH`] rows, each its own short
//! statement: it takes no long locks and can run beside the service at any time (a cron
//! job, a periodic container). A replay history goes with its letter (`ON DELETE CASCADE`).

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DbError;
use super::dead_letters::purge_batch;

/// Rows deleted per statement.
pub const BATCH: i64 = 1_000;

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Dead letters received before this were deleted.
    pub cutoff: DateTime<Utc>,
    pub deleted: u64,
    /// Statements run (0 for a dry run).
    pub batches: u64,
}

/// The cutoff for a retention of `days` days at `now`.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days))
}

/// Deletes every dead letter received before `cutoff`, `batch` at a time; `dry_run` only
/// counts them. Fails before deleting anything when this role may not delete them.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
    dry_run: bool,
) -> Result<Purged, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        role: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        may_delete: bool,
    }
    let who: Row = diesel::sql_query(
        "SELECT current_user::text AS role, \
         pg_catalog.has_table_privilege('dead_letters', 'DELETE') AS may_delete",
    )
    .get_result(conn)
    .await?;
    if !who.may_delete && !dry_run {
        return Err(DbError::Rejected(format!(
            "role {} may not DELETE from dead_letters: retention runs as the role that owns the tables (set MIGRATION_DATABASE_URL to it)",
            who.role
        )));
    }
    if dry_run {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count: Count =
            diesel::sql_query("SELECT count(*) AS n FROM dead_letters WHERE received_at < $1")
                .bind::<Timestamptz, _>(cutoff)
                .get_result(conn)
                .await?;
        return Ok(Purged {
            cutoff,
            deleted: u64::try_from(count.n).unwrap_or_default(),
            batches: 0,
        });
    }
    let mut purged = Purged {
        cutoff,
        deleted: 0,
        batches: 0,
    };
    loop {
        let deleted = purge_batch(conn, cutoff, batch).await?;
        purged.batches += 1;
        purged.deleted += deleted as u64;
        if (deleted as i64) < batch {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_days_before_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-31T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            cutoff(now, 30).to_rfc3339(),
            "2026-12-01T10:00:00+00:00".to_string()
        );
    }
}
