//! Probes (`/health/live`, `/health/ready`, `/health`) and `/stats`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::error::ApiError;
use super::state::AppState;
use crate::actors::db_reader::CountOrders;
use crate::actors::kafka_reader::GetReaderStats;
use crate::domain::RejectReason;
use crate::metrics::METRICS;

/// `GET /health/live`: 200 while the process serves HTTP, whatever its dependencies do (a
/// database outage must not make an orchestrator restart a service that is waiting it out).
pub async fn live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "live",
        "uptime_seconds": state.health.uptime_seconds(),
    }))
}

/// `GET /health/ready` (and `/health`): 200 when the database and Kafka answer, the topic
/// exists and the cache is warm (`degraded` included), else 503 with what is missing.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let report = state.health.report();
    if report.serving() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// `GET /stats`: counters, cache, consumer positions and lag.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Null once the CacheActor is gone (see `cache::client`).
    let cache = state.cache.stats().await;
    let consumer = match state.reader.get() {
        Some(reader) => Some(reader.send(GetReaderStats).await?),
        None => None,
    };
    // The table count is the truth across restarts; counted at most every few seconds
    // (see `CountOrders`), null while the database is down.
    let count = state.db.send(CountOrders).await?.ok();
    let rejected: serde_json::Map<String, serde_json::Value> = RejectReason::ALL
        .iter()
        .map(|r| {
            let n = METRICS.dead_letters.with_label_values(&[r.as_str()]).get();
            (r.as_str().to_string(), json!(n))
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "uptime_seconds": state.health.uptime_seconds(),
        "orders_stored": count.map(|c| c.orders),
        "orders_stored_counted_at": count.map(|c| c.counted_at),
        "since_start": {
            "messages_consumed": METRICS.messages_consumed.get(),
            "orders_stored": METRICS.orders_stored.get(),
            "duplicates": METRICS.duplicates.get(),
            "conflicts": METRICS.dead_letters.with_label_values(&["conflict"]).get(),
            "rejected_by_reason": rejected,
            "dlq_published": METRICS.dlq_published.get(),
            "dlq_given_up": METRICS.dlq_given_up.get(),
            "db_retries": METRICS.db_retries.get(),
        },
        "cache": cache,
        "consumer": consumer,
        "health": state.health.report(),
    })))
}
