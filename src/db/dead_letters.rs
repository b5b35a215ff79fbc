//! Dead-letter queries for operators: filtered keyset pages, replay selection and history,
//! retention. Every list is `WHERE <filter> AND id < $cursor ORDER BY id DESC LIMIT n`,
//! backed by an `(filter, id)` index (migration `…_operations`): no OFFSET scans.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Int8, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::DeadLetterRow;
use super::schema::{dead_letter_replays, dead_letters};
use super::unnest::{Values, insert};

/// Which dead letters an operator asks for; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LetterFilter {
    pub reasons: Vec<String>,
    pub order_uid: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    /// Only these ids.
    pub ids: Vec<i64>,
}

/// One page of dead letters, newest first, with at most `preview_bytes` of each payload.
pub async fn page(
    conn: &mut AsyncPgConnection,
    filter: &LetterFilter,
    before: Option<i64>,
    limit: i64,
    preview_bytes: i32,
) -> QueryResult<Vec<DeadLetterRow>> {
    let preview = diesel::dsl::sql::<Bytea>("substring(payload from 1 for ")
        .bind::<Int4, _>(preview_bytes)
        .sql(")");
    let size = diesel::dsl::sql::<Int4>("octet_length(payload)");
    let mut query = dead_letters::table.into_boxed();
    if !filter.reasons.is_empty() {
        query = query.filter(dead_letters::reason.eq_any(filter.reasons.clone()));
    }
    if let Some(uid) = &filter.order_uid {
        query = query.filter(dead_letters::order_uid.eq(uid.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(dead_letters::received_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(dead_letters::received_at.lt(until));
    }
    if !filter.ids.is_empty() {
        query = query.filter(dead_letters::id.eq_any(filter.ids.clone()));
    }
    if let Some(before) = before {
        query = query.filter(dead_letters::id.lt(before));
    }
    query
        .order(dead_letters::id.desc())
        .limit(limit)
        .select((
            dead_letters::id,
            dead_letters::topic,
            dead_letters::kafka_partition,
            dead_letters::kafka_offset,
            dead_letters::message_key,
            preview,
            size,
            dead_letters::reason,
            dead_letters::field,
            dead_letters::detail,
            dead_letters::order_uid,
            dead_letters::received_at,
        ))
        .load(conn)
        .await
}

/// A recorded replay of a dead letter.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct ReplayRecord {
    #[serde(skip)]
    pub dead_letter_id: i64,
    pub replayed_at: DateTime<Utc>,
    pub result: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// The replay history of these dead letters, oldest first.
pub async fn replays_of(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<ReplayRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    dead_letter_replays::table
        .filter(dead_letter_replays::dead_letter_id.eq_any(ids))
        .order(dead_letter_replays::id.asc())
        .select((
            dead_letter_replays::dead_letter_id,
            dead_letter_replays::replayed_at,
            dead_letter_replays::result,
            dead_letter_replays::reason,
            dead_letter_replays::detail,
        ))
        .load(conn)
        .await
}

/// A dead letter as replay needs it: the whole payload, and its last replay's outcome.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReplayCandidate {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub topic: String,
    #[diesel(sql_type = Int4)]
    pub kafka_partition: i32,
    #[diesel(sql_type = Int8)]
    pub kafka_offset: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub message_key: Option<Vec<u8>>,
    #[diesel(sql_type = Bytea)]
    pub payload: Vec<u8>,
    #[diesel(sql_type = Text)]
    pub reason: String,
    /// `result` or `result:reason` of the newest replay, if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_replay: Option<String>,
}

/// Dead letters matching `filter` with an id above `after`, oldest first, that no replay has
/// settled yet (found `stored`, `duplicate` or `conflict`: nothing left to do for them).
pub async fn replay_candidates(
    conn: &mut AsyncPgConnection,
    filter: &LetterFilter,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<ReplayCandidate>> {
    diesel::sql_query(
        "SELECT d.id, d.topic, d.kafka_partition, d.kafka_offset, d.message_key, d.payload, \
                d.reason, \
                (SELECT r.result || coalesce(':' || r.reason, '') FROM dead_letter_replays r \
                  WHERE r.dead_letter_id = d.id ORDER BY r.id DESC LIMIT 1) AS last_replay \
           FROM dead_letters d \
          WHERE d.id > $1 \
            AND (cardinality($2::text[]) = 0 OR d.reason = ANY($2)) \
            AND ($3::timestamptz IS NULL OR d.received_at >= $3) \
            AND ($4::timestamptz IS NULL OR d.received_at < $4) \
            AND (cardinality($5::int8[]) = 0 OR d.id = ANY($5)) \
            AND ($6::text IS NULL OR d.order_uid = $6) \
            AND NOT EXISTS (SELECT 1 FROM dead_letter_replays r \
                             WHERE r.dead_letter_id = d.id \
                               AND r.result IN ('stored', 'duplicate', 'conflict')) \
          ORDER BY d.id \
          LIMIT $7",
    )
    .bind::<BigInt, _>(after)
    .bind::<Array<Text>, _>(&filter.reasons)
    .bind::<Nullable<Timestamptz>, _>(filter.since)
    .bind::<Nullable<Timestamptz>, _>(filter.until)
    .bind::<Array<Int8>, _>(&filter.ids)
    .bind::<Nullable<Text>, _>(filter.order_uid.as_deref())
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// A replay outcome to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReplay {
    pub dead_letter_id: i64,
    pub result: &'static str,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

pub async fn record_replays(
    conn: &mut AsyncPgConnection,
    replays: &[NewReplay],
) -> QueryResult<usize> {
    if replays.is_empty() {
        return Ok(0);
    }
    let columns = vec![
        (
            "dead_letter_id",
            Values::int8(replays, |r| r.dead_letter_id),
        ),
        ("result", Values::text(replays, |r| r.result)),
        (
            "reason",
            Values::nullable_text(replays, |r| r.reason.as_deref()),
        ),
        (
            "detail",
            Values::nullable_text(replays, |r| r.detail.as_deref()),
        ),
    ];
    insert("dead_letter_replays", columns, "")?
        .execute(conn)
        .await
}

/// Deletes at most `batch` dead letters received before `cutoff` (oldest first); returns how
/// many. One short statement: retention never holds locks for long.
pub async fn purge_batch(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM dead_letters WHERE id IN ( \
           SELECT id FROM dead_letters WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await
}
