//! The sender's SNI against a real rustls listener: it sends the host it dials (a Route's host, so a
//! passthrough router can route it) and still accepts only a certificate for the pinned name.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::certs::{self, MoverCerts};
use super::tunnel::{DialTarget, dial};

const PINNED: &str = "receiver.mover.migration.ferry.dev";

fn dirs(certs: &MoverCerts) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    certs.write_server_dir(&dir.path().join("server")).unwrap();
    certs.write_client_dir(&dir.path().join("client")).unwrap();
    dir
}

/// Serves one handshake with `server`'s material; returns the SNI it received (or the handshake error).
async fn listener(
    server: &std::path::Path,
) -> (u16, tokio::task::JoinHandle<Result<Option<String>, String>>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(certs::server_config(server).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        Ok(stream.get_ref().1.server_name().map(String::from))
    });
    (port, task)
}

async fn connect(client: &std::path::Path, address: String) -> Result<(), String> {
    let config = certs::client_config(client, PINNED).unwrap();
    let target = DialTarget {
        address,
        server_name: PINNED.into(),
        proxy: None,
    };
    dial(&target, Arc::clone(&config))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_dialled_host_goes_out_as_sni_and_the_pinned_name_is_what_is_verified() {
    let good = dirs(&certs::issue("m-1", &[PINNED.into()]).unwrap());
    let (port, server) = listener(&good.path().join("server")).await;
    // "localhost" stands in for a Route host: a DNS name the certificate does not carry.
    connect(&good.path().join("client"), format!("localhost:{port}"))
        .await
        .expect("the pinned name is in the certificate");
    assert_eq!(server.await.unwrap().unwrap().as_deref(), Some("localhost"));

    let (port, server) = listener(&good.path().join("server")).await;
    connect(&good.path().join("client"), format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(server.await.unwrap().unwrap(), None, "an IP sends no SNI");
}

#[tokio::test]
async fn a_certificate_for_the_sni_but_not_the_pinned_name_is_refused_even_from_the_migration_ca() {
    // Same CA for both ends; the receiver's certificate names the host dialled, not the pinned name.
    let wrong = dirs(&certs::issue("m-2", &["localhost".into()]).unwrap());
    let (port, server) = listener(&wrong.path().join("server")).await;
    let err = connect(&wrong.path().join("client"), format!("localhost:{port}"))
        .await
        .expect_err("the pin must reject a certificate valid only for the SNI");
    assert!(
        err.contains("certificate") || err.contains("NotValidForName"),
        "{err}"
    );
    let _refused = server.await.unwrap();

    // The pinned name from another migration's CA is refused too.
    let other = certs::issue("m-3", &[PINNED.into()]).unwrap();
    let mine = certs::issue("m-4", &[PINNED.into()]).unwrap();
    let (theirs, ours) = (dirs(&other), dirs(&mine));
    let (port, server) = listener(&theirs.path().join("server")).await;
    assert!(
        connect(&ours.path().join("client"), format!("localhost:{port}"))
            .await
            .is_err()
    );
    let _refused = server.await.unwrap();
}
