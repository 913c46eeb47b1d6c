//! Synthetic inbox data in bulk, for `frontdesk bench inbox`: contacts, one conversation each
//! on one number, and their messages, written straight to the tables (not through the
//! actions, which would audit and announce every row). PostgreSQL takes each table in
//! chunks through `UNNEST` of arrays; SQLite, in process, takes one prepared statement per
//! row inside the caller's transaction.

use crate::StoreError;
use crate::tenant::{TenantTx, Tx};
use frontdesk_domain::{ChannelId, ConversationId, TeamId, UserId};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// What to generate for one organisation.
#[derive(Debug, Clone)]
pub struct InboxFill {
    pub channel: ChannelId,
    /// Distinguishes this organisation's generated phone numbers (0–99).
    pub number_prefix: u32,
    pub conversations: usize,
    pub messages_per_conversation: usize,
    /// Conversations are assigned in turn to these agents (every fourth is unassigned).
    pub agents: Vec<UserId>,
    pub team: Option<TeamId>,
    /// The newest conversation's last message; older ones go back a minute each.
    pub newest: OffsetDateTime,
}

const CHUNK: usize = 5_000;

struct Conv {
    id: Uuid,
    contact: Uuid,
    phone: String,
    name: String,
    status: &'static str,
    last: OffsetDateTime,
    preview: String,
    assignee: Option<Uuid>,
    inbound: i32,
}

struct Msg {
    id: Uuid,
    conversation: Uuid,
    contact: Uuid,
    inbound: bool,
    content: String,
    preview: String,
    at: OffsetDateTime,
}

const WORDS: &[&str] = &[
    "appointment",
    "tomorrow",
    "morning",
    "doctor",
    "prescription",
    "report",
    "fever",
    "please",
    "thanks",
    "clinic",
    "timing",
    "payment",
];

fn sentence(i: usize) -> String {
    let a = WORDS[i % WORDS.len()];
    let b = WORDS[(i / 7 + 3) % WORDS.len()];
    let c = WORDS[(i / 3 + 5) % WORDS.len()];
    format!("{a} {b} {c} {i}")
}

impl TenantTx {
    /// Writes `f.conversations` contacts and conversations and their messages. Returns the
    /// conversations' ids.
    pub async fn fill_inbox_for_bench(
        &mut self,
        f: &InboxFill,
    ) -> Result<Vec<ConversationId>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let channel = f.channel.as_uuid();
        let team = f.team.map(|t| t.as_uuid());
        let per = f.messages_per_conversation.max(1);
        let mut convs = Vec::with_capacity(f.conversations);
        let mut msgs = Vec::with_capacity(f.conversations * per);
        for i in 0..f.conversations {
            let last = f.newest - Duration::minutes(i as i64);
            let contact = Uuid::now_v7();
            let conv = Uuid::now_v7();
            let phone = format!("+1555{:02}{:07}", f.number_prefix % 100, i);
            let mut inbound = 0;
            let mut preview = String::new();
            for j in 0..per {
                let n = i * per + j;
                let is_in = j % 2 == 0;
                let text = sentence(n);
                let content = if is_in {
                    serde_json::json!({ "from": phone.trim_start_matches('+'), "id": format!("wamid.bench.{org}.{n}"), "type": "text", "text": { "body": text } })
                } else {
                    serde_json::json!({ "type": "text", "text": { "body": text } })
                };
                inbound += i32::from(is_in);
                preview = text.clone();
                msgs.push(Msg {
                    id: Uuid::now_v7(),
                    conversation: conv,
                    contact,
                    inbound: is_in,
                    content: content.to_string(),
                    preview: text,
                    at: last - Duration::seconds((per - 1 - j) as i64),
                });
            }
            let assignee = match (i % 4, f.agents.is_empty()) {
                (3, _) | (_, true) => None,
                _ => Some(f.agents[i % f.agents.len()].as_uuid()),
            };
            convs.push(Conv {
                id: conv,
                contact,
                name: format!("Patient {i}"),
                phone,
                status: if i % 5 == 4 { "resolved" } else { "open" },
                last,
                preview,
                assignee,
                inbound,
            });
        }
        match &mut self.tx {
            Tx::Postgres(t) => {
                for chunk in convs.chunks(CHUNK) {
                    let ids: Vec<Uuid> = chunk.iter().map(|c| c.contact).collect();
                    let phones: Vec<&str> = chunk.iter().map(|c| c.phone.as_str()).collect();
                    let names: Vec<&str> = chunk.iter().map(|c| c.name.as_str()).collect();
                    let at: Vec<OffsetDateTime> = chunk.iter().map(|c| c.last).collect();
                    sqlx::query("INSERT INTO contacts (org_id, id, phone, profile_name, created_at, updated_at) \
                                 SELECT $1, u.id, u.phone, u.name, u.at, u.at FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) AS u(id, phone, name, at)")
                        .bind(org).bind(&ids).bind(&phones).bind(&names).bind(&at).execute(&mut **t).await?;
                    let cids: Vec<Uuid> = chunk.iter().map(|c| c.id).collect();
                    let status: Vec<&str> = chunk.iter().map(|c| c.status).collect();
                    let previews: Vec<&str> = chunk.iter().map(|c| c.preview.as_str()).collect();
                    let assignees: Vec<Option<Uuid>> = chunk.iter().map(|c| c.assignee).collect();
                    let inbound: Vec<i32> = chunk.iter().map(|c| c.inbound).collect();
                    sqlx::query("INSERT INTO conversations (org_id, id, channel_id, contact_id, status, last_message_at, last_inbound_at, last_preview, created_at, updated_at, assignee_id, team_id, inbound_count) \
                                 SELECT $1, u.id, $2, u.contact, u.status, u.at, u.at, u.preview, u.at, u.at, u.assignee, $3, u.inbound \
                                 FROM UNNEST($4::uuid[], $5::uuid[], $6::text[], $7::timestamptz[], $8::text[], $9::uuid[], $10::int[]) AS u(id, contact, status, at, preview, assignee, inbound)")
                        .bind(org).bind(channel).bind(team).bind(&cids).bind(&ids).bind(&status).bind(&at).bind(&previews).bind(&assignees).bind(&inbound)
                        .execute(&mut **t).await?;
                }
                for chunk in msgs.chunks(CHUNK) {
                    let ids: Vec<Uuid> = chunk.iter().map(|m| m.id).collect();
                    let convs: Vec<Uuid> = chunk.iter().map(|m| m.conversation).collect();
                    let contacts: Vec<Uuid> = chunk.iter().map(|m| m.contact).collect();
                    let dirs: Vec<&str> = chunk
                        .iter()
                        .map(|m| if m.inbound { "in" } else { "out" })
                        .collect();
                    let statuses: Vec<&str> = chunk
                        .iter()
                        .map(|m| if m.inbound { "received" } else { "read" })
                        .collect();
                    let contents: Vec<&str> = chunk.iter().map(|m| m.content.as_str()).collect();
                    let previews: Vec<&str> = chunk.iter().map(|m| m.preview.as_str()).collect();
                    let at: Vec<OffsetDateTime> = chunk.iter().map(|m| m.at).collect();
                    sqlx::query("INSERT INTO messages (org_id, id, conversation_id, channel_id, contact_id, direction, kind, content, preview, status, created_at, updated_at) \
                                 SELECT $1, u.id, u.conv, $2, u.contact, u.dir, 'text', u.content, u.preview, u.status, u.at, u.at \
                                 FROM UNNEST($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[]) AS u(id, conv, contact, dir, status, content, preview, at)")
                        .bind(org).bind(channel).bind(&ids).bind(&convs).bind(&contacts).bind(&dirs).bind(&statuses).bind(&contents).bind(&previews).bind(&at)
                        .execute(&mut **t).await?;
                }
            }
            Tx::Sqlite(t) => {
                for c in &convs {
                    sqlx::query("INSERT INTO contacts (org_id, id, phone, profile_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                        .bind(org).bind(c.contact).bind(&c.phone).bind(&c.name).bind(c.last).execute(&mut **t).await?;
                    sqlx::query("INSERT INTO conversations (org_id, id, channel_id, contact_id, status, last_message_at, last_inbound_at, last_preview, created_at, updated_at, assignee_id, team_id, inbound_count) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $6, $6, $8, $9, $10)")
                        .bind(org).bind(c.id).bind(channel).bind(c.contact).bind(c.status).bind(c.last).bind(&c.preview).bind(c.assignee).bind(team).bind(c.inbound)
                        .execute(&mut **t).await?;
                }
                for m in &msgs {
                    sqlx::query("INSERT INTO messages (org_id, id, conversation_id, channel_id, contact_id, direction, kind, content, preview, status, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, 'text', $7, $8, $9, $10, $10)")
                        .bind(org).bind(m.id).bind(m.conversation).bind(channel).bind(m.contact)
                        .bind(if m.inbound { "in" } else { "out" }).bind(&m.content).bind(&m.preview)
                        .bind(if m.inbound { "received" } else { "read" }).bind(m.at)
                        .execute(&mut **t).await?;
                }
            }
        }
        Ok(convs
            .iter()
            .map(|c| ConversationId::from_uuid(c.id))
            .collect())
    }
}
