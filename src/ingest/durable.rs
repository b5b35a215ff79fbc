//! How a writer makes a batch durable, whatever the database answers: the retry, split and
//! give-up rules, generic over a [`BatchStore`] so they are unit-tested without PostgreSQL.
//!
//! Guarantees and their limits:
//! - [`write_durably`] returns only when every message of the batch is durable: stored, a
//!   duplicate of a stored order, or in `dead_letters`. It never returns "done" for a message
//!   that is durable nowhere; while it cannot make progress it says why through the
//!   [`Condition`] callback (the writer turns that into `/health` and a paused consumer).
//! - No answer from the database (cannot connect, connection lost) is retried with capped
//!   backoff, forever, on the same batch: nothing is dead-lettered because the database is
//!   down.
//! - An error the database *answers* with (a constraint, a trigger, a data exception, a
//!   deadlock…) is retried a few times while it repeats identically, and the batch is then
//!   split in halves, so the rows it refuses are isolated in log2(n) steps and the good orders
//!   around them are stored. A timed-out batch is split at once (smaller is faster).
//! - A lone message the database keeps refusing becomes a `storage` dead letter. If the
//!   dead letter is refused too ("double refusal"), the writer blocks on it, retrying the
//!   order and then its dead letter with backoff, until one of them is accepted.
//!
//! - A store that writes into something it can lose (the replay's one transaction per run)
//!   says so with [`StoreError::Lost`]: nothing can be retried then, and [`write_durably`]
//!   returns that error. The writers' store cannot lose anything (`Lost = Infallible`), so
//!   for them `write_durably` cannot fail.
//!
//! Errors are told apart by *whether the database answered*, not by their text, so a
//! translated server (`lc_messages`) or an operator's own trigger or constraint is handled
//! the same way.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use crate::domain::{RejectReason, Rejection};
use crate::ingest::{Incoming, Outcome};

/// Why one write attempt failed, sorted by what the policy does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError<L = Infallible> {
    /// No answer: cannot connect, connection lost, server shutting down. Retry, forever.
    Unavailable(String),
    /// The database answered with an error for this batch. It may be the data (retrying
    /// will not help) or a transient conflict (retrying will): repeated, the batch is split.
    Refused(String),
    /// The write took longer than its timeout: the batch is split at once.
    TimedOut(String),
    /// The store cannot write any more (the transaction it writes into is gone): stop.
    Lost(L),
}

/// Writes one batch in one transaction: all of it, or nothing.
pub trait BatchStore {
    /// Why the store can no longer write, for a store that can lose what it writes into;
    /// `Infallible` for a store that can always try again.
    type Lost;

    fn write(
        &mut self,
        batch: &[Incoming],
    ) -> impl Future<Output = Result<Vec<Outcome>, StoreError<Self::Lost>>>;
}

/// What keeps a writer from making progress, reported while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The database does not answer.
    Unavailable,
    /// The database refuses an order and its dead letter too: this message blocks the writer.
    Blocked,
}

/// The rules' settings.
#[derive(Debug, Clone)]
pub struct WritePolicy {
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Identical refusals in a row before a batch is split (or a lone message dead-lettered).
    pub refusals_before_split: u32,
}

impl Default for WritePolicy {
    fn default() -> Self {
        Self {
            max_backoff: Duration::from_secs(2),
            refusals_before_split: 3,
        }
    }
}

/// Capped exponential backoff: 100 ms, 200 ms, … up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100).min(max),
            max,
        }
    }

    /// The delay to wait now; the following one doubles, up to the cap.
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}

/// What became of one attempt at a range of the batch.
enum RangeResult<L> {
    Written(Vec<Outcome>),
    /// Refused repeatedly (or timed out) with more than one message: write the halves.
    Split,
    /// A lone message refused repeatedly, with the last error.
    Refused(String),
    /// The store can no longer write.
    Lost(L),
}

/// Reports condition changes once each (not once per attempt).
struct Reporter<'a, F: FnMut(Option<Condition>)> {
    current: Option<Condition>,
    report: &'a mut F,
}

impl<F: FnMut(Option<Condition>)> Reporter<'_, F> {
    fn set(&mut self, condition: Option<Condition>) {
        if self.current != condition {
            self.current = condition.clone();
            (self.report)(condition);
        }
    }
}

/// Writes `batch` until every message is durable; returns each message's outcome in batch
/// order, or the store's error once it has lost what it writes into (nothing of the batch
/// is durable then: the caller's transaction is gone). `report` is called with
/// `Some(condition)` when the writer stops making progress and with `None` when it makes
/// progress again.
pub async fn write_durably<S: BatchStore>(
    store: &mut S,
    batch: &[Incoming],
    policy: &WritePolicy,
    report: &mut impl FnMut(Option<Condition>),
) -> Result<Vec<Outcome>, S::Lost> {
    let mut reporter = Reporter {
        current: None,
        report,
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    // Ranges still to write; the first half is popped first, so outcomes come in order.
    let mut todo = Vec::new();
    todo.push(0..batch.len());
    while let Some(range) = todo.pop() {
        if range.is_empty() {
            continue;
        }
        match write_range(store, &batch[range.clone()], policy, &mut reporter).await {
            RangeResult::Written(written) => {
                for (slot, outcome) in outcomes[range].iter_mut().zip(written) {
                    *slot = Some(outcome);
                }
            }
            RangeResult::Split => {
                let mid = range.start + range.len() / 2;
                todo.push(mid..range.end);
                todo.push(range.start..mid);
            }
            RangeResult::Refused(error) => {
                let outcome =
                    refuse_one(store, &batch[range.start], &error, policy, &mut reporter).await?;
                outcomes[range.start] = Some(outcome);
            }
            RangeResult::Lost(lost) => return Err(lost),
        }
    }
    reporter.set(None);
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| unreachable!("every range is written before returning")))
        .collect())
}

async fn write_range<S: BatchStore, F: FnMut(Option<Condition>)>(
    store: &mut S,
    messages: &[Incoming],
    policy: &WritePolicy,
    reporter: &mut Reporter<'_, F>,
) -> RangeResult<S::Lost> {
    let mut backoff = Backoff::new(policy.max_backoff);
    let mut last_refusal: Option<String> = None;
    let mut refusals = 0;
    loop {
        match store.write(messages).await {
            Ok(outcomes) => {
                if reporter.current == Some(Condition::Unavailable) {
                    reporter.set(None);
                }
                return RangeResult::Written(outcomes);
            }
            Err(StoreError::Lost(lost)) => return RangeResult::Lost(lost),
            Err(StoreError::Unavailable(reason)) => {
                log::warn!(
                    "database unavailable ({reason}); retrying {} messages",
                    messages.len()
                );
                reporter.set(Some(Condition::Unavailable));
                // A refusal only counts when it repeats without an outage in between.
                last_refusal = None;
                refusals = 0;
            }
            Err(StoreError::TimedOut(reason)) if messages.len() > 1 => {
                log::warn!(
                    "a batch of {} timed out ({reason}): writing it in halves",
                    messages.len()
                );
                return RangeResult::Split;
            }
            Err(StoreError::Refused(reason) | StoreError::TimedOut(reason)) => {
                if last_refusal.as_deref() == Some(reason.as_str()) {
                    refusals += 1;
                } else {
                    last_refusal = Some(reason.clone());
                    refusals = 1;
                }
                if refusals >= policy.refusals_before_split {
                    if messages.len() > 1 {
                        log::warn!(
                            "the database refused a batch of {} {refusals} times ({reason}): writing it in halves",
                            messages.len()
                        );
                        return RangeResult::Split;
                    }
                    return RangeResult::Refused(reason);
                }
            }
        }
        tokio::time::sleep(backoff.step()).await;
    }
}

/// The rejection that records a message the database refused on its own.
pub fn storage_rejection(message: &Incoming, error: &str) -> Rejection {
    const MAX_DETAIL: usize = 500;
    let mut error = error.to_string();
    if error.len() > MAX_DETAIL {
        let cut = (0..=MAX_DETAIL)
            .rev()
            .find(|&i| error.is_char_boundary(i))
            .unwrap_or(0);
        error.truncate(cut);
        error.push('…');
    }
    Rejection::new(
        RejectReason::Storage,
        None,
        format!(
            "the database refused order {}: {error}",
            message.order_uid().unwrap_or("?")
        ),
    )
}

/// Dead-letters a message the database keeps refusing. When the dead letter is refused too,
/// blocks: retries the message, then its dead letter, with backoff, until one is accepted.
async fn refuse_one<S: BatchStore, F: FnMut(Option<Condition>)>(
    store: &mut S,
    message: &Incoming,
    error: &str,
    policy: &WritePolicy,
    reporter: &mut Reporter<'_, F>,
) -> Result<Outcome, S::Lost> {
    let position = message.position;
    let rejection = storage_rejection(message, error);
    let uid = message.order_uid().unwrap_or("?");
    log::error!(
        order_uid = uid, partition = position.partition, offset = position.offset;
        "the database refuses order {uid} at partition={} offset={} ({error}): keeping it as a storage dead letter",
        position.partition,
        position.offset
    );
    let mut letter = message.clone();
    letter.verdict = Err(rejection);
    let mut backoff = Backoff::new(policy.max_backoff);
    loop {
        match store.write(std::slice::from_ref(&letter)).await {
            Ok(mut outcomes) if !outcomes.is_empty() => {
                reporter.set(None);
                return Ok(outcomes.remove(0));
            }
            Ok(_) => {}
            Err(StoreError::Lost(lost)) => return Err(lost),
            Err(StoreError::Unavailable(reason)) => {
                log::warn!("database unavailable ({reason}) while storing a dead letter");
                reporter.set(Some(Condition::Unavailable));
            }
            Err(StoreError::Refused(reason) | StoreError::TimedOut(reason)) => {
                if reporter.current != Some(Condition::Blocked) {
                    log::error!(
                        partition = position.partition, offset = position.offset;
                        "the database refuses the dead letter of partition={} offset={} too ({reason}): \
                         this writer is blocked and nothing past it is committed until the database accepts one of them",
                        position.partition,
                        position.offset
                    );
                }
                reporter.set(Some(Condition::Blocked));
            }
        }
        tokio::time::sleep(backoff.step()).await;
        // The cause may have been repaired for the order itself: try it first.
        match store.write(std::slice::from_ref(message)).await {
            Ok(mut outcomes) if !outcomes.is_empty() => {
                log::info!(
                    partition = position.partition, offset = position.offset;
                    "partition={} offset={}: accepted on retry",
                    position.partition,
                    position.offset
                );
                reporter.set(None);
                return Ok(outcomes.remove(0));
            }
            Err(StoreError::Lost(lost)) => return Err(lost),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_and_validate;
    use crate::ingest::Position;
    use std::collections::VecDeque;

    fn order(uid: &str, offset: i64) -> Incoming {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/model.json")).expect("model");
        v["order_uid"] = uid.into();
        let payload = serde_json::to_vec(&v).expect("json");
        Incoming {
            position: Position {
                partition: 0,
                offset,
            },
            key: Some(uid.as_bytes().to_vec()),
            verdict: parse_and_validate(&payload, 65536),
            payload,
        }
    }

    fn batch(n: usize, poison: &[usize]) -> Vec<Incoming> {
        (0..n)
            .map(|i| {
                let uid = if poison.contains(&i) {
                    format!("poison-{i}")
                } else {
                    format!("good-{i}")
                };
                order(&uid, i as i64)
            })
            .collect()
    }

    /// A database that refuses every batch holding a `poison-` order, and (while
    /// `refuse_letters` > 0) the dead letters of poison orders; scripted failures first.
    #[derive(Default)]
    struct FakeStore {
        scripted: VecDeque<StoreError>,
        refuse_letters: usize,
        accept_poison_after: Option<usize>,
        writes: usize,
        sizes: Vec<usize>,
    }

    impl BatchStore for FakeStore {
        type Lost = Infallible;

        async fn write(&mut self, batch: &[Incoming]) -> Result<Vec<Outcome>, StoreError> {
            self.writes += 1;
            self.sizes.push(batch.len());
            if let Some(e) = self.scripted.pop_front() {
                return Err(e);
            }
            let poison_ok = self.accept_poison_after.is_some_and(|n| self.writes > n);
            let mut out = Vec::new();
            for m in batch {
                match &m.verdict {
                    Ok(v) if v.order.order_uid.starts_with("poison") && !poison_ok => {
                        return Err(StoreError::Refused("P0001: poison".into()));
                    }
                    Ok(_) => out.push(Outcome::Stored),
                    Err(r) if self.refuse_letters > 0 => {
                        self.refuse_letters -= 1;
                        let _ = r;
                        return Err(StoreError::Refused("P0001: no dead letters".into()));
                    }
                    Err(r) => out.push(Outcome::DeadLettered(r.clone())),
                }
            }
            Ok(out)
        }
    }

    fn run(
        store: &mut FakeStore,
        batch: &[Incoming],
    ) -> impl Future<Output = (Vec<Outcome>, Vec<Option<Condition>>)> {
        let policy = WritePolicy::default();
        async move {
            let mut conditions = Vec::new();
            let Ok(out) = write_durably(store, batch, &policy, &mut |c| conditions.push(c)).await;
            (out, conditions)
        }
    }

    fn is_storage(o: &Outcome) -> bool {
        matches!(o, Outcome::DeadLettered(r) if r.reason == RejectReason::Storage)
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_batch_is_written_in_one_transaction() {
        let mut store = FakeStore::default();
        let (out, conditions) = run(&mut store, &batch(10, &[])).await;
        assert!(out.iter().all(|o| *o == Outcome::Stored));
        assert_eq!(store.writes, 1);
        assert!(conditions.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn one_refused_row_is_isolated_and_dead_lettered_while_the_rest_is_stored() {
        let mut store = FakeStore::default();
        let messages = batch(64, &[37]);
        let (out, _) = run(&mut store, &messages).await;
        for (i, o) in out.iter().enumerate() {
            if i == 37 {
                assert!(is_storage(o), "{o:?}");
            } else {
                assert_eq!(*o, Outcome::Stored, "message {i}");
            }
        }
        // Halving: 3 refusals per level on the poisoned side, log2(64) = 6 levels, plus the
        // good halves and the dead letter: far fewer writes than one per message.
        assert!(store.writes < 40, "{} writes", store.writes);
        assert!(store.sizes.iter().filter(|&&s| s > 1).count() > 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_that_goes_away_on_retry_does_not_split_the_batch() {
        let mut store = FakeStore {
            scripted: VecDeque::from([StoreError::Refused("40P01: deadlock detected".into())]),
            ..FakeStore::default()
        };
        let (out, _) = run(&mut store, &batch(8, &[])).await;
        assert!(out.iter().all(|o| *o == Outcome::Stored));
        assert_eq!(store.sizes, vec![8, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn different_refusals_in_a_row_are_not_counted_as_the_same_bad_row() {
        let mut store = FakeStore {
            scripted: VecDeque::from([
                StoreError::Refused("a".into()),
                StoreError::Refused("b".into()),
                StoreError::Refused("a".into()),
            ]),
            ..FakeStore::default()
        };
        let (out, _) = run(&mut store, &batch(4, &[])).await;
        assert!(out.iter().all(|o| *o == Outcome::Stored));
        assert_eq!(store.sizes, vec![4, 4, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_batch_is_split_at_once() {
        let mut store = FakeStore {
            scripted: VecDeque::from([StoreError::TimedOut("30s".into())]),
            ..FakeStore::default()
        };
        let (out, _) = run(&mut store, &batch(8, &[])).await;
        assert!(out.iter().all(|o| *o == Outcome::Stored));
        assert_eq!(store.sizes, vec![8, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_database_is_retried_without_dead_lettering_anything() {
        let down = || StoreError::Unavailable("connection refused".into());
        let mut store = FakeStore {
            scripted: (0..50).map(|_| down()).collect(),
            ..FakeStore::default()
        };
        let started = tokio::time::Instant::now();
        let (out, conditions) = run(&mut store, &batch(5, &[])).await;
        assert!(out.iter().all(|o| *o == Outcome::Stored));
        assert_eq!(
            store.sizes.len(),
            51,
            "never split while the database is down"
        );
        assert!(store.sizes.iter().all(|&s| s == 5));
        assert_eq!(conditions, vec![Some(Condition::Unavailable), None]);
        // Backoff capped at 2 s: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 45 × 2.
        assert_eq!(started.elapsed(), Duration::from_millis(93_100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_double_refusal_blocks_until_the_dead_letter_is_accepted() {
        let mut store = FakeStore {
            refuse_letters: 6,
            ..FakeStore::default()
        };
        let messages = batch(4, &[2]);
        let (out, conditions) = run(&mut store, &messages).await;
        assert!(is_storage(&out[2]));
        assert_eq!(out.iter().filter(|o| **o == Outcome::Stored).count(), 3);
        assert_eq!(conditions, vec![Some(Condition::Blocked), None]);
        assert_eq!(
            store.refuse_letters, 0,
            "every refused dead letter was retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_order_is_stored_once_its_cause_is_repaired() {
        let mut store = FakeStore {
            refuse_letters: usize::MAX,
            accept_poison_after: Some(20),
            ..FakeStore::default()
        };
        let (out, conditions) = run(&mut store, &batch(1, &[0])).await;
        assert_eq!(out, vec![Outcome::Stored]);
        assert_eq!(conditions, vec![Some(Condition::Blocked), None]);
    }

    /// A store writing into a transaction that is gone after `lose_after` writes (the
    /// replay's, when its connection drops): every write from then on says so.
    struct LosingStore {
        inner: FakeStore,
        lose_after: usize,
    }

    impl BatchStore for LosingStore {
        type Lost = &'static str;

        async fn write(
            &mut self,
            batch: &[Incoming],
        ) -> Result<Vec<Outcome>, StoreError<&'static str>> {
            if self.inner.writes >= self.lose_after {
                self.inner.writes += 1;
                return Err(StoreError::Lost("the connection is closed"));
            }
            self.inner.write(batch).await.map_err(|e| match e {
                StoreError::Unavailable(r) => StoreError::Unavailable(r),
                StoreError::Refused(r) => StoreError::Refused(r),
                StoreError::TimedOut(r) => StoreError::TimedOut(r),
            })
        }
    }

    /// Fails if a lost store is retried (the test would time out) or its error swallowed.
    #[tokio::test(start_paused = true)]
    async fn a_lost_store_ends_the_batch_with_its_error_instead_of_retrying() {
        for (poison, lose_after) in [(vec![], 0), (vec![5], 4), (vec![5], 12)] {
            let mut store = LosingStore {
                inner: FakeStore {
                    refuse_letters: usize::MAX,
                    ..FakeStore::default()
                },
                lose_after,
            };
            let (messages, policy) = (batch(8, &poison), WritePolicy::default());
            let mut report = |_| {};
            let written = write_durably(&mut store, &messages, &policy, &mut report);
            let result = tokio::time::timeout(Duration::from_secs(3600), written)
                .await
                .expect("a lost store is not retried");
            assert_eq!(
                result,
                Err("the connection is closed"),
                "lost after {lose_after}"
            );
            assert_eq!(
                store.inner.writes,
                lose_after + 1,
                "no write after the loss"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let steps: Vec<u128> = (0..5).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn a_long_database_error_is_cut_in_the_dead_letter_detail() {
        let m = order("a", 0);
        let r = storage_rejection(&m, &"é".repeat(1000));
        assert!(r.detail.len() < 600, "{}", r.detail.len());
        assert!(r.detail.starts_with("the database refused order a: "));
    }
}
