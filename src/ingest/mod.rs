//! What happens to each message of a writer's batch, as pure functions: which orders to
//! insert, and after the insert, which messages were stored, duplicates or conflicts.
//! [`durable`] holds the retry / split / dead-letter / block policy over a `BatchStore`;
//! [`store`] the transaction that runs these functions around the SQL of `db::queries`, and
//! the stores of the writers and of replay.
//!
//! The rule (README, "Delivery guarantee"): the first content stored for an order_uid wins forever.
//! A later message with the same content is a duplicate (acknowledged, nothing changes); with
//! different content it is a `conflict` and is dead-lettered, never written over the order.

pub mod durable;
pub mod store;

use std::collections::{HashMap, HashSet};

use crate::domain::{RejectReason, Rejection, ValidOrder};

/// A message's place in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// A consumed message after validation, on its way to the database.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub position: Position,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub verdict: Result<ValidOrder, Rejection>,
}

impl Incoming {
    pub fn order_uid(&self) -> Option<&str> {
        self.verdict
            .as_ref()
            .ok()
            .map(|v| v.order.order_uid.as_str())
    }
}

/// Memory one message holds while it is in flight: its raw payload, the parsed order and its
/// canonical JSON (each about the payload's size), plus bookkeeping. The in-flight byte bound
/// (`MAX_IN_FLIGHT_BYTES`) counts this, not the payload alone, so it bounds real memory.
pub fn held_bytes(payload_len: usize) -> usize {
    payload_len.saturating_mul(3).saturating_add(512)
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly stored: its rows are committed.
    Stored,
    /// The same order was already stored with the same content.
    Duplicate,
    /// Kept in `dead_letters` (and sent to the DLQ topic) with this rejection.
    DeadLettered(Rejection),
}

/// Indices of the messages whose order must be inserted: the first valid message of each
/// order_uid in the batch, sorted by uid so concurrent writers lock keys in the same order.
pub fn insert_candidates(batch: &[Incoming]) -> Vec<usize> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (index, incoming) in batch.iter().enumerate() {
        if let Some(uid) = incoming.order_uid() {
            first.entry(uid).or_insert(index);
        }
    }
    let mut candidates: Vec<(&str, usize)> = first.into_iter().collect();
    candidates.sort_unstable();
    candidates.into_iter().map(|(_, index)| index).collect()
}

/// Decides every message's outcome once the insert has run.
///
/// `inserted` holds the uids the insert created; `existing` the content hash of every other
/// candidate uid, read from the table (stored before this batch, or by a concurrent writer).
pub fn decide(
    batch: &[Incoming],
    inserted: &HashSet<String>,
    existing: &HashMap<String, Vec<u8>>,
) -> Vec<Outcome> {
    // The content that owns each uid: the stored one, or this batch's first occurrence.
    let mut winner: HashMap<&str, (&[u8], Option<usize>)> = HashMap::new();
    for (index, incoming) in batch.iter().enumerate() {
        let Ok(valid) = &incoming.verdict else {
            continue;
        };
        let uid = valid.order.order_uid.as_str();
        if winner.contains_key(uid) {
            continue;
        }
        if inserted.contains(uid) {
            winner.insert(uid, (&valid.content_hash[..], Some(index)));
        } else if let Some(hash) = existing.get(uid) {
            winner.insert(uid, (hash.as_slice(), None));
        }
    }
    batch
        .iter()
        .enumerate()
        .map(|(index, incoming)| match &incoming.verdict {
            Err(rejection) => Outcome::DeadLettered(rejection.clone()),
            Ok(valid) => {
                let uid = valid.order.order_uid.as_str();
                match winner.get(uid) {
                    Some((_, Some(first))) if *first == index => Outcome::Stored,
                    Some((hash, _)) if *hash == &valid.content_hash[..] => Outcome::Duplicate,
                    Some(_) => Outcome::DeadLettered(conflict(uid)),
                    // Neither inserted nor found: cannot happen inside one transaction, but
                    // saying "storage" keeps the message rather than pretending it was stored.
                    None => Outcome::DeadLettered(Rejection::new(
                        RejectReason::Storage,
                        Some("order_uid".into()),
                        format!("order {uid} was neither inserted nor found"),
                    )),
                }
            }
        })
        .collect()
}

/// The rejection for a message that would overwrite a stored order with other content.
pub fn conflict(uid: &str) -> Rejection {
    Rejection::new(
        RejectReason::Conflict,
        Some("order_uid".into()),
        format!("order {uid} is already stored with different content; the stored order is kept"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_and_validate;

    fn order(uid: &str, amount_tweak: i64) -> Incoming {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/model.json")).expect("model");
        v["order_uid"] = uid.into();
        v["payment"]["delivery_cost"] = (1500 + amount_tweak).into();
        v["payment"]["amount"] = (1817 + amount_tweak).into();
        let payload = serde_json::to_vec(&v).expect("json");
        Incoming {
            position: Position {
                partition: 0,
                offset: 0,
            },
            key: Some(uid.as_bytes().to_vec()),
            verdict: parse_and_validate(&payload, 65536),
            payload,
        }
    }

    fn bad() -> Incoming {
        Incoming {
            position: Position {
                partition: 0,
                offset: 0,
            },
            key: None,
            payload: b"nope".to_vec(),
            verdict: parse_and_validate(b"nope", 65536),
        }
    }

    fn hash(i: &Incoming) -> Vec<u8> {
        i.verdict.as_ref().expect("valid").content_hash.to_vec()
    }

    #[test]
    fn candidates_are_the_first_occurrence_of_each_uid_sorted_by_uid() {
        let batch = vec![order("b", 0), bad(), order("a", 0), order("b", 1)];
        assert_eq!(insert_candidates(&batch), vec![2, 0]);
    }

    #[test]
    fn a_new_order_is_stored_and_its_repeat_in_the_batch_is_a_duplicate() {
        let batch = vec![order("a", 0), order("a", 0)];
        let inserted = HashSet::from(["a".to_string()]);
        let out = decide(&batch, &inserted, &HashMap::new());
        assert_eq!(out, vec![Outcome::Stored, Outcome::Duplicate]);
    }

    #[test]
    fn a_repeat_with_other_content_in_the_same_batch_is_a_conflict() {
        let batch = vec![order("a", 0), order("a", 5)];
        let inserted = HashSet::from(["a".to_string()]);
        let out = decide(&batch, &inserted, &HashMap::new());
        assert_eq!(out[0], Outcome::Stored);
        assert!(matches!(&out[1], Outcome::DeadLettered(r) if r.reason == RejectReason::Conflict));
    }

    #[test]
    fn an_already_stored_order_wins_over_every_message_of_the_batch() {
        let stored = order("a", 7);
        let batch = vec![order("a", 0), order("a", 7), bad()];
        let existing = HashMap::from([("a".to_string(), hash(&stored))]);
        let out = decide(&batch, &HashSet::new(), &existing);
        assert!(matches!(&out[0], Outcome::DeadLettered(r) if r.reason == RejectReason::Conflict));
        assert_eq!(out[1], Outcome::Duplicate);
        assert!(matches!(&out[2], Outcome::DeadLettered(r) if r.reason == RejectReason::Malformed));
    }
}
