//! `otasim bench gateway`.

use std::process::ExitCode;

/// Arguments of `otasim bench gateway`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {}

pub(super) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim bench gateway is not available in this build yet")
}
