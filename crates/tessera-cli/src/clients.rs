//! `tessera client`: registering and listing OAuth clients.

use anyhow::{Context, bail};
use chrono::Utc;
use tessera_core::{ClientId, GrantType, ScopeSet, secret};
use tessera_store::{AuditKind, NewAuditEvent, NewClient, Store};

use crate::admin::{open, print_list, record, user_error};
use crate::args::{ClientAdd, ClientCommand, Common};

pub async fn client(common: &Common, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add(new) => add(common, new).await,
        ClientCommand::List => list(open(common).await?.as_ref()).await,
        ClientCommand::Delete { client_id } => {
            let store = open(common).await?;
            let now = Utc::now();
            if !store.delete_client(client_id.as_str(), now).await? {
                bail!("client {client_id} does not exist");
            }
            record(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::ClientDeleted, now)
                    .client_id(client_id.as_str())
                    .target(format!("client {client_id}"))
                    .detail("deleted, with every token issued to it"),
            )
            .await;
            println!("deleted client {client_id}; every token issued to it is revoked");
            Ok(())
        }
        ClientCommand::RotateSecret {
            client_id,
            revoke_tokens,
        } => rotate_secret(common, &client_id, revoke_tokens).await,
    }
}

/// Replaces a confidential client's secret and prints the new one once.
async fn rotate_secret(
    common: &Common,
    client_id: &ClientId,
    revoke_tokens: bool,
) -> anyhow::Result<()> {
    let store = open(common).await?;
    let secret = secret::generate()?;
    let now = Utc::now();
    store
        .rotate_client_secret(
            client_id.as_str(),
            &secret::digest(&secret),
            revoke_tokens,
            now,
        )
        .await
        .map_err(user_error)?;
    let detail = if revoke_tokens {
        "new secret; every token issued to it revoked"
    } else {
        "new secret"
    };
    record(
        store.as_ref(),
        NewAuditEvent::new(AuditKind::ClientSecretRotated, now)
            .client_id(client_id.as_str())
            .target(format!("client {client_id}"))
            .detail(detail),
    )
    .await;
    println!("client_id: {client_id}");
    println!("client_secret: {secret}");
    eprintln!(
        "The old secret no longer works{}. Store the new one now: it cannot be shown again.",
        if revoke_tokens {
            ", and every token issued to the client is revoked"
        } else {
            ""
        }
    );
    Ok(())
}

/// Registers a client (checked before the database is opened) and prints its secret once.
async fn add(common: &Common, mut new: ClientAdd) -> anyhow::Result<()> {
    new.grants.sort();
    new.grants.dedup();
    check_grants(&new)?;
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        check_redirect_uri(uri)?;
    }
    let store = open(common).await?;
    let secret = if new.public {
        None
    } else {
        Some(secret::generate()?)
    };
    let record = NewClient {
        name: new
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| new.client_id.to_string()),
        client_id: new.client_id,
        secret_hash: secret.as_deref().map(secret::digest),
        grant_types: new.grants,
        scopes: new.scopes.into_iter().collect::<ScopeSet>(),
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        access_token_format: new.token_format,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
    };
    let client = store
        .create_client(&record, Utc::now())
        .await
        .map_err(user_error)?;
    println!("client_id: {}", client.client_id);
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        eprintln!(
            "Store the client secret now: only its digest is kept, it cannot be shown again."
        );
    }
    Ok(())
}

/// Refuses grant combinations no client can use.
fn check_grants(new: &ClientAdd) -> anyhow::Result<()> {
    let grants = &new.grants;
    if grants.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
        bail!("the authorization_code grant needs at least one --redirect-uri (RFC 6749 §3.1.2)");
    }
    if !grants.contains(&GrantType::AuthorizationCode) && !new.redirect_uris.is_empty() {
        bail!("--redirect-uri is only used by the authorization_code grant");
    }
    if grants == &[GrantType::RefreshToken] {
        bail!(
            "the refresh_token grant needs a grant that issues the first refresh token: \
             authorization_code or password"
        );
    }
    // The rule the token endpoint applies to clients stored before it existed.
    if new.public
        && let Some(why) = grants
            .iter()
            .find_map(|grant| tessera_authz::refused_to_public_clients(*grant))
    {
        bail!("{why}");
    }
    Ok(())
}

/// Prints every client, one row each.
async fn list(store: &dyn Store) -> anyhow::Result<()> {
    print_list(
        &["CLIENT_ID", "TYPE", "GRANTS", "SCOPES", "FORMAT", "NAME"],
        store.list_clients().await?,
        |c| {
            vec![
                c.client_id.to_string(),
                if c.is_public() {
                    "public"
                } else {
                    "confidential"
                }
                .to_owned(),
                c.grant_types
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                c.scopes.to_string().replace(' ', ","),
                c.access_token_format.to_string(),
                c.registration.name,
            ]
        },
    );
    Ok(())
}

/// Redirect URIs must be absolute, without fragment (RFC 6749 §3.1.2), and https except
/// on the loopback interface (RFC 8252 §7.3).
fn check_redirect_uri(raw: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(raw).with_context(|| format!("invalid redirect URI {raw:?}"))?;
    if url.fragment().is_some() {
        bail!("invalid redirect URI {raw:?}: it may not contain a fragment");
    }
    // Redirect URIs are compared as strings, but browsers go where the parsed URL points:
    // only a URI that is already in its parsed form can mean one thing to both.
    if url.as_str() != raw {
        bail!(
            "invalid redirect URI {raw:?}: write it in its normal form, {:?}",
            url.as_str()
        );
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => bail!(
            "invalid redirect URI {raw:?}: use https (http only on 127.0.0.1, [::1] or localhost)"
        ),
    }
}

#[cfg(test)]
#[path = "tests/clients.rs"]
mod tests;
