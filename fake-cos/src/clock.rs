//! The clock the fake COS judges URL expiry and stamps objects with; tests move it instead of
//! sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The furthest the clock may be moved from real time: 100 years.
pub(crate) const MAX_OFFSET: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn max_offset_ms() -> i64 {
    i64::try_from(MAX_OFFSET.as_millis()).expect("100 years of milliseconds fit an i64")
}

/// Wall clock plus a signed offset the harness can move, shared by every request of one instance.
#[derive(Debug, Default)]
pub struct CosClock {
    offset_ms: AtomicI64,
}

impl CosClock {
    /// The current time as this instance sees it.
    pub fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        let now = SystemTime::now();
        let moved = if offset >= 0 {
            now.checked_add(magnitude)
        } else {
            now.checked_sub(magnitude)
        };
        moved.unwrap_or(now)
    }

    /// The current time in whole unix seconds, the unit of the `t` query parameter.
    pub fn now_unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Moves the clock forward by `by` (cumulative), at most to 100 years ahead of real time.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let max = max_offset_ms();
        let step = |offset: i64| Some(offset.saturating_add(ms).clamp(-max, max));
        // `fetch_update` with a closure that always answers never fails.
        let _always_ok = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, step);
    }

    /// Sets the offset from the real wall clock, in milliseconds (negative goes back in time),
    /// clamped to 100 years either way.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        let max = max_offset_ms();
        self.offset_ms
            .store(offset_ms.clamp(-max, max), Ordering::SeqCst);
    }

    /// The current offset from the real wall clock, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_unix_time_forward() {
        let clock = CosClock::default();
        let before = clock.now_unix();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now_unix() >= before + 3600);
        clock.set_offset_ms(0);
        assert_eq!(clock.offset_ms(), 0);
    }

    #[test]
    fn extreme_moves_saturate_instead_of_wrapping_or_panicking() {
        let clock = CosClock::default();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.offset_ms(), max_offset_ms());
        assert!(clock.now_unix() > 3_000_000_000);
        clock.set_offset_ms(i64::MIN);
        assert_eq!(clock.offset_ms(), -max_offset_ms());
        assert_eq!(clock.now_unix(), 0, "before 1970 reads as the epoch");
    }
}
