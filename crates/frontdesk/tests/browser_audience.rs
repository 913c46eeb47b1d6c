//! The audience in a real headless Chromium against a real in-process server: a manager
//! imports a small CSV (the dry run shows the row with a bad number, and why), runs it and
//! follows the job to its report, then builds a segment with the condition builder and
//! watches its live count change as conditions are added, and saves it. SQLite only: the
//! audience's store tests run on both backends.

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::PASSWORD;
use frontdesk_store::testing::TestDb;
use reqwest::Method;
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

const CSV: &str = "Name,Mobile,City,Tags\n\
Asha Rao,+1 415 555 0100,Pune,vip\n\
Ravi Iyer,+14155550101,Goa,vip\n\
Wrong Number,12345,Pune,\n\
Mina Shah,+14155550102,Pune,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_csv_becomes_a_segment_with_a_live_count() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Corner Shop", "admin@shop.example").await;
    let (s, city) = app
        .api(Method::POST, "/api/v1/contact-fields", Some(&admin.access),
            Some(json!({ "key": "city", "label": "City", "kind": "choice", "options": ["Pune", "Goa"] })))
        .await;
    assert!(s.is_success(), "{city}");
    let city_id = city["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .api(
            Method::POST,
            "/api/v1/tags",
            Some(&admin.access),
            Some(json!({ "name": "vip" })),
        )
        .await;
    assert!(s.is_success());

    let browser = Browser::start().await;
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", &admin.email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;

    // Upload: paste the file.
    browser.goto(&app.url("/contacts")).await;
    browser.click("[data-testid=import-contacts]").await;
    browser.wait_for_path("/contacts/import").await;
    browser.fill("[data-testid=import-csv]", CSV).await;
    browser.click("[data-testid=import-upload-submit]").await;
    browser
        .wait_for("[data-testid=import-mapping]", Duration::from_secs(10))
        .await;

    // The columns are mapped from their names; the dry run names the bad row and why.
    assert_eq!(browser.value("[data-testid='map-Mobile']").await, "phone");
    assert_eq!(
        browser.value("[data-testid='map-City']").await,
        "field:city"
    );
    browser.click("[data-testid=dry-run]").await;
    browser
        .wait_for("[data-testid=dry-run-report]", Duration::from_secs(10))
        .await;
    assert_eq!(browser.text("[data-testid=dry-run-created]").await, "3");
    assert_eq!(browser.text("[data-testid=dry-run-rejected]").await, "1");
    let reason = browser
        .text("[data-testid=rejected-row][data-line='4']")
        .await;
    assert!(
        reason.contains("phone"),
        "the reason names the number: {reason}"
    );
    let (_, contacts) = app
        .api(Method::GET, "/api/v1/contacts", Some(&admin.access), None)
        .await;
    assert_eq!(
        contacts["items"].as_array().unwrap().len(),
        0,
        "a dry run imports nothing"
    );

    // The import runs in the background; the page follows it to its report.
    browser.click("[data-testid=run-import]").await;
    until(&app, "the import report", async || {
        (browser.count("[data-testid=import-report]").await > 0).then_some(())
    })
    .await;
    assert_eq!(browser.text("[data-testid=import-created]").await, "3");
    assert_eq!(browser.text("[data-testid=import-rejected]").await, "1");

    // A segment: vip (2 contacts), then vip and city Pune (1); the count follows live.
    browser.goto(&app.url("/segments/new")).await;
    browser
        .fill("[data-testid=segment-name]", "VIPs in Pune")
        .await;
    browser.click("[data-testid=segment-add-condition]").await;
    let count = async |want: &str| {
        for _ in 0..100 {
            if browser.text("[data-testid=segment-count]").await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the live count never became {want}: {}",
            browser.text("[data-testid=segment-count]").await
        );
    };
    count("2").await;
    browser.click("[data-testid=segment-add-condition]").await;
    browser
        .click(&format!(
            ".segment-row:nth-child(2) select[data-role=what] option[value='field:{city_id}']"
        ))
        .await;
    browser
        .click(".segment-row:nth-child(2) select[data-role=value] option[value='Pune']")
        .await;
    count("1").await;
    assert!(
        browser
            .text("[data-testid=segment-sample]")
            .await
            .contains("Asha Rao")
    );
    browser.click("[data-testid=save-segment]").await;
    until(&app, "the saved segment page", async || {
        let url = browser.current_url().await;
        (url.path() != "/segments/new" && url.path() != "/segments").then_some(())
    })
    .await;
    assert_eq!(
        browser.text("[data-testid=segment-count]").await,
        "1",
        "the saved segment counts the same"
    );
    let (_, segments) = app
        .api(Method::GET, "/api/v1/segments", Some(&admin.access), None)
        .await;
    assert_eq!(segments[0]["name"], "VIPs in Pune");
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}
