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

/// A freshly created, migrated database that is removed when dropped.
pub struct TestDb {
    pub store: Store,
    pub url: DatabaseUrl,
    cleanup: Option<Cleanup>,
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
        let (url, cleanup) = match backend {
            crate::Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir for SQLite test database");
                let url = DatabaseUrl::sqlite_file(&dir.path().join("test.db"));
                (url, Cleanup::Sqlite(dir))
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
                // The name is ours (a UUID), never input; identifiers cannot be bound.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let mut url = url::Url::parse(&admin_url).expect("admin URL parses");
                url.set_path(&name);
                let url = DatabaseUrl::parse(url.as_str()).expect("test URL parses");
                (url, Cleanup::Postgres { admin_url, name })
            }
        };
        let mut config = StoreConfig::new(url.clone());
        config.max_connections = 5;
        let store = Store::connect(&config)
            .await
            .expect("connect to test database");
        Self {
            store,
            url,
            cleanup: Some(cleanup),
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
