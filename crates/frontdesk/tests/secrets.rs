//! No secret ever leaves: the real binary runs at debug log level on each backend, the test
//! stores secrets through every path that takes one (SMTP password through the CLI,
//! passwords through sign-up, change, reset and invitations), and then scans every API
//! response and page, every log line and every CLI output for them. Tokens the server
//! issues (access, refresh, API keys, one-time links, TOTP secrets) are legitimately shown
//! to their owner once, and must never appear in a log line.

mod common;

use common::smtp::SmtpSink;
use common::{Process, client, frontdesk_command};
use frontdesk_store::Backend;
use frontdesk_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

const SMTP_PASSWORD: &str = "smtp-secret-canary-5e1c9a";
/// A WhatsApp channel's access token, app secret, verify token and replacement token.
const CHANNEL_SECRETS: [&str; 4] = [
    "EAAGchannel-token-canary-6f0a2b",
    "app-secret-canary-19c4d7",
    "verify-token-canary-e83b51",
    "EAAGreplaced-token-canary-44a9",
];
const PASSWORDS: [&str; 4] = [
    "first canary passphrase 7a2f",
    "second canary passphrase 91bd",
    "third canary passphrase c04e",
    "member canary passphrase 3d88",
];

/// Every response the test saw: status line, headers and body.
struct Recorder {
    base: String,
    http: reqwest::Client,
    seen: Vec<String>,
}

impl Recorder {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = format!("{:?}", r.headers());
        let text = r.text().await.unwrap();
        self.seen.push(format!("{status} {headers} {text}"));
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, v)
    }

    async fn page(&mut self, path: &str) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let headers = format!("{:?}", r.headers());
        let text = r.text().await.unwrap();
        self.seen.push(format!("{headers} {text}"));
    }
}

fn token_from(link: &str) -> String {
    url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

fn cli(
    db_env: &[(String, String)],
    dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut cmd = frontdesk_command(dir);
    cmd.args(args).env("FRONTDESK_LOG_LEVEL", "debug");
    for (k, v) in db_env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "frontdesk {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn secrets_never_leave(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::empty(backend).await;
    let db_env: Vec<(String, String)> = match backend {
        Backend::Sqlite => vec![],
        Backend::Postgres => vec![
            ("FRONTDESK_DATABASE_URL".into(), db.url.expose().to_owned()),
            (
                "FRONTDESK_DATABASE_OWNER_URL".into(),
                db.owner_url.expose().to_owned(),
            ),
        ],
    };
    let sink = SmtpSink::start().await;
    let mut outputs: Vec<String> = Vec::new();

    // The operator stores the SMTP password through the CLI (from standard input).
    let out = cli(&db_env, dir.path(), &["migrate"], None);
    outputs.push(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    let port = sink.addr.port().to_string();
    let out = cli(
        &db_env,
        dir.path(),
        &[
            "smtp",
            "set",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "none",
            "--username",
            "frontdesk",
            "--from",
            "Frontdesk <no-reply@frontdesk.test>",
            "--password-stdin",
        ],
        Some(&format!("{SMTP_PASSWORD}\n")),
    );
    outputs.push(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    let out = cli(&db_env, dir.path(), &["smtp", "show"], None);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("host: 127.0.0.1"), "{shown}");
    outputs.push(shown);

    let mut envs: Vec<(&str, &str)> = vec![("FRONTDESK_LOG_LEVEL", "debug")];
    for (k, v) in &db_env {
        envs.push((k.as_str(), v.as_str()));
    }
    let mut server = Process::serve(dir.path(), &envs);
    let mut rec = Recorder {
        base: format!("http://{}", server.addr),
        http: client(),
        seen: Vec::new(),
    };
    let mut issued: Vec<String> = Vec::new();

    // Sign-up, wrong and right sign-in.
    let (s, t) = rec.call(Method::POST, "/api/v1/auth/signup", None, Some(json!({ "organisation_name": "Canary Clinic", "name": "Asha", "email": "asha@canary.example", "password": PASSWORDS[0] }))).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    rec.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "email": "asha@canary.example", "password": "not the password at all" })),
    )
    .await;
    let (_, t) = rec
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "asha@canary.example", "password": PASSWORDS[0] })),
        )
        .await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    issued.extend([
        access.clone(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    // Change the password (the current one is sent again), then reset it by mail.
    let (s, _) = rec
        .call(
            Method::POST,
            "/api/v1/me/password",
            Some(&access),
            Some(json!({ "current_password": PASSWORDS[0], "new_password": PASSWORDS[1] })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    rec.call(
        Method::POST,
        "/api/v1/auth/password-reset",
        None,
        Some(json!({ "email": "asha@canary.example" })),
    )
    .await;
    let mail = sink.wait_for("asha@canary.example", "Reset your", 0).await;
    let reset = token_from(
        &mail
            .link(&format!("{}/password/reset?token=", rec.base))
            .unwrap(),
    );
    issued.push(reset.clone());
    let (s, _) = rec
        .call(
            Method::POST,
            "/api/v1/auth/password-reset/complete",
            None,
            Some(json!({ "token": reset, "new_password": PASSWORDS[2] })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    rec.call(
        Method::POST,
        "/api/v1/auth/magic-link",
        None,
        Some(json!({ "email": "asha@canary.example" })),
    )
    .await;
    let mail = sink
        .wait_for("asha@canary.example", "sign-in link", 0)
        .await;
    issued.push(token_from(
        &mail
            .link(&format!("{}/auth/magic?token=", rec.base))
            .unwrap(),
    ));
    let (_, t) = rec
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "asha@canary.example", "password": PASSWORDS[2] })),
        )
        .await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    issued.extend([
        access.clone(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    let (_, t) = rec
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": t["refresh_token"] })),
        )
        .await;
    issued.extend([
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    ]);

    // An API key, used; an invitation accepted with a new password; two-factor set up.
    let (_, k) = rec
        .call(
            Method::POST,
            "/api/v1/api-keys",
            Some(&access),
            Some(json!({ "name": "crm", "scopes": ["audit.read"] })),
        )
        .await;
    let key = k["key"].as_str().unwrap().to_owned();
    issued.push(key.clone());
    rec.call(
        Method::GET,
        "/api/v1/audit-events?limit=500",
        Some(&key),
        None,
    )
    .await;
    let (_, roles) = rec
        .call(Method::GET, "/api/v1/roles", Some(&access), None)
        .await;
    let agent = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "agent")
        .unwrap()["id"]
        .clone();
    let (_, inv) = rec
        .call(
            Method::POST,
            "/api/v1/invitations",
            Some(&access),
            Some(json!({ "email": "ravi@canary.example", "role_id": agent })),
        )
        .await;
    let invite = token_from(inv["invite_url"].as_str().unwrap());
    issued.push(invite.clone());
    let (s, t) = rec
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({ "token": invite, "name": "Ravi", "password": PASSWORDS[3] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    issued.push(t["access_token"].as_str().unwrap().to_owned());
    let (_, setup) = rec
        .call(Method::POST, "/api/v1/me/totp/setup", Some(&access), None)
        .await;
    issued.push(setup["secret"].as_str().unwrap().to_owned());
    // A WhatsApp channel: connected, its token replaced, its callback URL shown.
    let (s, ch) = rec
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(&access),
            Some(json!({
                "provider": "cloud", "name": "Reception", "phone_number_id": "1065",
                "access_token": CHANNEL_SECRETS[0], "app_secret": CHANNEL_SECRETS[1],
                "verify_token": CHANNEL_SECRETS[2],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let channel = ch["channel"]["id"].as_str().unwrap().to_owned();
    let (s, v) = rec
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{channel}"),
            Some(&access),
            Some(json!({ "access_token": CHANNEL_SECRETS[3] })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, hook) = rec
        .call(
            Method::GET,
            &format!("/api/v1/channels/{channel}/webhook"),
            Some(&access),
            None,
        )
        .await;
    // The callback URL's key is a capability: shown to the admin, never logged.
    issued.push(
        hook["callback_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned(),
    );
    // The provider side of that URL: an unsigned post and a wrong handshake are refused, and
    // the key in their path must not reach the log either.
    let key = issued.last().unwrap().clone();
    let (st, _) = rec
        .call(
            Method::POST,
            &format!("/webhooks/{key}"),
            None,
            Some(json!({ "object": "whatsapp_business_account", "entry": [] })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = rec
        .call(
            Method::GET,
            &format!("/webhooks/{key}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Read everything back: the account, members, keys, the audit log, pages.
    for path in [
        "/api/v1/me",
        "/api/v1/members",
        "/api/v1/api-keys",
        "/api/v1/invitations",
        "/api/v1/audit-events?limit=500",
        "/api/v1/me/sessions",
        "/api/v1/org",
        "/api/v1/channels",
        "/api/v1/webhook-inbox",
    ] {
        rec.call(Method::GET, path, Some(&access), None).await;
    }
    for path in ["/login", "/signup", "/api/openapi.json", "/metrics"] {
        rec.page(path).await;
    }
    assert!(server.terminate().success());

    let master_keys =
        std::fs::read_to_string(dir.path().join("frontdesk-data/master.keys")).unwrap();
    let key_material: Vec<String> = master_keys
        .lines()
        .filter_map(|l| l.split_once(':').map(|(_, k)| k.to_owned()))
        .collect();
    assert!(!key_material.is_empty());

    let mut stored: Vec<String> = PASSWORDS.iter().map(|s| s.to_string()).collect();
    stored.push(SMTP_PASSWORD.to_owned());
    stored.extend(CHANNEL_SECRETS.iter().map(|s| s.to_string()));
    stored.extend(key_material);
    let logs: Vec<String> = server
        .stdout
        .lock()
        .unwrap()
        .iter()
        .chain(server.stderr.lock().unwrap().iter())
        .cloned()
        .collect();
    assert!(logs.len() > 20, "the run logged ({} lines)", logs.len());
    let everything_logged = logs.join("\n") + &outputs.join("\n");
    for secret in &stored {
        for (i, seen) in rec.seen.iter().enumerate() {
            assert!(
                !seen.contains(secret.as_str()),
                "a stored secret is in response #{i}: {seen}"
            );
        }
        assert!(
            !everything_logged.contains(secret.as_str()),
            "a stored secret is in the logs"
        );
    }
    for token in &issued {
        assert!(
            !everything_logged.contains(token.as_str()),
            "an issued token is in the logs"
        );
    }
    // Mail bodies hold one-time links, which go to their owner only: never to the log.
    for m in sink.mails() {
        if let Some(l) = m.link("http://") {
            assert!(
                !everything_logged.contains(&l),
                "a mailed link is in the logs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_responses_or_logs_sqlite() {
    secrets_never_leave(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_responses_or_logs_postgres() {
    secrets_never_leave(Backend::Postgres).await;
}
