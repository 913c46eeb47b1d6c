//! The HTTP surface of a real server on a random port, on both backends.

mod common;

use common::TestApp;
use frontdesk_server::{HstsPolicy, RouteKind, ServerSettings};
use frontdesk_store::both_backends;
use frontdesk_store::testing::TestDb;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

fn assert_error_envelope(body: &Value, code: &str, request_id: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(e["request_id"], request_id, "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at top level: {body}"
    );
}

both_backends! {
    async fn probes_answer_when_database_is_current(db) {
        let app = TestApp::spawn(db).await;
        let r = app.get("/healthz").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
        let r = app.get("/readyz").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
    }

    async fn readyz_is_unavailable_when_database_is_closed_and_leaks_nothing(db) {
        let app = TestApp::spawn(db).await;
        app.db.store.close().await;
        let r = app.get("/readyz").await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_error_envelope(&body, "database_unreachable", &id);
        for leak in ["pool", "sqlx", "closed", "postgres://", "sqlite://", "/tmp", "SELECT"] {
            assert!(!text.contains(leak), "internal detail {leak:?} in {text}");
        }
        // Liveness does not depend on the database.
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }

    async fn unknown_route_gets_json_error_with_request_id(db) {
        let app = TestApp::spawn(db).await;
        let r = app.get("/api/v1/no-such-thing").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "application/json");
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_error_envelope(&r.json().await.unwrap(), "not_found", &id);
    }

    async fn wrong_method_gets_405_envelope(db) {
        let app = TestApp::spawn(db).await;
        let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_error_envelope(&r.json().await.unwrap(), "method_not_allowed", &id);
    }

    async fn body_over_limit_is_refused_with_413_envelope(db) {
        let settings = ServerSettings { body_limit_bytes: 4096, ..ServerSettings::default() };
        let app = TestApp::spawn_with(db, settings, None, Duration::from_secs(5)).await;
        // Declared too large: refused before the body is read.
        let r = app.client.post(app.url("/api/v1/auth/login")).header("content-type", "application/json").body(vec![b' '; 5000]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_error_envelope(&r.json().await.unwrap(), "payload_too_large", &id);
        // Not declared (chunked): cut off while reading.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = app.url("/").trim_start_matches("http://").trim_end_matches('/').to_owned();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut req = format!("POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
        for _ in 0..5 {
            req.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, " ".repeat(1000)).as_bytes());
        }
        req.extend_from_slice(b"0\r\n\r\n");
        tcp.write_all(&req).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }

    async fn request_ids_are_unique_and_a_plain_caller_id_is_kept(db) {
        let app = TestApp::spawn(db).await;
        let a = app.get("/healthz").await.headers()["x-request-id"].to_str().unwrap().to_owned();
        let b = app.get("/healthz").await.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(&a).is_ok());
        let r = app.client.get(app.url("/nope")).header("x-request-id", "lb-7f3a.91_x").send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], "lb-7f3a.91_x");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["request_id"], "lb-7f3a.91_x");
        // An id that could forge log lines or is too long is replaced.
        for bad in ["a b", "x\"}{", &"z".repeat(65)] {
            let r = app.client.get(app.url("/healthz")).header("x-request-id", bad).send().await.unwrap();
            let got = r.headers()["x-request-id"].to_str().unwrap();
            assert_ne!(got, bad);
            assert!(uuid::Uuid::parse_str(got).is_ok());
        }
    }

    async fn metrics_count_requests_by_route_and_status(db) {
        let app = TestApp::spawn(db).await;
        for _ in 0..3 {
            app.get("/healthz").await;
        }
        app.get("/missing/42").await;
        let r = app.get("/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        assert!(text.contains("frontdesk_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3"), "{text}");
        assert!(text.contains("frontdesk_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"), "{text}");
        assert!(text.contains("frontdesk_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\",status=\"200\"} 3"), "{text}");
        assert!(!text.contains("/missing/42"), "raw paths must not become labels");
    }
}

async fn security_headers_on_every_kind_of_response(app: &TestApp) -> Vec<reqwest::Response> {
    vec![
        app.get("/healthz").await,
        app.get("/api/openapi.json").await,
        app.get("/metrics").await,
        app.get("/definitely/not/here").await,
        app.client.put(app.url("/readyz")).send().await.unwrap(),
    ]
}

#[tokio::test]
async fn security_headers_are_on_json_text_and_error_responses() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    for r in security_headers_on_every_kind_of_response(&app).await {
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{}: {csp}", r.url());
        assert!(csp.contains("frame-ancestors 'none'"), "{}: {csp}", r.url());
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.get("server").is_none(), "no version banner");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
        assert!(h.contains_key("x-request-id"));
    }
}

#[tokio::test]
async fn hsts_is_sent_when_public_url_is_https() {
    let settings = ServerSettings {
        hsts: HstsPolicy::Always,
        ..ServerSettings::default()
    };
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        settings,
        None,
        Duration::from_secs(5),
    )
    .await;
    for r in security_headers_on_every_kind_of_response(&app).await {
        let v = r.headers()["strict-transport-security"].to_str().unwrap();
        assert!(v.starts_with("max-age=31536000"), "{v}");
    }
}

#[tokio::test]
async fn hsts_behind_trusted_proxy_follows_forwarded_proto() {
    let settings = ServerSettings {
        hsts: HstsPolicy::WhenForwardedHttps,
        ..ServerSettings::default()
    };
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        settings,
        None,
        Duration::from_secs(5),
    )
    .await;
    let plain = app.get("/healthz").await;
    assert!(plain.headers().get("strict-transport-security").is_none());
    let https = app
        .client
        .get(app.url("/healthz"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(https.headers().get("strict-transport-security").is_some());
}

#[tokio::test]
async fn metrics_token_when_configured_is_required() {
    let token = "metrics-token-0123456789";
    let app = TestApp::spawn_with(
        TestDb::sqlite().await,
        ServerSettings::default(),
        Some(token),
        Duration::from_secs(5),
    )
    .await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Every JSON route must be in the served OpenAPI document: the document is compared with
/// the route table, and every route is called to catch a JSON answer from a route that was
/// registered as non-JSON.
#[tokio::test]
async fn every_json_route_is_in_the_openapi_document() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let r = app.get("/api/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );
    let documented =
        |method: &str, path: &str| doc["paths"][path][method.to_lowercase()].is_object();

    assert!(!app.routes.is_empty());
    for route in &app.routes {
        if route.kind == RouteKind::Json {
            assert!(
                documented(route.method.as_str(), &route.path),
                "{} {} missing from OpenAPI",
                route.method,
                route.path
            );
        }
        assert!(
            !route.path.starts_with("/api/v1/") || route.kind == RouteKind::Json,
            "{} is under /api/v1 but not registered as a documented JSON route",
            route.path
        );
        let concrete = route.path.replace(['{', '}'], "");
        let resp = app
            .client
            .request(route.method.clone(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let is_json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
        if is_json && resp.status().is_success() {
            assert_eq!(
                route.kind,
                RouteKind::Json,
                "{} {} answers JSON but is not documented",
                route.method,
                route.path
            );
        }
    }
}

/// A request in flight when shutdown starts is answered; new connections are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_request() {
    use sqlx::Connection;
    let db = TestDb::postgres().await;
    let db_url = db.owner_url.expose().to_owned();
    let mut app =
        TestApp::spawn_with(db, ServerSettings::default(), None, Duration::from_secs(20)).await;

    // Hold a lock that makes /readyz wait inside its database query.
    let mut locker = sqlx::PgConnection::connect(&db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();

    let in_flight = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/readyz");
        async move { client.get(url).send().await }
    });
    common::wait_for_lock_waiter(&app.db).await;

    app.signal_shutdown();
    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(app.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still accepting after shutdown signal");

    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ready");
    tokio::time::timeout(Duration::from_secs(10), app.stopped())
        .await
        .expect("server stops")
        .unwrap();
}

/// A request that outlives the grace period does not hold the shutdown hostage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_is_bounded_by_grace_period() {
    use sqlx::Connection;
    let db = TestDb::postgres().await;
    let db_url = db.owner_url.expose().to_owned();
    let mut app = TestApp::spawn_with(
        db,
        ServerSettings::default(),
        None,
        Duration::from_millis(300),
    )
    .await;
    let mut locker = sqlx::PgConnection::connect(&db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let in_flight = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/readyz");
        async move { client.get(url).send().await }
    });
    common::wait_for_lock_waiter(&app.db).await;
    app.signal_shutdown();
    tokio::time::timeout(Duration::from_secs(5), app.stopped())
        .await
        .expect("server stopped within the grace period despite a stuck request")
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    // In-process, the stuck connection's task outlives `serve` until the runtime ends; the
    // binary exits at that point (see cli.rs `sigterm_with_stuck_request_exits_within_grace`).
    drop(in_flight);
}
