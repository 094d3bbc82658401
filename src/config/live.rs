//! What a reload (SIGHUP) can change in a running process, and what needs a restart.
//!
//! Applications, devices, members, users, API keys and `[auth]` (but `failure_delay`) apply live:
//! they are read per decision from state that a reload replaces whole. Everything else is
//! baked into running threads and sockets at start (listeners, the backend, thread counts,
//! limits the event loops copied): a change there is reported and left for a restart.

use super::Config;

/// The keys (sections, or single keys) that differ between `old` and `new` but only take effect
/// after a restart; empty when everything that changed applies live.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            keys.push(key);
        }
    };
    check(old.server != new.server, "[server]");
    check(old.mqtt != new.mqtt, "[mqtt]");
    check(old.listeners != new.listeners, "[[listener]]");
    check(old.http != new.http, "[http]");
    check(old.backend != new.backend, "[backend]");
    check(old.log != new.log, "[log]");
    check(
        old.auth.failure_delay != new.auth.failure_delay,
        "auth.failure_delay",
    );
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Config {
        Config::from_toml_str(toml, "test", Vec::new()).expect("valid test config")
    }

    #[test]
    fn applications_users_and_auth_apply_live() {
        let old = parse("[[app]]\nname = \"a\"\n");
        let new = parse(
            "[auth]\nallow_anonymous = false\n[[user]]\nname = \"u\"\napi_keys = []\n[[app]]\nname = \"a\"\n[[app]]\nname = \"b\"\nowner = \"u\"\n",
        );
        assert_eq!(needs_restart(&old, &new), Vec::<&str>::new());
    }

    #[test]
    fn listeners_backend_and_threads_need_a_restart() {
        let old = parse("[[app]]\nname = \"a\"\n");
        let new = parse(
            "[server]\nthreads = 3\n[backend]\nkind = \"kafka\"\n[auth]\nfailure_delay = \"2s\"\n[[app]]\nname = \"a\"\n",
        );
        assert_eq!(
            needs_restart(&old, &new),
            vec!["[server]", "[backend]", "auth.failure_delay"]
        );
    }
}
