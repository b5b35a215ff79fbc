//! Request ids and the access log, outermost on both listeners (so a 401, a 421, a 404 or a
//! 405 is logged, with the client's address, and carries an id too).
//!
//! `X-Request-Id`: a client's id is kept when it is 1–128 characters of `A-Z a-z 0-9 . _ -`
//! (anything else could forge log lines), otherwise one is made; either way it is returned.

use std::borrow::Cow;
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
    let value =
        HeaderValue::from_bytes(&crate::logging::hex16(id)).expect("hex is a valid header value");
    (id, value)
}

/// Most distinct route patterns a worker keeps as `&'static str` (the app has a few dozen;
/// the bound only guards against a pattern per request, which actix-web never gives).
const MAX_INTERNED_ROUTES: usize = 256;

thread_local! {
    /// This worker's route patterns, leaked once each: an access line then carries a
    /// `&'static str`, and no string allocated here is freed by the log's thread (a free
    /// across threads costs the allocator's lock).
    static ROUTES: std::cell::RefCell<std::collections::HashSet<&'static str>> =
        std::cell::RefCell::default();
}

/// The route's pattern (`/order/{order_uid}`), or `UNKNOWN` for a request no route matched.
fn route_of(req: &actix_web::HttpRequest) -> Cow<'static, str> {
    let Some(pattern) = req.match_pattern() else {
        return Cow::Borrowed("UNKNOWN");
    };
    ROUTES.with(|routes| {
        let mut routes = routes.borrow_mut();
        if let Some(interned) = routes.get(pattern.as_str()) {
            return Cow::Borrowed(*interned);
        }
        if routes.len() >= MAX_INTERNED_ROUTES {
            return Cow::Owned(pattern);
        }
        let interned: &'static str = Box::leak(pattern.into_boxed_str());
        routes.insert(interned);
        Cow::Borrowed(interned)
    })
}

pub async fn request_id_and_access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (made, id) = match req.headers().get(&REQUEST_ID) {
        Some(v) if acceptable(v.as_bytes()) => (None, v.clone()),
        _ => {
            let (n, value) = new_id();
            (Some(n), value)
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
            route: route_of(res.request()),
            status: res.status().as_u16(),
            started,
            // A made id as its number: no shared bytes to count across threads.
            request_id: made.map_or_else(|| RequestId::Given(id.clone()), RequestId::Made),
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

    /// Fails if a route is logged as its path (an order id in the log), if a matched route
    /// is not named by its pattern, or if each request allocates its pattern anew for the log.
    #[actix_web::test]
    async fn a_route_is_its_pattern_kept_once_per_worker() {
        use actix_web::{App, HttpResponse, test};
        let seen: std::rc::Rc<std::cell::RefCell<Vec<Cow<'static, str>>>> = Default::default();
        let log = seen.clone();
        let app = test::init_service(
            App::new()
                .wrap_fn(move |req, srv| {
                    let answer = actix_web::dev::Service::call(srv, req);
                    let log = log.clone();
                    async move {
                        let res = answer.await?;
                        log.borrow_mut().push(route_of(res.request()));
                        Ok(res)
                    }
                })
                .route("/order/{order_uid}", web::get().to(HttpResponse::Ok))
                .default_service(web::to(HttpResponse::NotFound)),
        )
        .await;
        for uri in [
            "/order/b563feb7b2b84b6test",
            "/order/another",
            "/nothing/here",
        ] {
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        }
        let seen = seen.borrow();
        assert_eq!(seen[0], "/order/{order_uid}");
        assert_eq!(seen[2], "UNKNOWN");
        let (Cow::Borrowed(first), Cow::Borrowed(second)) = (&seen[0], &seen[1]) else {
            panic!("a route pattern was not interned: {seen:?}");
        };
        assert!(std::ptr::eq(*first, *second), "the pattern was kept twice");
    }
}
