//! `tessera keys`: listing, rotating and removing signing keys, and making a master key.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use tessera_authz::keys::{self, KeySchedule, NextKey, Publication};
use tessera_core::{Clock, MasterKey};
use tessera_store::{AuditKind, KeyState, NewAuditEvent, Store};

use crate::admin::{open, print_list, rfc3339};
use crate::args::{Common, KeysCommand};

/// The master key from `TESSERA_MASTER_KEY` or from the file `TESSERA_MASTER_KEY_FILE`
/// (`--master-key-file`) names, if set (an empty variable counts as unset); both set is
/// an error. It is never a flag, so it stays out of process lists, and errors never
/// repeat it.
pub fn master_key(common: &Common) -> anyhow::Result<Option<Arc<MasterKey>>> {
    let from_env = match std::env::var("TESSERA_MASTER_KEY") {
        Ok(value) if !value.trim().is_empty() => Some(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("TESSERA_MASTER_KEY must be 32 bytes: 64 hex digits or base64")
        }
    };
    let parsed = match (from_env, &common.master_key_file) {
        (Some(_), Some(_)) => bail!(
            "the master key is given twice: use either TESSERA_MASTER_KEY or \
             TESSERA_MASTER_KEY_FILE (--master-key-file), not both"
        ),
        (Some(value), None) => {
            MasterKey::parse(&value).map_err(|e| anyhow::anyhow!("{}", e.message()))?
        }
        (None, Some(path)) => {
            let value = crate::secrets::read_file(path, "TESSERA_MASTER_KEY_FILE")?;
            MasterKey::parse(&value).map_err(|_| {
                anyhow::anyhow!(
                    "TESSERA_MASTER_KEY_FILE {} must hold 32 bytes: 64 hex digits or base64",
                    path.display()
                )
            })?
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(Arc::new(parsed)))
}

pub async fn keys(common: &Common, cmd: KeysCommand) -> anyhow::Result<()> {
    if let KeysCommand::MasterKey = cmd {
        let (_, encoded) = MasterKey::generate()?;
        println!("{encoded}");
        return Ok(());
    }
    let store = open(common).await?;
    let store = store.as_ref();
    let schedule = common.key_schedule();
    let now = Utc::now();
    let check = || {
        schedule
            .check(Duration::from_secs(common.access_token_ttl))
            .map_err(anyhow::Error::msg)
    };
    match cmd {
        KeysCommand::MasterKey => Ok(()),
        KeysCommand::List => list(store).await,
        KeysCommand::Rotate { now: false } => {
            check()?;
            let master = master_key(common)?;
            refuse_plaintext_among_sealed(store, master.as_deref()).await?;
            rotate(store, &schedule, now, master).await
        }
        KeysCommand::Rotate { now: true } => {
            check()?;
            let master = master_key(common)?;
            refuse_plaintext_among_sealed(store, master.as_deref()).await?;
            rotate_now(store, &schedule, master).await
        }
        KeysCommand::Remove { kid } => remove(store, &kid, now).await,
    }
}

/// Prints every published key with its state, times and how its private half is kept.
async fn list(store: &dyn Store) -> anyhow::Result<()> {
    print_list(
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
        store.published_keys().await?,
        |k| {
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
        },
    );
    Ok(())
}

/// Refuses to store a new key in the clear, without a master key, in a database whose
/// stored private keys are sealed: it is evidently meant to hold sealed keys only. A
/// database with no sealed key (the quick start, without a master key) takes plaintext
/// keys as before.
async fn refuse_plaintext_among_sealed(
    store: &dyn Store,
    master: Option<&MasterKey>,
) -> anyhow::Result<()> {
    if master.is_some() {
        return Ok(());
    }
    let sealed = store
        .published_keys()
        .await?
        .iter()
        .any(|k| tessera_core::seal::is_sealed(&k.private_key));
    if sealed {
        bail!(
            "the stored private signing keys are encrypted, and a new key would be stored \
             unencrypted: set TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE) to the master \
             key they were stored under"
        );
    }
    Ok(())
}

/// `rotate`: publishes the next key, which signs after the publish-ahead time.
async fn rotate(
    store: &dyn Store,
    schedule: &KeySchedule,
    now: DateTime<Utc>,
    master: Option<Arc<MasterKey>>,
) -> anyhow::Result<()> {
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
    // The publish-ahead time counts from when the command started.
    let started = Clock::pinned(now.timestamp_millis());
    let next = NextKey {
        algorithm: schedule.algorithm,
        publish_ahead: schedule.publish_ahead,
        not_before: None,
    };
    let (stored, activate_at) =
        match keys::publish_next(store, &started, next, master.as_deref()).await? {
            Publication::Published {
                key, activate_at, ..
            } => (key, activate_at),
            Publication::Lost(stored) => bail!(
                "another rotation started meanwhile: key {} is next",
                stored.kid
            ),
        };
    crate::admin::record(
        store,
        NewAuditEvent::new(AuditKind::KeyRotated, started.now_utc())
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
    Ok(())
}

/// `rotate --now`: a new key signs at once; the active key is retired, a next key
/// withdrawn.
async fn rotate_now(
    store: &dyn Store,
    schedule: &KeySchedule,
    master: Option<Arc<MasterKey>>,
) -> anyhow::Result<()> {
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
    crate::admin::record(
        store,
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
    Ok(())
}

/// `remove`: takes a next or retired key out of the JWKS at once.
async fn remove(store: &dyn Store, kid: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let keys = store.published_keys().await?;
    match keys.iter().find(|k| k.kid == kid) {
        None => bail!("no published key has the id {kid:?}"),
        Some(k) if k.state == KeyState::Active => bail!(
            "key {kid} is the active key: run `tessera keys rotate --now` first, then remove it"
        ),
        Some(_) => {}
    }
    // A next key that some instance's clock may sign with already stays.
    let soon = now + chrono::Duration::from_std(keys::KEY_REFRESH_INTERVAL + keys::CLOCK_LEEWAY)?;
    if !store.remove_key(kid, soon).await? {
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
    crate::admin::record(
        store,
        NewAuditEvent::new(AuditKind::KeyRemoved, now)
            .target(kid)
            .detail("tessera keys remove"),
    )
    .await;
    println!(
        "removed key {kid} from the JWKS; every token it signed is refused once resource \
         servers fetch the JWKS again"
    );
    Ok(())
}
