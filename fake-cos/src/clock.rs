//! The clock the fake COS judges URL expiry and stamps objects with; tests move it instead of
//! sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        if offset >= 0 {
            SystemTime::now() + magnitude
        } else {
            SystemTime::now() - magnitude
        }
    }

    /// The current time in whole unix seconds, the unit of the `t` query parameter.
    pub fn now_unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Moves the clock forward by `by` (cumulative).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the offset from the real wall clock, in milliseconds (negative goes back in time).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
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
}
