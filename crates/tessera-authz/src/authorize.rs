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

use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;
use tessera_core::{ErrorCode, Scope, secret};
use tessera_store::{NewLoginSession, StoreError, User};

use crate::error::ErrorChain;
use crate::form::Form;
use crate::grant::{self, AuthorizationRequest, GrantError, Refusal};
use crate::pages::render;
use crate::passwords::SignIn;
use crate::state::{AppState, Extracting, extract};

/// How long a browser stays signed in at the authorization endpoint: 30 minutes.
const SESSION_TTL_SECS: i64 = 30 * 60;

/// The two cookies of the authorization endpoint.
///
/// Over https their names carry the `__Host-` prefix, which browsers accept only when set
/// by this very host, `Secure`, with `Path=/` and no `Domain`: a sibling subdomain cannot
/// plant one. Over plain http (development on loopback), where the prefix is unavailable,
/// they are scoped to the endpoint instead.
#[derive(Clone, Copy)]
pub(crate) enum Cookie {
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
        Scope::OpenId => "Sign you in: know who you are, your company and your roles",
        Scope::Profile => "See your name and username",
        Scope::Email => "See your email address",
    }
}

/// Sends the browser back to the client of `request` with `params`, the `state` byte for
/// byte and the issuer (RFC 9207).
fn redirect(
    request: &AuthorizationRequest,
    state: &AppState,
    status: StatusCode,
    params: &[(&str, &str)],
) -> HttpResponse {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = &request.state {
        all.push(("state", s));
    }
    all.push(("iss", &state.grants.issuer));
    redirect_to_client(&request.redirect_uri, status, &all)
}

/// The consent page may post only here and redirect only to the client: CSP
/// `form-action` also governs where a form's redirect may go.
fn consent_form_action(request: &AuthorizationRequest) -> String {
    form_action_to(&request.redirect_uri)
}

/// CSP `form-action` for a page whose form posts here and may then redirect to `uri`.
pub(crate) fn form_action_to(uri: &str) -> String {
    match url::Url::parse(uri) {
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

/// The answer to a refused authorization request: an error page at the server, or the
/// error sent back to the client with `redirect_status`.
fn respond(refusal: Refusal, state: &AppState, redirect_status: StatusCode) -> HttpResponse {
    match refusal {
        Refusal::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        Refusal::Store(err) => store_failure_page(err),
        Refusal::Redirect {
            request,
            error,
            description,
        } => redirect(
            &request,
            state,
            redirect_status,
            &[
                ("error", error.as_str()),
                ("error_description", &description),
            ],
        ),
    }
}

/// The page for a store failure: 503 when the database is away, 500 otherwise; the cause
/// goes to the log only.
pub(crate) fn store_failure_page(err: StoreError) -> HttpResponse {
    match err {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %ErrorChain(&err), "database unavailable");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable. Try again in a moment.",
            )
        }
        other => {
            tracing::error!(error = %ErrorChain(&other), "store operation failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Try again later.",
            )
        }
    }
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> HttpResponse {
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
pub(crate) fn see_other(status: StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

/// The value of one of our cookies in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(req: &'a HttpRequest, state: &AppState, which: Cookie) -> Option<&'a str> {
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

/// Where the cookies go over plain http: the authorization endpoint and the logout
/// endpoint, and nothing outside `/oauth`.
const COOKIE_PATH_HTTP: &str = "/oauth";

/// `Set-Cookie` for one of ours: `HttpOnly`, `SameSite=Lax`; over https `Secure` and
/// `__Host-` (see [`Cookie`]), over http scoped to `/oauth`. `Max-Age=0` removes it.
pub(crate) fn set_cookie(
    state: &AppState,
    which: Cookie,
    value: &str,
    max_age: Option<i64>,
) -> String {
    let secure = state.secure_cookies;
    let name = which.name(secure);
    let path = if secure { "/" } else { COOKIE_PATH_HTTP };
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
pub(crate) fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), &'static str> {
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
pub(crate) fn check_login_token(
    req: &HttpRequest,
    state: &AppState,
    form: &Form,
) -> Result<(), &'static str> {
    match cookie(req, state, Cookie::Csrf) {
        Some(expected) if same_token(expected, form.get("csrf")) => Ok(()),
        _ => Err(EXPIRED_FORM),
    }
}

/// A browser's live login session.
pub(crate) struct SignedIn {
    pub(crate) user: User,
    /// The session's secret, from the cookie.
    pub(crate) secret: String,
    /// When the user entered their password for this session.
    auth_time: DateTime<Utc>,
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
pub(crate) async fn signed_in(
    req: &HttpRequest,
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Option<SignedIn>, StoreError> {
    let Some(secret) = cookie(req, state, Cookie::Session) else {
        return Ok(None);
    };
    let session = state
        .grants
        .store
        .find_login_session(&secret::digest(secret))
        .await?
        .filter(|session| now < session.expires_at);
    let Some(session) = session else {
        return Ok(None);
    };
    let user = state.grants.store.find_user_by_id(session.user_id).await?;
    Ok(user.filter(|user| !user.disabled).map(|user| SignedIn {
        user,
        secret: secret.to_owned(),
        auth_time: session.created_at,
    }))
}

/// A fresh 256-bit secret, or `None` (logged) when the OS cannot give one.
fn fresh_secret(what: &str) -> Option<String> {
    secret::generate()
        .inspect_err(|err| tracing::error!(error = %ErrorChain(err), "generating {what} failed"))
        .ok()
}

pub(crate) fn server_error_page() -> HttpResponse {
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
    request.refused_to(user).map(|(error, description)| {
        redirect(
            request,
            state,
            status,
            &[
                ("error", error.as_str()),
                ("error_description", description),
            ],
        )
    })
}

/// `GET /oauth/authorize`: checks the request, then shows the login page or, to a
/// signed-in browser, the consent page; with consent remembered for every scope asked,
/// redirects with a code at once. `prompt=none` never shows a page: what a page would
/// ask for comes back to the client as `login_required`, `consent_required` or
/// `interaction_required`.
pub async fn start(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = state.now();
    let form = match Form::parse(req.query_string().as_bytes()) {
        Ok(form) => form,
        Err(err) => return error_page(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let request = match grant::check(&form, state.grants.store.as_ref()).await {
        Ok(request) => request,
        Err(refusal) => return respond(refusal, &state, StatusCode::FOUND),
    };
    let session = match signed_in(&req, &state, now).await {
        Ok(session) => session,
        Err(err) => return store_failure_page(err),
    };
    let refuse = |error: ErrorCode, description: &str| {
        redirect(
            &request,
            &state,
            StatusCode::FOUND,
            &[
                ("error", error.as_str()),
                ("error_description", description),
            ],
        )
    };
    let session = match session {
        None if request.prompt.none => {
            return refuse(ErrorCode::LoginRequired, "the user is not signed in");
        }
        None => return login_page(&req, &state, &request),
        Some(session) => session,
    };
    // A hint at someone else (`login_hint`, or an `id_token_hint` this server issued to
    // another user) asks for their sign-in, not this one's.
    let id_hint_other = form
        .get("id_token_hint")
        .and_then(|hint| crate::introspect::verify_hint(&state, hint))
        .is_some_and(|hint| hint.sub != session.user.id.to_string());
    let hinted_other = request.hints_at_another_than(&session.user) || id_hint_other;
    let stale = !request.authenticated_recently(session.auth_time, now);
    if request.prompt.none && stale {
        return refuse(
            ErrorCode::LoginRequired,
            "the user signed in longer ago than max_age allows",
        );
    }
    // Core §3.1.2.1: the user the ID token names is not the one signed in.
    if request.prompt.none && id_hint_other {
        return refuse(
            ErrorCode::LoginRequired,
            "the browser is signed in as another user than id_token_hint names",
        );
    }
    if request.prompt.none && hinted_other {
        return refuse(
            ErrorCode::InteractionRequired,
            "the browser is signed in as another user than login_hint names",
        );
    }
    if request.prompt.login || stale || hinted_other {
        return login_page(&req, &state, &request);
    }
    if let Some(refused) = refuse_admin(&request, &session.user, &state, StatusCode::FOUND) {
        return refused;
    }
    if !request.prompt.consent {
        let remembered = match state
            .grants
            .store
            .find_consent(session.user.id, request.client.client_id.as_str())
            .await
        {
            Ok(remembered) => remembered,
            Err(err) => return store_failure_page(err),
        };
        if remembered.is_some_and(|granted| request.scope.is_subset(granted)) {
            return code_for(&state, &request, &session, now, StatusCode::FOUND).await;
        }
    }
    if request.prompt.none {
        return refuse(
            ErrorCode::ConsentRequired,
            "the user has not allowed this application these scopes",
        );
    }
    let hidden = request.hidden_fields();
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
    render(StatusCode::OK, &page, &consent_form_action(&request))
}

/// The login page for `request`, the username filled from `login_hint`, with this
/// browser's login CSRF secret (set as a cookie when it has none yet).
fn login_page(req: &HttpRequest, state: &AppState, request: &AuthorizationRequest) -> HttpResponse {
    let Some((csrf, fresh)) = csrf_secret(req, state) else {
        return server_error_page();
    };
    let hidden = request.hidden_fields();
    let page = LoginPage {
        client_name: &request.client.name,
        hidden: &hidden,
        csrf: &csrf,
        username: request.login_hint.as_deref().unwrap_or(""),
        error: None,
    };
    let mut response = render(StatusCode::OK, &page, "'self'");
    if fresh {
        set_csrf_cookie(state, &csrf, &mut response);
    }
    response
}

/// This browser's CSRF secret for the forms that need no login session (login, logout),
/// and whether it is new. One per browser, kept while it lasts. `None` (logged) when the
/// OS cannot give one.
pub(crate) fn csrf_secret(req: &HttpRequest, state: &AppState) -> Option<(String, bool)> {
    let existing = cookie(req, state, Cookie::Csrf).filter(|c| c.len() == 43);
    match existing {
        Some(csrf) => Some((csrf.to_owned(), false)),
        None => fresh_secret("a CSRF token").map(|csrf| (csrf, true)),
    }
}

/// Sets the CSRF cookie on `response`.
pub(crate) fn set_csrf_cookie(state: &AppState, csrf: &str, response: &mut HttpResponse) {
    if let Ok(value) = HeaderValue::from_str(&set_cookie(state, Cookie::Csrf, csrf, None)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Issues a code for `request` to the signed-in user and sends it to the client.
async fn code_for(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &SignedIn,
    now: DateTime<Utc>,
    status: StatusCode,
) -> HttpResponse {
    match state
        .grants
        .issue_code(request, &session.user, session.auth_time, now)
        .await
    {
        Ok(code) => redirect(request, state, status, &[("code", &code)]),
        Err(GrantError::Store(err)) => store_failure_page(err),
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "issuing an authorization code failed");
            server_error_page()
        }
    }
}

/// A page's form POST, read: the time, the body, where it comes from, then the
/// authorization request it carries, checked again from scratch. The form's token is the
/// handler's to check. A refusal is the page or redirect it answers with.
pub struct PagePost {
    now: DateTime<Utc>,
    form: Form,
    request: AuthorizationRequest,
}

impl FromRequest for PagePost {
    type Error = actix_web::Error;
    type Future = Extracting<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let missing = || refused(server_error_page());
        extract(req, payload, missing, |req, payload, state| async move {
            let now = state.now();
            let form = Form::read(&req, payload)
                .await
                .map_err(|err| refused(error_page(StatusCode::BAD_REQUEST, &err.to_string())))?;
            check_origin(&req, &state)
                .map_err(|why| refused(error_page(StatusCode::FORBIDDEN, why)))?;
            let request = grant::check(&form, state.grants.store.as_ref())
                .await
                .map_err(|refusal| refused(respond(refusal, &state, StatusCode::SEE_OTHER)))?;
            Ok(PagePost { now, form, request })
        })
    }
}

/// A form post answered with `response` instead of reaching its handler.
fn refused(response: HttpResponse) -> actix_web::Error {
    InternalError::from_response("form post refused", response).into()
}

/// `POST /oauth/authorize/login`: checks the password and starts a login session.
pub async fn login(req: HttpRequest, post: PagePost, state: web::Data<AppState>) -> HttpResponse {
    let PagePost { now, form, request } = post;
    if let Err(why) = check_login_token(&req, &state, &form) {
        return error_page(StatusCode::FORBIDDEN, why);
    }
    let username = form.get("username").unwrap_or("");
    let candidate = form.get("password").unwrap_or("");
    let address = state.address(&req);
    let client_id = request.client.client_id.as_str();
    let signed_in = match state
        .grants
        .passwords
        .authenticate(username, candidate, address, client_id)
        .await
    {
        Ok(signed_in) => signed_in,
        Err(err) => return store_failure_page(err),
    };
    let (status, message, retry_after) = match signed_in {
        SignIn::Succeeded(user) => {
            // A session this browser had before (another user's, or one too old for
            // max_age) ends: the new one replaces it.
            if let Some(old) = cookie(&req, &state, Cookie::Session)
                && let Err(err) = state
                    .grants
                    .store
                    .delete_login_session(&secret::digest(old))
                    .await
            {
                return store_failure_page(err);
            }
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
    if let Err(err) = state.grants.store.insert_login_session(&record, now).await {
        return store_failure_page(err);
    }
    tracing::info!(user = %user.username, client_id = %request.client.client_id, "signed in at the authorization endpoint");
    let mut response = see_other(StatusCode::SEE_OTHER, &request.location_after_login());
    let cookie = set_cookie(state, Cookie::Session, &session, Some(SESSION_TTL_SECS));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /oauth/authorize/consent`: Allow issues a code and sends it to the client; Deny
/// sends `access_denied`.
pub async fn consent(req: HttpRequest, post: PagePost, state: web::Data<AppState>) -> HttpResponse {
    let PagePost { now, form, request } = post;
    let session = match signed_in(&req, &state, now).await {
        Ok(Some(session)) => session,
        // The session ended while the page was open: sign in again.
        Ok(None) => return see_other(StatusCode::SEE_OTHER, &request.location()),
        Err(err) => return store_failure_page(err),
    };
    if !same_token(&session.consent_token(), form.get("csrf")) {
        return error_page(StatusCode::FORBIDDEN, EXPIRED_FORM);
    }
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            return redirect(
                &request,
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
    // Remembered, so that the next request for no more than this skips the page.
    if let Err(err) = state
        .grants
        .store
        .remember_consent(
            session.user.id,
            request.client.client_id.as_str(),
            request.scope,
            now,
        )
        .await
    {
        return store_failure_page(err);
    }
    code_for(&state, &request, &session, now, StatusCode::SEE_OTHER).await
}

#[cfg(test)]
#[path = "tests/proptest_redirect.rs"]
mod proptest_redirect;
