//! Message templates: what an organisation writes ([`TemplateInput`]), parsed once into a
//! [`TemplateSpec`] that holds WhatsApp's rules (name pattern, lengths, variables numbered
//! in order with an example each, button counts, carousel cards), then turned into Meta's
//! component JSON to submit, and filled with values ([`FillInput`]) into a send's
//! `components` parameters. Parse, don't validate: code past the edge only sees specs.
//!
//! Variables are `{{1}}`…`{{n}}` (positional) or `{{first_name}}` (named), never both in one
//! template. Values for a template are given in the order the variables first appear.

use crate::MediaId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// Longest name Meta accepts.
pub const MAX_NAME: usize = 512;
/// Longest body text.
pub const MAX_BODY: usize = 1024;
/// Longest header text and footer.
pub const MAX_HEADER: usize = 60;
pub const MAX_FOOTER: usize = 60;
/// Buttons per template, and per kind.
pub const MAX_BUTTONS: usize = 10;
pub const MAX_URL_BUTTONS: usize = 2;
/// Longest button label.
pub const MAX_BUTTON_TEXT: usize = 25;
pub const MAX_URL: usize = 2000;
/// Longest example of a copy-code button.
pub const MAX_COPY_CODE: usize = 15;
/// Carousel cards: 2 to 10, body at most 160 characters, 1 or 2 buttons each.
pub const MAX_CARDS: usize = 10;
pub const MAX_CARD_BODY: usize = 160;
pub const MAX_CARD_BUTTONS: usize = 2;
/// Longest value of one variable when sending (Meta refuses long parameters).
pub const MAX_VALUE: usize = 1024;
/// Longest example value.
pub const MAX_EXAMPLE: usize = 200;

/// A template name: lower-case letters, digits and underscores, 1–512 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TemplateName(String);

impl TemplateName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_NAME {
            return Err(format!("a name is 1–{MAX_NAME} characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err("a name has only lower-case letters, digits and underscores".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A template language code as Meta names them: `en`, `en_US`, `pt_BR`, `zh_HK`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TemplateLanguage(String);

impl TemplateLanguage {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (lang, region) = match s.split_once('_') {
            Some((l, r)) => (l, Some(r)),
            None => (s, None),
        };
        let ok = (2..=3).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_lowercase())
            && region.is_none_or(|r| {
                (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !ok {
            return Err("a language is a code such as en, en_US or pt_BR".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a template is for; Meta prices and reviews by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

impl Category {
    pub const ALL: [Category; 3] = [
        Category::Marketing,
        Category::Utility,
        Category::Authentication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "MARKETING",
            Category::Utility => "UTILITY",
            Category::Authentication => "AUTHENTICATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// How variables are written: `{{1}}` or `{{first_name}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamFormat {
    Positional,
    Named,
}

/// The kind of file a media header or a carousel card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            "document" => Some(MediaKind::Document),
            _ => None,
        }
    }
}

/// What a `message_template_status_update` event means for a template here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEvent<'a> {
    /// The template's status becomes this (`APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`…).
    Status(&'a str),
    /// Still sendable, but rated down: the quality becomes this.
    Quality(&'a str),
}

/// Reads a status event: a reinstated or unarchived template is approved again, a flagged
/// one keeps its status (it can still be sent) and is rated red; any other event is the
/// new status as Meta names it.
pub fn status_event(event: &str) -> StatusEvent<'_> {
    match event {
        "REINSTATED" | "UNARCHIVED" => StatusEvent::Status("APPROVED"),
        "FLAGGED" => StatusEvent::Quality("RED"),
        other => StatusEvent::Status(other),
    }
}

// ---------------------------------------------------------------------------------------
// What a person writes (the API body, the editor form, and what is stored).
// ---------------------------------------------------------------------------------------

/// A template as written: the body of create and edit, and what is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: String,
    /// e.g. `en_US`.
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderInput>,
    /// Required, except for a one-time-password template (`otp`), whose body WhatsApp writes.
    #[serde(default)]
    pub body: BodyInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ButtonInput>,
    /// Carousel cards (2–10); a carousel has a body and cards, no header, footer or buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<CardInput>,
    /// Meta's preset authentication format: WhatsApp writes the body ("{{1}} is your
    /// verification code."), so `body.text` stays empty and there is no header, footer or
    /// other button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<OtpInput>,
}

/// A one-time-password button and the preset authentication text's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpInput {
    /// `copy_code`, `one_tap` (Android autofill) or `zero_tap` (the code is handed to the app
    /// without a tap).
    pub otp_type: String,
    /// The copy button's label (≤ 25 characters; WhatsApp's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_text: Option<String>,
    /// One-tap and zero-tap: the autofill button's label (≤ 25 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autofill_text: Option<String>,
    /// One-tap and zero-tap: the Android apps that receive the code (1–5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_apps: Vec<OtpApp>,
    /// Zero-tap: the business accepted Meta's zero-tap terms (required).
    #[serde(default)]
    pub zero_tap_terms_accepted: bool,
    /// Adds "For your security, do not share this code." to the body.
    #[serde(default)]
    pub add_security_recommendation: bool,
    /// Adds "This code expires in N minutes." as the footer (1–90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_expiration_minutes: Option<u32>,
}

/// An Android app a one-tap or zero-tap code is handed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpApp {
    /// e.g. `com.example.clinic` (≤ 224 characters).
    pub package_name: String,
    /// The app's signing key hash (11 characters).
    pub signature_hash: String,
}

/// The kind of one-time-password button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    CopyCode,
    OneTap,
    ZeroTap,
}

impl OtpKind {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "copy_code" => Some(Self::CopyCode),
            "one_tap" => Some(Self::OneTap),
            "zero_tap" => Some(Self::ZeroTap),
            _ => None,
        }
    }

    pub fn as_meta(self) -> &'static str {
        match self {
            Self::CopyCode => "COPY_CODE",
            Self::OneTap => "ONE_TAP",
            Self::ZeroTap => "ZERO_TAP",
        }
    }
}

/// A parsed authentication (OTP) template's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otp {
    pub kind: OtpKind,
    pub button_text: Option<String>,
    pub autofill_text: Option<String>,
    pub supported_apps: Vec<OtpApp>,
    pub zero_tap_terms_accepted: bool,
    pub add_security_recommendation: bool,
    pub code_expiration_minutes: Option<u32>,
}

/// The body WhatsApp writes for an authentication template; `{{1}}` is the code.
pub const OTP_BODY: &str = "{{1}} is your verification code.";
/// What `add_security_recommendation` appends.
pub const OTP_SECURITY: &str = "For your security, do not share this code.";
/// Longest one-time code a send may carry.
pub const MAX_OTP_CODE: usize = 15;

fn parse_otp(errs: &mut Errs, input: &TemplateInput) -> Option<Otp> {
    let o = input.otp.as_ref()?;
    if !Category::parse(&input.category).is_some_and(|c| c == Category::Authentication) {
        errs.add("category", "a one-time-password template is AUTHENTICATION");
    }
    if input.header.is_some()
        || input
            .footer
            .as_deref()
            .is_some_and(|f| !f.trim().is_empty())
        || !input.buttons.is_empty()
        || !input.cards.is_empty()
    {
        errs.add(
            "otp",
            "a one-time-password template has no header, footer, other buttons or cards: WhatsApp writes it",
        );
    }
    if !input.body.text.trim().is_empty() || !input.body.examples.is_empty() {
        errs.add(
            "body.text",
            "WhatsApp writes an authentication template's body: leave it empty",
        );
    }
    let kind = OtpKind::parse(&o.otp_type);
    if kind.is_none() {
        errs.add("otp.otp_type", "copy_code, one_tap or zero_tap");
    }
    let label = |errs: &mut Errs, field: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
        if chars(v) > MAX_BUTTON_TEXT || v.contains("{{") {
            errs.add(
                format!("otp.{field}"),
                format!("1–{MAX_BUTTON_TEXT} characters without variables"),
            );
        }
        Some(v.to_owned())
    };
    let button_text = label(errs, "button_text", &o.button_text);
    let autofill_text = label(errs, "autofill_text", &o.autofill_text);
    let taps = matches!(kind, Some(OtpKind::OneTap | OtpKind::ZeroTap));
    if taps {
        if o.supported_apps.is_empty() || o.supported_apps.len() > 5 {
            errs.add(
                "otp.supported_apps",
                "one-tap and zero-tap buttons name 1 to 5 Android apps",
            );
        }
        for (i, app) in o.supported_apps.iter().enumerate() {
            let pkg = app.package_name.trim();
            let valid_pkg = (3..=224).contains(&pkg.len())
                && pkg.contains('.')
                && pkg.split('.').all(|part| {
                    part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !valid_pkg {
                errs.add(
                    format!("otp.supported_apps[{i}].package_name"),
                    "an Android package name such as com.example.app (at most 224 characters)",
                );
            }
            let hash = app.signature_hash.trim();
            if hash.len() != 11
                || !hash
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
            {
                errs.add(
                    format!("otp.supported_apps[{i}].signature_hash"),
                    "the app's 11-character signing key hash",
                );
            }
        }
    } else {
        if !o.supported_apps.is_empty() {
            errs.add(
                "otp.supported_apps",
                "only one-tap and zero-tap buttons name apps",
            );
        }
        if autofill_text.is_some() {
            errs.add(
                "otp.autofill_text",
                "only one-tap and zero-tap buttons autofill",
            );
        }
    }
    if kind == Some(OtpKind::ZeroTap) && !o.zero_tap_terms_accepted {
        errs.add(
            "otp.zero_tap_terms_accepted",
            "zero-tap needs Meta's zero-tap terms accepted",
        );
    }
    if kind != Some(OtpKind::ZeroTap) && o.zero_tap_terms_accepted {
        errs.add("otp.zero_tap_terms_accepted", "only for zero-tap buttons");
    }
    if o.code_expiration_minutes
        .is_some_and(|m| !(1..=90).contains(&m))
    {
        errs.add("otp.code_expiration_minutes", "1 to 90 minutes");
    }
    Some(Otp {
        kind: kind?,
        button_text,
        autofill_text,
        supported_apps: o
            .supported_apps
            .iter()
            .map(|a| OtpApp {
                package_name: a.package_name.trim().to_owned(),
                signature_hash: a.signature_hash.trim().to_owned(),
            })
            .collect(),
        zero_tap_terms_accepted: o.zero_tap_terms_accepted,
        add_security_recommendation: o.add_security_recommendation,
        code_expiration_minutes: o.code_expiration_minutes,
    })
}

impl Otp {
    fn to_input(&self) -> OtpInput {
        OtpInput {
            otp_type: match self.kind {
                OtpKind::CopyCode => "copy_code",
                OtpKind::OneTap => "one_tap",
                OtpKind::ZeroTap => "zero_tap",
            }
            .into(),
            button_text: self.button_text.clone(),
            autofill_text: self.autofill_text.clone(),
            supported_apps: self.supported_apps.clone(),
            zero_tap_terms_accepted: self.zero_tap_terms_accepted,
            add_security_recommendation: self.add_security_recommendation,
            code_expiration_minutes: self.code_expiration_minutes,
        }
    }

    /// Meta's components: a BODY with options only, the expiry FOOTER, the OTP button.
    fn meta_components(&self) -> Vec<Value> {
        let mut out = vec![
            json!({ "type": "BODY", "add_security_recommendation": self.add_security_recommendation }),
        ];
        if let Some(m) = self.code_expiration_minutes {
            out.push(json!({ "type": "FOOTER", "code_expiration_minutes": m }));
        }
        let mut b = json!({ "type": "OTP", "otp_type": self.kind.as_meta() });
        if let Some(t) = &self.button_text {
            b["text"] = json!(t);
        }
        if let Some(t) = &self.autofill_text {
            b["autofill_text"] = json!(t);
        }
        if !self.supported_apps.is_empty() {
            b["supported_apps"] = json!(self.supported_apps.iter()
                .map(|a| json!({ "package_name": a.package_name, "signature_hash": a.signature_hash }))
                .collect::<Vec<_>>());
        }
        if self.kind == OtpKind::ZeroTap {
            b["zero_tap_terms_accepted"] = json!(self.zero_tap_terms_accepted);
        }
        out.push(json!({ "type": "BUTTONS", "buttons": [b] }));
        out
    }

    /// The text a phone shows around the code.
    fn render(&self, code: &str) -> String {
        let mut body = OTP_BODY.replace("{{1}}", code);
        if self.add_security_recommendation {
            body.push(' ');
            body.push_str(OTP_SECURITY);
        }
        let mut parts = vec![body];
        if let Some(m) = self.code_expiration_minutes {
            parts.push(format!("This code expires in {m} minutes."));
        }
        parts.push(format!(
            "[{}]",
            self.button_text.as_deref().unwrap_or("Copy code")
        ));
        parts.join("\n")
    }
}

/// A header: text (at most one variable) or a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderInput {
    /// `text`, `image`, `video`, `document` or `location` (the place is given per send).
    pub format: String,
    /// The text of a text header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The variable's example (text header), or, for a media header, a handle from Meta's
    /// Resumable Upload API given as is (or a link, in templates written before samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// Media headers: the id of a sample file uploaded here (`POST
    /// /api/v1/templates/samples`). Each submission uploads it to Meta's Resumable Upload
    /// API and submits the fresh handle. Give this or `example`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

/// The body text and one example per variable, in the order the variables appear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyInput {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// A button as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonInput {
    /// `quick_reply`, `url`, `phone_number` or `copy_code`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The label (copy-code buttons have Meta's fixed label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// URL buttons: `https://…`, optionally ending in `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// URL buttons: count clicks through our own short link (`/r/{code}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub track: bool,
    /// Phone-number buttons: E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// URL with a variable: a full example URL; copy code: an example code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A carousel card: a media header, a short body and 1–2 buttons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    pub header: HeaderInput,
    pub body: BodyInput,
    #[serde(default)]
    pub buttons: Vec<ButtonInput>,
}

// ---------------------------------------------------------------------------------------
// The parsed template.
// ---------------------------------------------------------------------------------------

/// One refusal, named by the field it concerns (`body.text`, `buttons[1].url`), so a form
/// can show it beside that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every refusal found in a template (not just the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// A text with its variables (in order of appearance) and an example for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarText {
    pub text: String,
    /// Variable keys: `"1"`, `"2"` … or names.
    pub vars: Vec<String>,
    pub examples: Vec<String>,
}

/// A media header's sample, which Meta's reviewers look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSample {
    /// A file uploaded here: sent through Meta's Resumable Upload API at each submission,
    /// whose handle is then submitted.
    Stored(MediaId),
    /// A handle (or a link, in templates written before samples) submitted as given.
    Given(String),
}

impl MediaSample {
    /// The handle or link given as is (`None` for a stored file).
    pub fn given(&self) -> Option<&str> {
        match self {
            MediaSample::Given(s) => Some(s),
            MediaSample::Stored(_) => None,
        }
    }
}

/// What a media sample's file may be, per header kind: the types Meta's Resumable Upload
/// API takes that the kind shows (JPEG and PNG images, MP4 videos, PDF documents), and the
/// largest sample accepted here (WhatsApp's media limits for images and videos; documents
/// bounded like videos: a sample only shows what the template looks like).
pub fn sample_rule(kind: MediaKind) -> (&'static [&'static str], usize) {
    const MB: usize = 1024 * 1024;
    match kind {
        MediaKind::Image => (&["image/jpeg", "image/png"], 5 * MB),
        MediaKind::Video => (&["video/mp4"], 16 * MB),
        MediaKind::Document => (&["application/pdf"], 16 * MB),
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    Text(VarText),
    Media {
        kind: MediaKind,
        sample: MediaSample,
    },
    /// A map pin: the place (coordinates, name, address) is given with each send.
    Location,
}

/// A parsed button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    QuickReply {
        text: String,
    },
    Url {
        text: String,
        /// The destination; may end in `{{1}}`, filled per send.
        url: String,
        /// A full example URL when `url` has a variable.
        example: Option<String>,
        /// Sent through our redirect (`/r/{code}`), which counts the click.
        track: bool,
    },
    PhoneNumber {
        text: String,
        phone: String,
    },
    CopyCode {
        example: String,
    },
}

impl Button {
    /// Whether the send must give a value for this button.
    pub fn takes_value(&self) -> bool {
        match self {
            Button::Url { url, track, .. } => url_has_var(url) || *track,
            Button::CopyCode { .. } => true,
            _ => false,
        }
    }

    /// The label a phone shows.
    pub fn label(&self) -> &str {
        match self {
            Button::QuickReply { text }
            | Button::Url { text, .. }
            | Button::PhoneNumber { text, .. } => text,
            Button::CopyCode { .. } => "Copy code",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Button::QuickReply { .. } => "quick_reply",
            Button::Url { .. } => "url",
            Button::PhoneNumber { .. } => "phone_number",
            Button::CopyCode { .. } => "copy_code",
        }
    }
}

/// A parsed carousel card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub media: MediaKind,
    pub sample: MediaSample,
    pub body: VarText,
    pub buttons: Vec<Button>,
}

/// A template that satisfies WhatsApp's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub name: TemplateName,
    pub language: TemplateLanguage,
    pub category: Category,
    pub format: ParamFormat,
    pub header: Option<Header>,
    pub body: VarText,
    pub footer: Option<String>,
    pub buttons: Vec<Button>,
    pub cards: Vec<Card>,
    /// Meta's preset authentication format (the body is then WhatsApp's [`OTP_BODY`]).
    pub otp: Option<Otp>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn url_has_var(url: &str) -> bool {
    url.ends_with("{{1}}")
}

/// A variable as written between braces.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Positional(u32),
    Named(String),
}

/// The variables of a text in order of appearance, or why they are malformed.
fn scan_vars(text: &str) -> Result<Vec<Var>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or("a variable is opened with {{ but not closed with }}")?;
        let inner = &after[..end];
        if inner.contains('{') {
            return Err("a variable is opened twice".into());
        }
        let v = if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            Var::Positional(
                inner
                    .parse()
                    .map_err(|_| format!("{{{{{inner}}}}} is not a variable number"))?,
            )
        } else if inner.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && inner
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && inner.len() <= 60
        {
            Var::Named(inner.to_owned())
        } else {
            return Err(format!(
                "{{{{{inner}}}}} is not a variable: use {{{{1}}}}, {{{{2}}}}… or a lower-case name such as {{{{first_name}}}}"
            ));
        };
        out.push(v);
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err("}} without an opening {{".into());
    }
    Ok(out)
}

/// Collects field errors while parsing.
#[derive(Default)]
struct Errs(Vec<FieldError>);

impl Errs {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Parses a text with variables: the style must match `format` (decided by the body),
/// positional variables are 1..n in order of first appearance, names are distinct, and
/// each variable has a non-empty example.
fn parse_var_text(
    errs: &mut Errs,
    field: &str,
    text: &str,
    examples: &[String],
    format: ParamFormat,
    max: usize,
) -> VarText {
    let n = errs.0.len();
    if text.trim().is_empty() {
        errs.add(format!("{field}.text"), "the text is required");
    } else if chars(text) > max {
        errs.add(
            format!("{field}.text"),
            format!("at most {max} characters (this has {})", chars(text)),
        );
    }
    let vars = match scan_vars(text) {
        Ok(v) => v,
        Err(e) => {
            errs.add(format!("{field}.text"), e);
            Vec::new()
        }
    };
    let mut keys: Vec<String> = Vec::new();
    for v in &vars {
        match (v, format) {
            (Var::Positional(k), ParamFormat::Positional) => {
                let key = k.to_string();
                if keys.contains(&key) {
                    continue;
                }
                if *k as usize != keys.len() + 1 {
                    errs.add(
                        format!("{field}.text"),
                        format!(
                            "variables are numbered in order from {{{{1}}}}: expected {{{{{}}}}}, found {{{{{k}}}}}",
                            keys.len() + 1
                        ),
                    );
                    break;
                }
                keys.push(key);
            }
            (Var::Named(name), ParamFormat::Named) => {
                if !keys.contains(name) {
                    keys.push(name.clone());
                }
            }
            _ => {
                errs.add(
                    format!("{field}.text"),
                    "numbered and named variables cannot be mixed in one template",
                );
                break;
            }
        }
    }
    let trimmed = text.trim();
    // Meta's rule for bodies; a header may well end with its variable ("Hi {{1}}").
    if field != "header"
        && !vars.is_empty()
        && (trimmed.starts_with("{{") || trimmed.ends_with("}}"))
    {
        errs.add(
            format!("{field}.text"),
            "the text may not start or end with a variable",
        );
    }
    if errs.0.len() == n && examples.len() != keys.len() {
        errs.add(
            format!("{field}.examples"),
            format!(
                "give one example per variable ({} variable(s), {} example(s))",
                keys.len(),
                examples.len()
            ),
        );
    }
    for (i, e) in examples.iter().enumerate() {
        if e.trim().is_empty() || chars(e) > MAX_EXAMPLE {
            errs.add(
                format!("{field}.examples[{i}]"),
                format!("an example is 1–{MAX_EXAMPLE} characters"),
            );
        }
    }
    if errs.0.len() > n {
        // Keep the shape consistent for later checks even when refused.
        return VarText {
            text: text.to_owned(),
            vars: Vec::new(),
            examples: Vec::new(),
        };
    }
    VarText {
        text: text.to_owned(),
        vars: keys,
        examples: examples.iter().map(|e| e.trim().to_owned()).collect(),
    }
}

fn parse_media_header(
    errs: &mut Errs,
    field: &str,
    h: &HeaderInput,
) -> Option<(MediaKind, MediaSample)> {
    let Some(kind) = MediaKind::parse(&h.format) else {
        errs.add(
            format!("{field}.format"),
            "the header is an image, a video or a document",
        );
        return None;
    };
    if h.text.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.add(format!("{field}.text"), "a media header has no text");
    }
    let sample = h.sample.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let example = h
        .example
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    match (sample, example) {
        (Some(_), Some(_)) => {
            errs.add(
                format!("{field}.sample"),
                "give a sample file or an upload handle, not both",
            );
            None
        }
        (Some(s), None) => match MediaId::parse(s) {
            Ok(id) => Some((kind, MediaSample::Stored(id))),
            Err(_) => {
                errs.add(
                    format!("{field}.sample"),
                    "the id of a sample file uploaded for this template",
                );
                None
            }
        },
        (None, Some(e)) if e.len() <= MAX_URL && !e.chars().any(char::is_whitespace) => {
            Some((kind, MediaSample::Given(e.to_owned())))
        }
        _ => {
            errs.add(
                format!("{field}.example"),
                "a media header needs a sample file (upload one) or an upload handle",
            );
            None
        }
    }
}

fn parse_buttons(errs: &mut Errs, field: &str, input: &[ButtonInput], max: usize) -> Vec<Button> {
    if input.len() > max {
        errs.add(field, format!("at most {max} buttons"));
    }
    let mut out = Vec::new();
    for (i, b) in input.iter().enumerate().take(MAX_BUTTONS) {
        let f = format!("{field}[{i}]");
        let label = |errs: &mut Errs| -> Option<String> {
            match b.text.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() && chars(t) <= MAX_BUTTON_TEXT && !t.contains("{{") => {
                    Some(t.to_owned())
                }
                _ => {
                    errs.add(
                        format!("{f}.text"),
                        format!("a label of 1–{MAX_BUTTON_TEXT} characters, without variables"),
                    );
                    None
                }
            }
        };
        let parsed = match b.kind.as_str() {
            "quick_reply" => label(errs).map(|text| Button::QuickReply { text }),
            "url" => {
                let text = label(errs);
                let url = b.url.as_deref().unwrap_or_default().trim().to_owned();
                let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
                let host_ok = url.split_once("://").is_some_and(|(_, rest)| {
                    rest.split(['/', '?', '#'])
                        .next()
                        .is_some_and(|h| !h.is_empty() && !h.contains("{{"))
                });
                let var_count = url.matches("{{").count();
                let mut ok = true;
                if !scheme_ok
                    || !host_ok
                    || url.len() > MAX_URL
                    || !url.bytes().all(|b| b.is_ascii_graphic())
                {
                    errs.add(
                        format!("{f}.url"),
                        format!("an http(s) URL of at most {MAX_URL} characters, without spaces (non-ASCII characters percent-encoded)"),
                    );
                    ok = false;
                } else if var_count > 1 || (var_count == 1 && !url_has_var(&url)) {
                    errs.add(
                        format!("{f}.url"),
                        "a URL may have one variable, {{1}}, at its very end",
                    );
                    ok = false;
                }
                let example = if url_has_var(&url) {
                    match b.example.as_deref().map(str::trim) {
                        Some(e)
                            if e.starts_with(&url[..url.len() - 5])
                                && e.len() > url.len() - 5
                                && e.len() <= MAX_URL =>
                        {
                            Some(e.to_owned())
                        }
                        _ => {
                            errs.add(format!("{f}.example"), "a URL with a variable needs a full example URL that starts like it");
                            ok = false;
                            None
                        }
                    }
                } else {
                    None
                };
                match (text, ok) {
                    (Some(text), true) => Some(Button::Url {
                        text,
                        url,
                        example,
                        track: b.track,
                    }),
                    _ => None,
                }
            }
            "phone_number" => {
                let text = label(errs);
                let phone = crate::E164::parse(b.phone_number.as_deref().unwrap_or_default());
                match (text, phone) {
                    (Some(text), Ok(p)) => Some(Button::PhoneNumber {
                        text,
                        phone: p.as_str().to_owned(),
                    }),
                    (_, Err(_)) => {
                        errs.add(
                            format!("{f}.phone_number"),
                            "a phone number in international form, e.g. +14155550123",
                        );
                        None
                    }
                    _ => None,
                }
            }
            "copy_code" => match b.example.as_deref().map(str::trim) {
                Some(e)
                    if !e.is_empty()
                        && e.len() <= MAX_COPY_CODE
                        && e.bytes().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    Some(Button::CopyCode {
                        example: e.to_owned(),
                    })
                }
                _ => {
                    errs.add(
                        format!("{f}.example"),
                        format!("an example code of 1–{MAX_COPY_CODE} letters and digits"),
                    );
                    None
                }
            },
            _ => {
                errs.add(
                    format!("{f}.type"),
                    "a button is quick_reply, url, phone_number or copy_code",
                );
                None
            }
        };
        if b.track && b.kind != "url" {
            errs.add(format!("{f}.track"), "only URL buttons can be tracked");
        }
        out.extend(parsed);
    }
    let count = |k: &str| out.iter().filter(|b| b.kind() == k).count();
    if count("url") > MAX_URL_BUTTONS {
        errs.add(field, format!("at most {MAX_URL_BUTTONS} URL buttons"));
    }
    if count("phone_number") > 1 {
        errs.add(field, "at most one phone-number button");
    }
    if count("copy_code") > 1 {
        errs.add(field, "at most one copy-code button");
    }
    // Meta groups quick replies: they may not sit between other buttons.
    let kinds: Vec<bool> = out
        .iter()
        .map(|b| matches!(b, Button::QuickReply { .. }))
        .collect();
    let switches = kinds.windows(2).filter(|w| w[0] != w[1]).count();
    if switches > 1 {
        errs.add(
            field,
            "quick-reply buttons must be grouped together, before or after the others",
        );
    }
    out
}

impl TemplateSpec {
    /// Parses a written template, reporting every refusal by field.
    pub fn parse(input: &TemplateInput) -> Result<Self, FieldErrors> {
        let mut errs = Errs::default();
        let name = TemplateName::parse(input.name.trim())
            .map_err(|e| errs.add("name", e))
            .ok();
        let language = TemplateLanguage::parse(input.language.trim())
            .map_err(|e| errs.add("language", e))
            .ok();
        let category = Category::parse(&input.category);
        if category.is_none() {
            errs.add("category", "MARKETING, UTILITY or AUTHENTICATION");
        }
        // The body decides the style; headers and cards must follow it.
        let format = match scan_vars(&input.body.text) {
            Ok(v) if v.iter().any(|v| matches!(v, Var::Named(_))) => ParamFormat::Named,
            _ => ParamFormat::Positional,
        };
        let otp = parse_otp(&mut errs, input);
        let body = if input.otp.is_some() {
            VarText {
                text: OTP_BODY.into(),
                vars: vec!["1".into()],
                examples: vec!["123456".into()],
            }
        } else {
            parse_var_text(
                &mut errs,
                "body",
                &input.body.text,
                &input.body.examples,
                format,
                MAX_BODY,
            )
        };
        let header = match &input.header {
            None => None,
            Some(h) if h.format.eq_ignore_ascii_case("text") => {
                if h.sample.is_some() {
                    errs.add("header.sample", "only a media header has a sample file");
                }
                let text = h.text.as_deref().unwrap_or_default();
                if text.contains('\n') {
                    errs.add("header.text", "a header is one line");
                }
                let examples: Vec<String> = h
                    .example
                    .iter()
                    .filter(|e| !e.trim().is_empty())
                    .cloned()
                    .collect();
                let t = parse_var_text(&mut errs, "header", text, &examples, format, MAX_HEADER);
                if t.vars.len() > 1 {
                    errs.add("header.text", "a header has at most one variable");
                }
                // A header's variables are counted on their own: a numbered header starts at {{1}}.
                Some(Header::Text(t))
            }
            Some(h) if h.format.eq_ignore_ascii_case("location") => {
                if h.text.as_deref().is_some_and(|t| !t.is_empty()) {
                    errs.add("header.text", "a location header has no text");
                }
                if h.example.as_deref().is_some_and(|e| !e.is_empty()) || h.sample.is_some() {
                    errs.add(
                        "header.example",
                        "a location header has no sample: the place is given with each send",
                    );
                }
                Some(Header::Location)
            }
            Some(h) => parse_media_header(&mut errs, "header", h)
                .map(|(kind, sample)| Header::Media { kind, sample }),
        };
        let footer = input
            .footer
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        if let Some(f) = &footer {
            if chars(f) > MAX_FOOTER {
                errs.add("footer", format!("at most {MAX_FOOTER} characters"));
            }
            if f.contains("{{") {
                errs.add("footer", "a footer has no variables");
            }
        }
        let buttons = parse_buttons(&mut errs, "buttons", &input.buttons, MAX_BUTTONS);
        let mut cards = Vec::new();
        if !input.cards.is_empty() {
            if !(2..=MAX_CARDS).contains(&input.cards.len()) {
                errs.add("cards", format!("a carousel has 2 to {MAX_CARDS} cards"));
            }
            if input.header.is_some() || footer.is_some() || !input.buttons.is_empty() {
                errs.add(
                    "cards",
                    "a carousel has a body and cards only: no header, footer or buttons of its own",
                );
            }
            for (i, c) in input.cards.iter().enumerate().take(MAX_CARDS) {
                let f = format!("cards[{i}]");
                let media = parse_media_header(&mut errs, &format!("{f}.header"), &c.header);
                let body = parse_var_text(
                    &mut errs,
                    &format!("{f}.body"),
                    &c.body.text,
                    &c.body.examples,
                    format,
                    MAX_CARD_BODY,
                );
                if c.buttons.is_empty() {
                    errs.add(format!("{f}.buttons"), "a card has 1 or 2 buttons");
                }
                let buttons = parse_buttons(
                    &mut errs,
                    &format!("{f}.buttons"),
                    &c.buttons,
                    MAX_CARD_BUTTONS,
                );
                if let Some((media, sample)) = media {
                    cards.push(Card {
                        media,
                        sample,
                        body,
                        buttons,
                    });
                }
            }
            if let Some(first) = cards.first() {
                let shape = |c: &Card| {
                    (
                        c.media,
                        c.buttons.iter().map(Button::kind).collect::<Vec<_>>(),
                    )
                };
                if cards.iter().any(|c| shape(c) != shape(first)) {
                    errs.add("cards", "every card has the same kind of media and the same buttons in the same order");
                }
            }
        }
        if category == Some(Category::Authentication) {
            if matches!(header, Some(Header::Media { .. } | Header::Location))
                || !input.cards.is_empty()
            {
                errs.add(
                    "category",
                    "authentication templates have no media or location header and no carousel",
                );
            }
            if buttons
                .iter()
                .any(|b| matches!(b, Button::Url { .. } | Button::PhoneNumber { .. }))
            {
                errs.add(
                    "buttons",
                    "authentication templates have no URL or phone buttons",
                );
            }
        }
        match (name, language, category) {
            (Some(name), Some(language), Some(category)) if errs.0.is_empty() => Ok(TemplateSpec {
                name,
                language,
                category,
                format,
                header,
                body,
                footer,
                buttons,
                cards,
                otp,
            }),
            _ => Err(FieldErrors(errs.0)),
        }
    }

    /// The written form of this template (what is stored; parsing it gives this spec back).
    pub fn to_input(&self) -> TemplateInput {
        let header = self.header.as_ref().map(|h| match h {
            Header::Text(t) => HeaderInput {
                format: "text".into(),
                text: Some(t.text.clone()),
                example: t.examples.first().cloned(),
                sample: None,
            },
            Header::Media { kind, sample } => media_input(*kind, sample),
            Header::Location => HeaderInput {
                format: "location".into(),
                text: None,
                example: None,
                sample: None,
            },
        });
        TemplateInput {
            name: self.name.to_string(),
            language: self.language.to_string(),
            category: self.category.as_str().into(),
            header,
            body: if self.otp.is_some() {
                BodyInput::default()
            } else {
                body_input(&self.body)
            },
            otp: self.otp.as_ref().map(Otp::to_input),
            footer: self.footer.clone(),
            buttons: self.buttons.iter().map(button_input).collect(),
            cards: self
                .cards
                .iter()
                .map(|c| CardInput {
                    header: media_input(c.media, &c.sample),
                    body: body_input(&c.body),
                    buttons: c.buttons.iter().map(button_input).collect(),
                })
                .collect(),
        }
    }

    /// Every URL button that counts clicks, as (card index, button index).
    pub fn tracked_buttons(&self) -> Vec<(Option<usize>, usize)> {
        let mut out: Vec<(Option<usize>, usize)> = self
            .buttons
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b, Button::Url { track: true, .. }))
            .map(|(i, _)| (None, i))
            .collect();
        for (c, card) in self.cards.iter().enumerate() {
            for (i, b) in card.buttons.iter().enumerate() {
                if matches!(b, Button::Url { track: true, .. }) {
                    out.push((Some(c), i));
                }
            }
        }
        out
    }

    /// The sample files uploaded here (the header's and each card's), with the field that
    /// names each (`header.sample`, `cards[1].header.sample`): a submission first sends
    /// them through Meta's Resumable Upload API.
    pub fn stored_samples(&self) -> Vec<(String, MediaKind, MediaId)> {
        let header = match &self.header {
            Some(Header::Media { kind, sample }) => {
                Some(("header.sample".to_owned(), *kind, sample))
            }
            _ => None,
        };
        let cards = self
            .cards
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("cards[{i}].header.sample"), c.media, &c.sample));
        header
            .into_iter()
            .chain(cards)
            .filter_map(|(field, kind, sample)| match sample {
                MediaSample::Stored(id) => Some((field, kind, *id)),
                MediaSample::Given(_) => None,
            })
            .collect()
    }

    /// Meta's `components` to submit (`POST /{waba-id}/message_templates`). A tracked URL
    /// button is submitted as `<redirect_base>/r/{{1}}`: the send fills in a per-message code.
    /// A stored sample is submitted as its handle in `handles` (see [`Self::stored_samples`]).
    pub fn to_meta_components(
        &self,
        redirect_base: &str,
        handles: &BTreeMap<MediaId, String>,
    ) -> Value {
        if let Some(o) = &self.otp {
            return Value::Array(o.meta_components());
        }
        let mut out = Vec::new();
        match &self.header {
            Some(Header::Text(t)) => {
                let mut h = json!({ "type": "HEADER", "format": "TEXT", "text": t.text });
                if let Some(e) = t.examples.first() {
                    h["example"] = match self.format {
                        ParamFormat::Positional => json!({ "header_text": [e] }),
                        ParamFormat::Named => {
                            json!({ "header_text_named_params": [{ "param_name": t.vars[0], "example": e }] })
                        }
                    };
                }
                out.push(h);
            }
            Some(Header::Media { kind, sample }) => {
                out.push(media_header_json(*kind, sample, handles))
            }
            Some(Header::Location) => out.push(json!({ "type": "HEADER", "format": "LOCATION" })),
            None => {}
        }
        out.push(text_json("BODY", &self.body, self.format));
        if let Some(f) = &self.footer {
            out.push(json!({ "type": "FOOTER", "text": f }));
        }
        if !self.buttons.is_empty() {
            out.push(buttons_json(&self.buttons, redirect_base));
        }
        if !self.cards.is_empty() {
            let cards: Vec<Value> = self
                .cards
                .iter()
                .map(|c| {
                    json!({ "components": [
                        media_header_json(c.media, &c.sample, handles),
                        text_json("BODY", &c.body, self.format),
                        buttons_json(&c.buttons, redirect_base),
                    ] })
                })
                .collect();
            out.push(json!({ "type": "CAROUSEL", "cards": cards }));
        }
        Value::Array(out)
    }

    /// The whole submission body: name, language, category, parameter format, components.
    pub fn to_meta_submission(
        &self,
        redirect_base: &str,
        handles: &BTreeMap<MediaId, String>,
    ) -> Value {
        json!({
            "name": self.name.as_str(),
            "language": self.language.as_str(),
            "category": self.category.as_str(),
            "parameter_format": match self.format { ParamFormat::Positional => "POSITIONAL", ParamFormat::Named => "NAMED" },
            "components": self.to_meta_components(redirect_base, handles),
        })
    }

    /// Reads a template as Meta lists it (`GET /{waba-id}/message_templates`), for sync.
    /// Tracked links are not recognised: a URL pointing at our redirect stays a URL.
    pub fn from_meta(t: &Value) -> Result<Self, FieldErrors> {
        Self::parse(&input_from_meta(t))
    }

    /// The message as a phone shows it, with the examples in place of the variables.
    pub fn preview(&self) -> String {
        let mut f = FillInput {
            header: None,
            location: None,
            body: self.body.examples.clone(),
            buttons: BTreeMap::new(),
            cards: Vec::new(),
        };
        if let Some(Header::Text(t)) = &self.header {
            f.header = t.examples.first().cloned();
        }
        render(self, &f)
    }

    /// Checks values against this template and builds the send's `components`. `new_code`
    /// makes the code of each tracked button (the caller stores it with the destination).
    pub fn fill(
        &self,
        fill: &FillInput,
        mut new_code: impl FnMut() -> String,
    ) -> Result<Filled, FieldErrors> {
        let mut errs = Errs::default();
        if let Some(o) = &self.otp {
            // One value, the code: in the body and in the button (which copies or autofills it).
            let code = clean_value(fill.body.first().map(String::as_str).unwrap_or_default());
            if fill.body.len() != 1
                || code.is_empty()
                || chars(&code) > MAX_OTP_CODE
                || code.contains(' ')
            {
                errs.add(
                    "body",
                    format!("one value: the code, 1–{MAX_OTP_CODE} characters without spaces"),
                );
            }
            if fill.header.is_some()
                || fill.location.is_some()
                || !fill.buttons.is_empty()
                || !fill.cards.is_empty()
            {
                errs.add(
                    "fill",
                    "an authentication template takes the code only (`body`)",
                );
            }
            if !errs.0.is_empty() {
                return Err(FieldErrors(errs.0));
            }
            return Ok(Filled {
                components: vec![
                    json!({ "type": "body", "parameters": [{ "type": "text", "text": code }] }),
                    json!({ "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": code }] }),
                ],
                links: Vec::new(),
                text: o.render(&code),
            });
        }
        let mut components = Vec::new();
        let mut links = Vec::new();
        match &self.header {
            Some(Header::Text(t)) if !t.vars.is_empty() => {
                let v = one_value(&mut errs, "header", fill.header.as_deref());
                components.push(
                    json!({ "type": "header", "parameters": [param(&t.vars[0], &v, self.format)] }),
                );
            }
            Some(Header::Media { kind, .. }) => {
                let m = media_value(&mut errs, "header", fill.header.as_deref());
                components
                    .push(json!({ "type": "header", "parameters": [media_param(*kind, &m)] }));
            }
            Some(Header::Location) => {
                if fill.header.as_deref().is_some_and(|h| !h.is_empty()) {
                    errs.add("header", "a location header takes `location`, not a text");
                }
                match &fill.location {
                    Some(l) => {
                        if let Some(p) = l.checked(&mut errs) {
                            components.push(
                                json!({ "type": "header", "parameters": [{ "type": "location", "location": p }] }),
                            );
                        }
                    }
                    None => errs.add(
                        "location",
                        "this template's header is a place: give its latitude and longitude",
                    ),
                }
            }
            _ => {
                if fill.header.as_deref().is_some_and(|h| !h.is_empty()) {
                    errs.add("header", "this template's header takes no value");
                }
            }
        }
        let body = values_for(&mut errs, "body", &self.body, &fill.body);
        if !self.body.vars.is_empty() {
            let params: Vec<Value> = self
                .body
                .vars
                .iter()
                .zip(&body)
                .map(|(k, v)| param(k, v, self.format))
                .collect();
            components.push(json!({ "type": "body", "parameters": params }));
        }
        components.extend(button_params(
            &mut errs,
            "buttons",
            &self.buttons,
            &fill.buttons,
            None,
            &mut new_code,
            &mut links,
        ));
        if !self.cards.is_empty() {
            if fill.cards.len() != self.cards.len() {
                errs.add(
                    "cards",
                    format!("give values for each of the {} cards", self.cards.len()),
                );
            }
            let mut cards = Vec::new();
            for (i, (card, cf)) in self.cards.iter().zip(&fill.cards).enumerate() {
                let f = format!("cards[{i}]");
                let m = media_value(&mut errs, &format!("{f}.header"), cf.header.as_deref());
                let mut comps =
                    vec![json!({ "type": "header", "parameters": [media_param(card.media, &m)] })];
                let vals = values_for(&mut errs, &format!("{f}.body"), &card.body, &cf.body);
                if !card.body.vars.is_empty() {
                    let params: Vec<Value> = card
                        .body
                        .vars
                        .iter()
                        .zip(&vals)
                        .map(|(k, v)| param(k, v, self.format))
                        .collect();
                    comps.push(json!({ "type": "body", "parameters": params }));
                }
                comps.extend(button_params(
                    &mut errs,
                    &format!("{f}.buttons"),
                    &card.buttons,
                    &cf.buttons,
                    Some(i),
                    &mut new_code,
                    &mut links,
                ));
                cards.push(json!({ "card_index": i, "components": comps }));
            }
            components.push(json!({ "type": "carousel", "cards": cards }));
        }
        if !errs.0.is_empty() {
            return Err(FieldErrors(errs.0));
        }
        Ok(Filled {
            components,
            links,
            text: render(self, fill),
        })
    }
}

fn body_input(t: &VarText) -> BodyInput {
    BodyInput {
        text: t.text.clone(),
        examples: t.examples.clone(),
    }
}

fn button_input(b: &Button) -> ButtonInput {
    let mut out = ButtonInput {
        kind: b.kind().into(),
        text: None,
        url: None,
        track: false,
        phone_number: None,
        example: None,
    };
    match b {
        Button::QuickReply { text } => out.text = Some(text.clone()),
        Button::Url {
            text,
            url,
            example,
            track,
        } => {
            out.text = Some(text.clone());
            out.url = Some(url.clone());
            out.example = example.clone();
            out.track = *track;
        }
        Button::PhoneNumber { text, phone } => {
            out.text = Some(text.clone());
            out.phone_number = Some(phone.clone());
        }
        Button::CopyCode { example } => out.example = Some(example.clone()),
    }
    out
}

/// A stored sample without its handle is submitted with none (the provider refuses it).
fn media_header_json(
    kind: MediaKind,
    sample: &MediaSample,
    handles: &BTreeMap<MediaId, String>,
) -> Value {
    let handle = match sample {
        MediaSample::Given(h) => Some(h),
        MediaSample::Stored(id) => handles.get(id),
    };
    json!({ "type": "HEADER", "format": kind.as_str().to_ascii_uppercase(), "example": { "header_handle": handle.into_iter().collect::<Vec<_>>() } })
}

fn media_input(kind: MediaKind, sample: &MediaSample) -> HeaderInput {
    HeaderInput {
        format: kind.as_str().into(),
        text: None,
        example: sample.given().map(str::to_owned),
        sample: match sample {
            MediaSample::Stored(id) => Some(id.to_string()),
            MediaSample::Given(_) => None,
        },
    }
}

fn text_json(kind: &str, t: &VarText, format: ParamFormat) -> Value {
    let mut v = json!({ "type": kind, "text": t.text });
    if !t.vars.is_empty() {
        v["example"] = match format {
            ParamFormat::Positional => json!({ "body_text": [t.examples] }),
            ParamFormat::Named => json!({ "body_text_named_params": t.vars.iter().zip(&t.examples)
                .map(|(k, e)| json!({ "param_name": k, "example": e })).collect::<Vec<_>>() }),
        };
    }
    v
}

fn buttons_json(buttons: &[Button], redirect_base: &str) -> Value {
    let list: Vec<Value> = buttons
        .iter()
        .map(|b| match b {
            Button::QuickReply { text } => json!({ "type": "QUICK_REPLY", "text": text }),
            Button::Url { text, track: true, .. } => {
                let base = redirect_base.trim_end_matches('/');
                json!({ "type": "URL", "text": text, "url": format!("{base}/r/{{{{1}}}}"), "example": [format!("{base}/r/sample")] })
            }
            Button::Url { text, url, example, .. } => {
                let mut v = json!({ "type": "URL", "text": text, "url": url });
                if let Some(e) = example {
                    v["example"] = json!([e]);
                }
                v
            }
            Button::PhoneNumber { text, phone } => json!({ "type": "PHONE_NUMBER", "text": text, "phone_number": phone }),
            Button::CopyCode { example } => json!({ "type": "COPY_CODE", "example": example }),
        })
        .collect();
    json!({ "type": "BUTTONS", "buttons": list })
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn input_from_meta(t: &Value) -> TemplateInput {
    let comps = t
        .get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut input = TemplateInput {
        name: s(t, "name").unwrap_or_default(),
        language: s(t, "language").unwrap_or_default(),
        category: s(t, "category").unwrap_or_default(),
        ..Default::default()
    };
    let (header, body, footer, buttons, cards) = read_components(&comps);
    input.header = header;
    input.body = body.unwrap_or_default();
    input.footer = footer;
    input.buttons = buttons;
    input.cards = cards;
    input.otp = otp_from_meta(&comps);
    if input.otp.is_some() {
        // WhatsApp's own text and footer: the options say it all.
        input.body = BodyInput::default();
        input.footer = None;
        input.buttons.clear();
    }
    input
}

/// The one-time-password options of an authentication template as Meta lists it.
fn otp_from_meta(comps: &[Value]) -> Option<OtpInput> {
    let of = |kind: &str| {
        comps
            .iter()
            .find(|c| s(c, "type").is_some_and(|t| t.eq_ignore_ascii_case(kind)))
    };
    let button = of("BUTTONS")?
        .get("buttons")?
        .as_array()?
        .iter()
        .find(|b| s(b, "type").is_some_and(|t| t.eq_ignore_ascii_case("OTP")))?;
    let apps = button
        .get("supported_apps")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|app| OtpApp {
                    package_name: s(app, "package_name").unwrap_or_default(),
                    signature_hash: s(app, "signature_hash").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(OtpInput {
        otp_type: s(button, "otp_type")
            .unwrap_or_default()
            .to_ascii_lowercase(),
        button_text: s(button, "text"),
        autofill_text: s(button, "autofill_text"),
        supported_apps: apps,
        zero_tap_terms_accepted: button
            .get("zero_tap_terms_accepted")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        add_security_recommendation: of("BODY")
            .and_then(|b| b.get("add_security_recommendation"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        code_expiration_minutes: of("FOOTER")
            .and_then(|f| f.get("code_expiration_minutes"))
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok()),
    })
}

type Parts = (
    Option<HeaderInput>,
    Option<BodyInput>,
    Option<String>,
    Vec<ButtonInput>,
    Vec<CardInput>,
);

fn read_components(comps: &[Value]) -> Parts {
    let (mut header, mut body, mut footer, mut buttons, mut cards) =
        (None, None, None, Vec::new(), Vec::new());
    for c in comps {
        let kind = s(c, "type").unwrap_or_default().to_ascii_uppercase();
        let ex = c.get("example").cloned().unwrap_or(Value::Null);
        match kind.as_str() {
            "HEADER" => {
                let format = s(c, "format").unwrap_or_default().to_ascii_lowercase();
                let example = if format == "text" {
                    ex.get("header_text")
                        .and_then(|a| a.get(0))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| {
                            ex.get("header_text_named_params")
                                .and_then(|a| a.get(0))
                                .and_then(|p| s(p, "example"))
                        })
                } else {
                    ex.get("header_handle")
                        .and_then(|a| a.get(0))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                header = Some(HeaderInput {
                    format,
                    text: s(c, "text"),
                    example,
                    sample: None,
                });
            }
            "BODY" => {
                let examples: Vec<String> = match ex
                    .get("body_text")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_array)
                {
                    Some(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    None => ex
                        .get("body_text_named_params")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|p| s(p, "example")).collect())
                        .unwrap_or_default(),
                };
                body = Some(BodyInput {
                    text: s(c, "text").unwrap_or_default(),
                    examples,
                });
            }
            "FOOTER" => footer = s(c, "text"),
            "BUTTONS" => {
                for b in c
                    .get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let kind = s(b, "type").unwrap_or_default().to_ascii_lowercase();
                    let example = match b.get("example") {
                        Some(Value::Array(a)) => {
                            a.first().and_then(Value::as_str).map(str::to_owned)
                        }
                        Some(Value::String(e)) => Some(e.clone()),
                        _ => None,
                    };
                    buttons.push(ButtonInput {
                        kind,
                        text: s(b, "text"),
                        url: s(b, "url"),
                        track: false,
                        phone_number: s(b, "phone_number"),
                        example,
                    });
                }
            }
            "CAROUSEL" => {
                for card in c
                    .get("cards")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let inner = card
                        .get("components")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let (h, b, _, bs, _) = read_components(&inner);
                    cards.push(CardInput {
                        header: h.unwrap_or(HeaderInput {
                            format: String::new(),
                            text: None,
                            example: None,
                            sample: None,
                        }),
                        body: b.unwrap_or_default(),
                        buttons: bs,
                    });
                }
            }
            _ => {}
        }
    }
    (header, body, footer, buttons, cards)
}

// ---------------------------------------------------------------------------------------
// Filling a template for a send.
// ---------------------------------------------------------------------------------------

/// The place of a location header, for one send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationFill {
    /// −90 to 90.
    pub latitude: f64,
    /// −180 to 180.
    pub longitude: f64,
    /// The place's name (≤ 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its address (≤ 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Most characters of a location header's name or address.
pub const MAX_LOCATION_TEXT: usize = 1000;

impl LocationFill {
    /// The `location` parameter (coordinates as decimal strings, as Meta documents), or
    /// `None` with the refusals added.
    fn checked(&self, errs: &mut Errs) -> Option<Value> {
        let before = errs.0.len();
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            errs.add("location.latitude", "a latitude from -90 to 90");
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            errs.add("location.longitude", "a longitude from -180 to 180");
        }
        let text = |errs: &mut Errs, field: &str, v: &Option<String>| -> Option<String> {
            let v = clean_value(v.as_deref().unwrap_or_default());
            if chars(&v) > MAX_LOCATION_TEXT {
                errs.add(
                    format!("location.{field}"),
                    format!("at most {MAX_LOCATION_TEXT} characters"),
                );
            }
            (!v.is_empty()).then_some(v)
        };
        let name = text(errs, "name", &self.name);
        let address = text(errs, "address", &self.address);
        if errs.0.len() != before {
            return None;
        }
        let mut p = json!({ "latitude": self.latitude.to_string(), "longitude": self.longitude.to_string() });
        if let Some(n) = name {
            p["name"] = json!(n);
        }
        if let Some(a) = address {
            p["address"] = json!(a);
        }
        Some(p)
    }

    /// How a phone labels the pin.
    fn label(&self) -> String {
        let mut out = String::from("[location");
        let words: Vec<String> = [&self.name, &self.address]
            .into_iter()
            .flatten()
            .map(|s| clean_value(s))
            .filter(|s| !s.is_empty())
            .collect();
        if !words.is_empty() {
            out.push_str(": ");
            out.push_str(&words.join(", "));
        }
        out.push(']');
        out
    }
}

/// Values for one send of a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FillInput {
    /// A text header's variable, or a media header's file (an https link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A location header's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationFill>,
    /// The body's values, in the order its variables appear.
    #[serde(default)]
    pub body: Vec<String>,
    /// Button values by button index: a URL's ending, a copy code. Tracked buttons are
    /// filled by Frontdesk (a URL with a variable still takes its ending here).
    #[serde(default)]
    pub buttons: BTreeMap<usize, String>,
    /// Carousel: values per card, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<CardFill>,
}

/// Values for one carousel card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardFill {
    /// The card's file (an https link).
    pub header: Option<String>,
    #[serde(default)]
    pub body: Vec<String>,
    #[serde(default)]
    pub buttons: BTreeMap<usize, String>,
}

/// A tracked button's link for one send: the code sent in the URL and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub card: Option<usize>,
    pub button: usize,
    pub code: String,
    /// The template's URL (with its filled ending): the only place the redirect goes.
    pub destination: String,
}

/// A filled template: the send's components, the tracked links to store, and the text a
/// phone shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Filled {
    pub components: Vec<Value>,
    pub links: Vec<TrackedLink>,
    pub text: String,
}

fn clean_value(v: &str) -> String {
    // WhatsApp refuses parameters with new lines, tabs or more than four spaces in a row.
    let mut out = String::new();
    for w in v.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

fn one_value(errs: &mut Errs, field: &str, v: Option<&str>) -> String {
    let v = clean_value(v.unwrap_or_default());
    if v.is_empty() || chars(&v) > MAX_VALUE {
        errs.add(field, format!("a value of 1–{MAX_VALUE} characters"));
    }
    v
}

fn media_value(errs: &mut Errs, field: &str, v: Option<&str>) -> String {
    let v = v.unwrap_or_default().trim();
    if !v.starts_with("https://") || v.len() > MAX_URL || v.chars().any(char::is_whitespace) {
        errs.add(field, "the file as an https link");
    }
    v.to_owned()
}

fn values_for(errs: &mut Errs, field: &str, t: &VarText, given: &[String]) -> Vec<String> {
    if given.len() != t.vars.len() {
        errs.add(
            field,
            format!(
                "give {} value(s), one per variable ({} given)",
                t.vars.len(),
                given.len()
            ),
        );
        return Vec::new();
    }
    given
        .iter()
        .enumerate()
        .map(|(i, v)| one_value(errs, &format!("{field}[{i}]"), Some(v)))
        .collect()
}

fn param(key: &str, value: &str, format: ParamFormat) -> Value {
    match format {
        ParamFormat::Positional => json!({ "type": "text", "text": value }),
        ParamFormat::Named => json!({ "type": "text", "parameter_name": key, "text": value }),
    }
}

fn media_param(kind: MediaKind, link: &str) -> Value {
    json!({ "type": kind.as_str(), kind.as_str(): { "link": link } })
}

fn url_suffix_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 500
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+".contains(&b))
}

#[allow(clippy::too_many_arguments)]
fn button_params(
    errs: &mut Errs,
    field: &str,
    buttons: &[Button],
    given: &BTreeMap<usize, String>,
    card: Option<usize>,
    new_code: &mut impl FnMut() -> String,
    links: &mut Vec<TrackedLink>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for i in given.keys() {
        if buttons.get(*i).is_none_or(|b| match b {
            Button::Url { url, .. } => !url_has_var(url),
            Button::CopyCode { .. } => false,
            _ => true,
        }) {
            errs.add(format!("{field}[{i}]"), "this button takes no value");
        }
    }
    for (i, b) in buttons.iter().enumerate() {
        match b {
            Button::Url { url, track, .. } => {
                let suffix = if url_has_var(url) {
                    let v = given.get(&i).map(|s| s.trim()).unwrap_or_default();
                    if !url_suffix_ok(v) {
                        errs.add(
                            format!("{field}[{i}]"),
                            "the end of the URL: letters, digits and - . _ ~ / ? = & % +",
                        );
                    }
                    Some(v.to_owned())
                } else {
                    None
                };
                let value = if *track {
                    let code = new_code();
                    let destination = match &suffix {
                        Some(s) => format!("{}{s}", &url[..url.len() - 5]),
                        None => url.clone(),
                    };
                    links.push(TrackedLink {
                        card,
                        button: i,
                        code: code.clone(),
                        destination,
                    });
                    code
                } else if let Some(s) = suffix {
                    s
                } else {
                    continue;
                };
                out.push(json!({ "type": "button", "sub_type": "url", "index": i.to_string(), "parameters": [{ "type": "text", "text": value }] }));
            }
            Button::CopyCode { .. } => {
                let v = given.get(&i).map(|s| s.trim()).unwrap_or_default();
                if v.is_empty()
                    || v.len() > MAX_COPY_CODE
                    || !v.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    errs.add(
                        format!("{field}[{i}]"),
                        format!("a code of 1–{MAX_COPY_CODE} letters and digits"),
                    );
                }
                out.push(json!({ "type": "button", "sub_type": "copy_code", "index": i.to_string(), "parameters": [{ "type": "coupon_code", "coupon_code": v }] }));
            }
            _ => {}
        }
    }
    out
}

/// Replaces each variable of `t` by its value (missing values stay as written).
pub fn substitute(text: &str, vars: &[String], values: &[String]) -> String {
    let mut out = text.to_owned();
    for (k, v) in vars.iter().zip(values) {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// The message as a phone shows it: header, body, footer, then the buttons' labels.
fn render(t: &TemplateSpec, f: &FillInput) -> String {
    if let Some(o) = &t.otp {
        let code = f
            .body
            .first()
            .map(|c| clean_value(c))
            .unwrap_or_else(|| "123456".into());
        return o.render(&code);
    }
    let clean = |vs: &[String]| vs.iter().map(|v| clean_value(v)).collect::<Vec<_>>();
    let mut parts = Vec::new();
    match &t.header {
        Some(Header::Text(h)) => {
            parts.push(substitute(&h.text, &h.vars, &clean(f.header.as_slice())))
        }
        Some(Header::Media { kind, .. }) => parts.push(format!("[{}]", kind.as_str())),
        Some(Header::Location) => parts.push(
            f.location
                .as_ref()
                .map(LocationFill::label)
                .unwrap_or_else(|| "[location]".into()),
        ),
        None => {}
    }
    parts.push(substitute(&t.body.text, &t.body.vars, &clean(&f.body)));
    if let Some(foot) = &t.footer {
        parts.push(foot.clone());
    }
    let labels: Vec<String> = t
        .buttons
        .iter()
        .map(|b| format!("[{}]", b.label()))
        .collect();
    if !labels.is_empty() {
        parts.push(labels.join(" "));
    }
    for (i, c) in t.cards.iter().enumerate() {
        let values = f
            .cards
            .get(i)
            .map(|c| clean(&c.body))
            .unwrap_or_else(|| c.body.examples.clone());
        let labels: Vec<String> = c
            .buttons
            .iter()
            .map(|b| format!("[{}]", b.label()))
            .collect();
        parts.push(format!(
            "[card {}: {}] {} {}",
            i + 1,
            c.media.as_str(),
            substitute(&c.body.text, &c.body.vars, &values),
            labels.join(" ")
        ));
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> TemplateInput {
        TemplateInput {
            name: "appointment_reminder".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            header: Some(HeaderInput {
                format: "text".into(),
                text: Some("Hi {{1}}".into()),
                example: Some("Ana".into()),
                sample: None,
            }),
            body: BodyInput {
                text: "Your visit is on {{1}} at {{2}}. See you!".into(),
                examples: vec!["Monday".into(), "10:30".into()],
            },
            footer: Some("Reply STOP to opt out".into()),
            buttons: vec![
                ButtonInput {
                    kind: "quick_reply".into(),
                    text: Some("Confirm".into()),
                    url: None,
                    track: false,
                    phone_number: None,
                    example: None,
                },
                ButtonInput {
                    kind: "url".into(),
                    text: Some("Directions".into()),
                    url: Some("https://clinic.example/map".into()),
                    track: true,
                    phone_number: None,
                    example: None,
                },
            ],
            cards: vec![],
            otp: None,
        }
    }

    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|f| f.field).collect()
    }

    fn at_the_clinic() -> TemplateInput {
        let mut t = basic();
        t.header = Some(HeaderInput {
            format: "location".into(),
            text: None,
            example: None,
            sample: None,
        });
        t
    }

    fn otp(kind: &str) -> TemplateInput {
        TemplateInput {
            name: "login_code".into(),
            language: "en_US".into(),
            category: "AUTHENTICATION".into(),
            otp: Some(OtpInput {
                otp_type: kind.into(),
                button_text: Some("Copy code".into()),
                autofill_text: (kind != "copy_code").then(|| "Autofill".into()),
                supported_apps: if kind == "copy_code" {
                    vec![]
                } else {
                    vec![OtpApp {
                        package_name: "com.example.clinic".into(),
                        signature_hash: "K8a/AINcGX7".into(),
                    }]
                },
                zero_tap_terms_accepted: kind == "zero_tap",
                add_security_recommendation: true,
                code_expiration_minutes: Some(10),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn otp_templates_use_metas_preset_format_and_send_the_code_twice() {
        for kind in ["copy_code", "one_tap", "zero_tap"] {
            let spec = TemplateSpec::parse(&otp(kind)).unwrap();
            assert_eq!(
                TemplateSpec::parse(&spec.to_input()).unwrap(),
                spec,
                "{kind}"
            );
            let meta = spec.to_meta_components("https://desk.example/", &BTreeMap::new());
            assert_eq!(
                meta[0],
                json!({ "type": "BODY", "add_security_recommendation": true })
            );
            assert_eq!(
                meta[1],
                json!({ "type": "FOOTER", "code_expiration_minutes": 10 })
            );
            let button = &meta[2]["buttons"][0];
            assert_eq!(button["type"], "OTP");
            assert_eq!(button["otp_type"], kind.to_ascii_uppercase());
            // Read back as Meta lists it (with its own body and footer texts).
            let mut listed = meta.clone();
            listed[0]["text"] = json!(
                "*{{1}}* is your verification code. For your security, do not share this code."
            );
            listed[1]["text"] = json!("This code expires in 10 minutes.");
            let back = TemplateSpec::from_meta(&json!({ "name": "login_code", "language": "en_US", "category": "AUTHENTICATION", "components": listed })).unwrap();
            assert_eq!(back, spec, "{kind}");
        }
        let spec = TemplateSpec::parse(&otp("one_tap")).unwrap();
        assert_eq!(spec.otp.as_ref().unwrap().supported_apps.len(), 1);
        let filled = spec
            .fill(
                &FillInput {
                    body: vec!["481516".into()],
                    ..Default::default()
                },
                || "x".into(),
            )
            .unwrap();
        assert_eq!(filled.components[0]["parameters"][0]["text"], "481516");
        assert_eq!(
            (
                filled.components[1]["sub_type"].as_str(),
                filled.components[1]["parameters"][0]["text"].as_str()
            ),
            (Some("url"), Some("481516"))
        );
        assert_eq!(
            filled.text,
            "481516 is your verification code. For your security, do not share this code.\nThis code expires in 10 minutes.\n[Copy code]"
        );
        assert_eq!(
            fields(
                spec.fill(
                    &FillInput {
                        body: vec!["12 34".into()],
                        ..Default::default()
                    },
                    || "x".into()
                )
                .unwrap_err()
            ),
            ["body"]
        );

        // Meta's limits.
        let mut bad = otp("zero_tap");
        let o = bad.otp.as_mut().unwrap();
        o.zero_tap_terms_accepted = false;
        o.code_expiration_minutes = Some(91);
        o.supported_apps[0].signature_hash = "short".into();
        o.supported_apps[0].package_name = "noDots".into();
        bad.category = "UTILITY".into();
        bad.body.text = "My own text {{1}}".into();
        assert_eq!(
            fields(TemplateSpec::parse(&bad).unwrap_err()),
            [
                "category",
                "body.text",
                "otp.supported_apps[0].package_name",
                "otp.supported_apps[0].signature_hash",
                "otp.zero_tap_terms_accepted",
                "otp.code_expiration_minutes"
            ]
        );
        let mut apps = otp("one_tap");
        apps.otp.as_mut().unwrap().supported_apps.clear();
        assert_eq!(
            fields(TemplateSpec::parse(&apps).unwrap_err()),
            ["otp.supported_apps"]
        );
        let mut copy = otp("copy_code");
        copy.otp.as_mut().unwrap().autofill_text = Some("Autofill".into());
        copy.footer = Some("mine".into());
        assert_eq!(
            fields(TemplateSpec::parse(&copy).unwrap_err()),
            ["otp", "otp.autofill_text"]
        );
    }

    #[test]
    fn a_location_header_is_submitted_bare_and_filled_with_the_place_per_send() {
        let spec = TemplateSpec::parse(&at_the_clinic()).unwrap();
        assert_eq!(spec.header, Some(Header::Location));
        assert_eq!(TemplateSpec::parse(&spec.to_input()).unwrap(), spec);
        let meta = spec.to_meta_components("https://desk.example/", &BTreeMap::new());
        assert_eq!(meta[0], json!({ "type": "HEADER", "format": "LOCATION" }));
        // Read back as Meta lists it.
        let listed = json!({ "name": "appointment_reminder", "language": "en_US", "category": "UTILITY", "components": meta });
        assert_eq!(
            TemplateSpec::from_meta(&listed).unwrap().header,
            Some(Header::Location)
        );
        assert!(spec.preview().starts_with("[location]\nYour visit"));

        let place = LocationFill {
            latitude: 18.5204,
            longitude: 73.8567,
            name: Some("Sunrise  Clinic".into()),
            address: Some("12 FC Road, Pune".into()),
        };
        let fill = FillInput {
            location: Some(place.clone()),
            body: vec!["Monday".into(), "10:30".into()],
            ..Default::default()
        };
        let filled = spec.fill(&fill, || "fdl_x".into()).unwrap();
        assert_eq!(
            filled.components[0],
            json!({ "type": "header", "parameters": [{ "type": "location", "location": {
                "latitude": "18.5204", "longitude": "73.8567", "name": "Sunrise Clinic", "address": "12 FC Road, Pune" } }] })
        );
        assert!(
            filled
                .text
                .starts_with("[location: Sunrise Clinic, 12 FC Road, Pune]\n"),
            "{}",
            filled.text
        );

        // The place is required, bounded, and a text is not a place.
        let missing = FillInput {
            body: fill.body.clone(),
            ..Default::default()
        };
        assert_eq!(
            fields(spec.fill(&missing, || "c".into()).unwrap_err()),
            ["location"]
        );
        let wrong = FillInput {
            header: Some("Pune".into()),
            location: Some(LocationFill {
                latitude: 91.0,
                longitude: f64::NAN,
                name: Some("x".repeat(1001)),
                address: None,
            }),
            body: fill.body.clone(),
            ..Default::default()
        };
        assert_eq!(
            fields(spec.fill(&wrong, || "c".into()).unwrap_err()),
            [
                "header",
                "location.latitude",
                "location.longitude",
                "location.name"
            ]
        );
        // No sample file, no text; and never in an authentication template.
        let mut bad = at_the_clinic();
        bad.header.as_mut().unwrap().example = Some("https://x.example/a.png".into());
        assert_eq!(
            fields(TemplateSpec::parse(&bad).unwrap_err()),
            ["header.example"]
        );
        let mut auth = at_the_clinic();
        auth.category = "AUTHENTICATION".into();
        auth.buttons.truncate(1);
        assert_eq!(
            fields(TemplateSpec::parse(&auth).unwrap_err()),
            ["category"]
        );
    }

    #[test]
    fn a_full_template_parses_and_round_trips_through_its_written_form() {
        let spec = TemplateSpec::parse(&basic()).unwrap();
        assert_eq!(spec.body.vars, ["1", "2"]);
        assert_eq!(spec.format, ParamFormat::Positional);
        assert_eq!(TemplateSpec::parse(&spec.to_input()).unwrap(), spec);
        assert_eq!(
            spec.preview(),
            "Hi Ana\nYour visit is on Monday at 10:30. See you!\nReply STOP to opt out\n[Confirm] [Directions]"
        );
    }

    #[test]
    fn meta_components_carry_examples_and_the_tracked_redirect() {
        let spec = TemplateSpec::parse(&basic()).unwrap();
        let c = spec.to_meta_components("https://desk.example/", &BTreeMap::new());
        assert_eq!(c[0]["example"]["header_text"][0], "Ana");
        assert_eq!(c[1]["type"], "BODY");
        assert_eq!(c[1]["example"]["body_text"][0][1], "10:30");
        assert_eq!(c[2]["text"], "Reply STOP to opt out");
        assert_eq!(c[3]["buttons"][1]["url"], "https://desk.example/r/{{1}}");
        // What Meta lists reads back as the same template (the tracked URL stays a URL).
        let listed = json!({ "name": "appointment_reminder", "language": "en_US", "category": "UTILITY", "components": c });
        let back = TemplateSpec::from_meta(&listed).unwrap();
        assert_eq!(back.body, spec.body);
        assert_eq!(back.header, spec.header);
    }

    #[test]
    fn variables_must_be_numbered_in_order_with_examples_and_not_at_the_ends() {
        let mut t = basic();
        t.body.text = "Visit {{2}} then {{1}} ok".into();
        assert_eq!(fields(TemplateSpec::parse(&t).unwrap_err()), ["body.text"]);
        t.body.text = "{{1}} is your visit day, at {{2}}".into();
        assert!(fields(TemplateSpec::parse(&t).unwrap_err()).contains(&"body.text".to_owned()));
        t.body.text = "Visit on {{1}} at {{2}} ok".into();
        t.body.examples = vec!["Monday".into()];
        assert_eq!(
            fields(TemplateSpec::parse(&t).unwrap_err()),
            ["body.examples"]
        );
        t.body.text = "Visit on {{1}} at {{first}} ok".into();
        assert!(TemplateSpec::parse(&t).is_err(), "mixed styles");
        t.body.text = "Visit on {{1 ok".into();
        assert!(TemplateSpec::parse(&t).is_err(), "unclosed");
    }

    #[test]
    fn named_variables_are_submitted_and_sent_by_name() {
        let mut t = basic();
        t.header = None;
        t.body = BodyInput {
            text: "Hello {{first_name}}, your code is {{code}}.".into(),
            examples: vec!["Ana".into(), "X1".into()],
        };
        let spec = TemplateSpec::parse(&t).unwrap();
        assert_eq!(spec.format, ParamFormat::Named);
        let c = spec.to_meta_components("https://d.example", &BTreeMap::new());
        assert_eq!(
            c[0]["example"]["body_text_named_params"][1]["param_name"],
            "code"
        );
        assert_eq!(
            spec.to_meta_submission("https://d.example", &BTreeMap::new())["parameter_format"],
            "NAMED"
        );
        let filled = spec
            .fill(
                &FillInput {
                    body: vec!["Ravi".into(), "77".into()],
                    ..Default::default()
                },
                || "c0de".into(),
            )
            .unwrap();
        assert_eq!(
            filled.components[0]["parameters"][0],
            json!({ "type": "text", "parameter_name": "first_name", "text": "Ravi" })
        );
        assert!(filled.text.starts_with("Hello Ravi, your code is 77."));
    }

    #[test]
    fn limits_are_enforced_by_field() {
        let mut t = basic();
        t.name = "Bad Name".into();
        t.footer = Some("x".repeat(61));
        t.body.text = format!("a {{{{1}}}} b {{{{2}}}} {}", "y".repeat(1020));
        t.buttons = (0..11)
            .map(|i| ButtonInput {
                kind: "quick_reply".into(),
                text: Some(format!("b{i}")),
                url: None,
                track: false,
                phone_number: None,
                example: None,
            })
            .collect();
        let f = fields(TemplateSpec::parse(&t).unwrap_err());
        for want in ["name", "footer", "body.text", "buttons"] {
            assert!(f.contains(&want.to_owned()), "{want} in {f:?}");
        }
        let mut t = basic();
        t.buttons[1].url = Some("https://x.example/{{1}}/more".into());
        assert_eq!(
            fields(TemplateSpec::parse(&t).unwrap_err()),
            ["buttons[1].url"]
        );
        t.buttons[1].url = Some("https://x.example/{{1}}".into());
        assert_eq!(
            fields(TemplateSpec::parse(&t).unwrap_err()),
            ["buttons[1].example"]
        );
        t.buttons[1].example = Some("https://x.example/abc".into());
        TemplateSpec::parse(&t).unwrap();
        t.buttons.push(ButtonInput {
            kind: "quick_reply".into(),
            text: Some("Later".into()),
            url: None,
            track: false,
            phone_number: None,
            example: None,
        });
        assert_eq!(
            fields(TemplateSpec::parse(&t).unwrap_err()),
            ["buttons"],
            "quick replies grouped"
        );
    }

    #[test]
    fn fill_checks_values_and_makes_tracked_links_to_the_stored_url() {
        let spec = TemplateSpec::parse(&basic()).unwrap();
        let err = spec
            .fill(
                &FillInput {
                    body: vec!["Mon".into()],
                    ..Default::default()
                },
                || "x".into(),
            )
            .unwrap_err();
        assert_eq!(fields(err), ["header", "body"]);
        let filled = spec
            .fill(
                &FillInput {
                    header: Some("Ravi".into()),
                    body: vec!["Tuesday".into(), "9:00\n".into()],
                    ..Default::default()
                },
                || "CODE123".into(),
            )
            .unwrap();
        assert_eq!(filled.components[0]["parameters"][0]["text"], "Ravi");
        assert_eq!(filled.components[1]["parameters"][1]["text"], "9:00");
        assert_eq!(
            filled.components[2],
            json!({ "type": "button", "sub_type": "url", "index": "1", "parameters": [{ "type": "text", "text": "CODE123" }] })
        );
        assert_eq!(
            filled.links,
            [TrackedLink {
                card: None,
                button: 1,
                code: "CODE123".into(),
                destination: "https://clinic.example/map".into()
            }]
        );
        assert!(filled.text.contains("Your visit is on Tuesday at 9:00."));
        let err = spec
            .fill(
                &FillInput {
                    header: Some("R".into()),
                    body: vec!["a".into(), "b".into()],
                    buttons: BTreeMap::from([(0, "x".into())]),
                    ..Default::default()
                },
                || "c".into(),
            )
            .unwrap_err();
        assert_eq!(fields(err), ["buttons[0]"]);
    }

    #[test]
    fn media_headers_and_carousels() {
        let card = |n: &str| CardInput {
            header: HeaderInput {
                format: "image".into(),
                text: None,
                example: Some(format!("https://img.example/{n}.jpg")),
                sample: None,
            },
            body: BodyInput {
                text: format!("Card {n} for {{{{1}}}} only"),
                examples: vec!["Ana".into()],
            },
            buttons: vec![ButtonInput {
                kind: "url".into(),
                text: Some("Buy".into()),
                url: Some("https://shop.example/{{1}}".into()),
                track: true,
                phone_number: None,
                example: Some("https://shop.example/p1".into()),
            }],
        };
        let t = TemplateInput {
            name: "spring_sale".into(),
            language: "en".into(),
            category: "MARKETING".into(),
            body: BodyInput {
                text: "Our spring picks, {{1}}:".into(),
                examples: vec!["Ana".into()],
            },
            cards: vec![card("a"), card("b")],
            ..Default::default()
        };
        let spec = TemplateSpec::parse(&t).unwrap();
        assert_eq!(spec.tracked_buttons(), [(Some(0), 0), (Some(1), 0)]);
        assert_eq!(TemplateSpec::parse(&spec.to_input()).unwrap(), spec);
        let meta = spec.to_meta_components("https://d.example", &BTreeMap::new());
        assert_eq!(meta[1]["type"], "CAROUSEL");
        assert_eq!(meta[1]["cards"][1]["components"][0]["format"], "IMAGE");
        let fill = FillInput {
            body: vec!["Ravi".into()],
            cards: vec![
                CardFill {
                    header: Some("https://img.example/1.jpg".into()),
                    body: vec!["R".into()],
                    buttons: BTreeMap::from([(0, "p1".into())]),
                },
                CardFill {
                    header: Some("https://img.example/2.jpg".into()),
                    body: vec!["R".into()],
                    buttons: BTreeMap::from([(0, "p2".into())]),
                },
            ],
            ..Default::default()
        };
        let mut n = 0;
        let filled = spec
            .fill(&fill, || {
                n += 1;
                format!("k{n}")
            })
            .unwrap();
        assert_eq!(filled.links[1].destination, "https://shop.example/p2");
        assert_eq!(
            filled.components[1]["cards"][1]["components"][0]["parameters"][0]["image"]["link"],
            "https://img.example/2.jpg"
        );
        let mut one = t.clone();
        one.cards.truncate(1);
        assert_eq!(fields(TemplateSpec::parse(&one).unwrap_err()), ["cards"]);
        let mut mixed = t.clone();
        mixed.cards[1].header.format = "video".into();
        assert_eq!(fields(TemplateSpec::parse(&mixed).unwrap_err()), ["cards"]);
        let mut no_example = basic();
        no_example.header = Some(HeaderInput {
            format: "document".into(),
            text: None,
            example: None,
            sample: None,
        });
        assert_eq!(
            fields(TemplateSpec::parse(&no_example).unwrap_err()),
            ["header.example"]
        );
    }

    #[test]
    fn a_stored_sample_is_submitted_as_the_handle_its_upload_got() {
        let id = MediaId::new();
        let mut t = basic();
        t.header = Some(HeaderInput {
            format: "image".into(),
            text: None,
            example: None,
            sample: Some(id.to_string()),
        });
        let spec = TemplateSpec::parse(&t).unwrap();
        assert_eq!(
            spec.stored_samples(),
            vec![("header.sample".to_owned(), MediaKind::Image, id)]
        );
        assert_eq!(
            TemplateSpec::parse(&spec.to_input()).unwrap(),
            spec,
            "round trip"
        );
        let handles: BTreeMap<MediaId, String> = [(id, "4::aW1hZ2UvcG5n:ARb".to_owned())].into();
        let c = spec.to_meta_components("https://d.example", &handles);
        assert_eq!(
            c[0],
            json!({ "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1hZ2UvcG5n:ARb"] } })
        );
        // Without its handle, nothing is made up: the provider refuses the submission.
        let c = spec.to_meta_components("https://d.example", &BTreeMap::new());
        assert_eq!(c[0]["example"]["header_handle"], json!([]));
        // Both a file and a handle, a file id that is not one, or a sample on a text header.
        let mut both = t.clone();
        both.header.as_mut().unwrap().example = Some("4::x".into());
        assert_eq!(
            fields(TemplateSpec::parse(&both).unwrap_err()),
            ["header.sample"]
        );
        let mut bad = t.clone();
        bad.header.as_mut().unwrap().sample = Some("../etc".into());
        assert_eq!(
            fields(TemplateSpec::parse(&bad).unwrap_err()),
            ["header.sample"]
        );
        let mut text = basic();
        text.header.as_mut().unwrap().sample = Some(id.to_string());
        assert_eq!(
            fields(TemplateSpec::parse(&text).unwrap_err()),
            ["header.sample"]
        );
        assert_eq!(sample_rule(MediaKind::Image).0, ["image/jpeg", "image/png"]);
        assert_eq!(sample_rule(MediaKind::Document).0, ["application/pdf"]);
    }

    #[test]
    fn authentication_templates_have_no_links_or_media() {
        let mut t = basic();
        t.category = "AUTHENTICATION".into();
        assert_eq!(fields(TemplateSpec::parse(&t).unwrap_err()), ["buttons"]);
        t.buttons = vec![ButtonInput {
            kind: "copy_code".into(),
            text: None,
            url: None,
            track: false,
            phone_number: None,
            example: Some("123456".into()),
        }];
        let spec = TemplateSpec::parse(&t).unwrap();
        let f = spec
            .fill(
                &FillInput {
                    header: Some("A".into()),
                    body: vec!["x".into(), "y".into()],
                    buttons: BTreeMap::from([(0, "998877".into())]),
                    ..Default::default()
                },
                String::new,
            )
            .unwrap();
        assert_eq!(f.components[2]["parameters"][0]["coupon_code"], "998877");
    }

    #[test]
    fn reinstated_templates_are_approved_again_and_flagged_ones_stay_sendable() {
        assert_eq!(status_event("REINSTATED"), StatusEvent::Status("APPROVED"));
        assert_eq!(status_event("UNARCHIVED"), StatusEvent::Status("APPROVED"));
        assert_eq!(status_event("FLAGGED"), StatusEvent::Quality("RED"));
        assert_eq!(status_event("PAUSED"), StatusEvent::Status("PAUSED"));
    }

    /// A small deterministic generator, so the property tests need no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
        fn text(&mut self, max: usize) -> String {
            let pieces = [
                "a", "B", " ", "{{", "}}", "{{1}}", "{{2}}", "{{3}}", "{{name}}", "é", "\n", "{",
                "}", "x_y", "🙂", "{{0}}", "{{ 1}}",
            ];
            let n = (self.next() % max as u64) as usize;
            (0..n).map(|_| self.pick(&pieces)).collect()
        }
    }

    #[test]
    fn property_any_text_parses_or_is_refused_by_field_without_panicking() {
        let mut r = Rng(0x9e3779b97f4a7c15);
        for _ in 0..3000 {
            let mut t = basic();
            t.body.text = r.text(30);
            t.body.examples = (0..(r.next() % 4)).map(|_| r.text(4)).collect();
            if r.next().is_multiple_of(2) {
                t.header.as_mut().unwrap().text = Some(r.text(6));
            }
            t.buttons[1].url = Some(format!("https://x.example/{}", r.text(3)));
            match TemplateSpec::parse(&t) {
                Ok(spec) => {
                    // Accepted: sequential variables, one example each, stable round trip,
                    // and a fill with one value per variable is accepted.
                    for (i, k) in spec.body.vars.iter().enumerate() {
                        if spec.format == ParamFormat::Positional {
                            assert_eq!(k, &(i + 1).to_string());
                        }
                    }
                    assert_eq!(spec.body.vars.len(), spec.body.examples.len());
                    assert_eq!(TemplateSpec::parse(&spec.to_input()).unwrap(), spec);
                    let fill = FillInput {
                        header: Some("h".into()),
                        body: spec.body.vars.iter().map(|_| "v".to_owned()).collect(),
                        buttons: spec
                            .buttons
                            .iter()
                            .enumerate()
                            .filter(
                                |(_, b)| matches!(b, Button::Url { url, .. } if url_has_var(url)),
                            )
                            .map(|(i, _)| (i, "s".to_owned()))
                            .collect(),
                        ..Default::default()
                    };
                    let mut fill = fill;
                    if !matches!(&spec.header, Some(Header::Text(h)) if !h.vars.is_empty()) {
                        fill.header = None;
                    }
                    let filled = spec.fill(&fill, || "c".into()).unwrap();
                    assert!(
                        !filled.text.contains("{{1}}") || !spec.body.vars.contains(&"1".to_owned())
                    );
                }
                Err(e) => {
                    assert!(!e.0.is_empty());
                    assert!(
                        e.0.iter()
                            .all(|f| !f.field.is_empty() && !f.message.is_empty())
                    );
                }
            }
        }
    }

    #[test]
    fn property_names_and_languages() {
        let mut r = Rng(42);
        for _ in 0..2000 {
            let s = r.text(8).replace(' ', "_");
            let ok = TemplateName::parse(&s).is_ok();
            assert_eq!(
                ok,
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s:?}"
            );
        }
        assert!(TemplateName::parse(&"a".repeat(512)).is_ok());
        assert!(TemplateName::parse(&"a".repeat(513)).is_err());
        for ok in ["en", "en_US", "pt_BR", "fil", "zh_HK"] {
            TemplateLanguage::parse(ok).unwrap();
        }
        for bad in ["", "EN", "english", "en-US", "en_", "e"] {
            assert!(TemplateLanguage::parse(bad).is_err(), "{bad}");
        }
    }
}
