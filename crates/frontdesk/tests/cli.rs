//! The real binary, as an operator runs it.

mod common;

use common::{Process, client, frontdesk_command};
use frontdesk_store::testing::TestDb;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[test]
fn help_explains_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = frontdesk_command(dir.path())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["serve", "migrate", "--config", "SQLite", "migrations"] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn bad_configuration_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("FRONTDESK_BIND", "not-an-address", "`bind`"),
        ("FRONTDESK_BODY_LIMIT_BYTES", "lots", "`body_limit_bytes`"),
        ("FRONTDESK_DATABASE_URL", "mysql://h/db", "`database_url`"),
        ("FRONTDESK_LOG_LEVEL", "info,[[[", "`log_level`"),
        (
            "FRONTDESK_BODY_LIMT_BYTES",
            "5",
            "unknown key `body_limt_bytes`",
        ),
    ];
    for (key, value, expect) in cases {
        let out = frontdesk_command(dir.path())
            .arg("serve")
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{key}={value} should stop the start"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expect), "{key}={value}: {err}");
        assert!(
            !dir.path().join("frontdesk-data").exists(),
            "nothing created on a bad config"
        );
    }
    let out = frontdesk_command(dir.path())
        .args(["--config", "missing.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("missing.toml")
    );
}

#[tokio::test]
async fn serve_with_no_configuration_runs_on_sqlite_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::serve(dir.path(), &[]);
    let http = client();
    let r = http.get(p.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http.get(p.url("/api/v1/missing")).send().await.unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let db = dir.path().join("frontdesk-data/frontdesk.db");
    assert!(
        db.is_file(),
        "SQLite database created in the data directory"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("frontdesk-data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "data directory is private: {mode:o}");
    }

    let status = p.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let logs = p.json_logs();
    assert!(logs.iter().any(|l| l["message"] == "stopped"), "{logs:?}");
    // Every line logged for the request carries its id.
    let for_request: Vec<_> = logs
        .iter()
        .filter(|l| l["span"]["request_id"] == request_id.as_str())
        .collect();
    assert!(!for_request.is_empty(), "request's log lines carry its id");
    assert!(for_request.iter().any(|l| l["status"] == 404));
}

/// Quick start on PostgreSQL: one URL with a privileged login. The server migrates as that
/// login and runs its queries as `frontdesk_app`, so row-level security still applies.
#[tokio::test]
async fn same_binary_runs_on_postgres_with_database_url() {
    let db = TestDb::empty(frontdesk_store::Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let superuser = db.superuser_url.clone().unwrap();
    let mut p = Process::serve(
        dir.path(),
        &[("FRONTDESK_DATABASE_URL", superuser.expose())],
    );
    let r = client().get(p.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "migrated on start and ready");
    assert!(
        !dir.path().join("frontdesk-data/frontdesk.db").exists(),
        "no SQLite file on PostgreSQL"
    );
    assert!(p.terminate().success());
    let logs = p.json_logs();
    let opening = logs
        .iter()
        .find(|l| l["message"] == "opening database")
        .unwrap();
    assert_eq!(opening["backend"], "postgres");
}

/// Production shape: migrations as the schema owner, the server as an unprivileged role.
#[tokio::test]
async fn postgres_with_separate_owner_and_app_roles() {
    let db = TestDb::empty(frontdesk_store::Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::serve(
        dir.path(),
        &[
            ("FRONTDESK_DATABASE_URL", db.url.expose()),
            ("FRONTDESK_DATABASE_OWNER_URL", db.owner_url.expose()),
        ],
    );
    let r = client().get(p.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(p.terminate().success());
}

/// The server will not run as a role that row-level security does not bind.
#[tokio::test]
async fn serve_refuses_a_role_that_bypasses_row_level_security() {
    let db = TestDb::postgres().await;
    let admin = frontdesk_store::testing::postgres_admin_url();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::raw_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'frontdesk_test_bypass') THEN CREATE ROLE frontdesk_test_bypass LOGIN BYPASSRLS IN ROLE frontdesk_app; END IF; END $$")
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(db.url.expose()).unwrap();
    url.set_username("frontdesk_test_bypass").unwrap();
    // A BYPASSRLS login that is a member of frontdesk_app would be switched to it; one
    // that is not cannot be, and must be refused.
    sqlx::raw_sql("REVOKE frontdesk_app FROM frontdesk_test_bypass")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT CONNECT ON DATABASE {} TO frontdesk_test_bypass",
        url.path().trim_start_matches('/')
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = frontdesk_command(dir.path())
        .arg("serve")
        .env("FRONTDESK_BIND", "127.0.0.1:0")
        .env("FRONTDESK_DATABASE_URL", url.as_str())
        .env("FRONTDESK_DATABASE_OWNER_URL", db.owner_url.expose())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("refusing to start") && err.contains("bypassrls: true"),
        "{err}"
    );
}

#[tokio::test]
async fn migrate_subcommand_applies_migrations_on_both_backends() {
    for backend in [
        frontdesk_store::Backend::Sqlite,
        frontdesk_store::Backend::Postgres,
    ] {
        let db = TestDb::empty(backend).await;
        assert!(matches!(
            db.store.readiness().await.unwrap(),
            frontdesk_store::Readiness::MigrationsPending(_)
        ));
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = frontdesk_command(dir.path());
        cmd.arg("migrate")
            .env("FRONTDESK_DATABASE_URL", db.url.expose());
        if backend == frontdesk_store::Backend::Postgres {
            cmd.env("FRONTDESK_DATABASE_OWNER_URL", db.owner_url.expose());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            db.store.readiness().await.unwrap(),
            frontdesk_store::Readiness::Ready,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn sigterm_with_stuck_request_exits_within_grace() {
    use sqlx::Connection;
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::serve(
        dir.path(),
        &[
            ("FRONTDESK_DATABASE_URL", db.url.expose()),
            ("FRONTDESK_DATABASE_OWNER_URL", db.owner_url.expose()),
            ("FRONTDESK_SHUTDOWN_GRACE_SECS", "1"),
        ],
    );
    let mut locker = sqlx::PgConnection::connect(db.owner_url.expose())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let url = p.url("/readyz");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    common::wait_for_lock_waiter(&db).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = p.terminate();
        (s, p)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exit was bounded: {:?}",
        started.elapsed()
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the stuck request was cut off by the exit"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let logs = status.1.json_logs();
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .contains("grace period over")),
        "{logs:?}"
    );
}

#[test]
fn logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::serve(dir.path(), &[]);
    assert!(p.terminate().success());
    let logs: Vec<Value> = p.json_logs();
    assert!(
        logs.iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
}
