//! Permissions, the built-in roles, and sets of permissions.
//!
//! A permission is a fine-grained right (`contacts.export`). A role is a named set of them:
//! three are built in (admin, manager, agent) and defined here, so a release that adds a
//! permission updates them; organisations make their own (receptionist, doctor) from any
//! subset. API keys carry a scope: a subset too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! permissions {
    ($($variant:ident = $name:literal : $desc:literal,)*) => {
        /// One right. Its text form (`inbox.read_all`) is what APIs and storage use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Permission {
            $(#[doc = $desc] $variant,)*
        }

        impl Permission {
            /// Every permission, in declaration order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }

            pub fn parse(s: &str) -> Option<Permission> {
                match s {
                    $($name => Some(Permission::$variant),)*
                    _ => None,
                }
            }

            /// What the permission allows, for the role editor.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Permission::$variant => $desc,)*
                }
            }
        }
    };
}

permissions! {
    InboxRead = "inbox.read" : "Read conversations in the inboxes of one's own teams",
    InboxReadAll = "inbox.read_all" : "Read every conversation of the organisation, whatever the team",
    InboxReply = "inbox.reply" : "Reply to customers and write internal notes",
    InboxAssign = "inbox.assign" : "Assign, resolve, snooze and label conversations",
    InboxConfigure = "inbox.configure" : "Set up the inboxes: serving teams, round-robin, labels, quick replies",
    ContactsRead = "contacts.read" : "Read contacts",
    ContactsWrite = "contacts.write" : "Create and edit contacts, tags and custom fields",
    ContactsViewPhone = "contacts.view_phone" : "See full phone numbers instead of masked ones",
    ContactsExport = "contacts.export" : "Request and download contact exports",
    ContactsErase = "contacts.erase" : "Erase a contact's personal data on request",
    ContactsApproveExport = "contacts.approve_export" : "Approve or refuse another member's contact export (admins)",
    ContactsConfigure = "contacts.configure" : "Define custom contact fields, manage the tag catalogue and opt-out keywords",
    ChannelsManage = "channels.manage" : "Connect and configure WhatsApp numbers",
    TemplatesManage = "templates.manage" : "Create and submit message templates",
    CampaignsManage = "campaigns.manage" : "Create, schedule and stop campaigns",
    BotsManage = "bots.manage" : "Build and publish bot flows and the knowledge base",
    QueueRead = "queue.read" : "See the clinic queues and their boards",
    QueueManage = "queue.manage" : "Check in, reorder, move, mark no-show, pause and resume queues",
    QueueCallNext = "queue.call_next" : "Call the next patient, recall and complete",
    QueueConfigure = "queue.configure" : "Configure queues: hours, keywords, caps",
    QueueExport = "queue.export" : "Download queue reports as CSV",
    TeamManage = "team.manage" : "Invite and remove members, manage teams, revoke members' sessions",
    RolesManage = "roles.manage" : "Create custom roles and change members' roles",
    ApiKeysManage = "api_keys.manage" : "Create and revoke API keys",
    AuditRead = "audit.read" : "Read the audit log",
    SettingsManage = "settings.manage" : "Change organisation settings (name, two-factor requirement)",
    BillingManage = "billing.manage" : "See usage and credits, buy credits",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u64);

const _: () = assert!(
    Permission::ALL.len() <= 64,
    "PermissionSet holds at most 64"
);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn all() -> Self {
        Self::from_iter(Permission::ALL.iter().copied())
    }

    pub fn contains(&self, p: Permission) -> bool {
        self.0 & (1 << p as u8) != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= 1 << p as u8;
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether every permission of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn intersection(&self, other: &PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| self.contains(*p))
    }

    /// The text forms, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// Parses permission names; an unknown name is an error naming it.
    pub fn parse_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, UnknownPermission> {
        let mut set = PermissionSet::EMPTY;
        for n in names {
            set.insert(Permission::parse(n).ok_or_else(|| UnknownPermission(n.to_owned()))?);
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut s = PermissionSet::EMPTY;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        PermissionSet::parse_names(names.iter().map(String::as_str))
            .map_err(serde::de::Error::custom)
    }
}

/// A permission name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}`")]
pub struct UnknownPermission(pub String);

/// The roles every organisation has. Their permissions are defined here, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    Admin,
    Manager,
    Agent,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 3] =
        [BuiltinRole::Admin, BuiltinRole::Manager, BuiltinRole::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "admin",
            BuiltinRole::Manager => "manager",
            BuiltinRole::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            BuiltinRole::Admin => PermissionSet::all(),
            // Runs the day-to-day work; cannot change who holds power or the organisation itself.
            BuiltinRole::Manager => [
                InboxRead,
                InboxReadAll,
                InboxReply,
                InboxAssign,
                InboxConfigure,
                ContactsRead,
                ContactsWrite,
                ContactsViewPhone,
                ContactsExport,
                ContactsConfigure,
                TemplatesManage,
                CampaignsManage,
                BotsManage,
                QueueRead,
                QueueManage,
                QueueCallNext,
                QueueConfigure,
                QueueExport,
                TeamManage,
                AuditRead,
            ]
            .into_iter()
            .collect(),
            // Talks to customers in their teams' inboxes; phone numbers stay masked.
            BuiltinRole::Agent => [
                InboxRead,
                InboxReply,
                InboxAssign,
                ContactsRead,
                ContactsWrite,
                QueueRead,
            ]
            .into_iter()
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert!(seen.insert(p.as_str()), "duplicate {p}");
            assert!(!p.describe().is_empty());
        }
        assert_eq!(Permission::parse("inbox.read_everything"), None);
    }

    #[test]
    fn sets_parse_serialise_and_compare() {
        let s = PermissionSet::parse_names(["audit.read", "contacts.export"]).unwrap();
        assert!(s.contains(Permission::AuditRead) && s.contains(Permission::ContactsExport));
        assert!(!s.contains(Permission::InboxRead));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["contacts.export","audit.read"]"#
        );
        let back: PermissionSet =
            serde_json::from_str(r#"["audit.read","contacts.export"]"#).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<PermissionSet>(r#"["root"]"#).is_err());
        assert_eq!(
            PermissionSet::parse_names(["nope"]).unwrap_err(),
            UnknownPermission("nope".into())
        );
        assert!(s.is_subset_of(&PermissionSet::all()));
        assert!(!PermissionSet::all().is_subset_of(&s));
        assert_eq!(
            s.intersection(&BuiltinRole::Agent.permissions()),
            PermissionSet::EMPTY
        );
    }

    #[test]
    fn builtin_roles_nest() {
        let admin = BuiltinRole::Admin.permissions();
        let manager = BuiltinRole::Manager.permissions();
        let agent = BuiltinRole::Agent.permissions();
        assert!(agent.is_subset_of(&manager) && manager.is_subset_of(&admin));
        assert!(
            !agent.contains(Permission::ContactsViewPhone),
            "agents see masked numbers"
        );
        assert!(!manager.contains(Permission::RolesManage));
        assert_eq!(admin, PermissionSet::all());
    }
}
