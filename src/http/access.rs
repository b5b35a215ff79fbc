//! Request ids and the access log, outermost on both listeners (so a 401, a 421, a 404 or a
//! 405 is logged, with the client's address, and carries an id too).
//!
//! `X-Request-Id`: a client's id is kept when it is 1–128 characters of `A-Z a-z 0-9 . _ -`
//! (anything else could forge log lines), otherwise one is made; either way it is returned.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::logging::RequestId;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether each request is logged: `ACCESS_LOG`, and its target (`orders_service::access`)
/// enabled at info by `RUST_LOG` (asked once: the filter does not change while the service
/// runs).
#[derive(Debug, Clone, Copy)]
pub struct AccessLog(bool);

impl AccessLog {
    pub fn new(access_log: bool) -> Self {
        Self(
            access_log
                && log::log_enabled!(target: crate::logging::ACCESS_TARGET, log::Level::Info),
        )
    }
}

/// A client's request id, if it is one we may log and echo.
pub fn acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A request id made here: 16 random hex digits.
pub fn new_id() -> (u64, HeaderValue) {
    let id = rand::random::<u64>();
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(id >> (60 - 4 * i)) as usize & 0xf];
    }
    let value = HeaderValue::from_bytes(&hex).expect("hex is a valid header value");
    (id, value)
}

pub async fn request_id_and_access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The log gets a made id as its number: no shared bytes to count across threads.
    let (logged_id, id) = match req.headers().get(&REQUEST_ID) {
        Some(v) if acceptable(v.as_bytes()) => (RequestId::Given(v.clone()), v.clone()),
        _ => {
            let (n, value) = new_id();
            (RequestId::Made(n), value)
        }
    };
    let log = req.app_data::<web::Data<AccessLog>>().is_some_and(|a| a.0);
    // Only what the access line needs, and only when it is written; the log's own thread
    // formats it.
    let logged = log.then(|| (req.method().clone(), req.peer_addr(), Instant::now()));
    let mut res = next.call(req).await?;
    if let Some((method, client, started)) = logged {
        crate::logging::access(crate::logging::AccessLine {
            answered: Instant::now(),
            client: client.map(|a| a.ip()),
            method,
            route: res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "UNKNOWN".to_string()),
            status: res.status().as_u16(),
            started,
            request_id: logged_id,
        });
    }
    res.headers_mut().insert(REQUEST_ID, id);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_taken_from_clients() {
        assert!(acceptable(b"abc-123_X.y"));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"has space"));
        assert!(!acceptable(b"line\nbreak"));
        assert!(!acceptable(&[b'a'; 129]));
        let (n, made) = new_id();
        assert_eq!(made.to_str().expect("ascii"), format!("{n:016x}"));
        assert!(acceptable(made.as_bytes()));
    }
}
