//! `otasim gateway`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `otasim gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {}

pub(super) async fn run(_args: GatewayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim gateway is not available in this build yet")
}
