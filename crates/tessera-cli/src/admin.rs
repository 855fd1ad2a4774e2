//! Administration commands. They work on the database named by `--database-url`, also
//! while servers run on it.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use tessera_authz::keys;
use tessera_core::{GrantType, MasterKey, ScopeSet, Username, password, secret};
use tessera_store::{
    AuditEvent, AuditFilter, AuditKind, KeyState, NewAuditEvent, NewClient, NewCompany, NewUser,
    Store, StoreError,
};

use crate::args::{AuditCommand, ClientCommand, Common, CompanyCommand, KeysCommand, UserCommand};

/// Opens and migrates the database, with an error that names it (without its password).
pub async fn open(common: &Common) -> anyhow::Result<Arc<dyn Store>> {
    tessera_store::open(&common.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                tessera_store::redact_url(&common.database_url)
            )
        })
}

/// Store errors a user caused (conflicts, unknown names) read best without the database
/// context; everything else keeps it.
fn user_error(err: StoreError) -> anyhow::Error {
    match err {
        StoreError::Conflict(m) | StoreError::NotFound(m) => anyhow::Error::msg(m),
        other => anyhow::Error::new(other),
    }
}

pub async fn company(common: &Common, cmd: CompanyCommand) -> anyhow::Result<()> {
    let store = open(common).await?;
    match cmd {
        CompanyCommand::Add { slug, name } => {
            let name = name.trim().to_owned();
            if name.is_empty() {
                bail!("the company name may not be empty");
            }
            let company = store
                .create_company(&NewCompany { slug, name }, Utc::now())
                .await
                .map_err(user_error)?;
            println!("created company {} ({})", company.slug, company.id);
        }
        CompanyCommand::List => {
            let rows = store
                .list_companies()
                .await?
                .into_iter()
                .map(|c| {
                    vec![
                        c.slug.to_string(),
                        c.name,
                        c.id.to_string(),
                        rfc3339(c.created_at),
                    ]
                })
                .collect();
            print_table(&["SLUG", "NAME", "ID", "CREATED"], rows);
        }
    }
    Ok(())
}

pub async fn user(common: &Common, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(common).await?;
    match cmd {
        UserCommand::Add {
            username,
            company,
            mut roles,
        } => {
            roles.sort();
            roles.dedup();
            let password = read_password(&username)?;
            password::check_policy(&password, username.as_str())?;
            let password_hash =
                tokio::task::spawn_blocking(move || password::hash(&password)).await??;
            let user = store
                .create_user(
                    &NewUser {
                        company,
                        username,
                        password_hash,
                        roles,
                    },
                    Utc::now(),
                )
                .await
                .map_err(user_error)?;
            println!(
                "created user {} in {} ({})",
                user.username, user.company, user.id
            );
        }
        UserCommand::List { company } => {
            let rows = store
                .list_users(company.as_ref())
                .await?
                .into_iter()
                .map(|u| {
                    vec![
                        u.username.to_string(),
                        u.company.to_string(),
                        u.roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        if u.disabled { "disabled" } else { "enabled" }.to_owned(),
                        u.id.to_string(),
                    ]
                })
                .collect();
            print_table(&["USERNAME", "COMPANY", "ROLES", "STATE", "ID"], rows);
        }
        UserCommand::Disable { username } => {
            store
                .set_user_disabled(&username, true, Utc::now())
                .await
                .map_err(user_error)?;
            println!("disabled user {username}");
        }
        UserCommand::Enable { username } => {
            store
                .set_user_disabled(&username, false, Utc::now())
                .await
                .map_err(user_error)?;
            println!("enabled user {username}");
        }
        UserCommand::Delete { username } => {
            store.delete_user(&username).await.map_err(user_error)?;
            println!("deleted user {username}");
        }
    }
    Ok(())
}

/// Reads one line from standard input as the password, without its line ending.
fn read_password(username: &Username) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password for {username} (input is shown): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(password.to_owned())
}

pub async fn client(common: &Common, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            client_id,
            mut grants,
            scopes,
            token_format,
            redirect_uris,
            public,
            name,
        } => {
            grants.sort();
            grants.dedup();
            if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
                bail!(
                    "the authorization_code grant needs at least one --redirect-uri (RFC 6749 §3.1.2)"
                );
            }
            if !grants.contains(&GrantType::AuthorizationCode) && !redirect_uris.is_empty() {
                bail!("--redirect-uri is only used by the authorization_code grant");
            }
            if grants == [GrantType::RefreshToken] {
                bail!(
                    "the refresh_token grant needs a grant that issues the first refresh token: \
                     authorization_code or password"
                );
            }
            if public && grants.contains(&GrantType::ClientCredentials) {
                bail!("a public client cannot use the client_credentials grant (RFC 6749 §4.4)");
            }
            for uri in &redirect_uris {
                check_redirect_uri(uri)?;
            }
            let store = open(common).await?;
            let secret = if public {
                None
            } else {
                Some(secret::generate()?)
            };
            let new = NewClient {
                name: name
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| client_id.to_string()),
                client_id,
                secret_hash: secret.as_deref().map(secret::digest),
                grant_types: grants,
                scopes: scopes.into_iter().collect::<ScopeSet>(),
                redirect_uris,
                access_token_format: token_format,
                access_token_ttl_secs: None,
                refresh_token_ttl_secs: None,
            };
            let client = store
                .create_client(&new, Utc::now())
                .await
                .map_err(user_error)?;
            println!("client_id: {}", client.client_id);
            if let Some(secret) = secret {
                println!("client_secret: {secret}");
                eprintln!(
                    "Store the client secret now: only its digest is kept, it cannot be shown again."
                );
            }
        }
        ClientCommand::List => {
            let store = open(common).await?;
            let rows = store
                .list_clients()
                .await?
                .into_iter()
                .map(|c| {
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
                        c.name,
                    ]
                })
                .collect();
            print_table(
                &["CLIENT_ID", "TYPE", "GRANTS", "SCOPES", "FORMAT", "NAME"],
                rows,
            );
        }
    }
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

/// The master key from `TESSERA_MASTER_KEY`, if set (an empty value counts as unset). It
/// is read from the environment only, never from a flag, so it stays out of process lists.
pub fn master_key() -> anyhow::Result<Option<Arc<MasterKey>>> {
    match std::env::var("TESSERA_MASTER_KEY") {
        Ok(value) if !value.trim().is_empty() => Ok(Some(Arc::new(
            MasterKey::parse(&value).map_err(|e| anyhow::anyhow!("{}", e.message()))?,
        ))),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64")
        }
    }
}

pub async fn keys(common: &Common, cmd: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::MasterKey = cmd {
        let (_, encoded) = MasterKey::generate()?;
        println!("{encoded}");
        return Ok(());
    }
    let store = open(common).await?;
    let schedule = common.key_schedule();
    let now = Utc::now();
    match cmd {
        KeysCommand::MasterKey => {}
        KeysCommand::List => {
            let rows = store
                .published_keys()
                .await?
                .into_iter()
                .map(|k| {
                    let at_rest = if k.private_key.is_empty() {
                        "erased"
                    } else if tessera_core::seal::is_sealed(&k.private_key) {
                        "encrypted"
                    } else {
                        "plaintext"
                    };
                    vec![
                        k.kid,
                        k.algorithm.to_string(),
                        k.state.as_str().to_owned(),
                        rfc3339(k.created_at),
                        k.activated_at
                            .or(k.activate_at)
                            .map(rfc3339)
                            .unwrap_or_else(|| "-".into()),
                        k.retired_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                        k.remove_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                        at_rest.to_owned(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "KID",
                    "ALG",
                    "STATE",
                    "PUBLISHED",
                    "SIGNS FROM",
                    "RETIRED",
                    "REMOVED AT",
                    "PRIVATE KEY",
                ],
                rows,
            );
        }
        KeysCommand::Rotate { now: false } => {
            schedule
                .check(Duration::from_secs(common.access_token_ttl))
                .map_err(anyhow::Error::msg)?;
            let keys = store.published_keys().await?;
            if !keys.iter().any(|k| k.state == KeyState::Active) {
                bail!(
                    "no key signs yet: start the authorization server once (it creates the first \
                     key), or use `tessera keys rotate --now`"
                );
            }
            if let Some(next) = keys.iter().find(|k| k.state == KeyState::Next) {
                bail!(
                    "a rotation is already under way: key {} starts signing at {}",
                    next.kid,
                    next.activate_at.map(rfc3339).unwrap_or_else(|| "?".into())
                );
            }
            let master = master_key()?;
            let generated = keys::generate(schedule.algorithm).await?;
            let activate_at = now + chrono::Duration::from_std(schedule.publish_ahead)?;
            let stored = store
                .insert_next_key_if_none(
                    &keys::to_stored(&generated, master.as_deref())?,
                    activate_at,
                    now,
                )
                .await?;
            if stored.kid != generated.kid() {
                bail!(
                    "another rotation started meanwhile: key {} is next",
                    stored.kid
                );
            }
            record_key_event(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::KeyRotated, now)
                    .target(stored.kid.as_str())
                    .detail(format!(
                        "tessera keys rotate: {}, signs from {}",
                        stored.algorithm,
                        rfc3339(activate_at)
                    )),
            )
            .await;
            println!(
                "published key {} ({}); it starts signing at {}",
                stored.kid,
                stored.algorithm,
                rfc3339(activate_at)
            );
        }
        KeysCommand::Rotate { now: true } => {
            schedule
                .check(Duration::from_secs(common.access_token_ttl))
                .map_err(anyhow::Error::msg)?;
            let master = master_key()?;
            let before = store.published_keys().await?;
            let generated = keys::generate(schedule.algorithm).await?;
            let now = Utc::now();
            let remove_at = now + chrono::Duration::from_std(schedule.retire_after)?;
            let stored = store
                .activate_key_now(
                    &keys::to_stored(&generated, master.as_deref())?,
                    now,
                    remove_at,
                )
                .await?;
            record_key_event(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::KeyRotated, now)
                    .target(stored.kid.as_str())
                    .detail(format!(
                        "tessera keys rotate --now: {} signs at once",
                        stored.algorithm
                    )),
            )
            .await;
            println!("key {} ({}) signs now", stored.kid, stored.algorithm);
            for key in before {
                match key.state {
                    KeyState::Active => println!(
                        "key {} is retired and stays published until {}",
                        key.kid,
                        rfc3339(remove_at)
                    ),
                    KeyState::Next => println!(
                        "key {}, which was to sign from {}, is withdrawn",
                        key.kid,
                        key.activate_at.map(rfc3339).unwrap_or_else(|| "?".into())
                    ),
                    KeyState::Retired => {}
                }
            }
            eprintln!(
                "warning: resource servers whose cached JWKS lacks the new key refuse its tokens \
                 until they fetch the JWKS again, and running servers switch within {} s",
                keys::KEY_REFRESH_INTERVAL.as_secs()
            );
        }
        KeysCommand::Remove { kid } => {
            let keys = store.published_keys().await?;
            match keys.iter().find(|k| k.kid == kid) {
                None => bail!("no published key has the id {kid:?}"),
                Some(k) if k.state == KeyState::Active => bail!(
                    "key {kid} is the active key: run `tessera keys rotate --now` first, then remove it"
                ),
                Some(_) => {}
            }
            // A next key that some instance's clock may sign with already stays.
            let soon =
                now + chrono::Duration::from_std(keys::KEY_REFRESH_INTERVAL + keys::CLOCK_LEEWAY)?;
            if !store.remove_key(&kid, soon).await? {
                match keys.iter().find(|k| k.kid == kid) {
                    Some(k) if k.state == KeyState::Next => bail!(
                        "key {kid} starts signing at {}, too soon to withdraw it safely: run \
                         `tessera keys rotate --now` instead, which withdraws it",
                        k.activate_at.map(rfc3339).unwrap_or_else(|| "?".into())
                    ),
                    _ => {
                        bail!("key {kid} changed meanwhile; run `tessera keys list` and try again")
                    }
                }
            }
            record_key_event(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::KeyRemoved, now)
                    .target(kid.as_str())
                    .detail("tessera keys remove"),
            )
            .await;
            println!(
                "removed key {kid} from the JWKS; every token it signed is refused once resource \
                 servers fetch the JWKS again"
            );
        }
    }
    Ok(())
}

/// Records a key change made from the command line. The change itself is done: a failure
/// to record it is reported on stderr, not turned into a failed command.
async fn record_key_event(store: &dyn Store, event: NewAuditEvent) {
    let event = event.actor("cli");
    if let Err(err) = store.record_audit_events(&[event]).await {
        eprintln!(
            "warning: the key change is done, but recording it in the audit log failed: {err}"
        );
    }
}

pub async fn audit(common: &Common, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        kind,
        actor,
        since,
        limit,
        json,
    } = cmd;
    let since = since
        .map(|ago| anyhow::Ok(Utc::now() - chrono::Duration::from_std(ago)?))
        .transpose()?;
    let store = open(common).await?;
    let events = store
        .list_audit_events(&AuditFilter {
            kind,
            actor,
            since,
            limit,
        })
        .await?;
    let output = if json {
        events
            .iter()
            .map(|e| format!("{}\n", audit_json(e)))
            .collect()
    } else {
        let rows = events.iter().map(audit_row).collect();
        format_table(
            &[
                "AT", "KIND", "ACTOR", "CLIENT", "COMPANY", "TARGET", "ADDRESS", "DETAIL",
            ],
            rows,
        )
    };
    write_stdout(&output)
}

/// One event as a table row. Each field is shown as text that cannot steer the terminal:
/// a logged username or detail came from a request, and may hold escape sequences.
fn audit_row(event: &AuditEvent) -> Vec<String> {
    let e = &event.event;
    let cell = |value: &Option<String>| match value.as_deref() {
        None | Some("") => "-".to_owned(),
        Some(text) => printable(text),
    };
    vec![
        rfc3339(e.at),
        e.kind.as_str().to_owned(),
        cell(&e.actor),
        cell(&e.client_id),
        cell(&e.company),
        cell(&e.target),
        cell(&e.address),
        cell(&e.detail),
    ]
}

/// One event as a JSON object, under the table's column names; a missing field is `null`.
/// The time keeps the stored precision (microseconds), which orders events of one second.
fn audit_json(event: &AuditEvent) -> serde_json::Value {
    let e = &event.event;
    serde_json::json!({
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "kind": e.kind.as_str(),
        "actor": e.actor,
        "client": e.client_id,
        "company": e.company,
        "target": e.target,
        "address": e.address,
        "detail": e.detail,
    })
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), everything else as it is.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            // Control characters and the bidirectional overrides, which could make a
            // logged name rewrite or reorder what the terminal shows.
            if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Writes `text` to standard output at once. A reader that stopped early (`| head`) is not
/// an error: what it wanted, it got.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Prints rows under a header, columns padded to their widest cell.
fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    print!("{}", format_table(header, rows));
}

/// Rows under a header, columns padded to their widest cell, one line each.
fn format_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

#[cfg(test)]
#[path = "tests/admin.rs"]
mod tests;
