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
//! The policy ([`Policy`]) spends CPU only where it buys latency, so it can be on by default:
//! - a worker polls only while requests come closer together than the window (the answer
//!   before came less than a window earlier): a client that pauses longer gains nothing from
//!   a poll that ends before its request arrives, and an idle service never polls;
//! - a poll lasts for the window after the worker's last answer; a busy worker has no gaps
//!   to fill;
//! - a worker polls at most [`BUDGET_PERCENT`] of each [`BUDGET_PERIOD`]: the most polling
//!   can cost is half a core per worker, whatever the clients do;
//! - `auto` (the default) turns polling off where its CPU is not the service's to spend:
//!   under a CPU quota (a container limit: polling would spend the quota) or with fewer
//!   cores than HTTP workers ([`resolve`]).
//! - the CacheActor's host worker counts the other workers' lookups as answers
//!   ([`answered_on_this_thread`]): while a client is steady on another worker, the thread
//!   its lookups go to is awake too, or every hit would wait for that thread to wake.
//!
//! The same trade as Seastar's `--idle-poll-time-us` (Redpanda, ScyllaDB) or `SO_BUSY_POLL`,
//! in user space, per worker. The poll is a task on the worker that yields to the worker's
//! runtime in a loop: each yield makes the runtime look at its sockets without blocking, and
//! lets every other task of the worker (handlers, the CacheActor on the first worker) run
//! before it.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The window of `auto`.
pub const AUTO_WINDOW: Duration = Duration::from_micros(200);
/// The share of each period a worker may poll.
pub const BUDGET_PERCENT: u32 = 50;
/// The period the budget is counted over: short, so that a budget spent is soon back.
pub const BUDGET_PERIOD: Duration = Duration::from_millis(100);

/// `HTTP_IDLE_POLL_US`: `auto`, `0` (off) or a window in µs (on whatever the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePollSetting {
    Auto,
    Window(Duration),
}

impl IdlePollSetting {
    pub fn parse(text: &str) -> Result<Self, String> {
        const RANGE: &str = "must be auto, or a number of µs between 0 and 100000";
        if text.eq_ignore_ascii_case("auto") || text.is_empty() {
            return Ok(Self::Auto);
        }
        let us: u64 = text.parse().map_err(|_| RANGE.to_string())?;
        // More than 0.1 s of polling after each answer is a mistake, not a setting.
        if us > 100_000 {
            return Err(RANGE.into());
        }
        Ok(Self::Window(Duration::from_micros(us)))
    }
}

/// The machine as `auto` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    /// Cores this process may run on.
    pub cores: usize,
    /// The cgroup CPU quota, in cores, if there is one.
    pub quota: Option<f64>,
}

impl Machine {
    pub fn this_one() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            quota: cgroup_cpu_quota(&|path| std::fs::read_to_string(path).ok()),
        }
    }
}

/// The window the workers poll for (zero: off) and why, for the start-up log.
pub fn resolve(setting: IdlePollSetting, machine: Machine, workers: usize) -> (Duration, String) {
    match setting {
        IdlePollSetting::Window(window) if window.is_zero() => {
            (window, "off (HTTP_IDLE_POLL_US=0)".into())
        }
        IdlePollSetting::Window(window) => (
            window,
            format!("{} µs (HTTP_IDLE_POLL_US)", window.as_micros()),
        ),
        IdlePollSetting::Auto => match machine.quota {
            Some(quota) => (
                Duration::ZERO,
                format!(
                    "off: the process has a CPU quota of {quota:.2} cores, which polling would spend \
                     (HTTP_IDLE_POLL_US=200 turns it on)"
                ),
            ),
            None if machine.cores < workers => (
                Duration::ZERO,
                format!(
                    "off: {} cores for {workers} HTTP workers (HTTP_IDLE_POLL_US=200 turns it on)",
                    machine.cores
                ),
            ),
            None => (
                AUTO_WINDOW,
                format!(
                    "{} µs while requests come closer than that, at most {BUDGET_PERCENT} % of a \
                     core per worker (HTTP_IDLE_POLL_US=auto)",
                    AUTO_WINDOW.as_micros()
                ),
            ),
        },
    }
}

/// The CPU quota of this process's cgroup or of one above it, in cores (the smallest):
/// cgroup v2's `cpu.max`, v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`. `read` reads a file.
pub fn cgroup_cpu_quota(read: &dyn Fn(&Path) -> Option<String>) -> Option<f64> {
    let membership = read(Path::new("/proc/self/cgroup"))?;
    let mut quotas = Vec::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let v1 = controllers.split(',').any(|c| c == "cpu");
        if !v1 && !controllers.is_empty() {
            continue;
        }
        let roots: &[&str] = if v1 {
            &["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        } else {
            &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        };
        for root in roots {
            // The cgroup itself, then each one above it.
            let mut dir = PathBuf::from(root).join(path.trim_start_matches('/'));
            loop {
                let quota = if v1 {
                    let quota = read(&dir.join("cpu.cfs_quota_us"));
                    let period = read(&dir.join("cpu.cfs_period_us"));
                    quota.zip(period).and_then(|(q, p)| {
                        let q: f64 = q.trim().parse().ok()?;
                        let p: f64 = p.trim().parse().ok()?;
                        (q > 0.0 && p > 0.0).then(|| q / p)
                    })
                } else {
                    read(&dir.join("cpu.max")).and_then(|max| {
                        let mut fields = max.split_whitespace();
                        let q: f64 = fields.next()?.parse().ok()?; // "max": no quota
                        let p: f64 = fields.next()?.parse().ok()?;
                        (q > 0.0 && p > 0.0).then(|| q / p)
                    })
                };
                quotas.extend(quota);
                if dir.as_os_str().len() <= root.len() || !dir.pop() {
                    break;
                }
            }
        }
    }
    quotas.into_iter().reduce(f64::min)
}

/// When a worker polls. A plain policy, so it can be tested without a runtime.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    window: Duration,
    last_answer: Option<Instant>,
    polling: bool,
    /// Polling time spent in the current budget period, and when that period began.
    spent: Duration,
    period_began: Option<Instant>,
    /// When the poller last looked at the time while polling.
    last_poll: Option<Instant>,
}

impl Policy {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_answer: None,
            polling: false,
            spent: Duration::ZERO,
            period_began: None,
            last_poll: None,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// A request was answered at `now`. Returns whether the poller must be woken (it is
    /// asleep, and requests come closer together than the window).
    pub fn answered(&mut self, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let close = self
            .last_answer
            .is_some_and(|last| now.saturating_duration_since(last) < self.window);
        self.last_answer = Some(now);
        if self.polling || !close || !self.budget_left(now) {
            return false;
        }
        self.polling = true;
        self.last_poll = Some(now);
        true
    }

    /// Whether to poll once more at `now`; `false` ends this polling (the poller sleeps until
    /// it is woken again).
    pub fn keep_polling(&mut self, now: Instant) -> bool {
        if self.polling
            && let Some(last) = self.last_poll
        {
            // Everything since the last look counts, the worker's other tasks included: an
            // overestimate, so the budget holds.
            self.spent += now.saturating_duration_since(last);
        }
        self.last_poll = Some(now);
        let within = self
            .last_answer
            .is_some_and(|last| now.saturating_duration_since(last) < self.window);
        self.polling = within && self.budget_left(now);
        self.polling
    }

    /// Whether this period's budget has polling time left (a new period starts afresh).
    fn budget_left(&mut self, now: Instant) -> bool {
        let expired = self
            .period_began
            .is_none_or(|began| now.saturating_duration_since(began) >= BUDGET_PERIOD);
        if expired {
            self.period_began = Some(now);
            self.spent = Duration::ZERO;
        }
        self.spent < BUDGET_PERIOD * BUDGET_PERCENT / 100
    }
}

thread_local! {
    /// This worker's polling, for [`answered_on_this_thread`].
    static THIS_WORKER: std::cell::RefCell<Option<Rc<IdlePoll>>> = const { std::cell::RefCell::new(None) };
}

/// Counts as an answer of this thread's worker, if it polls: for work that arrives from other
/// threads (the CacheActor on its host worker answering the other workers' lookups).
pub fn answered_on_this_thread() {
    THIS_WORKER.with(|poll| {
        if let Some(poll) = poll.borrow().as_ref() {
            poll.answered();
        }
    });
}

/// One per worker (built in the `HttpServer` factory, so a `Cell` and an `Rc` suffice).
pub struct IdlePoll {
    policy: Cell<Policy>,
    wake: Notify,
    /// Polls so far: what the tests watch.
    polls: Cell<u64>,
    /// Whether this worker's poller task runs: what the tests watch.
    poller_running: Cell<bool>,
}

impl IdlePoll {
    /// Starts the worker's poller task when `window` is not zero; call on the worker.
    pub fn start(window: Duration) -> Rc<Self> {
        let policy = Policy::new(window);
        let poll = Rc::new(Self {
            policy: Cell::new(policy),
            wake: Notify::new(),
            polls: Cell::new(0),
            poller_running: Cell::new(false),
        });
        if policy.enabled() {
            THIS_WORKER.with(|this| *this.borrow_mut() = Some(Rc::clone(&poll)));
            actix_web::rt::spawn(run(Rc::clone(&poll)));
        }
        poll
    }

    /// Called once a request has been answered.
    pub fn answered(&self) {
        let mut policy = self.policy.get();
        if policy.answered(Instant::now()) {
            // Stored as a permit if the poller is not waiting yet: no answer is missed.
            self.wake.notify_one();
        }
        self.policy.set(policy);
    }

    fn keep_polling(&self) -> bool {
        let mut policy = self.policy.get();
        let keep = policy.keep_polling(Instant::now());
        self.policy.set(policy);
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
        let mut p = Policy::new(Duration::ZERO);
        let t = Instant::now();
        assert!(!p.answered(t), "a zero window must not wake the poller");
        assert!(!p.answered(t), "a zero window must not wake the poller");
        assert!(!p.keep_polling(t));
    }

    #[test]
    fn polls_only_while_answers_come_closer_than_the_window() {
        let mut p = Policy::new(WINDOW);
        let t = Instant::now();
        assert!(
            !p.keep_polling(t),
            "nothing answered yet: no reason to poll"
        );
        assert!(
            !p.answered(t),
            "a lone answer: nothing says another request is coming soon"
        );
        assert!(
            p.answered(t + WINDOW / 2),
            "a close second answer wakes the poller"
        );
        assert!(p.keep_polling(t + WINDOW / 2));
        // Answers while polling extend the window without another wake-up.
        assert!(!p.answered(t + WINDOW));
        assert!(
            p.keep_polling(t + WINDOW + WINDOW / 2),
            "the window counts from the last answer"
        );
        assert!(!p.keep_polling(t + WINDOW * 2), "past the window: sleep");
        // A request after a longer pause: a poll would have caught nothing, so none starts.
        assert!(!p.answered(t + WINDOW * 4));
        // Closer again: the poller must be woken, or it would never poll again.
        assert!(p.answered(t + WINDOW * 4 + WINDOW / 4));
        assert!(p.keep_polling(t + WINDOW * 4 + WINDOW / 4));
    }

    /// A client that answers the moment it is answered keeps the poller busy all the time:
    /// the budget must cut it to its share of each period, and give it back in the next.
    #[test]
    fn polling_takes_at_most_its_share_of_each_period() {
        let mut p = Policy::new(WINDOW);
        let start = Instant::now();
        let step = Duration::from_micros(10);
        let mut polled = Duration::ZERO;
        let mut polling = false;
        let mut now = start;
        let mut polled_in_second_period = Duration::ZERO;
        while now < start + BUDGET_PERIOD * 2 {
            if p.answered(now) {
                polling = true;
            }
            if polling {
                polling = p.keep_polling(now);
            }
            if polling {
                polled += step;
                if now >= start + BUDGET_PERIOD {
                    polled_in_second_period += step;
                }
            }
            now += step;
        }
        let share = BUDGET_PERIOD * BUDGET_PERCENT / 100;
        assert!(
            polled_in_second_period <= share + step && polled_in_second_period >= share / 2,
            "{polled_in_second_period:?} of polling in a period (share {share:?})"
        );
        assert!(polled <= share * 2 + step * 2, "{polled:?} in two periods");
    }

    #[test]
    fn a_clock_that_seems_to_go_back_does_not_panic_or_poll_forever() {
        let mut p = Policy::new(WINDOW);
        let t = Instant::now() + WINDOW;
        p.answered(t);
        p.answered(t);
        assert!(p.keep_polling(t - WINDOW / 2));
        assert!(!p.keep_polling(t + WINDOW));
    }

    #[test]
    fn the_setting_is_auto_off_or_a_bounded_window() {
        assert_eq!(IdlePollSetting::parse("auto"), Ok(IdlePollSetting::Auto));
        assert_eq!(IdlePollSetting::parse("AUTO"), Ok(IdlePollSetting::Auto));
        assert_eq!(IdlePollSetting::parse(""), Ok(IdlePollSetting::Auto));
        assert_eq!(
            IdlePollSetting::parse("0"),
            Ok(IdlePollSetting::Window(Duration::ZERO))
        );
        assert_eq!(
            IdlePollSetting::parse("250"),
            Ok(IdlePollSetting::Window(Duration::from_micros(250)))
        );
        assert!(IdlePollSetting::parse("100001").is_err());
        assert!(IdlePollSetting::parse("fast").is_err());
    }

    #[test]
    fn auto_polls_only_with_a_core_per_worker_and_no_quota() {
        let free = Machine {
            cores: 2,
            quota: None,
        };
        let auto = IdlePollSetting::Auto;
        assert_eq!(resolve(auto, free, 2).0, AUTO_WINDOW);
        let (window, why) = resolve(auto, Machine { cores: 1, ..free }, 2);
        assert_eq!(window, Duration::ZERO);
        assert!(why.contains("1 cores for 2 HTTP workers"), "{why}");
        let limited = Machine {
            quota: Some(1.5),
            ..free
        };
        let (window, why) = resolve(auto, limited, 2);
        assert_eq!(window, Duration::ZERO);
        assert!(why.contains("quota of 1.50 cores"), "{why}");
        // A window that is set is used whatever the machine; zero is off.
        let set = IdlePollSetting::Window(Duration::from_micros(300));
        assert_eq!(resolve(set, limited, 2).0, Duration::from_micros(300));
        let off = IdlePollSetting::Window(Duration::ZERO);
        assert_eq!(resolve(off, free, 2).0, Duration::ZERO);
    }

    fn files(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect();
        move |path| {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, c)| c.clone())
        }
    }

    #[test]
    fn a_cgroup_quota_is_found_in_v2_and_v1_and_above_the_process() {
        let v2 = files(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/cpu.max", "150000 100000\n"),
        ]);
        assert_eq!(cgroup_cpu_quota(&v2), Some(1.5));
        let unlimited = files(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/cpu.max", "max 100000\n"),
        ]);
        assert_eq!(cgroup_cpu_quota(&unlimited), None);
        // v1, the process two levels down; the parent's quota is the smaller one.
        let v1 = files(&[
            (
                "/proc/self/cgroup",
                "5:memory:/a/b\n4:cpu,cpuacct:/a/b\n0::/\n",
            ),
            ("/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", "-1\n"),
            (
                "/sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us",
                "100000\n",
            ),
            ("/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "50000\n"),
            ("/sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(cgroup_cpu_quota(&v1), Some(0.5));
        let v1_unlimited = files(&[
            ("/proc/self/cgroup", "4:cpu,cpuacct:/\n"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(cgroup_cpu_quota(&v1_unlimited), None);
        assert_eq!(cgroup_cpu_quota(&files(&[])), None);
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

        // Two answers close together: requests are coming faster than the window.
        poll.answered();
        poll.answered();
        tokio::time::sleep(window * 3).await;
        let after_first = poll.polls.get();
        assert!(after_first > 0, "close answers must start the poller");
        tokio::time::sleep(window * 2).await;
        assert_eq!(
            poll.polls.get(),
            after_first,
            "the poller must stop once the window has passed"
        );

        poll.answered();
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
