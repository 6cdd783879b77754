//! API errors, each answered as a JSON body `{"error": ..., "status": ...}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: send Authorization: Bearer TOKEN")]
    Unauthenticated,
    #[error("invalid token")]
    BadToken,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The object's state forbids the action (not the caller's input).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The agent owning a container did not answer as it should.
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The body of every error answer: one line, and the status again.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
}

impl ErrorBody {
    /// The JSON answer with this body (`WWW-Authenticate` on a 401).
    pub fn respond(status: StatusCode, error: String) -> Response {
        let body = ErrorBody {
            error,
            status: status.as_u16(),
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        let mut r = (status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"berth\""),
            );
        }
        r
    }
}

/// The error answers every route may give, for the OpenAPI document, each
/// with the JSON body [`ErrorBody`] (so schemathesis checks that they are).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: answers are built from `ApiError`
pub enum ApiErrors {
    #[response(status = 400, description = "Bad input: one line naming the cause")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "No valid bearer token")]
    Unauthenticated(ErrorBody),
    #[response(status = 403, description = "The token may not do this")]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "No such object")]
    NotFound(ErrorBody),
    #[response(status = 409, description = "Changed concurrently; retry")]
    Conflict(ErrorBody),
    #[response(status = 503, description = "etcd unreachable")]
    Unavailable(ErrorBody),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::BadToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::Store(StoreError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Store(StoreError::Unreachable { .. } | StoreError::Etcd { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store(StoreError::Invalid(_) | StoreError::MissingProject { .. }) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        ErrorBody::respond(self.status(), self.to_string())
    }
}
