//! `/order/{order_uid}`, `/orders`, `/dead-letters`.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::cache_client::CacheClient;
use super::error::ApiError;
use crate::actors::cache_actor::Lookup;
use crate::actors::db_reader::{RecentDeadLetters, RecentOrders};
use crate::domain::rules::is_valid_order_uid;

const DEFAULT_LIMIT: i64 = 20;
/// What a client learns when an order cannot be read: the cause is in the log only.
const UNAVAILABLE: &str =
    "the order cannot be read right now (the database is unavailable); try again later";
const MAX_LIMIT: i64 = 1000;

/// `GET /order/{order_uid}`: the order exactly as produced; `X-Cache: hit|miss`.
pub async fn get_order(
    req: HttpRequest,
    cache: web::Data<CacheClient>,
) -> Result<HttpResponse, ApiError> {
    let uid = req.match_info().get("order_uid").unwrap_or_default();
    if !is_valid_order_uid(uid) {
        let shown: String = uid.chars().take(80).collect();
        return Err(ApiError::InvalidId(format!(
            "{shown:?} is not an order id: expected 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )));
    }
    let (json, cache) = match cache.get(uid.to_string()).await {
        Lookup::Hit(json) => (json, "hit"),
        Lookup::Miss(json) => (json, "miss"),
        Lookup::NotFound => return Err(ApiError::NotFound(format!("no order with id {uid}"))),
        Lookup::Unavailable => return Err(ApiError::Unavailable(UNAVAILABLE.into())),
    };
    // Static names and values: no parsing or allocation per response on the hottest path.
    Ok(HttpResponse::Ok()
        .content_type(HeaderValue::from_static("application/json"))
        .insert_header((
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(cache),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(json))
}

#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
}

impl LimitQuery {
    fn limit(&self) -> Result<i64, ApiError> {
        match &self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))),
            },
        }
    }
}

/// `GET /orders?limit=N`: newest stored orders, summarised.
pub async fn recent_orders(
    query: web::Query<LimitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit()?;
    let orders = state.db.send(RecentOrders { limit }).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "orders": orders })))
}

/// `GET /dead-letters?limit=N`: newest rejected messages with reason and detail.
pub async fn dead_letters(
    query: web::Query<LimitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit()?;
    let letters = state.db.send(RecentDeadLetters { limit }).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "dead_letters": letters })))
}
