//! The open files limit: every connection (MQTT or HTTP) takes a file descriptor, and the usual
//! soft limit (1,024) is far below `http.max_connections` or `server.max_connections`
//! (100,000 each). The soft limit is raised to the hard limit at start, which any process may
//! do; the hard limit is the administrator's (systemd's `LimitNOFILE=`).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft open files limit to the hard limit; returns the limit now in force
/// (`None`: unlimited).
pub fn raise_to_hard_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(e) => {
            tracing::warn!(error = %e, soft = ?limit.current, hard = ?limit.maximum,
                "cannot raise the open files limit; connections beyond it will be refused");
            limit.current
        }
    }
}
