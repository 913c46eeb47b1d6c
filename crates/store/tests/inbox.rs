//! The team inbox's store: visibility, filters, pages, search, masking, round-robin,
//! snooze, notes and notifications, audit and events — on both backends.

use frontdesk_domain::{BuiltinRole, ChannelId, ConversationId, E164, Email, TeamId, UserId};
use frontdesk_store::inbox::{
    AutoAssign, Availability, Cursor, ListQuery, ListView, ReadMark, StatusChange, UnreadCounts,
    Viewer,
};
use frontdesk_store::{
    AuditQuery, CustomerIdentity, EventKind, Inbound, InboundRecord, NewChannel, Provider, SignUp,
    Store, StoreError, TenantCtx, both_backends, now_micros,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

async fn admin(store: &Store, slug: &str) -> TenantCtx {
    let email = Email::parse(&format!("admin@{slug}.example")).unwrap();
    store
        .sign_up(SignUp {
            org_name: &format!("Clinic {slug}"),
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

/// A new member of the admin's organisation in a built-in role.
async fn member(store: &Store, admin: &TenantCtx, name: &str, role: BuiltinRole) -> TenantCtx {
    member_as(store, admin, name, name, role).await
}

/// A new member whose display name is `name` (names may repeat; addresses may not).
async fn member_as(
    store: &Store,
    admin: &TenantCtx,
    address: &str,
    name: &str,
    role: BuiltinRole,
) -> TenantCtx {
    let mut tx = store.begin(admin).await.unwrap();
    let role_id = tx
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.builtin == Some(role))
        .unwrap()
        .id;
    let email = Email::parse(&format!("{address}@people.example")).unwrap();
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

async fn channel(store: &Store, ctx: &TenantCtx, tag: &str) -> ChannelId {
    let mut tx = store.begin(ctx).await.unwrap();
    let (view, _) = tx
        .create_channel(NewChannel {
            name: format!("Number {tag}"),
            provider: Provider::Cloud,
            phone_number_id: format!("pn{tag}"),
            waba_id: format!("waba{tag}"),
            display_number: "+15550001111".into(),
            api_base_url: "http://127.0.0.1:1/graph".into(),
            api_version: "v23.0".into(),
            simulated: false,
            access_token: SecretString::from(format!("{tag}-token")),
            app_secret: Some(SecretString::from(format!("{tag}-secret"))),
            verify_token: None,
            throughput_mps: 80,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    view.id
}

async fn team(store: &Store, admin: &TenantCtx, name: &str, members: &[UserId]) -> TeamId {
    let mut tx = store.begin(admin).await.unwrap();
    let t = tx.create_team(name, now_micros()).await.unwrap();
    for m in members {
        tx.set_team_member(t.id, *m, true).await.unwrap();
    }
    tx.commit().await.unwrap();
    t.id
}

/// A customer message; returns its conversation.
async fn inbound(
    store: &Store,
    ctx: &TenantCtx,
    ch: ChannelId,
    phone: &str,
    name: &str,
    body: &str,
    at: OffsetDateTime,
) -> ConversationId {
    let mut tx = store.begin(ctx).await.unwrap();
    let contact = tx
        .upsert_contact(&CustomerIdentity {
            phone: Some(E164::parse(phone).unwrap()),
            name: Some(name.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = tx
        .record_inbound(
            ch,
            contact,
            &InboundRecord {
                provider_message_id: format!("wamid.{}", uuid::Uuid::now_v7()),
                kind: "text".into(),
                content: serde_json::json!({ "from": phone.trim_start_matches('+'), "type": "text", "text": { "body": body } }).to_string(),
                preview: body.into(),
                reply_to: None,
                provider_at: at,
                media: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    match r {
        Inbound::New { conversation, .. } => conversation,
        Inbound::Duplicate => panic!("duplicate"),
    }
}

/// The counts as the list shows them (a read transaction: cached when it can be).
async fn shown_counts(store: &Store, ctx: &TenantCtx) -> UnreadCounts {
    let mut tx = store.begin_read(ctx).await.unwrap();
    let counts = tx
        .list_conversations(&Viewer::of(ctx), &query(ListView::All))
        .await
        .unwrap()
        .unread;
    tx.commit().await.unwrap();
    counts
}

/// The counts counted afresh (a write transaction never uses the cache; rolled back, so it
/// drops nothing either).
async fn true_counts(store: &Store, ctx: &TenantCtx) -> UnreadCounts {
    let mut tx = store.begin(ctx).await.unwrap();
    let counts = tx.unread_counts(&Viewer::of(ctx)).await.unwrap();
    drop(tx);
    counts
}

fn counts(mine: i64, unassigned: i64, all: i64) -> UnreadCounts {
    UnreadCounts {
        mine,
        unassigned,
        all,
    }
}

fn query(view: ListView) -> ListQuery {
    ListQuery {
        view,
        team: None,
        channel: None,
        status: "active".into(),
        label: None,
        search: None,
        after: None,
        limit: 50,
    }
}

both_backends! {
    async fn read_marks_commit_without_waiting_for_the_disk_and_other_writes_still_wait(db) {
        let s = &db.store;
        let boss = admin(s, "durable").await;
        let (ordinary, relaxed) = s.write_durability(&boss).await.unwrap();
        match s.backend() {
            frontdesk_store::Backend::Sqlite => {
                assert_eq!(ordinary, "2", "synchronous=FULL for every ordinary write");
                assert_eq!(relaxed, "1", "synchronous=NORMAL for read marks");
            }
            frontdesk_store::Backend::Postgres => {
                assert_eq!(ordinary, "on");
                assert_eq!(relaxed, "off");
            }
        }
        // The relaxed setting stays inside its transaction: the next ordinary write is
        // durable again.
        assert_eq!(s.write_durability(&boss).await.unwrap().0, ordinary);
    }

    async fn an_agent_sees_only_their_teams_inboxes_and_what_is_assigned_to_them(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ana = member(s, &boss, "ana", BuiltinRole::Agent).await;
        let bob = member(s, &boss, "bob", BuiltinRole::Agent).await;
        let (ch_a, ch_b) = (channel(s, &boss, "a").await, channel(s, &boss, "b").await);
        let team_a = team(s, &boss, "A", &[ana.user_id().unwrap()]).await;
        let team_b = team(s, &boss, "B", &[bob.user_id().unwrap()]).await;
        let mut tx = s.begin(&boss).await.unwrap();
        tx.set_inbox_settings(ch_a, &[team_a], AutoAssign::Off, None).await.unwrap();
        tx.set_inbox_settings(ch_b, &[team_b], AutoAssign::Off, None).await.unwrap();
        tx.commit().await.unwrap();
        let t = now_micros() - Duration::minutes(10);
        let on_a = inbound(s, &boss, ch_a, "+919876543210", "Asha Kumar", "my tooth hurts", t).await;
        let on_b = inbound(s, &boss, ch_b, "+14155550100", "Bill", "billing question", t + Duration::seconds(1)).await;

        let (va, vb, vboss) = (Viewer::of(&ana), Viewer::of(&bob), Viewer::of(&boss));
        let mut tx = s.begin_read(&ana).await.unwrap();
        let page = tx.list_conversations(&va, &query(ListView::All)).await.unwrap();
        assert_eq!(page.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![on_a]);
        assert_eq!(page.unread.all, 1);
        // Masked for an agent, in the list and in the message content.
        assert_eq!(page.items[0].contact.phone.as_deref(), Some("+91 98•••••210"));
        assert!(page.items[0].contact.phone_masked);
        assert!(matches!(tx.conversation_detail(&va, on_b, None, 50, now_micros()).await, Err(StoreError::NotFound)));
        let d = tx.conversation_detail(&va, on_a, None, 50, now_micros()).await.unwrap();
        assert_eq!(d.messages[0].content["from"], "+91 98•••••210");
        assert!(d.window_open);
        tx.commit().await.unwrap();
        // Acting on another team's conversation: not there.
        let mut tx = s.begin(&ana).await.unwrap();
        assert!(matches!(tx.change_status(&va, on_b, StatusChange::Resolve, now_micros()).await, Err(StoreError::NotFound)));
        assert!(matches!(tx.add_note(&va, on_b, "hi", &[]).await, Err(StoreError::NotFound)));
        drop(tx);
        // Assigned to ana, B's conversation becomes visible to her.
        let mut tx = s.begin(&boss).await.unwrap();
        tx.assign_conversation(&vboss, on_b, ana.user_id(), None).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&ana).await.unwrap();
        let mine = tx.list_conversations(&va, &query(ListView::Mine)).await.unwrap();
        assert_eq!(mine.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![on_b]);
        assert_eq!(tx.list_conversations(&va, &query(ListView::All)).await.unwrap().items.len(), 2);
        tx.commit().await.unwrap();
        // The admin (read_all, view_phone) sees both, unmasked.
        let mut tx = s.begin_read(&boss).await.unwrap();
        let all = tx.list_conversations(&vboss, &query(ListView::All)).await.unwrap();
        assert_eq!(all.items.len(), 2);
        assert_eq!(all.items[1].contact.phone.as_deref(), Some("+919876543210"));
        let unassigned = tx.list_conversations(&vboss, &query(ListView::Unassigned)).await.unwrap();
        assert_eq!(unassigned.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![on_a]);
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&bob).await.unwrap();
        assert!(tx.list_conversations(&vb, &query(ListView::All)).await.unwrap().items.iter().all(|i| i.id == on_b));
        tx.commit().await.unwrap();
        // Every change was audited.
        let audit = s.audit_events(&boss, &AuditQuery { limit: 500, ..Default::default() }).await.unwrap();
        assert!(audit.events.iter().any(|e| e.action == "conversation.assigned" && e.target_id == on_b.to_string()));
        assert!(audit.events.iter().any(|e| e.action == "inbox.updated"));
    }

    async fn pages_are_stable_while_new_messages_arrive_and_filters_combine(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ch = channel(s, &boss, "a").await;
        let ch2 = channel(s, &boss, "b").await;
        let base = now_micros() - Duration::hours(1);
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(inbound(s, &boss, ch, &format!("+9198765432{i:02}"), &format!("P{i}"), "hello", base + Duration::seconds(i)).await);
        }
        let other = inbound(s, &boss, ch2, "+14155550199", "Zed", "hello", base).await;
        let v = Viewer::of(&boss);
        let mut q = query(ListView::All);
        q.channel = Some(ch);
        q.limit = 3;
        let mut tx = s.begin_read(&boss).await.unwrap();
        let p1 = tx.list_conversations(&v, &q).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(p1.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[6], ids[5], ids[4]]);
        // A new message moves a conversation to the top; the next page neither repeats nor skips
        // the ones after the cursor.
        inbound(s, &boss, ch, "+919876543200", "P0", "again", now_micros()).await;
        q.after = Cursor::decode(p1.next_cursor.as_deref().unwrap());
        let mut tx = s.begin_read(&boss).await.unwrap();
        let p2 = tx.list_conversations(&v, &q).await.unwrap();
        assert_eq!(p2.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[3], ids[2], ids[1]]);
        assert!(p2.next_cursor.is_none(), "ids[0] moved above the cursor: nothing is left");
        assert!(Cursor::decode("junk").is_none());
        tx.commit().await.unwrap();
        // Labels and status filters.
        let mut tx = s.begin(&boss).await.unwrap();
        let vip = tx.create_label("VIP", "#ff0000").await.unwrap();
        assert!(matches!(tx.create_label("VIP", "#00ff00").await, Err(StoreError::Conflict("label_exists"))));
        tx.set_conversation_label(&v, ids[2], vip.id, true).await.unwrap();
        tx.set_conversation_label(&v, other, vip.id, true).await.unwrap();
        tx.change_status(&v, other, StatusChange::Resolve, now_micros()).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&boss).await.unwrap();
        let mut q = query(ListView::All);
        q.label = Some(vip.id);
        let labelled = tx.list_conversations(&v, &q).await.unwrap();
        assert_eq!(labelled.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[2]], "resolved ones are not active");
        assert_eq!(labelled.items[0].labels[0].name, "VIP");
        q.status = "resolved".into();
        assert_eq!(tx.list_conversations(&v, &q).await.unwrap().items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![other]);
        q.status = "bogus".into();
        assert!(matches!(tx.list_conversations(&v, &q).await, Err(StoreError::Invalid(_))));
        tx.commit().await.unwrap();
    }

    async fn search_finds_text_names_and_numbers_but_masked_viewers_cannot_search_numbers(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ana = member(s, &boss, "ana", BuiltinRole::Agent).await;
        let ch = channel(s, &boss, "a").await;
        let t = team(s, &boss, "A", &[ana.user_id().unwrap()]).await;
        let mut tx = s.begin(&boss).await.unwrap();
        tx.set_inbox_settings(ch, &[t], AutoAssign::Off, None).await.unwrap();
        tx.commit().await.unwrap();
        let now = now_micros();
        let tooth = inbound(s, &boss, ch, "+919876543210", "Asha Kumar", "my Tooth hurts", now).await;
        let bill = inbound(s, &boss, ch, "+14155550100", "Bill", "invoice please", now).await;
        // Another organisation's matching text stays out.
        let other = admin(s, "beta").await;
        let och = channel(s, &other, "z").await;
        inbound(s, &other, och, "+919876543211", "Asha Other", "tooth again", now).await;
        let search = |q: &str| { let mut x = query(ListView::All); x.search = Some(q.into()); x };
        let (vb, va) = (Viewer::of(&boss), Viewer::of(&ana));
        let mut tx = s.begin_read(&boss).await.unwrap();
        let ids = |p: frontdesk_store::inbox::ConversationPage| p.items.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(tx.list_conversations(&vb, &search("tooth")).await.unwrap()), vec![tooth]);
        assert_eq!(ids(tx.list_conversations(&vb, &search("kuma")).await.unwrap()), vec![tooth]);
        assert_eq!(ids(tx.list_conversations(&vb, &search("5550100")).await.unwrap()), vec![bill]);
        assert!(matches!(tx.list_conversations(&vb, &search("ab")).await, Err(StoreError::Invalid(_))));
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&ana).await.unwrap();
        assert_eq!(ids(tx.list_conversations(&va, &search("voice")).await.unwrap()), vec![bill]);
        assert!(ids(tx.list_conversations(&va, &search("5550100")).await.unwrap()).is_empty(), "a masked viewer cannot find a number");
        assert!(ids(tx.list_conversations(&va, &search("210")).await.unwrap()).is_empty());
        tx.commit().await.unwrap();
    }

    async fn round_robin_takes_turns_among_online_agents_even_when_concurrent(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let agents = [
            member(s, &boss, "a1", BuiltinRole::Agent).await,
            member(s, &boss, "a2", BuiltinRole::Agent).await,
            member(s, &boss, "a3", BuiltinRole::Agent).await,
        ];
        let ids: Vec<UserId> = agents.iter().map(|a| a.user_id().unwrap()).collect();
        let ch = channel(s, &boss, "a").await;
        let t = team(s, &boss, "Desk", &ids).await;
        let mut tx = s.begin(&boss).await.unwrap();
        tx.set_inbox_settings(ch, &[t], AutoAssign::RoundRobin, Some(t)).await.unwrap();
        let now = now_micros();
        tx.set_availability(ids[0], Availability::Online, now).await.unwrap();
        tx.set_availability(ids[1], Availability::Online, now).await.unwrap();
        // a3 is online but was last seen long ago: it counts as away.
        tx.set_availability(ids[2], Availability::Online, now - Duration::hours(1)).await.unwrap();
        assert_eq!(tx.availability(ids[2], now).await.unwrap(), Availability::Away);
        tx.commit().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (s, boss) = (s.clone(), boss.clone());
            tasks.push(tokio::spawn(async move {
                inbound(&s, &boss, ch, &format!("+9198700000{i:02}"), "C", "hi", now_micros()).await
            }));
        }
        let mut convs = Vec::new();
        for t in tasks {
            convs.push(t.await.unwrap());
        }
        let mut tx = s.begin_read(&boss).await.unwrap();
        let v = Viewer::of(&boss);
        let mut counts = std::collections::BTreeMap::new();
        for c in &convs {
            let item = tx.conversation_item(&v, *c).await.unwrap();
            *counts.entry(item.assignee_id.expect("assigned")).or_insert(0) += 1;
            assert_eq!(item.team_id, Some(t));
        }
        tx.commit().await.unwrap();
        assert_eq!(counts.len(), 2, "only the two online agents: {counts:?}");
        assert!(counts.values().all(|n| *n == 4), "in turn: {counts:?}");
        let audit = s.audit_events(&boss, &AuditQuery { limit: 500, ..Default::default() }).await.unwrap();
        assert!(audit.events.iter().any(|e| e.action == "conversation.auto_assigned"));
    }

    async fn a_snoozed_conversation_wakes_on_time_or_when_the_customer_writes(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ch = channel(s, &boss, "a").await;
        let now = now_micros();
        let a = inbound(s, &boss, ch, "+919876543210", "A", "one", now).await;
        let b = inbound(s, &boss, ch, "+919876543211", "B", "two", now).await;
        let v = Viewer::of(&boss);
        let mut tx = s.begin(&boss).await.unwrap();
        tx.change_status(&v, a, StatusChange::Snooze(now + Duration::hours(1)), now).await.unwrap();
        tx.change_status(&v, b, StatusChange::Snooze(now + Duration::hours(1)), now).await.unwrap();
        assert!(matches!(tx.change_status(&v, b, StatusChange::Snooze(now - Duration::hours(1)), now).await, Err(StoreError::Invalid(_))));
        tx.commit().await.unwrap();
        assert_eq!(s.wake_snoozed(now + Duration::minutes(30)).await.unwrap(), 0);
        inbound(s, &boss, ch, "+919876543211", "B", "still there?", now + Duration::minutes(31)).await;
        let mut tx = s.begin_read(&boss).await.unwrap();
        assert_eq!(tx.conversation_item(&v, b).await.unwrap().status, "open");
        assert_eq!(tx.conversation_item(&v, a).await.unwrap().status, "snoozed");
        tx.commit().await.unwrap();
        let mut events = s.events().subscribe();
        assert_eq!(s.wake_snoozed(now + Duration::minutes(61)).await.unwrap(), 1);
        let e = events.try_recv().unwrap();
        assert_eq!((e.kind, e.conversation_id), (EventKind::ConversationUpdated, Some(a)));
        let mut tx = s.begin_read(&boss).await.unwrap();
        let item = tx.conversation_item(&v, a).await.unwrap();
        assert_eq!((item.status.as_str(), item.snoozed_until), ("open", None));
        tx.commit().await.unwrap();
    }

    async fn mentions_notify_members_and_reads_are_per_user(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ana = member(s, &boss, "ana", BuiltinRole::Agent).await;
        let ch = channel(s, &boss, "a").await;
        let c = inbound(s, &boss, ch, "+919876543210", "A", "one", now_micros()).await;
        inbound(s, &boss, ch, "+919876543210", "A", "two", now_micros()).await;
        let (vb, va) = (Viewer::of(&boss), Viewer::of(&ana));
        // Only a member who may read the conversation can be mentioned: give it to ana.
        let mut tx = s.begin(&boss).await.unwrap();
        tx.assign_conversation(&vb, c, ana.user_id(), None).await.unwrap();
        tx.commit().await.unwrap();
        let mut events = s.events().subscribe();
        let mut tx = s.begin(&boss).await.unwrap();
        assert_eq!(tx.conversation_item(&vb, c).await.unwrap().unread, 2);
        assert!(tx.mark_conversation_read(&vb, c).await.unwrap());
        assert!(!tx.mark_conversation_read(&vb, c).await.unwrap(), "nothing new to read");
        assert!(matches!(tx.add_note(&vb, c, "look", &[UserId::new()]).await, Err(StoreError::Invalid(_))));
        let note = tx.add_note(&vb, c, "@ana can you take this?", &[ana.user_id().unwrap()]).await.unwrap();
        assert!(events.try_recv().is_err(), "nothing is announced before commit");
        tx.commit().await.unwrap();
        let kinds: Vec<EventKind> = std::iter::from_fn(|| events.try_recv().ok()).map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::NoteNew, EventKind::Notification]);
        let mut tx = s.begin(&boss).await.unwrap();
        assert_eq!(tx.conversation_item(&vb, c).await.unwrap().unread, 0);
        // The admin's read is theirs only.
        assert_eq!(tx.notifications(boss.user_id().unwrap(), 10).await.unwrap().0.len(), 0);
        let (list, unread) = tx.notifications(ana.user_id().unwrap(), 10).await.unwrap();
        assert_eq!((list.len(), unread, list[0].note_id), (1, 1, Some(note.id)));
        // Another user cannot mark ana's notification read.
        assert!(matches!(tx.mark_notifications_read(boss.user_id().unwrap(), Some(list[0].id)).await, Err(StoreError::NotFound)));
        assert_eq!(tx.mark_notifications_read(ana.user_id().unwrap(), Some(list[0].id)).await.unwrap(), 1);
        assert_eq!(tx.notifications(ana.user_id().unwrap(), 10).await.unwrap().1, 0);
        // Ana, mentioned, may read the note.
        assert_eq!(tx.notes(&va, c).await.unwrap()[0].mentions, vec![ana.user_id().unwrap()]);
        assert_eq!(tx.notes(&vb, c).await.unwrap()[0].mentions, vec![ana.user_id().unwrap()]);
        tx.commit().await.unwrap();
    }

    async fn mentions_are_read_from_the_text_and_only_readers_may_be_mentioned(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ana = member(s, &boss, "ana", BuiltinRole::Agent).await;
        // Two members with one name: only the id in the token tells them apart.
        let sam1 = member_as(s, &boss, "sam1", "Sam Lee", BuiltinRole::Agent).await;
        let sam2 = member_as(s, &boss, "sam2", "Sam Lee", BuiltinRole::Agent).await;
        let bob = member(s, &boss, "bob", BuiltinRole::Agent).await;
        let meg = member(s, &boss, "meg", BuiltinRole::Manager).await;
        let eve = member_as(s, &boss, "eve", "<b>Eve</b>](user:x) [", BuiltinRole::Agent).await;
        let [ana_id, sam1_id, sam2_id, bob_id, meg_id, eve_id] =
            [&ana, &sam1, &sam2, &bob, &meg, &eve].map(|c| c.user_id().unwrap());
        let ch = channel(s, &boss, "a").await;
        let serving = team(s, &boss, "Front", &[ana_id, sam1_id, sam2_id, eve_id]).await;
        let mut tx = s.begin(&boss).await.unwrap();
        tx.set_inbox_settings(ch, &[serving], AutoAssign::Off, None).await.unwrap();
        tx.commit().await.unwrap();
        let c = inbound(s, &boss, ch, "+919876543210", "A", "hello", now_micros()).await;
        let vb = Viewer::of(&boss);

        // Who may be mentioned: the readers (the admin and the manager read everything, the
        // serving team's agents read its number); bob, in no team, may not.
        let mut tx = s.begin(&boss).await.unwrap();
        let who: Vec<UserId> = tx.mentionable(&vb, c).await.unwrap().into_iter().map(|m| m.user_id).collect();
        let mut expected = vec![boss.user_id().unwrap(), ana_id, sam1_id, sam2_id, meg_id, eve_id];
        expected.sort();
        let mut got = who.clone();
        got.sort();
        assert_eq!(got, expected);
        assert!(matches!(tx.mentionable(&Viewer::of(&bob), c).await, Err(StoreError::NotFound)));
        let tokens = tx.mentionable(&vb, c).await.unwrap();
        let token_of = |u: UserId| tokens.iter().find(|m| m.user_id == u).unwrap().token.clone();
        tx.commit().await.unwrap();

        // The token's id decides, not its name: a token that says "Admin" but carries
        // sam2's id mentions sam2 and is stored with sam2's name.
        let mut tx = s.begin(&boss).await.unwrap();
        let body = format!("@[Admin](user:{sam2_id}) please call, and {} too, {}", token_of(ana_id), token_of(ana_id));
        let note = tx.add_note(&vb, c, &body, &[ana_id, sam1_id, ana_id]).await.unwrap();
        assert_eq!(note.mentions, vec![sam2_id, ana_id, sam1_id], "text first, then explicit ids, no repeats");
        assert_eq!(note.body, format!("@[Sam Lee](user:{sam2_id}) please call, and @[ana](user:{ana_id}) too, @[ana](user:{ana_id})"));
        assert_eq!(
            serde_json::to_value(&note.parts[0]).unwrap(),
            serde_json::json!({ "kind": "mention", "user_id": sam2_id, "name": "Sam Lee" })
        );
        assert_eq!(serde_json::to_value(&note.parts[1]).unwrap()["text"], " please call, and ");
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&boss).await.unwrap();
        for (u, n) in [(sam2_id, 1), (ana_id, 1), (sam1_id, 1), (bob_id, 0), (meg_id, 0)] {
            assert_eq!(tx.notifications(u, 10).await.unwrap().0.len(), n, "notifications of {u}");
        }
        let (list, _) = tx.notifications(sam2_id, 10).await.unwrap();
        assert_eq!((list[0].actor_name.as_deref(), list[0].note_id), (Some("Admin"), Some(note.id)));
        tx.commit().await.unwrap();

        // Refusals write nothing: a member who may not read it (named), someone who is
        // not a member, too many people.
        let stranger = admin(s, "beta").await.user_id().unwrap();
        let mut tx = s.begin(&boss).await.unwrap();
        match tx.add_note(&vb, c, &format!("hey @[bob](user:{bob_id})"), &[]).await {
            Err(StoreError::Invalid(m)) => assert!(m.starts_with("bob may not see this conversation"), "{m}"),
            other => panic!("{other:?}"),
        }
        match tx.add_note(&vb, c, "hey", &[bob_id, sam1_id]).await {
            Err(StoreError::Invalid(m)) => assert!(m.contains("bob"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(tx.add_note(&vb, c, &format!("@[Admin](user:{stranger})"), &[]).await, Err(StoreError::Invalid(_))));
        let crowd: String = (0..21).map(|_| format!("@[x](user:{}) ", UserId::new())).collect();
        match tx.add_note(&vb, c, &crowd, &[]).await {
            Err(StoreError::Invalid(m)) => assert!(m.contains("at most 20"), "{m}"),
            other => panic!("{other:?}"),
        }
        tx.commit().await.unwrap();
        let mut tx = s.begin_read(&boss).await.unwrap();
        assert_eq!(tx.notes(&vb, c).await.unwrap().len(), 1);
        assert_eq!(tx.notifications(bob_id, 10).await.unwrap().0.len(), 0);
        tx.commit().await.unwrap();

        // A name made to break out of its token stays inside it (brackets become
        // parentheses); markup stays text for the page to escape.
        let mut tx = s.begin(&boss).await.unwrap();
        let note = tx.add_note(&vb, c, &token_of(eve_id), &[]).await.unwrap();
        assert_eq!(note.mentions, vec![eve_id]);
        assert_eq!(note.body, format!("@[<b>Eve</b>)(user:x) (](user:{eve_id})"));
        assert_eq!(
            serde_json::to_value(&note.parts).unwrap(),
            serde_json::json!([{ "kind": "mention", "user_id": eve_id, "name": "<b>Eve</b>)(user:x) (" }])
        );
        tx.commit().await.unwrap();
        // Mentions are audited with the note.
        let audit = s.audit_events(&boss, &AuditQuery { action: Some("note.created".into()), limit: 500, ..Default::default() }).await.unwrap();
        assert!(audit.events.iter().any(|e| e.data["mentions"] == serde_json::json!([sam2_id, ana_id, sam1_id])));
    }

    async fn quick_replies_are_unique_by_shortcut_and_render_for_a_conversation(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ch = channel(s, &boss, "a").await;
        let c = inbound(s, &boss, ch, "+919876543210", "Asha Kumar", "hi", now_micros()).await;
        let v = Viewer::of(&boss);
        let mut tx = s.begin(&boss).await.unwrap();
        let qr = tx.save_quick_reply(None, "hello", "Hi {{contact.first_name}}, this is {{agent.name}}.").await.unwrap();
        assert!(matches!(tx.save_quick_reply(None, "hello", "x").await, Err(StoreError::Conflict("shortcut_taken"))));
        assert!(matches!(tx.save_quick_reply(None, "Bad Shortcut", "x").await, Err(StoreError::Invalid(_))));
        assert_eq!(tx.render_quick_reply_for(&v, qr.id, c, "Ravi").await.unwrap(), "Hi Asha, this is Ravi.");
        tx.save_quick_reply(Some(qr.id), "hi", "Hello {{contact.name}}").await.unwrap();
        assert_eq!(tx.quick_replies().await.unwrap()[0].shortcut, "hi");
        tx.delete_quick_reply(qr.id).await.unwrap();
        assert!(matches!(tx.delete_quick_reply(qr.id).await, Err(StoreError::NotFound)));
        tx.commit().await.unwrap();
    }

    async fn sidebar_counts_follow_reads_messages_and_assignments_and_are_never_left_stale(db) {
        let s = &db.store;
        let boss = admin(s, "alpha").await;
        let ana = member(s, &boss, "ana", BuiltinRole::Agent).await;
        let other = admin(s, "beta").await;
        let ch = channel(s, &boss, "a").await;
        team(s, &boss, "Desk", &[ana.user_id().unwrap()]).await;
        let c1 = inbound(s, &boss, ch, "+919876543210", "A", "one", now_micros()).await;
        let c2 = inbound(s, &boss, ch, "+919876543211", "B", "two", now_micros()).await;
        let c3 = inbound(s, &boss, ch, "+919876543212", "C", "three", now_micros()).await;
        let other_c = inbound(s, &other, channel(s, &other, "b").await, "+919876543213", "D", "four", now_micros()).await;
        let vb = Viewer::of(&boss);
        let mut tx = s.begin(&boss).await.unwrap();
        tx.assign_conversation(&vb, c1, boss.user_id(), None).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(shown_counts(s, &boss).await, counts(1, 2, 3));
        assert_eq!(shown_counts(s, &boss).await, counts(1, 2, 3), "the second load (cached) agrees");

        // One batch across organisations and users: the admin reads c2 and c1, ana cannot
        // see c3 (no team serves the number), the other organisation reads its own.
        let marks = [
            ReadMark { ctx: boss.clone(), conversation: c2 },
            ReadMark { ctx: ana.clone(), conversation: c3 },
            ReadMark { ctx: other.clone(), conversation: other_c },
            ReadMark { ctx: boss.clone(), conversation: c1 },
            ReadMark { ctx: boss.clone(), conversation: other_c },
        ];
        assert_eq!(s.mark_read_batch(&marks).await.unwrap(), vec![true, false, true, true, false]);
        assert_eq!(shown_counts(s, &boss).await, counts(0, 1, 1));
        assert_eq!(true_counts(s, &boss).await, counts(0, 1, 1));
        assert_eq!(shown_counts(s, &other).await, counts(0, 0, 0));
        assert_eq!(s.mark_read_batch(&marks[..1]).await.unwrap(), vec![false], "nothing new to read");
        assert_eq!(shown_counts(s, &boss).await, counts(0, 1, 1));

        // A read by someone else leaves the admin's counts alone.
        let mut tx = s.begin(&boss).await.unwrap();
        tx.assign_conversation(&vb, c3, ana.user_id(), None).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(shown_counts(s, &boss).await, counts(0, 0, 1));
        assert_eq!(shown_counts(s, &ana).await, counts(1, 0, 1));
        assert_eq!(s.mark_read_batch(&[ReadMark { ctx: ana.clone(), conversation: c3 }]).await.unwrap(), vec![true]);
        assert_eq!(shown_counts(s, &boss).await, counts(0, 0, 1));
        assert_eq!(shown_counts(s, &ana).await, counts(0, 0, 0));
        assert_eq!(true_counts(s, &ana).await, counts(0, 0, 0));

        // A new message counts again at once.
        inbound(s, &boss, ch, "+919876543211", "B", "two again", now_micros()).await;
        assert_eq!(shown_counts(s, &boss).await, counts(0, 1, 2));

        // A read that began before a change, and counts after it commits, must not leave its
        // (possibly older) counts for the next load.
        let mut old = s.begin_read(&boss).await.unwrap();
        old.conversation_item(&vb, c1).await.unwrap();
        let mut tx = s.begin(&boss).await.unwrap();
        tx.change_status(&vb, c2, StatusChange::Resolve, now_micros()).await.unwrap();
        tx.commit().await.unwrap();
        old.unread_counts(&vb).await.unwrap();
        old.commit().await.unwrap();
        assert_eq!(shown_counts(s, &boss).await, counts(0, 0, 1));
        assert_eq!(true_counts(s, &boss).await, counts(0, 0, 1));
    }
}

/// Two processes on one PostgreSQL database: what one commits reaches the other's live
/// subscribers (once, and not back to itself), and the other's cached unread counts follow.
#[tokio::test]
async fn another_process_hears_committed_events_and_its_counts_follow() {
    let db = frontdesk_store::testing::TestDb::postgres().await;
    let a = &db.store;
    let b = db.store_with_vault(a.vault().clone()).await;
    let relay_a = a.relay_events().expect("PostgreSQL relays");
    let relay_b = b.relay_events().expect("PostgreSQL relays");
    let boss = admin(a, "alpha").await;
    let ch = channel(a, &boss, "a").await;
    let c1 = inbound(a, &boss, ch, "+919876543210", "A", "one", now_micros()).await;
    assert_eq!(shown_counts(&b, &boss).await, counts(0, 1, 1));

    let mut heard_by_a = a.events().subscribe();
    let mut heard_by_b = b.events().subscribe();
    // Nothing is heard of a rolled-back change.
    let mut tx = a.begin(&boss).await.unwrap();
    tx.add_note(&Viewer::of(&boss), c1, "draft", &[])
        .await
        .unwrap();
    drop(tx);
    let c2 = inbound(a, &boss, ch, "+919876543211", "B", "two", now_micros()).await;
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), heard_by_b.recv())
        .await
        .expect("the other process hears within 10 s")
        .unwrap();
    assert_eq!(
        (e.kind, e.conversation_id, e.org_id),
        (EventKind::MessageNew, Some(c2), boss.org_id())
    );
    // B's cached counts were dropped by the relayed event, not left for a second.
    assert_eq!(shown_counts(&b, &boss).await, counts(0, 2, 2));
    // A heard its own event once, from its own bus only.
    let own = heard_by_a.recv().await.unwrap();
    assert_eq!(
        (own.kind, own.conversation_id),
        (EventKind::MessageNew, Some(c2))
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(heard_by_a.try_recv().is_err(), "no echo of its own events");
    assert!(heard_by_b.try_recv().is_err(), "each event once");

    // A note with a body too large for one notification still arrives (without its body).
    let mut tx = a.begin(&boss).await.unwrap();
    tx.add_note(&Viewer::of(&boss), c1, &"€".repeat(4_000), &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), heard_by_b.recv())
        .await
        .expect("a large event is relayed too")
        .unwrap();
    assert_eq!((e.kind, e.conversation_id), (EventKind::NoteNew, Some(c1)));
    assert_eq!(e.data, serde_json::json!({ "truncated": true }));
    b.close().await;
    relay_b.await.unwrap();
    relay_a.abort();
}
