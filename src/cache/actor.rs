//! CacheActor: the only owner of the order cache, a quick_cache bounded by bytes that holds
//! every order as ready-to-send JSON.
//!
//! - `Put` (writers, after their transaction committed): write-through.
//! - `Get` (HTTP workers, several lookups per message: see [`super::client`]): a hit is
//!   answered at once; a miss is read by the loader (`LoadOrder`, answered by the DbReader on
//!   the main System where the pool lives) *without* blocking other lookups, then cached
//!   (read-through), and its answer follows on a channel. What a miss costs the database is
//!   decided by the miss policy, [`super::misses`].
//! - `Warm` (start-up, see [`super::warm_up`]): pages of the newest orders, accepted until
//!   the byte budget is full.
//!
//! `CACHE_MAX_BYTES=0` turns the cache off: every lookup reads the database. Entries are in
//! the form of [`super::entry`]: JSON, or zstd frames with `CACHE_COMPRESSION=zstd`
//! (packed by whoever sends them, read by the HTTP workers: this actor never runs zstd but
//! for the misses it caches).
//!
//! Where it runs: on the thread of the first HTTP worker ([`HostedCache`]). A lookup from that
//! worker is then a message to an actor on its own event loop: no thread is woken, so a lone
//! user's request pays no cross-thread hop (the other workers' lookups cross threads as they
//! would to any other thread, in batches).

use std::sync::Mutex;
use std::time::Instant;

use actix::prelude::*;
use actix_web::web::Bytes;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter, unsync::Cache};

use super::entry::CacheCompression;
use super::messages::{
    Answer, CacheStats, Get, GetCacheStats, LoadOrder, Lookup, Put, Warm, WarmProgress,
};
use super::misses::{MissPlan, Misses};
use crate::metrics::METRICS;

/// Mailbox size for `send().await` callers: every HTTP worker talks to this actor, so its
/// own speed is the limit, not a mailbox (the default, 16, would make handlers queue behind
/// each other); `do_send` is not bounded by it.
const MAILBOX: usize = 1 << 16;

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

pub struct CacheActor {
    cache: Option<OrderCache>,
    /// Reads a missing order (the DbReader, on the main System with the pool).
    loader: Recipient<LoadOrder>,
    misses: Misses,
    /// The form misses are cached in (the other entries arrive packed).
    compression: CacheCompression,
    /// The thread the actor runs on, and what it calls there for a lookup another thread
    /// sent (the host worker's idle polling: lookups from the other workers are requests
    /// arriving at this thread too).
    home: Option<std::thread::ThreadId>,
    on_lookup_from_elsewhere: fn(),
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
            home: None,
            on_lookup_from_elsewhere: || {},
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
            let lookup = Lookup::loaded(&uid, answer);
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

/// A CacheActor whose address exists before the actor runs: messages sent to it wait in its
/// mailbox until [`HostedCache::start_here`] starts it on the calling thread's event loop.
/// This is how the actor comes to live on an HTTP worker, whose thread only exists once the
/// server runs, while the start-up and the writers need its address before.
pub struct HostedCache {
    unstarted: Mutex<Option<(actix::dev::channel::AddressReceiver<CacheActor>, CacheActor)>>,
}

impl HostedCache {
    pub fn new(actor: CacheActor) -> (Addr<CacheActor>, Self) {
        let (tx, rx) = actix::dev::channel::channel(MAILBOX);
        let unstarted = Mutex::new(Some((rx, actor)));
        (Addr::new(tx), Self { unstarted })
    }

    /// Starts the actor on this thread's arbiter if no thread has yet; true if it did. It
    /// calls `on_lookup_from_elsewhere` for each `Get` from another thread.
    pub fn start_here(&self, on_lookup_from_elsewhere: fn()) -> bool {
        let taken = self
            .unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match taken {
            Some((mailbox, mut actor)) => {
                actor.home = Some(std::thread::current().id());
                actor.on_lookup_from_elsewhere = on_lookup_from_elsewhere;
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
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Handler<Get> for CacheActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, msg: Get, ctx: &mut Context<Self>) -> Self::Result {
        if self.home != Some(msg.from) {
            (self.on_lookup_from_elsewhere)();
        }
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
mod tests {
    use std::sync::Arc;

    use tokio::sync::oneshot;

    use super::*;
    use crate::cache::entry::unpack;
    use crate::cache::test_support::{EveryOrder, client, without_database};

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
        let client = client(actor.start());
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
        assert_eq!(unpack(entry).expect("unpacks"), json);
    }

    #[actix_rt::test]
    async fn a_hosted_cache_keeps_what_it_is_sent_until_a_thread_starts_it_once() {
        let (cache, hosted) = HostedCache::new(without_database(1 << 20));
        let hosted = Arc::new(hosted);
        cache.do_send(Put {
            uid: "early".into(),
            json: Bytes::from_static(b"{}"),
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
            let _ = started.send(host.start_here(|| {}));
        });
        assert!(
            on_arbiter.await.expect("the arbiter ran"),
            "the first start"
        );
        assert!(
            !hosted.start_here(|| {}),
            "a second thread does not start another"
        );
        let stats = stats.await.expect("task").expect("answered");
        assert_eq!(stats.entries, 1, "the put sent before the start was kept");
        arbiter.stop();
    }

    /// The host worker's idle polling hears of lookups from the other workers, and only of
    /// those. Fails if the hook is never called (a lone user on another worker waits for the
    /// host to wake) or called for the host's own lookups (it polls after every request).
    #[actix_rt::test]
    async fn lookups_from_other_threads_and_only_those_call_the_hosts_hook() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let (cache, hosted) = HostedCache::new(without_database(1 << 20));
        let arbiter = Arbiter::new();
        let (started, on_arbiter) = oneshot::channel();
        arbiter.spawn_fn(move || {
            let _ = started.send(hosted.start_here(|| {
                CALLS.fetch_add(1, Ordering::SeqCst);
            }));
        });
        assert!(on_arbiter.await.expect("the arbiter ran"));
        let here = std::thread::current().id();
        for _ in 0..3 {
            let answers = cache
                .send(Get {
                    uids: vec!["x".into()],
                    from: here,
                })
                .await
                .expect("answered");
            assert_eq!(answers.len(), 1);
        }
        assert_eq!(CALLS.load(Ordering::SeqCst), 3, "lookups from elsewhere");
        // A lookup sent from the host's own thread.
        let (done, sent) = oneshot::channel();
        let own = cache.clone();
        arbiter.spawn(async move {
            let from = std::thread::current().id();
            let answered = own
                .send(Get {
                    uids: vec!["x".into()],
                    from,
                })
                .await
                .is_ok();
            let _ = done.send(answered);
        });
        assert!(sent.await.expect("the arbiter ran"), "answered");
        assert_eq!(CALLS.load(Ordering::SeqCst), 3, "the host's own lookup");
        arbiter.stop();
    }
}
