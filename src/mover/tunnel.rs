//! The mutual-TLS byte pipe that replaces stunnel. The sender side ([`dial`], [`run_stdio`]) is what
//! rsync starts as its remote shell (`ferry mover tunnel`): it connects, optionally through an HTTP
//! CONNECT proxy, and copies its stdin/stdout over TLS. The receiver side uses [`pipe`] to join an
//! accepted TLS stream to the stdio of the rsync daemon it started.

use std::sync::Arc;

use futures::FutureExt as _;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::proxy::{self, ProxyUrl};
use super::read_ahead::ReadAhead;
use crate::{Error, Result};

/// Big enough that one read usually carries a whole rsync multiplexed chunk or more.
const BUFFER_SIZE: usize = 256 * 1024;

/// Where and how the sender connects.
#[derive(Debug, Clone)]
pub(crate) struct DialTarget {
    /// `host:port` of the receiver.
    pub address: String,
    /// The name the receiver's certificate must carry (defaults to the host part of `address`); the
    /// host part of `address` goes out as SNI.
    pub server_name: String,
    /// Optional HTTP CONNECT proxy.
    pub proxy: Option<ProxyUrl>,
}

/// The host part of `host:port` or `[v6]:port`.
pub(crate) fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The name the connection opens with: the dialled host (sent as SNI when it is a DNS name, e.g. a
/// Route's host, which an OpenShift passthrough router routes by; an IP sends none). The certificate
/// is checked against `target.server_name` by the config's verifier, not against this.
fn sni(target: &DialTarget) -> ServerName<'static> {
    ServerName::try_from(host_of(&target.address).to_string())
        .or_else(|_| ServerName::try_from(target.server_name.clone()))
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
}

/// Connects to the receiver and completes the mutual-TLS handshake.
pub(crate) async fn dial(
    target: &DialTarget,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<ReadAhead<TcpStream>>> {
    let tcp = match &target.proxy {
        Some(proxy) => proxy::connect(proxy, &target.address).await?,
        None => TcpStream::connect(&target.address)
            .await
            .map_err(Error::io(format!("connecting to receiver {}", target.address)))?,
    };
    tcp.set_nodelay(true).map_err(Error::io("setting TCP_NODELAY"))?;
    TlsConnector::from(config)
        .connect(sni(target), ReadAhead::new(tcp))
        .await
        .map_err(Error::io(format!(
            "TLS handshake with receiver {}",
            target.address
        )))
}

/// Runs the remote-shell side for rsync: connect, then copy stdin to the receiver and the receiver to
/// stdout until both directions end.
pub(crate) async fn run_stdio(target: &DialTarget, config: Arc<rustls::ClientConfig>) -> Result<()> {
    let stream = dial(target, config).await?;
    pipe(
        stream,
        stdin_reader(),
        stdout_writer(),
        None,
        FinishWhen::RemoteEnds,
    )
    .await
}

/// What stdio is connected to: rsync hands its remote shell a socketpair (or pipes).
enum StdioKind {
    Socket(std::os::fd::OwnedFd),
    Pipe(std::os::fd::OwnedFd),
    Other,
}

fn stdio_kind(fd: std::os::fd::BorrowedFd<'_>) -> StdioKind {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(file) = fd.try_clone_to_owned().map(std::fs::File::from) else {
        return StdioKind::Other;
    };
    let Ok(file_type) = file.metadata().map(|meta| meta.file_type()) else {
        return StdioKind::Other;
    };
    let owned = std::os::fd::OwnedFd::from(file);
    if file_type.is_socket() {
        StdioKind::Socket(owned)
    } else if file_type.is_fifo() {
        StdioKind::Pipe(owned)
    } else {
        StdioKind::Other
    }
}

fn nonblocking_socket(fd: std::os::fd::OwnedFd) -> Option<tokio::net::UnixStream> {
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(socket).ok()
}

/// Stdin as an event-driven reader when it is a socket or pipe (tokio's `Stdin` goes through a blocking
/// thread per read, which costs throughput), else tokio's `Stdin`.
fn stdin_reader() -> Box<dyn AsyncRead + Unpin + Send> {
    use std::os::fd::AsFd as _;
    match stdio_kind(std::io::stdin().as_fd()) {
        StdioKind::Socket(fd) => match nonblocking_socket(fd) {
            Some(socket) => Box::new(socket),
            None => Box::new(tokio::io::stdin()),
        },
        StdioKind::Pipe(fd) => match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(pipe) => Box::new(pipe),
            Err(_) => Box::new(tokio::io::stdin()),
        },
        StdioKind::Other => Box::new(tokio::io::stdin()),
    }
}

/// Stdout counterpart of [`stdin_reader`]; shutting a socket down tells rsync the stream ended.
fn stdout_writer() -> Box<dyn AsyncWrite + Unpin + Send> {
    use std::os::fd::AsFd as _;
    match stdio_kind(std::io::stdout().as_fd()) {
        StdioKind::Socket(fd) => match nonblocking_socket(fd) {
            Some(socket) => Box::new(socket),
            None => Box::new(tokio::io::stdout()),
        },
        StdioKind::Pipe(fd) => match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            Ok(pipe) => Box::new(pipe),
            Err(_) => Box::new(tokio::io::stdout()),
        },
        StdioKind::Other => Box::new(tokio::io::stdout()),
    }
}

/// Entry point of the hidden `ferry mover tunnel`: builds the target from the flags `send` passed down
/// through the environment and pipes stdio. Nothing may be printed on stdout: it is rsync's stream.
pub(crate) async fn run_from_env(
    connect: String,
    server_name: Option<String>,
    certs_dir: std::path::PathBuf,
    proxy: Option<String>,
) -> Result<()> {
    let server_name = server_name.unwrap_or_else(|| host_of(&connect).to_string());
    let config = super::certs::client_config(&certs_dir, &server_name)?;
    let proxy = proxy.as_deref().map(ProxyUrl::parse).transpose()?;
    run_stdio(
        &DialTarget {
            address: connect,
            server_name,
            proxy,
        },
        config,
    )
    .await
}

/// Test hook: cut one connection once more than `after` bytes came from the remote; `spent`, shared by
/// all connections, makes it fire once per process (on the first connection that carries that much).
#[derive(Debug, Clone)]
pub(crate) struct CutHook {
    pub after: u64,
    pub spent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CutHook {
    fn fires_at(&self, copied: u64) -> bool {
        copied > self.after && !self.spent.swap(true, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Which direction's end finishes a [`pipe`]: the one that means "the rsync session is over".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinishWhen {
    /// The remote stopped sending (tunnel side: the daemon has exited).
    RemoteEnds,
    /// The local process stopped writing (receiver side: the daemon has exited).
    LocalEnds,
}

/// Joins a bidirectional stream to a (reader, writer) pair: `remote` to `local_out`, `local_in` to
/// `remote`. Each direction half-closes (drops its writer) when its source ends; the pipe returns when
/// the `finish` direction ends or either fails. `cut` (tests only) aborts once that many bytes came
/// from `remote`, simulating a connection lost mid-transfer.
pub(crate) async fn pipe<S, R, W>(
    remote: S,
    local_in: R,
    local_out: W,
    cut: Option<CutHook>,
    finish: FinishWhen,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (remote_read, remote_write) = tokio::io::split(remote);
    let inbound = copy_then_close(remote_read, local_out, cut);
    let outbound = copy_then_close(local_in, remote_write, None);
    tokio::pin!(inbound, outbound);
    let (mut inbound_done, mut outbound_done) = (false, false);
    while !(inbound_done && outbound_done) {
        // An error on either side makes the connection unusable: stop both.
        tokio::select! {
            result = &mut inbound, if !inbound_done => {
                result?;
                inbound_done = true;
                if finish == FinishWhen::RemoteEnds {
                    break;
                }
            }
            result = &mut outbound, if !outbound_done => {
                result?;
                outbound_done = true;
                if finish == FinishWhen::LocalEnds {
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn copy_then_close<R, W>(mut from: R, mut to: W, cut: Option<CutHook>) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut copied: u64 = 0;
    loop {
        // Flush only when the source has nothing more right now: a writer (rustls) may still hold
        // bytes it could not hand to a full socket, and the peer may be waiting for them before it
        // answers. Flushing after every chunk instead costs throughput.
        let next = match from.read(&mut buffer).now_or_never() {
            Some(ready) => ready,
            None => {
                to.flush().await.map_err(Error::io("flushing the tunnel"))?;
                from.read(&mut buffer).await
            }
        };
        let read = match next {
            Ok(0) => break,
            Ok(read) => read,
            // A peer that closes without TLS close_notify still ended the stream.
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(Error::io("reading from the tunnel")(err)),
        };
        copied += read as u64;
        if cut.as_ref().is_some_and(|hook| hook.fires_at(copied)) {
            return Err(Error::Mover(format!(
                "test hook: connection cut after {copied} bytes"
            )));
        }
        to.write_all(&buffer[..read])
            .await
            .map_err(Error::io("writing to the tunnel"))?;
    }
    // Ending our half lets the other end see EOF; an already closed peer is not an error here.
    let _closed = to.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_taken_from_the_address() {
        assert_eq!(host_of("receiver.ns.svc:7443"), "receiver.ns.svc");
        assert_eq!(host_of("[::1]:7443"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
    }

    #[tokio::test]
    async fn pipe_copies_both_ways_and_cut_aborts() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (local_in, mut feed) = tokio::io::duplex(1024);
        let (mut drain, local_out) = tokio::io::duplex(1024);
        let task = tokio::spawn(pipe(near, local_in, local_out, None, FinishWhen::RemoteEnds));
        feed.write_all(b"to remote").await.unwrap();
        drop(feed);
        let mut sent = String::new();
        far.read_to_string(&mut sent).await.unwrap();
        assert_eq!(sent, "to remote");
        far.write_all(b"from remote").await.unwrap();
        far.shutdown().await.unwrap();
        let mut got = String::new();
        drain.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "from remote");
        task.await.unwrap().unwrap();

        let (near, mut far) = tokio::io::duplex(1024);
        let (local_in, _feed) = tokio::io::duplex(1024);
        let (_drain, local_out) = tokio::io::duplex(1024);
        let cut = CutHook {
            after: 4,
            spent: Default::default(),
        };
        let task = tokio::spawn(pipe(near, local_in, local_out, Some(cut), FinishWhen::RemoteEnds));
        far.write_all(b"more than four").await.unwrap();
        assert!(task.await.unwrap().is_err());
    }
}
