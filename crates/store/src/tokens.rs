//! Opaque bearer tokens (session cookies, refresh tokens, one-time links, API keys,
//! invitations): 256 random bits behind a short kind prefix. Only a SHA-256 of a token is
//! stored, so a database leak hands out no usable token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// A fresh token `<prefix>_<43 characters>` and its hash.
pub(crate) fn new_token(prefix: &str) -> (SecretString, [u8; 32]) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    let token = format!("{prefix}_{}", B64URL.encode(bytes));
    let hash = token_hash(&token);
    (SecretString::from(token), hash)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A short random string for non-secret uses (CSRF tokens are compared, not looked up).
pub(crate) fn random_urlsafe(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    B64URL.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let (a, ha) = new_token("fds");
        let (b, hb) = new_token("fds");
        assert!(a.expose_secret().starts_with("fds_"));
        assert_eq!(a.expose_secret().len(), 4 + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(ha, hb);
        assert_eq!(token_hash(a.expose_secret()), ha);
    }
}
