//! `ferry controller`: runs the reconcilers against the host cluster, out of cluster with a kubeconfig
//! or in cluster with the pod's ServiceAccount.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::controller::{self, Context};

/// Flags of `ferry controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig of the host cluster; in-cluster configuration (or $KUBECONFIG) when absent.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Log JSON lines (for running in a cluster) instead of human-readable text.
    #[arg(long, env = "FERRY_JSON_LOGS")]
    json_logs: bool,
    /// Seconds between re-checks of healthy objects (remote clusters can change behind Ferry's back).
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Seconds between re-checks of objects with a problem that may be fixed outside Ferry.
    #[arg(long, default_value_t = 10)]
    retry_seconds: u64,
    /// Objects of one kind reconciled at once (0: no bound); the rest queue.
    #[arg(long, env = "FERRY_MAX_CONCURRENT_RECONCILES", default_value_t = controller::DEFAULT_CONCURRENCY)]
    max_concurrent_reconciles: u16,
    /// Run the reconcilers only while holding a Lease (for two or more replicas).
    #[arg(long, env = "FERRY_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "ferry-controller")]
    lease_name: String,
    /// Seconds a Lease lasts without renewal: how long a dead leader's successor waits.
    #[arg(long, env = "FERRY_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This replica's identity in the election (default: the pod name, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Where to serve /healthz, /readyz, /metrics and the push webhook /hooks/git (`off`: nothing).
    #[arg(long, env = "FERRY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        kubeconfig,
        json_logs,
        resync_seconds,
        retry_seconds,
        max_concurrent_reconciles,
        leader_elect,
        lease_namespace,
        lease_name,
        lease_duration_seconds,
        identity,
        http_addr,
    } = args;
    super::init_logging(json_logs);
    let client = host_client(kubeconfig.as_deref()).await?;
    let mut ctx = Context::new(client.clone());
    if http_addr != "off" {
        let addr = http_addr
            .parse()
            .with_context(|| format!("--http-addr {http_addr:?} is not an address like 0.0.0.0:8080"))?;
        controller::http::serve(addr, client, ctx.metrics.clone()).await?;
    }
    ctx.resync = Duration::from_secs(resync_seconds);
    ctx.retry = Duration::from_secs(retry_seconds);
    ctx.concurrency = max_concurrent_reconciles;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ferry controller starting");
    if leader_elect {
        let identity = identity.unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let election = controller::leader::Election {
            namespace: lease_namespace,
            name: lease_name,
            identity,
            duration: Duration::from_secs(lease_duration_seconds),
        };
        controller::leader::run_when_leading(Arc::new(ctx), election).await?;
    } else {
        controller::run(Arc::new(ctx)).await;
    }
    tracing::info!("ferry controller stopped");
    Ok(ExitCode::SUCCESS)
}

/// A client for the host cluster from `kubeconfig`, or inferred (in-cluster, then $KUBECONFIG).
pub(crate) async fn host_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig given and none could be inferred")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}
