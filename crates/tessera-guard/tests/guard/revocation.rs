//! The revocation list: a guard following the test issuer's revocation feed over real
//! HTTP on loopback refuses revoked tokens, keeps its list through a failing feed, and
//! fails closed (or open, when so configured) once the list is stale.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tessera_core::SigningKey;
use tessera_guard::testing::{FEED_CLIENT_ID, FEED_CLIENT_SECRET, FeedFault, TestIssuer};
use tessera_guard::{
    Authenticated, Guard, GuardError, JwksCache, JwksConfig, JwksSource, Rejection,
    RevocationConfig, RevocationList, StalePolicy, ValidationConfig, Validator,
};
use url::Url;

use crate::jwks::{KEY_A, now};

const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="tessera", error="invalid_token""#;

/// A feed configuration for tests: a 1 s hold, and a bound long enough that only the
/// tests about staleness reach it.
fn feed_config(issuer: &TestIssuer) -> RevocationConfig {
    let mut config = RevocationConfig::new(
        Url::parse(&issuer.feed_url()).unwrap(),
        FEED_CLIENT_ID,
        FEED_CLIENT_SECRET,
    );
    config.wait = Duration::from_secs(1);
    config.max_stale = Duration::from_secs(30);
    config.timeout = Duration::from_secs(1);
    config
}

/// An API protected by a guard that follows a revocation feed.
struct Api {
    url: String,
    http: reqwest::Client,
    guard: Guard,
    list: Arc<RevocationList>,
}

/// What a request to the API got.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    error: Option<String>,
}

async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(auth.claims().sub.clone())
}

fn validator(issuer: &TestIssuer, list: &Arc<RevocationList>) -> Validator {
    let jwks =
        Arc::new(JwksCache::new(JwksConfig::new(JwksSource::Url(issuer.jwks_url()))).unwrap());
    Validator::new(ValidationConfig::new(issuer.issuer(), "tessera-api"), jwks)
        .with_revocations(list.clone())
}

/// Starts the API following `config`'s feed; `synced` waits for the first answer.
async fn start_api(issuer: &TestIssuer, config: RevocationConfig, synced: bool) -> Api {
    let list = RevocationList::follow(config).unwrap();
    if synced {
        assert!(
            list.synced(Duration::from_secs(5)).await,
            "the feed never answered"
        );
    }
    let guard = Guard::new(validator(issuer, &list));
    let data = web::Data::new(guard.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/whoami", web::get().to(whoami))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    Api {
        url,
        http: reqwest::Client::new(),
        guard,
        list,
    }
}

impl Api {
    async fn call(&self, token: &str) -> Answer {
        let response = self
            .http
            .get(&self.url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (challenge, retry_after) = (header("www-authenticate"), header("retry-after"));
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            challenge,
            retry_after,
            error: body["error"].as_str().map(str::to_owned),
        }
    }

    async fn status(&self, token: &str) -> u16 {
        self.call(token).await.status
    }

    /// Calls with `token` every 50 ms for up to 5 s until the status is `status`; the
    /// answer that had it, or the last one.
    async fn until_status(&self, token: &str, status: u16) -> Answer {
        let mut answer = self.call(token).await;
        for _ in 0..100 {
            if answer.status == status {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = self.call(token).await;
        }
        answer
    }

    fn outcome(&self, name: &str) -> u64 {
        self.guard
            .outcomes()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, count)| count)
    }
}

/// Asserts the answer a revoked token gets: 401 `invalid_token`, the usual challenge.
fn assert_revoked(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {answer:?}");
    assert_eq!(
        answer.challenge.as_deref(),
        Some(INVALID_TOKEN_CHALLENGE),
        "{what}"
    );
    assert_eq!(answer.error.as_deref(), Some("invalid_token"), "{what}");
}

/// A token whose `jti`, `sid`, `sub` and `client_id` all end in `tag`, issued at `iat`
/// (none when `None`).
fn token(issuer: &TestIssuer, tag: &str, iat: Option<i64>) -> String {
    let mut claims = json!({
        "iss": issuer.issuer(),
        "sub": format!("user-{tag}"),
        "aud": "tessera-api",
        "exp": now() + 900,
        "jti": format!("jti-{tag}"),
        "sid": format!("sid-{tag}"),
        "client_id": format!("client-{tag}"),
        "scope": "basic",
    });
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    let token = issuer.sign_value(&claims);
    assert!(!token.is_empty());
    token
}

fn issuer() -> TestIssuer {
    TestIssuer::start(SigningKey::from_pkcs8_pem(KEY_A).unwrap()).unwrap()
}

#[tokio::test]
async fn a_token_is_refused_once_its_jti_sid_subject_or_client_is_published() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let iat = now() - 5;
    let kinds = ["jti", "sid", "sub", "client_id"];
    let tokens: Vec<String> = kinds.iter().map(|k| token(&issuer, k, Some(iat))).collect();
    let bystander = token(&issuer, "bystander", Some(iat));
    for t in &tokens {
        assert_eq!(api.status(t).await, 200, "valid before any revocation");
    }

    let until = now() + 600;
    for (i, kind) in kinds.iter().enumerate() {
        issuer.revoke(match *kind {
            "jti" => json!({"jti": "jti-jti", "until": until}),
            "sid" => json!({"sid": "sid-sid", "until": until}),
            "sub" => json!({"sub": "user-sub", "issued_before": iat, "until": until}),
            _ => json!({"client_id": "client-client_id", "issued_before": iat, "until": until,
                        "reason": "unknown members are ignored"}),
        });
        // The same token, unchanged, is now refused like any invalid token.
        assert_revoked(&api.until_status(&tokens[i], 401).await, kind);
        // Tokens not yet revoked, and a bystander, still work.
        for later in &tokens[i + 1..] {
            assert_eq!(api.status(later).await, 200, "after revoking by {kind}");
        }
        assert_eq!(
            api.status(&bystander).await,
            200,
            "after revoking by {kind}"
        );
    }
    assert!(api.outcome("revoked") >= 4, "{:?}", api.guard.outcomes());
    let stats = api.list.stats();
    assert_eq!(stats.entries, 4);
    assert!(!stats.stale && stats.failures == 0, "{stats:?}");
}

#[tokio::test]
async fn a_subject_or_client_cutoff_spares_tokens_issued_after_it_but_not_those_without_iat() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let cutoff = now() - 10;
    let at_cutoff = token(&issuer, "a", Some(cutoff));
    let after = token(&issuer, "a", Some(cutoff + 1));
    let no_iat = token(&issuer, "a", None);
    let client_after = token(&issuer, "b", Some(cutoff + 1));
    for t in [&at_cutoff, &after, &no_iat, &client_after] {
        assert_eq!(api.status(t).await, 200);
    }
    issuer.revoke(json!({"sub": "user-a", "issued_before": cutoff, "until": now() + 600}));
    issuer.revoke(json!({"client_id": "client-b", "issued_before": cutoff, "until": now() + 600}));
    assert_revoked(
        &api.until_status(&at_cutoff, 401).await,
        "iat at the cutoff",
    );
    assert_revoked(&api.call(&no_iat).await, "no iat");
    assert_eq!(api.status(&after).await, 200, "issued after the cutoff");
    assert_eq!(
        api.status(&client_after).await,
        200,
        "issued after the client's cutoff"
    );
}

#[tokio::test]
async fn a_token_answered_from_the_verified_token_cache_is_still_checked() {
    let issuer = issuer();
    let list = RevocationList::follow(feed_config(&issuer)).unwrap();
    assert!(list.synced(Duration::from_secs(5)).await);
    let v = validator(&issuer, &list);
    let t = token(&issuer, "cached", Some(now() - 5));
    assert!(v.validate(&t, now()).await.is_ok());
    assert!(v.validate(&t, now()).await.is_ok());
    let before = v.cache_stats().unwrap();
    assert_eq!((before.hits, before.misses), (1, 1));

    issuer.revoke(json!({"jti": "jti-cached", "until": now() + 600}));
    let mut refused = None;
    for _ in 0..100 {
        if let Err(err) = v.validate(&t, now()).await {
            refused = Some(err);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused, Some(GuardError::InvalidToken(Rejection::Revoked)));
    let after = v.cache_stats().unwrap();
    assert_eq!(
        after.misses, 1,
        "the refusal came from a cache hit: {after:?}"
    );
    assert!(after.hits > before.hits);
}

#[tokio::test]
async fn a_reset_replaces_the_list() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let (a, b) = (
        token(&issuer, "a", Some(now())),
        token(&issuer, "b", Some(now())),
    );
    issuer.revoke(json!({"jti": "jti-a", "until": now() + 600}));
    assert_revoked(&api.until_status(&a, 401).await, "a");
    assert_eq!(api.status(&b).await, 200);

    // The issuer can no longer answer from the guard's cursor: the whole list, now only b.
    issuer.reset_feed(vec![json!({"jti": "jti-b", "until": now() + 600})]);
    assert_revoked(&api.until_status(&b, 401).await, "b after the reset");
    assert_eq!(
        api.status(&a).await,
        200,
        "an entry absent from a reset is gone"
    );
    let stats = api.list.stats();
    assert_eq!((stats.entries, stats.resets), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn entries_past_until_are_no_longer_enforced_and_are_dropped() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let t = token(&issuer, "short", Some(now()));
    let until = now() + 2;
    issuer.revoke(json!({"jti": "jti-short", "until": until}));
    issuer.revoke(json!({"jti": "jti-long", "until": now() + 600}));
    assert_revoked(&api.until_status(&t, 401).await, "before until");
    assert_eq!(api.list.stats().entries, 2);
    tokio::time::sleep(Duration::from_secs(
        u64::try_from(until - now()).unwrap_or(0) + 1,
    ))
    .await;
    assert_eq!(api.status(&t).await, 200, "past until");
    // The next answer of the feed (one per second here) sweeps it out.
    let mut entries = api.list.stats().entries;
    for _ in 0..60 {
        if entries == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        entries = api.list.stats().entries;
    }
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn a_failing_feed_keeps_the_last_list() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let (revoked, valid) = (
        token(&issuer, "r", Some(now())),
        token(&issuer, "v", Some(now())),
    );
    issuer.revoke(json!({"jti": "jti-r", "until": now() + 600}));
    assert_revoked(&api.until_status(&revoked, 401).await, "before the failure");

    for (fault, failures) in [(FeedFault::Status(500), 1), (FeedFault::Garbage, 2)] {
        issuer.set_feed_fault(fault);
        for _ in 0..100 {
            if api.list.stats().failures >= failures {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = api.list.stats();
        assert!(
            stats.failures >= failures,
            "{fault:?} did not fail: {stats:?}"
        );
        assert_eq!(stats.entries, 1, "{fault:?}");
        assert_revoked(&api.call(&revoked).await, "while the feed fails");
        assert_eq!(api.status(&valid).await, 200, "{fault:?}");
    }
}

#[tokio::test]
async fn a_cursor_refused_with_400_makes_the_guard_start_over_from_the_whole_list() {
    let issuer = issuer();
    let api = start_api(&issuer, feed_config(&issuer), true).await;
    let t = token(&issuer, "t", Some(now()));
    assert_eq!(api.status(&t).await, 200);

    // Every long poll is now refused: only requests without a cursor get through.
    issuer.set_feed_fault(FeedFault::RefuseCursor);
    issuer.revoke(json!({"jti": "jti-t", "until": now() + 600}));
    assert_revoked(&api.until_status(&t, 401).await, "after starting over");
    let stats = api.list.stats();
    assert!(stats.failures >= 1 && stats.resets >= 2, "{stats:?}");
}

#[tokio::test]
async fn past_max_stale_a_fail_closed_guard_answers_503_until_the_feed_is_back() {
    let issuer = issuer();
    let mut config = feed_config(&issuer);
    config.max_stale = Duration::from_secs(3);
    let api = start_api(&issuer, config, true).await;
    let t = token(&issuer, "t", Some(now()));
    assert_eq!(api.status(&t).await, 200);

    issuer.set_feed_fault(FeedFault::Hang);
    let answer = api.until_status(&t, 503).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error.as_deref(), Some("temporarily_unavailable"));
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert_eq!(
        answer.challenge.as_deref(),
        Some(r#"Bearer realm="tessera""#)
    );
    assert!(api.list.stats().stale);
    assert!(api.outcome("unavailable") >= 1);

    issuer.set_feed_fault(FeedFault::None);
    assert_eq!(
        api.until_status(&t, 200).await.status,
        200,
        "the feed is back"
    );
    assert!(!api.list.stats().stale);
}

#[tokio::test]
async fn past_max_stale_a_fail_open_guard_keeps_serving_on_the_last_list() {
    let issuer = issuer();
    let mut config = feed_config(&issuer);
    config.max_stale = Duration::from_secs(3);
    config.on_stale = StalePolicy::FailOpen;
    let api = start_api(&issuer, config, true).await;
    let (revoked, valid) = (
        token(&issuer, "r", Some(now())),
        token(&issuer, "v", Some(now())),
    );
    issuer.revoke(json!({"jti": "jti-r", "until": now() + 600}));
    assert_revoked(&api.until_status(&revoked, 401).await, "before the cut");

    issuer.set_feed_fault(FeedFault::Status(502));
    for _ in 0..100 {
        if api.list.stats().stale {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.list.stats().stale, "{:?}", api.list.stats());
    assert_eq!(
        api.status(&valid).await,
        200,
        "fail-open serves a stale list"
    );
    assert_revoked(&api.call(&revoked).await, "the last list still holds");
}

#[tokio::test]
async fn a_wrong_client_secret_never_syncs_and_fails_closed() {
    let issuer = issuer();
    let mut config = feed_config(&issuer);
    config.client_secret = "not the secret".into();
    config.max_stale = Duration::from_secs(3);
    let api = start_api(&issuer, config, false).await;
    assert!(!api.list.synced(Duration::from_millis(500)).await);
    let t = token(&issuer, "t", Some(now()));
    let answer = api.until_status(&t, 503).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error.as_deref(), Some("temporarily_unavailable"));
    let stats = api.list.stats();
    assert!(
        stats.stale && stats.failures >= 1 && stats.updates == 0,
        "{stats:?}"
    );
    assert_eq!(stats.age, None);
    assert!(issuer.feed_requests() >= 1);
}

#[tokio::test]
async fn an_entry_published_while_a_poll_is_held_applies_without_waiting_for_the_next_poll() {
    let issuer = issuer();
    let mut config = feed_config(&issuer);
    // Held for up to 10 s: an entry seen within 5 s came through the held request.
    config.wait = Duration::from_secs(10);
    let api = start_api(&issuer, config, true).await;
    let t = token(&issuer, "t", Some(now()));
    assert_eq!(api.status(&t).await, 200);
    for _ in 0..100 {
        if issuer.feed_requests() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(issuer.feed_requests() >= 2, "no long poll was made");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = issuer.feed_requests();

    issuer.revoke(json!({"jti": "jti-t", "until": now() + 600}));
    assert_revoked(
        &api.until_status(&t, 401).await,
        "pushed during a held poll",
    );
    assert!(
        issuer.feed_requests() <= requests + 1,
        "the entry came through the held request"
    );
}

#[tokio::test]
async fn the_follower_stops_when_the_list_is_dropped() {
    let issuer = issuer();
    let list = RevocationList::follow(feed_config(&issuer)).unwrap();
    assert!(list.synced(Duration::from_secs(5)).await);
    let v = validator(&issuer, &list);
    drop(list);
    // The validator still holds the list: the feed is still followed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let following = issuer.feed_requests();
    assert!(following >= 2, "{following}");
    drop(v);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = issuer.feed_requests();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        issuer.feed_requests(),
        stopped,
        "the follower outlived its list"
    );
}
