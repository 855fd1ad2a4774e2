//! A minimal browser for the authorization endpoint: a cookie jar, no automatic redirects,
//! and `Origin` on form posts, as browsers send it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use tessera_core::pkce;

use crate::helpers::{PASSWORD, TestApp};

pub struct Browser {
    http: reqwest::Client,
    base: String,
    origin: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: app.address.clone(),
            origin: app.address.clone(),
            cookies: BTreeMap::new(),
        }
    }

    /// Sends the next requests to another server of the same issuer (cookies do not
    /// depend on the port).
    pub fn switch_to(&mut self, app: &TestApp) {
        self.base = app.address.clone();
        self.origin = app.address.clone();
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn jar(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.into(), value.into());
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.jar())
            .send()
            .await
            .unwrap();
        self.remember(&response);
        response
    }

    /// A GET with exactly this `Cookie` header.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap()
    }

    /// A form post from the server's own page.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let origin = self.origin.clone();
        self.post_from(path, form, &[(ORIGIN.as_str(), &origin)])
            .await
    }

    /// A form post with exactly these extra headers.
    pub async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.jar())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        response
    }
}

/// A PKCE pair.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = tessera_core::secret::generate().unwrap();
        Pkce {
            challenge: pkce::challenge_of(&verifier),
            verifier,
        }
    }
}

/// The parameters of an authorization request.
pub fn request(
    client: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client.into()),
        ("redirect_uri", redirect_uri.into()),
        ("scope", scope.into()),
        ("state", state.into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

pub fn query(params: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    query.finish()
}

pub fn borrowed<'a>(params: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The query parameters of a redirect to the client.
pub fn redirect_params(response: &reqwest::Response) -> BTreeMap<String, String> {
    let url = url::Url::parse(&location(response)).unwrap();
    url.query_pairs().into_owned().collect()
}

/// Signs `username` in through the login page: GET the authorization request, POST the
/// login form, follow the 303. Returns the consent page's response.
pub async fn sign_in(
    browser: &mut Browser,
    params: &[(&str, String)],
    username: &str,
) -> reqwest::Response {
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(params)))
        .await;
    assert_eq!(page.status().as_u16(), 200, "the login page");
    let csrf = browser.cookie("tessera_csrf").unwrap().to_owned();
    let mut form = borrowed(params);
    form.extend([
        ("csrf", csrf.as_str()),
        ("username", username),
        ("password", PASSWORD),
    ]);
    let response = browser.post("/oauth/authorize/login", &form).await;
    assert_eq!(response.status().as_u16(), 303, "login redirects");
    let next = location(&response);
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    browser.get(&next).await
}

/// The value of the hidden `csrf` field of a page.
pub fn form_token(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("the page has a csrf field") + marker.len();
    let len = html[start..].find('"').unwrap();
    html[start..start + len].to_owned()
}

/// Opens the consent page for `params` and returns its form token.
pub async fn consent_token(browser: &mut Browser, params: &[(&str, String)]) -> String {
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(params)))
        .await;
    assert_eq!(page.status().as_u16(), 200, "the consent page");
    form_token(&page.text().await.unwrap())
}

/// Opens the consent page and posts its form with `decision`.
pub async fn decide(
    browser: &mut Browser,
    params: &[(&str, String)],
    decision: &str,
) -> reqwest::Response {
    let csrf = consent_token(browser, params).await;
    let mut form = borrowed(params);
    form.extend([("csrf", csrf.as_str()), ("decision", decision)]);
    browser.post("/oauth/authorize/consent", &form).await
}

/// Runs the whole front channel for `username` and returns the code.
pub async fn obtain_code(
    app: &TestApp,
    client: &str,
    redirect_uri: &str,
    scope: &str,
    username: &str,
    pkce: &Pkce,
) -> String {
    let mut browser = Browser::new(app);
    // The consent page every time, though an earlier run of the flow was remembered.
    let mut params = request(client, redirect_uri, scope, "s1", &pkce.challenge);
    params.push(("prompt", "consent".to_owned()));
    let consent = sign_in(&mut browser, &params, username).await;
    assert_eq!(consent.status().as_u16(), 200, "the consent page");
    let response = decide(&mut browser, &params, "allow").await;
    if response.status().as_u16() != 303 {
        panic!("{}: {}", response.status(), response.text().await.unwrap());
    }
    let back = redirect_params(&response);
    assert_eq!(back.get("state").map(String::as_str), Some("s1"));
    back["code"].clone()
}
