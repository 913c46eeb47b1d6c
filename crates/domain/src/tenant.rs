//! Who acts, and in which role.

use crate::{ApiKeyId, BuiltinRole, Permission, PermissionSet, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who performed an action; recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    User(UserId),
    ApiKey(ApiKeyId),
    /// Frontdesk itself: a worker, a scheduler or an operator command, named.
    System(String),
}

/// An actor string that is not `user:<uuid>`, `api_key:<uuid>` or `system:<name>`.
#[derive(Debug, thiserror::Error)]
#[error("not an actor: expected user:<id>, api_key:<id> or system:<name>")]
pub struct ActorParseError;

impl Actor {
    /// `user`, `api_key` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::ApiKey(_) => "api_key",
            Actor::System(_) => "system",
        }
    }

    /// The id (or the system component's name) as text.
    pub fn id_text(&self) -> String {
        match self {
            Actor::User(id) => id.to_string(),
            Actor::ApiKey(id) => id.to_string(),
            Actor::System(name) => name.clone(),
        }
    }

    /// Rebuilds an actor from its stored kind and id.
    pub fn from_parts(kind: &str, id: &str) -> Result<Self, ActorParseError> {
        match kind {
            "user" => UserId::parse(id)
                .map(Actor::User)
                .map_err(|_| ActorParseError),
            "api_key" => ApiKeyId::parse(id)
                .map(Actor::ApiKey)
                .map_err(|_| ActorParseError),
            "system" if !id.is_empty() => Ok(Actor::System(id.to_owned())),
            _ => Err(ActorParseError),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id_text())
    }
}

/// The role an actor holds in an organisation, as the tenant context carries it: its name
/// and the permissions it grants (for an API key, the key's scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    pub permissions: PermissionSet,
}

impl Role {
    pub fn builtin(r: BuiltinRole) -> Self {
        Self {
            name: r.as_str().to_owned(),
            permissions: r.permissions(),
        }
    }

    /// Frontdesk's own workers and operator commands: every permission.
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            permissions: PermissionSet::all(),
        }
    }

    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_round_trips_through_its_parts() {
        for a in [
            Actor::User(UserId::new()),
            Actor::ApiKey(ApiKeyId::new()),
            Actor::System("webhook-worker".into()),
        ] {
            assert_eq!(Actor::from_parts(a.kind(), &a.id_text()).unwrap(), a);
        }
        assert!(Actor::from_parts("user", "not-a-uuid").is_err());
        assert!(Actor::from_parts("robot", "x").is_err());
        assert!(Actor::from_parts("system", "").is_err());
    }
}
