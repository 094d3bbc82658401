//! Test certificates: a CA and a server certificate for `localhost`/`127.0.0.1`, made at test
//! time with the `openssl` CLI (`scripts/test` installs it) in a temporary directory. Shared by
//! the TLS listener tests and the Kafka TLS tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The certificate extensions, shared with the Python and browser tests.
const OPENSSL_CNF: &str = include_str!("../fixtures/openssl.cnf");

/// A CA and a server certificate for `localhost`/`127.0.0.1` in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openssl.cnf"), OPENSSL_CNF).unwrap();
        let p = Pki { dir };
        p.openssl(&[
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=transports test CA",
        ]);
        p.openssl(&[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        p.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "4097",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "server",
            "-out",
            "server.crt",
        ]);
        p
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the openssl CLI is needed for the TLS tests (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory holding `ca.crt`, `server.crt` and `server.key`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
