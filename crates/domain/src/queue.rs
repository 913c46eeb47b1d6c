//! Clinic queue rules: keywords, token states, opening hours and the texts patients get.
//! Pure: the store turns instants into the organisation's local time before asking.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::{Date, Duration, Time, Weekday};

/// Longest join keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 40;

/// A join keyword as matched: trimmed, inner whitespace collapsed to one space, upper case.
/// `"  dr   mehta "` and `"DR MEHTA"` are the same keyword. Letters (any script), digits,
/// spaces and `-` only, 1–40 characters; anything else is `None`.
pub fn normalize_keyword(s: &str) -> Option<String> {
    let k = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let k: String = k.chars().flat_map(char::to_uppercase).collect();
    let n = k.chars().count();
    let ok = (1..=MAX_KEYWORD_CHARS).contains(&n)
        && k.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-');
    ok.then_some(k)
}

/// What a patient's message asks for, once normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientCommand {
    Status,
    Cancel,
    /// Anything else: a join keyword if a queue has it.
    Keyword(String),
}

impl PatientCommand {
    pub fn parse(text: &str) -> Option<Self> {
        let k = normalize_keyword(text)?;
        Some(match k.as_str() {
            "STATUS" => PatientCommand::Status,
            "CANCEL" => PatientCommand::Cancel,
            _ => PatientCommand::Keyword(k),
        })
    }
}

/// Words patients use for themselves; no queue may take them as a join keyword.
pub const RESERVED_KEYWORDS: &[&str] = &["STATUS", "CANCEL"];

/// Where a token stands. `waiting → called → serving → complete`; a called patient who
/// does not come is `no_show`; `skipped` goes back to waiting on recall. A token still
/// live when its local day is over is `expired` by the worker (no staff action leads there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Waiting,
    Called,
    Serving,
    Complete,
    NoShow,
    Cancelled,
    Skipped,
    Expired,
}

impl TokenState {
    pub const ALL: [TokenState; 8] = [
        TokenState::Waiting,
        TokenState::Called,
        TokenState::Serving,
        TokenState::Complete,
        TokenState::NoShow,
        TokenState::Cancelled,
        TokenState::Skipped,
        TokenState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Waiting => "waiting",
            TokenState::Called => "called",
            TokenState::Serving => "serving",
            TokenState::Complete => "complete",
            TokenState::NoShow => "no_show",
            TokenState::Cancelled => "cancelled",
            TokenState::Skipped => "skipped",
            TokenState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// A live token holds the patient's place: they cannot take another in the same queue.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TokenState::Waiting | TokenState::Called | TokenState::Serving
        )
    }

    /// Whether a staff action may move a token from `self` to `to`.
    pub fn can_become(self, to: TokenState) -> bool {
        use TokenState::*;
        matches!(
            (self, to),
            (Waiting, Called)
                | (Waiting, Cancelled)
                | (Waiting, Skipped)
                | (Called, Serving)
                | (Called, Complete)
                | (Called, NoShow)
                | (Called, Skipped)
                | (Called, Cancelled)
                | (Serving, Complete)
                | (Serving, Cancelled)
                // recall: a called or skipped patient is called again
                | (Called, Called)
                | (Skipped, Called)
                | (NoShow, Called)
        )
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The label of a token: prefix, dash, number padded to three digits (`A-007`, `A-1234`).
pub fn token_label(prefix: &str, number: i64) -> String {
    format!("{prefix}-{number:03}")
}

/// A token prefix: 1–4 ASCII capital letters.
pub fn valid_prefix(p: &str) -> bool {
    (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_uppercase())
}

/// One opening span in local time, `"09:00"`–`"13:00"`; `close` after `open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub open: String,
    pub close: String,
}

/// Opening spans per weekday; a day without spans is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(default)]
    pub mon: Vec<Span>,
    #[serde(default)]
    pub tue: Vec<Span>,
    #[serde(default)]
    pub wed: Vec<Span>,
    #[serde(default)]
    pub thu: Vec<Span>,
    #[serde(default)]
    pub fri: Vec<Span>,
    #[serde(default)]
    pub sat: Vec<Span>,
    #[serde(default)]
    pub sun: Vec<Span>,
}

fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    // 24:00 closes at midnight
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

impl WeeklyHours {
    pub fn day(&self, d: Weekday) -> &[Span] {
        match d {
            Weekday::Monday => &self.mon,
            Weekday::Tuesday => &self.tue,
            Weekday::Wednesday => &self.wed,
            Weekday::Thursday => &self.thu,
            Weekday::Friday => &self.fri,
            Weekday::Saturday => &self.sat,
            Weekday::Sunday => &self.sun,
        }
    }

    /// Checks every span; the message names the day and the span.
    pub fn validate(&self) -> Result<(), String> {
        for d in [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ] {
            let spans = self.day(d);
            if spans.len() > 6 {
                return Err(format!("{d}: at most 6 opening spans"));
            }
            for s in spans {
                match (hhmm(&s.open), hhmm(&s.close)) {
                    (Some(o), Some(c)) if o < c => {}
                    _ => {
                        return Err(format!(
                            "{d}: span {}–{} must be HH:MM–HH:MM with close after open",
                            s.open, s.close
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn minutes(&self, d: Weekday) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.day(d)
            .iter()
            .filter_map(|s| Some((hhmm(&s.open)?, hhmm(&s.close)?)))
    }
}

/// Whether a queue takes patients at a local date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Openness {
    Open,
    /// Closed; opens next at this local date and time (none within two weeks: `None`).
    Closed {
        opens: Option<(Date, Time)>,
    },
}

/// Opening state at `date`/`at` (local). No hours at all means always open; holidays are
/// closed all day.
pub fn openness(hours: Option<&WeeklyHours>, holidays: &[Date], date: Date, at: Time) -> Openness {
    let Some(hours) = hours else {
        return Openness::Open;
    };
    let now = u16::from(at.hour()) * 60 + u16::from(at.minute());
    if !holidays.contains(&date)
        && hours
            .minutes(date.weekday())
            .any(|(o, c)| o <= now && now < c)
    {
        return Openness::Open;
    }
    for ahead in 0..15 {
        let d = date + Duration::days(ahead);
        if holidays.contains(&d) {
            continue;
        }
        let next = hours
            .minutes(d.weekday())
            .map(|(o, _)| o)
            .filter(|o| ahead > 0 || *o > now)
            .min();
        if let Some(o) = next
            && let Ok(t) = Time::from_hms((o / 60) as u8, (o % 60) as u8, 0)
        {
            return Openness::Closed {
                opens: Some((d, t)),
            };
        }
    }
    Openness::Closed { opens: None }
}

/// The messages a queue sends patients.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueueText {
    Joined,
    PositionUpdate,
    YouAreNext,
    ComeIn,
    Paused,
    Closed,
    CapReached,
    AlreadyInQueue,
    Cancelled,
    Status,
    NotInQueue,
}

impl QueueText {
    pub const ALL: [QueueText; 11] = [
        QueueText::Joined,
        QueueText::PositionUpdate,
        QueueText::YouAreNext,
        QueueText::ComeIn,
        QueueText::Paused,
        QueueText::Closed,
        QueueText::CapReached,
        QueueText::AlreadyInQueue,
        QueueText::Cancelled,
        QueueText::Status,
        QueueText::NotInQueue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueText::Joined => "joined",
            QueueText::PositionUpdate => "position_update",
            QueueText::YouAreNext => "you_are_next",
            QueueText::ComeIn => "come_in",
            QueueText::Paused => "paused",
            QueueText::Closed => "closed",
            QueueText::CapReached => "cap_reached",
            QueueText::AlreadyInQueue => "already_in_queue",
            QueueText::Cancelled => "cancelled",
            QueueText::Status => "status",
            QueueText::NotInQueue => "not_in_queue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The English text used when the organisation has not written its own. Placeholders:
    /// `{queue}`, `{token}`, `{position}`, `{wait}` (minutes), `{opens}`, `{message}`.
    pub fn default_text(self) -> &'static str {
        match self {
            QueueText::Joined => {
                "You joined {queue}. Your token is {token}. You are number {position} in the queue; estimated wait {wait} min. Reply STATUS for your position or CANCEL to leave."
            }
            QueueText::PositionUpdate => {
                "{queue}: token {token}, you are now number {position}; estimated wait {wait} min."
            }
            QueueText::YouAreNext => "{queue}: token {token}, you are next. Please be ready.",
            QueueText::ComeIn => "{queue}: token {token}, please come in now.",
            QueueText::Paused => "{queue} is paused: {message}",
            QueueText::Closed => "{queue} is closed now. It opens {opens}.",
            QueueText::CapReached => "{queue} is full for today. Please try again tomorrow.",
            QueueText::AlreadyInQueue => {
                "You are already in {queue} with token {token}, number {position}; estimated wait {wait} min."
            }
            QueueText::Cancelled => {
                "Token {token} for {queue} is cancelled. You have left the queue."
            }
            QueueText::Status => {
                "{queue}: token {token}, you are number {position}; estimated wait {wait} min."
            }
            QueueText::NotInQueue => "You are not in a queue. Send the queue's keyword to join.",
        }
    }

    /// The template parameters, in order, when this text goes out as an approved template
    /// (outside the 24-hour window): `{{1}}` is the first name listed.
    pub fn template_params(self) -> &'static [&'static str] {
        match self {
            QueueText::Joined
            | QueueText::PositionUpdate
            | QueueText::Status
            | QueueText::AlreadyInQueue => &["token", "position", "wait"],
            QueueText::YouAreNext | QueueText::ComeIn | QueueText::Cancelled => &["token"],
            QueueText::Paused => &["message"],
            QueueText::Closed => &["opens"],
            QueueText::CapReached | QueueText::NotInQueue => &[],
        }
    }
}

/// Texts an organisation wrote, per language code then per message.
pub type QueueTexts = BTreeMap<String, BTreeMap<QueueText, String>>;

/// The text for `key` in `lang`: the queue's own in that language (or its base language,
/// `pt` for `pt_BR`), else its English one, else the default.
pub fn text_for<'a>(texts: &'a QueueTexts, lang: &str, key: QueueText) -> &'a str {
    let base = lang.split(['_', '-']).next().unwrap_or(lang);
    texts
        .get(lang)
        .and_then(|m| m.get(&key))
        .or_else(|| texts.get(base).and_then(|m| m.get(&key)))
        .or_else(|| texts.get("en").and_then(|m| m.get(&key)))
        .map(String::as_str)
        .unwrap_or(key.default_text())
}

/// Replaces `{name}` placeholders with their values; unknown ones stay as written.
pub fn render(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Minutes to wait: the average consultation (seconds) times the patients ahead, rounded up.
pub fn estimated_wait_minutes(avg_consult_secs: i64, ahead: i64) -> i64 {
    let secs = avg_consult_secs.max(0) * ahead.max(0);
    (secs + 59) / 60
}

/// Whether a patient gets a position update: they moved at least `step` places since the
/// last one they were told (and are not next, which has its own message).
pub fn position_update_due(last_told: Option<i64>, now: i64, step: i64) -> bool {
    match last_told {
        None => false,
        Some(last) => now > 1 && step > 0 && last - now >= step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, time};

    #[test]
    fn keywords_ignore_case_and_spacing() {
        assert_eq!(normalize_keyword("  dr   mehta "), Some("DR MEHTA".into()));
        assert_eq!(normalize_keyword("Join"), Some("JOIN".into()));
        assert_eq!(normalize_keyword(""), None);
        assert_eq!(normalize_keyword("join!"), None);
        assert_eq!(normalize_keyword(&"a".repeat(41)), None);
        assert_eq!(
            PatientCommand::parse(" status"),
            Some(PatientCommand::Status)
        );
        assert_eq!(
            PatientCommand::parse("Cancel "),
            Some(PatientCommand::Cancel)
        );
        assert_eq!(
            PatientCommand::parse("dr mehta"),
            Some(PatientCommand::Keyword("DR MEHTA".into()))
        );
    }

    #[test]
    fn states_round_trip_and_only_live_ones_hold_a_place() {
        for s in TokenState::ALL {
            assert_eq!(TokenState::parse(s.as_str()), Some(s));
        }
        assert!(TokenState::Waiting.is_live() && TokenState::Serving.is_live());
        assert!(!TokenState::Complete.is_live() && !TokenState::Cancelled.is_live());
        assert!(TokenState::Waiting.can_become(TokenState::Called));
        assert!(!TokenState::Complete.can_become(TokenState::Called));
        assert!(!TokenState::Cancelled.can_become(TokenState::Waiting));
        assert!(!TokenState::Expired.is_live());
        assert!(
            TokenState::ALL
                .iter()
                .all(|s| !s.can_become(TokenState::Expired) && !TokenState::Expired.can_become(*s)),
            "only the day's end expires a token, and nothing brings it back"
        );
    }

    #[test]
    fn labels_are_padded() {
        assert_eq!(token_label("A", 7), "A-007");
        assert_eq!(token_label("DR", 1234), "DR-1234");
        assert!(valid_prefix("A") && !valid_prefix("a") && !valid_prefix("ABCDE"));
    }

    fn weekdays_9_to_13() -> WeeklyHours {
        let s = || {
            vec![Span {
                open: "09:00".into(),
                close: "13:00".into(),
            }]
        };
        WeeklyHours {
            mon: s(),
            tue: s(),
            wed: s(),
            thu: s(),
            fri: s(),
            ..Default::default()
        }
    }

    #[test]
    fn hours_answer_open_or_the_next_opening() {
        let h = weekdays_9_to_13();
        h.validate().unwrap();
        // 2026-11-23 is a Monday.
        assert_eq!(
            openness(Some(&h), &[], date!(2026 - 11 - 23), time!(10:00)),
            Openness::Open
        );
        assert_eq!(
            openness(Some(&h), &[], date!(2026 - 11 - 23), time!(8:30)),
            Openness::Closed {
                opens: Some((date!(2026 - 11 - 23), time!(9:00)))
            }
        );
        // Friday afternoon: opens Monday.
        assert_eq!(
            openness(Some(&h), &[], date!(2026 - 11 - 27), time!(13:00)),
            Openness::Closed {
                opens: Some((date!(2026 - 11 - 30), time!(9:00)))
            }
        );
        // A holiday on Monday: opens Tuesday.
        assert_eq!(
            openness(
                Some(&h),
                &[date!(2026 - 11 - 23)],
                date!(2026 - 11 - 23),
                time!(10:00)
            ),
            Openness::Closed {
                opens: Some((date!(2026 - 11 - 24), time!(9:00)))
            }
        );
        assert_eq!(
            openness(None, &[], date!(2026 - 11 - 22), time!(3:00)),
            Openness::Open
        );
        let bad = WeeklyHours {
            sat: vec![Span {
                open: "14:00".into(),
                close: "09:00".into(),
            }],
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("Saturday"));
    }

    #[test]
    fn texts_fall_back_to_english_then_default_and_render() {
        let mut texts = QueueTexts::new();
        texts
            .entry("hi".into())
            .or_default()
            .insert(QueueText::ComeIn, "{token} अंदर आइए".into());
        texts
            .entry("en".into())
            .or_default()
            .insert(QueueText::YouAreNext, "Next: {token}".into());
        assert_eq!(text_for(&texts, "hi", QueueText::ComeIn), "{token} अंदर आइए");
        assert_eq!(
            text_for(&texts, "hi_IN", QueueText::ComeIn),
            "{token} अंदर आइए"
        );
        assert_eq!(
            text_for(&texts, "hi", QueueText::YouAreNext),
            "Next: {token}"
        );
        assert_eq!(
            text_for(&texts, "fr", QueueText::CapReached),
            QueueText::CapReached.default_text()
        );
        assert_eq!(
            render(
                "{token} at {position}, {x}",
                &[("token", "A-001"), ("position", "3")]
            ),
            "A-001 at 3, {x}"
        );
    }

    #[test]
    fn waits_and_updates() {
        assert_eq!(estimated_wait_minutes(300, 3), 15);
        assert_eq!(estimated_wait_minutes(61, 1), 2);
        assert_eq!(estimated_wait_minutes(300, 0), 0);
        assert!(position_update_due(Some(8), 5, 3));
        assert!(!position_update_due(Some(8), 6, 3));
        assert!(
            !position_update_due(Some(3), 1, 1),
            "next has its own message"
        );
        assert!(!position_update_due(None, 5, 1));
    }
}
