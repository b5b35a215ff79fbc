//! The order cache: everything about it, from the actor that owns it to the bytes it keeps.
//!
//! - [`actor`]: the CacheActor, the only owner of the cache (write-through `Put`, lookups
//!   `Get`, start-up `Warm`, `/stats`), and [`HostedCache`], which starts it on the first
//!   HTTP worker's thread.
//! - [`messages`]: what it receives and answers, and `LoadOrder`, the one message it sends
//!   (to the DbReader, for a miss).
//! - [`misses`]: the miss policy: one read per id however many ask, absent ids remembered
//!   briefly, misses beyond `MAX_MISSES_IN_FLIGHT` shed (a plain struct).
//! - [`client`]: the HTTP workers' side: lookups batched into one message per worker, and
//!   reads from the database once the actor is gone ([`CacheHandle`], [`CacheClient`]).
//! - [`entry`]: the form an order is kept in: its JSON, or zstd (`CACHE_COMPRESSION`).
//! - [`warm_up`]: the start-up warm-up, the newest orders a page at a time.
//!
//! Writers send `Put` to the actor's address; the HTTP side goes through [`CacheHandle`]
//! and never addresses the actor itself.

pub mod actor;
pub mod client;
pub mod entry;
pub mod messages;
pub mod misses;
#[cfg(test)]
mod test_support;
pub mod warm_up;

pub use actor::{CacheActor, HostedCache};
pub use client::{CacheClient, CacheHandle, Peers};
pub use entry::{CacheCompression, unpack};
pub use messages::{CacheStats, LoadOrder, Lookup, Put};
pub use warm_up::warm_up;
