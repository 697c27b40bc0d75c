//! Subcommands.

mod demo;
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Offline simulator and end-to-end test harness for gateway OTA updates on Tencent Cloud IoT Hub.
#[derive(Debug, Parser)]
#[command(name = "otasim", version, about)]
pub struct Cli {
    /// More logs on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the seed demo: three lights updated through a gateway, everything embedded.
    Demo(demo::DemoArgs),
}

/// Runs a parsed command; the exit code says whether the expected outcome held.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
    }
}
