//! API errors: one enum, mapped to a status in one `match`, always a JSON body
//! `{"error": <code>, "detail": <text>}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use thiserror::Error;

use crate::db::DbError;

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
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidId(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = self.to_string();
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: self.code(),
            detail: &detail,
        })
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(d) => ApiError::Unavailable(format!("database unavailable: {d}")),
            DbError::Rejected(d) => ApiError::Internal(d),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Unavailable(format!("service is shutting down: {e}"))
    }
}
