//! Environment overrides: `MQTT_INTEGRATION__SECTION__KEY=value`, applied to the TOML tree
//! before it is deserialized, so they go through exactly the same checks as the file.
//!
//! - The name after the prefix is split at `__`; segments are lower-cased and address keys
//!   (`SERVER__THREADS` → `server.threads`) or array entries by index (`LISTENER__0__BIND`).
//!   An index one past the end appends a new entry.
//! - Under `backend.kafka.properties` the remaining segments are joined with `.` to form one
//!   librdkafka name (`…__PROPERTIES__FETCH__WAIT__MAX__MS` → `fetch.wait.max.ms`); under
//!   `app[N].members` the next segment is the member name. Values there are always strings.
//! - Elsewhere a value is read as a TOML value when it parses as one (`4`, `true`, `[1, 2]`,
//!   `{ name = "d" }`, `"quoted"`), else taken as a string (`127.0.0.1:1883`, `10s`).

use toml::{Table, Value};

use super::error::{ConfigError, ConfigErrorKind};
use super::key_path::{KeyPath, Segment};
use super::listener::default_listeners;

/// Prefix of every override variable.
pub const ENV_PREFIX: &str = "MQTT_INTEGRATION__";

/// The process environment's override variables (those starting with [`ENV_PREFIX`]).
/// Values that are not valid UTF-8 are converted lossily.
pub fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Which variable set which part of the tree, so that later errors can name it.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// (path set or created, source name of the variable).
    set: Vec<(KeyPath, String)>,
}

impl Overrides {
    /// The source name of the variable that set `key` or a table or list containing it.
    pub(crate) fn source_of(&self, key: &KeyPath) -> Option<&str> {
        self.set
            .iter()
            .filter(|(path, _)| key.starts_with(path))
            .max_by_key(|(path, _)| path.segments().len())
            .map(|(_, source)| source.as_str())
    }

    fn record(&mut self, path: KeyPath, var: &Var) {
        self.set.push((path, var.source_name()));
    }
}

/// Applies every override variable in `env` to `root`; other variables are ignored.
pub(crate) fn apply(
    root: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Overrides, ConfigError> {
    let mut vars = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .map(|(name, value)| Var::parse(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    // Apply in a stable order where list entries come in index order, so that
    // `LISTENER__1__…` creates entry 1 before `LISTENER__2__…` needs it.
    vars.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let mut overrides = Overrides::default();
    let mut tree = Value::Table(std::mem::take(root));
    let result = vars
        .iter()
        .try_for_each(|var| apply_one(&mut tree, var, &mut overrides));
    if let Value::Table(table) = tree {
        *root = table;
    }
    result.map(|()| overrides)
}

/// One override variable.
struct Var {
    name: String,
    /// Lower-cased segments after the prefix.
    segments: Vec<String>,
    value: String,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey<'a> {
    Index(usize),
    Name(&'a str),
}

impl Var {
    fn parse(name: String, value: String) -> Result<Self, ConfigError> {
        let rest = &name[ENV_PREFIX.len()..];
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                ConfigErrorKind::Environment,
                format!("environment variable {name}"),
                None,
                "empty key segment; segments are separated by `__`, \
                 e.g. MQTT_INTEGRATION__SERVER__THREADS",
            ));
        }
        Ok(Self {
            name,
            segments,
            value,
        })
    }

    fn source_name(&self) -> String {
        format!("environment variable {}", self.name)
    }

    fn error(&self, path: &KeyPath, problem: String) -> ConfigError {
        ConfigError::new(
            ConfigErrorKind::Environment,
            self.source_name(),
            Some(path),
            problem,
        )
    }

    fn sort_key(&self) -> Vec<SortKey<'_>> {
        self.segments
            .iter()
            .map(|segment| match segment.parse() {
                Ok(index) => SortKey::Index(index),
                Err(_) => SortKey::Name(segment),
            })
            .collect()
    }
}

/// Tables whose keys are free-form names with string values.
enum FreeMap {
    /// `backend.kafka.properties`: librdkafka names, segments joined with `.`.
    KafkaProperties,
    /// `app[N].members`: one segment, the member name.
    Members,
}

impl FreeMap {
    fn at(path: &KeyPath) -> Option<Self> {
        let key = |segment: &Segment, name: &str| matches!(segment, Segment::Key(k) if k == name);
        match path.segments() {
            [a, b, c] if key(a, "backend") && key(b, "kafka") && key(c, "properties") => {
                Some(Self::KafkaProperties)
            }
            [a, Segment::Index(_), c] if key(a, "app") && key(c, "members") => Some(Self::Members),
            _ => None,
        }
    }
}

fn apply_one(root: &mut Value, var: &Var, overrides: &mut Overrides) -> Result<(), ConfigError> {
    let mut path = KeyPath::root();
    let mut node = root;
    for (i, segment) in var.segments.iter().enumerate() {
        let rest = &var.segments[i..];
        let next = var.segments.get(i + 1);

        if let Some(map) = FreeMap::at(&path) {
            let key = match map {
                FreeMap::KafkaProperties => rest.join("."),
                FreeMap::Members if rest.len() == 1 => segment.clone(),
                FreeMap::Members => {
                    return Err(var.error(
                        &path,
                        "a member name is a single segment (no `__` inside it)".to_owned(),
                    ))
                }
            };
            let Value::Table(table) = node else {
                let problem = format!("is a {}, not a table", node.type_str());
                return Err(var.error(&path, problem));
            };
            path = path.key(&key);
            table.insert(key, Value::String(var.value.clone()));
            overrides.record(path, var);
            return Ok(());
        }

        node = match node {
            Value::Table(table) => {
                path = path.key(segment);
                let Some(next) = next else {
                    table.insert(segment.clone(), parse_value(&var.value));
                    overrides.record(path, var);
                    return Ok(());
                };
                let created = !table.contains_key(segment);
                let child = table
                    .entry(segment.clone())
                    .or_insert_with(|| new_container(&path, next));
                if created {
                    overrides.record(path.clone(), var);
                }
                child
            }
            Value::Array(items) => {
                let Ok(index) = segment.parse::<usize>() else {
                    let problem = format!(
                        "is a list; expected an index (0, 1, …) where the name has `{}`",
                        segment.to_ascii_uppercase()
                    );
                    return Err(var.error(&path, problem));
                };
                let len = items.len();
                if index > len {
                    let problem = format!(
                        "has {len} entries; index {index} would leave a gap (the next new entry \
                         is {len})"
                    );
                    return Err(var.error(&path, problem));
                }
                path = path.index(index);
                let Some(next) = next else {
                    let value = parse_value(&var.value);
                    match items.get_mut(index) {
                        Some(slot) => *slot = value,
                        None => items.push(value),
                    }
                    overrides.record(path, var);
                    return Ok(());
                };
                if index == len {
                    items.push(new_container(&path, next));
                    overrides.record(path.clone(), var);
                }
                &mut items[index]
            }
            scalar => {
                let problem = format!(
                    "is a {}, not a table; cannot set `{}` inside it",
                    scalar.type_str(),
                    rest.join(".")
                );
                return Err(var.error(&path, problem));
            }
        };
    }
    Ok(())
}

/// A new, empty container for `path`, a list if the next segment is an index.
/// `listener` starts from the default listeners, as it would when deserialized.
fn new_container(path: &KeyPath, next: &str) -> Value {
    if next.parse::<usize>().is_err() {
        return Value::Table(Table::new());
    }
    if *path == KeyPath::root().key("listener") {
        return Value::Array(default_listeners().iter().map(|l| l.to_toml()).collect());
    }
    Value::Array(Vec::new())
}

/// A variable's value: a TOML value if it parses as one, else the text as a string.
fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut table) if table.len() == 1 => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_toml_or_fall_back_to_strings() {
        assert_eq!(parse_value("4"), Value::Integer(4));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(
            parse_value("127.0.0.1:1883"),
            Value::String("127.0.0.1:1883".into())
        );
        assert_eq!(parse_value("10s"), Value::String("10s".into()));
        assert_eq!(parse_value("\"1234\""), Value::String("1234".into()));
        assert_eq!(parse_value("1\nw = 2"), Value::String("1\nw = 2".into()));
        assert!(matches!(parse_value("[\"a\", \"b\"]"), Value::Array(a) if a.len() == 2));
    }

    #[test]
    fn empty_segments_are_refused() {
        let mut root = Table::new();
        let env = [("MQTT_INTEGRATION__SERVER____THREADS".into(), "1".into())];
        let err = apply(&mut root, env).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Environment);
        assert!(err
            .source_name
            .contains("MQTT_INTEGRATION__SERVER____THREADS"));
    }

    #[test]
    fn gaps_in_lists_are_refused() {
        let mut root = Table::new();
        let env = [("MQTT_INTEGRATION__APP__1__NAME".into(), "x".into())];
        let err = apply(&mut root, env).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("app"));
        assert!(err.problem.contains("gap"), "{err}");
    }

    #[test]
    fn scalars_cannot_hold_keys() {
        let mut root: Table = "[server]\nthreads = 2".parse().unwrap();
        let env = [("MQTT_INTEGRATION__SERVER__THREADS__X".into(), "1".into())];
        let err = apply(&mut root, env).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("server.threads"));
    }

    #[test]
    fn other_variables_are_ignored() {
        let mut root = Table::new();
        let env = [
            ("PATH".into(), "/bin".into()),
            ("MQTT_INTEGRATION".into(), "x".into()),
        ];
        apply(&mut root, env).unwrap();
        assert!(root.is_empty());
    }
}
