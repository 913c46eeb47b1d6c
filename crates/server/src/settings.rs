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
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            hsts: HstsPolicy::Never,
        }
    }
}
