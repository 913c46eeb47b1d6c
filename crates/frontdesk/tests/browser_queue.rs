//! A clinic's full morning in a real headless Chromium: three patients join by WhatsApp
//! through the simulator, the doctor (a custom role) calls and completes them one after
//! another from the board, each patient's phone receives every message in order, and the
//! waiting-room TV, opened through a revocable screen link without a session, follows along
//! without a reload and shows tokens only. Then the receptionist checks a walk-in in from
//! the board and the doctor's open board picks it up. SQLite only: the HTTP tests run the
//! queue on both backends.

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::{ApiUser, PASSWORD, WebSession};
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a live page may take to follow a change (it polls every 3 s without SSE).
const LIVE_WAIT: Duration = Duration::from_secs(12);

struct Patient {
    name: &'static str,
    phone: &'static str,
    customer: String,
}

/// What the simulator's phone shows the patient received from the clinic, oldest first.
async fn transcript(app: &TestApp, admin: &ApiUser, customer: &str) -> Vec<String> {
    let (s, chat) = app
        .api(
            Method::GET,
            &format!("/api/v1/simulator/customers/{customer}/messages"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{chat}");
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "to_customer")
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs the workers until the patient's phone has received `n` messages; returns them.
async fn until_received(app: &TestApp, admin: &ApiUser, p: &Patient, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        app.drain().await;
        let t = transcript(app, admin, &p.customer).await;
        if t.len() >= n {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{}'s phone never received {n} messages: {t:?}",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the element's text is `want`.
async fn until_text(browser: &Browser, css: &str, want: &str) {
    let deadline = Instant::now() + LIVE_WAIT;
    loop {
        let el = browser.wait_for(css, LIVE_WAIT).await;
        let text = el.text().await.unwrap_or_default();
        if text == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` shows {text:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(app: &TestApp, browser: &Browser, email: &str) {
    browser.goto(&app.url("/login")).await;
    browser.fill_labelled("Email", email).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait_for_path("/").await;
}

/// The labels a list on the screen shows, in order.
async fn labels(browser: &Browser, list: &str) -> Vec<String> {
    let v = browser
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' li')).map(li => li.textContent)",
            vec![json!(list)],
        )
        .await;
    serde_json::from_value(v).unwrap()
}

async fn role(app: &TestApp, admin: &ApiUser, name: &str, perms: Value) {
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/roles",
            Some(&admin.access),
            Some(json!({ "name": name, "permissions": perms })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn patient_joins(app: &TestApp, web: &WebSession, p: &Patient, text: &str) {
    app.sim_customer_sends(web, &p.customer, &[("kind", "text"), ("body", text)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_morning_at_the_clinic() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app.signup("Sunrise Clinic", "admin@sunrise.example").await;
    let web = app.web_login(&admin.email, PASSWORD).await;
    let ch = app.provision_sim(&admin, "Front desk", None).await;
    role(
        &app,
        &admin,
        "Doctor",
        json!(["queue.read", "queue.call_next"]),
    )
    .await;
    role(
        &app,
        &admin,
        "Receptionist",
        json!(["queue.read", "queue.manage"]),
    )
    .await;
    let doc = app
        .add_member(&admin, "mehta@sunrise.example", "Doctor")
        .await;
    let desk = app
        .add_member(&admin, "desk@sunrise.example", "Receptionist")
        .await;
    let (s, q) = app
        .api(
            Method::POST,
            "/api/v1/queues",
            Some(&admin.access),
            Some(json!({ "channel_id": ch.id, "name": "Dr Mehta", "keywords": ["DR MEHTA"],
                "token_prefix": "A", "daily_cap": 50, "position_step": 1, "doctors": [doc.user_id] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let queue = q["id"].as_str().unwrap().to_owned();
    // Another doctor's queue: Dr Mehta must not see it.
    let (s, _) = app
        .api(
            Method::POST,
            "/api/v1/queues",
            Some(&admin.access),
            Some(
                json!({ "channel_id": ch.id, "name": "Dr Rao", "keywords": ["DR RAO"],
                "token_prefix": "B", "daily_cap": 50, "position_step": 1 }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Three patients write the keyword from their phones.
    let mut patients = Vec::new();
    for (name, phone) in [
        ("Asha Patel", "+919800000001"),
        ("Ravi Kumar", "+919800000002"),
        ("Meena Shah", "+919800000003"),
    ] {
        let customer = app.sim_customer(&web, &ch.id, name, phone, "").await;
        patients.push(Patient {
            name,
            phone,
            customer,
        });
    }
    for (i, p) in patients.iter().enumerate() {
        patient_joins(&app, &web, p, "dr mehta").await;
        let t = until_received(&app, &admin, p, 1).await;
        let label = format!("A-00{}", i + 1);
        assert!(
            t[0].contains(&format!("Your token is {label}"))
                && t[0].contains(&format!("number {}", i + 1)),
            "{t:?}"
        );
    }

    let (doctor, tv) = tokio::join!(Browser::start(), Browser::start());
    // The receptionist makes a screen link on the board and opens it on the waiting-room
    // TV, which holds no session.
    sign_in(&app, &tv, &desk.email).await;
    tv.goto(&app.url(&format!("/queues/{queue}/board"))).await;
    tv.fill_labelled("Link name", "Waiting room TV").await;
    tv.click("[data-testid=screen-link-submit]").await;
    let link = url::Url::parse(&tv.value("[data-testid=screen-link-url]").await).unwrap();
    assert!(link.path().starts_with("/screen/fdscr_"), "{link}");
    tv.click("[data-testid=logout]").await;
    tv.wait_for_path("/login").await;
    tv.goto(&app.url(link.path())).await;
    assert_eq!(tv.text("[data-testid=screen-queue]").await, "Dr Mehta");
    assert_eq!(labels(&tv, "#screen-now").await, Vec::<String>::new());
    assert_eq!(
        labels(&tv, "#screen-next").await,
        ["A-001", "A-002", "A-003"]
    );

    // The doctor sees their own queue only and opens its board.
    sign_in(&app, &doctor, &doc.email).await;
    doctor.click("nav.side a[href='/queues']").await;
    doctor.wait_for_path("/queues").await;
    assert_eq!(doctor.count("[data-testid=queue-board-link]").await, 1);
    doctor.click("[data-testid=queue-board-link]").await;
    doctor
        .wait_for_path(&format!("/queues/{queue}/board"))
        .await;
    assert_eq!(doctor.count("table[data-testid=waiting] tbody tr").await, 3);
    let board = doctor.text("[data-testid=board]").await;
    assert!(
        board.contains("Asha Patel") && board.contains("Meena Shah"),
        "{board}"
    );
    // A doctor's role has no contacts.view_phone: numbers are masked.
    assert!(
        !board.contains("9800000001") && board.contains("•"),
        "{board}"
    );
    // Nor may the doctor do the desk's work.
    assert_eq!(doctor.count("[data-testid=check-in]").await, 0);
    assert_eq!(doctor.count("[data-testid=token-cancel]").await, 0);

    for (i, p) in patients.iter().enumerate() {
        let label = format!("A-00{}", i + 1);
        doctor.click("[data-testid=call-next]").await;
        until_text(&doctor, "[data-testid=notice]", &format!("Called {label}.")).await;
        assert_eq!(doctor.text("[data-testid=my-token]").await, label);
        assert_eq!(doctor.text("[data-testid=my-name]").await, p.name);

        // The screen follows without a reload: the called token now serving.
        let deadline = Instant::now() + LIVE_WAIT;
        while labels(&tv, "#screen-now").await != [label.clone()] {
            assert!(
                Instant::now() < deadline,
                "the screen never showed {label}: {:?}",
                labels(&tv, "#screen-now").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let next: Vec<String> = (i + 2..=3).map(|n| format!("A-00{n}")).collect();
        assert_eq!(labels(&tv, "#screen-next").await, next);
        let source = tv.client().source().await.unwrap();
        for other in &patients {
            assert!(
                !source.contains(other.name) && !source.contains(&other.phone[3..]),
                "the screen shows a name or number: {source}"
            );
        }

        // In, and done.
        let row = format!("table[data-testid=current] tr[data-token='{label}']");
        doctor
            .click(&format!("{row} [data-testid=token-serve]"))
            .await;
        until_text(
            &doctor,
            &format!("{row} td:nth-child(3)"),
            "with the doctor",
        )
        .await;
        doctor
            .click(&format!("{row} [data-testid=token-complete]"))
            .await;
        doctor
            .wait_for(
                &format!("table[data-testid=done] tr[data-token='{label}']"),
                LIVE_WAIT,
            )
            .await;
        assert_eq!(doctor.count(&row).await, 0, "{label} left the called list");
    }
    until_text(&doctor, "[data-testid=served-today]", "3 served today").await;
    let deadline = Instant::now() + LIVE_WAIT;
    while !labels(&tv, "#screen-now").await.is_empty() {
        assert!(Instant::now() < deadline, "the screen still shows a token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tv.text("#screen-waiting").await, "0");

    // Each phone received every message, in order.
    let expected: [&[&str]; 3] = [
        &["Your token is A-001", "A-001, please come in now"],
        &[
            "Your token is A-002",
            "A-002, you are next",
            "A-002, please come in now",
        ],
        &[
            "Your token is A-003",
            "A-003, you are now number 2",
            "A-003, you are next",
            "A-003, please come in now",
        ],
    ];
    for (p, want) in patients.iter().zip(expected) {
        let got = until_received(&app, &admin, p, want.len()).await;
        assert_eq!(got.len(), want.len(), "{}: {got:?}", p.name);
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.contains(w),
                "{}: expected {w:?} in order, got {got:?}",
                p.name
            );
        }
    }

    // A token's history, one click from the board.
    doctor
        .click("table[data-testid=done] tr[data-token='A-001'] a")
        .await;
    let actions = doctor
        .execute(
            "return Array.from(document.querySelectorAll('[data-testid=history-action]')).map(e => e.textContent)",
            vec![],
        )
        .await;
    assert_eq!(
        actions,
        json!([
            "queue.joined",
            "queue.called",
            "queue.serving",
            "queue.completed"
        ])
    );
    doctor
        .goto(&app.url(&format!("/queues/{queue}/board")))
        .await;

    // The receptionist checks a walk-in in from the board, without a phone number.
    sign_in(&app, &tv, &desk.email).await;
    tv.goto(&app.url(&format!("/queues/{queue}/board"))).await;
    tv.fill_labelled("Name", "Gopal Iyer").await;
    tv.click("[data-testid=check-in-submit]").await;
    until_text(&tv, "[data-testid=notice]", "Checked in: A-004.").await;
    assert!(
        tv.text("table[data-testid=waiting] tr[data-token='A-004']")
            .await
            .contains("Gopal Iyer")
    );
    // The doctor's open board picks the walk-in up by itself.
    doctor
        .wait_for(
            "table[data-testid=waiting] tr[data-token='A-004']",
            LIVE_WAIT,
        )
        .await;
    assert!(doctor.csp_violations().await.is_empty());

    // The other doctor's queue is not there for Dr Mehta.
    let (_, queues) = app
        .api(Method::GET, "/api/v1/queues", Some(&admin.access), None)
        .await;
    let other = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "Dr Rao")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    doctor
        .goto(&app.url(&format!("/queues/{other}/board")))
        .await;
    assert_eq!(doctor.text("main h1").await, "Not Found");

    // Revoked, the link shows nothing any more.
    tv.click("[data-testid=screen-link-revoke]").await;
    assert!(tv.accept_dialog().await.starts_with("Revoke this link?"));
    until_text(&tv, "[data-testid=notice]", "The screen link is revoked.").await;
    let r = app.get(link.path()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    doctor.close().await;
    tv.close().await;
}

/// A person mistypes Monday's hours in a queue's settings: the form comes back with the
/// error beside Monday's field and everything they typed still there; fixed, it saves.
/// The reports page draws its chart without breaking the CSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_opening_hour_is_shown_beside_its_field_with_the_input_kept() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let admin = app
        .signup("Lakeside Clinic", "admin@lakeside.example")
        .await;
    let ch = app.provision_sim(&admin, "Front desk", None).await;
    let (s, q) = app
        .api(
            Method::POST,
            "/api/v1/queues",
            Some(&admin.access),
            Some(
                json!({ "channel_id": ch.id, "name": "Dr Iyer", "keywords": ["IYER"],
                "token_prefix": "I", "daily_cap": 50, "position_step": 1 }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let queue = q["id"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    sign_in(&app, &browser, &admin.email).await;

    browser
        .goto(&app.url(&format!("/queues/{queue}/edit")))
        .await;
    browser.fill_labelled("Name", "Dr Iyer (OPD)").await;
    browser.fill_labelled("Monday", "9am till 1").await;
    browser.fill_labelled("Holidays", "2026-12-25").await;
    browser.click("[data-testid=queue-save]").await;
    let error = browser
        .wait_for("[data-testid=error-hours_mon]", LIVE_WAIT)
        .await;
    let text = error.text().await.unwrap();
    assert!(
        text.contains("09:00-13:00"),
        "the error says how to write it: {text}"
    );
    // The error sits inside Monday's label, and the input is as typed.
    let beside: bool = serde_json::from_value(
        browser
            .execute(
                "const e = document.querySelector('[data-testid=error-hours_mon]'); \
                 const i = e.closest('label').querySelector('input'); \
                 return i.name === 'hours_mon' && i.getAttribute('aria-invalid') === 'true';",
                vec![],
            )
            .await,
    )
    .unwrap();
    assert!(beside, "the error is beside Monday's field");
    assert_eq!(browser.value("input[name=hours_mon]").await, "9am till 1");
    assert_eq!(browser.value("input[name=name]").await, "Dr Iyer (OPD)");
    assert_eq!(browser.value("input[name=holidays]").await, "2026-12-25");
    assert_eq!(browser.count(".field-error").await, 1);

    browser.fill_labelled("Monday", "09:00-13:00").await;
    browser.click("[data-testid=queue-save]").await;
    browser.wait_for("[data-testid=notice]", LIVE_WAIT).await;
    let (_, board) = app
        .api(
            Method::GET,
            &format!("/api/v1/queues/{queue}/board"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(board["queue"]["name"], "Dr Iyer (OPD)");
    assert_eq!(board["queue"]["hours"]["mon"][0]["open"], "09:00");

    // The reports page: the chart is inline SVG with a bar per day, no CSP violation.
    browser.goto(&app.url("/queues/reports")).await;
    browser
        .wait_for("[data-testid=served-chart] svg", LIVE_WAIT)
        .await;
    assert_eq!(
        browser.count("[data-testid=served-chart] rect.bar").await,
        30
    );
    assert!(browser.count("[data-testid=report-csv]").await == 1);
    assert_eq!(browser.csp_violations().await, Vec::<Value>::new());
    browser.close().await;
}
