//! The audit log: append-only, one hash chain per organisation.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash followed by a canonical,
//! length-prefixed encoding of the event, so changing, removing or reordering any event
//! breaks every later link. Events are appended inside the transaction of the change they
//! record; triggers on both backends refuse UPDATE and DELETE.

use crate::orgs::now_micros;
use crate::tenant::{TenantCtx, TenantTx, Tx, with_conn};
use crate::{Store, StoreError};
use frontdesk_domain::{Actor, OrgId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A change to record. `data` must never hold secrets, message bodies or full phone
/// numbers: ids and masked values only, so erasure never has to touch the log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub data: serde_json::Value,
}

impl AuditRecord {
    pub fn new(
        action: impl Into<String>,
        target_type: impl Into<String>,
        target_id: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            action: action.into(),
            target_type: target_type.into(),
            target_id: target_id.into(),
            data,
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub org_id: OrgId,
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub data: serde_json::Value,
    #[serde(serialize_with = "as_hex")]
    #[schema(value_type = String)]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "as_hex")]
    #[schema(value_type = String)]
    pub hash: Vec<u8>,
}

fn as_hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

const GENESIS: [u8; 32] = [0; 32];

/// The bytes hashed for an event: a domain tag, then every field length-prefixed, so no
/// two different events encode alike.
#[allow(clippy::too_many_arguments)]
fn canonical(
    org: OrgId,
    seq: i64,
    at: OffsetDateTime,
    actor_type: &str,
    actor_id: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    data: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + data.len());
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    field(b"frontdesk.audit.v1");
    field(org.as_uuid().as_bytes());
    field(&seq.to_be_bytes());
    field(&((at.unix_timestamp_nanos() / 1000) as i64).to_be_bytes());
    for s in [actor_type, actor_id, action, target_type, target_id, data] {
        field(s.as_bytes());
    }
    out
}

fn chain_hash(prev: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().to_vec()
}

pub(crate) type EventRow = (
    uuid::Uuid,
    i64,
    OffsetDateTime,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
);

/// A row as stored, before it is trusted: the verifier needs the raw text of `data`.
pub(crate) struct RawEvent {
    org: OrgId,
    seq: i64,
    at: OffsetDateTime,
    actor_type: String,
    actor_id: String,
    action: String,
    target_type: String,
    target_id: String,
    data: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<EventRow> for RawEvent {
    fn from(r: EventRow) -> Self {
        RawEvent {
            org: OrgId::from_uuid(r.0),
            seq: r.1,
            at: r.2,
            actor_type: r.3,
            actor_id: r.4,
            action: r.5,
            target_type: r.6,
            target_id: r.7,
            data: r.8,
            prev_hash: r.9,
            hash: r.10,
        }
    }
}

impl RawEvent {
    fn expected_hash(&self, prev: &[u8]) -> Vec<u8> {
        chain_hash(
            prev,
            &canonical(
                self.org,
                self.seq,
                self.at,
                &self.actor_type,
                &self.actor_id,
                &self.action,
                &self.target_type,
                &self.target_id,
                &self.data,
            ),
        )
    }

    pub(crate) fn into_event(self) -> Result<AuditEvent, StoreError> {
        let actor = Actor::from_parts(&self.actor_type, &self.actor_id)
            .map_err(|e| StoreError::Corrupt(format!("audit event {}: {e}", self.seq)))?;
        let data = serde_json::from_str(&self.data)
            .map_err(|e| StoreError::Corrupt(format!("audit event {}: data: {e}", self.seq)))?;
        Ok(AuditEvent {
            org_id: self.org,
            seq: self.seq,
            occurred_at: self.at,
            actor,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            data,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

impl TenantTx {
    /// Appends an event for this transaction's actor to its organisation's chain. It
    /// becomes visible, like the change it records, only when the transaction commits.
    pub async fn audit(&mut self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        let ctx = self.ctx().clone();
        let org = ctx.org_id().as_uuid();
        let data = serde_json::to_string(&record.data).expect("JSON values serialise");
        let at = now_micros();
        let actor = ctx.actor();
        let (actor_type, actor_id) = (actor.kind(), actor.id_text());

        // The head row is the chain's lock: FOR UPDATE on PostgreSQL; on SQLite the
        // transaction already holds the database's write lock.
        let head_sql = if matches!(self.tx, Tx::Postgres(_)) {
            "SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE"
        } else {
            "SELECT seq, hash FROM audit_heads WHERE org_id = $1"
        };
        let (prev_seq, prev_hash): (i64, Vec<u8>) = with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (org_id) DO NOTHING")
                .bind(org)
                .bind(&GENESIS[..])
                .execute(&mut *c)
                .await?;
            sqlx::query_as(head_sql)
            .bind(org)
            .fetch_one(&mut *c)
            .await?
        });
        let seq = prev_seq + 1;
        let hash = chain_hash(
            &prev_hash,
            &canonical(
                ctx.org_id(),
                seq,
                at,
                actor_type,
                &actor_id,
                &record.action,
                &record.target_type,
                &record.target_id,
                &data,
            ),
        );
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO audit_events (org_id, seq, occurred_at, actor_type, actor_id, action, target_type, target_id, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(org)
                .bind(seq)
                .bind(at)
                .bind(actor_type)
                .bind(&actor_id)
                .bind(&record.action)
                .bind(&record.target_type)
                .bind(&record.target_id)
                .bind(&data)
                .bind(&prev_hash)
                .bind(&hash)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE org_id = $1")
                .bind(org)
                .bind(seq)
                .bind(&hash)
                .execute(&mut *c)
                .await?;
        });
        Ok(AuditEvent {
            org_id: ctx.org_id(),
            seq,
            occurred_at: at,
            actor: actor.clone(),
            action: record.action,
            target_type: record.target_type,
            target_id: record.target_id,
            data: record.data,
            prev_hash,
            hash,
        })
    }
}

/// Filters for reading the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<Actor>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Cursor: only events with a smaller sequence number (pages go newest first).
    pub before_seq: Option<i64>,
    /// Page size, clamped to 1..=500.
    pub limit: u32,
}

/// One page of events, newest first, and the cursor for the next.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_before_seq: Option<i64>,
}

/// Where a chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// The result of walking one organisation's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub org_id: OrgId,
    pub events: u64,
    pub broken: Option<BrokenLink>,
}

const VERIFY_PAGE: i64 = 1000;

impl Store {
    /// Reads the context's audit log, filtered and paginated.
    pub async fn audit_events(
        &self,
        ctx: &TenantCtx,
        q: &AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        let limit = i64::from(q.limit.clamp(1, 500));
        let (actor_type, actor_id) = match &q.actor {
            Some(a) => (Some(a.kind()), Some(a.id_text())),
            None => (None, None),
        };
        let mut tx = self.begin_read(ctx).await?;
        // Same statement on both backends but for the casts PostgreSQL needs to type NULLs.
        let sql = if matches!(tx.tx, Tx::Postgres(_)) {
            "SELECT org_id, seq, occurred_at, actor_type, actor_id, action, target_type, target_id, data, prev_hash, hash FROM audit_events WHERE org_id = $1 AND ($2::text IS NULL OR actor_type = $2) AND ($3::text IS NULL OR actor_id = $3) AND ($4::text IS NULL OR action = $4) AND ($5::text IS NULL OR target_type = $5) AND ($6::text IS NULL OR target_id = $6) AND ($7::timestamptz IS NULL OR occurred_at >= $7) AND ($8::timestamptz IS NULL OR occurred_at < $8) AND ($9::bigint IS NULL OR seq < $9) ORDER BY seq DESC LIMIT $10"
        } else {
            "SELECT org_id, seq, occurred_at, actor_type, actor_id, action, target_type, target_id, data, prev_hash, hash FROM audit_events WHERE org_id = $1 AND ($2 IS NULL OR actor_type = $2) AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR target_type = $5) AND ($6 IS NULL OR target_id = $6) AND ($7 IS NULL OR occurred_at >= $7) AND ($8 IS NULL OR occurred_at < $8) AND ($9 IS NULL OR seq < $9) ORDER BY seq DESC LIMIT $10"
        };
        let rows: Vec<EventRow> = with_conn!(tx.tx, c => {
            sqlx::query_as(sql)
                .bind(ctx.org_id().as_uuid())
                .bind(actor_type)
                .bind(actor_id)
                .bind(q.action.as_deref())
                .bind(q.target_type.as_deref())
                .bind(q.target_id.as_deref())
                .bind(q.since)
                .bind(q.until)
                .bind(q.before_seq)
                .bind(limit)
                .fetch_all(c)
                .await?
        });
        tx.commit().await?;
        let events = rows
            .into_iter()
            .map(|r| RawEvent::from(r).into_event())
            .collect::<Result<Vec<_>, _>>()?;
        let next_before_seq = if events.len() as i64 == limit {
            events.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_before_seq,
        })
    }

    /// Walks the chain of `only` (or of every organisation) and reports, per chain, the
    /// first event whose sequence, link or hash does not verify.
    pub async fn verify_audit_chains(
        &self,
        only: Option<OrgId>,
    ) -> Result<Vec<ChainReport>, StoreError> {
        let all = self.all_org_ids().await?;
        let orgs = match only {
            Some(o) if all.contains(&o) => vec![o],
            Some(_) => return Err(StoreError::Invalid("no organisation has that id".into())),
            None => all,
        };
        let mut reports = Vec::with_capacity(orgs.len());
        for org in orgs {
            reports.push(self.verify_chain(org).await?);
        }
        Ok(reports)
    }

    async fn verify_chain(&self, org: OrgId) -> Result<ChainReport, StoreError> {
        let ctx = TenantCtx::system(org, "audit-verify");
        let mut tx = self.begin_read(&ctx).await?;
        let mut prev = GENESIS.to_vec();
        let mut expected_seq = 1i64;
        let mut broken = None;
        'walk: loop {
            let rows: Vec<EventRow> = with_conn!(tx.tx, c => {
                sqlx::query_as("SELECT org_id, seq, occurred_at, actor_type, actor_id, action, target_type, target_id, data, prev_hash, hash FROM audit_events WHERE org_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3")
                    .bind(org.as_uuid())
                    .bind(expected_seq)
                    .bind(VERIFY_PAGE)
                    .fetch_all(c)
                    .await?
            });
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let ev = RawEvent::from(row);
                let problem = if ev.seq != expected_seq {
                    Some(format!(
                        "expected sequence {expected_seq}, found {}",
                        ev.seq
                    ))
                } else if ev.prev_hash != prev {
                    Some("prev_hash does not match the previous event's hash".to_owned())
                } else if ev.expected_hash(&prev) != ev.hash {
                    Some("hash does not match the event's content".to_owned())
                } else {
                    None
                };
                if let Some(reason) = problem {
                    broken = Some(BrokenLink {
                        seq: expected_seq.min(ev.seq),
                        reason,
                    });
                    break 'walk;
                }
                prev = ev.hash;
                expected_seq += 1;
            }
        }
        let events = (expected_seq - 1) as u64;
        if broken.is_none() {
            // The head must point at the last event: a removed tail shows up here.
            let head: Option<(i64, Vec<u8>)> = with_conn!(tx.tx, c => {
                sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE org_id = $1")
                    .bind(org.as_uuid())
                    .fetch_optional(c)
                    .await?
            });
            let head = head.unwrap_or((0, GENESIS.to_vec()));
            if head.0 != expected_seq - 1 || head.1 != prev {
                broken = Some(BrokenLink {
                    seq: expected_seq,
                    reason: format!(
                        "chain ends at sequence {} but its head says {}",
                        expected_seq - 1,
                        head.0
                    ),
                });
            }
        }
        tx.commit().await?;
        Ok(ChainReport {
            org_id: org,
            events,
            broken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_separates_fields() {
        let org = OrgId::new();
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = canonical(org, 1, at, "user", "x", "ab", "c", "t", "{}");
        let b = canonical(org, 1, at, "user", "x", "a", "bc", "t", "{}");
        assert_ne!(a, b);
        assert_ne!(chain_hash(&GENESIS, &a), chain_hash(&GENESIS, &b));
    }

    #[test]
    fn hash_depends_on_previous_hash() {
        let c = canonical(
            OrgId::new(),
            1,
            OffsetDateTime::UNIX_EPOCH,
            "system",
            "s",
            "a",
            "t",
            "i",
            "{}",
        );
        assert_ne!(chain_hash(&GENESIS, &c), chain_hash(&[1; 32], &c));
        assert_eq!(chain_hash(&GENESIS, &c).len(), 32);
    }
}
