//! CacheActor: the only owner of the order cache, a quick_cache bounded by bytes that holds
//! every order as ready-to-send JSON.
//!
//! - `Put` (writers, after their transaction committed): write-through.
//! - `Get` (HTTP workers, several lookups per message: see [`crate::http::cache_client`]): a
//!   hit is answered at once; a miss is read by the DbReader (`LoadOrder`, on the main
//!   System where the pool lives) *without* blocking other lookups, then cached
//!   (read-through), and its answer follows on a channel. Misses are cheap to ask for but
//!   not to answer, so [`Misses`] keeps a flood of them off the database: concurrent misses
//!   for one id share one read, and an id just found absent is answered 404 for
//!   [`ABSENT_FOR`] without a read (forgotten as soon as the order is written here).
//! - `Warm` (start-up, see [`super::warm_up`]): pages of the newest orders, accepted until
//!   the byte budget is full.
//!
//! `CACHE_MAX_BYTES=0` turns the cache off: every lookup reads the database. Entries are in
//! the form of [`crate::cache_entry`]: JSON, or zstd frames with `CACHE_COMPRESSION=zstd`
//! (packed by whoever sends them, read by the HTTP workers: this actor never runs zstd but
//! for the misses it caches).
//!
//! Where it runs: on the thread of the first HTTP worker ([`HostedCache`]). A lookup from that
//! worker is then a message to an actor on its own event loop: no thread is woken, so a lone
//! user's request pays no cross-thread hop (the other workers' lookups cross threads as they
//! would to any other thread, in batches).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Bytes;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter, unsync::Cache};
use tokio::sync::oneshot;

use super::db_reader::LoadOrder;
use crate::cache_entry::CacheCompression;
use crate::db::DbError;
use crate::metrics::METRICS;

/// Bytes counted per entry on top of key and JSON: the entry, the `Bytes` header, the
/// table slot. An estimate, so the byte bound tracks real memory.
const ENTRY_OVERHEAD: u64 = 96;

#[derive(Clone, Copy)]
struct OrderWeight;

impl Weighter<String, Bytes> for OrderWeight {
    fn weight(&self, key: &String, val: &Bytes) -> u64 {
        key.len() as u64 + val.len() as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Clone, Copy, Default)]
struct CountEvictions;

impl Lifecycle<String, Bytes> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: String, _: Bytes) {
        METRICS.cache_evictions.inc();
    }
}

type OrderCache = Cache<String, Bytes, OrderWeight, DefaultHashBuilder, CountEvictions>;

/// HTTP → cache: the orders with these ids, from the cache or the database; one [`Answer`]
/// per id, in the same order.
#[derive(Message)]
#[rtype(result = "Vec<Answer>")]
pub struct Get {
    pub uids: Vec<String>,
}

#[derive(Debug)]
pub enum Answer {
    Ready(Lookup),
    /// A miss being loaded from the database: its [`Lookup`] arrives on this channel, so the
    /// hits asked for in the same message do not wait for it.
    Loading(oneshot::Receiver<Lookup>),
}

/// Hits and misses carry an entry in the form of [`crate::cache_entry`]: `unpack` gives the
/// JSON.
#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Bytes),
    /// Loaded from the database (and now cached): JSON.
    Miss(Bytes),
    NotFound,
    /// The database cannot answer (the cause is logged, not returned).
    Unavailable,
    /// Too many misses are being read already (`MAX_MISSES_IN_FLIGHT`): shed, not queued,
    /// so a flood of unknown ids cannot grow a queue in front of the database.
    Busy,
}

/// Writer → cache: an order just committed, packed by the sender
/// ([`CacheCompression::pack`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Put {
    pub uid: String,
    pub json: Bytes,
}

/// Start-up → cache: a page of the newest orders, newest first, packed.
#[derive(Message)]
#[rtype(result = "WarmProgress")]
pub struct Warm {
    pub orders: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Copy, MessageResponse)]
pub struct WarmProgress {
    pub accepted: usize,
    /// The byte budget is reached: stop sending pages.
    pub full: bool,
}

/// `/stats` → cache.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

#[derive(Debug, Clone, Copy, MessageResponse, serde::Serialize)]
pub struct CacheStats {
    /// `CACHE_COMPRESSION`: `off` or `zstd`.
    pub compression: &'static str,
    pub entries: usize,
    pub bytes: u64,
    pub capacity_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// How long an id found absent is answered 404 without asking the database again. Short: an
/// order written by another instance is found after at most this long.
pub const ABSENT_FOR: Duration = Duration::from_secs(2);
/// Most ids remembered as absent (a bounded list: a scan of random ids cannot grow it).
const ABSENT_MAX: usize = 100_000;

/// The misses being loaded and the ids recently found absent.
pub struct Misses {
    loading: HashMap<String, Loading>,
    absent: Cache<String, Instant>,
    /// Most ids read at once; a miss beyond it is shed (`MAX_MISSES_IN_FLIGHT`).
    max_loading: usize,
}

#[derive(Default)]
struct Loading {
    waiters: Vec<oneshot::Sender<Lookup>>,
    /// The order was written while it was being read: "not found" may be stale.
    written: bool,
}

/// What to do with a miss.
#[derive(Debug)]
pub enum MissPlan {
    /// Found absent less than [`ABSENT_FOR`] ago: 404 at once.
    Absent,
    /// Already being read: the answer comes on this channel.
    Join(oneshot::Receiver<Lookup>),
    /// Read it; the answer comes on this channel once [`Misses::finish`] is called.
    Load(oneshot::Receiver<Lookup>),
    /// As many ids as allowed are being read: answer busy at once.
    Shed,
}

impl Misses {
    pub fn new(max_loading: usize) -> Self {
        Self {
            loading: HashMap::new(),
            absent: Cache::new(ABSENT_MAX),
            max_loading,
        }
    }

    pub fn plan(&mut self, uid: &str, now: Instant) -> MissPlan {
        if let Some(&since) = self.absent.get(uid) {
            if now.duration_since(since) < ABSENT_FOR {
                return MissPlan::Absent;
            }
            self.absent.remove(uid);
        }
        let full = self.loading.len() >= self.max_loading;
        let (tx, rx) = oneshot::channel();
        match self.loading.get_mut(uid) {
            Some(loading) => {
                loading.waiters.push(tx);
                MissPlan::Join(rx)
            }
            None if full => MissPlan::Shed,
            None => {
                let mut loading = Loading::default();
                loading.waiters.push(tx);
                self.loading.insert(uid.to_string(), loading);
                MissPlan::Load(rx)
            }
        }
    }

    /// The order was just written: it is not absent any more.
    pub fn written(&mut self, uid: &str) {
        self.absent.remove(uid);
        if let Some(loading) = self.loading.get_mut(uid) {
            loading.written = true;
        }
    }

    /// A read finished: every caller waiting for it gets `lookup`; "not found" is remembered
    /// unless the order was written meanwhile.
    pub fn finish(&mut self, uid: &str, lookup: Lookup, now: Instant) {
        let Some(loading) = self.loading.remove(uid) else {
            return;
        };
        if matches!(lookup, Lookup::NotFound) && !loading.written {
            self.absent.insert(uid.to_string(), now);
        }
        for waiter in loading.waiters {
            // The asker may have gone (client disconnected): nothing to tell then.
            let _ = waiter.send(lookup.clone());
        }
    }
}

pub struct CacheActor {
    cache: Option<OrderCache>,
    /// Reads a missing order (the DbReader, on the main System with the pool).
    loader: Recipient<LoadOrder>,
    misses: Misses,
    /// The form misses are cached in (the other entries arrive packed).
    compression: CacheCompression,
}

impl CacheActor {
    pub fn new(
        max_bytes: u64,
        compression: CacheCompression,
        max_misses_in_flight: usize,
        loader: Recipient<LoadOrder>,
    ) -> Self {
        let cache = (max_bytes > 0).then(|| {
            let estimated_items = (max_bytes / 1024).clamp(16, 1 << 20) as usize;
            Cache::with(
                estimated_items,
                max_bytes,
                OrderWeight,
                DefaultHashBuilder::default(),
                CountEvictions,
            )
        });
        Self {
            cache,
            loader,
            misses: Misses::new(max_misses_in_flight),
            compression,
        }
    }

    fn lookup(&mut self, uid: String, ctx: &mut Context<Self>) -> Answer {
        if let Some(json) = self.cache.as_ref().and_then(|c| c.get(&uid)) {
            METRICS.cache_hits.inc();
            return Answer::Ready(Lookup::Hit(json.clone()));
        }
        METRICS.cache_misses.inc();
        let rx = match self.misses.plan(&uid, Instant::now()) {
            MissPlan::Absent => {
                METRICS.cache_absent_hits.inc();
                return Answer::Ready(Lookup::NotFound);
            }
            MissPlan::Join(rx) => return Answer::Loading(rx),
            MissPlan::Shed => {
                METRICS.cache_misses_shed.inc();
                return Answer::Ready(Lookup::Busy);
            }
            MissPlan::Load(rx) => rx,
        };
        METRICS.cache_db_reads.inc();
        let load = self.loader.send(LoadOrder { uid: uid.clone() });
        ctx.spawn(load.into_actor(self).map(move |answer, act, _| {
            let lookup = loaded(&uid, answer);
            if let Lookup::Miss(json) = &lookup {
                let entry = act.compression.pack_shared(json);
                act.insert(uid.clone(), entry);
            }
            act.misses.finish(&uid, lookup, Instant::now());
        }));
        Answer::Loading(rx)
    }

    fn insert(&mut self, uid: String, json: Bytes) {
        if let Some(cache) = &mut self.cache {
            cache.insert(uid, json);
            METRICS.cache_entries.set(cache.len() as i64);
            METRICS.cache_bytes.set(cache.weight() as i64);
        }
    }
}

/// What the DbReader's answer to a `LoadOrder` for `uid` is to the asker. A failure's cause
/// stays in the log: callers only learn that the order is unavailable.
pub fn loaded(uid: &str, answer: Result<Result<Option<Vec<u8>>, DbError>, MailboxError>) -> Lookup {
    let answer =
        answer.unwrap_or_else(|_| Err(DbError::Unavailable("the database reader is gone".into())));
    match answer {
        // An exact-size copy: without compression the cache keeps this very allocation.
        Ok(Some(json)) => Lookup::Miss(Bytes::copy_from_slice(&json)),
        Ok(None) => Lookup::NotFound,
        Err(e) => {
            crate::logging::request_failure(log::Level::Warn, || {
                format!("loading order {uid} failed: {e}")
            });
            Lookup::Unavailable
        }
    }
}

/// A CacheActor whose address exists before the actor runs: messages sent to it wait in its
/// mailbox until [`HostedCache::start_here`] starts it on the calling thread's event loop.
/// This is how the actor comes to live on an HTTP worker, whose thread only exists once the
/// server runs, while the start-up and the writers need its address before.
pub struct HostedCache {
    unstarted: Mutex<Option<(actix::dev::channel::AddressReceiver<CacheActor>, CacheActor)>>,
}

impl HostedCache {
    pub fn new(actor: CacheActor) -> (Addr<CacheActor>, Self) {
        let (tx, rx) = actix::dev::channel::channel(super::MAILBOX);
        let unstarted = Mutex::new(Some((rx, actor)));
        (Addr::new(tx), Self { unstarted })
    }

    /// Starts the actor on this thread's arbiter if no thread has yet; true if it did.
    pub fn start_here(&self) -> bool {
        let taken = self
            .unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match taken {
            Some((mailbox, actor)) => {
                Context::with_receiver(mailbox).run(actor);
                true
            }
            None => false,
        }
    }
}

impl Actor for CacheActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Every HTTP worker talks to this actor; its own speed is the limit, not a mailbox.
        ctx.set_mailbox_capacity(super::MAILBOX);
    }
}

impl Handler<Get> for CacheActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, msg: Get, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(
            msg.uids
                .into_iter()
                .map(|uid| self.lookup(uid, ctx))
                .collect(),
        )
    }
}

impl Handler<Put> for CacheActor {
    type Result = ();

    fn handle(&mut self, msg: Put, _: &mut Context<Self>) {
        self.misses.written(&msg.uid);
        self.insert(msg.uid, msg.json);
    }
}

impl Handler<Warm> for CacheActor {
    type Result = WarmProgress;

    fn handle(&mut self, msg: Warm, _: &mut Context<Self>) -> WarmProgress {
        let Some(cache) = &self.cache else {
            return WarmProgress {
                accepted: 0,
                full: true,
            };
        };
        let capacity = cache.capacity();
        let mut used = cache.weight();
        let mut accepted = 0;
        for (uid, json) in msg.orders {
            let weight = OrderWeight.weight(&uid, &json);
            // Stop before the cache would evict: older orders must not push newer ones out.
            if used + weight > capacity {
                return WarmProgress {
                    accepted,
                    full: true,
                };
            }
            used += weight;
            self.insert(uid, json);
            accepted += 1;
        }
        WarmProgress {
            accepted,
            full: false,
        }
    }
}

impl Handler<GetCacheStats> for CacheActor {
    type Result = CacheStats;

    fn handle(&mut self, _: GetCacheStats, _: &mut Context<Self>) -> CacheStats {
        CacheStats {
            compression: self.compression.as_str(),
            entries: self.cache.as_ref().map_or(0, |c| c.len()),
            bytes: self.cache.as_ref().map_or(0, |c| c.weight()),
            capacity_bytes: self.cache.as_ref().map_or(0, |c| c.capacity()),
            hits: METRICS.cache_hits.get(),
            misses: METRICS.cache_misses.get(),
            evictions: METRICS.cache_evictions.get(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// Stands in for the DbReader when the database is down: every read fails after 100 ms.
    pub(crate) struct NoDatabase;

    impl Actor for NoDatabase {
        type Context = Context<Self>;
    }

    impl Handler<LoadOrder> for NoDatabase {
        type Result = ResponseFuture<Result<Option<Vec<u8>>, DbError>>;

        fn handle(&mut self, _: LoadOrder, _: &mut Context<Self>) -> Self::Result {
            Box::pin(async {
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                Err(DbError::Unavailable("no database in this test".into()))
            })
        }
    }

    /// A cache of `max_bytes` keeping plain JSON, whose database is down.
    pub(crate) fn without_database(max_bytes: u64) -> CacheActor {
        CacheActor::new(
            max_bytes,
            CacheCompression::Off,
            64,
            NoDatabase.start().recipient(),
        )
    }

    /// Stands in for the DbReader: every order exists, with items that compress well.
    struct EveryOrder;

    impl EveryOrder {
        fn json(uid: &str) -> Vec<u8> {
            let item = r#"{"chrt_id":9934930,"track_number":"WBILMTESTTRACK","price":453}"#;
            format!(r#"{{"order_uid":"{uid}","items":[{item},{item},{item}]}}"#).into_bytes()
        }
    }

    impl Actor for EveryOrder {
        type Context = Context<Self>;
    }

    impl Handler<LoadOrder> for EveryOrder {
        type Result = Result<Option<Vec<u8>>, DbError>;

        fn handle(&mut self, msg: LoadOrder, _: &mut Context<Self>) -> Self::Result {
            Ok(Some(Self::json(&msg.uid)))
        }
    }

    /// Fails if a miss is answered compressed, or cached as plain JSON under
    /// `CACHE_COMPRESSION=zstd` (the writers and the warm-up pack theirs; misses are packed
    /// here).
    #[actix_rt::test]
    async fn a_miss_is_answered_as_json_and_cached_compressed() {
        let actor = CacheActor::new(
            1 << 20,
            CacheCompression::Zstd,
            64,
            EveryOrder.start().recipient(),
        );
        let client = crate::http::cache_client::tests::client(actor.start());
        let Lookup::Miss(json) = client.get("a".into()).await else {
            panic!("the first lookup reads the database");
        };
        assert_eq!(json, EveryOrder::json("a"));
        let Lookup::Hit(entry) = client.get("a".into()).await else {
            panic!("the second is a hit");
        };
        assert!(
            entry.len() < json.len(),
            "cached compressed: {} bytes from {}",
            entry.len(),
            json.len()
        );
        assert_eq!(crate::cache_entry::unpack(entry).expect("unpacks"), json);
    }

    #[actix_rt::test]
    async fn a_hosted_cache_keeps_what_it_is_sent_until_a_thread_starts_it_once() {
        let (cache, hosted) = HostedCache::new(without_database(1 << 20));
        let hosted = Arc::new(hosted);
        cache.do_send(Put {
            uid: "early".into(),
            json: json(),
        });
        let stats = actix_rt::spawn(cache.send(GetCacheStats));
        for _ in 0..10 {
            actix_rt::task::yield_now().await;
        }
        assert!(
            !stats.is_finished(),
            "nothing answers before the actor runs"
        );

        let arbiter = Arbiter::new();
        let (started, on_arbiter) = oneshot::channel();
        let host = Arc::clone(&hosted);
        arbiter.spawn_fn(move || {
            let _ = started.send(host.start_here());
        });
        assert!(
            on_arbiter.await.expect("the arbiter ran"),
            "the first start"
        );
        assert!(
            !hosted.start_here(),
            "a second thread does not start another"
        );
        let stats = stats.await.expect("task").expect("answered");
        assert_eq!(stats.entries, 1, "the put sent before the start was kept");
        arbiter.stop();
    }

    fn json() -> Bytes {
        Bytes::from_static(b"{}")
    }

    #[test]
    fn concurrent_misses_for_one_id_share_one_read() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        let MissPlan::Load(mut first) = misses.plan("a", now) else {
            panic!("the first miss reads");
        };
        let MissPlan::Join(mut second) = misses.plan("a", now) else {
            panic!("the second joins");
        };
        assert!(
            matches!(misses.plan("b", now), MissPlan::Load(_)),
            "another id reads"
        );
        misses.finish("a", Lookup::Miss(json()), now);
        assert!(matches!(first.try_recv(), Ok(Lookup::Miss(_))));
        assert!(matches!(second.try_recv(), Ok(Lookup::Miss(_))));
        assert!(
            matches!(misses.plan("a", now), MissPlan::Load(_)),
            "a new read after it"
        );
    }

    #[test]
    fn an_absent_id_is_remembered_briefly_and_forgotten_when_written() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("x", now), MissPlan::Load(_)));
        misses.finish("x", Lookup::NotFound, now);
        assert!(matches!(
            misses.plan("x", now + Duration::from_millis(500)),
            MissPlan::Absent
        ));
        assert!(
            matches!(misses.plan("x", now + ABSENT_FOR), MissPlan::Load(_)),
            "asked again once the time is over"
        );
        misses.finish("x", Lookup::NotFound, now + ABSENT_FOR);
        misses.written("x");
        assert!(matches!(
            misses.plan("x", now + ABSENT_FOR),
            MissPlan::Load(_)
        ));
    }

    #[test]
    fn a_not_found_that_raced_a_write_is_not_remembered() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("y", now), MissPlan::Load(_)));
        misses.written("y");
        misses.finish("y", Lookup::NotFound, now);
        assert!(matches!(misses.plan("y", now), MissPlan::Load(_)));
    }

    #[test]
    fn misses_beyond_the_bound_are_shed_and_joining_one_in_progress_is_not() {
        let mut misses = Misses::new(2);
        let now = Instant::now();
        assert!(matches!(misses.plan("a", now), MissPlan::Load(_)));
        assert!(matches!(misses.plan("b", now), MissPlan::Load(_)));
        assert!(matches!(misses.plan("c", now), MissPlan::Shed));
        // A read already in progress costs nothing more to join.
        assert!(matches!(misses.plan("a", now), MissPlan::Join(_)));
        misses.finish("a", Lookup::Miss(json()), now);
        assert!(
            matches!(misses.plan("c", now), MissPlan::Load(_)),
            "room again"
        );
    }

    #[test]
    fn failures_are_not_remembered() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("z", now), MissPlan::Load(_)));
        misses.finish("z", Lookup::Unavailable, now);
        assert!(matches!(misses.plan("z", now), MissPlan::Load(_)));
    }
}
