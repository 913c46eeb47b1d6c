//! The `frontdesk` command: configuration, logging and the wiring of store and server.

pub mod bench;
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
    /// Manage the secret vault's master keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configure outgoing mail (invitations, sign-in links, password resets).
    #[command(subcommand)]
    Smtp(SmtpCommand),
    /// Measure the server (it runs in this process, on its own database).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Post N unique, signed Meta webhooks over HTTP with C concurrent clients; print the
    /// acknowledged rate, latency percentiles, inbox row count and peak RSS. Exits
    /// non-zero when a message was lost.
    Ingest {
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Database to run on (`postgres://…` or `sqlite://…`); default: a SQLite file in
        /// a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
        /// Seconds to wait for an inbox worker to process the stored rows.
        #[arg(long, default_value_t = 60)]
        process_timeout_secs: u64,
    },
    /// Fill a database with O organisations, C conversations and M messages (bulk
    /// inserts), then request the conversation list and view at R requests/s (open loop,
    /// agents' own tokens) for S seconds; print the achieved rate and p50/p99/max.
    Inbox {
        #[arg(long, default_value_t = 10)]
        organisations: usize,
        #[arg(long, default_value_t = 100_000)]
        conversations: usize,
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seconds of load at the same rate before the measured seconds, not counted
        /// (caches, connections and the first unread counts of a server just started).
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// Database to run on; default: a SQLite file in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Queue M template sends for one simulated number with throughput R and let the
    /// dispatcher send them to the built-in simulator; print the achieved rate and its
    /// deviation from R.
    Dispatch {
        #[arg(long, default_value_t = 2_000)]
        messages: usize,
        #[arg(long, default_value_t = 100)]
        rate: i32,
        /// Database to run on; default: a SQLite file in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// A CSV import of N rows (a few repeated, a few without a valid number): time to
    /// upload, dry-run and import it with the worker.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Database to run on; default: a SQLite file in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// A campaign to N contacts on one simulated number with throughput R: time to
    /// snapshot the audience, time to enqueue, and the dispatch rate held against R.
    Campaign {
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
        #[arg(long, default_value_t = 1_000)]
        rate: i32,
        /// The number's messaging-limit tier (`TIER_100K`: the campaign's steps keep the
        /// tier's count as they go).
        #[arg(long, default_value = "TIER_UNLIMITED")]
        tier: String,
        /// Send to a stand-in for Meta's send endpoint that keeps nothing (no simulator
        /// records, no status webhooks back): the dispatcher measured on its own.
        #[arg(long)]
        standin: bool,
        /// Database to run on; default: a SQLite file in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SmtpCommand {
    /// Store the SMTP server to send mail through. The password is read from standard
    /// input (never from the command line) and kept sealed in the vault.
    Set {
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 587)]
        port: u16,
        /// `starttls` (port 587), `tls` (port 465), or `none` (only to this machine).
        #[arg(long, default_value = "starttls")]
        security: String,
        #[arg(long)]
        username: Option<String>,
        /// The sender, e.g. `Frontdesk <no-reply@clinic.example>`.
        #[arg(long)]
        from: String,
        /// Read the SMTP password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show the stored SMTP settings (never the password).
    Show,
    /// Send a test mail to an address.
    Test {
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new master key version to the key file and re-wrap every organisation's data
    /// key with it. A running server keeps working throughout and picks up the new key.
    Rotate,
    /// Re-wrap every data key with the newest master key version (after adding a version
    /// to FRONTDESK_MASTER_KEY by hand).
    Rewrap,
    /// How many data keys each master key version wraps. A version that wraps none may be
    /// removed from the keyring.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk each organisation's hash chain and report the first broken link. Exits
    /// non-zero when a chain does not verify.
    Verify {
        /// Only this organisation (its id).
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
    },
}

/// Runs the parsed command. Errors come back to `main`, which prints them and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The benchmark builds its own configuration (temporary database, fresh keys) and
    // keeps stdout for its figures; only warnings are logged, to stderr, unless
    // FRONTDESK_LOG_LEVEL asks for more (e.g. `sqlx=debug` lists every statement).
    if let Command::Bench(bench) = cli.command {
        let config = Config {
            log_level: std::env::var("FRONTDESK_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            ..Config::default()
        };
        init_logging(&config, false);
        return match bench {
            BenchCommand::Ingest {
                messages,
                concurrency,
                database_url,
                process_timeout_secs,
            } => {
                bench::run_ingest(bench::IngestOptions {
                    messages,
                    concurrency,
                    database_url,
                    process_timeout: Duration::from_secs(process_timeout_secs),
                })
                .await
            }
            BenchCommand::Inbox {
                organisations,
                conversations,
                messages,
                rate,
                seconds,
                warmup,
                database_url,
            } => {
                bench::run_inbox(bench::InboxOptions {
                    organisations,
                    conversations,
                    messages,
                    rate,
                    seconds,
                    warmup,
                    database_url,
                })
                .await
            }
            BenchCommand::Dispatch {
                messages,
                rate,
                database_url,
            } => {
                bench::run_dispatch(bench::DispatchOptions {
                    messages,
                    rate,
                    database_url,
                })
                .await
            }
            BenchCommand::Import { rows, database_url } => {
                bench::run_import(bench::ImportOptions { rows, database_url }).await
            }
            BenchCommand::Campaign {
                contacts,
                rate,
                tier,
                standin,
                database_url,
            } => {
                bench::run_campaign(bench::CampaignOptions {
                    contacts,
                    rate,
                    tier,
                    standin,
                    database_url,
                })
                .await
            }
        };
    }
    let config = Config::load(cli.config.as_deref())?;
    // The server logs to stdout; operator commands keep stdout for their report.
    init_logging(&config, matches!(cli.command, Command::Serve));
    match cli.command {
        Command::Serve => run_serve(config).await,
        Command::Migrate => run_migrate(config).await,
        Command::Keys(k) => run_keys(config, k).await,
        Command::Audit(AuditCommand::Verify { org }) => run_audit_verify(config, org).await,
        Command::Smtp(c) => run_smtp(config, c).await,
        Command::Bench(_) => unreachable!("handled before the configuration is loaded"),
    }
}

fn init_logging(config: &Config, to_stdout: bool) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let writer = if to_stdout {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
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

/// Opens the store of an operator command: the schema must be current.
async fn open_current_store(config: &Config) -> anyhow::Result<Store> {
    let store = open_store(config).await?;
    match store.readiness().await.context("reading the database")? {
        frontdesk_store::Readiness::Ready => Ok(store),
        other => anyhow::bail!(
            "the database schema is not current ({other:?}); run `frontdesk migrate` first"
        ),
    }
}

async fn run_keys(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    let store = open_current_store(&config).await?;
    match command {
        KeysCommand::Rotate => {
            let report = store
                .rotate_master_key()
                .await
                .context("rotating the master key")?;
            println!(
                "master key version {} is now primary; re-wrapped {} data key(s) in {} organisation(s)",
                report.master_version, report.rewrapped, report.organisations
            );
        }
        KeysCommand::Rewrap => {
            let report = store
                .rewrap_data_keys()
                .await
                .context("re-wrapping data keys")?;
            println!(
                "re-wrapped {} data key(s) in {} organisation(s) with master key version {}",
                report.rewrapped, report.organisations, report.master_version
            );
        }
        KeysCommand::Status => {
            let ring = store.vault().ring();
            let counts = store
                .data_keys_by_master_version()
                .await
                .context("counting data keys")?;
            println!("primary master key version: {}", ring.primary_version());
            for v in ring.versions() {
                let n = counts.get(&v).copied().unwrap_or(0);
                let note = if n == 0 && v != ring.primary_version() {
                    " (unused: may be removed)"
                } else {
                    ""
                };
                println!("  v{v}: wraps {n} data key(s){note}");
            }
            for (v, n) in counts.iter().filter(|(v, _)| !ring.versions().contains(v)) {
                println!(
                    "  v{v}: wraps {n} data key(s) but is NOT in the keyring: those secrets cannot be opened"
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn run_smtp(config: Config, command: SmtpCommand) -> anyhow::Result<()> {
    use frontdesk_server::mail::{SmtpConfig, SmtpSecurity, smtp_config};
    let store = open_current_store(&config).await?;
    match command {
        SmtpCommand::Set {
            host,
            port,
            security,
            username,
            from,
            password_stdin,
        } => {
            let security = match security.as_str() {
                "starttls" => SmtpSecurity::Starttls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                other => anyhow::bail!("--security: `{other}` is not one of starttls, tls, none"),
            };
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                anyhow::ensure!(!line.is_empty(), "no password on standard input");
                Some(secrecy::SecretString::from(line))
            } else {
                None
            };
            let smtp = SmtpConfig {
                host,
                port,
                security,
                username,
                from,
            };
            frontdesk_server::mail::save_smtp(&store, &smtp, password.as_ref())
                .await
                .context("saving the SMTP settings")?;
            println!(
                "SMTP settings saved ({}:{}, {:?}{})",
                smtp.host,
                smtp.port,
                smtp.security,
                if password.is_some() {
                    ", password sealed in the vault"
                } else {
                    ""
                }
            );
        }
        SmtpCommand::Show => match smtp_config(&store)
            .await
            .context("reading the SMTP settings")?
        {
            Some(c) => println!(
                "host: {}\nport: {}\nsecurity: {:?}\nusername: {}\nfrom: {}",
                c.host,
                c.port,
                c.security,
                c.username.as_deref().unwrap_or("(none)"),
                c.from
            ),
            None => println!("no SMTP server is configured; mail is not sent"),
        },
        SmtpCommand::Test { to } => {
            let mailer = frontdesk_server::mail::Mailer::new(store.clone());
            mailer
                .send(
                    &to,
                    "Frontdesk test mail",
                    "This is a test mail from Frontdesk. Mail works.\n",
                )
                .await
                .context("sending the test mail")?;
            println!("test mail sent to {to}");
        }
    }
    store.close().await;
    Ok(())
}

async fn run_audit_verify(config: Config, org: Option<String>) -> anyhow::Result<()> {
    let only = match org {
        Some(o) => Some(
            frontdesk_domain::OrgId::parse(&o)
                .map_err(|_| anyhow::anyhow!("--org: `{o}` is not an organisation id"))?,
        ),
        None => None,
    };
    let store = open_current_store(&config).await?;
    let reports = store
        .verify_audit_chains(only)
        .await
        .context("verifying audit chains")?;
    store.close().await;
    let mut broken = 0;
    for r in &reports {
        match &r.broken {
            None => println!("org {}: {} event(s), chain intact", r.org_id, r.events),
            Some(b) => {
                broken += 1;
                println!(
                    "org {}: BROKEN at sequence {}: {}",
                    r.org_id, b.seq, b.reason
                );
            }
        }
    }
    if broken > 0 {
        anyhow::bail!("{broken} of {} audit chain(s) do not verify", reports.len());
    }
    println!("{} audit chain(s) verified", reports.len());
    Ok(())
}

/// A server ready to serve: store open and migrated, listener bound, application built.
pub struct PreparedServer {
    pub store: Store,
    pub listener: tokio::net::TcpListener,
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    pub app: frontdesk_server::App,
    /// The background worker, not yet running (`spawn` it).
    pub worker: std::sync::Arc<frontdesk_worker::Worker>,
}

/// What `serve` does before it serves; `bench` starts its in-process server with it too.
pub async fn prepare_server(config: &Config) -> anyhow::Result<PreparedServer> {
    let store = open_store(config).await?;
    let applied = store.migrate().await.context("applying migrations")?;
    tracing::info!(applied, "database schema is current");
    store
        .verify_app_role()
        .await
        .context("refusing to start: tenant isolation would not be enforced by the database")?;

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(
        store.clone(),
        config.server_settings(addr),
        config.metrics_token.clone(),
    );
    let app = build_app(state.clone());
    let worker = start_worker(&state);
    // Several processes on one PostgreSQL database see each other's live events.
    store.relay_events();
    Ok(PreparedServer {
        store,
        listener,
        addr,
        state,
        app,
        worker,
    })
}

async fn run_serve(config: Config) -> anyhow::Result<()> {
    let PreparedServer {
        store,
        listener,
        addr,
        app,
        worker,
        ..
    } = prepare_server(&config).await?;
    let (stop_worker, stopped) = tokio::sync::watch::channel(false);
    let worker_task = worker.spawn(stopped);
    tracing::info!(address = %addr, "Frontdesk is serving on http://{addr}");
    serve(
        listener,
        app.router,
        shutdown_signal(),
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await
    .context("serving HTTP")?;
    let _ = stop_worker.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), worker_task).await;
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

/// The background worker beside the HTTP server: same store, clock, wake-ups and blob store.
pub fn start_worker(state: &AppState) -> std::sync::Arc<frontdesk_worker::Worker> {
    let clock = state.clock().clone();
    frontdesk_worker::Worker::new(
        state.store().clone(),
        state.blobs().clone(),
        state.signals().clone(),
        std::sync::Arc::new(move || clock.now()),
        frontdesk_worker::DispatchSettings::default(),
    )
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
