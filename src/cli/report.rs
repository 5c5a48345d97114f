//! `ferry report --plan NS/NAME [-o report.html] [--git-dir CLONE]`: reads the MigPlan and its
//! MigMigrations from the host cluster and writes the migration report (`crate::report`) as one
//! self-contained HTML page. The file is written whole or not at all (a temporary file renamed).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::api::{MigMigration, MigPlan};
use crate::report::{self, Found, Report};

/// Flags of `ferry report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan to report on, NAMESPACE/NAME.
    #[arg(long)]
    plan: String,
    /// Where to write the page; `-` for standard output.
    #[arg(long, short = 'o', default_value = "report.html")]
    output: PathBuf,
    /// A local clone of the plan's GitOps repo: the report then shows the messages of Ferry's commits
    /// (the statuses record only their SHAs).
    #[arg(long)]
    git_dir: Option<PathBuf>,
    /// Kubeconfig of the host cluster; in-cluster configuration (or $KUBECONFIG) when absent.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Writes the report of one plan.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        plan,
        output,
        git_dir,
        kubeconfig,
    } = args;
    let (namespace, name) = super::migrate::split_plan(&plan)?;
    // Checked before the cluster is asked anything: a typo in the path is not a cluster problem.
    if output != Path::new("-") {
        let dir = output
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!(
                "cannot write {}: {} is not a directory",
                output.display(),
                dir.display()
            );
        }
    }
    let client = super::controller::host_client(kubeconfig.as_deref()).await?;
    let plans: Api<MigPlan> = Api::namespaced(client.clone(), &namespace);
    let Some(found_plan) = plans.get_opt(&name).await.context("reading the MigPlan")? else {
        bail!("MigPlan {plan} does not exist");
    };
    let migrations: Api<MigMigration> = Api::namespaced(client, &namespace);
    let mut migrations: Vec<MigMigration> = migrations
        .list(&ListParams::default())
        .await
        .context("listing the MigMigrations")?
        .items
        .into_iter()
        .filter(|m| {
            m.spec.mig_plan_ref.name == name && m.spec.mig_plan_ref.namespace_or(&namespace) == namespace
        })
        .collect();
    migrations.sort_by_key(|m| (m.metadata.creation_timestamp.clone().map(|t| t.0), m.name_any()));
    let dns_before = crate::pipeline::steps::dns::recorded(&found_plan)
        .context("reading the DNS record sets recorded before the cutover")?
        .map(|r| r.record_sets.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let mut found = Found {
        generated: k8s_openapi::jiff::Timestamp::now().to_string(),
        dns_before,
        commit_messages: BTreeMap::new(),
    };
    if let Some(dir) = &git_dir {
        let shas: Vec<String> = Report::build(&found_plan, &migrations, found.clone())
            .commits
            .into_iter()
            .map(|c| c.sha)
            .collect();
        found.commit_messages = commit_messages(dir, &shas)?;
    }
    let page = report::page(&found_plan, &migrations, found);
    if output == Path::new("-") {
        std::io::stdout()
            .write_all(page.as_bytes())
            .context("writing the report to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    write_whole(&output, &page)?;
    eprintln!(
        "wrote the report of MigPlan {plan} ({} migration(s)) to {}",
        migrations.len(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The messages of `shas` in the repository at `dir` (bare or not); a SHA the clone lacks is named on
/// stderr and left out.
fn commit_messages(dir: &Path, shas: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let repo = git2::Repository::open(dir)
        .map_err(|err| anyhow::anyhow!("--git-dir {}: {}", dir.display(), err.message()))?;
    let mut messages = BTreeMap::new();
    for sha in shas {
        let commit = git2::Oid::from_str(sha).and_then(|oid| repo.find_commit(oid));
        match commit {
            Ok(commit) => {
                messages.insert(
                    sha.clone(),
                    commit.message().unwrap_or_default().trim().to_string(),
                );
            }
            Err(_) => eprintln!(
                "ferry: commit {sha} is not in {} (fetch it); its message is left out",
                dir.display()
            ),
        }
    }
    Ok(messages)
}

/// Writes `text` to `path` through a temporary file beside it, so a failure leaves no half page.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        bail!("cannot write {}: {err}", path.display());
    }
    Ok(())
}
