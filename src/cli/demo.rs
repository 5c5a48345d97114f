//! `ferry demo`.

/// Flags of `ferry demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let Args {} = args;
    anyhow::bail!("ferry demo is being built")
}
