use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use tessera_store::StoreError;

/// An API error: `{"error": …, "error_description": …}` with its status. A 500 says nothing
/// of its cause to the client; the cause goes to the log.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
}

impl ApiError {
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }

    pub fn not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            description: "no such user".into(),
        }
    }

    /// The answer to a body that could not be read: 413 when too large, `invalid_request`
    /// otherwise.
    pub fn from_body(error: tessera_web::BodyError) -> Self {
        match error {
            tessera_web::BodyError::WrongMediaType(media_type) => {
                Self::invalid_request(format!("the request body must be {media_type}"))
            }
            tessera_web::BodyError::TooLarge(limit) => Self::too_large(limit),
            tessera_web::BodyError::Unreadable => {
                Self::invalid_request("the request body could not be read")
            }
        }
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::invalid_request(format!("the request body exceeds {limit} bytes"))
        }
    }

    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "{context}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "the server could not complete the request".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(message) => ApiError {
                status: StatusCode::CONFLICT,
                error: "conflict",
                description: message.into(),
            },
            StoreError::NotFound(_) => ApiError::not_found(),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: "temporarily_unavailable",
                    description: "the database is unavailable; retry later".into(),
                }
            }
            other => ApiError::internal("store operation failed", &other),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "5"));
        }
        response.json(json!({"error": self.error, "error_description": self.description}))
    }
}
