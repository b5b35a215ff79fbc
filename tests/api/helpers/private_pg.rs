//! A private PostgreSQL cluster of a test's own (`scripts/pg`), for what the shared one
//! cannot be: read-only, TLS only, stopped and started by the test.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{repo_root, server_port};

/// Started on a free port below the ephemeral range; stopped when dropped.
pub struct PrivatePostgres {
    pub dir: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    /// `scripts/pg start DIR PORT` with `options` (such as `--tls`).
    pub fn start(dir: PathBuf, options: &[&str]) -> Self {
        let port = server_port();
        let status = Command::new(repo_root().join("scripts/pg"))
            .args(["start", dir.to_str().expect("path"), &port.to_string()])
            .args(options)
            .stdout(Stdio::null())
            .status()
            .expect("scripts/pg");
        assert!(status.success(), "the cluster in {dir:?} did not start");
        Self { dir, port }
    }

    /// Runs `sql` in `database` as the superuser; its output, unaligned and trimmed.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(repo_root().join("scripts/pg"))
            .args([
                "psql",
                self.dir.to_str().expect("path"),
                "-d",
                database,
                "-tAc",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/pg"))
            .args(["stop", self.dir.to_str().unwrap_or_default()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
