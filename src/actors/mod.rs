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
//! - The CacheActor lives with the rest of the cache in [`crate::cache`]: writers send it
//!   `Put` (its `Recipient`), the HTTP workers reach it through `cache::CacheClient`, and it
//!   asks the DbReader for a miss with `cache::LoadOrder`.
//! - [`DbReader`](db_reader::DbReader) (main System): answers `LoadOrder` (the cache's
//!   misses), `RecentOrders`, `DeadLetterPage`, `ReplayLetters` and `CountOrders` (at most
//!   one count every few seconds); probes the database every second for `/health`. (It deletes nothing: old
//!   dead letters are deleted by `orders-service retention`, run as the owner role.)
//!
//! Reader and writers know each other only as `Recipient`s of the messages in
//! [`messages`], so neither imports the other and a test actor can stand in for either.

/// Mailbox size of the reader and writers for `send().await` callers (the default, 16, would make HTTP
/// handlers queue behind each other); `do_send` is not bounded by it.
const MAILBOX: usize = 1 << 16;

pub mod db_reader;
pub mod kafka_reader;
pub mod messages;
pub mod order_writer;
