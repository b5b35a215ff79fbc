//! `Flow`: the reader's back-pressure and pause decisions, as plain data.
//!
//! The reader pauses its partitions (and keeps polling, so it stays in the group) when the
//! messages with the writers reach `max_in_flight` or their held bytes reach
//! `max_in_flight_bytes`, and resumes at half of both (hysteresis, so it does not flap); it
//! also pauses while any writer cannot make progress (database unavailable, or a message
//! refused together with its dead letter), and resumes when all of them can.

use std::collections::HashSet;

#[derive(Debug)]
pub struct Flow {
    max_in_flight: usize,
    max_bytes: usize,
    in_flight: usize,
    bytes: usize,
    saturated: bool,
    stalled_writers: HashSet<usize>,
}

impl Flow {
    pub fn new(max_in_flight: usize, max_bytes: usize) -> Self {
        Self {
            max_in_flight,
            max_bytes,
            in_flight: 0,
            bytes: 0,
            saturated: false,
            stalled_writers: HashSet::new(),
        }
    }

    /// A message holding `bytes` was handed to a writer.
    pub fn sent(&mut self, bytes: usize) {
        self.in_flight += 1;
        self.bytes += bytes;
        self.update();
    }

    /// `count` messages holding `bytes` in all were reported durable.
    pub fn done(&mut self, count: usize, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(count);
        self.bytes = self.bytes.saturating_sub(bytes);
        self.update();
    }

    /// A writer cannot make progress (`true`) or can again (`false`).
    pub fn writer_stalled(&mut self, writer: usize, stalled: bool) {
        if stalled {
            self.stalled_writers.insert(writer);
        } else {
            self.stalled_writers.remove(&writer);
        }
    }

    fn update(&mut self) {
        if self.in_flight >= self.max_in_flight || self.bytes >= self.max_bytes {
            self.saturated = true;
        } else if self.in_flight <= self.max_in_flight / 2 && self.bytes <= self.max_bytes / 2 {
            self.saturated = false;
        }
    }

    /// Whether the partitions should be paused now.
    pub fn should_pause(&self) -> bool {
        self.saturated || !self.stalled_writers.is_empty()
    }

    /// Whether a writer is stalled (as opposed to the in-flight bound being full).
    pub fn writers_stalled(&self) -> bool {
        !self.stalled_writers.is_empty()
    }

    /// How many messages may be taken in the next poll (at least one: a poll that returns
    /// one message past the bound is fine, the pause follows).
    pub fn budget(&self, most: usize) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight)
            .clamp(1, most.max(1))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_the_message_bound_and_resumes_at_half_of_it() {
        let mut f = Flow::new(4, 1 << 30);
        for _ in 0..3 {
            f.sent(10);
        }
        assert!(!f.should_pause());
        f.sent(10);
        assert!(f.should_pause(), "4 of 4 in flight");
        f.done(1, 10);
        assert!(f.should_pause(), "3 of 4: still above half");
        f.done(1, 10);
        assert!(!f.should_pause(), "2 of 4: resumed");
    }

    #[test]
    fn pauses_at_the_byte_bound_even_with_few_messages() {
        let mut f = Flow::new(1_000, 100);
        f.sent(60);
        assert!(!f.should_pause());
        f.sent(60);
        assert!(f.should_pause());
        f.done(1, 60);
        assert!(f.should_pause(), "60 bytes: above half of the bound");
        f.done(1, 60);
        assert!(!f.should_pause());
    }

    #[test]
    fn a_stalled_writer_pauses_until_every_stalled_writer_recovers() {
        let mut f = Flow::new(10, 1_000);
        f.writer_stalled(0, true);
        f.writer_stalled(1, true);
        assert!(f.should_pause() && f.writers_stalled());
        f.writer_stalled(0, false);
        assert!(f.should_pause(), "writer 1 is still stalled");
        f.writer_stalled(1, false);
        assert!(!f.should_pause());
    }

    #[test]
    fn the_poll_budget_is_what_is_left_under_the_bound_and_at_least_one() {
        let mut f = Flow::new(5, 1 << 20);
        assert_eq!(f.budget(1_000), 5);
        assert_eq!(f.budget(3), 3);
        for _ in 0..5 {
            f.sent(1);
        }
        assert_eq!(f.budget(1_000), 1);
    }

    #[test]
    fn completions_never_drive_the_counts_below_zero() {
        let mut f = Flow::new(5, 100);
        f.sent(10);
        f.done(3, 50);
        assert_eq!((f.in_flight(), f.bytes()), (0, 0));
    }
}
