#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    import_scheduler::cli::run(import_scheduler::cli::Cli::parse())
}
