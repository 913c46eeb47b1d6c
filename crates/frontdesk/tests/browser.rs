//! Pages of a real in-process server in a real headless Chromium.

mod common;

use common::TestApp;
use common::browser::Browser;
use frontdesk_store::testing::TestDb;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_healthz_json_from_the_real_server() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let browser = Browser::start().await;

    browser.goto(&app.url("/healthz")).await;
    browser.wait_for("pre", Duration::from_secs(5)).await;

    assert_eq!(browser.current_url().await.as_str(), app.url("/healthz"));
    let shown = browser.text("pre").await;
    let body: Value = serde_json::from_str(&shown)
        .unwrap_or_else(|e| panic!("the page does not show JSON ({e}): {shown:?}"));
    assert_eq!(body["status"], "ok", "{shown}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_do_not_share_cookies() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (first, second) = tokio::join!(Browser::start(), Browser::start());
    let page = app.url("/healthz");
    first.goto(&page).await;

    first
        .execute(
            "document.cookie = 'probe=' + arguments[0] + '; path=/'",
            vec![json!("from-first")],
        )
        .await;
    let first_cookies = first.execute("return document.cookie", vec![]).await;
    assert_eq!(first_cookies, "probe=from-first", "the cookie was not set");

    // Opened only now, so a shared cookie jar would already hold the cookie.
    second.goto(&page).await;
    let second_cookies = second.execute("return document.cookie", vec![]).await;
    assert_eq!(
        second_cookies, "",
        "the second browser sees the first one's cookie"
    );

    // And it survives a reload in the first, so the check above was not vacuous.
    first.goto(&page).await;
    let first_cookies = first.execute("return document.cookie", vec![]).await;
    assert_eq!(first_cookies, "probe=from-first");

    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_clicking_reach_the_page() {
    let browser = Browser::start().await;
    browser
        .goto(
            "data:text/html,<input id=name><button id=greet onclick=\"out.textContent = \
             'Hello, ' + document.getElementById('name').value\">Greet</button><p id=out></p>",
        )
        .await;

    browser.fill("#name", "Ada").await;
    browser.click("#greet").await;
    assert_eq!(browser.text("#out").await, "Hello, Ada");

    // `fill` replaces what the field held.
    browser.fill("#name", "Grace").await;
    browser.click("#greet").await;
    assert_eq!(browser.text("#out").await, "Hello, Grace");
    browser.close().await;
}
