//! API keys: created by admins with a scope, shown once, stored as a hash, revocable.

use crate::audit::AuditRecord;
use crate::identity::Principal;
use crate::tenant::{Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::{new_token, token_hash};
use crate::{Store, StoreError};
use frontdesk_domain::{Actor, ApiKeyId, OrgId, PermissionSet, Role, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// An API key as admins list it: never the key itself, only its visible prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: PermissionSet,
    pub created_by: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

const PREFIX_LEN: usize = 12;
/// How often a key's `last_used_at` is written.
const TOUCH_EVERY: Duration = Duration::minutes(1);

type KeyRow = (
    uuid::Uuid,
    String,
    String,
    String,
    Option<uuid::Uuid>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

fn record(r: KeyRow) -> Result<ApiKeyRecord, StoreError> {
    let names: Vec<String> = serde_json::from_str(&r.3)
        .map_err(|e| StoreError::Corrupt(format!("api key scopes: {e}")))?;
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_uuid(r.0),
        name: r.1,
        prefix: r.2,
        scopes: names
            .iter()
            .filter_map(|n| frontdesk_domain::Permission::parse(n))
            .collect(),
        created_by: r.4.map(UserId::from_uuid),
        created_at: r.5,
        last_used_at: r.6,
        expires_at: r.7,
        revoked_at: r.8,
    })
}

impl TenantTx {
    /// Creates a key whose scope must lie within the creator's own permissions. Returns
    /// the record and the key, which is shown once and never stored.
    pub async fn create_api_key(
        &mut self,
        name: &str,
        scopes: PermissionSet,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(ApiKeyRecord, SecretString), StoreError> {
        let name = crate::members::valid_label(name, 100, "key name")?;
        let name = name.as_str();
        if scopes.is_empty() {
            return Err(StoreError::Invalid(
                "a key needs at least one permission".into(),
            ));
        }
        if !scopes.is_subset_of(&self.ctx().role().permissions) {
            return Err(StoreError::Conflict("scope_exceeds_own_permissions"));
        }
        if expires_at.is_some_and(|e| e <= now) {
            return Err(StoreError::Invalid(
                "the expiry must be in the future".into(),
            ));
        }
        let (key, hash) = new_token("fdk");
        let prefix: String = key.expose_secret().chars().take(PREFIX_LEN).collect();
        let id = ApiKeyId::new();
        let org = self.ctx().org_id().as_uuid();
        let created_by = self.ctx().user_id();
        let scopes_json = serde_json::to_string(&scopes.names()).expect("names serialise");
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO api_keys (org_id, id, name, prefix, key_hash, scopes, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(org)
                .bind(id.as_uuid())
                .bind(name)
                .bind(&prefix)
                .bind(&hash[..])
                .bind(&scopes_json)
                .bind(created_by.map(|u| u.as_uuid()))
                .bind(now)
                .bind(expires_at)
                .execute(c)
                .await?;
        });
        self.audit(AuditRecord::new(
            "api_key.created",
            "api_key",
            id.to_string(),
            serde_json::json!({ "name": name, "prefix": prefix, "scopes": scopes }),
        ))
        .await?;
        Ok((
            ApiKeyRecord {
                id,
                name: name.to_owned(),
                prefix,
                scopes,
                created_by,
                created_at: now,
                last_used_at: None,
                expires_at,
                revoked_at: None,
            },
            key,
        ))
    }

    /// Revokes a key; `NotFound` if this organisation has no such key.
    pub async fn revoke_api_key(
        &mut self,
        id: ApiKeyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let exists: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(id.as_uuid())
                .fetch_one(c)
                .await?
        });
        if exists == 0 {
            return Err(StoreError::NotFound);
        }
        let n = with_conn!(self.tx, c => {
            sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
                .bind(org)
                .bind(id.as_uuid())
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
        });
        if n > 0 {
            self.audit(AuditRecord::new(
                "api_key.revoked",
                "api_key",
                id.to_string(),
                serde_json::json!({}),
            ))
            .await?;
        }
        Ok(n > 0)
    }
}

impl Store {
    pub async fn list_api_keys(&self, ctx: &TenantCtx) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let rows: Vec<KeyRow> = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT id, name, prefix, scopes, created_by, created_at, last_used_at, expires_at, revoked_at FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC LIMIT 500")
                .bind(ctx.org_id().as_uuid())
                .fetch_all(c)
                .await?
        });
        tx.commit().await?;
        rows.into_iter().map(record).collect()
    }

    /// The principal behind an API key, if it is live.
    pub async fn authenticate_api_key(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Principal>, StoreError> {
        if !key.starts_with("fdk_") || key.len() > 200 {
            return Ok(None);
        }
        let hash = token_hash(key);
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::Token(&hash)).await?;
        type Row = (
            uuid::Uuid,
            uuid::Uuid,
            String,
            String,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        );
        let row: Option<Row> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT org_id, id, name, scopes, expires_at, revoked_at, last_used_at FROM api_keys WHERE key_hash = $1")
                .bind(&hash[..])
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        let Some((org, id, name, scopes, expires_at, revoked_at, last_used)) = row else {
            return Ok(None);
        };
        if revoked_at.is_some() || expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let names: Vec<String> = serde_json::from_str(&scopes)
            .map_err(|e| StoreError::Corrupt(format!("api key scopes: {e}")))?;
        let permissions: PermissionSet = names
            .iter()
            .filter_map(|n| frontdesk_domain::Permission::parse(n))
            .collect();
        let org = OrgId::from_uuid(org);
        let id = ApiKeyId::from_uuid(id);
        let ctx = TenantCtx::new(
            org,
            Actor::ApiKey(id),
            Role {
                name: format!("api key {name}"),
                permissions,
            },
        );
        if last_used.is_none_or(|t| t + TOUCH_EVERY <= now) {
            let mut tx = self.begin(&ctx).await?;
            with_conn!(tx.tx, c => {
                sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE org_id = $1 AND id = $2")
                    .bind(org.as_uuid())
                    .bind(id.as_uuid())
                    .bind(now)
                    .execute(c)
                    .await?;
            });
            tx.commit().await?;
        }
        Ok(Some(Principal {
            user: None,
            session: None,
            api_key: Some(id),
            ctx: Some(ctx),
            needs_2fa_setup: false,
        }))
    }
}
