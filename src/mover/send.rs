//! `ferry mover send`: the source side. Runs rsync with Ferry's argument set (see [`super::rsync`]) and
//! `ferry mover tunnel` as its remote shell, turns rsync's output into [`Progress`] lines, retries with
//! exponential backoff when the connection breaks (interrupted files resume from the partial dir), and
//! decides success: 0, or 24 (files vanished) on a stage; anything else fails with rsync's message.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::progress::{self, Progress, Stats};
use super::rsync::{self, SendPlan};
use crate::{Error, Result};

/// Environment variables through which `send` configures the `tunnel` it makes rsync start (so nothing
/// secret appears on a command line).
pub const ENV_CONNECT: &str = "FERRY_MOVER_CONNECT";
/// See [`ENV_CONNECT`].
pub const ENV_SERVER_NAME: &str = "FERRY_MOVER_SERVER_NAME";
/// See [`ENV_CONNECT`].
pub const ENV_CERTS_DIR: &str = "FERRY_MOVER_CERTS_DIR";
/// See [`ENV_CONNECT`].
pub const ENV_PROXY: &str = "FERRY_MOVER_PROXY";

/// Longest pause between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// stderr lines kept for the failure message.
const STDERR_TAIL: usize = 5;

/// Everything the sender needs.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// `host:port` of the receiver.
    pub connect: String,
    /// Name expected in the receiver's certificate; default: the host part of `connect`.
    pub server_name: Option<String>,
    /// Folder with `ca.crt`, `tls.crt`, `tls.key`.
    pub certs_dir: PathBuf,
    /// The volume root to mirror.
    pub source: PathBuf,
    /// `http://user:pass@host:port` CONNECT proxy.
    pub proxy: Option<String>,
    /// Final sync: vanished files (rsync exit 24) fail the run.
    pub final_sync: bool,
    /// Compare checksums of every file (slow, thorough).
    pub verify: bool,
    /// NUL-separated list of paths (relative to `source`) to send instead of the whole tree.
    pub files_from: Option<PathBuf>,
    /// Bandwidth limit in KiB/s.
    pub bwlimit_kib: Option<u64>,
    /// Attempts after the first one for retryable failures.
    pub retries: u32,
    /// First backoff delay; doubled after each failed attempt.
    pub retry_delay: Duration,
    /// Skip directory mtimes; `None` decides by whether this process runs as root.
    pub omit_dir_times: Option<bool>,
    /// The rsync program.
    pub rsync: PathBuf,
    /// The program rsync starts as its remote shell; normally this `ferry` executable.
    pub ferry_exe: PathBuf,
    /// Groups the sender needs to read the volume (checked, see docs/mover.md).
    pub supplemental_groups: Vec<u32>,
    /// Minimum time between two progress lines.
    pub progress_interval: Duration,
    /// rsync `--timeout`: seconds without I/O before giving up (then retried).
    pub io_timeout_secs: u64,
    /// Where to also write the final record (a pod's termination-message file), with rsync's message
    /// on a second line when the run failed.
    pub stats_file: Option<PathBuf>,
}

/// How a send ended (also printed as the final `stats` line).
#[derive(Debug, Clone, PartialEq)]
pub struct SendOutcome {
    /// The final record, a [`Progress::Stats`].
    pub stats: Progress,
    /// rsync's exit code of the last attempt.
    pub rsync_exit_code: i32,
    /// Whether the run succeeded (0, or 24 on a stage).
    pub success: bool,
}

/// Runs the sender. Returns `Err(Error::Rsync)` when rsync failed for good, after printing the stats line.
pub async fn run(config: SendConfig) -> Result<SendOutcome> {
    let started = Instant::now();
    // Fail early, with a clear message, on material the tunnel would otherwise reject inside rsync.
    super::certs::client_config(&config.certs_dir)?;
    if let Some(proxy) = &config.proxy {
        super::proxy::ProxyUrl::parse(proxy)?;
    }
    let missing = super::check_supplemental_groups(&config.supplemental_groups);
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "continuing without some supplemental groups; unreadable files will fail"
        );
    }
    let plan = SendPlan {
        source: config.source.clone(),
        rsh: format!(
            "{} mover tunnel",
            rsync::rsh_word(&config.ferry_exe.to_string_lossy())
        ),
        checksum: config.verify,
        omit_dir_times: config.omit_dir_times.unwrap_or_else(|| !super::running_as_root()),
        files_from: config.files_from.clone(),
        bwlimit_kib: config.bwlimit_kib,
        io_timeout_secs: config.io_timeout_secs,
    };
    let args = rsync::send_args(&plan);
    let mut attempt = 1;
    loop {
        let run = run_once(&config, &args, attempt).await?;
        let success = rsync::exit_is_success(run.code, config.final_sync);
        let attempts_left = attempt <= config.retries;
        if !success && rsync::exit_is_retryable(run.code) && attempts_left {
            let delay = config
                .retry_delay
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_RETRY_DELAY);
            super::emit(&Progress::Retry {
                attempt,
                rsync_exit_code: run.code,
                message: run.message.clone(),
                delay_secs: delay.as_secs_f64(),
            });
            tokio::time::sleep(delay).await;
            attempt += 1;
            continue;
        }
        let stats = Progress::Stats {
            bytes_sent: run.stats.bytes_sent,
            bytes_received: run.stats.bytes_received,
            files_transferred: run.stats.files_transferred,
            files_total: run.stats.files_total,
            total_size: run.stats.total_size,
            files_deleted: run.stats.files_deleted,
            duration_secs: started.elapsed().as_secs_f64(),
            rsync_exit_code: run.code,
            attempts: attempt,
            success,
        };
        super::emit(&stats);
        if let Some(path) = &config.stats_file {
            write_stats_file(
                path,
                &stats,
                (!success).then_some((run.code, run.message.as_str())),
            );
        }
        if !success {
            return Err(Error::Rsync {
                code: run.code,
                message: run.message,
            });
        }
        return Ok(SendOutcome {
            stats,
            rsync_exit_code: run.code,
            success,
        });
    }
}

/// Writes the final record (and the failure) where the controller reads it: a pod's
/// termination-message file. Best effort: stdout already has the record.
fn write_stats_file(path: &std::path::Path, stats: &Progress, failure: Option<(i32, &str)>) {
    let mut text = serde_json::to_string(stats).unwrap_or_default();
    if let Some((code, message)) = failure {
        text.push_str(&format!("\nrsync exited with code {code}: {message}"));
    }
    // A termination message holds at most 4096 bytes; keep the JSON line whole.
    let text: String = text.chars().take(4000).collect();
    if let Err(err) = std::fs::write(path, text) {
        tracing::warn!(path = %path.display(), error = %err, "cannot write the stats file");
    }
}

/// The result of one rsync run.
struct RunResult {
    code: i32,
    message: String,
    stats: Stats,
}

async fn run_once(config: &SendConfig, args: &[std::ffi::OsString], attempt: u32) -> Result<RunResult> {
    let started = Instant::now();
    let server_name = config
        .server_name
        .clone()
        .unwrap_or_else(|| super::tunnel::host_of(&config.connect).to_string());
    let mut command = Command::new(&config.rsync);
    command
        .args(args)
        .env(ENV_CONNECT, &config.connect)
        .env(ENV_SERVER_NAME, server_name)
        .env(ENV_CERTS_DIR, &config.certs_dir)
        .env_remove(ENV_PROXY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(proxy) = &config.proxy {
        command.env(ENV_PROXY, proxy);
    }
    let mut child = command
        .spawn()
        .map_err(Error::io(format!("starting {}", config.rsync.display())))?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Mover("rsync stdio not captured".into()));
    };
    let stderr_task = tokio::spawn(async move {
        let mut tail: Vec<String> = Vec::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            tail.push(line);
            if tail.len() > STDERR_TAIL {
                tail.remove(0);
            }
        }
        tail
    });

    let mut stats = Stats::default();
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut last_emit: Option<Instant> = None;
    let mut latest: Option<progress::ProgressLine> = None;
    let report = |line: progress::ProgressLine, force: bool, last_emit: &mut Option<Instant>| {
        if !force && last_emit.is_some_and(|at| at.elapsed() < config.progress_interval) {
            return;
        }
        *last_emit = Some(Instant::now());
        let (files_done, files_total) = line
            .to_check
            .map_or((0, 0), |(left, total)| (total - left.min(total), total));
        super::emit(&Progress::Progress {
            bytes_done: line.bytes_done,
            bytes_total: line.bytes_total(),
            files_done,
            files_total,
            rate_bytes_per_sec: line.rate_bytes_per_sec,
            elapsed_secs: started.elapsed().as_secs_f64(),
            attempt,
        });
    };
    loop {
        let read = stdout
            .read(&mut chunk)
            .await
            .map_err(Error::io("reading rsync output"))?;
        if read == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..read]);
        while let Some(end) = pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            if let Some(parsed) = progress::parse_progress_line(&text) {
                latest = Some(parsed);
                report(parsed, false, &mut last_emit);
            } else {
                stats.absorb(&text);
            }
        }
    }
    if let Some(parsed) = latest {
        report(parsed, true, &mut last_emit);
    }
    let status = child.wait().await.map_err(Error::io("waiting for rsync"))?;
    let tail = stderr_task.await.unwrap_or_default();
    // Killed by a signal: report it like a shell would, so it is never mistaken for success.
    let code = status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    let message = if tail.is_empty() {
        format!("rsync exited with {status}")
    } else {
        tail.join("; ")
    };
    Ok(RunResult { code, message, stats })
}
