//! Organisations (tenants).

use crate::audit::AuditRecord;
use crate::tenant::{TenantCtx, TenantTx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::{Actor, BuiltinRole, OrgId, Role};
use serde::Serialize;
use time::OffsetDateTime;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
    pub require_2fa: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why an organisation could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrgError {
    #[error("the slug is taken")]
    SlugTaken,
    #[error("name must be 1–200 characters; slug 1–64 of a-z, 0-9 and '-'")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Microsecond precision: what PostgreSQL stores, so a value reads back exactly as written.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .expect("truncated nanoseconds are valid")
}

pub(crate) fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// Inserts the organisation row and its data key (inside its own tenant transaction).
pub(crate) async fn insert_organisation(
    tx: &mut TenantTx,
    id: OrgId,
    name: &str,
    slug: &str,
    now: OffsetDateTime,
) -> Result<Organisation, StoreError> {
    let org = Organisation {
        id,
        name: name.to_owned(),
        slug: slug.to_owned(),
        require_2fa: false,
        created_at: now,
    };
    let inserted = with_conn!(tx.tx, c => {
        sqlx::query("INSERT INTO organisations (id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org.id.as_uuid())
            .bind(&org.name)
            .bind(&org.slug)
            .bind(org.created_at)
            .execute(c)
            .await
            .map(drop)
    });
    if let Err(e) = inserted {
        return Err(match e.as_database_error() {
            Some(d) if d.is_unique_violation() => StoreError::Conflict("slug_taken"),
            _ => e.into(),
        });
    }
    tx.create_data_key().await?;
    tx.audit(AuditRecord::new(
        "organisation.created",
        "organisation",
        org.id.to_string(),
        serde_json::json!({ "slug": org.slug }),
    ))
    .await?;
    Ok(org)
}

impl Store {
    /// Creates an organisation with its built-in roles and no members (operator tooling
    /// and tests; people sign up with [`Store::sign_up`]). Returns it with a context for
    /// `founder`, recorded as the actor of `organisation.created`.
    pub async fn create_organisation(
        &self,
        name: &str,
        slug: &str,
        founder: Actor,
    ) -> Result<(Organisation, TenantCtx), CreateOrgError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || !valid_slug(slug) {
            return Err(CreateOrgError::Invalid);
        }
        let id = OrgId::new();
        let ctx = TenantCtx::new(id, founder, Role::builtin(BuiltinRole::Admin));
        let now = now_micros();
        let mut tx = self.begin(&ctx).await?;
        let org = match insert_organisation(&mut tx, id, name, slug, now).await {
            Ok(o) => o,
            Err(StoreError::Conflict("slug_taken")) => return Err(CreateOrgError::SlugTaken),
            Err(e) => return Err(e.into()),
        };
        crate::members::seed_roles_and_admin(&mut tx, None, now).await?;
        tx.commit().await?;
        Ok((org, ctx))
    }

    /// The context's own organisation.
    pub async fn organisation(&self, ctx: &TenantCtx) -> Result<Organisation, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let row: (uuid::Uuid, String, String, bool, OffsetDateTime) = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT id, name, slug, require_2fa, created_at FROM organisations WHERE id = $1")
                .bind(ctx.org_id().as_uuid())
                .fetch_one(c)
                .await?
        });
        tx.commit().await?;
        Ok(Organisation {
            id: OrgId::from_uuid(row.0),
            name: row.1,
            slug: row.2,
            require_2fa: row.3,
            created_at: row.4,
        })
    }
}

impl TenantTx {
    /// Renames the organisation and sets whether its members must use two-factor sign-in.
    pub async fn update_organisation(
        &mut self,
        name: &str,
        require_2fa: bool,
    ) -> Result<(), StoreError> {
        let name = crate::members::valid_label(name, 200, "organisation name")?;
        let name = name.as_str();
        let org = self.ctx().org_id();
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE organisations SET name = $2, require_2fa = $3 WHERE id = $1")
                .bind(org.as_uuid())
                .bind(name)
                .bind(require_2fa)
                .execute(c)
                .await?;
        });
        self.audit(AuditRecord::new(
            "organisation.updated",
            "organisation",
            org.to_string(),
            serde_json::json!({ "name": name, "require_2fa": require_2fa }),
        ))
        .await?;
        Ok(())
    }
}
