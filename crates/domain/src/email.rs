//! Email addresses, parsed once at the edge.

use serde::Serialize;
use std::fmt;

/// An email address, trimmed and lower-cased, so one person has one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Not a usable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address")]
pub struct EmailError;

impl Email {
    /// Accepts `local@domain.tld` of at most 254 characters, without spaces or control
    /// characters; a deliberately plain check, since the real test is the mail we send.
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = s.trim().to_lowercase();
        if s.len() < 3 || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(EmailError);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(
            Email::parse("  Asha@Clinic.Example ").unwrap().as_str(),
            "asha@clinic.example"
        );
        for bad in [
            "",
            "a",
            "no-at.example",
            "a@b",
            "a@.b.c",
            "a b@c.d",
            "a@b..c",
            "@c.d",
            "a@b@c.d",
            "a\nb@c.d",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(65))).is_err());
    }
}
