//! The `frontdesk` command: configuration, logging and the wiring of store and server.

pub mod config;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, LogFormat};
use frontdesk_server::{AppState, build_app, serve};
use frontdesk_store::Store;
use std::path::PathBuf;
use std::time::Duration;

/// Frontdesk: a self-hosted, security-first WhatsApp Business platform.
#[derive(Debug, Parser)]
#[command(name = "frontdesk", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; values in it are overridden by FRONTDESK_* variables.
    #[arg(long, global = true, env = "FRONTDESK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server and workers. With no configuration: SQLite in ./frontdesk-data,
    /// migrated on start, serving http://127.0.0.1:8080.
    Serve,
    /// Apply pending database migrations and exit (serve also does this on start).
    Migrate,
}

/// Runs the parsed command. Errors come back to `main`, which prints them and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    match cli.command {
        Command::Serve => run_serve(config).await,
        Command::Migrate => run_migrate(config).await,
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests calling run twice) is harmless: the first subscriber stays.
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let vault = config.vault().context("loading the master key")?;
    let store_config = config.store_config(vault);
    tracing::info!(database = %store_config.url, backend = %store_config.url.backend(), "opening database");
    let store = Store::connect(&store_config)
        .await
        .with_context(|| format!("opening the database at {}", store_config.url))?;
    Ok(store)
}

async fn run_migrate(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let applied = store.migrate().await.context("applying migrations")?;
    tracing::info!(applied, "migrations applied");
    store.close().await;
    Ok(())
}

async fn run_serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let applied = store.migrate().await.context("applying migrations")?;
    tracing::info!(applied, "database schema is current");
    store
        .verify_app_role()
        .await
        .context("refusing to start: tenant isolation would not be enforced by the database")?;

    let state = AppState::new(
        store.clone(),
        config.server_settings(),
        config.metrics_token.clone(),
    );
    let app = build_app(state);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "Frontdesk is serving on http://{addr}");
    serve(
        listener,
        app.router,
        shutdown_signal(),
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await
    .context("serving HTTP")?;
    // A request cut off by the grace period may still hold a connection; don't wait for it.
    if tokio::time::timeout(Duration::from_secs(5), store.close())
        .await
        .is_err()
    {
        tracing::warn!("database pool did not close in time; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
