//! `otasim bench hub`.

use std::process::ExitCode;

/// Arguments of `otasim bench hub`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {}

pub(super) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim bench hub is not available in this build yet")
}
