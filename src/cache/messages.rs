//! What the CacheActor receives, what it answers, and the one message it sends (`LoadOrder`,
//! to whoever reads orders from the database). The answer types live here too, beside the
//! messages that carry them, so the miss policy ([`super::misses`]) and the actor both
//! import them from here and neither imports the other's types.

use actix::prelude::*;
use actix_web::web::Bytes;
use tokio::sync::oneshot;

use crate::db::DbError;

/// HTTP → cache: the orders with these ids, from the cache or the database; one [`Answer`]
/// per id, in the same order.
#[derive(Message)]
#[rtype(result = "Vec<Answer>")]
pub struct Get {
    pub uids: Vec<String>,
    /// The thread that asks (see [`super::HostedCache::start_here`]'s hook).
    pub from: std::thread::ThreadId,
}

#[derive(Debug)]
pub enum Answer {
    Ready(Lookup),
    /// A miss being loaded from the database: its [`Lookup`] arrives on this channel, so the
    /// hits asked for in the same message do not wait for it.
    Loading(oneshot::Receiver<Lookup>),
}

/// Hits and misses carry an entry in the form of [`super::entry`]: `unpack` gives the
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

impl Lookup {
    /// What the loader's answer to a [`LoadOrder`] for `uid` is to the asker. A failure's
    /// cause stays in the log: callers only learn that the order is unavailable.
    pub fn loaded(uid: &str, answer: Result<Loaded, MailboxError>) -> Self {
        let answer = answer
            .unwrap_or_else(|_| Err(DbError::Unavailable("the database reader is gone".into())));
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
}

/// Cache → loader (the DbReader): one stored order's JSON, `None` if there is no such order.
/// The cache's read on a miss, and the HTTP workers' own while the CacheActor is gone.
/// Declared here, by the side that asks: the cache knows its loader only as a
/// `Recipient<LoadOrder>`, so a test actor can stand in for the database.
#[derive(Message)]
#[rtype(result = "Loaded")]
pub struct LoadOrder {
    pub uid: String,
}

/// The loader's answer to a [`LoadOrder`].
pub type Loaded = Result<Option<Vec<u8>>, DbError>;

/// Writer (or the admin replay) → cache: an order just committed, packed by the sender
/// ([`super::entry::CacheCompression::pack`]).
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
