//! Operator commands of the real binary (`keys`, `audit`), on both backends.

mod common;

use common::frontdesk_command;
use frontdesk_domain::{Actor, UserId};
use frontdesk_store::testing::TestDb;
use frontdesk_store::{AuditRecord, Backend, SecretName, Store, TenantCtx, Vault, both_backends};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

async fn org(store: &Store, slug: &str) -> TenantCtx {
    store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1
}

/// Runs `frontdesk <args>` against the test database, with extra environment.
fn run_cli(db: &TestDb, cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = frontdesk_command(cwd);
    cmd.args(args)
        .env("FRONTDESK_DATABASE_URL", db.url.expose());
    if db.store.backend() == Backend::Postgres {
        cmd.env("FRONTDESK_DATABASE_OWNER_URL", db.owner_url.expose());
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

both_backends! {
    async fn audit_verify_reports_intact_chains_and_the_first_edited_event(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        for i in 0..4 {
            let mut tx = db.store.begin(&a).await.unwrap();
            tx.audit(AuditRecord::new("thing.changed", "thing", i.to_string(), serde_json::json!({"i": i}))).await.unwrap();
            tx.commit().await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let out = run_cli(&db, dir.path(), &["audit", "verify"], &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(&format!("org {}: 5 event(s), chain intact", a.org_id())), "{stdout}");
        assert!(stdout.contains(&format!("org {}: 1 event(s), chain intact", b.org_id())), "{stdout}");
        assert!(stdout.contains("2 audit chain(s) verified"), "{stdout}");

        // Edit event 3 of alpha behind the triggers' back.
        let tamper = match db.store.backend() {
            Backend::Sqlite => vec![
                "DROP TRIGGER audit_events_no_update".to_string(),
                "UPDATE audit_events SET target_id = 'forged' WHERE seq = 3 AND org_id = (SELECT id FROM organisations WHERE slug = 'alpha')".to_string(),
            ],
            Backend::Postgres => vec![
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete".to_string(),
                "UPDATE audit_events SET target_id = 'forged' WHERE seq = 3 AND org_id = (SELECT id FROM organisations WHERE slug = 'alpha')".to_string(),
                "ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_or_delete".to_string(),
            ],
        };
        db.raw_execute(&tamper).await.unwrap();
        let out = run_cli(&db, dir.path(), &["audit", "verify"], &[]);
        assert_eq!(out.status.code(), Some(2));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(&format!("org {}: BROKEN at sequence 3", a.org_id())), "{stdout}");
        assert!(stdout.contains(&format!("org {}: 1 event(s), chain intact", b.org_id())), "{stdout}");
        assert!(text(&out.stderr).contains("1 of 2 audit chain(s) do not verify"));

        // --org narrows the walk; an unknown or malformed id is an error.
        let b_id = b.org_id().to_string();
        let out = run_cli(&db, dir.path(), &["audit", "verify", "--org", b_id.as_str()], &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!text(&out.stdout).contains(&a.org_id().to_string()));
        let out = run_cli(&db, dir.path(), &["audit", "verify", "--org", "0190a1b2-0000-7000-8000-000000000000"], &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("no organisation has that id"), "{}", text(&out.stderr));
        let out = run_cli(&db, dir.path(), &["audit", "verify", "--org", "nope"], &[]);
        assert_eq!(out.status.code(), Some(2));
    }

    async fn keys_rotate_rewraps_data_keys_and_status_shows_the_versions(db) {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("keys/master.keys");
        let server = db.store_with_vault(Arc::new(Vault::from_file(&key_file).unwrap())).await;
        let a = org(&server, "alpha").await;
        let mut tx = server.begin(&a).await.unwrap();
        tx.put_secret(&SecretName::parse("token").unwrap(), &SecretString::from("alpha-token-value".to_owned())).await.unwrap();
        tx.commit().await.unwrap();
        let file = key_file.to_str().unwrap();
        let env = [("FRONTDESK_MASTER_KEY_FILE", file)];

        let out = run_cli(&db, dir.path(), &["keys", "status"], &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("v1: wraps 1 data key(s)"), "{}", text(&out.stdout));

        let out = run_cli(&db, dir.path(), &["keys", "rotate"], &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("master key version 2 is now primary; re-wrapped 1 data key(s) in 1 organisation(s)"), "{stdout}");
        let file_text = std::fs::read_to_string(&key_file).unwrap();
        for line in file_text.lines().filter(|l| l.starts_with('v')) {
            let key = line.split_once(':').unwrap().1;
            assert!(!stdout.contains(key) && !text(&out.stderr).contains(key), "a key was printed");
        }

        let out = run_cli(&db, dir.path(), &["keys", "status"], &env);
        let stdout = text(&out.stdout);
        assert!(stdout.contains("primary master key version: 2"), "{stdout}");
        assert!(stdout.contains("v1: wraps 0 data key(s) (unused: may be removed)"), "{stdout}");
        assert!(stdout.contains("v2: wraps 1 data key(s)"), "{stdout}");

        // The server that was running all along still opens the secret, unwrapping afresh.
        server.vault().forget_data_keys();
        assert_eq!(server.secret(&a, &SecretName::parse("token").unwrap()).await.unwrap().unwrap().expose_secret(), "alpha-token-value");

        // Keys from the environment cannot be rotated in place; the message says what to do.
        let out = run_cli(&db, dir.path(), &["keys", "rotate"], &[("FRONTDESK_MASTER_KEY", "v1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=")]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("keys rewrap"), "{}", text(&out.stderr));
    }
}

#[test]
fn operator_commands_are_explained_in_help() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needles) in [
        (vec!["--help"], vec!["keys", "audit"]),
        (vec!["keys", "--help"], vec!["rotate", "rewrap", "status"]),
        (
            vec!["audit", "verify", "--help"],
            vec!["--org", "broken link"],
        ),
    ] {
        let out = frontdesk_command(dir.path()).args(&args).output().unwrap();
        assert!(out.status.success());
        let help = text(&out.stdout);
        for n in needles {
            assert!(help.contains(n), "{args:?} lacks {n:?}:\n{help}");
        }
    }
}
