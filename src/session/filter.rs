//! Subscription filters (spec 2.1) and command topics (spec 2.5): what a topic string means.

use std::sync::Arc;

use crate::protocol::topic;
use crate::seam::{AppAlias, Selector};

/// A subscription filter understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub app: &'a str,
    /// `$share/<group>/…`: the share group name.
    pub share: Option<&'a str>,
    pub selector: Selector,
}

/// Why a filter was refused; each maps to a SUBACK reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterError {
    /// A wildcard where the service cannot serve one (v5 0xA2).
    WildcardNotSupported,
    /// Anything else the service does not understand (v5 0x8F).
    Invalid,
}

/// Parses `app/<application>`, its aliases, `$share/<group>/…` and the extension filters
/// `app/<application>/<device>/<channel>` with `+` and `#` where spec 2.1 allows them.
pub fn parse(filter: &str) -> Result<Target<'_>, FilterError> {
    if !topic::valid_filter(filter) {
        return Err(FilterError::Invalid);
    }
    let (share, rest) = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let (group, rest) = rest.split_once('/').ok_or(FilterError::Invalid)?;
            // [MQTT-4.8.2-2] a share name must not contain wildcards.
            if group.is_empty() || topic::has_wildcard(group) || rest.is_empty() {
                return Err(FilterError::Invalid);
            }
            (Some(group), rest)
        }
        None => (None, filter),
    };
    let wildcard_or_invalid = if topic::has_wildcard(rest) {
        FilterError::WildcardNotSupported
    } else {
        FilterError::Invalid
    };
    let levels: Vec<&str> = rest.split('/').collect();
    let alias = match AppAlias::from_prefix(levels[0]) {
        Some(alias) if levels.len() >= 2 => alias,
        _ => return Err(wildcard_or_invalid),
    };
    let app = levels[1];
    if topic::has_wildcard(app) {
        return Err(FilterError::WildcardNotSupported);
    }
    if app.is_empty() {
        return Err(FilterError::Invalid);
    }
    if levels.len() == 2 {
        return Ok(Target {
            app,
            share,
            selector: Selector::WholeApp(alias),
        });
    }
    let tail = &levels[2..];
    let last = tail.len() - 1;
    for (i, level) in tail.iter().enumerate() {
        let allowed = match *level {
            // `#` may end the filter after `app/<a>/` or `app/<a>/<device>/`.
            "#" => i <= 1,
            // `+` may stand for the device, or for a channel of one level.
            "+" => i == 0 || (i == 1 && last == 1),
            "" => return Err(FilterError::Invalid),
            _ => true,
        };
        if !allowed {
            return Err(FilterError::WildcardNotSupported);
        }
    }
    // `app/<a>/<device>` names no channel: it could never match an event.
    if tail.len() == 1 && tail[0] != "#" {
        return Err(FilterError::Invalid);
    }
    Ok(Target {
        app,
        share,
        selector: Selector::Topic(Arc::from(format!("app/{app}/{}", tail.join("/")))),
    })
}

/// A command topic `command/<application>/<device>/<command>`: four non-empty levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandTopic<'a> {
    pub app: &'a str,
    pub device: &'a str,
    pub command: &'a str,
}

pub fn parse_command_topic(topic: &str) -> Option<CommandTopic<'_>> {
    let mut it = topic.split('/');
    let (kind, app, device, command) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || kind != "command" {
        return None;
    }
    if app.is_empty() || device.is_empty() || command.is_empty() {
        return None;
    }
    Some(CommandTopic {
        app,
        device,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        Selector::Topic(Arc::from(s))
    }

    #[test]
    fn whole_application_and_aliases() {
        for (f, alias) in [
            ("app/demo", AppAlias::App),
            ("a/demo", AppAlias::A),
            ("application/demo", AppAlias::Application),
        ] {
            let t = parse(f).unwrap();
            assert_eq!(
                (t.app, t.share, t.selector),
                ("demo", None, Selector::WholeApp(alias))
            );
        }
        let t = parse("$share/g1/a/demo").unwrap();
        assert_eq!(t.selector, Selector::WholeApp(AppAlias::A));
        let t = parse("$share/g1/app/demo").unwrap();
        assert_eq!((t.app, t.share), ("demo", Some("g1")));
    }

    #[test]
    fn extension_filters_are_normalised_to_app_prefix() {
        for (filter, topic) in [
            ("a/demo/d1/temp", "app/demo/d1/temp"),
            ("app/demo/+/temp", "app/demo/+/temp"),
            ("app/demo/d1/+", "app/demo/d1/+"),
            ("app/demo/#", "app/demo/#"),
            ("app/demo/d1/#", "app/demo/d1/#"),
            ("app/demo/d1/a/b", "app/demo/d1/a/b"),
            ("$share/g/app/demo/+/+", "app/demo/+/+"),
        ] {
            assert_eq!(parse(filter).unwrap().selector, sel(topic), "{filter}");
        }
    }

    #[test]
    fn wildcards_elsewhere_are_not_supported() {
        use FilterError::*;
        for f in [
            "#",
            "+",
            "app/+",
            "app/#",
            "+/demo",
            "app/demo/d1/a/#",
            "app/demo/d1/+/b",
            "$share/g/#",
            "foo/+",
        ] {
            assert_eq!(parse(f), Err(WildcardNotSupported), "{f}");
        }
        for f in [
            "foo/bar",
            "app",
            "app/",
            "app/demo/d1",
            "app/demo//x",
            "$share//app/demo",
            "$share/g",
            "a/#/b",
            "",
        ] {
            assert_eq!(parse(f), Err(Invalid), "{f}");
        }
        assert_eq!(parse("$share/g+/app/demo"), Err(Invalid));
    }

    #[test]
    fn command_topics() {
        let c = parse_command_topic("command/app/dev/set").unwrap();
        assert_eq!((c.app, c.device, c.command), ("app", "dev", "set"));
        for t in [
            "command/app/dev",
            "command/app/dev/a/b",
            "command//dev/x",
            "cmd/a/d/c",
            "command/a/d/",
        ] {
            assert_eq!(parse_command_topic(t), None, "{t}");
        }
    }
}
