//! The whole sandbox in one value: two real control planes (source, and target = the host cluster
//! Ferry runs against), a real node in each cluster (kubelet, containerd + runc, CNI, kube-proxy;
//! `world/nodes.rs`, or the e2e node agent where a test asks for it), a git server holding the example
//! app's repo, BIND9 serving the app's zone, and the `ferry controller` process. `ferry-sandbox demo`
//! and the e2e migration scenarios both start one, so the demo shows exactly what the tests prove.
//!
//! ```text
//!  source control plane 10.200.N.1 ── node-a 10.200.N.2 (containers: app, movers)
//!  target control plane 10.200.M.1 ── node-b 10.200.M.2          ▲ ferry controller (host = target)
//!  git http-backend (repo "shop": clusters/source, clusters/target)    BIND9 (zone ferry.test)
//! ```
//!
//! "Storage" is local directories: each cluster gets a hostPath PersistentVolume per app volume,
//! pre-bound (claimRef) to the claim that will use it, as a static provisioner would. The movers reach
//! each other through a NodePort on the receiving node's address (the sandbox has no load balancer).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use kube::Client;

use super::argocd_real::ArgoCd;
use super::bind::Bind;
use super::git_server::GitServer;
use super::{
    ControlPlane, ControllerProcess, RealNode, apply_yaml, install_crds, wait_for_default_service_account,
};
use crate::{Error, Result};
use ferry::api::plan::QuiesceMethod;
use ferry::dns::{Provider, RecordSet, RecordType};

/// The node of the source cluster.
pub const SOURCE_NODE: &str = "node-a";
/// The node of the target cluster.
pub const TARGET_NODE: &str = "node-b";
/// Namespace of Ferry's resources in the host cluster.
pub const FERRY_NAMESPACE: &str = "ferry-demo";
/// The app's namespace (same name in both clusters).
pub const APP_NAMESPACE: &str = "shop";
/// The app's volume.
pub const APP_PVC: &str = "db-data";
/// The DNS zone BIND serves.
pub const ZONE: &str = "ferry.test";
/// The app's record before the cutover (the source cluster's ingress).
pub const SOURCE_ADDRESS: &str = "192.0.2.10";
/// The record's TTL before the cutover (short, so the cutover's LowerDNSTTL wait stays short).
pub const SOURCE_TTL: u32 = 4;
/// The address the plan flips it to (the target cluster's ingress).
pub const TARGET_ADDRESS: &str = "192.0.2.20";
/// The app's repo on the git server.
pub const REPO: &str = "shop";
/// The plan the sandbox creates.
pub const PLAN_NAME: &str = "shop";

const SOURCE_APP: &str = include_str!("../../../e2e/examples/shop/source.yaml");
const TARGET_APP: &str = include_str!("../../../e2e/examples/shop/target.yaml");
const PLAN: &str = include_str!("../../../e2e/examples/shop/plan.yaml");
const GIT_USER: &str = "ferry";
/// The database's data directory on its volume (0700, uid 999, as PostgreSQL keeps `PGDATA`), and the
/// file it writes there once it runs.
pub const APP_DATA_DIR: &str = "pgdata";
const APP_DATA_MARKER: &str = "PG_VERSION";

mod argocd;
mod nodes;

pub use nodes::Nodes;

/// How a sandbox is started.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Where everything keeps its data and logs.
    pub dir: PathBuf,
    /// The `ferry` binary run as the controller and in mover pods.
    pub ferry_binary: PathBuf,
    /// Start the controller (a crash test may start and kill it itself).
    pub controller: bool,
    /// Real nodes (the default) or the node agent.
    pub nodes: Nodes,
}

impl SandboxOptions {
    /// Real nodes and the controller, in `dir`, with `ferry_binary`.
    pub fn new(dir: impl Into<PathBuf>, ferry_binary: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ferry_binary: ferry_binary.into(),
            controller: true,
            nodes: Nodes::Real,
        }
    }
}

/// A running sandbox. Stop it with [`Sandbox::stop`]; dropping it kills everything less gracefully.
pub struct Sandbox {
    /// Where everything lives.
    pub dir: PathBuf,
    /// Source cluster.
    pub source: ControlPlane,
    /// Target cluster, also the host cluster.
    pub target: ControlPlane,
    /// Client of the source cluster.
    pub source_client: Client,
    /// Client of the target (host) cluster.
    pub host_client: Client,
    /// The git server with the app's repo.
    pub git: GitServer,
    /// BIND9 serving [`ZONE`].
    pub bind: Bind,
    /// The controller, when running.
    pub controller: Option<ControllerProcess>,
    ferry_binary: PathBuf,
    git_password: String,
    nodes: Option<nodes::Started>,
    appliers: Vec<tokio::task::JoinHandle<()>>,
    /// Commit mode applies through Argo CD itself rather than the stand-in ([`Sandbox::use_real_argocd`]).
    real_argocd: bool,
    argocd: Option<ArgoCd>,
}

impl Sandbox {
    /// Starts both control planes (with kube-scheduler), the node agents, the git server, BIND and
    /// (optionally) the controller, and installs Ferry's CRDs into the host cluster.
    pub async fn start(options: SandboxOptions) -> Result<Self> {
        let SandboxOptions {
            dir,
            ferry_binary,
            controller,
            nodes,
        } = options;
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let (source, target, addressing) = nodes::start_control_planes(&dir, nodes)?;
        let source_client = source.client().await?;
        let host_client = target.client().await?;
        install_crds(&host_client).await?;
        let nodes = nodes::start_nodes(
            &dir,
            &ferry_binary,
            (&source, &target),
            (&source_client, &host_client),
            addressing,
        )
        .await?;
        let git_password = format!("pw-{}", std::process::id());
        let git = GitServer::start(dir.join("git"), GIT_USER, &git_password).await?;
        let bind_dir = dir.join("bind");
        std::fs::create_dir_all(&bind_dir).map_err(Error::io(format!("creating {}", bind_dir.display())))?;
        let bind = Bind::start(&bind_dir, ZONE).await?;
        let mut sandbox = Self {
            dir,
            source,
            target,
            source_client,
            host_client,
            git,
            bind,
            controller: None,
            ferry_binary,
            git_password,
            nodes: Some(nodes),
            appliers: Vec::new(),
            real_argocd: false,
            argocd: None,
        };
        if controller {
            sandbox.start_controller()?;
        }
        Ok(sandbox)
    }

    /// Starts the controller against the host cluster (its log: `<dir>/controller.log`, appended).
    pub fn start_controller(&mut self) -> Result<u32> {
        self.start_controller_with_env(&[])
    }

    /// [`Sandbox::start_controller`] with extra environment variables (test hooks).
    pub fn start_controller_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) -> Result<u32> {
        let controller = ControllerProcess::start_with_env(
            &self.ferry_binary,
            &self.target.kubeconfig,
            &self.controller_log(),
            env,
        )?;
        let pid = controller.pid();
        self.controller = Some(controller);
        Ok(pid)
    }

    /// The controller's log file.
    pub fn controller_log(&self) -> PathBuf {
        self.dir.join("controller.log")
    }

    /// Makes hook image `image` available on the source (`source == true`) or target node only, as a
    /// push to that cluster's registry would: a container of it without `command` runs `script` with
    /// `sh`, in the container's environment. On real nodes a real image (`build.sh hook`: busybox with
    /// the script as its entrypoint) imported into the node's containerd; on the agent a stand-in
    /// image (docs/sandbox.md).
    pub fn install_image(&self, source: bool, image: &str, script: &str) -> Result<()> {
        let dir = images_dir(&self.dir, source);
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let file = image.replace(['/', ':', '@'], "_");
        let path = dir.join(&file);
        let Some(node) = self.nodes().get(if source { 0 } else { 1 }) else {
            return std::fs::write(&path, script).map_err(Error::io(format!("writing {}", path.display())));
        };
        let script_path = dir.join(format!("{file}.sh"));
        std::fs::write(&script_path, script)
            .map_err(Error::io(format!("writing {}", script_path.display())))?;
        let tar = dir.join(format!("{file}.tar"));
        crate::images::build_hook(&tar, image, &script_path)?;
        node.import_image(&tar)
    }

    /// The real nodes, source's first (none when the sandbox runs the node agent).
    pub fn nodes(&self) -> &[RealNode] {
        self.nodes.as_ref().map(nodes::Started::real).unwrap_or_default()
    }

    /// The local directory behind the app's volume in the source (`source == true`) or target cluster.
    pub fn volume_dir(&self, source: bool) -> PathBuf {
        let side = if source { "source" } else { "target" };
        self.dir.join("volumes").join(side).join(APP_PVC)
    }

    /// Deploys the example app: the repo on the git server, the source app running in the source
    /// cluster, the target app at zero replicas in the target, a PersistentVolume for the claim in
    /// each cluster, and the app's DNS record pointing at the source.
    pub async fn install_app(&self) -> Result<()> {
        self.git.create_repo(
            REPO,
            &[
                ("clusters/source/shop.yaml", SOURCE_APP),
                ("clusters/target/shop.yaml", TARGET_APP),
            ],
        )?;
        for (source, client, app) in [
            (true, &self.source_client, SOURCE_APP),
            (false, &self.host_client, TARGET_APP),
        ] {
            let volume = self.volume_dir(source);
            std::fs::create_dir_all(&volume).map_err(Error::io(format!("creating {}", volume.display())))?;
            // As the hostPath provisioner makes them: anyone may write, so the app (uid 999) makes its
            // own data directory.
            std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777))
                .map_err(Error::io(format!("opening up {}", volume.display())))?;
            apply_yaml(client, &persistent_volume(&volume), "default").await?;
            apply_yaml(
                client,
                &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {APP_NAMESPACE}\n"),
                "default",
            )
            .await?;
            wait_for_default_service_account(client, APP_NAMESPACE).await?;
            apply_yaml(client, app, APP_NAMESPACE).await?;
        }
        if !self.nodes().is_empty() {
            let marker = self.volume_dir(true).join(APP_DATA_DIR).join(APP_DATA_MARKER);
            nodes::wait_app_running(&self.source_client, Some(&marker)).await?;
        }
        let provider = self.bind.provider().await?;
        let record = RecordSet::new(
            &self.app_fqdn(),
            RecordType::A,
            SOURCE_TTL,
            &[SOURCE_ADDRESS.to_string()],
        )?;
        provider.replace(std::slice::from_ref(&record)).await?;
        provider.verify(&[record], Duration::from_secs(10)).await?;
        Ok(())
    }

    /// The commit the app repo's branch points at.
    pub fn git_head(&self) -> String {
        let repo = git2::Repository::open_bare(self.git.repo_path(REPO));
        repo.ok()
            .and_then(|r| r.refname_to_id("refs/heads/main").ok())
            .map(|oid| oid.to_string())
            .unwrap_or_default()
    }

    /// The app's A record as BIND serves it now.
    pub async fn served_app_record(&self) -> Result<RecordSet> {
        let key = ferry::dns::RecordKey {
            fqdn: self.app_fqdn(),
            record_type: RecordType::A,
        };
        let mut sets = self.bind.provider().await?.read(&[key]).await?;
        Ok(sets.remove(0))
    }

    /// The app's DNS name.
    pub fn app_fqdn(&self) -> String {
        format!("{APP_NAMESPACE}.{ZONE}")
    }

    /// Registers the clusters and creates the plan (`e2e/examples/shop/plan.yaml`) in the host cluster.
    pub async fn create_plan(&mut self, quiesce: QuiesceMethod) -> Result<()> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let token = self.source.mint_token("ferry-system", "ferry-migration", true)?;
        let key = &self.bind.key;
        let method = match quiesce {
            QuiesceMethod::Commit => "Commit",
            QuiesceMethod::Patch => "Patch",
        };
        let plan = PLAN
            .replace("${SOURCE_URL}", &self.source.url)
            .replace("${SOURCE_CA}", &self.source.ca_bundle()?)
            .replace("${SA_TOKEN}", &b64(&token))
            .replace("${GIT_URL}", &self.git.url(REPO))
            .replace("${GIT_USER}", GIT_USER)
            .replace("${GIT_PASSWORD}", &self.git_password)
            .replace("${TSIG_NAME}", &key.name)
            .replace("${TSIG_ALGORITHM}", key.algorithm.as_str())
            .replace("${TSIG_SECRET}", &key.secret_base64())
            .replace("${DNS_SERVER}", &self.bind.server())
            .replace("${DNS_ZONE}", ZONE)
            .replace("${QUIESCE_METHOD}", method);
        apply_yaml(
            &self.host_client,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {FERRY_NAMESPACE}\n"),
            "default",
        )
        .await?;
        let commit = quiesce == QuiesceMethod::Commit;
        let plan = if commit {
            plan.replace(
                "    quiesce: {method: Commit}",
                &format!(
                    "    quiesce: {{method: Commit}}\n    argocd:\n      \
                     sourceApplication: {{name: {APP_NAMESPACE}-source, namespace: {ns}}}\n      \
                     targetApplication: {{name: {APP_NAMESPACE}-target, namespace: {ns}}}",
                    ns = self.applications_namespace()
                ),
            )
        } else {
            plan
        };
        apply_yaml(&self.host_client, &plan, FERRY_NAMESPACE).await?;
        // The plan first: a PreSync hook in the target's path (`manifests/argocd/`) runs `ferry stage`
        // on the Applications' very first sync, and that needs the plan to exist.
        if commit {
            self.start_argocd().await?;
        }
        Ok(())
    }

    /// Stops the controller, the agents, the git server, BIND and both control planes; `true` when
    /// every process exited cleanly.
    pub async fn stop(mut self) -> bool {
        let mut clean = true;
        for applier in self.appliers.drain(..) {
            applier.abort();
        }
        if let Some(argocd) = self.argocd.take() {
            clean &= argocd.stop();
        }
        if let Some(controller) = self.controller.take() {
            clean &= controller.stop();
        }
        if let Some(nodes) = self.nodes.take() {
            nodes.stop().await;
        }
        self.git.stop().await;
        drop(self.bind);
        clean &= self.source.stop();
        clean &= self.target.stop();
        clean
    }
}

/// Waits until the app runs in the target cluster (after a cutover: every Deployment available).
pub async fn wait_target_app(sandbox: &Sandbox) -> Result<()> {
    nodes::wait_app_running(&sandbox.host_client, None).await
}

/// A hostPath PersistentVolume at `dir` pre-bound to the app's claim.
fn persistent_volume(dir: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {APP_NAMESPACE}-{APP_PVC}\n\
         spec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: local\n  \
         persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: {path}}}\n  \
         claimRef: {{namespace: {APP_NAMESPACE}, name: {APP_PVC}}}\n",
        path = dir.display()
    )
}

/// Where the stand-in images of the source (`source == true`) or target node live.
fn images_dir(dir: &Path, source: bool) -> PathBuf {
    dir.join("images").join(if source { "source" } else { "target" })
}
