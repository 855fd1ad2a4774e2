//! `GET` and `POST /oauth/logout`: OpenID Connect RP-Initiated Logout 1.0.
//!
//! A relying party sends the browser here with `id_token_hint` (an ID token this server
//! issued to it, expired or not), `post_logout_redirect_uri` (registered exactly with
//! `client add --post-logout-redirect-uri`) and `state`. When the hint names the user
//! signed in at this browser, the logout happens at once; otherwise (no hint, or another
//! user, or a hint that does not verify, which counts as none) the browser is asked first,
//! with a form protected like the login form. A logout ends the browser's login session
//! (its cookie is cleared) and revokes the grant the hint's `sid` names, its JWTs included
//! (through the revocation feed), when the hint's user is the one signed in here or, with
//! nobody signed in, when the hint has not expired; another user signed in here ends only
//! their own session. The browser goes back only to a URI registered for the hint's (or
//! `client_id`'s) client; anything else gets a page here.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use tessera_core::{IdTokenClaims, secret};
use tessera_store::{AuditKind, Client, NewAuditEvent};
use uuid::Uuid;

use crate::authorize::{
    self, Cookie, check_login_token, check_origin, error_page, see_other, set_cookie, signed_in,
    store_failure_page,
};
use crate::form::Form;
use crate::introspect::verify_hint;
use crate::pages::render;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    /// The application that asked, when known.
    client_name: Option<&'a str>,
    /// Who is signed in at this browser, when anyone is.
    username: Option<&'a str>,
    hidden: &'a [(&'static str, String)],
    csrf: &'a str,
    /// `true` once signed out, with nowhere to go back to.
    done: bool,
}

/// A checked logout request.
struct LogoutRequest {
    /// The client the hint was issued to, or that `client_id` names.
    client: Option<Client>,
    /// The verified hint's claims.
    hint: Option<IdTokenClaims>,
    /// The raw hint, carried through the confirmation form.
    raw_hint: Option<String>,
    /// A registered post-logout redirect URI of `client`.
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

impl LogoutRequest {
    fn hidden_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        if let Some(hint) = &self.raw_hint {
            fields.push(("id_token_hint", hint.clone()));
        }
        if let Some(client) = &self.client {
            fields.push(("client_id", client.client_id.to_string()));
        }
        if let Some(uri) = &self.post_logout_redirect_uri {
            fields.push(("post_logout_redirect_uri", uri.clone()));
        }
        if let Some(state) = &self.state {
            fields.push(("state", state.clone()));
        }
        fields
    }
}

/// Why a logout request is refused: a `400` page saying why, or the store's failure.
enum Refused {
    Bad(&'static str),
    Store(tessera_store::StoreError),
}

impl Refused {
    /// The page: never a redirect to a URI that is not known to be the client's.
    fn page(self) -> HttpResponse {
        match self {
            Refused::Bad(why) => error_page(StatusCode::BAD_REQUEST, why),
            Refused::Store(err) => store_failure_page(err),
        }
    }
}

/// Checks a logout request's parameters.
async fn check(state: &AppState, params: &Form) -> Result<LogoutRequest, Refused> {
    let bad = |why: &'static str| Err(Refused::Bad(why));
    // A hint that does not verify (its key has left the JWKS, it is an access token, or
    // it is junk) is treated as absent: the user can still sign out, after confirming, and
    // the browser is sent back only where `client_id` vouches for.
    let hint = params
        .get("id_token_hint")
        .and_then(|raw| verify_hint(state, raw));
    let raw_hint = hint
        .as_ref()
        .and(params.get("id_token_hint"))
        .map(str::to_owned);
    let client_id = match (params.get("client_id"), &hint) {
        (Some(sent), Some(hint)) if sent != hint.aud => {
            return bad("The client_id is not the audience of the id_token_hint.");
        }
        (Some(sent), _) => Some(sent.to_owned()),
        (None, Some(hint)) => Some(hint.aud.clone()),
        (None, None) => None,
    };
    let client = match client_id {
        None => None,
        Some(id) => match state.grants.store.find_client(&id).await {
            Ok(Some(client)) => Some(client),
            Ok(None) => return bad("The application is not registered here (unknown client_id)."),
            Err(err) => return Err(Refused::Store(err)),
        },
    };
    let post_logout_redirect_uri = match (params.get("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => {
            return bad(
                "post_logout_redirect_uri needs id_token_hint or client_id to say whose it is.",
            );
        }
        (Some(uri), Some(client)) => {
            // Exact string comparison, as for redirect URIs.
            if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
                return bad("The post_logout_redirect_uri is not registered for this application.");
            }
            Some(uri.to_owned())
        }
    };
    let state_param = params.get("state");
    if state_param.is_some_and(|s| s.chars().any(char::is_control)) {
        return bad("The state parameter may not contain control characters.");
    }
    Ok(LogoutRequest {
        client,
        hint,
        raw_hint,
        post_logout_redirect_uri,
        state: state_param.map(str::to_owned),
    })
}

/// `GET /oauth/logout`.
pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match Form::parse(req.query_string().as_bytes()) {
        Ok(params) => answer(&req, &state, &params, false).await,
        Err(err) => error_page(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

/// `POST /oauth/logout`: a relying party's form post (the same parameters as `GET`), or
/// the confirmation form's (with `decision=logout` and its CSRF token).
pub async fn logout_form(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let params = match Form::read(&req, payload).await {
        Ok(params) => params,
        Err(err) => return error_page(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let confirmed = match params.get("decision") {
        None => false,
        Some("logout") => {
            if let Err(why) =
                check_origin(&req, &state).and_then(|()| check_login_token(&req, &state, &params))
            {
                return error_page(StatusCode::FORBIDDEN, why);
            }
            true
        }
        Some(_) => return error_page(StatusCode::BAD_REQUEST, "The form did not say Sign out."),
    };
    answer(&req, &state, &params, confirmed).await
}

/// Logs out at once when `confirmed` or when the hint names the signed-in user; asks
/// first otherwise.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    params: &Form,
    confirmed: bool,
) -> HttpResponse {
    let now = state.now();
    let request = match check(state, params).await {
        Ok(request) => request,
        Err(refused) => return refused.page(),
    };
    let session = match signed_in(req, state, now).await {
        Ok(session) => session,
        Err(err) => return store_failure_page(err),
    };
    let hint_matches = match (&request.hint, &session) {
        (Some(hint), Some(session)) => hint.sub == session.user.id.to_string(),
        _ => false,
    };
    if !(confirmed || hint_matches) {
        return confirmation_page(
            req,
            state,
            &request,
            session.as_ref().map(|s| s.user.username.as_str()),
        );
    }
    // The browser's login session ends, whoever it was.
    if let Some(session) = &session
        && let Err(err) = state
            .grants
            .store
            .delete_login_session(&secret::digest(&session.secret))
            .await
    {
        return store_failure_page(err);
    }
    // The grant the relying party signed the user in with is revoked, its JWTs included:
    // when its user is the one signed in here, or, with nobody signed in, when the hint is
    // still current (the relying party's own recent token, not one that leaked long ago).
    // Another user signed in at this browser ends only their own session.
    let hint_current = request
        .hint
        .as_ref()
        .is_some_and(|hint| now.timestamp() < hint.exp);
    let grant = request
        .hint
        .as_ref()
        .filter(|_| hint_matches || (session.is_none() && hint_current))
        .and_then(|hint| Uuid::parse_str(&hint.sid).ok());
    let mut revoked = 0;
    if let Some(family) = grant {
        match state
            .grants
            .revoke_family(request.client.as_ref(), family, now)
            .await
        {
            Ok(count) => revoked = count,
            Err(err) => return store_failure_page(err),
        }
    }
    if session.is_some() || grant.is_some() {
        let mut event = NewAuditEvent::new(AuditKind::UserSignedOut, now)
            .address(state.address(req).to_string())
            .detail(match grant {
                Some(family) => format!("logout; grant {family} revoked, {revoked} tokens"),
                None => "logout; login session ended".to_owned(),
            });
        match (&session, &request.hint) {
            (Some(session), _) => {
                event = event
                    .actor(session.user.username.as_str())
                    .company(session.user.company.as_str())
                    .target(session.user.username.as_str());
                tracing::info!(user = %session.user.username, "signed out at the logout endpoint");
            }
            (None, Some(hint)) => {
                event = event.target(format!("user {}", hint.sub));
                tracing::info!(sub = %hint.sub, "grant revoked at the logout endpoint");
            }
            (None, None) => {}
        }
        if let Some(client) = &request.client {
            event = event.client_id(client.client_id.as_str());
        }
        state.audit(event).await;
    }
    let mut response = match &request.post_logout_redirect_uri {
        Some(uri) => match url::Url::parse(uri) {
            Ok(mut url) => {
                if let Some(s) = &request.state {
                    url.query_pairs_mut().append_pair("state", s);
                }
                see_other(StatusCode::SEE_OTHER, url.as_str())
            }
            Err(_) => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The application's post-logout redirect URI is not valid.",
            ),
        },
        None => {
            let page = LogoutPage {
                client_name: request.client.as_ref().map(|c| c.name.as_str()),
                username: None,
                hidden: &[],
                csrf: "",
                done: true,
            };
            render(StatusCode::OK, &page, "'none'")
        }
    };
    if let Ok(value) = HeaderValue::from_str(&set_cookie(state, Cookie::Session, "", Some(0))) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// "Sign out?": the form that posts the request back with `decision=logout`.
fn confirmation_page(
    req: &HttpRequest,
    state: &AppState,
    request: &LogoutRequest,
    username: Option<&str>,
) -> HttpResponse {
    let Some((csrf, fresh)) = authorize::csrf_secret(req, state) else {
        return authorize::server_error_page();
    };
    let hidden = request.hidden_fields();
    let page = LogoutPage {
        client_name: request.client.as_ref().map(|c| c.name.as_str()),
        username,
        hidden: &hidden,
        csrf: &csrf,
        done: false,
    };
    let form_action = match &request.post_logout_redirect_uri {
        Some(uri) => authorize::form_action_to(uri),
        None => "'self'".to_owned(),
    };
    let mut response = render(StatusCode::OK, &page, &form_action);
    if fresh {
        authorize::set_csrf_cookie(state, &csrf, &mut response);
    }
    response
}
