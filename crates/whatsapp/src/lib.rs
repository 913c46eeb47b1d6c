//! WhatsApp wire formats: what Meta's Cloud API (and Whapi) send us in webhooks, how their
//! signatures are checked, what we send, and what their errors mean. No I/O here: the
//! HTTP clients and the simulator use these types.

pub mod errors;
pub mod send;
pub mod signature;
pub mod webhook;

pub use errors::{ErrorClass, GraphError, classify};
pub use send::{Outbound, Recipient, SendError};
pub use signature::{SignatureError, sign_meta, verify_meta};
pub use webhook::{
    DeliveryStatus, Event, InboundMessage, MessageKind, ParseError, StatusUpdate, parse_meta,
};
