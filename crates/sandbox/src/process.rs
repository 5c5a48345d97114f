//! Child processes of the sandbox, stopped gracefully (SIGTERM, then SIGKILL after a grace period)
//! when dropped, so a failed test or an interrupted demo leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A child process that is terminated when dropped.
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Child,
    name: String,
}

impl Supervised {
    /// Starts `command` with stderr (and stdout unless piped by the caller) appended to `log`.
    pub(crate) fn spawn(name: &str, mut command: Command, log: &Path, pipe_stdout: bool) -> Result<Self> {
        // Appended, so a restarted process (crash tests) keeps the earlier run's lines.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(Error::io(format!("opening {}", log.display())))?;
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            file.try_clone()
                .map_err(Error::io("duplicating a log handle"))?
                .into()
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .map_err(|err| Error::Sandbox(format!("cannot start {name} ({command:?}): {err}")))?;
        Ok(Self {
            child,
            name: name.to_string(),
        })
    }

    /// The child, e.g. to take its stdout.
    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") with the `kill` command (no unsafe code needed).
    pub(crate) fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns whether it exited on its own and cleanly.
    pub(crate) fn stop(&mut self, grace: Duration) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(process = %self.name, "did not stop within {grace:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// The Ferry controller running as a separate `ferry controller` process against a host cluster.
#[derive(Debug)]
pub struct ControllerProcess {
    process: Supervised,
    /// Where its log goes.
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts `ferry_binary controller --kubeconfig host_kubeconfig`, logging to `log`.
    pub fn start(ferry_binary: &Path, host_kubeconfig: &Path, log: &Path) -> Result<Self> {
        Self::start_with_env(ferry_binary, host_kubeconfig, log, &[])
    }

    /// [`ControllerProcess::start`] with extra environment variables (test hooks).
    pub fn start_with_env(
        ferry_binary: &Path,
        host_kubeconfig: &Path,
        log: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Self> {
        let mut command = Command::new(ferry_binary);
        // No probes port unless a test asks for one (several controllers share this machine).
        command.env("FERRY_HTTP_ADDR", "off");
        command.envs(env.iter().copied());
        command
            .arg("controller")
            .arg("--kubeconfig")
            .arg(host_kubeconfig)
            .args(["--retry-seconds", "2", "--resync-seconds", "5"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,ferry=debug".into()),
            );
        let process = Supervised::spawn("ferry controller", command, log, false)?;
        Ok(Self {
            process,
            log: log.to_path_buf(),
        })
    }

    /// Process id (for crash tests).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Kills the controller at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        self.process.signal("KILL");
        let _ = self.process.child().wait();
    }

    /// Stops it gracefully; returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        self.process.stop(Duration::from_secs(15))
    }
}
