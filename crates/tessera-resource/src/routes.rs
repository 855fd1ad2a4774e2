//! The company user API.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_core::{Role, Username, password};
use tessera_guard::{Basic, Guard, Scoped, StalePolicy};
use tessera_store::{
    AuditKind, AuditLog, NewAuditEvent, NewUser, Store, StoreError, User, UserPatch,
};
use uuid::Uuid;

use crate::company::CompanyAdmin;
use crate::error::ApiError;
use crate::hashing::Hasher;
use crate::json::read_json;
use crate::limits::Limits;

pub type StoreData = web::Data<dyn Store>;

/// Where writes through the API are recorded, and whose `X-Forwarded-For` names the
/// client.
#[derive(Debug)]
pub struct Audit {
    pub log: AuditLog,
    pub proxies: tessera_web::net::TrustedProxies,
    /// The server's clock, read once per write: the store's record and its audit event
    /// carry the same time.
    pub clock: tessera_core::Clock,
}

impl Audit {
    /// Records a write by `admin`, made at `now`, from where `req` came.
    async fn write(
        &self,
        req: &HttpRequest,
        admin: &CompanyAdmin,
        kind: AuditKind,
        now: DateTime<Utc>,
        target: &User,
        detail: String,
    ) {
        let mut event = NewAuditEvent::new(kind, now)
            .actor(admin.actor.as_str())
            .company(admin.company.as_str())
            .target(format!("{} ({})", target.username, target.id))
            .address(tessera_web::client_address(req, &self.proxies).to_string());
        if let Some(client_id) = &admin.client_id {
            event = event.client_id(client_id.as_str());
        }
        if !detail.is_empty() {
            event = event.detail(detail);
        }
        self.log.record(event).await;
    }
}

/// What the user API's writes share beside the store: the password hashing pool and the
/// failure limits.
#[derive(Debug)]
pub struct Work {
    pub hasher: Hasher,
    pub limits: std::sync::Arc<Limits>,
}

/// A user as the API shows it.
#[derive(Serialize)]
struct UserView {
    id: Uuid,
    username: String,
    company: String,
    roles: Vec<Role>,
    disabled: bool,
    created_at: DateTime<Utc>,
    /// `null` when unset.
    name: Option<String>,
    /// `null` when unset.
    email: Option<String>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            username: user.username.to_string(),
            company: user.company.to_string(),
            roles: user.roles,
            disabled: user.disabled,
            created_at: user.created_at,
            name: user.name,
            email: user.email,
        }
    }
}

/// Liveness and readiness: 200 when the database answers, 503 when it does not. JWT
/// requests are served either way; the user API needs the database.
///
/// With a revocation feed, it also says how the list stands (`waiting` for the first
/// answer, `ok`, `stale`); a stale or never-answered list makes it `503` when stale lists
/// fail closed (JWTs are refused then), and `degraded` (still 200) when they fail open.
/// It says how the key set stands too (`waiting` for the first fetch, `ok`, `expired`):
/// a key set past its hard maximum age verifies no JWT, which makes it `503`.
pub async fn healthz(store: web::Data<dyn Store>, guard: web::Data<Guard>) -> HttpResponse {
    let database = match store.ping().await {
        Ok(()) => "ok",
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unavailable");
            "unavailable"
        }
    };
    let list = guard.validator().revocations();
    let stats = list.map(|list| list.stats());
    // What a stale list does, when there is a stale list.
    let stale = list
        .and_then(|list| list.on_stale())
        .filter(|_| stats.is_some_and(|stats| stats.stale));
    let jwks = guard.validator().jwks();
    let expired = jwks.is_too_old();
    let (mut response, status) = match stale {
        _ if database != "ok" || expired => (HttpResponse::ServiceUnavailable(), "unavailable"),
        Some(StalePolicy::FailClosed) => (HttpResponse::ServiceUnavailable(), "unavailable"),
        Some(StalePolicy::FailOpen) => (HttpResponse::Ok(), "degraded"),
        None => (HttpResponse::Ok(), "ok"),
    };
    if status == "unavailable" {
        response.insert_header((header::RETRY_AFTER, "5"));
    }
    let mut body = serde_json::json!({"status": status, "database": database});
    let age = jwks.age();
    body["jwks"] = serde_json::json!({
        "state": match (age, expired) {
            (None, _) => "waiting",
            (Some(_), true) => "expired",
            (Some(_), false) => "ok",
        },
        "age_seconds": age.map(|age| age.as_secs()),
    });
    if let Some(stats) = stats {
        let state = match (stats.age, stats.stale) {
            (None, _) => "waiting",
            (Some(_), true) => "stale",
            (Some(_), false) => "ok",
        };
        body["revocation_feed"] = serde_json::json!({
            "state": state,
            "entries": stats.entries,
            "age_seconds": stats.age.map(|age| age.as_secs()),
        });
    }
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET /me`: who the token speaks for, from its claims alone.
pub async fn me(auth: Scoped<Basic>) -> HttpResponse {
    let claims = auth.claims();
    HttpResponse::Ok().json(Me {
        client_id: claims.client_id.as_deref(),
        company: claims.company.as_deref(),
        roles: claims.roles.as_deref(),
        scope: claims.scope.as_deref(),
        sub: &claims.sub,
        username: claims.username.as_deref(),
    })
}

/// The body of `GET /me`, borrowed from the token's claims (an absent claim is `null`),
/// members in the order it has always had.
#[derive(Serialize)]
struct Me<'a> {
    client_id: Option<&'a str>,
    company: Option<&'a str>,
    roles: Option<&'a [String]>,
    scope: Option<&'a str>,
    sub: &'a str,
    username: Option<&'a str>,
}

pub async fn list(admin: CompanyAdmin, store: StoreData) -> Result<HttpResponse, ApiError> {
    list_company(&admin.company, &store).await
}

/// `GET /open/companies/{company}/users`, served only with `open_listing`: the same
/// listing as [`list`] with no authorization, the ceiling a benchmark measures against.
pub async fn list_open(
    company: web::Path<String>,
    store: StoreData,
) -> Result<HttpResponse, ApiError> {
    let company = company
        .parse::<tessera_core::CompanySlug>()
        .map_err(|e: tessera_core::ParseError| ApiError::invalid_request(e.to_string()))?;
    list_company(&company, &store).await
}

async fn list_company(
    company: &tessera_core::CompanySlug,
    store: &StoreData,
) -> Result<HttpResponse, ApiError> {
    let users = store.list_users(Some(company)).await?;
    Ok(HttpResponse::Ok().json(users.into_iter().map(UserView::from).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: String,
    roles: Vec<Role>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// A profile field as sent: absent leaves it, `null` clears it, a string is checked.
fn checked_profile(
    value: Option<String>,
    check: fn(&str) -> Result<&str, tessera_core::ParseError>,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(text) => match check(&text) {
            Ok(_) => Ok(Some(text)),
            Err(err) => Err(ApiError::invalid_request(err.to_string())),
        },
    }
}

/// Tells a member sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `POST /companies/{company}/users`. A taken username is `409`, counted against the
/// admin: past [`FAILED_CREATE_QUOTA`](crate::limits::FAILED_CREATE_QUOTA), `429` before
/// anything is read or hashed, so usernames of other companies cannot be probed in bulk.
pub async fn create(
    admin: CompanyAdmin,
    req: HttpRequest,
    payload: web::Payload,
    store: StoreData,
    audit: web::Data<Audit>,
    work: web::Data<Work>,
) -> Result<HttpResponse, ApiError> {
    let slot = work.limits.begin_create(&admin.subject)?;
    let created = insert_user(&admin, &req, payload, &store, &audit, &work).await;
    let taken = matches!(created, Err(Refused::Taken(_)));
    work.limits.end_create(&admin.subject, slot, taken);
    let (user, now) = created?;
    let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    audit
        .write(
            &req,
            &admin,
            AuditKind::UserCreated,
            now,
            &user,
            format!("roles={}", roles.join(",")),
        )
        .await;
    let location = format!("/companies/{}/users/{}", user.company, user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserView::from(user)))
}

/// Why a user creation failed: the username is taken (counted against the admin), or
/// anything else.
enum Refused {
    Taken(StoreError),
    Other(ApiError),
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Self {
        Refused::Other(err)
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Taken(err) => err.into(),
            Refused::Other(err) => err,
        }
    }
}

/// Reads, checks and stores the user a `POST` creates, with the time it was created.
async fn insert_user(
    admin: &CompanyAdmin,
    req: &HttpRequest,
    payload: web::Payload,
    store: &StoreData,
    audit: &Audit,
    work: &Work,
) -> Result<(User, chrono::DateTime<chrono::Utc>), Refused> {
    let body: CreateUser = read_json(req, payload).await?;
    let username: Username = body
        .username
        .parse()
        .map_err(|e: tessera_core::ParseError| ApiError::invalid_request(e.to_string()))?;
    let roles = checked_roles(body.roles)?;
    let name = checked_profile(body.name, tessera_core::profile::check_name)?;
    let email = checked_profile(body.email, tessera_core::profile::check_email)?;
    password::check_policy(&body.password, username.as_str())
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let password_hash = work.hasher.hash(body.password).await?;
    let now = audit.clock.now_utc();
    let created = store
        .create_user(
            &NewUser {
                company: admin.company.clone(),
                username,
                password_hash,
                roles,
                name,
                email,
            },
            now,
        )
        .await;
    match created {
        Ok(user) => Ok((user, now)),
        Err(err @ StoreError::Conflict(_)) => Err(Refused::Taken(err)),
        Err(err) => Err(Refused::Other(err.into())),
    }
}

/// A path id that is not a UUID names no user: 404, like an unknown one.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// User `id` of the admin's company: 404 when there is none, whether or not another
/// company has it.
async fn find_user(store: &StoreData, admin: &CompanyAdmin, id: Uuid) -> Result<User, ApiError> {
    store
        .find_user(&admin.company, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

pub async fn get(
    admin: CompanyAdmin,
    path: web::Path<(String, String)>,
    store: StoreData,
) -> Result<HttpResponse, ApiError> {
    let user = find_user(&store, &admin, user_id(&path.1)?).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUser {
    #[serde(default)]
    roles: Option<Vec<Role>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

pub async fn update(
    admin: CompanyAdmin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    store: StoreData,
    audit: web::Data<Audit>,
    work: web::Data<Work>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path.1)?;
    let body: PatchUser = read_json(&req, payload).await?;
    if body.roles.is_none()
        && body.disabled.is_none()
        && body.password.is_none()
        && body.name.is_none()
        && body.email.is_none()
    {
        return Err(ApiError::invalid_request(
            "nothing to change: give roles, disabled, password, name or email",
        ));
    }
    let name = body
        .name
        .map(|name| checked_profile(name, tessera_core::profile::check_name))
        .transpose()?;
    let email = body
        .email
        .map(|email| checked_profile(email, tessera_core::profile::check_email))
        .transpose()?;
    let existing = find_user(&store, &admin, id).await?;
    let roles = body.roles.map(checked_roles).transpose()?;
    let password_hash = match body.password {
        Some(new) => {
            password::check_policy(&new, existing.username.as_str())
                .map_err(|e| ApiError::invalid_request(e.to_string()))?;
            Some(work.hasher.hash(new).await?)
        }
        None => None,
    };
    // What changed, never the password itself.
    let mut changed = Vec::new();
    if let Some(roles) = &roles {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        changed.push(format!("roles={}", names.join(",")));
    }
    if let Some(disabled) = body.disabled {
        changed.push(format!("disabled={disabled}"));
    }
    if password_hash.is_some() {
        changed.push("password changed".to_owned());
    }
    // The fields changed, not their values: a name or an address is personal data, and
    // the audit log is kept long.
    if name.is_some() {
        changed.push("name changed".to_owned());
    }
    if email.is_some() {
        changed.push("email changed".to_owned());
    }
    let patch = UserPatch {
        roles,
        disabled: body.disabled,
        password_hash,
        name,
        email,
    };
    let now = audit.clock.now_utc();
    let user = store
        .update_company_user(&admin.company, id, &patch, now)
        .await?
        .ok_or_else(ApiError::not_found)?;
    audit
        .write(
            &req,
            &admin,
            AuditKind::UserUpdated,
            now,
            &user,
            changed.join(" "),
        )
        .await;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

pub async fn delete(
    admin: CompanyAdmin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    store: StoreData,
    audit: web::Data<Audit>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path.1)?;
    // Read first so the audit log can name who was deleted.
    let user = find_user(&store, &admin, id).await?;
    let now = audit.clock.now_utc();
    if store.delete_company_user(&admin.company, id, now).await? {
        audit
            .write(
                &req,
                &admin,
                AuditKind::UserDeleted,
                now,
                &user,
                String::new(),
            )
            .await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found())
    }
}

/// "Sign out everywhere": revokes every refresh token, opaque token, login session and JWT
/// issued to the user so far. 204; 404 for a user outside the admin's company.
pub async fn revoke(
    admin: CompanyAdmin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    store: StoreData,
    audit: web::Data<Audit>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path.1)?;
    find_user(&store, &admin, id).await?;
    let now = audit.clock.now_utc();
    let user = store
        .revoke_user(id, now)
        .await?
        .ok_or_else(ApiError::not_found)?;
    audit
        .write(
            &req,
            &admin,
            AuditKind::UserSignedOut,
            now,
            &user,
            "every token and session revoked".to_owned(),
        )
        .await;
    Ok(HttpResponse::NoContent().finish())
}

fn checked_roles(mut roles: Vec<Role>) -> Result<Vec<Role>, ApiError> {
    if roles.is_empty() {
        return Err(ApiError::invalid_request("a user needs at least one role"));
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}
