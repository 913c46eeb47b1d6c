//! Passwords: argon2id hashes with their parameters in the PHC string; bcrypt hashes of
//! imported users are verified and replaced at the next sign-in. The policy is length and
//! a check against common passwords, with no composition rules (OWASP ASVS 2.1).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 12;
/// Longest accepted password, in characters (hashing is bounded, nothing is truncated).
pub const MAX_LEN: usize = 128;

/// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Why a new password is refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("a password needs at least {MIN_LEN} characters")]
    TooShort,
    #[error("a password may have at most {MAX_LEN} characters")]
    TooLong,
    #[error("this password is too common; choose one that others are unlikely to use")]
    Common,
    #[error("a password must not be your email address or name")]
    Personal,
}

/// Checks a new password against the policy. `personal` holds the user's email and name.
pub fn check_policy(password: &str, personal: &[&str]) -> Result<(), PasswordPolicyError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(PasswordPolicyError::TooShort);
    }
    if n > MAX_LEN {
        return Err(PasswordPolicyError::TooLong);
    }
    let lower = password.to_lowercase();
    for p in personal {
        let p = p.trim().to_lowercase();
        let local = p.split('@').next().unwrap_or_default();
        if !p.is_empty() && (lower == p || (local.len() >= 4 && lower.contains(local))) {
            return Err(PasswordPolicyError::Personal);
        }
    }
    if is_common(&lower) {
        return Err(PasswordPolicyError::Common);
    }
    Ok(())
}

/// The bundled list: passwords and base words seen most often in breach corpora.
const COMMON: &str = include_str!("common_passwords.txt");

fn common_list() -> impl Iterator<Item = &'static str> {
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Undoes the usual letter substitutions (p@ssw0rd → password).
fn unleet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '!' | '|' => 'i',
            '3' => 'e',
            '$' | '5' => 's',
            '7' => 't',
            _ => c,
        })
        .collect()
}

/// True for a listed password, a listed word dressed up with digits, symbols, repetition
/// or letter substitutions, one repeated character, or a run along the keyboard or alphabet.
fn is_common(lower: &str) -> bool {
    let chars: Vec<char> = lower.chars().collect();
    if chars.windows(2).all(|w| w[0] == w[1]) {
        return true;
    }
    // The letters alone, then the core without decoration at either end.
    let core = lower.trim_matches(|c: char| {
        c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()
    });
    let letters_only: String = unleet(lower)
        .chars()
        .filter(|c| c.is_alphabetic())
        .collect();
    let unleeted_core = unleet(core);
    const RUNS: [&str; 6] = [
        "abcdefghijklmnopqrstuvwxyz",
        "1234567890",
        "0987654321",
        "qwertyuiopasdfghjklzxcvbnm",
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
        "zaq12wsxcde34rfvbgt56yhnmju78ik,.lo90p;/-[",
    ];
    for candidate in [lower, core] {
        if candidate.chars().count() < 6 {
            continue;
        }
        for run in RUNS {
            let doubled = format!("{run}{run}");
            let rev: String = doubled.chars().rev().collect();
            if doubled.contains(candidate) || rev.contains(candidate) {
                return true;
            }
        }
    }
    for entry in common_list() {
        if lower == entry || core == entry || unleeted_core == entry || letters_only == entry {
            return true;
        }
        // The same word twice or more ("passwordpassword").
        if entry.len() >= 4
            && !letters_only.is_empty()
            && letters_only.len().is_multiple_of(entry.len())
            && letters_only
                .as_bytes()
                .chunks(entry.len())
                .all(|c| c == entry.as_bytes())
        {
            return true;
        }
    }
    false
}

/// A new argon2id hash of `password` (CPU-heavy: call from `spawn_blocking`).
pub fn hash(password: &SecretString) -> String {
    let mut salt = [0u8; 16];
    getrandom_fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    hasher()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters")
        .to_string()
}

fn getrandom_fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator works");
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but the stored hash is bcrypt or weaker argon2: store a fresh hash.
    YesRehash,
}

/// Checks `password` against a stored argon2 or bcrypt hash (CPU-heavy).
pub fn verify(password: &SecretString, stored: &str) -> Verified {
    let pw = password.expose_secret().as_bytes();
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        // bcrypt reads only 72 bytes: a longer password could match on its prefix alone.
        if pw.len() > 72 {
            return Verified::No;
        }
        return match bcrypt::verify(pw, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    if hasher().verify_password(pw, &parsed).is_err() {
        return Verified::No;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| p.m_cost() >= 19 * 1024 && p.t_cost() >= 2);
    if current {
        Verified::Yes
    } else {
        Verified::YesRehash
    }
}

/// A hash of a random password, verified against when the account does not exist, so an
/// unknown email costs as much time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut b = [0u8; 24];
        getrandom_fill(&mut b);
        hash(&SecretString::from(data_encoding::HEXLOWER.encode(&b)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn argon2id_hash_records_its_parameters_and_verifies() {
        let h = hash(&s("correct horse battery staple"));
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(
            verify(&s("correct horse battery staple"), &h),
            Verified::Yes
        );
        assert_eq!(verify(&s("correct horse battery stapl"), &h), Verified::No);
        assert_ne!(h, hash(&s("correct horse battery staple")), "salted");
        assert_eq!(verify(&s("x"), "not a hash"), Verified::No);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_an_upgrade() {
        let h = bcrypt::hash("imported secret pw", 4).unwrap();
        assert_eq!(verify(&s("imported secret pw"), &h), Verified::YesRehash);
        assert_eq!(verify(&s("imported secret px"), &h), Verified::No);
        // Two passwords sharing the first 72 bytes must not both work.
        let long_a = format!("{}A", "x".repeat(72));
        let hb = bcrypt::hash(&long_a[..72], 4).unwrap();
        assert_eq!(verify(&s(&long_a), &hb), Verified::No);
    }

    #[test]
    fn weaker_argon2_parameters_ask_for_an_upgrade() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let h = weak
            .hash_password(b"weakly hashed pw", &salt)
            .unwrap()
            .to_string();
        assert_eq!(verify(&s("weakly hashed pw"), &h), Verified::YesRehash);
    }

    #[test]
    fn policy_is_length_and_commonness_not_composition() {
        assert_eq!(
            check_policy("short pw", &[]),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_policy(&"y".repeat(129), &[]),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_policy("correct horse battery staple", &[]).is_ok());
        assert!(
            check_policy("lowercase only words here", &[]).is_ok(),
            "no composition rules"
        );
        for common in [
            "Password123!",
            "password1234",
            "P@ssw0rd2024!",
            "123456789012",
            "qwertyuiop123",
            "aaaaaaaaaaaa",
            "iloveyou1234",
            "passwordpassword",
            "1qaz2wsx3edc",
            "abcdefghijkl",
            "Welcome@2024",
            "letmein!!!!!",
            "zyxwvutsrqpo",
            "football2023",
        ] {
            assert_eq!(
                check_policy(common, &[]),
                Err(PasswordPolicyError::Common),
                "{common}"
            );
        }
        assert_eq!(
            check_policy(
                "asha.mehta@clinic.example",
                &["asha.mehta@clinic.example", "Asha Mehta"]
            ),
            Err(PasswordPolicyError::Personal)
        );
        assert_eq!(
            check_policy("hello asha.mehta 2026", &["asha.mehta@clinic.example"]),
            Err(PasswordPolicyError::Personal)
        );
    }

    #[test]
    fn dummy_hash_is_argon2id() {
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert_eq!(verify(&s("anything at all"), dummy_hash()), Verified::No);
    }
}
