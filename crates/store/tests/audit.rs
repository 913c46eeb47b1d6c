//! The audit chain on both backends.

use frontdesk_domain::{Actor, UserId};
use frontdesk_store::testing::TestDb;
use frontdesk_store::{AuditQuery, AuditRecord, Backend, Store, TenantCtx, both_backends};
use serde_json::json;
use sqlx::Connection;

async fn org(store: &Store, slug: &str) -> TenantCtx {
    store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1
}

async fn append(store: &Store, ctx: &TenantCtx, action: &str, target: &str) {
    let mut tx = store.begin(ctx).await.unwrap();
    tx.audit(AuditRecord::new(
        action,
        "thing",
        target,
        json!({"n": target}),
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Runs `sql` on the schema owner's connection with `org` as the transaction's tenant.
async fn as_owner(db: &TestDb, org: &TenantCtx, statements: &[&str]) -> Result<(), sqlx::Error> {
    match db.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db.owner_url.expose()).await?;
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&mut c)
                    .await?;
            }
            Ok(())
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db.owner_url.expose()).await?;
            let mut tx = c.begin().await?;
            sqlx::query("SELECT set_config('app.org_id', $1, true)")
                .bind(org.org_id().to_string())
                .execute(&mut *tx)
                .await?;
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
    }
}

both_backends! {
    async fn creating_an_organisation_starts_its_chain(db) {
        let a = org(&db.store, "alpha").await;
        let page = db.store.audit_events(&a, &AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.events.len(), 1);
        let e = &page.events[0];
        assert_eq!((e.seq, e.action.as_str()), (1, "organisation.created"));
        assert_eq!(e.prev_hash, vec![0u8; 32]);
        assert_eq!(&e.actor, a.actor());
    }

    async fn event_is_kept_only_if_its_transaction_commits(db) {
        let a = org(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.audit(AuditRecord::new("thing.changed", "thing", "1", json!({}))).await.unwrap();
        drop(tx); // rolled back
        append(&db.store, &a, "thing.changed", "2").await;
        let page = db.store.audit_events(&a, &AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
        let seqs: Vec<_> = page.events.iter().map(|e| (e.seq, e.target_id.clone())).collect();
        assert_eq!(seqs, vec![(2, "2".to_string()), (1, a.org_id().to_string())]);
        let report = db.store.verify_audit_chains(Some(a.org_id())).await.unwrap();
        assert_eq!(report[0].broken, None);
        assert_eq!(report[0].events, 2);
    }

    async fn chains_link_and_verify_per_organisation(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        for i in 0..5 {
            append(&db.store, &a, "thing.changed", &i.to_string()).await;
        }
        append(&db.store, &b, "thing.changed", "b").await;
        let page = db.store.audit_events(&a, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(page.events.len(), 6);
        for pair in page.events.windows(2) {
            assert_eq!(pair[0].seq, pair[1].seq + 1);
            assert_eq!(pair[0].prev_hash, pair[1].hash, "each event links to the one before");
        }
        let reports = db.store.verify_audit_chains(None).await.unwrap();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
        let counts: Vec<_> = reports.iter().map(|r| (r.org_id, r.events)).collect();
        assert!(counts.contains(&(a.org_id(), 6)) && counts.contains(&(b.org_id(), 2)));
    }

    async fn concurrent_appends_keep_one_gapless_chain(db) {
        let a = org(&db.store, "alpha").await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = db.store.clone();
            let a = a.clone();
            tasks.push(tokio::spawn(async move { append(&store, &a, "thing.changed", &i.to_string()).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = db.store.verify_audit_chains(Some(a.org_id())).await.unwrap();
        assert_eq!(report[0].events, 17);
        assert_eq!(report[0].broken, None);
    }

    async fn update_and_delete_of_audit_events_are_refused(db) {
        let a = org(&db.store, "alpha").await;
        // The schema owner has the privileges; the triggers still refuse.
        for stmt in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"] {
            let err = as_owner(&db, &a, &[stmt]).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{stmt}: {err}");
        }
        if db.store.backend() == Backend::Postgres {
            let err = as_owner(&db, &a, &["TRUNCATE audit_events CASCADE"]).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{err}");
            // The application role is not even granted UPDATE or DELETE.
            let mut app = sqlx::PgConnection::connect(db.url.expose()).await.unwrap();
            for stmt in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"] {
                let err = sqlx::raw_sql(sqlx::AssertSqlSafe(stmt)).execute(&mut app).await.unwrap_err();
                assert!(err.to_string().contains("permission denied"), "{stmt}: {err}");
            }
        }
        let report = db.store.verify_audit_chains(Some(a.org_id())).await.unwrap();
        assert_eq!((report[0].events, report[0].broken.clone()), (1, None));
    }

    async fn verify_reports_the_first_edited_event(db) {
        let a = org(&db.store, "alpha").await;
        for i in 0..4 {
            append(&db.store, &a, "thing.changed", &i.to_string()).await;
        }
        let org = a.org_id();
        let tamper = match db.store.backend() {
            Backend::Sqlite => vec![
                "DROP TRIGGER audit_events_no_update".to_string(),
                "UPDATE audit_events SET data = '{\"n\":\"forged\"}' WHERE seq = 3".to_string(),
                "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END".to_string(),
            ],
            Backend::Postgres => vec![
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete".to_string(),
                format!("UPDATE audit_events SET data = '{{\"n\":\"forged\"}}' WHERE org_id = '{org}' AND seq = 3"),
                "ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_or_delete".to_string(),
            ],
        };
        let stmts: Vec<&str> = tamper.iter().map(String::as_str).collect();
        as_owner(&db, &a, &stmts).await.unwrap();
        let report = db.store.verify_audit_chains(Some(org)).await.unwrap();
        let broken = report[0].broken.clone().expect("tampering detected");
        assert_eq!(broken.seq, 3, "{broken:?}");
        assert!(broken.reason.contains("hash"), "{broken:?}");
    }

    async fn verify_detects_a_removed_tail(db) {
        let a = org(&db.store, "alpha").await;
        for i in 0..3 {
            append(&db.store, &a, "thing.changed", &i.to_string()).await;
        }
        let org = a.org_id();
        let tamper = match db.store.backend() {
            Backend::Sqlite => vec![
                "DROP TRIGGER audit_events_no_delete".to_string(),
                "DELETE FROM audit_events WHERE seq = 4".to_string(),
            ],
            Backend::Postgres => vec![
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete".to_string(),
                format!("DELETE FROM audit_events WHERE org_id = '{org}' AND seq = 4"),
            ],
        };
        let stmts: Vec<&str> = tamper.iter().map(String::as_str).collect();
        as_owner(&db, &a, &stmts).await.unwrap();
        let report = db.store.verify_audit_chains(Some(org)).await.unwrap();
        assert_eq!(report[0].broken.as_ref().map(|b| b.seq), Some(4), "{report:?}");
    }

    async fn audit_log_filters_and_pages(db) {
        let a = org(&db.store, "alpha").await;
        for i in 0..7 {
            append(&db.store, &a, if i % 2 == 0 { "door.opened" } else { "door.closed" }, &format!("d{i}")).await;
        }
        let opened = db.store.audit_events(&a, &AuditQuery { action: Some("door.opened".into()), limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(opened.events.len(), 4);
        assert!(opened.events.iter().all(|e| e.action == "door.opened"));
        let by_target = db.store.audit_events(&a, &AuditQuery { target_id: Some("d3".into()), limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(by_target.events.len(), 1);
        let by_actor = db.store.audit_events(&a, &AuditQuery { actor: Some(a.actor().clone()), limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(by_actor.events.len(), 8);
        let other_actor = db.store.audit_events(&a, &AuditQuery { actor: Some(Actor::User(UserId::new())), limit: 100, ..Default::default() }).await.unwrap();
        assert!(other_actor.events.is_empty());
        let future = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let later = db.store.audit_events(&a, &AuditQuery { since: Some(future), limit: 100, ..Default::default() }).await.unwrap();
        assert!(later.events.is_empty());
        let earlier = db.store.audit_events(&a, &AuditQuery { until: Some(future), limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(earlier.events.len(), 8);

        // Pages of 3, newest first, with no overlap and nothing missed.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = db.store.audit_events(&a, &AuditQuery { before_seq: cursor, limit: 3, ..Default::default() }).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.seq));
            match page.next_before_seq {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, vec![8, 7, 6, 5, 4, 3, 2, 1]);
    }
}
