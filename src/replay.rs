//! Dead-letter replay: each selected dead letter's original payload goes through today's
//! validation and write path again. It is stored, found a duplicate (or a conflict), or stays
//! rejected with today's reason; the outcome is recorded in `dead_letter_replays`, the dead
//! letter itself is kept unchanged as history.
//!
//! Replaying twice changes nothing: a letter settled by a replay (`stored`, `duplicate`,
//! `conflict`) is not selected again, and a letter still rejected for the same reason gets no
//! second record. Run from `orders-service replay` or `POST /dead-letters/replay` (admin).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;

use crate::db::dead_letters::{self, LetterFilter, NewReplay, ReplayCandidate};
use crate::db::{DbError, queries};
use crate::domain::{RejectReason, Rejection, parse_and_validate};
use crate::ingest::{Incoming, Outcome, Position};

/// Dead letters read and written per round trip.
const PAGE: i64 = 200;

/// What a replay did, in total and per letter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub dry_run: bool,
    /// Letters selected (settled ones are never selected).
    pub selected: usize,
    pub stored: usize,
    pub duplicate: usize,
    pub conflict: usize,
    pub rejected: usize,
    /// Still rejected for the same reason as at the last replay: nothing recorded.
    pub unchanged: usize,
    /// Dry run: would be written (stored, or found a duplicate or conflict).
    pub valid: usize,
    /// Per letter, in id order (the first 1,000).
    pub letters: Vec<LetterResult>,
    /// Orders stored by this replay (their JSON), for the caller's cache.
    #[serde(skip)]
    pub stored_orders: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LetterResult {
    pub id: i64,
    pub order_uid: Option<String>,
    /// `stored`, `duplicate`, `conflict`, `rejected`, `unchanged`, or `valid` (dry run).
    pub result: &'static str,
    pub reason: Option<String>,
}

const MAX_LISTED: usize = 1_000;

/// Checks reason names against the service's own (a typo would silently select nothing).
pub fn known_reasons(names: impl IntoIterator<Item = String>) -> Result<Vec<String>, String> {
    names
        .into_iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .map(|name| {
            if RejectReason::ALL.iter().any(|r| r.as_str() == name) {
                Ok(name)
            } else {
                let known: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
                Err(format!(
                    "reason {name:?} is not one of {}",
                    known.join(", ")
                ))
            }
        })
        .collect()
}

/// An RFC 3339 time (`since`, `until`); empty is none.
pub fn parse_time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    raw.filter(|r| !r.is_empty())
        .map(|r| {
            DateTime::parse_from_rfc3339(r)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("{name} must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"))
        })
        .transpose()
}

/// One line: what a replay did.
pub fn describe(s: &Summary) -> String {
    if s.dry_run {
        return format!(
            "dry run: {} selected: {} valid (would be written), {} rejected, {} unchanged",
            s.selected, s.valid, s.rejected, s.unchanged
        );
    }
    format!(
        "replayed {} dead letters: {} stored, {} duplicate, {} conflict, {} rejected, {} unchanged",
        s.selected, s.stored, s.duplicate, s.conflict, s.rejected, s.unchanged
    )
}

/// The result word for a write outcome.
pub fn result_of(outcome: &Outcome) -> (&'static str, Option<&Rejection>) {
    match outcome {
        Outcome::Stored => ("stored", None),
        Outcome::Duplicate => ("duplicate", None),
        Outcome::DeadLettered(r) if r.reason == crate::domain::RejectReason::Conflict => {
            ("conflict", Some(r))
        }
        Outcome::DeadLettered(r) => ("rejected", Some(r)),
    }
}

/// Whether a rejection is the same as the letter's last replay (`rejected:<reason>`).
pub fn unchanged(last_replay: Option<&str>, reason: &str) -> bool {
    last_replay == Some(format!("rejected:{reason}").as_str())
}

/// Replays every dead letter `filter` selects (see the module doc).
pub async fn run(
    conn: &mut AsyncPgConnection,
    filter: &LetterFilter,
    max_payload_bytes: usize,
    dry_run: bool,
) -> Result<Summary, DbError> {
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let mut after = 0;
    loop {
        let page = dead_letters::replay_candidates(conn, filter, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        summary.selected += page.len();
        replay_page(conn, page, max_payload_bytes, dry_run, &mut summary).await?;
    }
    Ok(summary)
}

async fn replay_page(
    conn: &mut AsyncPgConnection,
    page: Vec<ReplayCandidate>,
    max_payload_bytes: usize,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<(), DbError> {
    let mut records = Vec::new();
    // Valid ones, by source topic (the write path stores the topic with the position).
    let mut to_write: BTreeMap<String, Vec<(i64, Incoming)>> = BTreeMap::new();
    for letter in page {
        let verdict = parse_and_validate(&letter.payload, max_payload_bytes);
        let uid = verdict.as_ref().ok().map(|v| v.order.order_uid.to_string());
        match verdict {
            Err(rejection) => {
                let reason = rejection.reason.as_str().to_string();
                let result = if unchanged(letter.last_replay.as_deref(), &reason) {
                    summary.unchanged += 1;
                    "unchanged"
                } else {
                    summary.rejected += 1;
                    if !dry_run {
                        records.push(NewReplay {
                            dead_letter_id: letter.id,
                            result: "rejected",
                            reason: Some(reason.clone()),
                            detail: Some(rejection.detail),
                        });
                    }
                    "rejected"
                };
                listed(summary, letter.id, None, result, Some(reason));
            }
            Ok(_) if dry_run => {
                summary.valid += 1;
                listed(summary, letter.id, uid, "valid", None);
            }
            Ok(valid) => {
                let incoming = Incoming {
                    position: Position {
                        partition: letter.kafka_partition,
                        offset: letter.kafka_offset,
                    },
                    key: letter.message_key,
                    payload: letter.payload,
                    verdict: Ok(valid),
                };
                to_write
                    .entry(letter.topic)
                    .or_default()
                    .push((letter.id, incoming));
            }
        }
    }
    for (topic, letters) in to_write {
        let (ids, batch): (Vec<i64>, Vec<Incoming>) = letters.into_iter().unzip();
        let outcomes = queries::write_batch(conn, &topic, &batch).await?;
        for ((id, incoming), outcome) in ids.into_iter().zip(batch).zip(outcomes) {
            let (result, rejection) = result_of(&outcome);
            match result {
                "stored" => summary.stored += 1,
                "duplicate" => summary.duplicate += 1,
                "conflict" => summary.conflict += 1,
                _ => summary.rejected += 1,
            }
            let uid = incoming.order_uid().map(str::to_string);
            let reason = rejection.map(|r| r.reason.as_str().to_string());
            records.push(NewReplay {
                dead_letter_id: id,
                result,
                reason: reason.clone(),
                detail: rejection.map(|r| r.detail.clone()),
            });
            listed(summary, id, uid, result, reason);
            if let (Outcome::Stored, Ok(valid)) = (&outcome, incoming.verdict) {
                summary
                    .stored_orders
                    .push((valid.order.order_uid.into_string(), valid.json));
            }
        }
    }
    dead_letters::record_replays(conn, &records).await?;
    Ok(())
}

fn listed(
    summary: &mut Summary,
    id: i64,
    order_uid: Option<String>,
    result: &'static str,
    reason: Option<String>,
) {
    if summary.letters.len() < MAX_LISTED {
        summary.letters.push(LetterResult {
            id,
            order_uid,
            result,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_their_recorded_result() {
        assert_eq!(result_of(&Outcome::Stored).0, "stored");
        assert_eq!(result_of(&Outcome::Duplicate).0, "duplicate");
        let conflict = Rejection::new(RejectReason::Conflict, None, "other content");
        assert_eq!(result_of(&Outcome::DeadLettered(conflict)).0, "conflict");
        let invalid = Rejection::new(RejectReason::Invalid, None, "bad phone");
        assert_eq!(result_of(&Outcome::DeadLettered(invalid)).0, "rejected");
    }

    #[test]
    fn a_rejection_for_the_same_reason_as_last_time_is_unchanged() {
        assert!(unchanged(Some("rejected:malformed"), "malformed"));
        assert!(!unchanged(Some("rejected:too_large"), "malformed"));
        assert!(!unchanged(None, "malformed"));
    }
}
