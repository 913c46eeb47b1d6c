//! Live events: what changed in an organisation's inbox, for open dashboards.
//!
//! Store code queues an event on its transaction ([`TenantTx::emit`]); the event reaches the
//! bus only when that transaction commits, so a rolled-back change is never announced. The
//! bus is an in-process broadcast channel shared by every clone of the [`crate::Store`], so
//! the worker and the server of one `serve` process publish to the same subscribers.
//!
//! Across processes (several `serve` processes on one PostgreSQL database), each committing
//! transaction also sends its events with `pg_notify` inside the transaction, so they are
//! delivered exactly when it commits. Each process listens ([`crate::Store::relay_events`])
//! and republishes other processes' events on its own bus, and drops its cached unread
//! counts of the organisations they concern. A notification is limited to 8,000 bytes: an
//! event too large for one carries `{"truncated": true}` as its payload instead (subscribers
//! refetch what changed anyway).
//!
//! An event carries what a subscriber needs to decide whether its user may see it
//! (organisation, conversation, number, assignee, team, or the one user it is for) and a
//! JSON payload. Payloads never carry a contact's phone number: they name the contact by id.

use frontdesk_domain::{ChannelId, ConversationId, OrgId, QueueId, TeamId, UserId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some (it is told).
const BUS_CAPACITY: usize = 4096;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A message was stored (inbound) or queued (outbound).
    #[serde(rename = "message.new")]
    MessageNew,
    /// An outbound message's status moved (sent, delivered, read, failed) or it was retried.
    #[serde(rename = "message.status")]
    MessageStatus,
    /// Assignment, status, snooze or labels changed.
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    /// An internal note was written.
    #[serde(rename = "note.new")]
    NoteNew,
    /// A notification for one user (a mention).
    #[serde(rename = "notification")]
    Notification,
    /// A clinic queue's board changed (a token joined, was called, moved…, or the queue's
    /// settings changed): staff with `queue.read` refetch it. Carries only the queue id.
    #[serde(rename = "queue.changed")]
    QueueChanged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageNew => "message.new",
            EventKind::MessageStatus => "message.status",
            EventKind::ConversationUpdated => "conversation.updated",
            EventKind::NoteNew => "note.new",
            EventKind::Notification => "notification",
            EventKind::QueueChanged => "queue.changed",
        }
    }
}

/// One event, with what visibility checks need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub org_id: OrgId,
    pub kind: EventKind,
    pub conversation_id: Option<ConversationId>,
    pub channel_id: Option<ChannelId>,
    pub assignee_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    /// Set for events meant for one user only (notifications).
    pub for_user: Option<UserId>,
    pub data: serde_json::Value,
}

/// The in-process event bus, and the dispatcher's wake-up: both are signalled after a
/// commit, by the transaction that made the change. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tx: Arc<broadcast::Sender<Arc<Event>>>,
    outbox: Arc<tokio::sync::Notify>,
    /// Dropped or adjusted by the same commits that announce changes.
    unread: Arc<crate::unread::UnreadCache>,
    /// This bus's name on the PostgreSQL channel, so it skips its own relayed events.
    origin: uuid::Uuid,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            tx: Arc::new(tx),
            outbox: Arc::default(),
            unread: Arc::default(),
            origin: uuid::Uuid::new_v4(),
        }
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

impl EventBus {
    /// Notified after each commit that queued outbox work (sends, read receipts, media
    /// downloads): the dispatcher waits on it.
    pub fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// The inbox sidebar's cached unread counts (see [`crate::unread`]).
    pub(crate) fn unread(&self) -> &crate::unread::UnreadCache {
        &self.unread
    }

    pub(crate) fn wake_outbox(&self) {
        self.outbox.notify_one();
    }

    /// Every event published from now on (all organisations: the subscriber filters).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Publishes committed events. Nobody listening is fine.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        for e in events {
            let _ = self.tx.send(Arc::new(e));
        }
    }

    /// The notification payloads that carry `events` to other processes, each within
    /// PostgreSQL's limit.
    pub(crate) fn relay_payloads(&self, events: &[Event]) -> Vec<String> {
        let mut out = Vec::new();
        let mut batch: Vec<String> = Vec::new();
        let mut size = 0;
        for e in events {
            let mut json = serde_json::to_string(e).unwrap_or_default();
            if json.len() > MAX_EVENT_BYTES {
                let mut small = e.clone();
                small.data = serde_json::json!({ "truncated": true });
                json = serde_json::to_string(&small).unwrap_or_default();
            }
            if !batch.is_empty() && size + json.len() + 1 > MAX_EVENT_BYTES {
                out.push(self.envelope(&batch));
                batch.clear();
                size = 0;
            }
            size += json.len() + 1;
            batch.push(json);
        }
        if !batch.is_empty() {
            out.push(self.envelope(&batch));
        }
        out
    }

    fn envelope(&self, events: &[String]) -> String {
        format!(
            "{{\"origin\":\"{}\",\"events\":[{}]}}",
            self.origin,
            events.join(",")
        )
    }

    /// Republishes another process's events (ignores this bus's own and anything
    /// unreadable), dropping the cached unread counts of their organisations first.
    pub(crate) fn receive_relayed(&self, payload: &str) {
        #[derive(Deserialize)]
        struct Relayed {
            origin: uuid::Uuid,
            events: Vec<Event>,
        }
        let relayed: Relayed = match serde_json::from_str(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, bytes = payload.len(), "unreadable relayed events");
                return;
            }
        };
        if relayed.origin == self.origin {
            return;
        }
        let mut orgs: Vec<OrgId> = relayed.events.iter().map(|e| e.org_id).collect();
        orgs.sort_unstable();
        orgs.dedup();
        for org in orgs {
            self.unread.changed(org);
        }
        self.publish(relayed.events);
    }
}

/// PostgreSQL's notification payload limit is 8,000 bytes; the envelope takes the rest.
const MAX_EVENT_BYTES: usize = 7_800;

/// The PostgreSQL notification channel events travel on between processes.
pub(crate) const RELAY_CHANNEL: &str = "frontdesk_events";

impl crate::TenantTx {
    /// Announces, once this transaction commits, that a queue's board changed. Several
    /// announcements of one queue in one transaction make one event.
    pub fn announce_queue_changed(&mut self, queue: QueueId) {
        let org_id = self.ctx().org_id();
        let data = serde_json::json!({ "queue_id": queue });
        if self
            .pending_events()
            .iter()
            .any(|e| e.kind == EventKind::QueueChanged && e.data == data)
        {
            return;
        }
        self.emit(Event {
            org_id,
            kind: EventKind::QueueChanged,
            conversation_id: None,
            channel_id: None,
            assignee_id: None,
            team_id: None,
            for_user: None,
            data,
        });
    }
}

#[cfg(test)]
mod relay_tests {
    use super::*;

    fn note(org: OrgId, body: &str) -> Event {
        Event {
            org_id: org,
            kind: EventKind::NoteNew,
            conversation_id: Some(ConversationId::new()),
            channel_id: None,
            assignee_id: None,
            team_id: None,
            for_user: None,
            data: serde_json::json!({ "body": body }),
        }
    }

    #[test]
    fn many_events_travel_in_payloads_within_the_limit_and_arrive_in_order_once() {
        let (sender, receiver) = (EventBus::default(), EventBus::default());
        let org = OrgId::new();
        let events: Vec<Event> = (0..40)
            .map(|i| note(org, &format!("{i} {}", "é".repeat(300))))
            .collect();
        let payloads = sender.relay_payloads(&events);
        assert!(payloads.len() > 1, "{} payloads", payloads.len());
        assert!(payloads.iter().all(|p| p.len() < 8_000));
        let mut heard = receiver.subscribe();
        for p in &payloads {
            receiver.receive_relayed(p);
            // A bus ignores its own events.
            sender.receive_relayed(p);
        }
        for e in &events {
            let got = heard.try_recv().unwrap();
            assert_eq!(
                (got.conversation_id, &got.data),
                (e.conversation_id, &e.data)
            );
        }
        assert!(heard.try_recv().is_err());
        let mut own = sender.subscribe();
        sender.receive_relayed(&payloads[0]);
        assert!(own.try_recv().is_err());
        receiver.receive_relayed("not json");
        assert!(heard.try_recv().is_err(), "junk is ignored");
    }
}
