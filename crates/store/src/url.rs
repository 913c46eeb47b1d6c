//! Database URLs: parsed once at the edge, printed with the password masked.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::Path;

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated database URL. `Debug` and `Display` mask any password it carries.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    url: SecretString,
}

/// Why a string is not a usable database URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    #[error("expected a URL starting with sqlite:, postgres:// or postgresql://")]
    UnknownScheme,
    #[error("the URL is not valid: {0}")]
    Malformed(String),
    #[error("a SQLite URL needs a file path (in-memory databases lose every message on restart)")]
    NoSqlitePath,
}

impl DatabaseUrl {
    /// Parses a `sqlite:` or `postgres://` URL.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        let raw = raw.trim();
        let backend = if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(DatabaseUrlError::NoSqlitePath);
            }
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| DatabaseUrlError::Malformed(e.to_string()))?;
            Backend::Postgres
        } else {
            return Err(DatabaseUrlError::UnknownScheme);
        };
        Ok(Self {
            backend,
            url: SecretString::from(raw.to_owned()),
        })
    }

    /// A SQLite URL for a file path.
    pub fn sqlite_file(path: &Path) -> Self {
        Self {
            backend: Backend::Sqlite,
            url: SecretString::from(format!("sqlite://{}", path.display())),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included; only for handing to the driver.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn masked(&self) -> String {
        let raw = self.url.expose_secret();
        match url::Url::parse(raw) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => raw.to_owned(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_printed() {
        let url = DatabaseUrl::parse("postgres://app:hunter2secret@db:5432/fd").unwrap();
        assert!(!format!("{url:?}").contains("hunter2secret"));
        assert!(!url.to_string().contains("hunter2secret"));
        assert!(url.masked().contains("app:***@db"));
        assert_eq!(url.expose(), "postgres://app:hunter2secret@db:5432/fd");
    }

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db").unwrap().backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/db").unwrap().backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("mysql://h/db").unwrap_err(),
            DatabaseUrlError::UnknownScheme
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap_err(),
            DatabaseUrlError::NoSqlitePath
        );
    }
}
