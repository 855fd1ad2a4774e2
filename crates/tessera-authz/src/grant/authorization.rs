//! The authorization endpoint's decisions (RFC 6749 §4.1.1, §4.1.2 with RFC 7636): which
//! requests are sound, where a refusal goes, and the code a consent issues.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use tessera_core::{ErrorCode, GrantType, Scope, ScopeSet, pkce, secret};
use tessera_store::{Client, NewAuthorizationCode, Store, StoreError, User};

use super::{GrantEngine, GrantError, Parameters};

/// How long an authorization code can be redeemed: 60 seconds.
pub const CODE_TTL_SECS: i64 = 60;

/// The authorization endpoint; its forms post below it.
pub const ENDPOINT: &str = "/oauth/authorize";

/// The longest `nonce` or `login_hint` an authorization request may carry, in bytes: each
/// goes back through a form and a redirect, and the nonce into the ID token.
pub const MAX_ECHOED_BYTES: usize = 1024;

/// What `prompt` asks for (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: never show a page; answer with an error instead.
    pub none: bool,
    /// `login` (or `select_account`): ask for the password again, even when signed in.
    pub login: bool,
    /// `consent`: show the consent page, even when consent is remembered.
    pub consent: bool,
}

impl Prompt {
    /// The prompt list as sent, or why it is refused.
    fn parse(raw: &str) -> Result<Prompt, &'static str> {
        let mut prompt = Prompt::default();
        for value in raw.split(' ') {
            match value {
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => return Err("prompt may hold only none, login, consent and select_account"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with another value");
        }
        Ok(prompt)
    }

    /// The wire form, or `None` when nothing is asked.
    fn to_wire(self) -> Option<String> {
        let values: Vec<&str> = [
            (self.none, "none"),
            (self.login, "login"),
            (self.consent, "consent"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        (!values.is_empty()).then(|| values.join(" "))
    }
}

/// An authorization request that passed every check.
#[derive(Debug)]
pub struct AuthorizationRequest {
    /// The client, as registered.
    pub client: Client,
    /// One of the client's registered redirect URIs, byte for byte.
    pub redirect_uri: String,
    /// The client's `state`, sent back unchanged.
    pub state: Option<String>,
    /// The scope asked for, within the client's.
    pub scope: ScopeSet,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
    /// The OpenID Connect `nonce`, put in the ID token exactly as sent.
    pub nonce: Option<String>,
    /// What `prompt` asks for.
    pub prompt: Prompt,
    /// `max_age`: the most seconds since the user last entered their password.
    pub max_age: Option<i64>,
    /// `login_hint`: the username the login page starts with.
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    /// Whether a login session whose password was entered at `auth_time` is recent enough
    /// for `max_age` at `now`.
    /// Compared to the microsecond: `max_age=0` is met by no earlier sign-in, as Core says
    /// (it asks for the password like `prompt=login`).
    pub fn authenticated_recently(&self, auth_time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.max_age
            .is_none_or(|max_age| now - auth_time <= Duration::seconds(max_age))
    }

    /// Whether `login_hint` names someone other than `user`: neither their username nor
    /// their email address (both compared without regard to ASCII case).
    pub fn hints_at_another_than(&self, user: &User) -> bool {
        self.login_hint.as_deref().is_some_and(|hint| {
            !hint.eq_ignore_ascii_case(user.username.as_str())
                && !user
                    .email
                    .as_deref()
                    .is_some_and(|email| hint.eq_ignore_ascii_case(email))
        })
    }

    /// The request as hidden form fields, so that the next POST can check it again.
    pub fn hidden_fields(&self) -> Vec<(&'static str, String)> {
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
        if let Some(nonce) = &self.nonce {
            fields.push(("nonce", nonce.clone()));
        }
        if let Some(prompt) = self.prompt.to_wire() {
            fields.push(("prompt", prompt));
        }
        if let Some(max_age) = self.max_age {
            fields.push(("max_age", max_age.to_string()));
        }
        if let Some(hint) = &self.login_hint {
            fields.push(("login_hint", hint.clone()));
        }
        fields
    }

    /// `/oauth/authorize?…` for this request: where a POST sends the browser next.
    pub fn location(&self) -> String {
        Self::location_of(self.hidden_fields())
    }

    /// Where the login form sends the browser once the password was right: this request
    /// without what asked for the password (`prompt=login`, `max_age`, `login_hint`), which
    /// the new login session has just answered, so that the next page is the consent page
    /// and not the login page again.
    pub fn location_after_login(&self) -> String {
        let prompt = Prompt {
            login: false,
            ..self.prompt
        };
        let fields = self
            .hidden_fields()
            .into_iter()
            .filter(|(name, _)| !matches!(*name, "prompt" | "max_age" | "login_hint"))
            .chain(prompt.to_wire().map(|p| ("prompt", p)))
            .collect();
        Self::location_of(fields)
    }

    fn location_of(fields: Vec<(&'static str, String)>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            query.append_pair(name, &value);
        }
        format!("{ENDPOINT}?{}", query.finish())
    }

    /// `invalid_scope` with its description when `user` may not have what the request
    /// asks (the admin scope without the admin role).
    pub fn refused_to(&self, user: &User) -> Option<(ErrorCode, &'static str)> {
        (!super::scope::admits(self.scope, user))
            .then_some((ErrorCode::InvalidScope, super::ADMIN_NEEDS_ROLE))
    }
}

/// Why an authorization request was refused, and so where the answer goes.
#[derive(Debug)]
pub enum Refusal {
    /// Shown at the server (400): the client or the redirect URI cannot be trusted, so the
    /// browser must not be sent anywhere (RFC 6749 §4.1.2.1).
    Page(Cow<'static, str>),
    /// The store failed before the client could be trusted: shown at the server too.
    Store(StoreError),
    /// Sent back to the registered redirect URI with `error` and `state`.
    Redirect {
        /// The request, as far as it was checked.
        request: Box<AuthorizationRequest>,
        /// The error code.
        error: ErrorCode,
        /// Its description.
        description: Cow<'static, str>,
    },
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        Refusal::Store(err)
    }
}

/// Checks an authorization request (query or form) in the order RFC 6749 §4.1.2.1
/// demands: the client and redirect URI first, shown at the server when wrong; then the
/// rest, sent back to the client.
pub async fn check(
    params: &impl Parameters,
    store: &dyn Store,
) -> Result<AuthorizationRequest, Refusal> {
    let page = |message: &'static str| Err(Refusal::Page(message.into()));
    let Some(client_id) = params.get("client_id") else {
        return page("The request does not name the application (client_id is missing).");
    };
    let Some(client) = store.find_client(client_id).await? else {
        return page("The application is not registered here (unknown client_id).");
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return page("The request has no redirect_uri.");
    };
    // Exact string comparison: no normalisation, no prefix match, no port leeway.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return page("The redirect_uri is not registered for this application.");
    }
    // `state` goes back through an HTML form and a URL; control characters would not
    // survive the form unchanged (RFC 6749 Appendix A.5 allows only printable ones).
    if params
        .get("state")
        .is_some_and(|s| s.chars().any(char::is_control))
    {
        return page("The state parameter may not contain control characters.");
    }
    let request = AuthorizationRequest {
        redirect_uri: redirect_uri.to_owned(),
        state: params.get("state").map(str::to_owned),
        scope: ScopeSet::only(Scope::Basic),
        code_challenge: String::new(),
        nonce: None,
        prompt: Prompt::default(),
        max_age: None,
        login_hint: None,
        client,
    };
    let refuse = |request, error, description: &'static str| {
        Err(Refusal::Redirect {
            request: Box::new(request),
            error,
            description: description.into(),
        })
    };
    match params.get("response_type") {
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
    let Some(challenge) = params.get("code_challenge") else {
        return refuse(
            request,
            ErrorCode::InvalidRequest,
            "PKCE is required: code_challenge is missing",
        );
    };
    let method_refused = match params.get("code_challenge_method") {
        Some(pkce::METHOD_S256) => None,
        None | Some("plain") => Some("code_challenge_method must be S256; plain is not accepted"),
        Some(_) => Some("code_challenge_method must be S256"),
    };
    if let Some(description) = method_refused {
        return refuse(request, ErrorCode::InvalidRequest, description);
    }
    if !pkce::is_valid_challenge(challenge) {
        return refuse(
            request,
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 base64url characters (an S256 digest)",
        );
    }
    let scope = match params.get("scope").map(str::parse::<ScopeSet>) {
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
    // OpenID Connect Core §3.1.2.6: what Tessera does not implement is named as such.
    for (name, error, description) in [
        (
            "request",
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ),
        (
            "request_uri",
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ),
        (
            "registration",
            ErrorCode::RegistrationNotSupported,
            "the registration parameter is not supported",
        ),
    ] {
        if params.get(name).is_some() {
            return refuse(request, error, description);
        }
    }
    let echoed = |name: &str| params.get(name).map(str::to_owned);
    let (nonce, login_hint) = (echoed("nonce"), echoed("login_hint"));
    if [&nonce, &login_hint]
        .into_iter()
        .flatten()
        .any(|value| value.len() > MAX_ECHOED_BYTES || value.chars().any(char::is_control))
    {
        return refuse(
            request,
            ErrorCode::InvalidRequest,
            "nonce and login_hint must be printable and at most 1024 bytes",
        );
    }
    let prompt = match params.get("prompt").map(Prompt::parse) {
        None => Prompt::default(),
        Some(Ok(prompt)) => prompt,
        Some(Err(description)) => return refuse(request, ErrorCode::InvalidRequest, description),
    };
    let max_age = match params.get("max_age").map(str::parse::<u32>) {
        None => None,
        Some(Ok(seconds)) => Some(i64::from(seconds)),
        Some(Err(_)) => {
            return refuse(
                request,
                ErrorCode::InvalidRequest,
                "max_age must be a whole number of seconds",
            );
        }
    };
    Ok(AuthorizationRequest {
        scope,
        code_challenge: challenge.to_owned(),
        nonce,
        prompt,
        max_age,
        login_hint,
        ..request
    })
}

impl GrantEngine {
    /// Issues a one-time code for `request`, consented to by `user` at `now`: stored as a
    /// digest, redeemable for [`CODE_TTL_SECS`].
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        user: &User,
        auth_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, GrantError> {
        let code = secret::generate()
            .map_err(|e| GrantError::internal("generating an authorization code failed", e))?;
        let record = NewAuthorizationCode {
            code_hash: secret::digest(&code),
            client_id: request.client.client_id.clone(),
            user_id: user.id,
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope,
            code_challenge: request.code_challenge.clone(),
            expires_at: now + Duration::seconds(CODE_TTL_SECS),
            nonce: request.nonce.clone(),
            auth_time: Some(auth_time),
        };
        self.store.insert_authorization_code(&record, now).await?;
        Ok(code)
    }
}
