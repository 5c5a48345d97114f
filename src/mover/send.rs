//! `ferry mover send`: the source side. Runs rsync with Ferry's argument set (see [`super::rsync`]) and
//! `ferry mover tunnel` as its remote shell, turns rsync's output into [`Progress`] lines, retries with
//! exponential backoff when the connection breaks (interrupted files resume from the partial dir), and
//! decides success: 0, or 24 (files vanished) on a stage; anything else fails with rsync's message. A
//! verify (see [`super::verify`]) runs one compare-only stream and fails when the trees differ.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::progress::{self, Board, Progress, ProgressLine, Stats};
use super::rsync::Selection;
use super::rsync::{self, SendPlan};
use super::shard;
use super::stats_file;
use super::unreadable::Unreadable;
use super::verify::{self, Differences};
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

/// Below this weight (bytes plus 32 KiB per entry: about 2,000 small files, or 64 MiB) a tree goes in
/// one stream: the extra passes and connections of a parallel send would cost more than they save.
pub const PARALLEL_MIN_BYTES: u64 = 64 << 20;
/// Most streams `--parallel 0` picks: beyond that the receiver's disk, not the CPU, is the limit.
const MAX_DEFAULT_PARALLEL: usize = 4;

/// `--parallel 0`: one stream per CPU this process may use (cgroup quotas included), at most
/// [`MAX_DEFAULT_PARALLEL`].
pub fn default_parallel() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_DEFAULT_PARALLEL)
}

/// Longest pause between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// Pause after a read of rsync's output that found little (see [`super::paced`]). At 40,000 small files
/// a second rsync writes about 3 MB/s of progress lines (75 bytes a file), 15 KB per pause: well within
/// a pipe's 64 KiB, so rsync does not wait on it, and at most 200 wake-ups a second instead of 40,000.
const OUTPUT_PACE: Duration = Duration::from_millis(5);
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
    /// Compare only: a dry run with checksums over one stream that changes nothing on the receiver and
    /// fails (`success: false`, rsync's code 0) naming the paths that differ. Strict like a final sync.
    pub verify: bool,
    /// Sync comparing checksums of every file instead of size and mtime (slow; still a sync).
    pub checksum: bool,
    /// NUL-separated list of paths (relative to `source`) to send instead of the whole tree.
    pub files_from: Option<PathBuf>,
    /// Bandwidth limit in KiB/s (shared by the streams of a parallel send).
    pub bwlimit_kib: Option<u64>,
    /// rsync streams over disjoint parts of the tree (1: one stream; see [`super::shard`]).
    pub parallel: usize,
    /// Trees lighter than this (bytes plus 32 KiB per entry) go in one stream whatever `parallel` says.
    pub parallel_min_bytes: u64,
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
    /// Keep a manifest on the target under this key (the volume pair) and send only what changed
    /// since the last pass (see [`super::delta_pass`]); `None`: every pass walks the whole tree.
    pub manifest_key: Option<String>,
    /// Compress the data on the wire (zstd through rsync).
    pub compress: bool,
    /// Wait for a release before sending anything (a cutover's held final sender, see [`super::hold`]);
    /// a delta pass reads the target's manifest meanwhile.
    pub hold: Option<super::hold::Hold>,
}

impl SendConfig {
    /// Whether vanished files (rsync 24) fail the run: on the final sync, and on a verify (a tree that
    /// changes while it is compared proves nothing).
    fn strict(&self) -> bool {
        self.final_sync || self.verify
    }
}

/// How a send ended (also printed as the final `stats` line). Check `success`: a verify that found
/// differences ends here, not in an error, because rsync itself succeeded.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SendOutcome {
    /// The final record, a [`Progress::Stats`].
    pub stats: Progress,
    /// rsync's exit code of the last attempt.
    pub rsync_exit_code: i32,
    /// Whether the run succeeded (0, or 24 on a stage; and for a verify, no differences).
    pub success: bool,
    /// What a verify found (empty for a sync).
    pub differences: Differences,
}

impl SendOutcome {
    /// The line a failed verify writes after the stats record and on stderr (see [`Differences::verdict`]);
    /// `None` when nothing differs.
    pub fn verdict(&self) -> Option<String> {
        (!self.differences.is_empty()).then(|| self.differences.verdict(verify::MAX_VERDICT_BYTES))
    }
}

/// Runs the sender. Returns `Err(Error::Rsync)` when rsync failed for good, after printing the stats line;
/// `Ok` with `success: false` when a verify found differences (see [`SendOutcome::verdict`]).
pub async fn run(config: SendConfig) -> Result<SendOutcome> {
    // Fail early, with a clear message, on material the tunnel would otherwise reject inside rsync.
    let pinned = config
        .server_name
        .clone()
        .unwrap_or_else(|| super::tunnel::host_of(&config.connect).to_string());
    super::certs::client_config(&config.certs_dir, &pinned)?;
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
        checksum: config.checksum,
        verify: config.verify,
        omit_dir_times: config.omit_dir_times.unwrap_or_else(|| !super::running_as_root()),
        selection: config
            .files_from
            .clone()
            .map_or(Selection::Whole, Selection::Listed),
        bwlimit_kib: config.bwlimit_kib,
        io_timeout_secs: config.io_timeout_secs,
        // Without a scan nobody knows whether the tree has holes: keep them.
        sparse: true,
        compress: config.compress,
        keep_manifest: config.manifest_key.is_some() || config.verify,
    };
    if config.verify {
        tracing::info!("verifying: comparing source and target with checksums, changing nothing");
    }
    let delta = config.manifest_key.is_some() && !config.verify && plan.selection == Selection::Whole;
    let warm = match &config.hold {
        Some(hold) => {
            let warm_up = async {
                match delta {
                    true => super::delta_pass::prefetch(&config, &plan).await,
                    false => None,
                }
            };
            super::hold::wait(hold, warm_up).await?.1
        }
        None => None,
    };
    // The pass's time (`durationSecs`) starts here, after a hold.
    let started = Instant::now();
    let outcome = if delta {
        super::delta_pass::run(&config, &plan, started, warm).await?
    } else {
        run_whole(&config, &plan, started).await?
    };
    let Combined {
        code,
        mut message,
        stats,
        attempts,
        differences,
        pass,
        unreadable,
    } = outcome;
    // A file rsync could not read is named, never skipped in silence (rsync goes on, then exits 23).
    if !unreadable.is_empty() {
        message = format!("{}; {message}", unreadable.message());
    }
    let rsync_ok = rsync::exit_is_success(code, config.strict());
    let success = rsync_ok && differences.is_empty();
    let stats = Progress::Stats {
        bytes_sent: stats.bytes_sent,
        bytes_received: stats.bytes_received,
        files_transferred: stats.files_transferred,
        files_total: stats.files_total,
        total_size: stats.total_size,
        files_deleted: stats.files_deleted,
        duration_secs: started.elapsed().as_secs_f64(),
        rsync_exit_code: code,
        attempts,
        success,
        pass,
    };
    super::emit(&stats);
    let outcome = SendOutcome {
        stats,
        rsync_exit_code: code,
        success,
        differences,
    };
    // rsync's failure comes first: a verify that did not finish has no verdict.
    let failure = if rsync_ok {
        outcome.verdict()
    } else {
        Some(format!("rsync exited with code {code}: {message}"))
    };
    if let Some(path) = &config.stats_file {
        stats_file::write(path, &stats_file::text(&outcome.stats, failure.as_deref()));
    }
    if !rsync_ok {
        return Err(Error::Rsync { code, message });
    }
    Ok(outcome)
}

/// One pass over the whole tree (or the user's list): cut into streams when the tree is large enough,
/// else one rsync run.
pub(super) async fn run_whole(config: &SendConfig, plan: &SendPlan, started: Instant) -> Result<Combined> {
    // A verify is one stream: it moves no data, so streams would only add scans and connections, and
    // one list of differences in rsync's order reads better.
    let sharded = match &plan.selection {
        Selection::Whole if config.parallel > 1 && !config.verify => cut_into_streams(config).await?,
        _ => None,
    };
    Ok(match sharded {
        Some((scan, shards)) => {
            let plan = SendPlan {
                sparse: plan.sparse && scan.sparse,
                ..plan.clone()
            };
            run_sharded(config, &plan, &scan, &shards, started).await?
        }
        None => {
            let shared = Shared::new(1);
            let args = rsync::send_args(plan);
            let finished =
                run_with_retries(config, &args, Reporter::new(&shared, 0, started, config)).await?;
            Combined::of(&[finished], None)
        }
    })
}

/// Scans the source and cuts it into streams; `None` when one stream it is (see [`shard::plan`]).
async fn cut_into_streams(config: &SendConfig) -> Result<Option<(shard::Scan, shard::ShardPlan)>> {
    // On a volume of millions of files the walk takes a while before rsync starts: say what it is.
    tracing::info!(
        streams = config.parallel,
        "scanning the source to cut it into streams"
    );
    let source = config.source.clone();
    let excluded = [rsync::EXCLUDED_ROOT_ENTRY, super::manifest::FILE_NAME];
    let scanned = tokio::task::spawn_blocking(move || shard::scan(&source, &excluded))
        .await
        .map_err(|err| Error::Mover(format!("scanning the source: {err}")))??;
    let plan = shard::plan(&scanned, config.parallel, config.parallel_min_bytes);
    tracing::info!(
        entries = scanned.entry_count,
        streams = plan.as_ref().map_or(1, |plan| plan.streams.len()),
        split_dirs = plan.as_ref().map_or(0, |plan| plan.split_dirs.len()),
        "source scanned"
    );
    Ok(plan.map(|plan| (scanned, plan)))
}

/// A parallel send: the split directories level by level, the streams at once, the split directories
/// again (see [`shard`] for why in this order). Stops at the first pass that fails for good.
async fn run_sharded(
    config: &SendConfig,
    base: &SendPlan,
    scan: &shard::Scan,
    shards: &shard::ShardPlan,
    started: Instant,
) -> Result<Combined> {
    let lists = ListDir::create("ferry-send")?;
    let dirs_list = lists.write("split-dirs", &shard::split_dirs_list(&shards.split_dirs))?;
    let streams = shards.streams.len();
    // Each stream gets its share of a bandwidth limit, so the sum keeps to it.
    let bwlimit_kib = base
        .bwlimit_kib
        .map(|limit| limit.div_ceil(streams as u64).max(1));
    let dirs_args = rsync::send_args(&SendPlan {
        selection: Selection::SplitDirs(dirs_list),
        bwlimit_kib,
        ..base.clone()
    });
    // Slots: the passes before and after share one, then one per stream.
    let shared = Shared::new(1 + streams);
    let reporter = |slot| Reporter::new(&shared, slot, started, config);
    let mut finished = vec![run_with_retries(config, &dirs_args, reporter(0)).await?];
    if rsync::exit_is_success(finished[0].code, config.strict()) {
        let mut runs = Vec::with_capacity(streams);
        for (index, units) in shards.streams.iter().enumerate() {
            let list = lists.write(&format!("stream-{index}"), &shard::files_from_list(units))?;
            let args = rsync::send_args(&SendPlan {
                selection: Selection::Units(list),
                bwlimit_kib,
                ..base.clone()
            });
            runs.push(args);
        }
        let results = futures::future::join_all(
            runs.iter()
                .enumerate()
                .map(|(index, args)| run_with_retries(config, args, reporter(1 + index))),
        )
        .await;
        for result in results {
            finished.push(result?);
        }
        if finished
            .iter()
            .all(|run| rsync::exit_is_success(run.code, config.strict()))
        {
            finished.push(run_with_retries(config, &dirs_args, reporter(0)).await?);
        }
    }
    Ok(Combined::of(&finished, Some((scan.entry_count, scan.total_size))))
}

/// The runs of one send folded into what its stats line reports.
pub(super) struct Combined {
    /// The first failing run's exit code, else 24 when a run tolerated vanished files, else 0.
    pub(super) code: i32,
    message: String,
    stats: Stats,
    /// The most attempts any run took.
    attempts: u32,
    /// What the runs of a verify found, in run order.
    differences: Differences,
    /// How the pass went about it, when it decided (`delta pass: …`, or `full pass: <why>`).
    pub(super) pass: Option<String>,
    /// What the runs could not read.
    pub(super) unreadable: Unreadable,
}

impl Combined {
    /// Sums the runs' transfer counts. The tree's entry count and size come from the scan when there
    /// was one (each run only sees its part), else from the single run.
    pub(super) fn of(runs: &[Finished], scan_totals: Option<(u64, u64)>) -> Self {
        let failed = runs
            .iter()
            .find(|run| run.code != 0 && run.code != rsync::EXIT_VANISHED);
        let (code, message) = match failed.or_else(|| runs.iter().find(|run| run.code != 0)) {
            Some(run) => (run.code, run.message.clone()),
            None => (0, String::new()),
        };
        let mut stats = Stats::default();
        let mut differences = Differences::default();
        let mut unreadable = Unreadable::default();
        for run in runs {
            differences.merge(&run.differences);
            unreadable.merge(&run.unreadable);
            stats.bytes_sent += run.stats.bytes_sent;
            stats.bytes_received += run.stats.bytes_received;
            stats.files_transferred += run.stats.files_transferred;
            stats.files_deleted += run.stats.files_deleted;
            stats.files_total += run.stats.files_total;
            stats.total_size += run.stats.total_size;
        }
        if let Some((entries, size)) = scan_totals {
            stats.files_total = entries;
            stats.total_size = size;
        }
        Self {
            code,
            message,
            stats,
            attempts: runs.iter().map(|run| run.attempts).max().unwrap_or(1),
            differences,
            pass: None,
            unreadable,
        }
    }
}

impl Combined {
    /// Folds runs that followed a full pass (the root's attributes) into it: their failure, if any,
    /// unless the full pass already failed; their attempts.
    pub(super) fn then(mut self, runs: &[Finished]) -> Self {
        let hard = |code: i32| code != 0 && code != rsync::EXIT_VANISHED;
        if !hard(self.code)
            && let Some(run) = runs.iter().find(|run| hard(run.code))
        {
            self.code = run.code;
            self.message = run.message.clone();
        }
        self.attempts = runs.iter().map(|run| run.attempts).fold(self.attempts, u32::max);
        for run in runs {
            self.unreadable.merge(&run.unreadable);
        }
        self
    }
}

/// A private folder for the `--files-from` lists of a parallel send (and a delta pass's manifests),
/// removed when dropped.
pub(super) type ListDir = super::scratch::ScratchDir;

/// How one rsync run ended, after its retries.
pub(super) struct Finished {
    pub(super) code: i32,
    pub(super) message: String,
    stats: Stats,
    attempts: u32,
    /// What the last attempt found (a verify; a failed attempt's partial list is dropped).
    differences: Differences,
    /// What the last attempt could not read.
    unreadable: Unreadable,
}

/// Runs rsync with `args` until it succeeds, fails for good, or runs out of retries (exponential
/// backoff, a `retry` record before each new attempt).
pub(super) async fn run_with_retries(
    config: &SendConfig,
    args: &[OsString],
    reporter: Reporter<'_>,
) -> Result<Finished> {
    let mut attempt = 1;
    loop {
        let run = run_once(config, args, attempt, &reporter).await?;
        let success = rsync::exit_is_success(run.code, config.strict());
        if !success && rsync::exit_is_retryable(run.code) && attempt <= config.retries {
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
        return Ok(Finished {
            code: run.code,
            message: run.message,
            stats: run.stats,
            attempts: attempt,
            differences: run.differences,
            unreadable: run.unreadable,
        });
    }
}

/// The progress of one send: every run's latest line, and when the sum was last printed.
pub(super) struct Shared {
    board: Board,
    last_emit: Option<Instant>,
}

impl Shared {
    pub(super) fn new(runs: usize) -> Mutex<Self> {
        Mutex::new(Self {
            board: Board::new(runs),
            last_emit: None,
        })
    }
}

/// Where one run reports its progress lines: its slot on the send's [`Board`], whose sum is printed at
/// most every `progress_interval`.
pub(super) struct Reporter<'a> {
    shared: &'a Mutex<Shared>,
    slot: usize,
    started: Instant,
    interval: Duration,
}

impl<'a> Reporter<'a> {
    pub(super) fn new(shared: &'a Mutex<Shared>, slot: usize, started: Instant, config: &SendConfig) -> Self {
        Self {
            shared,
            slot,
            started,
            interval: config.progress_interval,
        }
    }

    fn report(&self, line: ProgressLine, attempt: u32, force: bool) {
        let Ok(mut shared) = self.shared.lock() else {
            return;
        };
        shared.board.update(self.slot, line, attempt);
        if !force && shared.last_emit.is_some_and(|at| at.elapsed() < self.interval) {
            return;
        }
        shared.last_emit = Some(Instant::now());
        super::emit(&shared.board.total(self.started.elapsed().as_secs_f64()));
    }
}

/// The result of one rsync run.
struct RunResult {
    code: i32,
    message: String,
    stats: Stats,
    differences: Differences,
    unreadable: Unreadable,
}

async fn run_once(
    config: &SendConfig,
    args: &[OsString],
    attempt: u32,
    reporter: &Reporter<'_>,
) -> Result<RunResult> {
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
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Mover("rsync stdio not captured".into()));
    };
    // rsync names files by their absolute, resolved path: strip the same spelling of the root.
    let source = std::fs::canonicalize(&config.source)
        .unwrap_or_else(|_| config.source.clone())
        .to_string_lossy()
        .into_owned();
    let stderr_task = tokio::spawn(async move {
        let mut tail: Vec<String> = Vec::new();
        let mut unreadable = Unreadable::default();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            unreadable.absorb(&line, &source);
            tail.push(line);
            if tail.len() > STDERR_TAIL {
                tail.remove(0);
            }
        }
        (tail, unreadable)
    });

    let mut stats = Stats::default();
    let mut differences = Differences::default();
    let mut pending = Vec::new();
    let mut latest: Option<ProgressLine> = None;
    let mut chunks = super::paced::read(stdout, OUTPUT_PACE)?;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(Error::io("reading rsync output"))?;
        pending.extend_from_slice(&chunk);
        // Lines are taken by position and the buffer cut once per read: cutting it per line moves the
        // rest of a 64 KiB read each time (quadratic in the lines of one read, ~900 on small files).
        let mut start = 0;
        while let Some(length) = pending[start..].iter().position(|b| *b == b'\r' || *b == b'\n') {
            let text = String::from_utf8_lossy(&pending[start..start + length]);
            start += length + 1;
            if let Some(path) = config.verify.then(|| verify::parse_item_line(&text)).flatten() {
                differences.record(path);
            } else if let Some(parsed) = progress::parse_progress_line(&text) {
                latest = Some(parsed);
                reporter.report(parsed, attempt, false);
            } else {
                stats.absorb(&text);
            }
        }
        pending.drain(..start);
    }
    if let Some(parsed) = latest {
        reporter.report(parsed, attempt, true);
    }
    let status = child.wait().await.map_err(Error::io("waiting for rsync"))?;
    let (tail, unreadable) = stderr_task.await.unwrap_or_default();
    // Killed by a signal: report it like a shell would, so it is never mistaken for success.
    let code = status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    let message = if tail.is_empty() {
        format!("rsync exited with {status}")
    } else {
        tail.join("; ")
    };
    Ok(RunResult {
        code,
        message,
        stats,
        differences,
        unreadable,
    })
}
