//! Channels and the webhook inbox, on both backends.

use frontdesk_domain::{Actor, UserId};
use frontdesk_store::{
    ChannelUpdate, InboxStatus, NewChannel, Provider, Store, StoreError, Stored, TenantCtx,
    both_backends,
};
use secrecy::{ExposeSecret, SecretString};

async fn org(store: &Store, slug: &str) -> TenantCtx {
    store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1
}

fn new_channel(tag: &str) -> NewChannel {
    NewChannel {
        name: format!("Reception {tag}"),
        provider: Provider::Cloud,
        phone_number_id: format!("1065403522{tag}"),
        waba_id: "102290129340398".into(),
        display_number: "+15550783881".into(),
        api_base_url: "https://graph.facebook.com/".into(),
        api_version: "v23.0".into(),
        simulated: false,
        access_token: SecretString::from(format!("EAAG-{tag}-access-token-canary-0001")),
        app_secret: Some(SecretString::from(format!("{tag}-app-secret-canary"))),
        verify_token: Some(SecretString::from(format!("{tag}-verify-canary"))),
        throughput_mps: 80,
    }
}

both_backends! {
    async fn channel_secrets_are_sealed_and_only_their_state_is_shown(db) {
        let a = org(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let (view, key) = tx.create_channel(new_channel("a")).await.unwrap();
        tx.commit().await.unwrap();
        assert!(key.expose_secret().starts_with("fdw_"));
        assert_eq!(view.api_base_url, "https://graph.facebook.com", "trailing slash trimmed");
        assert_eq!((view.access_token.configured, view.access_token.last4.as_deref()), (true, Some("0001")));
        assert!(view.app_secret.configured && view.app_secret.last4.is_none());
        let shown = serde_json::to_string(&db.store.list_channels(&a).await.unwrap()).unwrap();
        assert!(!shown.contains("canary"), "{shown}");

        let mut tx = db.store.begin_read(&a).await.unwrap();
        let creds = tx.channel_credentials(view.id).await.unwrap();
        assert_eq!(creds.access_token.expose_secret(), "EAAG-a-access-token-canary-0001");
        assert_eq!(creds.app_secret.as_ref().unwrap().expose_secret(), "a-app-secret-canary");
        assert_eq!(tx.channel_webhook_key(view.id).await.unwrap().expose_secret(), key.expose_secret());
        assert!(!format!("{creds:?}").contains("canary"));
        tx.commit().await.unwrap();

        // Replacing one secret leaves the others; the audit says which, not what.
        let mut tx = db.store.begin(&a).await.unwrap();
        let v = tx.update_channel(view.id, ChannelUpdate { access_token: Some(SecretString::from("EAAG-rotated-token-value-9999".to_owned())), throughput_mps: Some(20), ..Default::default() }).await.unwrap();
        assert_eq!((v.access_token.last4.as_deref(), v.throughput_mps), (Some("9999"), 20));
        let creds = tx.channel_credentials(view.id).await.unwrap();
        assert_eq!(creds.app_secret.unwrap().expose_secret(), "a-app-secret-canary");
        tx.commit().await.unwrap();
        let page = db.store.audit_events(&a, &frontdesk_store::AuditQuery { action: Some("channel.updated".into()), limit: 5, ..Default::default() }).await.unwrap();
        assert_eq!(page.events[0].data["secrets_replaced"], serde_json::json!(["access_token"]));
        assert!(!serde_json::to_string(&page).unwrap().contains("rotated-token"));

        // Invalid settings are refused; the same number twice is a conflict.
        let mut tx = db.store.begin(&a).await.unwrap();
        let mut bad = new_channel("b");
        bad.app_secret = None;
        assert!(matches!(tx.create_channel(bad).await, Err(StoreError::Invalid(_))), "Cloud API needs an app secret");
        let mut bad = new_channel("b");
        bad.api_base_url = "ftp://x".into();
        assert!(matches!(tx.create_channel(bad).await, Err(StoreError::Invalid(_))));
        drop(tx);
        let mut tx = db.store.begin(&a).await.unwrap();
        assert!(matches!(tx.create_channel(new_channel("a")).await, Err(StoreError::Conflict("channel_exists"))));
    }

    async fn a_webhook_key_names_exactly_its_channel_and_tenant(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let (ca, ka) = tx.create_channel(new_channel("a")).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(&b).await.unwrap();
        let (cb, kb) = tx.create_channel(new_channel("a")).await.unwrap(); // same number id, other tenant
        tx.commit().await.unwrap();
        let ta = db.store.webhook_target(ka.expose_secret()).await.unwrap().unwrap();
        assert_eq!((ta.ctx.org_id(), ta.channel), (a.org_id(), ca.id));
        assert_eq!(ta.app_secret.unwrap().expose_secret(), "a-app-secret-canary");
        let tb = db.store.webhook_target(kb.expose_secret()).await.unwrap().unwrap();
        assert_eq!((tb.ctx.org_id(), tb.channel), (b.org_id(), cb.id));
        for bad in ["", "fdw_unknown", "fdk_not-a-webhook-key", &"x".repeat(500)] {
            assert!(db.store.webhook_target(bad).await.unwrap().is_none(), "{bad}");
        }
    }

    async fn webhook_bodies_are_stored_once_and_processed_or_failed(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let (ca, _) = tx.create_channel(new_channel("a")).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(&b).await.unwrap();
        let (cb, _) = tx.create_channel(new_channel("b")).await.unwrap();
        tx.commit().await.unwrap();
        // One group commit across two tenants, with a provider retry inside it.
        let stored = db.store.store_webhooks(&[
            (&a, ca.id, b"{\"n\":1}".as_slice()),
            (&b, cb.id, b"{\"n\":1}".as_slice()),
            (&a, ca.id, b"{\"n\":2}".as_slice()),
            (&a, ca.id, b"{\"n\":1}".as_slice()),
        ]).await.unwrap();
        assert!(matches!(stored[0], Stored::New(_)) && matches!(stored[1], Stored::New(_)) && matches!(stored[2], Stored::New(_)));
        assert_eq!(stored[3], Stored::Duplicate);
        assert_eq!(db.store.store_webhooks(&[(&a, ca.id, b"{\"n\":2}".as_slice())]).await.unwrap(), vec![Stored::Duplicate]);

        let pending = db.store.pending_inbox(&a, 100).await.unwrap();
        assert_eq!(pending.iter().map(|p| p.body.as_slice()).collect::<Vec<_>>(), vec![b"{\"n\":1}".as_slice(), b"{\"n\":2}".as_slice()]);
        assert_eq!(db.store.pending_inbox(&b, 100).await.unwrap().len(), 1, "each tenant sees its own");

        let mut tx = db.store.begin(&a).await.unwrap();
        tx.finish_inbox(pending[0].id, None).await.unwrap();
        tx.finish_inbox(pending[1].id, Some("not a WhatsApp webhook")).await.unwrap();
        tx.commit().await.unwrap();
        assert!(db.store.pending_inbox(&a, 100).await.unwrap().is_empty());
        let failed = db.store.inbox_where(&a, Some(InboxStatus::Failed), 10).await.unwrap();
        assert_eq!((failed.len(), failed[0].error.as_deref(), failed[0].attempts), (1, Some("not a WhatsApp webhook"), 1));
        assert_eq!(db.store.inbox_where(&a, None, 10).await.unwrap().len(), 2);
        let counts = db.store.inbox_counts(&a).await.unwrap();
        assert_eq!((counts.pending, counts.processed, counts.failed, counts.total()), (0, 1, 1, 2));
        assert_eq!(db.store.inbox_counts(&b).await.unwrap(), frontdesk_store::InboxCounts { pending: 1, processed: 0, failed: 0 }, "each tenant counts its own");
        // After an upgrade, failed rows go back in the queue, audited.
        let mut tx = db.store.begin(&a).await.unwrap();
        assert_eq!(tx.retry_failed_inbox().await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert_eq!(db.store.pending_inbox(&a, 100).await.unwrap().len(), 1);

        // Deleting the channel takes its inbox with it.
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.delete_channel(ca.id).await.unwrap();
        assert!(matches!(tx.delete_channel(ca.id).await, Err(StoreError::NotFound)));
        tx.commit().await.unwrap();
        assert!(db.store.inbox_where(&a, None, 10).await.unwrap().is_empty());
    }
}

both_backends! {
    async fn a_large_group_commit_reports_each_body_new_or_duplicate_in_order(db) {
        let a = org(&db.store, "alpha").await;
        let b = org(&db.store, "beta").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let (ca, _) = tx.create_channel(new_channel("a")).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(&b).await.unwrap();
        let (cb, _) = tx.create_channel(new_channel("b")).await.unwrap();
        tx.commit().await.unwrap();
        db.store.store_webhooks(&[(&a, ca.id, b"{\"n\":5}".as_slice())]).await.unwrap();
        // 40 bodies for org A (several multi-row chunks and a remainder), then 20 for org B;
        // inside them: a body stored before (index 5, and 7 repeats it), and bodies repeated
        // within one chunk.
        let bodies: Vec<Vec<u8>> = (0..60).map(|i| {
            let n = match i { 7 => 5, 9 => 8, 41 => 40, other => other };
            format!("{{\"n\":{n}}}").into_bytes()
        }).collect();
        let items: Vec<_> = bodies.iter().enumerate().map(|(i, body)| {
            if i < 40 { (&a, ca.id, body.as_slice()) } else { (&b, cb.id, body.as_slice()) }
        }).collect();
        let stored = db.store.store_webhooks(&items).await.unwrap();
        let duplicates: Vec<usize> = stored.iter().enumerate().filter(|(_, s)| **s == Stored::Duplicate).map(|(i, _)| i).collect();
        assert_eq!(duplicates, vec![5, 7, 9, 41]);
        let ids: std::collections::HashSet<_> = stored.iter().filter_map(|s| match s { Stored::New(id) => Some(*id), Stored::Duplicate => None }).collect();
        assert_eq!(ids.len(), 56, "distinct ids for new rows");
        assert_eq!(db.store.inbox_counts(&a).await.unwrap().pending, 38);
        assert_eq!(db.store.inbox_counts(&b).await.unwrap().pending, 19);
        let a_rows = db.store.pending_inbox(&a, 1000).await.unwrap();
        assert!(a_rows.iter().all(|r| r.channel == ca.id));
        let b_rows = db.store.pending_inbox(&b, 1000).await.unwrap();
        assert!(b_rows.iter().all(|r| r.channel == cb.id));
        assert!(b_rows.iter().any(|r| r.body == b"{\"n\":40}"), "org B's first body stored in org B");
    }
}
