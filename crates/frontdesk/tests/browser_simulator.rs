//! The simulator's phone page in a real headless Chromium: a person adds a fake customer,
//! types a message on the phone, it reaches the inbox as a signed webhook; the business's
//! answer appears on the phone without the person doing anything, and because the phone
//! shows it, the business sees it read. SQLite only: the channel itself is tested on both
//! backends over HTTP (`channel_e2e.rs`).

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::PASSWORD;
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_chats_on_the_phone_page_and_the_business_answer_arrives_and_is_read() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Phone Page Clinic", "admin@phone.example").await;
    let sim = app.provision_sim(&admin, "Reception", None).await;
    let ctx = app
        .db
        .store
        .webhook_target(&sim.webhook_key)
        .await
        .unwrap()
        .unwrap()
        .ctx;

    let browser = Browser::start().await;
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", &admin.email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;

    // Add a fake customer on the simulator page; the form leads to the customer's phone.
    browser.goto(&app.url("/simulator")).await;
    browser
        .fill(".sim-new-customer input[name=name]", "Meera Iyer")
        .await;
    browser
        .fill(".sim-new-customer input[name=phone]", "+91 98450 12345")
        .await;
    browser.click("[data-testid=sim-add-customer]").await;
    browser.wait_for("#sim-phone", Duration::from_secs(5)).await;
    assert_eq!(
        browser.text("[data-testid=sim-identity]").await,
        "+919845012345"
    );

    // The person types and sends; the message is signed, posted to our webhook, stored.
    browser
        .fill("#sim-text", "Do you have a slot on Friday?")
        .await;
    browser.click("[data-testid=sim-send]").await;
    browser
        .wait_for(
            "#sim-chat li[data-direction=from-customer]",
            Duration::from_secs(5),
        )
        .await;
    let phone = frontdesk_domain::E164::parse("+919845012345").unwrap();
    let contact = until(&app, "the customer's message in the store", async || {
        let mut tx = app.db.store.begin_read(&ctx).await.unwrap();
        let who = frontdesk_store::CustomerIdentity {
            phone: Some(phone.clone()),
            ..Default::default()
        };
        let id = tx.find_contact(&who).await.unwrap()?;
        let channel = frontdesk_domain::ChannelId::parse(&sim.id).unwrap();
        let conv = tx.find_conversation(channel, id).await.unwrap()?;
        let msgs = tx.conversation_messages(conv.id, 10).await.unwrap();
        msgs.iter()
            .any(|m| m.preview == "Do you have a slot on Friday?")
            .then_some(id)
    })
    .await;

    // The business answers; the open phone page shows it without anyone touching it.
    let (s, sent) = app
        .api(
            Method::POST,
            "/api/v1/messages",
            Some(&admin.access),
            Some(
                json!({ "channel_id": sim.id, "to": { "contact_id": contact.to_string() },
                         "message": { "type": "text", "body": "Yes, Friday 11:00 is free." } }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().unwrap().to_owned();
    until(&app, "the answer on the phone page", async || {
        let n = browser
            .count("#sim-chat li[data-direction=to-customer]")
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert!(
        browser
            .text("#sim-chat")
            .await
            .contains("Yes, Friday 11:00 is free.")
    );

    // The phone showed it, so it posted "read": the business sees its message read.
    until(&app, "the answer read", async || {
        let (_, m) = app
            .api(
                Method::GET,
                &format!("/api/v1/messages/{id}"),
                Some(&admin.access),
                None,
            )
            .await;
        (m["status"] == "read").then_some(())
    })
    .await;
    assert!(
        browser.csp_violations().await.is_empty(),
        "no CSP violations"
    );
    browser.close().await;
}
