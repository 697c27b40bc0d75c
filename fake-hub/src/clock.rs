//! The hub's clocks: a wall clock for credential expiry and bind timestamps, and a monotonic
//! clock for task timers. Tests move both forward instead of sleeping.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Real time plus offsets the harness moves.
#[derive(Debug)]
pub(crate) struct HubClock {
    started: Instant,
    /// Added to the wall clock; negative goes back in time.
    wall_offset_ms: AtomicI64,
    /// Added to the monotonic clock by [`HubClock::advance`]; never decreases.
    advanced_ms: AtomicU64,
}

impl HubClock {
    pub(crate) fn new() -> Self {
        HubClock {
            started: Instant::now(),
            wall_offset_ms: AtomicI64::new(0),
            advanced_ms: AtomicU64::new(0),
        }
    }

    /// Time since the hub started, as task timers count it.
    pub(crate) fn elapsed(&self) -> Duration {
        let advanced = Duration::from_millis(self.advanced_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_add(advanced)
    }

    /// The hub's wall clock in Unix milliseconds.
    pub(crate) fn now_unix_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real.saturating_add(self.wall_offset_ms.load(Ordering::SeqCst))
    }

    /// The hub's wall clock in Unix seconds.
    pub(crate) fn now_unix_secs(&self) -> i64 {
        self.now_unix_ms().div_euclid(1000)
    }

    /// Moves both clocks forward by `by`: credentials expire and task timers fire as if that
    /// much time had passed.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // Saturating, never wrapping: a clock moved too far stays at the end of time.
        let _ = self
            .advanced_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                Some(a.saturating_add(ms))
            });
        let by_ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let _ = self
            .wall_offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
                Some(o.saturating_add(by_ms))
            });
    }

    /// Sets the wall clock's offset from real time (the monotonic clock is unaffected).
    pub(crate) fn set_wall_offset_ms(&self, offset_ms: i64) {
        self.wall_offset_ms.store(offset_ms, Ordering::SeqCst);
    }

    /// The wall clock's offset from real time, in milliseconds.
    pub(crate) fn wall_offset_ms(&self) -> i64 {
        self.wall_offset_ms.load(Ordering::SeqCst)
    }
}

/// The hub's clocks, as tests move them.
impl crate::Hub {
    /// Moves the hub's clocks forward: credentials and bind timestamps are judged, and task
    /// timers fire, as if `by` had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.core.clock.advance(by);
        self.core
            .store()
            .set_clock_offset_ms(self.core.clock.wall_offset_ms());
        self.core.wake.notify_one();
    }

    /// Sets the hub's wall clock offset from real time, in milliseconds (negative is earlier).
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.core.clock.set_wall_offset_ms(offset_ms);
        self.core.store().set_clock_offset_ms(offset_ms);
    }

    /// The hub's wall clock offset from real time, in milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.core.clock.wall_offset_ms()
    }

    /// The hub's wall clock, in Unix milliseconds.
    pub fn now_unix_ms(&self) -> i64 {
        self.core.clock.now_unix_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_wall_and_monotonic_clocks_together() {
        let clock = HubClock::new();
        let (wall, mono) = (clock.now_unix_secs(), clock.elapsed());
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_unix_secs() >= wall + 3600);
        assert!(clock.elapsed() >= mono + Duration::from_secs(3600));
        clock.set_wall_offset_ms(-86_400_000);
        assert!(clock.now_unix_secs() < wall);
        assert!(clock.elapsed() >= mono + Duration::from_secs(3600));
    }
}
