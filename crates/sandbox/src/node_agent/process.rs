//! Running one container instance as a local process in its own process group, so that stopping it
//! (SIGTERM, then SIGKILL after the grace period) reaches every process it started, as stopping a
//! container does. Every live group is registered so dropping the agent can kill them all at once.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::container::ProcessSpec;
use super::paths::tail;

/// The process groups of every running container instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessGroups(Arc<Mutex<HashSet<u32>>>);

impl ProcessGroups {
    fn add(&self, group: u32) {
        self.0.lock().expect("process group registry").insert(group);
    }

    fn remove(&self, group: u32) {
        self.0.lock().expect("process group registry").remove(&group);
    }

    /// SIGKILLs every registered group now (blocking; for `Drop`).
    pub(crate) fn kill_all(&self) {
        let groups: Vec<u32> = self.0.lock().expect("process group registry").drain().collect();
        for group in groups {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Sends `signal` to process group `group` with the `kill` command (no unsafe code needed).
async fn signal_group(group: u32, signal: &str) {
    let _ = tokio::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{group}")])
        .stderr(Stdio::null())
        .status()
        .await;
}

/// How a process ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    /// Exit code; 128 + signal when a signal ended it.
    pub(crate) code: i32,
    /// The signal, if one ended it.
    pub(crate) signal: Option<i32>,
}

/// A started container instance.
pub(crate) struct Running {
    child: tokio::process::Child,
    group: u32,
    groups: ProcessGroups,
    log_offset: u64,
}

impl Running {
    /// Process id (also its process-group id).
    pub(crate) fn pid(&self) -> u32 {
        self.group
    }

    /// Waits for the process to exit, or on `cancel` stops it: SIGTERM to the group, SIGKILL after
    /// `grace`. When the main process exits, the rest of its group is killed, as a container's are.
    pub(crate) async fn wait(mut self, cancel: &CancellationToken, grace: Duration) -> Exit {
        let status = tokio::select! {
            status = self.child.wait() => status,
            () = cancel.cancelled() => {
                signal_group(self.group, "TERM").await;
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        signal_group(self.group, "KILL").await;
                        self.child.wait().await
                    }
                }
            }
        };
        signal_group(self.group, "KILL").await;
        self.groups.remove(self.group);
        match status {
            Ok(status) => match status.signal() {
                Some(signal) => Exit {
                    code: 128 + signal,
                    signal: Some(signal),
                },
                None => Exit {
                    code: status.code().unwrap_or(128),
                    signal: None,
                },
            },
            Err(_) => Exit {
                code: 128,
                signal: None,
            },
        }
    }

    /// Where this instance's output starts in the log file.
    pub(crate) fn log_offset(&self) -> u64 {
        self.log_offset
    }
}

/// Starts `spec` with an empty termination-message file, output appended to its log.
pub(crate) fn spawn(spec: &ProcessSpec, groups: &ProcessGroups) -> Result<Running, String> {
    for path in [&spec.log, &spec.termination_file] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("creating {}: {err}", parent.display()))?;
        }
    }
    std::fs::write(&spec.termination_file, b"")
        .map_err(|err| format!("creating {}: {err}", spec.termination_file.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|err| format!("opening {}: {err}", spec.log.display()))?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log
        .try_clone()
        .map_err(|err| format!("duplicating a log handle: {err}"))?;
    let child = tokio::process::Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("starting {}: {err}", spec.program.display()))?;
    let group = child
        .id()
        .ok_or("the process exited before it could be registered")?;
    groups.add(group);
    Ok(Running {
        child,
        group,
        groups: groups.clone(),
        log_offset,
    })
}

/// The termination message a kubelet would report: the termination file (at most 4096 bytes), or
/// with `FallbackToLogsOnError` and a failure and an empty file, the log's tail (80 lines, 2048 bytes).
pub(crate) fn termination_message(spec: &ProcessSpec, exit: Exit, log_offset: u64) -> Option<String> {
    let file = std::fs::read(&spec.termination_file).unwrap_or_default();
    let file = String::from_utf8_lossy(&file[..file.len().min(4096)]).into_owned();
    if file.is_empty() && spec.fallback_to_logs && exit.code != 0 {
        return Some(log_tail(spec, log_offset, 80, 2048)).filter(|t| !t.is_empty());
    }
    Some(file).filter(|f| !f.is_empty())
}

/// The last lines this instance wrote to its log (from `log_offset` on).
pub(crate) fn log_tail(spec: &ProcessSpec, log_offset: u64, lines: usize, bytes: usize) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(&spec.log) {
        // Only the end matters: a mover's log can be long.
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = log_offset.max(length.saturating_sub(64 * 1024));
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    tail(&String::from_utf8_lossy(&text), lines, bytes)
}
