//! What the Graph API's errors mean for us: retry, wait, switch to a template, or give up.
//! Branch on the numeric code, never on the title.

use serde_json::Value;
use std::time::Duration;

/// An error answer of the Graph API: `{"error": {message, type, code, error_subcode,
/// error_data: {details}, fbtrace_id}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphError {
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub details: Option<String>,
}

impl GraphError {
    /// Reads the error of a non-2xx answer; `None` if the body is not a Graph error.
    pub fn from_body(body: &Value) -> Option<Self> {
        let e = body.get("error")?;
        Some(Self {
            code: e.get("code")?.as_i64()?,
            subcode: e.get("error_subcode").and_then(Value::as_i64),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            details: e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// What to do about a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again after a while (with backoff and jitter).
    Retry,
    /// Slow down: too fast for the number (back off longer).
    Throttled,
    /// This recipient got too many messages too fast: retry this one later, others go on.
    PairRateLimited,
    /// Outside the 24-hour window: never retry; a template is needed.
    OutsideWindow,
    /// The token is expired or wrong: stop the channel and tell its admins.
    Unauthorized,
    /// Will not work however often tried (bad input, undeliverable, template problems).
    Permanent,
    /// The account or number may not send at all now (locked, blocked, payment): stop and alert.
    AccountBlocked,
}

impl ErrorClass {
    /// Retry at all?
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Retry | ErrorClass::Throttled | ErrorClass::PairRateLimited
        )
    }

    /// The least wait before the next attempt.
    pub fn min_delay(self) -> Duration {
        match self {
            ErrorClass::Retry => Duration::from_secs(2),
            ErrorClass::Throttled => Duration::from_secs(5),
            ErrorClass::PairRateLimited => Duration::from_secs(6),
            _ => Duration::ZERO,
        }
    }
}

/// Classifies a WhatsApp error code (sync or async). `http_status` is for answers that
/// carry no code (5xx, timeouts are classified by the caller as `Retry`).
pub fn classify(code: i64) -> ErrorClass {
    match code {
        130429 | 4 | 80007 => ErrorClass::Throttled,
        131056 => ErrorClass::PairRateLimited,
        131047 => ErrorClass::OutsideWindow,
        190 => ErrorClass::Unauthorized,
        131000 | 1 | 2 | 131016 | 131052 | 131053 => ErrorClass::Retry,
        131031 | 131042 | 368 | 131048 | 133010 => ErrorClass::AccountBlocked,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_map_to_reactions() {
        assert_eq!(classify(130429), ErrorClass::Throttled);
        assert_eq!(classify(131056), ErrorClass::PairRateLimited);
        assert_eq!(classify(131047), ErrorClass::OutsideWindow);
        assert!(!classify(131047).retryable());
        assert_eq!(classify(131026), ErrorClass::Permanent);
        assert_eq!(classify(132001), ErrorClass::Permanent);
        assert_eq!(classify(190), ErrorClass::Unauthorized);
        assert_eq!(classify(131000), ErrorClass::Retry);
        assert_eq!(classify(131031), ErrorClass::AccountBlocked);
        assert_eq!(
            classify(131049),
            ErrorClass::Permanent,
            "never retried at once"
        );
    }

    #[test]
    fn reads_graph_error_bodies() {
        let e = GraphError::from_body(&json!({ "error": { "message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047, "error_data": { "messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." }, "fbtrace_id": "x" } })).unwrap();
        assert_eq!(e.code, 131047);
        assert!(e.details.unwrap().contains("24 hours"));
        assert_eq!(GraphError::from_body(&json!({ "ok": true })), None);
    }
}
