//! One real Kubernetes control plane as a child process: the `controlplane` binary built from Go
//! modules by `e2e/controlplane` (`make controlplane`). It prints `READY <url> <kubeconfig>` once the
//! API server answers; several run side by side on free loopback ports.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::process::Supervised;
use crate::{Error, Result};

/// How long a control plane may take to become ready (etcd + apiserver + controller-manager on 2 cores).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// The `controlplane` binary: `$FERRY_CONTROLPLANE`, else `target/controlplane/controlplane` under the
/// current directory or any parent (so tests and `make demo` find the one `make controlplane` built).
pub fn controlplane_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_CONTROLPLANE") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Sandbox(format!(
                "FERRY_CONTROLPLANE={} does not exist; run `make controlplane`",
                path.display()
            )))
        };
    }
    let start = std::env::current_dir().map_err(Error::io("reading the current directory"))?;
    let found = start
        .ancestors()
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().take(1))
        .map(|dir| dir.join("target/controlplane/controlplane"))
        .find(|candidate| candidate.is_file());
    found.ok_or_else(|| {
        Error::Sandbox(
            "the control-plane binary target/controlplane/controlplane is missing; run `make controlplane` \
             (or set FERRY_CONTROLPLANE)"
                .into(),
        )
    })
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// A short name used in logs (e.g. `source`).
    pub name: String,
    /// The API server URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// The admin kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its data directory (etcd, certificates, kubeconfig, log).
    pub dir: PathBuf,
    process: Supervised,
}

impl ControlPlane {
    /// Starts a control plane with its data in `dir`, creating a Ready Node for each of `nodes`.
    pub fn start(name: &str, dir: &Path, nodes: &[&str]) -> Result<Self> {
        Self::start_with(name, dir, nodes, false)
    }

    /// [`ControlPlane::start`], with kube-scheduler running too when `scheduler` is set, so pods
    /// without a `nodeName` (Ferry's receivers, Deployments without one in their template) get a node.
    pub fn start_with(name: &str, dir: &Path, nodes: &[&str], scheduler: bool) -> Result<Self> {
        let binary = controlplane_binary()?;
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let mut command = Command::new(&binary);
        command.arg("serve").arg("--data-dir").arg(dir);
        for node in nodes {
            command.arg("--node").arg(node);
        }
        if scheduler {
            command.arg("--scheduler");
        }
        Self::spawn(name, dir, command)
    }

    /// Starts a control plane with its data in `dir` and `controlplane serve`'s extra `args` (real
    /// nodes: `--bind-address`, `--advertise-address`, `--service-cluster-ip-range`, `--scheduler`,
    /// `--hostpath-provisioner-dir`; see `e2e/controlplane/README.md`).
    pub fn start_with_args(name: &str, dir: &Path, args: &[String]) -> Result<Self> {
        let binary = controlplane_binary()?;
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let mut command = Command::new(&binary);
        command.arg("serve").arg("--data-dir").arg(dir).args(args);
        Self::spawn(name, dir, command)
    }

    fn spawn(name: &str, dir: &Path, command: Command) -> Result<Self> {
        let log = dir.join("controlplane.log");
        let mut process = Supervised::spawn(&format!("control plane {name}"), command, &log, true)?;
        let stdout = process.child().stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(rest.to_string());
                }
            }
        });
        let ready = ready_rx.recv_timeout(STARTUP_TIMEOUT).map_err(|_| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            Error::Sandbox(format!(
                "control plane {name} did not become ready within {STARTUP_TIMEOUT:?}; last log lines of {}:\n{}",
                log.display(),
                tail.join("\n")
            ))
        })?;
        let mut words = ready.split_whitespace();
        let url = words.next().unwrap_or_default().to_string();
        let kubeconfig = words
            .next()
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("kubeconfig"));
        Ok(Self {
            name: name.to_string(),
            url,
            kubeconfig,
            dir: dir.to_path_buf(),
            process,
        })
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client> {
        let file = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|err| Error::Sandbox(format!("kubeconfig {}: {err}", self.kubeconfig.display())))?;
        let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .map_err(|err| Error::Sandbox(format!("kubeconfig {}: {err}", self.kubeconfig.display())))?;
        Ok(Client::try_from(config)?)
    }

    /// The base64 PEM of the CA that signs the API server's certificate (MTC's `caBundle` format).
    pub fn ca_bundle(&self) -> Result<String> {
        let file = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|err| Error::Sandbox(format!("kubeconfig {}: {err}", self.kubeconfig.display())))?;
        file.clusters
            .iter()
            .find_map(|c| c.cluster.as_ref()?.certificate_authority_data.clone())
            .ok_or_else(|| Error::Sandbox(format!("kubeconfig {} has no CA data", self.kubeconfig.display())))
    }

    /// Mints a token for ServiceAccount `namespace/name` (created if missing), optionally bound to
    /// cluster-admin, through the TokenRequest API.
    pub fn mint_token(&self, namespace: &str, name: &str, cluster_admin: bool) -> Result<String> {
        let mut command = Command::new(controlplane_binary()?);
        command
            .arg("token")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", namespace, "--serviceaccount", name, "--create"]);
        if cluster_admin {
            command.arg("--cluster-admin");
        }
        let output = command
            .output()
            .map_err(Error::io("running controlplane token"))?;
        if !output.status.success() {
            return Err(Error::Sandbox(format!(
                "minting a token for {namespace}/{name} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Stops it (SIGTERM, bounded wait); returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        self.process.stop(Duration::from_secs(20))
    }
}
