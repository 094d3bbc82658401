//! The store's one error type: every variant names the file and says what to do about it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// ENOSPC (or a quota): nothing of the failed append stays in the log. Ingest answers 503;
    /// free space or lower the retention, then retry.
    #[error("{}: the disk is full ({op}); nothing of this append was kept: free space or lower the retention", file.display())]
    DiskFull { file: PathBuf, op: &'static str },

    /// Any other I/O failure.
    #[error("{}: {op}: {source}", file.display())]
    Io {
        file: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// Another process (or another `Log` in this one) holds the directory.
    #[error("{}: the store directory is in use by another process (its lock file is held): stop it, or point this one at another directory", file.display())]
    Locked { file: PathBuf },

    /// A file that cannot be made sense of at all: start-up stops rather than run on a silently
    /// empty or partial log.
    #[error("{}: {reason}; this is not damage a crash can cause: restore the file from a backup, or move it away to discard what it holds", file.display())]
    Corrupt { file: PathBuf, reason: String },

    /// Options the store cannot work with (a configuration error).
    #[error("{}: {reason}", dir.display())]
    Options { dir: PathBuf, reason: String },

    /// A record the format cannot hold (a key or value over 4 GiB, or a batch over the limit).
    #[error("{}: {reason}", file.display())]
    TooLarge { file: PathBuf, reason: String },
}

impl StoreError {
    /// Classifies an I/O error: ENOSPC and EDQUOT become [`StoreError::DiskFull`].
    pub(crate) fn io(file: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        let file = file.into();
        if is_disk_full(&source) {
            StoreError::DiskFull { file, op }
        } else {
            StoreError::Io { file, op, source }
        }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            file: file.into(),
            reason: reason.into(),
        }
    }

    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() || code == rustix::io::Errno::DQUOT.raw_os_error())
}
