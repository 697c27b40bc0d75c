//! `otasim bench`: each benchmark runs otasim and a reference side by side in the same run,
//! since this kind of machine is noisy.

mod cos;
mod gateway;
mod hub;

use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Arguments of `otasim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// fake-cos against nginx: concurrent Range downloads of one large object.
    Cos(cos::Args),
    /// The gateway's download, hash and burn against `curl -o` then `md5sum`.
    Gateway(gateway::Args),
    /// Many gateways on one hub, and MQTT round trips against mosquitto.
    Hub(hub::Args),
}

pub(super) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.which {
        Bench::Cos(a) => cos::run(a).await,
        Bench::Gateway(a) => gateway::run(a).await,
        Bench::Hub(a) => hub::run(a).await,
    }
}
