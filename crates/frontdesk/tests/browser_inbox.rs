//! The team inbox in a real headless Chromium against a real in-process server and the
//! WhatsApp simulator: a customer's message appears in the agent's open conversation
//! without a reload, the agent answers with a quick reply, the phone gets it and the page
//! follows its ticks to delivered and read; a role without `contacts.view_phone` never has
//! the number in the page source; an agent mentions a colleague from the "@" list and the
//! colleague's open dashboard shows it live. SQLite only: the inbox's store and API tests run on both
//! backends.

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::{PASSWORD, WebSession};
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const PHONE: &str = "+919876543210";

/// Polls `check` (draining the worker between tries) until it answers, for up to 20 s.
async fn until<T>(app: &TestApp, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        app.drain().await;
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn sign_in(app: &TestApp, browser: &Browser, email: &str) {
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;
}

/// The customer's chat on the simulator phone, as JSON.
async fn phone_chat(app: &TestApp, web: &WebSession, customer: &str) -> Value {
    app.web_get(
        web,
        &format!("/api/v1/simulator/customers/{customer}/messages"),
    )
    .await
    .json()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_message_appears_live_and_a_quick_reply_reaches_the_phone() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Riverside Clinic", "admin@inbox.example").await;
    let sim = app.provision_sim(&admin, "Reception", None).await;
    let web = app.web_login(&admin.email, PASSWORD).await;

    // A quick reply with the customer's first name in it (through the store: its own API
    // is not what this test is about).
    let target = app
        .db
        .store
        .webhook_target(&sim.webhook_key)
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
    tx.save_quick_reply(
        None,
        "welcome",
        "Hello {{contact.first_name}}, a doctor is free at 10:30.",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let customer = app
        .sim_customer(&web, &sim.id, "Asha Rao", PHONE, "asha")
        .await;
    app.sim_customer_sends(
        &web,
        &customer,
        &[("kind", "text"), ("body", "Hello, I need an appointment")],
    )
    .await;
    let conv = until(&app, "the conversation", async || {
        let (s, v) = app
            .api(
                Method::GET,
                "/api/v1/conversations?status=any",
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;

    let browser = Browser::start().await;
    sign_in(&app, &browser, &admin.email).await;
    browser.goto(&app.url(&format!("/inbox/{conv}"))).await;
    browser
        .wait_for("[data-testid=history] li.msg", Duration::from_secs(5))
        .await;
    assert!(
        browser
            .text("[data-testid=history]")
            .await
            .contains("Hello, I need an appointment")
    );
    // A mark that a reload would wipe.
    browser
        .execute("window.__notReloaded = true; return true", vec![])
        .await;

    // The customer writes again: the open page shows it without a reload.
    app.sim_customer_sends(
        &web,
        &customer,
        &[("kind", "text"), ("body", "Is tomorrow morning possible?")],
    )
    .await;
    until(&app, "the new message on the open page", async || {
        let shown = browser.text("[data-testid=history]").await;
        shown
            .contains("Is tomorrow morning possible?")
            .then_some(())
    })
    .await;
    assert_eq!(
        browser
            .execute("return window.__notReloaded === true", vec![])
            .await,
        json!(true),
        "the page was reloaded"
    );
    let listed = browser.text("[data-testid=conversation-list]").await;
    assert!(
        listed.contains("Is tomorrow morning possible?"),
        "the list follows too: {listed}"
    );

    // The agent picks the quick reply: the box is filled in for this customer; sending it
    // queues it.
    let option: Value = browser
        .execute(
            "const s = document.getElementById('quick-replies'); s.selectedIndex = 1; \
             s.dispatchEvent(new Event('change')); return document.getElementById('reply-body').value",
            vec![],
        )
        .await;
    assert_eq!(option, json!("Hello Asha, a doctor is free at 10:30."));
    browser.click("[data-testid=reply-submit]").await;
    until(&app, "the reply on the page", async || {
        (browser.count("li.msg.out").await > 0).then_some(())
    })
    .await;

    // The phone shows it.
    until(&app, "the reply on the phone", async || {
        let chat = phone_chat(&app, &web, &customer).await;
        chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| {
                m["direction"] == "to_customer"
                    && m.to_string()
                        .contains("Hello Asha, a doctor is free at 10:30.")
            })
            .then_some(())
    })
    .await;
    // The dashboard follows the ticks live: delivered, then read once the customer looks.
    until(&app, "delivered on the dashboard", async || {
        let s = browser
            .execute(
                "const li = document.querySelector('li.msg.out'); return li ? li.dataset.status : null",
                vec![],
            )
            .await;
        (s == json!("delivered")).then_some(())
    })
    .await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/simulator/customers/{customer}/seen")))
        .header("cookie", format!("{}={}", web.cookie_name, web.cookie))
        .header("x-csrf-token", &web.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    until(&app, "read on the dashboard", async || {
        let s = browser
            .execute(
                "const li = document.querySelector('li.msg.out'); return li ? [li.dataset.status, li.querySelector('.ticks').textContent] : null",
                vec![],
            )
            .await;
        (s == json!(["read", "\u{2713}\u{2713}"])).then_some(())
    })
    .await;
    assert_eq!(
        browser
            .execute("return window.__notReloaded === true", vec![])
            .await,
        json!(false),
        "sending the reply is a form post, which loads the page again"
    );

    // A file from the agent's computer: uploaded, sent as a document with its caption, and
    // on the phone.
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("leaflet.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% Riverside Clinic opening hours\n%%EOF\n").unwrap();
    browser
        .find("[data-testid=upload-form] input[type=file]")
        .await
        .send_keys(pdf.to_str().unwrap())
        .await
        .unwrap();
    browser
        .fill(
            "[data-testid=upload-form] input[name=caption]",
            "Our opening hours",
        )
        .await;
    browser
        .click("[data-testid=upload-form] button[type=submit]")
        .await;
    until(&app, "the file on the phone", async || {
        let chat = phone_chat(&app, &web, &customer).await;
        chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| {
                m["direction"] == "to_customer"
                    && m["type"] == "document"
                    && m["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Our opening hours"))
            })
            .then_some(())
    })
    .await;
    until(&app, "the file in the history", async || {
        (browser.count("li.msg.out[data-kind=document]").await > 0).then_some(())
    })
    .await;
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_view_phone_never_has_the_number_in_the_page() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Hillside Clinic", "admin@masked.example").await;
    let sim = app.provision_sim(&admin, "Front desk", None).await;
    let web = app.web_login(&admin.email, PASSWORD).await;
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/roles",
            Some(&admin.access),
            Some(json!({ "name": "Desk without numbers", "permissions": ["inbox.read", "inbox.read_all", "inbox.reply", "inbox.assign"] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let desk = app
        .add_member(&admin, "desk@masked.example", "Desk without numbers")
        .await;

    let customer = app
        .sim_customer(&web, &sim.id, "Ravi Kumar", PHONE, "ravi")
        .await;
    app.sim_customer_sends(
        &web,
        &customer,
        &[("kind", "text"), ("body", "Good morning")],
    )
    .await;
    let conv = until(&app, "the conversation", async || {
        let (_, v) = app
            .api(
                Method::GET,
                "/api/v1/conversations?status=any",
                Some(&desk.access),
                None,
            )
            .await;
        v["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let digits = PHONE.trim_start_matches('+');

    // The admin sees the number; the desk role sees it masked, in the list and the view.
    let desk_web = app.web_login(&desk.email, PASSWORD).await;
    let admin_view = app
        .web_get(&web, &format!("/inbox/{conv}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(admin_view.contains(PHONE), "the admin may see the number");
    for path in ["/inbox?status=any".to_owned(), format!("/inbox/{conv}")] {
        let r = app.web_get(&desk_web, &path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Ravi Kumar"),
            "{path}: the conversation is listed"
        );
        assert!(!html.contains(digits), "{path}: the number is in the page");
    }
    let view = app
        .web_get(&desk_web, &format!("/inbox/{conv}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(view.contains("•••"), "the masked number is shown");

    // And in the browser, after the live updates have redrawn the list and conversation.
    let browser = Browser::start().await;
    sign_in(&app, &browser, &desk.email).await;
    browser
        .goto(&app.url(&format!("/inbox/{conv}?status=any")))
        .await;
    browser
        .wait_for("[data-testid=history] li.msg", Duration::from_secs(5))
        .await;
    app.sim_customer_sends(
        &web,
        &customer,
        &[("kind", "text"), ("body", "Still there?")],
    )
    .await;
    until(&app, "the live update", async || {
        browser
            .text("[data-testid=history]")
            .await
            .contains("Still there?")
            .then_some(())
    })
    .await;
    let source = browser
        .execute("return document.documentElement.outerHTML", vec![])
        .await;
    let source = source.as_str().unwrap();
    assert!(source.contains("Ravi Kumar"));
    assert!(!source.contains(digits), "the number reached the page");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_messages_load_above_the_newest_in_time_order() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Hillside Clinic", "admin@older.example").await;
    let sim = app.provision_sim(&admin, "Reception", None).await;
    // One long conversation of 130 messages, written straight to the tables.
    let target = app
        .db
        .store
        .webhook_target(&sim.webhook_key)
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.store.begin(&target.ctx).await.unwrap();
    let ids = tx
        .fill_inbox_for_bench(&frontdesk_store::InboxFill {
            channel: frontdesk_domain::ChannelId::parse(&sim.id).unwrap(),
            number_prefix: 1,
            conversations: 1,
            messages_per_conversation: 130,
            agents: vec![frontdesk_domain::UserId::parse(&admin.user_id).unwrap()],
            team: None,
            newest: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let conversation = ids[0].to_string();

    let browser = Browser::start().await;
    sign_in(&app, &browser, &admin.email).await;
    browser
        .goto(&app.url(&format!("/inbox/{conversation}")))
        .await;
    browser
        .wait_for("[data-testid=history]", Duration::from_secs(10))
        .await;
    assert_eq!(browser.count("#conv-history li.msg").await, 100);
    browser.click("[data-testid=older-messages]").await;
    for _ in 0..100 {
        if browser.count("#conv-history li.msg").await == 130 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(browser.count("#conv-history li.msg").await, 130);
    assert_eq!(
        browser.count("[data-testid=older-messages]").await,
        0,
        "no older page left"
    );
    // Oldest at the top, each in its place.
    let times = browser
        .execute(
            "return [...document.querySelectorAll('#conv-history li')].map((x) => Number(x.dataset.at));",
            vec![],
        )
        .await;
    let times: Vec<i64> = times
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 130);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_mentions_a_colleague_from_the_list_and_their_open_dashboard_hears_it() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Riverside Clinic", "admin@inbox.example").await;
    let sim = app.provision_sim(&admin, "Reception", None).await;
    let web = app.web_login(&admin.email, PASSWORD).await;
    // Bea will be given the conversation; Carlos, who shares her surname, may not read it.
    let bea = app.add_member(&admin, "bea@inbox.example", "agent").await;
    let carlos = app
        .add_member(&admin, "carlos@inbox.example", "agent")
        .await;
    for (who, name) in [(&bea, "Beatriz Ortega"), (&carlos, "Carlos Ortega")] {
        let (s, v) = app
            .api(
                Method::PATCH,
                "/api/v1/me",
                Some(&who.access),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let customer = app
        .sim_customer(&web, &sim.id, "Asha Rao", PHONE, "asha")
        .await;
    app.sim_customer_sends(&web, &customer, &[("kind", "text"), ("body", "Hello")])
        .await;
    let conv = until(&app, "the conversation", async || {
        let (_, v) = app
            .api(
                Method::GET,
                "/api/v1/conversations?status=any",
                Some(&admin.access),
                None,
            )
            .await;
        v["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (s, v) = app
        .api(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/assign"),
            Some(&admin.access),
            Some(json!({ "assignee_id": bea.user_id })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // Bea has her dashboard open, with no mentions yet.
    let bea_browser = Browser::start().await;
    sign_in(&app, &bea_browser, &bea.email).await;
    bea_browser
        .wait_for("[data-testid=notifications]", Duration::from_secs(5))
        .await;
    bea_browser
        .execute("window.__notReloaded = true; return true", vec![])
        .await;
    let count_shown = async |b: &Browser| {
        b.execute(
            "const c = document.getElementById('notif-count'); return c.hidden ? null : c.textContent",
            vec![],
        )
        .await
    };
    assert_eq!(count_shown(&bea_browser).await, Value::Null);

    // The admin types "@" in the note box: the list offers the conversation's readers.
    let browser = Browser::start().await;
    sign_in(&app, &browser, &admin.email).await;
    browser.goto(&app.url(&format!("/inbox/{conv}"))).await;
    let note = browser.wait_for("#note-body", Duration::from_secs(5)).await;
    note.send_keys("Please call her back @").await.unwrap();
    browser
        .wait_for("[data-testid=mention-option]", Duration::from_secs(5))
        .await;
    let offered = async |b: &Browser| {
        b.execute(
            "const l = document.getElementById('mention-list'); return l.hidden ? null : [...l.querySelectorAll('[role=option]')].map((o) => [o.textContent, o.getAttribute('aria-selected')])",
            vec![],
        )
        .await
    };
    let all = offered(&browser).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o[0].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Beatriz Ortega") && names.contains(&"Admin of Riverside Clinic"),
        "{all}"
    );
    assert!(
        !names.contains(&"Carlos Ortega"),
        "Carlos may not read it: {all}"
    );
    // Escape closes the list; typing on filters it again.
    note.send_keys("\u{E00C}").await.unwrap();
    assert_eq!(offered(&browser).await, Value::Null);
    note.send_keys("ort").await.unwrap();
    let filtered = offered(&browser).await;
    assert_eq!(
        filtered,
        json!([["Beatriz Ortega", "true"]]),
        "filtered, the first chosen"
    );
    assert_eq!(
        browser
            .execute(
                "return document.getElementById('note-body').getAttribute('aria-activedescendant')",
                vec![]
            )
            .await,
        json!("mention-opt-0")
    );
    // Enter picks her: the box reads "@Beatriz Ortega".
    note.send_keys("\u{E007}").await.unwrap();
    assert_eq!(offered(&browser).await, Value::Null);
    assert_eq!(
        browser.value("#note-body").await,
        "Please call her back @Beatriz Ortega "
    );
    // A second mention with the arrows and the mouse: the admin themself (no notification).
    note.send_keys("and @Adm").await.unwrap();
    browser
        .wait_for("[data-testid=mention-option]", Duration::from_secs(5))
        .await;
    browser.click("[data-testid=mention-option]").await;
    assert_eq!(
        browser.value("#note-body").await,
        "Please call her back @Beatriz Ortega and @Admin of Riverside Clinic "
    );
    browser.click("[data-testid=note-submit]").await;

    // The note shows both mentions highlighted.
    until(&app, "the note with its mentions", async || {
        let shown: Vec<String> = browser
            .execute(
                "return [...document.querySelectorAll('[data-testid=note] [data-testid=mention]')].map((m) => m.textContent)",
                vec![],
            )
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        (shown == ["@Beatriz Ortega", "@Admin of Riverside Clinic"]).then_some(())
    })
    .await;
    let (_, view) = app
        .api(
            Method::GET,
            &format!("/api/v1/conversations/{conv}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(
        view["notes"][0]["mentions"],
        json!([bea.user_id, admin.user_id]),
        "{view}"
    );

    // Bea's open dashboard hears it without a reload.
    until(&app, "the mention on Bea's dashboard", async || {
        (count_shown(&bea_browser).await == json!("1")).then_some(())
    })
    .await;
    bea_browser.click("[data-testid=notif-toggle]").await;
    let listed = bea_browser.text("[data-testid=notif-items]").await;
    assert!(
        listed.contains("Admin of Riverside Clinic mentioned you"),
        "{listed}"
    );
    assert_eq!(
        bea_browser
            .execute("return window.__notReloaded === true", vec![])
            .await,
        json!(true),
        "the dashboard was reloaded"
    );
    let (_, n) = app
        .api(
            Method::GET,
            "/api/v1/notifications",
            Some(&carlos.access),
            None,
        )
        .await;
    assert_eq!(n["unread"], 0, "{n}");
    assert!(browser.csp_violations().await.is_empty());
    assert!(bea_browser.csp_violations().await.is_empty());
    browser.close().await;
    bea_browser.close().await;
}
