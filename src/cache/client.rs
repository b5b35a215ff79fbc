//! An HTTP worker's side of the CacheActor: the order lookups its handlers start travel to
//! the actor in batches, one `Get` message per batch, one message in flight per worker.
//!
//! Why: a message to the CacheActor and its answer each cross threads, and each crossing
//! wakes the other thread (an eventfd write, an epoll return, a context switch). With wrk on
//! this 2-core VM that hop was about 30 % of a cache hit's cost when every request paid it
//! (`GET /order` through the actor ~54k req/s, a same-size response without it ~81k).
//! Batched, it is paid once per message instead of once per request. A worker keeps one
//! message in flight: the lookups started while it is with the actor go together when it
//! comes back, so messages grow with the load instead of the wake-ups. A lone request still
//! goes at once: the sender is a task on the same worker that runs as soon as the handlers
//! that are ready now have yielded. Misses do not hold a message up: the actor answers them
//! with a channel on which the order follows.
//!
//! One client per worker (built in the `HttpServer` factory), so the queue is a `RefCell`:
//! everything here runs on that worker's thread.
//!
//! The CacheActor lives on the first HTTP worker's thread; if that worker ends before the
//! others (a graceful stop lets an idle worker go first; a crashed worker is restarted
//! without it), lookups go to the DbReader instead: answers keep coming, from the database,
//! and `/health` says `"cache": "gone"`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use actix::{Addr, Recipient};
use tokio::sync::oneshot;

use super::actor::{CacheActor, HostedCache};
use super::entry::CacheCompression;
use super::messages::{Answer, CacheStats, Get, GetCacheStats, LoadOrder, Lookup, Put};
use crate::health::Health;
use crate::metrics::METRICS;

/// The cache as the HTTP side holds it (in its shared state): it makes each worker's
/// [`CacheClient`], starts the actor on the first worker that asks, reads the cache's
/// statistics and hands it the orders a replay stored. The handlers never address the
/// actor themselves.
#[derive(Clone)]
pub struct CacheHandle {
    peers: Peers,
    hosted: Arc<HostedCache>,
    /// The form orders are sent to the cache in (`CACHE_COMPRESSION`).
    compression: CacheCompression,
}

impl CacheHandle {
    pub fn new(peers: Peers, hosted: HostedCache, compression: CacheCompression) -> Self {
        Self {
            peers,
            hosted: Arc::new(hosted),
            compression,
        }
    }

    /// A client for the calling worker (one per worker: see the module doc).
    pub fn client(&self) -> CacheClient {
        CacheClient::new(self.peers.clone())
    }

    /// Starts the actor on this thread if no thread has yet; true if it did. The actor calls
    /// `on_lookup_from_elsewhere` on this thread for each `Get` another thread sends.
    pub fn host_here(&self, on_lookup_from_elsewhere: fn()) -> bool {
        self.hosted.start_here(on_lookup_from_elsewhere)
    }

    /// The cache's statistics; `None` once the actor is gone.
    pub async fn stats(&self) -> Option<CacheStats> {
        self.peers.cache.send(GetCacheStats).await.ok()
    }

    /// Puts an order just stored (by a replay) in the cache, packed here.
    pub fn put(&self, uid: String, json: &[u8]) {
        self.peers.cache.do_send(Put {
            uid,
            json: self.compression.pack(json),
        });
    }
}

pub struct CacheClient {
    peers: Peers,
    queue: Rc<Queue>,
}

/// Where lookups go: the CacheActor, or the DbReader once it is gone.
#[derive(Clone)]
pub struct Peers {
    pub cache: Addr<CacheActor>,
    pub loader: Recipient<LoadOrder>,
    pub health: Arc<Health>,
}

#[derive(Default)]
struct Queue {
    waiting: RefCell<Vec<(String, oneshot::Sender<Answer>)>>,
    /// A sender task exists: scheduled, or waiting for the answer to its message.
    sending: Cell<bool>,
    batches_sent: Cell<u64>,
}

impl CacheClient {
    pub fn new(peers: Peers) -> Self {
        Self {
            peers,
            queue: Rc::default(),
        }
    }

    /// The order's JSON, from the cache or the database.
    pub async fn get(&self, uid: String) -> Lookup {
        let (tx, rx) = oneshot::channel();
        self.queue.waiting.borrow_mut().push((uid, tx));
        if !self.queue.sending.replace(true) {
            actix_web::rt::spawn(send_batches(self.peers.clone(), Rc::clone(&self.queue)));
        }
        let gone = || Lookup::Unavailable;
        match rx.await {
            Ok(Answer::Ready(lookup)) => lookup,
            Ok(Answer::Loading(loading)) => loading.await.unwrap_or_else(|_| gone()),
            Err(_) => gone(),
        }
    }

    /// `Get` messages sent so far by this client.
    pub fn batches_sent(&self) -> u64 {
        self.queue.batches_sent.get()
    }
}

/// Sends everything queued as one message, hands each waiting handler its answer, and
/// repeats with what was queued meanwhile until nothing is left.
async fn send_batches(peers: Peers, queue: Rc<Queue>) {
    loop {
        let (uids, waiters): (Vec<String>, Vec<_>) = queue.waiting.take().into_iter().unzip();
        if uids.is_empty() {
            queue.sending.set(false);
            return;
        }
        if !peers.cache.connected() {
            read_without_cache(&peers, uids, waiters);
            continue;
        }
        queue.batches_sent.set(queue.batches_sent.get() + 1);
        METRICS.cache_lookup_batches.inc();
        // On a mailbox error (the actor stopped just now) the senders are dropped: every
        // waiter answers "unavailable"; the next lookups find it gone and read the database.
        if let Ok(answers) = peers
            .cache
            .send(Get {
                uids,
                from: std::thread::current().id(),
            })
            .await
        {
            for (waiter, answer) in waiters.into_iter().zip(answers) {
                // The handler may have gone (client disconnected): nothing to tell then.
                let _ = waiter.send(answer);
            }
        }
    }
}

/// The CacheActor is gone: each lookup is read from the database by the DbReader.
fn read_without_cache(peers: &Peers, uids: Vec<String>, waiters: Vec<oneshot::Sender<Answer>>) {
    if peers.health.set_cache_gone() {
        log::warn!(
            "the cache actor stopped (the HTTP worker hosting it ended): orders are read from the database"
        );
    }
    for (uid, waiter) in uids.into_iter().zip(waiters) {
        let load = peers.loader.send(LoadOrder { uid: uid.clone() });
        actix_web::rt::spawn(async move {
            let _ = waiter.send(Answer::Ready(Lookup::loaded(&uid, load.await)));
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use actix::prelude::*;
    use actix_web::web::Bytes;

    use super::*;
    use crate::cache::test_support::{Stored, client, without_database};

    fn json_of(uid: &str) -> Bytes {
        Bytes::from(format!("{{\"order_uid\":\"{uid}\"}}"))
    }

    /// Caches `order0` … `order{n-1}`, each with its [`json_of`].
    async fn put_orders(cache: &Addr<CacheActor>, n: usize) {
        for i in 0..n {
            let uid = format!("order{i}");
            let json = json_of(&uid);
            cache.send(Put { uid, json }).await.expect("put");
        }
    }

    #[actix_rt::test]
    async fn lookups_started_together_share_one_message_and_get_their_own_answers() {
        let cache = without_database(1 << 20).start();
        put_orders(&cache, 20).await;
        let client = client(cache);

        let lookups = (0..20).rev().map(|i| client.get(format!("order{i}")));
        let answers = futures::future::join_all(lookups).await;
        for (answer, i) in answers.into_iter().zip((0..20).rev()) {
            match answer {
                Lookup::Hit(json) => assert_eq!(json, json_of(&format!("order{i}"))),
                other => panic!("order{i}: expected a hit, got {other:?}"),
            }
        }
        assert_eq!(client.batches_sent(), 1);

        // A lone lookup goes at once, in a message of its own.
        assert!(matches!(client.get("order3".into()).await, Lookup::Hit(_)));
        assert_eq!(client.batches_sent(), 2);
    }

    #[actix_rt::test]
    async fn lookups_started_while_a_message_is_out_go_together_when_it_returns() {
        let arbiter = actix::Arbiter::new();
        let actor = without_database(1 << 20);
        let cache = CacheActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        put_orders(&cache, 11).await;
        let client = Rc::new(client(cache));

        // Hold the actor's thread so that the first message stays out.
        arbiter.spawn_fn(|| std::thread::sleep(std::time::Duration::from_millis(300)));
        let first = actix_rt::spawn({
            let client = Rc::clone(&client);
            async move { client.get("order0".into()).await }
        });
        while client.batches_sent() == 0 {
            actix_rt::task::yield_now().await;
        }
        // Ten lookups, each started on its own turn of the event loop.
        let mut later = Vec::new();
        for i in 1..11 {
            let client = Rc::clone(&client);
            later.push(actix_rt::spawn(async move {
                client.get(format!("order{i}")).await
            }));
            actix_rt::task::yield_now().await;
        }
        assert!(matches!(first.await.expect("first"), Lookup::Hit(_)));
        for lookup in later {
            assert!(matches!(lookup.await.expect("later"), Lookup::Hit(_)));
        }
        assert_eq!(
            client.batches_sent(),
            2,
            "the ten waited for the first message"
        );
        arbiter.stop();
    }

    #[actix_rt::test]
    async fn a_miss_in_a_batch_does_not_hold_back_the_hits() {
        let cache = without_database(1 << 20).start();
        put_orders(&cache, 1).await;
        let client = client(cache);

        // The hit resolves while the miss is still trying to reach the database.
        let hit = client.get("order0".into());
        let miss = client.get("absent".into());
        futures::pin_mut!(miss);
        let first = futures::future::select(Box::pin(hit), miss).await;
        let futures::future::Either::Left((Lookup::Hit(_), miss)) = first else {
            panic!("the hit should come first");
        };
        // The database is unreachable: the miss is reported as unavailable, not lost.
        assert!(matches!(miss.await, Lookup::Unavailable));
        assert_eq!(client.batches_sent(), 1);
    }

    #[actix_rt::test]
    async fn once_the_cache_is_gone_lookups_read_the_database_and_health_says_so() {
        let arbiter = actix::Arbiter::new();
        let actor = without_database(1 << 20);
        let cache = CacheActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        put_orders(&cache, 1).await;
        arbiter.stop();
        while cache.connected() {
            actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let stored = Stored(HashMap::from([("order0".to_string(), b"{}".to_vec())]));
        let health = Arc::new(Health::new());
        let client = CacheClient::new(Peers {
            cache,
            loader: stored.start().recipient(),
            health: health.clone(),
        });

        let lookup = client.get("order0".into()).await;
        assert!(
            matches!(&lookup, Lookup::Miss(json) if json.as_ref() == b"{}"),
            "{lookup:?}"
        );
        let lookup = client.get("absent".into()).await;
        assert!(matches!(lookup, Lookup::NotFound), "{lookup:?}");
        assert_eq!(
            client.batches_sent(),
            0,
            "nothing was sent to the stopped actor"
        );
        assert_eq!(health.report().cache, "gone");
    }
}
