//! The audience's store on both backends: contacts with validated and normalised values,
//! one contact per number or user id, masking and search by role, cursor pages, custom
//! fields checked against their type, tags, audit rows without personal data.

use frontdesk_domain::audience::FieldKind;
use frontdesk_domain::{BuiltinRole, Email};
use frontdesk_store::audience::{ContactInput, ContactQuery};
use frontdesk_store::inbox::Cursor;
use frontdesk_store::{
    AuditQuery, SignUp, Store, StoreError, TenantCtx, both_backends, now_micros,
};
use secrecy::ExposeSecret;
use serde_json::json;
use time::Duration;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

async fn admin(store: &Store, slug: &str) -> TenantCtx {
    let email = Email::parse(&format!("admin@{slug}.example")).unwrap();
    store
        .sign_up(SignUp {
            org_name: &format!("Shop {slug}"),
            org_slug: Some(slug),
            user_name: "Admin",
            email: &email,
            password_hash: HASH,
            now: now_micros(),
        })
        .await
        .unwrap()
        .2
}

async fn member(store: &Store, admin: &TenantCtx, name: &str, role: BuiltinRole) -> TenantCtx {
    let mut tx = store.begin(admin).await.unwrap();
    let role_id = tx
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.builtin == Some(role))
        .unwrap()
        .id;
    let email = Email::parse(&format!("{name}@people.example")).unwrap();
    let (_, token) = tx
        .create_invitation(&email, role_id, Duration::days(1), now_micros())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store
        .accept_invitation_as_new_user(token.expose_secret(), name, HASH, now_micros())
        .await
        .unwrap()
        .1
}

fn person(name: &str, phone: &str) -> ContactInput {
    ContactInput {
        name: Some(name.into()),
        phone: Some(phone.into()),
        ..Default::default()
    }
}

both_backends! {
    async fn a_contact_is_stored_normalised_with_its_fields_and_tags(db) {
        let ctx = admin(&db.store, "normal").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        tx.create_field("city", "City", FieldKind::Choice, &["Pune".into(), "Mumbai".into()]).await.unwrap();
        tx.create_field("visits", "Visits", FieldKind::Number, &[]).await.unwrap();
        tx.create_field("member", "Member", FieldKind::Boolean, &[]).await.unwrap();
        tx.create_field("birthday", "Birthday", FieldKind::Date, &[]).await.unwrap();
        let c = tx.create_contact(&ContactInput {
            name: Some("  Asha Rao ".into()),
            phone: Some("+91 98765-43210".into()),
            email: Some("Asha@Example.COM".into()),
            language: Some("pt-br".into()),
            company: Some("Rao & Sons".into()),
            fields: [
                ("city".to_string(), json!("pune")),
                ("visits".to_string(), json!("3")),
                ("member".to_string(), json!("yes")),
                ("birthday".to_string(), json!("1990-04-01")),
            ].into(),
            ..Default::default()
        }).await.unwrap();
        let vip = tx.create_tag("vip").await.unwrap();
        tx.set_contact_tag(c.id, vip.id, true).await.unwrap();
        tx.set_contact_tag(c.id, vip.id, true).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let c = tx.contact_record(c.id).await.unwrap();
        assert_eq!(c.name.as_deref(), Some("Asha Rao"));
        assert_eq!(c.phone.as_deref(), Some("+919876543210"));
        assert!(!c.phone_masked);
        assert_eq!(c.email.as_deref(), Some("asha@example.com"));
        assert_eq!(c.language.as_deref(), Some("pt_BR"));
        assert_eq!(c.fields["city"], json!("Pune"));
        assert_eq!(c.fields["visits"], json!(3.0));
        assert_eq!(c.fields["member"], json!(true));
        assert_eq!(c.fields["birthday"], json!("1990-04-01"));
        assert_eq!(c.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["vip"]);
        assert_eq!(tx.tags().await.unwrap()[0].contacts, 1);
        drop(tx);
        let audit = db.store.audit_events(&ctx, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        let created = audit.events.iter().find(|e| e.action == "contact.created").unwrap();
        let text = created.data.to_string();
        assert!(!text.contains("9876543210") && !text.contains("asha"), "audit data holds no personal data: {text}");
    }

    async fn every_bad_value_is_reported_with_its_field_and_nothing_is_stored(db) {
        let ctx = admin(&db.store, "bad").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        tx.create_field("visits", "Visits", FieldKind::Number, &[]).await.unwrap();
        let err = tx.create_contact(&ContactInput {
            phone: Some("98765".into()),
            email: Some("asha at example".into()),
            language: Some("klingon".into()),
            fields: [("visits".to_string(), json!("many"))].into(),
            ..Default::default()
        }).await.unwrap_err();
        let StoreError::InvalidFields(ps) = err else { panic!("{err:?}") };
        let fields: Vec<&str> = ps.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["phone", "email", "language", "fields.visits"]);
        let err = tx.create_contact(&ContactInput { name: Some("Nobody".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidFields(ref p) if p[0].field == "phone"), "{err:?}");
        let page = tx.list_contacts(&ContactQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert!(page.items.is_empty());
    }

    async fn one_contact_per_number_and_per_user_id(db) {
        let ctx = admin(&db.store, "unique").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let a = tx.create_contact(&person("A", "+14155550100")).await.unwrap();
        let err = tx.create_contact(&person("B", "+1 415 555 0100")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("contact_exists")), "{err:?}");
        // A WhatsApp user with a username and no visible number.
        let u = tx.create_contact(&ContactInput {
            user_id: Some("US.1234567890123456789".into()),
            username: Some("asha.r".into()),
            ..Default::default()
        }).await.unwrap();
        assert_eq!(u.phone, None);
        let err = tx.create_contact(&ContactInput { user_id: Some("US.1234567890123456789".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("contact_exists")));
        let err = tx.update_contact(u.id, &ContactInput { phone: Some("+14155550100".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("contact_exists")));
        // Clearing the only identifier is refused; clearing one of two is fine.
        let err = tx.update_contact(a.id, &ContactInput { phone: Some(String::new()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidFields(_)));
        let a = tx.update_contact(a.id, &ContactInput { user_id: Some("US.9999999999999999999".into()), ..Default::default() }).await.unwrap();
        let a = tx.update_contact(a.id, &ContactInput { phone: Some(String::new()), ..Default::default() }).await.unwrap();
        assert_eq!((a.phone, a.name.as_deref()), (None, Some("A")), "unlisted values are kept");
        tx.commit().await.unwrap();
    }

    async fn agents_see_masked_numbers_and_cannot_search_by_them(db) {
        let ctx = admin(&db.store, "mask").await;
        let agent = member(&db.store, &ctx, "agent", BuiltinRole::Agent).await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let c = tx.create_contact(&person("Ravi", "+919876543210")).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&agent).await.unwrap();
        let seen = tx.contact_record(c.id).await.unwrap();
        assert!(seen.phone_masked);
        assert!(!seen.phone.as_deref().unwrap().contains("8765432"), "{:?}", seen.phone);
        let by_number = tx.list_contacts(&ContactQuery { search: Some("98765".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert!(by_number.items.is_empty(), "a masked viewer cannot search by number");
        let by_name = tx.list_contacts(&ContactQuery { search: Some("rav".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(by_name.items.len(), 1);
        assert!(by_name.items[0].phone_masked);
        drop(tx);
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let by_number = tx.list_contacts(&ContactQuery { search: Some("98765".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(by_number.items.len(), 1);
    }

    async fn pages_follow_the_cursor_and_filter_by_tag(db) {
        let ctx = admin(&db.store, "pages").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let vip = tx.create_tag("vip").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            let c = tx.create_contact(&person(&format!("P{i}"), &format!("+1415555010{i}"))).await.unwrap();
            if i % 2 == 0 {
                tx.set_contact_tag(c.id, vip.id, true).await.unwrap();
            }
            ids.push(c.id);
        }
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = tx.list_contacts(&ContactQuery { after, limit: 2, ..Default::default() }).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => after = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        // The pages follow the one-page list's order, each contact once. That order is
        // newest first by the stored time; it is not compared with the ids' own clock
        // (two contacts made in one millisecond may differ there).
        let all = tx.list_contacts(&ContactQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(seen, all.items.iter().map(|c| c.id).collect::<Vec<_>>(), "pages in the list's order");
        assert!(all.items.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first");
        let (mut got, mut made) = (seen.clone(), ids.clone());
        got.sort();
        made.sort();
        assert_eq!(got, made, "each contact once");
        let tagged = tx.list_contacts(&ContactQuery { tag: Some(vip.id), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(tagged.items.len(), 3);
    }

    async fn a_choice_option_in_use_cannot_be_removed_and_keys_are_unique(db) {
        let ctx = admin(&db.store, "fields").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let city = tx.create_field("city", "City", FieldKind::Choice, &["Pune".into(), "Goa".into()]).await.unwrap();
        let err = tx.create_field("city", "Town", FieldKind::Text, &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("field_key_taken")));
        let err = tx.create_field("Bad Key", "", FieldKind::Text, &["x".into()]).await.unwrap_err();
        let StoreError::InvalidFields(ps) = err else { panic!() };
        assert_eq!(ps.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["key", "label", "options"]);
        tx.create_contact(&ContactInput { phone: Some("+14155550100".into()), fields: [("city".to_string(), json!("Pune"))].into(), ..Default::default() }).await.unwrap();
        let err = tx.update_field(city.id, "City", &["Goa".into()]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("option_in_use")));
        let city = tx.update_field(city.id, "Home city", &["Pune".into(), "Delhi".into()]).await.unwrap();
        assert_eq!(city.options, ["Pune", "Delhi"]);
        tx.delete_field(city.id).await.unwrap();
        let c = tx.list_contacts(&ContactQuery { limit: 1, ..Default::default() }).await.unwrap();
        assert!(c.items[0].fields.is_empty(), "a deleted field's values go with it");
        tx.commit().await.unwrap();
    }
}

both_backends! {
    async fn the_latest_consent_event_decides_and_the_ledger_cannot_be_rewritten(db) {
        use frontdesk_domain::audience::{ConsentSource, ConsentState};
        let ctx = admin(&db.store, "ledger").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let c = tx.create_contact(&person("Asha", "+14155550100")).await.unwrap();
        assert_eq!(tx.consent(c.id).await.unwrap().state, None);
        tx.record_consent(c.id, ConsentState::OptIn, ConsentSource::Form, "paper form").await.unwrap();
        tx.record_consent(c.id, ConsentState::OptOut, ConsentSource::Agent, "asked on the phone").await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let v = tx.consent(c.id).await.unwrap();
        assert_eq!(v.state, Some(ConsentState::OptOut));
        assert_eq!(v.events.len(), 2);
        assert_eq!(v.events[0].source, ConsentSource::Agent);
        assert_eq!(tx.contact_record(c.id).await.unwrap().consent, Some(ConsentState::OptOut));
        drop(tx);
        let err = db.raw_execute(&["UPDATE consent_events SET state = 'opt_in'".into()]).await;
        assert!(err.is_err(), "an event cannot be changed");
        let err = db.raw_execute(&["DELETE FROM consent_events".into()]).await;
        if db.store.backend() == frontdesk_store::Backend::Sqlite {
            assert!(err.is_err(), "an event cannot be deleted while its contact exists");
        }
    }

    async fn a_merged_contact_keeps_the_other_ones_opt_out(db) {
        use frontdesk_domain::audience::{ConsentSource, ConsentState};
        use frontdesk_domain::{Bsuid, E164};
        let ctx = admin(&db.store, "merge").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let by_phone = tx.create_contact(&person("Phone", "+14155550100")).await.unwrap();
        let by_user = tx.create_contact(&ContactInput { user_id: Some("US.1234567890123456789".into()), ..Default::default() }).await.unwrap();
        tx.record_consent(by_user.id, ConsentState::OptOut, ConsentSource::Keyword, "STOP").await.unwrap();
        let vip = tx.create_tag("vip").await.unwrap();
        tx.set_contact_tag(by_user.id, vip.id, true).await.unwrap();
        // A payload naming both links them into one contact.
        let kept = tx.upsert_contact(&frontdesk_store::CustomerIdentity {
            phone: Some(E164::parse("+14155550100").unwrap()),
            bsuid: Some(Bsuid::parse("US.1234567890123456789").unwrap()),
            ..Default::default()
        }).await.unwrap();
        tx.commit().await.unwrap();
        assert!(kept == by_phone.id || kept == by_user.id);
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let c = tx.contact_record(kept).await.unwrap();
        assert_eq!(c.consent, Some(ConsentState::OptOut), "the opt-out survives the merge");
        assert_eq!(c.tags.len(), 1);
    }

    async fn keywords_are_normalised_and_matched_on_the_whole_message(db) {
        use frontdesk_domain::audience::ConsentState;
        use frontdesk_store::consent::AudienceSettings;
        let ctx = admin(&db.store, "keywords").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        assert_eq!(tx.consent_keyword(" Stop ").await.unwrap(), Some(ConsentState::OptOut));
        assert_eq!(tx.consent_keyword("please stop").await.unwrap(), None);
        tx.set_audience_settings(AudienceSettings {
            opt_out_keywords: vec!["stop".into(), "no  more".into()],
            ..Default::default()
        }).await.unwrap();
        assert_eq!(tx.consent_keyword("NO MORE").await.unwrap(), Some(ConsentState::OptOut));
        assert_eq!(tx.consent_keyword("start").await.unwrap(), Some(ConsentState::OptIn));
        let err = tx.set_audience_settings(AudienceSettings { opt_in_keywords: vec!["STOP".into()], ..Default::default() }).await;
        assert!(matches!(err, Err(StoreError::Invalid(_))), "a word cannot go both ways");
        tx.commit().await.unwrap();
    }
}

async fn channel(store: &Store, ctx: &TenantCtx) -> frontdesk_domain::ChannelId {
    use secrecy::SecretString;
    let mut tx = store.begin(ctx).await.unwrap();
    let (view, _) = tx
        .create_channel(frontdesk_store::NewChannel {
            name: "Shop number".into(),
            provider: frontdesk_store::Provider::Cloud,
            phone_number_id: "pn1".into(),
            waba_id: "waba1".into(),
            display_number: "+15550001111".into(),
            api_base_url: "http://127.0.0.1:1/graph".into(),
            api_version: "v23.0".into(),
            simulated: false,
            access_token: SecretString::from("token".to_string()),
            app_secret: Some(SecretString::from("secret".to_string())),
            verify_token: None,
            throughput_mps: 80,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    view.id
}

/// The customer wrote `days_ago` days ago.
async fn wrote(
    store: &Store,
    ctx: &TenantCtx,
    ch: frontdesk_domain::ChannelId,
    contact: frontdesk_domain::ContactId,
    days_ago: i64,
) {
    let mut tx = store.begin(ctx).await.unwrap();
    tx.record_inbound(
        ch,
        contact,
        &frontdesk_store::InboundRecord {
            provider_message_id: format!("wamid.{}", uuid::Uuid::now_v7()),
            kind: "text".into(),
            content: "{}".into(),
            preview: "hi".into(),
            reply_to: None,
            provider_at: now_micros() - Duration::days(days_ago),
            media: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

both_backends! {
    async fn a_segment_selects_by_tag_last_inbound_and_a_choice_field(db) {
        use frontdesk_domain::audience::{ConsentSource, ConsentState, Rule};
        let ctx = admin(&db.store, "segments").await;
        let ch = channel(&db.store, &ctx).await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let city = tx.create_field("city", "City", FieldKind::Choice, &["Pune".into(), "Mumbai".into(), "Goa".into()]).await.unwrap();
        let vip = tx.create_tag("vip").await.unwrap();
        let mut people = Vec::new();
        // (tagged vip, city, wrote days ago)
        for (i, (is_vip, town, days)) in [(true, "Pune", Some(40)), (true, "Mumbai", Some(45)), (true, "Goa", Some(50)),
                                           (true, "Pune", Some(3)), (false, "Pune", Some(40)), (true, "Pune", None)].into_iter().enumerate() {
            let c = tx.create_contact(&ContactInput {
                name: Some(format!("P{i}")),
                phone: Some(format!("+1415555010{i}")),
                fields: [("city".to_string(), json!(town))].into(),
                ..Default::default()
            }).await.unwrap();
            if is_vip { tx.set_contact_tag(c.id, vip.id, true).await.unwrap(); }
            people.push((c.id, days));
        }
        tx.commit().await.unwrap();
        for (id, days) in &people {
            if let Some(d) = days { wrote(&db.store, &ctx, ch, *id, *d).await; }
        }
        // tag = vip AND last_inbound > 30 days ago AND city IN (Pune, Mumbai)
        let rule: Rule = serde_json::from_value(json!({ "and": [
            { "has_tag": vip.id },
            { "last_inbound": { "older_than_days": 30 } },
            { "field": { "id": city.id, "op": "in", "value": ["pune", "Mumbai"] } },
        ]})).unwrap();
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let p = tx.preview_rule(&rule, now_micros()).await.unwrap();
        assert_eq!(p.count, 2, "P0 and P1");
        let mut names: Vec<_> = p.contacts.iter().map(|c| c.name.clone().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["P0", "P1"]);
        // NOT is exact (no NULL leaks): everyone else.
        let p = tx.preview_rule(&Rule::Not(Box::new(rule.clone())), now_micros()).await.unwrap();
        assert_eq!(p.count, 4);
        let never: Rule = serde_json::from_value(json!({ "last_inbound": { "never": true } })).unwrap();
        assert_eq!(tx.preview_rule(&never, now_micros()).await.unwrap().count, 1);
        let not_set: Rule = serde_json::from_value(json!({ "not": { "consent": "opt_out" } })).unwrap();
        assert_eq!(tx.preview_rule(&not_set, now_micros()).await.unwrap().count, 6, "unknown consent is not opted out");

        // Saved, read back, and the marketing audience never holds an opted-out contact.
        let saved = tx.save_segment(None, "Lapsed VIPs", &rule).await.unwrap();
        assert_eq!(tx.segment(saved.id).await.unwrap().rule, rule);
        tx.record_consent(people[0].0, ConsentState::OptOut, ConsentSource::Keyword, "STOP").await.unwrap();
        tx.record_consent(people[1].0, ConsentState::OptIn, ConsentSource::Form, "form").await.unwrap();
        let reach = tx.marketing_audience(&rule, frontdesk_store::segments::ConsentRequirement::NotOptedOut, None, 100, now_micros()).await.unwrap();
        assert_eq!(reach, vec![people[1].0]);
        // Even a rule that asks for opted-out contacts gets none of them.
        let opted_out: Rule = serde_json::from_value(json!({ "consent": "opt_out" })).unwrap();
        assert_eq!(tx.preview_rule(&opted_out, now_micros()).await.unwrap().count, 1);
        let reach = tx.marketing_audience(&opted_out, frontdesk_store::segments::ConsentRequirement::NotOptedOut, None, 100, now_micros()).await.unwrap();
        assert!(reach.is_empty());
        let everyone = Rule::all();
        let reach = tx.marketing_audience(&everyone, frontdesk_store::segments::ConsentRequirement::OptedIn, None, 100, now_micros()).await.unwrap();
        assert_eq!(reach, vec![people[1].0], "opted in only");
        let reach = tx.marketing_audience(&everyone, frontdesk_store::segments::ConsentRequirement::NotOptedOut, None, 2, now_micros()).await.unwrap();
        let more = tx.marketing_audience(&everyone, frontdesk_store::segments::ConsentRequirement::NotOptedOut, reach.last().copied(), 100, now_micros()).await.unwrap();
        assert_eq!(reach.len() + more.len(), 5, "pages by id, each once, without the opted-out one");
        assert!(!reach.iter().chain(&more).any(|c| *c == people[0].0));
        tx.commit().await.unwrap();
    }

    async fn rules_with_unknown_references_or_bad_values_are_refused(db) {
        use frontdesk_domain::audience::Rule;
        let ctx = admin(&db.store, "badrules").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let visits = tx.create_field("visits", "Visits", FieldKind::Number, &[]).await.unwrap();
        for unknown in [
            json!({ "has_tag": uuid::Uuid::now_v7() }),
            json!({ "field": { "id": uuid::Uuid::now_v7(), "op": "is_set" } }),
        ] {
            let rule: Rule = serde_json::from_value(unknown.clone()).unwrap();
            let err = tx.preview_rule(&rule, now_micros()).await.unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{unknown}: {err:?}");
        }
        for bad in [
            json!({ "field": { "id": visits.id, "op": "gt", "value": "lots" } }),
            json!({ "attr": { "name": "language", "op": "in", "value": [] } }),
        ] {
            let rule: Rule = serde_json::from_value(bad.clone()).unwrap();
            let err = tx.preview_rule(&rule, now_micros()).await.unwrap_err();
            assert!(matches!(err, StoreError::Invalid(ref m) if m.starts_with("rule:")), "{bad}: {err:?}");
            assert!(tx.save_segment(None, "Bad", &rule).await.is_err());
        }
        tx.create_contact(&ContactInput { phone: Some("+14155550100".into()), language: Some("en".into()), fields: [("visits".to_string(), json!(7))].into(), ..Default::default() }).await.unwrap();
        let rule: Rule = serde_json::from_value(json!({ "and": [
            { "field": { "id": visits.id, "op": "gte", "value": 7 } },
            { "attr": { "name": "language", "op": "eq", "value": "EN" } },
        ]})).unwrap();
        assert_eq!(tx.preview_rule(&rule, now_micros()).await.unwrap().count, 1);
        tx.save_segment(None, "Regulars", &rule).await.unwrap();
        let err = tx.save_segment(None, "Regulars", &rule).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("segment_name_taken")));
        tx.commit().await.unwrap();
    }
}

fn mapping(
    pairs: &[(&str, &str)],
    evidence: Option<&str>,
) -> frontdesk_store::imports::ImportMapping {
    frontdesk_store::imports::ImportMapping {
        columns: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        consent_evidence: evidence.map(String::from),
    }
}

both_backends! {
    async fn a_dry_run_reports_every_rejected_row_and_the_import_does_what_it_said(db) {
        use frontdesk_domain::audience::{ConsentSource, ConsentState};
        let ctx = admin(&db.store, "import").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        tx.create_field("city", "City", FieldKind::Choice, &["Pune".into(), "Goa".into()]).await.unwrap();
        tx.create_tag("vip").await.unwrap();
        let existing = tx.create_contact(&person("Old name", "+14155550101")).await.unwrap();
        let stopped = tx.create_contact(&person("Stopped", "+14155550109")).await.unwrap();
        tx.record_consent(stopped.id, ConsentState::OptOut, ConsentSource::Keyword, "STOP").await.unwrap();
        let csv = "Name,Mobile,City,Tags,Opt in\n\
                   Asha,+1 415 555 0100,Pune,vip,yes\n\
                   Ravi,+1 415 555 0101,goa,,no\n\
                   Bad number,12345,Pune,,\n\
                   Twin,+14155550100,Goa,,\n\
                   Nowhere,+14155550102,Delhi,,\n\
                   Tagged,+14155550103,,gold,\n\
                   Back in,+14155550109,,,yes\n\
                   Nobody,,Pune,,\n";
        let up = tx.upload_import("people.csv", csv).await.unwrap();
        assert_eq!((up.total_rows, up.columns.len()), (8, 5));
        let m = mapping(&[("Name", "name"), ("Mobile", "phone"), ("City", "field:city"), ("Tags", "tags"), ("Opt in", "consent")], Some("Shop sign-up sheet, May"));
        let report = tx.dry_run_import(up.id, &m).await.unwrap();
        let lines: Vec<usize> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9], "{:?}", report.rejected);
        let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].starts_with("phone"), "{reasons:?}");
        assert!(reasons[1].contains("duplicate of line 2"), "{reasons:?}");
        assert!(reasons[2].contains("fields.city"), "{reasons:?}");
        assert!(reasons[3].contains("gold"), "{reasons:?}");
        assert!(reasons[4].contains("opted out"), "{reasons:?}");
        assert!(reasons[5].contains("no phone"), "{reasons:?}");
        assert_eq!((report.created, report.updated), (1, 1));
        assert_eq!(tx.list_contacts(&ContactQuery { limit: 100, ..Default::default() }).await.unwrap().items.len(), 2, "a dry run writes no contact");
        // A mapping without evidence for its consent column is refused.
        assert!(tx.start_import(up.id, &mapping(&[("Mobile", "phone"), ("Opt in", "consent")], None)).await.is_err());
        tx.start_import(up.id, &m).await.unwrap();
        let err = tx.start_import(up.id, &m).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("import_started")));
        tx.commit().await.unwrap();

        // The worker's side: claim, chunk, done.
        let (wctx, id) = db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap().unwrap();
        assert_eq!(id, up.id);
        let mut tx = db.store.begin(&wctx).await.unwrap();
        assert!(!tx.import_next_chunk(id).await.unwrap(), "eight rows fit one chunk");
        tx.commit().await.unwrap();
        assert!(db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap().is_none());

        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let v = tx.contact_import(up.id).await.unwrap();
        assert_eq!((v.status.as_str(), v.processed_rows, v.created, v.updated, v.rejected.len()), ("done", 8, 1, 1, 6));
        let ravi = tx.contact_record(existing.id).await.unwrap();
        assert_eq!((ravi.name.as_deref(), ravi.fields["city"].as_str()), (Some("Ravi"), Some("Goa")));
        assert_eq!(ravi.consent, Some(ConsentState::OptOut));
        let page = tx.list_contacts(&ContactQuery { search: Some("asha".into()), limit: 10, ..Default::default() }).await.unwrap();
        let asha = &page.items[0];
        assert_eq!(asha.tags[0].name, "vip");
        let ledger = tx.consent(asha.id).await.unwrap();
        assert_eq!((ledger.state, ledger.events[0].source), (Some(ConsentState::OptIn), ConsentSource::Import));
        assert_eq!(ledger.events[0].evidence, "Shop sign-up sheet, May");
        assert_eq!(tx.consent(stopped.id).await.unwrap().state, Some(ConsentState::OptOut), "a STOP survives an import");
    }

    async fn large_imports_go_in_chunks_and_files_are_bounded(db) {
        let ctx = admin(&db.store, "chunks").await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let mut csv = String::from("phone\n");
        for i in 0..450 {
            csv.push_str(&format!("+1415666{i:04}\n"));
        }
        let up = tx.upload_import("many.csv", &csv).await.unwrap();
        tx.start_import(up.id, &mapping(&[("phone", "phone")], None)).await.unwrap();
        assert!(matches!(tx.upload_import("x.csv", "phone\n").await, Err(StoreError::Invalid(_))));
        assert!(matches!(tx.upload_import("x.csv", "a,b\n1,2,3\n").await, Err(StoreError::Invalid(_))));
        tx.commit().await.unwrap();
        let mut chunks = 0;
        while let Some((wctx, id)) = db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap() {
            let mut tx = db.store.begin(&wctx).await.unwrap();
            tx.import_next_chunk(id).await.unwrap();
            tx.commit().await.unwrap();
            chunks += 1;
            let mut tx = db.store.begin_read(&ctx).await.unwrap();
            let v = tx.contact_import(up.id).await.unwrap();
            assert_eq!(v.processed_rows, (chunks * 200).min(450), "progress after each chunk");
        }
        assert_eq!(chunks, 3);
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let v = tx.contact_import(up.id).await.unwrap();
        assert_eq!((v.status.as_str(), v.created), ("done", 450));
    }

    async fn an_import_kept_as_one_file_and_resumed_finds_repeats_of_its_earlier_chunks(db) {
        use frontdesk_store::imports::Phase;
        let ctx = admin(&db.store, "resumed").await;
        // 300 numbers; line 302 repeats line 2, which the first chunk imported.
        let mut csv = String::from("phone\n");
        for i in 0..300 {
            csv.push_str(&format!("+1415888{i:04}\n"));
        }
        csv.push_str("+14158880000\n");
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let up = tx.upload_import("resumed.csv", &csv).await.unwrap();
        tx.start_import(up.id, &mapping(&[("phone", "phone")], None)).await.unwrap();
        tx.commit().await.unwrap();
        let (wctx, id) = db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap().unwrap();
        let mut tx = db.store.begin(&wctx).await.unwrap();
        assert!(tx.import_next_chunk(id).await.unwrap());
        tx.commit().await.unwrap();
        // As an import begun before rows and keys had their own tables left it.
        db.raw_execute(&[
            format!("UPDATE contact_imports SET csv = '{csv}' WHERE filename = 'resumed.csv'"),
            "DELETE FROM contact_import_rows".into(),
            "DELETE FROM contact_import_keys".into(),
        ])
        .await
        .unwrap();
        while let Some((wctx, id)) = db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap() {
            let mut tx = db.store.begin(&wctx).await.unwrap();
            tx.import_next_chunk(id).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let v = tx.contact_import(up.id).await.unwrap();
        assert_eq!((v.status.as_str(), v.processed_rows, v.created), ("done", 301, 300));
        let rejected = tx.import_rejections(up.id, Phase::Import).await.unwrap();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0].line, 302);
        assert!(rejected[0].reason.contains("duplicate of line 2"), "{rejected:?}");
    }

    async fn duplicates_are_found_across_chunks_and_every_rejected_row_is_kept(db) {
        use frontdesk_store::imports::{Phase, REPORT_ROWS};
        let ctx = admin(&db.store, "rejects").await;
        // 300 good numbers, then 100 repeats of the first 100 (in later chunks), then 1,100
        // rows without a valid number: 1,200 rejected, more than a report shows.
        let mut csv = String::from("name,phone\n");
        for i in 0..1500 {
            let phone = match i {
                0..300 => format!("+1415777{i:04}"),
                300..400 => format!("+1 415 777 {:04}", i - 300),
                _ => "12345".to_string(),
            };
            csv.push_str(&format!("Person {i},{phone}\n"));
        }
        let m = mapping(&[("name", "name"), ("phone", "phone")], None);
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let up = tx.upload_import("big.csv", &csv).await.unwrap();
        let report = tx.dry_run_import(up.id, &m).await.unwrap();
        assert_eq!((report.total_rows, report.created, report.updated), (1500, 300, 0));
        assert_eq!((report.rejected_count, report.duplicate_count, report.rejected.len()), (1200, 100, REPORT_ROWS));
        assert_eq!(report.rejected[0].line, 302, "the first repeat (of line 2)");
        assert!(report.rejected[0].reason.contains("duplicate of line 2"), "{:?}", report.rejected[0]);
        let all = tx.import_rejections(up.id, Phase::DryRun).await.unwrap();
        assert_eq!(all.len(), 1200);
        assert_eq!(all.last().unwrap().line, 1501);
        // A second dry run replaces the first one's rows.
        tx.dry_run_import(up.id, &m).await.unwrap();
        assert_eq!(tx.import_rejections(up.id, Phase::DryRun).await.unwrap().len(), 1200);
        tx.start_import(up.id, &m).await.unwrap();
        tx.commit().await.unwrap();
        let mut chunks = 0;
        while let Some((wctx, id)) = db.store.claim_import(now_micros(), Duration::seconds(60)).await.unwrap() {
            let mut tx = db.store.begin(&wctx).await.unwrap();
            tx.import_next_chunk(id).await.unwrap();
            tx.commit().await.unwrap();
            chunks += 1;
        }
        assert_eq!(chunks, 8);
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let v = tx.contact_import(up.id).await.unwrap();
        assert_eq!((v.status.as_str(), v.processed_rows, v.created, v.updated), ("done", 1500, 300, 0));
        assert_eq!((v.rejected_count, v.duplicate_count, v.rejected.len()), (1200, 100, REPORT_ROWS));
        // Line 400 repeats line 100, which an earlier chunk imported.
        let all = tx.import_rejections(up.id, Phase::Import).await.unwrap();
        assert_eq!(all.len(), 1200);
        let line_400 = all.iter().find(|r| r.line == 400).unwrap();
        assert!(line_400.reason.contains("duplicate of line 100"), "{line_400:?}");
        let who = |p: &str| frontdesk_store::CustomerIdentity { phone: Some(frontdesk_domain::E164::parse(p).unwrap()), ..Default::default() };
        assert!(tx.find_contact(&who("+14157770299")).await.unwrap().is_some(), "the last good row's contact");
        assert!(tx.find_contact(&who("+14157770300")).await.unwrap().is_none());
    }
}

/// Erasure's clearing of an import's rows (`legacy`: an import whose file was kept whole,
/// as before rows had their own table).
async fn erasure_of_import_rows(db: &frontdesk_store::testing::TestDb, legacy: bool) {
    use frontdesk_store::imports::Phase;
    let ctx = admin(&db.store, "erase-rows").await;
    let mut tx = db.store.begin(&ctx).await.unwrap();
    let csv =
        "Name,Mobile\nAsha Rao,+91 98765 43210\nRavi,+14155550100\nAsha again,+919876543210\n";
    let up = tx.upload_import("people.csv", csv).await.unwrap();
    tx.start_import(
        up.id,
        &mapping(&[("Name", "name"), ("Mobile", "phone")], None),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (wctx, id) = db
        .store
        .claim_import(now_micros(), Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    let mut tx = db.store.begin(&wctx).await.unwrap();
    assert!(!tx.import_next_chunk(id).await.unwrap());
    tx.commit().await.unwrap();
    if legacy {
        // As an import uploaded before rows had their own table left it: the file in
        // `contact_imports.csv`, its rejected rows listed in the row.
        db.raw_execute(&[
            format!("UPDATE contact_imports SET csv = '{csv}', rejected = '[{{\"line\":4,\"reason\":\"duplicate of line 2 (same number or user id)\"}}]' WHERE filename = 'people.csv'"),
            "DELETE FROM contact_import_rows".into(),
            "DELETE FROM contact_import_rejections".into(),
            "DELETE FROM contact_import_keys".into(),
        ])
        .await
        .unwrap();
    }
    let mut tx = db.store.begin(&ctx).await.unwrap();
    assert_eq!(
        tx.import_rejections(up.id, Phase::Import)
            .await
            .unwrap()
            .len(),
        1,
        "line 4 repeats line 2"
    );
    let who = frontdesk_store::CustomerIdentity {
        phone: Some(frontdesk_domain::E164::parse("+919876543210").unwrap()),
        ..Default::default()
    };
    let asha = tx.find_contact(&who).await.unwrap().unwrap();
    tx.erase_contact(asha).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.begin_read(&ctx).await.unwrap();
    let rows = tx.import_file_rows(up.id, 0, 10).await.unwrap();
    assert_eq!(
        rows,
        [
            (2, vec![]),
            (3, vec!["Ravi".to_string(), "+14155550100".to_string()]),
            (4, vec![])
        ],
        "her row and its repeat are cleared, the other stays"
    );
    // Her number is no longer kept as a key (an import kept as one file had none).
    let keys: &[&str] = if legacy { &[] } else { &["+14155550100"] };
    assert_eq!(tx.import_keys(up.id).await.unwrap(), keys);
    tx.commit().await.unwrap();
}

/// A member in a custom role with exactly these permissions.
async fn member_with(store: &Store, admin: &TenantCtx, name: &str, perms: &[&str]) -> TenantCtx {
    let mut tx = store.begin(admin).await.unwrap();
    let role = tx
        .create_role(
            name,
            frontdesk_domain::PermissionSet::parse_names(perms.iter().copied()).unwrap(),
            "",
            now_micros(),
        )
        .await
        .unwrap();
    let email = Email::parse(&format!("{name}@people.example")).unwrap();
    let (_, token) = tx
        .create_invitation(&email, role.id, Duration::days(1), now_micros())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store
        .accept_invitation_as_new_user(token.expose_secret(), name, HASH, now_micros())
        .await
        .unwrap()
        .1
}

both_backends! {
    async fn an_export_needs_a_second_person_and_keeps_numbers_masked_for_the_requester(db) {
        let ctx = admin(&db.store, "export").await;
        let clerk = member_with(&db.store, &ctx, "clerk", &["contacts.read", "contacts.export"]).await;
        let manager = member(&db.store, &ctx, "manager", BuiltinRole::Manager).await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        tx.create_field("city", "City", FieldKind::Text, &[]).await.unwrap();
        tx.create_contact(&ContactInput {
            name: Some("=cmd|' /C calc'!A0".into()),
            phone: Some("+919876543210".into()),
            fields: [("city".to_string(), json!("Pune, West"))].into(),
            ..Default::default()
        }).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.store.begin(&clerk).await.unwrap();
        let req = tx.request_export(None).await.unwrap();
        let err = tx.download_export(req.id, now_micros()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("export_not_approved")));
        let err = tx.decide_export(req.id, true).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("own_export")), "the requester cannot approve");
        tx.commit().await.unwrap();

        let mut tx = db.store.begin(&ctx).await.unwrap();
        let v = tx.decide_export(req.id, true).await.unwrap();
        assert_eq!(v.status, "approved");
        assert!(matches!(tx.decide_export(req.id, false).await, Err(StoreError::Conflict("export_decided"))));
        // Only the requester downloads it.
        assert!(matches!(tx.download_export(req.id, now_micros()).await, Err(StoreError::NotFound)));
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(&manager).await.unwrap();
        assert!(matches!(tx.download_export(req.id, now_micros()).await, Err(StoreError::NotFound)));
        drop(tx);

        let mut tx = db.store.begin(&clerk).await.unwrap();
        let csv = tx.download_export(req.id, now_micros()).await.unwrap();
        tx.commit().await.unwrap();
        assert!(csv.starts_with("id,name,whatsapp_name,phone"), "{csv}");
        assert!(!csv.contains("8765432"), "the clerk's role sees masked numbers: {csv}");
        assert!(csv.contains("\"Pune, West\""), "{csv}");
        assert!(csv.contains(",'=cmd"), "a formula is defused: {csv}");
        let audit = db.store.audit_events(&ctx, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        let actions: Vec<&str> = audit.events.iter().map(|e| e.action.as_str()).collect();
        for a in ["contact_export.requested", "contact_export.approved", "contact_export.downloaded"] {
            assert!(actions.contains(&a), "{a} in {actions:?}");
        }
        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        assert_eq!(tx.contact_export(req.id).await.unwrap().downloads, 1);
    }
}

both_backends! {
    async fn erasure_clears_the_contacts_rows_of_every_import(db) {
        erasure_of_import_rows(&db, false).await;
    }

    async fn erasure_clears_the_rows_of_an_import_kept_as_one_file(db) {
        erasure_of_import_rows(&db, true).await;
    }

    async fn erasure_removes_personal_data_and_leaves_tombstones(db) {
        use frontdesk_domain::audience::{ConsentSource, ConsentState, Rule};
        let ctx = admin(&db.store, "erase").await;
        let ch = channel(&db.store, &ctx).await;
        let mut tx = db.store.begin(&ctx).await.unwrap();
        tx.create_field("city", "City", FieldKind::Text, &[]).await.unwrap();
        let vip = tx.create_tag("vip").await.unwrap();
        let c = tx.create_contact(&ContactInput {
            name: Some("Asha Rao".into()),
            phone: Some("+919876543210".into()),
            email: Some("asha@example.com".into()),
            fields: [("city".to_string(), json!("Pune"))].into(),
            ..Default::default()
        }).await.unwrap();
        tx.set_contact_tag(c.id, vip.id, true).await.unwrap();
        tx.record_consent(c.id, ConsentState::OptOut, ConsentSource::Keyword, "STOP").await.unwrap();
        tx.commit().await.unwrap();
        wrote(&db.store, &ctx, ch, c.id, 1).await;

        let mut tx = db.store.begin(&ctx).await.unwrap();
        let report = tx.erase_contact(c.id).await.unwrap();
        assert_eq!(report.messages, 1);
        tx.commit().await.unwrap();

        let mut tx = db.store.begin_read(&ctx).await.unwrap();
        let e = tx.contact_record(c.id).await.unwrap();
        assert!(e.erased_at.is_some());
        assert_eq!((e.name, e.phone, e.email), (None, None, None));
        assert_eq!(e.user_id, Some(format!("erased.{}", c.id)));
        assert!(e.fields.is_empty() && e.tags.is_empty());
        assert_eq!(e.consent, Some(ConsentState::OptOut), "the opt-out proof stays");
        let conv = tx.find_conversation(ch, c.id).await.unwrap().unwrap();
        let msgs = tx.conversation_messages(conv.id, 10).await.unwrap();
        assert_eq!(msgs[0].preview, "[erased]");
        assert_eq!(msgs[0].content, json!({ "erased": true }));
        assert!(tx.list_contacts(&ContactQuery { limit: 10, ..Default::default() }).await.unwrap().items.is_empty());
        assert_eq!(tx.preview_rule(&Rule::all(), now_micros()).await.unwrap().count, 0, "in no audience");
        drop(tx);
        let audit = db.store.audit_events(&ctx, &AuditQuery { limit: 50, ..Default::default() }).await.unwrap();
        let erased = audit.events.iter().find(|e| e.action == "contact.erased").unwrap();
        assert!(!erased.data.to_string().contains("Asha"));
        // The number is free again: the customer writing later is a new contact.
        let mut tx = db.store.begin(&ctx).await.unwrap();
        let again = tx.create_contact(&person("New", "+919876543210")).await.unwrap();
        assert_ne!(again.id, c.id);
        tx.commit().await.unwrap();
    }
}
