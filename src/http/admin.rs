//! The admin listener's own parts: the bearer-token check and `/metrics`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::error::ErrorBody;
use crate::config::AdminToken;
use crate::metrics::METRICS;

/// `ADMIN_TOKEN`, if set.
pub struct AdminAuth(pub Option<AdminToken>);

/// Answers `401` unless the request carries `Authorization: Bearer <ADMIN_TOKEN>` (when one
/// is set). The comparison takes the same time wherever the tokens differ.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AdminAuth>>()
        .and_then(|auth| auth.0.clone());
    let allowed = match &token {
        None => true,
        Some(_) if is_page_file(&req) => true,
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|presented| token.matches(presented)),
    };
    if allowed {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    METRICS.admin_unauthorized.inc();
    let response = HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"orders-service admin\"",
        ))
        .json(ErrorBody {
            error: "unauthorized",
            detail: "admin endpoints need the header Authorization: Bearer <ADMIN_TOKEN>",
        });
    Ok(req.into_response(response).map_into_right_body())
}

/// The operator page's own files: static, no data in them.
fn is_page_file(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET
        && matches!(
            req.path(),
            "/" | "/index.html"
                | "/admin.js"
                | "/admin.css"
                | "/favicon.svg"
                | "/dom.js"
                | "/base.css"
        )
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
