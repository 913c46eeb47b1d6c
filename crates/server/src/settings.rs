//! What the HTTP layer needs from the configuration.

use std::time::Duration;

/// When to send `Strict-Transport-Security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HstsPolicy {
    /// Plain HTTP and no proxy we trust: HSTS would be ignored by browsers anyway.
    Never,
    /// The public URL is https: always send it.
    Always,
    /// Behind a proxy we trust: send it when `X-Forwarded-Proto: https`.
    WhenForwardedHttps,
}

/// HTTP-layer settings, a value in the application state (no globals).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub hsts: HstsPolicy,
    pub auth: AuthSettings,
    /// Where media files are stored (content-addressed), normally `<data dir>/media`.
    pub media_dir: std::path::PathBuf,
    /// The built-in WhatsApp simulator.
    pub simulator: crate::SimulatorSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            hsts: HstsPolicy::Never,
            auth: AuthSettings::default(),
            media_dir: std::path::PathBuf::from("frontdesk-data/media"),
            simulator: crate::SimulatorSettings::default(),
        }
    }
}

/// Sign-in and session settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Lifetime of an API access token (default 15 minutes, at most 7 days).
    pub access_token_ttl: time::Duration,
    /// Lifetime of a refresh token; each use issues a new one.
    pub refresh_token_ttl: time::Duration,
    /// Absolute lifetime of a browser session.
    pub web_session_ttl: time::Duration,
    /// Idle timeout of a browser session.
    pub session_policy: frontdesk_store::SessionPolicy,
    /// Cookies get `Secure` and the `__Host-` prefix (served over TLS).
    pub secure_cookies: bool,
    /// The site's origin (`https://desk.example.com`) when configured; cross-origin
    /// checks compare with it, otherwise with the request's `Host`.
    pub public_origin: Option<String>,
    /// Where links in emails point.
    pub base_url: url::Url,
    /// Take the client address from `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Failed sign-ins per account before a lockout.
    pub account_throttle: frontdesk_store::ThrottlePolicy,
    /// Failed sign-ins per client address before a lockout.
    pub ip_throttle: frontdesk_store::ThrottlePolicy,
    pub magic_link_ttl: time::Duration,
    pub password_reset_ttl: time::Duration,
    pub invitation_ttl: time::Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: time::Duration::minutes(15),
            refresh_token_ttl: time::Duration::days(30),
            web_session_ttl: time::Duration::days(14),
            session_policy: frontdesk_store::SessionPolicy::default(),
            secure_cookies: false,
            public_origin: None,
            base_url: url::Url::parse("http://127.0.0.1:8080/").expect("static URL"),
            trust_forwarded_for: false,
            account_throttle: frontdesk_store::ThrottlePolicy {
                max_failures: 10,
                window: time::Duration::minutes(15),
                lockout: time::Duration::minutes(15),
            },
            ip_throttle: frontdesk_store::ThrottlePolicy {
                max_failures: 50,
                window: time::Duration::minutes(10),
                lockout: time::Duration::minutes(10),
            },
            magic_link_ttl: time::Duration::minutes(15),
            password_reset_ttl: time::Duration::minutes(30),
            invitation_ttl: time::Duration::days(7),
        }
    }
}

/// The time source: the system clock, or one a test moves by hand.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(std::sync::Arc::new(frontdesk_store::now_micros))
    }

    /// A clock that reads `offset` (seconds, settable) ahead of the system clock.
    pub fn offset(offset: std::sync::Arc<std::sync::atomic::AtomicI64>) -> Self {
        Clock(std::sync::Arc::new(move || {
            frontdesk_store::now_micros()
                + time::Duration::seconds(offset.load(std::sync::atomic::Ordering::SeqCst))
        }))
    }

    pub fn now(&self) -> time::OffsetDateTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}
