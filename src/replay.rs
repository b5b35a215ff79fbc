//! Dead-letter replay: each selected dead letter's original payload goes through the current
//! validation and the writers' write path again (`ingest::durable::write_durably` over
//! `ingest::store::RunStore`). It is stored, found a duplicate (or a conflict), or stays
//! rejected with the current reason (`storage` when the database refuses the order itself);
//! the outcome is recorded in `dead_letter_replays`, the dead letter itself is kept unchanged
//! as history.
//!
//! Replaying twice changes nothing: a letter settled by a replay (`stored`, `duplicate`,
//! `conflict`) is not selected again, and a letter still rejected for the same reason gets no
//! second record. Run from `orders-service replay` or `POST /dead-letters/replay` (admin).
//!
//! A run is bounded and atomic:
//! - at most [`Limits::letters`] letters (at most [`MAX_LETTERS_PER_RUN`]); when it stops at
//!   that cap the summary's `next_after` is the cursor to continue from;
//! - one transaction: the orders it stores and the replay records are committed together or
//!   not at all (a letter deleted by retention meanwhile fails the run, with nothing written;
//!   each batch of orders is a savepoint of it, so an order the database refuses is rolled
//!   back alone; a lost connection fails the run);
//! - one run at a time across every instance and the CLI: the transaction first takes a
//!   PostgreSQL advisory lock, and a second run gets [`ReplayError::Busy`] at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;

use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::db::DbError;
use crate::db::dead_letters::{self, LetterFilter, NewReplay, ReplayCandidate};
use crate::domain::{RejectReason, Rejection, parse_and_validate};
use crate::ingest::durable::{WritePolicy, write_durably};
use crate::ingest::store::RunStore;
use crate::ingest::{Incoming, Outcome, Position};

/// Dead letters read and written per round trip.
const PAGE: i64 = 200;

/// Letters one run replays unless told otherwise.
pub const DEFAULT_LETTERS_PER_RUN: usize = 1_000;
/// Most letters one run may replay: one transaction must stay short enough not to hold the
/// orders it inserts (and the lock) for long.
pub const MAX_LETTERS_PER_RUN: usize = 10_000;
/// Most dead-letter ids one request may name.
pub const MAX_IDS: usize = 1_000;

/// The advisory lock key of a replay run (any constant: `orders-replay` as bytes).
pub const LOCK_KEY: i64 = 0x6f72_6465_7273_7270;

/// How much one run does: `letters` at most, from the letter after `after` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub letters: usize,
    /// The `next_after` of a previous run (0: from the start).
    pub after: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            letters: DEFAULT_LETTERS_PER_RUN,
            after: 0,
        }
    }
}

impl Limits {
    /// Checks a caller's limit and cursor; the error names the bound.
    pub fn new(letters: Option<usize>, after: Option<i64>) -> Result<Self, String> {
        let letters = letters.unwrap_or(DEFAULT_LETTERS_PER_RUN);
        if !(1..=MAX_LETTERS_PER_RUN).contains(&letters) {
            return Err(format!(
                "limit must be from 1 to {MAX_LETTERS_PER_RUN} letters per run (continue with the next_after cursor)"
            ));
        }
        let after = after.unwrap_or(0);
        if after < 0 {
            return Err("after must be the next_after of a previous run".into());
        }
        Ok(Self { letters, after })
    }
}

/// Checks the ids a caller names.
pub fn check_ids(ids: &[i64]) -> Result<(), String> {
    if ids.len() > MAX_IDS {
        return Err(format!(
            "at most {MAX_IDS} ids per replay ({} given)",
            ids.len()
        ));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Another run holds the lock.
    #[error("another replay is running (one at a time); try again once it has finished")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ReplayError {
    fn from(e: diesel::result::Error) -> Self {
        ReplayError::Db(e.into())
    }
}

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
    /// Set when the run stopped at its letter limit: more letters may be selected; pass
    /// this as `after` (`--after`) to continue.
    pub next_after: Option<i64>,
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
    let done = if s.dry_run {
        format!(
            "dry run: {} selected: {} valid (would be written), {} rejected, {} unchanged",
            s.selected, s.valid, s.rejected, s.unchanged
        )
    } else {
        format!(
            "replayed {} dead letters: {} stored, {} duplicate, {} conflict, {} rejected, {} unchanged",
            s.selected, s.stored, s.duplicate, s.conflict, s.rejected, s.unchanged
        )
    };
    match s.next_after {
        Some(after) => {
            format!("{done}; stopped at the letter limit: continue with --after {after}")
        }
        None => done,
    }
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

/// Replays the dead letters `filter` selects, within `limits`, in one transaction under the
/// replay lock (see the module doc).
pub async fn run(
    conn: &mut AsyncPgConnection,
    filter: &LetterFilter,
    limits: Limits,
    max_payload_bytes: usize,
    dry_run: bool,
) -> Result<Summary, ReplayError> {
    conn.transaction(async |c| {
        // Like every write transaction: what the caller is told is stored is on disk.
        diesel::sql_query("SET LOCAL synchronous_commit TO on")
            .execute(c)
            .await?;
        if !try_lock(c).await? {
            return Err(ReplayError::Busy);
        }
        run_locked(c, filter, limits, max_payload_bytes, dry_run).await
    })
    .await
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Takes the replay lock for the rest of the transaction (released by its commit or
/// rollback, so a run that fails or is abandoned never leaves it held).
async fn try_lock(conn: &mut AsyncPgConnection) -> Result<bool, diesel::result::Error> {
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

async fn run_locked(
    conn: &mut AsyncPgConnection,
    filter: &LetterFilter,
    limits: Limits,
    max_payload_bytes: usize,
    dry_run: bool,
) -> Result<Summary, ReplayError> {
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let mut after = limits.after;
    while summary.selected < limits.letters {
        let room = (limits.letters - summary.selected).min(PAGE as usize) as i64;
        let page = dead_letters::replay_candidates(conn, filter, after, room).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        summary.selected += page.len();
        replay_page(conn, page, max_payload_bytes, dry_run, &mut summary).await?;
    }
    if summary.selected == limits.letters {
        summary.next_after = Some(after);
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
        // The writers' policy over the run's transaction: a refused order is isolated and
        // kept as a `storage` dead letter (recorded `rejected`), the rest is stored; a lost
        // connection ends the run with nothing written.
        let mut store = RunStore::new(conn, &topic);
        let outcomes =
            write_durably(&mut store, &batch, &WritePolicy::default(), &mut |_| {}).await?;
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
