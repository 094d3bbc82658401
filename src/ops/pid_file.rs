//! `server.pid_file`: the running process's pid, for `mqtt-integration reload` (and init
//! scripts) to find it. Written once the service is ready, removed when it stops.

use std::io;
use std::path::{Path, PathBuf};

/// The pid file, removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path` (replacing a stale file a crash left behind).
    pub fn create(path: &Path) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    /// Reads the pid a running service wrote to `path`.
    pub fn read(path: &Path) -> Result<i32, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the pid file {}: {e}; is the service running with this configuration's server.pid_file?",
                path.display()
            )
        })?;
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(|| {
                format!(
                    "the pid file {} does not hold a process id (found {:?})",
                    path.display(),
                    text.trim()
                )
            })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed() {
        let path =
            std::env::temp_dir().join(format!("mqtt-integration-test-{}.pid", std::process::id()));
        let file = PidFile::create(&path).unwrap();
        assert_eq!(PidFile::read(&path).unwrap(), std::process::id() as i32);
        drop(file);
        assert!(!path.exists());
        let err = PidFile::read(&path).unwrap_err();
        assert!(err.contains("cannot read the pid file"), "{err}");
        std::fs::write(&path, "garbage\n").unwrap();
        let err = PidFile::read(&path).unwrap_err();
        assert!(err.contains("does not hold a process id"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
