//! Read-only links to a queue's waiting-room screen: a TV in the waiting room shows the
//! screen through an unguessable link instead of a member's session. Only the SHA-256 of a
//! link's token is stored; the public route finds the link by that hash (token scope on
//! PostgreSQL) and reads the screen — labels and counts, no names or numbers — in the
//! link's organisation only. Creating and revoking a link are audited.

use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::queue::Screen;
use crate::tenant::{Scope, TenantCtx, TenantTx, with_conn};
use crate::tokens::{new_token, token_hash};
use crate::{Store, StoreError};
use frontdesk_domain::{OrgId, QueueId, ScreenLinkId};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;

/// The prefix of a screen link's token.
pub const SCREEN_TOKEN_PREFIX: &str = "fdscr";
/// Live links per queue.
const MAX_LINKS_PER_QUEUE: i64 = 20;

/// A screen link as listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScreenLink {
    pub id: ScreenLinkId,
    pub queue_id: QueueId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl TenantTx {
    /// Creates a link to a queue's screen; its token is returned this once.
    pub async fn create_screen_link(
        &mut self,
        queue: QueueId,
        name: &str,
    ) -> Result<(ScreenLink, SecretString), StoreError> {
        self.queue(queue).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(StoreError::Invalid(
                "a screen link's name is 1–80 characters".into(),
            ));
        }
        let org = self.ctx().org_id().as_uuid();
        let live: i64 = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT count(*) FROM queue_screen_links WHERE org_id = $1 AND queue_id = $2 AND revoked_at IS NULL")
                .bind(org).bind(queue.as_uuid()).fetch_one(c).await?
        });
        if live >= MAX_LINKS_PER_QUEUE {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_LINKS_PER_QUEUE} screen links per queue; revoke one first"
            )));
        }
        let (token, hash) = new_token(SCREEN_TOKEN_PREFIX);
        let id = ScreenLinkId::new();
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO queue_screen_links (org_id, id, queue_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(org).bind(id.as_uuid()).bind(queue.as_uuid()).bind(name).bind(&hash[..]).bind(now).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "queue.screen_link_created",
            "queue",
            queue.to_string(),
            serde_json::json!({ "link_id": id, "name": name }),
        ))
        .await?;
        Ok((
            ScreenLink {
                id,
                queue_id: queue,
                name: name.to_owned(),
                created_at: now,
            },
            token,
        ))
    }

    /// A queue's links that still work, oldest first.
    pub async fn screen_links(&mut self, queue: QueueId) -> Result<Vec<ScreenLink>, StoreError> {
        self.queue(queue).await?;
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<(uuid::Uuid, String, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, name, created_at FROM queue_screen_links WHERE org_id = $1 AND queue_id = $2 AND revoked_at IS NULL ORDER BY created_at, id")
                .bind(org).bind(queue.as_uuid()).fetch_all(c).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at)| ScreenLink {
                id: ScreenLinkId::from_uuid(id),
                queue_id: queue,
                name,
                created_at,
            })
            .collect())
    }

    /// Revokes a link: the screen showing it stops updating at once. Returns its queue.
    pub async fn revoke_screen_link(&mut self, id: ScreenLinkId) -> Result<QueueId, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let queue: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT queue_id FROM queue_screen_links WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
                .bind(org).bind(id.as_uuid()).fetch_optional(c).await?
        });
        let queue = QueueId::from_uuid(queue.ok_or(StoreError::NotFound)?);
        // A doctor's scope applies: a queue they cannot see has no links for them.
        self.queue(queue).await?;
        with_conn!(self.tx, c => {
            sqlx::query("UPDATE queue_screen_links SET revoked_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(id.as_uuid()).bind(now_micros()).execute(c).await?;
        });
        self.audit(AuditRecord::new(
            "queue.screen_link_revoked",
            "queue",
            queue.to_string(),
            serde_json::json!({ "link_id": id }),
        ))
        .await?;
        Ok(queue)
    }
}

impl Store {
    /// The screen a link shows and its queue; `None` for an unknown or revoked link.
    pub async fn screen_for_link(
        &self,
        token: &SecretString,
    ) -> Result<Option<(QueueId, Screen)>, StoreError> {
        let token = token.expose_secret();
        if !token.starts_with(SCREEN_TOKEN_PREFIX) || token.len() > 100 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::Token(&hash)).await?;
        let found: Option<(uuid::Uuid, uuid::Uuid)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT org_id, queue_id FROM queue_screen_links WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(&hash[..]).fetch_optional(c).await?
        });
        let Some((org, queue)) = found else {
            g.commit().await?;
            return Ok(None);
        };
        let ctx = TenantCtx::system(OrgId::from_uuid(org), "screen_link");
        let mut tx = g.into_tenant(ctx).await?;
        let queue = QueueId::from_uuid(queue);
        let screen = tx.screen(queue).await?;
        tx.commit().await?;
        Ok(Some((queue, screen)))
    }
}
