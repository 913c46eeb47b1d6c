//! Erasure on request: a contact's personal data goes, in one transaction, at once (which
//! meets any erasure window, the default being immediate). The contact row stays as a
//! tombstone so conversations and messages stay linked and counted: its values are
//! cleared, its user id replaced by `erased.<contact id>` (a contact needs a number or a
//! user id), custom field values and tags removed; its messages keep a tombstone
//! (`{"erased": true}`, preview `[erased]`), notes on its conversations are replaced, and
//! its media rows lose their file name and bytes reference (they can no longer be served).
//!
//! Kept on purpose: the consent ledger (append-only; the proof that someone opted out) and
//! the audit log (which never holds personal data). Not yet erased: the raw webhook
//! payloads in `webhook_inbox` and the media bytes in the blob store (content-addressed and
//! possibly shared; they need a garbage collector that checks every organisation).

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{TenantTx, with_conn};
use frontdesk_domain::ContactId;
use serde::Serialize;

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasureReport {
    pub contact_id: ContactId,
    pub messages: i64,
    pub media: i64,
    pub notes: i64,
}

impl TenantTx {
    /// Erases a contact's personal data now (audited with counts only). Erasing twice is
    /// harmless.
    pub async fn erase_contact(&mut self, id: ContactId) -> Result<ErasureReport, StoreError> {
        self.contact(id).await?;
        let org = self.org();
        let c = id.as_uuid();
        let now = now_micros();
        let tombstone = format!("erased.{id}");
        let (messages, media, notes) = with_conn!(self.tx, k => {
            let media = sqlx::query("UPDATE media SET filename = NULL, blob_sha256 = NULL, expected_sha256 = NULL, provider_media_id = NULL, status = 'failed', error = 'erased' WHERE org_id = $1 AND id IN (SELECT media_id FROM messages WHERE org_id = $1 AND contact_id = $2 AND media_id IS NOT NULL)")
                .bind(org).bind(c).execute(&mut *k).await?.rows_affected();
            let messages = sqlx::query("UPDATE messages SET content = '{\"erased\":true}', preview = '[erased]', reply_to = NULL, error_title = NULL, updated_at = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(c).bind(now).execute(&mut *k).await?.rows_affected();
            sqlx::query("UPDATE conversations SET last_preview = '[erased]', updated_at = $3 WHERE org_id = $1 AND contact_id = $2")
                .bind(org).bind(c).bind(now).execute(&mut *k).await?;
            let notes = sqlx::query("UPDATE notes SET body = '[erased]', mentions = '[]' WHERE org_id = $1 AND conversation_id IN (SELECT id FROM conversations WHERE org_id = $1 AND contact_id = $2)")
                .bind(org).bind(c).execute(&mut *k).await?.rows_affected();
            sqlx::query("DELETE FROM contact_field_values WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("DELETE FROM contact_tags WHERE org_id = $1 AND contact_id = $2").bind(org).bind(c).execute(&mut *k).await?;
            sqlx::query("UPDATE contacts SET phone = NULL, bsuid = $3, parent_bsuid = NULL, username = NULL, profile_name = NULL, name = NULL, email = NULL, language = NULL, company = NULL, erased_at = coalesce(erased_at, $4), updated_at = $4 WHERE org_id = $1 AND id = $2")
                .bind(org).bind(c).bind(&tombstone).bind(now).execute(&mut *k).await?;
            (messages as i64, media as i64, notes as i64)
        });
        self.audit(AuditRecord::new(
            "contact.erased",
            "contact",
            id.to_string(),
            serde_json::json!({ "messages": messages, "media": media, "notes": notes }),
        ))
        .await?;
        Ok(ErasureReport {
            contact_id: id,
            messages,
            media,
            notes,
        })
    }
}
