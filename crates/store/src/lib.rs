//! Persistence for Frontdesk.
//!
//! One [`Store`] speaks to SQLite (the default, embedded) or PostgreSQL (the scale-out
//! path). SQL that both dialects accept is written once; backend-only SQL (row-level
//! security, `SKIP LOCKED`) lives in the backend's branch. Every query binds its values;
//! sqlx only accepts `'static` SQL text, so SQL cannot be assembled from input.

pub mod api_keys;
pub mod audience;
pub mod audit;
pub mod campaigns;
pub mod channels;
pub mod consent;
pub mod erasure;
mod error;
pub mod events;
pub mod exports;
mod gate;
pub mod group_commit;
pub mod identity;
pub mod imports;
pub mod inbox;
mod inbox_fill;
pub mod members;
pub mod messaging;
pub mod orgs;
pub mod queue;
mod queue_screens;
pub mod secrets;
pub mod segments;
mod settings;
pub mod simulator;
pub mod templates;
mod tenant;
pub mod throttle;
pub mod tokens;
mod unread;
mod url;
pub mod vault;
pub mod zone;

#[cfg(feature = "testing")]
pub mod testing;

pub use api_keys::ApiKeyRecord;
pub use audit::{AuditEvent, AuditPage, AuditQuery, AuditRecord, BrokenLink, ChainReport};
pub use channels::{
    ChannelCredentials, ChannelUpdate, ChannelView, InboxCounts, InboxItem, InboxStatus,
    NewChannel, Provider, SecretState, Stored, WebhookTarget, check_app_id,
};
pub use error::StoreError;
pub use events::{Event, EventBus, EventKind};
pub use identity::{
    Credentials, EmailTokenPurpose, IssuedSession, NewSession, Principal, Refreshed, SessionInfo,
    SessionKind, SessionPolicy, SessionSummary, TotpState, User,
};
pub use inbox_fill::InboxFill;
pub use members::{
    Invitation, InvitationPreview, InvitationState, Member, OrgMembership, RoleRecord, SignUp, Team,
};
pub use messaging::{
    Contact, ConversationView, CustomerIdentity, FinishedSend, Inbound, InboundRecord, MediaRow,
    MessageStatus, MessageView, NewMedia, NewOutbound, OutboundRow, OutboxAction, OutboxJob,
    StatusRecord, TemplateStatus, UploadedFile,
};
pub use orgs::{CreateOrgError, Organisation, now_micros};
pub use queue::{
    Board, DayReport, JoinOutcome, Patient, QueueSettings, QueueTemplates, QueueView, Screen,
    SettingsProblem, TemplateRef, TokenView, check_queue_settings,
};
pub use queue_screens::{SCREEN_TOKEN_PREFIX, ScreenLink};
pub use secrets::{Place, RewrapReport, SecretMeta, SecretName, SecretNameError};
pub use simulator::{
    NewSimNumber, SimCustomer, SimCustomerId, SimDirection, SimMedia, SimMessage, SimNumber,
    SimTemplate, SimUpload,
};
pub use templates::{
    LinkClicks, PreparedTemplate, SyncReport, SyncedTemplate, TemplateFilter, TemplateRecord,
    TemplateRefusal, new_link_code,
};
pub use tenant::{TenantCtx, TenantTx};
pub use throttle::{ThrottlePolicy, ThrottleScope};
pub use url::{Backend, DatabaseUrl, DatabaseUrlError};
pub use vault::{MasterKeyring, Vault, VaultError};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Creates a directory (and parents) readable by the owner only: it holds the database
/// and, later, keys and media.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// SQLite's own checkpoint runs after a commit that leaves the log this long (pages of
/// 4 KiB); normally the worker's background checkpoint keeps it far shorter.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// What one [`Store::checkpoint`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    /// Every page of the log is in the database (the next write starts the log afresh).
    pub complete: bool,
    pub log_pages: i64,
    pub checkpointed_pages: i64,
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The application's connection. On PostgreSQL its role must not own tables nor
    /// bypass row-level security; a superuser or owner login is switched to the
    /// `frontdesk_app` role on every connection.
    pub url: DatabaseUrl,
    /// PostgreSQL only: the schema owner's connection, used for migrations. Defaults to `url`.
    pub owner_url: Option<DatabaseUrl>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// The secret vault: master keys that wrap each organisation's data key.
    pub vault: Arc<Vault>,
}

impl StoreConfig {
    pub fn new(url: DatabaseUrl, vault: Arc<Vault>) -> Self {
        Self {
            url,
            vault,
            owner_url: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
enum Pool {
    /// The pool, and one connection that commits without syncing (see [`Store::begin_relaxed`]).
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

/// A connection pool to one database, of either backend. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Where migrations run; for SQLite the same database file.
    owner_url: DatabaseUrl,
    vault: Arc<Vault>,
    /// SQLite writers of this process take turns here (see [`gate`]).
    write_gate: Arc<gate::WriteGate>,
    /// Live events of committed changes (see [`events`]).
    events: events::EventBus,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs on every new PostgreSQL connection: a login that could bypass row-level security
/// (superuser, BYPASSRLS, or owner of the tables) switches to the `frontdesk_app` role.
async fn drop_to_app_role(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    let (sup, bypass, owns): (bool, bool, bool) = sqlx::query_as(
        "SELECT r.rolsuper, r.rolbypassrls, EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relowner = r.oid) FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    // Without membership the switch is impossible; the role is then left as it is and
    // `verify_app_role` refuses to start with a message that says why.
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'frontdesk_app') AND pg_has_role(current_user, 'frontdesk_app', 'MEMBER')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if (sup || bypass || owns) && member {
        sqlx::query("SET ROLE frontdesk_app")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// What `/readyz` reports about the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Migrations known to this binary that the database has not applied (or that failed).
    MigrationsPending(usize),
    /// The database has migrations this binary does not know: it was upgraded by a newer release.
    DatabaseAhead(usize),
}

/// Tables the application fills in bulk, whose planner statistics it refreshes after
/// ([`Store::refresh_statistics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkTable {
    CampaignRecipients,
    Conversations,
    Contacts,
    ConsentEvents,
    ContactTags,
    ContactFieldValues,
    ContactImportContacts,
}

impl crate::tenant::TenantTx {
    /// [`Store::refresh_statistics`] inside this transaction (its own rows count as
    /// written): for a long job that must not wait for its end. SQLite: nothing.
    pub(crate) async fn refresh_statistics_here(
        &mut self,
        tables: &[BulkTable],
    ) -> Result<(), StoreError> {
        let crate::tenant::Tx::Postgres(t) = &mut self.tx else {
            return Ok(());
        };
        analyze(&mut **t, tables).await
    }
}

/// Runs `frontdesk_refresh_statistics` for `tables` on a PostgreSQL connection or pool.
async fn analyze<'e>(
    on: impl sqlx::PgExecutor<'e>,
    tables: &[BulkTable],
) -> Result<(), StoreError> {
    let names: Vec<&str> = tables.iter().map(|t| t.as_str()).collect();
    sqlx::query("SELECT frontdesk_refresh_statistics($1)")
        .bind(&names)
        .execute(on)
        .await?;
    Ok(())
}

impl BulkTable {
    /// What a campaign's audience snapshot fills.
    pub const CAMPAIGN_AUDIENCE: &[BulkTable] = &[BulkTable::CampaignRecipients];
    /// What a campaign's first enqueue step opens for new customers.
    pub const CAMPAIGN_CONVERSATIONS: &[BulkTable] = &[BulkTable::Conversations];
    /// What a contact import fills.
    pub const CONTACT_IMPORT: &[BulkTable] = &[
        BulkTable::Contacts,
        BulkTable::ConsentEvents,
        BulkTable::ContactTags,
        BulkTable::ContactFieldValues,
        BulkTable::ContactImportContacts,
    ];

    fn as_str(self) -> &'static str {
        match self {
            BulkTable::CampaignRecipients => "campaign_recipients",
            BulkTable::Conversations => "conversations",
            BulkTable::Contacts => "contacts",
            BulkTable::ConsentEvents => "consent_events",
            BulkTable::ContactTags => "contact_tags",
            BulkTable::ContactFieldValues => "contact_field_values",
            BulkTable::ContactImportContacts => "contact_import_contacts",
        }
    }
}

impl Store {
    /// Opens a pool. For SQLite the file (and its directory) is created when missing, and
    /// every connection runs with WAL, foreign keys on, full sync and a busy timeout.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let backend = config.url.backend();
        let pool = match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(config.url.expose())
                    .map_err(|source| StoreError::Connect { backend, source })?;
                if let Some(dir) = options.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    create_private_dir(dir).map_err(StoreError::DataDir)?;
                }
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    // FULL: a commit survives power loss, which webhook acknowledgement promises.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    // The worker checkpoints the WAL in the background every second
                    // (`Store::checkpoint`), so a request's commit does not copy the WAL
                    // into the database and sync it on its way out. SQLite's own
                    // checkpoint after a commit stays as a fallback, at 64 MiB of WAL
                    // instead of 4 MiB.
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options.clone())
                    .await
                    .map_err(|source| StoreError::Connect { backend, source })?;
                // NORMAL in WAL mode: a commit is atomic and visible at once and survives a
                // crash of the process, but the WAL is synced only by the next FULL commit or
                // checkpoint. Only for writes that may be lost to a power cut (read marks).
                let relaxed = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options.synchronous(SqliteSynchronous::Normal))
                    .await
                    .map_err(|source| StoreError::Connect { backend, source })?;
                Pool::Sqlite(pool, relaxed)
            }
            Backend::Postgres => {
                let options = sqlx::postgres::PgConnectOptions::from_str(config.url.expose())
                    .map_err(|source| StoreError::Connect { backend, source })?;
                // Lazy: the role switch needs `frontdesk_app`, which the first migration
                // creates, so no connection is made before `migrate` had its chance.
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .after_connect(|conn, _meta| Box::pin(drop_to_app_role(conn)))
                    .connect_lazy_with(options);
                Pool::Postgres(pool)
            }
        };
        let owner_url = config
            .owner_url
            .clone()
            .unwrap_or_else(|| config.url.clone());
        Ok(Self {
            pool,
            owner_url,
            vault: config.vault.clone(),
            write_gate: gate::WriteGate::new(),
            events: events::EventBus::default(),
        })
    }

    /// Checks that the application's connections are subject to row-level security:
    /// not a superuser, no BYPASSRLS, owner of no table. `serve` refuses to start otherwise.
    pub async fn verify_app_role(&self) -> Result<(), StoreError> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(());
        };
        let mut conn = p.acquire().await?;
        let (user, sup, bypass): (String, bool, bool) = sqlx::query_as(
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
        let owned: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_get_userbyid(c.relowner) = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
        if sup || bypass || owned > 0 {
            return Err(StoreError::UnsafeRole(format!(
                "the application connects as `{user}` (superuser: {sup}, bypassrls: {bypass}, owns {owned} tables); row-level security would not apply"
            )));
        }
        Ok(())
    }

    /// On PostgreSQL, starts relaying other processes' committed events onto this
    /// process's bus (see [`events`]); `None` on SQLite, where one process owns the file.
    /// The listener has a connection of its own (it holds it for good, and must not take one
    /// from the pool that requests share); it only runs `LISTEN`. The task ends when the
    /// store's pool is closed. Notifications sent while the link is down are lost: cached
    /// unread counts are then dropped.
    pub fn relay_events(&self) -> Option<tokio::task::JoinHandle<()>> {
        let Pool::Postgres(pool) = &self.pool else {
            return None;
        };
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        let (closed, bus) = (pool.close_event(), self.events.clone());
        Some(tokio::spawn(async move {
            tokio::select! {
                () = closed => {}
                () = listen_for_events(&own, &bus) => {}
            }
            own.close().await;
        }))
    }

    /// The bus committed changes are announced on.
    pub fn events(&self) -> &events::EventBus {
        &self.events
    }

    /// The secret vault this store seals values with.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(..) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration (on PostgreSQL as the owner); returns how many.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        const COUNT: &str = "SELECT count(*) FROM _sqlx_migrations WHERE success";
        match &self.pool {
            Pool::Sqlite(p, _) => {
                let before: i64 = sqlx::query_scalar(COUNT).fetch_one(p).await.unwrap_or(0);
                SQLITE_MIGRATIONS
                    .run(p)
                    .await
                    .map_err(StoreError::Migrate)?;
                let after: i64 = sqlx::query_scalar(COUNT).fetch_one(p).await?;
                Ok((after - before).max(0) as usize)
            }
            Pool::Postgres(_) => {
                let owner = self.connect_owner().await?;
                let before: i64 = sqlx::query_scalar(COUNT)
                    .fetch_one(&owner)
                    .await
                    .unwrap_or(0);
                let result = POSTGRES_MIGRATIONS.run(&owner).await;
                let after: Result<i64, _> = sqlx::query_scalar(COUNT).fetch_one(&owner).await;
                owner.close().await;
                result.map_err(StoreError::Migrate)?;
                Ok((after? - before).max(0) as usize)
            }
        }
    }

    /// One connection as the tables' owner (migrations, planner statistics).
    async fn connect_owner(&self) -> Result<PgPool, StoreError> {
        PgPoolOptions::new()
            .max_connections(1)
            .connect(self.owner_url.expose())
            .await
            .map_err(|source| StoreError::Connect {
                backend: Backend::Postgres,
                source,
            })
    }

    /// Versions recorded in the migrations table, with whether each succeeded.
    async fn applied_migrations(&self) -> Result<BTreeMap<i64, bool>, StoreError> {
        const SQL: &str = "SELECT version, success FROM _sqlx_migrations";
        let rows: Vec<(i64, bool)> = match &self.pool {
            Pool::Sqlite(p, _) => sqlx::query_as(SQL).fetch_all(p).await?,
            Pool::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await?,
        };
        Ok(rows.into_iter().collect())
    }

    /// Checks that the database answers and that its schema is exactly what this binary expects.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        match &self.pool {
            Pool::Sqlite(p, _) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
        };
        // A missing migrations table means nothing was applied yet.
        let applied = self.applied_migrations().await.unwrap_or_default();
        let known: Vec<i64> = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect();
        let pending = known
            .iter()
            .filter(|v| applied.get(v) != Some(&true))
            .count();
        if pending > 0 {
            return Ok(Readiness::MigrationsPending(pending));
        }
        let ahead = applied.keys().filter(|v| !known.contains(v)).count();
        if ahead > 0 {
            return Ok(Readiness::DatabaseAhead(ahead));
        }
        Ok(Readiness::Ready)
    }

    /// Number of migrations this binary carries for the store's backend.
    pub fn known_migrations(&self) -> usize {
        self.migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count()
    }

    /// The PostgreSQL pool itself, for tests that check what a pooled connection carries.
    #[cfg(feature = "testing")]
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p.clone()),
            Pool::Sqlite(..) => None,
        }
    }

    /// `(foreign_keys, busy_timeout ms, synchronous)` as a pooled SQLite connection sees them.
    #[cfg(feature = "testing")]
    pub async fn sqlite_pragmas(&self) -> Result<(i64, i64, i64), StoreError> {
        let Pool::Sqlite(p, _) = &self.pool else {
            panic!("sqlite_pragmas on a PostgreSQL store");
        };
        let mut conn = p.acquire().await?;
        let fk = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?;
        let busy = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        let sync = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        Ok((fk, busy, sync))
    }

    /// Refreshes the query planner's statistics after bulk loads (benchmarks, imports). On
    /// PostgreSQL only the tables' owner may analyze, so it connects as the owner (as
    /// migrations do); without it the planner guesses a few hundred rows per organisation
    /// and picks nested loops that cost a hundred times more.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p, _) => {
                sqlx::query("ANALYZE").execute(p).await?;
            }
            Pool::Postgres(_) => {
                let owner = self.connect_owner().await?;
                let result = sqlx::query("ANALYZE").execute(&owner).await;
                owner.close().await;
                result?;
            }
        }
        Ok(())
    }

    /// PostgreSQL: refreshes the planner's statistics of tables the application just grew in
    /// bulk (a campaign's audience snapshot, a contact import), through
    /// `frontdesk_refresh_statistics`, which analyzes only tables on its own list. Until
    /// autovacuum's next pass the planner would otherwise plan for the tables' old sizes.
    /// Nothing on SQLite, whose planner keeps no row counts unless told to.
    pub async fn refresh_statistics(&self, tables: &[BulkTable]) -> Result<(), StoreError> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(());
        };
        analyze(p, tables).await
    }

    /// SQLite: copies what the write-ahead log holds into the database file without
    /// waiting for readers or writers (a passive checkpoint), and answers how many pages the
    /// log held and how many of them are now in the database. Run in the background (the
    /// worker does, every second) so commits seldom pay for a checkpoint. `None` on
    /// PostgreSQL, which checkpoints on its own.
    pub async fn checkpoint(&self) -> Result<Option<WalCheckpoint>, StoreError> {
        let Pool::Sqlite(p, _) = &self.pool else {
            return Ok(None);
        };
        let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(p)
            .await?;
        Ok(Some(WalCheckpoint {
            complete: busy == 0 && log == done,
            log_pages: log,
            checkpointed_pages: done,
        }))
    }

    /// Waits for checked-out connections to return, then closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p, relaxed) => {
                relaxed.close().await;
                p.close().await
            }
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Listens on the events channel and republishes what other processes commit, reconnecting
/// after failures; returns only if `pool` is closed.
async fn listen_for_events(pool: &PgPool, bus: &events::EventBus) {
    loop {
        let listening = async {
            let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
            l.listen(events::RELAY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listening.await {
            Ok(l) => l,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other processes' events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => bus.receive_relayed(n.payload()),
                Ok(None) => {
                    tracing::warn!("lost the link to other processes' events; reconnecting");
                    bus.unread().forget_all();
                }
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "other processes' events failed; reconnecting");
                    bus.unread().forget_all();
                    break;
                }
            }
        }
    }
}
