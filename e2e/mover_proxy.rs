//! The sender reaching the receiver through a real HTTP CONNECT proxy (tinyproxy) with basic auth, as
//! MTC's `stunnel_tcp_proxy` does. Wrong credentials must fail, which also proves the proxy is in the path.

#[path = "support/mover.rs"]
mod support;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

struct Tinyproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(allowed_connect_port: u16) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.path().join("tinyproxy.conf");
        fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\nAllow 127.0.0.1\n\
                 BasicAuth ferry s3cretPass\nConnectPort {allowed_connect_port}\nLogLevel Info\n\
                 LogFile \"{}\"\n",
                dir.path().join("tinyproxy.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian package tinyproxy) must be installed");
        let proxy = Tinyproxy {
            child,
            port,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "tinyproxy did not start listening"
        );
        proxy
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _waited = self.child.wait();
    }
}

#[test]
fn send_through_connect_proxy_with_basic_auth() {
    let certs = CertDirs::issue("proxy");
    let work = tempfile::tempdir().unwrap();
    let (source, target) = (work.path().join("source"), work.path().join("target"));
    fs::create_dir_all(source.join("dir")).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(source.join("dir/file"), vec![3u8; 200_000]).unwrap();
    backdate(&source, "1600000000.25");
    let receiver = Receiver::start(&target, &certs.server(), &[]);
    let receiver_port: u16 = receiver.address.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Tinyproxy::start(receiver_port);

    let wrong = format!("http://ferry:wrong@127.0.0.1:{}", proxy.port);
    let refused = send(
        &receiver.address,
        &certs.client(),
        &source,
        &["--proxy", &wrong, "--retries", "0"],
    );
    assert!(!refused.status.success(), "wrong proxy password accepted");
    assert!(fs::read_dir(&target).unwrap().next().is_none());

    let right = format!("http://ferry:s3cretPass@127.0.0.1:{}", proxy.port);
    let output = send(&receiver.address, &certs.client(), &source, &["--proxy", &right]);
    assert!(output.status.success(), "{output:?}");
    assert_same_tree(&source, &target);
}
