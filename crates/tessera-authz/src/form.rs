//! `application/x-www-form-urlencoded` request bodies, parsed strictly.
//!
//! actix's `Form` extractor answers bad bodies with plain text; OAuth clients expect an
//! RFC 6749 §5.2 JSON error, so the token endpoint reads and parses its body here.

use std::collections::HashMap;

use actix_web::{HttpRequest, web};
use tessera_web::read_limited;

use crate::error::ApiError;

/// The largest form body accepted. A token request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A parsed form: each parameter at most once (RFC 6749 §3.2), empty values treated as
/// absent (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub struct Form {
    params: HashMap<String, String>,
}

impl Form {
    /// Reads and parses the body of a form POST.
    pub async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Form, ApiError> {
        let body = read_limited(
            req,
            payload,
            "application/x-www-form-urlencoded",
            MAX_BODY_BYTES,
        )
        .await
        .map_err(ApiError::from_body)?;
        Form::parse(&body)
    }

    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Form, ApiError> {
        let mut params = HashMap::new();
        for pair in body.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if params.contains_key(&name) {
                return Err(ApiError::invalid_request(format!(
                    "the parameter {name} is repeated"
                )));
            }
            params.insert(name, value);
        }
        Ok(Form { params })
    }

    /// The value of `name`, or `None` when it is absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `invalid_request` naming the missing parameter.
    pub fn require(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("the parameter {name} is missing")))
    }
}

impl crate::grant::Parameters for Form {
    fn get(&self, name: &str) -> Option<&str> {
        Form::get(self, name)
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, and the result must be UTF-8.
fn decode(raw: &[u8]) -> Result<String, ApiError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid_request("the request body is not valid UTF-8"))
}

#[cfg(test)]
#[path = "tests/form.rs"]
mod tests;
