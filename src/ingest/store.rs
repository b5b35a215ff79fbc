//! PostgreSQL as a [`BatchStore`]: what a batch of messages becomes in the database, in one
//! transaction, and the two stores that run it.
//!
//! - [`write_batch`]: new orders with all their rows, and a dead letter for every rejected or
//!   conflicting message, decided by [`super::insert_candidates`] and [`super::decide`] around
//!   the SQL primitives of `db::queries`.
//! - [`PgStore`]: a writer's store, one connection opened on demand, a write timeout; each
//!   batch its own transaction. It never loses anything: a lost connection is reopened.
//! - [`RunStore`]: the replay's store, inside the one transaction of a replay run: each
//!   batch is a savepoint within it, so a refused batch is rolled back alone and the run's
//!   other writes stay; a lost connection loses the run (`StoreError::Lost`).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::durable::{BatchStore, StoreError};
use super::{Incoming, Outcome, decide, insert_candidates};
use crate::db::queries::{self, NewDeadLetter, NewOrder};
use crate::db::{DbError, DbTarget};
use crate::domain::{Order, Rejection};
use crate::metrics::METRICS;

/// Writes a batch in one transaction: new orders with all their rows, and a dead letter for
/// every rejected or conflicting message. Returns each message's outcome, in batch order.
/// On error nothing of the batch is written. Inside a transaction already open (a replay
/// run's) it is a savepoint of it.
///
/// The transaction is synchronous whatever the server's or the database's default: the
/// reader commits offsets once this returns, so the commit must be on disk. `SET LOCAL`, not
/// a session setting, so a pooler (pgbouncer in transaction mode) cannot lose it.
pub async fn write_batch(
    conn: &mut AsyncPgConnection,
    topic: &str,
    batch: &[Incoming],
) -> QueryResult<Vec<Outcome>> {
    conn.transaction(async |c| {
        diesel::sql_query("SET LOCAL synchronous_commit TO on")
            .execute(c)
            .await?;
        write_in_transaction(c, topic, batch).await
    })
    .await
}

async fn write_in_transaction(
    conn: &mut AsyncPgConnection,
    topic: &str,
    batch: &[Incoming],
) -> QueryResult<Vec<Outcome>> {
    let chosen: Vec<NewOrder<'_>> = insert_candidates(batch)
        .into_iter()
        .filter_map(|i| {
            let valid = batch[i].verdict.as_ref().ok()?;
            Some(NewOrder {
                order: &valid.order,
                content_hash: &valid.content_hash[..],
                partition: batch[i].position.partition,
                offset: batch[i].position.offset,
            })
        })
        .collect();

    let ids: HashMap<String, i64> = queries::insert_orders(conn, &chosen)
        .await?
        .into_iter()
        .map(|r| (r.order_uid, r.id))
        .collect();
    let created: Vec<(i64, &Order)> = chosen
        .iter()
        .filter_map(|n| ids.get(n.order.order_uid.as_str()).map(|id| (*id, n.order)))
        .collect();
    queries::insert_children(conn, &created).await?;

    // The candidates the insert did not create: stored before (or by a concurrent writer).
    let missing: Vec<&str> = chosen
        .iter()
        .map(|n| n.order.order_uid.as_str())
        .filter(|uid| !ids.contains_key(*uid))
        .collect();
    let existing = queries::stored_hashes(conn, &missing).await?;

    let inserted: HashSet<String> = ids.into_keys().collect();
    let outcomes = decide(batch, &inserted, &existing);
    let letters: Vec<NewDeadLetter<'_>> = batch
        .iter()
        .zip(&outcomes)
        .filter_map(|(incoming, outcome)| match outcome {
            Outcome::DeadLettered(r) => Some(dead_letter(incoming, r)),
            _ => None,
        })
        .collect();
    queries::insert_dead_letters(conn, topic, &letters).await?;
    Ok(outcomes)
}

fn dead_letter<'a>(m: &'a Incoming, rejection: &'a Rejection) -> NewDeadLetter<'a> {
    NewDeadLetter {
        partition: m.position.partition,
        offset: m.position.offset,
        key: m.key.as_deref(),
        payload: &m.payload,
        rejection,
        order_uid: m.order_uid().or_else(|| uid_from_key(m)),
    }
}

/// The message key as text, when it is a plausible order id: lets an operator find the dead
/// letters of an order even when its payload could not be parsed.
fn uid_from_key(m: &Incoming) -> Option<&str> {
    let key = std::str::from_utf8(m.key.as_deref()?).ok()?;
    crate::domain::rules::is_valid_order_uid(key).then_some(key)
}

/// A writer's store: one connection, opened on demand (each attempt bounded by
/// `DbTarget::connect` itself, per host of the URL), and a write timeout.
pub struct PgStore {
    target: DbTarget,
    topic: String,
    write_timeout: Duration,
    conn: Option<AsyncPgConnection>,
}

impl PgStore {
    /// A store writing the messages of `topic`; it connects on its first write.
    pub fn new(target: DbTarget, topic: String, write_timeout: Duration) -> Self {
        Self {
            target,
            topic,
            write_timeout,
            conn: None,
        }
    }
}

impl BatchStore for PgStore {
    type Lost = Infallible;

    async fn write(&mut self, batch: &[Incoming]) -> Result<Vec<Outcome>, StoreError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => match self.target.connect().await {
                Ok(conn) => conn,
                Err(e) => return Err(StoreError::Unavailable(format!("cannot connect: {e}"))),
            },
        };
        let started = Instant::now();
        let written = tokio::time::timeout(
            self.write_timeout,
            write_batch(&mut conn, &self.topic, batch),
        )
        .await;
        match written {
            Ok(Ok(outcomes)) => {
                METRICS
                    .db_write_seconds
                    .observe(started.elapsed().as_secs_f64());
                METRICS.db_batch_size.observe(batch.len() as f64);
                self.conn = Some(conn);
                Ok(outcomes)
            }
            Ok(Err(e)) => {
                METRICS.db_retries.inc();
                match DbError::from(e) {
                    // After a lost connection the connection is likely broken: drop it.
                    DbError::Unavailable(reason) => Err(StoreError::Unavailable(reason)),
                    DbError::Rejected(reason) => {
                        self.conn = Some(conn);
                        Err(StoreError::Refused(reason))
                    }
                }
            }
            // Dropping the connection rolls back whatever the transaction had done.
            Err(_) => {
                METRICS.db_retries.inc();
                Err(StoreError::TimedOut(format!(
                    "write of {} messages timed out after {:?}",
                    batch.len(),
                    self.write_timeout
                )))
            }
        }
    }
}

/// The replay's store: batches of `topic` written inside the transaction already open on
/// `conn` (a replay run's), each as a savepoint of it.
pub struct RunStore<'c> {
    conn: &'c mut AsyncPgConnection,
    topic: &'c str,
}

impl<'c> RunStore<'c> {
    pub fn new(conn: &'c mut AsyncPgConnection, topic: &'c str) -> Self {
        Self { conn, topic }
    }
}

impl BatchStore for RunStore<'_> {
    /// The run's transaction is gone (no answer from the database), or it refuses a dead
    /// letter that is already stored: a run must end, and its caller learns why.
    type Lost = DbError;

    async fn write(&mut self, batch: &[Incoming]) -> Result<Vec<Outcome>, StoreError<DbError>> {
        match write_batch(self.conn, self.topic, batch).await {
            Ok(outcomes) => Ok(outcomes),
            Err(e) => match DbError::from(e) {
                DbError::Unavailable(reason) => Err(StoreError::Lost(DbError::Unavailable(reason))),
                // Only a message the database refused on its own is written as a dead
                // letter (its own, already stored: nothing is inserted): a refusal of that
                // would block a writer until repaired; a run ends instead.
                DbError::Rejected(reason) if batch.iter().all(|m| m.verdict.is_err()) => {
                    Err(StoreError::Lost(DbError::Rejected(reason)))
                }
                DbError::Rejected(reason) => Err(StoreError::Refused(reason)),
            },
        }
    }
}
