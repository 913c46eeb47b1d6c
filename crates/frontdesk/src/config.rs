//! Configuration: defaults < optional TOML file < `FRONTDESK_*` environment variables.
//! Typed and validated once at start; an error names the key and the reason.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use frontdesk_server::{AuthSettings, HstsPolicy, ServerSettings};
use frontdesk_store::{DatabaseUrl, MasterKeyring, StoreConfig, Vault, VaultError};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const ENV_PREFIX: &str = "FRONTDESK_";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default; what log shippers want).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// SQLite's default pool: one process owns the file and writers take turns, so readers
/// beyond a few only add threads (each connection has one) and colder page caches.
/// Measured (`docs/architecture.md`): the inbox bench's p99 was 21 ms with 16 connections
/// and 9.6 ms with 4, but `bench dispatch` fell from 889–932 to 518–807 msg/s with 4;
/// 8 kept both (inbox p99 6.9 ms, dispatch 927 msg/s).
pub const SQLITE_CONNECTIONS: u32 = 8;
/// PostgreSQL's default pool.
pub const POSTGRES_CONNECTIONS: u32 = 10;

/// The validated configuration of one Frontdesk process.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to serve HTTP on.
    pub bind: SocketAddr,
    /// Directory for the SQLite database, keys and media.
    pub data_dir: PathBuf,
    /// `postgres://…` to run on PostgreSQL; unset means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// PostgreSQL: the schema owner's URL, for migrations; the server itself then
    /// connects with `database_url`, whose role must not own tables or bypass RLS.
    pub database_owner_url: Option<String>,
    /// Upper bound of pooled database connections; unset: [`SQLITE_CONNECTIONS`] on
    /// SQLite, [`POSTGRES_CONNECTIONS`] on PostgreSQL.
    pub database_max_connections: Option<u32>,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// After SIGTERM/SIGINT, how long in-flight requests may still run.
    pub shutdown_grace_secs: u64,
    /// The URL users reach Frontdesk at; `https://…` turns on HSTS.
    pub public_url: Option<String>,
    /// Trust `X-Forwarded-Proto` from a reverse proxy (send HSTS when it says https).
    pub trust_forwarded_proto: bool,
    /// Take the client address from `X-Forwarded-For` (set it only behind a proxy that
    /// overwrites that header); sign-in throttling counts per address.
    pub trust_forwarded_for: bool,
    /// Lifetime of API access tokens, in seconds (60 to 604800, i.e. 7 days).
    pub access_token_ttl_secs: u64,
    /// A browser session unused this long (seconds) is signed out.
    pub session_idle_timeout_secs: u64,
    /// `json` or `pretty`.
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `frontdesk=debug,sqlx=warn`.
    pub log_level: String,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    #[serde(skip_serializing)]
    pub metrics_token: Option<SecretString>,
    /// The master key(s) of the secret vault, `v<N>:<base64 32 bytes>` separated by commas
    /// (or one bare base64 key). Unset: the key file is used.
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// The master key file, created (mode 0600) on first start when missing.
    /// Default: `master.keys` in `data_dir`.
    pub master_key_file: Option<PathBuf>,
    /// The built-in WhatsApp simulator (`[simulator]` in the file).
    pub simulator: SimulatorConfig,
}

/// The `[simulator]` table: Frontdesk playing Meta for numbers it connects itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Serve the simulator (fake Graph API and customer phone pages). On by default so a
    /// fresh install works offline; off, its routes answer 404.
    pub enabled: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("frontdesk-data"),
            database_url: None,
            database_owner_url: None,
            database_max_connections: None,
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            public_url: None,
            trust_forwarded_proto: false,
            trust_forwarded_for: false,
            access_token_ttl_secs: 900,
            session_idle_timeout_secs: 12 * 60 * 60,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            metrics_token: None,
            master_key: None,
            master_key_file: None,
            simulator: SimulatorConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url
                    .as_deref()
                    .map(|u| match DatabaseUrl::parse(u) {
                        Ok(u) => u.masked(),
                        Err(_) => "[unparsable]".into(),
                    }),
            )
            .field(
                "database_owner_url",
                &self
                    .database_owner_url
                    .as_deref()
                    .map(|u| match DatabaseUrl::parse(u) {
                        Ok(u) => u.masked(),
                        Err(_) => "[unparsable]".into(),
                    }),
            )
            .field("database_max_connections", &self.database_max_connections)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("public_url", &self.public_url)
            .field("trust_forwarded_proto", &self.trust_forwarded_proto)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("session_idle_timeout_secs", &self.session_idle_timeout_secs)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field("master_key_file", &self.master_key_file)
            .field("simulator", &self.simulator)
            .finish()
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `FRONTDESK_*` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.into(),
                    reason: "no such file".into(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // FRONTDESK_CONFIG names the file itself and is read by the CLI.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]));
        let config: Config = figment.extract().map_err(from_figment)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            DatabaseUrl::parse(url).map_err(|e| invalid("database_url", e.to_string()))?;
        }
        if let Some(url) = &self.database_owner_url {
            let owner = DatabaseUrl::parse(url)
                .map_err(|e| invalid("database_owner_url", e.to_string()))?;
            let app_is_pg = self.database().backend() == frontdesk_store::Backend::Postgres;
            if owner.backend() != frontdesk_store::Backend::Postgres || !app_is_pg {
                return Err(invalid(
                    "database_owner_url",
                    "only for PostgreSQL, together with a postgres:// database_url",
                ));
            }
        }
        if let Some(n) = self.database_max_connections
            && !(1..=1000).contains(&n)
        {
            return Err(invalid(
                "database_max_connections",
                "must be between 1 and 1000",
            ));
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(invalid(
                "body_limit_bytes",
                "must be between 1024 and 268435456",
            ));
        }
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return Err(invalid(
                "request_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(60..=7 * 24 * 3600).contains(&self.access_token_ttl_secs) {
            return Err(invalid(
                "access_token_ttl_secs",
                "must be between 60 and 604800 (7 days)",
            ));
        }
        if !(300..=30 * 24 * 3600).contains(&self.session_idle_timeout_secs) {
            return Err(invalid(
                "session_idle_timeout_secs",
                "must be between 300 and 2592000 (30 days)",
            ));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(invalid("shutdown_grace_secs", "must be at most 3600"));
        }
        if let Some(u) = &self.public_url {
            let parsed = url::Url::parse(u).map_err(|e| invalid("public_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(invalid("public_url", "must be an http:// or https:// URL"));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", e.to_string()))?;
        if let Some(t) = &self.metrics_token
            && secrecy::ExposeSecret::expose_secret(t).len() < 16
        {
            return Err(invalid("metrics_token", "must be at least 16 characters"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Some(k) = &self.master_key {
            if self.master_key_file.is_some() {
                return Err(invalid(
                    "master_key",
                    "set master_key or master_key_file, not both",
                ));
            }
            MasterKeyring::parse(secrecy::ExposeSecret::expose_secret(k))
                .map_err(|e| invalid("master_key", e.to_string()))?;
        }
        Ok(())
    }

    /// The database to use: the configured URL, or the SQLite file in the data directory.
    /// The pool size: as configured, else the backend's default.
    pub fn database_connections(&self) -> u32 {
        self.database_max_connections
            .unwrap_or(match self.database().backend() {
                frontdesk_store::Backend::Sqlite => SQLITE_CONNECTIONS,
                frontdesk_store::Backend::Postgres => POSTGRES_CONNECTIONS,
            })
    }

    pub fn database(&self) -> DatabaseUrl {
        match &self.database_url {
            Some(u) => DatabaseUrl::parse(u).expect("validated at load"),
            None => DatabaseUrl::sqlite_file(&self.data_dir.join("frontdesk.db")),
        }
    }

    /// Where the master key file lives (whether or not it is used).
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.keys"))
    }

    /// The vault: keys from `master_key` when set, else from the key file (created on
    /// first start).
    pub fn vault(&self) -> Result<Arc<Vault>, VaultError> {
        let vault = match &self.master_key {
            Some(k) => Vault::new(MasterKeyring::parse(secrecy::ExposeSecret::expose_secret(
                k,
            ))?),
            None => Vault::from_file(&self.master_key_path())?,
        };
        Ok(Arc::new(vault))
    }

    pub fn store_config(&self, vault: Arc<Vault>) -> StoreConfig {
        let mut c = StoreConfig::new(self.database(), vault);
        c.owner_url = self
            .database_owner_url
            .as_deref()
            .map(|u| DatabaseUrl::parse(u).expect("validated at load"));
        c.max_connections = self.database_connections();
        c
    }

    /// The HTTP settings; `bound` is the address actually listened on (links in emails
    /// point there when no `public_url` is set).
    pub fn server_settings(&self, bound: SocketAddr) -> ServerSettings {
        let https = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let public = self
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok());
        let base_url = public.clone().unwrap_or_else(|| {
            url::Url::parse(&format!("http://{bound}/")).expect("socket addresses form URLs")
        });
        let auth = AuthSettings {
            access_token_ttl: time::Duration::seconds(self.access_token_ttl_secs as i64),
            secure_cookies: https,
            public_origin: public.map(|u| u.origin().ascii_serialization()),
            base_url,
            trust_forwarded_for: self.trust_forwarded_for,
            session_policy: frontdesk_store::SessionPolicy {
                idle_timeout: time::Duration::seconds(self.session_idle_timeout_secs as i64),
                ..frontdesk_store::SessionPolicy::default()
            },
            ..AuthSettings::default()
        };
        ServerSettings {
            auth,
            media_dir: self.data_dir.join("media"),
            body_limit_bytes: self.body_limit_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            hsts: if https {
                HstsPolicy::Always
            } else if self.trust_forwarded_proto {
                HstsPolicy::WhenForwardedHttps
            } else {
                HstsPolicy::Never
            },
            simulator: frontdesk_server::SimulatorSettings {
                enabled: self.simulator.enabled,
                ..frontdesk_server::SimulatorSettings::default()
            },
        }
    }
}

/// Turns figment's error into ours, keeping the key and saying where the value came from.
fn from_figment(err: figment::Error) -> ConfigError {
    let key = if err.path.is_empty() {
        match &err.kind {
            figment::error::Kind::UnknownField(field, _) => field.clone(),
            _ => "(top level)".into(),
        }
    } else {
        err.path.join(".")
    };
    let mut reason = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => format!("unknown key `{field}`"),
        kind => kind.to_string(),
    };
    if let Some(md) = &err.metadata {
        let source = match &err.metadata.as_ref().and_then(|m| m.source.as_ref()) {
            Some(figment::Source::File(p)) => format!("file {}", p.display()),
            _ => md.name.to_string(),
        };
        if md.name.contains("environment") {
            reason.push_str(&format!(
                " (from environment variable {ENV_PREFIX}{})",
                key.to_uppercase()
            ));
        } else {
            reason.push_str(&format!(" (from {source})"));
        }
    }
    ConfigError::Invalid { key, reason }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error by design
mod tests {
    use super::*;
    use figment::Jail;

    fn load_err(jail_setup: impl FnOnce(&mut Jail)) -> String {
        let mut out = String::new();
        Jail::expect_with(|jail| {
            jail_setup(jail);
            out = Config::load(Some(Path::new("frontdesk.toml")))
                .map(|_| "loaded".to_string())
                .unwrap_or_else(|e| e.to_string());
            Ok(())
        });
        out
    }

    #[test]
    fn defaults_need_no_configuration() {
        Jail::expect_with(|_jail| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(c.body_limit_bytes, 1024 * 1024);
            assert_eq!(c.database().backend(), frontdesk_store::Backend::Sqlite);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "frontdesk.toml",
                "bind = \"127.0.0.1:9001\"\nbody_limit_bytes = 4096\n",
            )?;
            jail.set_env("FRONTDESK_BIND", "127.0.0.1:9002");
            let c = Config::load(Some(Path::new("frontdesk.toml"))).unwrap();
            assert_eq!(c.bind.port(), 9002, "env beats file");
            assert_eq!(c.body_limit_bytes, 4096, "file beats default");
            assert_eq!(c.request_timeout_secs, 30, "default kept");
            Ok(())
        });
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        let e = load_err(|jail| {
            jail.create_file("frontdesk.toml", "").unwrap();
            jail.set_env("FRONTDESK_BODY_LIMIT_BYTES", "lots");
        });
        assert!(e.contains("`body_limit_bytes`"), "{e}");
        assert!(e.contains("FRONTDESK_BODY_LIMIT_BYTES"), "{e}");
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        let e = load_err(|jail| {
            jail.create_file("frontdesk.toml", "bnid = \"127.0.0.1:1\"\n")
                .unwrap();
        });
        assert!(e.contains("unknown key `bnid`"), "{e}");
    }

    #[test]
    fn out_of_range_and_malformed_values_are_refused() {
        let e = load_err(|jail| {
            jail.create_file("frontdesk.toml", "body_limit_bytes = 10\n")
                .unwrap();
        });
        assert!(
            e.contains("`body_limit_bytes`") && e.contains("between"),
            "{e}"
        );
        let e = load_err(|jail| {
            jail.create_file("frontdesk.toml", "database_url = \"mysql://x/y\"\n")
                .unwrap();
        });
        assert!(e.contains("`database_url`"), "{e}");
        let e = load_err(|jail| {
            jail.create_file("frontdesk.toml", "public_url = \"ftp://x\"\n")
                .unwrap();
        });
        assert!(e.contains("`public_url`"), "{e}");
    }

    #[test]
    fn debug_masks_database_password_and_metrics_token() {
        Jail::expect_with(|jail| {
            jail.set_env("FRONTDESK_DATABASE_URL", "postgres://u:pw-canary-123@h/db");
            jail.set_env("FRONTDESK_METRICS_TOKEN", "metrics-canary-0123456789");
            let c = Config::load(None).unwrap();
            let dbg = format!("{c:?}");
            assert!(!dbg.contains("pw-canary-123"), "{dbg}");
            assert!(!dbg.contains("metrics-canary"), "{dbg}");
            assert_eq!(c.database().backend(), frontdesk_store::Backend::Postgres);
            Ok(())
        });
    }

    #[test]
    fn master_key_from_environment_is_checked_and_redacted() {
        Jail::expect_with(|jail| {
            jail.set_env("FRONTDESK_MASTER_KEY", "v1:not-base64-canary");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("`master_key`"), "{e}");
            assert!(!e.contains("canary"), "the key's text is never echoed: {e}");
            // 32 bytes of 0x2a, base64
            let key = "v1:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
            jail.set_env("FRONTDESK_MASTER_KEY", key);
            let c = Config::load(None).unwrap();
            assert!(!format!("{c:?}").contains("KioqKio"));
            assert_eq!(c.vault().unwrap().ring().versions(), vec![1]);
            Ok(())
        });
    }

    #[test]
    fn the_simulator_is_on_by_default_and_can_be_turned_off() {
        Jail::expect_with(|jail| {
            assert!(Config::load(None).unwrap().simulator.enabled);
            jail.create_file("frontdesk.toml", "[simulator]\nenabled = false\n")?;
            let c = Config::load(Some(Path::new("frontdesk.toml"))).unwrap();
            assert!(!c.simulator.enabled);
            assert!(
                !c.server_settings("127.0.0.1:8080".parse().unwrap())
                    .simulator
                    .enabled
            );
            jail.create_file("frontdesk.toml", "[simulator]\nenabeld = false\n")?;
            let e = Config::load(Some(Path::new("frontdesk.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("enabeld"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn https_public_url_turns_on_hsts() {
        Jail::expect_with(|jail| {
            jail.set_env("FRONTDESK_PUBLIC_URL", "https://desk.example.com");
            let s = Config::load(None)
                .unwrap()
                .server_settings("127.0.0.1:8080".parse().unwrap());
            assert_eq!(s.hsts, HstsPolicy::Always);
            assert!(s.auth.secure_cookies, "cookies are Secure behind https");
            assert_eq!(
                s.auth.public_origin.as_deref(),
                Some("https://desk.example.com")
            );
            Ok(())
        });
    }
}
