//! The `tessera` command.

mod admin;
mod args;
mod clients;
mod demo;
mod keys;
mod secrets;
mod serve;
mod showcase;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) if !err.use_stderr() => {
            // --help and --version: clap prints them to stdout.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // Usage errors: clap's first line ("error: …"), exit code 2.
            let rendered = err.to_string();
            eprintln!(
                "{}",
                rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    init_logging();
    if let Err(err) = secrets::resolve(&mut cli.common, &matches) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error and its causes, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = &cli.common;
    match cli.command {
        Command::Serve => serve::serve(common).await,
        Command::Authz => serve::authz(common).await,
        Command::Resource {
            jwks_url,
            jwks_allow_http,
        } => serve::resource(common, jwks_url, jwks_allow_http).await,
        Command::Demo { requests } => showcase::run(requests).await,
        Command::Migrate => {
            admin::open(common).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Company(cmd) => admin::company(common, cmd).await,
        Command::User(cmd) => admin::user(common, cmd).await,
        Command::Client(cmd) => clients::client(common, cmd).await,
        Command::Keys(cmd) => keys::keys(common, cmd).await,
        Command::Audit(cmd) => admin::audit(common, cmd).await,
    }
}

/// Logs go to stderr, filtered by `TESSERA_LOG` (default `info`). Secrets never reach a
/// log line: requests are not logged with their bodies, and secrets are redacted types.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
