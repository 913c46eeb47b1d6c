//! Message templates on both backends: drafts, edits, submission and the provider's status,
//! quality and category, sync, and tracked links with their click counts.

use frontdesk_domain::template::{Category, TemplateSpec, TrackedLink};
use frontdesk_domain::{Actor, ChannelId, E164, MessageId, UserId};
use frontdesk_store::{
    AuditQuery, CustomerIdentity, NewChannel, Provider, Store, StoreError, SyncedTemplate,
    TemplateFilter, TemplateRefusal, TemplateStatus, TenantCtx, both_backends, new_link_code,
};
use secrecy::SecretString;
use serde_json::json;

const WABA: &str = "102290129340398";

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
    tx.commit().await.unwrap();
    (ctx, view.id)
}

fn spec(name: &str, language: &str, category: &str) -> TemplateSpec {
    TemplateSpec::parse(
        &serde_json::from_value(json!({
            "name": name, "language": language, "category": category,
            "body": { "text": "Hello {{1}}, your visit is at {{2}}.", "examples": ["Ana", "10:30"] },
            "buttons": [{ "type": "url", "text": "Directions", "url": "https://clinic.example/map", "track": true }]
        }))
        .unwrap(),
    )
    .unwrap()
}

fn webhook<'a>(name: &'a str, status: &'a str, id: &'a str) -> TemplateStatus<'a> {
    TemplateStatus {
        waba_id: WABA,
        name,
        language: "en_US",
        provider_template_id: Some(id),
        status,
        reason: (status == "REJECTED").then_some("INVALID_FORMAT"),
        category: None,
    }
}

both_backends! {
    async fn drafts_are_stored_listed_by_filter_and_unique_per_name_and_language(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let t = tx.create_template(ch, &spec("reminder", "en_US", "UTILITY")).await.unwrap();
        assert_eq!((t.status.as_str(), t.channel_id, t.waba_id.as_str()), ("DRAFT", Some(ch), WABA));
        assert_eq!(t.spec().unwrap(), spec("reminder", "en_US", "UTILITY"), "stored components read back as the same template");
        tx.create_template(ch, &spec("reminder", "pt_BR", "UTILITY")).await.unwrap();
        tx.create_template(ch, &spec("offer", "en_US", "MARKETING")).await.unwrap();
        assert!(matches!(
            tx.create_template(ch, &spec("reminder", "en_US", "MARKETING")).await,
            Err(StoreError::Conflict("template_exists"))
        ));
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&a).await.unwrap();
        let all = tx.templates(&TemplateFilter::default()).await.unwrap();
        let names: Vec<_> = all.iter().map(|t| (t.name.as_str(), t.language.as_str())).collect();
        assert_eq!(names, [("offer", "en_US"), ("reminder", "en_US"), ("reminder", "pt_BR")]);
        let f = TemplateFilter { category: Some(Category::Marketing), ..Default::default() };
        assert_eq!(tx.templates(&f).await.unwrap().len(), 1);
        let f = TemplateFilter { language: Some("pt_BR".into()), status: Some("DRAFT".into()), channel: Some(ch), ..Default::default() };
        assert_eq!(tx.templates(&f).await.unwrap().len(), 1);
        let f = TemplateFilter { status: Some("APPROVED".into()), ..Default::default() };
        assert!(tx.templates(&f).await.unwrap().is_empty());
        let events = db.store.audit_events(&a, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(events.events.iter().filter(|e| e.action == "template.created").count(), 3);
        // Another organisation sees none of it.
        let (b, _) = org_with_channel(&db.store, "beta").await;
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert!(matches!(tx.template(t.id).await, Err(StoreError::NotFound)));
        assert!(tx.templates(&TemplateFilter::default()).await.unwrap().is_empty());
    }

    async fn submission_review_and_provider_updates_move_the_status(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let t = tx.create_template(ch, &spec("reminder", "en_US", "UTILITY")).await.unwrap();
        // A draft may be renamed; once submitted, its name and language are fixed.
        let (t, was) = tx.update_template(t.id, &spec("visit_reminder", "en_US", "UTILITY")).await.unwrap();
        assert_eq!((t.name.as_str(), was.as_str()), ("visit_reminder", "DRAFT"));
        assert_eq!(tx.mark_template_submitted(t.id).await.unwrap(), "DRAFT");
        assert!(matches!(tx.update_template(t.id, &spec("visit_reminder", "en_US", "UTILITY")).await, Err(StoreError::Conflict("template_not_editable"))), "pending is not editable");
        assert!(matches!(tx.mark_template_submitted(t.id).await, Err(StoreError::Conflict("template_not_submittable"))));
        // The review webhook can arrive before the provider's answer: the answer keeps it.
        tx.set_template_status(&webhook("visit_reminder", "APPROVED", "5550001")).await.unwrap();
        tx.finish_template_submission(t.id, Some("5550001"), None).await.unwrap();
        tx.finish_template_submission(t.id, None, Some(("DRAFT", "late refusal"))).await.unwrap();
        let t = tx.template(t.id).await.unwrap();
        assert_eq!((t.status.as_str(), t.provider_template_id.as_deref(), t.reason.as_deref()), ("APPROVED", Some("5550001"), None));
        assert!(t.submitted_at.is_some());
        assert!(matches!(tx.update_template(t.id, &spec("renamed", "en_US", "UTILITY")).await, Err(StoreError::Conflict("template_identity_fixed"))));
        let (_, was) = tx.update_template(t.id, &spec("visit_reminder", "en_US", "MARKETING")).await.unwrap();
        assert_eq!(was, "APPROVED", "an approved template's edit tells the caller to resubmit");
        // Quality and category come by the provider's template id.
        assert!(tx.set_template_quality(WABA, "5550001", "YELLOW").await.unwrap());
        assert!(tx.set_template_category(WABA, "5550001", "MARKETING").await.unwrap());
        assert!(!tx.set_template_quality(WABA, "999", "RED").await.unwrap(), "unknown id changes nothing");
        let t = tx.template(t.id).await.unwrap();
        assert_eq!((t.quality.as_deref(), t.category.as_deref()), (Some("YELLOW"), Some("MARKETING")));
        // A refused submission goes back to what it was, with the reason.
        let r = tx.create_template(ch, &spec("other", "en_US", "UTILITY")).await.unwrap();
        tx.mark_template_submitted(r.id).await.unwrap();
        tx.finish_template_submission(r.id, None, Some(("DRAFT", "provider said no"))).await.unwrap();
        let r = tx.template(r.id).await.unwrap();
        assert_eq!((r.status.as_str(), r.reason.as_deref()), ("DRAFT", Some("provider said no")));
        tx.set_template_status(&webhook("other", "REJECTED", "5550002")).await.unwrap();
        assert_eq!(tx.template(r.id).await.unwrap().status, "REJECTED");
        tx.commit().await.unwrap();
        let events = db.store.audit_events(&a, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        for action in ["template.updated", "template.submitted"] {
            assert!(events.events.iter().any(|e| e.action == action), "{action} audited");
        }
    }

    async fn sync_adds_templates_written_elsewhere_and_updates_known_ones(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let mine = tx.create_template(ch, &spec("reminder", "en_US", "UTILITY")).await.unwrap();
        tx.mark_template_submitted(mine.id).await.unwrap();
        let listed = vec![
            SyncedTemplate { provider_template_id: Some("71".into()), name: "reminder".into(), language: "en_US".into(), status: "APPROVED".into(), category: Some("UTILITY".into()), quality: Some("GREEN".into()), reason: None, spec: Some(spec("reminder", "en_US", "UTILITY")) },
            SyncedTemplate { provider_template_id: Some("72".into()), name: "from_manager".into(), language: "es".into(), status: "PAUSED".into(), category: Some("MARKETING".into()), quality: Some("RED".into()), reason: Some("low quality".into()), spec: Some(spec("from_manager", "es", "MARKETING")) },
            SyncedTemplate { provider_template_id: Some("73".into()), name: "otp_login".into(), language: "en".into(), status: "APPROVED".into(), category: Some("AUTHENTICATION".into()), quality: None, reason: None, spec: None },
            SyncedTemplate { provider_template_id: None, name: "Not A Name".into(), language: "en".into(), status: "APPROVED".into(), category: None, quality: None, reason: None, spec: None },
        ];
        let report = tx.sync_templates(ch, &listed).await.unwrap();
        assert_eq!((report.listed, report.created, report.updated, report.unreadable), (4, 2, 1, 2));
        // Twice changes nothing more.
        let again = tx.sync_templates(ch, &listed).await.unwrap();
        assert_eq!((again.created, again.updated), (0, 3));
        let mine = tx.template(mine.id).await.unwrap();
        assert_eq!((mine.status.as_str(), mine.quality.as_deref(), mine.provider_template_id.as_deref()), ("APPROVED", Some("GREEN"), Some("71")));
        let paused = tx.template_named(WABA, "from_manager", "es").await.unwrap().unwrap();
        assert_eq!((paused.status.as_str(), paused.reason.as_deref(), paused.channel_id), ("PAUSED", Some("low quality"), Some(ch)));
        assert!(paused.spec().is_some());
        let otp = tx.template_named(WABA, "otp_login", "en").await.unwrap().unwrap();
        assert!(otp.content.is_none() && otp.spec().is_none(), "unreadable components are not invented");
        tx.commit().await.unwrap();
    }

    async fn a_send_is_prepared_only_for_an_approved_template_with_fitting_values(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let t = tx.create_template(ch, &spec("reminder", "en_US", "UTILITY")).await.unwrap();
        let fill = || Some(serde_json::from_value(json!({ "body": ["Ravi", "9:00"] })).unwrap());
        let mut components = Vec::new();
        let refused = tx.prepare_template_send(WABA, "reminder", "en_US", &mut components, fill()).await.unwrap_err();
        assert!(matches!(&refused, TemplateRefusal::NotApproved(m) if m.contains("DRAFT")), "{refused}");
        let unknown = tx.prepare_template_send(WABA, "nothing", "en_US", &mut components, None).await.unwrap_err();
        assert!(matches!(unknown, TemplateRefusal::NotApproved(_)));
        tx.mark_template_submitted(t.id).await.unwrap();
        tx.set_template_status(&webhook("reminder", "APPROVED", "81")).await.unwrap();
        let short = tx.prepare_template_send(WABA, "reminder", "en_US", &mut components, Some(serde_json::from_value(json!({ "body": ["Ravi"] })).unwrap())).await.unwrap_err();
        assert!(matches!(short, TemplateRefusal::InvalidFill(_)));
        assert!(components.is_empty(), "nothing filled on a refusal");
        let p = tx.prepare_template_send(WABA, "reminder", "en_US", &mut components, fill()).await.unwrap().unwrap();
        assert_eq!(p.template, t.id);
        assert_eq!(p.text, "Hello Ravi, your visit is at 9:00.\n[Directions]");
        assert_eq!(components[0]["parameters"][0]["text"], "Ravi");
        assert_eq!(components[1]["parameters"][0]["text"], p.links[0].code, "the tracked button carries the link's code");
        assert_eq!(p.links[0].destination, "https://clinic.example/map");
        // The caller's own components go out as given, unchecked.
        let mut raw = vec![json!({ "type": "body", "parameters": [] })];
        assert!(tx.prepare_template_send(WABA, "reminder", "en_US", &mut raw, None).await.unwrap().is_none());
        tx.commit().await.unwrap();
    }

    async fn a_tracked_link_counts_clicks_and_leads_only_to_its_stored_destination(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let t = tx.create_template(ch, &spec("offer", "en_US", "MARKETING")).await.unwrap();
        let contact = tx.upsert_contact(&CustomerIdentity { phone: Some(E164::parse("+919876543210").unwrap()), ..Default::default() }).await.unwrap();
        let (m1, m2) = (MessageId::new(), MessageId::new());
        let (c1, c2) = (new_link_code(), new_link_code());
        assert!(c1.len() >= 20 && c1 != c2, "random codes: {c1}");
        let link = |code: &str| TrackedLink { card: None, button: 0, code: code.into(), destination: "https://clinic.example/map".into() };
        tx.create_tracked_links(t.id, m1, contact, &[link(&c1)]).await.unwrap();
        tx.create_tracked_links(t.id, m2, contact, &[link(&c2)]).await.unwrap();
        // A second recipient, who gets the message but never clicks.
        let other = tx.upsert_contact(&CustomerIdentity { phone: Some(E164::parse("+919876500000").unwrap()), ..Default::default() }).await.unwrap();
        let c3 = new_link_code();
        tx.create_tracked_links(t.id, MessageId::new(), other, &[link(&c3)]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store.begin_read(&a).await.unwrap().template(t.id).await.unwrap().unique_clicks, 0);
        for _ in 0..3 {
            assert_eq!(db.store.follow_tracked_link(&c1).await.unwrap().as_deref(), Some("https://clinic.example/map"));
        }
        assert_eq!(db.store.follow_tracked_link(&c2).await.unwrap().as_deref(), Some("https://clinic.example/map"));
        assert_eq!(db.store.follow_tracked_link("fdl_made_up_code_000000").await.unwrap(), None);
        assert_eq!(db.store.follow_tracked_link(&format!("{c1}x")).await.unwrap(), None);
        let mut tx = db.store.begin_read(&a).await.unwrap();
        let counted = tx.template(t.id).await.unwrap();
        assert_eq!((counted.clicks, counted.unique_clicks), (4, 1), "four clicks, one person (two messages)");
        let per_message = tx.link_clicks(None, Some(m1)).await.unwrap();
        assert_eq!((per_message.len(), per_message[0].clicks, per_message[0].contact_id), (1, 3, Some(contact)));
        assert!(per_message[0].last_clicked_at.is_some());
        assert!(per_message[0].first_clicked_at.is_some() && per_message[0].first_clicked_at <= per_message[0].last_clicked_at);
        assert_eq!(tx.link_clicks(Some(t.id), None).await.unwrap().iter().map(|l| l.clicks).collect::<Vec<_>>(), [3, 1, 0]);
        tx.commit().await.unwrap();
        // The second recipient clicks once: two people.
        db.store.follow_tracked_link(&c3).await.unwrap().unwrap();
        let counted = db.store.begin_read(&a).await.unwrap().template(t.id).await.unwrap();
        assert_eq!((counted.clicks, counted.unique_clicks), (5, 2));
        // Deleting the template removes its links: the code leads nowhere any more.
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.delete_template(t.id).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store.follow_tracked_link(&c1).await.unwrap(), None);
        // Another organisation cannot read the clicks.
        let (b, _) = org_with_channel(&db.store, "beta").await;
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert!(tx.link_clicks(None, Some(m2)).await.unwrap().is_empty());
    }
}
