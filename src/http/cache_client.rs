//! An HTTP worker's side of the CacheActor: the order lookups its handlers start in one turn
//! of the worker's event loop travel to the actor as one `Get` message.
//!
//! Why: a message to the CacheActor and its answer each cross threads, and each crossing
//! wakes the other thread (an eventfd write, an epoll return, a context switch). With wrk on
//! this 2-core VM that hop was about 30 % of a cache hit's cost when every request paid it
//! (`GET /order` through the actor ~54k req/s, a same-size response without it ~81k).
//! Batched, it is paid once for all the requests a worker has ready at the same time under
//! load (~10 per message in `scripts/bench-read`), while a lone request still goes at once:
//! the flush is a task on the same worker that runs as soon as the handlers that are ready
//! now have yielded.
//!
//! One client per worker (built in the `HttpServer` factory), so the queue is a `RefCell`:
//! everything here runs on that worker's thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use actix::Addr;
use tokio::sync::oneshot;

use crate::actors::cache_actor::{Answer, CacheActor, Get, Lookup};
use crate::metrics::METRICS;

pub struct CacheClient {
    cache: Addr<CacheActor>,
    queue: Rc<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: RefCell<Vec<(String, oneshot::Sender<Answer>)>>,
    flush_scheduled: Cell<bool>,
    batches_sent: Cell<u64>,
}

impl CacheClient {
    pub fn new(cache: Addr<CacheActor>) -> Self {
        Self {
            cache,
            queue: Rc::default(),
        }
    }

    /// The order's JSON, from the cache or the database.
    pub async fn get(&self, uid: String) -> Lookup {
        let (tx, rx) = oneshot::channel();
        self.queue.waiting.borrow_mut().push((uid, tx));
        if !self.queue.flush_scheduled.replace(true) {
            actix_web::rt::spawn(flush(self.cache.clone(), Rc::clone(&self.queue)));
        }
        let gone = || Lookup::Unavailable("the cache is shutting down".to_string());
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

/// Sends everything queued as one message and hands each waiting handler its answer.
async fn flush(cache: Addr<CacheActor>, queue: Rc<Queue>) {
    queue.flush_scheduled.set(false);
    let (uids, waiters): (Vec<String>, Vec<_>) = queue.waiting.take().into_iter().unzip();
    if uids.is_empty() {
        return;
    }
    queue.batches_sent.set(queue.batches_sent.get() + 1);
    METRICS.cache_lookup_batches.inc();
    // On a mailbox error the senders are dropped: every waiter answers "shutting down".
    if let Ok(answers) = cache.send(Get { uids }).await {
        for (waiter, answer) in waiters.into_iter().zip(answers) {
            // The handler may have gone (client disconnected): nothing to tell then.
            let _ = waiter.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::Actor;
    use actix_web::web::Bytes;
    use diesel_async::AsyncPgConnection;
    use diesel_async::pooled_connection::AsyncDieselConnectionManager;
    use diesel_async::pooled_connection::bb8::Pool;

    use super::*;
    use crate::actors::cache_actor::Put;

    /// A pool that never connects: nothing listens on port 1.
    fn unreachable_pool() -> crate::db::PgPool {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(
            "postgres://nobody:nothing@127.0.0.1:1/none",
        );
        Pool::builder()
            .connection_timeout(std::time::Duration::from_millis(200))
            .build_unchecked(manager)
    }

    fn json_of(uid: &str) -> Bytes {
        Bytes::from(format!("{{\"order_uid\":\"{uid}\"}}"))
    }

    #[actix_rt::test]
    async fn lookups_started_together_share_one_message_and_get_their_own_answers() {
        let cache = CacheActor::new(1 << 20, unreachable_pool()).start();
        for i in 0..20 {
            let uid = format!("order{i}");
            let json = json_of(&uid);
            cache.send(Put { uid, json }).await.expect("put");
        }
        let client = CacheClient::new(cache);

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
    async fn a_miss_in_a_batch_does_not_hold_back_the_hits() {
        let cache = CacheActor::new(1 << 20, unreachable_pool()).start();
        let uid = "cached".to_string();
        let json = json_of(&uid);
        cache.send(Put { uid, json }).await.expect("put");
        let client = CacheClient::new(cache);

        // The hit resolves while the miss is still trying to reach the database.
        let hit = client.get("cached".into());
        let miss = client.get("absent".into());
        futures::pin_mut!(miss);
        let first = futures::future::select(Box::pin(hit), miss).await;
        let futures::future::Either::Left((Lookup::Hit(_), miss)) = first else {
            panic!("the hit should come first");
        };
        // The database is unreachable: the miss is reported as unavailable, not lost.
        assert!(matches!(miss.await, Lookup::Unavailable(_)));
        assert_eq!(client.batches_sent(), 1);
    }

    #[actix_rt::test]
    async fn a_stopped_cache_answers_unavailable() {
        let arbiter = actix::Arbiter::new();
        let pool = unreachable_pool();
        let cache =
            CacheActor::start_in_arbiter(&arbiter.handle(), move |_| CacheActor::new(0, pool));
        arbiter.stop();
        while cache.connected() {
            actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let lookup = CacheClient::new(cache).get("anything".into()).await;
        assert!(matches!(lookup, Lookup::Unavailable(_)), "{lookup:?}");
    }
}
