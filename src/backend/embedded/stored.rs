//! How an event is stored in the on-disk log (issue #14 step 2): a compact binary encoding of
//! the [`Event`], and where each partition's log lives under `backend.embedded.dir`.
//!
//! Binary rather than the structured JSON the service writes to subscribers: it round-trips
//! every event exactly (structured mode re-reads JSON data as text and base64-decodes binary
//! data), costs no JSON parse per record read, and the data is the tail of the record so that a
//! read keeps it as a zero-copy [`Bytes`] slice of the buffer read from the file.
//!
//! ```text
//! value = version u8 (1) | id str | source str | type str
//!       | subject opt | time opt | datacontenttype opt | dataschema opt
//!       | extension_count u16 | (name str | tag u8 | string str / integer i64 / boolean u8)*
//!       | data (the rest)
//! str   = len u32 | UTF-8 bytes          opt = 0 | 1 str
//! ```
//! Little-endian. The record key is the device (empty without one), the timestamp the append
//! time in milliseconds since the Unix epoch (what `retention_age` and a time lookup use).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::cloudevents::event::extension_name;
use crate::cloudevents::{Event, ExtensionValue, SpecVersion, Text};

const VERSION: u8 = 1;

const TAG_STRING: u8 = 0;
const TAG_INTEGER: u8 = 1;
const TAG_BOOLEAN: u8 = 2;

/// Writes `event` as a record value.
pub(crate) fn encode(event: &Event, out: &mut Vec<u8>) {
    out.reserve(128 + event.data.len());
    out.push(VERSION);
    put_str(out, &event.id);
    put_str(out, &event.source);
    put_str(out, &event.ty);
    for opt in [
        &event.subject,
        &event.time,
        &event.datacontenttype,
        &event.dataschema,
    ] {
        match opt {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_str(out, s);
            }
        }
    }
    // More than u16::MAX extensions cannot arrive (a packet or body limit stops them first);
    // clamp rather than write a count that lies.
    let count = event.extensions.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for (name, value) in &event.extensions[..count] {
        put_str(out, name);
        match value {
            ExtensionValue::String(s) => {
                out.push(TAG_STRING);
                put_str(out, s);
            }
            ExtensionValue::Integer(i) => {
                out.push(TAG_INTEGER);
                out.extend_from_slice(&i.to_le_bytes());
            }
            ExtensionValue::Boolean(b) => {
                out.push(TAG_BOOLEAN);
                out.push(u8::from(*b));
            }
        }
    }
    out.extend_from_slice(&event.data);
}

/// Reads a record value back. `data` is a slice of `value` (no copy). The error says what is
/// wrong; a record passed its CRC, so this means a bug or a file from another version.
pub(crate) fn decode(value: &Bytes) -> Result<Event, String> {
    let mut r = Reader { buf: value, at: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let id = r.text()?;
    let source = r.text()?;
    let ty = r.text()?;
    let subject = r.opt()?;
    let time = r.opt()?;
    let datacontenttype = r.opt()?;
    let dataschema = r.opt()?;
    let count = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes"));
    let mut extensions = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let name: Cow<'static, str> = extension_name(r.str()?);
        let value = match r.u8()? {
            TAG_STRING => ExtensionValue::String(r.text()?),
            TAG_INTEGER => {
                ExtensionValue::Integer(i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")))
            }
            TAG_BOOLEAN => ExtensionValue::Boolean(r.u8()? != 0),
            tag => return Err(format!("unknown extension tag {tag}")),
        };
        extensions.push((name, value));
    }
    Ok(Event {
        id,
        source,
        ty,
        specversion: SpecVersion::V1_0,
        subject,
        time,
        datacontenttype,
        dataschema,
        extensions,
        data: value.slice(r.at..),
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("record ends at byte {} of {}", self.at, self.buf.len()))?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        let at = self.at;
        std::str::from_utf8(self.take(len)?).map_err(|_| format!("text at byte {at} is not UTF-8"))
    }

    fn text(&mut self) -> Result<Text, String> {
        self.str().map(Text::from)
    }

    fn opt(&mut self) -> Result<Option<Text>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.text().map(Some),
            flag => Err(format!("bad option flag {flag}")),
        }
    }
}

/// Bytes of an application name kept as they are in its directory name; everything else
/// (`/`, `.`, `%`, spaces, non-ASCII, …) is percent-encoded, so that a name can never be `.`,
/// `..`, or reach outside `dir`, and two names never share a directory.
const DIR_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// `dir/<app escaped>/<partition>/`: where one partition's log lives.
pub(crate) fn partition_dir(dir: &Path, app: &str, partition: u32) -> PathBuf {
    let mut name = utf8_percent_encode(app, DIR_NAME).to_string();
    if name.is_empty() {
        // Config refuses empty names; keep the path well-formed anyway.
        name.push('%');
    }
    dir.join(name).join(partition.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(data: &[u8]) -> Event {
        let mut event = Event::new_device_event(
            "app-1",
            "dev/ice ü",
            "temperature",
            "sender",
            "instance-1",
            Some("application/json"),
            Bytes::copy_from_slice(data),
            std::time::SystemTime::now(),
        );
        event.set_extension("count", ExtensionValue::Integer(-42));
        event.set_extension("flag", ExtensionValue::Boolean(true));
        event.dataschema = Some("https://example.com/schema".into());
        event
    }

    fn round_trip(event: &Event) -> Event {
        let mut out = Vec::new();
        encode(event, &mut out);
        decode(&Bytes::from(out)).expect("decodes")
    }

    #[test]
    fn events_round_trip_exactly() {
        for data in [&b""[..], b"{\"t\": 21.5}", &[0u8, 0xff, 0x80, b'\n'][..]] {
            let event = sample(data);
            assert_eq!(round_trip(&event), event);
        }
        let mut bare = sample(b"x");
        bare.subject = None;
        bare.time = None;
        bare.datacontenttype = None;
        bare.dataschema = None;
        bare.extensions.clear();
        assert_eq!(round_trip(&bare), bare);
    }

    #[test]
    fn data_is_a_slice_of_the_record() {
        let event = sample(&[7u8; 1000]);
        let mut out = Vec::new();
        encode(&event, &mut out);
        let value = Bytes::from(out);
        let back = decode(&value).unwrap();
        let range = value.as_ptr() as usize..value.as_ptr() as usize + value.len();
        assert!(range.contains(&(back.data.as_ptr() as usize)));
        assert_eq!(back.data.len(), 1000);
    }

    #[test]
    fn truncated_or_foreign_records_are_errors_not_panics() {
        let mut out = Vec::new();
        encode(&sample(b"abc"), &mut out);
        // Cut inside the attributes (the data is the tail, so only cuts before it fail).
        let attributes_end = out.len() - 3;
        for cut in 0..attributes_end {
            assert!(
                decode(&Bytes::copy_from_slice(&out[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        out[0] = 9;
        assert!(decode(&Bytes::from(out)).unwrap_err().contains("version 9"));
    }

    #[test]
    fn partition_dirs_stay_inside_and_apart() {
        let root = Path::new("/data");
        assert_eq!(
            partition_dir(root, "drogue-public_1", 3),
            Path::new("/data/drogue-public_1/3")
        );
        for (name, escaped) in [
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a/b", "a%2Fb"),
            ("a%2Fb", "a%252Fb"),
        ] {
            assert_eq!(
                partition_dir(root, name, 0),
                root.join(escaped).join("0"),
                "{name}"
            );
        }
        assert_ne!(partition_dir(root, "A", 0), partition_dir(root, "a", 0));
    }
}
