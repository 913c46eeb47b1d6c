//! Live events: what changed in an organisation's inbox, for open dashboards.
//!
//! Store code queues an event on its transaction ([`TenantTx::emit`]); the event reaches the
//! bus only when that transaction commits, so a rolled-back change is never announced. The
//! bus is an in-process broadcast channel shared by every clone of the [`crate::Store`], so
//! the worker and the server of one `serve` process publish to the same subscribers.
//! (Across processes — the scale-out path — events would need PostgreSQL LISTEN/NOTIFY;
//! not built yet.)
//!
//! An event carries what a subscriber needs to decide whether its user may see it
//! (organisation, conversation, number, assignee, team, or the one user it is for) and a
//! JSON payload. Payloads never carry a contact's phone number: they name the contact by id.

use frontdesk_domain::{ChannelId, ConversationId, OrgId, QueueId, TeamId, UserId};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some (it is told).
const BUS_CAPACITY: usize = 4096;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone)]
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
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            tx: Arc::new(tx),
            outbox: Arc::default(),
            unread: Arc::default(),
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
}

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
