//! Plain HTTP/1.0 on loopback for the e2e tests that call the controller's own endpoints (/healthz,
//! /metrics, /hooks/git): one request per connection, the whole response back as text.

#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on 127.0.0.1:`port`; the raw response (status line, headers, body).
pub async fn get(port: u16, path: &str) -> String {
    exchange(
        port,
        format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").into_bytes(),
    )
    .await
}

/// `POST path` with `headers` and a JSON `body`; the raw response.
pub async fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut request = format!(
        "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    exchange(port, bytes).await
}

/// The numeric status of a raw response (`HTTP/1.0 202 Accepted` → 202).
pub fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

async fn exchange(port: u16, request: Vec<u8>) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting to the controller");
    stream.write_all(&request).await.expect("sending the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("reading the response");
    response
}
