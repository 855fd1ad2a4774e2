//! The token request (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6), parsed into one variant per
//! grant type.

use tessera_core::{ErrorCode, GrantType, ScopeSet};
use tessera_store::Client;

use super::{GrantError, SUPPORTED_GRANTS, scope};

/// Where a token request's parameters come from (the form body): each by name, absent or
/// empty as `None` (RFC 6749 §3.1).
pub trait Parameters {
    /// The value of `name`, or `None` when it is absent or empty.
    fn get(&self, name: &str) -> Option<&str>;

    /// The value of `name`, or `invalid_request` naming the missing parameter.
    fn require(&self, name: &'static str) -> Result<&str, GrantError> {
        self.get(name).ok_or_else(|| {
            GrantError::new(
                ErrorCode::InvalidRequest,
                format!("the parameter {name} is missing"),
            )
        })
    }
}

/// A token request, one variant per [`GrantType`]: what the grant needs, checked as far as
/// it can be without the store.
pub enum TokenRequest {
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5.
    AuthorizationCode {
        /// The code, as the client sent it.
        code: String,
        /// The redirect URI of the authorization request.
        redirect_uri: String,
        /// The PKCE verifier.
        code_verifier: String,
    },
    /// RFC 6749 §6.
    RefreshToken {
        /// The refresh token, as the client sent it.
        refresh_token: String,
        /// The scope asked for, unparsed: it is checked against the refresh token's grant,
        /// after the token is found.
        scope: Option<String>,
    },
    /// RFC 6749 §4.3.
    Password {
        /// The username as typed.
        username: String,
        /// The password as typed.
        password: String,
        /// The scope asked for, within the client's.
        scope: ScopeSet,
    },
    /// RFC 6749 §4.4.
    ClientCredentials {
        /// The scope asked for, within the client's.
        scope: ScopeSet,
    },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Codes, tokens and passwords never reach a log.
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type())
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// The grant type of this request.
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
            TokenRequest::Password { .. } => GrantType::Password,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }

    /// Parses the request of the authenticated `client`, in this order: `grant_type`
    /// (`unsupported_grant_type` when unknown), whether the client may use that grant
    /// (`unauthorized_client`: not registered for it, or a public client and a grant no
    /// public client may use), then the grant's own parameters.
    pub fn parse(params: &impl Parameters, client: &Client) -> Result<Self, GrantError> {
        let grant = parse_grant_type(params.require("grant_type")?)?;
        if !client.allows_grant(grant) {
            return Err(GrantError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client may not use the {grant} grant"),
            ));
        }
        if client.is_public()
            && let Some(why) = super::refused_to_public_clients(grant)
        {
            return Err(GrantError::new(ErrorCode::UnauthorizedClient, why));
        }
        let owned = |value: &str| value.to_owned();
        Ok(match grant {
            GrantType::Password => {
                let scope = scope::requested(params.get("scope"), client)?;
                TokenRequest::Password {
                    username: owned(params.require("username")?),
                    password: owned(params.require("password")?),
                    scope,
                }
            }
            GrantType::ClientCredentials => TokenRequest::ClientCredentials {
                scope: scope::requested(params.get("scope"), client)?,
            },
            GrantType::AuthorizationCode => TokenRequest::AuthorizationCode {
                code: owned(params.require("code")?),
                redirect_uri: owned(params.require("redirect_uri")?),
                // Checked before the code is touched: a request without a verifier spends
                // nothing.
                code_verifier: owned(params.require("code_verifier")?),
            },
            GrantType::RefreshToken => TokenRequest::RefreshToken {
                refresh_token: owned(params.require("refresh_token")?),
                scope: params.get("scope").map(owned),
            },
        })
    }
}

/// `grant_type`, exactly as RFC 6749 spells it; anything else is `unsupported_grant_type`.
fn parse_grant_type(raw: &str) -> Result<GrantType, GrantError> {
    match raw.parse::<GrantType>() {
        Ok(grant) if SUPPORTED_GRANTS.contains(&grant) => Ok(grant),
        _ => Err(GrantError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "the grant type {raw:?} is not supported; use {}",
                spelled_out(&SUPPORTED_GRANTS)
            ),
        )),
    }
}

/// `a, b, c or d`.
fn spelled_out(grants: &[GrantType]) -> String {
    let names: Vec<&str> = grants.iter().map(|g| g.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
