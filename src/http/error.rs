//! API errors: one enum, mapped to a status in one `match`, always a JSON body
//! `{"error": <code>, "detail": <text>}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;

use crate::db::DbError;

/// The texts are shown to clients: they never carry internal error text.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The database cannot answer right now; cached orders are still served.
    #[error("{0}")]
    Unavailable(String),
    /// Too much read work is in progress already: try again shortly (`Retry-After: 1`).
    #[error("{0}")]
    Busy(String),
    /// The request clashes with work in progress (a second replay while one runs).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the endpoint accepts.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub detail: &'a str,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidId(_) => "invalid_id",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Busy(_) => "busy",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidId(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = self.to_string();
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Busy(_)) {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(ErrorBody {
            error: self.code(),
            detail: &detail,
        })
    }
}

/// Database errors name hosts, roles and driver details: they go to the log, and the client
/// gets a plain sentence.
impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(detail) => {
                crate::logging::request_failure(log::Level::Warn, || {
                    format!("request failed: database unavailable: {detail}")
                });
                ApiError::Unavailable("the database is unavailable; try again later".into())
            }
            DbError::Rejected(detail) => {
                crate::logging::request_failure(log::Level::Error, || {
                    format!("request failed: the database refused a read: {detail}")
                });
                ApiError::Internal("internal error; the service log has the details".into())
            }
        }
    }
}

impl From<crate::replay::ReplayError> for ApiError {
    fn from(e: crate::replay::ReplayError) -> Self {
        match e {
            crate::replay::ReplayError::Busy => ApiError::Conflict(e.to_string()),
            crate::replay::ReplayError::Db(e) => e.into(),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::Unavailable("the service is shutting down".into())
    }
}
