//! Identity end to end over HTTP, on both backends: sign-up, sign-in and its throttling,
//! password hashes, access and refresh tokens, revocation, two-factor, one-time links by
//! real mail, invitations, roles, API keys, several organisations, and the audit trail.

mod common;

use common::TestApp;
use common::smtp::SmtpSink;
use common::users::{PASSWORD, set_cookie_value};
use frontdesk_store::both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// RFC 6238 code for a base32 secret at the server's current time.
fn totp_now(app: &TestApp, secret_b32: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp()
        + app.clock_offset.load(std::sync::atomic::Ordering::SeqCst);
    let step = now / 30;
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&secret).unwrap();
    mac.update(&step.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let o = (d[d.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes(d[o..o + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

/// The code of the step after the current one (a code cannot be used twice).
fn totp_now_next(app: &TestApp, secret_b32: &str) -> String {
    app.advance(30);
    totp_now(app, secret_b32)
}

/// Signs in with password and code; returns the access token.
async fn login_with_code(app: &TestApp, email: &str, code: &str) -> String {
    let (s, v) = app
        .api(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": PASSWORD, "totp_code": code })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

async fn audit_actions(app: &TestApp, token: &str) -> Vec<String> {
    let (s, v) = app
        .api(
            Method::GET,
            "/api/v1/audit-events?limit=500",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn sign_up_makes_an_organisation_with_its_admin(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Sunrise Clinic", "asha@sunrise.example").await;
        let (s, me) = app.api(Method::GET, "/api/v1/me", Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(me["user"]["email"], "asha@sunrise.example");
        assert_eq!(me["active"]["role"], "admin");
        assert_eq!(me["organisations"][0]["name"], "Sunrise Clinic");
        assert_eq!(me["organisations"][0]["slug"], "sunrise-clinic");
        assert!(me.to_string().find("password").is_none(), "no password hash in {me}");

        // The same email again: 409; the same organisation name gets its own address.
        let body = |email: &str, pw: &str| json!({ "organisation_name": "Sunrise Clinic", "name": "X", "email": email, "password": pw });
        let (s, v) = app.api(Method::POST, "/api/v1/auth/signup", None, Some(body("ASHA@sunrise.example", PASSWORD))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "email_taken"), "{v}");
        let other = app.signup("Sunrise Clinic", "ravi@sunrise.example").await;
        let (_, me2) = app.api(Method::GET, "/api/v1/me", Some(&other.access), None).await;
        assert_ne!(me2["organisations"][0]["slug"], "sunrise-clinic");
        assert!(me2["organisations"][0]["slug"].as_str().unwrap().starts_with("sunrise-clinic-"));

        // Password policy: length and common passwords, no composition rules.
        for (pw, expect) in [("short one", "weak_password"), ("Password1234!", "weak_password"), (&"x".repeat(129)[..], "weak_password")] {
            let (s, v) = app.api(Method::POST, "/api/v1/auth/signup", None, Some(body("new@x.example", pw))).await;
            assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, expect), "{pw}: {v}");
        }
        let (s, v) = app.api(Method::POST, "/api/v1/auth/signup", None, Some(body("not-an-email", PASSWORD))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"));
        let (s, v) = app.api(Method::POST, "/api/v1/auth/signup", None, Some(json!({ "organisation_name": "X", "name": "X", "email": "a@b.example", "password": PASSWORD, "role": "root" }))).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_body"), "unknown fields are refused: {v}");
    }

    async fn wrong_password_and_unknown_account_get_one_answer(db) {
        let app = TestApp::spawn(db).await;
        app.signup("Clinic", "asha@clinic.example").await;
        let login = |email: &'static str, pw: &'static str| {
            let app = &app;
            async move { app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": email, "password": pw }))).await }
        };
        let (s1, v1) = login("asha@clinic.example", "not the right password").await;
        let (s2, v2) = login("nobody@clinic.example", "not the right password").await;
        assert_eq!(s1, StatusCode::UNAUTHORIZED);
        assert_eq!((s1, code(&v1), v1["error"]["message"].clone()), (s2, code(&v2), v2["error"]["message"].clone()));
        let (s, _) = login("asha@clinic.example", PASSWORD).await;
        assert_eq!(s, StatusCode::OK);
    }

    async fn repeated_failures_lock_the_account_even_for_the_right_password(db) {
        let app = TestApp::spawn(db).await;
        app.signup("Clinic", "asha@clinic.example").await;
        let mut last = (StatusCode::OK, Value::Null, None);
        for _ in 0..10 {
            let r = app.client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": "asha@clinic.example", "password": "guess guess guess" })).send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            last = (r.status(), r.json().await.unwrap(), retry);
        }
        assert_eq!(last.0, StatusCode::TOO_MANY_REQUESTS, "{:?}", last.1);
        assert_eq!(code(&last.1), "rate_limited");
        let secs: u64 = last.2.expect("Retry-After").parse().unwrap();
        assert!((1..=900).contains(&secs), "{secs}");
        // The right password during the lockout is refused too.
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": PASSWORD }))).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        // After the lockout the right password works and the count starts over.
        app.advance(16 * 60);
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": PASSWORD }))).await;
        assert_eq!(s, StatusCode::OK);
    }

    async fn imported_bcrypt_hash_signs_in_and_is_upgraded_to_argon2id(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let user = frontdesk_domain::UserId::parse(&admin.user_id).unwrap();
        let bcrypt_hash = bcrypt::hash("imported password 2019", 10).unwrap();
        app.db.store.set_password_hash(user, &bcrypt_hash, frontdesk_store::now_micros()).await.unwrap();
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": "imported password 2019" }))).await;
        assert_eq!(s, StatusCode::OK);
        let creds = app.db.store.credentials(user).await.unwrap().unwrap();
        let stored = secrecy::ExposeSecret::expose_secret(creds.password_hash.as_ref().unwrap()).to_owned();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": "imported password 2019" }))).await;
        assert_eq!(s, StatusCode::OK, "the upgraded hash verifies");
    }

    async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (s, next) = app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": admin.refresh }))).await;
        assert_eq!(s, StatusCode::OK, "{next}");
        assert_ne!(next["refresh_token"], admin.refresh.as_str());
        let access2 = next["access_token"].as_str().unwrap().to_owned();
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&access2), None).await.0, StatusCode::OK);
        // The spent token again: refused, and the whole session (new tokens too) is over.
        let (s, _) = app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": admin.refresh }))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&access2), None).await.0, StatusCode::UNAUTHORIZED);
        let (s, _) = app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": next["refresh_token"] }))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The reuse is in the audit log (read with a fresh sign-in).
        let again = app.login("asha@clinic.example", PASSWORD).await;
        assert!(audit_actions(&app, &again.access).await.contains(&"auth.refresh_token_reused".to_string()));
        let (s, _) = app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": "fdr_not-a-token" }))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    async fn access_tokens_expire_and_refresh_keeps_the_session(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        app.advance(16 * 60);
        let (s, v) = app.api(Method::GET, "/api/v1/me", Some(&admin.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
        let (s, next) = app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": admin.refresh }))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(app.api(Method::GET, "/api/v1/me", next["access_token"].as_str(), None).await.0, StatusCode::OK);
        // A tampered token is refused.
        let mut t = next["access_token"].as_str().unwrap().to_owned();
        // Another last character (the same one would be no tampering at all).
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&t), None).await.0, StatusCode::UNAUTHORIZED);
    }

    async fn revocation_takes_effect_on_the_very_next_request(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let laptop = app.login("asha@clinic.example", PASSWORD).await;
        let phone = app.login("asha@clinic.example", PASSWORD).await;
        let (s, list) = app.api(Method::GET, "/api/v1/me/sessions", Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::OK);
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 3);
        assert_eq!(list.iter().filter(|x| x["current"] == true).count(), 1);
        // Revoke the laptop's session from the first one.
        let (_, mine) = app.api(Method::GET, "/api/v1/me/sessions", Some(&laptop.access), None).await;
        let laptop_id = mine.as_array().unwrap().iter().find(|x| x["current"] == true).unwrap()["id"].as_str().unwrap().to_owned();
        let (s, _) = app.api(Method::DELETE, &format!("/api/v1/me/sessions/{laptop_id}"), Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&laptop.access), None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(app.api(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": laptop.refresh }))).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&phone.access), None).await.0, StatusCode::OK);
        // Revoking a session id that is not mine (or not live) is a 404.
        assert_eq!(app.api(Method::DELETE, &format!("/api/v1/me/sessions/{laptop_id}"), Some(&admin.access), None).await.0, StatusCode::NOT_FOUND);
        // Sign out everywhere else.
        let (s, v) = app.api(Method::POST, "/api/v1/me/sessions/revoke-others", Some(&admin.access), None).await;
        assert_eq!((s, v["revoked"].as_u64()), (StatusCode::OK, Some(1)));
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&phone.access), None).await.0, StatusCode::UNAUTHORIZED);
        // Logout ends the current session.
        assert_eq!(app.api(Method::POST, "/api/v1/auth/logout", Some(&admin.access), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&admin.access), None).await.0, StatusCode::UNAUTHORIZED);
    }

    async fn an_admin_signs_a_member_out_and_removing_a_member_ends_their_access(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let agent = app.add_member(&admin, "ravi@clinic.example", "agent").await;
        let web = app.web_login("ravi@clinic.example", PASSWORD).await;
        assert_eq!(app.web_get(&web, "/").await.status(), StatusCode::OK);
        let (s, v) = app.api(Method::POST, &format!("/api/v1/members/{}/revoke-sessions", agent.user_id), Some(&admin.access), None).await;
        assert_eq!((s, v["revoked"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&agent.access), None).await.0, StatusCode::UNAUTHORIZED);
        let r = app.web_get(&web, "/").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));

        let agent = app.login("ravi@clinic.example", PASSWORD).await;
        let (s, _) = app.api(Method::DELETE, &format!("/api/v1/members/{}", agent.user_id), Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, "/api/v1/org", Some(&agent.access), None).await.0, StatusCode::UNAUTHORIZED);
        // The last admin cannot be removed or demoted.
        let (_, roles) = app.api(Method::GET, "/api/v1/roles", Some(&admin.access), None).await;
        let agent_role = roles.as_array().unwrap().iter().find(|r| r["name"] == "agent").unwrap()["id"].clone();
        let (s, v) = app.api(Method::PATCH, &format!("/api/v1/members/{}", admin.user_id), Some(&admin.access), Some(json!({ "role_id": agent_role }))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "last_admin"));
        let (s, v) = app.api(Method::DELETE, &format!("/api/v1/members/{}", admin.user_id), Some(&admin.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "last_admin"));
    }

    async fn two_factor_sign_in_needs_a_fresh_code(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (s, setup) = app.api(Method::POST, "/api/v1/me/totp/setup", Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::OK);
        let secret = setup["secret"].as_str().unwrap().to_owned();
        assert!(setup["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Frontdesk:asha@clinic.example?secret="));
        let (s, v) = app.api(Method::POST, "/api/v1/me/totp/enable", Some(&admin.access), Some(json!({ "code": "000000" }))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "totp_invalid"));
        let (s, _) = app.api(Method::POST, "/api/v1/me/totp/enable", Some(&admin.access), Some(json!({ "code": totp_now(&app, &secret) }))).await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        let login = |body: Value| { let app = &app; async move { app.api(Method::POST, "/api/v1/auth/login", None, Some(body)).await } };
        let (s, v) = login(json!({ "email": "asha@clinic.example", "password": PASSWORD })).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "totp_required"));
        let (s, v) = login(json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": "123456" })).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "totp_invalid"));
        // The code used to enable cannot be replayed; the next step's code works once.
        app.advance(30);
        let c = totp_now(&app, &secret);
        let (s, _) = login(json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": c })).await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = login(json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": c })).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "totp_invalid"), "replayed code");
        // The secret is sealed at rest.
        let user = frontdesk_domain::UserId::parse(&admin.user_id).unwrap();
        assert!(app.db.store.totp_state(user).await.unwrap().unwrap().enabled);

        // Browser sign-in: password, then the code page.
        let r = app.client.get(app.url("/login")).send().await.unwrap();
        let pre = set_cookie_value(&r, "fd_csrf").unwrap();
        let r = app.client.post(app.url("/login")).header("cookie", format!("fd_csrf={pre}"))
            .form(&[("_csrf", pre.as_str()), ("email", "asha@clinic.example"), ("password", PASSWORD)]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login/2fa"));
        let pending = common::users::WebSession { cookie_name: "fd_session".into(), cookie: set_cookie_value(&r, "fd_session").unwrap(), csrf: String::new() };
        // Pending: every other page sends back to the code.
        let r = app.web_get(&pending, "/").await;
        assert_eq!(r.headers()["location"], "/login/2fa");
        let html = app.web_get(&pending, "/login/2fa").await.text().await.unwrap();
        let csrf = common::users::csrf_in(&html).unwrap();
        let pending = common::users::WebSession { csrf, ..pending };
        app.advance(30);
        let r = app.web_post(&pending, "/login/2fa", &[("code", &totp_now(&app, &secret)), ("next", "/team")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/team");
        let full = set_cookie_value(&r, "fd_session").expect("a new session id after the second factor");
        assert_ne!(full, pending.cookie);
        assert_eq!(app.web_get(&pending, "/login/2fa").await.status(), StatusCode::SEE_OTHER, "the pending session is over");
    }

    async fn guessing_two_factor_codes_locks_the_second_factor(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (_, setup) = app.api(Method::POST, "/api/v1/me/totp/setup", Some(&admin.access), None).await;
        let secret = setup["secret"].as_str().unwrap().to_owned();
        let c = totp_now(&app, &secret);
        assert_eq!(app.api(Method::POST, "/api/v1/me/totp/enable", Some(&admin.access), Some(json!({ "code": c }))).await.0, StatusCode::NO_CONTENT);
        // Someone with the password tries codes: each right password must not reset the count.
        let mut statuses = Vec::new();
        for guess in 0..10 {
            let code = format!("{:06}", 100_000 + guess);
            let r = app.client.post(app.url("/api/v1/auth/login"))
                .json(&json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": code })).send().await.unwrap();
            statuses.push(r.status());
        }
        assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
        assert!(statuses[..9].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
        // Locked: even the right code is refused until the lockout ends.
        app.advance(30);
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": totp_now(&app, &secret) }))).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        app.advance(16 * 60);
        let (s, _) = app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": PASSWORD, "totp_code": totp_now(&app, &secret) }))).await;
        assert_eq!(s, StatusCode::OK);
        let again = login_with_code(&app, "asha@clinic.example", &totp_now_next(&app, &secret)).await;
        assert!(audit_actions(&app, &again).await.iter().filter(|a| *a == "auth.totp_failed").count() >= 9);
    }

    async fn an_organisation_can_require_two_factor(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let agent = app.add_member(&admin, "ravi@clinic.example", "agent").await;
        let (s, _) = app.api(Method::PATCH, "/api/v1/org", Some(&admin.access), Some(json!({ "name": "Clinic", "require_2fa": true }))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app.api(Method::GET, "/api/v1/org", Some(&agent.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "two_factor_required"));
        let (_, me) = app.api(Method::GET, "/api/v1/me", Some(&agent.access), None).await;
        assert_eq!(me["needs_2fa_setup"], true);
        // They can still set it up, and then work.
        let (_, setup) = app.api(Method::POST, "/api/v1/me/totp/setup", Some(&agent.access), None).await;
        let c = totp_now(&app, setup["secret"].as_str().unwrap());
        assert_eq!(app.api(Method::POST, "/api/v1/me/totp/enable", Some(&agent.access), Some(json!({ "code": c }))).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, "/api/v1/org", Some(&agent.access), None).await.0, StatusCode::OK);
        // In the browser, the requirement sends members to the setup page.
        let web = app.web_login("asha@clinic.example", PASSWORD).await;
        let r = app.web_get(&web, "/team").await;
        assert_eq!(r.headers()["location"], "/settings/security");
        let html = app.web_get(&web, "/settings/security").await.text().await.unwrap();
        assert!(html.contains("requires two-factor"), "{html}");
    }

    async fn magic_link_by_mail_signs_in_once_and_expires(db) {
        let app = TestApp::spawn(db).await;
        let sink = SmtpSink::start().await;
        sink.configure(&app.db.store).await;
        app.signup("Clinic", "asha@clinic.example").await;
        // Unknown and known addresses get the same answer; only the known one gets mail.
        for email in ["nobody@clinic.example", "asha@clinic.example"] {
            let (s, v) = app.api(Method::POST, "/api/v1/auth/magic-link", None, Some(json!({ "email": email }))).await;
            assert_eq!((s, v), (StatusCode::ACCEPTED, Value::Null));
        }
        let mail = sink.wait_for("asha@clinic.example", "sign-in link", 0).await;
        let link = mail.link(&app.url("/auth/magic?token=")).expect("a link in the mail");
        assert!(sink.mails().iter().all(|m| !m.to.iter().any(|t| t.contains("nobody"))));
        let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        assert!(token.starts_with("fdm_"));

        // Opening the link shows a button; the token is spent only by the button (POST).
        let r = app.client.get(&link).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let pre = set_cookie_value(&r, "fd_csrf").unwrap();
        let redeem = |t: String| { let app = &app; let pre = pre.clone(); async move {
            app.client.post(app.url("/auth/magic")).header("cookie", format!("fd_csrf={pre}")).header("accept", "text/html")
                .form(&[("_csrf", pre.as_str()), ("token", t.as_str())]).send().await.unwrap()
        } };
        let r = redeem(token.clone()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/");
        assert!(set_cookie_value(&r, "fd_session").is_some());
        let r = redeem(token).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a second use is refused");

        // A new link expires after 15 minutes.
        app.api(Method::POST, "/api/v1/auth/magic-link", None, Some(json!({ "email": "asha@clinic.example" }))).await;
        let mail = sink.wait_for("asha@clinic.example", "sign-in link", 1).await;
        let link = mail.link(&app.url("/auth/magic?token=")).unwrap();
        let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        app.advance(16 * 60);
        assert_eq!(redeem(token).await.status(), StatusCode::BAD_REQUEST);
    }

    async fn password_reset_by_mail_sets_a_new_password_and_ends_sessions(db) {
        let app = TestApp::spawn(db).await;
        let sink = SmtpSink::start().await;
        sink.configure(&app.db.store).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (s, _) = app.api(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({ "email": "asha@clinic.example" }))).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let mail = sink.wait_for("asha@clinic.example", "Reset your", 0).await;
        let link = mail.link(&app.url("/password/reset?token=")).unwrap();
        let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        // A weak password does not burn the link.
        let (s, v) = app.api(Method::POST, "/api/v1/auth/password-reset/complete", None, Some(json!({ "token": token, "new_password": "password1234" }))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
        let new_pw = "a brand new harbour lantern";
        let (s, _) = app.api(Method::POST, "/api/v1/auth/password-reset/complete", None, Some(json!({ "token": token, "new_password": new_pw }))).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = app.api(Method::POST, "/api/v1/auth/password-reset/complete", None, Some(json!({ "token": token, "new_password": new_pw }))).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_link"));
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&admin.access), None).await.0, StatusCode::UNAUTHORIZED, "old sessions end");
        assert_eq!(app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": PASSWORD }))).await.0, StatusCode::UNAUTHORIZED);
        app.login("asha@clinic.example", new_pw).await;
        sink.wait_for("asha@clinic.example", "password was changed", 0).await;
    }

    async fn invitations_by_mail_add_members_with_their_role(db) {
        let app = TestApp::spawn(db).await;
        let sink = SmtpSink::start().await;
        sink.configure(&app.db.store).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (_, roles) = app.api(Method::GET, "/api/v1/roles", Some(&admin.access), None).await;
        let manager = roles.as_array().unwrap().iter().find(|r| r["name"] == "manager").unwrap()["id"].clone();
        let (s, inv) = app.api(Method::POST, "/api/v1/invitations", Some(&admin.access), Some(json!({ "email": "Meera@Clinic.example", "role_id": manager }))).await;
        assert_eq!(s, StatusCode::CREATED, "{inv}");
        let mail = sink.wait_for("meera@clinic.example", "invited to Clinic", 0).await;
        let link = mail.link(&app.url("/invitations/accept?token=")).unwrap();
        assert_eq!(link, inv["invite_url"].as_str().unwrap());
        let token = url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        let (s, preview) = app.api(Method::POST, "/api/v1/invitations/preview", None, Some(json!({ "token": token }))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!((preview["org_name"].as_str(), preview["role_name"].as_str(), preview["email"].as_str()), (Some("Clinic"), Some("manager"), Some("meera@clinic.example")));
        let (s, tokens) = app.api(Method::POST, "/api/v1/invitations/accept", None, Some(json!({ "token": token, "name": "Meera", "password": PASSWORD }))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (_, me) = app.api(Method::GET, "/api/v1/me", tokens["access_token"].as_str(), None).await;
        assert_eq!(me["active"]["role"], "manager");
        // Spent.
        assert_eq!(app.api(Method::POST, "/api/v1/invitations/preview", None, Some(json!({ "token": token }))).await.0, StatusCode::NOT_FOUND);
        let (_, members) = app.api(Method::GET, "/api/v1/members", Some(&admin.access), None).await;
        assert_eq!(members.as_array().unwrap().len(), 2);
        // Inviting a member again: 409. An existing account accepts with its own session,
        // and only for its own email.
        let (s, v) = app.api(Method::POST, "/api/v1/invitations", Some(&admin.access), Some(json!({ "email": "meera@clinic.example", "role_id": manager }))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "already_a_member"));
        let other = app.signup("Other Clinic", "zara@other.example").await;
        let (_, inv) = app.api(Method::POST, "/api/v1/invitations", Some(&admin.access), Some(json!({ "email": "zara@other.example", "role_id": manager }))).await;
        let token = url::Url::parse(inv["invite_url"].as_str().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        let (s, v) = app.api(Method::POST, "/api/v1/me/invitations/accept", tokens["access_token"].as_str(), Some(json!({ "token": token }))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "invitation_for_another_email"));
        let (s, v) = app.api(Method::POST, "/api/v1/me/invitations/accept", Some(&other.access), Some(json!({ "token": token }))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, me) = app.api(Method::GET, "/api/v1/me", Some(&other.access), None).await;
        assert_eq!(me["organisations"].as_array().unwrap().len(), 2);
        // A withdrawn invitation stops working.
        let (_, inv) = app.api(Method::POST, "/api/v1/invitations", Some(&admin.access), Some(json!({ "email": "late@clinic.example", "role_id": manager }))).await;
        let id = inv["invitation"]["id"].as_str().unwrap();
        assert_eq!(app.api(Method::DELETE, &format!("/api/v1/invitations/{id}"), Some(&admin.access), None).await.0, StatusCode::NO_CONTENT);
        let token = url::Url::parse(inv["invite_url"].as_str().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        assert_eq!(app.api(Method::POST, "/api/v1/invitations/preview", None, Some(json!({ "token": token }))).await.0, StatusCode::NOT_FOUND);
    }

    async fn custom_roles_grant_exactly_their_permissions(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (s, role) = app.api(Method::POST, "/api/v1/roles", Some(&admin.access), Some(json!({
            "name": "Receptionist", "permissions": ["queue.read", "queue.manage", "team.manage"], "description": "Front desk"
        }))).await;
        assert_eq!(s, StatusCode::CREATED, "{role}");
        assert_eq!(role["permissions"], json!(["queue.read", "queue.manage", "team.manage"]));
        let (s, v) = app.api(Method::POST, "/api/v1/roles", Some(&admin.access), Some(json!({ "name": "Bad", "permissions": ["queue.fly"] }))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_permission"));
        let (s, v) = app.api(Method::POST, "/api/v1/roles", Some(&admin.access), Some(json!({ "name": "Admin", "permissions": [] }))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "role_name_taken"), "built-in names are taken");
        let recep = app.add_member(&admin, "neha@clinic.example", "Receptionist").await;
        let (_, me) = app.api(Method::GET, "/api/v1/me", Some(&recep.access), None).await;
        assert_eq!(me["active"]["permissions"], json!(["queue.read", "queue.manage", "team.manage"]));
        assert_eq!(app.api(Method::GET, "/api/v1/members", Some(&recep.access), None).await.0, StatusCode::OK);
        assert_eq!(app.api(Method::GET, "/api/v1/audit-events", Some(&recep.access), None).await.0, StatusCode::FORBIDDEN);
        // Team managers cannot hand out more than they hold: inviting an admin is refused.
        let (_, roles) = app.api(Method::GET, "/api/v1/roles", Some(&recep.access), None).await;
        let admin_role = roles.as_array().unwrap().iter().find(|r| r["name"] == "admin").unwrap()["id"].clone();
        let (s, v) = app.api(Method::POST, "/api/v1/invitations", Some(&recep.access), Some(json!({ "email": "x@clinic.example", "role_id": admin_role }))).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "exceeds_own_permissions"));
        // Nor act on someone who holds more: signing the admin out is refused.
        let (s, v) = app.api(Method::POST, &format!("/api/v1/members/{}/revoke-sessions", admin.user_id), Some(&recep.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "exceeds_own_permissions"));
        assert_eq!(app.api(Method::GET, "/api/v1/me", Some(&admin.access), None).await.0, StatusCode::OK);
        // Changing the role changes what the member may do on the very next request.
        let rid = role["id"].as_str().unwrap();
        let (s, _) = app.api(Method::PATCH, &format!("/api/v1/roles/{rid}"), Some(&admin.access), Some(json!({ "name": "Receptionist", "permissions": ["queue.read", "audit.read"] }))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(app.api(Method::GET, "/api/v1/audit-events", Some(&recep.access), None).await.0, StatusCode::OK);
        assert_eq!(app.api(Method::GET, "/api/v1/members", Some(&recep.access), None).await.0, StatusCode::FORBIDDEN);
        // Built-in roles are fixed; a role in use cannot be deleted.
        let (s, v) = app.api(Method::PATCH, &format!("/api/v1/roles/{}", admin_role.as_str().unwrap()), Some(&admin.access), Some(json!({ "name": "admin", "permissions": [] }))).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "builtin_role"));
        let (s, v) = app.api(Method::DELETE, &format!("/api/v1/roles/{rid}"), Some(&admin.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "role_in_use"));
        let actions = audit_actions(&app, &admin.access).await;
        for a in ["role.created", "role.updated", "invitation.created", "invitation.accepted"] {
            assert!(actions.contains(&a.to_string()), "{a} missing from {actions:?}");
        }
    }

    async fn api_keys_are_shown_once_scoped_and_revocable(db) {
        let app = TestApp::spawn(db).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        let (s, created) = app.api(Method::POST, "/api/v1/api-keys", Some(&admin.access), Some(json!({ "name": "CRM sync", "scopes": ["audit.read"] }))).await;
        assert_eq!(s, StatusCode::CREATED);
        let key = created["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with(created["api_key"]["prefix"].as_str().unwrap()));
        let (_, list) = app.api(Method::GET, "/api/v1/api-keys", Some(&admin.access), None).await;
        assert!(!list.to_string().contains(&key), "the key is never listed");
        assert_eq!(list[0]["last_used_at"], Value::Null);
        assert_eq!(app.api(Method::GET, "/api/v1/audit-events", Some(&key), None).await.0, StatusCode::OK);
        assert_eq!(app.api(Method::GET, "/api/v1/members", Some(&key), None).await.0, StatusCode::FORBIDDEN);
        let (s, v) = app.api(Method::GET, "/api/v1/me", Some(&key), None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_for_api_keys"));
        let (_, list) = app.api(Method::GET, "/api/v1/api-keys", Some(&admin.access), None).await;
        assert_ne!(list[0]["last_used_at"], Value::Null);
        let id = created["api_key"]["id"].as_str().unwrap();
        assert_eq!(app.api(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&admin.access), None).await.0, StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, "/api/v1/audit-events", Some(&key), None).await.0, StatusCode::UNAUTHORIZED);
        // A key cannot carry more than its creator holds, nor nothing at all.
        let agent = app.add_member(&admin, "ravi@clinic.example", "manager").await;
        let (_, keys_role) = app.api(Method::POST, "/api/v1/roles", Some(&admin.access), Some(json!({ "name": "Integrator", "permissions": ["api_keys.manage", "contacts.read"] }))).await;
        let (s, _) = app.api(Method::PATCH, &format!("/api/v1/members/{}", agent.user_id), Some(&admin.access), Some(json!({ "role_id": keys_role["id"] }))).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = app.api(Method::POST, "/api/v1/api-keys", Some(&agent.access), Some(json!({ "name": "x", "scopes": ["audit.read"] }))).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "exceeds_own_permissions"));
        let (s, v) = app.api(Method::POST, "/api/v1/api-keys", Some(&agent.access), Some(json!({ "name": "x", "scopes": [] }))).await;
        assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
        assert_eq!(app.api(Method::GET, "/api/v1/audit-events", Some("fdk_made-up-key"), None).await.0, StatusCode::UNAUTHORIZED);
    }

    async fn a_person_in_two_organisations_acts_in_one_at_a_time(db) {
        let app = TestApp::spawn(db).await;
        let a = app.signup("Alpha Clinic", "asha@alpha.example").await;
        let b = app.signup("Beta Clinic", "bo@beta.example").await;
        let (_, roles) = app.api(Method::GET, "/api/v1/roles", Some(&b.access), None).await;
        let agent = roles.as_array().unwrap().iter().find(|r| r["name"] == "agent").unwrap()["id"].clone();
        let (_, inv) = app.api(Method::POST, "/api/v1/invitations", Some(&b.access), Some(json!({ "email": "asha@alpha.example", "role_id": agent }))).await;
        let token = url::Url::parse(inv["invite_url"].as_str().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
        assert_eq!(app.api(Method::POST, "/api/v1/me/invitations/accept", Some(&a.access), Some(json!({ "token": token }))).await.0, StatusCode::OK);
        // Still acting in Alpha as admin.
        let (_, org) = app.api(Method::GET, "/api/v1/org", Some(&a.access), None).await;
        assert_eq!((org["name"].as_str(), org["my_role"].as_str()), (Some("Alpha Clinic"), Some("admin")));
        let beta_id = b.org_id.clone().unwrap();
        let (s, switched) = app.api(Method::POST, "/api/v1/auth/switch-org", Some(&a.access), Some(json!({ "org_id": beta_id }))).await;
        assert_eq!(s, StatusCode::OK, "{switched}");
        let in_beta = switched["access_token"].as_str().unwrap();
        let (_, org) = app.api(Method::GET, "/api/v1/org", Some(in_beta), None).await;
        assert_eq!((org["name"].as_str(), org["my_role"].as_str()), (Some("Beta Clinic"), Some("agent")));
        assert_eq!(app.api(Method::GET, "/api/v1/members", Some(in_beta), None).await.0, StatusCode::FORBIDDEN);
        // The old token named Alpha; the session now works in Beta, so it no longer fits.
        assert_eq!(app.api(Method::GET, "/api/v1/org", Some(&a.access), None).await.0, StatusCode::UNAUTHORIZED);
        // Not a member: 404.
        let stranger = app.signup("Gamma Clinic", "gus@gamma.example").await;
        let (s, _) = app.api(Method::POST, "/api/v1/auth/switch-org", Some(&stranger.access), Some(json!({ "org_id": beta_id }))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    async fn every_sign_in_event_is_audited(db) {
        let app = TestApp::spawn(db).await;
        let sink = SmtpSink::start().await;
        sink.configure(&app.db.store).await;
        let admin = app.signup("Clinic", "asha@clinic.example").await;
        app.api(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "asha@clinic.example", "password": "wrong wrong wrong" }))).await;
        let other = app.login("asha@clinic.example", PASSWORD).await;
        app.api(Method::POST, "/api/v1/auth/logout", Some(&other.access), None).await;
        let agent = app.add_member(&admin, "ravi@clinic.example", "agent").await;
        let (_, roles) = app.api(Method::GET, "/api/v1/roles", Some(&admin.access), None).await;
        let manager = roles.as_array().unwrap().iter().find(|r| r["name"] == "manager").unwrap()["id"].clone();
        app.api(Method::PATCH, &format!("/api/v1/members/{}", agent.user_id), Some(&admin.access), Some(json!({ "role_id": manager }))).await;
        let mail = sink.wait_for("ravi@clinic.example", "role in Clinic changed", 0).await;
        assert!(mail.text().contains("from agent to manager"), "{}", mail.text());
        app.api(Method::POST, "/api/v1/api-keys", Some(&admin.access), Some(json!({ "name": "k", "scopes": ["audit.read"] }))).await;
        app.api(Method::POST, &format!("/api/v1/members/{}/revoke-sessions", agent.user_id), Some(&admin.access), None).await;
        let (_, page) = app.api(Method::GET, "/api/v1/audit-events?limit=500", Some(&admin.access), None).await;
        let events = page["events"].as_array().unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for a in ["user.signed_up", "auth.login", "auth.login_failed", "auth.logout", "member.role_changed", "api_key.created", "member.sessions_revoked"] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        let failed = events.iter().find(|e| e["action"] == "auth.login_failed").unwrap();
        assert_eq!(failed["actor"]["type"], "system", "a failed attempt is not the user's act");
        assert_eq!(failed["target_id"], admin.user_id.as_str());
        // Filters.
        let (_, only) = app.api(Method::GET, &format!("/api/v1/audit-events?action=auth.login&actor_type=user&actor_id={}", admin.user_id), Some(&admin.access), None).await;
        assert!(only["events"].as_array().unwrap().iter().all(|e| e["action"] == "auth.login"));
        assert!(!only["events"].as_array().unwrap().is_empty());
        let (s, v) = app.api(Method::GET, "/api/v1/audit-events?since=yesterday", Some(&admin.access), None).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
        let (s, _) = app.api(Method::GET, "/api/v1/audit-events?limit=0", Some(&admin.access), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // The chain verifies.
        let reports = app.db.store.verify_audit_chains(None).await.unwrap();
        assert!(reports.iter().all(|r| r.broken.is_none()));
    }

    async fn browser_sessions_are_cookie_bound_csrf_checked_and_idle_limited(db) {
        let app = TestApp::spawn(db).await;
        app.signup("Clinic", "asha@clinic.example").await;
        // Cookie attributes.
        let r = app.client.get(app.url("/login")).send().await.unwrap();
        let pre = set_cookie_value(&r, "fd_csrf").unwrap();
        let r = app.client.post(app.url("/login")).header("cookie", format!("fd_csrf={pre}; fd_session=planted-by-attacker"))
            .form(&[("_csrf", pre.as_str()), ("email", "asha@clinic.example"), ("password", PASSWORD)]).send().await.unwrap();
        let set = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).find(|c| c.starts_with("fd_session=")).unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
        assert!(!set.starts_with("fd_session=planted"), "a fresh id at sign-in");
        // A login form without the double-submit token is refused.
        let r = app.client.post(app.url("/login")).header("accept", "text/html")
            .form(&[("email", "asha@clinic.example"), ("password", PASSWORD)]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        let web = app.web_login("asha@clinic.example", PASSWORD).await;
        assert_eq!(app.web_get(&web, "/team").await.status(), StatusCode::OK);
        // State changes need the session's token, from this site.
        let r = app.client.post(app.url("/team/teams")).header("cookie", format!("fd_session={}", web.cookie)).header("accept", "text/html")
            .form(&[("name", "Night shift")]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
        let r = app.client.post(app.url("/team/teams")).header("cookie", format!("fd_session={}", web.cookie)).header("origin", "https://evil.example")
            .form(&[("_csrf", web.csrf.as_str()), ("name", "Night shift")]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "cross-origin");
        let r = app.client.post(app.url("/api/v1/teams")).header("cookie", format!("fd_session={}", web.cookie)).json(&json!({ "name": "Night shift" })).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "cookie-authenticated JSON needs x-csrf-token");
        let r = app.client.post(app.url("/api/v1/teams")).header("cookie", format!("fd_session={}", web.cookie)).header("x-csrf-token", &web.csrf).json(&json!({ "name": "Night shift" })).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = app.web_post(&web, "/team/teams", &[("name", "Day shift")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // Idle for longer than the idle timeout: signed out.
        app.advance(13 * 3600);
        let r = app.web_get(&web, "/team").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/login?next=%2Fteam");
        // Sign-out clears the cookie.
        let web = app.web_login("asha@clinic.example", PASSWORD).await;
        let r = app.web_post(&web, "/logout", &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(set_cookie_value(&r, "fd_session").is_some_and(|v| v.is_empty()));
        assert_eq!(app.web_get(&web, "/team").await.status(), StatusCode::SEE_OTHER);
    }
}
