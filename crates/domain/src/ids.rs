//! Typed ids: a user id cannot be passed where an organisation id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read from storage or parsed at the edge.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated text form.
            pub fn parse(s: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An organisation: the tenant every piece of customer data belongs to.
    OrgId
);
id_type!(
    /// A person who signs in.
    UserId
);
id_type!(
    /// An API key, acting for an organisation.
    ApiKeyId
);
id_type!(
    /// A role of an organisation (built-in or custom).
    RoleId
);
id_type!(
    /// A team of agents within an organisation.
    TeamId
);
id_type!(
    /// A sign-in: a browser session or an API client's token family.
    SessionId
);
id_type!(
    /// An invitation to join an organisation.
    InvitationId
);
id_type!(
    /// A connected WhatsApp number (Cloud API or Whapi).
    ChannelId
);
id_type!(
    /// A raw webhook body in the durable inbox.
    InboxId
);
id_type!(
    /// A customer of an organisation, known by phone number, business-scoped user id, or both.
    ContactId
);
id_type!(
    /// The thread between a contact and one of the organisation's numbers.
    ConversationId
);
id_type!(
    /// One message, inbound or outbound.
    MessageId
);
id_type!(
    /// A media file of a message.
    MediaId
);
id_type!(
    /// A queued provider call (a send, a read receipt, a media download).
    OutboxId
);
id_type!(
    /// A clinic queue (one doctor's or one desk's line of patients).
    QueueId
);
id_type!(
    /// A patient's place in a queue for one day (`A-014`).
    QueueTokenId
);
id_type!(
    /// A label of the organisation's catalogue, put on conversations.
    LabelId
);
id_type!(
    /// An internal note on a conversation (never sent to the customer).
    NoteId
);
id_type!(
    /// A notification for one user (a mention).
    NotificationId
);
id_type!(
    /// A canned answer with variables.
    QuickReplyId
);
id_type!(
    /// A read-only link to a queue's waiting-room screen (for a TV without a session).
    ScreenLinkId
);
id_type!(
    /// A message template (one name in one language on one business account).
    TemplateId
);
id_type!(
    /// A tracked link of a template's URL button, sent in one message.
    TrackedLinkId
);
id_type!(
    /// A custom contact field defined by an organisation.
    FieldId
);
id_type!(
    /// A tag of the organisation's contact catalogue.
    TagId
);
id_type!(
    /// One event of the marketing consent ledger.
    ConsentEventId
);
id_type!(
    /// A saved audience rule.
    SegmentId
);
id_type!(
    /// A CSV import of contacts.
    ImportId
);
id_type!(
    /// A request to export contacts (needs a second person's approval).
    ExportId
);
id_type!(
    /// A request to erase a contact's personal data.
    ErasureRequestId
);
id_type!(
    /// A marketing campaign: one template sent to a segment's audience.
    CampaignId
);
