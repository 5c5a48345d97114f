//! Argo CD itself in the sandbox (docs/sandbox.md, "Argo CD"), where `crate::argocd` is a stand-in:
//! the upstream application controller and repo-server (`e2e/argocd`, `make argocd`) and redis, run as
//! child processes pointed at the host cluster, with Argo CD's own CRDs and the settings they read in
//! namespace [`NAMESPACE`]. The host cluster is Argo CD's in-cluster destination
//! (`ARGOCD_FAKE_IN_CLUSTER`, its kubeconfig, as upstream's local development runs it); another cluster
//! is registered as a cluster Secret holding a ServiceAccount token, as `argocd cluster add` does.
//!
//! ```text
//!  redis 127.0.0.1:R ◀── repo-server 127.0.0.1:P ──git http──▶ sandbox git server
//!        ▲                     ▲ gRPC (plaintext)
//!        └── application controller ──▶ host cluster (Applications in `argocd`; in-cluster destination)
//!                                   ──▶ source cluster (cluster Secret: its URL, CA, token)
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::Client;
use serde_json::json;

use crate::process::Supervised;
use crate::{ControlPlane, Error, Result, apply_yaml, wait_for_crds};

/// Where Argo CD keeps its Applications, AppProjects, settings, clusters and repositories.
pub const NAMESPACE: &str = "argocd";
/// The in-cluster destination: the host cluster.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// How long one component may take to listen (the controller loads every API group of the host first).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the application controller compares an Application with Git by itself (`--app-resync`).
pub const APP_RESYNC: Duration = Duration::from_secs(3600);
/// Ferry's Argo CD health checks, merged into `argocd-cm` as docs/operations.md tells users to.
const HEALTH_CHECKS: &str = include_str!("../../../manifests/argocd/health/argocd-cm.yaml");

/// The Argo CD binary: `$FERRY_ARGOCD`, else `target/argocd/argocd` under the current directory or any
/// parent (where `make argocd` puts it, its CRDs in `crds/` beside it).
pub fn argocd_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_ARGOCD") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Sandbox(format!(
                "FERRY_ARGOCD={} does not exist; run `make argocd`",
                path.display()
            )))
        };
    }
    let start = std::env::current_dir().map_err(Error::io("reading the current directory"))?;
    start
        .ancestors()
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
        .map(|dir| dir.join("target/argocd/argocd"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Error::Sandbox(
                "the Argo CD binary target/argocd/argocd is missing; run `make argocd` (or set FERRY_ARGOCD)"
                    .into(),
            )
        })
}

/// The Argo CD version the sandbox builds (`e2e/argocd/go.mod`'s requirement), e.g. `v3.6.1`.
pub fn version() -> &'static str {
    include_str!("../../../e2e/argocd/go.mod")
        .lines()
        .find_map(|line| line.trim().strip_prefix("github.com/argoproj/argo-cd/v3 "))
        .map_or("unknown", str::trim)
}

/// A running Argo CD (redis, repo-server, application controller); stopped on [`ArgoCd::stop`] or drop.
pub struct ArgoCd {
    /// Its directory: logs (`redis.log`, `repo-server.log`, `application-controller.log`), caches.
    pub dir: PathBuf,
    controller: Supervised,
    repo_server: Supervised,
    redis: Supervised,
}

impl ArgoCd {
    /// Installs Argo CD's CRDs and settings in `host` (whose control plane is `host_plane`) and starts
    /// redis, the repo-server and the application controller with their files under `dir`.
    pub async fn start(host_plane: &ControlPlane, host: &Client, dir: &Path) -> Result<Self> {
        let binary = argocd_binary()?;
        install_crds(host, &binary).await?;
        install_settings(host).await?;
        let bin = dir.join("bin");
        for sub in ["bin", "home", "tmp", "tls", "ssh", "gpg", "redis"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(Error::io(format!("creating {}", path.display())))?;
        }
        // The role comes from argv[0]; git's askpass helper is found as `argocd` on PATH, and so is
        // the signature-check wrapper the repo-server runs (upstream's image has both on PATH).
        let wrapper = binary.with_file_name("git-verify-wrapper.sh");
        if !wrapper.is_file() {
            return Err(Error::Sandbox(format!(
                "{} is missing; run `make argocd`",
                wrapper.display()
            )));
        }
        let links = ["argocd-repo-server", "argocd-application-controller", "argocd"]
            .map(|role| (role, binary.as_path()))
            .into_iter()
            .chain([("git-verify-wrapper.sh", wrapper.as_path())]);
        for (name, target) in links {
            let link = bin.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link)
                .map_err(Error::io(format!("linking {}", link.display())))?;
        }

        let redis_port = free_port()?;
        let mut redis = Command::new("redis-server");
        redis.args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()]);
        redis.args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
        ]);
        redis.arg(dir.join("redis"));
        let mut redis = Supervised::spawn("redis", redis, &dir.join("redis.log"), false)?;
        wait_listening(&mut redis, "redis", redis_port, &dir.join("redis.log"))?;
        let redis_address = format!("127.0.0.1:{redis_port}");

        let (repo_port, repo_metrics) = (free_port()?, free_port()?);
        let mut repo_server = component(dir, "argocd-repo-server");
        repo_server
            .args(["--address", "127.0.0.1", "--port", &repo_port.to_string()])
            .args([
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                &repo_metrics.to_string(),
            ])
            // Its default client CA path (a Secret mounted in upstream's pod) is refused with --disable-tls.
            .args([
                "--disable-tls",
                "--client-ca-path=",
                "--redis",
                &redis_address,
                "--loglevel",
                "info",
            ])
            .env("ARGOCD_GPG_ENABLED", "false")
            .env("ARGOCD_TLS_DATA_PATH", dir.join("tls"))
            .env("ARGOCD_SSH_DATA_PATH", dir.join("ssh"))
            .env("ARGOCD_GNUPGHOME", dir.join("gpg"))
            .env("ARGOCD_ASK_PASS_SOCK", dir.join("askpass.sock"));
        let log = dir.join("repo-server.log");
        let mut repo_server = Supervised::spawn("argocd repo-server", repo_server, &log, false)?;
        wait_listening(&mut repo_server, "the Argo CD repo-server", repo_port, &log)?;

        let metrics = free_port()?;
        let mut controller = component(dir, "argocd-application-controller");
        controller
            .args(["--namespace", NAMESPACE, "--metrics-port", &metrics.to_string()])
            .args([
                "--repo-server",
                &format!("127.0.0.1:{repo_port}"),
                "--repo-server-plaintext",
            ])
            .args(["--redis", &redis_address, "--loglevel", "info"])
            // Argo CD compares each Application with Git every 120 s by default: in the sandbox only an
            // Application's creation or a refresh request (what Ferry sends after each commit) makes it
            // look, so a test proves Ferry's requests work rather than waiting for the poll.
            .args(["--app-resync", &APP_RESYNC.as_secs().to_string()])
            // Argo CD 3 keeps each resource's health in its cache only; persisted, tests read what
            // Ferry's Lua health checks said of each MigPlan and MigMigration from the Application.
            .arg("--persist-resource-health")
            // Two of each are plenty for the sandbox's few Applications on 2 cores.
            .args(["--status-processors", "2", "--operation-processors", "2"])
            .env("KUBECONFIG", &host_plane.kubeconfig)
            .env("ARGOCD_FAKE_IN_CLUSTER", "true")
            .env("ARGOCD_CONTROLLER_REPLICAS", "1");
        let log = dir.join("application-controller.log");
        let mut controller = Supervised::spawn("argocd application-controller", controller, &log, false)?;
        wait_listening(
            &mut controller,
            "the Argo CD application controller",
            metrics,
            &log,
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            controller,
            repo_server,
            redis,
        })
    }

    /// Registers `plane` as cluster `name` (a cluster Secret with its URL, CA and a cluster-admin
    /// ServiceAccount token minted in it, as `argocd cluster add` leaves); returns its server URL.
    pub async fn register_cluster(&self, host: &Client, name: &str, plane: &ControlPlane) -> Result<String> {
        let token = plane.mint_token("kube-system", "argocd-manager", true)?;
        let config = json!({"bearerToken": token, "tlsClientConfig": {"caData": plane.ca_bundle()?}});
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("cluster-{name}"), "namespace": NAMESPACE,
                "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
            "stringData": {"name": name, "server": plane.url, "config": config.to_string()},
        });
        apply_yaml(host, &secret.to_string(), NAMESPACE).await?;
        Ok(plane.url.clone())
    }

    /// Adds the credentials of repository `url` (a repository Secret, HTTP basic authentication).
    pub async fn add_repository(
        &self,
        host: &Client,
        url: &str,
        username: &str,
        password: &str,
    ) -> Result<()> {
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url);
        let name: String = digest
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("repo-{}", name.to_lowercase()), "namespace": NAMESPACE,
                "labels": {"argocd.argoproj.io/secret-type": "repository"}},
            "stringData": {"type": "git", "url": url, "username": username, "password": password},
        });
        apply_yaml(host, &secret.to_string(), NAMESPACE).await?;
        Ok(())
    }

    /// Creates Application `name` (in [`NAMESPACE`], project `default`) deploying `path` of `repo_url`
    /// (branch main) to `destination_namespace` of cluster `server`, synced automatically with
    /// selfHeal as the stand-in's Applications are.
    pub async fn create_application(
        &self,
        host: &Client,
        name: &str,
        repo_url: &str,
        path: &str,
        server: &str,
        destination_namespace: &str,
    ) -> Result<()> {
        let application = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo_url, "path": path, "targetRevision": "main"},
                "destination": {"server": server, "namespace": destination_namespace},
                "syncPolicy": {"automated": {"prune": false, "selfHeal": true}},
            },
        });
        apply_yaml(host, &application.to_string(), NAMESPACE).await?;
        Ok(())
    }

    /// How many refresh requests (the `argocd.argoproj.io/refresh` annotation) the application
    /// controller has served for Application `name`, from its log ("Refreshing app status (normal
    /// refresh requested)"): the proof that a change was picked up on request, not by Argo CD's poll.
    pub fn refreshes_served(&self, name: &str) -> usize {
        // One JSON object per line (the controller's default `--logformat json`).
        let log = std::fs::read_to_string(self.dir.join("application-controller.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| {
                let msg = entry["msg"].as_str().unwrap_or_default();
                entry["application"] == name
                    && (msg.contains("(normal refresh requested)")
                        || msg.contains("(hard refresh requested)"))
            })
            .count()
    }

    /// The last `lines` lines of each component's log (for failure messages).
    pub fn log_tails(&self, lines: usize) -> String {
        ["application-controller.log", "repo-server.log", "redis.log"]
            .iter()
            .map(|file| format!("== {file}\n{}", tail(&self.dir.join(file), lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the controller, the repo-server and redis, in that order; `true` when all exited cleanly.
    pub fn stop(mut self) -> bool {
        let grace = Duration::from_secs(10);
        let controller = self.controller.stop(grace);
        let repo_server = self.repo_server.stop(grace);
        let redis = self.redis.stop(grace);
        controller && repo_server && redis
    }
}

/// Applies the AppProject and Application CRDs `make argocd` put beside the binary.
async fn install_crds(host: &Client, binary: &Path) -> Result<()> {
    let crds = binary.parent().unwrap_or(Path::new(".")).join("crds");
    for file in ["appproject-crd.yaml", "application-crd.yaml"] {
        let path = crds.join(file);
        let yaml = std::fs::read_to_string(&path).map_err(Error::io(format!(
            "reading {} (run `make argocd`)",
            path.display()
        )))?;
        apply_yaml(host, &yaml, "default").await?;
    }
    let names = ["applications.argoproj.io", "appprojects.argoproj.io"].map(String::from);
    wait_for_crds(host, &names, Duration::from_secs(60)).await
}

/// The namespace, the two settings objects every component reads (`argocd-cm`, `argocd-secret`) and
/// the `default` AppProject (upstream's API server creates it; the sandbox runs none).
async fn install_settings(host: &Client) -> Result<()> {
    let part_of = json!({"app.kubernetes.io/part-of": "argocd"});
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": NAMESPACE, "labels": part_of.clone()},
            "data": health_checks()?}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "argocd-secret", "namespace": NAMESPACE, "labels": part_of.clone()},
            "stringData": {"server.secretkey": format!("sandbox-{}", std::process::id())}}),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "default", "namespace": NAMESPACE},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}),
    ];
    for object in objects {
        apply_yaml(host, &object.to_string(), NAMESPACE).await?;
    }
    Ok(())
}

/// The `data` of Ferry's health-check snippet (`manifests/argocd/health/argocd-cm.yaml`): one Lua
/// script per kind, under Argo CD's `resource.customizations.health.<group>_<kind>` keys.
fn health_checks() -> Result<serde_json::Map<String, serde_json::Value>> {
    let snippet: serde_json::Value = serde_saphyr::from_str(HEALTH_CHECKS)
        .map_err(|err| Error::Sandbox(format!("manifests/argocd/health/argocd-cm.yaml: {err}")))?;
    match snippet.get("data") {
        Some(serde_json::Value::Object(data)) => Ok(data.clone()),
        _ => Err(Error::Sandbox(
            "manifests/argocd/health/argocd-cm.yaml has no data".into(),
        )),
    }
}

/// Waits until Application `name` (in [`NAMESPACE`] of `host`) is Synced at `revision` with its
/// operation (if any) Succeeded; on time-out returns the last of its status that says why not.
pub async fn wait_synced(
    host: &Client,
    name: &str,
    revision: &str,
    timeout: Duration,
) -> std::result::Result<(), serde_json::Value> {
    let applications = crate::argocd::applications(host, NAMESPACE);
    let deadline = Instant::now() + timeout;
    let mut status = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Ok(application) = applications.get(name).await {
            status = application.data["status"].clone();
            let sync = &status["sync"];
            let operation = status["operationState"]["phase"].as_str();
            if sync["status"] == "Synced"
                && sync["revision"] == revision
                && operation.is_none_or(|phase| phase == "Succeeded")
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(
        json!({"sync": status["sync"], "operationState": status["operationState"],
        "conditions": status["conditions"], "health": status["health"]}),
    )
}

/// A command running Argo CD's `role` (by its argv[0]) with its own home and temporary directory.
fn component(dir: &Path, role: &str) -> Command {
    let mut command = Command::new(dir.join("bin").join(role));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![dir.join("bin")];
    paths.extend(std::env::split_paths(&path));
    command
        .env("PATH", std::env::join_paths(paths).unwrap_or(path))
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"));
    command
}

/// Waits until `process` accepts connections on 127.0.0.1:`port`, failing early if it exits.
fn wait_listening(process: &mut Supervised, what: &str, port: u16, log: &Path) -> Result<()> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        let exited = process.child().try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let how = exited.map_or(format!("did not listen within {START_TIMEOUT:?}"), |s| {
                s.to_string()
            });
            return Err(Error::Sandbox(format!(
                "{what} on port {port}: {how}; last lines of {}:\n{}",
                log.display(),
                tail(log, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback TCP port free right now.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding a probe port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("reading the probe port"))?
        .port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_comes_from_the_wrapper_module() {
        let version = super::version();
        assert!(version.starts_with("v3."), "{version}");
    }
}
