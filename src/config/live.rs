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

/// The configuration in force after a reload from `old` to `new`: `new`'s live parts, and
/// `old`'s parts that need a restart (so that the next reload reports them again until the
/// process restarts). The same sections as [`needs_restart`]; a test holds them together.
pub fn in_force_after(old: &Config, new: Config) -> Config {
    Config {
        server: old.server.clone(),
        mqtt: old.mqtt.clone(),
        listeners: old.listeners.clone(),
        http: old.http.clone(),
        backend: old.backend.clone(),
        log: old.log.clone(),
        auth: super::AuthConfig {
            failure_delay: old.auth.failure_delay,
            ..new.auth
        },
        ..new
    }
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

    #[test]
    fn what_stays_in_force_keeps_every_key_that_needs_a_restart() {
        let old = parse("[[app]]\nname = \"a\"\n");
        // Every section that needs a restart changed, and the live ones too.
        let new = parse(concat!(
            "[server]\nthreads = 3\n[mqtt]\ndefault_receive_maximum = 5\n",
            "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:1999\"\n",
            "[http]\nmax_body_size = 10\n[backend]\nkind = \"kafka\"\n[log]\nformat = \"json\"\n",
            "[auth]\nfailure_delay = \"2s\"\nallow_anonymous = false\n",
            "[[app]]\nname = \"a\"\n[[app]]\nname = \"b\"\n",
        ));
        assert_eq!(needs_restart(&old, &new).len(), 7);
        let kept = in_force_after(&old, new.clone());
        assert_eq!(needs_restart(&old, &kept), Vec::<&str>::new());
        assert_eq!(kept.apps, new.apps);
        assert!(!kept.auth.allow_anonymous);
    }
}
