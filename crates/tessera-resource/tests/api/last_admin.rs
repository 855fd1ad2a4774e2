//! A company never loses its last enabled admin through its own API.

use reqwest::Method;
use serde_json::{Value, json};

use tessera_store::Store;

use crate::helpers::*;

on_each_backend!(
    the_last_admin_cannot_demote_disable_or_delete_themselves,
    with_two_admins_one_may_demote_disable_or_delete_the_other,
    two_admins_demoting_each_other_at_once_leave_one_admin,
);

/// Asserts a `409 conflict` saying the company would have no enabled admin.
async fn assert_last_admin(response: reqwest::Response, what: &str) {
    assert_eq!(response.status().as_u16(), 409, "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "conflict", "{what}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("would have no enabled admin"),
        "{what}: {description}"
    );
}

async fn the_last_admin_cannot_demote_disable_or_delete_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.alice_admin();
    let alice = format!("/companies/acme/users/{}", app.user("alice").id);
    for (what, body) in [
        ("demote", json!({"roles": ["user"]})),
        ("disable", json!({"disabled": true})),
        ("both", json!({"roles": ["user"], "disabled": true})),
    ] {
        let response = app
            .send(Method::PATCH, &alice, Some(&admin), Some(body))
            .await;
        assert_last_admin(response, what).await;
    }
    let response = app.send(Method::DELETE, &alice, Some(&admin), None).await;
    assert_last_admin(response, "delete").await;

    // Nothing changed, and alice is still an admin whose token works.
    let unchanged: Value = app.get(&alice, Some(&admin)).await.json().await.unwrap();
    assert_eq!(unchanged["roles"], json!(["admin"]));
    assert_eq!(unchanged["disabled"], false);
    // Changes that keep her an enabled admin are fine.
    let response = app
        .send(
            Method::PATCH,
            &alice,
            Some(&admin),
            Some(json!({"roles": ["admin", "user"]})),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    app.assert_valid_token_still_works().await;
}

async fn with_two_admins_one_may_demote_disable_or_delete_the_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.alice_admin();
    let bob = format!("/companies/acme/users/{}", app.user("bob").id);
    let alice = format!("/companies/acme/users/{}", app.user("alice").id);
    let promote = json!({"roles": ["admin"]});
    for (what, body) in [
        ("demote", json!({"roles": ["user"]})),
        ("disable", json!({"disabled": true})),
    ] {
        let response = app
            .send(Method::PATCH, &bob, Some(&admin), Some(promote.clone()))
            .await;
        assert_eq!(response.status().as_u16(), 200, "promote before {what}");
        let response = app
            .send(Method::PATCH, &bob, Some(&admin), Some(body))
            .await;
        assert_eq!(response.status().as_u16(), 200, "{what}");
        let response = app
            .send(
                Method::PATCH,
                &bob,
                Some(&admin),
                Some(json!({"disabled": false})),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "enable after {what}");
    }
    // A disabled admin does not count: alice is still the last enabled one.
    app.send(Method::PATCH, &bob, Some(&admin), Some(promote.clone()))
        .await;
    app.send(
        Method::PATCH,
        &bob,
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await;
    let response = app
        .send(
            Method::PATCH,
            &alice,
            Some(&admin),
            Some(json!({"roles": ["user"]})),
        )
        .await;
    assert_last_admin(response, "demote beside a disabled admin").await;
    let response = app.send(Method::DELETE, &bob, Some(&admin), None).await;
    assert_eq!(response.status().as_u16(), 204, "delete the disabled admin");

    // Another company's admin is no admin of acme.
    let carol = app.token("carol", "admin");
    let response = app
        .send(
            Method::PATCH,
            &format!("/companies/globex/users/{}", app.user("carol").id),
            Some(&carol),
            Some(json!({"roles": ["user"]})),
        )
        .await;
    assert_last_admin(response, "globex's last admin").await;
    app.assert_valid_token_still_works().await;
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice_token = app.alice_admin();
    let bob_id = app.user("bob").id;
    let alice_id = app.user("alice").id;
    for round in 0..5 {
        // Both admins again, then each demotes the other at the same moment.
        for id in [alice_id, bob_id] {
            let response = app
                .send(
                    Method::PATCH,
                    &format!("/companies/acme/users/{id}"),
                    Some(&alice_token),
                    Some(json!({"roles": ["admin"], "disabled": false})),
                )
                .await;
            assert!(
                [200, 409].contains(&response.status().as_u16()),
                "round {round}"
            );
        }
        let bob_token = app.token("bob", "admin");
        let alice_token = app.token("alice", "admin");
        let demote = |token: String, id: uuid::Uuid, how: Value| {
            let app = &app;
            async move {
                app.send(
                    Method::PATCH,
                    &format!("/companies/acme/users/{id}"),
                    Some(&token),
                    Some(how),
                )
                .await
                .status()
                .as_u16()
            }
        };
        let (a, b) = tokio::join!(
            demote(alice_token, bob_id, json!({"roles": ["user"]})),
            demote(bob_token, alice_id, json!({"disabled": true})),
        );
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: exactly one wins");
        let users = app
            .store
            .list_users(Some(&"acme".parse().unwrap()))
            .await
            .unwrap();
        let admins = users
            .iter()
            .filter(|u| !u.disabled && u.roles.contains(&tessera_core::Role::Admin))
            .count();
        assert_eq!(admins, 1, "round {round}: one enabled admin left");
        // Whoever is left restores the other for the next round.
        let survivor = users
            .iter()
            .find(|u| !u.disabled && u.roles.contains(&tessera_core::Role::Admin))
            .unwrap();
        let token = app.token(survivor.username.as_str(), "admin");
        let other = if survivor.id == alice_id {
            bob_id
        } else {
            alice_id
        };
        let response = app
            .send(
                Method::PATCH,
                &format!("/companies/acme/users/{other}"),
                Some(&token),
                Some(json!({"roles": ["admin"], "disabled": false})),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "round {round}: restore");
    }
}
