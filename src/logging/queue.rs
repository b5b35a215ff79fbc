//! The log's way out: lines go through a bounded queue to one thread that writes them,
//! buffered, to the log's destination, so a thread that logs (an HTTP worker writing an
//! access line above all) never waits for a write or for another thread's write.
//!
//! The policy when the queue is full: an access line is dropped and counted
//! (`orders_access_log_dropped_total`) — a worker never blocks on the log; every other line
//! waits for room, as it waited for stderr before (they are rare and are the ones an
//! operator needs). A full queue means the destination takes less than the service writes
//! (a stalled pipe, a slow disk).
//!
//! The writer thread sleeps in the queue while nothing is logged (an idle service wakes no
//! thread for its log). An access line lets the lines after it gather for up to `linger`
//! before they are written and flushed in one go (one write for thousands of lines under
//! load, at most a few wake-ups a second); any other line is written and flushed at once,
//! with the access lines before it.
//! [`LineQueue::flush`] writes out everything queued before it (shutdown calls it).
//!
//! An access line travels as its fields ([`AccessLine`]) and is formatted here, by the writer
//! thread: a worker pays for a few copies, not for the formatting.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use prometheus::IntCounter;

use super::LogFormat;
use super::access::{AccessFormatter, AccessLine};

/// Lines the queue holds: ~0.5 s of access lines at 35,000 requests/s.
pub const CAPACITY: usize = 16_384;
/// How long an access line waits for the lines after it: a `tail -f` sees it within this.
pub const LINGER: Duration = Duration::from_millis(100);
/// The writer's buffer.
const BUFFER_BYTES: usize = 64 * 1024;

/// What a line may cost its writer when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Dropped and counted (the access log).
    Droppable,
    /// Waits for room.
    Lossless,
}

/// One line of the log.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// Formatted by the thread that logged it (newline included).
    Formatted(Vec<u8>),
    /// An access line's fields, formatted by the writer thread.
    Access(AccessLine),
}

/// What became of one line.
#[derive(Debug, PartialEq)]
pub enum Sent {
    Queued,
    /// The queue was full; counted.
    Dropped,
    /// The writer thread is gone (it never is unless the destination panicked); the line is
    /// handed back so that the caller can write it itself.
    Closed(Line),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct LineQueue {
    lines: Sender<(Line, Priority)>,
    /// Flush requests, apart from the lines: one never waits for room in a full queue. `None`
    /// only wakes the writer (a line that is not to wait for the linger was queued).
    flushes: Sender<Option<Sender<()>>>,
    dropped: IntCounter,
}

impl LineQueue {
    /// Starts the writer thread on `out`; it formats access lines in `format`.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        format: LogFormat,
        capacity: usize,
        linger: Duration,
        dropped: IntCounter,
    ) -> io::Result<Self> {
        let (lines, lines_rx) = crossbeam_channel::bounded(capacity);
        let (flushes, flushes_rx) = crossbeam_channel::bounded(16);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(&lines_rx, &flushes_rx, out, format, linger))?;
        Ok(Self {
            lines,
            flushes,
            dropped,
        })
    }

    /// Queues one line under `priority`'s policy.
    pub fn send(&self, line: Line, priority: Priority) -> Sent {
        let refused = match priority {
            Priority::Droppable => match self.lines.try_send((line, priority)) {
                Ok(()) => return Sent::Queued,
                Err(TrySendError::Full(_)) => {
                    self.dropped.inc();
                    return Sent::Dropped;
                }
                Err(TrySendError::Disconnected(refused)) => refused,
            },
            Priority::Lossless => match self.lines.send((line, priority)) {
                Ok(()) => {
                    // Wakes a writer lingering after an access line; if nudges are pending
                    // already, this line is written with them.
                    let _ = self.flushes.try_send(None);
                    return Sent::Queued;
                }
                Err(e) => e.into_inner(),
            },
        };
        Sent::Closed(refused.0)
    }

    /// Writes out and flushes every line queued before this call. Waits at most `wait` (a
    /// stalled destination must not hold up a shutdown); returns whether it was done.
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (ack, done) = crossbeam_channel::bounded(1);
        self.flushes.send_deadline(Some(ack), deadline).is_ok()
            && done.recv_deadline(deadline).is_ok()
    }
}

/// The writer thread: until the queue is gone.
fn write_lines<W: Write>(
    lines: &Receiver<(Line, Priority)>,
    flushes: &Receiver<Option<Sender<()>>>,
    out: W,
    format: LogFormat,
    linger: Duration,
) {
    let mut out = io::BufWriter::with_capacity(BUFFER_BYTES, out);
    let mut access = AccessFormatter::new(format);
    loop {
        let mut ack = None;
        crossbeam_channel::select! {
            recv(lines) -> line => {
                let Ok((line, priority)) = line else { break };
                put(&mut out, line, &mut access);
                if priority == Priority::Droppable {
                    // The lines after it gather meanwhile; only a flush request cuts this
                    // short (a send into the queue wakes nobody while the writer waits here).
                    ack = flushes.recv_timeout(linger).ok().flatten();
                }
            }
            recv(flushes) -> request => {
                let Ok(request) = request else { break };
                ack = request;
            }
        }
        for (line, _) in lines.try_iter() {
            put(&mut out, line, &mut access);
        }
        let _ = out.flush();
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }
    let _ = out.flush();
}

fn put(out: &mut impl Write, line: Line, access: &mut AccessFormatter) {
    // Nothing to do about a log that cannot be written; the next line tries again.
    let _ = match line {
        Line::Formatted(bytes) => out.write_all(&bytes),
        Line::Access(line) => access.write(&line, out),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A destination the test can read, and stall: each write first takes `gate`.
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
        entered: Option<Sender<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(entered) = &self.entered {
                let _ = entered.try_send(());
            }
            let _gate = self.gate.lock().expect("gate");
            self.written.lock().expect("written").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn bytes(text: &str) -> Line {
        Line::Formatted(text.as_bytes().to_vec())
    }

    /// A queue whose writer waits an hour after an access line: only a flush or another
    /// line makes it write sooner.
    fn lingering(sink: &Sink) -> LineQueue {
        LineQueue::start(
            sink.clone(),
            LogFormat::Text,
            CAPACITY,
            Duration::from_secs(3600),
            counter(),
        )
        .expect("start")
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "test").expect("counter")
    }

    #[test]
    fn a_full_queue_drops_and_counts_access_lines_without_blocking() {
        let (entered_tx, entered) = crossbeam_channel::bounded(1);
        let sink = Sink {
            entered: Some(entered_tx),
            ..Sink::default()
        };
        let stalled = sink.gate.lock().expect("gate");
        let dropped = counter();
        let queue = LineQueue::start(
            sink.clone(),
            LogFormat::Text,
            2,
            Duration::ZERO,
            dropped.clone(),
        )
        .expect("start");
        // The first line reaches the destination, which stalls; two more fill the queue.
        assert_eq!(queue.send(bytes("0\n"), Priority::Droppable), Sent::Queued);
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer took the first line");
        // In another thread, so that a send that blocks fails the test instead of hanging it.
        let sender = queue.clone();
        let (result_tx, results) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let sent: Vec<Sent> = (1..=5)
                .map(|i| sender.send(bytes(&format!("{i}\n")), Priority::Droppable))
                .collect();
            let _ = result_tx.send(sent);
        });
        let sent = results
            .recv_timeout(Duration::from_secs(10))
            .expect("a send blocked on a full queue");
        assert_eq!(
            sent,
            [
                Sent::Queued,
                Sent::Queued,
                Sent::Dropped,
                Sent::Dropped,
                Sent::Dropped
            ]
        );
        assert_eq!(dropped.get(), 3);
        // Once the destination moves again, what was queued is written, in order.
        drop(stalled);
        assert!(queue.flush(Duration::from_secs(10)));
        assert_eq!(*sink.written.lock().expect("written"), b"0\n1\n2\n");
    }

    #[test]
    fn flush_writes_out_every_line_queued_before_it() {
        let sink = Sink::default();
        // Without the flush nothing would be written yet.
        let queue = lingering(&sink);
        let mut expected = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i}\n").into_bytes();
            expected.extend_from_slice(&line);
            let priority = if i % 2 == 0 {
                Priority::Droppable
            } else {
                Priority::Lossless
            };
            assert_eq!(queue.send(Line::Formatted(line), priority), Sent::Queued);
        }
        assert!(queue.flush(Duration::from_secs(10)));
        assert_eq!(*sink.written.lock().expect("written"), expected);
    }

    #[test]
    fn other_lines_are_written_at_once_with_the_access_lines_before_them() {
        let sink = Sink::default();
        let queue = lingering(&sink);
        assert_eq!(
            queue.send(bytes("access\n"), Priority::Droppable),
            Sent::Queued
        );
        assert_eq!(
            queue.send(bytes("warning\n"), Priority::Lossless),
            Sent::Queued
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.written.lock().expect("written").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a warning waited for the linger"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*sink.written.lock().expect("written"), b"access\nwarning\n");
    }

    /// Fails if an access line sent as fields is lost, or written other than as its text.
    #[test]
    fn an_access_line_sent_as_fields_is_written_as_its_text() {
        let sink = Sink::default();
        let queue = LineQueue::start(sink.clone(), LogFormat::Text, CAPACITY, LINGER, counter())
            .expect("start");
        let started = Instant::now();
        let line = AccessLine {
            started,
            answered: started + Duration::from_micros(42),
            client: None,
            method: actix_web::http::Method::HEAD,
            route: "/health/live".into(),
            status: 204,
            request_id: super::super::RequestId::Made(0xff),
        };
        assert_eq!(
            queue.send(Line::Access(line), Priority::Droppable),
            Sent::Queued
        );
        assert!(queue.flush(Duration::from_secs(10)));
        let written =
            String::from_utf8(sink.written.lock().expect("written").clone()).expect("utf-8");
        assert!(
            written.ends_with(
                "] - HEAD /health/live 204 0.042 ms client=- method=HEAD route=/health/live \
                 status=204 duration_ms=0.042 request_id=00000000000000ff\n"
            ),
            "{written}"
        );
    }
}
