//! The secret vault through the store, on both backends.

use frontdesk_domain::{Actor, UserId};
use frontdesk_store::testing::TestDb;
use frontdesk_store::{
    AuditQuery, Backend, MasterKeyring, SecretName, Store, StoreError, TenantCtx, Vault,
    VaultError, both_backends,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

async fn org(store: &Store, slug: &str) -> TenantCtx {
    store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1
}

fn name(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

async fn put(store: &Store, ctx: &TenantCtx, n: &str, value: &str) {
    let mut tx = store.begin(ctx).await.unwrap();
    tx.put_secret(&name(n), &SecretString::from(value.to_owned()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn read(store: &Store, ctx: &TenantCtx, n: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .secret(ctx, &name(n))
        .await?
        .map(|s| s.expose_secret().to_owned()))
}

/// Every byte of the database, as files (SQLite) or as the text of every table (PostgreSQL).
async fn database_bytes(db: &TestDb) -> Vec<u8> {
    match db.store.backend() {
        Backend::Sqlite => {
            let path = db
                .owner_url
                .expose()
                .trim_start_matches("sqlite://")
                .to_owned();
            let mut all = Vec::new();
            for suffix in ["", "-wal"] {
                if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                    all.extend(b);
                }
            }
            all
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let url = db.superuser_url.as_ref().unwrap();
            let mut c = sqlx::PgConnection::connect(url.expose()).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            let mut all = Vec::new();
            for t in tables {
                let sql = format!("SELECT coalesce(string_agg(t::text, '|'), '') FROM {t} t");
                let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                all.extend(text.into_bytes());
            }
            all
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

both_backends! {
    async fn secret_round_trips_and_its_metadata_never_holds_the_value(db) {
        let a = org(&db.store, "alpha").await;
        let token = "EAAG-canary-token-0123456789-wxyz";
        put(&db.store, &a, "whatsapp.access_token", token).await;
        put(&db.store, &a, "smtp.password", "short-pw-1").await;
        assert_eq!(read(&db.store, &a, "whatsapp.access_token").await.unwrap().as_deref(), Some(token));

        let mut tx = db.store.begin_read(&a).await.unwrap();
        let metas = tx.list_secret_meta().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(metas.len(), 2);
        let smtp = metas.iter().find(|m| m.name == "smtp.password").unwrap();
        assert_eq!((smtp.configured, smtp.last4.as_deref()), (true, None), "short values show nothing");
        let wa = metas.iter().find(|m| m.name == "whatsapp.access_token").unwrap();
        assert_eq!(wa.last4.as_deref(), Some("wxyz"));
        let shown = serde_json::to_string(&metas).unwrap();
        assert!(!shown.contains("canary") && !shown.contains("short-pw"), "{shown}");

        // Replace, then delete; each change is in the audit chain, by name only.
        put(&db.store, &a, "smtp.password", "another-pw-2").await;
        assert_eq!(read(&db.store, &a, "smtp.password").await.unwrap().as_deref(), Some("another-pw-2"));
        let mut tx = db.store.begin(&a).await.unwrap();
        assert!(tx.delete_secret(&name("smtp.password")).await.unwrap());
        assert!(!tx.delete_secret(&name("smtp.password")).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(read(&db.store, &a, "smtp.password").await.unwrap(), None);
        let page = db.store.audit_events(&a, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        let actions: Vec<_> = page.events.iter().rev().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["organisation.created", "secret.set", "secret.set", "secret.replaced", "secret.deleted"]);
        let log = serde_json::to_string(&page).unwrap();
        assert!(!log.contains("canary") && !log.contains("-pw-"), "{log}");
    }

    async fn secret_values_are_not_stored_in_plain_text(db) {
        let a = org(&db.store, "alpha").await;
        let token = "plain-text-canary-7d1e0c9b";
        put(&db.store, &a, "whatsapp.app_secret", token).await;
        let bytes = database_bytes(&db).await;
        assert!(!bytes.is_empty());
        assert!(!contains(&bytes, token.as_bytes()), "the secret is readable in the database");
        assert!(!contains(&bytes, b"canary-7d1e"), "part of the secret is readable in the database");
        // PostgreSQL prints bytea as hex: a plain value in a bytea column would show so.
        let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!contains(&bytes, hex.as_bytes()), "the secret is stored as plain bytes");
    }

    async fn sealed_values_open_only_in_their_own_row_and_tenant(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        put(&db.store, &a, "token.one", "alpha-one-secret").await;
        put(&db.store, &a, "token.two", "alpha-two-secret").await;
        put(&db.store, &b, "token.one", "beta-one-secret").await;
        // Same name, different tenants: each sees its own.
        assert_eq!(read(&db.store, &a, "token.one").await.unwrap().as_deref(), Some("alpha-one-secret"));
        assert_eq!(read(&db.store, &b, "token.one").await.unwrap().as_deref(), Some("beta-one-secret"));

        // Someone with write access to the database copies ciphertexts around.
        db.raw_execute(&[
            // alpha's token.one into alpha's token.two (another row, same tenant)
            "UPDATE org_secrets SET ciphertext = (SELECT s.ciphertext FROM org_secrets s JOIN organisations o ON o.id = s.org_id WHERE o.slug = 'alpha' AND s.name = 'token.one') WHERE name = 'token.two'".into(),
            // alpha's token.one into beta's token.one (same name, other tenant)
            "UPDATE org_secrets SET ciphertext = (SELECT s.ciphertext FROM org_secrets s JOIN organisations o ON o.id = s.org_id WHERE o.slug = 'alpha' AND s.name = 'token.one') WHERE name = 'token.one' AND org_id = (SELECT id FROM organisations WHERE slug = 'beta')".into(),
        ]).await.unwrap();
        db.store.vault().forget_data_keys();
        assert!(matches!(read(&db.store, &a, "token.two").await, Err(StoreError::Vault(VaultError::Decrypt))));
        assert!(matches!(read(&db.store, &b, "token.one").await, Err(StoreError::Vault(VaultError::Decrypt))));
        assert_eq!(read(&db.store, &a, "token.one").await.unwrap().as_deref(), Some("alpha-one-secret"));
    }

    async fn a_wrong_master_key_opens_nothing(db) {
        let a = org(&db.store, "alpha").await;
        put(&db.store, &a, "token.one", "alpha-one-secret").await;
        let other = db.store_with_vault(Arc::new(Vault::new(MasterKeyring::generate()))).await;
        let err = read(&other, &a, "token.one").await.unwrap_err();
        assert!(matches!(err, StoreError::Vault(VaultError::Decrypt)), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("alpha-one-secret"));
    }

    async fn master_key_rotation_rewraps_every_data_key_without_downtime(db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.keys");
        // The running server and, later, the operator's `keys rotate`: two processes, one file.
        let server = db.store_with_vault(Arc::new(Vault::from_file(&path).unwrap())).await;
        let a = org(&server, "alpha").await;
        let b = org(&server, "beta").await;
        put(&server, &a, "token", "alpha-token-value").await;
        put(&server, &b, "token", "beta-token-value").await;
        assert_eq!(server.data_keys_by_master_version().await.unwrap().into_iter().collect::<Vec<_>>(), vec![(1, 2)]);

        // Step 1: a new master version appears in the file. Keys wrapped by v1 keep opening,
        // even unwrapped afresh, and a new organisation's key is wrapped by v2 at once.
        MasterKeyring::rotate_file(&path).unwrap();
        server.vault().forget_data_keys();
        assert_eq!(read(&server, &a, "token").await.unwrap().as_deref(), Some("alpha-token-value"));
        let c = org(&server, "gamma").await;
        put(&server, &c, "token", "gamma-token-value").await;
        let counts = server.data_keys_by_master_version().await.unwrap();
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![(1, 2), (2, 1)]);

        // Step 2: the operator rotates again and re-wraps everything, while the server runs.
        let operator = db.store_with_vault(Arc::new(Vault::from_file(&path).unwrap())).await;
        let report = operator.rotate_master_key().await.unwrap();
        assert_eq!((report.master_version, report.organisations, report.rewrapped), (3, 3, 3));
        assert_eq!(operator.data_keys_by_master_version().await.unwrap().into_iter().collect::<Vec<_>>(), vec![(3, 3)]);
        // The server has never seen v3: it reloads the file when a key names it.
        server.vault().forget_data_keys();
        for (ctx, want) in [(&a, "alpha-token-value"), (&b, "beta-token-value"), (&c, "gamma-token-value")] {
            assert_eq!(read(&server, ctx, "token").await.unwrap().as_deref(), Some(want));
        }
        // Each re-wrap is in that organisation's audit chain.
        let page = server.audit_events(&a, &AuditQuery { action: Some("data_keys.rewrapped".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].data["to_version"], 3);

        // Old versions can now be dropped from the keyring: v3 alone opens everything.
        let ring = MasterKeyring::parse(std::fs::read_to_string(&path).unwrap().as_str()).unwrap();
        let v3_only = ring.to_text().expose_secret().lines().filter(|l| l.starts_with("v3:")).collect::<Vec<_>>().join("\n");
        let fresh = db.store_with_vault(Arc::new(Vault::new(MasterKeyring::parse(&v3_only).unwrap()))).await;
        assert_eq!(read(&fresh, &b, "token").await.unwrap().as_deref(), Some("beta-token-value"));
        // A rewrap with nothing old left changes nothing.
        let again = operator.rewrap_data_keys().await.unwrap();
        assert_eq!(again.rewrapped, 0);
    }

    async fn keys_from_the_environment_rotate_by_adding_a_version_and_rewrapping(db) {
        let v1 = MasterKeyring::generate();
        let server = db.store_with_vault(Arc::new(Vault::new(v1.clone()))).await;
        let a = org(&server, "alpha").await;
        put(&server, &a, "token", "alpha-token-value").await;
        // A file-less vault cannot rotate by itself, and says what to do instead.
        let err = server.rotate_master_key().await.unwrap_err().to_string();
        assert!(err.contains("FRONTDESK_MASTER_KEY") && err.contains("keys rewrap"), "{err}");
        // The operator adds v2 and re-wraps.
        let (v1v2, _) = v1.with_new_version();
        let restarted = db.store_with_vault(Arc::new(Vault::new(v1v2.clone()))).await;
        assert_eq!(restarted.rewrap_data_keys().await.unwrap().rewrapped, 1);
        let v2_text: String = v1v2.to_text().expose_secret().lines().filter(|l| l.starts_with("v2:")).collect();
        let v2_only = db.store_with_vault(Arc::new(Vault::new(MasterKeyring::parse(&v2_text).unwrap()))).await;
        assert_eq!(read(&v2_only, &a, "token").await.unwrap().as_deref(), Some("alpha-token-value"));
    }

    async fn secret_input_is_bounded(db) {
        let a = org(&db.store, "alpha").await;
        assert!(SecretName::parse("").is_err());
        assert!(SecretName::parse("Has Space").is_err());
        assert!(SecretName::parse(&"x".repeat(101)).is_err());
        let mut tx = db.store.begin(&a).await.unwrap();
        let big = SecretString::from("x".repeat(frontdesk_store::secrets::MAX_SECRET_BYTES + 1));
        assert!(matches!(tx.put_secret(&name("big"), &big).await, Err(StoreError::Invalid(_))));
        assert!(matches!(tx.put_secret(&name("empty"), &SecretString::from(String::new())).await, Err(StoreError::Invalid(_))));
    }
}
