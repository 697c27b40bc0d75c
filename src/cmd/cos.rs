//! `otasim cos`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `otasim cos`.
#[derive(Debug, Args)]
pub struct CosArgs {}

pub(super) async fn run(_args: CosArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim cos is not available in this build yet")
}
