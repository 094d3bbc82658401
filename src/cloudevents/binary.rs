//! Binary mode: attributes and extensions as MQTT 5 user properties (spec 2.2).

use std::borrow::Cow;

use super::event::Event;
use super::structured::is_core_member;

impl Event {
    /// Every attribute except `data` and `datacontenttype` (which travels as the Content Type
    /// property), then every extension, as (name, value as text) pairs, in a stable order:
    /// `specversion`, `id`, `type`, `source`, `subject`, `time`, `dataschema`, extensions in
    /// event order. Only integer extensions allocate (for their decimal text).
    ///
    /// As in structured mode, an extension named like a core attribute is skipped.
    pub fn binary_attributes(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> + '_ {
        let core: [(&str, Option<&str>); 7] = [
            ("specversion", Some(self.specversion.as_str())),
            ("id", Some(&self.id)),
            ("type", Some(&self.ty)),
            ("source", Some(&self.source)),
            ("subject", self.subject.as_deref()),
            ("time", self.time.as_deref()),
            ("dataschema", self.dataschema.as_deref()),
        ];
        core.into_iter()
            .filter_map(|(name, value)| Some((name, Cow::Borrowed(value?))))
            .chain(
                self.extensions
                    .iter()
                    .filter(|(name, _)| !is_core_member(name))
                    .map(|(name, value)| (&**name, value.as_text())),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::super::ExtensionValue;
    use super::*;
    use bytes::Bytes;

    #[test]
    fn attributes_in_stable_order() {
        let e = Event {
            id: "id1".into(),
            source: "drogue://app/dev".into(),
            ty: "io.drogue.event.v1".into(),
            specversion: Default::default(),
            subject: Some("temp".into()),
            time: Some("2024-01-01T00:00:00Z".into()),
            datacontenttype: Some("application/json".into()),
            dataschema: None,
            extensions: vec![
                ("application".into(), ExtensionValue::from("app")),
                ("count".into(), ExtensionValue::Integer(3)),
                ("flag".into(), ExtensionValue::Boolean(true)),
                ("datacontenttype".into(), ExtensionValue::from("shadow")),
            ],
            data: Bytes::from_static(b"{}"),
        };
        let pairs: Vec<(String, String)> = e
            .binary_attributes()
            .map(|(n, v)| (n.to_owned(), v.into_owned()))
            .collect();
        let expected = [
            ("specversion", "1.0"),
            ("id", "id1"),
            ("type", "io.drogue.event.v1"),
            ("source", "drogue://app/dev"),
            ("subject", "temp"),
            ("time", "2024-01-01T00:00:00Z"),
            ("application", "app"),
            ("count", "3"),
            ("flag", "true"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }
}
