//! The browser flow end to end, with real clients: the `oauth2` crate as the OAuth client,
//! and headless Chromium (driven over WebDriver by chromedriver) as the user's browser.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::{Value, json};
use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use super::{Server, Workspace, http};

/// The demo password of every seeded user.
const DEMO_PASSWORD: &str = "tessera-demo";

/// Where the client app receives the browser: a loopback listener that answers every
/// request with a small page and remembers the paths it was asked for.
pub(crate) struct Callback {
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

impl Callback {
    pub(crate) fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                if let Some(path) = request_line.split_whitespace().nth(1) {
                    record.lock().unwrap().push(path.to_owned());
                }
                let body = "<!doctype html><title>Signed in</title><p>You may close this window.";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Callback { url, seen }
    }
}

/// Registers a public client for the code flow with `redirect_uri`.
fn add_browser_client(ws: &Workspace, client_id: &str, redirect_uri: &str) {
    let out = ws.ok(
        &[
            "client",
            "add",
            client_id,
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "basic",
            "--scope",
            "admin",
            "--redirect-uri",
            redirect_uri,
            "--name",
            "Acme Dashboard",
        ],
        "",
    );
    assert!(out.starts_with(&format!("client_id: {client_id}")), "{out}");
}

/// Turns askama's escapes back into text.
fn unescape(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').unwrap();
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            numeric => char::from_u32(numeric.trim_start_matches('#').parse().unwrap()).unwrap(),
        };
        out.push(ch);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The hidden fields of the page's form, as a browser would submit them.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for input in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let len = input[start..].find('"').unwrap();
            unescape(&input[start..start + len])
        };
        fields.push((attr("name"), attr("value")));
    }
    fields
}

/// A browser without a browser: a cookie jar and form posts, for the `oauth2` test.
pub(crate) struct FormClient {
    http: reqwest::Client,
    origin: String,
    cookies: BTreeMap<String, String>,
}

impl FormClient {
    pub(crate) fn new(origin: &str) -> Self {
        FormClient {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            origin: origin.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    fn jar(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request.header("Cookie", self.jar()).send().await.unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.into(), value.into());
        }
        response
    }

    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.http.get(url);
        self.send(request).await
    }

    /// Submits the page's form: its hidden fields plus `extra`.
    pub(crate) async fn submit(
        &mut self,
        page: &str,
        action: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = hidden_fields(page);
        form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let request = self
            .http
            .post(format!("{}{action}", self.origin))
            .header("Origin", &self.origin)
            .form(&form);
        self.send(request).await
    }
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The `oauth2` crate's HTTP client: our reqwest, no redirects followed.
pub(crate) async fn oauth_http(
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(std::io::Error::other)?;
    let (parts, body) = request.into_parts();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(std::io::Error::other)?;
    let mut outgoing = client.request(method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name.as_str(), value.as_bytes());
    }
    let response = outgoing.send().await.map_err(std::io::Error::other)?;
    let mut incoming = oauth2::http::Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        incoming = incoming.header(name.as_str(), value.as_bytes());
    }
    let body = response.bytes().await.map_err(std::io::Error::other)?;
    incoming.body(body.to_vec()).map_err(std::io::Error::other)
}

async fn the_oauth2_crate_runs_the_code_flow_and_its_token_calls_the_api(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    add_browser_client(&ws, "dashboard", &callback.url);

    let client = BasicClient::new(ClientId::new("dashboard".into()))
        .set_auth_uri(AuthUrl::new(format!("{}/oauth/authorize", server.issuer)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/oauth/token", server.issuer)).unwrap())
        .set_redirect_uri(RedirectUrl::new(callback.url.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf_state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("basic".into()))
        .add_scope(Scope::new("admin".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The user's side: the login page, then the consent page, both submitted as served.
    let mut browser = FormClient::new(&server.url);
    let login = browser.get(authorize_url.as_str()).await;
    assert_eq!(login.status().as_u16(), 200);
    let login = login.text().await.unwrap();
    assert!(login.contains("Acme Dashboard"), "{login}");
    let signed_in = browser
        .submit(
            &login,
            "/oauth/authorize/login",
            &[("username", "alice"), ("password", DEMO_PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status().as_u16(), 303);
    let consent = browser
        .get(&format!("{}{}", server.url, location(&signed_in)))
        .await;
    assert_eq!(consent.status().as_u16(), 200);
    let consent = consent.text().await.unwrap();
    assert!(consent.contains("Manage your company"), "{consent}");
    let allowed = browser
        .submit(
            &consent,
            "/oauth/authorize/consent",
            &[("decision", "allow")],
        )
        .await;
    assert_eq!(allowed.status().as_u16(), 303);
    let redirect = url::Url::parse(&location(&allowed)).unwrap();
    assert!(redirect.as_str().starts_with(&callback.url));
    let params: BTreeMap<String, String> = redirect.query_pairs().into_owned().collect();
    assert_eq!(
        &params["state"],
        csrf_state.secret(),
        "the client's CSRF state"
    );
    assert_eq!(params["iss"], server.issuer);

    // The client's side: the oauth2 crate redeems the code with its PKCE verifier.
    let token = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&oauth_http)
        .await
        .unwrap();
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["basic", "admin"]);
    let access = token.access_token().secret().clone();
    let users = http()
        .get(format!("{}/companies/acme/users", server.resource_url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status().as_u16(), 200);
    let users: Vec<Value> = users.json().await.unwrap();
    assert!(users.iter().any(|u| u["username"] == "bob"));

    // And refreshes, rotating the refresh token.
    let refresh = token.refresh_token().unwrap().clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&oauth_http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );
    let me = http()
        .get(format!("{}/me", server.resource_url))
        .bearer_auth(refreshed.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    // The spent refresh token is refused, as the oauth2 crate reports it.
    let reused = client
        .exchange_refresh_token(&refresh)
        .request_async(&oauth_http)
        .await
        .unwrap_err();
    match reused {
        oauth2::RequestTokenError::ServerResponse(body) => {
            assert_eq!(body.error().as_ref(), "invalid_grant");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    // The reuse revoked the family: the JWT of the rotation (its `sid`) is refused by the
    // resource server, which follows the revocation feed, within seconds.
    refused_within_seconds(&server.resource_url, refreshed.access_token().secret()).await;

    // A second authorization, its code redeemed twice: the replay revokes what the first
    // redemption issued, its JWT included.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    // The first consent covers `basic` and is remembered: `prompt=consent` shows the page.
    let (authorize_url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("basic".into()))
        .add_extra_param("prompt", "consent")
        .set_pkce_challenge(challenge)
        .url();
    let mut page = browser
        .get(authorize_url.as_str())
        .await
        .text()
        .await
        .unwrap();
    if page.contains("/oauth/authorize/login") {
        let signed_in = browser
            .submit(
                &page,
                "/oauth/authorize/login",
                &[("username", "alice"), ("password", DEMO_PASSWORD)],
            )
            .await;
        let next = format!("{}{}", server.url, location(&signed_in));
        page = browser.get(&next).await.text().await.unwrap();
    }
    let allowed = browser
        .submit(&page, "/oauth/authorize/consent", &[("decision", "allow")])
        .await;
    let redirect = url::Url::parse(&location(&allowed)).unwrap();
    let params: BTreeMap<String, String> = redirect.query_pairs().into_owned().collect();
    let code = AuthorizationCode::new(params["code"].clone());
    let first = client
        .exchange_code(code.clone())
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&oauth_http)
        .await
        .unwrap();
    let me = format!("{}/me", server.resource_url);
    let works = http()
        .get(&me)
        .bearer_auth(first.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(works.status().as_u16(), 200);
    let replayed = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .request_async(&oauth_http)
        .await
        .unwrap_err();
    match replayed {
        oauth2::RequestTokenError::ServerResponse(body) => {
            assert_eq!(body.error().as_ref(), "invalid_grant");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    refused_within_seconds(&server.resource_url, first.access_token().secret()).await;
    assert!(
        callback.seen.lock().unwrap().is_empty(),
        "no browser went there"
    );
}

/// `token` gets `401 invalid_token` at the resource server's `/me` within 10 s.
pub(crate) async fn refused_within_seconds(resource: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http()
            .get(format!("{resource}/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="tessera", error="invalid_token""#
            );
            return;
        }
        assert_eq!(response.status().as_u16(), 200);
        assert!(Instant::now() < deadline, "still accepted after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_each_backend!(the_oauth2_crate_runs_the_code_flow_and_its_token_calls_the_api);

/// chromedriver, started by the test and stopped when dropped.
pub(crate) struct Chromedriver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Chromedriver {
    /// Stops chromedriver and the browsers it started, which share its process group, so
    /// that a failed test leaves no Chromium behind.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

impl Chromedriver {
    /// Starts chromedriver, or `None` when Chromium is not installed and the browser test
    /// was not asked for (`TESSERA_TEST_BROWSER=1` makes a missing browser a failure).
    pub(crate) async fn start() -> Option<Chromedriver> {
        let required = std::env::var("TESSERA_TEST_BROWSER").is_ok_and(|v| v == "1");
        let installed =
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
        if !installed {
            assert!(
                !required,
                "TESSERA_TEST_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing: \
                 apt-get install -y chromium chromium-driver"
            );
            eprintln!("skipping the browser test: install chromium and chromium-driver to run it");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // A process group of its own, which Drop stops as a whole.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: http(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await;
            if let Ok(status) = status
                && let Ok(body) = status.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Some(driver);
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session.
    pub(crate) async fn session(&self, profile: &std::path::Path) -> Session<'_> {
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--no-first-run",
                    "--disable-crash-reporter",
                    "--window-size=1000,760",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let response: Value = self
            .http
            .post(format!("{}/session", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {response}"))
            .to_owned();
        Session { driver: self, id }
    }
}

/// One browser session, spoken to in the W3C WebDriver protocol.
pub(crate) struct Session<'a> {
    driver: &'a Chromedriver,
    id: String,
}

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.id);
        let mut request = self.driver.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub(crate) async fn current_url(&self) -> String {
        let url = self.call(reqwest::Method::GET, "/url", None).await;
        url.as_str().unwrap().to_owned()
    }

    /// The element matching `css`, waiting up to 10 seconds for it to appear.
    pub(crate) async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            if Instant::now() >= deadline {
                let url = self.call(reqwest::Method::GET, "/url", None).await;
                let source = self.call(reqwest::Method::GET, "/source", None).await;
                panic!("no element {css} at {url}: {found}\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub(crate) async fn page_source(&self) -> String {
        let source = self.call(reqwest::Method::GET, "/source", None).await;
        source.as_str().unwrap().to_owned()
    }

    /// Saves a PNG of the page under `target/screenshots/` and returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
            });
        let dir = target.join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub(crate) async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test]
async fn headless_chromium_signs_in_consents_and_the_code_reaches_the_api() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let ws = Workspace::sqlite();
    let server = Server::start(&ws, &[]);
    let callback = Callback::start();
    add_browser_client(&ws, "dashboard", &callback.url);

    let verifier = tessera_core::secret::generate().unwrap();
    let challenge = tessera_core::pkce::challenge_of(&verifier);
    let state = "state with spaces & symbols/é";
    let mut authorize = url::Url::parse(&format!("{}/oauth/authorize", server.url)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "dashboard")
        .append_pair("redirect_uri", &callback.url)
        .append_pair("scope", "basic admin")
        .append_pair("state", state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path()).await;
    browser.goto(authorize.as_str()).await;
    browser.find("#username").await;
    let login = browser.page_source().await;
    assert!(login.contains("Acme Dashboard"), "{login}");
    browser.screenshot("login").await;
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", DEMO_PASSWORD).await;
    browser.click("button[type=submit]").await;

    browser.find("button[value=allow]").await;
    let consent = browser.page_source().await;
    assert!(consent.contains("See your profile"), "{consent}");
    assert!(consent.contains("alice"), "{consent}");
    browser.screenshot("consent").await;
    browser.click("button[value=allow]").await;

    // The browser lands on the client's redirect URI with the code.
    let deadline = Instant::now() + Duration::from_secs(10);
    let landed = loop {
        let url = browser.current_url().await;
        if url.starts_with(&callback.url) {
            break url::Url::parse(&url).unwrap();
        }
        assert!(Instant::now() < deadline, "still at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.close().await;
    let params: BTreeMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(params["state"], state);
    let seen = callback.seen.lock().unwrap().clone();
    let calls: Vec<&String> = seen.iter().filter(|p| p.starts_with("/callback")).collect();
    assert_eq!(calls.len(), 1, "the callback was called once: {seen:?}");

    // The app redeems the code and calls the API with the token.
    let token: Value = http()
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", callback.url.as_str()),
            ("client_id", "dashboard"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["scope"], "basic admin", "{token}");
    let users = http()
        .get(format!("{}/companies/acme/users", server.resource_url))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(users.status().as_u16(), 200);
}
