//! The access line: what an HTTP worker knows of a request when it has answered it, handed
//! to the log's writer thread as fields and formatted there. A worker under load pays for a
//! few copies and one queue slot; the formatting (the time, the float, the address, the
//! key-values) is the writer's.
//!
//! The line reads exactly as env_logger writes a record with these fields (the test below
//! compares the two), so a reader of the log sees one format whichever thread formatted it.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::Method;
use actix_web::http::header::HeaderValue;
use chrono::{DateTime, SecondsFormat, Utc};

use super::{ACCESS_TARGET, LogFormat};

/// One answered request: what a worker takes of it without formatting anything (one clock
/// read; the wall-clock time is worked out by the writer).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLine {
    pub started: Instant,
    /// When the answer was ready (the line's time: not when it was written).
    pub answered: Instant,
    pub client: Option<IpAddr>,
    pub method: Method,
    /// The route's pattern (`/order/{id}`), never the path: ids are personal data's keys.
    pub route: Cow<'static, str>,
    pub status: u16,
    pub request_id: RequestId,
}

/// The request's `X-Request-Id`.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestId {
    /// Made by the service: written as 16 hex digits.
    Made(u64),
    /// The client's own (checked by `http::access::acceptable`).
    Given(HeaderValue),
}

impl AccessLine {
    pub fn duration(&self) -> Duration {
        self.answered.saturating_duration_since(self.started)
    }

    /// The wall-clock time of the answer, from the monotonic clock's distance to it.
    pub fn time(&self) -> SystemTime {
        SystemTime::now() - self.answered.elapsed()
    }

    /// The duration in whole µs, as `ms` text with three decimals and as a number of ms.
    fn duration_ms(&self) -> (DurationMs, f64) {
        let micros = self.duration().as_micros();
        (DurationMs(micros), micros as f64 / 1000.0)
    }

    /// Hands the request id's text to `with` (a made id is written as 16 hex digits).
    fn with_id<R>(&self, with: impl FnOnce(&str) -> R) -> R {
        match &self.request_id {
            RequestId::Made(n) => with(std::str::from_utf8(&hex16(*n)).unwrap_or_default()),
            RequestId::Given(value) => with(value.to_str().unwrap_or_default()),
        }
    }

    /// Hands the line's record to `with` (the message and the key-values: `client`, `method`,
    /// `route`, `status`, `duration_ms`, `request_id`).
    fn with_record<R>(&self, with: impl FnOnce(&log::Record<'_>) -> R) -> R {
        let client = Client(self.client).to_string();
        let (ms_text, ms) = self.duration_ms();
        let method = self.method.as_str();
        let route = &*self.route;
        let status = self.status;
        self.with_id(|id| {
            let kvs: [(&str, log::kv::Value<'_>); 6] = [
                ("client", client.as_str().into()),
                ("method", method.into()),
                ("route", route.into()),
                ("status", status.into()),
                ("duration_ms", ms.into()),
                ("request_id", id.into()),
            ];
            with(
                &log::Record::builder()
                    .level(log::Level::Info)
                    .target(ACCESS_TARGET)
                    .args(format_args!(
                        "{client} {method} {route} {status} {ms_text} ms"
                    ))
                    .key_values(&kvs)
                    .build(),
            )
        })
    }

    /// Text as env_logger's default format writes the record without styles, written
    /// directly (no record, no key-value visitor: this runs once per request).
    fn write_text(&self, out: &mut impl Write, stamp: &str) -> io::Result<()> {
        let client = Client(self.client);
        let (ms_text, ms) = self.duration_ms();
        let method = self.method.as_str();
        let route = &*self.route;
        let status = self.status;
        self.with_id(|id| {
            writeln!(
                out,
                "[{stamp} INFO  {ACCESS_TARGET}] {client} {method} {route} {status} {ms_text} ms \
                 client={client} method={method} route={route} status={status} duration_ms={ms} \
                 request_id={id}"
            )
        })
    }

    /// Logs the line through the installed logger, on this thread (when the log has no
    /// writer thread, or its lines are styled or filtered by their text).
    pub fn log(&self) {
        self.with_record(|record| log::logger().log(record));
    }
}

/// `n` as 16 lower-case hex digits (a made request id's text).
pub fn hex16(n: u64) -> [u8; 16] {
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(n >> (60 - 4 * i)) as usize & 0xf];
    }
    hex
}

/// Formats access lines on the writer thread; keeps the text of the current second.
pub struct AccessFormatter {
    format: LogFormat,
    second: Option<u64>,
    stamp: String,
}

impl AccessFormatter {
    pub fn new(format: LogFormat) -> Self {
        Self {
            format,
            second: None,
            stamp: String::new(),
        }
    }

    /// Writes `line` in the log's format, stamped with the time of its answer.
    pub fn write(&mut self, line: &AccessLine, out: &mut impl Write) -> io::Result<()> {
        self.write_at(line, out, line.time())
    }

    fn write_at(
        &mut self,
        line: &AccessLine,
        out: &mut impl Write,
        time: SystemTime,
    ) -> io::Result<()> {
        match self.format {
            LogFormat::Json => line.with_record(|record| {
                writeln!(out, "{}", super::json_line_at(record, time.into()))
            }),
            LogFormat::Text => {
                let second = time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if self.second != Some(second) {
                    self.second = Some(second);
                    self.stamp =
                        DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true);
                }
                line.write_text(out, &self.stamp)
            }
        }
    }
}

/// A duration in µs, shown in ms with three decimals.
struct DurationMs(u128);

impl std::fmt::Display for DurationMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// The client's address, or `-`.
struct Client(Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// 2026-11-30T00:53:20.123Z.
    const TIME: Duration = Duration::from_millis(1_796_000_000_123);

    fn line() -> AccessLine {
        let started = Instant::now();
        AccessLine {
            started,
            answered: started + Duration::from_micros(1_250),
            client: Some("192.0.2.7".parse().expect("ip")),
            method: Method::GET,
            route: "/order/{id}".into(),
            status: 200,
            request_id: RequestId::Made(0x0123_4567_89ab_cdef),
        }
    }

    /// env_logger's own line for the same record, as the logger is configured for a
    /// destination without styles.
    fn env_loggers_line(access: &AccessLine) -> String {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let shared = Shared::default();
        let logger = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Info)
            .write_style(env_logger::WriteStyle::Never)
            .target(env_logger::Target::Pipe(Box::new(shared.clone())))
            .build();
        access.with_record(|record| log::Log::log(&logger, record));
        let bytes = shared.0.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn the_writer_threads_text_line_reads_as_env_loggers() {
        let access = line();
        let mut ours = Vec::new();
        AccessFormatter::new(LogFormat::Text)
            .write_at(&access, &mut ours, SystemTime::UNIX_EPOCH + TIME)
            .expect("write");
        let ours = String::from_utf8(ours).expect("utf-8");
        assert_eq!(
            ours,
            "[2026-11-30T00:53:20Z INFO  orders_service::access] 192.0.2.7 GET /order/{id} 200 \
             1.250 ms client=192.0.2.7 method=GET route=/order/{id} status=200 \
             duration_ms=1.25 request_id=0123456789abcdef\n"
        );
        // The time of the answer, not of the writing (its seconds, as env_logger's).
        let mut now = Vec::new();
        AccessFormatter::new(LogFormat::Text)
            .write(&access, &mut now)
            .expect("write");
        let stamped = String::from_utf8(now).expect("utf-8")[1..21].to_string();
        let expected =
            DateTime::<Utc>::from(SystemTime::now()).to_rfc3339_opts(SecondsFormat::Secs, true);
        assert!(
            stamped <= expected && stamped.len() == expected.len(),
            "{stamped} for an answer just given, now {expected}"
        );
        // env_logger stamps the time it formats at; everything after the time must agree.
        let theirs = env_loggers_line(&access);
        let after_time = |l: &str| l.split_once(' ').map(|(_, rest)| rest.to_string());
        assert_eq!(after_time(&ours), after_time(&theirs), "{theirs}");
    }

    #[test]
    fn the_json_line_carries_the_answers_time_and_typed_fields() {
        let mut access = line();
        access.client = None;
        access.request_id = RequestId::Given(HeaderValue::from_static("trace-42.a_b"));
        let mut out = Vec::new();
        AccessFormatter::new(LogFormat::Json)
            .write_at(&access, &mut out, SystemTime::UNIX_EPOCH + TIME)
            .expect("write");
        assert_eq!(out.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&out).expect("one json object");
        assert_eq!(json["time"], "2026-11-30T00:53:20.123Z");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["target"], ACCESS_TARGET);
        assert_eq!(json["message"], "- GET /order/{id} 200 1.250 ms");
        assert_eq!(json["client"], "-");
        assert_eq!(json["status"], 200);
        assert_eq!(json["duration_ms"], 1.25);
        assert_eq!(json["request_id"], "trace-42.a_b");
    }
}
