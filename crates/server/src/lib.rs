//! Frontdesk's HTTP layer.
//!
//! [`build_app`] turns an [`AppState`] into a router whose every route comes from one
//! route table; [`serve`] runs it on a given listener until a shutdown signal, so tests
//! bind port 0 and stop servers cleanly.

mod account;
pub mod api;
pub mod auth;
pub mod error;
mod health;
pub mod mail;
pub mod metrics;
mod middleware;
mod openapi;
mod read_marks;
pub mod routes;
pub mod settings;
pub mod simulator;
pub mod web;
pub mod webhooks;

pub use error::ApiError;
pub use middleware::RequestId;
pub use routes::{RouteInfo, RouteKind};
pub use settings::{AuthSettings, Clock, HstsPolicy, ServerSettings};
pub use simulator::SimulatorSettings;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use frontdesk_store::Store;
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The largest body an upload route takes: WhatsApp's largest file and room for the
/// multipart framing around it.
pub const MAX_UPLOAD_BODY: usize = frontdesk_whatsapp::MAX_MEDIA_BYTES + 64 * 1024;

struct Inner {
    store: Store,
    settings: ServerSettings,
    metrics: Arc<metrics::Metrics>,
    metrics_token: Option<SecretString>,
    clock: Clock,
    mailer: mail::Mailer,
    signals: std::sync::Arc<frontdesk_worker::Signals>,
    blobs: frontdesk_worker::BlobStore,
    /// The simulator's HTTP client (webhooks to the channel's URL), one pool per server.
    sim_http: reqwest::Client,
    ingest: webhooks::ingest::Ingest,
    webhook_targets: webhooks::targets::TargetCache,
    read_marks: read_marks::ReadMarks,
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(
        store: Store,
        settings: ServerSettings,
        metrics_token: Option<SecretString>,
    ) -> Self {
        Self::with_clock(store, settings, metrics_token, Clock::system())
    }

    /// The state with a clock of the caller's (tests move time forward with it).
    pub fn with_clock(
        store: Store,
        settings: ServerSettings,
        metrics_token: Option<SecretString>,
        clock: Clock,
    ) -> Self {
        let mailer = mail::Mailer::new(store.clone());
        let blobs = frontdesk_worker::BlobStore::new(settings.media_dir.clone());
        let metrics = Arc::new(metrics::Metrics::default());
        let ingest = webhooks::ingest::Ingest::new(store.clone(), metrics.clone());
        let outbox_wakeup = store.events().outbox_wakeup();
        let store_for_marks = store.clone();
        Self(Arc::new(Inner {
            store,
            settings,
            metrics,
            metrics_token,
            clock,
            mailer,
            signals: Arc::new(frontdesk_worker::Signals {
                inbox: ingest.wakeup(),
                // Transactions that queue outbox work wake the dispatcher on commit.
                outbox: outbox_wakeup,
            }),
            blobs,
            // No proxy: the simulator posts to this server (or a test's), never out.
            sim_http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the HTTP client builds"),
            ingest,
            webhook_targets: webhooks::targets::TargetCache::default(),
            read_marks: read_marks::ReadMarks::new(store_for_marks),
        }))
    }

    pub fn auth(&self) -> &AuthSettings {
        &self.0.settings.auth
    }

    /// The current time (microsecond precision, as stored).
    pub fn now(&self) -> time::OffsetDateTime {
        self.0.clock.now()
    }

    /// Wake-ups for the background worker (new webhook rows, new sends).
    pub fn signals(&self) -> &Arc<frontdesk_worker::Signals> {
        &self.0.signals
    }

    /// Where media files are kept.
    pub fn blobs(&self) -> &frontdesk_worker::BlobStore {
        &self.0.blobs
    }

    /// The server's clock, for the worker it runs beside.
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub fn mailer(&self) -> &mail::Mailer {
        &self.0.mailer
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.0.settings
    }

    /// The client the simulator posts webhooks with.
    pub(crate) fn sim_http(&self) -> &reqwest::Client {
        &self.0.sim_http
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Notified after each webhook group commit that stored new inbox rows, so the inbox
    /// worker wakes at once instead of polling. A notification may arrive while the worker
    /// is busy; it then finds a stored permit on its next wait.
    pub fn inbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.0.ingest.wakeup()
    }

    /// Drops every cached webhook target. The channel admin code calls this after a
    /// channel's secrets change or the channel is deleted, so the old secret stops working
    /// on this server at once (other servers forget within the cache's 10-second TTL).
    pub fn forget_webhook_targets(&self) {
        self.0.webhook_targets.clear();
    }

    pub(crate) fn webhook_targets(&self) -> &webhooks::targets::TargetCache {
        &self.0.webhook_targets
    }

    /// The conversation view's group-committed read marks.
    pub(crate) fn read_marks(&self) -> &read_marks::ReadMarks {
        &self.0.read_marks
    }

    pub(crate) fn ingest(&self) -> &webhooks::ingest::Ingest {
        &self.0.ingest
    }

    /// True when no metrics token is configured, or the request presents it.
    fn metrics_token_matches(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.0.metrics_token else {
            return true;
        };
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.expose_secret().as_bytes())
            .into()
    }
}

/// The application: router, its OpenAPI document and its route table.
pub struct App {
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub routes: Vec<RouteInfo>,
}

/// Builds the router from the route table and wraps it in the middleware stack.
pub fn build_app(state: AppState) -> App {
    let builder = routes::RouteTableBuilder::new(openapi::base_document(), state.clone());
    let builder = health::routes(builder);
    let builder = openapi::routes(builder);
    let builder = api::routes(builder);
    let builder = web::routes(builder);
    let builder = simulator::routes(builder, state.settings().simulator.enabled);
    let builder = webhooks::routes(builder);
    let (router, doc, table) = builder.finish();
    let doc_json: Arc<str> = serde_json::to_string(&doc)
        .expect("OpenAPI document serialises")
        .into();

    let settings = state.settings().clone();
    // Listed outermost first: the request context sees every response, including those
    // produced by the layers inside it (413, timeouts, panics).
    let layers = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                axum::response::IntoResponse::into_response(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                )
            },
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        // Each route's guard caps its body (the default, or more for uploads); this is the
        // ceiling over all of them, and extractors defer to the guard's cap.
        .layer(RequestBodyLimitLayer::new(
            settings.body_limit_bytes.max(MAX_UPLOAD_BODY),
        ))
        .layer(DefaultBodyLimit::disable());

    let router = router
        .layer(axum::Extension(openapi::OpenApiJson(doc_json)))
        .fallback(|| async { ApiError::NotFound })
        .layer(layers)
        .with_state(state);
    App {
        router,
        openapi: doc,
        routes: table,
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting and
/// lets in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        let _ = signalled_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; dropping unfinished requests");
            Ok(())
        }
    }
}
