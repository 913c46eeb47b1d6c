//! The built-in WhatsApp simulator: Frontdesk plays Meta for numbers it connected itself.
//!
//! - `graph`: a fake Graph API under `/simulator/graph/{version}/…` with Meta's paths, JSON
//!   and errors (sends, media, phone-number info, templates). It knows its caller by the
//!   Bearer access token, as Meta does.
//! - `webhooks`: Meta's webhook payloads, signed with the channel's app secret and POSTed
//!   over real HTTP to the channel's webhook URL, retried with backoff.
//! - `phone`: the customer "phone" pages where a person chats as a fake customer.
//! - `provision`: connecting a simulated number (API and page).
//!
//! The rules it applies (window, rate, template review) are in `docs/simulator.md`.

mod graph;
mod phone;
mod provision;
mod uploads;
pub use provision::connect as connect_simulated_number;
mod webhooks;

use crate::AppState;
use crate::routes::RouteTableBuilder;
use base64::Engine;
use std::time::Duration;

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    /// Serve the simulator's routes at all (off: they answer 404).
    pub enabled: bool,
    /// Where webhooks go: `<base>/webhooks/{key}`. `None`: the server's own base URL
    /// (tests point it at a capturing server).
    pub webhook_base_url: Option<url::Url>,
    /// The first wait before a webhook that was not answered 200 is posted again; each
    /// further wait doubles.
    pub retry_initial: Duration,
    /// Attempts per webhook before the simulator gives up on it.
    pub max_attempts: u32,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            webhook_base_url: None,
            retry_initial: Duration::from_secs(1),
            max_attempts: 8,
        }
    }
}

pub(crate) fn routes(b: RouteTableBuilder, enabled: bool) -> RouteTableBuilder {
    if !enabled {
        // Not registered at all: every simulator path falls through to the 404 fallback.
        return b;
    }
    let b = provision::routes(b);
    let b = graph::routes(b);
    phone::routes(b)
}

/// The clock in unix milliseconds (the simulator's tables keep time this way).
pub(crate) fn now_ms(state: &AppState) -> i64 {
    (state.now().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn now_us(state: &AppState) -> i64 {
    (state.now().unix_timestamp_nanos() / 1_000) as i64
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    b
}

/// `n` random decimal digits, the first not zero (Meta's numeric ids).
pub(crate) fn random_digits(n: usize) -> String {
    let bytes = random_bytes::<32>();
    let mut s = String::with_capacity(n);
    for (i, b) in bytes.iter().cycle().take(n).enumerate() {
        let d = if i == 0 { 1 + b % 9 } else { b % 10 };
        s.push(char::from(b'0' + d));
    }
    s
}

/// A WhatsApp message id in Meta's style.
pub(crate) fn new_wamid() -> String {
    format!(
        "wamid.HBgL{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>())
    )
}

/// A URL-safe random secret of `bytes` bytes.
pub(crate) fn random_secret(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Base64 SHA-256, as Meta reports a file's hash.
pub(crate) fn sha256_b64(bytes: &[u8]) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// The digits of a display number (`+1 555 0134 5678` → `155501345678`).
pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_look_like_metas() {
        let d = random_digits(15);
        assert_eq!(d.len(), 15);
        assert!(d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'));
        assert_ne!(random_digits(15), d);
        let w = new_wamid();
        assert!(w.starts_with("wamid.") && w.len() > 30);
        assert_eq!(digits("+1 555 0134 5678"), "155501345678");
        // SHA-256("abc"), base64
        assert_eq!(
            sha256_b64(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
