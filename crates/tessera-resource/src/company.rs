//! The permission every company route needs, as a type.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tessera_core::CompanySlug;
use tessera_guard::{Admin, GuardError, Scoped, reject};

/// A request by an admin of the company named in the path: `admin` scope, and a `company`
/// claim equal, byte for byte, to the `{company}` segment. Anything else is the same 403,
/// whether or not that company exists.
#[derive(Debug)]
pub struct CompanyAdmin {
    pub company: CompanySlug,
    /// Who acts, for the audit log: the token's `username`, or its `sub`.
    pub actor: String,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The token's `sub`: the key of the admin's own limits.
    pub subject: String,
}

impl FromRequest for CompanyAdmin {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let scoped = Scoped::<Admin>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let scoped = scoped.await?;
            let forbidden = || reject(&req, GuardError::Forbidden);
            let segment = req.match_info().get("company").unwrap_or("");
            if scoped.claims().company.as_deref() != Some(segment) {
                return Err(forbidden());
            }
            // The claim matched, so the segment is what the authorization server issued;
            // parsing only refuses what could never be a slug.
            let company = segment.parse::<CompanySlug>().map_err(|_| forbidden())?;
            let claims = scoped.claims();
            Ok(CompanyAdmin {
                company,
                actor: claims
                    .username
                    .clone()
                    .unwrap_or_else(|| claims.sub.clone()),
                client_id: claims.client_id.clone(),
                subject: claims.sub.clone(),
            })
        })
    }
}
