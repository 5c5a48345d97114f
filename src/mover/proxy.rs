//! HTTP CONNECT through a forward proxy with basic auth (MTC's `stunnel_tcp_proxy`), so a sender in a
//! locked-down source cluster can reach the receiver. Request building and reply parsing are pure; only
//! [`connect`] does I/O.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Error, Result};

/// A parsed `http://[user:pass@]host:port` proxy URL. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    /// `host:port` of the proxy itself.
    pub address: String,
    /// Basic-auth user and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.credentials.as_ref().map(|(user, _)| user.as_str());
        f.debug_struct("ProxyUrl")
            .field("address", &self.address)
            .field("user", &user)
            .finish()
    }
}

impl ProxyUrl {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::Mover(format!("invalid proxy URL: {why}"));
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(invalid("only http:// proxies are supported"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| invalid("no port"))?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = (!url.username().is_empty())
            .then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(ProxyUrl { address, credentials })
    }
}

/// The CONNECT request for `target` (`host:port`).
pub(crate) fn connect_request(target: &str, credentials: Option<&(String, String)>) -> String {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Checks the proxy's reply head (status line and headers, without the blank line).
pub(crate) fn check_reply(head: &str) -> Result<()> {
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Mover(format!(
            "proxy sent a non-HTTP reply: {status_line:?}"
        )));
    }
    if code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(Error::Mover(format!("proxy refused CONNECT: {status_line}")))
    }
}

/// Opens a TCP connection to `target` through the proxy and returns it once the proxy says 2xx.
pub(crate) async fn connect(proxy: &ProxyUrl, target: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(&proxy.address)
        .await
        .map_err(Error::io(format!("connecting to proxy {}", proxy.address)))?;
    let request = connect_request(target, proxy.credentials.as_ref());
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(Error::io("writing CONNECT to the proxy"))?;
    // Read byte by byte up to the blank line: anything after it already belongs to the tunnel.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(Error::Mover("proxy reply head exceeds 16 KiB".into()));
        }
        let byte = stream
            .read_u8()
            .await
            .map_err(Error::io("reading the proxy's CONNECT reply"))?;
        head.push(byte);
    }
    check_reply(&String::from_utf8_lossy(&head))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_and_default_port() {
        let proxy = ProxyUrl::parse("http://us%40er:p%3Ass@proxy.local").unwrap();
        assert_eq!(proxy.address, "proxy.local:80");
        assert_eq!(proxy.credentials, Some(("us@er".into(), "p:ss".into())));
        assert!(!format!("{proxy:?}").contains("p:ss"));
        assert!(ProxyUrl::parse("https://proxy:3128").is_err());
    }

    #[test]
    fn request_carries_basic_auth() {
        let request = connect_request("10.0.0.1:8443", Some(&("user".into(), "pass".into())));
        assert!(request.starts_with("CONNECT 10.0.0.1:8443 HTTP/1.1\r\n"));
        assert!(request.contains("Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        assert!(!connect_request("h:1", None).contains("Authorization"));
    }

    #[test]
    fn only_2xx_replies_open_the_tunnel() {
        assert!(check_reply("HTTP/1.1 200 Connection established\r\nProxy-agent: x\r\n\r\n").is_ok());
        assert!(check_reply("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n").is_err());
        assert!(check_reply("SSH-2.0\r\n\r\n").is_err());
    }
}
