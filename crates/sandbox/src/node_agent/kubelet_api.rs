//! The one kubelet API the sandbox needs: container logs. kube-apiserver serves `pods/log` by calling
//! the kubelet of the pod's node at `https://<InternalIP>:<kubeletEndpoint port>/containerLogs/<ns>/<pod>/<container>`;
//! the agent answers that from its log files, so `kubectl logs` and the controller's progress reads
//! work against sandbox pods. The agent advertises the port in its Node's
//! `status.daemonEndpoints.kubeletEndpoint`; the control plane dials InternalIP (127.0.0.1) and, with
//! no kubelet CA configured, does not verify the self-signed certificate (kube-apiserver's behaviour).
//!
//! Minimal HTTP/1.1: one request per connection, `tailLines` and `limitBytes` honoured, `follow`
//! answered with what is there now.

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{POD_DIR_ANNOTATION, Shared};
use crate::{Error, Result};

/// Binds the API on a free loopback port, advertises it on the Node, and serves until the agent stops.
pub(crate) async fn start(shared: Arc<Shared>) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::io("binding the kubelet API"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("kubelet API address"))?
        .port();
    let acceptor = TlsAcceptor::from(Arc::new(tls_config()?));
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let patch = serde_json::json!({"status": {
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
    }});
    nodes
        .patch_status(&shared.node, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shared.stopping.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (acceptor, shared) = (acceptor.clone(), shared.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    serve(stream, &shared).await;
                }
            });
        }
    });
    Ok(())
}

fn tls_config() -> Result<rustls::ServerConfig> {
    let tls_error = |e: String| Error::Sandbox(format!("kubelet API certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(|e| tls_error(e.to_string()))?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| tls_error(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| tls_error(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
        .map_err(|e| tls_error(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn serve<S>(mut stream: S, shared: &Shared)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/");
    let (status, body) = match logs_for(shared, target).await {
        Ok(body) => ("200 OK", body),
        Err(message) => ("404 Not Found", message.into_bytes()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

/// The log bytes a `/containerLogs/...` request asks for, or why there are none.
async fn logs_for(shared: &Shared, target: &str) -> std::result::Result<Vec<u8>, String> {
    let request = LogRequest::parse(target).ok_or_else(|| format!("no such path: {target}"))?;
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &request.namespace);
    let pod = pods
        .get_opt(&request.pod)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("pod {}/{} not found", request.namespace, request.pod))?;
    let dir = pod
        .annotations()
        .get(POD_DIR_ANNOTATION)
        .ok_or_else(|| format!("pod {} is not run by this node agent", request.pod))?;
    let path = PathBuf::from(dir)
        .join("logs")
        .join(format!("{}.log", request.container));
    let text = std::fs::read(&path).map_err(|_| format!("container {} not found", request.container))?;
    Ok(request.select(&text))
}

/// A parsed `/containerLogs/{namespace}/{pod}/{container}?tailLines=N&limitBytes=M`.
#[derive(Debug, PartialEq)]
struct LogRequest {
    namespace: String,
    pod: String,
    container: String,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

impl LogRequest {
    fn parse(target: &str) -> Option<Self> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut parts = path.strip_prefix("/containerLogs/")?.split('/');
        let (namespace, pod, container) = (parts.next()?, parts.next()?, parts.next()?);
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse().ok())
        };
        Some(Self {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            tail_lines: param("tailLines"),
            limit_bytes: param("limitBytes"),
        })
    }

    /// The last `tailLines` lines, then at most `limitBytes` bytes of them (from the start, as a kubelet).
    fn select(&self, text: &[u8]) -> Vec<u8> {
        let mut start = 0;
        if let Some(n) = self.tail_lines {
            let trimmed = text.strip_suffix(b"\n").unwrap_or(text);
            let newlines: Vec<usize> = trimmed
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect();
            start = match n {
                0 => text.len(),
                n if n > newlines.len() => 0,
                n => newlines[newlines.len() - n] + 1,
            };
        }
        let selected = &text[start..];
        let end = self
            .limit_bytes
            .map_or(selected.len(), |limit| limit.min(selected.len()));
        selected[..end].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parameters() {
        let request = LogRequest::parse("/containerLogs/shop/send-0/mover?tailLines=2&follow=false").unwrap();
        assert_eq!(request.namespace, "shop");
        assert_eq!(request.container, "mover");
        assert_eq!(request.select(b"a\nb\nc\n"), b"b\nc\n");
        assert_eq!(LogRequest::parse("/pods"), None);
        let all = LogRequest::parse("/containerLogs/a/b/c?limitBytes=3").unwrap();
        assert_eq!(all.select(b"hello\n"), b"hel");
        let more = LogRequest::parse("/containerLogs/a/b/c?tailLines=10").unwrap();
        assert_eq!(more.select(b"x\ny"), b"x\ny");
    }
}
