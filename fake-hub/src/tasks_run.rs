//! The task scheduler: one loop on the broker's runtime that starts queued devices, times out
//! attempts and retries them, on the hub's monotonic clock.

use crate::core::HubCore;
use otasim_protocol::DeviceId;
use std::sync::Arc;
use std::time::Duration;

/// Runs on the broker's runtime until it stops with the hub.
pub(crate) async fn run(hub: Arc<HubCore>) {
    loop {
        // A notification after this tick is kept as a permit, so none is lost.
        let next = tick(&hub);
        let wait = next.map(|at| at.saturating_sub(hub.elapsed()));
        let notified = hub.wake.notified();
        match wait {
            Some(d) => {
                tokio::select! {
                    // Both branches only wake the loop; the next tick reads the state afresh.
                    _ = tokio::time::sleep(d) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Applies the clock to every unfinished update; returns the next time one is due.
fn tick(hub: &HubCore) -> Option<Duration> {
    let now = hub.elapsed();
    let mut state = hub.lock();
    let due: Vec<DeviceId> = state
        .updates
        .values()
        .filter(|u| u.wake_at.is_some_and(|w| w <= now))
        .map(|u| u.device.clone())
        .collect();
    for id in &due {
        hub.update_event(&mut state, id, |u| u.on_tick(now));
    }
    let next = state.updates.values().filter_map(|u| u.wake_at).min();
    let changed = !due.is_empty();
    drop(state);
    if changed {
        hub.bump();
    }
    next
}
