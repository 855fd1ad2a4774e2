use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn an_admin_lists_their_company_from_claims_alone_with_no_database_query_to_authorize(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let token = app.token("alice", "basic admin");
    // Warm the key cache, then count.
    assert_eq!(app.get("/me", Some(&token)).await.status().as_u16(), 200);
    let before = app.store.calls();

    let response = app.get("/me", Some(&token)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["tessera-authz-lookups"], "0");
    let timing = response.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(timing.starts_with("authz;desc=\"jwt\";dur="), "{timing}");
    assert_eq!(
        app.store.calls(),
        before,
        "authorizing a JWT touched the database"
    );
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["company"], "acme");
    assert_eq!(me["scope"], "basic admin");
    assert_eq!(me["sub"], app.user("alice").id.to_string());

    let response = app.get("/companies/acme/users", Some(&token)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["tessera-authz-lookups"], "0");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    // Exactly one query: the listing itself.
    assert_eq!(app.store.calls(), before + 1);
    let users: Vec<Value> = response.json().await.unwrap();
    let names: Vec<&str> = users
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let mut members: Vec<&String> = users[0].as_object().unwrap().keys().collect();
    members.sort();
    assert_eq!(
        members,
        [
            "company",
            "created_at",
            "disabled",
            "email",
            "id",
            "name",
            "roles",
            "username"
        ]
    );
}

async fn the_first_request_fetches_the_keys_and_says_so(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/me", Some(&app.token("bob", "basic"))).await;
    assert_eq!(response.status().as_u16(), 200);
    // Discovery: the issuer's metadata, then its JWKS.
    assert_eq!(response.headers()["tessera-authz-lookups"], "2");
    assert_eq!(app.issuer.jwks_fetches(), 1);
}

async fn an_admin_creates_reads_updates_and_deletes_users_of_their_company(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.alice_admin();
    let response = app
        .send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(json!({"username": "erin", "password": "a long password", "roles": ["user"]})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let erin: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/companies/acme/users/{}", erin["id"].as_str().unwrap())
    );
    assert_eq!(erin["company"], "acme");
    assert_eq!(erin["roles"], json!(["user"]));
    assert_eq!(erin["disabled"], false);

    let fetched: Value = app.get(&location, Some(&token)).await.json().await.unwrap();
    assert_eq!(fetched, erin);

    let response = app
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            Some(json!({"roles": ["admin", "user"], "disabled": true})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["roles"], json!(["admin", "user"]));
    assert_eq!(patched["disabled"], true);

    let response = app
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            Some(json!({"password": "another long password"})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);

    assert_eq!(
        app.send(Method::DELETE, &location, Some(&token), None)
            .await
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        app.get(&location, Some(&token)).await.status().as_u16(),
        404
    );
    assert_eq!(
        app.send(Method::DELETE, &location, Some(&token), None)
            .await
            .status()
            .as_u16(),
        404
    );
}

async fn bad_bodies_are_clear_400s_and_taken_usernames_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.alice_admin();
    let post = |body: Value| {
        app.send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(body),
        )
    };
    for (body, needle) in [
        (
            json!({"username": "erin", "password": "a long password", "roles": ["user"], "company": "globex"}),
            "unknown field `company`",
        ),
        (
            json!({"username": "erin", "password": "a long password", "roles": ["root"]}),
            "unknown variant `root`",
        ),
        (
            json!({"username": "Erin", "password": "a long password", "roles": ["user"]}),
            "invalid username",
        ),
        (
            json!({"username": "erin", "password": "short", "roles": ["user"]}),
            "invalid password",
        ),
        (
            json!({"username": "erin", "password": "a long password", "roles": []}),
            "at least one role",
        ),
        (json!({"username": "erin"}), "missing field"),
    ] {
        let response = post(body.clone()).await;
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{body}");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}: {error}"
        );
    }
    let response =
        post(json!({"username": "bob", "password": "a long password", "roles": ["user"]})).await;
    assert_eq!(response.status().as_u16(), 409);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "conflict");

    let bob = format!("/companies/acme/users/{}", app.user("bob").id);
    for body in [
        json!({}),
        json!({"company": "globex"}),
        json!({"roles": ["superuser"]}),
    ] {
        let response = app
            .send(Method::PATCH, &bob, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(response.status().as_u16(), 400, "{body}");
    }
    let response = app
        .http
        .post(format!("{}/companies/acme/users", app.address))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("username=erin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let unchanged: Value = app.get(&bob, Some(&token)).await.json().await.unwrap();
    assert_eq!(unchanged["roles"], json!(["user"]));
}

async fn me_needs_basic_and_reports_client_credentials_tokens_without_user_claims(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let response = app.get("/me", Some(&app.token("alice", "admin"))).await;
    // An admin-only token is not a basic token.
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope", scope="basic""#
    );

    let mut claims = app.issuer.user_claims("x", "acme", &[], "basic", now());
    claims.sub = "machine".into();
    claims.company = None;
    claims.roles = None;
    claims.username = None;
    let me: Value = app
        .get("/me", Some(&app.issuer.sign(&claims)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "machine");
    assert_eq!(me["company"], Value::Null);
    assert_eq!(me["client_id"], "test-client");
}

async fn users_carry_an_optional_name_and_email_that_patch_sets_and_null_clears(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.alice_admin();
    let response = app
        .send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(json!({
                "username": "ada", "password": "a long password", "roles": ["user"],
                "name": "Ada Lovelace", "email": "ada@acme.example",
            })),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let ada: Value = response.json().await.unwrap();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["email"], "ada@acme.example");
    let location = format!("/companies/acme/users/{}", ada["id"].as_str().unwrap());
    // Unset is null, not absent.
    let bob: Value = app
        .get(
            &format!("/companies/acme/users/{}", app.user("bob").id),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (bob.get("name"), bob.get("email")),
        (Some(&Value::Null), Some(&Value::Null))
    );

    // A new name, the address cleared with null; what is left out stays.
    let response = app
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            Some(json!({"name": "Augusta Ada King", "email": null})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["name"], "Augusta Ada King");
    assert_eq!(patched["email"], Value::Null);
    assert_eq!(patched["roles"], json!(["user"]));
    let response = app
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            Some(json!({"disabled": false})),
        )
        .await;
    let unchanged: Value = response.json().await.unwrap();
    assert_eq!(unchanged["name"], "Augusta Ada King");

    // Bad values are clear 400s, and change nothing.
    for (body, needle) in [
        (json!({"name": ""}), "name is empty"),
        (json!({"name": " padded"}), "whitespace"),
        (json!({"name": "two\nlines"}), "control character"),
        (json!({"name": "x".repeat(201)}), "longer than 200"),
        (json!({"email": "not-an-address"}), "no @"),
        (json!({"email": "ada@localhost"}), "domain"),
        (json!({"email": 42}), "invalid type"),
    ] {
        let response = app
            .send(Method::PATCH, &location, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_request", "{body}");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}: {error}"
        );
    }
    let response = app
        .send(
            Method::POST,
            "/companies/acme/users",
            Some(&token),
            Some(json!({"username": "eve", "password": "a long password", "roles": ["user"], "email": "eve"})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let after: Value = app.get(&location, Some(&token)).await.json().await.unwrap();
    assert_eq!(after, unchanged);
}

on_each_backend!(
    users_carry_an_optional_name_and_email_that_patch_sets_and_null_clears,
    an_admin_lists_their_company_from_claims_alone_with_no_database_query_to_authorize,
    the_first_request_fetches_the_keys_and_says_so,
    an_admin_creates_reads_updates_and_deletes_users_of_their_company,
    bad_bodies_are_clear_400s_and_taken_usernames_409,
    me_needs_basic_and_reports_client_credentials_tokens_without_user_claims,
);
