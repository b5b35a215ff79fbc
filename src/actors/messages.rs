//! The messages between the KafkaReader and the OrderWriters. They live here, not beside
//! either actor, so the two never import each other: each holds the other as a `Recipient`
//! of these messages, and a test actor can stand in for either side.

use actix::prelude::*;

use crate::ingest::Position;
use crate::ingest::durable::Condition;

/// A consumed Kafka message, as the reader hands it over.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Kafka timestamp (ms since the epoch), when the message has one: for the lag in seconds.
    pub timestamp_ms: Option<i64>,
}

/// Reader → writer: make this message durable. `epoch` is the reader's assignment generation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write {
    pub epoch: u64,
    pub message: RawMessage,
}

/// Writer → reader: these messages are durable (stored, duplicate or dead-lettered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Written {
    pub epoch: u64,
    pub positions: Vec<Position>,
    /// Bytes the reader counted for those messages (for the in-flight byte bound).
    pub bytes: usize,
}

/// Writer → reader: this writer cannot make progress (`Some`), or can again (`None`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct WriterState {
    pub writer: usize,
    pub condition: Option<Condition>,
}
