//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`) through the `sd-notify` crate.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call here does nothing.
//! - [`ready`]: once the listeners are bound and the backend is ready.
//! - [`reloading`]: before a reload (SIGHUP) is applied, and [`ready`] after.
//! - [`stopping`]: at the start of a graceful shutdown.
//! - [`Watchdog`]: `WATCHDOG=1` every half `WATCHDOG_USEC`, only while every event loop's
//!   heartbeat ([`Liveness`]) is fresh; a stuck loop stops the pings and systemd restarts us.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use sd_notify::NotifyState;

use super::Liveness;

fn send(state: NotifyState) {
    send_all(&[state]);
}

fn send_all(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}

pub fn ready() {
    send(NotifyState::Ready);
}

/// `RELOADING=1` with `MONOTONIC_USEC` (`Type=notify-reload` refuses a reload without it);
/// [`ready`] ends the reload.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send_all(&[NotifyState::Reloading, now]),
        Err(_) => send(NotifyState::Reloading),
    }
}

pub fn stopping() {
    send(NotifyState::Stopping);
}

/// The watchdog interval systemd asked for, if any. Read here rather than with
/// `sd_notify::watchdog_enabled`, which requires `WATCHDOG_PID`: like libsystemd's
/// `sd_watchdog_enabled`, an absent `WATCHDOG_PID` means "this process", a different one means
/// the setting is for someone else.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The thread that sends `WATCHDOG=1`. Stops when dropped or [`Watchdog::stop`]ped.
pub struct Watchdog {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts pinging every half of `WATCHDOG_USEC` if systemd asked for a watchdog.
    pub fn start(liveness: Arc<Liveness>) -> Option<Watchdog> {
        let interval = watchdog_interval()?;
        std::env::var_os("NOTIFY_SOCKET")?;
        let period = interval / 2;
        // A loop turns at least every 250 ms when idle; it is stuck when its last turn is older
        // than one ping period (and never sooner than one second, so a short WatchdogSec does
        // not mistake a busy turn for a hang).
        let max_age = period.max(Duration::from_secs(1));
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut withheld = false;
                loop {
                    match liveness.stale(max_age) {
                        None => {
                            withheld = false;
                            send(NotifyState::Watchdog);
                        }
                        Some(shard) if !withheld => {
                            withheld = true;
                            tracing::error!(
                                shard,
                                "event loop made no progress for {max_age:?}; withholding the systemd watchdog ping"
                            );
                        }
                        Some(_) => {}
                    }
                    match rx.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .ok()?;
        tracing::info!(?interval, "systemd watchdog enabled");
        Some(Watchdog {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.halt();
    }
}
