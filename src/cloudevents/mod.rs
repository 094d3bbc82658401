//! The CloudEvents event model and its encodings.
//!
//! - [`Event`] is one event as it travels through the service ([`event`]).
//! - Structured mode (the JSON event format) is written by [`Event::write_structured`] ([`structured`])
//!   and read by [`Event::from_structured_json`] ([`parse`]); HTTP batch mode (batch ingest) by
//!   [`parse_batch`] ([`batch`]).
//! - Binary mode (MQTT 5 user properties) comes from [`Event::binary_attributes`] ([`binary`]).
//! - Which form `data` takes in JSON is decided in [`content_type`].
//!
//! Owns: the event model and its wire forms (structured JSON, binary attributes, HTTP batches).
//! Must not touch: MQTT, HTTP, sockets, backends or configuration: it is pure data in and out,
//! used by the session, the HTTP ingest and the backends alike.

pub mod batch;
pub mod binary;
pub mod content_type;
pub mod event;
pub mod json_check;
pub mod json_escape;
pub mod parse;
pub mod structured;

#[cfg(test)]
mod sdk_tests;

pub use batch::{parse_batch, BatchContext, BatchError};
pub use content_type::DataKind;
pub use event::{Event, ExtensionValue, SpecVersion, Text};
pub use json_check::is_json;
pub use parse::EventError;

/// MQTT 5 Content Type of a structured-mode PUBLISH (spec 2.2).
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// Content type of a structured-mode Kafka record, matched on its media type only (spec 4).
pub const KAFKA_STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// Content type of an HTTP batch ingest request (spec 5).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// Extension of a command event naming who sent it (the authenticated user, or `anonymous`):
/// `sender` is the target device (spec 2.3), as Drogue Cloud's device endpoints route by it.
pub const ISSUED_BY: &str = "issuedby";
/// `type` of the events this service writes, as Drogue Cloud endpoints write them (spec 2.3).
pub const DEVICE_EVENT_TYPE: &str = "io.drogue.event.v1";
