//! `otasim run`, `list`, `check`, `replay` and `import`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `otasim run`.
#[derive(Debug, Args)]
pub struct RunArgs {}
/// Arguments of `otasim list`.
#[derive(Debug, Args)]
pub struct ListArgs {}
/// Arguments of `otasim check`.
#[derive(Debug, Args)]
pub struct CheckArgs {}
/// Arguments of `otasim replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {}
/// Arguments of `otasim import`.
#[derive(Debug, Args)]
pub struct ImportArgs {}

pub(super) async fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim run is not available in this build yet")
}
pub(super) async fn list(_args: ListArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim list is not available in this build yet")
}
pub(super) async fn check(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim check is not available in this build yet")
}
pub(super) async fn replay(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim replay is not available in this build yet")
}
pub(super) async fn import(_args: ImportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("otasim import is not available in this build yet")
}
