//! CloudEvents HTTP batch mode for batch ingest (spec 5): a JSON array of structured events.

use std::fmt;
use std::time::SystemTime;

use simd_json::BorrowedValue;

use super::event::{rfc3339, Event};
use super::parse::{type_name, Draft};

/// Why a batch was rejected: the index of the first bad event (none when the body itself is
/// wrong) and why, ready for the `400` response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub index: Option<usize>,
    pub reason: String,
}

/// Parses a batch as batch ingest needs it, with `now` as the time of events without one.
/// See [`parse_batch_at`].
pub fn parse_batch(body: &mut [u8]) -> Result<Vec<Event>, BatchError> {
    parse_batch_at(body, SystemTime::now())
}

/// Parses a batch, all or nothing. Each event is read as by [`Event::from_structured_json`],
/// except that a missing `id` (a new UUID v4), `time` (`now`), `specversion` (1.0) and `type`
/// (`io.drogue.event.v1`) are filled in, and a missing `source` is left empty, because ingest
/// sets it from the path: the caller must call [`Event::bind_to_application`] on each event.
/// Every event needs a non-empty string `device` extension, so that binding cannot fail.
pub fn parse_batch_at(body: &mut [u8], now: SystemTime) -> Result<Vec<Event>, BatchError> {
    let value = simd_json::to_borrowed_value(body).map_err(|e| BatchError {
        index: None,
        reason: format!("not valid JSON: {e}"),
    })?;
    let BorrowedValue::Array(items) = value else {
        return Err(BatchError {
            index: None,
            reason: format!("a batch must be a JSON array, found {}", type_name(&value)),
        });
    };
    let time = rfc3339(now);
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            ingested_event(item, &time).map_err(|reason| BatchError {
                index: Some(index),
                reason,
            })
        })
        .collect()
}

fn ingested_event(item: &BorrowedValue<'_>, time: &str) -> Result<Event, String> {
    let mut draft = Draft::from_value(item).map_err(|e| e.to_string())?;
    draft.fill_ingest_defaults(time);
    draft.source.get_or_insert_with(Default::default);
    let event = draft.into_event().map_err(|e| e.to_string())?;
    match event.device() {
        Some(device) if !device.is_empty() => Ok(event),
        _ => Err("extension `device` (a non-empty string) is missing".to_owned()),
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "event {index}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for BatchError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn parse(body: &str) -> Result<Vec<Event>, BatchError> {
        parse_batch_at(
            &mut body.as_bytes().to_vec(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    #[test]
    fn fills_missing_attributes() {
        let events = parse(
            r#"[{"device":"d1","data":{"t":1}},
                {"device":"d2","id":"x","type":"custom","specversion":"1.0",
                 "time":"2020-01-01T00:00:00Z","source":"ignored","datacontenttype":"text/plain","data":"hi"}]"#,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert!(uuid::Uuid::parse_str(&first.id).is_ok());
        assert_eq!(first.ty, "io.drogue.event.v1");
        assert_eq!(first.time.as_deref(), Some("2023-11-14T22:13:20.000000Z"));
        assert_eq!(first.source, "");
        assert_eq!(&first.data[..], br#"{"t":1}"#);
        let second = &events[1];
        assert_eq!((second.id.as_str(), second.ty.as_str()), ("x", "custom"));
        assert_eq!(second.time.as_deref(), Some("2020-01-01T00:00:00Z"));
        assert_eq!(&second.data[..], b"hi");

        let mut bound = events[0].clone();
        assert!(bound.bind_to_application("app"));
        assert_eq!(bound.source, "drogue://app/d1");
    }

    #[test]
    fn empty_batch_is_fine() {
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_index() {
        let err = parse(r#"[{"device":"d"},{"device":"d","specversion":"0.3"}]"#).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert_eq!(
            err.to_string(),
            "event 1: specversion `0.3` is not supported (only 1.0)"
        );

        let err = parse(r#"[{"device":"d"},{"device":"d"},{"id":"x"}]"#).unwrap_err();
        assert_eq!(err.index, Some(2));
        assert!(err.reason.contains("`device`"), "{err}");

        let err = parse(r#"[{"device":"d"}, 7]"#).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert!(err.reason.contains("must be a JSON object"), "{err}");

        let err = parse(r#"{"device":"d"}"#).unwrap_err();
        assert_eq!(err.index, None);
        assert_eq!(err.reason, "a batch must be a JSON array, found an object");

        let err = parse("[{").unwrap_err();
        assert_eq!(err.index, None);
        assert!(err.reason.starts_with("not valid JSON"), "{err}");
    }
}
