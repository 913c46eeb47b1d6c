//! Campaign rules without I/O: the states and the moves between them, the daily
//! unique-recipient cap of a messaging-limit tier, the template language a recipient gets,
//! and the variable mapping that fills a template from a contact's values.

use crate::template::{FillInput, LocationFill, MAX_LOCATION_TEXT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

/// What a person asks of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    Launch,
    Schedule,
    Pause,
    Resume,
    Cancel,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            CampaignStatus::Draft,
            CampaignStatus::Scheduled,
            CampaignStatus::Running,
            CampaignStatus::Paused,
            CampaignStatus::Completed,
            CampaignStatus::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The state an action leads to from this one, or `None` when it is not allowed:
    /// draft → scheduled | running; scheduled → running (launch now) | paused | cancelled;
    /// running ⇄ paused (a campaign paused before its time resumes as scheduled); running,
    /// paused, scheduled → cancelled. Completed and cancelled are final.
    pub fn after(self, action: CampaignAction) -> Option<CampaignStatus> {
        use CampaignAction as A;
        use CampaignStatus as S;
        match (self, action) {
            (S::Draft, A::Launch) | (S::Scheduled, A::Launch) => Some(S::Running),
            (S::Draft, A::Schedule) | (S::Scheduled, A::Schedule) => Some(S::Scheduled),
            (S::Scheduled | S::Running, A::Pause) => Some(S::Paused),
            (S::Paused, A::Resume) => Some(S::Running),
            (S::Scheduled | S::Running | S::Paused, A::Cancel) => Some(S::Cancelled),
            _ => None,
        }
    }

    /// Whether nothing can happen to the campaign any more.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }
}

/// Unique recipients outside a service window a number may reach in a moving 24 hours at
/// its messaging-limit tier (`None`: unlimited). An unknown or unset tier is held to the
/// starting tier (250), so a number whose tier was never read is not pushed over it.
pub fn daily_limit(tier: Option<&str>) -> Option<i64> {
    match tier.map(|t| t.trim().to_ascii_uppercase()).as_deref() {
        Some("TIER_UNLIMITED") | Some("UNLIMITED") => None,
        Some("TIER_100K") => Some(100_000),
        Some("TIER_10K") => Some(10_000),
        Some("TIER_2K") => Some(2_000),
        Some("TIER_1K") => Some(1_000),
        Some("TIER_50") => Some(50),
        _ => Some(250),
    }
}

/// The language a recipient's template goes out in: the contact's language when the
/// template is approved in it, else its base language (`pt` for `pt_BR`), else another
/// approved language of that base (`en_US` for `en`), else the campaign's default.
pub fn pick_language(contact: Option<&str>, approved: &[String], default: &str) -> String {
    let Some(lang) = contact.filter(|l| !l.is_empty()) else {
        return default.to_owned();
    };
    if approved.iter().any(|a| a == lang) {
        return lang.to_owned();
    }
    let base = lang.split('_').next().unwrap_or(lang);
    if approved.iter().any(|a| a == base) {
        return base.to_owned();
    }
    if let Some(a) = approved.iter().find(|a| a.split('_').next() == Some(base)) {
        return a.clone();
    }
    default.to_owned()
}

/// Where one template value comes from: a contact value, with a fallback when the contact
/// has none. `source` is `name`, `first_name`, `profile_name`, `email`, `company`,
/// `language`, `field:<key>`, `column:<name>` (that column of the recipient's row in the
/// campaign's CSV file), or `text` (the fallback itself, the same for everyone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueSource {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// How a campaign fills its template: the header's variable (or, for a location header,
/// the place, the same for every recipient), the body's values in order, and button endings
/// by button index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<ValueSource>,
    /// The place a location header shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationFill>,
    #[serde(default)]
    pub body: Vec<ValueSource>,
    #[serde(default)]
    pub buttons: BTreeMap<usize, ValueSource>,
}

/// Values of at most this many characters (WhatsApp's parameter limit is larger; a
/// fallback this long is a mistake).
const MAX_FALLBACK: usize = 200;
/// Body values a mapping may name.
const MAX_BODY_VALUES: usize = 20;
/// Characters of a CSV column name a `column:` source may name.
const MAX_COLUMN_NAME: usize = 100;

/// The contact values a mapping reads.
#[derive(Debug, Clone, Default)]
pub struct ContactValues {
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub language: Option<String>,
    /// Custom field values by key, as text.
    pub fields: BTreeMap<String, String>,
    /// The recipient's row of the campaign's CSV file, by column name.
    pub columns: BTreeMap<String, String>,
}

impl ValueSource {
    fn check(&self, at: &str, problems: &mut Vec<String>) {
        let known = matches!(
            self.source.as_str(),
            "name" | "first_name" | "profile_name" | "email" | "company" | "language" | "text"
        ) || self.source.strip_prefix("field:").is_some_and(|k| {
            !k.is_empty()
                && k.len() <= 40
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }) || self.source.strip_prefix("column:").is_some_and(|k| {
            !k.trim().is_empty()
                && k.chars().count() <= MAX_COLUMN_NAME
                && !k.chars().any(char::is_control)
        });
        if !known {
            problems.push(format!(
                "{at}: the source is name, first_name, profile_name, email, company, language, field:<key>, column:<CSV column> or text"
            ));
        }
        match &self.fallback {
            Some(f) if f.chars().count() > MAX_FALLBACK => problems.push(format!(
                "{at}: a fallback is at most {MAX_FALLBACK} characters"
            )),
            None if self.source == "text" => {
                problems.push(format!("{at}: a text value needs its text as the fallback"))
            }
            _ => {}
        }
    }

    /// The value for one contact: its own, else the fallback; `None` when neither.
    pub fn resolve(&self, c: &ContactValues) -> Option<String> {
        let own = match self.source.as_str() {
            "name" => c.name.clone().or_else(|| c.profile_name.clone()),
            "first_name" => c
                .name
                .as_deref()
                .or(c.profile_name.as_deref())
                .and_then(|n| n.split_whitespace().next())
                .map(str::to_owned),
            "profile_name" => c.profile_name.clone(),
            "email" => c.email.clone(),
            "company" => c.company.clone(),
            "language" => c.language.clone(),
            "text" => None,
            s => match (s.strip_prefix("field:"), s.strip_prefix("column:")) {
                (Some(k), _) => c.fields.get(k).cloned(),
                (_, Some(k)) => c.columns.get(k).cloned(),
                _ => None,
            },
        };
        own.filter(|v| !v.trim().is_empty())
            .or_else(|| self.fallback.clone().filter(|v| !v.trim().is_empty()))
    }
}

impl Mapping {
    /// Refuses sources not known, fallbacks too long and too many values, every problem
    /// at once.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.body.len() > MAX_BODY_VALUES {
            problems.push(format!("body: at most {MAX_BODY_VALUES} values"));
        }
        if let Some(h) = &self.header {
            h.check("header", &mut problems);
        }
        if let Some(l) = &self.location {
            if self.header.is_some() {
                problems.push("location: a template has one header, a value or a place".into());
            }
            if !l.latitude.is_finite() || !(-90.0..=90.0).contains(&l.latitude) {
                problems.push("location.latitude: a latitude from -90 to 90".into());
            }
            if !l.longitude.is_finite() || !(-180.0..=180.0).contains(&l.longitude) {
                problems.push("location.longitude: a longitude from -180 to 180".into());
            }
            for (what, v) in [("name", &l.name), ("address", &l.address)] {
                if v.as_deref()
                    .is_some_and(|v| v.chars().count() > MAX_LOCATION_TEXT)
                {
                    problems.push(format!(
                        "location.{what}: at most {MAX_LOCATION_TEXT} characters"
                    ));
                }
            }
        }
        for (i, v) in self.body.iter().enumerate() {
            v.check(&format!("body[{i}]"), &mut problems);
        }
        if self.buttons.len() > 10 || self.buttons.keys().any(|k| *k > 9) {
            problems.push("buttons: indexes 0 to 9".into());
        }
        for (i, v) in &self.buttons {
            v.check(&format!("buttons[{i}]"), &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Custom field keys the mapping reads.
    pub fn field_keys(&self) -> Vec<String> {
        self.sources_with("field:")
    }

    /// CSV column names the mapping reads.
    pub fn column_keys(&self) -> Vec<String> {
        self.sources_with("column:")
    }

    fn sources_with(&self, prefix: &str) -> Vec<String> {
        self.header
            .iter()
            .chain(self.body.iter())
            .chain(self.buttons.values())
            .filter_map(|v| v.source.strip_prefix(prefix).map(str::to_owned))
            .collect()
    }

    /// A contact's values for the template, or the first value it lacks (named as above).
    pub fn fill_for(&self, c: &ContactValues) -> Result<FillInput, String> {
        let missing = |at: String, v: &ValueSource| {
            format!("no value for {at} ({}) and no fallback", v.source)
        };
        let header = match &self.header {
            Some(h) => Some(h.resolve(c).ok_or_else(|| missing("header".into(), h))?),
            None => None,
        };
        let mut body = Vec::with_capacity(self.body.len());
        for (i, v) in self.body.iter().enumerate() {
            body.push(
                v.resolve(c)
                    .ok_or_else(|| missing(format!("body[{i}]"), v))?,
            );
        }
        let mut buttons = BTreeMap::new();
        for (i, v) in &self.buttons {
            buttons.insert(
                *i,
                v.resolve(c)
                    .ok_or_else(|| missing(format!("buttons[{i}]"), v))?,
            );
        }
        Ok(FillInput {
            header,
            location: self.location.clone(),
            body,
            buttons,
            cards: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_move_only_along_the_allowed_edges() {
        use CampaignAction as A;
        use CampaignStatus as S;
        assert_eq!(S::Draft.after(A::Launch), Some(S::Running));
        assert_eq!(S::Draft.after(A::Schedule), Some(S::Scheduled));
        assert_eq!(S::Running.after(A::Pause), Some(S::Paused));
        assert_eq!(S::Paused.after(A::Resume), Some(S::Running));
        assert_eq!(S::Paused.after(A::Cancel), Some(S::Cancelled));
        assert_eq!(S::Draft.after(A::Pause), None);
        assert_eq!(S::Draft.after(A::Cancel), None);
        assert_eq!(S::Running.after(A::Launch), None);
        for a in [A::Launch, A::Schedule, A::Pause, A::Resume, A::Cancel] {
            assert_eq!(S::Completed.after(a), None);
            assert_eq!(S::Cancelled.after(a), None);
        }
        for s in [
            "draft",
            "scheduled",
            "running",
            "paused",
            "completed",
            "cancelled",
        ] {
            assert_eq!(S::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn tiers_cap_unique_recipients_and_unknown_is_the_starting_tier() {
        assert_eq!(daily_limit(Some("TIER_1K")), Some(1000));
        assert_eq!(daily_limit(Some("TIER_100K")), Some(100_000));
        assert_eq!(daily_limit(Some("TIER_UNLIMITED")), None);
        assert_eq!(daily_limit(Some("TIER_NOT_SET")), Some(250));
        assert_eq!(daily_limit(None), Some(250));
    }

    #[test]
    fn the_language_is_the_contacts_then_its_base_then_the_default() {
        let approved: Vec<String> = ["en_US", "pt_BR", "es"].map(String::from).to_vec();
        assert_eq!(pick_language(Some("pt_BR"), &approved, "en_US"), "pt_BR");
        assert_eq!(pick_language(Some("es_419"), &approved, "en_US"), "es");
        assert_eq!(pick_language(Some("en"), &approved, "es"), "en_US");
        assert_eq!(pick_language(Some("fr"), &approved, "en_US"), "en_US");
        assert_eq!(pick_language(None, &approved, "es"), "es");
    }

    #[test]
    fn a_mapping_fills_from_the_contact_with_fallbacks() {
        let m: Mapping = serde_json::from_value(serde_json::json!({
            "body": [
                { "source": "first_name", "fallback": "there" },
                { "source": "field:city" },
                { "source": "text", "fallback": "SAVE10" }
            ]
        }))
        .unwrap();
        m.check().unwrap();
        let mut c = ContactValues {
            name: Some("Asha Rao".into()),
            ..Default::default()
        };
        c.fields.insert("city".into(), "Pune".into());
        assert_eq!(m.fill_for(&c).unwrap().body, ["Asha", "Pune", "SAVE10"]);
        let nobody = ContactValues::default();
        let e = m.fill_for(&nobody).unwrap_err();
        assert!(e.contains("body[1]"), "{e}");
        assert_eq!(m.field_keys(), ["city"]);
    }

    #[test]
    fn a_mapping_refuses_unknown_sources_and_bare_text() {
        let m: Mapping = serde_json::from_value(serde_json::json!({
            "body": [{ "source": "password" }, { "source": "text" }]
        }))
        .unwrap();
        let e = m.check().unwrap_err();
        assert!(e.contains("body[0]") && e.contains("body[1]"), "{e}");
    }

    #[test]
    fn a_mapping_reads_the_recipients_csv_row_and_carries_a_checked_place() {
        let m: Mapping = serde_json::from_value(serde_json::json!({
            "body": [{ "source": "column:Pickup code" }, { "source": "column:Town", "fallback": "town" }],
            "location": { "latitude": 18.5204, "longitude": 73.8567, "name": "Sunrise Store" }
        }))
        .unwrap();
        m.check().unwrap();
        assert_eq!(m.column_keys(), ["Pickup code", "Town"]);
        assert!(m.field_keys().is_empty());
        let mut c = ContactValues::default();
        c.columns.insert("Pickup code".into(), "A1".into());
        let fill = m.fill_for(&c).unwrap();
        assert_eq!(fill.body, ["A1", "town"]);
        assert_eq!(
            fill.location.unwrap().name.as_deref(),
            Some("Sunrise Store")
        );

        let bad: Mapping = serde_json::from_value(serde_json::json!({
            "header": { "source": "name" },
            "body": [{ "source": "column:" }],
            "location": { "latitude": -91.0, "longitude": 181.0 }
        }))
        .unwrap();
        let e = bad.check().unwrap_err();
        for want in [
            "body[0]",
            "location.latitude",
            "location.longitude",
            "one header",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }
}
