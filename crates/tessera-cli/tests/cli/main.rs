//! Tests of the real `tessera` binary: admin commands, errors and exit codes, and `serve`
//! answering the README's requests.

// Tests fail loudly: unwrap is the assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod architecture;
mod audit;
mod flows;
mod keys;
mod limits;
mod metrics_listener;
mod oidc;
mod resource_hardening;
mod revocation;
mod rotation;
mod secrets;
mod serve_any;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tessera_store::on_each_backend;
use tessera_store::testing::{Backend, TcpProxy, TestDatabase, postgres_server_addr};

/// A scratch directory, the working directory of every command, and a database of its
/// own on either backend.
struct Workspace {
    db: TestDatabase,
}

impl Workspace {
    fn new(backend: Backend) -> Self {
        Workspace {
            db: TestDatabase::new(backend),
        }
    }

    fn sqlite() -> Self {
        Self::new(Backend::Sqlite)
    }

    fn db_url(&self) -> String {
        self.db.url().to_owned()
    }

    fn dir(&self) -> std::path::PathBuf {
        self.db.dir()
    }

    /// `tessera` with no `TESSERA_*` variables from the environment, run in the scratch
    /// directory.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (name, _) in std::env::vars() {
            if name.starts_with("TESSERA_") {
                command.env_remove(name);
            }
        }
        command.current_dir(self.dir()).env("TESSERA_LOG", "warn");
        command
    }

    /// Runs `tessera ARGS --database-url <scratch db>` with `stdin` as input.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .args(["--database-url", &self.db_url()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Registers a confidential `client_credentials` client and returns its secret.
    fn add_machine_client(&self, client_id: &str) -> String {
        self.add_client(&[
            client_id,
            "--grant",
            "client_credentials",
            "--scope",
            "basic",
        ])
    }

    /// `tessera client add ARGS` for a confidential client; returns its secret.
    fn add_client(&self, args: &[&str]) -> String {
        let out = self.ok(&[&["client", "add"], args].concat(), "");
        let secret = out
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("client_secret: "));
        secret
            .expect("client add prints the secret on its second line")
            .to_owned()
    }

    /// Runs a command that must fail and returns its single stderr line.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(1),
            "tessera {args:?} should fail with exit code 1"
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr:?}");
        stderr.trim_end().to_owned()
    }
}

fn companies_are_added_listed_and_a_duplicate_is_a_one_line_error(backend: Backend) {
    let ws = Workspace::new(backend);
    assert!(
        ws.ok(
            &["company", "add", "acme", "--name", "Acme Corporation"],
            ""
        )
        .starts_with("created company acme")
    );
    assert_eq!(
        ws.fails(&["company", "add", "acme", "--name", "Again"], ""),
        "error: company acme already exists"
    );
    let list = ws.ok(&["company", "list"], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("acme") && l.contains("Acme Corporation")),
        "{list}"
    );
    assert_eq!(list.lines().count(), 2);
}

fn users_take_their_password_from_stdin_and_bad_input_is_refused(backend: Backend) {
    let ws = Workspace::new(backend);
    ws.ok(&["company", "add", "acme", "--name", "Acme"], "");
    ws.ok(
        &[
            "user",
            "add",
            "alice",
            "--company",
            "acme",
            "--role",
            "admin",
            "--role",
            "user",
        ],
        "a good password\n",
    );

    assert_eq!(
        ws.fails(
            &[
                "user",
                "add",
                "alice",
                "--company",
                "acme",
                "--role",
                "user"
            ],
            "another password\n"
        ),
        "error: username alice is already taken"
    );
    assert_eq!(
        ws.fails(
            &[
                "user",
                "add",
                "zoe",
                "--company",
                "nowhere",
                "--role",
                "user"
            ],
            "a good password\n"
        ),
        "error: company nowhere does not exist"
    );
    assert_eq!(
        ws.fails(
            &["user", "add", "zoe", "--company", "acme", "--role", "user"],
            "short\n"
        ),
        "error: invalid password: must be at least 8 characters"
    );
    assert_eq!(
        ws.fails(
            &["user", "add", "zoe", "--company", "acme", "--role", "user"],
            ""
        ),
        "error: invalid password: must be at least 8 characters"
    );
    assert_eq!(
        ws.fails(
            &[
                "user",
                "add",
                "zoe-the-great",
                "--company",
                "acme",
                "--role",
                "user"
            ],
            "zoe-the-great\n"
        ),
        "error: invalid password: may not be the username"
    );

    let list = ws.ok(&["user", "list", "--company", "acme"], "");
    let alice = list.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(
        alice.contains("admin,user") && alice.contains("enabled"),
        "{list}"
    );
    assert!(!list.contains("zoe"));

    ws.ok(&["user", "disable", "alice"], "");
    assert!(
        ws.ok(&["user", "list"], "")
            .lines()
            .any(|l| l.starts_with("alice") && l.contains("disabled"))
    );
    ws.ok(&["user", "enable", "alice"], "");
    ws.ok(&["user", "delete", "alice"], "");
    assert_eq!(
        ws.fails(&["user", "delete", "alice"], ""),
        "error: user alice does not exist"
    );
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let ws = Workspace::sqlite();
    for args in [
        &[
            "user",
            "add",
            "Alice",
            "--company",
            "acme",
            "--role",
            "user",
        ][..],
        &[
            "user",
            "add",
            "alice",
            "--company",
            "acme",
            "--role",
            "root",
        ],
        &["company", "add", "Acme Corp", "--name", "x"],
        &[
            "client", "add", "app", "--grant", "implicit", "--scope", "basic",
        ],
        &[
            "client", "add", "app", "--grant", "password", "--scope", "Admin",
        ],
        &["serve", "--access-token-ttl", "0"],
    ] {
        let out = ws.run(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("error: invalid value"), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    }
}

fn client_add_prints_the_id_and_a_fresh_secret_once(backend: Backend) {
    let ws = Workspace::new(backend);
    let out = ws.ok(
        &[
            "client",
            "add",
            "billing",
            "--grant",
            "client_credentials",
            "--scope",
            "basic",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "client_id: billing");
    let secret = lines[1].strip_prefix("client_secret: ").unwrap();
    assert_eq!(secret.len(), 43);
    let again = ws.ok(
        &[
            "client",
            "add",
            "billing-2",
            "--grant",
            "client_credentials",
            "--scope",
            "basic",
        ],
        "",
    );
    assert!(!again.contains(secret), "secrets must differ");

    let list = ws.ok(&["client", "list"], "");
    assert!(!list.contains(secret), "the secret is never shown again");
    // Only a digest is stored: the secret appears nowhere in the database.
    let bytes = ws.db.contents();
    assert!(!bytes.is_empty());
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the database holds the secret"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("billing ") && l.contains("confidential")),
        "{list}"
    );

    let public = ws.ok(
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "basic",
            "--redirect-uri",
            "https://spa.example.com/cb",
        ],
        "",
    );
    assert_eq!(public.trim_end(), "client_id: spa");
    // RFC 9700 §2.4: a public client must not collect users' passwords.
    for grants in [&["password"][..], &["password", "refresh_token"]] {
        let grants: Vec<&str> = grants.iter().flat_map(|g| ["--grant", g]).collect();
        let args = [
            &[
                "client",
                "add",
                "spa-password",
                "--public",
                "--scope",
                "basic",
            ][..],
            &grants,
        ]
        .concat();
        assert_eq!(
            ws.fails(&args, ""),
            "error: a public client cannot use the password grant (RFC 9700 §2.4)"
        );
    }
    assert!(!ws.ok(&["client", "list"], "").contains("spa-password"));

    assert_eq!(
        ws.fails(
            &[
                "client", "add", "billing", "--grant", "password", "--scope", "basic"
            ],
            ""
        ),
        "error: client billing already exists"
    );
    assert_eq!(
        ws.fails(
            &[
                "client",
                "add",
                "m2m",
                "--public",
                "--grant",
                "client_credentials",
                "--scope",
                "basic"
            ],
            ""
        ),
        "error: a public client cannot use the client_credentials grant (RFC 6749 §4.4)"
    );
    assert_eq!(
        ws.fails(
            &[
                "client",
                "add",
                "web",
                "--grant",
                "authorization_code",
                "--scope",
                "basic"
            ],
            ""
        ),
        "error: the authorization_code grant needs at least one --redirect-uri (RFC 6749 §3.1.2)"
    );
    assert!(
        ws.fails(
            &[
                "client",
                "add",
                "web",
                "--grant",
                "authorization_code",
                "--scope",
                "basic",
                "--redirect-uri",
                "http://evil.example/cb"
            ],
            ""
        )
        .starts_with("error: invalid redirect URI")
    );
    assert_eq!(
        ws.fails(
            &[
                "client",
                "add",
                "web",
                "--grant",
                "password",
                "--scope",
                "basic",
                "--redirect-uri",
                "https://app.example.com/cb"
            ],
            ""
        ),
        "error: --redirect-uri is only used by the authorization_code grant"
    );
    assert!(
        ws.fails(
            &[
                "client",
                "add",
                "web",
                "--grant",
                "refresh_token",
                "--scope",
                "basic"
            ],
            ""
        )
        .starts_with("error: the refresh_token grant needs a grant that issues")
    );
}

fn common_flags_work_before_and_after_the_subcommand_and_from_the_environment(backend: Backend) {
    let ws = Workspace::new(backend);
    let db = ws.db_url();
    let before = ws
        .command()
        .args([
            "--database-url",
            &db,
            "company",
            "add",
            "acme",
            "--name",
            "A",
        ])
        .output()
        .unwrap();
    assert!(before.status.success());
    let after = ws
        .command()
        .args(["company", "list", "--database-url", &db])
        .output()
        .unwrap();
    assert!(String::from_utf8(after.stdout).unwrap().contains("acme"));
    let env = ws
        .command()
        .args(["company", "list"])
        .env("TESSERA_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(String::from_utf8(env.stdout).unwrap().contains("acme"));
}

#[test]
fn an_unusable_database_is_a_one_line_error_naming_it_without_its_password() {
    let ws = Workspace::sqlite();
    let out = ws
        .command()
        .args([
            "company",
            "list",
            "--database-url",
            "sqlite:///no/such/dir/t.db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: cannot open database sqlite:///no/such/dir/t.db: cannot create the database file: \
         No such file or directory (os error 2)\n"
    );
    let out = ws
        .command()
        .args([
            "company",
            "list",
            "--database-url",
            "mysql://root:hunter2@db/x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn an_unreachable_postgres_server_stops_every_command_with_one_line_naming_it() {
    // Nothing listens on loopback port 1; the password must never be printed.
    let ws = Workspace::sqlite();
    let url = "postgres://tessera:hunter2@127.0.0.1:1/tessera";
    for args in [
        &["serve"][..],
        &["authz"],
        &["resource", "--issuer", "http://127.0.0.1:1"],
        &["company", "list"],
        &["migrate"],
    ] {
        let out = ws
            .command()
            .args(args)
            // From the environment: on the command line it adds a warning (see secrets.rs).
            .env("TESSERA_DATABASE_URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "tessera {args:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            "error: cannot open database postgres://tessera:***@127.0.0.1:1/tessera: \
             cannot connect: Connection refused (os error 111)\n",
            "tessera {args:?}"
        );
    }
    let help = ws
        .command()
        .arg("--help")
        .env("TESSERA_DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("TESSERA_DATABASE_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

/// A running `tessera` server process, killed on drop.
struct Server {
    child: Child,
    /// The authorization server's URL, when it runs one.
    url: String,
    /// The resource server's URL, when it runs one.
    resource_url: String,
    issuer: String,
    /// What it printed before its "listening" lines.
    stdout: Vec<String>,
    /// Where its stderr (the log) goes.
    log: std::fs::File,
}

impl Server {
    fn start(ws: &Workspace, extra: &[&str]) -> Server {
        Self::start_command(ws, "serve", extra)
    }

    fn start_command(ws: &Workspace, subcommand: &str, extra: &[&str]) -> Server {
        let mut command = ws.command();
        command
            .args([
                subcommand,
                "--authz-addr",
                "127.0.0.1:0",
                "--resource-addr",
                "127.0.0.1:0",
            ])
            .args(["--database-url", &ws.db_url()])
            .args(extra);
        Self::spawn(command, subcommand)
    }

    /// `tessera SUBCOMMAND ARGS --database-url <scratch db>` with `env` added to its
    /// environment: no listening address is added.
    fn start_with(ws: &Workspace, subcommand: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = ws.command();
        command
            .arg(subcommand)
            .args(args)
            .args(["--database-url", &ws.db_url()])
            .envs(env.iter().copied());
        Self::spawn(command, subcommand)
    }

    /// Spawns `command` (running `subcommand`) and waits for the "listening on" line of
    /// each server it runs.
    fn spawn(mut command: Command, subcommand: &str) -> Server {
        // What it logs, to show if it exits before listening.
        let log = tempfile::tempfile().unwrap();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log.try_clone().unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut wants_authz, mut wants_resource) = match subcommand {
            "serve" => (true, true),
            "authz" => (true, false),
            _ => (false, true),
        };
        let mut server = Server {
            child,
            url: String::new(),
            resource_url: String::new(),
            issuer: String::new(),
            stdout: Vec::new(),
            log: log.try_clone().unwrap(),
        };
        while wants_authz || wants_resource {
            let Some(line) = lines.next() else {
                let mut logged = String::new();
                let mut log = &log;
                std::io::Seek::rewind(&mut log).unwrap();
                std::io::Read::read_to_string(&mut log, &mut logged).unwrap();
                panic!("tessera {subcommand} exited before listening:\n{logged}");
            };
            let line = line.unwrap();
            // "authorization server listening on URL (issuer ISSUER, signing key KID)"
            // "resource server listening on URL (issuer ISSUER)"
            if let Some(rest) = line.strip_prefix("authorization server listening on ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                server.url = words[0].to_owned();
                server.issuer = words[2].trim_end_matches(',').to_owned();
                wants_authz = false;
            } else if let Some(rest) = line.strip_prefix("resource server listening on ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                server.resource_url = words[0].to_owned();
                server.issuer = words[2].trim_end_matches(')').to_owned();
                wants_resource = false;
            } else {
                server.stdout.push(line);
            }
        }
        server
    }

    /// What it has logged (its stderr) so far. Read at an offset: the file position is
    /// shared with the running process, which appends at it.
    fn logged(&self) -> String {
        use std::os::unix::fs::FileExt as _;
        let mut bytes = vec![0; usize::try_from(self.log.metadata().unwrap().len()).unwrap()];
        self.log.read_exact_at(&mut bytes, 0).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn serve_seeds_the_demo_once_and_answers_the_readme_requests(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let printed = server.stdout.join("\n");
    assert!(
        printed.contains("alice")
            && printed.contains("tessera-demo")
            && printed.contains("demo-jwt-secret"),
        "{printed}"
    );

    // The README's token request: the demo admin with the demo JWT client.
    let response = http()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth("demo-jwt", Some("demo-jwt-secret"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "tessera-demo"),
            ("scope", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();

    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["tessera-api"]);
    validation.set_issuer(&[&server.url]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["company"], "acme");
    assert_eq!(claims["scope"], "admin");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");

    // A second start finds data and a key: it seeds nothing and keeps the key.
    let again = Server::start(&ws, &[]);
    assert!(
        !again.stdout.join("\n").contains("Seeded"),
        "{:?}",
        again.stdout
    );
    let jwks_again: jsonwebtoken::jwk::JwkSet = http()
        .get(format!("{}/.well-known/jwks.json", again.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_again.keys, jwks.keys);
}

async fn serve_with_no_demo_leaves_the_database_empty_and_admin_commands_work_while_it_runs(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &["--no-demo", "--access-token-ttl", "120"]);
    assert!(server.stdout.is_empty(), "{:?}", server.stdout);
    assert_eq!(
        ws.ok(&["company", "list"], "").lines().count(),
        1,
        "header only"
    );

    // Set up a client while the server runs, and use it at once.
    let secret = ws.add_machine_client("robot");
    let response = http()
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "robot"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 120);
    assert!(ws.ok(&["keys", "list"], "").contains("active"));
}

async fn authz_alone_never_seeds_and_serves_the_metadata_of_its_issuer(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start_command(&ws, "authz", &["--issuer", "https://auth.example.com/"]);
    assert!(server.stdout.is_empty(), "{:?}", server.stdout);
    assert_eq!(
        ws.ok(&["user", "list"], "").lines().count(),
        1,
        "header only"
    );
    let metadata: Value = http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], "https://auth.example.com");
    assert_eq!(
        metadata["token_endpoint"],
        "https://auth.example.com/oauth/token"
    );
    assert!(server.stop().success());
}

#[test]
fn without_a_database_url_the_default_sqlite_file_is_created_in_the_working_directory() {
    let ws = Workspace::sqlite();
    let out = ws
        .command()
        .args(["company", "add", "acme", "--name", "Acme"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.dir().join("tessera.db").is_file());
    assert!(ws.ok(&["company", "list"], "").contains("acme"));
}

async fn every_server_setting_has_an_environment_twin_and_the_flag_wins(backend: Backend) {
    let ws = Workspace::new(backend);
    let secret = ws.add_machine_client("robot");

    let mut command = ws.command();
    command
        .arg("serve")
        .env("TESSERA_DATABASE_URL", ws.db_url())
        .env("TESSERA_AUTHZ_ADDR", "127.0.0.1:0")
        .env("TESSERA_RESOURCE_ADDR", "127.0.0.1:0")
        .env("TESSERA_ISSUER", "http://issuer.test")
        .env("TESSERA_AUDIENCE", "env-api")
        .env("TESSERA_ACCESS_TOKEN_TTL", "60")
        .env("TESSERA_NO_DEMO", "1")
        .args(["--access-token-ttl", "120"]);
    let server = Server::spawn(command, "serve");
    // The issuer comes from the environment.
    assert!(server.stdout.is_empty(), "{:?}", server.stdout);
    assert_eq!(server.issuer, "http://issuer.test");

    let body: Value = http()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth("robot", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["expires_in"], 120,
        "the flag wins over TESSERA_ACCESS_TOKEN_TTL"
    );
    let token = body["access_token"].as_str().unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims;
    assert_eq!(claims["aud"], "env-api");
    assert_eq!(claims["iss"], "http://issuer.test");
}

#[test]
fn tessera_no_demo_from_the_environment_skips_seeding_an_empty_database() {
    let ws = Workspace::sqlite();
    for (value, seeds) in [("1", false), ("yes", false), ("0", true)] {
        let ws_case = Workspace::sqlite();
        let mut command = ws_case.command();
        command.args([
            "serve",
            "--authz-addr",
            "127.0.0.1:0",
            "--resource-addr",
            "127.0.0.1:0",
        ]);
        command.args(["--database-url", &ws_case.db_url()]);
        command.env("TESSERA_NO_DEMO", value);
        let server = Server::spawn(command, "serve");
        assert_eq!(
            !server.stdout.is_empty(),
            seeds,
            "TESSERA_NO_DEMO={value}: {:?}",
            server.stdout
        );
    }
    // A malformed boolean would break every command, since the flag is global.
    let out = ws
        .command()
        .args(["company", "list"])
        .env("TESSERA_NO_DEMO", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The resource server's two opaque-token paths, as `serve` flags, with the
/// `Server-Timing` method each reports.
const OPAQUE_MODES: [(&str, &[&str]); 2] = [
    ("opaque-store", &["--opaque-validation", "store"]),
    (
        "opaque-introspection",
        &[
            "--opaque-validation",
            "introspection",
            "--introspection-client-id",
            "demo-resource",
            "--introspection-client-secret",
            "demo-resource-secret",
        ],
    ),
];

/// Gets a token from the demo client.
async fn demo_token(authz: &str, username: &str, scope: &str) -> String {
    demo_token_of(authz, ("demo-jwt", "demo-jwt-secret"), username, scope).await
}

/// A password-grant token for a demo user from a demo client.
async fn demo_token_of(
    authz: &str,
    (client, secret): (&str, &str),
    username: &str,
    scope: &str,
) -> String {
    let body: Value = http()
        .post(format!("{authz}/oauth/token"))
        .basic_auth(client, Some(secret))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", "tessera-demo"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn serve_runs_both_servers_and_the_api_decides_from_real_tokens(backend: Backend) {
    let ws = Workspace::new(backend);
    let server = Server::start(&ws, &[]);
    let alice = demo_token(&server.url, "alice", "admin").await;
    let get = |path: &str, token: &str| {
        http()
            .get(format!("{}{path}", server.resource_url))
            .bearer_auth(token.to_owned())
            .send()
    };
    let response = get("/companies/acme/users", &alice).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["tessera-authz-lookups"],
        "0",
        "keys were prefetched"
    );
    let users: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(
        get("/companies/globex/users", &alice)
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let bob = demo_token(&server.url, "bob", "basic").await;
    assert_eq!(
        get("/companies/acme/users", &bob)
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let me: Value = get("/me", &bob).await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "bob");

    // What an operator's `curl /metrics` shows on each server after that traffic.
    let metrics = |base: String| async move {
        let response = http().get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    };
    let authz = metrics(server.url.clone()).await;
    for series in [
        r#"tessera_http_requests_total{route="/oauth/token",status="200"} 2"#,
        r#"tessera_http_request_duration_seconds_count{route="/oauth/token",status="200"} 2"#,
        r#"tessera_tokens_issued_total{grant="password",format="jwt"} 2"#,
        "# TYPE tessera_rate_limited_total counter",
        "# TYPE tessera_introspections_total counter",
        r#"tessera_db_pool_connections{state="idle"}"#,
        "tessera_db_pool_max_connections ",
    ] {
        assert!(authz.contains(series), "{series} missing from\n{authz}");
    }
    let resource = metrics(server.resource_url.clone()).await;
    for series in [
        r#"tessera_http_requests_total{route="/companies/{company}/users",status="200"} 1"#,
        r#"tessera_http_requests_total{route="/companies/{company}/users",status="403"} 2"#,
        r#"tessera_token_validations_total{outcome="valid"} 4"#,
        r#"tessera_jwks_fetches_total{result="updated"} 1"#,
        "tessera_jwks_unknown_kid_refetches_total 0",
        r#"tessera_db_pool_connections{state="in_use"}"#,
    ] {
        assert!(
            resource.contains(series),
            "{series} missing from\n{resource}"
        );
    }

    // The sign-ins are in the audit log, which `tessera audit list` reads.
    let out = within_secs(10, || {
        let out = ws.ok(&["audit", "list", "--kind", "login.succeeded"], "");
        (out.contains("alice") && out.contains("bob")).then_some(out)
    })
    .await;
    assert!(out.contains("demo-jwt"), "{out}");
}

/// Polls `check` every 100 ms until it returns something, for at most `secs` seconds.
async fn within_secs<T>(secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "not within {secs} s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn resource_alone_finds_the_keys_through_the_issuers_metadata(backend: Backend) {
    let ws = Workspace::new(backend);
    // A seeded database, then the two servers as separate processes on it.
    drop(Server::start(&ws, &[]));
    let authz = Server::start_command(&ws, "authz", &[]);
    let resource = Server::start_command(&ws, "resource", &["--issuer", &authz.issuer]);
    assert_eq!(resource.issuer, authz.issuer);
    let alice = demo_token(&authz.url, "alice", "admin").await;
    let response = http()
        .get(format!("{}/companies/acme/users", resource.resource_url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Metadata, then JWKS: two round trips for the first request.
    assert_eq!(response.headers()["tessera-authz-lookups"], "2");

    let out = ws
        .command()
        .args([
            "resource",
            "--resource-addr",
            "127.0.0.1:0",
            "--database-url",
            &ws.db_url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .starts_with("error: tessera resource needs --issuer")
    );
}

/// The README's walkthrough, run by `sh` as written, except for its first line, which
/// names the servers' URLs: here they are on free ports.
#[tokio::test]
async fn the_readme_walkthrough_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("README marks the walkthrough");
    let block = &readme[start..];
    let script = block
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let expected: Vec<String> = block
        .split("```text\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let (first, rest) = script.split_once('\n').unwrap();
    assert_eq!(
        first,
        "AUTHZ=http://127.0.0.1:8080 API=http://127.0.0.1:8081"
    );

    let ws = Workspace::sqlite();
    let server = Server::start(&ws, &[]);
    let script = format!("AUTHZ={} API={}\n{rest}", server.url, server.resource_url);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-c").arg(script).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(got, expected);
}

async fn a_revoked_opaque_token_is_refused_on_the_next_request_in_store_and_introspection_modes(
    backend: Backend,
) {
    let ws = Workspace::new(backend);
    drop(Server::start(&ws, &[]));
    for (mode, extra) in OPAQUE_MODES {
        let server = Server::start(&ws, extra);
        let body: Value = http()
            .post(format!("{}/oauth/token", server.url))
            .basic_auth("demo-opaque", Some("demo-opaque-secret"))
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "tessera-demo"),
                ("scope", "admin"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("tsr_") && !token.contains('.'), "{token}");
        let call = || {
            http()
                .get(format!("{}/companies/acme/users", server.resource_url))
                .bearer_auth(&token)
                .send()
        };
        let response = call().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{mode}");
        // The store reads the token with its user; introspection is a call, then the user.
        let lookups = if mode == "opaque-store" { "1" } else { "2" };
        assert_eq!(
            response.headers()["tessera-authz-lookups"],
            lookups,
            "{mode}"
        );
        let timing = response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            timing.starts_with(&format!("authz;desc=\"{mode}\"")),
            "{timing}"
        );

        assert_eq!(revoke_demo_opaque(&server.url, &token).await, 200);
        let response = call().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            401,
            "{mode}: a revoked token still worked"
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="tessera", error="invalid_token""#
        );
    }
    let out = ws
        .command()
        .args([
            "serve",
            "--authz-addr",
            "127.0.0.1:0",
            "--resource-addr",
            "127.0.0.1:0",
            "--database-url",
            &ws.db_url(),
        ])
        .args(["--opaque-validation", "introspection"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .starts_with("error: --opaque-validation introspection needs")
    );
}

#[test]
fn demo_prints_the_side_by_side_table_with_nothing_running_beforehand() {
    let ws = Workspace::sqlite();
    let out = ws
        .command()
        .args(["demo", "--requests", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let row = |label: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{stdout}"));
        line[label.len()..]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let header: Vec<String> = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("JWT"))
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "JWT",
            "JWT + revocation feed",
            "opaque (store)",
            "opaque (introspection)"
        ]
    );
    assert_eq!(row("lookups per request"), ["0", "0", "1", "2"]);
    assert_eq!(
        row("alice (admin) lists acme"),
        ["200", "200", "200", "200"]
    );
    assert_eq!(
        row("alice (admin) lists globex"),
        ["403", "403", "403", "403"]
    );
    assert_eq!(row("bob (basic) lists acme"), ["403", "403", "403", "403"]);
    assert_eq!(row("revoke alice's token"), ["200", "200", "200", "200"]);
    let took = row("revocation took effect");
    assert_eq!(took[0], "never (lives to exp)");
    let ms: u64 = took[1].strip_suffix(" ms").unwrap().parse().unwrap();
    assert!(ms < 5_000, "{took:?}");
    assert_eq!(took[2..], ["next request", "next request"]);
    assert_eq!(row("alice lists acme again"), ["200", "401", "401", "401"]);
    let lengths = row("token length (bytes)");
    assert!(lengths[0].parse::<usize>().unwrap() > 500, "{lengths:?}");
    assert_eq!(lengths[0], lengths[1]);
    assert_eq!(lengths[2], "47");
    assert!(
        row("median latency (20 requests)")
            .iter()
            .all(|c| c.ends_with(" ms"))
    );
    // Nothing is left behind in the working directory.
    assert!(!ws.dir().join("tessera.db").exists());
}

async fn a_client_whose_id_looks_like_a_user_id_never_acts_as_that_user(backend: Backend) {
    let ws = Workspace::new(backend);
    drop(Server::start(&ws, &[]));
    let users = ws.ok(&["user", "list", "--company", "acme"], "");
    let alice_id = users
        .lines()
        .find(|l| l.starts_with("alice"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    let secret = ws.add_client(&[
        &alice_id,
        "--grant",
        "client_credentials",
        "--scope",
        "admin",
        "--token-format",
        "opaque",
    ]);
    for (_, extra) in OPAQUE_MODES {
        let server = Server::start(&ws, extra);
        let body: Value = http()
            .post(format!("{}/oauth/token", server.url))
            .basic_auth(&alice_id, Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        let response = http()
            .get(format!("{}/companies/acme/users", server.resource_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            403,
            "{extra:?}: a client token acted as alice"
        );
        let me: Value = http()
            .get(format!("{}/me", server.resource_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["username"], Value::Null, "{extra:?}");
    }
}

on_each_backend!(
    blocking:
    companies_are_added_listed_and_a_duplicate_is_a_one_line_error,
    users_take_their_password_from_stdin_and_bad_input_is_refused,
    client_add_prints_the_id_and_a_fresh_secret_once,
    common_flags_work_before_and_after_the_subcommand_and_from_the_environment,
);

on_each_backend!(
    serve_seeds_the_demo_once_and_answers_the_readme_requests,
    serve_with_no_demo_leaves_the_database_empty_and_admin_commands_work_while_it_runs,
    authz_alone_never_seeds_and_serves_the_metadata_of_its_issuer,
    every_server_setting_has_an_environment_twin_and_the_flag_wins,
    serve_runs_both_servers_and_the_api_decides_from_real_tokens,
    resource_alone_finds_the_keys_through_the_issuers_metadata,
    a_revoked_opaque_token_is_refused_on_the_next_request_in_store_and_introspection_modes,
    a_client_whose_id_looks_like_a_user_id_never_acts_as_that_user,
);

/// Revokes `token` at `authz` as the demo opaque client; returns the status.
async fn revoke_demo_opaque(authz: &str, token: &str) -> u16 {
    revoke_as(authz, ("demo-opaque", "demo-opaque-secret"), token).await
}

/// Revokes `token` at `authz` as `client`; returns the status.
async fn revoke_as(authz: &str, (client, secret): (&str, &str), token: &str) -> u16 {
    http()
        .post(format!("{authz}/oauth/revoke"))
        .basic_auth(client, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// GETs `url` (with `token` as bearer when given) and returns the status and JSON body.
async fn get_json(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn two_authorization_and_two_resource_servers_share_one_database(backend: Backend) {
    let ws = Workspace::new(backend);
    let issuer = "https://auth.tessera.test";
    // Both authorization servers start at once on an empty database, behind one public
    // issuer URL: they race to migrate and to create the signing key.
    let (a, b) = std::thread::scope(|scope| {
        let start = || scope.spawn(|| Server::start_command(&ws, "authz", &["--issuer", issuer]));
        let (a, b) = (start(), start());
        (a.join().unwrap(), b.join().unwrap())
    });
    let jwks = |server: &Server| format!("{}/.well-known/jwks.json", server.url);
    let (status_a, jwks_a) = get_json(&jwks(&a), None).await;
    let (status_b, jwks_b) = get_json(&jwks(&b), None).await;
    assert_eq!((status_a, status_b), (200, 200));
    assert_eq!(jwks_a, jwks_b, "both publish the same keys");
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 1);

    // Data added with the admin commands while they run is seen by both.
    ws.ok(&["company", "add", "acme", "--name", "Acme"], "");
    ws.ok(
        &[
            "user",
            "add",
            "alice",
            "--company",
            "acme",
            "--role",
            "admin",
            "--role",
            "user",
        ],
        "tessera-demo\n",
    );
    ws.ok(
        &["user", "add", "bob", "--company", "acme", "--role", "user"],
        "tessera-demo\n",
    );
    let scopes = [
        "--grant", "password", "--scope", "basic", "--scope", "admin",
    ];
    let jwt_secret = ws.add_client(&[&["web"][..], &scopes].concat());
    let opaque_secret =
        ws.add_client(&[&["mobile"][..], &scopes, &["--token-format", "opaque"]].concat());
    let web = ("web", jwt_secret.as_str());
    let mobile = ("mobile", opaque_secret.as_str());

    // Each resource server fetches the keys from a different authorization server.
    let resources = [&a, &b].map(|authz| {
        Server::start_command(
            &ws,
            "resource",
            &["--issuer", issuer, "--jwks-url", &jwks(authz)],
        )
    });

    for authz in [&a, &b] {
        let jwt = demo_token_of(&authz.url, web, "alice", "admin").await;
        let opaque = demo_token_of(&authz.url, mobile, "alice", "admin").await;
        assert!(jwt.contains('.') && !opaque.contains('.'));
        for resource in &resources {
            let users = format!("{}/companies/acme/users", resource.resource_url);
            for token in [&jwt, &opaque] {
                let (status, body) = get_json(&users, Some(token)).await;
                assert_eq!(status, 200, "{}: {body}", authz.url);
                assert_eq!(body.as_array().unwrap().len(), 2);
            }
        }
    }

    // An opaque token issued by one and revoked through the other is refused by both
    // resource servers on the very next request.
    let opaque = demo_token_of(&a.url, mobile, "bob", "basic").await;
    for resource in &resources {
        let (status, _) = get_json(&format!("{}/me", resource.resource_url), Some(&opaque)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(revoke_as(&b.url, mobile, &opaque).await, 200);
    for resource in &resources {
        let response = http()
            .get(format!("{}/me", resource.resource_url))
            .bearer_auth(&opaque)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="tessera", error="invalid_token""#
        );
    }
    // A valid token still works everywhere.
    let fresh = demo_token_of(&b.url, web, "bob", "basic").await;
    for resource in &resources {
        let (status, body) = get_json(&format!("{}/me", resource.resource_url), Some(&fresh)).await;
        assert_eq!(status, 200);
        assert_eq!(body["username"], "bob");
    }
}

on_each_backend!(two_authorization_and_two_resource_servers_share_one_database);

#[tokio::test]
async fn while_postgres_is_away_requests_get_503_and_the_servers_recover_without_restart() {
    if !Backend::postgres_enabled() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres);
    let proxy = TcpProxy::start(postgres_server_addr());
    let ws = Workspace { db };
    let mut command = ws.command();
    command.args([
        "serve",
        "--authz-addr",
        "127.0.0.1:0",
        "--resource-addr",
        "127.0.0.1:0",
        "--database-url",
        &ws.db.url_via(proxy.addr()),
    ]);
    let mut server = Server::spawn(command, "serve");
    let jwt = demo_token(&server.url, "alice", "basic admin").await;
    let opaque = demo_token_of(
        &server.url,
        ("demo-opaque", "demo-opaque-secret"),
        "alice",
        "basic",
    )
    .await;
    let users = format!("{}/companies/acme/users", server.resource_url);
    let me = format!("{}/me", server.resource_url);
    let authz_health = format!("{}/healthz", server.url);
    let resource_health = format!("{}/healthz", server.resource_url);
    assert_eq!(get_json(&users, Some(&jwt)).await.0, 200);

    let jwks_url = format!("{}/.well-known/jwks.json", server.url);
    proxy.cut();
    let token_request = http()
        .post(format!("{}/oauth/token", server.url))
        .basic_auth("demo-jwt", Some("demo-jwt-secret"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "tessera-demo"),
        ])
        .send();
    let opaque_me = http().get(&me).bearer_auth(&opaque).send();
    let (token, listing, health_a, health_r, me_during, jwks, opaque_me, revoke) = tokio::join!(
        token_request,
        http().get(&users).bearer_auth(&jwt).send(),
        get_json(&authz_health, None),
        get_json(&resource_health, None),
        get_json(&me, Some(&jwt)),
        get_json(&jwks_url, None),
        opaque_me,
        revoke_demo_opaque(&server.url, &opaque),
    );
    // An opaque token needs the token store: 503, never a 401 that would make the client
    // throw a good token away.
    let opaque_me = opaque_me.unwrap();
    assert_eq!(opaque_me.status().as_u16(), 503);
    assert_eq!(opaque_me.headers()["retry-after"], "5");
    assert_eq!(revoke, 503);
    let token = token.unwrap();
    assert_eq!(token.status().as_u16(), 503);
    assert_eq!(token.headers()["retry-after"], "5");
    assert_eq!(token.headers()["cache-control"], "no-store");
    let body: Value = token.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let listing = listing.unwrap();
    assert_eq!(listing.status().as_u16(), 503);
    assert_eq!(listing.headers()["retry-after"], "5");
    let body: Value = listing.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let unavailable = serde_json::json!({"status": "unavailable", "database": "unavailable"});
    assert_eq!(health_a, (503, unavailable));
    assert_eq!(health_r.0, 503);
    assert_eq!(health_r.1["status"], "unavailable");
    assert_eq!(health_r.1["database"], "unavailable");
    // The revocation list is still in force: the feed has not been away for long.
    assert_eq!(
        health_r.1["revocation_feed"]["state"], "ok",
        "{}",
        health_r.1
    );
    // Claims alone authorize a JWT, and the keys are in memory: no database needed.
    assert_eq!(me_during.0, 200, "{}", me_during.1);
    assert_eq!(jwks.0, 200);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server must not exit"
    );

    proxy.restore();
    let ok = serde_json::json!({"status": "ok", "database": "ok"});
    assert_eq!(get_json(&authz_health, None).await, (200, ok));
    let (status, health) = get_json(&resource_health, None).await;
    assert_eq!(
        (status, &health["status"], &health["database"]),
        (200, &"ok".into(), &"ok".into())
    );
    assert_eq!(health["revocation_feed"]["state"], "ok", "{health}");
    assert_eq!(get_json(&users, Some(&jwt)).await.0, 200);
    let again = demo_token(&server.url, "bob", "basic").await;
    assert_eq!(get_json(&me, Some(&again)).await.0, 200);
    // The revocation that failed changed nothing: the opaque token still works.
    assert_eq!(get_json(&me, Some(&opaque)).await.0, 200);
}
