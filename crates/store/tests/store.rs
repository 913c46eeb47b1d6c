//! Store conformance: every test here runs on SQLite and on PostgreSQL.

use frontdesk_store::testing::TestDb;
use frontdesk_store::{Backend, Readiness, both_backends};

both_backends! {
    async fn fresh_database_is_ready_after_migrate(db) {
        assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
    }

    async fn migrate_twice_applies_nothing_the_second_time(db) {
        assert_eq!(db.store.migrate().await.unwrap(), 0);
        assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
    }
}

async fn unmigrated_database_reports_pending(backend: Backend) {
    let db = TestDb::empty(backend).await;
    let known = db.store.known_migrations();
    assert!(known > 0);
    assert_eq!(
        db.store.readiness().await.unwrap(),
        Readiness::MigrationsPending(known)
    );
    assert_eq!(db.store.migrate().await.unwrap(), known);
    assert_eq!(db.store.readiness().await.unwrap(), Readiness::Ready);
}

#[tokio::test]
async fn unmigrated_database_reports_pending_sqlite() {
    unmigrated_database_reports_pending(Backend::Sqlite).await;
}

#[tokio::test]
async fn unmigrated_database_reports_pending_postgres() {
    unmigrated_database_reports_pending(Backend::Postgres).await;
}

async fn database_ahead_of_binary_is_not_ready(backend: Backend) {
    let db = TestDb::new(backend).await;
    let url = db.owner_url.expose().to_owned();
    // Simulate a newer release having migrated this database.
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99991231000000, 'future', 1, x'00', 0)")
                .execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99991231000000, 'future', true, '\\x00', 0)")
                .execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    assert_eq!(
        db.store.readiness().await.unwrap(),
        Readiness::DatabaseAhead(1)
    );
}

#[tokio::test]
async fn database_ahead_of_binary_is_not_ready_sqlite() {
    database_ahead_of_binary_is_not_ready(Backend::Sqlite).await;
}

#[tokio::test]
async fn database_ahead_of_binary_is_not_ready_postgres() {
    database_ahead_of_binary_is_not_ready(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_connections_use_wal_foreign_keys_and_busy_timeout() {
    let db = TestDb::sqlite().await;
    let pool = sqlx::SqlitePool::connect(db.url.expose()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    pool.close().await;
    // Per-connection settings are checked through the store's own pool.
    let (fk, busy, sync) = db.store.sqlite_pragmas().await.unwrap();
    assert_eq!(fk, 1);
    assert_eq!(busy, 5000);
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[tokio::test]
async fn a_background_checkpoint_moves_the_whole_log_into_the_database() {
    let db = TestDb::sqlite().await;
    // Something in the log: an organisation created after the migrations.
    db.store
        .create_organisation(
            "Checkpoint clinic",
            "checkpoint",
            frontdesk_domain::Actor::System("test".into()),
        )
        .await
        .unwrap();
    let done = db
        .store
        .checkpoint()
        .await
        .unwrap()
        .expect("SQLite checkpoints");
    assert!(done.log_pages > 0, "{done:?}");
    assert!(
        done.complete,
        "nothing else reads or writes: every page is copied, {done:?}"
    );
    assert_eq!(done.checkpointed_pages, done.log_pages);
    // A second one finds nothing new to copy.
    let again = db.store.checkpoint().await.unwrap().unwrap();
    assert!(again.complete, "{again:?}");

    let pg = TestDb::postgres().await;
    assert_eq!(
        pg.store.checkpoint().await.unwrap(),
        None,
        "PostgreSQL checkpoints on its own"
    );
}
