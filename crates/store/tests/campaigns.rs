//! Campaigns on both backends: review, launch, the audience snapshot with its exclusions,
//! the worker's steps into the outbox (throughput, the tier's daily limit, pause, resume,
//! cancel), a crash in the middle of a step, schedules, and the figures read back from
//! the messages' statuses and replies.

use frontdesk_domain::audience::{ConsentSource, ConsentState, FieldKind, Rule};
use frontdesk_domain::campaign::{CampaignAction, CampaignStatus, Mapping};
use frontdesk_domain::template::TemplateSpec;
use frontdesk_domain::{Actor, CampaignId, ChannelId, ContactId, UserId};
use frontdesk_store::audience::ContactInput;
use frontdesk_store::campaigns::{Audience, NewCampaign};
use frontdesk_store::imports::ImportMapping;
use frontdesk_store::segments::ConsentRequirement;
use frontdesk_store::{
    AuditQuery, InboundRecord, NewChannel, Provider, StatusRecord, Store, StoreError,
    TemplateStatus, TenantCtx, both_backends,
};
use secrecy::SecretString;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const WABA: &str = "102290129340398";

async fn org_with_channel(store: &Store, slug: &str) -> (TenantCtx, ChannelId) {
    let ctx = store
        .create_organisation(&format!("Shop {slug}"), slug, Actor::User(UserId::new()))
        .await
        .unwrap()
        .1;
    let mut tx = store.begin(&ctx).await.unwrap();
    let (view, _) = tx
        .create_channel(NewChannel {
            name: "Shop".into(),
            provider: Provider::Cloud,
            phone_number_id: "106540352242922".into(),
            waba_id: WABA.into(),
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
    // The offer, approved in two languages.
    for lang in ["en_US", "pt_BR"] {
        let spec = TemplateSpec::parse(
            &serde_json::from_value(json!({
                "name": "spring_offer", "language": lang, "category": "MARKETING",
                "body": { "text": "Hello {{1}}, our {{2}} shop has a spring offer.", "examples": ["Ana", "Pune"] },
                "buttons": [{ "type": "url", "text": "See it", "url": "https://shop.example/spring", "track": true }]
            }))
            .unwrap(),
        )
        .unwrap();
        tx.create_template(view.id, &spec).await.unwrap();
        tx.set_template_status(&TemplateStatus {
            waba_id: WABA,
            name: "spring_offer",
            language: lang,
            provider_template_id: Some("9001"),
            status: "APPROVED",
            reason: None,
            category: None,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    (ctx, view.id)
}

/// `n` tagged contacts (`+1415555xxxx`, named `Person i`, city `Pune`), and the segment
/// of that tag. Returns the segment and the contacts.
async fn audience(
    store: &Store,
    ctx: &TenantCtx,
    n: usize,
) -> (frontdesk_domain::SegmentId, Vec<ContactId>) {
    let mut tx = store.begin(ctx).await.unwrap();
    let tag = tx.create_tag("vip").await.unwrap();
    tx.create_field("city", "City", FieldKind::Text, &[])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let c = tx
            .create_contact(&ContactInput {
                name: Some(format!("Person {i}")),
                phone: Some(format!("+1415555{i:04}")),
                fields: [("city".to_string(), json!("Pune"))].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        tx.set_contact_tag(c.id, tag.id, true).await.unwrap();
        ids.push(c.id);
    }
    let seg = tx
        .save_segment(None, "VIPs", &Rule::HasTag(tag.id))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (seg.id, ids)
}

fn mapping() -> Mapping {
    serde_json::from_value(json!({ "body": [
        { "source": "first_name", "fallback": "there" },
        { "source": "field:city" }
    ] }))
    .unwrap()
}

async fn create(
    store: &Store,
    ctx: &TenantCtx,
    ch: ChannelId,
    seg: frontdesk_domain::SegmentId,
) -> CampaignId {
    let mut tx = store.begin(ctx).await.unwrap();
    let c = tx
        .create_campaign(&NewCampaign {
            name: "Spring".into(),
            channel: ch,
            audience: Audience::Segment(seg),
            template_name: "spring_offer".into(),
            template_language: "en_US".into(),
            mapping: mapping(),
            consent: ConsentRequirement::NotOptedOut,
            planned_at: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.id
}

/// Imports every chunk of an import (as `Worker::process_imports` does).
async fn run_import(store: &Store, ctx: &TenantCtx, id: frontdesk_domain::ImportId) {
    loop {
        let mut tx = store.begin(ctx).await.unwrap();
        let more = tx.import_next_chunk(id).await.unwrap();
        tx.commit().await.unwrap();
        if !more {
            return;
        }
    }
}

/// The previews of the messages a contact got on the number.
async fn previews(store: &Store, ctx: &TenantCtx, ch: ChannelId, c: ContactId) -> Vec<String> {
    let mut tx = store.begin_read(ctx).await.unwrap();
    let conv = tx.find_conversation(ch, c).await.unwrap().unwrap();
    let ms = tx.conversation_messages(conv.id, 10).await.unwrap();
    tx.commit().await.unwrap();
    ms.into_iter()
        .filter(|m| m.direction == "out")
        .map(|m| m.preview)
        .collect()
}

/// Runs the worker's steps that are due at `now` (as `Worker::process_campaigns` does).
async fn steps(store: &Store, now: OffsetDateTime) -> usize {
    let mut queued = 0;
    for _ in 0..100 {
        let claimed = store
            .claim_campaigns(now, Duration::seconds(60), 10)
            .await
            .unwrap();
        if claimed.is_empty() {
            return queued;
        }
        for (ctx, id) in claimed {
            let mut tx = store.begin_background(&ctx).await.unwrap();
            queued += tx.campaign_step(id, now).await.unwrap().queued;
            tx.commit().await.unwrap();
        }
    }
    panic!("steps never ran out");
}

async fn figures(
    store: &Store,
    ctx: &TenantCtx,
    id: CampaignId,
) -> frontdesk_store::campaigns::CampaignFigures {
    let mut tx = store.begin_read(ctx).await.unwrap();
    let f = tx.campaign_figures(id).await.unwrap();
    tx.commit().await.unwrap();
    f
}

async fn status(store: &Store, ctx: &TenantCtx, id: CampaignId) -> CampaignStatus {
    let mut tx = store.begin_read(ctx).await.unwrap();
    let c = tx.campaign(id).await.unwrap();
    tx.commit().await.unwrap();
    c.status
}

async fn change(
    store: &Store,
    ctx: &TenantCtx,
    id: CampaignId,
    a: CampaignAction,
    now: OffsetDateTime,
) -> Result<CampaignStatus, StoreError> {
    let mut tx = store.begin(ctx).await.unwrap();
    let c = tx.change_campaign(id, a, now).await?;
    tx.commit().await.unwrap();
    Ok(c.status)
}

async fn launch(
    store: &Store,
    ctx: &TenantCtx,
    id: CampaignId,
    at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> CampaignStatus {
    let mut tx = store.begin(ctx).await.unwrap();
    let c = tx.launch_campaign(id, at, now).await.unwrap();
    tx.commit().await.unwrap();
    c.status
}

async fn set_channel(
    store: &Store,
    ctx: &TenantCtx,
    ch: ChannelId,
    limit: Option<&str>,
    mps: Option<i32>,
) {
    let mut tx = store.begin(ctx).await.unwrap();
    tx.set_channel_health(ch, None, limit, mps).await.unwrap();
    tx.commit().await.unwrap();
}

/// An agent's template to a contact (outside any campaign).
async fn send_template_to(store: &Store, ctx: &TenantCtx, ch: ChannelId, contact: ContactId) {
    let mut tx = store.begin(ctx).await.unwrap();
    tx.queue_message(
        &frontdesk_store::NewOutbound {
            channel: ch,
            contact,
            kind: "template".into(),
            content: json!({ "type": "template", "name": "spring_offer", "language": "en_US", "components": [] }).to_string(),
            preview: "Spring offer".into(),
            reply_to: None,
            needs_window: false,
            author: None,
        },
        frontdesk_store::now_micros(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// How many messages each contact was sent.
async fn sends_per_contact(
    store: &Store,
    ctx: &TenantCtx,
    id: CampaignId,
) -> Vec<(ContactId, String, Option<String>)> {
    let mut tx = store.begin_read(ctx).await.unwrap();
    let page = tx.campaign_recipients(id, None, None, 1000).await.unwrap();
    tx.commit().await.unwrap();
    page.items
        .into_iter()
        .map(|r| (r.contact_id, r.state, r.reason))
        .collect()
}

/// A campaign to a CSV file's contacts (`legacy`: the file kept as an import uploaded
/// before rows had their own table kept it).
async fn csv_audience(db: &frontdesk_store::testing::TestDb, legacy: bool) {
    let store = &db.store;
    let (a, ch) = org_with_channel(store, "alpha").await;
    // Someone who is not in the file, and someone in it who opted out before.
    let mut tx = store.begin(&a).await.unwrap();
    let outsider = tx
        .create_contact(&ContactInput {
            name: Some("Outsider".into()),
            phone: Some("+14155550199".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let stop = tx
        .create_contact(&ContactInput {
            name: Some("Stop Person".into()),
            phone: Some("+14155550102".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    tx.record_consent(
        stop,
        ConsentState::OptOut,
        ConsentSource::Agent,
        "STOP by phone",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let csv = "Name,Phone,City\nAsha Rao,+1 415 555 0100,Pune\nRavi Iyer,+14155550101,Delhi\nBad Number,12345,Goa\nAsha Again,+14155550100,Agra\nStop Person,+14155550102,Goa\n";
    let columns = ImportMapping {
        columns: [
            ("Name".to_string(), "name".to_string()),
            ("Phone".to_string(), "phone".to_string()),
        ]
        .into(),
        consent_evidence: None,
    };
    let mut tx = store.begin(&a).await.unwrap();
    let file = tx
        .import_campaign_audience("spring.csv", csv, Some(&columns))
        .await
        .unwrap();
    assert_eq!(file.status, "queued");
    if legacy {
        // As an import uploaded before rows had their own table left it: the file in
        // `contact_imports.csv`, no rows.
        tx.commit().await.unwrap();
        db.raw_execute(&[
            format!("UPDATE contact_imports SET csv = '{csv}' WHERE filename = 'spring.csv'"),
            "DELETE FROM contact_import_rows".into(),
        ])
        .await
        .unwrap();
        tx = store.begin(&a).await.unwrap();
    }
    let draft = |audience, mapping: serde_json::Value| NewCampaign {
        name: "From the file".into(),
        channel: ch,
        audience,
        template_name: "spring_offer".into(),
        template_language: "en_US".into(),
        mapping: serde_json::from_value(mapping).unwrap(),
        consent: ConsentRequirement::NotOptedOut,
        planned_at: None,
    };
    let by_city = json!({ "body": [{ "source": "first_name", "fallback": "there" }, { "source": "column:City" }] });
    // A column the file does not have, or a column read by a segment's campaign, is refused.
    let e = tx
        .create_campaign(&draft(
            Audience::Import(file.id),
            json!({ "body": [{ "source": "column:Town" }] }),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("Town")),
        "{e:?}"
    );
    let seg = tx
        .save_segment(None, "Everyone", &Rule::all())
        .await
        .unwrap();
    let e = tx
        .create_campaign(&draft(Audience::Segment(seg.id), by_city.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.starts_with("mapping")),
        "{e:?}"
    );
    let id = tx
        .create_campaign(&draft(Audience::Import(file.id), by_city))
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    let now = frontdesk_store::now_micros();

    // Until the worker has imported the file, it cannot be sent.
    let mut tx = store.begin(&a).await.unwrap();
    assert!(matches!(
        tx.launch_campaign(id, None, now).await,
        Err(StoreError::Conflict("audience_importing"))
    ));
    drop(tx);
    run_import(store, &a, file.id).await;

    let mut tx = store.begin_read(&a).await.unwrap();
    let r = tx.review_campaign(id, now).await.unwrap();
    tx.commit().await.unwrap();
    let f = r.file.clone().unwrap();
    assert_eq!(
        (
            f.status.as_str(),
            f.total_rows,
            f.invalid_rows,
            f.duplicate_rows
        ),
        ("done", 5, 1, 1),
        "{r:?}"
    );
    assert_eq!(
        (r.matched, r.opted_out, r.sendable),
        (3, 1, 2),
        "the file's three contacts, the opted-out one left out: {r:?}"
    );
    assert_eq!(
        r.languages[0].preview.as_deref(),
        Some("Hello Asha, our Pune shop has a spring offer.\n[See it]"),
        "{r:?}"
    );

    assert_eq!(
        launch(store, &a, id, None, now).await,
        CampaignStatus::Running
    );
    assert_eq!(steps(store, now).await, 2);
    assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);
    let rows = sends_per_contact(store, &a, id).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        !rows.iter().any(|r| r.0 == outsider || r.0 == stop),
        "{rows:?}"
    );
    let mut tx = store.begin_read(&a).await.unwrap();
    let who = frontdesk_store::CustomerIdentity {
        phone: Some(frontdesk_domain::E164::parse("+14155550101").unwrap()),
        ..Default::default()
    };
    let ravi = tx.find_contact(&who).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        previews(store, &a, ch, ravi).await,
        ["Hello Ravi, our Delhi shop has a spring offer.\n[See it]"],
        "each recipient's own row"
    );

    // Another organisation cannot use the file.
    let (b, ch_b) = org_with_channel(store, "beta").await;
    let mut tx = store.begin(&b).await.unwrap();
    let e = tx
        .create_campaign(&NewCampaign {
            channel: ch_b,
            ..draft(Audience::Import(file.id), json!({}))
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
}

both_backends! {
    async fn a_campaign_reaches_its_segment_once_never_the_opted_out_and_counts_what_happened(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        let (seg, people) = audience(store, &a, 4).await;
        let now = frontdesk_store::now_micros();
        // Person 0 reads Portuguese and opted in; person 2 opted out; person 3 has no city.
        let mut tx = store.begin(&a).await.unwrap();
        tx.update_contact(people[0], &ContactInput { language: Some("pt_BR".into()), ..Default::default() }).await.unwrap();
        tx.record_consent(people[0], ConsentState::OptIn, ConsentSource::Form, "signed up at the till").await.unwrap();
        tx.record_consent(people[2], ConsentState::OptOut, ConsentSource::Agent, "asked on the phone").await.unwrap();
        tx.update_contact(people[3], &ContactInput { fields: [("city".to_string(), serde_json::Value::Null)].into(), ..Default::default() }).await.unwrap();
        tx.commit().await.unwrap();
        let id = create(store, &a, ch, seg).await;

        let mut tx = store.begin_read(&a).await.unwrap();
        let r = tx.review_campaign(id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((r.matched, r.opted_out, r.missing_value, r.sendable), (4, 1, 1, 2), "{r:?}");
        assert_eq!(r.daily_limit, Some(250), "an unknown tier is held to the starting one");
        let langs: Vec<(&str, i64)> = r.languages.iter().map(|l| (l.language.as_str(), l.recipients)).collect();
        assert_eq!(langs, [("en_US", 1), ("pt_BR", 1)]);
        let pt = r.languages.iter().find(|l| l.language == "pt_BR").unwrap();
        assert_eq!(pt.preview.as_deref(), Some("Hello Person, our Pune shop has a spring offer.\n[See it]"), "{pt:?}");

        // A draft cannot be paused; launch runs it.
        assert!(matches!(change(store, &a, id, CampaignAction::Pause, now).await, Err(StoreError::Conflict("campaign_state"))));
        assert_eq!(launch(store, &a, id, None, now).await, CampaignStatus::Running);
        assert_eq!(steps(store, now).await, 2);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);
        assert_eq!(steps(store, now + Duration::hours(1)).await, 0, "a completed campaign sends nothing more");

        let rows = sends_per_contact(store, &a, id).await;
        let state_of = |c: ContactId| rows.iter().find(|r| r.0 == c).map(|r| (r.1.as_str(), r.2.as_deref()));
        assert_eq!(state_of(people[0]), Some(("queued", None)));
        assert_eq!(state_of(people[1]), Some(("queued", None)));
        assert_eq!(state_of(people[2]), None, "an opted-out contact is not even a recipient");
        assert!(matches!(state_of(people[3]), Some(("excluded", Some(r))) if r.starts_with("missing_value")), "{rows:?}");

        // The dispatcher takes both; one is delivered and read, the other fails; one replies.
        let jobs = store.claim_outbox(now, Duration::seconds(60), 10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let mut messages = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let mut tx = store.begin(&job.ctx).await.unwrap();
            let m = tx.message(frontdesk_domain::MessageId::from_uuid(job.target)).await.unwrap();
            let content: serde_json::Value = serde_json::from_str(&tx.outbound_row(m.id).await.unwrap().content).unwrap();
            assert_eq!(content["type"], "template");
            if i == 0 {
                tx.finish_send(job.id, m.id, "wamid.one").await.unwrap();
            } else {
                tx.fail_job(job, Some(131026), "Message undeliverable").await.unwrap();
            }
            tx.commit().await.unwrap();
            messages.push(m);
        }
        let mut tx = store.begin(&a).await.unwrap();
        for s in ["sent", "delivered", "read"] {
            tx.apply_status(ch, &StatusRecord { provider_message_id: "wamid.one".into(), status: s.into(), provider_at: now,
                error_code: None, error_title: None, pricing_category: None, pricing_model: None, billable: None }).await.unwrap();
        }
        tx.record_inbound(ch, messages[0].contact_id, &InboundRecord { provider_message_id: "wamid.reply".into(), kind: "text".into(),
            content: "{\"body\":\"Yes please\"}".into(), preview: "Yes please".into(), reply_to: None, provider_at: now, media: None }).await.unwrap();
        tx.commit().await.unwrap();

        let f = figures(store, &a, id).await;
        assert_eq!((f.recipients, f.queued, f.sent, f.delivered, f.read, f.replied, f.failed), (3, 2, 1, 1, 1, 1, 1), "{f:?}");
        assert_eq!(f.failed_by_reason[0].reason, "131026 Message undeliverable");
        let excluded: Vec<(&str, i64)> = f.excluded.iter().map(|e| (e.reason.as_str(), e.count)).collect();
        assert_eq!(excluded, [("missing_value", 1), ("opted_out", 1)]);

        let actions: Vec<String> = store.audit_events(&a, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap()
            .events.into_iter().map(|e| e.action).filter(|x| x.starts_with("campaign.")).collect();
        for want in ["campaign.created", "campaign.launched", "campaign.completed"] {
            assert!(actions.iter().any(|x| x == want), "{want} missing from {actions:?}");
        }

        // Another organisation sees none of it.
        let (b, _) = org_with_channel(store, "beta").await;
        let mut tx = store.begin_read(&b).await.unwrap();
        assert!(matches!(tx.campaign(id).await, Err(StoreError::NotFound)));
        assert!(matches!(tx.campaign_figures(id).await, Err(StoreError::NotFound)));
        assert!(tx.campaigns(None, 50).await.unwrap().items.is_empty());
        tx.commit().await.unwrap();
    }

    async fn the_tiers_daily_limit_holds_sends_until_the_24_hour_window_frees_up(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_50"), None).await;
        let (seg, _) = audience(store, &a, 60).await;
        let id = create(store, &a, ch, seg).await;
        let now = frontdesk_store::now_micros();
        let mut tx = store.begin_read(&a).await.unwrap();
        let r = tx.review_campaign(id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((r.sendable, r.daily_limit, r.over_daily_limit), (60, Some(50), 10));
        launch(store, &a, id, None, now).await;
        assert_eq!(steps(store, now).await, 50);
        // Later the same day: no room; the campaign waits for the window.
        assert_eq!(steps(store, now + Duration::hours(2)).await, 0);
        let mut tx = store.begin_read(&a).await.unwrap();
        let c = tx.campaign(id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((c.status, c.waiting.as_deref()), (CampaignStatus::Running, Some("daily_limit")));
        assert!(c.waiting_until.unwrap() > now + Duration::hours(23), "{c:?}");
        // A day later the first sends have left the window: the rest go.
        assert_eq!(steps(store, now + Duration::hours(24) + Duration::minutes(1)).await, 10);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);
    }

    async fn sends_are_paced_by_throughput_pause_stops_them_and_cancel_withdraws_the_queued(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_UNLIMITED"), Some(2)).await;
        let (seg, _) = audience(store, &a, 7).await;
        let id = create(store, &a, ch, seg).await;
        let t0 = frontdesk_store::now_micros();
        launch(store, &a, id, None, t0).await;
        // Two a second at 2 messages/s.
        assert_eq!(steps(store, t0).await, 2);
        assert_eq!(steps(store, t0).await, 0, "the next batch is due a second later");
        assert_eq!(steps(store, t0 + Duration::seconds(1)).await, 2);
        assert_eq!(change(store, &a, id, CampaignAction::Pause, t0).await.unwrap(), CampaignStatus::Paused);
        assert_eq!(steps(store, t0 + Duration::seconds(10)).await, 0, "paused: nothing is queued");
        assert_eq!(change(store, &a, id, CampaignAction::Resume, t0 + Duration::seconds(10)).await.unwrap(), CampaignStatus::Running);
        assert_eq!(steps(store, t0 + Duration::seconds(10)).await, 2);
        // A dispatcher holds one message right now; cancel withdraws the other five queued
        // ones and the one not yet queued.
        let held = store.claim_outbox(t0 + Duration::seconds(11), Duration::seconds(60), 1).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(change(store, &a, id, CampaignAction::Cancel, t0 + Duration::seconds(11)).await.unwrap(), CampaignStatus::Cancelled);
        assert_eq!(store.outbox_len().await.unwrap(), 1, "only the held row is left");
        let f = figures(store, &a, id).await;
        assert_eq!((f.queued, f.cancelled, f.pending), (1, 6, 0), "{f:?}");
        assert!(matches!(change(store, &a, id, CampaignAction::Resume, t0).await, Err(StoreError::Conflict("campaign_state"))));
        assert_eq!(steps(store, t0 + Duration::hours(1)).await, 0);
    }

    async fn a_step_that_dies_midway_sends_nobody_twice(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        let (seg, people) = audience(store, &a, 5).await;
        let id = create(store, &a, ch, seg).await;
        let now = frontdesk_store::now_micros();
        launch(store, &a, id, None, now).await;
        // Snapshot, then a step whose transaction never commits (the process died).
        let claimed = store.claim_campaigns(now, Duration::seconds(60), 10).await.unwrap();
        let mut tx = store.begin_background(&claimed[0].0).await.unwrap();
        assert_eq!(tx.campaign_step(id, now).await.unwrap().snapshotted, 5);
        tx.commit().await.unwrap();
        let claimed = store.claim_campaigns(now, Duration::seconds(60), 10).await.unwrap();
        let mut tx = store.begin_background(&claimed[0].0).await.unwrap();
        assert_eq!(tx.campaign_step(id, now).await.unwrap().queued, 5);
        drop(tx);
        assert_eq!(store.outbox_len().await.unwrap(), 0, "the rolled-back step queued nothing");
        // The lease runs out and another worker takes the campaign.
        assert_eq!(steps(store, now + Duration::seconds(61)).await, 5);
        assert_eq!(steps(store, now + Duration::seconds(200)).await, 0);
        assert_eq!(store.outbox_len().await.unwrap(), 5);
        let mut tx = store.begin_read(&a).await.unwrap();
        for p in &people {
            let conv = tx.find_conversation(ch, *p).await.unwrap().unwrap();
            assert_eq!(tx.conversation_messages(conv.id, 10).await.unwrap().len(), 1, "one message per recipient");
        }
        tx.commit().await.unwrap();
    }

    async fn a_scheduled_campaign_starts_at_its_time_and_an_opt_out_since_the_snapshot_is_honoured(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, None, Some(1)).await;
        let (seg, people) = audience(store, &a, 3).await;
        let id = create(store, &a, ch, seg).await;
        let now = frontdesk_store::now_micros();
        let mut tx = store.begin(&a).await.unwrap();
        assert!(matches!(tx.launch_campaign(id, Some(now - Duration::minutes(1)), now).await, Err(StoreError::Invalid(_))));
        drop(tx);
        assert_eq!(launch(store, &a, id, Some(now + Duration::hours(1)), now).await, CampaignStatus::Scheduled);
        assert_eq!(steps(store, now).await, 0);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Scheduled);
        let at = now + Duration::hours(1);
        // Starts: snapshot of three, one sent (1 message/s).
        assert_eq!(steps(store, at).await, 1);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Running);
        // The last one opts out after the snapshot: never sent to.
        let mut tx = store.begin(&a).await.unwrap();
        tx.record_consent(people[2], ConsentState::OptOut, ConsentSource::Agent, "STOP by phone").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(steps(store, at + Duration::seconds(1)).await, 1);
        assert_eq!(steps(store, at + Duration::seconds(2)).await, 0);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);
        let rows = sends_per_contact(store, &a, id).await;
        let last = rows.iter().find(|r| r.0 == people[2]).unwrap();
        assert_eq!((last.1.as_str(), last.2.as_deref()), ("excluded", Some("opted_out")));
        let actions: Vec<String> = store.audit_events(&a, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap()
            .events.into_iter().map(|e| e.action).collect();
        assert!(actions.iter().any(|x| x == "campaign.scheduled") && actions.iter().any(|x| x == "campaign.started"), "{actions:?}");
    }

    async fn a_csv_audience_is_exactly_the_files_contacts_with_its_rows_as_values(db) {
        csv_audience(&db, false).await;
    }

    async fn a_csv_audience_uploaded_before_rows_were_kept_apart_reads_its_file(db) {
        csv_audience(&db, true).await;
    }

    async fn a_draft_is_edited_and_audited_and_a_launched_campaign_is_not(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        let (seg, _) = audience(store, &a, 3).await;
        let id = create(store, &a, ch, seg).await;
        let now = frontdesk_store::now_micros();
        let edited = NewCampaign {
            name: "Spring, edited".into(), channel: ch, audience: Audience::Segment(seg), template_name: "spring_offer".into(),
            template_language: "pt_BR".into(),
            mapping: serde_json::from_value(json!({ "body": [{ "source": "name" }, { "source": "text", "fallback": "Goa" }] })).unwrap(),
            consent: ConsentRequirement::OptedIn, planned_at: Some(now + Duration::days(2)),
        };
        let mut tx = store.begin(&a).await.unwrap();
        let bad = NewCampaign { planned_at: Some(now - Duration::hours(1)), ..edited.clone() };
        assert!(matches!(tx.update_campaign(id, &bad).await, Err(StoreError::Invalid(m)) if m.starts_with("send_at")));
        let c = tx.update_campaign(id, &edited).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((c.name.as_str(), c.template_language.as_str(), c.consent.as_str(), c.status), ("Spring, edited", "pt_BR", "opt_in", CampaignStatus::Draft));
        assert_eq!(c.scheduled_at, Some(now + Duration::days(2)));
        assert_eq!(c.mapping, edited.mapping);
        let events = store.audit_events(&a, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap().events;
        let e = events.iter().find(|e| e.action == "campaign.updated").expect("the edit is audited");
        assert_eq!(e.data["changed"], json!(["name", "language", "mapping", "consent", "planned_at"]), "{:?}", e.data);

        // Nobody opted in now, so nobody is sendable under the edited consent rule.
        let mut tx = store.begin_read(&a).await.unwrap();
        assert_eq!(tx.review_campaign(id, now).await.unwrap().sendable, 0);
        tx.commit().await.unwrap();

        // Launched (now: the planned time is only a plan), it cannot be edited any more.
        let mut tx = store.begin(&a).await.unwrap();
        let c = tx.launch_campaign(id, None, now).await.unwrap();
        assert_eq!((c.status, c.scheduled_at), (CampaignStatus::Running, None));
        assert!(matches!(tx.update_campaign(id, &edited).await, Err(StoreError::Conflict("campaign_state"))));
        tx.commit().await.unwrap();
    }

    async fn a_location_header_template_goes_out_with_the_campaigns_place(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        let mut tx = store.begin(&a).await.unwrap();
        let spec = TemplateSpec::parse(&serde_json::from_value(json!({
            "name": "find_us", "language": "en_US", "category": "UTILITY", "header": { "format": "location" },
            "body": { "text": "Hi {{1}}, our new shop is open.", "examples": ["Ana"] }
        })).unwrap()).unwrap();
        tx.create_template(ch, &spec).await.unwrap();
        tx.set_template_status(&TemplateStatus { waba_id: WABA, name: "find_us", language: "en_US", provider_template_id: Some("9002"),
            status: "APPROVED", reason: None, category: None }).await.unwrap();
        tx.commit().await.unwrap();
        let (seg, people) = audience(store, &a, 1).await;
        let draft = |mapping: serde_json::Value| NewCampaign {
            name: "Find us".into(), channel: ch, audience: Audience::Segment(seg), template_name: "find_us".into(),
            template_language: "en_US".into(), mapping: serde_json::from_value(mapping).unwrap(),
            consent: ConsentRequirement::NotOptedOut, planned_at: None,
        };
        let mut tx = store.begin(&a).await.unwrap();
        let e = tx.create_campaign(&draft(json!({ "body": [{ "source": "first_name" }], "location": { "latitude": 91.0, "longitude": 73.8 } }))).await.unwrap_err();
        assert!(matches!(&e, StoreError::Invalid(m) if m.contains("location.latitude")), "{e:?}");
        // Without a place, the review says why it cannot go.
        let without = tx.create_campaign(&draft(json!({ "body": [{ "source": "first_name" }] }))).await.unwrap().id;
        let id = tx.create_campaign(&draft(json!({ "body": [{ "source": "first_name" }],
            "location": { "latitude": 18.5204, "longitude": 73.8567, "name": "Sunrise Store", "address": "12 FC Road, Pune" } }))).await.unwrap().id;
        tx.commit().await.unwrap();
        let now = frontdesk_store::now_micros();
        let mut tx = store.begin_read(&a).await.unwrap();
        let r = tx.review_campaign(without, now).await.unwrap();
        assert!(r.languages[0].problem.as_deref().is_some_and(|p| p.contains("location")), "{r:?}");
        let r = tx.review_campaign(id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(r.languages[0].preview.as_deref(), Some("[location: Sunrise Store, 12 FC Road, Pune]\nHi Person, our new shop is open."), "{r:?}");

        launch(store, &a, id, None, now).await;
        assert_eq!(steps(store, now).await, 1);
        let f = figures(store, &a, id).await;
        assert_eq!((f.queued, f.failed), (1, 0), "{f:?}");
        let jobs = store.claim_outbox(now, Duration::seconds(60), 10).await.unwrap();
        let mut tx = store.begin(&jobs[0].ctx).await.unwrap();
        let content: serde_json::Value = serde_json::from_str(&tx.outbound_row(frontdesk_domain::MessageId::from_uuid(jobs[0].target)).await.unwrap().content).unwrap();
        tx.commit().await.unwrap();
        assert_eq!(content["components"][0], json!({ "type": "header", "parameters": [{ "type": "location",
            "location": { "latitude": "18.5204", "longitude": "73.8567", "name": "Sunrise Store", "address": "12 FC Road, Pune" } }] }), "{content}");
        assert_eq!(previews(store, &a, ch, people[0]).await.len(), 1);
    }

    async fn a_template_sent_inside_the_service_window_does_not_use_up_the_tier(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_50"), None).await;
        let (seg, people) = audience(store, &a, 51).await;
        // One of them wrote in a minute ago: their service window is open.
        let mut tx = store.begin(&a).await.unwrap();
        tx.record_inbound(ch, people[0], &InboundRecord { provider_message_id: "wamid.hello".into(), kind: "text".into(),
            content: "{\"body\":\"Hello\"}".into(), preview: "Hello".into(), reply_to: None,
            provider_at: frontdesk_store::now_micros() - Duration::minutes(1), media: None }).await.unwrap();
        tx.commit().await.unwrap();
        let id = create(store, &a, ch, seg).await;
        let now = frontdesk_store::now_micros();
        let mut tx = store.begin_read(&a).await.unwrap();
        let r = tx.review_campaign(id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((r.sendable, r.in_service_window, r.daily_limit, r.over_daily_limit), (51, 1, Some(50), 0), "{r:?}");

        // All 51 go today: the one inside the window is not counted against the 50.
        launch(store, &a, id, None, now).await;
        let sent = steps(store, now).await + steps(store, now + Duration::seconds(1)).await;
        assert_eq!(sent, 51);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);

        // The count another campaign sees: 50 outside a window, the tier used up.
        let again = create(store, &a, ch, seg).await;
        let later = frontdesk_store::now_micros();
        let mut tx = store.begin_read(&a).await.unwrap();
        let r = tx.review_campaign(again, later).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((r.used_last_24h, r.in_service_window, r.over_daily_limit), (50, 1, 50), "{r:?}");
    }

    async fn the_kept_tier_count_errs_high_between_exact_counts_and_is_corrected_by_them(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_50"), Some(80)).await;
        let (seg, _) = audience(store, &a, 30).await;
        let now = frontdesk_store::now_micros();
        let first = create(store, &a, ch, seg).await;
        launch(store, &a, first, None, now).await;
        assert_eq!(steps(store, now).await, 30);
        // The same 30 people again: Meta counts them once, the kept count twice. The step
        // takes the 20 the kept count leaves, then waits for the next exact count.
        let again = create(store, &a, ch, seg).await;
        launch(store, &a, again, None, now).await;
        assert_eq!(steps(store, now).await, 20);
        assert_eq!(steps(store, now + Duration::seconds(2)).await, 0);
        let mut tx = store.begin_read(&a).await.unwrap();
        let c = tx.campaign(again).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(c.waiting.as_deref(), Some("daily_limit"));
        let until = c.waiting_until.unwrap();
        assert!(until > now && until <= now + Duration::minutes(2), "{c:?}");
        // A minute on, the exact count finds 30 unique recipients: the last 10 go.
        assert_eq!(steps(store, now + Duration::seconds(61)).await, 10);
        assert_eq!(status(store, &a, again).await, CampaignStatus::Completed);
    }

    async fn a_template_sent_outside_a_campaign_is_added_to_the_kept_tier_count(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_50"), Some(80)).await;
        let (seg, _) = audience(store, &a, 45).await;
        let now = frontdesk_store::now_micros();
        // A first campaign step keeps the count (0 before it, 45 after).
        let first = create(store, &a, ch, seg).await;
        launch(store, &a, first, None, now).await;
        assert_eq!(steps(store, now).await, 45);
        // Five people outside the audience get a template from an agent.
        let mut tx = store.begin(&a).await.unwrap();
        let mut others = Vec::new();
        for i in 0..5 {
            let c = tx
                .create_contact(&ContactInput {
                    name: Some(format!("Walk-in {i}")),
                    phone: Some(format!("+1415666{i:04}")),
                    ..Default::default()
                })
                .await
                .unwrap();
            others.push(c.id);
        }
        tx.commit().await.unwrap();
        for c in &others {
            send_template_to(store, &a, ch, *c).await;
        }
        // The same 45 again: the kept count (45 + 5, less than a minute old) leaves no room.
        // Without the 5 read from the messages it would leave 5.
        let next = create(store, &a, ch, seg).await;
        launch(store, &a, next, None, now).await;
        assert_eq!(steps(store, now + Duration::seconds(1)).await, 0);
        let mut tx = store.begin_read(&a).await.unwrap();
        let c = tx.campaign(next).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(c.waiting.as_deref(), Some("daily_limit"), "{c:?}");
    }

    async fn two_campaigns_on_one_business_account_take_its_room_one_after_the_other(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_50"), Some(20)).await;
        // Two campaigns to two different groups of 40 (no conversation or recipient in
        // common for one step to wait on the other for).
        let (_, people) = audience(store, &a, 80).await;
        let mut tx = store.begin(&a).await.unwrap();
        let second = tx.create_tag("second").await.unwrap();
        for p in &people[40..] {
            tx.set_contact_tag(*p, second.id, true).await.unwrap();
        }
        let seg_one = tx.save_segment(None, "First", &Rule::Not(Box::new(Rule::HasTag(second.id)))).await.unwrap().id;
        let seg_two = tx.save_segment(None, "Second", &Rule::HasTag(second.id)).await.unwrap().id;
        tx.commit().await.unwrap();
        let now = frontdesk_store::now_micros();
        let one = create(store, &a, ch, seg_one).await;
        launch(store, &a, one, None, now).await;
        assert_eq!(steps(store, now).await, 20, "a second's worth at 20 messages/s");
        let two = create(store, &a, ch, seg_two).await;
        launch(store, &a, two, None, now).await;
        let t = now + Duration::seconds(1);
        let claimed = store.claim_campaigns(t, Duration::seconds(60), 10).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let ctx_of = |id| claimed.iter().find(|(_, c)| *c == id).unwrap().0.clone();
        let mut tx = store.begin_background(&ctx_of(two)).await.unwrap();
        assert_eq!(tx.campaign_step(two, t).await.unwrap().snapshotted, 40);
        tx.commit().await.unwrap();
        // The first one's next step queues its other 20 and has not committed yet ...
        let mut tx = store.begin_background(&ctx_of(one)).await.unwrap();
        assert_eq!(tx.campaign_step(one, t).await.unwrap().queued, 20);
        // ... and the second one's step, run meanwhile, waits for it: it finds 40 of the 50
        // used and takes 10 (reading the count beside the first step, it would see 20 used
        // and take 20).
        let (second_step, ()) = tokio::join!(
            async {
                let mut tx2 = store.begin_background(&ctx_of(two)).await.unwrap();
                let r = tx2.campaign_step(two, t).await.unwrap();
                tx2.commit().await.unwrap();
                r.queued
            },
            async {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                tx.commit().await.unwrap();
            }
        );
        assert_eq!(second_step, 10);
        assert_eq!(status(store, &a, one).await, CampaignStatus::Completed);
        // The tier is used up: it waits.
        assert_eq!(steps(store, t + Duration::seconds(2)).await, 0);
        let mut tx = store.begin_read(&a).await.unwrap();
        let c = tx.campaign(two).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(c.waiting.as_deref(), Some("daily_limit"), "{c:?}");
    }

    async fn a_step_that_ran_late_does_not_push_the_next_one_back(db) {
        let store = &db.store;
        let (a, ch) = org_with_channel(store, "alpha").await;
        set_channel(store, &a, ch, Some("TIER_UNLIMITED"), Some(2)).await;
        let (seg, _) = audience(store, &a, 11).await;
        let id = create(store, &a, ch, seg).await;
        let t0 = frontdesk_store::now_micros();
        launch(store, &a, id, None, t0).await;
        assert_eq!(steps(store, t0).await, 2);
        // The worker gets to the next step 300 ms after it was due: the one after it is
        // still due at t0 + 2 s, not 2.3 s.
        assert_eq!(steps(store, t0 + Duration::milliseconds(1300)).await, 2);
        assert_eq!(steps(store, t0 + Duration::seconds(2)).await, 2);
        // Ten seconds late: that batch and one more to catch up, then a second on (not a
        // burst of every batch missed).
        assert_eq!(steps(store, t0 + Duration::seconds(12)).await, 4);
        assert_eq!(steps(store, t0 + Duration::seconds(12)).await, 0);
        assert_eq!(steps(store, t0 + Duration::seconds(13)).await, 1);
        assert_eq!(status(store, &a, id).await, CampaignStatus::Completed);
    }
}
