//! The `ferry` binary: the controller, the CLI and the mover share one executable (DESIGN.md §8).

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
