//! Meta's webhook payloads, turned into events.
//!
//! Every array is walked (entries, changes, messages, statuses): a batched POST loses
//! nothing. Ids and timestamps arrive as strings. A customer is named by a business-scoped
//! user id (`user_id` / `from_user_id`), a phone number (`wa_id` / `from`), or both; the
//! phone is absent for users with a WhatsApp username. Message types we do not know are kept
//! as [`MessageKind::Other`] with their raw JSON, never an error: only a payload that is not
//! a WhatsApp webhook at all fails to parse.

use frontdesk_domain::{Bsuid, E164};
use serde::Deserialize;
use serde_json::Value;

/// A payload that is not a WhatsApp Business webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a WhatsApp Business Account webhook (object is {0:?})")]
    WrongObject(String),
    #[error("{0}")]
    Shape(String),
}

#[derive(Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: String,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    display_phone_number: String,
    #[serde(default)]
    phone_number_id: String,
}

#[derive(Deserialize, Default)]
struct MessagesValue {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<RawContact>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Value>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize, Default, Clone)]
struct RawContact {
    wa_id: Option<String>,
    user_id: Option<String>,
    parent_user_id: Option<String>,
    #[serde(default)]
    profile: Profile,
}

#[derive(Deserialize, Default, Clone)]
struct Profile {
    name: Option<String>,
    username: Option<String>,
}

/// Who a customer is, as far as this payload says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerRef {
    pub phone: Option<E164>,
    pub bsuid: Option<Bsuid>,
    pub parent_bsuid: Option<Bsuid>,
    pub name: Option<String>,
    pub username: Option<String>,
}

impl CustomerRef {
    /// True when the payload names nobody we can address.
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.bsuid.is_none()
    }
}

/// The business number a change is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberRef {
    /// WhatsApp Business Account id (`entry[].id`).
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
}

/// What a message quotes or how it was forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The wamid replied to.
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub forwarded: bool,
    pub frequently_forwarded: bool,
    pub referred_product: Option<Value>,
}

/// A media attachment: the provider's media id and what it says about the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    pub media_id: String,
    pub mime_type: Option<String>,
    /// Base64 SHA-256 of the file, as Meta sends it.
    pub sha256: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub voice: bool,
    pub animated: bool,
}

/// The kinds of media a message can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Audio => "audio",
            MediaType::Video => "video",
            MediaType::Document => "document",
            MediaType::Sticker => "sticker",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "image" => MediaType::Image,
            "audio" => MediaType::Audio,
            "video" => MediaType::Video,
            "document" => MediaType::Document,
            "sticker" => MediaType::Sticker,
            _ => return None,
        })
    }
}

/// What an inbound message says, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    Text {
        body: String,
    },
    Media {
        media_type: MediaType,
        media: Media,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
        url: Option<String>,
    },
    /// Shared contact cards, kept as sent.
    Contacts {
        cards: Value,
    },
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A WhatsApp Flow's answer; `response_json` is the flow's JSON, as a string.
    FlowReply {
        name: Option<String>,
        body: Option<String>,
        response_json: Option<String>,
    },
    /// A tap on a template's quick-reply button.
    TemplateButton {
        payload: String,
        text: String,
    },
    /// `emoji: None` means the reaction was removed.
    Reaction {
        message_id: String,
        emoji: Option<String>,
    },
    Order {
        catalog_id: Option<String>,
        text: Option<String>,
        items: Value,
    },
    /// e.g. `user_changed_number`.
    System {
        system_type: String,
        body: Option<String>,
        new_wa_id: Option<String>,
    },
    /// WhatsApp could not show us the message (`errors` say why).
    Unsupported {
        errors: Value,
    },
    /// A type this release does not know, kept whole.
    Other {
        type_name: String,
    },
}

impl MessageKind {
    /// The stored type name.
    pub fn type_name(&self) -> &str {
        match self {
            MessageKind::Text { .. } => "text",
            MessageKind::Media { media_type, .. } => media_type.as_str(),
            MessageKind::Location { .. } => "location",
            MessageKind::Contacts { .. } => "contacts",
            MessageKind::ButtonReply { .. } => "button_reply",
            MessageKind::ListReply { .. } => "list_reply",
            MessageKind::FlowReply { .. } => "flow_reply",
            MessageKind::TemplateButton { .. } => "template_button",
            MessageKind::Reaction { .. } => "reaction",
            MessageKind::Order { .. } => "order",
            MessageKind::System { .. } => "system",
            MessageKind::Unsupported { .. } => "unsupported",
            MessageKind::Other { type_name } => type_name,
        }
    }

    /// A line of text for lists, previews and search.
    pub fn preview(&self) -> String {
        match self {
            MessageKind::Text { body } => body.clone(),
            MessageKind::Media { media_type, media } => media
                .caption
                .clone()
                .unwrap_or_else(|| format!("[{}]", media_type.as_str())),
            MessageKind::Location { name, .. } => name
                .clone()
                .map(|n| format!("[location] {n}"))
                .unwrap_or_else(|| "[location]".into()),
            MessageKind::Contacts { .. } => "[contact card]".into(),
            MessageKind::ButtonReply { title, .. } | MessageKind::ListReply { title, .. } => {
                title.clone()
            }
            MessageKind::FlowReply { body, .. } => {
                body.clone().unwrap_or_else(|| "[form answer]".into())
            }
            MessageKind::TemplateButton { text, .. } => text.clone(),
            MessageKind::Reaction { emoji, .. } => {
                emoji.clone().unwrap_or_else(|| "[reaction removed]".into())
            }
            MessageKind::Order { text, .. } => text.clone().unwrap_or_else(|| "[order]".into()),
            MessageKind::System { body, .. } => body.clone().unwrap_or_else(|| "[system]".into()),
            MessageKind::Unsupported { .. } => "[unsupported message]".into(),
            MessageKind::Other { type_name } => format!("[{type_name}]"),
        }
    }
}

/// A message a customer sent.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub number: NumberRef,
    /// The provider's message id (`wamid.…`): the key that makes processing idempotent.
    pub id: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub from: CustomerRef,
    pub context: Option<Context>,
    /// Click-to-WhatsApp ad details, when the chat began from an ad.
    pub referral: Option<Value>,
    pub kind: MessageKind,
    /// The message object as received.
    pub raw: Value,
}

/// Where an outbound message got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Deleted,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            "failed" => DeliveryStatus::Failed,
            "deleted" => DeliveryStatus::Deleted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Deleted => "deleted",
        }
    }
}

/// An error as WhatsApp reports it in a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookError {
    pub code: i64,
    pub title: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
}

/// A status update for a message we sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub number: NumberRef,
    /// The wamid of our outbound message.
    pub id: String,
    pub status: DeliveryStatus,
    pub timestamp: i64,
    pub recipient: CustomerRef,
    pub errors: Vec<WebhookError>,
    /// Pricing category (`marketing`, `utility`, `authentication`, `service`, …).
    pub category: Option<String>,
    pub pricing_model: Option<String>,
    pub billable: Option<bool>,
    pub conversation_id: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
}

/// A template's review outcome or state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateStatusUpdate {
    pub waba_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    /// e.g. `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`.
    pub event: String,
    pub reason: Option<String>,
    pub category: Option<String>,
}

/// A template's quality rating changed (`message_template_quality_update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateQualityUpdate {
    pub waba_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    pub quality: String,
}

/// Meta moved a template to another category (`template_category_update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCategoryUpdate {
    pub waba_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    pub previous_category: Option<String>,
    pub new_category: String,
}

/// A number's quality or messaging-limit change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneQualityUpdate {
    pub waba_id: String,
    pub display_phone_number: String,
    /// e.g. `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`.
    pub event: String,
    pub current_limit: Option<String>,
    pub old_limit: Option<String>,
}

/// One thing a webhook tells us.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Message(Box<InboundMessage>),
    Status(Box<StatusUpdate>),
    TemplateStatus(TemplateStatusUpdate),
    TemplateQuality(TemplateQualityUpdate),
    TemplateCategory(TemplateCategoryUpdate),
    PhoneQuality(PhoneQualityUpdate),
    /// Errors about the number or app, outside any message (`value.errors`).
    NumberErrors {
        number: NumberRef,
        errors: Vec<WebhookError>,
    },
    /// A field we do not act on (account updates, security, …), kept for the record.
    Other {
        field: String,
        waba_id: String,
    },
}

fn s(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn customer(phone: Option<&str>, bsuid: Option<&str>, contacts: &[RawContact]) -> CustomerRef {
    let phone = phone.and_then(|p| E164::parse(p).ok());
    let bsuid = bsuid.and_then(|b| Bsuid::parse(b).ok());
    // The contact entry for this customer: matched by BSUID, else by phone, else the only one.
    let entry = contacts
        .iter()
        .find(|c| bsuid.is_some() && c.user_id.as_deref() == bsuid.as_ref().map(Bsuid::as_str))
        .or_else(|| {
            contacts.iter().find(|c| {
                phone.is_some() && c.wa_id.as_deref().and_then(|w| E164::parse(w).ok()) == phone
            })
        })
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]));
    let mut r = CustomerRef {
        phone,
        bsuid,
        ..CustomerRef::default()
    };
    if let Some(c) = entry {
        if r.phone.is_none() {
            r.phone = c.wa_id.as_deref().and_then(|w| E164::parse(w).ok());
        }
        if r.bsuid.is_none() {
            r.bsuid = c.user_id.as_deref().and_then(|b| Bsuid::parse(b).ok());
        }
        r.parent_bsuid = c
            .parent_user_id
            .as_deref()
            .and_then(|b| Bsuid::parse(b).ok());
        r.name = c.profile.name.clone().filter(|n| !n.trim().is_empty());
        r.username = c.profile.username.clone().filter(|n| !n.trim().is_empty());
    }
    r
}

fn errors_of(v: &Value) -> Vec<WebhookError> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| WebhookError {
                    code: int(e, "code").unwrap_or(0),
                    title: s(e, "title"),
                    message: s(e, "message"),
                    details: e.get("error_data").and_then(|d| s(d, "details")),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn media(v: &Value) -> Media {
    Media {
        media_id: s(v, "id").unwrap_or_default(),
        mime_type: s(v, "mime_type"),
        sha256: s(v, "sha256"),
        caption: s(v, "caption"),
        filename: s(v, "filename"),
        voice: v.get("voice").and_then(Value::as_bool).unwrap_or(false),
        animated: v.get("animated").and_then(Value::as_bool).unwrap_or(false),
    }
}

fn kind_of(m: &Value) -> MessageKind {
    let t = s(m, "type").unwrap_or_default();
    let body = m.get(t.as_str()).cloned().unwrap_or(Value::Null);
    if let Some(mt) = MediaType::parse(&t) {
        return MessageKind::Media {
            media_type: mt,
            media: media(&body),
        };
    }
    match t.as_str() {
        "text" => MessageKind::Text {
            body: s(&body, "body").unwrap_or_default(),
        },
        "location" => MessageKind::Location {
            latitude: body.get("latitude").and_then(Value::as_f64).unwrap_or(0.0),
            longitude: body.get("longitude").and_then(Value::as_f64).unwrap_or(0.0),
            name: s(&body, "name"),
            address: s(&body, "address"),
            url: s(&body, "url"),
        },
        "contacts" => MessageKind::Contacts { cards: body },
        "interactive" => {
            let it = s(&body, "type").unwrap_or_default();
            let inner = body.get(it.as_str()).cloned().unwrap_or(Value::Null);
            match it.as_str() {
                "button_reply" => MessageKind::ButtonReply {
                    id: s(&inner, "id").unwrap_or_default(),
                    title: s(&inner, "title").unwrap_or_default(),
                },
                "list_reply" => MessageKind::ListReply {
                    id: s(&inner, "id").unwrap_or_default(),
                    title: s(&inner, "title").unwrap_or_default(),
                    description: s(&inner, "description"),
                },
                "nfm_reply" => MessageKind::FlowReply {
                    name: s(&inner, "name"),
                    body: s(&inner, "body"),
                    response_json: s(&inner, "response_json"),
                },
                other => MessageKind::Other {
                    type_name: format!("interactive.{other}"),
                },
            }
        }
        "button" => MessageKind::TemplateButton {
            payload: s(&body, "payload").unwrap_or_default(),
            text: s(&body, "text").unwrap_or_default(),
        },
        "reaction" => MessageKind::Reaction {
            message_id: s(&body, "message_id").unwrap_or_default(),
            emoji: s(&body, "emoji").filter(|e| !e.is_empty()),
        },
        "order" => MessageKind::Order {
            catalog_id: s(&body, "catalog_id"),
            text: s(&body, "text"),
            items: body.get("product_items").cloned().unwrap_or(Value::Null),
        },
        "system" => MessageKind::System {
            system_type: s(&body, "type").unwrap_or_default(),
            body: s(&body, "body"),
            new_wa_id: s(&body, "wa_id").or_else(|| s(&body, "new_wa_id")),
        },
        "unsupported" | "unknown" => MessageKind::Unsupported {
            errors: m.get("errors").cloned().unwrap_or(Value::Null),
        },
        "" => MessageKind::Other {
            type_name: "untyped".into(),
        },
        other => MessageKind::Other {
            type_name: other.to_owned(),
        },
    }
}

fn context_of(m: &Value) -> Option<Context> {
    let c = m.get("context")?;
    Some(Context {
        message_id: s(c, "id"),
        from: s(c, "from"),
        forwarded: c.get("forwarded").and_then(Value::as_bool).unwrap_or(false),
        frequently_forwarded: c
            .get("frequently_forwarded")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        referred_product: c.get("referred_product").cloned(),
    })
}

fn messages_events(waba_id: &str, value: Value, out: &mut Vec<Event>) -> Result<(), ParseError> {
    let v: MessagesValue = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(format!("messages value: {e}")))?;
    let number = NumberRef {
        waba_id: waba_id.to_owned(),
        phone_number_id: v.metadata.phone_number_id.clone(),
        display_phone_number: v.metadata.display_phone_number.clone(),
    };
    for m in v.messages {
        let id = s(&m, "id").ok_or_else(|| ParseError::Shape("a message without an id".into()))?;
        let from = customer(
            s(&m, "from").as_deref(),
            s(&m, "from_user_id").as_deref(),
            &v.contacts,
        );
        out.push(Event::Message(Box::new(InboundMessage {
            number: number.clone(),
            id,
            timestamp: int(&m, "timestamp").unwrap_or(0),
            from,
            context: context_of(&m),
            referral: m.get("referral").cloned(),
            kind: kind_of(&m),
            raw: m,
        })));
    }
    for st in v.statuses {
        let id = s(&st, "id").ok_or_else(|| ParseError::Shape("a status without an id".into()))?;
        let Some(status) = s(&st, "status").as_deref().and_then(DeliveryStatus::parse) else {
            continue; // a status name this release does not know changes nothing
        };
        let pricing = st.get("pricing").cloned().unwrap_or(Value::Null);
        let conversation = st.get("conversation").cloned().unwrap_or(Value::Null);
        out.push(Event::Status(Box::new(StatusUpdate {
            number: number.clone(),
            id,
            status,
            timestamp: int(&st, "timestamp").unwrap_or(0),
            recipient: customer(
                s(&st, "recipient_id").as_deref(),
                s(&st, "recipient_user_id").as_deref(),
                &v.contacts,
            ),
            errors: errors_of(st.get("errors").unwrap_or(&Value::Null)),
            category: s(&pricing, "category")
                .or_else(|| conversation.get("origin").and_then(|o| s(o, "type"))),
            pricing_model: s(&pricing, "pricing_model"),
            billable: pricing.get("billable").and_then(Value::as_bool),
            conversation_id: s(&conversation, "id"),
            biz_opaque_callback_data: s(&st, "biz_opaque_callback_data"),
        })));
    }
    if !v.errors.is_empty() {
        out.push(Event::NumberErrors {
            number,
            errors: errors_of(&Value::Array(v.errors)),
        });
    }
    Ok(())
}

/// Parses a Cloud API webhook body into events, in payload order.
pub fn parse_meta(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if env.object != "whatsapp_business_account" {
        return Err(ParseError::WrongObject(env.object));
    }
    let mut out = Vec::new();
    for entry in env.entry {
        for change in entry.changes {
            match change.field.as_str() {
                "messages" => messages_events(&entry.id, change.value, &mut out)?,
                "message_template_status_update" => {
                    let v = &change.value;
                    out.push(Event::TemplateStatus(TemplateStatusUpdate {
                        waba_id: entry.id.clone(),
                        template_id: s(v, "message_template_id").unwrap_or_default(),
                        name: s(v, "message_template_name").unwrap_or_default(),
                        language: s(v, "message_template_language").unwrap_or_default(),
                        event: s(v, "event").unwrap_or_default(),
                        reason: s(v, "reason").filter(|r| r != "NONE"),
                        category: s(v, "message_template_category"),
                    }));
                }
                "message_template_quality_update" => {
                    let v = &change.value;
                    out.push(Event::TemplateQuality(TemplateQualityUpdate {
                        waba_id: entry.id.clone(),
                        template_id: s(v, "message_template_id").unwrap_or_default(),
                        name: s(v, "message_template_name").unwrap_or_default(),
                        language: s(v, "message_template_language").unwrap_or_default(),
                        quality: s(v, "new_quality_score").unwrap_or_default(),
                    }));
                }
                "template_category_update" => {
                    let v = &change.value;
                    out.push(Event::TemplateCategory(TemplateCategoryUpdate {
                        waba_id: entry.id.clone(),
                        template_id: s(v, "message_template_id").unwrap_or_default(),
                        name: s(v, "message_template_name").unwrap_or_default(),
                        language: s(v, "message_template_language").unwrap_or_default(),
                        previous_category: s(v, "previous_category"),
                        new_category: s(v, "new_category").unwrap_or_default(),
                    }));
                }
                "phone_number_quality_update" => {
                    let v = &change.value;
                    out.push(Event::PhoneQuality(PhoneQualityUpdate {
                        waba_id: entry.id.clone(),
                        display_phone_number: s(v, "display_phone_number").unwrap_or_default(),
                        event: s(v, "event").unwrap_or_default(),
                        current_limit: s(v, "current_limit").or_else(|| s(v, "new_limit")),
                        old_limit: s(v, "old_limit"),
                    }));
                }
                other => out.push(Event::Other {
                    field: other.to_owned(),
                    waba_id: entry.id.clone(),
                }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wrap(value: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": value }] }]
        }))
        .unwrap()
    }

    fn meta() -> Value {
        json!({ "display_phone_number": "15550783881", "phone_number_id": "106540352242922" })
    }

    fn one_message(m: Value, contacts: Value) -> InboundMessage {
        let events = parse_meta(&wrap(json!({ "messaging_product": "whatsapp", "metadata": meta(), "contacts": contacts, "messages": [m] }))).unwrap();
        match events.into_iter().next().unwrap() {
            Event::Message(m) => *m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_from_a_phone_only_customer() {
        let m = one_message(
            json!({ "from": "919876543210", "id": "wamid.A", "timestamp": "1750000000", "type": "text", "text": { "body": "Hello" } }),
            json!([{ "profile": { "name": "Asha" }, "wa_id": "919876543210" }]),
        );
        assert_eq!(m.id, "wamid.A");
        assert_eq!(m.timestamp, 1_750_000_000);
        assert_eq!(
            m.from.phone.as_ref().map(E164::as_str),
            Some("+919876543210")
        );
        assert_eq!(m.from.bsuid, None);
        assert_eq!(m.from.name.as_deref(), Some("Asha"));
        assert_eq!(
            m.kind,
            MessageKind::Text {
                body: "Hello".into()
            }
        );
        assert_eq!(m.number.phone_number_id, "106540352242922");
        assert_eq!(m.number.waba_id, "102290129340398");
    }

    #[test]
    fn username_customer_has_a_bsuid_and_no_phone() {
        let m = one_message(
            json!({ "from_user_id": "US.13491208655302741918", "id": "wamid.B", "timestamp": "1750000001", "type": "text", "text": { "body": "hi" } }),
            json!([{ "user_id": "US.13491208655302741918", "parent_user_id": "US.99991208655302741918", "profile": { "name": "Sam", "username": "sam.w" } }]),
        );
        assert_eq!(m.from.phone, None);
        assert_eq!(
            m.from.bsuid.as_ref().map(Bsuid::as_str),
            Some("US.13491208655302741918")
        );
        assert_eq!(
            m.from.parent_bsuid.as_ref().map(Bsuid::as_str),
            Some("US.99991208655302741918")
        );
        assert_eq!(m.from.username.as_deref(), Some("sam.w"));
    }

    #[test]
    fn a_payload_with_both_links_phone_and_bsuid() {
        let m = one_message(
            json!({ "from": "14155550100", "from_user_id": "US.1234567890123", "id": "wamid.C", "timestamp": "1", "type": "text", "text": { "body": "x" } }),
            json!([{ "wa_id": "14155550100", "user_id": "US.1234567890123", "profile": { "name": "Lee" } }]),
        );
        assert_eq!(
            m.from.phone.as_ref().map(E164::as_str),
            Some("+14155550100")
        );
        assert_eq!(
            m.from.bsuid.as_ref().map(Bsuid::as_str),
            Some("US.1234567890123")
        );
    }

    #[test]
    fn every_inbound_type_is_understood() {
        let c = json!([{ "wa_id": "919876543210", "profile": { "name": "A" } }]);
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({ "type": "image", "image": { "id": "m1", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "leg" } }),
                "image",
            ),
            (
                json!({ "type": "audio", "audio": { "id": "m2", "mime_type": "audio/ogg", "voice": true } }),
                "audio",
            ),
            (
                json!({ "type": "video", "video": { "id": "m3", "mime_type": "video/mp4" } }),
                "video",
            ),
            (
                json!({ "type": "document", "document": { "id": "m4", "filename": "report.pdf", "mime_type": "application/pdf" } }),
                "document",
            ),
            (
                json!({ "type": "sticker", "sticker": { "id": "m5", "animated": true, "mime_type": "image/webp" } }),
                "sticker",
            ),
            (
                json!({ "type": "location", "location": { "latitude": 19.07, "longitude": 72.87, "name": "Clinic" } }),
                "location",
            ),
            (
                json!({ "type": "contacts", "contacts": [{ "name": { "formatted_name": "Dr X" }, "phones": [{ "phone": "+91 99" }] }] }),
                "contacts",
            ),
            (
                json!({ "type": "interactive", "interactive": { "type": "button_reply", "button_reply": { "id": "yes", "title": "Yes" } } }),
                "button_reply",
            ),
            (
                json!({ "type": "interactive", "interactive": { "type": "list_reply", "list_reply": { "id": "r1", "title": "Tue", "description": "10:00" } } }),
                "list_reply",
            ),
            (
                json!({ "type": "interactive", "interactive": { "type": "nfm_reply", "nfm_reply": { "name": "flow", "body": "Sent", "response_json": "{\"a\":1}" } } }),
                "flow_reply",
            ),
            (
                json!({ "type": "button", "button": { "payload": "CONFIRM", "text": "Confirm" }, "context": { "from": "15550783881", "id": "wamid.T" } }),
                "template_button",
            ),
            (
                json!({ "type": "reaction", "reaction": { "message_id": "wamid.X", "emoji": "👍" } }),
                "reaction",
            ),
            (
                json!({ "type": "order", "order": { "catalog_id": "c1", "product_items": [{ "product_retailer_id": "p1", "quantity": 2, "item_price": 10, "currency": "INR" }] } }),
                "order",
            ),
            (
                json!({ "type": "system", "system": { "type": "user_changed_number", "body": "changed", "wa_id": "919800000000" } }),
                "system",
            ),
            (
                json!({ "type": "unsupported", "errors": [{ "code": 131051, "title": "Message type unknown" }] }),
                "unsupported",
            ),
            (
                json!({ "type": "hologram", "hologram": { "x": 1 } }),
                "hologram",
            ),
        ];
        for (mut m, want) in cases {
            m["from"] = json!("919876543210");
            m["id"] = json!(format!("wamid.{want}"));
            m["timestamp"] = json!("1750000000");
            let parsed = one_message(m.clone(), c.clone());
            assert_eq!(parsed.kind.type_name(), want, "{m}");
            assert_eq!(parsed.raw, m, "the raw message is kept");
            assert!(!parsed.kind.preview().is_empty());
        }
        let reply = one_message(
            json!({ "from": "919876543210", "id": "wamid.R", "timestamp": "1", "type": "text", "text": { "body": "yes" }, "context": { "from": "15550783881", "id": "wamid.ORIG", "forwarded": true } }),
            c.clone(),
        );
        let ctx = reply.context.unwrap();
        assert_eq!(ctx.message_id.as_deref(), Some("wamid.ORIG"));
        assert!(ctx.forwarded);
        let removed = one_message(
            json!({ "from": "919876543210", "id": "wamid.U", "timestamp": "1", "type": "reaction", "reaction": { "message_id": "wamid.X", "emoji": "" } }),
            c.clone(),
        );
        assert_eq!(
            removed.kind,
            MessageKind::Reaction {
                message_id: "wamid.X".into(),
                emoji: None
            }
        );
        let ad = one_message(
            json!({ "from": "919876543210", "id": "wamid.AD", "timestamp": "1", "type": "text", "text": { "body": "info" }, "referral": { "source_type": "ad", "ctwa_clid": "x" } }),
            c,
        );
        assert_eq!(ad.referral.unwrap()["source_type"], "ad");
    }

    #[test]
    fn statuses_carry_errors_pricing_and_the_recipient() {
        let events = parse_meta(&wrap(json!({
            "messaging_product": "whatsapp", "metadata": meta(),
            "contacts": [{ "wa_id": "919876543210", "user_id": "IN.1234567890", "profile": { "name": "A" } }],
            "statuses": [
                { "id": "wamid.S1", "status": "delivered", "timestamp": "1750000010", "recipient_id": "919876543210",
                  "pricing": { "billable": true, "pricing_model": "PMP", "category": "utility" } },
                { "id": "wamid.S2", "status": "failed", "timestamp": "1750000011", "recipient_id": "919876543210",
                  "errors": [{ "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message", "error_data": { "details": "Message failed to send because more than 24 hours have passed" } }] },
                { "id": "wamid.S3", "status": "teleported", "timestamp": "1" }
            ]
        })))
        .unwrap();
        assert_eq!(events.len(), 2, "an unknown status name is skipped");
        let Event::Status(d) = &events[0] else {
            panic!()
        };
        assert_eq!(
            (d.status, d.category.as_deref(), d.billable),
            (DeliveryStatus::Delivered, Some("utility"), Some(true))
        );
        assert_eq!(
            d.recipient.bsuid.as_ref().map(Bsuid::as_str),
            Some("IN.1234567890")
        );
        let Event::Status(f) = &events[1] else {
            panic!()
        };
        assert_eq!(f.status, DeliveryStatus::Failed);
        assert_eq!(f.errors[0].code, 131047);
        assert!(f.errors[0].details.as_deref().unwrap().contains("24 hours"));
    }

    #[test]
    fn template_quality_and_category_updates_are_read() {
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "W1", "time": 1750000000, "changes": [
                { "field": "message_template_quality_update", "value": { "previous_quality_score": "GREEN", "new_quality_score": "YELLOW", "message_template_id": 806312974732579i64, "message_template_name": "offer", "message_template_language": "en-US" } },
                { "field": "template_category_update", "value": { "message_template_id": 806312974732579i64, "message_template_name": "offer", "message_template_language": "en_US", "previous_category": "UTILITY", "new_category": "MARKETING" } } ] }]
        }))
        .unwrap();
        let events = parse_meta(&body).unwrap();
        assert_eq!(
            events,
            [
                Event::TemplateQuality(TemplateQualityUpdate {
                    waba_id: "W1".into(),
                    template_id: "806312974732579".into(),
                    name: "offer".into(),
                    language: "en-US".into(),
                    quality: "YELLOW".into(),
                }),
                Event::TemplateCategory(TemplateCategoryUpdate {
                    waba_id: "W1".into(),
                    template_id: "806312974732579".into(),
                    name: "offer".into(),
                    language: "en_US".into(),
                    previous_category: Some("UTILITY".into()),
                    new_category: "MARKETING".into(),
                }),
            ]
        );
    }

    #[test]
    fn batched_payloads_lose_nothing() {
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [
                { "id": "W1", "changes": [
                    { "field": "messages", "value": { "metadata": meta(), "messages": [
                        { "from": "919876543210", "id": "wamid.1", "timestamp": "1", "type": "text", "text": { "body": "a" } },
                        { "from": "919876543210", "id": "wamid.2", "timestamp": "2", "type": "text", "text": { "body": "b" } } ] } },
                    { "field": "messages", "value": { "metadata": meta(), "statuses": [ { "id": "wamid.9", "status": "read", "timestamp": "3", "recipient_id": "919876543210" } ] } } ] },
                { "id": "W2", "changes": [
                    { "field": "message_template_status_update", "value": { "event": "APPROVED", "message_template_id": 594425479261596i64, "message_template_name": "appointment_reminder", "message_template_language": "en_US", "reason": "NONE" } },
                    { "field": "phone_number_quality_update", "value": { "display_phone_number": "15550783881", "event": "UPGRADE", "current_limit": "TIER_10K", "old_limit": "TIER_2K" } },
                    { "field": "account_update", "value": { "event": "VERIFIED_ACCOUNT" } } ] }
            ]
        }))
        .unwrap();
        let events = parse_meta(&body).unwrap();
        assert_eq!(events.len(), 6);
        let Event::TemplateStatus(t) = &events[3] else {
            panic!("{:?}", events[3])
        };
        assert_eq!(
            (
                t.template_id.as_str(),
                t.event.as_str(),
                t.reason.as_deref()
            ),
            ("594425479261596", "APPROVED", None)
        );
        let Event::PhoneQuality(q) = &events[4] else {
            panic!()
        };
        assert_eq!(
            (q.current_limit.as_deref(), q.old_limit.as_deref()),
            (Some("TIER_10K"), Some("TIER_2K"))
        );
        assert!(matches!(&events[5], Event::Other { field, .. } if field == "account_update"));
    }

    #[test]
    fn what_is_not_a_whatsapp_webhook_fails_to_parse() {
        assert!(matches!(parse_meta(b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":{\"messages\":[{\"type\":\"text\"}]}}]}]"), Err(ParseError::Json(_))));
        assert!(matches!(
            parse_meta(b"{\"object\":\"page\",\"entry\":[]}"),
            Err(ParseError::WrongObject(_))
        ));
        assert!(matches!(parse_meta(b"not json"), Err(ParseError::Json(_))));
        assert!(matches!(parse_meta(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"type":"text"}]}}]}]}"#), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_meta(br#"{"object":"whatsapp_business_account","entry":"oops"}"#),
            Err(ParseError::Json(_))
        ));
        // Unknown fields anywhere are fine.
        assert!(
            parse_meta(br#"{"object":"whatsapp_business_account","entry":[],"new_thing":1}"#)
                .unwrap()
                .is_empty()
        );
    }
}
