//! Secret settings and where they come from. Each secret (the database URL, which may hold
//! a password; the resource server's client secret; the master key) has a `*_FILE` twin,
//! the container convention: a file whose content is the value, so the value shows
//! neither in process lists (`ps`) nor in the environment of the process. A secret given
//! as a command-line flag works, with a warning naming the safer ways.

use std::path::Path;

use anyhow::{Context, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::args::Common;

/// The content of the secret file `path`, named `setting` in errors, with one trailing
/// newline (`\n` or `\r\n`) removed. Errors name the file, never its content.
pub fn read_file(path: &Path, setting: &str) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {setting} {}", path.display()))?;
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("{setting} {} is not UTF-8 text", path.display());
    };
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        bail!("{setting} {} is empty", path.display());
    }
    Ok(text.to_owned())
}

/// Fills `common`'s secrets from their `*_FILE` twins, refusing a secret given both ways,
/// and warns about a secret given on the command line. `matches` are the parsed arguments
/// `common` came from: they tell a flag from an environment variable or a default.
pub fn resolve(common: &mut Common, matches: &ArgMatches) -> anyhow::Result<()> {
    let source = |id: &str| matches.value_source(id);
    let given = |id: &str| matches!(source(id), Some(s) if s != ValueSource::DefaultValue);

    if let Some(path) = &common.database_url_file {
        if given("database_url") {
            bail!(both(
                "--database-url",
                "TESSERA_DATABASE_URL",
                "database URL"
            ));
        }
        common.database_url = read_file(path, "TESSERA_DATABASE_URL_FILE")?;
    } else if source("database_url") == Some(ValueSource::CommandLine)
        && tessera_store::redact_url(&common.database_url) != common.database_url
    {
        tracing::warn!(
            "--database-url holds a password, which any user of this machine can read in \
             the process list: give it in TESSERA_DATABASE_URL or in a file named by \
             TESSERA_DATABASE_URL_FILE (--database-url-file) instead"
        );
    }

    for (value_id, file_id, flag, env) in [
        (
            "resource_client_secret",
            "resource_client_secret_file",
            "--client-secret",
            "TESSERA_CLIENT_SECRET",
        ),
        (
            "legacy_client_secret",
            "legacy_client_secret_file",
            "--legacy-client-secret",
            "TESSERA_INTROSPECTION_CLIENT_SECRET",
        ),
    ] {
        let file = matches.get_one::<std::path::PathBuf>(file_id).cloned();
        if let Some(path) = file {
            if given(value_id) {
                bail!(both(flag, env, "client secret"));
            }
            let secret = read_file(&path, &format!("{env}_FILE"))?;
            match value_id {
                "resource_client_secret" => common.resource_client_secret = Some(secret),
                _ => common.legacy_client_secret = Some(secret),
            }
        } else if source(value_id) == Some(ValueSource::CommandLine) {
            tracing::warn!(
                "{flag} puts the client secret where any user of this machine can read it \
                 (the process list): give it in {env} or in a file named by {env}_FILE \
                 (--client-secret-file) instead"
            );
        }
    }
    Ok(())
}

/// The error for a secret given both as a value and as a file.
fn both(flag: &str, env: &str, what: &str) -> String {
    format!(
        "the {what} is given twice: use either {flag} ({env}) or {flag}-file ({env}_FILE), \
         not both"
    )
}
