//! A campaign in a real headless Chromium against a real in-process server and its
//! simulator: a manager imports a CSV of customers, builds a segment of the imported tag,
//! writes a campaign with the form, reviews its audience, sends it and watches the figures
//! rise on the campaign's page (app.js refreshes them) as the simulator's phones report
//! delivery. A second test sends a campaign to a CSV file chosen on the new-campaign page,
//! reviews the file's invalid and duplicate rows, edits the draft and sends it. SQLite
//! only: the campaign's store and HTTP tests run on both backends.

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::PASSWORD;
use frontdesk_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn until<T>(app: &TestApp, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        app.drain().await;
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

const CSV: &str = "Name,Mobile,Tags\n\
Asha Rao,+1 415 555 0100,spring\n\
Ravi Iyer,+14155550101,spring\n\
Mina Shah,+14155550102,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_becomes_a_segment_and_a_campaign_whose_figures_rise() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Corner Shop", "admin@shop.example").await;
    let web = app.web_login(&admin.email, PASSWORD).await;
    let ch = app.provision_sim(&admin, "Shop", None).await;
    app.sim_customer(&web, &ch.id, "Asha Rao", "+14155550100", "")
        .await;
    app.sim_customer(&web, &ch.id, "Ravi Iyer", "+14155550101", "")
        .await;
    let api = async |m: Method, p: &str, b: Option<serde_json::Value>| {
        let (s, v) = app.api(m, p, Some(&admin.access), b).await;
        assert!(s.is_success(), "{p}: {s} {v}");
        v
    };
    api(
        Method::POST,
        "/api/v1/tags",
        Some(json!({ "name": "spring" })),
    )
    .await;
    let t = api(
        Method::POST,
        "/api/v1/templates",
        Some(json!({ "channel_id": ch.id, "template": {
        "name": "spring_sale", "language": "en_US", "category": "UTILITY",
        "body": { "text": "Hi {{1}}, your spring order is ready.", "examples": ["Ana"] } } })),
    )
    .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    api(
        Method::POST,
        &format!("/api/v1/templates/{tid}/submit"),
        None,
    )
    .await;
    until(&app, "the template approved", async || {
        let t = api(Method::GET, &format!("/api/v1/templates/{tid}"), None).await;
        (t["status"] == "APPROVED").then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", &admin.email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;

    // Import the CSV.
    browser.goto(&app.url("/contacts/import")).await;
    browser.fill("[data-testid=import-csv]", CSV).await;
    browser.click("[data-testid=import-upload-submit]").await;
    browser
        .wait_for("[data-testid=import-mapping]", Duration::from_secs(10))
        .await;
    browser.click("[data-testid=dry-run]").await;
    browser
        .wait_for("[data-testid=dry-run-report]", Duration::from_secs(10))
        .await;
    browser.click("[data-testid=run-import]").await;
    until(&app, "the import report", async || {
        (browser.count("[data-testid=import-report]").await > 0).then_some(())
    })
    .await;
    assert_eq!(browser.text("[data-testid=import-created]").await, "3");

    // A segment of the imported tag.
    browser.goto(&app.url("/segments/new")).await;
    browser
        .fill("[data-testid=segment-name]", "Spring buyers")
        .await;
    browser.click("[data-testid=segment-add-condition]").await;
    until(&app, "the live count", async || {
        (browser.text("[data-testid=segment-count]").await == "2").then_some(())
    })
    .await;
    browser.click("[data-testid=save-segment]").await;
    until(&app, "the saved segment", async || {
        let url = browser.current_url().await;
        (url.path() != "/segments/new" && url.path() != "/segments").then_some(())
    })
    .await;

    // The campaign, from the nav.
    browser.goto(&app.url("/")).await;
    browser.click("nav a[href='/campaigns']").await;
    browser.wait_for_path("/campaigns").await;
    browser.click("[data-testid=new-campaign]").await;
    browser.wait_for_path("/campaigns/new").await;
    browser
        .fill("[data-testid=campaign-name]", "Spring pickup")
        .await;
    browser
        .click("[data-testid=campaign-consent] option[value='not_opted_out']")
        .await;
    // A source that does not exist is refused beside its field, the rest kept.
    browser
        .fill("[data-testid=campaign-values]", "password")
        .await;
    browser.click("[data-testid=create-campaign]").await;
    browser
        .wait_for("[data-testid=error-values]", Duration::from_secs(10))
        .await;
    assert_eq!(
        browser.value("[data-testid=campaign-name]").await,
        "Spring pickup"
    );
    browser
        .fill("[data-testid=campaign-values]", "first_name|there")
        .await;
    browser.click("[data-testid=create-campaign]").await;
    browser
        .wait_for("[data-testid=campaign-review]", Duration::from_secs(10))
        .await;
    assert_eq!(browser.text("[data-testid=review-sendable]").await, "2");
    assert!(
        browser
            .text("[data-testid=campaign-preview]")
            .await
            .contains("Hi Asha, your spring order is ready."),
        "the preview shows the first recipient's values"
    );
    let page = browser.current_url().await;

    // Send now; the page stays open and its figures rise as the phones report.
    browser.click("[data-testid=launch-campaign]").await;
    until(&app, "the launched campaign's page", async || {
        (browser.count("[data-testid=campaign-review]").await == 0).then_some(())
    })
    .await;
    assert_eq!(browser.current_url().await.path(), page.path());
    for _ in 0..300 {
        if browser.text("[data-testid=figure-delivered]").await == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.text("[data-testid=figure-delivered]").await,
        "2",
        "the page's figures followed the deliveries"
    );
    assert_eq!(browser.text("[data-testid=figure-queued]").await, "2");
    assert_eq!(
        browser.text("[data-testid=campaign-status]").await,
        "completed"
    );
    let bar = browser
        .execute(
            "return document.querySelector('[data-bar=delivered]').getAttribute('width')",
            vec![],
        )
        .await;
    assert_eq!(bar, json!("360"), "the chart's bar grew to full width");
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

const AUDIENCE_CSV: &str = "Phone,First,Code\n\
+1 415 555 0100,Asha,A1\n\
+14155550101,Ravi,B2\n\
12345,Nobody,C3\n\
+14155550101,Ravi,D4\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_to_a_csv_file_is_reviewed_edited_and_sent() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Corner Shop", "admin@shop.example").await;
    let web = app.web_login(&admin.email, PASSWORD).await;
    let ch = app.provision_sim(&admin, "Shop", None).await;
    let asha = app
        .sim_customer(&web, &ch.id, "Asha Rao", "+14155550100", "")
        .await;
    let ravi = app
        .sim_customer(&web, &ch.id, "Ravi Iyer", "+14155550101", "")
        .await;
    let api = async |m: Method, p: &str, b: Option<serde_json::Value>| {
        let (s, v) = app.api(m, p, Some(&admin.access), b).await;
        assert!(s.is_success(), "{p}: {s} {v}");
        v
    };
    let t = api(
        Method::POST,
        "/api/v1/templates",
        Some(json!({ "channel_id": ch.id, "template": {
        "name": "pickup_code", "language": "en_US", "category": "UTILITY",
        "body": { "text": "Hi {{1}}, your pickup code is {{2}}.", "examples": ["Ana", "A1"] } } })),
    )
    .await;
    let tid = t["id"].as_str().unwrap().to_owned();
    api(
        Method::POST,
        &format!("/api/v1/templates/{tid}/submit"),
        None,
    )
    .await;
    until(&app, "the template approved", async || {
        let t = api(Method::GET, &format!("/api/v1/templates/{tid}"), None).await;
        (t["status"] == "APPROVED").then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", &admin.email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;

    // The new-campaign page: the audience is a CSV file chosen from the disk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pickups.csv");
    std::fs::write(&path, AUDIENCE_CSV).unwrap();
    browser.goto(&app.url("/campaigns/new")).await;
    browser
        .fill("[data-testid=campaign-name]", "Pickup codes")
        .await;
    browser
        .click("[data-testid=campaign-segment] option[value='csv']")
        .await;
    browser
        .find("[data-testid=campaign-csv-file]")
        .await
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    until(&app, "the chosen file read into the form", async || {
        (browser
            .value("[data-testid=campaign-csv]")
            .await
            .starts_with("Phone,First,Code"))
        .then_some(())
    })
    .await;
    browser
        .click("[data-testid=campaign-consent] option[value='not_opted_out']")
        .await;
    browser
        .fill(
            "[data-testid=campaign-values]",
            "column:First|there\ncolumn:Code",
        )
        .await;
    browser.click("[data-testid=create-campaign]").await;
    browser
        .wait_for("[data-testid=campaign-review]", Duration::from_secs(10))
        .await;
    let page = browser.current_url().await;
    // The page looks again until the worker has imported the file.
    until(&app, "the file's review", async || {
        (browser.count("[data-testid=review-importing]").await == 0
            && browser.count("[data-testid=review-sendable]").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(browser.text("[data-testid=review-invalid-rows]").await, "1");
    assert_eq!(
        browser.text("[data-testid=review-duplicate-rows]").await,
        "1"
    );
    assert_eq!(browser.text("[data-testid=review-sendable]").await, "2");
    assert!(
        browser
            .text("[data-testid=campaign-preview]")
            .await
            .contains("Hi Asha, your pickup code is A1."),
        "the preview shows the first recipient's row"
    );

    // Edit the draft: its form comes back filled in, the file kept.
    browser.click("[data-testid=edit-campaign]").await;
    browser
        .wait_for("[data-testid=save-campaign]", Duration::from_secs(10))
        .await;
    assert_eq!(
        browser.value("[data-testid=campaign-values]").await,
        "column:First|there\ncolumn:Code"
    );
    assert!(
        browser
            .value("[data-testid=campaign-segment]")
            .await
            .starts_with("import:"),
        "the draft's file is its audience"
    );
    browser
        .fill("[data-testid=campaign-name]", "Pickup codes, today")
        .await;
    browser.click("[data-testid=save-campaign]").await;
    browser.wait_for_path(page.path()).await;
    browser
        .wait_for("[data-testid=campaign-review]", Duration::from_secs(10))
        .await;
    assert!(browser.text("h1").await.contains("Pickup codes, today"));

    // Send now; each phone gets its own row's code.
    browser.click("[data-testid=launch-campaign]").await;
    until(&app, "the campaign completed", async || {
        (browser.text("[data-testid=campaign-status]").await == "completed").then_some(())
    })
    .await;
    for (customer, want) in [
        (&asha, "Hi Asha, your pickup code is A1."),
        (&ravi, "Hi Ravi, your pickup code is B2."),
    ] {
        until(&app, "the code on the phone", async || {
            let v = api(
                Method::GET,
                &format!("/api/v1/simulator/customers/{customer}/messages"),
                None,
            )
            .await;
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["text"] == want)
                .then_some(())
        })
        .await;
    }
    assert_eq!(browser.text("[data-testid=figure-queued]").await, "2");
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}
