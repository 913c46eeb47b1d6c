//! The template editor in a real headless Chromium: a manager writes a template, sees the
//! phone preview follow their typing, gets a refusal beside the field without losing what
//! they typed, saves, submits, sees the simulator's approval on the page, then starts a
//! chat from the inbox with one input per variable and the phone shows it filled in; then
//! writes an IMAGE-header template with a sample file, which the page uploads and the
//! simulator approves. SQLite only:
//! the template flow is tested on both backends over HTTP (`templates.rs`).

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::PASSWORD;
use frontdesk_store::testing::TestDb;
use reqwest::Method;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_writes_a_template_with_a_live_preview_gets_it_approved_and_sends_it_with_one_input_per_variable()
 {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Editor Clinic", "admin@editor.example").await;
    let sim = app.provision_sim(&admin, "Reception", None).await;

    let browser = Browser::start().await;
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", &admin.email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;

    browser.goto(&app.url("/templates")).await;
    browser
        .wait_for("[data-testid=no-templates]", Duration::from_secs(5))
        .await;
    browser.click("[data-testid=new-template]").await;
    browser.wait_for_path("/templates/new").await;

    browser
        .fill("[data-testid=tpl-name]", "visit_reminder")
        .await;
    browser
        .click("[data-testid=tpl-header-format] option[value=text]")
        .await;
    browser
        .fill("[data-testid=tpl-header-text]", "Hello {{1}}")
        .await;
    browser
        .fill("[data-testid=tpl-header-example]", "Ana")
        .await;
    // A body that ends with its variable breaks one of WhatsApp's rules.
    browser
        .fill("[data-testid=tpl-body]", "Your visit is at {{1}}")
        .await;
    browser.fill("[data-testid=tpl-examples]", "10:30").await;
    browser
        .fill("[data-testid=tpl-footer]", "Sunrise Clinic")
        .await;
    browser
        .click("[data-testid=tpl-button-type-0] option[value=quick_reply]")
        .await;
    browser
        .fill("[data-testid=tpl-button-text-0]", "Confirm")
        .await;

    // The preview follows the typing, with the examples in place.
    let expected_draft = "Hello Ana\nYour visit is at 10:30\nSunrise Clinic\n[Confirm]";
    wait_for_text(&browser, "[data-testid=template-preview]", expected_draft).await;

    browser.click("[data-testid=template-save]").await;
    browser
        .wait_for(
            "[data-testid=field-error][data-field='body.text']",
            Duration::from_secs(5),
        )
        .await;
    assert!(
        browser
            .text("[data-testid=field-error][data-field='body.text']")
            .await
            .contains("may not start or end with a variable")
    );
    assert_eq!(
        browser.value("[data-testid=tpl-name]").await,
        "visit_reminder",
        "nothing typed is lost"
    );
    assert_eq!(
        browser.value("[data-testid=tpl-footer]").await,
        "Sunrise Clinic"
    );

    browser
        .fill(
            "[data-testid=tpl-body]",
            "Your visit is at {{1}}. See you soon!",
        )
        .await;
    wait_for_text(
        &browser,
        "[data-testid=template-preview]",
        "Hello Ana\nYour visit is at 10:30. See you soon!\nSunrise Clinic\n[Confirm]",
    )
    .await;
    browser.click("[data-testid=template-save]").await;
    browser
        .wait_for("[data-testid=template-submit]", Duration::from_secs(5))
        .await;
    assert_eq!(browser.text("[data-testid=template-status]").await, "DRAFT");

    browser.click("[data-testid=template-submit]").await;
    browser
        .wait_for("[data-testid=notice]", Duration::from_secs(5))
        .await;
    // The simulator reviews at once and posts its webhook; the worker records it.
    let mut approved = false;
    for _ in 0..100 {
        app.drain().await;
        browser.goto(browser.current_url().await.as_ref()).await;
        if browser.text("[data-testid=template-status]").await == "APPROVED" {
            approved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(approved, "the template was approved on the page");

    browser.goto(&app.url("/templates?status=APPROVED")).await;
    assert_eq!(browser.count("[data-testid=templates] tbody tr").await, 1);
    assert_eq!(
        browser.text("[data-testid=template-link]").await,
        "visit_reminder"
    );

    // The inbox's new-chat form asks for one value per variable of the chosen template;
    // the customer's phone shows the message filled in.
    let web = app.web_login(&admin.email, PASSWORD).await;
    let customer = app
        .sim_customer(&web, &sim.id, "Asha Rao", "+14155550100", "")
        .await;
    browser.goto(&app.url("/inbox/new")).await;
    browser
        .fill(
            "[data-testid=new-chat-form] input[name=phone]",
            "+1 415 555 0100",
        )
        .await;
    browser
        .fill(
            "[data-testid=new-chat-form] input[data-field=header]",
            "Asha",
        )
        .await;
    browser
        .fill(
            "[data-testid=new-chat-form] input[data-field='body[0]']",
            "11:00",
        )
        .await;
    browser.click("[data-testid=template-submit]").await;
    let mut shown = None;
    for _ in 0..100 {
        app.drain().await;
        let (_, chat) = app
            .api(
                Method::GET,
                &format!("/api/v1/simulator/customers/{customer}/messages"),
                Some(&admin.access),
                None,
            )
            .await;
        shown = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["direction"] == "to_customer")
            .map(|m| m["text"].as_str().unwrap().to_owned());
        if shown.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        shown.as_deref(),
        Some("Hello Asha\nYour visit is at 11:00. See you soon!\nSunrise Clinic\n[Confirm]")
    );
    assert!(browser.current_url().await.path().starts_with("/inbox/"));

    // An IMAGE header with a sample file: chosen in the editor, uploaded by the page, shown
    // once saved, sent through the simulator's Resumable Upload API on submit, approved.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("clinic.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR the new clinic").unwrap();
    browser.goto(&app.url("/templates/new")).await;
    browser.fill("[data-testid=tpl-name]", "clinic_photo").await;
    browser
        .click("[data-testid=tpl-category] option[value=MARKETING]")
        .await;
    browser
        .click("[data-testid=tpl-header-format] option[value=image]")
        .await;
    browser
        .find("[data-testid=tpl-header-sample-file]")
        .await
        .send_keys(png.to_str().unwrap())
        .await
        .unwrap();
    let mut sample = String::new();
    for _ in 0..100 {
        sample = browser.value("[data-testid=tpl-header-sample]").await;
        if !sample.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !sample.is_empty(),
        "the page uploaded the sample: {}",
        browser.text("[data-testid=tpl-sample-status]").await
    );
    browser
        .fill(
            "[data-testid=tpl-body]",
            "Our new clinic opens on {{1}}. Come and see!",
        )
        .await;
    browser.fill("[data-testid=tpl-examples]", "Monday").await;
    wait_for_text(
        &browser,
        "[data-testid=template-preview]",
        "[image]\nOur new clinic opens on Monday. Come and see!",
    )
    .await;
    browser.click("[data-testid=template-save]").await;
    browser
        .wait_for("[data-testid=template-submit]", Duration::from_secs(5))
        .await;
    assert_eq!(
        browser.count("[data-testid=tpl-sample-preview]").await,
        1,
        "the saved template shows its sample"
    );
    browser.click("[data-testid=template-submit]").await;
    browser
        .wait_for("[data-testid=notice]", Duration::from_secs(5))
        .await;
    let mut approved = false;
    for _ in 0..100 {
        app.drain().await;
        browser.goto(browser.current_url().await.as_ref()).await;
        if browser.text("[data-testid=template-status]").await == "APPROVED" {
            approved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(approved, "the image template was approved on the page");
    let (_, listed) = app
        .graph_call(
            Method::GET,
            &format!("/{}/message_templates?name=clinic_photo", sim.waba_id),
            Some(&sim.access_token),
            None,
        )
        .await;
    let handle = listed["data"][0]["components"][0]["example"]["header_handle"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        handle.starts_with("4::"),
        "submitted with an upload handle: {listed}"
    );
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

async fn wait_for_text(browser: &Browser, css: &str, want: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = browser.text(css).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} shows {last:?}, wanted {want:?}");
}
