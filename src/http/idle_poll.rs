//! Idle polling (`HTTP_IDLE_POLL_US`): after answering a request, an HTTP worker keeps
//! polling its sockets for a short while before it lets its thread sleep.
//!
//! Why: on this kind of machine (a 2-core VM) a thread that sleeps in `epoll_wait` is slow
//! to run again when a request arrives: its vCPU has halted and the host must wake it. A
//! lone client pays that on every request, whatever the service does (one `epoll_wait`, one
//! `recvfrom`, one `sendto` per request, measured with strace). A worker that is still
//! polling sees the next request at once: `GET /health/live` on one connection went from
//! ~75 to ~38 µs, a cache hit from ~85 to ~50 µs (docs/benchmarks.md, Reads).
//!
//! The poll is bounded: it lasts for the window after the worker's last answer, so an idle
//! service sleeps as it would without polling, and a busy one has no gaps to fill; it only costs CPU when
//! requests come closer together than the window. The same trade as Seastar's
//! `--idle-poll-time-us` (Redpanda, ScyllaDB) or `SO_BUSY_POLL`, in user space, per worker.
//!
//! The poll is a task on the worker that yields to the worker's runtime in a loop: each
//! yield makes the runtime look at its sockets without blocking, and lets every other task
//! of the worker (handlers, the CacheActor on the first worker) run before it.
//!
//! Off by default: a client that sends a request every 100–200 µs keeps a worker busy all
//! the time, and where the service has a CPU quota (a container limit) polling spends it.
//! Worth it where a few users' latency counts and the cores are the service's.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// When a worker polls: for `window` after its last answer. A plain policy, so it can be
/// tested without a runtime.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    window: Duration,
    last_answer: Option<Instant>,
    polling: bool,
}

impl Window {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_answer: None,
            polling: false,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// A request was answered at `now`. Returns whether the poller must be woken (it is
    /// asleep and polling is on).
    pub fn answered(&mut self, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        self.last_answer = Some(now);
        !std::mem::replace(&mut self.polling, true)
    }

    /// Whether to poll once more at `now`; `false` ends this polling window (the poller sleeps until
    /// the next answer).
    pub fn keep_polling(&mut self, now: Instant) -> bool {
        let within = self
            .last_answer
            .is_some_and(|last| now.saturating_duration_since(last) < self.window);
        self.polling = within;
        within
    }
}

/// One per worker (built in the `HttpServer` factory, so a `Cell` and an `Rc` suffice).
pub struct IdlePoll {
    window: Cell<Window>,
    wake: Notify,
    /// Polls so far: what the tests watch.
    polls: Cell<u64>,
    /// Whether this worker's poller task runs: what the tests watch.
    poller_running: Cell<bool>,
}

impl IdlePoll {
    /// Starts the worker's poller task when `window` is not zero; call on the worker.
    pub fn start(window: Duration) -> Rc<Self> {
        let window = Window::new(window);
        let poll = Rc::new(Self {
            window: Cell::new(window),
            wake: Notify::new(),
            polls: Cell::new(0),
            poller_running: Cell::new(false),
        });
        if window.enabled() {
            actix_web::rt::spawn(run(Rc::clone(&poll)));
        }
        poll
    }

    /// Called once a request has been answered.
    pub fn answered(&self) {
        let mut window = self.window.get();
        if window.answered(Instant::now()) {
            // Stored as a permit if the poller is not waiting yet: no answer is missed.
            self.wake.notify_one();
        }
        self.window.set(window);
    }

    fn keep_polling(&self) -> bool {
        let mut window = self.window.get();
        let keep = window.keep_polling(Instant::now());
        self.window.set(window);
        keep
    }
}

async fn run(poll: Rc<IdlePoll>) {
    poll.poller_running.set(true);
    loop {
        poll.wake.notified().await;
        while poll.keep_polling() {
            poll.polls.set(poll.polls.get() + 1);
            // The thread's turn to the kernel too: a thread that is ready on this core (the
            // other worker, PostgreSQL, a client) runs first instead of waiting for the
            // poll to end. Without it, 64 connections got 10–14 % fewer answers/s.
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(200);

    #[test]
    fn off_never_polls() {
        let mut w = Window::new(Duration::ZERO);
        let t = Instant::now();
        assert!(!w.answered(t), "a zero window must not wake the poller");
        assert!(!w.keep_polling(t));
    }

    #[test]
    fn polls_for_the_window_after_the_last_answer_then_sleeps() {
        let mut w = Window::new(WINDOW);
        let t = Instant::now();
        assert!(
            !w.keep_polling(t),
            "nothing answered yet: no reason to poll"
        );
        assert!(w.answered(t), "the first answer wakes the poller");
        assert!(w.keep_polling(t + WINDOW / 2));
        // Answers while polling extend the window without another wake-up.
        assert!(!w.answered(t + WINDOW / 2));
        assert!(
            w.keep_polling(t + WINDOW),
            "the window counts from the last answer"
        );
        assert!(
            !w.keep_polling(t + WINDOW / 2 + WINDOW),
            "past the window: sleep"
        );
        // Asleep again: the next answer must wake the poller, or it would never poll again.
        assert!(w.answered(t + WINDOW * 3));
        assert!(w.keep_polling(t + WINDOW * 3));
    }

    #[test]
    fn a_clock_that_seems_to_go_back_does_not_panic_or_poll_forever() {
        let mut w = Window::new(WINDOW);
        let t = Instant::now() + WINDOW;
        w.answered(t);
        assert!(w.keep_polling(t - WINDOW / 2));
        assert!(!w.keep_polling(t + WINDOW));
    }

    /// The poller on a real single-thread runtime: it polls after an answer, stops once the
    /// window has passed, and starts again on the next answer.
    #[actix_web::test]
    async fn the_poller_stops_after_the_window_and_restarts_on_the_next_answer() {
        let window = Duration::from_millis(20);
        let poll = IdlePoll::start(window);
        tokio::time::sleep(window).await;
        assert!(poll.poller_running.get());
        assert_eq!(poll.polls.get(), 0, "no answer yet: the poller must sleep");

        poll.answered();
        tokio::time::sleep(window * 3).await;
        let after_first = poll.polls.get();
        assert!(after_first > 0, "an answer must start the poller");
        tokio::time::sleep(window * 2).await;
        assert_eq!(
            poll.polls.get(),
            after_first,
            "the poller must stop once the window has passed"
        );

        poll.answered();
        tokio::time::sleep(window * 3).await;
        assert!(
            poll.polls.get() > after_first,
            "the next answer must start the poller again"
        );
    }

    /// Fails if a poller task is spawned with polling off (a task per worker that has no
    /// business there), not only if it polls.
    #[actix_web::test]
    async fn a_zero_window_starts_no_poller() {
        let poll = IdlePoll::start(Duration::ZERO);
        poll.answered();
        // Gives a spawned task every chance to run.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !poll.poller_running.get(),
            "a poller task runs with polling off"
        );
        assert_eq!(poll.polls.get(), 0);
    }
}
