//! `OffsetTracker`: which offset of each partition may be committed.
//!
//! Guarantee: the offset it hands out for a partition is always "the next offset to read"
//! after a *contiguous* run of finished messages, counted over the messages this consumer
//! was actually given (offsets may have gaps: compaction, transaction markers). Everything
//! below it is durable; nothing above it is assumed done. Writers finish out of order, so a
//! finished message behind an unfinished one waits. Limit: after a crash, the finished
//! messages above the committed offset are delivered again (and recognised as duplicates).
//!
//! Plain data, no rdkafka types: the reader translates.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// What the reader should do with a message it was just given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// New: hand it to a writer.
    Track,
    /// Already tracked in this assignment (a re-fetch after pause/resume): skip it, the first
    /// copy's completion covers it.
    AlreadySeen,
}

#[derive(Debug, Default)]
struct PartitionTrack {
    /// Offsets handed out and not yet committable, in delivery order, with "done" flags and
    /// the message's Kafka timestamp (ms) when known.
    pending: VecDeque<(i64, bool, Option<i64>)>,
    /// Highest offset ever delivered in this assignment.
    last_delivered: Option<i64>,
    /// Next offset to read, as last reported by `committable`.
    reported: Option<i64>,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionTrack>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` of `partition` was given to us.
    pub fn delivered(&mut self, partition: i32, offset: i64) -> Delivery {
        self.delivered_at(partition, offset, None)
    }

    /// `delivered`, with the message's Kafka timestamp (ms since the epoch) for the lag in
    /// seconds.
    pub fn delivered_at(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> Delivery {
        let track = self.partitions.entry(partition).or_default();
        if track.last_delivered.is_some_and(|last| offset <= last) {
            return Delivery::AlreadySeen;
        }
        track.last_delivered = Some(offset);
        track.pending.push_back((offset, false, timestamp_ms));
        Delivery::Track
    }

    /// The Kafka timestamp of the oldest message given out and not yet durable, over all
    /// partitions: how far behind ingestion is, in time.
    pub fn oldest_pending_timestamp(&self) -> Option<i64> {
        self.partitions
            .values()
            .filter_map(|t| t.pending.iter().find(|(_, done, _)| !done))
            .filter_map(|(_, _, ts)| *ts)
            .min()
    }

    /// Records that `offset` of `partition` is durable. Unknown offsets are ignored (they
    /// belong to an assignment that has been revoked since).
    pub fn done(&mut self, partition: i32, offset: i64) {
        let Some(track) = self.partitions.get_mut(&partition) else {
            return;
        };
        // `pending` is sorted by offset, so a binary search finds the entry.
        if let Ok(index) = track.pending.binary_search_by_key(&offset, |(o, _, _)| *o) {
            track.pending[index].1 = true;
        }
    }

    /// The next offset to read for `partition` if it moved since the last call: the offset
    /// after the contiguous finished prefix.
    pub fn committable(&mut self, partition: i32) -> Option<i64> {
        let track = self.partitions.get_mut(&partition)?;
        let mut last_done = None;
        while let Some(&(offset, true, _)) = track.pending.front() {
            last_done = Some(offset);
            track.pending.pop_front();
        }
        let next = last_done? + 1;
        track.reported = Some(next);
        Some(next)
    }

    /// `committable` for every partition that moved, sorted by partition.
    pub fn all_committable(&mut self) -> BTreeMap<i32, i64> {
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        partitions
            .into_iter()
            .filter_map(|p| self.committable(p).map(|next| (p, next)))
            .collect()
    }

    /// The last offset reported as committable for each partition (for a final commit).
    pub fn reported(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .filter_map(|(p, t)| t.reported.map(|next| (*p, next)))
            .collect()
    }

    /// Messages of `partition` given out and not yet committable.
    pub fn pending(&self, partition: i32) -> usize {
        self.partitions
            .get(&partition)
            .map_or(0, |t| t.pending.len())
    }

    /// Forgets a partition (revoked), returning its final committable offset if it moved.
    pub fn forget(&mut self, partition: i32) -> Option<i64> {
        let next = self.committable(partition);
        self.partitions.remove(&partition);
        next
    }

    /// Forgets everything (a new assignment generation).
    pub fn clear(&mut self) {
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: i32 = 0;

    fn tracker_with(offsets: &[i64]) -> OffsetTracker {
        let mut t = OffsetTracker::new();
        for &o in offsets {
            assert_eq!(t.delivered(P, o), Delivery::Track);
        }
        t
    }

    #[test]
    fn nothing_is_committable_before_anything_is_done() {
        let mut t = tracker_with(&[0, 1, 2]);
        assert_eq!(t.committable(P), None);
    }

    #[test]
    fn commits_the_next_offset_after_the_contiguous_done_prefix() {
        let mut t = tracker_with(&[0, 1, 2]);
        t.done(P, 0);
        t.done(P, 1);
        assert_eq!(t.committable(P), Some(2));
    }

    /// Redpanda Connect's checkpoint test: ack A B D, nack C E, restart → C D E again.
    #[test]
    fn done_a_b_d_not_c_e_then_restart_redelivers_c_d_e() {
        let (a, b, c, d, e) = (10, 11, 12, 13, 14);
        let mut t = tracker_with(&[a, b, c, d, e]);
        t.done(P, a);
        t.done(P, b);
        t.done(P, d);
        let committed = t.committable(P).expect("A and B are done");
        assert_eq!(committed, c, "the commit is the offset to read next: C");
        // D is done but stays behind C: nothing moves until C is.
        assert_eq!(t.committable(P), None);
        assert_eq!(t.pending(P), 3, "C, D and E are still owed");
        // A restart (a fresh tracker, fed from the committed offset) owes C, D and E again,
        // and commits past E only once all three are done, D included a second time.
        let mut restarted = OffsetTracker::new();
        for o in [c, d, e] {
            assert_eq!(restarted.delivered(P, o), Delivery::Track);
        }
        restarted.done(P, e);
        restarted.done(P, c);
        assert_eq!(restarted.committable(P), Some(d));
        restarted.done(P, d);
        assert_eq!(restarted.committable(P), Some(e + 1));
    }

    #[test]
    fn out_of_order_completion_waits_for_the_gap() {
        let mut t = tracker_with(&[0, 1, 2, 3]);
        t.done(P, 3);
        t.done(P, 2);
        assert_eq!(t.committable(P), None);
        t.done(P, 0);
        assert_eq!(t.committable(P), Some(1));
        t.done(P, 1);
        assert_eq!(t.committable(P), Some(4));
        assert_eq!(t.pending(P), 0);
    }

    #[test]
    fn offset_gaps_from_compaction_are_not_waited_for() {
        let mut t = tracker_with(&[5, 9, 20]);
        t.done(P, 5);
        t.done(P, 9);
        assert_eq!(t.committable(P), Some(10));
        t.done(P, 20);
        assert_eq!(t.committable(P), Some(21));
    }

    #[test]
    fn committable_only_reports_progress() {
        let mut t = tracker_with(&[0, 1]);
        t.done(P, 0);
        assert_eq!(t.committable(P), Some(1));
        assert_eq!(t.committable(P), None);
        assert_eq!(t.reported().get(&P), Some(&1));
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        t.delivered(0, 0);
        t.delivered(1, 0);
        t.done(1, 0);
        let all = t.all_committable();
        assert_eq!(all.get(&1), Some(&1));
        assert_eq!(all.get(&0), None);
    }

    #[test]
    fn a_refetched_offset_is_recognised_as_already_seen() {
        let mut t = tracker_with(&[0, 1, 2]);
        assert_eq!(t.delivered(P, 1), Delivery::AlreadySeen);
        assert_eq!(t.delivered(P, 3), Delivery::Track);
    }

    #[test]
    fn completions_for_a_forgotten_partition_are_ignored() {
        let mut t = tracker_with(&[0, 1]);
        t.done(P, 0);
        assert_eq!(t.forget(P), Some(1));
        t.done(P, 1);
        assert_eq!(t.committable(P), None);
        // After reassignment the partition starts afresh from wherever Kafka resumes.
        assert_eq!(t.delivered(P, 1), Delivery::Track);
    }

    #[test]
    fn the_oldest_pending_timestamp_is_that_of_the_oldest_unfinished_message() {
        let mut t = OffsetTracker::new();
        t.delivered_at(0, 0, Some(1_000));
        t.delivered_at(0, 1, Some(2_000));
        t.delivered_at(1, 0, Some(1_500));
        assert_eq!(t.oldest_pending_timestamp(), Some(1_000));
        t.done(0, 0);
        assert_eq!(t.oldest_pending_timestamp(), Some(1_500));
        t.done(1, 0);
        t.done(0, 1);
        t.all_committable();
        assert_eq!(t.oldest_pending_timestamp(), None);
    }

    #[test]
    fn done_for_an_unknown_offset_changes_nothing() {
        let mut t = tracker_with(&[0]);
        t.done(P, 7);
        assert_eq!(t.committable(P), None);
    }
}
