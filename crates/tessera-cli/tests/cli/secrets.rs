//! Secrets kept off the command line: the `*_FILE` twins of the database URL, the client
//! secret and the master key, the errors when a secret is given twice or its file cannot
//! be read, and the warning for a secret given as a flag.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_store::on_each_backend;
use tessera_store::testing::Backend;

use crate::{Server, Workspace, demo_token, get_json, revoke_as};

on_each_backend!(secret_files_stand_in_for_the_database_url_the_client_secret_and_the_master_key);

/// Writes `content` and a newline to `name` in `dir`; returns the path.
fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{content}\n")).unwrap();
    path
}

/// Waits until `token` gets 401 at `resource`'s `/me`.
async fn refused_within_10s(resource: &str, token: &str) {
    let started = Instant::now();
    loop {
        let (status, _) = get_json(&format!("{resource}/me"), Some(token)).await;
        if status == 401 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revoked token still works at {resource}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn secret_files_stand_in_for_the_database_url_the_client_secret_and_the_master_key(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let dir = ws.dir();
    let master = ws.ok(&["keys", "master-key"], "");
    let url_file = secret_file(&dir, "database-url", &ws.db_url());
    let master_file = secret_file(&dir, "master-key", master.trim());

    // serve with neither the database URL nor the master key on its command line or in
    // its environment.
    let mut command = ws.command();
    command
        .args(["serve", "--authz-addr", "127.0.0.1:0"])
        .args(["--resource-addr", "127.0.0.1:0"])
        .env("TESSERA_DATABASE_URL_FILE", &url_file)
        .env("TESSERA_MASTER_KEY_FILE", &master_file);
    let server = Server::spawn(command, "serve");
    let bob = demo_token(&server.url, "bob", "basic").await;
    let (status, _) = get_json(&format!("{}/me", server.resource_url), Some(&bob)).await;
    assert_eq!(status, 200);
    // It ran on the database in the file, and sealed its key with the key in the file.
    assert!(ws.ok(&["user", "list"], "").contains("alice"));
    let keys = ws.ok(&["keys", "list"], "");
    assert!(
        keys.lines().nth(1).unwrap().ends_with("encrypted"),
        "{keys}"
    );

    // A resource server whose client secret is in a file follows the revocation feed.
    let secret = ws.add_machine_client("orders-api");
    let secret_path = secret_file(&dir, "client-secret", &secret);
    let url_flag = url_file.to_str().unwrap();
    let mut command = ws.command();
    command
        .args(["resource", "--resource-addr", "127.0.0.1:0"])
        .args(["--issuer", &server.issuer, "--client-id", "orders-api"])
        .args(["--database-url-file", url_flag])
        .env("TESSERA_CLIENT_SECRET_FILE", &secret_path);
    let from_file = Server::spawn(command, "resource");
    // The same secret as a flag works too, with a warning that never shows the secret.
    let from_flag = Server::start_with(
        &ws,
        "resource",
        &[],
        &[
            "--resource-addr",
            "127.0.0.1:0",
            "--issuer",
            &server.issuer,
            "--client-id",
            "orders-api",
            "--client-secret",
            &secret,
        ],
    );
    for resource in [&from_file, &from_flag] {
        assert!(
            !resource.stdout.iter().any(|l| l.contains("NOT enforced")),
            "{:?}",
            resource.stdout
        );
        let (status, _) = get_json(&format!("{}/me", resource.resource_url), Some(&bob)).await;
        assert_eq!(status, 200);
    }
    let logged = from_flag.logged();
    assert!(
        logged.contains(
            "--client-secret puts the client secret where any user of this machine can read \
             it (the process list): give it in TESSERA_CLIENT_SECRET or in a file named by \
             TESSERA_CLIENT_SECRET_FILE (--client-secret-file) instead"
        ),
        "{logged}"
    );
    assert!(!logged.contains(&secret), "the secret is never logged");
    assert!(!from_file.logged().contains("--client-secret puts"));

    assert_eq!(
        revoke_as(&server.url, ("demo-jwt", "demo-jwt-secret"), &bob).await,
        200
    );
    for resource in [&from_file, &from_flag] {
        refused_within_10s(&resource.resource_url, &bob).await;
    }
}

#[test]
fn a_secret_given_twice_or_in_an_unreadable_file_is_a_one_line_error_without_it() {
    let ws = Workspace::sqlite();
    let dir = ws.dir();
    let url_file = secret_file(&dir, "database-url", &ws.db_url());
    let secret_path = secret_file(&dir, "client-secret", "s3cret-in-a-file");
    let master = ws.ok(&["keys", "master-key"], "");
    let master_file = secret_file(&dir, "master-key", master.trim());
    let missing = dir.join("missing");
    let path = |p: &Path| p.to_str().unwrap().to_owned();

    // `ws.run` gives --database-url as well.
    assert_eq!(
        ws.fails(&["migrate", "--database-url-file", &path(&url_file)], ""),
        "error: the database URL is given twice: use either --database-url \
         (TESSERA_DATABASE_URL) or --database-url-file (TESSERA_DATABASE_URL_FILE), not both"
    );
    let one_line_error = |args: &[&str], env: &[(&str, &str)]| {
        let out = ws
            .command()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "tessera {args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr.trim_end().to_owned()
    };
    let db = ["--database-url", &ws.db_url()];
    assert_eq!(
        one_line_error(
            &[
                &["keys", "list", "--client-secret-file", &path(&secret_path)],
                &db[..]
            ]
            .concat(),
            &[("TESSERA_CLIENT_SECRET", "another-secret")]
        ),
        "error: the client secret is given twice: use either --client-secret \
         (TESSERA_CLIENT_SECRET) or --client-secret-file (TESSERA_CLIENT_SECRET_FILE), not both"
    );
    assert_eq!(
        one_line_error(
            &[&["keys", "rotate", "--now"], &db[..]].concat(),
            &[
                ("TESSERA_MASTER_KEY", master.trim()),
                ("TESSERA_MASTER_KEY_FILE", &path(&master_file))
            ]
        ),
        "error: the master key is given twice: use either TESSERA_MASTER_KEY or \
         TESSERA_MASTER_KEY_FILE (--master-key-file), not both"
    );

    // A file that cannot be read is named, with the reason.
    assert_eq!(
        one_line_error(
            &["migrate"],
            &[("TESSERA_DATABASE_URL_FILE", &path(&missing))]
        ),
        format!(
            "error: cannot read TESSERA_DATABASE_URL_FILE {}: No such file or directory (os \
             error 2)",
            missing.display()
        )
    );
    assert_eq!(
        one_line_error(
            &[
                &["keys", "list", "--client-secret-file", &path(&missing)],
                &db[..]
            ]
            .concat(),
            &[]
        ),
        format!(
            "error: cannot read TESSERA_CLIENT_SECRET_FILE {}: No such file or directory (os \
             error 2)",
            missing.display()
        )
    );
    // A master-key file holding something else: named, its content never repeated.
    let wrong = secret_file(&dir, "wrong-master-key", "hunter2-not-a-master-key");
    let err = one_line_error(
        &[
            &[
                "keys",
                "rotate",
                "--now",
                "--master-key-file",
                &path(&wrong),
            ],
            &db[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(
        err,
        format!(
            "error: TESSERA_MASTER_KEY_FILE {} must hold 32 bytes: 64 hex digits or base64",
            wrong.display()
        )
    );
    assert!(
        ws.ok(&["keys", "list"], "").lines().nth(1).is_none(),
        "no key was made"
    );

    // A database password on the command line is warned about, and never printed.
    let out = ws
        .command()
        .args(["migrate", "--database-url"])
        .arg("postgres://tessera:hunter2-db-password@127.0.0.1:1/tessera")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "--database-url holds a password, which any user of this machine can read in the \
             process list: give it in TESSERA_DATABASE_URL or in a file named by \
             TESSERA_DATABASE_URL_FILE (--database-url-file) instead"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // From the environment, neither secret is warned about.
    let out = ws
        .command()
        .args(["keys", "list"])
        .env("TESSERA_DATABASE_URL", ws.db_url())
        .env("TESSERA_CLIENT_SECRET", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}
