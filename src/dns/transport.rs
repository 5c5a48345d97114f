//! Sending one DNS message to one server: UDP first, TCP when the request is too big for UDP or the
//! answer comes back truncated (RFC 7766). TSIG-signed requests are signed afresh for every attempt
//! and signed responses are verified. Timeouts and refused connections become `DnsUnreachable`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{TSigVerifier, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::{Error, Result};

/// Requests larger than this go straight to TCP (the classic UDP limit; servers may not accept more).
const UDP_REQUEST_LIMIT: usize = 512;
/// UDP sends before giving up (a lost datagram is retransmitted, RFC 1035 §4.2.1).
const UDP_ATTEMPTS: u32 = 3;

/// One server and how long to wait for it.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    /// The server as the user wrote it (for messages).
    pub(crate) label: String,
    /// The resolved address.
    pub(crate) addr: SocketAddr,
    /// Total time allowed for one exchange.
    pub(crate) timeout: Duration,
}

impl Server {
    /// Resolves `host`, `host:port`, `ip`, `ip:port` or `[ipv6]:port` (port 53 by default).
    pub(crate) async fn resolve(server: &str, timeout: Duration) -> Result<Self> {
        let with_port = if server.parse::<std::net::IpAddr>().is_ok() {
            SocketAddr::new(server.parse().expect("checked above"), 53).to_string()
        } else if server
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            server.to_string()
        } else {
            format!("{server}:53")
        };
        let unreachable = |detail: String| Error::DnsUnreachable {
            server: server.into(),
            detail,
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|err| unreachable(format!("cannot resolve the server address: {err}")))?
            .next()
            .ok_or_else(|| unreachable("the server name has no address".into()))?;
        Ok(Self {
            label: server.to_string(),
            addr,
            timeout,
        })
    }

    /// Sends `request` (signed with `signer` when given) and returns the response.
    pub(crate) async fn exchange(&self, request: &Message, signer: Option<&TSigner>) -> Result<Message> {
        let (bytes, verifier) = encode(request, signer)?;
        if bytes.len() <= UDP_REQUEST_LIMIT {
            let response = self.exchange_udp(&bytes, request.metadata.id).await?;
            if !Message::from_vec(&response)
                .map(|m| m.metadata.truncation)
                .unwrap_or(false)
            {
                return decode(&response, verifier, &self.label);
            }
        }
        // Too big for UDP, or truncated: TCP, with a fresh signature (new time, same id).
        let (bytes, verifier) = encode(request, signer)?;
        let response = self.exchange_tcp(&bytes).await?;
        decode(&response, verifier, &self.label)
    }

    async fn exchange_udp(&self, bytes: &[u8], id: u16) -> Result<Vec<u8>> {
        let local: SocketAddr = if self.addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|err| self.unreachable("udp bind", &err))?;
        socket
            .connect(self.addr)
            .await
            .map_err(|err| self.unreachable("udp connect", &err))?;
        let per_attempt = self.timeout / UDP_ATTEMPTS;
        let mut buffer = vec![0u8; 65535];
        for _ in 0..UDP_ATTEMPTS {
            socket
                .send(bytes)
                .await
                .map_err(|err| self.unreachable("udp send", &err))?;
            let deadline = tokio::time::Instant::now() + per_attempt;
            loop {
                match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                    Err(_elapsed) => break,
                    Ok(Err(err)) => return Err(self.unreachable("udp receive", &err)),
                    // Ignore stray datagrams (a late answer to an earlier attempt has the same id: fine).
                    Ok(Ok(len)) if len >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id => {
                        return Ok(buffer[..len].to_vec());
                    }
                    Ok(Ok(_)) => continue,
                }
            }
        }
        Err(Error::DnsUnreachable {
            server: self.label.clone(),
            detail: format!("no UDP answer from {} within {:?}", self.addr, self.timeout),
        })
    }

    async fn exchange_tcp(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr).await?;
            let length = u16::try_from(bytes.len())
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message over 64 KiB"))?;
            let mut framed = length.to_be_bytes().to_vec();
            framed.extend_from_slice(bytes);
            stream.write_all(&framed).await?;
            let length = stream.read_u16().await?;
            let mut response = vec![0u8; usize::from(length)];
            stream.read_exact(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        match timeout(self.timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(self.unreachable("tcp", &err)),
            Err(_) => Err(Error::DnsUnreachable {
                server: self.label.clone(),
                detail: format!("no TCP answer from {} within {:?}", self.addr, self.timeout),
            }),
        }
    }

    fn unreachable(&self, what: &str, err: &std::io::Error) -> Error {
        Error::DnsUnreachable {
            server: self.label.clone(),
            detail: format!("{what} {}: {err}", self.addr),
        }
    }
}

/// Encodes `request`, signing a copy with the current time when a signer is given.
fn encode(request: &Message, signer: Option<&TSigner>) -> Result<(Vec<u8>, Option<TSigVerifier>)> {
    let mut message = request.clone();
    let verifier = match signer {
        Some(signer) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            message
                .finalize(signer, now)
                .map_err(|err| Error::DnsProtocol(format!("signing: {err}")))?
        }
        None => None,
    };
    let bytes = message
        .to_vec()
        .map_err(|err| Error::DnsProtocol(format!("encoding: {err}")))?;
    Ok((bytes, verifier))
}

/// Decodes a response. A response carrying a MAC is verified with the request's verifier; an unsigned
/// TSIG record (BADSIG/BADKEY answers are unsigned by design) is left for the caller to classify.
fn decode(bytes: &[u8], verifier: Option<TSigVerifier>, server: &str) -> Result<Message> {
    let message = Message::from_vec(bytes)
        .map_err(|err| Error::DnsProtocol(format!("malformed response from {server}: {err}")))?;
    let signed_request = verifier.is_some();
    if signed_request
        && message.signature.is_none()
        && message.metadata.response_code == ResponseCode::NoError
    {
        return Err(Error::DnsProtocol(format!(
            "{server} answered a signed request without a TSIG signature"
        )));
    }
    if let (Some(mut verifier), Some(tsig)) = (verifier, message.signature.as_ref())
        && tsig.data.error.is_none()
    {
        verifier.verify(bytes).map_err(|err| {
            Error::DnsProtocol(format!("response from {server} failed TSIG verification: {err}"))
        })?;
    }
    Ok(message)
}
