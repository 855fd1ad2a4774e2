//! The demo data `tessera serve` puts into an empty database.
//!
//! The credentials are fixed and printed so that the README's commands work verbatim.
//! They are for trying Tessera on one machine: `--no-demo` skips them, and the stand-alone
//! `tessera authz` never seeds.

use tessera_core::{GrantType, Role, ScopeSet, TokenFormat, password, secret};
use tessera_store::{NewClient, NewCompany, NewUser, Seed};

/// Every demo user's password.
pub const PASSWORD: &str = "tessera-demo";
/// The demo JWT client.
pub const JWT_CLIENT_ID: &str = "demo-jwt";
/// The demo JWT client's secret.
pub const JWT_CLIENT_SECRET: &str = "demo-jwt-secret";

/// The demo opaque client.
pub const OPAQUE_CLIENT_ID: &str = "demo-opaque";
/// The demo opaque client's secret.
pub const OPAQUE_CLIENT_SECRET: &str = "demo-opaque-secret";
/// The demo resource server's client, for introspection.
pub const RESOURCE_CLIENT_ID: &str = "demo-resource";
/// Its secret.
pub const RESOURCE_CLIENT_SECRET: &str = "demo-resource-secret";

/// (username, company, roles)
const USERS: [(&str, &str, &[Role]); 4] = [
    ("alice", "acme", &[Role::Admin]),
    ("bob", "acme", &[Role::User]),
    ("carol", "globex", &[Role::Admin]),
    ("dave", "globex", &[Role::User]),
];

const COMPANIES: [(&str, &str); 2] = [
    ("acme", "Acme Corporation"),
    ("globex", "Globex Corporation"),
];

pub fn seed() -> anyhow::Result<Seed> {
    let password_hash = password::hash(PASSWORD)?;
    Ok(Seed {
        companies: COMPANIES
            .iter()
            .map(|(slug, name)| {
                Ok(NewCompany {
                    slug: slug.parse()?,
                    name: (*name).to_owned(),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        users: USERS
            .iter()
            .map(|(username, company, roles)| {
                Ok(NewUser {
                    company: company.parse()?,
                    username: username.parse()?,
                    password_hash: password_hash.clone(),
                    roles: roles.to_vec(),
                    name: None,
                    email: None,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        clients: vec![
            demo_client(
                JWT_CLIENT_ID,
                "Demo client (JWT access tokens)",
                JWT_CLIENT_SECRET,
                TokenFormat::Jwt,
                true,
            )?,
            demo_client(
                OPAQUE_CLIENT_ID,
                "Demo client (opaque access tokens)",
                OPAQUE_CLIENT_SECRET,
                TokenFormat::Opaque,
                true,
            )?,
            demo_client(
                RESOURCE_CLIENT_ID,
                "Demo resource server (introspection)",
                RESOURCE_CLIENT_SECRET,
                TokenFormat::Jwt,
                false,
            )?,
        ],
    })
}

fn demo_client(
    id: &str,
    name: &str,
    secret: &str,
    format: TokenFormat,
    grants: bool,
) -> anyhow::Result<NewClient> {
    Ok(NewClient {
        client_id: id.parse()?,
        name: name.into(),
        secret_hash: Some(secret::digest(secret)),
        grant_types: if grants {
            vec![
                GrantType::Password,
                GrantType::ClientCredentials,
                GrantType::RefreshToken,
            ]
        } else {
            vec![]
        },
        scopes: "basic admin".parse::<ScopeSet>()?,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        access_token_format: format,
        access_token_ttl_secs: None,
        refresh_token_ttl_secs: None,
    })
}

/// What `tessera serve` prints after seeding.
pub fn describe() -> String {
    let mut out = String::from(
        "Seeded demo data into the empty database (demo credentials: never use them in production; \
         --no-demo skips them):\n",
    );
    out.push_str("  companies: acme (Acme Corporation), globex (Globex Corporation)\n");
    out.push_str(&format!("  users, all with password {PASSWORD:?}:\n"));
    for (username, company, roles) in USERS {
        let roles: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        out.push_str(&format!(
            "    {username:<6} company {company:<7} roles {}\n",
            roles.join(",")
        ));
    }
    out.push_str(&format!(
        "  clients (grants password, client_credentials, refresh_token; scopes basic, admin):\n    \
         {JWT_CLIENT_ID} with secret {JWT_CLIENT_SECRET:?}: JWT access tokens\n    \
         {OPAQUE_CLIENT_ID} with secret {OPAQUE_CLIENT_SECRET:?}: opaque access tokens\n  \
         resource server client (introspection only): {RESOURCE_CLIENT_ID} with secret {RESOURCE_CLIENT_SECRET:?}\n"
    ));
    out
}
