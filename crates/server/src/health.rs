//! Probes and metrics: `/healthz`, `/readyz`, `/metrics`.

use crate::AppState;
use crate::auth::Access;
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use frontdesk_store::Readiness;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(routes!(healthz), Access::Public)
        .json(routes!(readyz), Access::Public)
        // Public, or behind a bearer token of its own when `metrics_token` is set.
        .other(Method::GET, "/metrics", get(metrics), Access::Public)
}

/// Answer of the probes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` for liveness, `ready` for readiness.
    pub status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is up", body = ProbeStatus)))]
async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "ok" })
}

/// Readiness: the database answers and its schema matches this binary's migrations.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready to serve", body = ProbeStatus),
        (status = 503, description = "Database unreachable or migrations not current", body = ErrorEnvelope),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeStatus>, ApiError> {
    let readiness = state.store().readiness().await.map_err(|e| {
        tracing::warn!(error = %crate::error::error_chain(&e), "readiness check failed");
        ApiError::Unavailable {
            code: "database_unreachable",
            message: "the database is not reachable".into(),
        }
    })?;
    match readiness {
        Readiness::Ready => Ok(Json(ProbeStatus { status: "ready" })),
        Readiness::MigrationsPending(n) => Err(ApiError::Unavailable {
            code: "migrations_pending",
            message: format!("{n} database migration(s) not applied; run `frontdesk migrate`"),
        }),
        Readiness::DatabaseAhead(n) => Err(ApiError::Unavailable {
            code: "database_ahead",
            message: format!(
                "the database has {n} migration(s) this release does not know; upgrade the binary"
            ),
        }),
    }
}

/// Prometheus text exposition. When a metrics token is configured it must be presented
/// as a bearer token.
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !state.metrics_token_matches(&headers) {
        return Err(ApiError::Unauthorized);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    ))
}
