//! Reading the audit log.

use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Query, State};
use frontdesk_domain::{Actor, Permission};
use frontdesk_store::{AuditPage, AuditQuery};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(
        routes!(list_audit_events),
        Access::Perm(Permission::AuditRead),
    )
}

/// Filters, combined with AND; pages go newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// `user`, `api_key` or `system` (with `actor_id`).
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// RFC 3339; events at or after.
    pub since: Option<String>,
    /// RFC 3339; events before.
    pub until: Option<String>,
    /// The `next_before_seq` of the previous page.
    pub before_seq: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    v.map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("`{name}` must be an RFC 3339 time"),
            )
        })
    })
    .transpose()
}

impl AuditFilter {
    pub(crate) fn to_query(&self) -> Result<AuditQuery, ApiError> {
        let actor = match (&self.actor_type, &self.actor_id) {
            (Some(t), Some(i)) => Some(
                Actor::from_parts(t, i)
                    .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?,
            ),
            (None, None) => None,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "give `actor_type` and `actor_id` together",
                ));
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`limit` must be 1–500",
            ));
        }
        let bounded = |name: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            match v {
                Some(s) if s.len() > 200 => Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{name}` is too long"),
                )),
                other => Ok(other.clone()),
            }
        };
        Ok(AuditQuery {
            actor,
            action: bounded("action", &self.action)?,
            target_type: bounded("target_type", &self.target_type)?,
            target_id: bounded("target_id", &self.target_id)?,
            since: time_param("since", self.since.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
            before_seq: self.before_seq,
            limit,
        })
    }
}

/// The organisation's audit events, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", params(AuditFilter),
    responses(
        (status = 200, description = "One page, newest first", body = AuditPage),
        (status = 400, description = "Invalid filter", body = ErrorEnvelope),
    ))]
async fn list_audit_events(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = filter.to_query()?;
    Ok(Json(state.store().audit_events(&ctx, &q).await?))
}
