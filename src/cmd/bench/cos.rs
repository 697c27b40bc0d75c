//! `otasim bench cos`.

use std::process::ExitCode;

/// Arguments of `otasim bench cos`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {}

pub(super) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim bench cos is not available in this build yet")
}
