//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as
//! authenticator apps produce them.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Codes from one step before and after are accepted too (clock drift).
const SKEW_STEPS: i64 = 1;

/// A new random 160-bit secret.
pub fn new_secret() -> zeroize::Zeroizing<Vec<u8>> {
    let mut s = zeroize::Zeroizing::new(vec![0u8; 20]);
    getrandom(&mut s);
    s
}

fn getrandom(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator works");
}

/// The secret as authenticator apps take it: base32 without padding.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI a QR code carries.
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    let label = format!("Frontdesk:{account}");
    let mut url = url::Url::parse("otpauth://totp/").expect("static URL");
    url.set_path(&label);
    url.query_pairs_mut()
        .append_pair("secret", &secret_base32(secret))
        .append_pair("issuer", "Frontdesk")
        .append_pair("algorithm", "SHA1")
        .append_pair("digits", "6")
        .append_pair("period", "30");
    url.to_string()
}

/// The code for one time step.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin =
        u32::from_be_bytes(digest[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The step a Unix time falls in.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The step whose code matches, within the allowed skew (constant-time per comparison).
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut found = None;
    for step in now - SKEW_STEPS..=now + SKEW_STEPS {
        let expected = code_at_step(secret, step);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            code.as_bytes(),
        )) && found.is_none()
        {
            found = Some(step);
        }
    }
    found
}

/// The enrolment QR code as an inline SVG element (no script, no style: fine under CSP).
pub fn qr_svg(uri: &str) -> String {
    qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit values; the low 6 digits are the 6-digit code).
    #[test]
    fn rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at_step(secret, step_of(t)), eight[2..], "t={t}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_and_nothing_else() {
        let secret = b"12345678901234567890";
        let t = 1_700_000_000;
        let now = step_of(t);
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now), t),
            Some(now)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now - 1), t),
            Some(now - 1)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now + 1), t),
            Some(now + 1)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now - 2), t),
            None
        );
        assert_eq!(matching_step(secret, "12345", t), None);
        assert_eq!(matching_step(secret, "abcdef", t), None);
    }

    #[test]
    fn uri_and_qr_carry_the_secret() {
        let uri = otpauth_uri(b"12345678901234567890", "asha@clinic.example");
        assert!(uri.starts_with("otpauth://totp/Frontdesk:asha@clinic.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Frontdesk"), "{uri}");
        let svg = qr_svg(&uri);
        assert!(svg.contains("<svg") && !svg.contains("<script"));
    }
}
