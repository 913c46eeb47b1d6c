//! Pure types and rules of Frontdesk: ids, actors and roles. No I/O.

mod ids;
mod tenant;

pub use ids::{ApiKeyId, OrgId, UserId};
pub use tenant::{Actor, ActorParseError, Role};
