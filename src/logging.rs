//! Log hygiene: per-message lines are rate-limited (a flood of bad messages must not flood
//! the log or its disk), and text that comes from messages is cut before it is logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::METRICS;

/// Longest message-derived text (a rejection's detail) put in one log line, in characters.
pub const MAX_LOGGED_CHARS: usize = 200;

/// `text` up to `max` characters; a longer one is cut and says how much was left out.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… (+{} bytes)", &text[..at], text.len() - at),
    }
}

/// At most `per_window` lines per `window`; what is left out is counted and summarised in
/// one line when the next window opens.
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    opened: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// The decision for one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Budget {
    /// Log it; `suppressed` lines were left out in the window before (say so first).
    Log {
        suppressed: u64,
    },
    Skip,
}

impl LogBudget {
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            opened: None,
            used: 0,
            suppressed: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Budget {
        let expired = self
            .opened
            .is_none_or(|opened| now.duration_since(opened) >= self.window);
        let mut suppressed = 0;
        if expired {
            self.opened = Some(now);
            self.used = 0;
            suppressed = std::mem::take(&mut self.suppressed);
        }
        if self.used < self.per_window {
            self.used += 1;
            Budget::Log { suppressed }
        } else {
            self.suppressed += 1;
            Budget::Skip
        }
    }
}

/// The budget of per-message rejection lines, shared by every writer: 20 per 10 s.
static REJECTIONS: Mutex<LogBudget> = Mutex::new(LogBudget::new(20, Duration::from_secs(10)));
/// The budget of failed-request lines (a database outage under load fails every miss).
static REQUEST_FAILURES: Mutex<LogBudget> = Mutex::new(LogBudget::new(10, Duration::from_secs(10)));

/// Logs one rejected message within the shared budget; `line` is only built when logged.
pub fn rejection(line: impl FnOnce() -> String) {
    limited(&REJECTIONS, log::Level::Info, "rejected messages", line);
}

/// Logs why a request failed (the client only gets a plain sentence), within a budget.
pub fn request_failure(level: log::Level, line: impl FnOnce() -> String) {
    limited(&REQUEST_FAILURES, level, "failed requests", line);
}

fn limited(
    budget: &Mutex<LogBudget>,
    level: log::Level,
    what: &str,
    line: impl FnOnce() -> String,
) {
    let decision = budget
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(Instant::now());
    match decision {
        Budget::Log { suppressed } => {
            if suppressed > 0 {
                log::log!(
                    level,
                    "{suppressed} more {what} were not logged in the last window (see the metrics)"
                );
            }
            log::log!(level, "{}", line());
        }
        Budget::Skip => METRICS.log_lines_suppressed.inc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_says_how_much_is_missing() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdef", 3), "abc… (+3 bytes)");
        // Cut on a character boundary, never inside one.
        assert_eq!(cut("ééé", 1), "é… (+4 bytes)");
    }

    #[test]
    fn a_flood_is_cut_to_the_budget_and_summarised_in_the_next_window() {
        let mut budget = LogBudget::new(3, Duration::from_secs(10));
        let start = Instant::now();
        let first: Vec<Budget> = (0..10).map(|_| budget.take(start)).collect();
        let logged = first
            .iter()
            .filter(|b| matches!(b, Budget::Log { .. }))
            .count();
        assert_eq!(logged, 3);
        assert_eq!(budget.take(start + Duration::from_secs(9)), Budget::Skip);
        assert_eq!(
            budget.take(start + Duration::from_secs(10)),
            Budget::Log { suppressed: 8 }
        );
        assert_eq!(
            budget.take(start + Duration::from_secs(11)),
            Budget::Log { suppressed: 0 }
        );
    }
}
