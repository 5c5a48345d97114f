//! The `ferry` command line. Each subcommand lives in its own file with an `Args` struct and a `run`;
//! this file only parses, sets up logging and turns the outcome into an exit code (one policy, here).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod controller;
pub mod crds;
mod dns;
pub mod follow;
mod migrate;
mod mover;
mod report;

/// Ferry migrates the persistent state of applications between Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (out of cluster with a kubeconfig, or in cluster).
    Controller(controller::Args),
    /// Print or write the CustomResourceDefinitions generated from the API types.
    Crds(crds::Args),
    /// DNS flip tools: `ferry dns check` shows what a flip would change, changing nothing.
    Dns(dns::Args),
    /// The data plane run in mover pods: receive, send (rsync over mutual TLS), certs.
    Mover(mover::Args),
    /// Start a stage of a plan: copy its volumes while the app runs (`--wait` to follow it).
    Stage(migrate::Args),
    /// Start the cutover of a plan: quiesce, final sync, start on the target, flip DNS.
    Cutover(migrate::Args),
    /// Roll a plan's cutover back: DNS, target stopped, source restored, commits reverted.
    Rollback(migrate::Args),
    /// Show plans and their migrations.
    Status(migrate::StatusArgs),
    /// Write a plan's migration report: one self-contained HTML page (stages, cutover timeline, DNS, commits).
    Report(report::Args),
}

/// Parses the command line, runs the subcommand on a tokio runtime and maps the result to an exit code:
/// 0 on success, 1 with a one-line cause on stderr on failure (subcommands may return other codes).
pub fn main() -> ExitCode {
    let cli = parse(std::env::args_os());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ferry: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ferry: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The command line. Installed (or linked) as `kubectl-ferry` on the PATH, the binary is a kubectl
/// plugin: `kubectl ferry status` runs it with the same arguments, and its help says `kubectl ferry`.
fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let as_plugin = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| name == "kubectl-ferry");
    let mut command = Cli::command();
    if as_plugin {
        command = command.bin_name("kubectl ferry").display_name("kubectl ferry");
    }
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli { command } = cli;
    match command {
        Command::Controller(args) => controller::run(args).await,
        Command::Crds(args) => crds::run(args),
        Command::Dns(args) => dns::run(args).await,
        Command::Mover(args) => mover::run(args).await,
        Command::Stage(args) => migrate::run(migrate::Kind::Stage, args).await,
        Command::Cutover(args) => migrate::run(migrate::Kind::Cutover, args).await,
        Command::Rollback(args) => migrate::run(migrate::Kind::Rollback, args).await,
        Command::Status(args) => migrate::status(args).await,
        Command::Report(args) => report::run(args).await,
    }
}

/// Joins an error and its causes into one line, skipping causes already quoted by their parent. A
/// Kubernetes client error is worded by [`crate::error::kube_message`] (kube's own text carries a
/// `Debug` dump of the server's Status) and ends the line: its sources are what it already said.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let kube = cause.downcast_ref::<kube::Error>();
        let text = kube.map_or_else(|| cause.to_string(), crate::error::kube_message);
        if kube.is_some() {
            if !line.contains(&text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            break;
        }
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// Installs the tracing subscriber: JSON lines when `json` is set (in cluster), human text otherwise.
/// The filter comes from `RUST_LOG`, defaulting to `info` for Ferry and `warn` for everything else.
pub(crate) fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,ferry=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests) is harmless: the first subscriber stays.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn forbidden() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            message: "migplans \"shop\" is forbidden: User \"x\" cannot get resource \"migplans\"".into(),
            reason: "Forbidden".into(),
            code: 403,
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn a_kubernetes_error_is_one_line_without_a_debug_dump() {
        let want = "reading the MigPlan: migplans \"shop\" is forbidden: User \"x\" cannot get resource \"migplans\" \
                    (Forbidden, 403)";
        let direct = Err::<(), _>(forbidden())
            .context("reading the MigPlan")
            .unwrap_err();
        assert_eq!(one_line(&direct), want);
        let wrapped = Err::<(), _>(crate::Error::Kube(forbidden()))
            .context("reading the MigPlan")
            .unwrap_err();
        assert_eq!(
            one_line(&wrapped),
            want.replace("MigPlan: ", "MigPlan: kubernetes API: ")
        );
        let other = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(one_line(&other), "outer: first second");
    }
}
