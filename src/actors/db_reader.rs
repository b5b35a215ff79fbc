//! DbReader: the read queries (single orders for the CacheActor's misses, recent lists,
//! counts, dead letters) and the database health probe. Lives on the main System with
//! the pool: neither HTTP workers nor the CacheActor (which runs on one of them) open
//! database connections on their own runtimes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::cache::messages::{LoadOrder, Loaded};
use crate::db::dead_letters::{self, LetterFilter, ReplayRecord};
use crate::db::models::OrderSummary;
use crate::db::{DbError, PgPool, queries};
use crate::health::Health;
use crate::replay;

const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Stored orders, summarised, newest first, below the `before` cursor.
#[derive(Message)]
#[rtype(result = "Result<Vec<OrderSummary>, DbError>")]
pub struct RecentOrders {
    pub before: Option<i64>,
    pub limit: i64,
}

/// Dead letters matching a filter, newest first, below the `before` cursor.
#[derive(Message)]
#[rtype(result = "Result<Vec<DeadLetterView>, DbError>")]
pub struct DeadLetterPage {
    pub filter: LetterFilter,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Replays the dead letters a filter selects (see [`crate::replay`]).
#[derive(Message)]
#[rtype(result = "Result<replay::Summary, replay::ReplayError>")]
pub struct ReplayLetters {
    pub filter: LetterFilter,
    pub limits: replay::Limits,
    pub dry_run: bool,
}

/// Number of stored orders, counted at most once per [`count_interval`]: callers in between
/// get the last count, callers during a count share it.
#[derive(Message)]
#[rtype(result = "Result<OrderCount, DbError>")]
pub struct CountOrders;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderCount {
    pub orders: i64,
    pub counted_at: DateTime<Utc>,
}

/// Shortest time between two counts of the orders table.
const MIN_COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a count stays good: at least [`MIN_COUNT_INTERVAL`], and 50 times what it took,
/// so counting a table of any size takes at most 2 % of one database connection's time,
/// however often `/stats` is asked.
pub fn count_interval(took: Duration) -> Duration {
    MIN_COUNT_INTERVAL.max(took.saturating_mul(50))
}

type CountWaiter = oneshot::Sender<Result<OrderCount, DbError>>;

/// The last count and the callers waiting for the one in progress.
#[derive(Default)]
struct CountCache {
    last: Option<(OrderCount, Instant)>,
    good_for: Duration,
    waiting: Vec<CountWaiter>,
}

impl CountCache {
    fn fresh(&self, now: Instant) -> Option<OrderCount> {
        self.last
            .filter(|(_, at)| now.duration_since(*at) < self.good_for)
            .map(|(count, _)| count)
    }

    /// Queues a caller; true when it is the first, which starts the count.
    fn wait(&mut self, waiter: CountWaiter) -> bool {
        self.waiting.push(waiter);
        self.waiting.len() == 1
    }

    fn finish(&mut self, result: Result<i64, DbError>, took: Duration, now: Instant) {
        let result = result.map(|orders| {
            let count = OrderCount {
                orders,
                counted_at: Utc::now(),
            };
            self.last = Some((count, now));
            self.good_for = count_interval(took);
            count
        });
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(match &result {
                Ok(count) => Ok(*count),
                Err(e) => Err(DbError::Unavailable(e.to_string())),
            });
        }
    }
}

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
    /// Every replay of this letter and its result, oldest first.
    pub replays: Vec<ReplayRecord>,
}

/// Bytes of each payload `/dead-letters` shows.
const PAYLOAD_PREVIEW: i32 = 4096;

pub struct DbReader {
    pool: PgPool,
    health: Arc<Health>,
    count: CountCache,
    settings: ReaderSettings,
}

/// What the operations need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ReaderSettings {
    /// Payload limit replays validate against (today's `MAX_PAYLOAD_BYTES`).
    pub max_payload_bytes: usize,
}

impl DbReader {
    pub fn new(pool: PgPool, health: Arc<Health>, settings: ReaderSettings) -> Self {
        Self {
            pool,
            health,
            count: CountCache::default(),
            settings,
        }
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
            Ok(queries::recent_summaries(&mut conn, msg.before, msg.limit).await?)
        })
    }
}

/// A miss of the cache: the read and the serialization run here, on the main System with
/// the pool, wherever the CacheActor lives.
impl Handler<LoadOrder> for DbReader {
    type Result = ResponseFuture<Loaded>;

    fn handle(&mut self, msg: LoadOrder, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let order = queries::find_order(&mut conn, &msg.uid).await?;
            Ok(order.map(|o| o.to_json()))
        })
    }
}

impl Handler<DeadLetterPage> for DbReader {
    type Result = ResponseFuture<Result<Vec<DeadLetterView>, DbError>>;

    fn handle(&mut self, msg: DeadLetterPage, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let rows = dead_letters::page(
                &mut conn,
                &msg.filter,
                msg.before,
                msg.limit,
                PAYLOAD_PREVIEW,
            )
            .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            // Each letter's replays, oldest first (the query's order), in one pass.
            let mut replays: HashMap<i64, Vec<ReplayRecord>> = HashMap::new();
            for replay in dead_letters::replays_of(&mut conn, &ids).await? {
                replays
                    .entry(replay.dead_letter_id)
                    .or_default()
                    .push(replay);
            }
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mine = replays.remove(&r.id).unwrap_or_default();
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
                        replays: mine,
                    }
                })
                .collect())
        })
    }
}

impl Handler<ReplayLetters> for DbReader {
    type Result = ResponseFuture<Result<replay::Summary, replay::ReplayError>>;

    fn handle(&mut self, msg: ReplayLetters, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        let max_payload_bytes = self.settings.max_payload_bytes;
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            replay::run(
                &mut conn,
                &msg.filter,
                msg.limits,
                max_payload_bytes,
                msg.dry_run,
            )
            .await
        })
    }
}

impl Handler<CountOrders> for DbReader {
    type Result = ResponseFuture<Result<OrderCount, DbError>>;

    fn handle(&mut self, _: CountOrders, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(count) = self.count.fresh(Instant::now()) {
            return Box::pin(std::future::ready(Ok(count)));
        }
        let (tx, rx) = oneshot::channel();
        if self.count.wait(tx) {
            let pool = self.pool.clone();
            let count = async move {
                let started = Instant::now();
                let counted = async {
                    let mut conn = pool.get().await?;
                    Ok(queries::count_orders(&mut conn).await?)
                };
                (counted.await, started.elapsed())
            };
            ctx.spawn(count.into_actor(self).map(|(result, took), act, _| {
                act.count.finish(result, took, Instant::now());
            }));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(DbError::Unavailable("the count was cancelled".into())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_count_is_repeated_less_often() {
        assert_eq!(count_interval(Duration::from_millis(2)), MIN_COUNT_INTERVAL);
        assert_eq!(
            count_interval(Duration::from_secs(1)),
            Duration::from_secs(50)
        );
    }

    #[test]
    fn callers_during_a_count_share_it_and_later_ones_reuse_it() {
        let mut cache = CountCache::default();
        let start = Instant::now();
        assert_eq!(cache.fresh(start), None);
        let (first, first_rx) = oneshot::channel();
        let (second, second_rx) = oneshot::channel();
        assert!(cache.wait(first), "the first caller starts the count");
        assert!(!cache.wait(second), "the second waits for it");
        cache.finish(Ok(7), Duration::from_millis(3), start);
        let a = first_rx
            .blocking_recv()
            .expect("answered")
            .expect("counted");
        let b = second_rx
            .blocking_recv()
            .expect("answered")
            .expect("counted");
        assert_eq!((a.orders, b), (7, a));
        assert_eq!(cache.fresh(start + Duration::from_secs(4)), Some(a));
        assert_eq!(cache.fresh(start + MIN_COUNT_INTERVAL), None, "stale");
    }

    #[test]
    fn a_failed_count_is_reported_to_every_waiter_and_not_kept() {
        let mut cache = CountCache::default();
        let (tx, rx) = oneshot::channel();
        cache.wait(tx);
        cache.finish(
            Err(DbError::Unavailable("down".into())),
            Duration::ZERO,
            Instant::now(),
        );
        assert!(rx.blocking_recv().expect("answered").is_err());
        assert_eq!(cache.fresh(Instant::now()), None);
        let (tx, _rx) = oneshot::channel();
        assert!(cache.wait(tx), "the next caller counts again");
    }
}
