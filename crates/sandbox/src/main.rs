//! The `ferry-sandbox` binary: `ferry-sandbox demo` runs a whole migration on this machine (`make demo`).
//! It is a test harness and never ships; the product is the `ferry` binary it starts as the controller.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry's local sandbox: real control planes, nodes, git, BIND9 and the controller on this machine.
#[derive(Debug, Parser)]
#[command(name = "ferry-sandbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole migration in the sandbox: two stages and a cutover of the example app.
    Demo(ferry_sandbox::demo::Args),
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ferry-sandbox: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match command {
            Command::Demo(args) => ferry_sandbox::demo::run(args).await,
        }
    });
    outcome.unwrap_or_else(|err| {
        eprintln!("ferry-sandbox: {}", ferry::cli::one_line(&err));
        ExitCode::FAILURE
    })
}
