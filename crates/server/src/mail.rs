//! Outgoing mail (invitations, sign-in links, password resets) over SMTP with `lettre`.
//!
//! The installation's SMTP settings live in the database; the password is sealed with the
//! installation's data key (`frontdesk smtp set` stores them). Mail goes out in the
//! background, so a request that sends mail answers as fast as one that does not, and the
//! mail body (which holds one-time links) is never logged.

use frontdesk_store::Store;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const SETTING_KEY: &str = "smtp";

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Implicit TLS (usually port 465).
    Tls,
    /// STARTTLS required (usually port 587).
    Starttls,
    /// Plain text: only to a server on this machine (a local relay or a test sink).
    None,
}

/// The installation's SMTP settings (the password is stored apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// `Frontdesk <no-reply@example.com>`
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("no SMTP server is configured (run `frontdesk smtp set`)")]
    NotConfigured,
    #[error("SMTP setting `{0}` is not valid: {1}")]
    Invalid(&'static str, String),
    #[error("could not send the mail")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Store(#[from] frontdesk_store::StoreError),
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SmtpConfig {
    pub fn validate(&self) -> Result<(), MailError> {
        if self.host.trim().is_empty() {
            return Err(MailError::Invalid("host", "must not be empty".into()));
        }
        if self.security == SmtpSecurity::None && !is_loopback(&self.host) {
            return Err(MailError::Invalid(
                "security",
                "plain-text SMTP is only allowed to a server on this machine; use tls or starttls"
                    .into(),
            ));
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Invalid("from", e.to_string()))?;
        Ok(())
    }
}

/// Stores the SMTP settings and password (sealed) for the installation.
pub async fn save_smtp(
    store: &Store,
    config: &SmtpConfig,
    password: Option<&SecretString>,
) -> Result<(), MailError> {
    config.validate()?;
    let json = serde_json::to_string(config).expect("settings serialise");
    store
        .put_system_setting(SETTING_KEY, &json, password)
        .await?;
    Ok(())
}

/// The stored SMTP settings, if any (never the password).
pub async fn smtp_config(store: &Store) -> Result<Option<SmtpConfig>, MailError> {
    Ok(match store.system_setting(SETTING_KEY).await? {
        Some((json, _)) => serde_json::from_str(&json).ok(),
        None => None,
    })
}

/// Sends mail with the installation's SMTP settings.
#[derive(Clone)]
pub struct Mailer {
    store: Store,
}

impl Mailer {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Sends one plain-text mail now.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let Some((json, password)) = self.store.system_setting(SETTING_KEY).await? else {
            return Err(MailError::NotConfigured);
        };
        let config: SmtpConfig = serde_json::from_str(&json)
            .map_err(|e| MailError::Invalid("settings", e.to_string()))?;
        let message = Message::builder()
            .from(
                config
                    .from
                    .parse::<Mailbox>()
                    .map_err(|e| MailError::Invalid("from", e.to_string()))?,
            )
            .to(to
                .parse::<Mailbox>()
                .map_err(|e| MailError::Invalid("to", e.to_string()))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| MailError::Send(Box::new(e)))?;
        let builder = match config.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| MailError::Send(Box::new(e)))?,
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| MailError::Send(Box::new(e)))?
            }
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(pw)) = (&config.username, &password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                pw.expose_secret().to_owned(),
            ));
        }
        builder
            .build()
            .send(message)
            .await
            .map_err(|e| MailError::Send(Box::new(e)))?;
        Ok(())
    }

    /// Sends in the background; failures are logged (without the body).
    pub fn send_later(&self, to: String, subject: String, body: String) {
        let mailer = self.clone();
        tokio::spawn(async move {
            match mailer.send(&to, &subject, &body).await {
                Ok(()) => tracing::info!(subject = %subject, "mail sent"),
                Err(e) => {
                    tracing::warn!(subject = %subject, error = %crate::error::error_chain(&e), "mail not sent")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_only_to_this_machine() {
        let mut c = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            security: SmtpSecurity::None,
            username: None,
            from: "Frontdesk <no-reply@clinic.example>".into(),
        };
        assert!(c.validate().is_ok());
        c.host = "smtp.example.com".into();
        assert!(matches!(
            c.validate(),
            Err(MailError::Invalid("security", _))
        ));
        c.security = SmtpSecurity::Starttls;
        assert!(c.validate().is_ok());
        c.from = "not a mailbox".into();
        assert!(matches!(c.validate(), Err(MailError::Invalid("from", _))));
    }
}
