use actix_web::{HttpRequest, web};
use serde::de::DeserializeOwned;
use tessera_web::read_limited;

use crate::error::ApiError;

/// The largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads a JSON body after authorization has passed, so that an unauthorized caller learns
/// nothing from body validation. Unknown fields are refused by the target types.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = read_limited(req, payload, "application/json", MAX_BODY_BYTES)
        .await
        .map_err(ApiError::from_body)?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}
