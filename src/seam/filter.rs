//! What a member subscribes with: its filters ([`MemberFilter`]), what each selects
//! ([`Selector`]), the content mode, and the whole-application topics and their aliases.
//! Plain data shared by the session (which builds the filters), the member's index and routing
//! (`member.rs`, `member/index.rs`): its own file so that those need not import each other.

use std::sync::Arc;

use crate::protocol::QoS;

/// CloudEvents content mode of a subscription (spec 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Structured,
    Binary,
}

/// The first level of a whole-application filter: `app/<a>` or one of its aliases.
///
/// Deliveries for a whole-application filter go out on the filter's own topic (spec 2.1), as
/// Drogue Cloud sends them: a client that subscribed to `a/<a>` matches what it receives against
/// `a/<a>` (paho's per-filter callbacks drop anything else).
/// Ordered by preference: when several whole-application filters of one member match, the
/// delivery goes out once, on `app/<a>` if the client holds it (spec 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppAlias {
    App,
    A,
    Application,
}

impl AppAlias {
    pub const ALL: [AppAlias; 3] = [AppAlias::App, AppAlias::A, AppAlias::Application];

    /// The topic's first level.
    pub const fn prefix(self) -> &'static str {
        match self {
            AppAlias::App => "app",
            AppAlias::A => "a",
            AppAlias::Application => "application",
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<AppAlias> {
        AppAlias::ALL.into_iter().find(|a| a.prefix() == prefix)
    }
}

/// An application's whole-application topics (`app/<a>`, `a/<a>`, `application/<a>`), formatted
/// once per membership so that no delivery formats one.
#[derive(Debug, Clone)]
pub struct AppTopics([Arc<str>; 3]);

impl AppTopics {
    pub fn new(app: &str) -> AppTopics {
        AppTopics(AppAlias::ALL.map(|a| Arc::from(format!("{}/{app}", a.prefix()))))
    }

    /// `app/<a>`: the prefix of every concrete topic.
    pub fn app(&self) -> &Arc<str> {
        &self.0[0]
    }

    pub fn of(&self, alias: AppAlias) -> &Arc<str> {
        &self.0[alias as usize]
    }

    /// What [`Delivery::topic`](super::Delivery::topic) needs for a delivery: the alias's topic
    /// for a whole-application delivery, else `app/<a>` (the concrete topic's prefix).
    pub fn base(&self, whole_app: Option<AppAlias>) -> &Arc<str> {
        whole_app.map_or(self.app(), |alias| self.of(alias))
    }
}

/// Which events of the application a filter selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `app/<application>` and its aliases: everything, published on the filter's own topic.
    WholeApp(AppAlias),
    /// An extension filter `app/<application>/<device>/<channel>` (with `+`/`#`), matched against
    /// the event's concrete topic by the usual MQTT rules.
    Topic(Arc<str>),
}

/// One subscription of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFilter {
    /// The filter as the client wrote it (its identity within the session).
    pub filter: Arc<str>,
    pub selector: Selector,
    pub qos: QoS,
    pub subscription_id: Option<u32>,
    pub mode: Mode,
}
