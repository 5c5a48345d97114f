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
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        kubeconfig,
        json_logs,
        resync_seconds,
        retry_seconds,
    } = args;
    super::init_logging(json_logs);
    let client = host_client(kubeconfig.as_deref()).await?;
    let mut ctx = Context::new(client);
    ctx.resync = Duration::from_secs(resync_seconds);
    ctx.retry = Duration::from_secs(retry_seconds);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ferry controller starting");
    controller::run(Arc::new(ctx)).await;
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
