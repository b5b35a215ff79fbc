//! The service and emulator binaries as child processes, and HTTP helpers.

use super::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Paths served by the admin listener only (`/orders` also by the public one with
/// `PUBLIC_ORDER_LIST`; ask `service.url` for that one).
const ADMIN_PATHS: &[&str] = &["/stats", "/metrics", "/dead-letters", "/orders"];

/// GETs `path` of the service (on the admin listener for the admin paths) and returns
/// status and JSON body (`null` if not JSON).
pub async fn get_json(service: &Service, path: &str) -> (u16, serde_json::Value) {
    let admin = ADMIN_PATHS.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['?', '/']))
    });
    let url = if admin {
        service.admin_url(path)
    } else {
        service.url(path)
    };
    let response = http().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The value of an unlabelled metric on `/metrics`, if exported.
pub async fn metric(service: &Service, name: &str) -> Option<f64> {
    let text = http()
        .get(service.admin_url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The service binary running as a child process.
pub struct Service {
    child: Child,
    pub base: String,
    /// The admin listener's base URL.
    pub admin: String,
    pub log: PathBuf,
    stdout: mpsc::Receiver<String>,
}

impl Service {
    /// Starts the service and waits until it is ready (`orders-service ready` on stdout:
    /// database reached, migrations, warm-up and Kafka done).
    pub fn start(env: &TestEnv, extra: &[(&str, &str)]) -> Service {
        Self::try_start(env, extra, Duration::from_secs(60)).expect("service starts")
    }

    pub fn try_start(
        env: &TestEnv,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Service, String> {
        let mut service = Self::spawn(env, extra, timeout)?;
        service.wait_ready(timeout)?;
        Ok(service)
    }

    /// Starts the service and returns once it listens (it answers `/health` from then on),
    /// without waiting for it to be ready.
    pub fn spawn(
        env: &TestEnv,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Service, String> {
        let mut n = 0;
        let log = loop {
            let p = env.path(&format!("service-{n}.log"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-service"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env.service_env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut service = Service {
            child,
            base: String::new(),
            admin: String::new(),
            log,
            stdout: rx,
        };
        service.base = service.wait_line("orders-service listening on ", timeout)?;
        service.admin = service.wait_line("orders-service admin on ", timeout)?;
        Ok(service)
    }

    /// Waits for `orders-service ready` on stdout.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_line("orders-service ready", timeout).map(|_| ())
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_string());
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "service did not print {prefix:?} within {timeout:?}; log {}:\n{}",
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    ));
                }
            }
        }
    }

    /// Whether the process has exited (and with what).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the crash the service must survive.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit, at most `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Runs one of the infrastructure scripts (`pg stop DIR`, `kafka kill DIR` …).
pub fn infra(env: &TestEnv, script: &str, action: &str, component: &str) {
    let status = Command::new(repo_root().join("scripts").join(script))
        .arg(action)
        .arg(env.infra_dir.join(component))
        .stdout(Stdio::null())
        .status()
        .expect("run infra script");
    assert!(status.success(), "scripts/{script} {action} failed");
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Starts the emulator in the background (for faults injected while it produces).
pub fn spawn_emulator(env: &TestEnv, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["--brokers", &env.brokers, "--topic", &env.topic, "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the emulator")
}

/// Waits for a background emulator and asserts it succeeded.
pub fn finish_emulator(child: Child) -> String {
    let out = child.wait_with_output().expect("emulator output");
    assert!(
        out.status.success(),
        "emulator failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
