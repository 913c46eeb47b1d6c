//! Whapi.Cloud adapter: its webhook payloads turned into our [`Event`]s, and our
//! [`Outbound`] messages shaped as its send requests.
//!
//! **Lower confidence than the Cloud API half.** Whapi is an unofficial provider built on
//! WhatsApp Web; we found no stable official specification. The shapes here follow the
//! OpenAPI-generated models of Whapi's public SDKs (Message, Status, WebhookPayload,
//! Sender*, UploadMediaResponse, Health) and the examples in Whapi's own published guides,
//! as digested in the shared reference (section 9). Whatever a payload carries that we do
//! not recognise is kept in `raw` or as [`MessageKind::Other`], never an error.
//!
//! What Whapi cannot do that the Cloud API can: templates (there are none), business-scoped
//! user ids (it addresses by phone number or chat id), callback data on sends, quality and
//! messaging-limit figures.
//!
//! Decisions:
//! - `from_me` messages are **skipped**: they are echoes of what this number sent, through
//!   us (we already hold those rows) or typed on the linked phone itself (not imported: a
//!   known gap, the inbox shows customer messages and our own sends only).
//! - Group, broadcast and newsletter chats (`…@g.us`, `status@broadcast`, `…@newsletter`)
//!   are skipped: Frontdesk serves one-to-one customer conversations.
//! - The channel is identified by `channel_id`, carried in [`NumberRef::phone_number_id`]
//!   (Whapi has no WABA, so `waba_id` is empty).

use crate::send::{MediaSource, Outbound, Recipient};
use crate::webhook::{
    Context, CustomerRef, DeliveryStatus, Event, InboundMessage, Media, MediaType, MessageKind,
    NumberRef, ParseError, StatusUpdate, WebhookError,
};
use frontdesk_domain::E164;
use reqwest::Method;
use serde_json::{Value, json};

/// Parses a Whapi webhook body into events, in payload order. Fails only when the body is
/// not JSON or not a Whapi payload at all (e.g. a Meta envelope).
pub fn parse_whapi(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(ParseError::Shape("a Whapi webhook is a JSON object".into()));
    };
    if let Some(o) = obj.get("object") {
        return Err(ParseError::WrongObject(
            o.as_str().unwrap_or_default().to_owned(),
        ));
    }
    const KNOWN: [&str; 6] = [
        "messages",
        "statuses",
        "event",
        "channel_id",
        "messages_updates",
        "messages_removed",
    ];
    if !KNOWN.iter().any(|k| obj.contains_key(*k)) {
        return Err(ParseError::Shape("not a Whapi webhook".into()));
    }
    let number = NumberRef {
        waba_id: String::new(),
        phone_number_id: s(&v, "channel_id").unwrap_or_default(),
        display_phone_number: String::new(),
    };
    let mut out = Vec::new();
    for m in array(&v, "messages")? {
        if m.get("from_me").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let chat_id = s(m, "chat_id").unwrap_or_default();
        if !is_one_to_one(&chat_id) {
            continue;
        }
        let id = s(m, "id").ok_or_else(|| ParseError::Shape("a message without an id".into()))?;
        let mut from = CustomerRef {
            phone: s(m, "from")
                .and_then(|f| phone_of(&f))
                .or_else(|| phone_of(&chat_id)),
            ..CustomerRef::default()
        };
        from.name = s(m, "from_name").filter(|n| !n.trim().is_empty());
        out.push(Event::Message(Box::new(InboundMessage {
            number: number.clone(),
            id,
            timestamp: int(m, "timestamp").unwrap_or(0),
            from,
            context: context_of(m),
            referral: m.get("context").and_then(|c| c.get("ad")).cloned(),
            kind: kind_of(m),
            raw: m.clone(),
        })));
    }
    for st in array(&v, "statuses")? {
        let id = s(st, "id").ok_or_else(|| ParseError::Shape("a status without an id".into()))?;
        // `pending` (queued at Whapi) and names we do not know change nothing.
        let Some(status) = s(st, "status").as_deref().and_then(DeliveryStatus::parse) else {
            continue;
        };
        let recipient = s(st, "recipient_id")
            .or_else(|| s(st, "chat_id"))
            .unwrap_or_default();
        out.push(Event::Status(Box::new(StatusUpdate {
            number: number.clone(),
            id,
            status,
            timestamp: int(st, "timestamp").unwrap_or(0),
            recipient: CustomerRef {
                phone: phone_of(&recipient),
                ..CustomerRef::default()
            },
            errors: errors_of(st.get("errors")),
            category: None,
            pricing_model: None,
            billable: None,
            conversation_id: None,
            biz_opaque_callback_data: None,
        })));
    }
    Ok(out)
}

fn array<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], ParseError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ParseError::Shape(format!("`{key}` is not an array"))),
    }
}

fn s(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whapi sends timestamps as numbers (sometimes with a fraction) or numeric strings.
fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

/// A person's chat: `<digits>@s.whatsapp.net` (or `@c.us`), or bare digits. WhatsApp's
/// linked ids (`…@lid`) are one-to-one too, but carry no phone number.
fn is_one_to_one(chat_id: &str) -> bool {
    !(chat_id.ends_with("@g.us")
        || chat_id.ends_with("@newsletter")
        || chat_id.ends_with("@broadcast"))
}

/// The phone number in a Whapi id (`919876543210`, `919876543210@s.whatsapp.net`).
fn phone_of(id: &str) -> Option<E164> {
    let (user, domain) = id.split_once('@').unwrap_or((id, "s.whatsapp.net"));
    if !matches!(domain, "s.whatsapp.net" | "c.us") {
        return None;
    }
    E164::parse(user).ok()
}

fn errors_of(v: Option<&Value>) -> Vec<WebhookError> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| WebhookError {
                    code: int(e, "code").unwrap_or(0),
                    title: s(e, "message"),
                    message: s(e, "message"),
                    details: s(e, "details"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn context_of(m: &Value) -> Option<Context> {
    let c = m.get("context")?;
    let forwarding_score = int(c, "forwarding_score").unwrap_or(0);
    Some(Context {
        message_id: s(c, "quoted_id"),
        from: s(c, "quoted_author"),
        forwarded: c.get("forwarded").and_then(Value::as_bool).unwrap_or(false),
        // WhatsApp labels a message "forwarded many times" from five forwards on.
        frequently_forwarded: forwarding_score >= 5,
        referred_product: None,
    })
}

fn media_of(body: &Value) -> Media {
    Media {
        media_id: s(body, "id").unwrap_or_default(),
        mime_type: s(body, "mime_type"),
        sha256: s(body, "sha256"),
        caption: s(body, "caption"),
        filename: s(body, "file_name").or_else(|| s(body, "filename")),
        voice: false,
        animated: false,
    }
}

fn kind_of(m: &Value) -> MessageKind {
    let t = s(m, "type").unwrap_or_default();
    let body = m.get(t.as_str()).cloned().unwrap_or(Value::Null);
    let media = |media_type, voice, animated| MessageKind::Media {
        media_type,
        media: Media {
            voice,
            animated,
            ..media_of(&body)
        },
    };
    match t.as_str() {
        "text" => MessageKind::Text {
            body: s(&body, "body").unwrap_or_default(),
        },
        // A text with a link; the text is what the customer wrote.
        "link_preview" => MessageKind::Text {
            body: s(&body, "body").unwrap_or_default(),
        },
        "image" => media(MediaType::Image, false, false),
        "video" | "short" => media(MediaType::Video, false, false),
        "gif" => media(MediaType::Video, false, true),
        "audio" => media(MediaType::Audio, false, false),
        "voice" => media(MediaType::Audio, true, false),
        "document" => media(MediaType::Document, false, false),
        "sticker" => media(
            MediaType::Sticker,
            false,
            body.get("animated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "location" | "live_location" => MessageKind::Location {
            latitude: body.get("latitude").and_then(Value::as_f64).unwrap_or(0.0),
            longitude: body.get("longitude").and_then(Value::as_f64).unwrap_or(0.0),
            name: s(&body, "name"),
            address: s(&body, "address"),
            url: s(&body, "url"),
        },
        "contact" | "contact_list" => MessageKind::Contacts { cards: body },
        "reply" => {
            let rt = s(&body, "type").unwrap_or_default();
            let inner = body.get(rt.as_str()).cloned().unwrap_or(Value::Null);
            match rt.as_str() {
                "buttons_reply" => MessageKind::ButtonReply {
                    id: s(&inner, "id").unwrap_or_default(),
                    title: s(&inner, "title").unwrap_or_default(),
                },
                "list_reply" => MessageKind::ListReply {
                    id: s(&inner, "id").unwrap_or_default(),
                    title: s(&inner, "title").unwrap_or_default(),
                    description: s(&inner, "description"),
                },
                other => MessageKind::Other {
                    type_name: format!("reply.{other}"),
                },
            }
        }
        // Reactions, edits and deletions arrive as `action` messages.
        "action" => {
            let at = s(&body, "type").unwrap_or_default();
            match at.as_str() {
                "reaction" => MessageKind::Reaction {
                    message_id: s(&body, "target").unwrap_or_default(),
                    emoji: s(&body, "emoji").filter(|e| !e.is_empty()),
                },
                other => MessageKind::Other {
                    type_name: format!("action.{other}"),
                },
            }
        }
        "order" => MessageKind::Order {
            catalog_id: s(&body, "catalog_id"),
            text: s(&body, "text").or_else(|| s(&body, "title")),
            items: body
                .get("items")
                .or_else(|| body.get("product_items"))
                .cloned()
                .unwrap_or(Value::Null),
        },
        "system" => MessageKind::System {
            system_type: s(m, "subtype")
                .or_else(|| s(&body, "type"))
                .unwrap_or_default(),
            body: s(&body, "body"),
            new_wa_id: None,
        },
        "unknown" => MessageKind::Unsupported {
            errors: Value::Null,
        },
        "" => MessageKind::Other {
            type_name: "untyped".into(),
        },
        other => MessageKind::Other {
            type_name: other.to_owned(),
        },
    }
}

/// A Whapi send request: method, path segments under the base URL, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WhapiRequest {
    pub method: Method,
    pub path: Vec<String>,
    pub body: Option<Value>,
}

/// Shapes a message as Whapi takes it; `Err` names what Whapi cannot send.
pub(crate) fn send_request(
    to: &Recipient,
    msg: &Outbound,
    reply_to: Option<&str>,
) -> Result<WhapiRequest, &'static str> {
    let to = match to {
        Recipient::Phone(p) => p.digits().to_owned(),
        Recipient::Bsuid(_) => {
            return Err(
                "Whapi addresses customers by phone number; this contact has only a business-scoped user id",
            );
        }
    };
    let post = |kind: &str, mut body: Value| {
        body["to"] = json!(to);
        if let Some(q) = reply_to {
            body["quoted"] = json!(q);
        }
        WhapiRequest {
            method: Method::POST,
            path: vec!["messages".into(), kind.into()],
            body: Some(body),
        }
    };
    let interactive = |kind: &str, text: &str, header: &Option<String>, footer: &Option<String>| {
        let mut b = json!({ "type": kind, "body": { "text": text } });
        if let Some(h) = header {
            b["header"] = json!({ "text": h });
        }
        if let Some(f) = footer {
            b["footer"] = json!({ "text": f });
        }
        b
    };
    Ok(match msg {
        Outbound::Text { body, preview_url } => post(
            "text",
            json!({ "body": body, "no_link_preview": !preview_url }),
        ),
        Outbound::Media {
            media_type,
            source,
            caption,
            filename,
        } => {
            let media = match source {
                MediaSource::Id(id) => id,
                MediaSource::Link(l) => l,
                MediaSource::Upload(_) => return Err("upload the file to the provider first"),
            };
            let mut b = json!({ "media": media });
            if let Some(c) = caption {
                b["caption"] = json!(c);
            }
            if let Some(f) = filename.as_ref().filter(|_| media_type == "document") {
                b["filename"] = json!(f);
            }
            post(media_type, b)
        }
        Outbound::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let mut b = json!({ "latitude": latitude, "longitude": longitude });
            if let Some(n) = name {
                b["name"] = json!(n);
            }
            if let Some(a) = address {
                b["address"] = json!(a);
            }
            post("location", b)
        }
        Outbound::Reaction { message_id, emoji } => WhapiRequest {
            method: Method::PUT,
            path: vec!["messages".into(), message_id.clone(), "reaction".into()],
            body: Some(json!({ "emoji": emoji })),
        },
        Outbound::Buttons {
            body,
            header,
            footer,
            buttons,
        } => {
            let mut b = interactive("button", body, header, footer);
            b["action"] = json!({ "buttons": buttons.iter().map(|x| json!({ "type": "quick_reply", "id": x.id, "title": x.title })).collect::<Vec<_>>() });
            post("interactive", b)
        }
        Outbound::List {
            body,
            button,
            header,
            footer,
            sections,
        } => {
            let mut b = interactive("list", body, header, footer);
            b["action"] = json!({ "list": { "label": button, "sections": sections.iter().map(|s| json!({
                "title": s.title,
                "rows": s.rows.iter().map(|r| json!({ "id": r.id, "title": r.title, "description": r.description })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>() } });
            post("interactive", b)
        }
        Outbound::Template { .. } => {
            return Err("Whapi has no message templates (a Cloud API feature)");
        }
    })
}

/// The id of a sent message: `message.id` of `{"sent": true, "message": {…}}`. A reaction is
/// answered `{"success": true}` with no id of its own; it gets a unique id of ours, which no
/// status will ever name.
pub(crate) fn sent_message_id(answer: &Value, msg: &Outbound) -> Result<String, String> {
    if let Outbound::Reaction { message_id, .. } = msg {
        return if answer.get("success").and_then(Value::as_bool) == Some(true) {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            Ok(format!("whapi-reaction.{message_id}.{nanos}"))
        } else {
            Err("Whapi did not confirm the reaction".into())
        };
    }
    if answer.get("sent").and_then(Value::as_bool) == Some(false) {
        // Not retried: Whapi may still deliver it, and a retry could send it twice.
        return Err("Whapi answered that the message was not sent".into());
    }
    answer
        .get("message")
        .and_then(|m| s(m, "id"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "the provider's answer has no message id".into())
}

/// The id in an upload answer: `{"media": [{"id": …}]}`.
pub(crate) fn uploaded_media_id(answer: &Value) -> Option<String> {
    answer
        .get("media")?
        .get(0)
        .and_then(|m| s(m, "id"))
        .filter(|id| !id.is_empty())
}

/// What `GET /health` says about the linked account: `user.id` (the number) and `user.name`.
pub(crate) fn number_info(health: &Value) -> crate::client::NumberInfo {
    let user = health.get("user").unwrap_or(&Value::Null);
    crate::client::NumberInfo {
        display_phone_number: s(user, "id")
            .map(|id| phone_of(&id).map(|p| p.as_str().to_owned()).unwrap_or(id)),
        verified_name: s(user, "name").or_else(|| s(user, "pushname")),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::{Button, ListRow, ListSection};
    use frontdesk_domain::Bsuid;

    fn events(v: Value) -> Vec<Event> {
        parse_whapi(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn only_message(v: Value) -> InboundMessage {
        let mut e = events(v);
        assert_eq!(e.len(), 1, "{e:?}");
        match e.remove(0) {
            Event::Message(m) => *m,
            other => panic!("{other:?}"),
        }
    }

    /// A text as Whapi posts it on `messages.post`.
    #[test]
    fn a_text_message_becomes_an_inbound_message() {
        let m = only_message(json!({
            "messages": [{
                "id": "PsobWy36679._7w-wKmB9tMeGQ",
                "from_me": false,
                "type": "text",
                "chat_id": "919876543210@s.whatsapp.net",
                "timestamp": 1712995245,
                "source": "mobile",
                "text": { "body": "Hello, is the clinic open today?" },
                "from": "919876543210",
                "from_name": "Asha"
            }],
            "event": { "type": "messages", "event": "post" },
            "channel_id": "MANTIS-M72HC"
        }));
        assert_eq!(m.id, "PsobWy36679._7w-wKmB9tMeGQ");
        assert_eq!(m.timestamp, 1712995245);
        assert_eq!(m.number.phone_number_id, "MANTIS-M72HC");
        assert_eq!(m.from.phone.as_ref().unwrap().as_str(), "+919876543210");
        assert_eq!(m.from.bsuid, None);
        assert_eq!(m.from.name.as_deref(), Some("Asha"));
        assert_eq!(
            m.kind,
            MessageKind::Text {
                body: "Hello, is the clinic open today?".into()
            }
        );
        assert_eq!(m.raw["source"], "mobile");
    }

    #[test]
    fn our_own_echoes_and_group_chats_are_skipped() {
        let e = events(json!({
            "messages": [
                { "id": "echo", "from_me": true, "type": "text", "chat_id": "919876543210@s.whatsapp.net", "timestamp": 1, "text": { "body": "our reply" }, "from": "15550001111" },
                { "id": "grp", "from_me": false, "type": "text", "chat_id": "120363194050948049@g.us", "timestamp": 1, "text": { "body": "hi all" }, "from": "919876543210" },
                { "id": "news", "from_me": false, "type": "text", "chat_id": "120363@newsletter", "timestamp": 1, "text": { "body": "news" } },
                { "id": "keep", "from_me": false, "type": "text", "chat_id": "919876543210@s.whatsapp.net", "timestamp": 2, "text": { "body": "hi" }, "from": "919876543210" }
            ],
            "event": { "type": "messages", "event": "post" },
            "channel_id": "C1"
        }));
        let ids: Vec<&str> = e
            .iter()
            .map(|e| match e {
                Event::Message(m) => m.id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["keep"]);
    }

    #[test]
    fn media_replies_reactions_and_locations_are_understood() {
        let chat = "447700900123@s.whatsapp.net";
        let msg = |t: &str, body: Value, extra: Value| {
            let mut m = json!({ "id": format!("id-{t}"), "from_me": false, "type": t, "chat_id": chat, "timestamp": 1712995300.0, "from": "447700900123" });
            m[t] = body;
            if let Value::Object(x) = extra {
                for (k, v) in x {
                    m[k] = v;
                }
            }
            only_message(json!({ "messages": [m], "channel_id": "C1" }))
        };

        let img = msg(
            "image",
            json!({ "id": "jpeg-4c6f2e1a", "link": "https://s3.eu-central-1.wasabisys.com/in-files/x.jpeg", "mime_type": "image/jpeg", "file_size": 52000, "sha256": "abc", "caption": "my rash" }),
            json!({}),
        );
        match &img.kind {
            MessageKind::Media { media_type, media } => {
                assert_eq!(*media_type, MediaType::Image);
                assert_eq!(media.media_id, "jpeg-4c6f2e1a");
                assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
                assert_eq!(media.caption.as_deref(), Some("my rash"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(img.timestamp, 1712995300);

        let voice = msg(
            "voice",
            json!({ "id": "oga-1", "mime_type": "audio/ogg; codecs=opus", "seconds": 4 }),
            json!({}),
        );
        assert!(
            matches!(&voice.kind, MessageKind::Media { media_type: MediaType::Audio, media } if media.voice)
        );

        let doc = msg(
            "document",
            json!({ "id": "pdf-1", "mime_type": "application/pdf", "file_name": "report.pdf" }),
            json!({}),
        );
        assert!(
            matches!(&doc.kind, MessageKind::Media { media, .. } if media.filename.as_deref() == Some("report.pdf"))
        );

        let reply = msg(
            "reply",
            json!({ "type": "buttons_reply", "buttons_reply": { "id": "ButtonsV3:yes", "title": "Yes" } }),
            json!({ "context": { "quoted_id": "our-msg-1", "quoted_author": "15550001111" } }),
        );
        assert_eq!(
            reply.kind,
            MessageKind::ButtonReply {
                id: "ButtonsV3:yes".into(),
                title: "Yes".into()
            }
        );
        assert_eq!(
            reply.context.as_ref().unwrap().message_id.as_deref(),
            Some("our-msg-1")
        );

        let list = msg(
            "reply",
            json!({ "type": "list_reply", "list_reply": { "id": "ListV3:t10", "title": "10:00", "description": "Dr Mehta" } }),
            json!({}),
        );
        assert!(
            matches!(&list.kind, MessageKind::ListReply { id, description, .. } if id == "ListV3:t10" && description.as_deref() == Some("Dr Mehta"))
        );

        let reaction = msg(
            "action",
            json!({ "target": "our-msg-1", "type": "reaction", "emoji": "👍" }),
            json!({}),
        );
        assert_eq!(
            reaction.kind,
            MessageKind::Reaction {
                message_id: "our-msg-1".into(),
                emoji: Some("👍".into())
            }
        );
        let removed = msg(
            "action",
            json!({ "target": "our-msg-1", "type": "reaction", "emoji": "" }),
            json!({}),
        );
        assert!(matches!(
            removed.kind,
            MessageKind::Reaction { emoji: None, .. }
        ));
        let edit = msg(
            "action",
            json!({ "target": "x", "type": "edit", "edited_type": "text" }),
            json!({}),
        );
        assert_eq!(edit.kind.type_name(), "action.edit");

        let loc = msg(
            "location",
            json!({ "latitude": 51.5072, "longitude": -0.1276, "name": "Clinic" }),
            json!({ "context": { "forwarded": true, "forwarding_score": 6 } }),
        );
        assert!(
            matches!(loc.kind, MessageKind::Location { name: Some(ref n), .. } if n == "Clinic")
        );
        let ctx = loc.context.unwrap();
        assert!(ctx.forwarded && ctx.frequently_forwarded);

        let poll = msg("poll", json!({ "title": "?" }), json!({}));
        assert_eq!(
            poll.kind,
            MessageKind::Other {
                type_name: "poll".into()
            }
        );
    }

    #[test]
    fn statuses_map_to_delivery_statuses() {
        let e = events(json!({
            "statuses": [
                { "id": "out-1", "code": 3, "status": "delivered", "recipient_id": "919876543210@s.whatsapp.net", "timestamp": "1712995400" },
                { "id": "out-2", "code": 1, "status": "pending", "recipient_id": "919876543210", "timestamp": "1712995401" },
                { "id": "out-3", "code": 0, "status": "failed", "recipient_id": "919876543210", "timestamp": 1712995402,
                  "errors": [{ "code": 400, "message": "Recipient is not on WhatsApp", "details": "no account" }] }
            ],
            "event": { "type": "statuses", "event": "post" },
            "channel_id": "C1"
        }));
        assert_eq!(e.len(), 2, "pending is not a delivery status: {e:?}");
        let Event::Status(d) = &e[0] else {
            panic!("{:?}", e[0])
        };
        assert_eq!(
            (d.id.as_str(), d.status, d.timestamp),
            ("out-1", DeliveryStatus::Delivered, 1712995400)
        );
        assert_eq!(d.recipient.phone.as_ref().unwrap().digits(), "919876543210");
        assert_eq!(d.number.phone_number_id, "C1");
        let Event::Status(f) = &e[1] else {
            panic!("{:?}", e[1])
        };
        assert_eq!(f.status, DeliveryStatus::Failed);
        assert_eq!(f.errors[0].code, 400);
        assert_eq!(f.errors[0].details.as_deref(), Some("no account"));
    }

    #[test]
    fn other_payloads_fail_or_yield_nothing() {
        assert!(matches!(parse_whapi(b"{nope"), Err(ParseError::Json(_))));
        assert!(matches!(parse_whapi(b"[1]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse_whapi(br#"{"object":"whatsapp_business_account","entry":[]}"#),
            Err(ParseError::WrongObject(o)) if o == "whatsapp_business_account"
        ));
        assert!(matches!(
            parse_whapi(br#"{"hello":1}"#),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(
            parse_whapi(br#"{"messages":{"id":"x"},"channel_id":"C"}"#),
            Err(ParseError::Shape(_))
        ));
        // A chat update carries nothing we act on.
        assert_eq!(
            events(
                json!({ "chats_updates": [], "event": { "type": "chats", "event": "patch" }, "channel_id": "C" })
            ),
            vec![]
        );
    }

    fn phone() -> Recipient {
        Recipient::Phone(E164::parse("+919876543210").unwrap())
    }

    #[test]
    fn sends_are_shaped_as_whapi_takes_them() {
        let r = send_request(
            &phone(),
            &Outbound::Text {
                body: "Hi".into(),
                preview_url: false,
            },
            Some("in-1"),
        )
        .unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, ["messages", "text"]);
        assert_eq!(
            r.body.unwrap(),
            json!({ "to": "919876543210", "body": "Hi", "no_link_preview": true, "quoted": "in-1" })
        );

        let r = send_request(
            &phone(),
            &Outbound::Media {
                media_type: "document".into(),
                source: MediaSource::Id("pdf-9".into()),
                caption: Some("Your report".into()),
                filename: Some("report.pdf".into()),
            },
            None,
        )
        .unwrap();
        assert_eq!(r.path, ["messages", "document"]);
        assert_eq!(
            r.body.unwrap(),
            json!({ "to": "919876543210", "media": "pdf-9", "caption": "Your report", "filename": "report.pdf" })
        );

        let r = send_request(
            &phone(),
            &Outbound::Reaction {
                message_id: "in-1".into(),
                emoji: "👍".into(),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            (r.method, r.path),
            (
                Method::PUT,
                vec!["messages".into(), "in-1".into(), "reaction".into()]
            )
        );

        let r = send_request(
            &phone(),
            &Outbound::Buttons {
                body: "Confirm?".into(),
                header: Some("Appointment".into()),
                footer: None,
                buttons: vec![Button {
                    id: "y".into(),
                    title: "Yes".into(),
                }],
            },
            None,
        )
        .unwrap();
        let b = r.body.unwrap();
        assert_eq!(r.path, ["messages", "interactive"]);
        assert_eq!(b["type"], "button");
        assert_eq!(b["header"]["text"], "Appointment");
        assert_eq!(
            b["action"]["buttons"][0],
            json!({ "type": "quick_reply", "id": "y", "title": "Yes" })
        );

        let r = send_request(
            &phone(),
            &Outbound::List {
                body: "Pick".into(),
                button: "Slots".into(),
                header: None,
                footer: Some("Clinic".into()),
                sections: vec![ListSection {
                    title: Some("Tue".into()),
                    rows: vec![ListRow {
                        id: "t10".into(),
                        title: "10:00".into(),
                        description: None,
                    }],
                }],
            },
            None,
        )
        .unwrap();
        let b = r.body.unwrap();
        assert_eq!(b["action"]["list"]["label"], "Slots");
        assert_eq!(b["action"]["list"]["sections"][0]["rows"][0]["id"], "t10");

        let r = send_request(
            &phone(),
            &Outbound::Location {
                latitude: 1.5,
                longitude: 2.5,
                name: None,
                address: Some("Main St".into()),
            },
            None,
        )
        .unwrap();
        assert_eq!(
            r.body.unwrap(),
            json!({ "to": "919876543210", "latitude": 1.5, "longitude": 2.5, "address": "Main St" })
        );
    }

    #[test]
    fn what_whapi_cannot_send_is_refused() {
        let t = Outbound::Template {
            name: "reminder".into(),
            language: "en".into(),
            components: vec![],
        };
        assert!(
            send_request(&phone(), &t, None)
                .unwrap_err()
                .contains("templates")
        );
        let text = Outbound::Text {
            body: "x".into(),
            preview_url: false,
        };
        let bsuid = Recipient::Bsuid(Bsuid::parse("US.1234567890").unwrap());
        assert!(
            send_request(&bsuid, &text, None)
                .unwrap_err()
                .contains("phone number")
        );
    }

    #[test]
    fn answers_yield_message_and_media_ids() {
        let text = Outbound::Text {
            body: "x".into(),
            preview_url: false,
        };
        assert_eq!(
            sent_message_id(&json!({ "sent": true, "message": { "id": "PsqXn5SAD5v7HRA-wHqB9tMeGQ", "from_me": true } }), &text).unwrap(),
            "PsqXn5SAD5v7HRA-wHqB9tMeGQ"
        );
        assert!(sent_message_id(&json!({ "sent": false }), &text).is_err());
        let reaction = Outbound::Reaction {
            message_id: "in-1".into(),
            emoji: "👍".into(),
        };
        let a = sent_message_id(&json!({ "success": true }), &reaction).unwrap();
        assert!(a.starts_with("whapi-reaction.in-1."));
        assert!(sent_message_id(&json!({ "success": false }), &reaction).is_err());
        assert_eq!(
            uploaded_media_id(&json!({ "media": [{ "id": "jpeg-1" }] })).as_deref(),
            Some("jpeg-1")
        );
        assert_eq!(uploaded_media_id(&json!({ "media": [] })), None);
        let n = number_info(
            &json!({ "status": { "code": 4, "text": "AUTH" }, "user": { "id": "919876543210", "name": "Clinic" } }),
        );
        assert_eq!(n.display_phone_number.as_deref(), Some("+919876543210"));
        assert_eq!(n.verified_name.as_deref(), Some("Clinic"));
    }
}
