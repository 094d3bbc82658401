//! The lock file: one process per store directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::error::StoreError;

pub const LOCK_FILE: &str = "LOCK";

/// Holds an exclusive `flock` on `<dir>/LOCK` until dropped (the kernel also releases it when
/// the process dies, so a crash never leaves a stale lock). flock locks belong to the open
/// file, so a second open in the same process is refused too.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub path: PathBuf,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open lock file", e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(StoreError::Locked { file: path })
            }
            Err(e) => return Err(StoreError::io(&path, "lock", e.into())),
        }
        // For whoever looks: which process holds it. The content is never read.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DirLock { _file: file, path })
    }
}
