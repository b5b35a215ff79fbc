//! DbReader: the read queries other than single orders (recent lists, counts) and the
//! database health probe. Lives on the main System with the pool: HTTP workers never open
//! database connections on their own runtimes.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::models::OrderSummary;
use crate::db::{DbError, PgPool, queries};
use crate::health::Health;

const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Newest stored orders, summarised.
#[derive(Message)]
#[rtype(result = "Result<Vec<OrderSummary>, DbError>")]
pub struct RecentOrders {
    pub limit: i64,
}

/// Newest dead letters.
#[derive(Message)]
#[rtype(result = "Result<Vec<DeadLetterView>, DbError>")]
pub struct RecentDeadLetters {
    pub limit: i64,
}

/// Number of stored orders.
#[derive(Message)]
#[rtype(result = "Result<i64, DbError>")]
pub struct CountOrders;

/// A dead letter as the API shows it; the payload as (lossy) text, its first 4 KiB.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub order_uid: Option<String>,
    pub reason: String,
    pub field: Option<String>,
    pub detail: String,
    pub payload: String,
    pub payload_bytes: usize,
    pub received_at: DateTime<Utc>,
}

/// Bytes of each payload `/dead-letters` shows.
const PAYLOAD_PREVIEW: i32 = 4096;

pub struct DbReader {
    pool: PgPool,
    health: Arc<Health>,
}

impl DbReader {
    pub fn new(pool: PgPool, health: Arc<Health>) -> Self {
        Self { pool, health }
    }
}

impl Actor for DbReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PROBE_EVERY, |act, ctx| {
            let pool = act.pool.clone();
            let probe = async move {
                let ping = async {
                    let mut conn = pool.get().await.map_err(DbError::from)?;
                    queries::ping(&mut conn).await.map_err(DbError::from)
                };
                matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(())))
            };
            ctx.spawn(
                probe
                    .into_actor(act)
                    .map(|up, act, _| act.health.set_db_up(up)),
            );
        });
    }
}

impl Handler<RecentOrders> for DbReader {
    type Result = ResponseFuture<Result<Vec<OrderSummary>, DbError>>;

    fn handle(&mut self, msg: RecentOrders, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(queries::recent_summaries(&mut conn, msg.limit).await?)
        })
    }
}

impl Handler<RecentDeadLetters> for DbReader {
    type Result = ResponseFuture<Result<Vec<DeadLetterView>, DbError>>;

    fn handle(&mut self, msg: RecentDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let rows = queries::recent_dead_letters(&mut conn, msg.limit, PAYLOAD_PREVIEW).await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    DeadLetterView {
                        id: r.id,
                        topic: r.topic,
                        partition: r.kafka_partition,
                        offset: r.kafka_offset,
                        key: r
                            .message_key
                            .map(|k| String::from_utf8_lossy(&k).into_owned()),
                        order_uid: r.order_uid,
                        reason: r.reason,
                        field: r.field,
                        detail: r.detail,
                        // The cut may split a UTF-8 character: shown lossily.
                        payload: String::from_utf8_lossy(&r.payload_preview).into_owned(),
                        payload_bytes: usize::try_from(r.payload_bytes).unwrap_or_default(),
                        received_at: r.received_at,
                    }
                })
                .collect())
        })
    }
}

impl Handler<CountOrders> for DbReader {
    type Result = ResponseFuture<Result<i64, DbError>>;

    fn handle(&mut self, _: CountOrders, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(queries::count_orders(&mut conn).await?)
        })
    }
}
