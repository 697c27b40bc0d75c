//! The task scheduler: one loop on the broker's runtime that starts queued devices, times out
//! attempts and retries them, on the hub's monotonic clock.
//!
//! The timers are a queue in the state ([`State::timers`](crate::core::State), by due time and
//! device), kept by every step that moves an update's timer: a tick pops what is due and
//! nothing else, so its cost is the number of due updates (times a logarithm), never the fleet.
//! A step wakes the loop only when it puts a timer before the earliest one.

use crate::core::{HubCore, State};
use std::sync::Arc;
use std::time::Duration;

/// At most this many due updates are handled under one lock; the lock is released between
/// batches, so a fleet timing out at once does not hold every hook up.
const BATCH: usize = 256;

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

/// Applies the clock to every update due now, in batches; returns the next time one is due.
pub(crate) fn tick(hub: &HubCore) -> Option<Duration> {
    let now = hub.elapsed();
    loop {
        let mut state = hub.lock();
        let handled = due_step(hub, &mut state, now, BATCH);
        if handled > 0 {
            state.out.bump = true;
        }
        let next = state.timers.first().map(|(at, _)| *at);
        // Dropping the step releases the lock, then sends what the batch decided.
        drop(state);
        match next {
            Some(at) if at <= now && handled == BATCH => continue,
            _ => return next,
        }
    }
}

/// Ticks up to `limit` updates due at `now`, earliest first; answers how many it took.
pub(crate) fn due_step(hub: &HubCore, state: &mut State, now: Duration, limit: usize) -> usize {
    let mut handled = 0;
    while handled < limit {
        let Some((due, id)) = state.timers.first().cloned() else {
            break;
        };
        if due > now {
            break;
        }
        state.timers.pop_first();
        handled += 1;
        // Every step that moves a timer moves its entry, so a mismatch is only defensive.
        if state.updates.get(&id).and_then(|u| u.wake_at) != Some(due) {
            continue;
        }
        hub.update_event(state, &id, |u| u.on_tick(now));
        // The entry was taken out before the step; one whose due time did not move goes back.
        if let Some(at) = state.updates.get(&id).and_then(|u| u.wake_at) {
            state.timers.insert((at, id));
        }
    }
    handled
}
