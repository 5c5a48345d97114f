//! A TCP listener on the sandbox's side of the nodes, which containers of test images report to: a real
//! container cannot write into the test's directories, so a hook image tells the witness what it did
//! (`echo "flush shop" | nc HOST PORT`), as a real hook talks to a database or an API. The witness keeps
//! each line with the address it came from, may act on it (what the database would do, such as flush
//! into its volume) before it answers `ok`, so the container exits only after that happened.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// One line a container sent, and where from.
#[derive(Clone, Debug)]
pub struct Report {
    pub from: IpAddr,
    pub line: String,
}

/// The listener and what it heard; stops with the test.
pub struct Witness {
    /// The port it listens on, on every address of the sandbox's namespace (each node's gateway).
    pub port: u16,
    reports: Arc<Mutex<Vec<Report>>>,
}

impl Witness {
    /// Listens on `0.0.0.0`, calling `act` with each line before answering it.
    pub async fn start(act: impl Fn(&str) + Send + Sync + 'static) -> Witness {
        let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let act = Arc::new(act);
        let kept = reports.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (kept, act) = (kept.clone(), act.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    if BufReader::new(read).read_line(&mut line).await.is_err() {
                        return;
                    }
                    let line = line.trim_end().to_string();
                    act(&line);
                    kept.lock().unwrap().push(Report {
                        from: peer.ip(),
                        line,
                    });
                    write.write_all(b"ok\n").await.ok();
                });
            }
        });
        Witness { port, reports }
    }

    /// What it heard so far, in order.
    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }
}
