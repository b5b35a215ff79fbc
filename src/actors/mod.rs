//! The actors, and who talks to whom.
//!
//! - [`KafkaReader`](kafka_reader::KafkaReader) (main System): polls the orders topic;
//!   sends `Write` to an OrderWriter chosen by the message key; receives `Written` (store the
//!   offsets now committable) and `WriterState` (a writer stalled or recovered: pause/resume
//!   its partitions); answers `Shutdown` (drain, final commit) and `GetReaderStats`.
//! - [`OrderWriter`](order_writer::OrderWriter) (one arbiter each): receives `Write`,
//!   validates, makes batches durable (one transaction each; the failure rules are in
//!   `ingest::durable`), publishes dead letters to the DLQ topic, sends `Put` to the
//!   CacheActor and `Written`/`WriterState` back to the reader.
//!
//! Reader and writers know each other only as `Recipient`s of the messages in
//! [`messages`], so neither imports the other and a test actor can stand in for either.
//! - [`CacheActor`](cache_actor::CacheActor) (the first HTTP worker's thread): owns the
//!   cache; answers `Get` from HTTP workers (a batch of lookups, one message in flight per
//!   worker, see `http::cache_client`; reading through to PostgreSQL on a miss by asking the
//!   DbReader, concurrent misses for one id sharing one read, an absent id remembered
//!   briefly), takes `Put` from writers and from the admin replay, and `Warm` pages at
//!   start-up (from [`warm_up`], which reads them on two threads); answers `GetCacheStats`.
//!   It runs on the first HTTP worker's thread; if that worker ends first, the workers read
//!   through the DbReader (`http::cache_client`).
//! - [`DbReader`](db_reader::DbReader) (main System): answers `LoadOrder`, `RecentOrders`,
//!   `DeadLetterPage`, `ReplayLetters` and `CountOrders` (at most one count every few
//!   seconds); probes the database every second for `/health`. (It deletes nothing: old
//!   dead letters are deleted by `orders-service retention`, run as the owner role.)

/// Mailbox size of every actor for `send().await` callers (the default, 16, would make HTTP
/// handlers queue behind each other); `do_send` is not bounded by it.
const MAILBOX: usize = 1 << 16;

pub mod cache_actor;
pub mod db_reader;
pub mod kafka_reader;
pub mod messages;
pub mod order_writer;
pub mod warm_up;
