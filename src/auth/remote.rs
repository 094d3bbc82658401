//! The issuer's key set, fetched from `auth.oauth.jwks_url` by a background thread.
//!
//! Callers are event-loop threads: they must never wait for the network. They read the current
//! key set (a pointer copy under a lock held for nanoseconds) and, when a token names a key id
//! that set does not have, ask for a refresh with a non-blocking `try_send` and refuse the token
//! now. The thread fetches at start, on request at most once per [`RefreshPolicy::min_interval`]
//! (a flood of tokens with made-up key ids cannot turn us into a load generator against the
//! identity provider), and every [`RefreshPolicy::period`] so that retired keys go away.
//! It ends when the last [`RemoteKeys`] handle is dropped (its channel disconnects).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::RwLock;

use super::error::AuthSetupError;
use super::keys::KeySet;

/// How often the key set is fetched.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Least time between two fetches, whatever is asked.
    pub min_interval: Duration,
    /// Fetch this often even when nobody asks.
    pub period: Duration,
    /// Time limit of one fetch.
    pub timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(60),
            period: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Handle on the fetched key set.
#[derive(Debug)]
pub struct RemoteKeys {
    current: Arc<RwLock<Arc<KeySet>>>,
    refresh: Sender<()>,
}

impl RemoteKeys {
    /// Checks the URL and starts the fetching thread; does not wait for the first fetch (the
    /// identity provider being down must not keep the service from starting; tokens are
    /// refused until the keys are there).
    pub fn start(url: &str, policy: RefreshPolicy) -> Result<RemoteKeys, AuthSetupError> {
        check_url(url)?;
        let current = Arc::new(RwLock::new(Arc::new(KeySet::default())));
        // Capacity 1: one pending request says all there is to say.
        let (refresh, requests) = crossbeam_channel::bounded(1);
        let fetcher = Fetcher {
            url: url.to_owned(),
            agent: ureq::AgentBuilder::new().timeout(policy.timeout).build(),
            current: current.clone(),
            policy,
        };
        thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || fetcher.run(requests))
            .map_err(AuthSetupError::Thread)?;
        Ok(RemoteKeys { current, refresh })
    }

    /// The key set as last fetched (empty before the first successful fetch).
    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().clone()
    }

    /// Asks for a fetch soon; never blocks.
    pub fn request_refresh(&self) {
        match self.refresh.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the JWKS refresher has stopped; keys are not refreshed")
            }
        }
    }
}

/// `https://`, or `http://` to a loopback host (tests, a local sidecar).
pub(crate) fn check_url(url: &str) -> Result<(), AuthSetupError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(());
        }
    }
    Err(AuthSetupError::InsecureJwksUrl {
        url: url.to_owned(),
    })
}

struct Fetcher {
    url: String,
    agent: ureq::Agent,
    current: Arc<RwLock<Arc<KeySet>>>,
    policy: RefreshPolicy,
}

impl Fetcher {
    fn run(self, requests: Receiver<()>) {
        loop {
            self.fetch_once();
            let fetched = Instant::now();
            // Wait for a request or the periodic refresh.
            match requests.recv_timeout(self.policy.period) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Rate limit: requests during the pause are folded into the next fetch.
            let next = fetched + self.policy.min_interval;
            while let Some(left) = next.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                if let Err(RecvTimeoutError::Disconnected) = requests.recv_timeout(left) {
                    return;
                }
            }
            // Drop a request that arrived meanwhile: this fetch answers it.
            let _ = requests.try_recv();
        }
    }

    fn fetch_once(&self) {
        match self.fetch() {
            Ok(set) => {
                tracing::info!(url = %self.url, keys = set.len(), "JWKS fetched");
                *self.current.write() = Arc::new(set);
            }
            // Keep the keys we have: a passing outage of the identity provider must not
            // refuse tokens signed with keys we already know.
            Err(why) => tracing::warn!(url = %self.url, "cannot fetch the JWKS: {why}"),
        }
    }

    fn fetch(&self) -> Result<KeySet, String> {
        let response = self
            .agent
            .get(&self.url)
            .set("Accept", "application/json")
            .call()
            .map_err(|e| e.to_string())?;
        let body = response.into_string().map_err(|e| e.to_string())?;
        KeySet::from_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://sso.example.com/realms/x/protocol/openid-connect/certs",
            "HTTPS://sso.example.com/certs",
            "http://127.0.0.1:8080/certs",
            "http://localhost/certs",
            "http://[::1]:99/certs",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sso.example.com/certs",
            "http://127.0.0.1.evil.com/certs",
            "http://localhost.evil.com:80/x",
            "ftp://localhost/x",
            "sso.example.com",
        ] {
            assert!(
                matches!(check_url(bad), Err(AuthSetupError::InsecureJwksUrl { .. })),
                "{bad}"
            );
        }
    }
}
