//! WhatsApp wire formats: what Meta's Cloud API (and Whapi) send us in webhooks, how their
//! signatures are checked, what we send, and what their errors mean; and the provider HTTP
//! clients ([`client`]) that speak them. Only `client` does I/O.

pub mod client;
pub mod errors;
pub mod media;
pub mod send;
pub mod signature;
pub mod webhook;
pub mod whapi;

pub use client::{
    ClientConfig, MediaInfo, NumberInfo, ProviderClient, ProviderError, ProviderKind, http_client,
    http_client_with_timeouts,
};
pub use errors::{ErrorClass, GraphError, classify};
pub use media::{MAX_MEDIA_BYTES, media_fits_kind, media_limit, media_type_allowed};
pub use send::{Outbound, Recipient, SendError};
pub use signature::{SignatureError, sign_meta, verify_meta};
pub use webhook::{
    DeliveryStatus, Event, InboundMessage, MessageKind, ParseError, StatusUpdate, parse_meta,
};
pub use whapi::parse_whapi;
