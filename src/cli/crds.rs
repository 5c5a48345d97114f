//! `ferry crds`.

/// Flags of `ferry crds`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let Args {} = args;
    anyhow::bail!("ferry crds is being built")
}
