//! Organisations (tenants).

use crate::audit::AuditRecord;
use crate::tenant::{TenantCtx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::{Actor, OrgId, Role};
use serde::Serialize;
use time::OffsetDateTime;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
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
pub(crate) fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .expect("truncated nanoseconds are valid")
}

fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

impl Store {
    /// Creates an organisation, records `organisation.created` in its audit chain in the
    /// same transaction, and returns it with an admin context for `founder`.
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
        let org = Organisation {
            id: OrgId::new(),
            name: name.to_owned(),
            slug: slug.to_owned(),
            created_at: now_micros(),
        };
        let ctx = TenantCtx::new(org.id, founder, Role::Admin);
        let mut tx = self.begin(&ctx).await?;
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
                Some(d) if d.is_unique_violation() => CreateOrgError::SlugTaken,
                _ => CreateOrgError::Store(e.into()),
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
        tx.commit().await?;
        Ok((org, ctx))
    }

    /// The context's own organisation.
    pub async fn organisation(&self, ctx: &TenantCtx) -> Result<Organisation, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let row: (uuid::Uuid, String, String, OffsetDateTime) = with_conn!(tx.tx, c => {
            sqlx::query_as("SELECT id, name, slug, created_at FROM organisations WHERE id = $1")
                .bind(ctx.org_id().as_uuid())
                .fetch_one(c)
                .await?
        });
        tx.commit().await?;
        Ok(Organisation {
            id: OrgId::from_uuid(row.0),
            name: row.1,
            slug: row.2,
            created_at: row.3,
        })
    }
}
