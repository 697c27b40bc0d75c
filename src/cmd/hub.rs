//! `otasim hub`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `otasim hub`.
#[derive(Debug, Args)]
pub struct HubArgs {}

pub(super) async fn run(_args: HubArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim hub is not available in this build yet")
}
