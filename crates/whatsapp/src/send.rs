//! What we send: message bodies for `POST /{phone-number-id}/messages`, checked against
//! WhatsApp's limits before anything is queued.

use frontdesk_domain::{Bsuid, E164};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Whom a message goes to: a phone number (`to`) or a business-scoped user id (`recipient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(E164),
    Bsuid(Bsuid),
}

/// A message that does not fit WhatsApp's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

fn check(ok: bool, msg: &str) -> Result<(), SendError> {
    if ok {
        Ok(())
    } else {
        Err(SendError(msg.to_owned()))
    }
}

/// A reply button of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub title: String,
}

/// A row of an interactive list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A section of an interactive list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    #[serde(default)]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// Where media comes from: the provider's media id, a public link, or a file uploaded to
/// Frontdesk (`POST /api/v1/media`), which the dispatcher uploads to the provider and
/// replaces by the provider's id before the message is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    Id(String),
    Link(String),
    Upload(String),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    Text {
        body: String,
        #[serde(default)]
        preview_url: bool,
    },
    Media {
        /// image, audio, video, document or sticker
        media_type: String,
        source: MediaSource,
        #[serde(default)]
        caption: Option<String>,
        #[serde(default)]
        filename: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        address: Option<String>,
    },
    Reaction {
        message_id: String,
        /// Empty removes the reaction.
        emoji: String,
    },
    Buttons {
        body: String,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        footer: Option<String>,
        buttons: Vec<Button>,
    },
    List {
        body: String,
        /// The label of the button that opens the list.
        button: String,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        footer: Option<String>,
        sections: Vec<ListSection>,
    },
    Template {
        name: String,
        language: String,
        /// Components with their parameters, as the Cloud API takes them.
        #[serde(default)]
        components: Vec<Value>,
    },
}

impl Outbound {
    /// Free-form messages need an open customer-service window; templates do not.
    pub fn needs_service_window(&self) -> bool {
        !matches!(self, Outbound::Template { .. })
    }

    pub fn type_name(&self) -> &str {
        match self {
            Outbound::Text { .. } => "text",
            Outbound::Media { media_type, .. } => media_type,
            Outbound::Location { .. } => "location",
            Outbound::Reaction { .. } => "reaction",
            Outbound::Buttons { .. } => "buttons",
            Outbound::List { .. } => "list",
            Outbound::Template { .. } => "template",
        }
    }

    /// The Frontdesk file a media message still names (not yet uploaded to the provider).
    pub fn pending_upload(&self) -> Option<&str> {
        match self {
            Outbound::Media {
                source: MediaSource::Upload(id),
                ..
            } => Some(id),
            _ => None,
        }
    }

    /// The same message naming the provider's media id instead of a Frontdesk file.
    pub fn with_provider_media(mut self, provider_id: String) -> Self {
        if let Outbound::Media { source, .. } = &mut self {
            *source = MediaSource::Id(provider_id);
        }
        self
    }

    /// A line of text for lists and search.
    pub fn preview(&self) -> String {
        match self {
            Outbound::Text { body, .. }
            | Outbound::Buttons { body, .. }
            | Outbound::List { body, .. } => body.clone(),
            Outbound::Media {
                media_type,
                caption,
                ..
            } => caption.clone().unwrap_or_else(|| format!("[{media_type}]")),
            Outbound::Location { name, .. } => name
                .clone()
                .map(|n| format!("[location] {n}"))
                .unwrap_or_else(|| "[location]".into()),
            Outbound::Reaction { emoji, .. } => emoji.clone(),
            Outbound::Template { name, .. } => format!("[template {name}]"),
        }
    }

    /// Checks WhatsApp's limits (lengths, counts, allowed media types).
    pub fn validate(&self) -> Result<(), SendError> {
        let chars = |s: &str| s.chars().count();
        match self {
            Outbound::Text { body, .. } => check(
                !body.trim().is_empty() && chars(body) <= 4096,
                "a text message is 1–4096 characters",
            ),
            Outbound::Media {
                media_type,
                source,
                caption,
                ..
            } => {
                check(
                    matches!(
                        media_type.as_str(),
                        "image" | "audio" | "video" | "document" | "sticker"
                    ),
                    "media type must be image, audio, video, document or sticker",
                )?;
                match source {
                    MediaSource::Id(id) => {
                        check(!id.is_empty() && id.len() <= 200, "a media id is required")?
                    }
                    MediaSource::Link(l) => check(
                        l.starts_with("https://") && l.len() <= 2000,
                        "a media link must be an https:// URL",
                    )?,
                    MediaSource::Upload(id) => check(
                        frontdesk_domain::MediaId::parse(id).is_ok(),
                        "an uploaded file is named by the id POST /api/v1/media answered",
                    )?,
                }
                if caption.is_some() {
                    check(
                        matches!(media_type.as_str(), "image" | "video" | "document"),
                        "only images, videos and documents take a caption",
                    )?;
                    check(
                        caption.as_deref().is_some_and(|c| chars(c) <= 1024),
                        "a caption is at most 1024 characters",
                    )?;
                }
                Ok(())
            }
            Outbound::Location {
                latitude,
                longitude,
                ..
            } => check(
                (-90.0..=90.0).contains(latitude) && (-180.0..=180.0).contains(longitude),
                "latitude/longitude out of range",
            ),
            Outbound::Reaction { message_id, emoji } => check(
                !message_id.is_empty() && chars(emoji) <= 8,
                "a reaction needs the message id and one emoji",
            ),
            Outbound::Buttons {
                body,
                buttons,
                header,
                footer,
            } => {
                check(
                    !body.trim().is_empty() && chars(body) <= 1024,
                    "the body is 1–1024 characters",
                )?;
                check((1..=3).contains(&buttons.len()), "1 to 3 buttons")?;
                for b in buttons {
                    check(
                        !b.id.is_empty()
                            && b.id.len() <= 256
                            && !b.title.trim().is_empty()
                            && chars(&b.title) <= 20,
                        "a button has an id and a title of at most 20 characters",
                    )?;
                }
                let mut ids: Vec<&str> = buttons.iter().map(|b| b.id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                check(ids.len() == buttons.len(), "button ids must differ")?;
                check(
                    header.as_deref().is_none_or(|h| chars(h) <= 60),
                    "a header is at most 60 characters",
                )?;
                check(
                    footer.as_deref().is_none_or(|f| chars(f) <= 60),
                    "a footer is at most 60 characters",
                )
            }
            Outbound::List {
                body,
                button,
                sections,
                ..
            } => {
                check(
                    !body.trim().is_empty() && chars(body) <= 4096,
                    "the body is 1–4096 characters",
                )?;
                check(
                    !button.trim().is_empty() && chars(button) <= 20,
                    "the list button label is 1–20 characters",
                )?;
                check((1..=10).contains(&sections.len()), "1 to 10 sections")?;
                let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                check((1..=10).contains(&rows), "1 to 10 rows in all")?;
                for r in sections.iter().flat_map(|s| &s.rows) {
                    check(
                        !r.id.is_empty() && chars(&r.title) <= 24 && !r.title.trim().is_empty(),
                        "a row has an id and a title of at most 24 characters",
                    )?;
                    check(
                        r.description.as_deref().is_none_or(|d| chars(d) <= 72),
                        "a row description is at most 72 characters",
                    )?;
                }
                Ok(())
            }
            Outbound::Template { name, language, .. } => check(
                !name.is_empty()
                    && name.len() <= 512
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !language.is_empty(),
                "a template name is lower-case letters, digits and underscores, with a language",
            ),
        }
    }

    /// The JSON body for the Cloud API, addressed to `to`, optionally quoting `reply_to`.
    pub fn to_cloud_body(
        &self,
        to: &Recipient,
        reply_to: Option<&str>,
        callback: Option<&str>,
    ) -> Value {
        let mut body = json!({ "messaging_product": "whatsapp", "recipient_type": "individual" });
        match to {
            Recipient::Phone(p) => body["to"] = json!(p.digits()),
            Recipient::Bsuid(b) => body["recipient"] = json!(b.as_str()),
        }
        if let Some(id) = reply_to {
            body["context"] = json!({ "message_id": id });
        }
        if let Some(c) = callback {
            body["biz_opaque_callback_data"] = json!(c);
        }
        let opt = |v: &Option<String>| v.clone();
        match self {
            Outbound::Text {
                body: text,
                preview_url,
            } => {
                body["type"] = json!("text");
                body["text"] = json!({ "body": text, "preview_url": preview_url });
            }
            Outbound::Media {
                media_type,
                source,
                caption,
                filename,
            } => {
                let mut m = match source {
                    MediaSource::Id(id) => json!({ "id": id }),
                    MediaSource::Link(l) => json!({ "link": l }),
                    // Refused by `ProviderClient::send` before a body is built: the file
                    // must first be uploaded to the provider.
                    MediaSource::Upload(_) => json!({}),
                };
                if let Some(c) = caption {
                    m["caption"] = json!(c);
                }
                if let Some(f) = filename.as_ref().filter(|_| media_type == "document") {
                    m["filename"] = json!(f);
                }
                body["type"] = json!(media_type);
                body[media_type.as_str()] = m;
            }
            Outbound::Location {
                latitude,
                longitude,
                name,
                address,
            } => {
                body["type"] = json!("location");
                body["location"] = json!({ "latitude": latitude, "longitude": longitude, "name": opt(name), "address": opt(address) });
            }
            Outbound::Reaction { message_id, emoji } => {
                body["type"] = json!("reaction");
                body["reaction"] = json!({ "message_id": message_id, "emoji": emoji });
            }
            Outbound::Buttons {
                body: text,
                header,
                footer,
                buttons,
            } => {
                let mut i = json!({
                    "type": "button",
                    "body": { "text": text },
                    "action": { "buttons": buttons.iter().map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } })).collect::<Vec<_>>() }
                });
                if let Some(h) = header {
                    i["header"] = json!({ "type": "text", "text": h });
                }
                if let Some(f) = footer {
                    i["footer"] = json!({ "text": f });
                }
                body["type"] = json!("interactive");
                body["interactive"] = i;
            }
            Outbound::List {
                body: text,
                button,
                header,
                footer,
                sections,
            } => {
                let mut i = json!({
                    "type": "list",
                    "body": { "text": text },
                    "action": { "button": button, "sections": sections.iter().map(|s| {
                        let mut sec = json!({ "rows": s.rows.iter().map(|r| {
                            let mut row = json!({ "id": r.id, "title": r.title });
                            if let Some(d) = &r.description { row["description"] = json!(d); }
                            row
                        }).collect::<Vec<_>>() });
                        if let Some(t) = &s.title { sec["title"] = json!(t); }
                        sec
                    }).collect::<Vec<_>>() }
                });
                if let Some(h) = header {
                    i["header"] = json!({ "type": "text", "text": h });
                }
                if let Some(f) = footer {
                    i["footer"] = json!({ "text": f });
                }
                body["type"] = json!("interactive");
                body["interactive"] = i;
            }
            Outbound::Template {
                name,
                language,
                components,
            } => {
                body["type"] = json!("template");
                body["template"] = json!({ "name": name, "language": { "code": language }, "components": components });
            }
        }
        body
    }
}

/// The body that marks an inbound message read (and, optionally, shows "typing…").
pub fn mark_read_body(message_id: &str, typing: bool) -> Value {
    let mut b =
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": message_id });
    if typing {
        b["typing_indicator"] = json!({ "type": "text" });
    }
    b
}

/// The Cloud API's answer to a send: the new message's id.
pub fn sent_message_id(response: &Value) -> Option<String> {
    response
        .get("messages")?
        .get(0)?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Recipient {
        Recipient::Phone(E164::parse("+919876543210").unwrap())
    }

    #[test]
    fn text_to_a_phone_and_to_a_bsuid() {
        let m = Outbound::Text {
            body: "Hello".into(),
            preview_url: true,
        };
        let b = m.to_cloud_body(&phone(), Some("wamid.Q"), None);
        assert_eq!(b["to"], "919876543210");
        assert!(b.get("recipient").is_none());
        assert_eq!(b["text"], json!({ "body": "Hello", "preview_url": true }));
        assert_eq!(b["context"]["message_id"], "wamid.Q");
        let b = m.to_cloud_body(
            &Recipient::Bsuid(Bsuid::parse("US.1234567890").unwrap()),
            None,
            Some("cb"),
        );
        assert_eq!(b["recipient"], "US.1234567890");
        assert!(b.get("to").is_none());
        assert_eq!(b["biz_opaque_callback_data"], "cb");
    }

    #[test]
    fn every_kind_builds_its_body() {
        let cases = vec![
            (
                Outbound::Media {
                    media_type: "document".into(),
                    source: MediaSource::Id("m1".into()),
                    caption: Some("Report".into()),
                    filename: Some("r.pdf".into()),
                },
                json!({ "id": "m1", "caption": "Report", "filename": "r.pdf" }),
                "document",
            ),
            (
                Outbound::Media {
                    media_type: "image".into(),
                    source: MediaSource::Link("https://x.example/a.jpg".into()),
                    caption: None,
                    filename: Some("ignored".into()),
                },
                json!({ "link": "https://x.example/a.jpg" }),
                "image",
            ),
        ];
        for (m, want, key) in cases {
            m.validate().unwrap();
            assert_eq!(m.to_cloud_body(&phone(), None, None)[key], want);
        }
        let b = Outbound::Buttons {
            body: "Confirm?".into(),
            header: Some("Appointment".into()),
            footer: None,
            buttons: vec![
                Button {
                    id: "y".into(),
                    title: "Yes".into(),
                },
                Button {
                    id: "n".into(),
                    title: "No".into(),
                },
            ],
        };
        b.validate().unwrap();
        let v = b.to_cloud_body(&phone(), None, None);
        assert_eq!(v["interactive"]["type"], "button");
        assert_eq!(
            v["interactive"]["action"]["buttons"][1],
            json!({ "type": "reply", "reply": { "id": "n", "title": "No" } })
        );
        let l = Outbound::List {
            body: "Pick a slot".into(),
            button: "Slots".into(),
            header: None,
            footer: None,
            sections: vec![ListSection {
                title: Some("Tuesday".into()),
                rows: vec![ListRow {
                    id: "t10".into(),
                    title: "10:00".into(),
                    description: Some("Dr Mehta".into()),
                }],
            }],
        };
        l.validate().unwrap();
        assert_eq!(
            l.to_cloud_body(&phone(), None, None)["interactive"]["action"]["sections"][0]["rows"]
                [0]["description"],
            "Dr Mehta"
        );
        let t = Outbound::Template {
            name: "appointment_reminder".into(),
            language: "en_US".into(),
            components: vec![
                json!({ "type": "body", "parameters": [{ "type": "text", "text": "Asha" }] }),
            ],
        };
        t.validate().unwrap();
        assert!(!t.needs_service_window());
        assert_eq!(
            t.to_cloud_body(&phone(), None, None)["template"]["language"]["code"],
            "en_US"
        );
        let r = Outbound::Reaction {
            message_id: "wamid.X".into(),
            emoji: "👍".into(),
        };
        assert_eq!(
            r.to_cloud_body(&phone(), None, None)["reaction"]["emoji"],
            "👍"
        );
        assert_eq!(
            mark_read_body("wamid.I", true)["typing_indicator"]["type"],
            "text"
        );
        assert_eq!(
            sent_message_id(
                &json!({ "messaging_product": "whatsapp", "messages": [{ "id": "wamid.NEW" }] })
            )
            .as_deref(),
            Some("wamid.NEW")
        );
    }

    #[test]
    fn limits_are_checked_before_queuing() {
        let too_long = Outbound::Text {
            body: "x".repeat(4097),
            preview_url: false,
        };
        assert!(too_long.validate().is_err());
        assert!(
            Outbound::Text {
                body: "  ".into(),
                preview_url: false
            }
            .validate()
            .is_err()
        );
        let four = (0..4)
            .map(|i| Button {
                id: i.to_string(),
                title: "B".into(),
            })
            .collect();
        assert!(
            Outbound::Buttons {
                body: "b".into(),
                header: None,
                footer: None,
                buttons: four
            }
            .validate()
            .is_err()
        );
        let dup = vec![
            Button {
                id: "a".into(),
                title: "A".into(),
            },
            Button {
                id: "a".into(),
                title: "B".into(),
            },
        ];
        assert!(
            Outbound::Buttons {
                body: "b".into(),
                header: None,
                footer: None,
                buttons: dup
            }
            .validate()
            .is_err()
        );
        let long_title = vec![Button {
            id: "a".into(),
            title: "x".repeat(21),
        }];
        assert!(
            Outbound::Buttons {
                body: "b".into(),
                header: None,
                footer: None,
                buttons: long_title
            }
            .validate()
            .is_err()
        );
        assert!(
            Outbound::Media {
                media_type: "audio".into(),
                source: MediaSource::Id("m".into()),
                caption: Some("no".into()),
                filename: None
            }
            .validate()
            .is_err()
        );
        assert!(
            Outbound::Media {
                media_type: "image".into(),
                source: MediaSource::Link("http://insecure".into()),
                caption: None,
                filename: None
            }
            .validate()
            .is_err()
        );
        assert!(
            Outbound::Template {
                name: "Bad Name".into(),
                language: "en".into(),
                components: vec![]
            }
            .validate()
            .is_err()
        );
        assert!(
            Outbound::Location {
                latitude: 91.0,
                longitude: 0.0,
                name: None,
                address: None
            }
            .validate()
            .is_err()
        );
    }
}
