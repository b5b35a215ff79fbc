//! Admin: `GET /dead-letters` (filtered keyset pages) and `POST /dead-letters/replay`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::orders::{next_before, parse_cursor, parse_limit, personal_data};
use super::state::AppState;
use crate::actors::db_reader::{DeadLetterPage, ReplayLetters};
use crate::db::dead_letters::LetterFilter;
use crate::replay;

/// `?reason=a,b&order_uid=&since=&until=&before=&limit=`, all optional.
#[derive(Debug, Default, Deserialize)]
pub struct LetterQuery {
    reason: Option<String>,
    order_uid: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn reasons(names: impl IntoIterator<Item = String>) -> Result<Vec<String>, ApiError> {
    replay::known_reasons(names).map_err(ApiError::BadRequest)
}

fn time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    replay::parse_time(name, raw).map_err(ApiError::BadRequest)
}

impl LetterQuery {
    pub fn filter(&self) -> Result<LetterFilter, ApiError> {
        Ok(LetterFilter {
            reasons: reasons(
                self.reason
                    .iter()
                    .flat_map(|r| r.split(',').map(str::to_string)),
            )?,
            order_uid: self.order_uid.clone().filter(|u| !u.is_empty()),
            since: time("since", self.since.as_deref())?,
            until: time("until", self.until.as_deref())?,
            ids: Vec::new(),
        })
    }
}

/// `GET /dead-letters`: rejected messages, newest first, with reason, detail, a payload
/// preview and their replays; `next_before` is the cursor of the next page.
pub async fn list(
    query: web::Query<LetterQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let before = parse_cursor(query.before.as_deref())?;
    let filter = query.filter()?;
    let letters = state
        .db
        .send(DeadLetterPage {
            filter,
            before,
            limit,
        })
        .await??;
    let next = next_before(letters.iter().map(|l| l.id), letters.len(), limit);
    Ok(personal_data().json(serde_json::json!({
        "dead_letters": letters,
        "next_before": next,
    })))
}

/// The body of `POST /dead-letters/replay`: the CLI's selectors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    reason: Vec<String>,
    since: Option<String>,
    until: Option<String>,
    order_uid: Option<String>,
    #[serde(default)]
    id: Vec<i64>,
    #[serde(default)]
    dry_run: bool,
    /// Most letters this run replays (see `replay::Limits`).
    limit: Option<usize>,
    /// The `next_after` of a previous run.
    after: Option<i64>,
}

/// Largest replay body: selectors only (ids at most `replay::MAX_IDS`), never payloads.
pub const MAX_REPLAY_BODY: usize = 16 * 1024;

/// The replay body's limit, with a JSON 413 beyond it and a JSON 400 for bad JSON.
pub fn replay_body_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_REPLAY_BODY)
        .error_handler(|e, _| {
            use actix_web::error::JsonPayloadError;
            match e {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::TooLarge(format!(
                    "a replay body holds selectors only: at most {MAX_REPLAY_BODY} bytes"
                ))
                .into(),
                e => ApiError::BadRequest(format!("bad replay request: {e}")).into(),
            }
        })
}

/// `POST /dead-letters/replay`: replays the selected dead letters now (see
/// [`crate::replay`]) and answers the summary; stored orders are put in the cache.
pub async fn replay(
    body: web::Json<ReplayRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    replay::check_ids(&body.id).map_err(ApiError::BadRequest)?;
    let limits = replay::Limits::new(body.limit, body.after).map_err(ApiError::BadRequest)?;
    let filter = LetterFilter {
        reasons: reasons(body.reason.clone())?,
        order_uid: body.order_uid.clone().filter(|u| !u.is_empty()),
        since: time("since", body.since.as_deref())?,
        until: time("until", body.until.as_deref())?,
        ids: body.id.clone(),
    };
    let summary = state
        .db
        .send(ReplayLetters {
            filter,
            limits,
            dry_run: body.dry_run,
        })
        .await??;
    for (uid, json) in &summary.stored_orders {
        state.cache.put(uid.clone(), json);
    }
    Ok(personal_data().json(&summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let query = LetterQuery {
            reason: Some("too_large, malformed".into()),
            since: Some("2026-12-01T00:00:00Z".into()),
            ..LetterQuery::default()
        };
        let filter = query.filter().expect("valid");
        assert_eq!(filter.reasons, ["too_large", "malformed"]);
        assert!(filter.since.is_some());
        let bad = LetterQuery {
            reason: Some("tooo_large".into()),
            ..LetterQuery::default()
        };
        assert!(
            bad.filter()
                .expect_err("typo")
                .to_string()
                .contains("tooo_large")
        );
        let bad = LetterQuery {
            since: Some("yesterday".into()),
            ..LetterQuery::default()
        };
        assert!(
            bad.filter()
                .expect_err("time")
                .to_string()
                .contains("since")
        );
    }

    #[test]
    fn a_full_page_points_at_the_next_and_a_short_one_ends() {
        assert_eq!(next_before([9, 8, 7].into_iter(), 3, 3), Some(7));
        assert_eq!(next_before([9, 8].into_iter(), 2, 3), None);
    }
}
