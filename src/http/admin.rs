//! The admin listener's own parts: who may ask (the bearer token, or a loopback `Host` when
//! there is no token) and `/metrics`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::error::ErrorBody;
use super::pages;
use crate::config::AdminToken;
use crate::metrics::METRICS;

/// `ADMIN_TOKEN`, if set.
pub struct AdminAuth(pub Option<AdminToken>);

/// Who may ask, inside the request-id, access-log and security-header layers (a refusal
/// carries them and is logged with the client's address) and outside the request metrics (a
/// refused request costs no series):
/// - with `ADMIN_TOKEN`: every request but the page's own files needs
///   `Authorization: Bearer <token>`, else `401`;
/// - without it (the listener is then on loopback, see `config`): only requests addressed to
///   a loopback host are served, else `421`. A page on another site that a DNS-rebinding
///   attack points at 127.0.0.1 sends its own host name: it cannot read dead letters or post
///   a replay through the operator's browser.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AdminAuth>>()
        .and_then(|auth| auth.0.clone());
    let refusal = match &token {
        None => (!addressed_to_loopback(&req)).then(|| misdirected(&req)),
        Some(_)
            if req.method() == actix_web::http::Method::GET && pages::is_admin_file(req.path()) =>
        {
            None
        }
        Some(token) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
            (!presented.is_some_and(|p| token.matches(p))).then(unauthorized)
        }
    };
    match refusal {
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Some(response) => Ok(req.into_response(response).map_into_right_body()),
    }
}

fn unauthorized() -> HttpResponse {
    METRICS.admin_unauthorized.inc();
    HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"orders-service admin\"",
        ))
        .json(ErrorBody {
            error: "unauthorized",
            detail: "admin endpoints need the header Authorization: Bearer <ADMIN_TOKEN>",
        })
}

/// `421 Misdirected Request`: this listener does not answer for the host the request names
/// (RFC 9110 §15.5.20); `403` would say the client lacks a right it could be given.
fn misdirected(req: &ServiceRequest) -> HttpResponse {
    crate::logging::request_failure(log::Level::Warn, || {
        let host: String = req
            .headers()
            .get(header::HOST)
            .map(|h| {
                String::from_utf8_lossy(h.as_bytes())
                    .chars()
                    .take(100)
                    .collect()
            })
            .unwrap_or_default();
        let client = req
            .peer_addr()
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        format!(
            "admin request from {client} refused: Host {host:?} is not a loopback name and ADMIN_TOKEN is not set (a DNS-rebinding page, or a proxy in front of the listener: set ADMIN_TOKEN then)"
        )
    });
    HttpResponse::build(StatusCode::MISDIRECTED_REQUEST).json(ErrorBody {
        error: "misdirected_request",
        detail: "without ADMIN_TOKEN the admin listener answers only requests addressed to localhost, 127.0.0.0/8 or [::1]",
    })
}

/// Whether every name the request gives for its target (the `Host` header, and the
/// authority of an absolute-form target or of HTTP/2) is a loopback one; a request that
/// gives none is refused too.
fn addressed_to_loopback(req: &ServiceRequest) -> bool {
    let hosts = req.headers().get_all(header::HOST).map(|h| h.to_str().ok());
    let authority = req.uri().authority().map(|a| Some(a.as_str()));
    let mut named = false;
    for host in hosts.chain(authority) {
        named = true;
        if !host.is_some_and(is_loopback_host) {
            return false;
        }
    }
    named
}

/// `localhost`, an address of 127.0.0.0/8 or `[::1]`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    // `name`, `name:port`, `[v6]` or `[v6]:port`.
    let (name, port, bracketed) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => (inside, None, true),
            Some((inside, tail)) => match tail.strip_prefix(':') {
                Some(port) => (inside, Some(port), true),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port), false),
            None => (host, None, false),
        },
    };
    if port.is_some_and(|p| !is_port(p)) {
        return false;
    }
    if bracketed {
        name.parse::<Ipv6Addr>()
            .is_ok_and(|ip| IpAddr::V6(ip).to_canonical().is_loopback())
    } else {
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// 1–5 digits.
fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
}

/// `GET /metrics`: every metric of the service, Prometheus text format.
pub async fn metrics() -> HttpResponse {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&METRICS.registry.gather(), &mut body) {
        log::error!("cannot encode the metrics: {e}");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_addresses_are_loopback_hosts() {
        for host in [
            "localhost",
            "LocalHost:9081",
            "127.0.0.1",
            "127.0.0.1:9081",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:9081",
            "[::ffff:127.0.0.1]:9081",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:9081",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "localhost:",
            "localhost:9081:1",
            "localhost:http",
            "128.0.0.1",
            "0.0.0.0:9081",
            "10.0.0.1:9081",
            "::1",
            "[::1",
            "[::1]x",
            "[::2]:9081",
            "[127.0.0.1]",
            "[localhost]",
            "2130706433",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
