//! Logging: the format (`LOG_FORMAT=text|json`), and hygiene — per-message lines are
//! rate-limited (a flood of bad messages must not flood the log or its disk), and text that
//! comes from messages is cut before it is logged.
//!
//! Fields that matter (`order_uid`, `partition`, `offset`, `writer`, and the access log's
//! `method`, `route`, `status`, `duration_ms`, `request_id`) are log key-values: appended as
//! `key=value` in text, separate JSON fields in json.

mod access;
mod queue;

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::metrics::METRICS;

pub use access::{AccessLine, RequestId, hex16};
pub use queue::{Line, LineQueue, Priority, Sent};

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line: `time`, `level`, `target`, `message`, then the key-values.
    Json,
}

impl LogFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The access log's target: its lines may be dropped when the log's queue is full.
pub const ACCESS_TARGET: &str = "orders_service::access";

/// How long a shutdown waits for the log to be written out.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

static QUEUE: OnceLock<LineQueue> = OnceLock::new();
/// The log's format, set when the writer thread formats access lines itself (see [`init`]).
static ACCESS_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the logger (`RUST_LOG` filter, default `info`) in `LOG_FORMAT`'s format. Lines
/// are formatted by env_logger on the thread that logs and written by the log's own thread
/// (see `queue`), except access lines, which that thread formats itself; call [`flush`]
/// before the process exits.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // At debug level tokio-postgres logs every statement's bind parameters, i.e. the orders
    // themselves: never, whatever RUST_LOG says (this directive replaces one of RUST_LOG's).
    builder.filter_module("tokio_postgres::query", log::LevelFilter::Info);
    if format == LogFormat::Json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record)));
    }
    // env_logger colours only a terminal it writes to itself; ours is behind the queue.
    let style = std::env::var("RUST_LOG_STYLE").ok();
    let styled = match style.as_deref() {
        None => std::io::stderr().is_terminal(),
        Some(style) => style.eq_ignore_ascii_case("always"),
    };
    if style.is_none() && styled {
        builder.write_style(env_logger::WriteStyle::Always);
    }
    let queue = match LineQueue::start(
        std::io::stderr(),
        format,
        queue::CAPACITY,
        queue::LINGER,
        METRICS.access_log_dropped.clone(),
    ) {
        Ok(queue) => QUEUE.get_or_init(|| queue).clone(),
        Err(e) => {
            // Without a thread of its own the log is written by whoever logs, as before.
            eprintln!("orders-service: no log writer thread ({e}); logging synchronously");
            builder.init();
            return;
        }
    };
    // The writer thread formats access lines without styles and without a filter on their
    // text (`RUST_LOG=…/regex`): when either is asked for, env_logger formats them too.
    let filtered_by_text = std::env::var("RUST_LOG").is_ok_and(|filter| filter.contains('/'));
    if !styled && !filtered_by_text {
        let _ = ACCESS_FORMAT.set(format);
    }
    builder.target(env_logger::Target::Pipe(Box::new(QueueWriter {
        queue,
        line: Vec::new(),
    })));
    let inner = builder.build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(QueuedLogger { inner })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Logs an access line (the caller has checked that its target is enabled): handed to the
/// writer thread as fields when it formats them, else formatted here by env_logger. A full
/// queue drops it and counts it.
pub fn access(line: AccessLine) {
    match (QUEUE.get(), ACCESS_FORMAT.get()) {
        (Some(queue), Some(format)) => {
            if let Sent::Closed(line) = queue.send(Line::Access(line), Priority::Droppable) {
                write_here(line, *format);
            }
        }
        _ => line.log(),
    }
}

/// Writes a line on this thread, when the writer thread is gone.
fn write_here(line: Line, format: LogFormat) {
    let mut stderr = std::io::stderr().lock();
    let _ = match line {
        Line::Formatted(bytes) => stderr.write_all(&bytes),
        Line::Access(line) => access::AccessFormatter::new(format).write(&line, &mut stderr),
    };
}

/// Writes out every line logged so far (waits at most 2 s for a stalled destination).
pub fn flush() {
    if let Some(queue) = QUEUE.get() {
        queue.flush(FLUSH_WAIT);
    }
}

thread_local! {
    /// The priority of the record this thread is logging: env_logger hands its writer bytes,
    /// not records, and writes them on the thread that logs.
    static PRIORITY: Cell<Priority> = const { Cell::new(Priority::Lossless) };
}

/// env_logger (filter, format), with the record's priority passed to the writer.
struct QueuedLogger {
    inner: env_logger::Logger,
}

impl log::Log for QueuedLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        let priority = if record.target() == ACCESS_TARGET {
            Priority::Droppable
        } else {
            Priority::Lossless
        };
        PRIORITY.with(|p| p.set(priority));
        self.inner.log(record);
    }

    fn flush(&self) {
        flush();
    }
}

/// env_logger's destination: one formatted record per `write_all` + `flush`, each record
/// handed to the queue whole.
struct QueueWriter {
    queue: LineQueue,
    line: Vec<u8>,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = Line::Formatted(std::mem::take(&mut self.line));
        if let Sent::Closed(line) = self.queue.send(line, PRIORITY.with(Cell::get)) {
            write_here(line, LogFormat::Text);
        }
        Ok(())
    }
}

/// A record as one JSON object.
pub fn json_line(record: &log::Record<'_>) -> String {
    json_line_at(record, chrono::Utc::now())
}

/// A record as one JSON object, stamped `time`.
fn json_line_at(record: &log::Record<'_>, time: chrono::DateTime<chrono::Utc>) -> String {
    let mut line = serde_json::Map::new();
    line.insert(
        "time".into(),
        time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    let mut fields = JsonFields(&mut line);
    let _ = record.key_values().visit(&mut fields);
    serde_json::Value::Object(line).to_string()
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(f) = value.to_f64() {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_string(), json);
        Ok(())
    }
}

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

/// Logs one rejected message within the shared budget: its position and reason as fields,
/// its detail cut (it can quote the payload, which is personal data).
pub fn rejection(partition: i32, offset: i64, reason: &str, detail: &str) {
    if allowed(&REJECTIONS, log::Level::Info, "rejected messages") {
        log::info!(
            target: "orders_service::ingest",
            partition = partition, offset = offset, reason = reason;
            "rejected message: {}",
            cut(detail, MAX_LOGGED_CHARS)
        );
    }
}

/// Logs why a request failed (the client only gets a plain sentence), within a budget.
pub fn request_failure(level: log::Level, line: impl FnOnce() -> String) {
    if allowed(&REQUEST_FAILURES, level, "failed requests") {
        log::log!(level, "{}", line());
    }
}

/// Whether the budget allows one more line; says first how many were left out before.
fn allowed(budget: &Mutex<LogBudget>, level: log::Level, what: &str) -> bool {
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
            true
        }
        Budget::Skip => {
            METRICS.log_lines_suppressed.inc();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_has_the_standard_fields_and_the_key_values() {
        let kvs: &[(&str, i64)] = &[("partition", 3), ("offset", 17)];
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("orders_service::ingest")
            .args(format_args!("rejected message"))
            .key_values(&kvs)
            .build();
        let line: serde_json::Value = serde_json::from_str(&json_line(&record)).expect("json");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "orders_service::ingest");
        assert_eq!(line["message"], "rejected message");
        assert_eq!(line["partition"], 3);
        assert_eq!(line["offset"], 17);
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn log_formats_are_named() {
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(""), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("xml"), None);
    }

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
