//! `/order/{order_uid}` (both listeners), `/orders` (admin; public too with
//! `PUBLIC_ORDER_LIST`), and the paging shared with `/dead-letters`.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;

use super::error::ApiError;
use super::state::AppState;
use crate::actors::db_reader::RecentOrders;
use crate::cache::{self, CacheClient, Lookup};
use crate::domain::rules::is_valid_order_uid;

const DEFAULT_LIMIT: i64 = 20;
/// What a client learns when an order cannot be read: the cause is in the log only.
const UNAVAILABLE: &str =
    "the order cannot be read right now (the database is unavailable); try again later";
const MAX_LIMIT: i64 = 1000;
/// A miss shed because too many are being read (`MAX_MISSES_IN_FLIGHT`).
const BUSY: &str = "too many orders are being read from the database right now; try again shortly";

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
    let (entry, cache) = match cache.get(uid.to_string()).await {
        Lookup::Hit(entry) => (entry, "hit"),
        Lookup::Miss(json) => (json, "miss"),
        Lookup::NotFound => return Err(ApiError::NotFound(format!("no order with id {uid}"))),
        Lookup::Unavailable => return Err(ApiError::Unavailable(UNAVAILABLE.into())),
        Lookup::Busy => return Err(ApiError::Busy(BUSY.into())),
    };
    // Decompressed here, on this worker, when CACHE_COMPRESSION=zstd (else as it is).
    let json = cache::unpack(entry).map_err(|e| {
        crate::logging::request_failure(log::Level::Error, || {
            format!("the cached copy of order {uid} cannot be decompressed: {e}")
        });
        ApiError::Internal(format!("the cached copy of order {uid} is damaged"))
    })?;
    // Static names and values: no parsing or allocation per response on the hottest path.
    Ok(personal_data()
        .content_type(HeaderValue::from_static("application/json"))
        .insert_header((
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(cache),
        ))
        .body(json))
}

/// A `200` whose body carries personal data (an order, order ids, dead letters): no cache
/// on the way, the browser's included, may keep a copy.
pub fn personal_data() -> HttpResponseBuilder {
    let mut ok = HttpResponse::Ok();
    ok.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    ok
}

/// `?limit=N&before=ID` of the lists: a page size and a keyset cursor.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    before: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        parse_limit(self.limit.as_deref())
    }

    pub fn before(&self) -> Result<Option<i64>, ApiError> {
        parse_cursor(self.before.as_deref())
    }
}

pub fn parse_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

/// The `before` cursor: the `next_before` of the previous page.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ApiError::BadRequest(
                "before must be the next_before of a previous page (a positive whole number)"
                    .into(),
            )),
        },
    }
}

/// The cursor of the next page: the last id when the page is full, else `null` (no more).
pub fn next_before(
    ids: impl DoubleEndedIterator<Item = i64>,
    len: usize,
    limit: i64,
) -> Option<i64> {
    if len as i64 == limit {
        ids.last()
    } else {
        None
    }
}

/// `GET /orders?limit=N&before=CURSOR`: stored orders, newest first, summarised; follow
/// `next_before` for the next page (stable while new orders arrive).
pub async fn recent_orders(
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit()?;
    let before = query.before()?;
    let orders = state.db.send(RecentOrders { before, limit }).await??;
    let next = next_before(orders.iter().map(|o| o.id), orders.len(), limit);
    Ok(personal_data().json(serde_json::json!({ "orders": orders, "next_before": next })))
}
