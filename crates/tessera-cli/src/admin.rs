//! Administration commands for companies, users and the audit log (clients and keys
//! have modules of their own). They work on the database named by `--database-url`, also
//! while servers run on it.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use tessera_core::{Username, password};
use tessera_store::{
    AuditEvent, AuditFilter, AuditKind, NewAuditEvent, NewCompany, NewUser, Store, StoreError,
    User, UserPatch,
};

use crate::args::{AuditCommand, Common, CompanyCommand, Cutoff, UserCommand};

/// Opens and migrates the database, with an error that names it (without its password).
pub async fn open(common: &Common) -> anyhow::Result<Arc<dyn Store>> {
    tessera_store::open_with_pool(&common.database_url, common.database_pool_size)
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
pub fn user_error(err: StoreError) -> anyhow::Error {
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
            print_list(
                &["SLUG", "NAME", "ID", "CREATED"],
                store.list_companies().await?,
                |c| {
                    vec![
                        c.slug.to_string(),
                        c.name,
                        c.id.to_string(),
                        rfc3339(c.created_at),
                    ]
                },
            );
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
            name,
            email,
        } => {
            roles.sort();
            roles.dedup();
            let name = name
                .as_deref()
                .map(tessera_core::profile::check_name)
                .transpose()?
                .map(str::to_owned);
            let email = email
                .as_deref()
                .map(tessera_core::profile::check_email)
                .transpose()?
                .map(str::to_owned);
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
                        name,
                        email,
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
            print_list(
                &["USERNAME", "COMPANY", "ROLES", "STATE", "ID"],
                store.list_users(company.as_ref()).await?,
                |u| {
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
                },
            );
        }
        UserCommand::Disable { username } => set_disabled(store.as_ref(), &username, true).await?,
        UserCommand::Enable { username } => set_disabled(store.as_ref(), &username, false).await?,
        UserCommand::Delete { username } => {
            store
                .delete_user(&username, Utc::now())
                .await
                .map_err(user_error)?;
            println!("deleted user {username}; every token issued to them is revoked");
        }
        UserCommand::SetPassword { username } => {
            let user = known_user(store.as_ref(), &username).await?;
            let password = read_password(&username)?;
            password::check_policy(&password, username.as_str())?;
            let password_hash =
                tokio::task::spawn_blocking(move || password::hash(&password)).await??;
            let patch = UserPatch {
                password_hash: Some(password_hash),
                ..UserPatch::default()
            };
            let now = Utc::now();
            store
                .update_user(&user.company, user.id, &patch, now)
                .await?
                .ok_or_else(|| anyhow::anyhow!("user {username} does not exist"))?;
            record(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::UserUpdated, now)
                    .company(user.company.as_str())
                    .target(format!("{} ({})", user.username, user.id))
                    .detail("password changed"),
            )
            .await;
            println!("set the password of {username}; every token issued to them is revoked");
        }
        UserCommand::Revoke { username } => {
            let user = known_user(store.as_ref(), &username).await?;
            let now = Utc::now();
            store
                .revoke_user(user.id, now)
                .await?
                .ok_or_else(|| anyhow::anyhow!("user {username} does not exist"))?;
            record(
                store.as_ref(),
                NewAuditEvent::new(AuditKind::UserSignedOut, now)
                    .company(user.company.as_str())
                    .target(format!("{} ({})", user.username, user.id))
                    .detail("every token and session revoked"),
            )
            .await;
            println!("revoked every token and session of {username}");
        }
    }
    Ok(())
}

/// The user `username`, or a clear error.
async fn known_user(store: &dyn Store, username: &Username) -> anyhow::Result<User> {
    match store.find_user_credentials(username.as_str()).await? {
        Some(found) => Ok(found.user),
        None => bail!("user {username} does not exist"),
    }
}

/// Records a change made from the command line, by `cli`. The change itself is done: a
/// failure to record it is reported on stderr, not turned into a failed command.
pub async fn record(store: &dyn Store, event: NewAuditEvent) {
    let event = event.actor("cli");
    if let Err(err) = store.record_audit_events(&[event]).await {
        eprintln!("warning: the change is done, but recording it in the audit log failed: {err}");
    }
}

/// Disables or enables `username` and says so.
async fn set_disabled(
    store: &dyn Store,
    username: &Username,
    disabled: bool,
) -> anyhow::Result<()> {
    store
        .set_user_disabled(username, disabled, Utc::now())
        .await
        .map_err(user_error)?;
    let done = if disabled { "disabled" } else { "enabled" };
    println!("{done} user {username}");
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

pub async fn audit(common: &Common, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List {
            kind,
            actor,
            since,
            limit,
            json,
        } => {
            let filter = AuditFilter {
                kind,
                actor,
                since: None,
                limit,
            };
            audit_list(common, filter, since, json).await
        }
        AuditCommand::Purge { before } => audit_purge(common, before).await,
    }
}

/// `tessera audit purge`: deletes the events before the cutoff, says how many went, and
/// records that it did (an `audit.purged` event, by `cli`, which is after the cutoff and
/// so stays).
async fn audit_purge(common: &Common, before: Cutoff) -> anyhow::Result<()> {
    let now = Utc::now();
    let before = before.resolve(now)?;
    let store = open(common).await?;
    let purged = store.purge_audit_events(before).await?;
    let before_text = rfc3339(before);
    record(
        store.as_ref(),
        NewAuditEvent::new(AuditKind::AuditPurged, now)
            .detail(format!("purged={purged} before={before_text}")),
    )
    .await;
    println!("purged {purged} audit events recorded before {before_text}");
    Ok(())
}

/// `tessera audit list`: the events `filter` selects (`since` is how long ago), as a
/// table or as JSON lines.
async fn audit_list(
    common: &Common,
    filter: AuditFilter,
    since: Option<std::time::Duration>,
    json: bool,
) -> anyhow::Result<()> {
    let since = since
        .map(|ago| anyhow::Ok(Utc::now() - chrono::Duration::from_std(ago)?))
        .transpose()?;
    let store = open(common).await?;
    let events = store
        .list_audit_events(&AuditFilter { since, ..filter })
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

pub fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Prints one row for each of `items` under a header, columns padded to their widest cell.
pub fn print_list<T>(header: &[&str], items: Vec<T>, row: impl FnMut(T) -> Vec<String>) {
    print_table(header, items.into_iter().map(row).collect());
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
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
