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

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `ACCESS_LOG`: whether each request is logged (target `orders_service::access`, level info).
#[derive(Debug, Clone, Copy)]
pub struct AccessLog(pub bool);

/// A client's request id, if it is one we may log and echo.
pub fn acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 16 random hex digits.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub async fn request_id_and_access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if acceptable(v.as_bytes()) => v.clone(),
        _ => HeaderValue::from_str(&new_id()).expect("hex is a valid header value"),
    };
    let log = req.app_data::<web::Data<AccessLog>>().is_some_and(|a| a.0)
        && log::log_enabled!(target: crate::logging::ACCESS_TARGET, log::Level::Info);
    // Only what the access line needs, and only when it is written.
    let logged = log.then(|| (req.method().clone(), req.peer_addr(), Instant::now()));
    let mut res = next.call(req).await?;
    res.headers_mut().insert(REQUEST_ID, id.clone());
    if let Some((method, client, started)) = logged {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "UNKNOWN".to_string());
        let status = res.status().as_u16();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let id = id.to_str().unwrap_or_default();
        let client = client.map_or_else(|| "-".to_string(), |a| a.ip().to_string());
        log::info!(
            target: crate::logging::ACCESS_TARGET,
            client = client.as_str(), method = method.as_str(), route = route.as_str(),
            status = status, duration_ms = ms, request_id = id;
            "{client} {method} {route} {status} {ms:.3} ms"
        );
    }
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
        assert_eq!(new_id().len(), 16);
        assert!(acceptable(new_id().as_bytes()));
    }
}
