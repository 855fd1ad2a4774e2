//! `GET /oauth/authorize` (RFC 6749 §4.1 with RFC 7636): the login and consent pages,
//! and the redirect back to the client with a code.
//!
//! The flow: the client sends the browser to `GET /oauth/authorize`; a browser without a
//! login session sees the login page, which posts to `/oauth/authorize/login` and, on
//! success, is sent back (303) to the same authorization request; a signed-in browser sees
//! the consent page, which posts to `/oauth/authorize/consent`; Allow redirects (303) to
//! the client's redirect URI with a one-time code, Deny with `access_denied`.
//!
//! Every form carries the authorization request in hidden fields, and every POST checks
//! the request again from scratch: nothing a page sent is trusted.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;
use tessera_core::{ErrorCode, GrantType, Scope, ScopeSet, pkce, secret};
use tessera_store::{Client, NewAuthorizationCode, NewLoginSession, StoreError, User};

use crate::error::ErrorChain;
use crate::form::Form;
use crate::pages::render;
use crate::passwords::SignIn;
use crate::state::AppState;
use crate::{passwords, token};

/// How long an authorization code can be redeemed: 60 seconds.
pub const CODE_TTL_SECS: i64 = 60;
/// How long a browser stays signed in at the authorization endpoint: 30 minutes.
const SESSION_TTL_SECS: i64 = 30 * 60;
/// The authorization endpoint; its forms post below it.
const ENDPOINT: &str = "/oauth/authorize";

/// The two cookies of the authorization endpoint.
///
/// Over https their names carry the `__Host-` prefix, which browsers accept only when set
/// by this very host, `Secure`, with `Path=/` and no `Domain`: a sibling subdomain cannot
/// plant one. Over plain http (development on loopback), where the prefix is unavailable,
/// they are scoped to the endpoint instead.
#[derive(Clone, Copy)]
enum Cookie {
    /// The login session's secret.
    Session,
    /// The login form's double-submitted CSRF token.
    Csrf,
}

impl Cookie {
    fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Cookie::Session, true) => "__Host-tessera_session",
            (Cookie::Session, false) => "tessera_session",
            (Cookie::Csrf, true) => "__Host-tessera_csrf",
            (Cookie::Csrf, false) => "tessera_csrf",
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client_name: &'a str,
    hidden: &'a [(&'static str, String)],
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<(&'static str, &'static str)>,
    hidden: &'a [(&'static str, String)],
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// What a scope lets the client do, in the words the consent page uses.
fn describe(scope: Scope) -> &'static str {
    match scope {
        Scope::Basic => "See your profile: your username, company and roles",
        Scope::Admin => "Manage your company's users: add, change and remove them",
    }
}

/// An authorization request that passed every check.
struct AuthorizationRequest {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scope: ScopeSet,
    code_challenge: String,
}

impl AuthorizationRequest {
    /// The request as hidden form fields, so that the next POST can check it again.
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client.client_id.to_string()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scope.to_string()),
            ("code_challenge", self.code_challenge.clone()),
            ("code_challenge_method", pkce::METHOD_S256.to_owned()),
        ];
        if let Some(state) = &self.state {
            fields.push(("state", state.clone()));
        }
        fields
    }

    /// `/oauth/authorize?…` for this request: where a POST sends the browser next.
    fn location(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.hidden_fields() {
            query.append_pair(name, &value);
        }
        format!("{ENDPOINT}?{}", query.finish())
    }

    /// Sends the browser back to the client with `params`, the `state` byte for byte and
    /// the issuer (RFC 9207).
    fn redirect(
        &self,
        state: &AppState,
        status: StatusCode,
        params: &[(&str, &str)],
    ) -> HttpResponse {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = &self.state {
            all.push(("state", s));
        }
        all.push(("iss", &state.issuer));
        redirect_to_client(&self.redirect_uri, status, &all)
    }

    /// The consent page may post only here and redirect only to the client: CSP
    /// `form-action` also governs where a form's redirect may go.
    fn consent_form_action(&self) -> String {
        match url::Url::parse(&self.redirect_uri) {
            // CSP host sources cannot name an IPv6 literal: allow the scheme instead.
            Ok(url) if matches!(url.host(), Some(url::Host::Ipv6(_))) => {
                format!("'self' {}:", url.scheme())
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                format!("'self' {}", url.origin().ascii_serialization())
            }
            Ok(url) => format!("'self' {}:", url.scheme()),
            Err(_) => "'self'".to_owned(),
        }
    }
}

/// Why an authorization request was refused, and so where the answer goes.
enum Refusal {
    /// Shown at the server: the client or the redirect URI cannot be trusted, so the
    /// browser must not be sent anywhere (RFC 6749 §4.1.2.1).
    Page {
        status: StatusCode,
        message: Cow<'static, str>,
    },
    /// Sent back to the registered redirect URI with `error` and `state`.
    Redirect {
        request: Box<AuthorizationRequest>,
        error: ErrorCode,
        description: Cow<'static, str>,
    },
}

impl Refusal {
    fn page(message: impl Into<Cow<'static, str>>) -> Self {
        Refusal::Page {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn respond(self, state: &AppState, redirect_status: StatusCode) -> HttpResponse {
        match self {
            Refusal::Page { status, message } => error_page(status, &message),
            Refusal::Redirect {
                request,
                error,
                description,
            } => request.redirect(
                state,
                redirect_status,
                &[
                    ("error", error.as_str()),
                    ("error_description", &description),
                ],
            ),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %ErrorChain(&err), "database unavailable");
                Refusal::Page {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "The service is temporarily unavailable. Try again in a moment."
                        .into(),
                }
            }
            other => {
                tracing::error!(error = %ErrorChain(&other), "store operation failed");
                Refusal::Page {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "Something went wrong on our side. Try again later.".into(),
                }
            }
        }
    }
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let title = match status {
        StatusCode::FORBIDDEN => "Request refused",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        s if s.is_server_error() => "Server error",
        _ => "Invalid request",
    };
    let mut response = render(status, &ErrorPage { title, message }, "'none'");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// A redirect to the client's registered URI with `params` appended to its query.
fn redirect_to_client(
    redirect_uri: &str,
    status: StatusCode,
    params: &[(&str, &str)],
) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        // Registration refuses URIs that do not parse; one that slipped in is never used.
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The application's redirect URI is not valid.",
        );
    };
    url.query_pairs_mut().extend_pairs(params);
    see_other(status, url.as_str())
}

/// A redirect that leaks nothing: no caching, and no `Referer` carrying the code.
fn see_other(status: StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

/// Checks an authorization request (query or form) in the order RFC 6749 §4.1.2.1
/// demands: the client and redirect URI first, shown at the server when wrong; then the
/// rest, sent back to the client.
async fn check(form: &Form, state: &AppState) -> Result<AuthorizationRequest, Refusal> {
    let Some(client_id) = form.get("client_id") else {
        return Err(Refusal::page(
            "The request does not name the application (client_id is missing).",
        ));
    };
    let Some(client) = state.store.find_client(client_id).await? else {
        return Err(Refusal::page(
            "The application is not registered here (unknown client_id).",
        ));
    };
    let Some(redirect_uri) = form.get("redirect_uri") else {
        return Err(Refusal::page("The request has no redirect_uri."));
    };
    // Exact string comparison: no normalisation, no prefix match, no port leeway.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Refusal::page(
            "The redirect_uri is not registered for this application.",
        ));
    }
    // `state` goes back through an HTML form and a URL; control characters would not
    // survive the form unchanged (RFC 6749 Appendix A.5 allows only printable ones).
    if form
        .get("state")
        .is_some_and(|s| s.chars().any(char::is_control))
    {
        return Err(Refusal::page(
            "The state parameter may not contain control characters.",
        ));
    }
    let request = AuthorizationRequest {
        redirect_uri: redirect_uri.to_owned(),
        state: form.get("state").map(str::to_owned),
        scope: ScopeSet::only(Scope::Basic),
        code_challenge: String::new(),
        client,
    };
    let refuse = |request, error, description: &'static str| {
        Err(Refusal::Redirect {
            request: Box::new(request),
            error,
            description: description.into(),
        })
    };
    match form.get("response_type") {
        Some("code") => {}
        None => {
            return refuse(
                request,
                ErrorCode::InvalidRequest,
                "response_type is missing",
            );
        }
        Some(_) => {
            return refuse(
                request,
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            );
        }
    }
    if !request.client.allows_grant(GrantType::AuthorizationCode) {
        return refuse(
            request,
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        );
    }
    let Some(challenge) = form.get("code_challenge") else {
        return refuse(
            request,
            ErrorCode::InvalidRequest,
            "PKCE is required: code_challenge is missing",
        );
    };
    match form.get("code_challenge_method") {
        Some(pkce::METHOD_S256) => {}
        None | Some("plain") => {
            return refuse(
                request,
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256; plain is not accepted",
            );
        }
        Some(_) => {
            return refuse(
                request,
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256",
            );
        }
    }
    if !pkce::is_valid_challenge(challenge) {
        return refuse(
            request,
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 base64url characters (an S256 digest)",
        );
    }
    let scope = match form.get("scope").map(str::parse::<ScopeSet>) {
        None => ScopeSet::only(Scope::Basic),
        Some(Ok(scope)) => scope,
        Some(Err(_)) => {
            return refuse(request, ErrorCode::InvalidScope, "the scope is not valid");
        }
    };
    if !scope.is_subset(request.client.scopes) {
        return refuse(
            request,
            ErrorCode::InvalidScope,
            "this client may not request that scope",
        );
    }
    Ok(AuthorizationRequest {
        scope,
        code_challenge: challenge.to_owned(),
        ..request
    })
}

/// The value of one of our cookies in the request's `Cookie` headers.
fn cookie<'a>(req: &'a HttpRequest, state: &AppState, which: Cookie) -> Option<&'a str> {
    let name = which.name(state.secure_cookies);
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` for one of ours: `HttpOnly`, `SameSite=Lax`; over https `Secure` and
/// `__Host-` (see [`Cookie`]), over http scoped to the endpoint.
fn set_cookie(state: &AppState, which: Cookie, value: &str, max_age: Option<i64>) -> String {
    let secure = state.secure_cookies;
    let name = which.name(secure);
    let path = if secure { "/" } else { ENDPOINT };
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The browser's own word on where a form POST comes from. `Sec-Fetch-Site`, which a page
/// cannot forge, must say `same-origin` when sent (a sibling origin on another port is
/// `same-site`, and refused). `Origin` must be the issuer's, or `null`: browsers send `null`
/// for a form on a page with `Referrer-Policy: no-referrer`, as ours are. Browsers that
/// send neither still meet the token checks of [`check_login_token`] and
/// [`SignedIn::consent_token`].
fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), &'static str> {
    const ANOTHER_SITE: &str = "The form was sent from another site.";
    let header = |name| req.headers().get(name).map(HeaderValue::as_bytes);
    if header(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| site != b"same-origin")
    {
        return Err(ANOTHER_SITE);
    }
    if header(header::ORIGIN)
        .is_some_and(|origin| origin != b"null" && origin != state.origin.as_bytes())
    {
        return Err(ANOTHER_SITE);
    }
    Ok(())
}

const EXPIRED_FORM: &str = "The form has expired or was not sent from this browser. Go back to the application and start again.";

/// Whether `sent` equals `expected`, in constant time.
fn same_token(expected: &str, sent: Option<&str>) -> bool {
    sent.is_some_and(|sent| bool::from(expected.as_bytes().ct_eq(sent.as_bytes())))
}

/// The login form's token is double-submitted: the field must equal the browser's CSRF
/// cookie. (At worst, a forged login signs the victim in as the forger, whose name the
/// consent page then shows.)
fn check_login_token(req: &HttpRequest, state: &AppState, form: &Form) -> Result<(), &'static str> {
    match cookie(req, state, Cookie::Csrf) {
        Some(expected) if same_token(expected, form.get("csrf")) => Ok(()),
        _ => Err(EXPIRED_FORM),
    }
}

/// A browser's live login session.
struct SignedIn {
    user: User,
    /// The session's secret, from the cookie.
    secret: String,
}

impl SignedIn {
    /// The consent form's CSRF token: derived from the login session's secret, which only
    /// this browser holds (the cookie is `HttpOnly`). A cookie planted by a sibling site
    /// cannot produce it, and signing in as someone else in another tab changes it, so
    /// Allow always grants the account the page showed.
    fn consent_token(&self) -> String {
        secret::digest(&format!("consent-form:{}", self.secret))
    }
}

/// Who this browser is signed in as, if its session is live and the user may still sign
/// in.
async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Option<SignedIn>, StoreError> {
    let Some(secret) = cookie(req, state, Cookie::Session) else {
        return Ok(None);
    };
    let Some(session) = state
        .store
        .find_login_session(&secret::digest(secret))
        .await?
    else {
        return Ok(None);
    };
    if now >= session.expires_at {
        return Ok(None);
    }
    let user = state.store.find_user_by_id(session.user_id).await?;
    Ok(user.filter(|user| !user.disabled).map(|user| SignedIn {
        user,
        secret: secret.to_owned(),
    }))
}

/// A fresh 256-bit secret, or `None` (logged) when the OS cannot give one.
fn fresh_secret(what: &str) -> Option<String> {
    secret::generate()
        .inspect_err(|err| tracing::error!(error = %ErrorChain(err), "generating {what} failed"))
        .ok()
}

fn server_error_page() -> HttpResponse {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.",
    )
}

/// `invalid_scope` back to the client when `user` may not have what the request asks.
fn refuse_admin(
    request: &AuthorizationRequest,
    user: &User,
    state: &AppState,
    status: StatusCode,
) -> Option<HttpResponse> {
    (!token::admits(request.scope, user)).then(|| {
        request.redirect(
            state,
            status,
            &[
                ("error", ErrorCode::InvalidScope.as_str()),
                ("error_description", token::ADMIN_NEEDS_ROLE),
            ],
        )
    })
}

/// `GET /oauth/authorize`: checks the request, then shows the login page or, to a
/// signed-in browser, the consent page.
pub async fn start(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = state.now();
    let form = match Form::parse(req.query_string().as_bytes()) {
        Ok(form) => form,
        Err(err) => return error_page(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let request = match check(&form, &state).await {
        Ok(request) => request,
        Err(refusal) => return refusal.respond(&state, StatusCode::FOUND),
    };
    let hidden = request.hidden_fields();
    match signed_in(&req, &state, now).await {
        Err(err) => Refusal::from(err).respond(&state, StatusCode::FOUND),
        Ok(Some(session)) => {
            if let Some(refused) = refuse_admin(&request, &session.user, &state, StatusCode::FOUND)
            {
                return refused;
            }
            let page = ConsentPage {
                client_name: &request.client.name,
                username: session.user.username.as_str(),
                scopes: request
                    .scope
                    .iter()
                    .map(|s| (s.as_str(), describe(s)))
                    .collect(),
                hidden: &hidden,
                csrf: &session.consent_token(),
            };
            render(StatusCode::OK, &page, &request.consent_form_action())
        }
        Ok(None) => {
            // One login CSRF secret per browser, kept while it lasts.
            let existing = cookie(&req, &state, Cookie::Csrf).filter(|c| c.len() == 43);
            let Some(csrf) = existing
                .map(str::to_owned)
                .or_else(|| fresh_secret("a CSRF token"))
            else {
                return server_error_page();
            };
            let page = LoginPage {
                client_name: &request.client.name,
                hidden: &hidden,
                csrf: &csrf,
                username: "",
                error: None,
            };
            let mut response = render(StatusCode::OK, &page, "'self'");
            if existing.is_none()
                && let Ok(value) =
                    HeaderValue::from_str(&set_cookie(&state, Cookie::Csrf, &csrf, None))
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

/// Reads a page's form POST: the body, then where it comes from, then the authorization
/// request it carries. The form's token is the caller's to check.
async fn read_post(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Form, AuthorizationRequest), HttpResponse> {
    let form = Form::read(req, payload)
        .await
        .map_err(|err| error_page(StatusCode::BAD_REQUEST, &err.to_string()))?;
    check_origin(req, state).map_err(|why| error_page(StatusCode::FORBIDDEN, why))?;
    let request = check(&form, state)
        .await
        .map_err(|refusal| refusal.respond(state, StatusCode::SEE_OTHER))?;
    Ok((form, request))
}

/// `POST /oauth/authorize/login`: checks the password and starts a login session.
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.now();
    let (form, request) = match read_post(&req, payload, &state).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    if let Err(why) = check_login_token(&req, &state, &form) {
        return error_page(StatusCode::FORBIDDEN, why);
    }
    let username = form.get("username").unwrap_or("");
    let candidate = form.get("password").unwrap_or("");
    let address = state.address(&req);
    let client_id = request.client.client_id.as_str();
    let signed_in =
        match passwords::authenticate(&state, username, candidate, address, client_id).await {
            Ok(signed_in) => signed_in,
            Err(err) => return Refusal::from(err).respond(&state, StatusCode::SEE_OTHER),
        };
    let (status, message, retry_after) = match signed_in {
        SignIn::Succeeded(user) => {
            return signed_in_as(&state, &request, user, now).await;
        }
        SignIn::Failed => (
            StatusCode::OK,
            "Invalid username or password.".to_owned(),
            None,
        ),
        SignIn::Limited(limited) => {
            let secs = limited.retry_after_secs();
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed attempts. Try again in {secs} seconds."),
                Some(secs),
            )
        }
    };
    let hidden = request.hidden_fields();
    let page = LoginPage {
        client_name: &request.client.name,
        hidden: &hidden,
        csrf: form.get("csrf").unwrap_or(""),
        username,
        error: Some(&message),
    };
    let mut response = render(status, &page, "'self'");
    if let Some(secs) = retry_after
        && let Ok(value) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A login session for `user`, then back to the authorization request.
async fn signed_in_as(
    state: &AppState,
    request: &AuthorizationRequest,
    user: User,
    now: DateTime<Utc>,
) -> HttpResponse {
    let Some(session) = fresh_secret("a login session") else {
        return server_error_page();
    };
    let record = NewLoginSession {
        session_hash: secret::digest(&session),
        user_id: user.id,
        expires_at: now + Duration::seconds(SESSION_TTL_SECS),
    };
    if let Err(err) = state.store.insert_login_session(&record, now).await {
        return Refusal::from(err).respond(state, StatusCode::SEE_OTHER);
    }
    tracing::info!(user = %user.username, client_id = %request.client.client_id, "signed in at the authorization endpoint");
    let mut response = see_other(StatusCode::SEE_OTHER, &request.location());
    let cookie = set_cookie(state, Cookie::Session, &session, Some(SESSION_TTL_SECS));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /oauth/authorize/consent`: Allow issues a code and sends it to the client; Deny
/// sends `access_denied`.
pub async fn consent(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.now();
    let (form, request) = match read_post(&req, payload, &state).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let session = match signed_in(&req, &state, now).await {
        Ok(Some(session)) => session,
        // The session ended while the page was open: sign in again.
        Ok(None) => return see_other(StatusCode::SEE_OTHER, &request.location()),
        Err(err) => return Refusal::from(err).respond(&state, StatusCode::SEE_OTHER),
    };
    if !same_token(&session.consent_token(), form.get("csrf")) {
        return error_page(StatusCode::FORBIDDEN, EXPIRED_FORM);
    }
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            return request.redirect(
                &state,
                StatusCode::SEE_OTHER,
                &[
                    ("error", ErrorCode::AccessDenied.as_str()),
                    ("error_description", "the user denied the request"),
                ],
            );
        }
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The form did not say Allow or Deny.",
            );
        }
    }
    if let Some(refused) = refuse_admin(&request, &session.user, &state, StatusCode::SEE_OTHER) {
        return refused;
    }
    let Some(code) = fresh_secret("an authorization code") else {
        return server_error_page();
    };
    let record = NewAuthorizationCode {
        code_hash: secret::digest(&code),
        client_id: request.client.client_id.clone(),
        user_id: session.user.id,
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope,
        code_challenge: request.code_challenge.clone(),
        expires_at: now + Duration::seconds(CODE_TTL_SECS),
    };
    if let Err(err) = state.store.insert_authorization_code(&record, now).await {
        return Refusal::from(err).respond(&state, StatusCode::SEE_OTHER);
    }
    request.redirect(&state, StatusCode::SEE_OTHER, &[("code", &code)])
}

#[cfg(test)]
#[path = "tests/proptest_redirect.rs"]
mod proptest_redirect;
