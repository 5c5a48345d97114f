//! `ferry mover receive|send|certs` (and the hidden `tunnel` that rsync starts): the data plane as run in
//! mover pods. Flags map one to one onto [`ferry::mover`] configs; every flag also reads an environment
//! variable so a pod spec can set them without a shell.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::mover;

/// Flags of `ferry mover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: MoverCommand,
}

#[derive(Debug, clap::Subcommand)]
enum MoverCommand {
    /// Target side: accept the sender over mutual TLS and let rsync write under the volume root.
    Receive(Box<ReceiveArgs>),
    /// Source side: mirror the volume root to the receiver with rsync over the TLS tunnel.
    Send(Box<SendArgs>),
    /// Issue a per-migration CA and certificates into <out>/server and <out>/client (for tests and
    /// manual runs; the controller stores the same material in Secrets).
    Certs(CertsArgs),
    /// rsync's remote shell: pipe stdin/stdout over mutual TLS to the receiver (set up by `send`).
    #[command(hide = true)]
    Tunnel(TunnelArgs),
}

#[derive(Debug, clap::Args)]
struct ReceiveArgs {
    /// Address to listen on; port 0 picks a free port (printed in the `listening` line).
    #[arg(long, env = "FERRY_MOVER_LISTEN", default_value = "0.0.0.0:7443")]
    listen: String,
    /// The volume root: everything received is written below it.
    #[arg(long, env = "FERRY_MOVER_ROOT")]
    root: PathBuf,
    /// Folder holding ca.crt, tls.crt, tls.key (a mounted Secret).
    #[arg(long, env = "FERRY_MOVER_CERTS_DIR")]
    certs_dir: PathBuf,
    /// Groups the rsync daemon holds when running as root (comma-separated gids).
    #[arg(long, env = "FERRY_MOVER_SUPPLEMENTAL_GROUPS", value_delimiter = ',')]
    supplemental_groups: Vec<u32>,
    /// Connections served at once.
    #[arg(long, env = "FERRY_MOVER_MAX_CONNECTIONS", default_value_t = 8)]
    max_connections: usize,
    /// The rsync program.
    #[arg(long, env = "FERRY_MOVER_RSYNC", default_value = "rsync")]
    rsync: PathBuf,
    /// Test hook: cut the first connection that carries more than this many bytes from the sender.
    #[arg(long, env = "FERRY_MOVER_TEST_CUT_AFTER_BYTES", hide = true)]
    test_cut_after_bytes: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// The receiver's host:port.
    #[arg(long, env = mover::send::ENV_CONNECT)]
    connect: String,
    /// Name expected in the receiver's certificate (default: the host of --connect).
    #[arg(long, env = mover::send::ENV_SERVER_NAME)]
    server_name: Option<String>,
    /// Folder holding ca.crt, tls.crt, tls.key (a mounted Secret).
    #[arg(long, env = mover::send::ENV_CERTS_DIR)]
    certs_dir: PathBuf,
    /// The volume root to mirror.
    #[arg(long, env = "FERRY_MOVER_SOURCE")]
    source: PathBuf,
    /// HTTP CONNECT proxy, http://user:pass@host:port.
    #[arg(long, env = mover::send::ENV_PROXY, hide_env_values = true)]
    proxy: Option<String>,
    /// Final sync: files vanishing during the transfer (rsync exit 24) fail the run.
    #[arg(long = "final", env = "FERRY_MOVER_FINAL")]
    final_sync: bool,
    /// Compare only, changing nothing: exit 1 naming the paths that differ (one stream, checksums).
    #[arg(long, env = "FERRY_MOVER_VERIFY")]
    verify: bool,
    /// Sync comparing checksums of every file instead of size and mtime (slow).
    #[arg(long, env = "FERRY_MOVER_CHECKSUM")]
    checksum: bool,
    /// NUL-separated list of paths relative to --source to send instead of the whole tree.
    #[arg(long, env = "FERRY_MOVER_FILES_FROM")]
    files_from: Option<PathBuf>,
    /// Bandwidth limit in KiB/s (for all streams together).
    #[arg(long, env = "FERRY_MOVER_BWLIMIT")]
    bwlimit: Option<u64>,
    /// rsync streams over disjoint parts of the tree; 0: one per CPU this process may use, at most 4.
    #[arg(long, env = "FERRY_MOVER_PARALLEL", default_value_t = 0)]
    parallel: usize,
    /// Trees weighing less (bytes plus 32 KiB per entry) are sent in one stream.
    #[arg(long, env = "FERRY_MOVER_PARALLEL_MIN_BYTES", default_value_t = mover::send::PARALLEL_MIN_BYTES)]
    parallel_min_bytes: u64,
    /// Retries after connection failures (exponential backoff).
    #[arg(long, env = "FERRY_MOVER_RETRIES", default_value_t = 5)]
    retries: u32,
    /// First retry delay in milliseconds; doubles each time, at most 60 s.
    #[arg(long, env = "FERRY_MOVER_RETRY_DELAY_MS", default_value_t = 2000)]
    retry_delay_ms: u64,
    /// Do not set directory mtimes: auto (when not root), always, never.
    #[arg(long, env = "FERRY_MOVER_OMIT_DIR_TIMES", default_value = "auto")]
    omit_dir_times: OmitDirTimes,
    /// Groups needed to read the volume (comma-separated gids; checked, never set).
    #[arg(long, env = "FERRY_MOVER_SUPPLEMENTAL_GROUPS", value_delimiter = ',')]
    supplemental_groups: Vec<u32>,
    /// Minimum milliseconds between progress lines.
    #[arg(long, env = "FERRY_MOVER_PROGRESS_INTERVAL_MS", default_value_t = 500)]
    progress_interval_ms: u64,
    /// Seconds without I/O before rsync gives up (and the run is retried).
    #[arg(long, env = "FERRY_MOVER_IO_TIMEOUT", default_value_t = 300)]
    io_timeout: u64,
    /// The rsync program.
    #[arg(long, env = "FERRY_MOVER_RSYNC", default_value = "rsync")]
    rsync: PathBuf,
    /// Also write the final stats record here (in a pod: the termination-message file).
    #[arg(long, env = "FERRY_MOVER_STATS_FILE")]
    stats_file: Option<PathBuf>,
    /// Keep a manifest on the target under this key (the volume pair) and send only what changed.
    #[arg(long, env = "FERRY_MOVER_MANIFEST_KEY")]
    manifest_key: Option<String>,
    /// Compress data on the wire (zstd through rsync), for slow links.
    #[arg(long, env = "FERRY_MOVER_COMPRESS")]
    compress: bool,
    /// Wait, before sending anything, until this file holds text (a cutover's sender started before the
    /// source is quiesced; docs/mover.md, "Held senders").
    #[arg(long, env = "FERRY_MOVER_HOLD_FILE")]
    hold_file: Option<PathBuf>,
    /// Seconds to wait for --hold-file before giving up, having sent nothing.
    #[arg(long, env = "FERRY_MOVER_HOLD_TIMEOUT", default_value_t = 6 * 3600)]
    hold_timeout: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OmitDirTimes {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
struct CertsArgs {
    /// Output folder; gets server/ and client/ with ca.crt, tls.crt, tls.key.
    #[arg(long)]
    out: PathBuf,
    /// Migration identifier written into the certificates' names.
    #[arg(long, default_value = "manual")]
    migration_uid: String,
    /// DNS names or IPs the receiver is reached at (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', required = true)]
    server_name: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct TunnelArgs {
    #[arg(long, env = mover::send::ENV_CONNECT)]
    connect: String,
    #[arg(long, env = mover::send::ENV_SERVER_NAME)]
    server_name: Option<String>,
    #[arg(long, env = mover::send::ENV_CERTS_DIR)]
    certs_dir: PathBuf,
    #[arg(long, env = mover::send::ENV_PROXY, hide_env_values = true)]
    proxy: Option<String>,
    /// What rsync asks the remote shell to run; ignored (the receiver decides what runs).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    ignored: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { command } = args;
    match command {
        MoverCommand::Receive(args) => receive(*args).await,
        MoverCommand::Send(args) => send(*args).await,
        MoverCommand::Certs(args) => certs(args),
        MoverCommand::Tunnel(args) => tunnel(args).await,
    }
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<ExitCode> {
    let ReceiveArgs {
        listen,
        root,
        certs_dir,
        supplemental_groups,
        max_connections,
        rsync,
        test_cut_after_bytes,
    } = args;
    super::init_logging(true);
    let config = mover::ReceiveConfig {
        listen,
        root,
        certs_dir,
        rsync,
        supplemental_groups,
        max_connections,
        cut_first_connection_after: test_cut_after_bytes,
    };
    mover::receive::run(config).await?;
    Ok(ExitCode::SUCCESS)
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let SendArgs {
        connect,
        server_name,
        certs_dir,
        source,
        proxy,
        final_sync,
        verify,
        checksum,
        files_from,
        bwlimit,
        parallel,
        parallel_min_bytes,
        retries,
        retry_delay_ms,
        omit_dir_times,
        supplemental_groups,
        progress_interval_ms,
        io_timeout,
        rsync,
        stats_file,
        manifest_key,
        compress,
        hold_file,
        hold_timeout,
    } = args;
    super::init_logging(true);
    let config = mover::SendConfig {
        connect,
        server_name,
        certs_dir,
        source,
        proxy,
        final_sync,
        verify,
        checksum,
        files_from,
        bwlimit_kib: bwlimit,
        parallel: if parallel == 0 {
            mover::send::default_parallel()
        } else {
            parallel
        },
        parallel_min_bytes,
        retries,
        retry_delay: Duration::from_millis(retry_delay_ms),
        omit_dir_times: match omit_dir_times {
            OmitDirTimes::Auto => None,
            OmitDirTimes::Always => Some(true),
            OmitDirTimes::Never => Some(false),
        },
        rsync,
        ferry_exe: std::env::current_exe().context("locating the ferry executable")?,
        supplemental_groups,
        progress_interval: Duration::from_millis(progress_interval_ms),
        io_timeout_secs: io_timeout,
        stats_file,
        manifest_key: manifest_key.filter(|key| !key.is_empty()),
        compress,
        hold: hold_file.map(|file| mover::hold::Hold {
            file,
            timeout: Duration::from_secs(hold_timeout),
        }),
    };
    // SIGTERM (the pod deleted) or SIGINT: drop the run, which removes its scratch folder and kills
    // rsync (kill on drop), and exit as a shell reports a signal.
    let (mut terminate, mut interrupt) = (
        signal(tokio::signal::unix::SignalKind::terminate())?,
        signal(tokio::signal::unix::SignalKind::interrupt())?,
    );
    let result = tokio::select! {
        result = mover::send::run(config) => result,
        _ = terminate.recv() => return stopped(15),
        _ = interrupt.recv() => return stopped(2),
    };
    match result {
        Ok(outcome) if outcome.success => Ok(ExitCode::SUCCESS),
        // A verify that found differences: rsync succeeded, the trees do not agree.
        Ok(outcome) => {
            let verdict = outcome.verdict();
            eprintln!("{}", verdict.as_deref().unwrap_or("verification failed"));
            Ok(ExitCode::from(1))
        }
        // rsync's own code is the most precise exit status there is; keep it.
        Err(crate::Error::Rsync { code, message }) => {
            eprintln!("ferry: rsync exited with code {code}: {message}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)))
        }
        Err(err) => Err(err.into()),
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).context("installing a signal handler")
}

fn stopped(signal: u8) -> anyhow::Result<ExitCode> {
    eprintln!("ferry: stopped by signal {signal} before the transfer ended");
    Ok(ExitCode::from(128 + signal))
}

fn certs(args: CertsArgs) -> anyhow::Result<ExitCode> {
    let CertsArgs {
        out,
        migration_uid,
        server_name,
    } = args;
    let certs = mover::issue(&migration_uid, &server_name)?;
    certs.write_server_dir(&out.join("server"))?;
    certs.write_client_dir(&out.join("client"))?;
    Ok(ExitCode::SUCCESS)
}

async fn tunnel(args: TunnelArgs) -> anyhow::Result<ExitCode> {
    let TunnelArgs {
        connect,
        server_name,
        certs_dir,
        proxy,
        ignored,
    } = args;
    drop(ignored);
    let result = mover::tunnel::run_from_env(connect, server_name, certs_dir, proxy).await;
    // Exit at once: closing stdout is how rsync learns the session ended, and the runtime would
    // otherwise wait for its blocked stdin reader. stdout carries rsync's stream, so errors go to stderr.
    match result {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("ferry mover tunnel: {err}");
            std::process::exit(1)
        }
    }
}
