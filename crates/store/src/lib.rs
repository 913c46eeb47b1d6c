//! Persistence for Frontdesk.
//!
//! One [`Store`] speaks to SQLite (the default, embedded) or PostgreSQL (the scale-out
//! path). SQL that both dialects accept is written once; backend-only SQL (row-level
//! security, `SKIP LOCKED`) lives in the backend's branch. Every query binds its values;
//! sqlx only accepts `'static` SQL text, so SQL cannot be assembled from input.

mod error;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use url::{Backend, DatabaseUrl, DatabaseUrlError};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::BTreeMap;
use std::str::FromStr;
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

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl StoreConfig {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A connection pool to one database, of either backend. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
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
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect { backend, source })?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect(config.url.expose())
                    .await
                    .map_err(|source| StoreError::Connect { backend, source })?;
                Pool::Postgres(pool)
            }
        };
        Ok(Self { pool })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let before = self.applied_migrations().await.unwrap_or_default().len();
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(StoreError::Migrate)?;
        let after = self.applied_migrations().await?.len();
        Ok(after.saturating_sub(before))
    }

    /// Versions recorded in the migrations table, with whether each succeeded.
    async fn applied_migrations(&self) -> Result<BTreeMap<i64, bool>, StoreError> {
        const SQL: &str = "SELECT version, success FROM _sqlx_migrations";
        let rows: Vec<(i64, bool)> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await?,
            Pool::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await?,
        };
        Ok(rows.into_iter().collect())
    }

    /// Checks that the database answers and that its schema is exactly what this binary expects.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop)?,
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

    /// `(foreign_keys, busy_timeout ms, synchronous)` as a pooled SQLite connection sees them.
    #[cfg(feature = "testing")]
    pub async fn sqlite_pragmas(&self) -> Result<(i64, i64, i64), StoreError> {
        let Pool::Sqlite(p) = &self.pool else {
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

    /// Waits for checked-out connections to return, then closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}
