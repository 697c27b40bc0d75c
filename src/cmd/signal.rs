//! The one way every long-running command waits to be stopped.

use anyhow::Context as _;
use std::future::Future;

/// Registers Ctrl-C (SIGINT) and SIGTERM handlers now, so that a signal sent as soon as
/// anything is printed is caught; the returned future resolves on the first of them.
pub(super) fn stop_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
