//! Clinic queues on both backends: configuration, joining, the life of a token, concurrent
//! "call next", reordering and moving, the board, history and reports.

use frontdesk_domain::queue::{QueueText, Span, TokenState, WeeklyHours};
use frontdesk_domain::{Actor, ChannelId, ContactId, E164, QueueId, UserId};
use frontdesk_store::{
    CustomerIdentity, JoinOutcome, NewChannel, Patient, Provider, QueueSettings, Store, StoreError,
    TenantCtx, both_backends,
};
use secrecy::SecretString;
use std::collections::HashSet;
use time::OffsetDateTime;
use time::macros::datetime;

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

fn settings(channel: ChannelId, name: &str, keyword: &str) -> QueueSettings {
    QueueSettings {
        channel_id: channel,
        name: name.into(),
        keywords: vec![keyword.into()],
        token_prefix: "A".into(),
        daily_cap: 100,
        position_step: 2,
        hours: None,
        holidays: vec![],
        texts: Default::default(),
        templates: Default::default(),
        doctors: vec![],
    }
}

async fn contact(store: &Store, ctx: &TenantCtx, n: u32) -> ContactId {
    let mut tx = store.begin(ctx).await.unwrap();
    let c = tx
        .upsert_contact(&CustomerIdentity {
            phone: Some(E164::parse(&format!("+9198765{n:05}")).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c
}

async fn join(
    store: &Store,
    ctx: &TenantCtx,
    q: QueueId,
    c: ContactId,
    at: OffsetDateTime,
) -> JoinOutcome {
    let mut tx = store.begin(ctx).await.unwrap();
    let out = tx
        .join_queue(q, &Patient::Contact(c), "en", true, at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    out
}

fn joined(o: JoinOutcome) -> frontdesk_store::TokenView {
    match o {
        JoinOutcome::Joined(t) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

// 2026-11-23 is a Monday.
const MONDAY_10: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

both_backends! {
    async fn keywords_are_normalised_and_unique_per_number(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let mut s = settings(ch, "Dr Mehta", "  dr   mehta ");
        s.keywords.push("Mehta".into());
        let q = tx.create_queue(&s).await.unwrap();
        assert_eq!(q.keywords, vec!["DR MEHTA".to_owned(), "MEHTA".to_owned()]);
        assert_eq!(tx.queue_for_keyword(ch, "Dr  MEHTA").await.unwrap(), Some(q.id));
        assert_eq!(tx.queue_for_keyword(ch, "join").await.unwrap(), None);
        let clash = tx.create_queue(&settings(ch, "Dr Rao", "DR MEHTA")).await;
        assert!(matches!(clash, Err(StoreError::Conflict("keyword_taken"))), "{clash:?}");
        tx.commit().await.unwrap();
        let mut tx = db.store.begin(&a).await.unwrap();
        assert!(matches!(tx.create_queue(&settings(ch, "Dr Rao", "status")).await, Err(StoreError::Invalid(_))));
        let mut bad = settings(ch, "Dr Rao", "RAO");
        bad.token_prefix = "a1".into();
        assert!(matches!(tx.create_queue(&bad).await, Err(StoreError::Invalid(_))));
        assert!(matches!(tx.create_queue(&settings(ch, "Dr Mehta", "OTHER")).await, Err(StoreError::Conflict("queue_name_taken"))));
    }

    async fn patients_get_numbered_tokens_once_and_the_cap_holds(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let mut s = settings(ch, "Dr Mehta", "JOIN");
        s.daily_cap = 3;
        let q = tx.create_queue(&s).await.unwrap();
        tx.commit().await.unwrap();
        let c1 = contact(&db.store, &a, 1).await;
        let c2 = contact(&db.store, &a, 2).await;
        let t1 = joined(join(&db.store, &a, q.id, c1, MONDAY_10).await);
        assert_eq!((t1.label.as_str(), t1.position, t1.state, t1.day.as_str()), ("A-001", Some(1), TokenState::Waiting, "2026-11-23"));
        let again = join(&db.store, &a, q.id, c1, MONDAY_10).await;
        assert_eq!(again, JoinOutcome::AlreadyIn(t1.clone()), "one live token per patient");
        let t2 = joined(join(&db.store, &a, q.id, c2, MONDAY_10).await);
        assert_eq!((t2.label.as_str(), t2.position), ("A-002", Some(2)));
        // A walk-in without a phone.
        let mut tx = db.store.begin(&a).await.unwrap();
        let w = match tx.check_in(q.id, "Ravi", None, "en", MONDAY_10).await.unwrap() {
            JoinOutcome::Joined(t) => t,
            o => panic!("{o:?}"),
        };
        assert_eq!((w.label.as_str(), w.walk_in_name.as_deref(), w.contact_id), ("A-003", Some("Ravi"), None));
        assert_eq!(tx.check_in(q.id, "Sita", None, "en", MONDAY_10).await.unwrap(), JoinOutcome::CapReached);
        tx.commit().await.unwrap();
        // The next day numbering starts again.
        let c3 = contact(&db.store, &a, 3).await;
        let t = joined(join(&db.store, &a, q.id, c3, MONDAY_10 + time::Duration::days(1)).await);
        assert_eq!((t.label.as_str(), t.day.as_str()), ("A-001", "2026-11-24"));
        // Yesterday's leftovers ended with their day: the new patient is first.
        assert_eq!(t.position, Some(1));
        let mut tx = db.store.begin_read(&a).await.unwrap();
        assert_eq!(tx.token(t1.id).await.unwrap().state, TokenState::Expired);
        tx.commit().await.unwrap();
    }

    async fn hours_holidays_and_pause_turn_patients_away(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.set_time_zone("Asia/Kolkata").await.unwrap();
        assert!(matches!(tx.set_time_zone("Mars/Olympus").await, Err(StoreError::Invalid(_))));
        let mut s = settings(ch, "Dr Mehta", "JOIN");
        let span = || vec![Span { open: "09:00".into(), close: "13:00".into() }];
        s.hours = Some(WeeklyHours { mon: span(), tue: span(), ..Default::default() });
        s.holidays = vec![time::macros::date!(2026 - 11 - 24)];
        let q = tx.create_queue(&s).await.unwrap();
        tx.commit().await.unwrap();
        let c = contact(&db.store, &a, 1).await;
        // 10:00 UTC is 15:30 in Kolkata: closed; Tuesday is a holiday, so it opens next Monday.
        assert_eq!(
            join(&db.store, &a, q.id, c, MONDAY_10).await,
            JoinOutcome::Closed(Some((time::macros::date!(2026 - 11 - 30), time::macros::time!(9:00))))
        );
        // 04:00 UTC is 09:30 there: open.
        joined(join(&db.store, &a, q.id, c, datetime!(2026-11-23 04:00 UTC)).await);
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.set_queue_paused(q.id, true, "Doctor called away, back at 11").await.unwrap();
        tx.commit().await.unwrap();
        let c2 = contact(&db.store, &a, 2).await;
        assert_eq!(
            join(&db.store, &a, q.id, c2, datetime!(2026-11-23 04:00 UTC)).await,
            JoinOutcome::Paused("Doctor called away, back at 11".into())
        );
    }

    async fn concurrent_call_next_calls_every_patient_exactly_once(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Mehta", "JOIN")).await.unwrap();
        for i in 0..40 {
            tx.check_in(q.id, &format!("Patient {i}"), None, "en", MONDAY_10).await.unwrap();
        }
        tx.commit().await.unwrap();
        // 60 callers at once for 40 patients: 40 calls get one each, 20 find nobody.
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(60));
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let (store, ctx, start) = (db.store.clone(), a.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                loop {
                    let mut tx = store.begin(&ctx).await.unwrap();
                    match tx.call_next(q.id, MONDAY_10).await {
                        Ok(t) => {
                            tx.commit().await.unwrap();
                            return t.map(|t| t.id);
                        }
                        // PostgreSQL may refuse a statement under contention (deadlock or
                        // serialization): the caller presses again.
                        Err(StoreError::Query(e)) if e.as_database_error().is_some() => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        let mut called = Vec::new();
        for t in tasks {
            if let Some(id) = t.await.unwrap() {
                called.push(id);
            }
        }
        let distinct: HashSet<_> = called.iter().collect();
        assert_eq!(called.len(), 40, "every patient called");
        assert_eq!(distinct.len(), 40, "nobody called twice");
        let mut tx = db.store.begin_read(&a).await.unwrap();
        assert!(tx.waiting_line(q.id).await.unwrap().is_empty());
        let board = tx.board(q.id, MONDAY_10).await.unwrap();
        assert_eq!(board.current.len(), 40);
        assert!(board.current.iter().all(|t| t.state == TokenState::Called));
        // One audit event per call.
        let mut called_events = 0;
        for id in &called {
            let h = tx.token_history(*id).await.unwrap();
            called_events += h.iter().filter(|e| e.action == "queue.called").count();
        }
        assert_eq!(called_events, 40);
    }

    async fn a_token_lives_through_call_serve_complete_with_its_history(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Mehta", "JOIN")).await.unwrap();
        let t1 = joined(tx.check_in(q.id, "Asha", None, "en", MONDAY_10).await.unwrap());
        let t2 = joined(tx.check_in(q.id, "Ravi", None, "en", MONDAY_10).await.unwrap());
        assert_eq!(tx.avg_consult_secs(q.id).await.unwrap(), frontdesk_store::queue::DEFAULT_CONSULT_SECS);
        let called = tx.call_next(q.id, MONDAY_10).await.unwrap().unwrap();
        assert_eq!(called.id, t1.id);
        assert_eq!(tx.token(t2.id).await.unwrap().position, Some(1));
        tx.recall(t1.id, MONDAY_10 + time::Duration::minutes(1)).await.unwrap();
        tx.start_serving(t1.id, MONDAY_10 + time::Duration::minutes(2)).await.unwrap();
        let done = tx.complete(t1.id, MONDAY_10 + time::Duration::minutes(11)).await.unwrap();
        assert_eq!((done.state, done.recalls), (TokenState::Complete, 1));
        // Recalled at minute 1, completed at 11: ten minutes.
        assert_eq!(tx.avg_consult_secs(q.id).await.unwrap(), 600);
        assert!(matches!(tx.complete(t1.id, MONDAY_10).await, Err(StoreError::Conflict("invalid_transition"))));
        // The second patient does not come.
        tx.call_next(q.id, MONDAY_10).await.unwrap().unwrap();
        tx.mark_no_show(t2.id, MONDAY_10 + time::Duration::minutes(15)).await.unwrap();
        assert_eq!(tx.call_next(q.id, MONDAY_10).await.unwrap(), None);
        let actions: Vec<String> = tx.token_history(t1.id).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["queue.checked_in", "queue.called", "queue.recalled", "queue.serving", "queue.completed"]);
        let screen = tx.screen(q.id).await.unwrap();
        assert_eq!((screen.now_serving.len(), screen.waiting), (0, 0));
        tx.commit().await.unwrap();
        let mut tx = db.store.begin_read(&a).await.unwrap();
        let report = tx.queue_report(None, time::macros::date!(2026 - 11 - 23), time::macros::date!(2026 - 11 - 23)).await.unwrap();
        assert_eq!(report.len(), 1);
        let r = &report[0];
        assert_eq!((r.joined, r.served, r.no_show, r.cancelled), (2, 1, 1, 0));
        assert_eq!(r.no_show_rate, 0.5);
        assert_eq!(r.avg_consult_minutes, 10.0);
        assert!(matches!(tx.queue_report(None, time::macros::date!(2026 - 11 - 23), time::macros::date!(2025 - 11 - 23)).await, Err(StoreError::Invalid(_))));
    }

    async fn reorder_and_move_keep_the_line_in_order_across_joins(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Mehta", "JOIN")).await.unwrap();
        let mut other = settings(ch, "Dr Rao", "RAO");
        other.token_prefix = "B".into();
        let r = tx.create_queue(&other).await.unwrap();
        let mut ids = Vec::new();
        for name in ["P1", "P2", "P3", "P4"] {
            ids.push(joined(tx.check_in(q.id, name, None, "en", MONDAY_10).await.unwrap()).id);
        }
        // P4 to the front, P1 to third.
        tx.reorder(ids[3], 1).await.unwrap();
        tx.reorder(ids[0], 3).await.unwrap();
        let names = |line: Vec<frontdesk_store::TokenView>| line.into_iter().map(|t| t.walk_in_name.unwrap()).collect::<Vec<_>>();
        assert_eq!(names(tx.waiting_line(q.id).await.unwrap()), ["P4", "P2", "P1", "P3"]);
        // A later join still lands at the end.
        tx.check_in(q.id, "P5", None, "en", MONDAY_10).await.unwrap();
        tx.reorder(ids[2], 99).await.unwrap();
        assert_eq!(names(tx.waiting_line(q.id).await.unwrap()), ["P4", "P2", "P1", "P5", "P3"]);
        tx.check_in(q.id, "P6", None, "en", MONDAY_10).await.unwrap();
        assert_eq!(names(tx.waiting_line(q.id).await.unwrap()), ["P4", "P2", "P1", "P5", "P3", "P6"]);
        // P2 moves to Dr Rao's queue, with that queue's numbering.
        let moved = tx.move_token(ids[1], r.id, MONDAY_10).await.unwrap();
        assert_eq!((moved.label.as_str(), moved.queue_id, moved.position), ("B-001", r.id, Some(1)));
        assert_eq!(names(tx.waiting_line(q.id).await.unwrap()), ["P4", "P1", "P5", "P3", "P6"]);
        let actions: Vec<String> = tx.token_history(ids[1]).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["queue.checked_in", "queue.moved"]);
        tx.cancel_token(ids[3], MONDAY_10).await.unwrap();
        assert!(matches!(tx.reorder(ids[3], 1).await, Err(StoreError::Conflict("invalid_transition"))));
        tx.commit().await.unwrap();
        // Another tenant sees none of it.
        let (b, _) = org_with_channel(&db.store, "beta").await;
        let mut tx = db.store.begin_read(&b).await.unwrap();
        assert!(matches!(tx.queue(q.id).await, Err(StoreError::NotFound)));
        assert!(matches!(tx.token(ids[0]).await, Err(StoreError::NotFound)));
        assert!(tx.queues().await.unwrap().is_empty());
    }

    async fn a_hundred_reorders_into_one_gap_renumber_instead_of_failing(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Mehta", "JOIN")).await.unwrap();
        let mut names = Vec::new();
        for i in 0..6 {
            let name = format!("P{i}");
            tx.check_in(q.id, &name, None, "en", MONDAY_10).await.unwrap();
            names.push(name);
        }
        tx.commit().await.unwrap();
        // Each round takes the last patient and puts them second: always into the gap right
        // after P0, which halves every time (midpoints run out after about 20).
        for round in 0..100 {
            let mut tx = db.store.begin(&a).await.unwrap();
            let line = tx.waiting_line(q.id).await.unwrap();
            let last = line.last().unwrap().clone();
            let moved = tx.reorder(last.id, 2).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(moved.position, Some(2), "round {round}");
            tx.commit().await.unwrap();
            let name = names.pop().unwrap();
            names.insert(1, name);
        }
        let mut tx = db.store.begin(&a).await.unwrap();
        let line: Vec<String> = tx.waiting_line(q.id).await.unwrap().into_iter().map(|t| t.walk_in_name.unwrap()).collect();
        assert_eq!(line, names, "the line is in the order the desk asked for");
        // A join after all that still lands at the end.
        tx.check_in(q.id, "Late", None, "en", MONDAY_10).await.unwrap();
        let line = tx.waiting_line(q.id).await.unwrap();
        assert_eq!(line.last().unwrap().walk_in_name.as_deref(), Some("Late"));
        // The reorders that had to spread the line out say so in their audit events.
        let mut renumbered = 0;
        for t in &line {
            renumbered += tx.token_history(t.id).await.unwrap().into_iter()
                .filter(|e| e.action == "queue.reordered" && e.data["renumbered"] == true).count();
        }
        assert!(renumbered >= 4, "100 halvings need several renumberings, saw {renumbered}");
        tx.commit().await.unwrap();
    }

    async fn live_tokens_expire_when_the_local_day_ends_and_patients_can_join_again(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.set_time_zone("Asia/Kolkata").await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Mehta", "JOIN")).await.unwrap();
        tx.commit().await.unwrap();
        // Monday 09:30 in Kolkata.
        let morning = datetime!(2026-11-23 04:00 UTC);
        let (c1, c2, c3, c4) = (contact(&db.store, &a, 1).await, contact(&db.store, &a, 2).await, contact(&db.store, &a, 3).await, contact(&db.store, &a, 4).await);
        let t1 = joined(join(&db.store, &a, q.id, c1, morning).await);
        let t2 = joined(join(&db.store, &a, q.id, c2, morning).await);
        let t3 = joined(join(&db.store, &a, q.id, c3, morning).await);
        let t4 = joined(join(&db.store, &a, q.id, c4, morning).await);
        let mut tx = db.store.begin(&a).await.unwrap();
        tx.call_next(q.id, morning).await.unwrap();
        tx.complete(t1.id, morning + time::Duration::minutes(10)).await.unwrap();
        tx.call_next(q.id, morning).await.unwrap();
        tx.start_serving(t2.id, morning).await.unwrap();
        tx.call_next(q.id, morning).await.unwrap();
        tx.commit().await.unwrap();

        // 23:30 local: still Monday, nothing ends. 00:10 local Tuesday (18:40 UTC Monday):
        // the three live tokens (with the doctor, called, waiting) expire; the complete one stays.
        assert_eq!(db.store.expire_past_queue_tokens(datetime!(2026-11-23 18:00 UTC)).await.unwrap(), 0);
        let midnight = datetime!(2026-11-23 18:40 UTC);
        assert_eq!(db.store.expire_past_queue_tokens(midnight).await.unwrap(), 1, "one queue changed");
        assert_eq!(db.store.expire_past_queue_tokens(midnight).await.unwrap(), 0, "a second sweep finds nothing");
        let mut tx = db.store.begin_read(&a).await.unwrap();
        let mut got = Vec::new();
        for id in [t1.id, t2.id, t3.id, t4.id] {
            got.push(tx.token(id).await.unwrap().state);
        }
        assert_eq!(got, [TokenState::Complete, TokenState::Expired, TokenState::Expired, TokenState::Expired]);
        let h: Vec<String> = tx.token_history(t2.id).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(h.last().map(String::as_str), Some("queue.expired"));
        let ev = tx.token_history(t4.id).await.unwrap().pop().unwrap();
        assert_eq!((ev.action.as_str(), ev.data["from"].as_str(), ev.data["day"].as_str()), ("queue.expired", Some("waiting"), Some("2026-11-23")));
        assert!(tx.waiting_line(q.id).await.unwrap().is_empty());
        let r = tx.queue_report(Some(q.id), time::macros::date!(2026 - 11 - 23), time::macros::date!(2026 - 11 - 23)).await.unwrap();
        assert_eq!((r[0].served, r[0].expired, r[0].no_show, r[0].called), (1, 3, 0, 3));
        tx.commit().await.unwrap();

        // Tuesday: the patient whose token lapsed joins again and gets the day's first number.
        let t = joined(join(&db.store, &a, q.id, c4, datetime!(2026-11-24 04:00 UTC)).await);
        assert_eq!((t.label.as_str(), t.day.as_str(), t.position), ("A-001", "2026-11-24", Some(1)));

        // Without a sweep in between, a join on the next day ends yesterday's leftovers itself.
        let wednesday = datetime!(2026-11-25 04:00 UTC);
        let again = joined(join(&db.store, &a, q.id, c4, wednesday).await);
        assert_eq!((again.label.as_str(), again.position), ("A-001", Some(1)));
        let mut tx = db.store.begin_read(&a).await.unwrap();
        assert_eq!(tx.token(t.id).await.unwrap().state, TokenState::Expired);
        tx.commit().await.unwrap();
    }

    async fn texts_and_templates_round_trip(db) {
        let (a, ch) = org_with_channel(&db.store, "alpha").await;
        let mut tx = db.store.begin(&a).await.unwrap();
        let mut s = settings(ch, "Dr Mehta", "JOIN");
        s.texts.entry("hi".into()).or_default().insert(QueueText::ComeIn, "{token} अंदर आइए".into());
        s.templates.insert(QueueText::ComeIn, frontdesk_store::TemplateRef { name: "queue_come_in".into(), language: "en".into() });
        let q = tx.create_queue(&s).await.unwrap();
        assert_eq!(q.texts, s.texts);
        assert_eq!(q.templates, s.templates);
        s.name = "Dr Mehta (OPD)".into();
        s.keywords = vec!["OPD".into()];
        let u = tx.update_queue(q.id, &s).await.unwrap();
        assert_eq!((u.name.as_str(), u.keywords.clone()), ("Dr Mehta (OPD)", vec!["OPD".to_owned()]));
        assert_eq!(tx.queue_for_keyword(ch, "JOIN").await.unwrap(), None, "the old keyword is free again");
        tx.commit().await.unwrap();
    }

    async fn a_screen_link_shows_its_queue_only_until_revoked(db) {
        let store = &db.store;
        let (ctx, ch) = org_with_channel(store, "screen-a").await;
        let (other, other_ch) = org_with_channel(store, "screen-b").await;
        let mut tx = store.begin(&ctx).await.unwrap();
        let q = tx.create_queue(&settings(ch, "Dr Screen", "SCREEN")).await.unwrap();
        let (link, token) = tx.create_screen_link(q.id, "  Waiting room TV ").await.unwrap();
        assert!(matches!(tx.create_screen_link(q.id, " ").await, Err(StoreError::Invalid(_))));
        tx.commit().await.unwrap();
        assert_eq!(link.name, "Waiting room TV");
        let mut tx = store.begin(&other).await.unwrap();
        let oq = tx.create_queue(&settings(other_ch, "Dr Other", "OTHER")).await.unwrap();
        tx.commit().await.unwrap();
        let c = contact(store, &ctx, 7).await;
        join(store, &ctx, q.id, c, OffsetDateTime::now_utc()).await;

        let (queue, screen) = store.screen_for_link(&token).await.unwrap().expect("the link works");
        assert_eq!((queue, screen.queue_name.as_str(), screen.up_next.as_slice()), (q.id, "Dr Screen", &["A-001".to_owned()][..]));
        // Another tenant cannot list or revoke it; a made-up or foreign-prefixed token finds nothing.
        let mut tx = store.begin(&other).await.unwrap();
        assert!(matches!(tx.screen_links(q.id).await, Err(StoreError::NotFound)));
        assert!(matches!(tx.revoke_screen_link(link.id).await, Err(StoreError::NotFound)));
        assert!(tx.screen_links(oq.id).await.unwrap().is_empty());
        tx.commit().await.unwrap();
        for bad in ["fdscr_nothing", "fdw_x", ""] {
            assert!(store.screen_for_link(&SecretString::from(bad.to_owned())).await.unwrap().is_none(), "{bad}");
        }

        let mut tx = store.begin(&ctx).await.unwrap();
        assert_eq!(tx.screen_links(q.id).await.unwrap(), vec![link.clone()]);
        assert_eq!(tx.revoke_screen_link(link.id).await.unwrap(), q.id);
        assert!(tx.screen_links(q.id).await.unwrap().is_empty());
        tx.commit().await.unwrap();
        assert!(store.screen_for_link(&token).await.unwrap().is_none(), "a revoked link shows nothing");
        let page = store
            .audit_events(&ctx, &frontdesk_store::AuditQuery {
                actor: None, action: None, target_type: Some("queue".into()), target_id: Some(q.id.to_string()),
                since: None, until: None, before_seq: None, limit: 50,
            })
            .await
            .unwrap();
        let actions: Vec<&str> = page.events.iter().rev().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["queue.created", "queue.screen_link_created", "queue.screen_link_revoked"]);
        assert!(!page.events.iter().any(|e| e.data.to_string().contains("fdscr_")), "no token in the audit log");
    }
}
