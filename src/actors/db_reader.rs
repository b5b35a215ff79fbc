//! DbReader: the read queries (single orders for the CacheActor's misses, recent lists,
//! counts, dead letters) and the database health probe. Lives on the main System with
//! the pools: neither HTTP workers nor the CacheActor (which runs on one of them) open
//! database connections on their own runtimes.
//!
//! With `READ_DATABASE_URL`, misses and lists read from that standby (counts, dead letters
//! and replays stay on the primary: the truth, and writes). A standby replays what the
//! primary committed a moment later, so:
//! - a miss the standby does not find is asked of the primary before it is answered 404
//!   ([`prefer_standby`]): replication lag, or a paused replay, never turns a stored order
//!   into a 404 (a list may lag by as much, and says nothing wrong);
//! - a standby that fails or does not answer within [`STANDBY_TIMEOUT`] is left: reads go
//!   to the primary, `/health` says `reads: primary (standby down)` (degraded), and the
//!   probe returns them to the standby once it answers again.
//!
//! It also re-checks, every [`REPLICATION_EVERY`] and whenever the database answers again
//! after an outage (a failover changes it), the primary's replication
//! ([`crate::db::replication`]) and the read standby's position, for `/health`.

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
use crate::db::{DbError, PgPool, queries, replication};
use crate::health::{Health, Reads};
use crate::replay;

const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a read may wait for the standby before the primary answers it instead.
pub const STANDBY_TIMEOUT: Duration = Duration::from_secs(2);
/// Time between two checks of the primary's replication and the read standby's position.
const REPLICATION_EVERY: Duration = Duration::from_secs(10);

/// Where a read that prefers the standby got its answer.
#[derive(Debug)]
pub enum Route {
    /// No standby to read from (none configured, or it is down): the primary.
    Primary,
    Standby,
    /// The standby had nothing (a miss it has not replayed yet, or truly absent): the primary.
    NotOnStandby,
    /// The standby failed or did not answer in time: the primary.
    StandbyFailed(DbError),
}

/// Reads from `standby` if given, and from `primary` when there is no standby, when it
/// fails or is slower than [`STANDBY_TIMEOUT`], or when what it found is `absent`: only the
/// primary may say that something is not stored. Returns the answer and where it came from.
pub async fn prefer_standby<T, S, P>(
    standby: Option<S>,
    absent: impl Fn(&T) -> bool,
    primary: impl FnOnce() -> P,
) -> (Result<T, DbError>, Route)
where
    S: Future<Output = Result<T, DbError>>,
    P: Future<Output = Result<T, DbError>>,
{
    let Some(read) = standby else {
        return (primary().await, Route::Primary);
    };
    match tokio::time::timeout(STANDBY_TIMEOUT, read).await {
        Ok(Ok(found)) if !absent(&found) => (Ok(found), Route::Standby),
        Ok(Ok(_)) => (primary().await, Route::NotOnStandby),
        Ok(Err(e)) => (primary().await, Route::StandbyFailed(e)),
        Err(_) => (
            primary().await,
            Route::StandbyFailed(DbError::Unavailable(format!(
                "no answer within {STANDBY_TIMEOUT:?}"
            ))),
        ),
    }
}

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
    /// `READ_DATABASE_URL`'s pool.
    standby: Option<PgPool>,
    health: Arc<Health>,
    count: CountCache,
    settings: ReaderSettings,
}

/// What the operations need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ReaderSettings {
    /// Payload limit replays validate against (the current `MAX_PAYLOAD_BYTES`).
    pub max_payload_bytes: usize,
}

impl DbReader {
    /// `standby`: the pool of `READ_DATABASE_URL`, if set.
    pub fn new(
        pool: PgPool,
        standby: Option<PgPool>,
        health: Arc<Health>,
        settings: ReaderSettings,
    ) -> Self {
        health.set_reads(if standby.is_some() {
            Reads::Standby
        } else {
            Reads::Primary
        });
        Self {
            pool,
            standby,
            health,
            count: CountCache::default(),
            settings,
        }
    }

    /// The standby's pool while reads go to it.
    fn standby(&self) -> Option<PgPool> {
        self.standby
            .clone()
            .filter(|_| self.health.reads() == Reads::Standby)
    }

    /// Re-checks the primary's replication and the read standby's position for `/health`,
    /// logging what changed.
    fn check_replication(&self, ctx: &mut Context<Self>) {
        let (pool, standby, health) =
            (self.pool.clone(), self.standby.clone(), self.health.clone());
        ctx.spawn(
            async move {
                let checked = async {
                    let mut conn = pool.get().await?;
                    let replication = replication::replication(&mut conn).await?;
                    let read_server = match standby {
                        Some(standby) => read_position(&standby, &mut conn).await,
                        None => None,
                    };
                    Ok::<_, DbError>((replication, read_server))
                };
                match tokio::time::timeout(PROBE_TIMEOUT * 2, checked).await {
                    Ok(Ok((replication, read_server))) => {
                        let before = health.set_replication(replication.clone());
                        if let Some((level, line)) = replication.change_since(before.as_ref()) {
                            log::log!(level, "{line}");
                        }
                        if read_server.is_some() {
                            health.set_read_server(read_server);
                        }
                    }
                    Ok(Err(e)) => log::debug!("the replication check failed: {e}"),
                    Err(_) => log::debug!("the replication check timed out"),
                }
            }
            .into_actor(self),
        );
    }
}

/// Where the read standby stands, with its replay lag behind `primary` (`None` if it does
/// not answer).
async fn read_position(
    standby: &PgPool,
    primary: &mut diesel_async::AsyncPgConnection,
) -> Option<replication::ReadServer> {
    let mut conn = standby.get().await.ok()?;
    let (mut server, replayed) = replication::read_server(&mut conn).await.ok()?;
    if let Some(replayed) = replayed {
        server.replay_lag_bytes = replication::replay_lag_bytes(primary, &replayed).await.ok();
    }
    Some(server)
}

/// Pings `pool` within [`PROBE_TIMEOUT`].
async fn answers(pool: PgPool) -> bool {
    let ping = async {
        let mut conn = pool.get().await.map_err(DbError::from)?;
        queries::ping(&mut conn).await.map_err(DbError::from)
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(())))
}

/// Records where a read got its answer; a failed standby sends reads to the primary until
/// the probe finds it answering again.
fn record(health: &Health, route: &Route, primary_found: bool) {
    match route {
        Route::NotOnStandby if primary_found => health.found_on_primary(),
        Route::StandbyFailed(e) => {
            health.standby_failed();
            if health.reads() == Reads::Standby {
                health.set_reads(Reads::StandbyDown);
                log::warn!(
                    "the read standby (READ_DATABASE_URL) failed ({e}): reading from the primary until it answers again"
                );
            }
        }
        _ => {}
    }
}

impl Actor for DbReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PROBE_EVERY, |act, ctx| {
            let primary = answers(act.pool.clone());
            ctx.spawn(primary.into_actor(act).map(|up, act, ctx| {
                let was_up = act.health.db_up();
                act.health.set_db_up(up);
                // Back after an outage: perhaps on another server (a failover).
                if up && !was_up {
                    act.check_replication(ctx);
                }
            }));
            let Some(standby) = act.standby.clone() else {
                return;
            };
            ctx.spawn(answers(standby).into_actor(act).map(|up, act, _| {
                match (act.health.reads(), up) {
                    (Reads::StandbyDown, true) => {
                        act.health.set_reads(Reads::Standby);
                        log::info!("the read standby (READ_DATABASE_URL) answers again: reading from it");
                    }
                    (Reads::Standby, false) => {
                        act.health.set_reads(Reads::StandbyDown);
                        log::warn!(
                            "the read standby (READ_DATABASE_URL) does not answer: reading from the primary until it does"
                        );
                    }
                    _ => {}
                }
            }));
        });
        self.check_replication(ctx);
        ctx.run_interval(REPLICATION_EVERY, |act, ctx| act.check_replication(ctx));
    }
}

impl Handler<RecentOrders> for DbReader {
    type Result = ResponseFuture<Result<Vec<OrderSummary>, DbError>>;

    fn handle(&mut self, msg: RecentOrders, _: &mut Context<Self>) -> Self::Result {
        let (pool, standby, health) = (self.pool.clone(), self.standby(), self.health.clone());
        let read = async move |pool: PgPool| {
            let mut conn = pool.get().await?;
            Ok(queries::recent_summaries(&mut conn, msg.before, msg.limit).await?)
        };
        Box::pin(async move {
            let (answer, route) = prefer_standby(standby.map(read), |_| false, || read(pool)).await;
            record(&health, &route, false);
            answer
        })
    }
}

/// A miss of the cache: the read and the serialization run here, on the main System with
/// the pool, wherever the CacheActor lives.
impl Handler<LoadOrder> for DbReader {
    type Result = ResponseFuture<Loaded>;

    fn handle(&mut self, msg: LoadOrder, _: &mut Context<Self>) -> Self::Result {
        let (pool, standby, health) = (self.pool.clone(), self.standby(), self.health.clone());
        let uid = msg.uid;
        Box::pin(async move {
            let on_standby = standby.map(|standby| load_order(standby, uid.clone()));
            let (answer, route) =
                prefer_standby(on_standby, Option::is_none, || load_order(pool, uid)).await;
            record(&health, &route, matches!(answer, Ok(Some(_))));
            answer
        })
    }
}

/// One stored order's JSON, read through `pool`.
async fn load_order(pool: PgPool, uid: String) -> Result<Option<Vec<u8>>, DbError> {
    let mut conn = pool.get().await?;
    let order = queries::find_order(&mut conn, &uid).await?;
    Ok(order.map(|o| o.to_json()))
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

    fn found(uid: &str) -> Result<Option<String>, DbError> {
        Ok(Some(uid.to_string()))
    }

    #[tokio::test]
    async fn an_order_the_standby_has_is_not_asked_of_the_primary() {
        let (answer, route) =
            prefer_standby(Some(async { found("a") }), Option::is_none, || async {
                panic!("the primary was asked")
            })
            .await;
        assert_eq!(answer.expect("read"), Some("a".into()));
        assert!(matches!(route, Route::Standby), "{route:?}");
    }

    #[tokio::test]
    async fn an_order_the_standby_lacks_is_asked_of_the_primary_before_a_404() {
        let (answer, route) = prefer_standby(Some(async { Ok(None) }), Option::is_none, || async {
            found("stored a moment ago")
        })
        .await;
        assert_eq!(answer.expect("read"), Some("stored a moment ago".into()));
        assert!(matches!(route, Route::NotOnStandby), "{route:?}");
        // Absent on both: the primary's answer is the 404.
        let (answer, _) = prefer_standby(Some(async { Ok(None) }), Option::is_none, || async {
            Ok::<Option<String>, DbError>(None)
        })
        .await;
        assert_eq!(answer.expect("read"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_silent_standby_is_answered_by_the_primary() {
        let (answer, route) = prefer_standby(
            Some(async { Err(DbError::Unavailable("refused".into())) }),
            Option::is_none,
            || async { found("a") },
        )
        .await;
        assert_eq!(answer.expect("read"), Some("a".into()));
        assert!(matches!(route, Route::StandbyFailed(_)), "{route:?}");
        let silent = std::future::pending::<Result<Option<String>, DbError>>();
        let (answer, route) =
            prefer_standby(Some(silent), Option::is_none, || async { found("b") }).await;
        assert_eq!(answer.expect("read"), Some("b".into()));
        assert!(
            matches!(&route, Route::StandbyFailed(e) if e.to_string().contains("no answer")),
            "{route:?}"
        );
    }

    #[tokio::test]
    async fn without_a_standby_the_primary_answers() {
        let none: Option<std::future::Ready<Result<Option<String>, DbError>>> = None;
        let (answer, route) = prefer_standby(none, Option::is_none, || async { found("a") }).await;
        assert_eq!(answer.expect("read"), Some("a".into()));
        assert!(matches!(route, Route::Primary), "{route:?}");
    }

    #[test]
    fn a_failed_standby_sends_reads_to_the_primary_once_logged() {
        let health = Health::new();
        health.set_reads(Reads::Standby);
        record(&health, &Route::NotOnStandby, true);
        record(&health, &Route::NotOnStandby, false);
        let failed = || Route::StandbyFailed(DbError::Unavailable("gone".into()));
        record(&health, &failed(), true);
        record(&health, &failed(), true);
        let r = health.report();
        assert_eq!(r.reads.from, Reads::StandbyDown);
        assert_eq!((r.reads.found_on_primary, r.reads.standby_failures), (1, 2));
    }

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
