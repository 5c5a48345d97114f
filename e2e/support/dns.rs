//! Shared helpers for the DNS e2e tests: a real BIND9 in a temp dir, `dig` as an independent witness of
//! what the server serves, and a real control plane (`controlplane serve`) for the external-dns test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ferry::dns::{RecordSet, RecordType};
use ferry_sandbox::bind::Bind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The zone every test's BIND serves.
pub const ZONE: &str = "example.test";

/// A running BIND and the temp dir it lives in (dropped together: process first).
pub struct TestBind {
    pub bind: Bind,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestBind {
    type Target = Bind;
    fn deref(&self) -> &Bind {
        &self.bind
    }
}

/// Starts BIND serving [`ZONE`].
pub async fn start_bind() -> TestBind {
    let dir = tempfile::tempdir().expect("temp dir");
    let bind = Bind::start(dir.path(), ZONE)
        .await
        .expect("start named (Debian package bind9)");
    TestBind { bind, _dir: dir }
}

/// A record set from literals.
pub fn set(fqdn: &str, record_type: RecordType, ttl: u32, values: &[&str]) -> RecordSet {
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    RecordSet::new(fqdn, record_type, ttl, &values).expect("valid record set")
}

/// What `dig` (bind9-dnsutils, not Ferry's code) sees at the server: (ttl, value) pairs, sorted.
pub fn dig(bind: &Bind, name: &str, record_type: &str) -> Vec<(u32, String)> {
    let output = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &bind.addr.port().to_string(),
            "+norec",
            "+noall",
            "+answer",
            name,
            record_type,
        ])
        .output()
        .expect("run dig (Debian package bind9-dnsutils)");
    assert!(
        output.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut answers: Vec<(u32, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_name, ttl, _class, rtype, value] if rtype.eq_ignore_ascii_case(record_type) => {
                    Some((ttl.parse().ok()?, value.to_string()))
                }
                _ => None,
            }
        })
        .collect();
    answers.sort();
    answers
}

/// The control plane binary (`make controlplane` builds it).
pub fn controlplane_binary() -> PathBuf {
    std::env::var_os("FERRY_CONTROLPLANE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/main/target/controlplane/controlplane"))
}

/// A running `controlplane serve` (real kube-apiserver), stopped with SIGTERM on drop.
pub struct ControlPlane {
    pub url: String,
    pub kubeconfig: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts it and waits (up to 120 s) for its `READY <url> <kubeconfig>` line. Panics with the fix if
    /// the binary is missing: this test must never pass without a real API server.
    pub async fn start() -> Self {
        let binary = controlplane_binary();
        assert!(
            binary.exists(),
            "control plane binary {} not found: run `make controlplane` (or set FERRY_CONTROLPLANE)",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(&binary)
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.expect("read control plane stdout") {
                if let Some(rest) = line.strip_prefix("READY ") {
                    return Some(rest.to_string());
                }
            }
            None
        })
        .await
        .expect("control plane not READY within 120 s")
        .expect("control plane exited before READY");
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (url, kubeconfig) = ready.split_once(' ').expect("READY <url> <kubeconfig>");
        Self {
            url: url.into(),
            kubeconfig: kubeconfig.trim().into(),
            child,
            _dir: dir,
        }
    }

    /// An admin client from the printed kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kubeconfig to config");
        kube::Client::try_from(config).expect("kube client")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM lets it shut etcd down cleanly; kill_on_drop is the backstop.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            for _ in 0..50 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.start_kill();
    }
}
