//! Pure types and rules of Frontdesk: ids, actors and roles. No I/O.

pub mod audience;
pub mod campaign;
mod email;
mod ids;
pub mod mention;
mod permissions;
mod phone;
pub mod queue;
pub mod template;
mod tenant;

pub use email::{Email, EmailError};
pub use ids::{
    ApiKeyId, CampaignId, ChannelId, ConsentEventId, ContactId, ConversationId, ErasureRequestId,
    ExportId, FieldId, ImportId, InboxId, InvitationId, LabelId, MediaId, MessageId, NoteId,
    NotificationId, OrgId, OutboxId, QueueId, QueueTokenId, QuickReplyId, RoleId, ScreenLinkId,
    SegmentId, SessionId, TagId, TeamId, TemplateId, TrackedLinkId, UserId,
};
pub use permissions::{BuiltinRole, Permission, PermissionSet, UnknownPermission};
pub use phone::{Bsuid, BsuidError, E164, E164Error};
pub use tenant::{Actor, ActorParseError, Role};
