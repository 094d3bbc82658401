//! Dotted key paths as shown in error messages: `server.threads`, `listener[0].bind`.

use std::fmt;

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value sits in the configuration tree, named as in the TOML file (`listener`, not
/// `listeners`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` equals `prefix` or lies inside it.
    pub(crate) fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path `serde_path_to_error` reports, in our naming.
    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let segments = path
            .iter()
            .map(|segment| match segment {
                S::Seq { index } => Segment::Index(*index),
                S::Map { key } => Segment::Key(key.clone()),
                S::Enum { variant } => Segment::Key(variant.clone()),
                S::Unknown => Segment::Key("?".to_owned()),
            })
            .collect();
        Self(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_the_toml_file() {
        let path = KeyPath::root().key("listener").index(0).key("bind");
        assert_eq!(path.to_string(), "listener[0].bind");
        assert_eq!(KeyPath::root().to_string(), "");
        assert!(path.starts_with(&KeyPath::root().key("listener")));
        assert!(!path.starts_with(&KeyPath::root().key("server")));
    }
}
