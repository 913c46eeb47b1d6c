//! The web shell as a person uses it: signing up, signing in and out, two-factor sign-in
//! and sessions, in a real headless Chromium against the in-process server. Only setup a
//! person would do elsewhere (an authenticator app, an admin inviting someone) happens
//! outside the browser. SQLite only: the HTTP tests run the same flows on both backends.

mod common;

use common::TestApp;
use common::browser::Browser;
use common::users::PASSWORD;
use frontdesk_store::testing::TestDb;
use serde_json::{Value, json};

const ORG: &str = "Sunrise Clinic";
const ADMIN_NAME: &str = "Asha Rao";
const ADMIN_EMAIL: &str = "asha@sunrise.example";

/// Opens the sign-up page, fills it in and lands on the dashboard.
async fn sign_up(app: &TestApp, browser: &Browser) {
    browser.goto(&app.url("/signup")).await;
    browser.fill_labelled("Organisation", ORG).await;
    browser.fill_labelled("Your name", ADMIN_NAME).await;
    browser.fill_labelled("Email", ADMIN_EMAIL).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser.click("[data-testid=signup-submit]").await;
    browser.wait_for_path("/").await;
    browser.text("[data-testid=home-role]").await;
}

/// Fills in and submits the sign-in form on the current page.
async fn submit_sign_in(browser: &Browser, email: &str, password: &str) {
    browser.fill_labelled("Email", email).await;
    browser.fill_labelled("Password", password).await;
    browser.click("[data-testid=login-submit]").await;
}

/// Signs in through /login and lands on the dashboard.
async fn sign_in(app: &TestApp, browser: &Browser, email: &str) {
    browser.goto(&app.url("/login")).await;
    submit_sign_in(browser, email, PASSWORD).await;
    browser.wait_for_path("/").await;
    browser.text("[data-testid=home-role]").await;
}

/// The server's "now" (the test clock runs ahead of the real one by `app.advance`).
fn server_now(app: &TestApp) -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
        + app.clock_offset.load(std::sync::atomic::Ordering::SeqCst)
}

/// The RFC 6238 code an authenticator app shows for `secret_b32` at `unix` seconds.
fn totp_at(secret_b32: &str, unix: i64) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .unwrap_or_else(|e| panic!("the key shown is not base32 ({e}): {secret_b32:?}"));
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&secret).unwrap();
    mac.update(&(unix / 30).to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = (d[d.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes(d[o..o + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

/// A six-digit code that the server cannot accept now: none of the steps it allows (and
/// one more either side, should a step boundary pass meanwhile) produces it.
fn wrong_code(app: &TestApp, secret_b32: &str) -> String {
    let now = server_now(app);
    let near: Vec<String> = (-2..=2)
        .map(|k| totp_at(secret_b32, now + 30 * k))
        .collect();
    (0..)
        .map(|n| format!("{:06}", 123_456 + n))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_and_land_on_the_dashboard() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let browser = Browser::start().await;

    sign_up(&app, &browser).await;
    assert_eq!(browser.text("main h1").await, ORG);
    assert_eq!(browser.text("header .org").await, ORG);
    assert_eq!(
        browser.text("[data-testid=home-role]").await,
        "You are signed in as admin."
    );
    assert_eq!(browser.text("[data-testid=account-link]").await, ADMIN_NAME);

    browser.click("[data-testid=logout]").await;
    browser.wait_for_path("/login").await;
    assert_eq!(
        browser.text("[data-testid=notice]").await,
        "You are signed out."
    );
    // Really signed out: the dashboard sends back to sign-in.
    browser.goto(&app.url("/")).await;
    browser.wait_for_path("/login").await;
    assert_eq!(browser.count("[data-testid=logout]").await, 0);

    // A typo first: the error, still on the sign-in page, the email kept, the password not.
    browser.goto(&app.url("/login")).await;
    submit_sign_in(&browser, ADMIN_EMAIL, "plum orchard by the sea 42").await;
    assert_eq!(
        browser.text("[data-testid=login-error]").await,
        "Wrong email or password."
    );
    assert_eq!(browser.current_url().await.path(), "/login");
    assert_eq!(browser.value("input[name=email]").await, ADMIN_EMAIL);
    assert_eq!(browser.value("input[name=password]").await, "");
    assert_eq!(browser.count("[data-testid=home-role]").await, 0);

    submit_sign_in(&browser, ADMIN_EMAIL, PASSWORD).await;
    browser.wait_for_path("/").await;
    assert_eq!(browser.text("main h1").await, ORG);
    assert_eq!(
        browser.text("[data-testid=home-role]").await,
        "You are signed in as admin."
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_on_two_factor_then_sign_in_with_a_code() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let browser = Browser::start().await;
    sign_up(&app, &browser).await;

    browser.click("nav.side a[href='/settings/security']").await;
    browser.wait_for_path("/settings/security").await;
    assert_eq!(
        browser.text("[data-testid=totp-status]").await,
        "Two-factor sign-in is off."
    );
    browser.click("[data-testid=totp-setup]").await;
    let secret = browser.text("[data-testid=totp-secret]").await;
    assert_eq!(
        browser.text("[data-testid=totp-status]").await,
        "Two-factor sign-in is being set up."
    );

    // A mistyped code: the page says so and the setup goes on with the same key.
    browser
        .fill_labelled("Code", &wrong_code(&app, &secret))
        .await;
    browser.click("[data-testid=totp-enable]").await;
    assert_eq!(
        browser.text("[data-testid=totp-error]").await,
        "That code is not valid. Check the time on your phone and try again."
    );
    browser.wait_for_path("/settings/security").await;
    assert_eq!(browser.text("[data-testid=totp-secret]").await, secret);

    browser
        .fill_labelled("Code", &totp_at(&secret, server_now(&app)))
        .await;
    browser.click("[data-testid=totp-enable]").await;
    assert_eq!(
        browser.text("[data-testid=notice]").await,
        "Two-factor sign-in is on."
    );
    assert_eq!(
        browser.text("[data-testid=totp-status]").await,
        "Two-factor sign-in is on."
    );
    assert_eq!(browser.count("[data-testid=totp-secret]").await, 0);

    browser.click("[data-testid=logout]").await;
    browser.wait_for_path("/login").await;
    submit_sign_in(&browser, ADMIN_EMAIL, PASSWORD).await;
    browser.wait_for_path("/login/2fa").await;
    // Half signed in: the dashboard is not open yet.
    browser.goto(&app.url("/")).await;
    browser.wait_for_path("/login/2fa").await;

    browser
        .fill_labelled("Code", &wrong_code(&app, &secret))
        .await;
    browser.click("[data-testid=totp-submit]").await;
    assert_eq!(
        browser.text("[data-testid=totp-error]").await,
        "That code is not valid. Check the time on your phone and try again."
    );
    assert_eq!(browser.current_url().await.path(), "/login/2fa");

    // The code that turned it on cannot be replayed: half a minute later, the app shows
    // the next one.
    app.advance(30);
    browser
        .fill_labelled("Code", &totp_at(&secret, server_now(&app)))
        .await;
    browser.click("[data-testid=totp-submit]").await;
    browser.wait_for_path("/").await;
    assert_eq!(
        browser.text("[data-testid=home-role]").await,
        "You are signed in as admin."
    );

    // Turning it off with a wrong code is refused on the same page, and it stays on.
    browser.goto(&app.url("/settings/security")).await;
    browser.fill_labelled("Password", PASSWORD).await;
    browser
        .fill_labelled("Current code", &wrong_code(&app, &secret))
        .await;
    browser.click("[data-testid=totp-disable]").await;
    assert_eq!(
        browser.accept_dialog().await,
        "Turn off two-factor sign-in?"
    );
    assert_eq!(
        browser.text("[data-testid=totp-error]").await,
        "That code is not valid. Check the time on your phone and try again."
    );
    browser.wait_for_path("/settings/security").await;
    assert_eq!(
        browser.text("[data-testid=totp-status]").await,
        "Two-factor sign-in is on."
    );
    browser.close().await;
}

/// The rows of the sessions table.
async fn session_rows(browser: &Browser) -> usize {
    browser.count("[data-testid=sessions] tbody tr").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_session_signs_the_other_browser_out() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (a, b) = tokio::join!(Browser::start(), Browser::start());
    sign_up(&app, &a).await;
    sign_in(&app, &b, ADMIN_EMAIL).await;

    a.goto(&app.url("/settings/sessions")).await;
    assert_eq!(session_rows(&a).await, 2);
    assert_eq!(a.count("[data-testid=sessions] .badge").await, 1);
    assert_eq!(a.count("[data-testid=revoke-session]").await, 1);
    a.click("[data-testid=revoke-session]").await;
    assert_eq!(
        a.text("[data-testid=notice]").await,
        "The session is signed out."
    );
    assert_eq!(session_rows(&a).await, 1);

    // B's next page is the sign-in page, which brings B back where it was going.
    b.goto(&app.url("/settings/profile")).await;
    let at = b.wait_for_path("/login").await;
    assert_eq!(
        at.query_pairs()
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned()),
        Some("/settings/profile".to_owned()),
        "{at}"
    );
    // A is still signed in.
    a.goto(&app.url("/settings/profile")).await;
    a.wait_for_path("/settings/profile").await;

    // An admin signs a team member out from the team page. The member is invited and
    // joins outside this browser, then signs in in B.
    let admin = app.login(ADMIN_EMAIL, PASSWORD).await;
    let member = app
        .add_member(&admin, "ravi@sunrise.example", "agent")
        .await;
    submit_sign_in(&b, &member.email, PASSWORD).await;
    b.wait_for_path("/settings/profile").await;
    assert_eq!(
        b.text("[data-testid=account-link]").await,
        "Member ravi@sunrise.example"
    );

    a.click("nav.side a[href='/team']").await;
    a.wait_for_path("/team").await;
    let row = format!(
        "[data-testid=members] tr[data-user-id='{}']",
        member.user_id
    );
    assert_eq!(
        a.count(&format!("{row} [data-testid=member-revoke-sessions]"))
            .await,
        1
    );
    a.click(&format!("{row} [data-testid=member-revoke-sessions]"))
        .await;
    assert_eq!(
        a.accept_dialog().await,
        "Sign this member out everywhere in this organisation?"
    );
    assert_eq!(
        a.text("[data-testid=notice]").await,
        "Their sessions in this organisation are signed out."
    );

    b.goto(&app.url("/settings/profile")).await;
    b.wait_for_path("/login").await;
    // The admin's own browser is untouched.
    a.goto(&app.url("/")).await;
    a.wait_for_path("/").await;

    a.close().await;
    b.close().await;
}

/// What a strict-CSP page must show: no inline script, no `style` attributes, and no
/// violation reported by the browser; and the page's own response carries the policy.
async fn assert_strict_csp(app: &TestApp, browser: &Browser, path: &str) {
    browser.wait_for_path(path).await;
    let inline = browser
        .execute(
            "return {
                scripts: document.querySelectorAll('script:not([src])').length,
                styled: Array.from(document.querySelectorAll('[style]')).map(e => e.outerHTML.slice(0, 120)),
                styleElements: document.querySelectorAll('style').length,
                handlers: Array.from(document.querySelectorAll('*')).flatMap(e =>
                    Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
                javascriptUrls: document.querySelectorAll('[href^=\"javascript:\" i]').length,
            }",
            vec![],
        )
        .await;
    assert_eq!(
        inline,
        json!({ "scripts": 0, "styled": [], "styleElements": 0, "handlers": [], "javascriptUrls": 0 }),
        "inline script or style on {path}"
    );
    let violations = browser.csp_violations().await;
    assert!(
        violations.is_empty(),
        "CSP violations on {path}: {violations:#?}"
    );
    // Our own stylesheet applied (a blocked one would leave the default white).
    let background = browser
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await;
    assert_eq!(
        background, "rgb(247, 248, 250)",
        "app.css not applied on {path}"
    );

    // The same page fetched with the browser's session: its policy allows nothing inline.
    let mut request = app.client.get(app.url(path));
    if let Some(session) = browser.cookie("fd_session").await {
        request = request.header("cookie", format!("fd_session={session}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "{path} fetched with the browser's session"
    );
    let csp = response
        .headers()
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{path} has no content-security-policy header"))
        .to_str()
        .unwrap()
        .to_owned();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'self'"), "{path}: {csp}");
    assert!(
        !directives
            .iter()
            .any(|d| d.starts_with("script-src") || d.starts_with("style-src")),
        "{path} widens script or style sources: {csp}"
    );
    assert!(!csp.contains("unsafe"), "{path}: {csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_csp_page_has_no_inline_script_or_style() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let browser = Browser::start().await;

    // The probe is not blind: a page with an inline script under the same policy is
    // reported (a data: page whose policy comes from a meta element).
    browser
        .goto(
            "data:text/html,<meta http-equiv=Content-Security-Policy content=\"default-src 'self'\">\
             <p id=probe>probe</p><script>document.title = 'ran'</script>",
        )
        .await;
    browser.text("#probe").await;
    let violations = browser.csp_violations().await;
    assert!(
        violations
            .iter()
            .any(|v| v["effectiveDirective"] == "script-src-elem"),
        "the violation probe saw nothing: {violations:?}"
    );

    browser.goto(&app.url("/login")).await;
    assert_strict_csp(&app, &browser, "/login").await;

    sign_up(&app, &browser).await;
    assert_strict_csp(&app, &browser, "/").await;

    browser.goto(&app.url("/team")).await;
    assert_strict_csp(&app, &browser, "/team").await;

    browser.goto(&app.url("/settings/security")).await;
    browser.click("[data-testid=totp-setup]").await;
    browser.text("[data-testid=totp-secret]").await;
    assert_strict_csp(&app, &browser, "/settings/security").await;
    let qr: Value = browser
        .execute(
            "const qr = document.querySelector('div.qr');
             const svg = qr && qr.querySelector('svg');
             if (!svg) return null;
             const r = svg.getBoundingClientRect();
             return { width: r.width, height: r.height, role: qr.getAttribute('role'),
                      label: qr.getAttribute('aria-label') };",
            vec![],
        )
        .await;
    assert!(
        qr["width"].as_f64().unwrap_or(0.0) > 0.0,
        "QR code not drawn: {qr}"
    );
    assert!(
        qr["height"].as_f64().unwrap_or(0.0) > 0.0,
        "QR code not drawn: {qr}"
    );
    // Screen readers announce it as an image with a name, not as a bare drawing.
    assert_eq!(qr["role"], "img", "{qr}");
    assert!(qr["label"].as_str().is_some_and(|l| !l.is_empty()), "{qr}");
    browser.close().await;
}
