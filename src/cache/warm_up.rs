//! The start-up warm-up: the newest orders, read from PostgreSQL a page (an id range) at a
//! time and handed to the CacheActor newest first, until the cache is full or every order is
//! in.
//!
//! Reading a page is mostly this process's work (decoding rows, assembling orders, writing
//! their JSON), not the database's, so pages are read on [`READERS`] threads side by side,
//! each with a connection of its own (opened there, so its driver runs there too). The pages
//! still reach the cache in order, newest first: the cache stops taking them when its byte
//! budget is full, and an older page arriving early must not take a newer one's place.

use actix::prelude::*;
use actix_web::web::Bytes;
use anyhow::Context as _;
use tokio::sync::mpsc;

use super::actor::CacheActor;
use super::entry::CacheCompression;
use super::messages::Warm;
use crate::db::{DbTarget, PgPool, queries};

/// Threads reading pages side by side.
const READERS: usize = 2;
/// Orders per page (an id range of this width).
const PAGE: i64 = 2_000;
/// Pages a reader may have read before the cache takes them.
const AHEAD: usize = 2;

type Page = anyhow::Result<Vec<(String, Bytes)>>;

/// Loads the newest orders into the cache; returns how many were cached.
pub async fn warm_up(
    target: &DbTarget,
    compression: CacheCompression,
    pool: &PgPool,
    cache: &Addr<CacheActor>,
) -> anyhow::Result<usize> {
    let bounds = {
        let mut conn = pool
            .get()
            .await
            .context("Failed to get a database connection for the cache warm-up")?;
        queries::order_id_bounds(&mut conn)
            .await
            .context("Failed to read the order id range for the cache warm-up")?
    };
    let Some((lowest, highest)) = bounds else {
        return Ok(0);
    };
    let pages = page_ranges(lowest, highest, PAGE);
    let readers: Vec<_> = (0..READERS.min(pages.len()))
        .map(|first| {
            let mine: Vec<_> = pages.iter().copied().skip(first).step_by(READERS).collect();
            let (tx, rx) = mpsc::channel(AHEAD);
            let arbiter = Arbiter::new();
            let target = target.clone();
            arbiter.spawn_fn(move || {
                actix::spawn(read_pages(target, compression, mine, tx));
            });
            (arbiter, rx)
        })
        .collect();
    let (arbiters, mut receivers): (Vec<_>, Vec<_>) = readers.into_iter().unzip();
    // Stops the readers' threads however this ends: done, failed, or dropped by a SIGTERM
    // during start-up (readers blocked on a full channel see it closed first).
    let _stop = StopOnDrop(arbiters);
    deliver_in_order(&mut receivers, pages.len(), cache).await
}

struct StopOnDrop(Vec<Arbiter>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for arbiter in &self.0 {
            arbiter.stop();
        }
    }
}

/// The id ranges `(lo, hi]` that cover `lowest..=highest`, `width` ids each, newest first.
fn page_ranges(lowest: i64, highest: i64, width: i64) -> Vec<(i64, i64)> {
    let mut ranges = Vec::new();
    let mut hi = highest;
    while hi >= lowest {
        ranges.push((hi - width, hi));
        hi -= width;
    }
    ranges
}

/// Reads its pages in order and sends each (or the first error) to the coordinator, packed
/// for the cache (compressing here, on the reader's thread).
async fn read_pages(
    target: DbTarget,
    compression: CacheCompression,
    pages: Vec<(i64, i64)>,
    tx: mpsc::Sender<Page>,
) {
    let mut conn = match target.connect().await {
        Ok(conn) => conn,
        Err(e) => {
            let failed = anyhow::Error::new(e).context(format!(
                "Failed to connect to {} for the cache warm-up",
                target.shown()
            ));
            let _ = tx.send(Err(failed)).await;
            return;
        }
    };
    // One serialization buffer for every order; each entry is then packed at its size.
    let mut json = Vec::with_capacity(4096);
    for (lo, hi) in pages {
        let page = queries::orders_in_id_range(&mut conn, lo, hi)
            .await
            .map(|orders| {
                orders
                    .into_iter()
                    .map(|o| {
                        json.clear();
                        o.write_json(&mut json);
                        (o.order_uid.into_string(), compression.pack(&json))
                    })
                    .collect()
            })
            .with_context(|| {
                format!(
                    "Failed to read the orders with ids {lo} < id <= {hi} for the cache warm-up"
                )
            });
        let failed = page.is_err();
        // A closed channel: the cache is full (or the warm-up failed elsewhere).
        if tx.send(page).await.is_err() || failed {
            return;
        }
    }
}

/// Hands the pages to the cache in their global order (page `k` comes from reader
/// `k % readers`) until the cache is full or all `pages` are in; returns the orders cached.
async fn deliver_in_order(
    readers: &mut [mpsc::Receiver<Page>],
    pages: usize,
    cache: &Addr<CacheActor>,
) -> anyhow::Result<usize> {
    let mut cached = 0;
    for k in 0..pages {
        let page = readers[k % readers.len()]
            .recv()
            .await
            .context("a cache warm-up reader stopped")??;
        let progress = cache
            .send(Warm { orders: page })
            .await
            .context("the cache actor is gone")?;
        cached += progress.accepted;
        if progress.full {
            break;
        }
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::messages::{GetCacheStats, Lookup};
    use crate::cache::test_support::{client, without_database};

    #[test]
    fn pages_cover_every_id_once_newest_first() {
        assert_eq!(page_ranges(1, 5, 2), vec![(3, 5), (1, 3), (-1, 1)]);
        assert_eq!(page_ranges(7, 7, 2_000), vec![(-1_993, 7)]);
        assert!(page_ranges(8, 7, 2).is_empty());
        let ranges = page_ranges(13, 1_000, 7);
        let covered: Vec<i64> = ranges
            .iter()
            .flat_map(|&(lo, hi)| (lo + 1..=hi).rev())
            .collect();
        let expected: Vec<i64> = (13..=1_000).rev().collect();
        assert_eq!(&covered[..expected.len()], &expected[..]);
        assert!(covered[expected.len()..].iter().all(|&id| id < 13));
    }

    fn page(first: usize, n: usize) -> Vec<(String, Bytes)> {
        (first..first + n)
            .map(|i| (format!("order{i}"), Bytes::from(vec![b'x'; 100])))
            .collect()
    }

    /// Reader 1 has its pages ready long before reader 0: the cache must still get page 0
    /// first, and, once full, hold pages 0 and 1 (the newest), not 1 and 3.
    #[actix_rt::test]
    async fn pages_reach_the_cache_newest_first_whichever_reader_is_faster() {
        // Room for 21 entries of ~203 bytes (a 7-byte id, 100 bytes of JSON, 96 of overhead):
        // two pages of 10 and one order of the third.
        let cache = without_database(20 * 220).start();
        let (tx0, rx0) = mpsc::channel(AHEAD);
        let (tx1, rx1) = mpsc::channel(AHEAD);
        tx1.send(Ok(page(10, 10))).await.expect("page 1");
        tx1.send(Ok(page(30, 10))).await.expect("page 3");
        actix_rt::spawn(async move {
            actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tx0.send(Ok(page(0, 10))).await;
            let _ = tx0.send(Ok(page(20, 10))).await;
        });
        let mut readers = [rx0, rx1];
        let cached = deliver_in_order(&mut readers, 4, &cache)
            .await
            .expect("warm");
        let stats = cache.send(GetCacheStats).await.expect("stats");
        assert_eq!(stats.evictions, 0, "the warm-up never evicts");
        assert_eq!(cached, stats.entries);
        assert!(cached >= 20, "pages 0 and 1 fit: {cached}");
        let client = client(cache);
        for i in 0..20 {
            let lookup = client.get(format!("order{i}")).await;
            assert!(matches!(lookup, Lookup::Hit(_)), "order{i}: {lookup:?}");
        }
    }

    #[actix_rt::test]
    async fn a_reader_error_fails_the_warm_up_with_its_cause() {
        let cache = without_database(1 << 20).start();
        let (tx, rx) = mpsc::channel(AHEAD);
        tx.send(Err(anyhow::anyhow!("orders 1..=2: connection reset")))
            .await
            .expect("send");
        drop(tx);
        let err = deliver_in_order(&mut [rx], 3, &cache)
            .await
            .expect_err("the reader failed");
        assert!(format!("{err:#}").contains("connection reset"), "{err:#}");
    }
}
