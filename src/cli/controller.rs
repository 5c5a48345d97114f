//! `ferry controller`.

/// Flags of `ferry controller`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let Args {} = args;
    anyhow::bail!("ferry controller is being built")
}
