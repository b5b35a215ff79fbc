//! The fault tests' stream: emulator orders produced in the background at a steady rate,
//! seeded (the seed is printed; `STREAM_SEED` replays the same messages), with the files
//! that say what was sent, and the events a fault waits for instead of a sleep.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use rand::Rng;

use super::{
    Service, TestEnv, assert_exactly_the_valid_orders_are_stored, eventually, finish_emulator,
    metric, spawn_emulator,
};

/// What to produce: `count` messages at `rate` per second, with these shares of invalid,
/// duplicate and conflicting ones.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub count: u32,
    pub rate: u32,
    pub invalid: f64,
    pub duplicates: f64,
    pub conflicts: f64,
    /// The emulator's own delivery timeout (a test that stops the broker raises it).
    pub message_timeout_ms: Option<u32>,
}

impl StreamSpec {
    /// A stream of `count` messages at `rate`/s, 2 % of them invalid.
    pub fn new(count: u32, rate: u32) -> Self {
        Self {
            count,
            rate,
            invalid: 0.02,
            duplicates: 0.0,
            conflicts: 0.0,
            message_timeout_ms: None,
        }
    }
}

/// A stream in progress.
pub struct Stream {
    child: Option<Child>,
    /// Every valid order sent (`uid<TAB>items`).
    pub uids: PathBuf,
    /// Every invalid message sent, with the reason it was made to fail with.
    pub rejects: PathBuf,
}

impl Stream {
    pub fn start(env: &TestEnv, spec: StreamSpec) -> Self {
        let seed: u64 = std::env::var("STREAM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::rng().random());
        eprintln!(
            "{}: stream of {} messages at {}/s, seed {seed} (STREAM_SEED={seed} replays it)",
            env.name, spec.count, spec.rate
        );
        let uids = env.path("uids.tsv");
        let rejects = env.path("rejects.tsv");
        let numbers = [
            spec.count.to_string(),
            spec.rate.to_string(),
            spec.invalid.to_string(),
            spec.duplicates.to_string(),
            spec.conflicts.to_string(),
            seed.to_string(),
            spec.message_timeout_ms.unwrap_or(30_000).to_string(),
        ];
        let child = spawn_emulator(
            env,
            &[
                "--count",
                &numbers[0],
                "--rate",
                &numbers[1],
                "--invalid-ratio",
                &numbers[2],
                "--duplicate-ratio",
                &numbers[3],
                "--conflict-ratio",
                &numbers[4],
                "--seed",
                &numbers[5],
                "--uid-prefix",
                &format!("s{:x}", seed & 0xffff_ffff),
                "--message-timeout-ms",
                &numbers[6],
                "--uids-out",
                uids.to_str().expect("path"),
                "--rejects-out",
                rejects.to_str().expect("path"),
            ],
        );
        Self {
            child: Some(child),
            uids,
            rejects,
        }
    }

    /// Whether the emulator is still producing.
    pub fn producing(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits until the emulator has sent everything; returns its summary line.
    pub fn finish(&mut self) -> String {
        finish_emulator(self.child.take().expect("the stream is running"))
    }

    /// The check every fault test ends with (see `checks`).
    pub async fn assert_exactly_its_valid_orders_are_stored(&self, env: &TestEnv) {
        assert_exactly_the_valid_orders_are_stored(env, &self.uids).await;
    }
}

impl Drop for Stream {
    /// A test that fails mid-way does not leave an emulator producing into the next test.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `service` has stored at least `n` orders (its own counter): the event a fault
/// is injected on, so it lands while the stream is being written.
pub async fn wait_stored(service: &Service, n: u64, timeout: Duration) -> bool {
    eventually(timeout, || async {
        metric(service, "orders_stored_total")
            .await
            .is_some_and(|stored| stored >= n as f64)
    })
    .await
}

/// Waits (at most a second) for a moment when messages are with the writers; returns whether
/// there was one. A fault injected then hits work in flight.
pub async fn wait_in_flight(service: &Service) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        if metric(service, "orders_in_flight").await.unwrap_or(0.0) > 0.0 {
            return true;
        }
    }
    false
}
