//! `ferry mover receive`: the target side. Listens for mutual-TLS connections from the migration's
//! sender and, per connection, starts one fixed command, `rsync --server --daemon` with a generated
//! config whose only module is the volume root, piping the TLS stream to its stdio (rsync's "daemon over
//! remote shell" mode). The client chooses nothing that is executed: rsync's daemon parses its options
//! under the module's restrictions and writes only below the module path.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::signal::unix::SignalKind;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::progress::Progress;
use super::rsync::{self, DaemonPlan};
use super::tunnel::CutHook;
use crate::{Error, Result};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to save partial files and exit once its connection is gone.
const DAEMON_EXIT_GRACE: Duration = Duration::from_secs(30);

/// Everything the receiver needs.
#[derive(Debug, Clone)]
pub struct ReceiveConfig {
    /// `ip:port` to listen on (port 0 picks a free one, reported on stdout).
    pub listen: String,
    /// The volume root, absolute: everything written lands below it.
    pub root: PathBuf,
    /// Folder with `ca.crt`, `tls.crt`, `tls.key`.
    pub certs_dir: PathBuf,
    /// The rsync program.
    pub rsync: PathBuf,
    /// Groups rsync's daemon holds when the receiver runs as root (see docs/mover.md).
    pub supplemental_groups: Vec<u32>,
    /// Connections served at once; more wait.
    pub max_connections: usize,
    /// Test hook: cut the first connection that carries more than this many bytes from the sender.
    pub cut_first_connection_after: Option<u64>,
}

/// Runs the receiver until the process gets SIGTERM or SIGINT (then returns `Ok`). Prints a
/// `listening` record first. Leaves no file behind, however it ends.
pub async fn run(config: ReceiveConfig) -> Result<()> {
    let ReceiveConfig {
        listen,
        root,
        certs_dir,
        rsync,
        supplemental_groups,
        max_connections,
        cut_first_connection_after,
    } = config;
    let tls = TlsAcceptor::from(super::certs::server_config(&certs_dir)?);
    let root = std::fs::canonicalize(&root).map_err(Error::io(format!("volume root {}", root.display())))?;
    let as_root = super::running_as_root();
    let conf_text = rsync::daemon_config(&DaemonPlan {
        root: root.clone(),
        as_root,
        supplemental_groups,
    })?;
    // The config lives outside the volume so the sender can never see or change it, and on no disk:
    // each daemon reads it from a pipe this process fills (see `serve`), so no way of ending, SIGKILL
    // included, can leave a file behind (every receiver used to leave one in /tmp).
    let conf_text: Arc<str> = Arc::from(conf_text);
    // Before the `listening` record: whoever waits for it may stop the receiver at once.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let listener = TcpListener::bind(&listen)
        .await
        .map_err(Error::io(format!("listening on {listen}")))?;
    let address = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    super::emit(&Progress::Listening {
        address: address.to_string(),
    });
    tracing::info!(%address, root = %root.display(), as_root, "mover receiver listening");

    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let cut = cut_first_connection_after.map(|after| CutHook {
        after,
        spent: Arc::new(AtomicBool::new(false)),
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let permit = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::Mover("closed".into()))?;
        let tls = tls.clone();
        let rsync = rsync.clone();
        let conf_text = Arc::clone(&conf_text);
        let cut = cut.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match serve(tcp, tls, &rsync, &conf_text, cut).await {
                Ok(()) => tracing::info!(%peer, "connection done"),
                Err(err) => tracing::warn!(%peer, %err, "connection failed"),
            }
        });
    }
    // Stopped (the pod is deleted): connections still running end with the runtime, their daemons
    // killed on drop.
    tracing::info!("mover receiver stopping");
    Ok(())
}

/// A handler for `kind`, so the signal unwinds [`run`] instead of killing the process.
fn signal(kind: SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).map_err(Error::io("installing a signal handler"))
}

async fn serve(
    tcp: tokio::net::TcpStream,
    tls: TlsAcceptor,
    rsync: &std::path::Path,
    conf_text: &str,
    cut: Option<CutHook>,
) -> Result<()> {
    tcp.set_nodelay(true).map_err(Error::io("setting TCP_NODELAY"))?;
    // A client without a certificate from the migration CA fails here, before any process starts.
    let stream = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tls.accept(super::read_ahead::ReadAhead::new(tcp)),
    )
    .await
    .map_err(|_| Error::Mover("TLS handshake timed out".into()))?
    .map_err(Error::io("TLS handshake"))?;
    // The daemon's config, through a pipe it opens as /proc/<this pid>/fd/<n> (the descriptor itself
    // is close-on-exec): the text fits the pipe's buffer, so the write never waits for the reader.
    let (conf_pipe, mut conf_writer) = std::io::pipe().map_err(Error::io("creating the config pipe"))?;
    std::io::Write::write_all(&mut conf_writer, conf_text.as_bytes())
        .map_err(Error::io("writing the rsync daemon config"))?;
    drop(conf_writer);
    let conf_arg = format!(
        "--config=/proc/{}/fd/{}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&conf_pipe)
    );
    let mut child = Command::new(rsync)
        .arg("--server")
        .arg("--daemon")
        .arg(conf_arg)
        .arg(".")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io(format!("starting {}", rsync.display())))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Mover("rsync stdio not captured".into()));
    };
    let log = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "ferry::mover::rsyncd", "{line}");
        }
    });
    let piped = super::tunnel::pipe(stream, stdout, stdin, cut, super::tunnel::FinishWhen::LocalEnds).await;
    // The pipes are closed now. On a lost connection rsync sees EOF and keeps the partial file in the
    // partial dir for the retry (a SIGKILL would lose it), so give it time to exit on its own first.
    let status = match tokio::time::timeout(DAEMON_EXIT_GRACE, child.wait()).await {
        Ok(waited) => waited.map_err(Error::io("waiting for rsync"))?,
        Err(_elapsed) => {
            let _killed = child.start_kill();
            child.wait().await.map_err(Error::io("waiting for rsync"))?
        }
    };
    // Held until the daemon has exited: it opens the pipe when it starts.
    drop(conf_pipe);
    let _logged = log.await;
    piped?;
    tracing::info!(code = status.code(), "rsync daemon exited");
    Ok(())
}
