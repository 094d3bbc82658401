//! The event backends and their runtime.
//!
//! Owns the embedded log ([`embedded`]) and Apache Kafka ([`kafka`]) behind the seam
//! ([`crate::seam`]), the consumer-group machinery both share (`consumer`: the worker loop,
//! members, assignment, cursors and the at-least-once rules, written once), the [`Backend`] that holds a started backend's worker threads, the
//! [`BackendHandle`] shards use to reach them, and [`start`]: the one door through which the
//! server starts the configured backend.
//!
//! Must not touch: sockets, shards or MQTT sessions; it speaks to shards only through the seam's
//! messages. Nothing outside this module reaches into `embedded::` or `kafka::` (but the fuzz
//! entry points in `crate::fuzzing`): what others need is re-exported here.

mod command_inbox;
mod consumer;
pub mod embedded;
pub mod kafka;
mod start;

use std::sync::Arc;

use crossbeam_channel::Sender;

pub use embedded::EmbeddedLog;
pub use start::start;

use crate::seam::{GroupKey, Producer, ToBackend};

/// A running backend: its producer and the worker threads that own consumer groups.
pub struct Backend {
    pub producer: Arc<dyn Producer>,
    workers: Vec<Sender<ToBackend>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ephemeral_by_app: bool,
    /// Run by [`Backend::shutdown`] once the workers stopped (the embedded log on disk: its
    /// last fdatasync and offsets write, issue #14).
    on_stopped: Option<Box<dyn FnOnce() + Send>>,
}

impl Backend {
    pub fn new(
        producer: Arc<dyn Producer>,
        workers: Vec<Sender<ToBackend>>,
        threads: Vec<std::thread::JoinHandle<()>>,
    ) -> Backend {
        Backend {
            producer,
            workers,
            threads,
            ephemeral_by_app: false,
            on_stopped: None,
        }
    }

    /// Has [`Backend::shutdown`] run `f` after the workers stopped (or gave up waiting).
    pub fn on_stopped(mut self, f: impl FnOnce() + Send + 'static) -> Backend {
        // After what was set before (each part of the backend stops what it started).
        self.on_stopped = Some(match self.on_stopped.take() {
            Some(before) => Box::new(move || {
                before();
                f();
            }),
            None => Box::new(f),
        });
        self
    }

    /// Every ephemeral reader of an application goes to the same worker (which can then serve
    /// them through one consumer) instead of being spread by connection.
    pub fn ephemeral_readers_by_app(mut self) -> Backend {
        self.ephemeral_by_app = true;
        self
    }

    /// Handles for shards: cheap to clone, one per shard.
    pub fn handle(&self) -> BackendHandle {
        BackendHandle {
            workers: self.workers.clone().into(),
            ephemeral_by_app: self.ephemeral_by_app,
        }
    }

    /// Asks every worker to commit and stop, waiting at most `timeout` in all.
    pub fn shutdown(mut self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let (tx, rx) = crossbeam_channel::unbounded();
        for w in &self.workers {
            let _ = w.send(ToBackend::Shutdown(tx.clone()));
        }
        let on_stopped = self.on_stopped.take();
        for _ in &self.workers {
            if rx.recv_deadline(deadline).is_err() {
                tracing::warn!("backend workers did not stop within the shutdown timeout");
                if let Some(f) = on_stopped {
                    f();
                }
                return;
            }
        }
        if let Some(f) = on_stopped {
            f();
        }
        // Retired consumers are destroyed after the workers replied (the Kafka reaper), which
        // can block while a broker is unreachable: wait for them only until the deadline.
        for t in self.threads {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    thread = t.thread().name().unwrap_or("?"),
                    "a backend thread did not stop within the shutdown timeout; leaving it"
                );
            }
        }
    }
}

/// What a shard holds to reach the backend workers.
#[derive(Clone)]
pub struct BackendHandle {
    workers: Arc<[Sender<ToBackend>]>,
    ephemeral_by_app: bool,
}

impl BackendHandle {
    /// The worker that owns `group` (stable for the process lifetime).
    pub fn worker_of(&self, group: &GroupKey) -> u16 {
        let hash = match group {
            GroupKey::Ephemeral { app, .. } if self.ephemeral_by_app => {
                GroupKey::Durable(app.clone()).hash64()
            }
            _ => group.hash64(),
        };
        (hash % self.workers.len() as u64) as u16
    }

    pub fn send(&self, worker: u16, msg: ToBackend) {
        // A worker only stops at shutdown; then there is nobody left to tell.
        let _ = self.workers[worker as usize].send(msg);
    }

    pub fn broadcast(&self, mut make: impl FnMut() -> ToBackend) {
        for w in self.workers.iter() {
            let _ = w.send(make());
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}
