//! Which form an event's data takes in the JSON event format, decided from `datacontenttype`.

/// What `datacontenttype` says about the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `application/json`, `text/json` or `*/*+json`: written as the JSON value itself.
    Json,
    /// No `datacontenttype`. The JSON event format then implies `application/json`, so data that
    /// is valid JSON is written as JSON; anything else goes as `data_base64`, which readers
    /// take as binary, so nothing is lost either way.
    Unspecified,
    /// `text/*`: written as a JSON string.
    Text,
    /// Anything else: written as `data_base64`.
    Binary,
}

impl DataKind {
    /// Classifies by media type only (parameters such as `charset` are ignored), case-insensitively
    /// as RFC 2045 asks. `text/json` counts as JSON because cloudevents-sdk and other readers
    /// treat it so, and they must read back what we write.
    pub fn of(content_type: Option<&str>) -> DataKind {
        let Some(content_type) = content_type else {
            return DataKind::Unspecified;
        };
        let media_type = content_type
            .split_once(';')
            .map_or(content_type, |(m, _)| m)
            .trim();
        let lower = |s: &str| s.eq_ignore_ascii_case(media_type);
        if lower("application/json")
            || lower("text/json")
            || ends_with_ignore_case(media_type, "+json")
        {
            DataKind::Json
        } else if starts_with_ignore_case(media_type, "text/") {
            DataKind::Text
        } else {
            DataKind::Binary
        }
    }

    /// Whether data of this kind goes into the `data` member as a JSON value when it is valid JSON.
    pub fn wants_json(self) -> bool {
        matches!(self, DataKind::Json | DataKind::Unspecified)
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_media_types() {
        assert_eq!(DataKind::of(None), DataKind::Unspecified);
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/json",
            "application/vnd.drogue+json",
            " application/json ",
        ] {
            assert_eq!(DataKind::of(Some(json)), DataKind::Json, "{json}");
        }
        for text in ["text/plain", "TEXT/csv; charset=latin1", "text/"] {
            assert_eq!(DataKind::of(Some(text)), DataKind::Text, "{text}");
        }
        for binary in [
            "application/octet-stream",
            "image/png",
            "",
            "json",
            "application/jsonx",
        ] {
            assert_eq!(DataKind::of(Some(binary)), DataKind::Binary, "{binary}");
        }
    }
}
