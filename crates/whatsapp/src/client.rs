//! The provider HTTP clients: Meta's Cloud (Graph) API and Whapi, behind one type.
//!
//! Every failure becomes a [`ProviderError`] whose [`ErrorClass`] tells the dispatcher what to
//! do (retry, slow down, give up, stop the channel). The access token is attached only as a
//! `Bearer` header, marked sensitive, and is never part of an error, a log line or `Debug`.
//! Bodies read from the network are bounded, so a misbehaving server cannot exhaust memory.
//!
//! The Whapi half is lower-confidence than the Cloud half: Whapi publishes no stable spec we
//! could verify (see [`crate::whapi`]).

use crate::errors::{ErrorClass, GraphError, classify};
use crate::send::{Outbound, Recipient, mark_read_body, sent_message_id};
use crate::whapi;
use base64::Engine as _;
use reqwest::{RequestBuilder, Response, StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// The largest JSON answer we read from a provider (send results, media info, errors).
const MAX_JSON_ANSWER: u64 = 1024 * 1024;
/// How long a media download may take in all; longer than API calls, files can be 100 MB.
const MEDIA_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `Retry-After` we honour; anything longer is a misconfigured server.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Hosts Meta serves media from; the token is sent to them (and to the API's own host) only.
const META_MEDIA_HOSTS: [&str; 4] = ["fbsbx.com", "facebook.com", "whatsapp.net", "fbcdn.net"];

/// Which provider a channel talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Meta's WhatsApp Cloud API (the Graph API), or the built-in simulator that speaks it.
    Cloud,
    /// Whapi.Cloud, an unofficial WhatsApp-Web-based provider (lower-confidence adapter).
    Whapi,
}

impl ProviderKind {
    /// The stored name: `cloud` or `whapi`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Cloud => "cloud",
            ProviderKind::Whapi => "whapi",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cloud" => Some(ProviderKind::Cloud),
            "whapi" => Some(ProviderKind::Whapi),
            _ => None,
        }
    }
}

/// How to reach one channel's provider. `api_version`, `phone_number_id` and `waba_id` are
/// Cloud-only (Whapi needs only `base_url` and the token).
#[derive(Clone)]
pub struct ClientConfig {
    pub kind: ProviderKind,
    /// e.g. `https://graph.facebook.com`, `https://gate.whapi.cloud`, or the simulator's prefix.
    pub base_url: String,
    /// e.g. `v23.0`; empty means no version segment.
    pub api_version: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: SecretString,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("phone_number_id", &self.phone_number_id)
            .field("waba_id", &self.waba_id)
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// A failed provider call, classified for the dispatcher. Safe to show and log: it never
/// carries the token (text from the provider is scrubbed of it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The provider's error code (Graph's `error.code`, Whapi's `error.code`), when it sent one.
    pub code: Option<i64>,
    pub title: String,
    pub details: Option<String>,
    /// `None` when no answer came (timeout, connection refused).
    pub http_status: Option<u16>,
    /// From the `Retry-After` header, in seconds, when the provider sent one.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error we decided on ourselves, without an answer from the provider.
    pub fn local(class: ErrorClass, title: impl Into<String>) -> Self {
        Self {
            class,
            code: None,
            title: title.into(),
            details: None,
            http_status: None,
            retry_after: None,
        }
    }

    fn permanent(title: impl Into<String>) -> Self {
        Self::local(ErrorClass::Permanent, title)
    }

    /// The least time to wait before trying again: the provider's `Retry-After`, else the
    /// class's minimum.
    pub fn min_delay(&self) -> Duration {
        self.retry_after
            .unwrap_or_else(|| self.class.min_delay())
            .max(self.class.min_delay())
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)?;
        if let Some(c) = self.code {
            write!(f, " (code {c})")?;
        }
        if let Some(s) = self.http_status {
            write!(f, " [HTTP {s}]")?;
        }
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

/// Where a media file can be fetched, as the provider describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    pub url: String,
    /// Empty when the provider does not say (Whapi).
    pub mime_type: String,
    /// Hex or base64 SHA-256 of the file; checked after download when present.
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

/// A business number's health, as the provider reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberInfo {
    pub display_phone_number: Option<String>,
    /// Cloud: the approved display name. Whapi: the profile name of the linked account.
    pub verified_name: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN` (Cloud only).
    pub quality_rating: Option<String>,
    /// e.g. `TIER_1K` (Cloud only; deprecated by Meta in favour of a portfolio-level limit).
    pub messaging_limit_tier: Option<String>,
    /// e.g. `STANDARD`, `HIGH` (Cloud only).
    pub throughput_level: Option<String>,
}

/// One channel's provider client. Cheap to clone: the `reqwest::Client` inside is shared.
#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    cfg: ClientConfig,
}

impl fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The shared HTTP client for provider calls: 5 s to connect, 30 s per request, redirects
/// followed only within the same host and scheme (so a redirect cannot carry a request to
/// another host).
pub fn http_client() -> reqwest::Client {
    http_client_with_timeouts(Duration::from_secs(5), Duration::from_secs(30))
}

/// [`http_client`] with other timeouts (tests use short ones).
pub fn http_client_with_timeouts(connect: Duration, request: Duration) -> reqwest::Client {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("too many redirects");
        }
        let (to, from) = (attempt.url(), &attempt.previous()[0]);
        let same_origin = to.scheme() == from.scheme()
            && to.host_str() == from.host_str()
            && to.port_or_known_default() == from.port_or_known_default();
        if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(request)
        .redirect(redirects)
        .user_agent(concat!("frontdesk/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

impl ProviderClient {
    /// A client for one channel, sharing `http` (build it once with [`http_client`]).
    pub fn new(http: reqwest::Client, cfg: ClientConfig) -> Self {
        Self { http, cfg }
    }

    /// Which provider this client talks to.
    pub fn kind(&self) -> ProviderKind {
        self.cfg.kind
    }

    /// Sends one message; answers the provider's message id (`wamid.…` for Cloud).
    /// `callback` is echoed in Cloud status webhooks (`biz_opaque_callback_data`); Whapi has
    /// no such field and ignores it.
    pub async fn send(
        &self,
        to: &Recipient,
        msg: &Outbound,
        reply_to: Option<&str>,
        callback: Option<&str>,
    ) -> Result<String, ProviderError> {
        // Checked again here: a provider 400 for a body we could have refused costs a call.
        msg.validate()
            .map_err(|e| ProviderError::permanent(format!("invalid message: {e}")))?;
        if msg.pending_upload().is_some() {
            return Err(ProviderError::permanent(
                "the file must be uploaded to the provider before the message is sent",
            ));
        }
        match self.cfg.kind {
            ProviderKind::Cloud => {
                let url = self.cloud_url(&[&self.cfg.phone_number_id, "messages"])?;
                let body = msg.to_cloud_body(to, reply_to, callback);
                let answer = self
                    .call(self.http.post(url).json(&body), "send message")
                    .await?;
                sent_message_id(&answer).ok_or_else(|| {
                    // Accepted or not, we cannot tell: never retried, so never sent twice.
                    ProviderError::permanent("the provider's answer has no message id")
                })
            }
            ProviderKind::Whapi => {
                let req = whapi::send_request(to, msg, reply_to)
                    .map_err(|reason| ProviderError::permanent(reason.to_owned()))?;
                let url = self.url(req.path.as_slice())?;
                let mut rb = self.http.request(req.method, url);
                if let Some(b) = &req.body {
                    rb = rb.json(b);
                }
                let answer = self.call(rb, "send message").await?;
                whapi::sent_message_id(&answer, msg).map_err(ProviderError::permanent)
            }
        }
    }

    /// Marks an inbound message (and those before it) read.
    pub async fn mark_read(&self, message_id: &str) -> Result<(), ProviderError> {
        let rb = match self.cfg.kind {
            ProviderKind::Cloud => {
                let url = self.cloud_url(&[&self.cfg.phone_number_id, "messages"])?;
                self.http.post(url).json(&mark_read_body(message_id, false))
            }
            ProviderKind::Whapi => self.http.put(self.url(&["messages", message_id])?),
        };
        self.call(rb, "mark read").await.map(drop)
    }

    /// Where to download a media file. Cloud: `GET /{media-id}` (the URL lives minutes).
    /// Whapi: its `GET /media/{id}` serves the file itself, so no call is made and the
    /// type, size and checksum are unknown here (the webhook carries the type).
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, ProviderError> {
        match self.cfg.kind {
            ProviderKind::Cloud => {
                let url = self.cloud_url(&[media_id])?;
                let v = self.call(self.http.get(url), "media info").await?;
                let url = v
                    .get("url")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ProviderError::permanent("media info without a url"))?;
                Ok(MediaInfo {
                    url: url.to_owned(),
                    mime_type: str_field(&v, "mime_type").unwrap_or_default(),
                    sha256: str_field(&v, "sha256").filter(|s| !s.is_empty()),
                    file_size: match v.get("file_size") {
                        Some(Value::Number(n)) => n.as_u64(),
                        Some(Value::String(s)) => s.parse().ok(),
                        _ => None,
                    },
                })
            }
            ProviderKind::Whapi => Ok(MediaInfo {
                url: self.url(&["media", media_id])?.to_string(),
                mime_type: String::new(),
                sha256: None,
                file_size: None,
            }),
        }
    }

    /// Downloads a media file, streaming, refusing anything above `max_bytes` (by declared
    /// size or as it arrives), and checking `info.sha256` when given; a mismatch is a
    /// permanent error. The token goes only to the API's own origin and, for Cloud, Meta's
    /// media hosts over https; other links are fetched without it.
    pub async fn download_media(
        &self,
        info: &MediaInfo,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ProviderError> {
        if info.file_size.is_some_and(|s| s > max_bytes) {
            return Err(too_large(max_bytes));
        }
        let url = Url::parse(&info.url)
            .map_err(|_| ProviderError::permanent("the media url is not a URL"))?;
        let own_origin = self.base()?.origin() == url.origin();
        if url.scheme() != "https" && !own_origin {
            return Err(ProviderError::permanent("the media url is not https"));
        }
        let meta_host = self.cfg.kind == ProviderKind::Cloud
            && url.scheme() == "https"
            && url.host_str().is_some_and(|h| {
                META_MEDIA_HOSTS
                    .iter()
                    .any(|d| h == *d || h.ends_with(&format!(".{d}")))
            });
        let mut rb = self.http.get(url).timeout(MEDIA_DOWNLOAD_TIMEOUT);
        if own_origin || meta_host {
            rb = rb.bearer_auth(self.cfg.access_token.expose_secret());
        }
        let resp = rb.send().await.map_err(transport_error)?;
        if !resp.status().is_success() {
            return Err(self.answer_error(resp).await);
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large(max_bytes));
        }
        let bytes = read_bounded(resp, max_bytes)
            .await?
            .ok_or_else(|| too_large(max_bytes))?;
        if let Some(want) = &info.sha256
            && !sha256_matches(&bytes, want)
        {
            return Err(ProviderError::permanent(
                "the media file does not match its sha256",
            ));
        }
        Ok(bytes)
    }

    /// Uploads a media file; answers its media id, usable in a media message.
    /// Cloud: multipart `POST /{phone-number-id}/media`. Whapi: the raw bytes to `POST /media`.
    pub async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<String, ProviderError> {
        if mime.is_empty() || !mime.contains('/') || mime.chars().any(|c| c.is_control()) {
            return Err(ProviderError::permanent("not a media type"));
        }
        match self.cfg.kind {
            ProviderKind::Cloud => {
                let url = self.cloud_url(&[&self.cfg.phone_number_id, "media"])?;
                let part = reqwest::multipart::Part::bytes(bytes)
                    .file_name(safe_filename(filename))
                    .mime_str(mime)
                    .map_err(|_| ProviderError::permanent("not a media type"))?;
                let form = reqwest::multipart::Form::new()
                    .text("messaging_product", "whatsapp")
                    .text("type", mime.to_owned())
                    .part("file", part);
                let v = self
                    .call(self.http.post(url).multipart(form), "upload media")
                    .await?;
                str_field(&v, "id")
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| ProviderError::permanent("upload answer without a media id"))
            }
            ProviderKind::Whapi => {
                let url = self.url(&["media"])?;
                let rb = self
                    .http
                    .post(url)
                    .header(header::CONTENT_TYPE, mime)
                    .body(bytes);
                let v = self.call(rb, "upload media").await?;
                whapi::uploaded_media_id(&v)
                    .ok_or_else(|| ProviderError::permanent("upload answer without a media id"))
            }
        }
    }

    /// The number's display number, name, quality rating, messaging tier and throughput.
    /// Whapi reports only the linked account (`GET /health`), not quality or limits.
    pub async fn number_info(&self) -> Result<NumberInfo, ProviderError> {
        match self.cfg.kind {
            ProviderKind::Cloud => {
                let mut url = self.cloud_url(&[&self.cfg.phone_number_id])?;
                url.query_pairs_mut().append_pair(
                    "fields",
                    "display_phone_number,verified_name,quality_rating,messaging_limit_tier,throughput",
                );
                let v = self.call(self.http.get(url), "number info").await?;
                Ok(NumberInfo {
                    display_phone_number: str_field(&v, "display_phone_number"),
                    verified_name: str_field(&v, "verified_name"),
                    quality_rating: str_field(&v, "quality_rating"),
                    messaging_limit_tier: str_field(&v, "messaging_limit_tier"),
                    throughput_level: v.get("throughput").and_then(|t| str_field(t, "level")),
                })
            }
            ProviderKind::Whapi => {
                let v = self
                    .call(self.http.get(self.url(&["health"])?), "health")
                    .await?;
                Ok(whapi::number_info(&v))
            }
        }
    }

    /// Submits a template for review (`POST /{waba-id}/message_templates`); answers the
    /// provider's template id. `submission` is the body (name, language, category,
    /// parameter format, components).
    pub async fn create_template(&self, submission: &Value) -> Result<String, ProviderError> {
        let url = self.cloud_only_url(&[&self.cfg.waba_id, "message_templates"])?;
        let v = self
            .call(self.http.post(url).json(submission), "create template")
            .await?;
        str_field(&v, "id")
            .or_else(|| v.get("id").and_then(Value::as_i64).map(|i| i.to_string()))
            .ok_or_else(|| ProviderError::permanent("the provider's answer has no template id"))
    }

    /// Submits new components for a template the provider has (`POST /{template-id}`); an
    /// approved template goes back to review.
    pub async fn edit_template(
        &self,
        template_id: &str,
        submission: &Value,
    ) -> Result<(), ProviderError> {
        let url = self.cloud_only_url(&[template_id])?;
        let body = serde_json::json!({
            "category": submission.get("category"),
            "components": submission.get("components"),
        });
        self.call(self.http.post(url).json(&body), "edit template")
            .await
            .map(drop)
    }

    /// Deletes a template at the provider (`DELETE /{waba-id}/message_templates?name=…`):
    /// with the provider's template id (`hsm_id`) only that one language, without it
    /// every language of the name.
    pub async fn delete_template(
        &self,
        name: &str,
        template_id: Option<&str>,
    ) -> Result<(), ProviderError> {
        let mut url = self.cloud_only_url(&[&self.cfg.waba_id, "message_templates"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("name", name);
            if let Some(id) = template_id {
                q.append_pair("hsm_id", id);
            }
        }
        self.call(self.http.delete(url), "delete template")
            .await
            .map(drop)
    }

    /// Every template of the business account (`GET /{waba-id}/message_templates`),
    /// following the `after` cursor for at most 20 pages of 100.
    pub async fn list_templates(&self) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let mut url = self.cloud_only_url(&[&self.cfg.waba_id, "message_templates"])?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair(
                    "fields",
                    "id,name,language,status,category,quality_score,rejected_reason,components,parameter_format",
                );
                q.append_pair("limit", "100");
                if let Some(a) = &after {
                    q.append_pair("after", a);
                }
            }
            let v = self.call(self.http.get(url), "list templates").await?;
            let page = v
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let empty = page.is_empty();
            out.extend(page);
            // Meta sends `paging.next` only when another page exists.
            let next = v.get("paging").and_then(|p| p.get("next")).is_some();
            after = v
                .get("paging")
                .and_then(|p| p.get("cursors"))
                .and_then(|c| str_field(c, "after"));
            if empty || !next || after.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Uploads a template's sample file through Meta's Resumable Upload API and answers the
    /// file handle a template's `header_handle` takes. Step one opens a session on the app
    /// (`POST /{app-id}/uploads?file_name=…&file_length=…&file_type=…` → `{"id":
    /// "upload:…"}`); step two sends the bytes (`POST /upload:…` with `Authorization: OAuth
    /// <token>` and `file_offset`) → `{"h": "…"}`. When the provider has taken only part of
    /// the file (it answers the session's `file_offset`), the rest is sent from there, at
    /// most three times.
    pub async fn upload_template_sample(
        &self,
        app_id: &str,
        file_name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<String, ProviderError> {
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProviderError::permanent("the Meta app id is not valid"));
        }
        if bytes.is_empty() {
            return Err(ProviderError::permanent("the sample file is empty"));
        }
        if mime.is_empty() || !mime.contains('/') || mime.chars().any(|c| c.is_control()) {
            return Err(ProviderError::permanent("not a media type"));
        }
        let mut url = self.cloud_only_url(&[app_id, "uploads"])?;
        url.query_pairs_mut()
            .append_pair("file_name", &safe_filename(file_name))
            .append_pair("file_length", &bytes.len().to_string())
            .append_pair("file_type", mime);
        let v = self.call(self.http.post(url), "start upload").await?;
        let session = str_field(&v, "id")
            .ok_or_else(|| ProviderError::permanent("the upload answer has no session id"))?;
        let url = self.upload_session_url(&session)?;
        let mut offset = 0usize;
        for _ in 0..3 {
            let rb = self
                .oauth(self.http.post(url.clone()))?
                .header("file_offset", offset.to_string())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes[offset..].to_vec());
            let v = self.send_json(rb, "upload file").await?;
            if let Some(h) = str_field(&v, "h") {
                if h.is_empty() || h.len() > 4096 || h.chars().any(char::is_whitespace) {
                    return Err(ProviderError::permanent(
                        "the upload answer's handle is not valid",
                    ));
                }
                return Ok(h);
            }
            match v.get("file_offset").and_then(Value::as_u64) {
                Some(at) if (at as usize) > offset && (at as usize) < bytes.len() => {
                    offset = at as usize;
                }
                _ => break,
            }
        }
        Err(ProviderError::permanent(
            "the provider did not answer a file handle for the upload",
        ))
    }

    /// The URL of an upload session, `base/{version}/upload:…[?sig=…]`: the id is used as
    /// the provider wrote it, once checked to be one path segment and a plain query.
    fn upload_session_url(&self, session: &str) -> Result<Url, ProviderError> {
        let bad = || ProviderError::permanent("the upload session id is not one we can use");
        let (path, query) = match session.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (session, None),
        };
        let path_ok = path.len() <= 512
            && path.strip_prefix("upload:").is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=:_-.".contains(&b))
            });
        let query_ok = query.is_none_or(|q| {
            q.len() <= 512
                && q.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=:_-.&%".contains(&b))
        });
        if !path_ok || !query_ok {
            return Err(bad());
        }
        let mut url = self.cloud_url(&[path])?;
        url.set_query(query);
        Ok(url)
    }

    /// A Graph API URL for a call only the Cloud API has.
    fn cloud_only_url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        if self.cfg.kind != ProviderKind::Cloud {
            return Err(ProviderError::permanent(
                "message templates are a Cloud API feature; this number is on Whapi",
            ));
        }
        self.cloud_url(segments)
    }

    fn base(&self) -> Result<Url, ProviderError> {
        let u = Url::parse(&self.cfg.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ProviderError::permanent("the channel's base URL is not valid"))?;
        Ok(u)
    }

    /// `base` + segments, each percent-encoded, so an id can never change the path.
    fn url<S: AsRef<str>>(&self, segments: &[S]) -> Result<Url, ProviderError> {
        let mut u = self.base()?;
        {
            let mut path = u
                .path_segments_mut()
                .map_err(|_| ProviderError::permanent("the channel's base URL is not valid"))?;
            path.pop_if_empty();
            for s in segments {
                let s = s.as_ref();
                if s.is_empty() || s == "." || s == ".." {
                    return Err(ProviderError::permanent("an empty or relative id"));
                }
                path.push(s);
            }
        }
        Ok(u)
    }

    /// A Graph API URL: `base/{version}/…`.
    fn cloud_url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut all: Vec<&str> = Vec::with_capacity(segments.len() + 1);
        if !self.cfg.api_version.is_empty() {
            all.push(&self.cfg.api_version);
        }
        all.extend_from_slice(segments);
        self.url(all.as_slice())
    }

    /// Sends a request with the token as `Bearer` and reads a bounded JSON answer (empty
    /// is `null`).
    async fn call(&self, rb: RequestBuilder, op: &'static str) -> Result<Value, ProviderError> {
        self.send_json(rb.bearer_auth(self.cfg.access_token.expose_secret()), op)
            .await
    }

    /// The token as the Resumable Upload API wants it: `Authorization: OAuth <token>`,
    /// marked sensitive.
    fn oauth(&self, rb: RequestBuilder) -> Result<RequestBuilder, ProviderError> {
        let mut v = header::HeaderValue::from_str(&format!(
            "OAuth {}",
            self.cfg.access_token.expose_secret()
        ))
        .map_err(|_| ProviderError::permanent("the access token is not a header value"))?;
        v.set_sensitive(true);
        Ok(rb.header(header::AUTHORIZATION, v))
    }

    /// Sends an authorised request and reads a bounded JSON answer (empty is `null`).
    async fn send_json(
        &self,
        rb: RequestBuilder,
        op: &'static str,
    ) -> Result<Value, ProviderError> {
        let result = async {
            let resp = rb.send().await.map_err(transport_error)?;
            if !resp.status().is_success() {
                return Err(self.answer_error(resp).await);
            }
            let status = resp.status().as_u16();
            let body = read_bounded(resp, MAX_JSON_ANSWER)
                .await?
                .ok_or_else(|| ProviderError::permanent("the provider's answer is too large"))?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&body).map_err(|_| ProviderError {
                http_status: Some(status),
                ..ProviderError::permanent("the provider's answer is not JSON")
            })
        }
        .await;
        if let Err(e) = &result {
            tracing::debug!(provider = self.cfg.kind.as_str(), op, class = ?e.class, code = e.code, http_status = e.http_status, "provider call failed");
        }
        result
    }

    /// Classifies a non-2xx answer.
    async fn answer_error(&self, resp: Response) -> ProviderError {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        // An unreadable error body still leaves the status to go by.
        let body = read_bounded(resp, 64 * 1024)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut e = match self.cfg.kind {
            ProviderKind::Cloud => cloud_error(status, &json),
            ProviderKind::Whapi => whapi_error(status, &json),
        };
        e.http_status = Some(status.as_u16());
        e.retry_after = retry_after;
        self.scrub(e)
    }

    /// Removes the token from provider-supplied text, should a provider ever echo it.
    fn scrub(&self, mut e: ProviderError) -> ProviderError {
        let token = self.cfg.access_token.expose_secret();
        if token.len() >= 4 {
            e.title = e.title.replace(token, "[redacted]");
            e.details = e.details.map(|d| d.replace(token, "[redacted]"));
        }
        e
    }
}

/// By status alone, for answers without a usable error body.
fn class_of_status(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        429 => ErrorClass::Throttled,
        401 => ErrorClass::Unauthorized,
        408 | 500..=599 => ErrorClass::Retry,
        _ => ErrorClass::Permanent,
    }
}

/// A Graph error envelope is classified by its code; without one, by the status. A code we
/// do not know on a 5xx or 429 answer keeps the status's meaning: the server failed or
/// asked us to slow down, which says nothing against the message.
fn cloud_error(status: StatusCode, json: &Value) -> ProviderError {
    match GraphError::from_body(json) {
        Some(g) => {
            let mut class = classify(g.code);
            if class == ErrorClass::Permanent && (status.is_server_error() || status == 429) {
                class = class_of_status(status);
            }
            ProviderError {
                class,
                code: Some(g.code),
                title: bounded_text(if g.message.is_empty() {
                    status.canonical_reason().unwrap_or("provider error")
                } else {
                    g.message.as_str()
                }),
                details: g.details.as_deref().map(bounded_text),
                http_status: None,
                retry_after: None,
            }
        }
        None => ProviderError::local(class_of_status(status), status_title(status)),
    }
}

/// Whapi's errors (`{"error": {code, message, details}}`) are classified by HTTP status.
fn whapi_error(status: StatusCode, json: &Value) -> ProviderError {
    let err = json.get("error").unwrap_or(&Value::Null);
    ProviderError {
        class: class_of_status(status),
        code: err.get("code").and_then(Value::as_i64),
        title: str_field(err, "message")
            .filter(|m| !m.is_empty())
            .map(|m| bounded_text(&m))
            .unwrap_or_else(|| status_title(status)),
        details: str_field(err, "details").map(|d| bounded_text(&d)),
        http_status: None,
        retry_after: None,
    }
}

fn status_title(status: StatusCode) -> String {
    format!(
        "the provider answered {}",
        status.canonical_reason().unwrap_or("an error")
    )
}

/// Provider text kept to a sane length for storage and display.
fn bounded_text(s: &str) -> String {
    s.chars().take(1000).collect()
}

/// No answer at all: a timeout or a connection failure is worth retrying; a request we
/// could not even build is not.
fn transport_error(e: reqwest::Error) -> ProviderError {
    // `without_url`: media URLs carry signed query strings that do not belong in logs.
    let e = e.without_url();
    let (class, title) = if e.is_timeout() {
        (ErrorClass::Retry, "the provider did not answer in time")
    } else if e.is_connect() {
        (ErrorClass::Retry, "could not connect to the provider")
    } else if e.is_redirect() {
        (ErrorClass::Permanent, "the provider redirected too often")
    } else if e.is_builder() {
        (ErrorClass::Permanent, "the request could not be built")
    } else {
        (ErrorClass::Retry, "the connection to the provider failed")
    };
    ProviderError::local(class, title)
}

/// Reads at most `max` bytes; `None` if the body is longer.
async fn read_bounded(mut resp: Response, max: u64) -> Result<Option<Vec<u8>>, ProviderError> {
    let mut out =
        Vec::with_capacity(resp.content_length().unwrap_or(0).min(max).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if out.len() as u64 + chunk.len() as u64 > max {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

fn too_large(max: u64) -> ProviderError {
    ProviderError::permanent(format!("the media file is larger than {max} bytes"))
}

/// Meta documents the media checksum as a SHA-256 without naming the encoding; answers seen
/// carry hex, webhooks base64. Either is accepted; anything else does not match.
fn sha256_matches(bytes: &[u8], want: &str) -> bool {
    let got = Sha256::digest(bytes);
    let want = want.trim();
    if want.len() == 64 && want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::encode(got) == want.to_ascii_lowercase();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE;
    b64.decode(want)
        .or_else(|_| b64url.decode(want))
        .is_ok_and(|d| d.as_slice() == got.as_slice())
}

/// A file name safe for a multipart header: no paths, quotes or control characters.
fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ';'))
        .take(200)
        .collect();
    if clean.trim().is_empty() {
        "file".into()
    } else {
        clean
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_in_hex_or_base64_are_accepted() {
        let data = b"hello media";
        let digest = Sha256::digest(data);
        let hexed = hex::encode(digest);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        assert!(sha256_matches(data, &hexed));
        assert!(sha256_matches(data, &hexed.to_ascii_uppercase()));
        assert!(sha256_matches(data, &b64));
        assert!(!sha256_matches(b"other", &hexed));
        assert!(!sha256_matches(b"other", &b64));
        assert!(!sha256_matches(data, "not a checksum"));
    }

    #[test]
    fn file_names_lose_paths_and_header_breakers() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(safe_filename("a\"b;\r\nc.jpg"), "abc.jpg");
        assert_eq!(safe_filename(""), "file");
    }

    #[test]
    fn status_without_an_envelope_decides_the_class() {
        let e = cloud_error(StatusCode::BAD_GATEWAY, &Value::Null);
        assert_eq!(e.class, ErrorClass::Retry);
        let unknown_code_on_5xx =
            serde_json::json!({ "error": { "code": 999999, "message": "x" } });
        assert_eq!(
            cloud_error(StatusCode::SERVICE_UNAVAILABLE, &unknown_code_on_5xx).class,
            ErrorClass::Retry
        );
        assert_eq!(
            cloud_error(StatusCode::BAD_REQUEST, &unknown_code_on_5xx).class,
            ErrorClass::Permanent
        );
        assert_eq!(
            whapi_error(StatusCode::UNAUTHORIZED, &Value::Null).class,
            ErrorClass::Unauthorized
        );
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in [ProviderKind::Cloud, ProviderKind::Whapi] {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ProviderKind::parse("twilio"), None);
    }
}
