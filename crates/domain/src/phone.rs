//! How WhatsApp knows a customer: a phone number (E.164), a business-scoped user id
//! (BSUID), or both.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A phone number in E.164: `+` and 8 to 15 digits, the first not 0.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "+919876543210")]
pub struct E164(String);

/// Not a phone number we can address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a phone number in international format (e.g. +919876543210)")]
pub struct E164Error;

impl E164 {
    /// Accepts `+91 98765-43210`, `0091 98765 43210`, `(+44) 20 7946 0958` or WhatsApp's bare
    /// digits (`919876543210`): spaces, dashes, dots and brackets are dropped, a leading `00`
    /// counts as `+`. Numbers without a country code are refused (no guessing).
    pub fn parse(s: &str) -> Result<Self, E164Error> {
        let t = s.trim();
        if t.is_empty() || t.len() > 32 {
            return Err(E164Error);
        }
        let mut digits = String::with_capacity(16);
        for c in t.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '+' | '\u{a0}' => {}
                _ => return Err(E164Error),
            }
        }
        let plus_count = t.matches('+').count();
        if plus_count > 1 || (plus_count == 1 && !t.trim_start_matches('(').starts_with('+')) {
            return Err(E164Error);
        }
        let digits = digits
            .strip_prefix("00")
            .map(str::to_owned)
            .unwrap_or(digits);
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(E164Error);
        }
        Ok(Self(format!("+{digits}")))
    }

    /// `+919876543210`
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `919876543210`: what WhatsApp calls `wa_id` and takes as `to`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The number with all but the country code's first digits and the last three hidden,
    /// e.g. `+91 98•••••210`, for people who may not see full numbers.
    pub fn masked(&self) -> String {
        let d = self.digits();
        let cc_len = if d.starts_with('1') || d.starts_with('7') {
            1
        } else {
            2
        };
        let (cc, rest) = d.split_at(cc_len.min(d.len()));
        let keep_head = 2.min(rest.len());
        let keep_tail = 3.min(rest.len().saturating_sub(keep_head));
        let hidden = rest.len() - keep_head - keep_tail;
        format!(
            "+{cc} {}{}{}",
            &rest[..keep_head],
            "•".repeat(hidden),
            &rest[rest.len() - keep_tail..]
        )
    }
}

impl TryFrom<String> for E164 {
    type Error = E164Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        E164::parse(&s)
    }
}

impl From<E164> for String {
    fn from(p: E164) -> String {
        p.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A business-scoped user id: WhatsApp's id for a customer as seen by one business
/// (`US.13491208655302741918`): a country prefix, a dot, digits.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "US.13491208655302741918")]
pub struct Bsuid(String);

/// Not a business-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a business-scoped user id")]
pub struct BsuidError;

impl Bsuid {
    pub fn parse(s: &str) -> Result<Self, BsuidError> {
        let s = s.trim();
        let (prefix, rest) = s.split_once('.').ok_or(BsuidError)?;
        let ok = (2..=3).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && (5..=40).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BsuidError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Bsuid {
    type Error = BsuidError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Bsuid::parse(&s)
    }
}

impl From<Bsuid> for String {
    fn from(b: Bsuid) -> String {
        b.0
    }
}

impl fmt::Display for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        for (input, want) in [
            ("+91 98765-43210", "+919876543210"),
            ("0091 98765 43210", "+919876543210"),
            ("919876543210", "+919876543210"),
            ("(+44) 20 7946 0958", "+442079460958"),
            ("+1 (415) 555-0100", "+14155550100"),
        ] {
            assert_eq!(E164::parse(input).unwrap().as_str(), want, "{input}");
        }
        for bad in [
            "",
            "12345",
            "+0123456789",
            "98765 4321x",
            "+91+9876543210",
            "91+9876543210",
            "+1234567890123456",
            "tel:+919876543210",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            E164::parse("+919876543210").unwrap().digits(),
            "919876543210"
        );
    }

    #[test]
    fn masking_keeps_country_code_and_last_three() {
        assert_eq!(
            E164::parse("+919876543210").unwrap().masked(),
            "+91 98•••••210"
        );
        assert_eq!(
            E164::parse("+14155550100").unwrap().masked(),
            "+1 41•••••100"
        );
        let m = E164::parse("+442079460958").unwrap().masked();
        assert!(
            m.starts_with("+44 20") && m.ends_with("958") && !m.contains("7946"),
            "{m}"
        );
    }

    #[test]
    fn bsuids_parse() {
        assert!(Bsuid::parse("US.13491208655302741918").is_ok());
        for bad in [
            "13491208655302741918",
            "us.1234567",
            "US.",
            "US.12-34",
            "USAX.123456",
        ] {
            assert!(Bsuid::parse(bad).is_err(), "{bad}");
        }
    }
}
