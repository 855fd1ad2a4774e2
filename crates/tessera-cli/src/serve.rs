use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tessera_authz::{Application, Settings};

use crate::args::Common;
use crate::{admin, demo};

/// Serves the authorization server until Ctrl-C or SIGTERM; seeds demo data first when
/// asked and the database is empty.
pub async fn serve(common: &Common, seed_demo: bool) -> anyhow::Result<()> {
    let store = admin::open(common).await?;
    if seed_demo {
        let seed = tokio::task::spawn_blocking(demo::seed).await??;
        if store
            .seed_if_empty(&seed, Utc::now())
            .await
            .context("cannot seed the demo data")?
        {
            print!("{}", demo::describe());
        }
    }
    let settings = Settings {
        addr: common.authz_addr.clone(),
        issuer: common.issuer.clone(),
        audience: common.audience.clone(),
        access_token_ttl: Duration::from_secs(common.access_token_ttl),
        ..Settings::default()
    };
    let app = Application::build(settings, store).await?;
    println!(
        "authorization server listening on http://{} (issuer {}, signing key {})",
        app.addr(),
        app.issuer(),
        app.signing_kid()
    );
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.stop(true).await;
    server
        .await
        .context("the server task failed")?
        .context("the server failed")?;
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
