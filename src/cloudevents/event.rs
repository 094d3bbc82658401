//! [`Event`]: one CloudEvent as it travels through the service.

use std::borrow::Cow;
use std::time::SystemTime;

use bytes::Bytes;
use compact_str::{format_compact, CompactString};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::DEVICE_EVENT_TYPE;

/// The text of an attribute or a string extension. Up to 24 bytes are held inline, and most of
/// what Drogue Cloud puts in an event fits (type, subject, content type, application, device,
/// sender, partition key, instance, many sources), so reading an event from Kafka or the ingest
/// allocates for the id (a UUID) and the time, not for a dozen attributes: fewer frees on the
/// shard that drops a record, and less memory per retained event (`tests/retained_memory.rs`).
pub type Text = CompactString;

/// One CloudEvent (spec version 1.0).
///
/// Cheap to move along: `data` is [`Bytes`], so the backend's payload reaches the socket without
/// a copy. Attributes are kept as the text that was received (`time` is not re-formatted), so an
/// event read from the backend is passed on unchanged (spec 2.3).
///
/// An event without data and one with empty data are the same here: both have empty `data`, and
/// neither gets a `data` member in structured mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Text,
    pub source: Text,
    /// The `type` attribute.
    pub ty: Text,
    pub specversion: SpecVersion,
    pub subject: Option<Text>,
    /// RFC 3339 text, as received.
    pub time: Option<Text>,
    pub datacontenttype: Option<Text>,
    pub dataschema: Option<Text>,
    /// Extension attributes in the order they were received or added. The names Drogue Cloud
    /// sets on every event are static (see [`extension_name`]): no allocation for them.
    pub extensions: Vec<(Cow<'static, str>, ExtensionValue)>,
    pub data: Bytes,
}

/// The CloudEvents spec versions this service speaks. Only 1.0: Drogue Cloud writes nothing else,
/// and 0.3 differs in attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecVersion {
    #[default]
    V1_0,
}

/// The value of an extension attribute. CloudEvents' other types (URI, timestamp, binary) are
/// carried as strings in every format, so these three cover what arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionValue {
    String(Text),
    Integer(i64),
    Boolean(bool),
}

/// Characters kept as they are in a `drogue://` source segment: RFC 3986 unreserved ones.
/// Everything else, `/` in particular, is escaped so that the segments stay unambiguous.
const SOURCE_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Event {
    /// An event as Drogue Cloud endpoints write them (spec 2.3): id a UUID v4, type
    /// `io.drogue.event.v1`, source `drogue://<app>/<device>` (each percent-encoded), subject the
    /// channel, time `now` in RFC 3339 UTC with microseconds, and the extensions `application`,
    /// `device`, `sender`, `partitionkey` (`<app>/<sender>`) and `instance`.
    #[allow(clippy::too_many_arguments)] // mirrors the attribute list of spec 2.3
    pub fn new_device_event(
        app: &str,
        device: &str,
        channel: &str,
        sender: &str,
        instance: &str,
        content_type: Option<&str>,
        data: Bytes,
        now: SystemTime,
    ) -> Event {
        Event {
            id: new_id(),
            source: device_source(app, device),
            ty: Text::const_new(DEVICE_EVENT_TYPE),
            specversion: SpecVersion::V1_0,
            subject: Some(channel.into()),
            time: Some(rfc3339(now)),
            datacontenttype: content_type.map(Text::from),
            dataschema: None,
            extensions: vec![
                (APPLICATION.into(), ExtensionValue::from(app)),
                (DEVICE.into(), ExtensionValue::from(device)),
                ("sender".into(), ExtensionValue::from(sender)),
                (
                    "partitionkey".into(),
                    ExtensionValue::String(format_compact!("{app}/{sender}")),
                ),
                ("instance".into(), ExtensionValue::from(instance)),
            ],
            data,
        }
    }

    /// The `application` extension, if it is a string.
    pub fn application(&self) -> Option<&str> {
        self.extension(APPLICATION).and_then(ExtensionValue::as_str)
    }

    /// The `device` extension, if it is a string.
    pub fn device(&self) -> Option<&str> {
        self.extension(DEVICE).and_then(ExtensionValue::as_str)
    }

    /// The first extension called `name`.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets extension `name`, replacing an existing one in place (so the order stays stable).
    pub fn set_extension(&mut self, name: &str, value: ExtensionValue) {
        match self.extensions.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.extensions.push((extension_name(name), value)),
        }
    }

    /// Ties an ingested event to application `app` and its `device` extension, as batch ingest
    /// does (spec 5): sets `application`, `source` (`drogue://<app>/<device>`) and `partitionkey`
    /// (`<app>/<device>`, so that one device's events stay in order), and `sender` to the device
    /// when it is missing. Returns false, changing nothing, when there is no `device` extension.
    pub fn bind_to_application(&mut self, app: &str) -> bool {
        let Some(device) = self.device().map(Text::from) else {
            return false;
        };
        self.source = device_source(app, &device);
        self.set_extension(APPLICATION, ExtensionValue::from(app));
        self.set_extension(
            "partitionkey",
            ExtensionValue::String(format_compact!("{app}/{device}")),
        );
        if self.extension("sender").is_none() {
            self.set_extension("sender", ExtensionValue::String(device));
        }
        true
    }
}

const APPLICATION: &str = "application";
const DEVICE: &str = "device";

/// The extension names every Drogue Cloud event carries (spec 2.3).
const WELL_KNOWN: [&str; 5] = [APPLICATION, DEVICE, "sender", "partitionkey", "instance"];

/// An extension's name as the event keeps it: borrowed from a static when it is one of the names
/// every event carries (five allocations fewer per event, ingested or read from Kafka), owned
/// otherwise.
pub fn extension_name(name: &str) -> Cow<'static, str> {
    match WELL_KNOWN.iter().find(|&&known| known == name) {
        Some(&known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_owned()),
    }
}

/// A new event id: a UUID v4, hyphenated.
pub fn new_id() -> Text {
    let mut buf = uuid::Uuid::encode_buffer();
    Text::from(&*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
}

/// `drogue://<app>/<device>`, each segment percent-encoded.
pub fn device_source(app: &str, device: &str) -> Text {
    format_compact!(
        "drogue://{}/{}",
        utf8_percent_encode(app, SOURCE_SEGMENT),
        utf8_percent_encode(device, SOURCE_SEGMENT)
    )
}

/// `now` as RFC 3339 in UTC with microseconds, the precision Drogue Cloud's timestamps have.
pub fn rfc3339(now: SystemTime) -> Text {
    format_compact!("{}", humantime::format_rfc3339_micros(now))
}

impl SpecVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V1_0 => "1.0",
        }
    }
}

impl ExtensionValue {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ExtensionValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text, as transport bindings without typed headers carry it.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            ExtensionValue::String(s) => Cow::Borrowed(s),
            ExtensionValue::Integer(i) => Cow::Owned(i.to_string()),
            ExtensionValue::Boolean(true) => Cow::Borrowed("true"),
            ExtensionValue::Boolean(false) => Cow::Borrowed("false"),
        }
    }
}

impl From<&str> for ExtensionValue {
    fn from(s: &str) -> Self {
        ExtensionValue::String(s.into())
    }
}

impl From<String> for ExtensionValue {
    fn from(s: String) -> Self {
        ExtensionValue::String(s.into())
    }
}

impl From<Text> for ExtensionValue {
    fn from(s: Text) -> Self {
        ExtensionValue::String(s)
    }
}

impl From<i64> for ExtensionValue {
    fn from(i: i64) -> Self {
        ExtensionValue::Integer(i)
    }
}

impl From<bool> for ExtensionValue {
    fn from(b: bool) -> Self {
        ExtensionValue::Boolean(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Event {
        Event::new_device_event(
            "a b/c",
            "dev/1",
            "temp/inside",
            "gw",
            "inst-1",
            Some("application/json"),
            Bytes::from_static(b"{}"),
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        )
    }

    #[test]
    fn device_event_has_drogue_attributes() {
        let e = sample();
        assert_eq!(e.specversion.as_str(), "1.0");
        assert_eq!(e.ty, "io.drogue.event.v1");
        assert_eq!(e.subject.as_deref(), Some("temp/inside"));
        assert_eq!(e.time.as_deref(), Some("2023-11-14T22:13:20.123456Z"));
        assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(e.application(), Some("a b/c"));
        assert_eq!(e.device(), Some("dev/1"));
        assert_eq!(e.extension("sender"), Some(&ExtensionValue::from("gw")));
        assert_eq!(
            e.extension("partitionkey"),
            Some(&ExtensionValue::from("a b/c/gw"))
        );
        assert_eq!(
            e.extension("instance"),
            Some(&ExtensionValue::from("inst-1"))
        );
        let id = uuid::Uuid::parse_str(&e.id).expect("id is a UUID");
        assert_eq!(id.get_version_num(), 4);
    }

    #[test]
    fn source_segments_are_percent_encoded() {
        assert_eq!(sample().source, "drogue://a%20b%2Fc/dev%2F1");
        assert_eq!(device_source("app-1.x_y~", "d"), "drogue://app-1.x_y~/d");
        assert_eq!(device_source("ä", "d"), "drogue://%C3%A4/d");
    }

    #[test]
    fn set_extension_replaces_in_place() {
        let mut e = sample();
        e.set_extension("device", ExtensionValue::Integer(7));
        assert_eq!(
            e.extensions[1],
            ("device".into(), ExtensionValue::Integer(7))
        );
        assert_eq!(e.device(), None);
        e.set_extension("new", true.into());
        assert_eq!(e.extensions.last().unwrap().0, "new");
    }

    #[test]
    fn bind_to_application_sets_source_and_partition_key() {
        let mut e = sample();
        e.extensions.retain(|(n, _)| n == "device");
        assert!(e.bind_to_application("my app"));
        assert_eq!(e.source, "drogue://my%20app/dev%2F1");
        assert_eq!(e.application(), Some("my app"));
        assert_eq!(
            e.extension("partitionkey"),
            Some(&ExtensionValue::from("my app/dev/1"))
        );
        assert_eq!(e.extension("sender"), Some(&ExtensionValue::from("dev/1")));

        e.extensions.clear();
        assert!(!e.bind_to_application("x"));
    }

    #[test]
    fn extension_values_as_text() {
        assert_eq!(ExtensionValue::Integer(-3).as_text(), "-3");
        assert_eq!(ExtensionValue::Boolean(false).as_text(), "false");
        assert_eq!(ExtensionValue::from("s").as_text(), "s");
    }
}
