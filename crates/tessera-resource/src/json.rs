use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads a JSON body after authorization has passed, so that an unauthorized caller learns
/// nothing from body validation. Unknown fields are refused by the target types.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::invalid_request(
            "the request body must be application/json",
        ));
    }
    let body = match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(ApiError::invalid_request(
                "the request body could not be read",
            ));
        }
        Err(_) => return Err(ApiError::too_large(MAX_BODY_BYTES)),
    };
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}
