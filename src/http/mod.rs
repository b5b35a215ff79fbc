//! The HTTP server: routes, security headers, limits, JSON errors everywhere.

mod access;
mod admin;
mod dead_letters;
mod error;
pub mod idle_poll;
mod ops;
mod orders;
mod pages;
mod state;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};

pub use error::ApiError;
pub use state::AppState;

use self::admin::AdminAuth;

use crate::config::AdminToken;
use crate::metrics::METRICS;

/// Only the service's own scripts and styles; no inline code, no third parties.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The request metrics of both listeners, recorded into the service's registry; `/metrics`
/// itself is a route of the admin listener only.
pub fn http_metrics() -> anyhow::Result<PrometheusMetrics> {
    PrometheusMetricsBuilder::new("orders")
        .registry(METRICS.registry.clone())
        // Unknown paths share one label value instead of one series per path.
        .mask_unmatched_patterns("UNKNOWN")
        .build()
        .map_err(|e| anyhow::anyhow!("Failed to set up HTTP metrics: {e}"))
}

/// An `App` with what both listeners share: state, JSON errors everywhere, request metrics,
/// the admin listener's `$guard` (who may ask), standard methods only, security headers,
/// request ids and the access log.
macro_rules! app_with_defaults {
    ($state:expr, $prometheus:expr $(, $guard:expr)?) => {
        App::new()
            .app_data($state.clone())
            .app_data(web::Data::new(access::AccessLog::new($state.access_log)))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::BadRequest(format!("bad query string: {e}")).into()
            }))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("bad path: {e}")).into()),
            )
            .wrap(ErrorHandlers::new().default_handler(json_error))
            .wrap($prometheus.clone())
            // Outside the metrics middleware: a refused request costs no series.
            $(.wrap($guard))?
            // Outside the metrics middleware: a client inventing methods cannot mint series.
            .wrap(from_fn(standard_methods_only))
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .wrap(from_fn(access::request_id_and_access_log))
    };
}

/// What both servers share: signals are `main`'s, slow or silent clients are cut off, and
/// the stop waits at most 5 s for requests in progress.
macro_rules! with_limits {
    ($server:expr) => {
        $server
            .disable_signals()
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(2))
            .shutdown_timeout(5)
    };
}

/// `GET` and `HEAD` on one handler (actix sends no body for `HEAD`).
macro_rules! get_or_head {
    ($path:expr, $handler:expr) => {
        web::resource($path)
            .route(web::get().to($handler))
            .route(web::head().to($handler))
    };
}

/// The public listener (`HTTP_ADDR`): the page, single orders, probes; the recent-orders
/// list only with `PUBLIC_ORDER_LIST` (ids are the only key to an order). Nothing of the
/// admin listener answers here.
pub fn public_server(
    listener: TcpListener,
    state: web::Data<AppState>,
    prometheus: PrometheusMetrics,
    options: PublicOptions,
) -> anyhow::Result<Server> {
    let index = web::Data::new(pages::PublicIndex::new(options.order_list));
    let server = HttpServer::new(move || {
        // The host worker polls after lookups from the other workers too (they are requests
        // for it): otherwise a steady client on another worker waits for this one to wake.
        if state.cache.host_here(idle_poll::answered_on_this_thread) {
            log::debug!(
                "the cache actor runs on {:?}",
                std::thread::current().name()
            );
        }
        let poll = idle_poll::IdlePoll::start(options.idle_poll);
        app_with_defaults!(state, prometheus)
            // Outermost: the window starts once the whole answer is built.
            .wrap_fn(move |req, srv| {
                let answer = srv.call(req);
                let poll = poll.clone();
                async move {
                    let res = answer.await;
                    poll.answered();
                    res
                }
            })
            .app_data(cache_client(&state))
            .app_data(index.clone())
            // Resources answer 405 (not 404) for a method they do not serve.
            .service(web::resource("/order/{order_uid}").get(orders::get_order))
            .configure(|cfg| {
                if options.order_list {
                    cfg.service(web::resource("/orders").get(orders::recent_orders));
                }
            })
            .service(get_or_head!(["/health", "/health/ready"], ops::ready))
            .service(get_or_head!("/health/live", ops::live))
            .service(web::resource("/openapi.json").get(openapi))
            .service(web::resource(["/", "/index.html"]).get(page))
            .configure(|cfg| pages::serve(cfg, pages::public_files()))
            .default_service(web::to(not_found))
    })
    .workers(options.workers);
    Ok(with_limits!(server).listen(listener)?.run())
}

/// How the public listener runs.
#[derive(Debug, Clone, Copy)]
pub struct PublicOptions {
    /// Worker threads.
    pub workers: usize,
    /// `HTTP_IDLE_POLL_US` (see `idle_poll`).
    pub idle_poll: Duration,
    /// `PUBLIC_ORDER_LIST`: serve `GET /orders` here too.
    pub order_list: bool,
}

/// A worker's client of the cache; built in the `HttpServer` factory, so one per worker
/// (see `cache::client`).
fn cache_client(state: &AppState) -> web::Data<crate::cache::CacheClient> {
    web::Data::new(state.cache.client())
}

/// The admin listener (`ADMIN_ADDR`, loopback unless `ADMIN_TOKEN` is set): the operator's
/// page, metrics, statistics, the recent-orders list and single orders, dead letters and
/// their replay, probes. See [`admin::guard`] for who may ask.
pub fn admin_server(
    listener: TcpListener,
    state: web::Data<AppState>,
    prometheus: PrometheusMetrics,
    token: Option<AdminToken>,
) -> anyhow::Result<Server> {
    let token = web::Data::new(AdminAuth(token));
    let server = HttpServer::new(move || {
        app_with_defaults!(state, prometheus, from_fn(admin::guard))
            .app_data(token.clone())
            .app_data(cache_client(&state))
            .service(web::resource("/metrics").get(admin::metrics))
            .service(web::resource("/stats").get(ops::stats))
            .service(web::resource("/orders").get(orders::recent_orders))
            .service(web::resource("/order/{order_uid}").get(orders::get_order))
            .service(web::resource("/dead-letters").get(dead_letters::list))
            .service(
                web::resource("/dead-letters/replay")
                    .app_data(dead_letters::replay_body_config())
                    .post(dead_letters::replay),
            )
            .service(get_or_head!(["/health", "/health/ready"], ops::ready))
            .service(get_or_head!("/health/live", ops::live))
            .configure(|cfg| pages::serve(cfg, pages::admin_files()))
            .default_service(web::to(not_found))
    })
    .workers(1);
    Ok(with_limits!(server).listen(listener)?.run())
}

/// Turns any error response that is not JSON yet (actix's own 404/405/400 for odd paths,
/// methods or headers) into `{"error", "detail"}`.
fn json_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        400..=499 => "bad_request",
        _ => "internal",
    };
    let detail = status.canonical_reason().unwrap_or("error").to_string();
    let (req, mut res) = res.into_parts();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": code, "detail": detail }).to_string();
    let res = res.set_body(BoxBody::new(body));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, res).map_into_right_body(),
    ))
}

/// Answers 405 to non-standard HTTP methods before anything else sees the request.
async fn standard_methods_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    use actix_web::http::Method;
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if STANDARD.contains(req.method()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let detail = "unsupported HTTP method".to_string();
    let response = HttpResponse::MethodNotAllowed().json(error::ErrorBody {
        error: "method_not_allowed",
        detail: &detail,
    });
    Ok(req.into_response(response).map_into_right_body())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(no_such_resource(&req))
}

fn no_such_resource(req: &HttpRequest) -> ApiError {
    let path: String = req.path().chars().take(100).collect();
    ApiError::NotFound(format!("no such resource: {path}"))
}

async fn page(index: web::Data<pages::PublicIndex>) -> HttpResponse {
    index.response()
}

const OPENAPI_JSON: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}
