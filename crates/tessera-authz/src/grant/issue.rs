//! Issuance: access tokens (a signed JWT or a stored opaque token) and the refresh tokens
//! of a grant family.

use chrono::{DateTime, Utc};
use tessera_core::{
    AccessTokenClaims, GrantType, IdTokenClaims, Scope, ScopeSet, SigningKey, TokenFormat, secret,
};
use tessera_store::{Client, NewAccessToken, NewRefreshToken, User};
use uuid::Uuid;

use super::{GrantEngine, GrantError, Issued};

/// The prefix of every opaque access token: `tsr_` and 43 base64url characters, no `.`.
pub const OPAQUE_PREFIX: &str = "tsr_";

/// The prefix of every refresh token, so that secret scanners recognise one.
pub const REFRESH_PREFIX: &str = "tsrr_";

/// Who a token speaks for.
pub(super) enum Subject<'a> {
    User(&'a User),
    Client,
}

/// The grant family of a user's tokens.
pub(super) enum Family {
    /// A password grant: a family starts here if the client may refresh.
    New,
    /// A redeemed code's family, the scope the user consented to, and the sign-in behind
    /// it (for the ID token).
    Existing {
        id: Uuid,
        granted: ScopeSet,
        sign_in: Option<SignIn>,
    },
}

/// The sign-in an authorization code came from: what its ID tokens name.
pub(super) struct SignIn {
    /// When the user entered their password.
    pub auth_time: DateTime<Utc>,
    /// The relying party's `nonce`, for the first ID token only.
    pub nonce: Option<String>,
}

/// A new random secret: `prefix` and 256 bits from the OS CSPRNG, base64url.
pub(super) fn new_secret(prefix: &str) -> Result<String, GrantError> {
    let random =
        secret::generate().map_err(|e| GrantError::internal("generating a token failed", e))?;
    Ok(format!("{prefix}{random}"))
}

impl GrantEngine {
    /// Issues an access token for `user` and, when the client may use the refresh grant,
    /// the first refresh token of the family.
    pub(super) async fn issue_for_user(
        &self,
        client: &Client,
        user: User,
        scope: ScopeSet,
        family: Family,
        now: DateTime<Utc>,
    ) -> Result<Issued, GrantError> {
        let refreshable = client.allows_grant(GrantType::RefreshToken);
        let (family_id, granted, sign_in) = match family {
            Family::Existing {
                id,
                granted,
                sign_in,
            } => (Some(id), granted, sign_in),
            Family::New if refreshable => (Some(Uuid::new_v4()), scope, None),
            Family::New => (None, scope, None),
        };
        let (access_token, expires_in, token_id) = self
            .access_token(client, Subject::User(&user), scope, family_id, now)
            .await?;
        let refresh_token = match family_id {
            Some(family_id) if refreshable => {
                let token = new_secret(REFRESH_PREFIX)?;
                let lifetime = client
                    .refresh_token_ttl_secs
                    .and_then(chrono::Duration::try_seconds)
                    .or_else(|| chrono::Duration::from_std(self.refresh_token_ttl).ok())
                    .unwrap_or(chrono::Duration::MAX);
                self.store
                    .insert_refresh_token(
                        &NewRefreshToken {
                            token_hash: secret::digest(&token),
                            family_id,
                            client_id: client.client_id.clone(),
                            user_id: user.id,
                            scope: granted,
                            expires_at: now
                                .checked_add_signed(lifetime)
                                .unwrap_or(DateTime::<Utc>::MAX_UTC),
                            auth_time: sign_in.as_ref().map(|s| s.auth_time),
                        },
                        now,
                    )
                    .await?;
                Some(token)
            }
            _ => None,
        };
        let id_token = match (family_id, sign_in) {
            (Some(sid), Some(sign_in)) => {
                self.id_token(client, &user, scope, sid, sign_in, &access_token, now)?
            }
            _ => None,
        };
        Ok(Issued {
            access_token,
            token_id,
            expires_in,
            scope,
            refresh_token,
            id_token,
            user: Some(user),
        })
    }

    /// The OpenID Connect ID token (Core §2, §3.1.3.6) of `user`'s sign-in for `client`,
    /// issued beside `access_token` from the grant `sid`, when `scope` holds `openid`:
    /// signed by the active key, with the standard claims of `profile` and `email` when
    /// granted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn id_token(
        &self,
        client: &Client,
        user: &User,
        scope: ScopeSet,
        sid: Uuid,
        sign_in: SignIn,
        access_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, GrantError> {
        if !scope.contains(Scope::OpenId) {
            return Ok(None);
        }
        let key = self.keys.signer();
        let iat = now.timestamp();
        let profile = scope.contains(Scope::Profile);
        let email = scope
            .contains(Scope::Email)
            .then_some(())
            .and(user.email.clone());
        let claims = IdTokenClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: client.client_id.to_string(),
            exp: iat.saturating_add(self.access_token_ttl_of(client)),
            iat,
            auth_time: sign_in.auth_time.timestamp(),
            nonce: sign_in.nonce,
            at_hash: Some(key.token_hash(access_token)),
            sid: sid.to_string(),
            name: user.name.clone().filter(|_| profile),
            preferred_username: profile.then(|| user.username.to_string()),
            updated_at: profile.then(|| user.updated_at.timestamp()),
            email_verified: email.as_ref().map(|_| false),
            email,
        };
        key.sign_id_token(&claims)
            .map(Some)
            .map_err(|e| GrantError::internal("signing an ID token failed", e))
    }

    /// Issues one access token in the client's format; the opaque kind is stored, tagged
    /// with its grant family. Returns the token, its lifetime in seconds and what the
    /// audit log names it by (see [`Issued::token_id`]).
    pub(super) async fn access_token(
        &self,
        client: &Client,
        subject: Subject<'_>,
        scope: ScopeSet,
        family_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(String, i64, String), GrantError> {
        let ttl = self.access_token_ttl_of(client);
        let now = match subject {
            Subject::User(user) => {
                self.after_cutoff(now, [user.tokens_revoked_at, client.tokens_revoked_at])
                    .await
            }
            Subject::Client => {
                self.after_cutoff(now, [client.tokens_revoked_at, None])
                    .await
            }
        };
        let iat = now.timestamp();
        let (token, token_id) = match client.access_token_format {
            TokenFormat::Jwt => {
                let (sub, company, roles, username) = match subject {
                    Subject::User(user) => (
                        user.id.to_string(),
                        Some(user.company.to_string()),
                        Some(user.roles.clone()),
                        Some(user.username.to_string()),
                    ),
                    Subject::Client => (client.client_id.to_string(), None, None, None),
                };
                let jti = Uuid::new_v4().to_string();
                let claims = AccessTokenClaims {
                    iss: self.issuer.clone(),
                    sub,
                    aud: self.audience.clone(),
                    exp: iat.saturating_add(ttl),
                    iat,
                    jti: jti.clone(),
                    client_id: client.client_id.to_string(),
                    scope,
                    company,
                    roles,
                    username,
                    sid: family_id.map(|family| family.to_string()),
                };
                (sign(&self.keys.signer(), &claims)?, format!("jti {jti}"))
            }
            TokenFormat::Opaque => {
                // Only the digest is stored. The prefix lets secret scanners recognise a
                // leaked token; it carries no meaning.
                let token = new_secret(OPAQUE_PREFIX)?;
                let (user_id, subject) = match subject {
                    Subject::User(user) => (Some(user.id), user.id.to_string()),
                    Subject::Client => (None, client.client_id.to_string()),
                };
                let token_hash = secret::digest(&token);
                let token_id = format!("sha256 {}", &token_hash[..16]);
                let record = NewAccessToken {
                    token_hash,
                    client_id: client.client_id.clone(),
                    user_id,
                    subject,
                    scope,
                    expires_at: chrono::Duration::try_seconds(ttl)
                        .and_then(|d| now.checked_add_signed(d))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                    family_id,
                };
                self.opaque_tokens.insert(record, now).await?;
                (token, token_id)
            }
        };
        Ok((token, ttl, token_id))
    }

    /// The lifetime of the client's access tokens, in seconds: its own, bounded by what
    /// the key schedule keeps verifiable, or the server's.
    pub(super) fn access_token_ttl_of(&self, client: &Client) -> i64 {
        let longest =
            i64::try_from(self.keys.schedule().longest_token_lifetime().as_secs()).unwrap_or(0);
        client.access_token_ttl_secs.map_or(
            i64::try_from(self.access_token_ttl.as_secs()).unwrap_or(i64::MAX),
            |own| own.min(longest),
        )
    }

    /// The time to issue at, given the last times everything of the user or the client
    /// was revoked. Revocation entries cut off by whole seconds (`iat` counts in whole
    /// seconds), so a token issued in the second of a cutoff would be refused with the
    /// tokens it revoked: issuance waits for the next second instead (at most a second,
    /// and only right after such a revocation).
    async fn after_cutoff(
        &self,
        now: DateTime<Utc>,
        cutoffs: [Option<DateTime<Utc>>; 2],
    ) -> DateTime<Utc> {
        let Some(cutoff) = cutoffs.into_iter().flatten().max() else {
            return now;
        };
        let Some(next) = DateTime::from_timestamp(cutoff.timestamp().saturating_add(1), 0) else {
            return now;
        };
        if now >= next {
            return now;
        }
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait.min(std::time::Duration::from_secs(1))).await;
        // Another instance's clock may run ahead of this one: never issue inside the
        // cutoff's second, whatever this clock says.
        self.clock.now_utc().max(next)
    }

    /// Revokes the grant family `family_id`: its refresh and opaque tokens, and, through
    /// the revocation feed, its JWTs (`sid`), kept in the feed for as long as one of them
    /// can be valid (the longest lifetime any instance may give a token, whatever this
    /// one's settings). `owner` is the family's client when the caller knows it: a family
    /// of a client that receives opaque tokens has no JWT to revoke. Unknown (a code
    /// replayed by another client), the entry is written.
    pub(crate) async fn revoke_family(
        &self,
        owner: Option<&Client>,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, tessera_store::StoreError> {
        let jwts = owner.is_none_or(|client| client.access_token_format == TokenFormat::Jwt);
        let jwt_until = jwts.then(|| {
            now.checked_add_signed(
                tessera_store::LONGEST_ACCESS_TOKEN + tessera_store::REVOCATION_LEEWAY,
            )
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
        });
        let revoked = self.store.revoke_family(family_id, now, jwt_until).await?;
        if jwt_until.is_some() {
            self.feed.wrote();
        }
        Ok(revoked)
    }

    /// The user `id`, unless deleted or disabled (`invalid_grant`).
    pub(super) async fn active_user(&self, id: Uuid) -> Result<User, GrantError> {
        match self.store.find_user_by_id(id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(GrantError::invalid_grant(
                "the user may no longer obtain tokens",
            )),
        }
    }
}

/// Signs `claims`, in place on the request worker. An RSA-2048 signature takes the better
/// part of a millisecond, but moving it to the blocking pool cost more than it saved: at
/// 64 connections the pool ran up to 64 signing threads on two cores, with twice the
/// context switches per token, and issued fewer RS256 tokens a second than signing in
/// place on the two workers (which is what the CPU allows at best). No database
/// connection is held while signing: each query returns its connection when it ends.
fn sign(key: &SigningKey, claims: &AccessTokenClaims) -> Result<String, GrantError> {
    key.sign_access_token(claims)
        .map_err(|e| GrantError::internal("signing an access token failed", e))
}
