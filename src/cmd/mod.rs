//! Subcommands, one module each.

mod bench;
mod cos;
mod ctl;
mod demo;
mod gateway;
mod hub;
mod scenario;
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
    /// Serve a folder of firmware files as fake COS, with the control API.
    Cos(cos::CosArgs),
    /// Run fake hub and fake COS as a server for gateways we did not write.
    Hub(hub::HubArgs),
    /// Drive a running `otasim hub` from the shell: status, watch, push, firmware, faults, clock.
    Ctl(ctl::CtlArgs),
    /// Run the gateway OTA client against any hub.
    Gateway(gateway::GatewayArgs),
    /// Run scenario files or folders.
    Run(scenario::RunArgs),
    /// List the scenarios in files or folders.
    List(scenario::ListArgs),
    /// Validate scenario files without running them.
    Check(scenario::CheckArgs),
    /// Run one scenario again with a given seed.
    Replay(scenario::ReplayArgs),
    /// Turn a C SDK gateway log into a scenario that reproduces it.
    Import(scenario::ImportArgs),
    /// Qualify a gateway: the whole catalog against it, one report (HTML, JUnit, JSON).
    Qualify(scenario::QualifyArgs),
    /// Measure throughput and latency against a reference in the same run.
    Bench(bench::BenchArgs),
}

/// Runs a parsed command; the exit code says whether the expected outcome held.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Cos(args) => cos::run(args).await,
        Command::Hub(args) => hub::run(args).await,
        Command::Ctl(args) => ctl::run(args).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Run(args) => scenario::run(args).await,
        Command::List(args) => scenario::list(args).await,
        Command::Check(args) => scenario::check(args).await,
        Command::Replay(args) => scenario::replay(args).await,
        Command::Import(args) => scenario::import(args).await,
        Command::Qualify(args) => scenario::qualify(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
