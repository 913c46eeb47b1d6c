//! Contacts, conversations, messages, statuses and the work queues, on both backends.

use frontdesk_domain::{Actor, Bsuid, ChannelId, E164, UserId};
use frontdesk_store::{
    CustomerIdentity, FinishedSend, Inbound, InboundRecord, MessageStatus, NewChannel, NewOutbound,
    OutboxAction, Provider, StatusRecord, Store, StoreError, TenantCtx, both_backends,
};
use secrecy::SecretString;
use time::OffsetDateTime;

async fn org_with_channel(store: &Store, slug: &str) -> (TenantCtx, ChannelId) {
    let ctx = store
        .create_organisation(&format!("Clinic {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1;
    let mut tx = store.begin(&ctx).await.unwrap();
    let (view, _) = tx
        .create_channel(NewChannel {
            name: "Reception".into(),
            provider: Provider::Cloud,
            phone_number_id: "106540352242922".into(),
            waba_id: "102290129340398".into(),
            display_number: "+1 555-078-3881".into(),
            api_base_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            simulated: false,
            access_token: SecretString::from("EAAG-token-0001".to_owned()),
            app_secret: Some(SecretString::from("app-secret".to_owned())),
            verify_token: None,
            throughput_mps: 80,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (ctx, view.id)
}

fn phone(p: &str) -> CustomerIdentity {
    CustomerIdentity {
        phone: Some(E164::parse(p).unwrap()),
        name: Some("Asha".into()),
        ..Default::default()
    }
}

fn bsuid(b: &str) -> CustomerIdentity {
    CustomerIdentity {
        bsuid: Some(Bsuid::parse(b).unwrap()),
        username: Some("asha.k".into()),
        ..Default::default()
    }
}

fn text(id: &str, at: OffsetDateTime) -> InboundRecord {
    InboundRecord {
        provider_message_id: id.into(),
        kind: "text".into(),
        content: serde_json::json!({ "type": "text", "text": { "body": "hello" } }).to_string(),
        preview: "hello".into(),
        reply_to: None,
        provider_at: at,
        media: None,
    }
}

fn status(id: &str, s: &str, at: OffsetDateTime) -> StatusRecord {
    StatusRecord {
        provider_message_id: id.into(),
        status: s.into(),
        provider_at: at,
        error_code: (s == "failed").then_some(131026),
        error_title: (s == "failed").then(|| "Message undeliverable".into()),
        pricing_category: (s == "sent").then(|| "service".into()),
        pricing_model: None,
        billable: None,
    }
}

fn send_text(channel: ChannelId, contact: frontdesk_domain::ContactId) -> NewOutbound {
    NewOutbound {
        channel,
        contact,
        kind: "text".into(),
        content: serde_json::json!({ "type": "text", "body": "hi", "preview_url": false })
            .to_string(),
        preview: "hi".into(),
        reply_to: None,
        needs_window: true,
        author: None,
    }
}

fn now() -> OffsetDateTime {
    frontdesk_store::now_micros()
}

both_backends! {
    async fn an_inbound_message_is_stored_once_and_opens_the_window(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let t = now() - time::Duration::minutes(5);
        let mut tx = db.store.begin(&a).await.unwrap();
        let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
        let first = tx.record_inbound(ch, c, &text("wamid.1", t)).await.unwrap();
        let Inbound::New { conversation, .. } = first else { panic!("{first:?}") };
        assert_eq!(tx.record_inbound(ch, c, &text("wamid.1", t)).await.unwrap(), Inbound::Duplicate);
        assert_eq!(tx.upsert_contact(&phone("+919876543210")).await.unwrap(), c, "one contact per number");
        let conv = tx.find_conversation(ch, c).await.unwrap().unwrap();
        assert_eq!((conv.id, conv.unread, conv.last_inbound_at), (conversation, 1, Some(t)));
        assert_eq!(tx.conversation_messages(conversation, 10).await.unwrap().len(), 1);
        tx.commit().await.unwrap();
        // Another tenant sees none of it.
        let (b, _) = org_with_channel(&db.store, "beta").await;
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert!(matches!(tx.contact(c).await, Err(StoreError::NotFound)));
    }

    async fn a_payload_linking_user_id_and_number_merges_the_two_contacts(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let t = now() - time::Duration::minutes(5);
        let mut tx = db.store.begin(&a).await.unwrap();
        let by_phone = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
        tx.record_inbound(ch, by_phone, &text("wamid.p", t)).await.unwrap();
        let by_id = tx.upsert_contact(&bsuid("US.13491208655302741918")).await.unwrap();
        tx.record_inbound(ch, by_id, &text("wamid.b", t + time::Duration::minutes(1))).await.unwrap();
        assert_ne!(by_phone, by_id);
        let mut both = phone("+919876543210");
        both.bsuid = Some(Bsuid::parse("US.13491208655302741918").unwrap());
        let merged = tx.upsert_contact(&both).await.unwrap();
        assert_eq!(merged, by_phone, "the older contact keeps its id");
        let c = tx.contact(merged).await.unwrap();
        assert_eq!((c.phone.as_deref(), c.bsuid.as_deref(), c.username.as_deref()), (Some("+919876543210"), Some("US.13491208655302741918"), Some("asha.k")));
        assert!(matches!(tx.contact(by_id).await, Err(StoreError::NotFound)));
        let conv = tx.find_conversation(ch, merged).await.unwrap().unwrap();
        assert_eq!(tx.conversation_messages(conv.id, 10).await.unwrap().len(), 2, "both histories in one conversation");
        assert_eq!(conv.unread, 2);
        // From now on either id finds the same contact.
        assert_eq!(tx.upsert_contact(&bsuid("US.13491208655302741918")).await.unwrap(), merged);
        tx.commit().await.unwrap();
    }

    async fn statuses_in_any_order_never_move_a_message_backwards(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let t = now() - time::Duration::minutes(5);
        let mut tx = db.store.begin(&a).await.unwrap();
        let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
        tx.record_inbound(ch, c, &text("wamid.in", t)).await.unwrap();
        let m = tx.queue_message(&send_text(ch, c), now()).await.unwrap();
        assert_eq!(m.status, MessageStatus::Queued);
        // Statuses can arrive before the send's answer is recorded: they wait.
        assert_eq!(tx.apply_status(ch, &status("wamid.out", "delivered", t)).await.unwrap(), None);
        let outbox_job = frontdesk_domain::OutboxId::new();
        assert_eq!(tx.finish_send(outbox_job, m.id, "wamid.out").await.unwrap(), Some(MessageStatus::Delivered));
        assert_eq!(tx.apply_status(ch, &status("wamid.out", "read", t)).await.unwrap(), Some(MessageStatus::Read));
        assert_eq!(tx.apply_status(ch, &status("wamid.out", "delivered", t)).await.unwrap(), Some(MessageStatus::Read));
        assert_eq!(tx.apply_status(ch, &status("wamid.out", "sent", t)).await.unwrap(), Some(MessageStatus::Read), "read never becomes sent");
        assert_eq!(tx.apply_status(ch, &status("wamid.out", "failed", t)).await.unwrap(), Some(MessageStatus::Read));
        let m = tx.message(m.id).await.unwrap();
        assert_eq!((m.status, m.pricing_category.as_deref()), (MessageStatus::Read, Some("service")));

        // A failure after "sent" wins over it, with the provider's code and title.
        let m2 = tx.queue_message(&send_text(ch, c), now()).await.unwrap();
        tx.finish_send(frontdesk_domain::OutboxId::new(), m2.id, "wamid.out2").await.unwrap();
        tx.apply_status(ch, &status("wamid.out2", "failed", t)).await.unwrap();
        tx.apply_status(ch, &status("wamid.out2", "sent", t)).await.unwrap();
        let m2 = tx.message(m2.id).await.unwrap();
        assert_eq!((m2.status, m2.error_code, m2.error_title.as_deref()), (MessageStatus::Failed, Some(131026), Some("Message undeliverable")));
        tx.commit().await.unwrap();
    }

    async fn a_status_arriving_while_its_send_is_recorded_is_not_lost_whichever_commits_first(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        for (wamid, record_first) in [("wamid.race1", true), ("wamid.race2", false)] {
            let mut tx = db.store.begin(&a).await.unwrap();
            let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
            tx.record_inbound(ch, c, &text(&format!("{wamid}.in"), now())).await.unwrap();
            let m = tx.queue_message(&send_text(ch, c), now()).await.unwrap();
            tx.commit().await.unwrap();
            // The send's record and the status webhook overlap: each is written while the
            // other is uncommitted, so on PostgreSQL neither sees the other's rows.
            let mut record = db.store.begin(&a).await.unwrap();
            assert_eq!(record.finish_send(frontdesk_domain::OutboxId::new(), m.id, wamid).await.unwrap(), Some(MessageStatus::Accepted));
            if db.store.backend() == frontdesk_store::Backend::Sqlite {
                // SQLite's writers take turns (a second one waits for the record's commit)
                // and each sees what the one before committed.
                record.commit().await.unwrap();
                let mut webhook = db.store.begin_background(&a).await.unwrap();
                assert_eq!(webhook.apply_status(ch, &status(wamid, "delivered", now())).await.unwrap(), Some(MessageStatus::Delivered));
                webhook.commit().await.unwrap();
            } else {
                let mut webhook = db.store.begin_background(&a).await.unwrap();
                assert_eq!(webhook.apply_status(ch, &status(wamid, "delivered", now())).await.unwrap(), None, "the status does not see the uncommitted record");
                if record_first {
                    record.commit().await.unwrap();
                    webhook.commit().await.unwrap();
                } else {
                    webhook.commit().await.unwrap();
                    record.commit().await.unwrap();
                }
            }
            let mut tx = db.store.begin_read(&a).await.unwrap();
            assert_eq!(tx.message(m.id).await.unwrap().status, MessageStatus::Delivered, "{wamid}: the status was applied after both commits");
            tx.commit().await.unwrap();
        }
    }

    async fn sends_recorded_together_commit_per_organisation_and_a_bad_one_fails_only_its_own(db) {
        let (a, ch_a) = org_with_channel(&db.store, "alpha").await;
        let (b, ch_b) = org_with_channel(&db.store, "beta").await;
        let mut queued = Vec::new();
        for (ctx, ch) in [(&a, ch_a), (&b, ch_b), (&a, ch_a)] {
            let mut tx = db.store.begin(ctx).await.unwrap();
            let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
            tx.record_inbound(ch, c, &text(&format!("wamid.in{}", queued.len()), now())).await.unwrap();
            queued.push(tx.queue_message(&send_text(ch, c), now()).await.unwrap());
            tx.commit().await.unwrap();
        }
        let jobs = db.store.claim_outbox(now(), time::Duration::seconds(60), 10).await.unwrap();
        assert_eq!(jobs.len(), 3);
        let send = |i: usize, wamid: &str| {
            let job = jobs.iter().find(|j| j.target == queued[i].id.as_uuid()).unwrap();
            FinishedSend { ctx: job.ctx.clone(), job: job.id, message: queued[i].id, provider_message_id: wamid.into() }
        };
        // Beta's batch names a message beta does not have (alpha's): beta's whole
        // transaction fails, alpha's sends are recorded.
        let mut bad = send(1, "wamid.b1");
        bad.message = queued[0].id;
        let batch = vec![send(0, "wamid.a0"), bad, send(2, "wamid.a2")];
        let (err, failed) = db.store.finish_sends(&batch).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert_eq!(failed, vec![1]);
        let mut tx = db.store.begin_read(&a).await.unwrap();
        for (i, wamid) in [(0, "wamid.a0"), (2, "wamid.a2")] {
            let m = tx.message(queued[i].id).await.unwrap();
            assert_eq!((m.status, m.provider_message_id.as_deref(), m.attempts), (MessageStatus::Accepted, Some(wamid), 1));
        }
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert_eq!(tx.message(queued[1].id).await.unwrap().status, MessageStatus::Queued, "beta's send is not recorded");
        tx.commit().await.unwrap();
        assert_eq!(db.store.outbox_len().await.unwrap(), 1, "only beta's row is left");
        // Recorded again on its own, it goes through.
        db.store.finish_sends(&[send(1, "wamid.b1")]).await.unwrap();
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert_eq!(tx.message(queued[1].id).await.unwrap().status, MessageStatus::Accepted);
        tx.commit().await.unwrap();
        assert_eq!(db.store.outbox_len().await.unwrap(), 0);
    }

    async fn free_form_messages_need_the_window_and_templates_do_not(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
        // Never wrote: no window.
        assert!(matches!(tx.queue_message(&send_text(ch, c), now()).await, Err(StoreError::Conflict("outside_service_window"))));
        let mut template = send_text(ch, c);
        template.needs_window = false;
        template.kind = "template".into();
        tx.queue_message(&template, now()).await.unwrap();
        // Wrote 25 hours ago: closed; 23 hours ago: open.
        tx.record_inbound(ch, c, &text("wamid.old", now() - time::Duration::hours(25))).await.unwrap();
        assert!(matches!(tx.queue_message(&send_text(ch, c), now()).await, Err(StoreError::Conflict("outside_service_window"))));
        tx.record_inbound(ch, c, &text("wamid.new", now() - time::Duration::hours(23))).await.unwrap();
        tx.queue_message(&send_text(ch, c), now()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store.outbox_len().await.unwrap(), 2, "the refused sends queued nothing");
    }

    async fn an_outbox_claim_holds_its_row_until_the_lease_ends(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let c = tx.upsert_contact(&phone("+919876543210")).await.unwrap();
        tx.record_inbound(ch, c, &text("wamid.in", now())).await.unwrap();
        let m = tx.queue_message(&send_text(ch, c), now()).await.unwrap();
        tx.commit().await.unwrap();
        let lease = time::Duration::seconds(60);
        let jobs = db.store.claim_outbox(now(), lease, 10).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].action, jobs[0].target, jobs[0].attempts, jobs[0].ctx.org_id()), (OutboxAction::Send, m.id.as_uuid(), 1, a.org_id()));
        assert!(db.store.claim_outbox(now(), lease, 10).await.unwrap().is_empty(), "held by its lease");
        // A dispatcher that died: after the lease, the row is claimed again, as attempt 2.
        let later = db.store.claim_outbox(now() + time::Duration::seconds(61), lease, 10).await.unwrap();
        assert_eq!(later[0].attempts, 2);
        // Given back for lack of a slot: the attempt is not spent.
        db.store.release_outbox(&later[0], now()).await.unwrap();
        assert_eq!(db.store.claim_outbox(now() + time::Duration::seconds(1), lease, 10).await.unwrap()[0].attempts, 2);
        // A permanent failure fails the message with the reason and empties the outbox.
        let job = &later[0];
        let mut tx = db.store.begin(&job.ctx).await.unwrap();
        tx.fail_job(job, Some(131026), "Message undeliverable").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store.outbox_len().await.unwrap(), 0);
        let mut tx = db.store.begin_read(&a).await.unwrap();
        let m = tx.message(m.id).await.unwrap();
        assert_eq!((m.status, m.error_code), (MessageStatus::Failed, Some(131026)));
    }

    async fn webhook_rows_are_queued_claimed_and_requeued_after_failure(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let stored = db.store.store_webhooks(&[(&a, ch, b"{\"object\":\"x\"}"), (&a, ch, b"{\"object\":\"y\"}")]).await.unwrap();
        assert_eq!(stored.len(), 2);
        let claimed = db.store.claim_inbox(now(), time::Duration::seconds(60), 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].1.len(), 2);
        assert!(db.store.claim_inbox(now(), time::Duration::seconds(60), 10).await.unwrap().is_empty());
        let mut tx = db.store.begin(&claimed[0].0).await.unwrap();
        let items = tx.pending_inbox_items(&claimed[0].1).await.unwrap();
        tx.finish_inbox(items[0].id, Some("cannot parse")).await.unwrap();
        tx.finish_inbox(items[1].id, None).await.unwrap();
        tx.commit().await.unwrap();
        assert!(db.store.claim_inbox(now() + time::Duration::minutes(5), time::Duration::seconds(60), 10).await.unwrap().is_empty(), "finished rows leave the queue");
        let mut tx = db.store.begin(&a).await.unwrap();
        assert_eq!(tx.retry_failed_inbox().await.unwrap(), 1);
        tx.commit().await.unwrap();
        let again = db.store.claim_inbox(now(), time::Duration::seconds(60), 10).await.unwrap();
        assert_eq!(again[0].1, vec![items[0].id], "the failed row is queued again");
    }
}
