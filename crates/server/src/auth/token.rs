//! Access tokens: short-lived JWTs (RFC 7519 / RFC 9068 `at+jwt`) signed with HMAC-SHA256.
//!
//! The algorithm is pinned: a token whose header is anything but `HS256` / `at+jwt` with a
//! known key id is refused before its signature is even computed (RFC 8725 §3.1). The key
//! is derived from the master key, its version is the `kid`, so rotating the master key
//! rotates the signing key and older tokens keep verifying while their version is kept.
//! A valid signature is not enough: the session it names is checked on every use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use frontdesk_domain::{OrgId, SessionId, UserId};
use frontdesk_store::Vault;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PURPOSE: &str = "frontdesk.access-token.v1";
pub const ISSUER: &str = "frontdesk";
pub const AUDIENCE: &str = "frontdesk-api";
const TYP: &str = "at+jwt";
/// Tolerated clock difference for `iat`, in seconds.
const LEEWAY: i64 = 60;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The organisation the token acts in.
    pub org: Option<OrgId>,
    /// The session, checked for revocation on every use.
    pub sid: SessionId,
    /// The role name when issued (informational: permissions are read fresh per request).
    pub role: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Why a token is not accepted. Deliberately coarse towards clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token header not accepted")]
    Header,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not for this service")]
    Audience,
}

fn mac(key: &[u8], signing_input: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(signing_input);
    m
}

/// Signs `claims` with the key of the primary master version.
pub fn mint(vault: &Vault, claims: &AccessClaims) -> String {
    let (version, key) = vault.derive(PURPOSE);
    let header = Header {
        alg: "HS256".into(),
        typ: TYP.into(),
        kid: format!("v{version}"),
    };
    let h = B64.encode(serde_json::to_vec(&header).expect("header serialises"));
    let c = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let input = format!("{h}.{c}");
    let sig = B64.encode(mac(key.as_ref(), input.as_bytes()).finalize().into_bytes());
    format!("{input}.{sig}")
}

/// Verifies header, signature, issuer, audience and lifetime; `now` in Unix seconds.
pub fn verify(vault: &Vault, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
    if token.len() > 4096 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "HS256" || header.typ != TYP {
        return Err(TokenError::Header);
    }
    let version = header
        .kid
        .strip_prefix('v')
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or(TokenError::Header)?;
    let key = vault
        .derive_version(version, PURPOSE)
        .ok_or(TokenError::Header)?;
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let input = format!("{h}.{c}");
    mac(key.as_ref(), input.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| TokenError::Signature)?;
    let claims: AccessClaims = B64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(TokenError::Audience);
    }
    if claims.exp <= now || claims.iat > now + LEEWAY {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_store::MasterKeyring;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: UserId::new(),
            org: Some(OrgId::new()),
            sid: SessionId::new(),
            role: Some("admin".into()),
            iat: now,
            exp: now + 900,
            jti: "j1".into(),
        }
    }

    #[test]
    fn round_trips_and_expires() {
        let vault = Vault::new(MasterKeyring::generate());
        let c = claims(1_000);
        let t = mint(&vault, &c);
        assert_eq!(verify(&vault, &t, 1_001).unwrap(), c);
        assert_eq!(verify(&vault, &t, 1_900), Err(TokenError::Expired));
        assert_eq!(
            verify(&vault, &t, 1_000 - 61),
            Err(TokenError::Expired),
            "issued in the future"
        );
        let other = Vault::new(MasterKeyring::generate());
        assert_eq!(verify(&other, &t, 1_001), Err(TokenError::Signature));
    }

    #[test]
    fn refuses_alg_none_alg_switch_wrong_typ_and_tampering() {
        let vault = Vault::new(MasterKeyring::generate());
        let t = mint(&vault, &claims(1_000));
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let forge = |alg: &str, typ: &str, kid: &str| {
            B64.encode(format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{kid}"}}"#))
        };
        for (h, want) in [
            (forge("none", "at+jwt", "v1"), TokenError::Header),
            (forge("HS512", "at+jwt", "v1"), TokenError::Header),
            (forge("RS256", "at+jwt", "v1"), TokenError::Header),
            (forge("HS256", "JWT", "v1"), TokenError::Header),
            (forge("HS256", "at+jwt", "v9"), TokenError::Header),
        ] {
            let forged = format!("{h}.{}.{}", parts[1], parts[2]);
            assert_eq!(verify(&vault, &forged, 1_001), Err(want));
        }
        // alg=none with an empty signature
        assert_eq!(
            verify(
                &vault,
                &format!("{}.{}.", forge("none", "at+jwt", "v1"), parts[1]),
                1_001
            ),
            Err(TokenError::Header)
        );
        // changed claims, same signature
        let mut c = claims(1_000);
        c.org = None;
        parts[1] = B64.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(
            verify(&vault, &parts.join("."), 1_001),
            Err(TokenError::Signature)
        );
        assert_eq!(verify(&vault, "a.b", 1_001), Err(TokenError::Malformed));
        assert_eq!(verify(&vault, "a.b.c.d", 1_001), Err(TokenError::Malformed));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let vault = Vault::new(MasterKeyring::generate());
        let mut c = claims(1_000);
        c.aud = "someone-else".into();
        assert_eq!(
            verify(&vault, &mint(&vault, &c), 1_001),
            Err(TokenError::Audience)
        );
    }

    #[test]
    fn tokens_of_an_older_master_version_keep_verifying_after_rotation() {
        let ring = MasterKeyring::generate();
        let old = Vault::new(ring.clone());
        let t = mint(&old, &claims(1_000));
        let (rotated, _) = ring.with_new_version();
        let new = Vault::new(rotated);
        assert!(verify(&new, &t, 1_001).is_ok());
        assert!(
            mint(&new, &claims(1_000))
                .starts_with(&B64.encode(r#"{"alg":"HS256","typ":"at+jwt","kid":"v2"}"#))
        );
    }
}
