//! The two-backend test harness: every store test runs on a fresh SQLite file and on a
//! fresh PostgreSQL database. PostgreSQL is not optional: if it cannot be reached the
//! test fails with a message saying so.

use crate::{DatabaseUrl, Store, StoreConfig};
use sqlx::Connection;

/// Where the harness finds a PostgreSQL server it may create databases on.
/// Not prefixed `FRONTDESK_`, so it never leaks into the configuration of a spawned binary.
pub const POSTGRES_ADMIN_URL_VAR: &str = "TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL the harness uses for PostgreSQL.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ADMIN_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into())
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// Login role that owns the test databases and runs migrations (no superuser, no BYPASSRLS).
pub const TEST_OWNER_ROLE: &str = "frontdesk_test_owner";
/// Login role the application connects as: a member of `frontdesk_app`, owns nothing.
pub const TEST_APP_ROLE: &str = "frontdesk_test_web";

/// A freshly created, migrated database that is removed when dropped.
pub struct TestDb {
    pub store: Store,
    /// The application's connection (on PostgreSQL: the unprivileged app role).
    pub url: DatabaseUrl,
    /// The schema owner's connection (on SQLite: the same file).
    pub owner_url: DatabaseUrl,
    /// PostgreSQL: a superuser connection to this database, for tests that must bypass
    /// every guard (e.g. to tamper with data behind the triggers' back).
    pub superuser_url: Option<DatabaseUrl>,
    cleanup: Option<Cleanup>,
}

/// Creates the roles the tests use, once per cluster. Roles are cluster-wide, so creation
/// is serialised with an advisory lock across concurrently running tests.
async fn ensure_test_roles(admin: &mut sqlx::PgConnection) {
    sqlx::query("SELECT pg_advisory_lock(727274)")
        .execute(&mut *admin)
        .await
        .expect("advisory lock");
    let sql = format!(
        "DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'frontdesk_app') THEN
                CREATE ROLE frontdesk_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TEST_OWNER_ROLE}') THEN
                CREATE ROLE {TEST_OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TEST_APP_ROLE}') THEN
                CREATE ROLE {TEST_APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE frontdesk_app;
            END IF;
        END $$"
    );
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *admin)
        .await;
    sqlx::query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut *admin)
        .await
        .expect("advisory unlock");
    result.expect("create test roles");
}

fn url_for(admin_url: &str, user: Option<&str>, db: &str) -> DatabaseUrl {
    let mut url = url::Url::parse(admin_url).expect("admin URL parses");
    url.set_path(db);
    if let Some(user) = user {
        url.set_username(user).expect("URL takes a user name");
        let _ = url.set_password(None);
    }
    DatabaseUrl::parse(url.as_str()).expect("test URL parses")
}

impl TestDb {
    /// A migrated database of the given backend.
    pub async fn new(backend: crate::Backend) -> Self {
        let db = Self::empty(backend).await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    pub async fn sqlite() -> Self {
        Self::new(crate::Backend::Sqlite).await
    }

    pub async fn postgres() -> Self {
        Self::new(crate::Backend::Postgres).await
    }

    /// A fresh database with no migrations applied.
    pub async fn empty(backend: crate::Backend) -> Self {
        let (url, owner_url, superuser_url, cleanup) = match backend {
            crate::Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir for SQLite test database");
                let url = DatabaseUrl::sqlite_file(&dir.path().join("test.db"));
                (url.clone(), url, None, Cleanup::Sqlite(dir))
            }
            crate::Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("frontdesk_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is required for the store tests and is unreachable at \
                         {admin_url} ({e}); start it (see README) or set {POSTGRES_ADMIN_URL_VAR}"
                        )
                    });
                ensure_test_roles(&mut admin).await;
                // The name is ours (a UUID), never input; identifiers cannot be bound.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} OWNER {TEST_OWNER_ROLE}"
                )))
                .execute(&mut admin)
                .await
                .expect("create test database");
                let _ = admin.close().await;
                (
                    url_for(&admin_url, Some(TEST_APP_ROLE), &name),
                    url_for(&admin_url, Some(TEST_OWNER_ROLE), &name),
                    Some(url_for(&admin_url, None, &name)),
                    Cleanup::Postgres { admin_url, name },
                )
            }
        };
        let vault = std::sync::Arc::new(crate::Vault::new(crate::MasterKeyring::generate()));
        let mut config = StoreConfig::new(url.clone(), vault);
        config.owner_url = Some(owner_url.clone());
        config.max_connections = 5;
        let store = Store::connect(&config)
            .await
            .expect("connect to test database");
        Self {
            store,
            url,
            owner_url,
            superuser_url,
            cleanup: Some(cleanup),
        }
    }
}

impl TestDb {
    /// Another store on this database with its own vault, as a second process (a server
    /// restarted with other keys, or an operator command) would open it.
    pub async fn store_with_vault(&self, vault: std::sync::Arc<crate::Vault>) -> Store {
        let mut config = StoreConfig::new(self.url.clone(), vault);
        config.owner_url = Some(self.owner_url.clone());
        config.max_connections = 3;
        Store::connect(&config)
            .await
            .expect("connect to test database")
    }

    /// Runs statements on a connection that bypasses every guard (PostgreSQL: the
    /// superuser; SQLite: the file itself), for tests that tamper behind the store's back.
    pub async fn raw_execute(&self, statements: &[String]) -> Result<(), sqlx::Error> {
        match self.store.backend() {
            crate::Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(self.owner_url.expose()).await?;
                for s in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                        .execute(&mut c)
                        .await?;
                }
                c.close().await
            }
            crate::Backend::Postgres => {
                let url = self.superuser_url.as_ref().expect("superuser URL");
                let mut c = sqlx::PgConnection::connect(url.expose()).await?;
                for s in statements {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                        .execute(&mut c)
                        .await?;
                }
                c.close().await
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin_url, name }) = self.cleanup.take() {
            // Drop runs outside async; a short-lived runtime on its own thread removes the
            // database, forcing off the pool's connections that are still open.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for test cleanup");
                rt.block_on(async move {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut admin)
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Declares a test that runs once on SQLite and once on PostgreSQL, as
/// `name::sqlite` and `name::postgres`, each with its own fresh migrated database.
///
/// ```ignore
/// both_backends! {
///     async fn readiness_is_ready(db) {
///         assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
///     }
/// }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($db:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($db: $crate::testing::TestDb) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::testing::TestDb::sqlite().await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    run($crate::testing::TestDb::postgres().await).await
                }
            }
        )*
    };
}
