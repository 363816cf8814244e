//! Command-line interface: `main.rs` parses, these modules do the work.
//!
//! Exit codes are part of the interface, because scripts call these commands:
//! 0 success, 1 an operation failed (e.g. an import), 2 bad usage or invalid input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod approve;
pub mod check;
pub mod cluster;
pub mod freeze;
pub mod history;
pub mod import;
pub mod next;
mod next_gates;
pub mod pin;
pub mod run;
pub mod status;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when an operation failed (an import, a cluster call).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad usage or invalid input (same as clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "import-scheduler",
    version,
    about = "Decides when container images reach an OpenShift environment",
    long_about = "Imports ImageStream tags immediately (e.g. stg) or only inside cron-defined windows (e.g. prod), \
                  and gives operators the manual steps: import now, history, pin to a digest, restore."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and summarise it.
    Check(check::Args),
    /// List the next windows of a schedule.
    Next(next::Args),
    /// Run the scheduler daemon (in the cluster, or locally with --config).
    Run(run::Args),
    /// Show each environment's window and, per tag, the current image, whether
    /// the source moved on, pins, and the daemon's last outcome.
    Status(status::Args),
    /// Import an environment's tags now, whatever the schedule says.
    Import(import::Args),
    /// Show a tag's import history, newest first.
    History(history::Args),
    /// Pin a tag to a digest from its history (roll back); imports leave it alone.
    Pin(pin::PinArgs),
    /// Point a pinned tag back at its moving source.
    Restore(pin::RestoreArgs),
    /// Freeze an environment (no window opens) until a time or for its next
    /// window, or list the freezes set this way.
    Freeze(freeze::FreezeArgs),
    /// Lift the freezes set with `freeze` on an environment.
    Unfreeze(freeze::UnfreezeArgs),
    /// Approve what a window of an environment with an approval gate would
    /// import now (or list or revoke approvals).
    Approve(approve::Args),
}

/// Output format of commands that print results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// One JSON document on stdout, nothing else.
    Json,
}

/// Where a command gets its configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigSource {
    /// Configuration file (the ConfigMap's config.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Next(args) => next::run(&args),
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::run(&args),
        Command::Import(args) => import::run(&args),
        Command::History(args) => history::run(&args),
        Command::Pin(args) => pin::run_pin(&args),
        Command::Restore(args) => pin::run_restore(&args),
        Command::Freeze(args) => freeze::run_freeze(&args),
        Command::Unfreeze(args) => freeze::run_unfreeze(&args),
        Command::Approve(args) => approve::run(&args),
    };
    ExitCode::from(code)
}

/// Prints an error for a person and returns the usage exit code.
pub(crate) fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

/// Reads and validates a configuration file, printing every error on failure.
pub(crate) fn load_config_file(
    path: &std::path::Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::config::Loaded, u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage_error(format!(
            "cannot read configuration file {}: {e}",
            path.display()
        ))
    })?;
    crate::config::parse(&text, now).map_err(|errors| {
        eprint!("{}: {errors}", path.display());
        EXIT_USAGE
    })
}
