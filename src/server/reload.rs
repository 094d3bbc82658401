//! Live reload: a new configuration put in force without restarting listeners or dropping the
//! connections that may stay (issue #16). SIGHUP and `mqtt-integration reload` end here.
//!
//! The file is loaded and checked in full first; any error leaves the old configuration in
//! force. Then, in this order:
//! 1. the backend learns the applications that are new (the embedded log opens their logs; a
//!    failure here stops the reload before anything is replaced, and an extra empty log is
//!    harmless);
//! 2. credentials are replaced (API keys, `allow_anonymous`, token keys): new connections are
//!    checked against them, established ones keep the identity they proved;
//! 3. the registry is replaced, whole, so no decision sees half of each configuration;
//! 4. every shard re-checks its subscribers against it and disconnects those that lost their
//!    read permission (v5: `0x87`).
//!
//! Keys baked into running threads and sockets ([`crate::config::needs_restart`]) are reported
//! and left as they are; the rest applies.

use std::path::Path;
use std::time::SystemTime;

use super::Server;
use crate::config::{in_force_after, needs_restart, process_environment, Config};
use crate::registry::Registry;
use crate::shard::Control;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or does not pass the checks; the message names file, key and
    /// problem.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Putting it in force failed before anything was replaced: what failed and why (the
    /// credentials, an application's log).
    #[error("{0}")]
    Apply(String),
}

impl Server {
    /// Puts `new` in force (see the module doc); `old` is the configuration in force now.
    /// Returns the keys that changed but need a restart (left as they were).
    pub fn reconfigure(
        &self,
        old: &Config,
        new: &Config,
    ) -> Result<Vec<&'static str>, ReloadError> {
        if let Some(log) = &self.embedded {
            let names: Vec<&str> = new.apps.iter().map(|a| a.name.as_str()).collect();
            let added = log
                .add_apps(&names)
                .map_err(|e| ReloadError::Apply(e.to_string()))?;
            if !added.is_empty() {
                tracing::info!(applications = ?added, "embedded log: applications added by the reload");
            }
        }
        self.auth
            .replace(&new.auth, &new.users)
            .map_err(|e| ReloadError::Apply(format!("cannot set up authentication: {e}")))?;
        self.registry.replace(Registry::from_config(new));
        for (peer, _) in &self.shards {
            peer.send(Control::RecheckRights);
        }
        self.metrics.set_config_loaded(SystemTime::now());
        Ok(needs_restart(old, new))
    }
}

/// SIGHUP: loads the file at `path` (the built-in default when `None`, as at start) and puts it
/// in force. On success `in_force` becomes the new configuration. Logs what happened (the
/// error names file, key and problem), counts it, and tells systemd (`RELOADING=1`, then
/// `READY=1`).
pub fn on_signal(server: &Server, path: Option<&Path>, in_force: &mut Config) {
    crate::ops::systemd::reloading();
    let outcome = Config::load(path, process_environment())
        .map_err(ReloadError::from)
        .and_then(|new| {
            let restart = server.reconfigure(in_force, &new)?;
            Ok((new, restart))
        });
    let source = path.map_or("the built-in configuration".to_owned(), |p| {
        p.display().to_string()
    });
    match outcome {
        Ok((new, restart)) => {
            if !restart.is_empty() {
                tracing::warn!(
                    file = %source,
                    keys = ?restart,
                    "configuration reloaded; these changed keys need a restart and keep their old values until then"
                );
            }
            tracing::info!(
                file = %source,
                applications = new.apps.len(),
                users = new.users.len(),
                "configuration reloaded"
            );
            // What needs a restart stays as it runs: keep it as the base of the next comparison.
            *in_force = in_force_after(in_force, new);
            server.metrics().config_reloaded(true);
        }
        Err(e) => {
            tracing::error!(file = %source, "configuration reload failed, the previous configuration stays in force: {e}");
            server.metrics().config_reloaded(false);
        }
    }
    crate::ops::systemd::ready();
}
