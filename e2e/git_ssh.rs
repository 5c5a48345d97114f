//! SSH access against a real OpenSSH server (`sshd` from the Debian package openssh-server) on a free
//! loopback port, with a throwaway host key and client key: clone and push with the key from the
//! Secret's `sshPrivateKey`, host key pinned by `knownHosts`; an unknown host key is refused.

#[path = "support/git.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::git::{CommitRequest, Credentials, PushOutcome, Repo, Trailers, quiesce};
use support::*;

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path, kind: &[&str]) {
    let status = Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", "", "-C", "ferry-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn start_sshd(dir: &Path) -> Sshd {
    keygen(&dir.join("host_key"), &["-t", "ed25519"]);
    keygen(&dir.join("client_key"), &["-t", "rsa", "-b", "2048", "-m", "PEM"]);
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd insists on its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .expect("sshd (Debian package openssh-server) must be installed");
    let sshd = Sshd { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            read(&dir.join("sshd.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn secret(dir: &Path, port: u16, host_key: &str) -> BTreeMap<String, Vec<u8>> {
    let known_hosts = format!("[127.0.0.1]:{port} {host_key}\n");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    [
        ("sshPrivateKey", read(&dir.join("client_key"))),
        ("knownHosts", known_hosts),
        ("username", user),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_bytes()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_and_push_over_ssh_with_a_pinned_host_key() {
    let (dir, server) = start_server().await;
    server
        .create_repo("app", &[("apps/source/app.yaml", APP_YAML)])
        .unwrap();
    let sshd = start_sshd(dir.path());
    let host_key = read(&dir.path().join("host_key.pub"));
    let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let url = format!(
        "ssh://127.0.0.1:{}{}",
        sshd.port,
        server.repo_path("app").display()
    );

    let creds = Credentials::from_secret_data(&secret(dir.path(), sshd.port, &host_key)).unwrap();
    let repo = Repo::open_or_clone(&dir.path().join("cache"), &url, "main", creds)
        .unwrap_or_else(|err| panic!("{err}\nsshd log:\n{}", read(&dir.path().join("sshd.log"))));
    let plan = quiesce::plan(&repo.load_manifests("apps/source").unwrap());
    let request = CommitRequest {
        edits: plan.edits,
        message: "Quiesce over ssh".into(),
        trailers: Trailers {
            plan: "shop/p".into(),
            migration: "m/1".into(),
        },
        author: None,
        max_attempts: 3,
    };
    let outcome = repo.commit_and_push(&request).unwrap();
    assert!(
        matches!(outcome, PushOutcome::Pushed { attempts: 1, .. }),
        "{outcome:?}"
    );
    let content = git(&server.repo_path("app"), &["show", "main:apps/source/app.yaml"]);
    assert!(content.contains("replicas: 0 # do not lower"), "{content}");

    // A knownHosts entry with another key: the connection is refused before authenticating.
    let other = read(&dir.path().join("client_key.pub"));
    let other = other.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let creds = Credentials::from_secret_data(&secret(dir.path(), sshd.port, &other)).unwrap();
    let err = Repo::open_or_clone(&dir.path().join("cache2"), &url, "main", creds).unwrap_err();
    assert!(
        err.to_string().contains("host key is not listed in knownHosts"),
        "{err}"
    );
    assert!(!dir.path().join("cache2").exists());
    drop(sshd);
    server.stop().await;
}
