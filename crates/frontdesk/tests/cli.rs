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

#[tokio::test]
async fn same_binary_runs_on_postgres_with_database_url() {
    let db = TestDb::empty(frontdesk_store::Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = Process::serve(dir.path(), &[("FRONTDESK_DATABASE_URL", db.url.expose())]);
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
        let out = frontdesk_command(dir.path())
            .arg("migrate")
            .env("FRONTDESK_DATABASE_URL", db.url.expose())
            .output()
            .unwrap();
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
            ("FRONTDESK_SHUTDOWN_GRACE_SECS", "1"),
        ],
    );
    let mut locker = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let url = p.url("/readyz");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    for _ in 0..500 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            .fetch_one(&mut locker).await.unwrap();
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
